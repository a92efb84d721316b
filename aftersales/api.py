"""The after-sales API under /api/v1/: each part registers its viewsets here.

The merchant's part (capability ``aftersales.manage``, owner and operator):

- ``/after-sales/``: the queues (filters queue, store, platform, type, supplier, q = order id /
  after-sale id / return waybill; ``ordering=deadline``: the ones with a live platform deadline,
  soonest first) and one after-sale with its lines, timeline, answers sent, the supplier's
  answer and the platform's view (the newest stored version, neutral JSON);
- answers through the platform (``aftersales.actions``): ``approve``, ``reject``,
  ``confirm-receipt``, ``intercept``, ``bulk-approve``; ``actions/{id}/retry``; what a refusal
  and an approval may name: ``reject-reasons`` and ``return-addresses`` of a shop;
- ``/after-sale-policy/``: the auto-approve rule (GET, PUT).

Every POST honours an ``Idempotency-Key`` header (``logistics.api.idempotent``). An answer is
200 with the action as recorded: ``status`` done, pending (sent later: rate limit, no answer)
or failed (the platform's refusal in ``error``, retryable). A refusal by ecbao (the queue does
not allow it, a missing reason) is 400.
"""

from __future__ import annotations

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from aftersales import actions as answers
from aftersales import policy as rule
from aftersales.models import AfterSale, AfterSaleAction, AfterSaleEvent, AfterSaleLine, AutoApprovePolicy
from channels.errors import ChannelError
from channels.models import ChannelAfterSaleState, Store
from ecbao import api, paging
from ecbao.api import error_response
from inventory.api import ERROR_ENVELOPE
from logistics.api import IDEMPOTENCY_ERRORS, IDEMPOTENCY_PARAMETER, REFUSED, StrictIntegerField, idempotent

CAPABILITY = "aftersales.manage"
MAX_IDS = 200
MAX_SEARCH = 64
_UNAVAILABLE = OpenApiResponse(
    ERROR_ENVELOPE,
    description="The shop's platform could not be read now (code `platform_error`: unreachable, or the shop "
    "must be connected again); try later.",
)


# --- serializers -----------------------------------------------------------------------------------


class AfterSaleLineSerializer(serializers.ModelSerializer):
    platform_line_id = serializers.CharField(read_only=True)
    merchant_code = serializers.SerializerMethodField()
    title = serializers.SerializerMethodField()

    class Meta:
        model = AfterSaleLine
        fields = [
            "id",
            "order_line",
            "platform_line_id",
            "sku",
            "merchant_code",
            "title",
            "quantity",
            "refund_fen",
        ]
        read_only_fields = fields

    def get_merchant_code(self, line) -> str:
        if line.sku_id:
            return line.sku.merchant_code
        return line.order_line.merchant_code if line.order_line_id else ""

    def get_title(self, line) -> str:
        return line.order_line.title if line.order_line_id else ""


class AfterSaleEventSerializer(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField()

    class Meta:
        model = AfterSaleEvent
        fields = ["id", "kind", "source", "message", "data", "actor", "created_at"]
        read_only_fields = fields

    def get_actor(self, event) -> str:
        return event.actor.username if event.actor_id else ""


class AfterSaleActionSerializer(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField()

    class Meta:
        model = AfterSaleAction
        fields = [
            "id",
            "after_sale",
            "kind",
            "status",
            "key",
            "params",
            "result",
            "error",
            "attempts",
            "not_before",
            "actor",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_actor(self, row) -> str:
        return row.actor.username if row.actor_id else ""


class AfterSaleSerializer(serializers.ModelSerializer):
    store_name = serializers.CharField(source="store.name", read_only=True)
    supplier_name = serializers.SerializerMethodField()
    seconds_left = serializers.SerializerMethodField(
        help_text="Seconds to the platform's deadline (negative: past; null: none)."
    )

    class Meta:
        model = AfterSale
        fields = [
            "id",
            "store",
            "store_name",
            "platform",
            "platform_after_sale_id",
            "platform_order_id",
            "order",
            "type",
            "queue",
            "channel_status",
            "platform_status",
            "reason",
            "reason_code",
            "refund_fen",
            "quantity",
            "deadline",
            "seconds_left",
            "return_carrier",
            "return_tracking_no",
            "shipped_before",
            "warehouse",
            "supplier",
            "supplier_name",
            "dispatch",
            "supplier_answer",
            "auto_note",
            "last_error",
            "applied_at",
            "platform_updated_at",
        ]
        read_only_fields = fields

    def get_supplier_name(self, row) -> str:
        return row.supplier.name if row.supplier_id else ""

    @extend_schema_field({"type": "integer", "nullable": True})
    def get_seconds_left(self, row):
        if row.deadline is None:
            return None
        return int((row.deadline - timezone.now()).total_seconds())


class AfterSaleDetailSerializer(AfterSaleSerializer):
    lines = AfterSaleLineSerializer(many=True, read_only=True)
    events = AfterSaleEventSerializer(many=True, read_only=True)
    actions = AfterSaleActionSerializer(many=True, read_only=True)
    platform_view = serializers.SerializerMethodField(
        help_text="The platform's newest version as stored (neutral JSON; no buyer plaintext)."
    )

    class Meta(AfterSaleSerializer.Meta):
        fields = [
            *AfterSaleSerializer.Meta.fields,
            "evidence",
            "exchange",
            "supplier_note",
            "supplier_evidence",
            "supplier_answered_at",
            "reship_order",
            "lines",
            "events",
            "actions",
            "platform_view",
        ]
        read_only_fields = fields

    @extend_schema_field({"type": "object", "additionalProperties": True})
    def get_platform_view(self, row) -> dict:
        state = (
            ChannelAfterSaleState.objects.filter(
                store_id=row.store_id, platform_after_sale_id=row.platform_after_sale_id
            )
            .select_related("snapshot")
            .first()
        )
        return state.snapshot.normalized if state is not None else {}


class AfterSaleApproveSerializer(serializers.Serializer):
    return_address_id = api.StrictCharField(
        max_length=64, required=False, allow_blank=True, default="",
        help_text="A return address id (``return-addresses``); none: the shop's default.",
    )  # fmt: skip


class AfterSaleRejectSerializer(serializers.Serializer):
    reason_code = api.StrictCharField(max_length=32, help_text="A code from ``reject-reasons`` of the shop.")
    reason = api.StrictCharField(max_length=200, required=False, allow_blank=True, default="")
    evidence = serializers.ListField(
        child=serializers.URLField(max_length=500), required=False, max_length=9, default=list,
        help_text="Image links shown to the platform as evidence.",
    )  # fmt: skip


class AfterSaleBulkApproveSerializer(serializers.Serializer):
    ids = serializers.ListField(
        child=StrictIntegerField(min_value=1, max_value=api.MAX_BIGINT),
        min_length=1,
        max_length=MAX_IDS,
        help_text=f"After-sale ids (1–{MAX_IDS}).",
    )


class AfterSaleRefusalSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    reason = serializers.CharField()


class AfterSaleBulkResultSerializer(serializers.Serializer):
    approved = AfterSaleActionSerializer(many=True)
    refused = AfterSaleRefusalSerializer(many=True)


class AfterSaleRejectReasonSerializer(serializers.Serializer):
    code = serializers.CharField()
    text = serializers.CharField()
    needs_evidence = serializers.BooleanField()


class AfterSaleReturnAddressSerializer(serializers.Serializer):
    id = serializers.CharField()
    text = serializers.CharField()
    is_default = serializers.BooleanField()


class AfterSalePolicySerializer(serializers.ModelSerializer):
    enabled = api.StrictBooleanField()
    max_fen = StrictIntegerField(
        min_value=0, max_value=rule.MAX_LIMIT_FEN, help_text="Largest refund approved (fen)."
    )
    unshipped_only = api.StrictBooleanField(required=False, default=True)
    store_ids = serializers.ListField(
        child=StrictIntegerField(min_value=1, max_value=api.MAX_BIGINT), required=False, default=list,
        max_length=500, help_text="Shops the rule covers; empty: every shop.",
    )  # fmt: skip
    updated_by = serializers.SerializerMethodField()

    class Meta:
        model = AutoApprovePolicy
        fields = ["enabled", "max_fen", "unshipped_only", "store_ids", "updated_by", "updated_at"]
        read_only_fields = ["updated_by", "updated_at"]

    def get_updated_by(self, row) -> str:
        return row.updated_by.username if row.updated_by_id else ""


# --- filters ---------------------------------------------------------------------------------------


class AfterSaleFilterSet(api.FilterSet):
    queue = django_filters.ChoiceFilter(choices=AfterSale.Queue.choices)
    store = api.IdFilter(help_text="Shop id.")
    platform = django_filters.ChoiceFilter(choices=[(p, p) for p in ("douyin", "kuaishou", "wechat")])
    type = django_filters.ChoiceFilter(choices=AfterSale.Type.choices)
    supplier = api.IdFilter()
    q = django_filters.CharFilter(
        method="filter_q",
        max_length=MAX_SEARCH,
        help_text="Platform order id or after-sale id (or its beginning), or the return waybill number.",
    )
    ordering = django_filters.ChoiceFilter(
        choices=[("-id", "newest first"), ("deadline", "deadline")],
        method="filter_ordering",
        help_text="`deadline`: only after-sales with a live platform deadline, soonest first.",
    )

    class Meta:
        model = AfterSale
        fields: list[str] = []

    def filter_q(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(
            Q(platform_order_id__startswith=value)
            | Q(platform_after_sale_id__startswith=value)
            | Q(return_tracking_no=value)
        )

    def filter_ordering(self, queryset, name, value):
        return queryset.exclude(deadline=None) if value == "deadline" else queryset


class AfterSalePagination(api.KeysetPagination):
    """Newest first, or by deadline (``ordering=deadline``)."""

    noun = "After-sales"

    def paginate_queryset(self, queryset, request, view=None):
        self.keyset = (
            paging.Keyset("deadline", "id")
            if request.query_params.get("ordering") == "deadline"
            else paging.Keyset("-id")
        )
        return super().paginate_queryset(queryset, request, view)


def _refused(exc) -> Response:
    return error_response(code="invalid", message=" ".join(getattr(exc, "messages", [str(exc)])))


def _store_of(request) -> Store:
    raw = request.query_params.get("store", "")
    if not raw.isdigit():
        raise serializers.ValidationError({"store": [_("Name a shop (its id).")]})
    store = Store.objects.filter(pk=int(raw)).first() if 0 < int(raw) <= api.MAX_BIGINT else None
    if store is None:
        raise NotFound(_("No such shop."))
    return store


_STORE_PARAMETER = OpenApiParameter(
    "store",
    {"type": "integer", "minimum": 1, "maximum": api.MAX_BIGINT},
    OpenApiParameter.QUERY,
    required=True,
    description="Shop id.",
)
_ANSWER_RESPONSES = {200: AfterSaleActionSerializer, 400: REFUSED, **IDEMPOTENCY_ERRORS}


# --- viewsets --------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="After-sales (售后) in their queues: filters, newest first or by deadline"),
    retrieve=extend_schema(
        summary="One after-sale with its lines, timeline, answers, the supplier's answer and the platform's view"
    ),
)
class AfterSaleViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """After-sales of every shop, and the merchant's answers through the platform."""

    read_capability = CAPABILITY
    write_capability = CAPABILITY
    filterset_class = AfterSaleFilterSet
    pagination_class = AfterSalePagination
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        rows = AfterSale.objects.select_related("store", "supplier")
        if self.action == "retrieve":
            rows = rows.prefetch_related("lines__sku", "lines__order_line", "events__actor", "actions__actor")
        return rows

    def get_object(self):
        pk = self.kwargs.get("pk", "")
        if not str(pk).isdigit() or int(pk) > api.MAX_BIGINT:
            raise NotFound()
        return super().get_object()

    def get_serializer_class(self):
        return AfterSaleDetailSerializer if self.action == "retrieve" else AfterSaleSerializer

    def _answer(self, request, do):
        def run():
            try:
                result = do()
            except DjangoValidationError as exc:
                return _refused(exc)
            if isinstance(result, list):
                return Response(AfterSaleActionSerializer(result, many=True).data)
            return Response(AfterSaleActionSerializer(result).data)

        return idempotent(request, run)

    @extend_schema(
        summary="Approve (first approval): refund, or return / exchange with a return address",
        request=AfterSaleApproveSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses=_ANSWER_RESPONSES,
    )
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        after_sale = self.get_object()
        data = _valid(AfterSaleApproveSerializer, request)
        return self._answer(
            request,
            lambda: answers.approve(
                after_sale, actor=request.user, return_address_id=data["return_address_id"]
            ),
        )

    @extend_schema(
        summary="Refuse with a reason code the platform accepts",
        request=AfterSaleRejectSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses=_ANSWER_RESPONSES,
    )
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        after_sale = self.get_object()
        data = _valid(AfterSaleRejectSerializer, request)
        return self._answer(
            request,
            lambda: answers.reject(
                after_sale,
                actor=request.user,
                reason_code=data["reason_code"],
                reason=data["reason"],
                evidence=data["evidence"],
            ),
        )

    @extend_schema(
        summary="The return arrived: second approval (the platform refunds)",
        request=None,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses=_ANSWER_RESPONSES,
    )
    @action(detail=True, methods=["post"], url_path="confirm-receipt")
    def confirm_receipt(self, request, pk=None):
        after_sale = self.get_object()
        return self._answer(request, lambda: answers.confirm_receipt(after_sale, actor=request.user))

    @extend_schema(
        summary="Intercept every shipped parcel still on its way (Douyin: the platform's API with its cost)",
        request=None,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={200: AfterSaleActionSerializer(many=True), 400: REFUSED, **IDEMPOTENCY_ERRORS},
    )
    @action(detail=True, methods=["post"], pagination_class=None, filter_backends=[])
    def intercept(self, request, pk=None):
        after_sale = self.get_object()
        return self._answer(request, lambda: answers.intercept(after_sale, actor=request.user))

    @extend_schema(
        summary="Approve the chosen after-sales; the ones that cannot be are listed with why",
        request=AfterSaleBulkApproveSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={200: AfterSaleBulkResultSerializer, 400: REFUSED, **IDEMPOTENCY_ERRORS},
    )
    @action(
        detail=False, methods=["post"], url_path="bulk-approve", pagination_class=None, filter_backends=[]
    )
    def bulk_approve(self, request):
        data = _valid(AfterSaleBulkApproveSerializer, request)

        def run():
            result = answers.bulk_approve(data["ids"], actor=request.user)
            done = AfterSaleAction.objects.filter(pk__in=result["approved"]).select_related("actor")
            return Response(
                {
                    "approved": AfterSaleActionSerializer(done.order_by("id"), many=True).data,
                    "refused": [{"id": i, "reason": why} for i, why in result["refused"]],
                }
            )

        return idempotent(request, run)

    @extend_schema(
        summary="The refusal reasons a shop's platform accepts",
        parameters=[_STORE_PARAMETER],
        responses={200: AfterSaleRejectReasonSerializer(many=True), 409: _UNAVAILABLE},
    )
    @action(
        detail=False, methods=["get"], url_path="reject-reasons", pagination_class=None, filter_backends=[]
    )
    def reject_reasons(self, request):
        store = _store_of(request)
        try:
            reasons = answers.reject_reasons(store)
        except ChannelError as exc:
            return _unavailable(exc)
        return Response(AfterSaleRejectReasonSerializer(reasons, many=True).data)

    @extend_schema(
        summary="A shop's return addresses (the id an approval of a return names)",
        parameters=[_STORE_PARAMETER],
        responses={200: AfterSaleReturnAddressSerializer(many=True), 409: _UNAVAILABLE},
    )
    @action(
        detail=False, methods=["get"], url_path="return-addresses", pagination_class=None, filter_backends=[]
    )
    def return_addresses(self, request):
        store = _store_of(request)
        try:
            addresses = answers.return_addresses(store)
        except ChannelError as exc:
            return _unavailable(exc)
        return Response(AfterSaleReturnAddressSerializer(addresses, many=True).data)


@extend_schema_view(retrieve=extend_schema(summary="One answer sent (or to be sent) to the platform"))
class AfterSaleActionViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The merchant's answers to after-sales, as sent to the platforms."""

    read_capability = CAPABILITY
    write_capability = CAPABILITY
    serializer_class = AfterSaleActionSerializer
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return AfterSaleAction.objects.select_related("actor")

    def get_object(self):
        pk = self.kwargs.get("pk", "")
        if not str(pk).isdigit() or int(pk) > api.MAX_BIGINT:
            raise NotFound()
        return super().get_object()

    @extend_schema(
        summary="Send a failed or waiting answer again (on the after-sale as it is now)",
        request=None,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses=_ANSWER_RESPONSES,
    )
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        row = self.get_object()

        def run():
            try:
                done = answers.retry(row, actor=request.user)
            except DjangoValidationError as exc:
                return _refused(exc)
            return Response(AfterSaleActionSerializer(done).data)

        return idempotent(request, run)


class AfterSalePolicyViewSet(viewsets.GenericViewSet):
    """The auto-approve rule for small refunds (one per tenant): GET it, PUT it."""

    read_capability = CAPABILITY
    write_capability = CAPABILITY
    serializer_class = AfterSalePolicySerializer
    pagination_class = None
    filter_backends: list = []

    @classmethod
    def as_view(cls, actions=None, **initkwargs):
        # one object at the collection's address: the router binds GET there, PUT is added
        if actions and actions.get("get") == "list":
            actions = {**actions, "get": "current", "put": "put"}
        return super().as_view(actions, **initkwargs)

    def get_queryset(self):
        return AutoApprovePolicy.objects.all()

    def get_object(self):
        """The tenant's one policy (DRF's OPTIONS metadata asks for it to describe PUT)."""
        return rule.get_policy()

    @extend_schema(summary="The auto-approve rule", responses={200: AfterSalePolicySerializer})
    def current(self, request):
        return Response(AfterSalePolicySerializer(rule.get_policy()).data)

    list = current  # the router makes the collection's route for a viewset that can list

    @extend_schema(
        summary="Change the auto-approve rule",
        request=AfterSalePolicySerializer,
        responses={200: AfterSalePolicySerializer, 400: REFUSED},
    )
    def put(self, request):
        data = _valid(AfterSalePolicySerializer, request)
        try:
            saved = rule.set_policy(
                enabled=data["enabled"],
                max_fen=data["max_fen"],
                unshipped_only=data["unshipped_only"],
                store_ids=data["store_ids"],
                actor=request.user,
            )
        except DjangoValidationError as exc:
            raise serializers.ValidationError(
                exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
            ) from None
        return Response(AfterSalePolicySerializer(saved).data)


def _valid(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _unavailable(exc) -> Response:
    return error_response(
        code="platform_error",
        message=_("The platform could not be reached: %(e)s") % {"e": exc},
        http_status=status.HTTP_409_CONFLICT,
    )


def register(router) -> None:
    """Called by ecbao.urls_tenant with the tenant API router."""
    router.register("after-sales/actions", AfterSaleActionViewSet, basename="after-sale-action")
    router.register("after-sales", AfterSaleViewSet, basename="after-sale")
    router.register("after-sale-policy", AfterSalePolicyViewSet, basename="after-sale-policy")
    from aftersales.chargebacks_api import ChargeBackViewSet  # h-portal: supplier charge-backs

    router.register("charge-backs", ChargeBackViewSet, basename="charge-back")

"""Orders API: the workbench list (same filters, keyset pages), one order with its lines,
fulfilments, timeline and raw snapshots, the review actions, and the review rules.

Thin: reads through ``orders.selectors``, writes through ``orders.services``. Refusals use
the standard error envelope; a status that does not allow the action is a 409 with code
``invalid_transition``.
"""

from __future__ import annotations

import django_filters
from django.utils.translation import gettext
from drf_spectacular.types import OpenApiTypes
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

from channels.models import OrderSnapshot
from channels.types import Platform
from ecbao import api, inputs
from inventory.api import ERROR_ENVELOPE
from orders import review, selectors, services
from orders.models import Fulfilment, FulfilmentLine, Order, OrderEvent, OrderLine, ReviewRule
from orders.status import InvalidTransition

# --- pagination ----------------------------------------------------------------------------------


class OrderKeysetPagination(api.KeysetPagination):
    """Keyset pages newest first by (placed_at, id): every page costs the same, however deep,
    and orders arriving meanwhile never shift later pages. Follow ``next``/``previous``."""

    keyset = selectors.ORDER_KEYSET
    noun = "Orders"


# --- filters -------------------------------------------------------------------------------------


class OrderFilterSet(api.FilterSet):
    """The workbench's filters; all optional and combined with AND."""

    status = django_filters.ChoiceFilter(
        choices=[(value, str(label)) for value, label in selectors.TABS if value],
        help_text="A workbench tab: an order status, or `refunding` for orders with an after-sale.",
    )
    store = api.IdFilter(help_text="Shop id.")
    platform = django_filters.ChoiceFilter(choices=[(p.value, p.label) for p in Platform])
    placed_after = inputs.IsoDateTimeFilter(help_text="Placed at or after (ISO 8601).")
    placed_before = inputs.IsoDateTimeFilter(help_text="Placed before (ISO 8601).")
    merchant_code = django_filters.CharFilter(help_text="Orders with a line of this SKU merchant code.")
    paid_min_fen = api.IntegerFilter(help_text="Paid amount at least (fen).")
    paid_max_fen = api.IntegerFilter(help_text="Paid amount at most (fen).")
    has_buyer_remark = api.BooleanFilter()
    has_seller_remark = api.BooleanFilter()
    flags = django_filters.MultipleChoiceFilter(
        choices=[(key, str(label)) for key, (_field, label) in selectors.FLAGS.items()],
        help_text="Repeat for several; every flag given must hold.",
    )
    q = django_filters.CharFilter(
        help_text="Search: platform order ids, SKU merchant codes or 4-digit phone tails, "
        "separated by spaces or commas (at most 50)."
    )

    class Meta:
        model = Order
        fields: list[str] = []

    def filter_queryset(self, queryset):
        data = self.form.cleaned_data
        return selectors.apply_filters(
            queryset,
            selectors.OrderFilters(
                status=data.get("status") or "",
                store_id=data.get("store"),
                platform=data.get("platform") or "",
                placed_from=data.get("placed_after"),
                placed_to=data.get("placed_before"),
                merchant_code=(data.get("merchant_code") or "").strip(),
                paid_min_fen=data.get("paid_min_fen"),
                paid_max_fen=data.get("paid_max_fen"),
                has_buyer_remark=data.get("has_buyer_remark"),
                has_seller_remark=data.get("has_seller_remark"),
                flags=tuple(data.get("flags") or ()),
                q=data.get("q") or "",
            ),
        )


# --- serializers ---------------------------------------------------------------------------------


class OrderLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = OrderLine
        fields = [
            "id",
            "platform_line_id",
            "platform_product_id",
            "platform_sku_id",
            "sku",
            "merchant_code",
            "title",
            "spec",
            "quantity",
            "unit_price_fen",
            "paid_fen",
            "is_gift",
            "status",
            "refund_state",
        ]
        read_only_fields = fields


class OrderSerializer(serializers.ModelSerializer):
    """An order as the workbench shows it. Receiver data: masks and region only."""

    store_name = serializers.CharField(source="store.name", read_only=True)
    status_label = serializers.CharField(source="get_status_display", read_only=True)
    hold_reasons = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text="Why the order is held: review rule kinds, or `manual`.",
    )
    lines = OrderLineSerializer(many=True, read_only=True)

    class Meta:
        model = Order
        fields = [
            "id",
            "store",
            "store_name",
            "platform",
            "platform_order_id",
            "status",
            "status_label",
            "channel_status",
            "platform_status",
            "hold_reasons",
            "is_refunding",
            "has_unmatched",
            "is_out_of_stock",
            "address_changed",
            "ship_blocked_reason",
            "receiver_name_mask",
            "receiver_phone_mask",
            "receiver_address_mask",
            "province",
            "city",
            "district",
            "phone_tail",
            "buyer_remark",
            "seller_remark",
            "goods_fen",
            "freight_fen",
            "discount_fen",
            "paid_fen",
            "placed_at",
            "paid_at",
            "ship_by",
            "shipped_at",
            "finished_at",
            "platform_updated_at",
            "updated_at",
            "lines",
        ]
        read_only_fields = fields


class FulfilmentLineSerializer(serializers.ModelSerializer):
    order = serializers.IntegerField(source="order_line.order_id", read_only=True)
    platform_order_id = serializers.CharField(source="order_line.order.platform_order_id", read_only=True)
    merchant_code = serializers.CharField(source="order_line.merchant_code", read_only=True)

    class Meta:
        model = FulfilmentLine
        fields = ["order_line", "order", "platform_order_id", "merchant_code", "quantity"]
        read_only_fields = fields


class FulfilmentSerializer(serializers.ModelSerializer):
    lines = FulfilmentLineSerializer(many=True, read_only=True)

    class Meta:
        model = Fulfilment
        fields = ["id", "status", "is_merged", "created_at", "lines"]
        read_only_fields = fields


class OrderDetailSerializer(OrderSerializer):
    fulfilments = serializers.SerializerMethodField()

    class Meta(OrderSerializer.Meta):
        fields = [*OrderSerializer.Meta.fields, "fulfilments"]
        read_only_fields = fields

    @extend_schema_field(FulfilmentSerializer(many=True))
    def get_fulfilments(self, order):
        return FulfilmentSerializer(selectors.order_fulfilments(order), many=True).data


class OrderEventSerializer(serializers.ModelSerializer):
    actor_username = serializers.CharField(
        source="actor.username", read_only=True, default=None, allow_null=True
    )

    class Meta:
        model = OrderEvent
        fields = [
            "id",
            "kind",
            "source",
            "actor",
            "actor_username",
            "message",
            "before",
            "after",
            "created_at",
        ]
        read_only_fields = fields


class OrderSnapshotSerializer(serializers.ModelSerializer):
    applied = serializers.BooleanField(read_only=True, help_text="The version the order shows now.")

    class Meta:
        model = OrderSnapshot
        fields = [
            "id",
            "source",
            "platform_status",
            "status",
            "platform_updated_at",
            "received_at",
            "applied",
            "payload",
        ]
        read_only_fields = fields


class ReasonSerializer(serializers.Serializer):
    reason = api.StrictCharField(max_length=200, help_text="Why (shown in the order's timeline).")


class ReviewRuleSerializer(api.ModelSerializer):
    label = serializers.CharField(source="get_kind_display", read_only=True)
    threshold_fen = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=api.MAX_BIGINT,
        help_text="Only for `amount_over`: hold above this (fen).",
    )
    updated_at = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text="Null for a rule never configured (its defaults)."
    )

    class Meta:
        model = ReviewRule
        fields = ["kind", "label", "enabled", "threshold_fen", "updated_at"]
        read_only_fields = ["kind", "label", "updated_at"]


# --- viewsets ------------------------------------------------------------------------------------

_ERRORS = {
    400: OpenApiResponse(ERROR_ENVELOPE, description="Refused (code `invalid`, reasons in details)."),
    409: OpenApiResponse(
        ERROR_ENVELOPE, description="The order's status does not allow this (code `invalid_transition`)."
    ),
}


def _invalid_transition(exc: InvalidTransition) -> Response:
    return Response(
        {
            "error": {
                "code": "invalid_transition",
                "message": str(exc),
                "details": {"from_status": exc.from_status, "to_status": exc.to_status},
            }
        },
        status=status.HTTP_409_CONFLICT,
    )


@extend_schema_view(
    list=extend_schema(summary="Orders, newest first, with the workbench's filters"),
    retrieve=extend_schema(summary="One order with its lines and fulfilments"),
)
class OrderViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Orders of all shops. Reads need dashboard.view (raw snapshots orders.snapshots), actions
    orders.manage."""

    filterset_class = OrderFilterSet
    pagination_class = OrderKeysetPagination
    read_capability = "dashboard.view"
    write_capability = "orders.manage"

    def get_queryset(self):
        if self.action == "retrieve":
            return selectors.order_detail_queryset()
        return selectors.order_list()

    def get_serializer_class(self):
        if self.action == "list":
            return OrderSerializer
        return OrderDetailSerializer

    @extend_schema(responses=OrderEventSerializer(many=True), summary="The order's timeline, oldest first")
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def events(self, request, pk=None):
        order = self.get_object()
        events = order.events.select_related("actor").order_by("id")
        return Response(OrderEventSerializer(events, many=True).data)

    @extend_schema(
        responses=OrderSnapshotSerializer(many=True),
        summary="Every stored platform version of the order (raw payload), newest first",
    )
    @action(
        detail=True,
        methods=["get"],
        pagination_class=None,
        filter_backends=[],
        read_capability="orders.snapshots",
    )
    def snapshots(self, request, pk=None):
        order = self.get_object()
        return Response(OrderSnapshotSerializer(selectors.order_snapshots(order), many=True).data)

    def _act(self, request, act) -> Response:
        order = self.get_object()
        try:
            act(order)
        except InvalidTransition as exc:
            return _invalid_transition(exc)
        order = selectors.order_detail_queryset().get(pk=order.pk)
        return Response(OrderDetailSerializer(order, context=self.get_serializer_context()).data)

    def _reason(self, request) -> str:
        serializer = ReasonSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data["reason"]

    @extend_schema(request=None, responses={200: OrderDetailSerializer, **_ERRORS}, summary="Approve (审核)")
    @action(detail=True, methods=["post"], filter_backends=[])
    def approve(self, request, pk=None):
        return self._act(request, lambda order: services.approve(order=order, actor=request.user))

    @extend_schema(
        request=ReasonSerializer, responses={200: OrderDetailSerializer, **_ERRORS}, summary="Hold (挂起)"
    )
    @action(detail=True, methods=["post"], filter_backends=[])
    def hold(self, request, pk=None):
        reason = self._reason(request)
        return self._act(request, lambda order: services.hold(order=order, actor=request.user, reason=reason))

    @extend_schema(
        request=None,
        responses={200: OrderDetailSerializer, **_ERRORS},
        summary="Release a held order (the review rules run again)",
    )
    @action(detail=True, methods=["post"], filter_backends=[])
    def release(self, request, pk=None):
        return self._act(request, lambda order: services.release(order=order, actor=request.user))

    @extend_schema(
        request=ReasonSerializer,
        responses={200: OrderDetailSerializer, **_ERRORS},
        summary="Cancel in ecbao (stock is released; the platform order is untouched)",
    )
    @action(detail=True, methods=["post"], filter_backends=[])
    def cancel(self, request, pk=None):
        reason = self._reason(request)
        return self._act(
            request, lambda order: services.cancel(order=order, actor=request.user, reason=reason)
        )


@extend_schema_view(
    list=extend_schema(summary="Every review rule (unconfigured ones with their defaults)"),
    retrieve=extend_schema(
        summary="One review rule",
        parameters=[OpenApiParameter("kind", OpenApiTypes.STR, OpenApiParameter.PATH)],
    ),
    update=extend_schema(
        summary="Switch a rule on or off / set its threshold",
        parameters=[OpenApiParameter("kind", OpenApiTypes.STR, OpenApiParameter.PATH)],
        responses={200: ReviewRuleSerializer, 400: _ERRORS[400]},
    ),
    partial_update=extend_schema(
        summary="Switch a rule on or off / set its threshold",
        parameters=[OpenApiParameter("kind", OpenApiTypes.STR, OpenApiParameter.PATH)],
        responses={200: ReviewRuleSerializer, 400: _ERRORS[400]},
    ),
)
class ReviewRuleViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin, viewsets.GenericViewSet
):
    """The review (审单) rules applied to paid orders. Writes need orders.manage."""

    serializer_class = ReviewRuleSerializer
    pagination_class = None
    filter_backends: list = []
    lookup_field = "kind"
    write_capability = "orders.manage"
    queryset = ReviewRule.objects.all()

    def list(self, request, *args, **kwargs):
        rules = [rule for _kind, rule in sorted(review.active_rules().items())]
        return Response(self.get_serializer(rules, many=True).data)

    def get_object(self):
        rule = review.active_rules().get(self.kwargs["kind"])
        if rule is None:
            raise NotFound(gettext("Unknown rule."))
        return rule

    def update(self, request, *args, **kwargs):
        rule = self.get_object()
        serializer = self.get_serializer(rule, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        rule = services.set_rule(
            kind=rule.kind,
            enabled=data.get("enabled", rule.enabled),
            threshold_fen=data["threshold_fen"] if "threshold_fen" in data else rule.threshold_fen,
        )
        return Response(self.get_serializer(rule).data)

"""The supplier API's after-sales under /api/v1/supplier/after-sales/ (sealed like the rest of
the supplier API: capability ``supplier.portal`` and ``suppliers.portal.scope`` — another
supplier's after-sale is 404; staff tokens are refused).

- ``GET /`` — the supplier's after-sales, newest first (``queue=waiting|answered|all``,
  ``answered=true|false``, ``updated_since``);
- ``GET /{id}/`` — one, with its lines (the supplier's codes), the masked receiver, the buyer's
  evidence links, the return waybill and the timeline entries that concern the supplier;
- ``POST /{id}/answer/`` — 已拦截 ``intercepted`` / 无法拦截 ``not_intercepted`` / 已收到退货
  ``received`` (with good/defective counts per line) / 拒绝 ``refused`` (with a note); the
  same answer again changes nothing; honours ``Idempotency-Key``. Evidence files are uploaded
  on the portal page.
"""

from __future__ import annotations

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import include, path
from drf_spectacular.utils import (
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
    extend_schema_view,
)
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from aftersales import supplier as service
from aftersales.models import AfterSale, AfterSaleEvent
from ecbao import api, inputs
from ecbao.api import error_response
from logistics.api import IDEMPOTENCY_ERRORS, IDEMPOTENCY_PARAMETER, REFUSED, idempotent
from suppliers.portal.scope import CAPABILITY, SupplierScopePermission
from tenants.accounts.permissions import TenantStaffAPIPermission

ANSWERS = [
    (AfterSale.SupplierAnswer.INTERCEPTED, "intercepted"),
    (AfterSale.SupplierAnswer.NOT_INTERCEPTED, "not_intercepted"),
    (AfterSale.SupplierAnswer.RECEIVED, "received"),
    (AfterSale.SupplierAnswer.REFUSED, "refused"),
]


@extend_schema_serializer(component_name="SupplierAfterSaleLine")
class LineSerializer(serializers.Serializer):
    id = serializers.IntegerField(allow_null=True, help_text="The after-sale line (null: the dispatch line).")
    order_line = serializers.IntegerField(allow_null=True)
    supplier_code = serializers.CharField()
    merchant_code = serializers.CharField()
    title = serializers.CharField()
    spec = serializers.CharField()
    quantity = serializers.IntegerField()


@extend_schema_serializer(component_name="SupplierAfterSaleEvent")
class EventSerializer(serializers.ModelSerializer):
    source = serializers.CharField(read_only=True, help_text="platform, supplier or system.")

    class Meta:
        model = AfterSaleEvent
        fields = ["kind", "source", "message", "created_at"]
        read_only_fields = fields


@extend_schema_serializer(component_name="SupplierAfterSaleReceiver")
class ReceiverSerializer(serializers.Serializer):
    name = serializers.CharField()
    phone = serializers.CharField()
    address = serializers.CharField()
    province = serializers.CharField()
    city = serializers.CharField()
    district = serializers.CharField()


@extend_schema_serializer(component_name="SupplierAfterSaleEvidence")
class EvidenceSerializer(serializers.Serializer):
    name = serializers.CharField()
    content_type = serializers.CharField()
    size = serializers.IntegerField()


@extend_schema_serializer(component_name="SupplierAfterSale")
class AfterSaleSerializer(serializers.ModelSerializer):
    platform = serializers.CharField(read_only=True)
    store_name = serializers.CharField(source="store.name", read_only=True)
    needs = serializers.SerializerMethodField(
        help_text="`intercept` (请确认拦截), `receipt` (待收货) or empty."
    )
    supplier_evidence = serializers.SerializerMethodField()

    class Meta:
        model = AfterSale
        fields = [
            "id",
            "platform",
            "store_name",
            "platform_order_id",
            "dispatch",
            "type",
            "queue",
            "reason",
            "quantity",
            "return_carrier",
            "return_tracking_no",
            "applied_at",
            "updated_at",
            "needs",
            "supplier_answer",
            "supplier_note",
            "supplier_answered_at",
            "supplier_evidence",
        ]
        read_only_fields = fields

    def get_needs(self, after_sale) -> str:
        return service.needs(after_sale)

    @extend_schema_field(EvidenceSerializer(many=True))
    def get_supplier_evidence(self, after_sale):
        return EvidenceSerializer(after_sale.supplier_evidence or [], many=True).data


@extend_schema_serializer(component_name="SupplierAfterSaleDetail")
class AfterSaleDetailSerializer(AfterSaleSerializer):
    lines = serializers.SerializerMethodField()
    receiver = serializers.SerializerMethodField()
    buyer_evidence = serializers.SerializerMethodField()
    timeline = serializers.SerializerMethodField()

    class Meta(AfterSaleSerializer.Meta):
        fields = [*AfterSaleSerializer.Meta.fields, "lines", "receiver", "buyer_evidence", "timeline"]
        read_only_fields = fields

    @extend_schema_field(LineSerializer(many=True))
    def get_lines(self, after_sale):
        return LineSerializer(service.lines(after_sale), many=True).data

    @extend_schema_field(ReceiverSerializer(allow_null=True))
    def get_receiver(self, after_sale):
        """Masks only (a plain receiver is never in the API)."""
        order = after_sale.order
        if order is None:
            return None
        return {
            "name": order.receiver_name_mask,
            "phone": order.receiver_phone_mask,
            "address": order.receiver_address_mask,
            "province": order.province,
            "city": order.city,
            "district": order.district,
        }

    def get_buyer_evidence(self, after_sale) -> list[str]:
        return [
            u
            for u in (after_sale.evidence or [])
            if isinstance(u, str) and u.startswith(("https://", "http://"))
        ]

    @extend_schema_field(EventSerializer(many=True))
    def get_timeline(self, after_sale):
        return EventSerializer(service.timeline(after_sale), many=True).data


@extend_schema_serializer(component_name="SupplierAfterSaleCount")
class CountSerializer(serializers.Serializer):
    line = serializers.IntegerField(min_value=1, max_value=api.MAX_BIGINT, help_text="An after-sale line id.")
    good = serializers.IntegerField(min_value=0, max_value=100_000)
    defective = serializers.IntegerField(min_value=0, max_value=100_000)


@extend_schema_serializer(component_name="SupplierAfterSaleAnswer")
class AnswerSerializer(serializers.Serializer):
    answer = serializers.ChoiceField(choices=ANSWERS)
    note = api.StrictCharField(max_length=1000, required=False, allow_blank=True, default="")
    counts = CountSerializer(
        many=True, required=False, help_text="For `received`: pieces good / defective per line."
    )


class AfterSaleFilterSet(api.FilterSet):
    queue = django_filters.ChoiceFilter(
        choices=[(v, v) for v in service.TAB_VALUES],
        method="filter_queue",
        help_text="`waiting`: needs your answer; `answered`; `all`.",
    )
    answered = django_filters.BooleanFilter(method="filter_answered")
    updated_since = inputs.IsoDateTimeFilter(
        field_name="updated_at", lookup_expr="gte", help_text="Changed at or after (ISO 8601)."
    )

    class Meta:
        model = AfterSale
        fields: list[str] = []

    def filter_queue(self, queryset, name, value):
        return service.tab(queryset, value)

    def filter_answered(self, queryset, name, value):
        if value is None:
            return queryset
        return queryset.exclude(supplier_answer="") if value else queryset.filter(supplier_answer="")


@extend_schema_view(
    list=extend_schema(summary="After-sales on your dispatches, newest first (filters: queue, answered)"),
    retrieve=extend_schema(summary="One after-sale on your dispatches"),
)
class SupplierAfterSaleViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """After-sales (售后) on a supplier's dispatches and the supplier's answers."""

    permission_classes = [TenantStaffAPIPermission, SupplierScopePermission]
    read_capability = CAPABILITY
    write_capability = CAPABILITY
    filterset_class = AfterSaleFilterSet
    pagination_class = api.KeysetPagination
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        scope = getattr(self.request, "scope", None)
        if scope is None:  # the schema generator
            return AfterSale.objects.none()
        return service.of_supplier(scope.supplier).select_related("store", "dispatch", "order")

    def get_serializer_class(self):
        return AfterSaleSerializer if self.action == "list" else AfterSaleDetailSerializer

    def get_object(self):
        pk = self.kwargs.get("pk", "")
        if not str(pk).isdigit() or int(pk) > api.MAX_BIGINT:
            raise NotFound()
        found = self.get_queryset().filter(pk=int(pk)).first()
        if found is None:
            raise NotFound()
        return found

    @extend_schema(
        request=AnswerSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={200: AfterSaleDetailSerializer, 400: REFUSED, **IDEMPOTENCY_ERRORS},
        summary="Answer an after-sale: intercepted / not intercepted / return received / refused",
    )
    @action(detail=True, methods=["post"])
    def answer(self, request, pk=None):
        def run():
            after_sale = self.get_object()
            serializer = AnswerSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
            counts = {c["line"]: (c["good"], c["defective"]) for c in data.get("counts") or []}
            try:
                service.answer(
                    after_sale,
                    supplier=request.scope.supplier,
                    answer=data["answer"],
                    note=data.get("note", ""),
                    counts=counts,
                    actor=request.user,
                )
            except AfterSale.DoesNotExist:
                raise NotFound() from None
            except DjangoValidationError as exc:
                return error_response(code="invalid", message=" ".join(exc.messages))
            return Response(AfterSaleDetailSerializer(self.get_queryset().get(pk=after_sale.pk)).data)

        return idempotent(request, run)


router = SimpleRouter()
router.register("", SupplierAfterSaleViewSet, basename="supplier-after-sale")

urlpatterns = [path("", include(router.urls))]

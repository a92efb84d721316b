"""Merchant API of dispatches (代发单): list (status tab, supplier, shop, overdue, order id) and
one dispatch with its lines, parcels and SLA. Read-only for staff (dashboard.view); suppliers
use their own API under /api/v1/supplier/ (the portal). Reads through ``suppliers.selectors``."""

from __future__ import annotations

import django_filters
from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, viewsets

from ecbao import api
from logistics.models import Parcel
from suppliers import selectors
from suppliers.models import Dispatch, DispatchLine


class DispatchLineSerializer(serializers.ModelSerializer):
    order_line = serializers.IntegerField(source="order_line_id")
    platform_line_id = serializers.CharField(source="order_line.platform_line_id")
    merchant_code = serializers.SerializerMethodField()
    title = serializers.CharField(source="order_line.title")
    spec = serializers.CharField(source="order_line.spec")

    class Meta:
        model = DispatchLine
        fields = [
            "id",
            "order_line",
            "platform_line_id",
            "sku",
            "merchant_code",
            "supplier_code",
            "title",
            "spec",
            "quantity",
            "shipped_quantity",
            "unit_cost_fen",
            "paid_fen",
            "delivery_deadline",
        ]

    def get_merchant_code(self, row) -> str:
        return row.sku.merchant_code if row.sku else row.order_line.merchant_code


class DispatchSerializer(serializers.ModelSerializer):
    supplier_code = serializers.CharField(source="supplier.code")
    supplier_name = serializers.CharField(source="supplier.name")
    store_name = serializers.CharField(source="store.name")
    order_ids = serializers.ListField(child=serializers.CharField(), help_text="Platform order ids.")
    overdue = serializers.SerializerMethodField(help_text="Not shipped and past ship_by.")
    seconds_left = serializers.SerializerMethodField(help_text="ship_by − now in seconds (negative: past).")
    lines = DispatchLineSerializer(many=True)

    class Meta:
        model = Dispatch
        fields = [
            "id",
            "supplier",
            "supplier_code",
            "supplier_name",
            "store",
            "store_name",
            "fulfilment",
            "order_ids",
            "status",
            "ship_by",
            "overdue",
            "seconds_left",
            "goods_cost_fen",
            "freight_fen",
            "amount_fen",
            "sent_at",
            "acknowledged_at",
            "shipped_at",
            "cancelled_at",
            "cancel_reason",
            "cancel_confirmed_at",
            "intercepted",
            "native",
            "native_state",
            "notified_at",
            "notify_error",
            "lines",
        ]

    def get_overdue(self, dispatch) -> bool:
        return selectors.sla(dispatch).overdue

    @extend_schema_field({"type": "integer", "nullable": True})
    def get_seconds_left(self, dispatch):
        return selectors.sla(dispatch).seconds_left


class ParcelBriefSerializer(serializers.ModelSerializer):
    lines = serializers.SerializerMethodField()

    class Meta:
        model = Parcel
        fields = [
            "id",
            "seq",
            "count",
            "status",
            "carrier",
            "tracking_no",
            "shipped_at",
            "tracking_status",
            "lines",
        ]

    @extend_schema_field({"type": "object", "additionalProperties": {"type": "integer"}})
    def get_lines(self, parcel) -> dict:
        return {str(pl.order_line_id): pl.quantity for pl in parcel.lines.all()}


class DispatchDetailSerializer(DispatchSerializer):
    parcels = serializers.SerializerMethodField()

    class Meta(DispatchSerializer.Meta):
        fields = [*DispatchSerializer.Meta.fields, "parcels"]

    @extend_schema_field(ParcelBriefSerializer(many=True))
    def get_parcels(self, dispatch):
        parcels = Parcel.objects.filter(fulfilment_id=dispatch.fulfilment_id).prefetch_related("lines")
        return ParcelBriefSerializer(parcels.order_by("seq", "id"), many=True).data


class DispatchFilterSet(api.FilterSet):
    tab = django_filters.ChoiceFilter(
        choices=[(key, str(label)) for key, label, _s in selectors.TABS],
        method="filter_tab",
        help_text="Status tab: new (新单), to_ship (待发货), partial, shipped, cancelling, cancelled.",
    )
    status = django_filters.ChoiceFilter(choices=Dispatch.Status.choices)
    supplier = api.IdFilter()
    store = api.IdFilter(help_text="Shop id.")
    overdue = api.BooleanFilter(method="filter_overdue", help_text="Not shipped and past ship_by.")
    order = django_filters.CharFilter(
        method="filter_order",
        max_length=selectors.MAX_SEARCH,
        help_text="Platform order id (or its beginning).",
    )

    class Meta:
        model = Dispatch
        fields: list[str] = []

    def filter_tab(self, queryset, name, value):
        return queryset.filter(status__in=selectors.TAB_STATUSES[value])

    def filter_overdue(self, queryset, name, value):
        return queryset.filter(selectors.overdue_q()) if value else queryset.exclude(selectors.overdue_q())

    def filter_order(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(
            pk__in=Dispatch.objects.filter(
                lines__order_line__order__platform_order_id__startswith=value
            ).values("pk")
        )


@extend_schema_view(
    list=extend_schema(
        summary="Dispatches (代发单), newest first (filter by tab, supplier, shop, overdue, order)"
    ),
    retrieve=extend_schema(summary="One dispatch with its lines, parcels and SLA"),
)
class DispatchViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Dispatches: the lines of one fulfilment routed to one supplier (read-only)."""

    read_capability = "dashboard.view"
    filterset_class = DispatchFilterSet
    pagination_class = api.KeysetPagination

    def get_queryset(self):
        return selectors.dispatches().prefetch_related(
            Prefetch(
                "lines", queryset=DispatchLine.objects.select_related("order_line", "sku").order_by("id")
            )
        )

    def get_serializer_class(self):
        return DispatchDetailSerializer if self.action == "retrieve" else DispatchSerializer

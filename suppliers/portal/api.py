"""The supplier API under /api/v1/supplier/: a supplier's own system pulls its dispatches and
pushes tracking numbers with a supplier user's token (made on the portal's API page).

Same permissions as the portal: the capability ``supplier.portal`` (staff tokens are refused
here, supplier tokens everywhere else) and the scoping base (``request.scope``): another
supplier's dispatch is 404. Writes go through the same services as the portal — tracking →
``logistics.manual.enter_tracking`` → ``logistics.shipping`` → the write-back outbox — and honour
an ``Idempotency-Key`` header like the shipping API (``logistics.api.idempotent``).
"""

from __future__ import annotations

import django_filters
from django.urls import include, path
from drf_spectacular.utils import (
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
    extend_schema_view,
)
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from ecbao import api, inputs
from logistics.api import IDEMPOTENCY_PARAMETER, idempotent
from suppliers.models import Dispatch, DispatchLine
from suppliers.portal import queries, services
from suppliers.portal.scope import CAPABILITY, SupplierScopePermission
from tenants.accounts.permissions import TenantStaffAPIPermission


@extend_schema_serializer(component_name="SupplierDispatchLine")
class DispatchLineSerializer(serializers.ModelSerializer):
    order_line = serializers.IntegerField(source="order_line_id", read_only=True)
    platform_order_id = serializers.CharField(source="order_line.order.platform_order_id", read_only=True)
    merchant_code = serializers.CharField(source="order_line.merchant_code", read_only=True)
    title = serializers.CharField(source="order_line.title", read_only=True)
    spec = serializers.CharField(source="order_line.spec", read_only=True)
    refund_state = serializers.CharField(source="order_line.refund_state", read_only=True)

    class Meta:
        model = DispatchLine
        fields = [
            "order_line",
            "platform_order_id",
            "merchant_code",
            "supplier_code",
            "title",
            "spec",
            "quantity",
            "shipped_quantity",
            "unit_cost_fen",
            "delivery_deadline",
            "refund_state",
        ]
        read_only_fields = fields


@extend_schema_serializer(component_name="SupplierParcelBrief")
class ParcelBriefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    seq = serializers.IntegerField()
    count = serializers.IntegerField()
    status = serializers.CharField()
    carrier = serializers.CharField()
    tracking_no = serializers.CharField()
    shipped_at = serializers.DateTimeField(allow_null=True)


class ReceiverMaskSerializer(serializers.Serializer):
    name = serializers.CharField(source="receiver_name_mask")
    phone = serializers.CharField(source="receiver_phone_mask")
    address = serializers.CharField(source="receiver_address_mask")
    province = serializers.CharField()
    city = serializers.CharField()
    district = serializers.CharField()


@extend_schema_serializer(
    component_name="SupplierDispatch"
)  # the supplier's view; "Dispatch" is the merchant's
class DispatchSerializer(serializers.ModelSerializer):
    store_name = serializers.CharField(source="store.name", read_only=True)
    platform = serializers.CharField(source="store.platform", read_only=True)
    lines = DispatchLineSerializer(many=True, read_only=True)
    parcels = serializers.SerializerMethodField()
    receiver = serializers.SerializerMethodField()

    class Meta:
        model = Dispatch
        fields = [
            "id",
            "status",
            "platform",
            "store_name",
            "ship_by",
            "goods_cost_fen",
            "freight_fen",
            "sent_at",
            "acknowledged_at",
            "shipped_at",
            "cancelled_at",
            "cancel_reason",
            "intercepted",
            "updated_at",
            "receiver",
            "lines",
            "parcels",
        ]
        read_only_fields = fields

    @extend_schema_field(ParcelBriefSerializer(many=True))
    def get_parcels(self, dispatch):
        return ParcelBriefSerializer(list(dispatch.fulfilment.parcels.all()), many=True).data

    def get_receiver(self, dispatch) -> dict:
        """Masks only (a plain receiver is never in the API); none for a platform-native dispatch."""
        if dispatch.native:
            return {}
        lines = list(dispatch.lines.all())
        order = lines[0].order_line.order if lines else None
        return ReceiverMaskSerializer(order).data if order else {}


class DispatchFilterSet(api.FilterSet):
    status = django_filters.ChoiceFilter(choices=Dispatch.Status.choices)
    updated_since = inputs.IsoDateTimeFilter(
        field_name="updated_at", lookup_expr="gte", help_text="Changed at or after (ISO 8601)."
    )

    class Meta:
        model = Dispatch
        fields: list[str] = []


class LineQuantitySerializer(serializers.Serializer):
    order_line = serializers.IntegerField(min_value=1, max_value=api.MAX_BIGINT)
    quantity = serializers.IntegerField(min_value=1, max_value=100_000)


class TrackingSerializer(serializers.Serializer):
    carrier = api.StrictCharField(
        max_length=40, help_text="Carrier key (zto), name (中通快递) or platform code."
    )
    tracking_no = api.StrictCharField(max_length=64)
    lines = LineQuantitySerializer(
        many=True, required=False, help_text="Ship only these lines/quantities (a partial shipment)."
    )


class TrackingResultSerializer(serializers.Serializer):
    dispatch = DispatchSerializer()
    parcel = serializers.IntegerField()
    changed = serializers.BooleanField(help_text="False: the number was already on the parcel.")
    shipped = serializers.BooleanField()
    ship_error = serializers.CharField()


class ConfirmCancelSerializer(serializers.Serializer):
    intercepted = api.StrictBooleanField(help_text="True: the parcel was stopped before it left.")


@extend_schema_view(
    list=extend_schema(summary="Your dispatches, newest first (filters: status, updated_since)"),
    retrieve=extend_schema(summary="One of your dispatches"),
)
class DispatchViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """A supplier's dispatches (代发单): lines, masked receiver, parcels and tracking numbers."""

    permission_classes = [TenantStaffAPIPermission, SupplierScopePermission]
    read_capability = CAPABILITY
    write_capability = CAPABILITY
    serializer_class = DispatchSerializer
    filterset_class = DispatchFilterSet
    pagination_class = api.KeysetPagination

    def get_queryset(self):
        scope = getattr(self.request, "scope", None)
        if scope is None:  # the schema generator
            return Dispatch.objects.none()
        return queries.detail_queryset(scope.dispatches())

    def _dispatch(self, pk) -> Dispatch:
        return self.request.scope.dispatch(pk)

    def _answer(self, dispatch: Dispatch) -> dict:
        return DispatchSerializer(queries.detail_queryset(Dispatch.objects.filter(pk=dispatch.pk)).get()).data

    @extend_schema(
        request=None,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses=DispatchSerializer,
        summary="Acknowledge a new dispatch (接单)",
    )
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        def run():
            dispatch = self._dispatch(pk)
            services.acknowledge(scope=request.scope, dispatch_ids=[dispatch.pk], actor=request.user)
            return Response(self._answer(dispatch))

        return idempotent(request, run)

    @extend_schema(
        request=TrackingSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses=TrackingResultSerializer,
        summary="Push a tracking number: the dispatch (or the given lines) ships",
    )
    @action(detail=True, methods=["post"])
    def tracking(self, request, pk=None):
        def run():
            dispatch = self._dispatch(pk)
            serializer = TrackingSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
            lines = None
            if data.get("lines"):
                lines = {}
                for item in data["lines"]:
                    lines[item["order_line"]] = lines.get(item["order_line"], 0) + item["quantity"]
            entry = services.enter_tracking(
                scope=request.scope,
                dispatch=dispatch,
                carrier=data["carrier"],
                tracking_no=data["tracking_no"],
                actor=request.user,
                lines=lines,
            )
            return Response(
                {
                    "dispatch": self._answer(dispatch),
                    "parcel": entry.parcel.pk,
                    "changed": entry.changed,
                    "shipped": entry.shipped,
                    "ship_error": entry.ship_error,
                }
            )

        return idempotent(request, run)

    @extend_schema(
        request=ConfirmCancelSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses=DispatchSerializer,
        summary="Answer a cancellation: intercepted or not",
    )
    @action(detail=True, methods=["post"], url_path="confirm-cancel")
    def confirm_cancel(self, request, pk=None):
        def run():
            dispatch = self._dispatch(pk)
            serializer = ConfirmCancelSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            services.confirm_cancel(
                scope=request.scope,
                dispatch=dispatch,
                intercepted=serializer.validated_data["intercepted"],
                actor=request.user,
            )
            return Response(self._answer(dispatch))

        return idempotent(request, run)


router = SimpleRouter()
router.register("dispatches", DispatchViewSet, basename="supplier-dispatch")

urlpatterns = [path("", include(router.urls))]

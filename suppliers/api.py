"""Suppliers API (staff): suppliers, the SKUs they supply, and the stock they report.

Thin: writes go through ``suppliers.services``. Reads need ``dashboard.view``, writes
``orders.manage`` (supplier users have neither: their API is ``/api/v1/supplier/``). Money in
integer fen. Every write is repeat-safe: a binding is set (create = upsert), a stock report is a
count (the same count twice changes nothing), deleting a supplier with history pauses it; a POST
may also carry an ``Idempotency-Key`` (the first answer is kept, see ``logistics.api``).
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, F, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response

from ecbao import api
from ecbao.api import error_response
from inventory.api import ERROR_ENVELOPE
from inventory.models import Sku, StockLevel
from logistics.api import IDEMPOTENCY_ERRORS, IDEMPOTENCY_PARAMETER, REFUSED, StrictIntegerField, idempotent
from suppliers import services
from suppliers.models import Supplier, SupplierSku

MAX_STOCK_ITEMS = 1000
WRITE = "orders.manage"


# --- suppliers -----------------------------------------------------------------------------------


@extend_schema_field({"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$", "example": "16:00"})
class CutoffField(serializers.TimeField):
    """Wall time in Asia/Shanghai as ``HH:MM``."""

    def __init__(self, **kwargs) -> None:
        super().__init__(format="%H:%M", input_formats=["%H:%M"], **kwargs)


class SupplierSerializer(api.ModelSerializer):
    cutoff = CutoffField(required=False, allow_null=True, help_text="Cut-off time (Asia/Shanghai), HH:MM.")
    sku_count = serializers.IntegerField(read_only=True)
    user_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Supplier
        fields = [
            "id",
            "code",
            "name",
            *services.SUPPLIER_FIELDS,
            "warehouse",
            "sku_count",
            "user_count",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "warehouse", "sku_count", "user_count", "created_at", "updated_at"]
        extra_kwargs = {
            "webhook_secret": {
                "write_only": True,
                "help_text": "HMAC-SHA256 key of the webhook (never read back).",
            },
            "code": {
                "help_text": "Unique; cannot be changed after creation.",
                "validators": [],
                "min_length": 1,
            },
            "name": {"min_length": 1},
            "daily_capacity": {"min_value": 1},
        }

    def validate_code(self, value: str) -> str:
        if self.instance is not None and value != self.instance.code:
            raise serializers.ValidationError(_("The supplier code cannot be changed."))
        return value.strip()


def _suppliers():
    users = (
        get_user_model()
        .objects.filter(supplier_id=OuterRef("pk"), is_active=True)
        .order_by()
        .values("supplier_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Supplier.objects.annotate(
        sku_count=Count("skus", distinct=True),
        user_count=Coalesce(Subquery(users, output_field=IntegerField()), Value(0)),
    )


class SupplierFilter(api.FilterSet):
    class Meta:
        model = Supplier
        fields = ["status", "code", "settlement"]


class SupplierViewSet(viewsets.ModelViewSet):
    """Dropship suppliers. Creating one makes its stock warehouse (kind SUPPLIER). DELETE removes
    a supplier that never had a dispatch, a rule or stock movements; otherwise it is paused
    (answer 200 with ``status`` paused) and its history stays."""

    serializer_class = SupplierSerializer
    filterset_class = SupplierFilter
    write_capability = WRITE

    def get_queryset(self):
        return _suppliers()

    def _answer(self, supplier: Supplier, http_status: int) -> Response:
        return Response(self.get_serializer(_suppliers().get(pk=supplier.pk)).data, status=http_status)

    @extend_schema(
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: SupplierSerializer, 400: REFUSED, **IDEMPOTENCY_ERRORS},
    )
    def create(self, request, *args, **kwargs):
        def run():
            serializer = self.get_serializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = dict(serializer.validated_data)
            supplier = services.create_supplier(name=data.pop("name"), code=data.pop("code"), **data)
            return self._answer(supplier, status.HTTP_201_CREATED)

        return idempotent(request, run)

    def update(self, request, *args, **kwargs):
        supplier = self.get_object()
        serializer = self.get_serializer(supplier, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        data.pop("code", None)
        supplier = services.update_supplier(supplier=supplier, **data)
        return self._answer(supplier, status.HTTP_200_OK)

    @extend_schema(
        responses={
            204: OpenApiResponse(description="Deleted"),
            200: OpenApiResponse(SupplierSerializer, description="It has history: paused instead"),
        }
    )
    def destroy(self, request, *args, **kwargs):
        supplier = self.get_object()
        if services.remove_supplier(supplier=supplier) == "deleted":
            return Response(status=status.HTTP_204_NO_CONTENT)
        return self._answer(supplier, status.HTTP_200_OK)


# --- supplier SKUs -------------------------------------------------------------------------------


def _levels(field: str):
    return Subquery(
        StockLevel.objects.filter(sku=OuterRef("sku"), warehouse=OuterRef("supplier__warehouse")).values(
            field
        )[:1]
    )


def _bindings():
    return (
        SupplierSku.objects.select_related("sku", "supplier")
        .annotate(
            on_hand=Coalesce(_levels("on_hand"), Value(0)), reserved=Coalesce(_levels("reserved"), Value(0))
        )
        .annotate(available=F("on_hand") - F("reserved"))
    )


class SupplierSkuSerializer(api.ModelSerializer):
    supplier = serializers.PrimaryKeyRelatedField(queryset=Supplier.objects.all())
    sku = serializers.PrimaryKeyRelatedField(queryset=Sku.objects.all())
    merchant_code = serializers.CharField(source="sku.merchant_code", read_only=True)
    supplier_name = serializers.CharField(source="supplier.name", read_only=True)
    cost_fen = StrictIntegerField(min_value=0, max_value=10**12)
    freight_fen = StrictIntegerField(min_value=0, max_value=10**12, required=False, default=0)
    priority = StrictIntegerField(min_value=0, max_value=1_000_000, required=False, default=100)
    on_hand = serializers.IntegerField(read_only=True, help_text="The supplier's reported stock.")
    reserved = serializers.IntegerField(read_only=True)
    available = serializers.IntegerField(read_only=True)

    class Meta:
        model = SupplierSku
        fields = [
            "id",
            "supplier",
            "supplier_name",
            "sku",
            "merchant_code",
            "supplier_code",
            "cost_fen",
            "freight",
            "freight_fen",
            "priority",
            "is_active",
            "on_hand",
            "reserved",
            "available",
            "updated_at",
        ]
        read_only_fields = ["id", "updated_at"]
        validators = []  # (supplier, sku) is unique: POST sets the binding, whether new or not


class SupplierSkuFilter(api.FilterSet):
    class Meta:
        model = SupplierSku
        fields = ["supplier", "sku", "is_active"]


class SupplierSkuViewSet(viewsets.ModelViewSet):
    """The SKUs each supplier supplies, at its cost (fen) and freight rule, with its stock.
    POST sets a binding (201 new, 200 when it existed: repeat-safe); PATCH/PUT change one
    (supplier and SKU stay); DELETE removes it (its stock at the supplier is counted out; refused
    while orders hold stock there)."""

    serializer_class = SupplierSkuSerializer
    filterset_class = SupplierSkuFilter
    write_capability = WRITE

    def get_queryset(self):
        return _bindings()

    def _save(self, serializer, *, supplier, sku) -> tuple[SupplierSku, bool]:
        data = serializer.validated_data
        existed = SupplierSku.objects.filter(supplier=supplier, sku=sku).exists()
        current = SupplierSku.objects.filter(supplier=supplier, sku=sku).first()
        values = {
            name: data.get(name, getattr(current, name) if current else serializer.fields[name].default)
            for name in ("supplier_code", "cost_fen", "freight", "freight_fen", "priority", "is_active")
        }
        values = {k: v for k, v in values.items() if v is not serializers.empty}
        item = services.set_supplier_sku(supplier=supplier, sku=sku, **values)
        return _bindings().get(pk=item.pk), existed

    @extend_schema(
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={
            200: SupplierSkuSerializer,
            201: SupplierSkuSerializer,
            400: REFUSED,
            **IDEMPOTENCY_ERRORS,
        },
    )
    def create(self, request, *args, **kwargs):
        def run():
            serializer = self.get_serializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            item, existed = self._save(
                serializer,
                supplier=serializer.validated_data["supplier"],
                sku=serializer.validated_data["sku"],
            )
            code = status.HTTP_200_OK if existed else status.HTTP_201_CREATED
            return Response(self.get_serializer(item).data, status=code)

        return idempotent(request, run)

    def update(self, request, *args, **kwargs):
        item = self.get_object()
        serializer = self.get_serializer(item, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if data.get("supplier", item.supplier) != item.supplier or data.get("sku", item.sku) != item.sku:
            return error_response(
                code="invalid",
                message=_("A binding's supplier and SKU cannot change; delete it and add another."),
            )
        saved, _existed = self._save(serializer, supplier=item.supplier, sku=item.sku)
        return Response(self.get_serializer(saved).data)

    def destroy(self, request, *args, **kwargs):
        item = self.get_object()
        services.remove_supplier_sku(supplier=item.supplier, sku=item.sku, user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- supplier stock ------------------------------------------------------------------------------


class StockItemSerializer(serializers.Serializer):
    merchant_code = api.StrictCharField(max_length=64, required=False, allow_blank=True)
    supplier_code = api.StrictCharField(max_length=64, required=False, allow_blank=True)
    on_hand = StrictIntegerField(min_value=0, max_value=10**9)

    def validate(self, attrs):
        if not (attrs.get("merchant_code") or attrs.get("supplier_code")):
            raise serializers.ValidationError(_("Enter the merchant code or the supplier code."))
        return attrs


class StockReportSerializer(serializers.Serializer):
    supplier = serializers.PrimaryKeyRelatedField(queryset=Supplier.objects.all())
    items = serializers.ListField(child=StockItemSerializer(), min_length=1, max_length=MAX_STOCK_ITEMS)


class SupplierStockViewSet(viewsets.GenericViewSet, mixins.ListModelMixin):
    """A supplier's stock: GET lists its SKUs' on-hand / reserved / available (filter
    ``supplier``); POST reports counts ({supplier, items: [{merchant_code | supplier_code,
    on_hand}]}) — all items or none: a bad item answers 400 with ``details.items`` by index and
    nothing is written. A count equal to the stock changes nothing, so a repeat is harmless."""

    serializer_class = SupplierSkuSerializer
    filterset_class = SupplierSkuFilter
    write_capability = WRITE

    def get_queryset(self):
        return _bindings()

    def get_serializer_class(self):
        return StockReportSerializer if self.request.method == "POST" else SupplierSkuSerializer

    @extend_schema(
        request=StockReportSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={
            200: inline_serializer(
                name="SupplierStockResult",
                fields={"changed": serializers.IntegerField(), "unchanged": serializers.IntegerField()},
            ),
            400: OpenApiResponse(
                ERROR_ENVELOPE, description="Invalid items (details.items by index); nothing written"
            ),
            **IDEMPOTENCY_ERRORS,
        },
    )
    def create(self, request, *args, **kwargs):
        return idempotent(request, lambda: self._report(request))

    def _report(self, request) -> Response:
        serializer = StockReportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        supplier = serializer.validated_data["supplier"]
        items = serializer.validated_data["items"]
        bindings = list(SupplierSku.objects.filter(supplier=supplier).select_related("sku"))
        by_merchant = {b.sku.merchant_code: b for b in bindings}
        by_supplier = {b.supplier_code: b for b in bindings if b.supplier_code}
        errors: dict[str, list[str]] = {}
        resolved: list[tuple[SupplierSku, int]] = []
        seen: set[int] = set()
        for index, item in enumerate(items):
            code, theirs = item.get("merchant_code", "").strip(), item.get("supplier_code", "").strip()
            binding = by_merchant.get(code) if code else by_supplier.get(theirs)
            if binding is None:
                errors[str(index)] = [
                    _("This supplier does not supply %(code)s.") % {"code": code}
                    if code
                    else _("No SKU of this supplier has the supplier code %(code)s.") % {"code": theirs}
                ]
            elif binding.sku_id in seen:
                errors[str(index)] = [_("This SKU is listed twice.")]
            else:
                seen.add(binding.sku_id)
                resolved.append((binding, item["on_hand"]))
        if errors:
            return self._refused(errors)
        changed = 0
        try:
            with transaction.atomic():
                for index, (binding, on_hand) in enumerate(resolved):
                    try:
                        changed += services.report_stock(
                            supplier=supplier, sku=binding.sku, on_hand=on_hand, user=request.user
                        )
                    except ValidationError as exc:
                        errors[str(index)] = exc.messages
                        raise
        except ValidationError:
            return self._refused(errors)
        return Response({"changed": changed, "unchanged": len(resolved) - changed})

    @staticmethod
    def _refused(errors: dict) -> Response:
        response = error_response(code="invalid", message=_("Nothing was saved; see details.items."))
        response.data["error"]["details"] = {"items": errors}
        return response

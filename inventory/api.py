"""Inventory API: SKUs, stock levels, the ledger, adjustments and channel listings (thin:
reads through ``selectors``, writes through services and sync)."""

from __future__ import annotations

import django_filters
from django.db.models import Prefetch
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from channels.models import Store
from ecbao import api
from ecbao.api import error_response
from inventory import publishing, selectors, services, sync, xlsx
from inventory.models import ComboComponent, Goods, Listing, Sku, StockLedgerEntry, StockLevel, Warehouse

ERROR_ENVELOPE = inline_serializer(
    name="ErrorEnvelope",
    fields={
        "error": inline_serializer(
            name="Error",
            fields={
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "details": serializers.JSONField(allow_null=True),
            },
        )
    },
)


# --- SKUs ------------------------------------------------------------------------------------------


class ComboComponentSerializer(serializers.ModelSerializer):
    merchant_code = serializers.CharField(source="component.merchant_code", read_only=True)

    class Meta:
        model = ComboComponent
        fields = ["component", "merchant_code", "quantity"]
        read_only_fields = fields


class SkuSerializer(api.ModelSerializer):
    goods_name = serializers.CharField(source="goods.name", read_only=True)
    components = ComboComponentSerializer(many=True, read_only=True)
    on_hand = serializers.IntegerField(read_only=True, help_text="Units in the warehouses (all of them).")
    reserved = serializers.IntegerField(read_only=True, help_text="Units held for orders.")
    available = serializers.IntegerField(
        read_only=True,
        help_text="on_hand − reserved; for a combination, the complete sets its components allow.",
    )

    class Meta:
        model = Sku
        fields = [
            "id",
            "goods",
            "goods_name",
            "merchant_code",
            "barcode",
            "name",
            "spec",
            "cost_fen",
            "weight_g",
            "image",
            "is_combo",
            "components",
            "is_active",
            "on_hand",
            "reserved",
            "available",
            "created_at",
        ]
        read_only_fields = ["is_combo", "created_at"]
        extra_kwargs = {"cost_fen": {"min_value": 0}}


class SkuFilter(api.FilterSet):
    search = django_filters.CharFilter(
        method="filter_search", label="Merchant code prefix, exact barcode or part of the name"
    )

    class Meta:
        model = Sku
        fields = ["merchant_code", "is_active", "is_combo", "goods"]

    def filter_search(self, queryset, name, value):
        return selectors.search_skus(queryset, value)


class PublishPriceSerializer(serializers.Serializer):
    sku = serializers.IntegerField(min_value=1, max_value=api.MAX_BIGINT)
    price_fen = serializers.IntegerField(min_value=1, max_value=api.MAX_BIGINT)


class PublishSerializer(serializers.Serializer):
    goods = serializers.PrimaryKeyRelatedField(queryset=Goods.objects.all())
    stores = serializers.PrimaryKeyRelatedField(queryset=Store.objects.all(), many=True, allow_empty=False)
    prices = PublishPriceSerializer(many=True, required=False, help_text="Price per SKU id, in fen.")
    markup_percent = serializers.IntegerField(
        min_value=1,
        max_value=100_000,
        required=False,
        help_text="For SKUs without a price: cost × percent / 100.",
    )
    title = serializers.CharField(max_length=200, required=False, allow_blank=True)
    images = serializers.ListField(child=serializers.URLField(), required=False)
    categories = serializers.DictField(
        child=serializers.CharField(), required=False, help_text="Platform leaf category id per store id."
    )


class PublishResultSerializer(serializers.Serializer):
    store_id = serializers.IntegerField()
    store_name = serializers.CharField()
    platform = serializers.CharField()
    ok = serializers.BooleanField()
    platform_product_id = serializers.CharField()
    listing_ids = serializers.ListField(child=serializers.IntegerField())
    error = serializers.CharField()
    outcome_unknown = serializers.BooleanField()
    missing_codes = serializers.ListField(child=serializers.CharField())


class SkuImportSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="An .xlsx workbook in the export layout.")
    confirm = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=64,
        help_text="The preview's fingerprint, or `true` to apply whatever the file changes.",
    )


class SkuImportResultSerializer(serializers.Serializer):
    applied = serializers.BooleanField()
    confirmation_required = serializers.BooleanField()
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    preview = serializers.JSONField(
        allow_null=True, help_text="fingerprint, new SKUs, and per changed SKU its fields old → new."
    )


class SkuViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Merchant SKUs with their stock. Combination structure is edited through the xlsx import."""

    serializer_class = SkuSerializer
    filterset_class = SkuFilter
    write_capability = "inventory.manage"

    def get_queryset(self):
        return selectors.sku_queryset().prefetch_related(
            Prefetch("components", queryset=ComboComponent.objects.select_related("component"))
        )

    def _annotated(self, sku: Sku, http_status: int) -> Response:
        return Response(self.get_serializer(self.get_queryset().get(pk=sku.pk)).data, status=http_status)

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self._annotated(serializer.save(), status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        serializer = self.get_serializer(
            self.get_object(), data=request.data, partial=kwargs.get("partial", False)
        )
        serializer.is_valid(raise_exception=True)
        return self._annotated(serializer.save(), status.HTTP_200_OK)

    @extend_schema(
        request=PublishSerializer,
        responses={
            200: PublishResultSerializer(many=True),
            400: OpenApiResponse(ERROR_ENVELOPE, description="A price or image is missing (code invalid)"),
        },
    )
    @action(detail=False, methods=["post"], serializer_class=PublishSerializer)
    def publish(self, request):
        """Product publishing (商品铺货): create a goods with its SKUs on the chosen shops and
        record the listings; one result per shop (a shop's failure does not stop the others)."""
        serializer = PublishSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            results = publishing.publish_goods(
                goods=data["goods"],
                stores=data["stores"],
                user=request.user,
                prices={p["sku"]: p["price_fen"] for p in data.get("prices", [])},
                markup_percent=data.get("markup_percent"),
                title=data.get("title", ""),
                images=data.get("images") or None,
                categories={
                    int(k): str(v) for k, v in (data.get("categories") or {}).items() if str(k).isdigit()
                },
            )
        except publishing.PublishError as exc:
            return error_response(code="invalid", message=str(exc))
        return Response([r.to_json() for r in results], status=status.HTTP_200_OK)

    @extend_schema(
        request={"multipart/form-data": SkuImportSerializer},
        responses={
            200: SkuImportResultSerializer,
            400: OpenApiResponse(
                ERROR_ENVELOPE, description="Row problems (code invalid, details.rows); nothing imported"
            ),
        },
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="import",
        serializer_class=SkuImportSerializer,
        parser_classes=[MultiPartParser],
    )
    def import_xlsx(self, request):
        """Import SKUs from an xlsx workbook (the export layout). When known SKUs would change,
        nothing is written and the answer holds the preview (``confirmation_required``); send
        the file again with ``confirm`` = the preview's fingerprint (applied only if the file
        still makes exactly those changes) or ``true`` (apply whatever it changes)."""
        serializer = SkuImportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        confirm = serializer.validated_data.get("confirm", "")
        result = xlsx.import_skus(
            serializer.validated_data["file"], confirm=True if confirm == "true" else confirm
        )
        if not result.ok:
            response = error_response(code="invalid", message=_("Nothing was imported; see details.rows."))
            response.data["error"]["details"] = {
                "rows": [{"row": e.row, "column": e.column, "message": e.message} for e in result.errors]
            }
            return response
        return Response(
            {
                "applied": result.applied,
                "confirmation_required": result.needs_confirmation,
                "created": result.created,
                "updated": result.updated,
                "unchanged": result.unchanged,
                "preview": result.preview.to_json() if result.preview else None,
            }
        )


# --- stock levels and ledger ---------------------------------------------------------------------


class StockLevelSerializer(serializers.ModelSerializer):
    merchant_code = serializers.CharField(source="sku.merchant_code", read_only=True)
    warehouse_code = serializers.CharField(source="warehouse.code", read_only=True)
    available = serializers.IntegerField(read_only=True)

    class Meta:
        model = StockLevel
        fields = [
            "id",
            "sku",
            "merchant_code",
            "warehouse",
            "warehouse_code",
            "on_hand",
            "reserved",
            "available",
        ]
        read_only_fields = fields


class StockLevelViewSet(viewsets.ReadOnlyModelViewSet):
    """Balances per SKU and warehouse."""

    serializer_class = StockLevelSerializer
    filterset_fields = ["sku", "warehouse"]

    def get_queryset(self):
        return StockLevel.objects.select_related("sku", "warehouse")


class LedgerEntrySerializer(serializers.ModelSerializer):
    merchant_code = serializers.CharField(source="sku.merchant_code", read_only=True)
    warehouse_code = serializers.CharField(source="warehouse.code", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True, default=None, allow_null=True)

    class Meta:
        model = StockLedgerEntry
        fields = [
            "id",
            "sku",
            "merchant_code",
            "warehouse",
            "warehouse_code",
            "kind",
            "on_hand_delta",
            "reserved_delta",
            "on_hand_after",
            "reserved_after",
            "reason",
            "source_type",
            "source_id",
            "username",
            "created_at",
        ]
        read_only_fields = fields


class LedgerViewSet(viewsets.ReadOnlyModelViewSet):
    """The append-only stock ledger, newest first (keyset pagination)."""

    serializer_class = LedgerEntrySerializer
    filterset_fields = ["sku", "kind", "warehouse"]

    def get_queryset(self):
        return selectors.ledger()


class AdjustmentSerializer(serializers.Serializer):
    sku = serializers.PrimaryKeyRelatedField(queryset=Sku.objects.all())
    delta = serializers.IntegerField(
        min_value=-1_000_000, max_value=1_000_000, help_text="Change of on hand (≠ 0)."
    )
    reason = serializers.CharField(max_length=200)
    warehouse = serializers.PrimaryKeyRelatedField(
        queryset=Warehouse.objects.filter(is_active=True),
        required=False,
        allow_null=True,
        help_text="Default: the default warehouse.",
    )


class AdjustmentViewSet(viewsets.GenericViewSet):
    """Correct on hand (damage, found stock): one ledger row of kind ``adjustment``."""

    serializer_class = AdjustmentSerializer
    write_capability = "inventory.manage"

    @extend_schema(
        request=AdjustmentSerializer,
        responses={
            201: LedgerEntrySerializer,
            400: OpenApiResponse(
                ERROR_ENVELOPE, description="Invalid fields, or the service refused (code invalid)"
            ),
            409: OpenApiResponse(
                ERROR_ENVELOPE, description="On hand would drop below reserved (code insufficient_stock)"
            ),
        },
    )
    def create(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            entry = services.adjust_stock(
                sku=data["sku"],
                delta=data["delta"],
                reason=data["reason"],
                warehouse=data.get("warehouse"),
                user=request.user,
            )
        except services.InsufficientStock as exc:
            return error_response(
                code="insufficient_stock", message=str(exc), http_status=status.HTTP_409_CONFLICT
            )
        except ValueError as exc:
            return error_response(code="invalid", message=str(exc))
        entry = selectors.ledger().get(pk=entry.pk)
        return Response(LedgerEntrySerializer(entry).data, status=status.HTTP_201_CREATED)


# --- listings ------------------------------------------------------------------------------------


class ListingSerializer(serializers.ModelSerializer):
    store_name = serializers.CharField(source="store.name", read_only=True)
    platform = serializers.CharField(source="store.platform", read_only=True)
    merchant_code_of_sku = serializers.CharField(
        source="sku.merchant_code", read_only=True, default=None, allow_null=True
    )

    class Meta:
        model = Listing
        fields = [
            "id",
            "store",
            "store_name",
            "platform",
            "platform_product_id",
            "platform_sku_id",
            "merchant_code",
            "title",
            "spec",
            "sku",
            "merchant_code_of_sku",
            "match",
            "locked",
            "platform_stock",
            "computed_qty",
            "pushed_qty",
            "pushed_at",
            "push_state",
            "push_error",
            "push_attempts",
            "updated_at",
        ]
        read_only_fields = fields


class ListingMatchSerializer(serializers.Serializer):
    sku = serializers.PrimaryKeyRelatedField(
        queryset=Sku.objects.filter(is_active=True),
        allow_null=True,
        help_text="The SKU to map the listing to; null ignores the listing.",
    )


class ListingViewSet(viewsets.ReadOnlyModelViewSet):
    """Platform SKUs of the connected shops, their mapping to merchant SKUs and stock-push state."""

    serializer_class = ListingSerializer
    filterset_fields = ["store", "match", "push_state", "sku", "locked"]
    write_capability = "inventory.manage"

    def get_queryset(self):
        return Listing.objects.select_related("store", "sku").order_by("-id")

    @extend_schema(
        request=ListingMatchSerializer,
        responses={
            200: ListingSerializer,
            400: OpenApiResponse(ERROR_ENVELOPE),
            404: OpenApiResponse(ERROR_ENVELOPE),
        },
    )
    @action(detail=True, methods=["post"])
    def match(self, request, pk=None):
        """Map the listing to a SKU by hand (``{"sku": null}`` ignores it); its stock is pushed soon after."""
        listing = self.get_object()
        serializer = ListingMatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        sync.match_listing(listing=listing, sku=serializer.validated_data["sku"])
        return Response(ListingSerializer(self.get_queryset().get(pk=listing.pk)).data)

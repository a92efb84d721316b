"""Shipping API: parcels (the workbench tabs; one parcel with its lines, waybills, write-backs
and tracking events), waybills (take for parcels as a batch, cancel), labels (a PDF, or a PDF
batch for many), shipments (ship parcels; tracking numbers entered or imported by hand),
shipping batches (progress, the PDF), write-backs (the outbox; retry) and carrier rules.

Thin: reads through the models and selectors, writes through the services (``waybills``,
``printing``, ``shipping``, ``manual``, ``writeback``, ``configuration``). Reads need
dashboard.view, writes shipping.manage. Every POST is safe to repeat — the services are
idempotent (a parcel never gets a second number, never ships twice) — and a POST that starts
a batch or changes something may carry an ``Idempotency-Key`` header: the first answer is kept
for 24 hours and a repeat with the same key gets it again (``Idempotent-Replayed: true``)
instead of a second batch; the same key with another body is refused (422).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re

import django_filters
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Prefetch
from django.http import FileResponse, HttpResponse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from channels import carriers
from ecbao import api
from ecbao.api import error_response
from inventory.api import ERROR_ENVELOPE
from logistics import configuration, manual, selectors
from logistics.models import (
    CarrierRule,
    Parcel,
    ParcelLine,
    ShipBatch,
    TrackingEvent,
    Waybill,
    WaybillAccount,
    WriteBack,
)
from orders.models import Order

logger = logging.getLogger(__name__)

MAX_IDS = 500
INLINE_LABELS = 100  # more labels than this: a PDF batch (POST /labels/batch/)
IDEMPOTENCY_TTL = 24 * 3600


# --- fields --------------------------------------------------------------------------------------------


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer, and only that (DRF's IntegerField also takes "12" and 12.0)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


def _id_field(**kwargs) -> StrictIntegerField:
    return StrictIntegerField(min_value=1, max_value=api.MAX_BIGINT, **kwargs)


def _ids_field(help_text: str) -> serializers.ListField:
    return serializers.ListField(
        child=_id_field(), min_length=1, max_length=MAX_IDS, help_text=f"{help_text} (1–{MAX_IDS})."
    )


class ParcelIdsSerializer(serializers.Serializer):
    parcel_ids = _ids_field("Parcel ids")


class CancelSerializer(ParcelIdsSerializer):
    reason = api.StrictCharField(max_length=200, required=False, allow_blank=True, default="")


class LabelsSerializer(ParcelIdsSerializer):
    size = serializers.ChoiceField(choices=["76x130", "100x180"], default="76x130")


class TakeTabSerializer(serializers.Serializer):
    store = _id_field(required=False, help_text="One shop (its id); absent: every shop.")


class IdsSerializer(serializers.Serializer):
    ids = _ids_field("Write-back ids")


# --- idempotency keys ------------------------------------------------------------------------------------

IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9_.:-]{1,100}$"
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
IDEMPOTENCY_PARAMETER = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
    OpenApiParameter.HEADER,
    required=False,
    description="Repeat-safe POST: a repeat with this key (within 24 h) gets the first answer again "
    "(1 to 100 letters, digits and `_ . : -`).",
)


def idempotent(request, run) -> Response:
    """``run()`` once per ``Idempotency-Key`` (per tenant and user); see the module docstring."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return run()
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        return error_response(
            code="invalid",
            message=_("The Idempotency-Key is 1 to 100 letters, digits and the characters _ . : -"),
        )
    body = json.dumps(request.data, sort_keys=True, default=str) if not request.FILES else ""
    fingerprint = hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()
    slot = (
        "api-idem:" + hashlib.sha256(f"{connection.schema_name}:{request.user.pk}:{key}".encode()).hexdigest()
    )
    if not cache.add(slot, {"fingerprint": fingerprint, "pending": True}, IDEMPOTENCY_TTL):
        kept = cache.get(slot) or {}
        if kept.get("fingerprint") != fingerprint:
            return error_response(
                code="idempotency_key_reused",
                message=_("This Idempotency-Key was used for another request."),
                http_status=status.HTTP_422_UNPROCESSABLE_ENTITY,
            )
        if kept.get("pending"):
            return error_response(
                code="in_progress",
                message=_("A request with this Idempotency-Key is still running."),
                http_status=status.HTTP_409_CONFLICT,
            )
        response = Response(kept["data"], status=kept["status"])
        response["Idempotent-Replayed"] = "true"
        return response
    try:
        response = run()
    except Exception:
        cache.delete(slot)  # nothing was answered: the key may be used again
        raise
    if isinstance(response, Response) and response.status_code < 500:
        cache.set(
            slot,
            {"fingerprint": fingerprint, "status": response.status_code, "data": response.data},
            IDEMPOTENCY_TTL,
        )
    else:
        cache.delete(slot)
    return response


# --- serializers ---------------------------------------------------------------------------------------------


class ParcelLineSerializer(serializers.ModelSerializer):
    order = serializers.IntegerField(source="order_line.order_id", read_only=True)
    platform_order_id = serializers.CharField(source="order_line.order.platform_order_id", read_only=True)
    platform_line_id = serializers.CharField(source="order_line.platform_line_id", read_only=True)
    merchant_code = serializers.CharField(source="order_line.merchant_code", read_only=True)
    title = serializers.CharField(source="order_line.title", read_only=True)

    class Meta:
        model = ParcelLine
        fields = [
            "order_line",
            "order",
            "platform_order_id",
            "platform_line_id",
            "merchant_code",
            "title",
            "quantity",
        ]
        read_only_fields = fields


class ParcelSerializer(serializers.ModelSerializer):
    store_name = serializers.CharField(source="store.name", read_only=True)
    platform = serializers.CharField(source="store.platform", read_only=True)
    status_label = serializers.CharField(source="get_status_display", read_only=True)
    carrier_name = serializers.SerializerMethodField()
    orders = serializers.SerializerMethodField(
        help_text="Platform order ids in the parcel (merged: several)."
    )
    lines = ParcelLineSerializer(many=True, read_only=True)

    class Meta:
        model = Parcel
        fields = [
            "id",
            "store",
            "store_name",
            "platform",
            "fulfilment",
            "seq",
            "count",
            "status",
            "status_label",
            "carrier",
            "carrier_name",
            "carrier_reason",
            "account",
            "tracking_no",
            "manual",
            "weight_g",
            "batch",
            "error",
            "print_count",
            "printed_at",
            "verified_at",
            "shipped_at",
            "tracking_status",
            "tracking_pulled_at",
            "tracking_error",
            "last_event_at",
            "delivered_at",
            "created_at",
            "updated_at",
            "orders",
            "lines",
        ]
        read_only_fields = fields

    def get_carrier_name(self, parcel) -> str:
        return carriers.name_of(parcel.carrier) if parcel.carrier else ""

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_orders(self, parcel):
        return sorted({line.order_line.order.platform_order_id for line in parcel.lines.all()})


class WaybillSerializer(serializers.ModelSerializer):
    class Meta:
        model = Waybill
        fields = [
            "id",
            "parcel",
            "store",
            "account",
            "carrier",
            "platform_carrier_code",
            "tracking_no",
            "platform_waybill_id",
            "parent",
            "sort_code",
            "short_address",
            "package_center",
            "status",
            "attempts",
            "last_error",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class WriteBackSerializer(serializers.ModelSerializer):
    platform_order_id = serializers.CharField(source="order.platform_order_id", read_only=True)
    store = serializers.IntegerField(source="order.store_id", read_only=True)
    lines = serializers.JSONField(
        read_only=True, help_text="[[platform line id, quantity], …]; [] = whole order."
    )

    class Meta:
        model = WriteBack
        fields = [
            "id",
            "parcel",
            "order",
            "platform_order_id",
            "store",
            "lines",
            "carrier_code",
            "tracking_no",
            "status",
            "attempts",
            "next_attempt_at",
            "last_error",
            "accepted_at",
            "created_at",
        ]
        read_only_fields = fields


class TrackingEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = TrackingEvent
        fields = ["id", "occurred_at", "status", "description", "location", "source"]
        read_only_fields = fields


class ParcelDetailSerializer(ParcelSerializer):
    waybills = WaybillSerializer(many=True, read_only=True)
    write_backs = WriteBackSerializer(many=True, read_only=True)
    events = TrackingEventSerializer(many=True, read_only=True)

    class Meta(ParcelSerializer.Meta):
        fields = [*ParcelSerializer.Meta.fields, "waybills", "write_backs", "events"]
        read_only_fields = fields


class ShipBatchSerializer(serializers.ModelSerializer):
    has_file = serializers.SerializerMethodField(help_text="A PDF is ready at …/file/.")
    report = serializers.SerializerMethodField(
        help_text="Tracking imports: rows, entered, unchanged, shipped, error_count, errors (row, column, message)."
    )

    class Meta:
        model = ShipBatch
        fields = [
            "id",
            "kind",
            "status",
            "total",
            "done",
            "failed",
            "error",
            "created_by",
            "created_at",
            "finished_at",
            "has_file",
            "report",
        ]
        read_only_fields = fields

    def get_has_file(self, batch) -> bool:
        return bool(batch.result_file)

    @extend_schema_field(serializers.JSONField(allow_null=True))
    def get_report(self, batch):
        return batch.params.get("report") if batch.kind == ShipBatch.Kind.IMPORT_TRACKING else None


class ShipResultSerializer(serializers.Serializer):
    shipped = serializers.ListField(child=serializers.IntegerField(), help_text="Parcels shipped now.")
    already = serializers.ListField(
        child=serializers.IntegerField(), help_text="Parcels that had shipped before."
    )
    errors = serializers.ListField(
        child=serializers.DictField(), help_text="[{parcel, error}] for parcels that did not ship."
    )
    write_backs = serializers.ListField(child=serializers.IntegerField())


class ManualEntrySerializer(serializers.Serializer):
    order = _id_field(required=False, help_text="The order (its id); or give `parcel`.")
    parcel = _id_field(required=False, help_text="The parcel (its id); or give `order`.")
    carrier = api.StrictCharField(
        max_length=40, help_text="Carrier key (zto), name (中通快递) or platform code."
    )
    tracking_no = api.StrictCharField(max_length=64)

    def validate(self, attrs):
        if ("order" in attrs) == ("parcel" in attrs):
            raise serializers.ValidationError(_("Give either an order or a parcel."))
        return attrs


class ManualEntryResultSerializer(serializers.Serializer):
    parcel = ParcelSerializer()
    changed = serializers.BooleanField(help_text="False: the number was already on the parcel.")
    shipped = serializers.BooleanField()
    ship_error = serializers.CharField()


class TrackingImportSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="An .xlsx workbook: platform order no., carrier, tracking number.")


class ItemResultSerializer(serializers.Serializer):
    parcel = serializers.IntegerField()
    ok = serializers.BooleanField()
    error = serializers.CharField()


class CarrierRuleSerializer(api.ModelSerializer):
    store_ids = serializers.ListField(
        child=_id_field(), max_length=200, required=False, help_text="Shops (empty: every shop)."
    )
    provinces = serializers.ListField(
        child=api.StrictCharField(max_length=40),
        max_length=40,
        required=False,
        help_text="Receiver provinces (浙江 or 浙江省; empty: anywhere).",
    )
    merchant_codes = serializers.ListField(
        child=api.StrictCharField(max_length=64), max_length=500, required=False
    )
    carrier = serializers.ChoiceField(choices=carriers.choices())
    priority = StrictIntegerField(min_value=0, max_value=configuration.MAX_PRIORITY, required=False)
    min_weight_g = StrictIntegerField(
        min_value=0, max_value=configuration.MAX_WEIGHT_G, required=False, allow_null=True
    )
    max_weight_g = StrictIntegerField(
        min_value=0, max_value=configuration.MAX_WEIGHT_G, required=False, allow_null=True
    )
    account = serializers.PrimaryKeyRelatedField(
        queryset=WaybillAccount.objects.all(), required=False, allow_null=True
    )

    class Meta:
        model = CarrierRule
        fields = [
            "id",
            "name",
            "priority",
            "enabled",
            "store_ids",
            "warehouse",
            "provinces",
            "min_weight_g",
            "max_weight_g",
            "merchant_codes",
            "carrier",
            "account",
            "updated_at",
        ]
        read_only_fields = ["id", "updated_at"]


# --- filters ---------------------------------------------------------------------------------------------


class ParcelFilterSet(api.FilterSet):
    tab = django_filters.ChoiceFilter(
        choices=[(value, str(label)) for value, label, _states in selectors.TABS],
        method="filter_tab",
        help_text="A workbench tab: to_print (待打单), to_ship (待发货), shipped (已发货).",
    )
    status = django_filters.ChoiceFilter(choices=Parcel.Status.choices)
    store = api.IdFilter(help_text="Shop id.")
    order = api.IdFilter(method="filter_order", help_text="Parcels carrying this order (id).")
    tracking_no = django_filters.CharFilter()
    manual = api.BooleanFilter()

    class Meta:
        model = Parcel
        fields: list[str] = []

    def filter_tab(self, queryset, name, value):
        return queryset.filter(pk__in=selectors.tab_parcels(value).values("pk"))

    def filter_order(self, queryset, name, value):
        return queryset.filter(lines__order_line__order_id=value).distinct()


class WaybillFilterSet(api.FilterSet):
    parcel = api.IdFilter()
    status = django_filters.ChoiceFilter(choices=Waybill.Status.choices)
    tracking_no = django_filters.CharFilter()

    class Meta:
        model = Waybill
        fields: list[str] = []


class WriteBackFilterSet(api.FilterSet):
    status = django_filters.ChoiceFilter(choices=WriteBack.Status.choices)
    order = api.IdFilter()
    parcel = api.IdFilter()

    class Meta:
        model = WriteBack
        fields: list[str] = []


class ShipBatchFilterSet(api.FilterSet):
    kind = django_filters.ChoiceFilter(choices=ShipBatch.Kind.choices)
    status = django_filters.ChoiceFilter(choices=ShipBatch.Status.choices)

    class Meta:
        model = ShipBatch
        fields: list[str] = []


# --- viewsets ------------------------------------------------------------------------------------------

_REFUSED = OpenApiResponse(ERROR_ENVELOPE, description="Refused (code `invalid`; reasons in details).")
_IDEMPOTENCY_ERRORS = {
    409: OpenApiResponse(
        ERROR_ENVELOPE, description="The same Idempotency-Key is still running (`in_progress`)."
    ),
    422: OpenApiResponse(
        ERROR_ENVELOPE,
        description="The Idempotency-Key was used for another request (`idempotency_key_reused`).",
    ),
}

#: for other apps' write endpoints that take an Idempotency-Key (their OpenAPI responses)
REFUSED, IDEMPOTENCY_ERRORS = _REFUSED, _IDEMPOTENCY_ERRORS


class ShippingAPI:
    read_capability = "dashboard.view"
    write_capability = "shipping.manage"


def _valid(serializer_class, request, **kwargs):
    serializer = serializer_class(data=request.data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _parcels_detail():
    return Parcel.objects.select_related("store").prefetch_related(
        Prefetch("lines", queryset=ParcelLine.objects.select_related("order_line__order")),
        Prefetch("waybills", queryset=Waybill.objects.order_by("id")),
        Prefetch("write_backs", queryset=WriteBack.objects.select_related("order").order_by("id")),
        Prefetch("events", queryset=TrackingEvent.objects.order_by("occurred_at", "id")),
    )


@extend_schema_view(
    list=extend_schema(summary="Parcels, newest first (filter by workbench tab, status, shop, order)"),
    retrieve=extend_schema(summary="One parcel with its lines, waybills, write-backs and tracking events"),
)
class ParcelViewSet(ShippingAPI, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Parcels: one physical box of one fulfilment (a merged parcel carries several orders)."""

    filterset_class = ParcelFilterSet
    pagination_class = api.KeysetPagination

    def get_queryset(self):
        if self.action == "retrieve":
            return _parcels_detail()
        return Parcel.objects.select_related("store").prefetch_related(
            Prefetch("lines", queryset=ParcelLine.objects.select_related("order_line__order"))
        )

    def get_serializer_class(self):
        return ParcelDetailSerializer if self.action in ("retrieve", "track") else ParcelSerializer

    @extend_schema(
        request=None,
        responses={
            200: ParcelDetailSerializer,
            400: OpenApiResponse(
                ERROR_ENVELOPE, description="The parcel has no tracking number (`invalid`)."
            ),
            409: OpenApiResponse(
                ERROR_ENVELOPE, description="The platform could not be read (`platform_error`); try later."
            ),
        },
        summary="Read the parcel's tracking events from its platform now",
    )
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def track(self, request, pk=None):
        from channels.errors import ChannelError
        from logistics import tracking

        parcel = self.get_object()
        try:
            tracking.pull(parcel)
        except ValueError:
            return error_response(code="invalid", message=_("The parcel has no tracking number yet."))
        except (ChannelError, LookupError, PermissionError, NotImplementedError) as exc:
            logger.info("tracking pull of parcel %s failed: %s", parcel.pk, exc)
            return error_response(
                code="platform_error",
                message=str(exc)[:300] or type(exc).__name__,
                http_status=status.HTTP_409_CONFLICT,
            )
        return Response(ParcelDetailSerializer(_parcels_detail().get(pk=parcel.pk)).data)


@extend_schema_view(
    list=extend_schema(summary="Waybill numbers taken from the platforms, newest first"),
    retrieve=extend_schema(summary="One waybill"),
)
class WaybillViewSet(ShippingAPI, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Waybill numbers (电子面单) — taken for parcels in batches, cancelled and recycled."""

    serializer_class = WaybillSerializer
    filterset_class = WaybillFilterSet
    pagination_class = api.KeysetPagination
    queryset = Waybill.objects.all()

    @extend_schema(
        request=ParcelIdsSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={202: ShipBatchSerializer, **_IDEMPOTENCY_ERRORS},
        summary="Take waybill numbers for parcels (a batch; follow it at /shipping-batches/{id}/)",
    )
    @action(detail=False, methods=["post"], filter_backends=[], pagination_class=None)
    def take(self, request):
        from logistics import waybills

        def run():
            data = _valid(ParcelIdsSerializer, request)
            batch = waybills.start_take(data["parcel_ids"], actor=request.user)
            return Response(ShipBatchSerializer(batch).data, status=status.HTTP_202_ACCEPTED)

        return idempotent(request, run)

    @extend_schema(
        request=TakeTabSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={
            202: ShipBatchSerializer,
            400: OpenApiResponse(ERROR_ENVELOPE, description="No parcel of the tab waits for a number."),
            **_IDEMPOTENCY_ERRORS,
        },
        summary="Take numbers for every parcel of the 待打单 tab that has none (one shop, or all)",
    )
    @action(detail=False, methods=["post"], url_path="take-tab", filter_backends=[], pagination_class=None)
    def take_tab(self, request):
        from logistics import waybills

        def run():
            data = _valid(TakeTabSerializer, request)
            batch = waybills.start_take_tab(store_id=data.get("store"), actor=request.user)
            return Response(ShipBatchSerializer(batch).data, status=status.HTTP_202_ACCEPTED)

        return idempotent(request, run)

    @extend_schema(
        request=CancelSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={200: ItemResultSerializer(many=True), **_IDEMPOTENCY_ERRORS},
        summary="Cancel the parcels' unused numbers (recycled; the parcels go back to 待取号)",
    )
    @action(detail=False, methods=["post"], filter_backends=[], pagination_class=None)
    def cancel(self, request):
        from logistics import waybills

        def run():
            data = _valid(CancelSerializer, request)
            results = []
            for pk in dict.fromkeys(data["parcel_ids"]):
                if not Parcel.objects.filter(pk=pk).exists():
                    results.append({"parcel": pk, "ok": False, "error": _("No such parcel.")})
                    continue
                try:
                    waybills.cancel_parcel_waybill(pk, actor=request.user, reason=data["reason"])
                except ValidationError as exc:
                    results.append({"parcel": pk, "ok": False, "error": "；".join(exc.messages)})
                except Exception as exc:  # noqa: BLE001 - a platform failure of one parcel; the rest go on
                    results.append({"parcel": pk, "ok": False, "error": str(exc)[:300]})
                else:
                    results.append({"parcel": pk, "ok": True, "error": ""})
            return Response(results)

        return idempotent(request, run)


class LabelViewSet(ShippingAPI, viewsets.GenericViewSet):
    """Labels rendered by ecbao as PDF (a preview, or carriers outside the print components)."""

    serializer_class = LabelsSerializer
    filter_backends: list = []
    pagination_class = None

    @extend_schema(
        request=LabelsSerializer,
        responses={
            (200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="One page per label."),
            400: OpenApiResponse(
                ERROR_ENVELOPE,
                description="No parcel with a tracking number among them, or more than "
                f"{INLINE_LABELS} (code `invalid`; use /labels/batch/).",
            ),
        },
        summary=f"A PDF of the parcels' labels (at most {INLINE_LABELS}; more: /labels/batch/)",
    )
    def create(self, request):
        from logistics import printing
        from logistics.labels import LabelError, render_labels

        data = _valid(LabelsSerializer, request)
        ids = list(dict.fromkeys(data["parcel_ids"]))
        if len(ids) > INLINE_LABELS:
            return error_response(
                code="invalid",
                message=_("At most %(n)d labels at once; use /labels/batch/ for more.")
                % {"n": INLINE_LABELS},
            )
        found = {p.pk: p for p in _parcels_detail().filter(pk__in=ids).exclude(tracking_no="")}
        sender = configuration.default_sender()
        try:
            labels = [printing.label_data(found[pk], sender=sender) for pk in ids if pk in found]
            if not labels:
                return error_response(
                    code="invalid", message=_("No parcel with a tracking number to render.")
                )
            pdf = render_labels(labels, size=data["size"])
        except LabelError as exc:
            return error_response(code="invalid", message=str(exc))
        response = HttpResponse(pdf, content_type="application/pdf")
        response["Content-Disposition"] = 'inline; filename="labels.pdf"'
        return response

    @extend_schema(
        request=LabelsSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={202: ShipBatchSerializer, **_IDEMPOTENCY_ERRORS},
        summary="Render one PDF of many labels as a batch (download at /shipping-batches/{id}/file/)",
    )
    @action(detail=False, methods=["post"])
    def batch(self, request):
        from logistics import printing

        def run():
            data = _valid(LabelsSerializer, request)
            batch = printing.start_pdf(data["parcel_ids"], actor=request.user, size=data["size"])
            return Response(ShipBatchSerializer(batch).data, status=status.HTTP_202_ACCEPTED)

        return idempotent(request, run)


class ShipmentViewSet(ShippingAPI, viewsets.GenericViewSet):
    """Ship parcels (stock out, orders shipped, write-backs queued), or record parcels shipped
    outside ecbao by their tracking numbers."""

    serializer_class = ParcelIdsSerializer
    filter_backends: list = []
    pagination_class = None

    @extend_schema(
        request=ParcelIdsSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={200: ShipResultSerializer, **_IDEMPOTENCY_ERRORS},
        summary="Ship parcels that have a tracking number (a repeat changes nothing)",
    )
    def create(self, request):
        from logistics.shipping import ship_parcels

        def run():
            data = _valid(ParcelIdsSerializer, request)
            result = ship_parcels(data["parcel_ids"], actor=request.user)
            known = set(Parcel.objects.filter(pk__in=data["parcel_ids"]).values_list("pk", flat=True))
            errors = [{"parcel": pk, "error": message} for pk, message in sorted(result.errors.items())]
            errors += [
                {"parcel": pk, "error": _("No such parcel.")}
                for pk in sorted(set(data["parcel_ids"]) - known - set(result.errors))
            ]
            return Response(
                {
                    "shipped": result.shipped,
                    "already": result.already,
                    "errors": errors,
                    "write_backs": result.write_backs,
                }
            )

        return idempotent(request, run)

    @extend_schema(
        request=ParcelIdsSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={202: ShipBatchSerializer, **_IDEMPOTENCY_ERRORS},
        summary="Ship many parcels as a batch (progress at /shipping-batches/{id}/; refusals on the parcels)",
    )
    @action(detail=False, methods=["post"])
    def batch(self, request):
        from logistics.shipping import start_ship

        def run():
            data = _valid(ParcelIdsSerializer, request)
            batch = start_ship(data["parcel_ids"], actor=request.user)
            return Response(ShipBatchSerializer(batch).data, status=status.HTTP_202_ACCEPTED)

        return idempotent(request, run)

    @extend_schema(
        request=ManualEntrySerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={200: ManualEntryResultSerializer, 400: _REFUSED, **_IDEMPOTENCY_ERRORS},
        summary="Enter the tracking number of a parcel shipped outside ecbao (then it ships)",
    )
    @action(detail=False, methods=["post"])
    def manual(self, request):
        def run():
            data = _valid(ManualEntrySerializer, request)
            if "order" in data:
                target = Order.objects.filter(pk=data["order"]).first()
            else:
                target = Parcel.objects.select_related("store").filter(pk=data["parcel"]).first()
            if target is None:
                field = "order" if "order" in data else "parcel"
                raise serializers.ValidationError({field: [_("Not found.")]})
            entry = manual.enter_tracking(target, data["carrier"], data["tracking_no"], actor=request.user)
            parcel = _parcels_detail().get(pk=entry.parcel.pk)
            return Response(
                {
                    "parcel": ParcelSerializer(parcel).data,
                    "changed": entry.changed,
                    "shipped": entry.shipped,
                    "ship_error": entry.ship_error,
                }
            )

        return idempotent(request, run)

    @extend_schema(
        request={"multipart/form-data": TrackingImportSerializer},
        responses={202: ShipBatchSerializer, 400: _REFUSED},
        summary="Import tracking numbers from xlsx (a batch; its report lists every bad row)",
    )
    @action(detail=False, methods=["post"], url_path="import", parser_classes=[MultiPartParser])
    def import_xlsx(self, request):
        data = _valid(TrackingImportSerializer, request)
        batch = manual.start_import(data["file"], actor=request.user)
        batch.refresh_from_db()
        return Response(ShipBatchSerializer(batch).data, status=status.HTTP_202_ACCEPTED)


@extend_schema_view(
    list=extend_schema(summary="Shipping batches (take numbers, PDFs, imports), newest first"),
    retrieve=extend_schema(summary="One batch: progress, and an import's report"),
)
class ShipBatchViewSet(
    ShippingAPI, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = ShipBatchSerializer
    filterset_class = ShipBatchFilterSet
    pagination_class = api.KeysetPagination
    queryset = ShipBatch.objects.all()

    @extend_schema(
        responses={
            (200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="The batch's PDF."),
        },
        summary="The batch's file (a labels PDF), once it is done",
    )
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def file(self, request, pk=None):
        batch = self.get_object()
        if not batch.result_file:
            raise NotFound(_("This batch has no file (yet)."))
        return FileResponse(
            batch.result_file.open("rb"), content_type="application/pdf", filename=f"labels-{batch.pk}.pdf"
        )


@extend_schema_view(
    list=extend_schema(summary="Write-backs (the outbox telling platforms the tracking numbers)"),
    retrieve=extend_schema(summary="One write-back"),
)
class WriteBackViewSet(
    ShippingAPI, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = WriteBackSerializer
    filterset_class = WriteBackFilterSet
    pagination_class = api.KeysetPagination
    queryset = WriteBack.objects.select_related("order")

    @extend_schema(
        request=IdsSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={
            200: inline_serializer(
                name="RetryResult",
                fields={"retried": serializers.IntegerField(help_text="How many were queued again.")},
            ),
            **_IDEMPOTENCY_ERRORS,
        },
        summary="Send failed or given-up write-backs again",
    )
    @action(detail=False, methods=["post"], filter_backends=[], pagination_class=None)
    def retry(self, request):
        from logistics.writeback import retry_write_backs

        def run():
            data = _valid(IdsSerializer, request)
            return Response({"retried": retry_write_backs(data["ids"])})

        return idempotent(request, run)


@extend_schema_view(
    list=extend_schema(summary="Carrier rules in the order they are tried"),
    retrieve=extend_schema(summary="One carrier rule"),
    create=extend_schema(summary="Add a carrier rule", responses={201: CarrierRuleSerializer, 400: _REFUSED}),
    update=extend_schema(
        summary="Change a carrier rule", responses={200: CarrierRuleSerializer, 400: _REFUSED}
    ),
    partial_update=extend_schema(
        summary="Change some fields of a carrier rule", responses={200: CarrierRuleSerializer, 400: _REFUSED}
    ),
    destroy=extend_schema(summary="Delete a carrier rule"),
)
class CarrierRuleViewSet(ShippingAPI, viewsets.ModelViewSet):
    """Carrier rules (快递策略): the first enabled rule by priority whose every condition
    matches a parcel chooses its carrier and account."""

    serializer_class = CarrierRuleSerializer
    pagination_class = None
    filter_backends: list = []
    queryset = CarrierRule.objects.order_by("priority", "id")

    def _save(self, rule, data):
        return configuration.save_carrier_rule(rule=rule, **data)

    def create(self, request, *args, **kwargs):
        data = _valid(CarrierRuleSerializer, request)
        rule = self._save(None, data)
        return Response(self.get_serializer(rule).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        rule = self.get_object()
        serializer = self.get_serializer(rule, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        rule = self._save(rule, serializer.validated_data)
        return Response(self.get_serializer(rule).data)

    def perform_destroy(self, instance):
        configuration.delete_carrier_rule(rule=instance)

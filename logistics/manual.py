"""Ship by hand: tracking numbers of parcels that left outside ecbao (many small merchants start
there), entered one at a time or imported from an xlsx workbook.

- ``enter_tracking(order_or_parcel, carrier, tracking_no, *, actor)`` checks the carrier (the
  carrier table, by key, name or the platform's code) and the number's shape, puts the number on
  the order's first open parcel without one (``manual=True``; a merged parcel carries it for every
  order in it; a second number for the same order goes on its next parcel), then ships it through
  ``logistics.shipping.ship_parcels`` — stock out, the order shipped, the write-back queued.
  Entering a number that is already on the order's parcel changes nothing (idempotent).
- ``import_xlsx(file, *, actor)`` does the same per row of a workbook (platform order id, carrier,
  tracking number), as a ShipBatch of kind IMPORT_TRACKING with progress: good rows are entered,
  every bad row is reported with its row number, column and a reason in the user's language, and
  nothing is lost — entered + unchanged + errors = rows. Importing the same file again changes
  nothing; fixing the bad rows and importing the whole file again enters just those.

Scope (``logistics.scope``): with ``warehouse=`` (the supplier portal) only parcels that ship
from that warehouse take numbers; an order with none there is refused ("不是你的代发单") — for
an import, as that row's error, whether the order exists elsewhere or not at all. Without it
(the merchant), an order's own-warehouse parcels take a number before a supplier's.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from io import BytesIO

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from openpyxl import Workbook

from channels import carriers
from channels.types import Platform
from ecbao import sheets
from ecbao.sheets import Column, FileError
from logistics import scope, services, shipping
from logistics.models import Parcel, ParcelLine, ShipBatch
from orders.models import Fulfilment, Order, OrderEvent, OrderStatus

logger = logging.getLogger(__name__)
P = Parcel.Status

MAX_ROWS = 20_000
CHUNK = 50  # rows per progress update (and per ship call)
MAX_KEPT_ERRORS = 2000  # errors kept on the batch; the counts always cover every row
WAITING_TO_SHIP = (OrderStatus.APPROVED, OrderStatus.PARTIALLY_SHIPPED)

# --- carriers and numbers ------------------------------------------------------------------------

_GENERIC = re.compile(r"[A-Z0-9][A-Z0-9-]{6,38}[A-Z0-9]")
_DIGITS = r"\d{10,20}"
_UPU = r"[A-Z]{2}\d{9}[A-Z]{2}"  # international postal items (EMS, China Post)
#: the tracking-number shapes carriers hand out (prefix + digits, or digits only)
SHAPES: dict[str, re.Pattern] = {
    "sf": re.compile(r"SF\d{10,15}"),
    "yto": re.compile(r"YT\d{10,18}"),
    "jtexpress": re.compile(r"JT\d{10,18}"),
    "jd": re.compile(r"JD[A-Z0-9]{8,20}(-\d+){0,3}"),
    "deppon": re.compile(r"DPK\d{8,15}|\d{8,12}"),
    "zto": re.compile(_DIGITS),
    "sto": re.compile(_DIGITS),
    "yunda": re.compile(_DIGITS),
    "ems": re.compile(rf"{_DIGITS}|{_UPU}"),
    "post": re.compile(rf"{_DIGITS}|{_UPU}"),
}


def resolve_carrier(text: str, *, platform: str = "") -> str:
    """The neutral carrier key for a key (``zto``), a name (中通快递, 中通) or a platform's carrier
    code (``ZTO``, ``zhongtong``, Kuaishou's ``9``); "" when none matches."""
    text = str(text or "").strip()
    if not text:
        return ""
    if text.lower() in carriers.CARRIERS:
        return text.lower()
    if key := carriers.key_by_name(text):
        return key
    platforms = [platform] if platform else list(Platform)
    for name in platforms:
        for ewaybill in (False, True):
            if key := carriers.key_of(name, text, ewaybill=ewaybill):
                return key
    if key := carriers.key_by_name(text + "快递"):  # 中通 → 中通快递
        return key
    return ""


def clean_tracking_no(carrier: str, tracking_no: str) -> str:
    """``tracking_no`` without spaces, in capitals, checked against the carrier's shape;
    ValidationError when it cannot be one of the carrier's numbers."""
    number = re.sub(r"\s+", "", str(tracking_no or "")).upper()
    if not number:
        raise ValidationError(_("Enter the tracking number."))
    shape = SHAPES.get(carrier, _GENERIC)
    if not _GENERIC.fullmatch(number) and carrier not in SHAPES:
        raise ValidationError(
            _("“%(no)s” is not a tracking number (8–40 letters and digits).") % {"no": number[:40]}
        )
    if not shape.fullmatch(number):
        raise ValidationError(
            _("“%(no)s” is not a %(carrier)s tracking number.")
            % {"no": number[:40], "carrier": carriers.name_of(carrier)}
        )
    return number


# --- one entry -------------------------------------------------------------------------------------


@dataclass
class ManualEntry:
    parcel: Parcel
    changed: bool  # False: the number was already on this parcel
    shipped: bool = False
    ship_error: str = ""


def _not_yours() -> ValidationError:
    return ValidationError(_("This order is not one of your dispatches."), code="out_of_scope")


def _fulfilments(warehouse):
    qs = Fulfilment.objects.all()
    return qs if warehouse is None else qs.filter(scope.warehouse_q(warehouse, prefix=""))


def orders_in_scope(order_ids, warehouse) -> set[int]:
    """Which of these orders have lines shipped from ``warehouse`` (all of them when None)."""
    ids = {int(i) for i in order_ids}
    if warehouse is None:
        return ids
    return set(
        _fulfilments(warehouse)
        .filter(lines__order_line__order_id__in=ids)
        .values_list("lines__order_line__order_id", flat=True)
    )


def _open_parcels(order: Order, warehouse=None) -> list[Parcel]:
    """The order's parcels waiting to ship (locked), made first where a fulfilment has none;
    only ``warehouse``'s when given, else the own warehouses' first."""
    fulfilment_ids = list(
        _fulfilments(warehouse)
        .filter(lines__order_line__order=order, status=Fulfilment.Status.OPEN)
        .values_list("pk", flat=True)
        .distinct()
    )
    own = set(
        Fulfilment.objects.filter(scope.own_q(prefix=""), pk__in=fulfilment_ids).values_list("pk", flat=True)
    )

    def waiting() -> list[Parcel]:
        parcels = list(
            Parcel.objects.select_for_update()
            .filter(fulfilment_id__in=fulfilment_ids, status__in=(P.NEW, P.NUMBERED, P.PRINTED, P.VERIFIED))
            .order_by("fulfilment_id", "seq")
        )
        return sorted(parcels, key=lambda p: p.fulfilment_id not in own)  # stable: own first

    parcels = waiting()
    if order.status in WAITING_TO_SHIP and set(fulfilment_ids) - {p.fulfilment_id for p in parcels}:
        services.ensure_parcels(fulfilments=fulfilment_ids)
        parcels = waiting()
    return parcels


def _parcels_of(order: Order, warehouse=None):
    qs = Parcel.objects.filter(lines__order_line__order=order)
    if warehouse is not None:
        qs = qs.filter(scope.warehouse_q(warehouse))
    return qs.distinct()


def _status_refusal(order: Order) -> str:
    return _("The order is “%(status)s”; only orders waiting to ship can be shipped.") % {
        "status": order.get_status_display()
    }


def _enter(
    target: Order | Parcel, carrier: str, number: str, *, actor, correct: bool = False, warehouse=None
) -> ManualEntry:
    """Put the number on a parcel (inside the caller's transaction). ``correct``: a single
    unshipped parcel whose number was typed by hand takes the new number instead.
    ``warehouse``: only a parcel that ships from it (``logistics.scope``)."""
    if isinstance(target, Parcel):
        scope.check_parcels([target.pk], warehouse)
        # The orders first, then the parcel: the lock order of every order action (a buyer's
        # cancellation drops or cancels this parcel under its order's lock).
        order_ids = ParcelLine.objects.filter(parcel_id=target.pk).values("order_line__order_id")
        list(
            Order.objects.select_for_update()
            .filter(pk__in=order_ids)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        parcel = Parcel.objects.select_for_update().filter(pk=target.pk).first()
        if parcel is None:
            raise ValidationError(
                _(
                    "This parcel is gone: its order changed meanwhile (cancelled, held or split). Reload the page."
                )
            )
        orders = services.orders_of_parcel(parcel)
        if parcel.carrier == carrier and parcel.tracking_no == number and parcel.status != P.CANCELLED:
            return ManualEntry(parcel, changed=False)
        candidates = [parcel] if parcel.status in (P.NEW, P.NUMBERED, P.PRINTED, P.VERIFIED) else []
        if not candidates:
            raise ValidationError(
                _("This parcel is “%(status)s”: it cannot take a tracking number.")
                % {"status": parcel.get_status_display()}
            )
        for order in orders:
            if order.status not in WAITING_TO_SHIP:
                raise ValidationError(_status_refusal(order))
    else:
        if not orders_in_scope([target.pk], warehouse):
            raise _not_yours()
        order = Order.objects.select_for_update().get(pk=target.pk)
        orders = [order]
        same = (
            _parcels_of(order, warehouse)
            .filter(carrier=carrier, tracking_no=number)
            .exclude(status=P.CANCELLED)
            .first()
        )
        if same is not None:
            return ManualEntry(same, changed=False)
        if order.status not in WAITING_TO_SHIP:
            raise ValidationError(_status_refusal(order))
        candidates = _open_parcels(order, warehouse)
        if not candidates:
            raise ValidationError(_("The order has no parcel waiting to ship."))

    free = [p for p in candidates if not p.tracking_no]
    if not free:
        parcel = candidates[0]
        if correct and parcel.manual and parcel.status != P.SHIPPED and len(candidates) == 1:
            free = [parcel]  # a correction of a number typed by hand before it shipped
        elif parcel.manual or len(candidates) > 1:
            raise ValidationError(
                _(
                    "Every parcel of this order has a tracking number already (%(numbers)s); to ship it "
                    "in more parcels, split it into parcels on the shipping workbench first."
                )
                % {"numbers": "、".join(p.tracking_no for p in candidates)}
            )
        else:
            raise ValidationError(
                _("The parcel has waybill number %(no)s taken in ecbao: cancel that waybill first.")
                % {"no": parcel.tracking_no}
            )
    parcel = free[0]
    if parcel.waybills.filter(status__in=("requested", "issued")).exists():
        raise ValidationError(_("The parcel has a waybill taken in ecbao: cancel that waybill first."))
    clash = (
        Parcel.objects.filter(carrier=carrier, tracking_no=number)
        .exclude(status=P.CANCELLED)
        .exclude(pk=parcel.pk)
        .first()
    )
    if clash is not None:
        others = ", ".join(o.platform_order_id for o in services.orders_of_parcel(clash))
        raise ValidationError(
            _("%(no)s is already the tracking number of order %(orders)s.") % {"no": number, "orders": others}
        )
    before = {"carrier": parcel.carrier, "tracking_no": parcel.tracking_no}
    parcel.carrier, parcel.tracking_no, parcel.manual, parcel.account = carrier, number, True, None
    parcel.carrier_reason = _("entered by hand")
    parcel.error = ""
    parcel.save(
        update_fields=["carrier", "tracking_no", "manual", "account", "carrier_reason", "error", "updated_at"]
    )
    message = _("Tracking number %(carrier)s %(no)s entered by hand (parcel %(seq)s/%(count)s)") % {
        "carrier": carriers.name_of(carrier),
        "no": number,
        "seq": parcel.seq,
        "count": parcel.count,
    }
    OrderEvent.objects.bulk_create(
        OrderEvent(
            order=o,
            kind="tracking_entered",
            source="user" if actor else "system",
            actor=actor,
            message=message[:500],
            before=before,
            after={"carrier": carrier, "tracking_no": number, "parcel": parcel.pk},
        )
        for o in services.orders_of_parcel(parcel)
    )
    return ManualEntry(parcel, changed=True)


def _ship(parcel_ids: list[int], *, actor, warehouse=None) -> tuple[set[int], dict[int, str]]:
    """Ship the parcels through the shipping service: (shipped ids, {parcel id: error} for those
    it could not ship — they keep their numbers and can be shipped from the workbench)."""
    if not parcel_ids:
        return set(), {}
    try:
        result = shipping.ship_parcels(parcel_ids, actor=actor, warehouse=warehouse)
    except Exception as exc:  # noqa: BLE001 - the numbers are kept; the error is shown, retryable
        logger.exception("shipping manually entered parcels %s failed", parcel_ids[:10])
        return set(), dict.fromkeys(parcel_ids, str(exc)[:300])
    shipped = set(result.shipped) | set(result.already)
    errors = {pk: result.errors.get(pk) or _("not shipped") for pk in parcel_ids if pk not in shipped}
    return shipped, errors


def enter_tracking(
    order_or_parcel: Order | Parcel, carrier: str, tracking_no: str, *, actor=None, warehouse=None
) -> ManualEntry:
    """Record a parcel shipped outside ecbao and ship it (see the module docstring).
    ``carrier``: a carrier key, name or platform code. ValidationError when it cannot be done
    (or, with ``warehouse``, when the order or parcel does not ship from there)."""
    platform = getattr(order_or_parcel, "platform", "") or getattr(
        getattr(order_or_parcel, "store", None), "platform", ""
    )
    key = resolve_carrier(carrier, platform=platform)
    if not key:
        raise ValidationError(_("Unknown carrier “%(carrier)s”.") % {"carrier": str(carrier)[:40]})
    number = clean_tracking_no(key, tracking_no)
    try:
        with transaction.atomic():
            entry = _enter(order_or_parcel, key, number, actor=actor, correct=True, warehouse=warehouse)
    except IntegrityError as exc:  # a concurrent entry took the number first
        raise ValidationError(
            _("%(no)s is already the tracking number of another parcel.") % {"no": number}
        ) from exc
    if entry.parcel.status != P.SHIPPED:
        _shipped, errors = _ship([entry.parcel.pk], actor=actor, warehouse=warehouse)
        entry.parcel.refresh_from_db()
        entry.shipped = entry.parcel.status == P.SHIPPED
        entry.ship_error = errors.get(entry.parcel.pk, "")
    else:
        entry.shipped = True
    return entry


# --- xlsx import -------------------------------------------------------------------------------------


COLUMNS = (
    Column("platform_order_id", gettext_lazy("Platform order no."), 26),
    Column("carrier", gettext_lazy("Carrier"), 14),
    Column("tracking_no", gettext_lazy("Tracking number"), 24),
    Column("shop", gettext_lazy("Shop"), 16),  # optional: when two shops have the same order number
)
REQUIRED = ("platform_order_id", "carrier", "tracking_no")
_ALIASES = {  # other headers people type
    "订单号": "platform_order_id",
    "平台订单号": "platform_order_id",
    "订单编号": "platform_order_id",
    "快递": "carrier",
    "快递公司": "carrier",
    "物流公司": "carrier",
    "快递单号": "tracking_no",
    "运单号": "tracking_no",
    "物流单号": "tracking_no",
    "店铺名称": "shop",
}


@dataclass
class RowError:
    row: int  # spreadsheet row (header = 1); 0: the file as a whole
    column: str
    message: str
    values: list[str] = field(default_factory=list)


@dataclass
class ImportReport:
    batch: ShipBatch | None = None
    rows: int = 0
    entered: int = 0
    unchanged: int = 0
    shipped: int = 0
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0  # every failed row (``errors`` keeps the first MAX_KEPT_ERRORS)
    not_shipped: list[RowError] = field(default_factory=list)  # entered; shipping failed (retryable)

    @property
    def ok(self) -> bool:
        return not self.error_count

    def to_json(self) -> dict:
        return {
            "rows": self.rows,
            "entered": self.entered,
            "unchanged": self.unchanged,
            "shipped": self.shipped,
            "error_count": self.error_count,
            "errors": [vars(e) for e in self.errors],
            "not_shipped": [vars(e) for e in self.not_shipped],
        }

    @classmethod
    def from_batch(cls, batch: ShipBatch) -> ImportReport:
        data = batch.params.get("report") or {}
        return cls(
            batch=batch,
            rows=data.get("rows", batch.total),
            entered=data.get("entered", 0),
            unchanged=data.get("unchanged", 0),
            shipped=data.get("shipped", 0),
            error_count=data.get("error_count", 0),
            errors=[RowError(**e) for e in data.get("errors", [])],
            not_shipped=[RowError(**e) for e in data.get("not_shipped", [])],
        )


def read_rows(file) -> list[tuple[int, list[str]]]:
    """[(row number, [order id, carrier, tracking no, shop])] of the first sheet; FileError when the
    file is no workbook, has no header with the three columns, or is too long."""
    rows = sheets.read_table(
        file, COLUMNS, required=REQUIRED, aliases=_ALIASES, max_rows=MAX_ROWS, allow_csv=False
    )
    return [(number, [sheets.cell_text(cells.get(c.key)) for c in COLUMNS]) for number, cells in rows]


def template_workbook() -> bytes:
    """The import layout: the header row and one example row (long order ids stored as text)."""
    return sheets.workbook_bytes(
        _("Tracking numbers"),
        [str(c.label) for c in COLUMNS],
        [["6920000000000000001", "中通快递", "73100000000001"]],
        widths=[c.width for c in COLUMNS],
        text_columns=len(COLUMNS),
    )


def errors_workbook(report: ImportReport) -> bytes:
    """The failed rows (as they were) with the reason: fix them and import this file."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.append([str(c.label) for c in COLUMNS] + [_("Row"), _("Problem")])
    for e in report.errors:
        if e.row:
            values = (e.values + [""] * len(COLUMNS))[: len(COLUMNS)]
            sheet.append([*values, e.row, f"{e.column}: {e.message}" if e.column else e.message])
    buffer = BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _orders_by_id(ids: list[str]) -> dict[str, list[Order]]:
    found: dict[str, list[Order]] = {}
    for order in Order.objects.filter(platform_order_id__in=ids).select_related("store"):
        found.setdefault(order.platform_order_id, []).append(order)
    return found


def _save_progress(batch: ShipBatch, report: ImportReport, *, final: bool = False) -> None:
    batch.done = report.entered + report.unchanged + report.error_count
    batch.failed = report.error_count
    batch.params = {**batch.params, "report": report.to_json()}
    fields = ["done", "failed", "params"]
    if final:
        batch.status, batch.finished_at = ShipBatch.Status.DONE, timezone.now()
        fields += ["status", "finished_at"]
    batch.save(update_fields=fields)


def _error(report: ImportReport, number: int, column: str, message: str, values: list[str]) -> None:
    report.error_count += 1
    if len(report.errors) < MAX_KEPT_ERRORS:
        report.errors.append(RowError(number, column, message, values))


def _import_row(
    number, values, *, orders, report: ImportReport, labels, actor, to_ship, warehouse=None, allowed=None
) -> None:
    """One row of an import (inside the chunk's transaction; the entry in a savepoint).
    ``allowed``: with a ``warehouse``, the ids of the chunk's orders that ship from it."""
    order_id, carrier_text, tracking_no, shop = values
    if not order_id:
        _error(report, number, labels["platform_order_id"], _("Enter the platform order number."), values)
        return
    matches = orders.get(order_id, [])
    if warehouse is not None:
        matches = [o for o in matches if o.pk in allowed]
        if not matches:  # the same answer whether the order exists elsewhere or not at all
            _error(report, number, labels["platform_order_id"], str(_not_yours().messages[0]), values)
            return
    if not matches:
        _error(report, number, labels["platform_order_id"], _("No order has this number."), values)
        return
    if shop:
        matches = [o for o in matches if shop in (o.store.name, o.store.platform_shop_id)]
        if not matches:
            _error(report, number, labels["shop"], _("This shop has no order with this number."), values)
            return
    if len(matches) > 1:
        _error(
            report,
            number,
            labels["platform_order_id"],
            _("Several shops have an order with this number: say which shop."),
            values,
        )
        return
    order = matches[0]
    carrier = resolve_carrier(carrier_text, platform=order.platform)
    if not carrier:
        message = (
            _("Unknown carrier “%(carrier)s”.") % {"carrier": carrier_text[:40]}
            if carrier_text
            else _("Enter the carrier.")
        )
        _error(report, number, labels["carrier"], message, values)
        return
    try:
        cleaned = clean_tracking_no(carrier, tracking_no)
    except ValidationError as exc:
        _error(report, number, labels["tracking_no"], exc.messages[0], values)
        return
    try:
        with transaction.atomic():
            entry = _enter(order, carrier, cleaned, actor=actor, warehouse=warehouse)
    except ValidationError as exc:
        _error(report, number, "", exc.messages[0], values)
        return
    except IntegrityError:
        _error(
            report,
            number,
            labels["tracking_no"],
            _("%(no)s is already the tracking number of another parcel.") % {"no": cleaned},
            values,
        )
        return
    if entry.changed:
        report.entered += 1
    else:
        report.unchanged += 1
    if entry.parcel.status != P.SHIPPED:
        to_ship.setdefault(entry.parcel.pk, []).append((number, values))


def import_xlsx(file, *, actor=None, batch: ShipBatch | None = None, warehouse=None) -> ImportReport:
    """Enter and ship the tracking numbers of a workbook (see the module docstring). Progress
    and the report (counts and row errors) are kept on ``batch`` (made when not given).
    ``warehouse``: only orders that ship from it; any other row is an error ("不是你的代发单")."""
    if batch is None:
        batch = ShipBatch.objects.create(
            kind=ShipBatch.Kind.IMPORT_TRACKING,
            status=ShipBatch.Status.RUNNING,
            created_by=actor,
            params=scope.batch_params(warehouse),
        )
    else:
        ShipBatch.objects.filter(pk=batch.pk).update(status=ShipBatch.Status.RUNNING)
    report = ImportReport(batch=batch)
    try:
        rows = read_rows(file)
    except FileError as exc:
        _error(report, 0, "", str(exc), [])
        batch.total, batch.error = 0, str(exc)[:300]
        batch.save(update_fields=["total", "error"])
        batch.status, batch.finished_at = ShipBatch.Status.FAILED, timezone.now()
        batch.params = {**batch.params, "report": report.to_json()}
        batch.save(update_fields=["status", "finished_at", "params"])
        return report
    report.rows = batch.total = len(rows)
    batch.save(update_fields=["total"])
    labels = {c.key: str(c.label) for c in COLUMNS}
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        orders = _orders_by_id([values[0] for _n, values in chunk if values[0]])
        allowed = orders_in_scope([o.pk for found in orders.values() for o in found], warehouse)
        to_ship: dict[int, list[tuple[int, list[str]]]] = {}
        with transaction.atomic():  # one commit per chunk; each row in a savepoint of its own
            for number, values in chunk:
                _import_row(
                    number, values, orders=orders, report=report, labels=labels, actor=actor, to_ship=to_ship,
                    warehouse=warehouse, allowed=allowed,
                )  # fmt: skip
        shipped, failures = _ship(sorted(to_ship), actor=actor, warehouse=warehouse)
        report.shipped += len(shipped)
        for parcel_id, error in failures.items():
            for number, values in to_ship[parcel_id]:
                # the number is kept; only shipping waits (retried from the workbench)
                if len(report.not_shipped) < MAX_KEPT_ERRORS:
                    report.not_shipped.append(RowError(number, "", error, values))
        _save_progress(batch, report)
    _save_progress(batch, report, final=True)
    return report


# --- import as a job -----------------------------------------------------------------------------------

INLINE_ROWS = 200  # a file this small is imported within the request; larger ones by a worker


def _upload_path(batch: ShipBatch) -> str:
    return f"imports/tracking/{batch.pk}.xlsx"


def start_import(file, *, actor=None, warehouse=None) -> ShipBatch:
    """Import a workbook: at most INLINE_ROWS rows right away, a larger one by a Celery worker
    (the file is kept in the tenant's storage until it ran; progress on the batch).
    ``warehouse``: see ``import_xlsx`` (kept on the batch for the worker)."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    data = file.read()
    try:
        rows = len(read_rows(BytesIO(data)))
    except FileError:
        rows = 0  # import_xlsx reports the problem
    if rows <= INLINE_ROWS:
        report = import_xlsx(BytesIO(data), actor=actor, warehouse=warehouse)
        return report.batch
    batch = ShipBatch.objects.create(
        kind=ShipBatch.Kind.IMPORT_TRACKING,
        total=rows,
        created_by=actor,
        params={"name": getattr(file, "name", "")[:100], **scope.batch_params(warehouse)},
    )
    default_storage.save(_upload_path(batch), ContentFile(data))
    batch.params = {**batch.params, "file": _upload_path(batch)}
    batch.save(update_fields=["params"])
    from logistics.tasks import import_tracking_task

    transaction.on_commit(lambda: import_tracking_task.delay(batch.pk))
    return batch


def run_import(batch_id: int) -> dict:
    """The worker's part of ``start_import``; a batch that finished is not run again."""
    from django.contrib.auth import get_user_model
    from django.core.files.storage import default_storage

    batch = ShipBatch.objects.filter(pk=batch_id, kind=ShipBatch.Kind.IMPORT_TRACKING).first()
    if batch is None or batch.status in (ShipBatch.Status.DONE, ShipBatch.Status.FAILED):
        return {"batch": batch_id, "skipped": True}
    path = batch.params.get("file", "")
    if not path or not default_storage.exists(path):
        ShipBatch.objects.filter(pk=batch.pk).update(
            status=ShipBatch.Status.FAILED,
            error=_("The uploaded file is gone; upload it again."),
            finished_at=timezone.now(),
        )
        return {"batch": batch_id, "failed": True}
    actor = get_user_model().objects.filter(pk=batch.created_by_id).first()
    with default_storage.open(path, "rb") as fh:
        report = import_xlsx(
            BytesIO(fh.read()), actor=actor, batch=batch, warehouse=batch.params.get("warehouse_id")
        )
    default_storage.delete(path)
    return {"batch": batch_id, "rows": report.rows, "entered": report.entered, "errors": report.error_count}

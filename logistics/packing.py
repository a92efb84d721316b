"""Pick lists and scan-to-verify (拣货、验货).

**Pick list** — what to fetch from the shelves for a set of parcels (a selection or a
ShipBatch): one row per item and warehouse, summed over the parcels, sorted by the item's
location (库位, ``inventory.StockLevel.location``; "A-2" before "A-10", items without a
location last) so a picker walks the aisles once. An item is what sits on a shelf: a plain SKU,
or each component of a combination SKU (组合装) times its count per set; a line that matches no
SKU shows its merchant code. The warehouse is the parcel's shipper (its fulfilment's warehouse,
``logistics.scope``); for a fulfilment without one, where the line's stock is reserved (else the
default own warehouse).

**Verify** — at the packing bench a barcode scanner types a code and Enter. The packer scans
the parcel's waybill (``verify_lookup``: a parcel's number or a child number of a multi-piece
shipment), then every item (``verify_scan``: an item's code is its SKU's barcode or merchant
code). A code that is not in the parcel, or one more than the parcel holds, is refused with a
message, and nothing counts. Progress is kept in the database (``VerifyScan`` rows), so a
reload, another browser or another packer continues where the scans left off; a scan carries
a ``client_id`` so a repeated request counts once. When every item is scanned,
``verify_done`` marks the parcel VERIFIED (who, when, optional weight), idempotently.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext

from inventory.models import Reservation, Sku, StockLevel, Warehouse
from logistics import scope, services
from logistics.models import Parcel, ParcelLine, ShipBatch, VerifyScan, Waybill
from orders.models import LineStatus, OrderStatus

P = Parcel.Status

#: parcels that can be verified: they have a number and have not left
VERIFIABLE_STATES = (P.NUMBERED, P.PRINTED)
MAX_WEIGHT_G = 100_000  # 100 kg: more is a typo (grams for kilograms)
CODE_MAX = 64


class VerifyRefused(ValidationError):
    """The bench refused a waybill or an item; ``message`` says why (shown to the packer)."""


# --- items of parcels ------------------------------------------------------------------------------------


@dataclass
class _Item:
    parcel_id: int
    key: str  # "sku:<id>" or "code:<merchant code>" (a line that matches no SKU)
    sku_id: int | None
    merchant_code: str
    barcode: str
    title: str
    spec: str
    quantity: int
    warehouse_id: int | None


def _items(parcel_ids: Iterable[int]) -> list[_Item]:
    """The shelf items of these parcels, one per (parcel, order line, stock SKU)."""
    lines = list(
        ParcelLine.objects.filter(parcel_id__in=list(parcel_ids))
        .select_related("order_line", "order_line__sku")
        .order_by("parcel_id", "id")
    )
    combo_ids = {pl.order_line.sku_id for pl in lines if pl.order_line.sku and pl.order_line.sku.is_combo}
    parts: dict[int, list[tuple[Sku, int]]] = defaultdict(list)
    if combo_ids:
        from inventory.models import ComboComponent

        for cc in (
            ComboComponent.objects.filter(combo_id__in=combo_ids)
            .select_related("component")
            .order_by("component__merchant_code")
        ):
            parts[cc.combo_id].append((cc.component, cc.quantity))
    keys = {pl.order_line.reservation_key for pl in lines}
    reserved_in = {
        (key, sku_id): wh
        for key, sku_id, wh in Reservation.objects.filter(source_key__in=keys)
        .exclude(status=Reservation.Status.RELEASED)
        .values_list("source_key", "sku_id", "warehouse_id")
    }
    default_wh = scope.default_warehouse_id() if lines else None
    shipper = dict(
        Parcel.objects.filter(pk__in={pl.parcel_id for pl in lines}).values_list(
            "pk", "fulfilment__warehouse_id"
        )
    )
    items = []
    for pl in lines:
        ol = pl.order_line
        key = ol.reservation_key
        fixed = shipper.get(pl.parcel_id)
        if ol.sku is None:
            code = ol.merchant_code
            items.append(
                _Item(
                    pl.parcel_id,
                    f"code:{code}",
                    None,
                    code,
                    "",
                    ol.title,
                    ol.spec,
                    pl.quantity,
                    fixed or default_wh,
                )
            )
            continue
        stock = parts[ol.sku_id] if ol.sku.is_combo else [(ol.sku, 1)]
        for sku, per in stock:
            items.append(
                _Item(
                    parcel_id=pl.parcel_id,
                    key=f"sku:{sku.pk}",
                    sku_id=sku.pk,
                    merchant_code=sku.merchant_code,
                    barcode=sku.barcode,
                    title=sku.name or ol.title,
                    spec=sku.spec or ("" if ol.sku.is_combo else ol.spec),
                    quantity=pl.quantity * per,
                    warehouse_id=fixed or reserved_in.get((key, sku.pk), default_wh),
                )
            )
    return items


def _locations(items: list[_Item]) -> dict[tuple[int, int], str]:
    pairs = {(i.sku_id, i.warehouse_id) for i in items if i.sku_id and i.warehouse_id}
    if not pairs:
        return {}
    rows = StockLevel.objects.filter(
        sku_id__in={s for s, _ in pairs}, warehouse_id__in={w for _, w in pairs}
    ).values_list("sku_id", "warehouse_id", "location")
    return {(s, w): loc for s, w, loc in rows}


def location_sort_key(location: str) -> tuple:
    """Natural order of locations: "A-2" < "A-10" < "B-1"; empty last."""
    parts = tuple(
        (0, int(tok), "") if tok.isdigit() else (1, 0, tok.casefold())
        for tok in re.split(r"(\d+)", location)
        if tok
    )
    return (not location, parts)


def parcel_label(parcel: Parcel) -> str:
    return parcel.tracking_no or f"#{parcel.pk}"


# --- pick list ---------------------------------------------------------------------------------------------


@dataclass
class PickRow:
    sku_id: int | None
    merchant_code: str
    barcode: str
    title: str
    spec: str
    warehouse: str
    location: str
    quantity: int
    parcels: list[str] = field(default_factory=list)  # waybill numbers (or #id) of the parcels
    parcel_ids: list[int] = field(default_factory=list)


@dataclass
class PickList:
    rows: list[PickRow]
    parcels: int  # parcels on the list
    skipped: list[tuple[int, str]]  # (parcel id, why) of parcels left off (shipped, cancelled)

    @property
    def units(self) -> int:
        return sum(r.quantity for r in self.rows)


def pick_list(parcel_ids: Iterable[int], *, warehouse=None) -> list[PickRow]:
    """The contract: rows summed per item and warehouse over these parcels, sorted by location."""
    return build_pick_list(parcel_ids, warehouse=warehouse).rows


def build_pick_list(parcel_ids: Iterable[int], *, warehouse=None) -> PickList:
    """``pick_list`` with the parcels it counted and those it left off (shipped or cancelled
    parcels are not picked). ``warehouse``: every parcel must ship from it (``logistics.scope``)."""
    wanted = sorted(scope.check_parcels(parcel_ids, warehouse))
    parcels = {p.pk: p for p in Parcel.objects.filter(pk__in=wanted)}
    skipped = []
    for pk in wanted:
        parcel = parcels.get(pk)
        if parcel is None:
            skipped.append((pk, gettext("no such parcel")))
        elif parcel.status in (P.SHIPPED, P.CANCELLED):
            skipped.append((pk, parcel.get_status_display()))
            del parcels[pk]
    items = _items(parcels)
    locations = _locations(items)
    warehouses = dict(
        Warehouse.objects.filter(pk__in={i.warehouse_id for i in items}).values_list("pk", "name")
    )
    rows: dict[tuple, PickRow] = {}
    for item in items:
        group = (item.warehouse_id, item.key)
        row = rows.get(group)
        if row is None:
            row = rows[group] = PickRow(
                sku_id=item.sku_id,
                merchant_code=item.merchant_code,
                barcode=item.barcode,
                title=item.title,
                spec=item.spec,
                warehouse=warehouses.get(item.warehouse_id, ""),
                location=locations.get((item.sku_id, item.warehouse_id), ""),
                quantity=0,
            )
        row.quantity += item.quantity
        if item.parcel_id not in row.parcel_ids:
            row.parcel_ids.append(item.parcel_id)
            row.parcels.append(parcel_label(parcels[item.parcel_id]))
    ordered = sorted(
        rows.values(), key=lambda r: (r.warehouse, location_sort_key(r.location), r.merchant_code)
    )
    return PickList(rows=ordered, parcels=len(parcels), skipped=skipped)


def batch_parcel_ids(batch: ShipBatch) -> list[int]:
    """The parcels of a ShipBatch (those it holds, or the ids it was started with)."""
    ids = set(batch.parcels.values_list("pk", flat=True))
    ids.update(int(i) for i in (batch.params or {}).get("parcel_ids", []) if str(i).isdigit())
    return sorted(ids)


PICK_COLUMNS = (
    ("location", "Location"),
    ("merchant_code", "Merchant code"),
    ("barcode", "Barcode"),
    ("title", "Name"),
    ("spec", "Spec"),
    ("quantity", "Quantity"),
    ("warehouse", "Warehouse"),
    ("parcels", "Parcels"),
)


def pick_list_table(rows: list[PickRow]) -> tuple[list[str], list[list]]:
    """Headers (translated) and cells, for csv/xlsx exports."""
    headers = [gettext(label) for _key, label in PICK_COLUMNS]
    cells = []
    for r in rows:
        cells.append(
            [
                r.location,
                r.merchant_code,
                r.barcode,
                r.title,
                r.spec,
                r.quantity,
                r.warehouse,
                " ".join(r.parcels),
            ]
        )
    return headers, cells


# --- verify ----------------------------------------------------------------------------------------------


@dataclass
class VerifyLine:
    key: str
    sku_id: int | None
    merchant_code: str
    barcode: str
    title: str
    spec: str
    location: str
    quantity: int
    scanned: int = 0

    @property
    def complete(self) -> bool:
        return self.scanned >= self.quantity

    def codes(self) -> set[str]:
        return {c for c in (self.merchant_code, self.barcode) if c}

    def as_dict(self) -> dict:
        return {
            "key": self.key,
            "merchant_code": self.merchant_code,
            "barcode": self.barcode,
            "title": self.title,
            "spec": self.spec,
            "location": self.location,
            "quantity": self.quantity,
            "scanned": self.scanned,
            "complete": self.complete,
        }


@dataclass
class VerifyTicket:
    """A parcel at the bench: what it must hold and what was scanned so far."""

    parcel: Parcel
    lines: list[VerifyLine]
    orders: list[str]  # platform order ids

    @property
    def complete(self) -> bool:
        return all(line.complete for line in self.lines)

    @property
    def verified(self) -> bool:
        return self.parcel.status == P.VERIFIED

    @property
    def units(self) -> int:
        return sum(line.quantity for line in self.lines)

    @property
    def scanned(self) -> int:
        return sum(min(line.scanned, line.quantity) for line in self.lines)

    def line(self, key: str) -> VerifyLine | None:
        return next((line for line in self.lines if line.key == key), None)

    def as_dict(self) -> dict:
        p = self.parcel
        return {
            "parcel_id": p.pk,
            "tracking_no": p.tracking_no,
            "carrier": p.carrier,
            "seq": p.seq,
            "count": p.count,
            "status": p.status,
            "status_display": p.get_status_display(),
            "orders": self.orders,
            "lines": [line.as_dict() for line in self.lines],
            "units": self.units,
            "scanned": self.scanned,
            "complete": self.complete,
            "verified": self.verified,
            "weight_g": p.weight_g,
        }


@dataclass
class ScanResult:
    ok: bool
    message: str
    ticket: VerifyTicket
    item: str = ""  # the line key the scan counted for (or was refused for)


def ticket(parcel: Parcel) -> VerifyTicket:
    """What ``parcel`` must hold, with the accepted scans so far."""
    items = _items([parcel.pk])
    locations = _locations(items)
    lines: dict[str, VerifyLine] = {}
    for item in items:
        line = lines.get(item.key)
        if line is None:
            line = lines[item.key] = VerifyLine(
                key=item.key,
                sku_id=item.sku_id,
                merchant_code=item.merchant_code,
                barcode=item.barcode,
                title=item.title,
                spec=item.spec,
                location=locations.get((item.sku_id, item.warehouse_id), ""),
                quantity=0,
            )
        line.quantity += item.quantity
    for key in VerifyScan.objects.filter(parcel=parcel, accepted=True, cleared=False).values_list(
        "item", flat=True
    ):
        if key in lines:
            lines[key].scanned += 1
    orders = [o.platform_order_id for o in services.orders_of_parcel(parcel)]
    ordered = sorted(lines.values(), key=lambda x: (location_sort_key(x.location), x.merchant_code))
    return VerifyTicket(parcel=parcel, lines=ordered, orders=orders)


def _clean_code(code) -> str:
    return "".join(str(code or "").split())[:CODE_MAX]


def _why_not_verifiable(parcel: Parcel) -> str:
    """ "" when the parcel may be verified; else the reason, for the packer."""
    label = parcel_label(parcel)
    if parcel.status == P.CANCELLED:
        return gettext("Parcel %(no)s was cancelled: do not ship it.") % {"no": label}
    if parcel.status == P.SHIPPED:
        return gettext("Parcel %(no)s has already shipped.") % {"no": label}
    if parcel.status == P.NEW:
        return gettext("Parcel %(no)s has no waybill number yet: take one first.") % {"no": label}
    for order in services.orders_of_parcel(parcel):
        if order.status == OrderStatus.CANCELLED:
            return gettext("Order %(order)s was cancelled: do not ship parcel %(no)s.") % {
                "order": order.platform_order_id,
                "no": label,
            }
        if order.is_refunding:
            return gettext("Order %(order)s is being refunded: do not ship parcel %(no)s.") % {
                "order": order.platform_order_id,
                "no": label,
            }
    closed = (
        parcel.lines.filter(order_line__status__in=[LineStatus.CANCELLED, LineStatus.REFUNDED])
        .select_related("order_line")
        .first()
    )
    if closed is not None:
        return gettext("Item %(code)s in parcel %(no)s was cancelled or refunded: do not ship it.") % {
            "code": closed.order_line.merchant_code,
            "no": label,
        }
    return ""


def find_parcel(tracking_no: str) -> Parcel:
    """The parcel a scanned waybill belongs to (its number or a child number, or the platform
    order number of an order with one parcel to ship); ``VerifyRefused`` when none has it."""
    code = _clean_code(tracking_no)
    if not code:
        raise VerifyRefused(gettext("Scan the waybill first."))
    candidates = list(Parcel.objects.filter(tracking_no=code).order_by("-id"))
    if not candidates:
        candidates = list(Parcel.objects.filter(tracking_no__iexact=code).order_by("-id"))
    if not candidates:
        parcel_ids = list(
            Waybill.objects.filter(Q(tracking_no=code) | Q(tracking_no__iexact=code))
            .exclude(status__in=[Waybill.Status.CANCELLED, Waybill.Status.FAILED])
            .values_list("parcel_id", flat=True)
            .distinct()
        )
        candidates = list(Parcel.objects.filter(pk__in=parcel_ids).order_by("-id"))
    if not candidates:
        candidates = _parcels_of_order(code)
    if not candidates:
        raise VerifyRefused(gettext("No parcel has waybill number %(no)s.") % {"no": code})
    live = [p for p in candidates if p.status != P.CANCELLED]
    if len(live) > 1:
        raise VerifyRefused(
            gettext("%(n)d parcels have waybill number %(no)s: verify them from the workbench.")
            % {"n": len(live), "no": code}
        )
    return live[0] if live else candidates[0]


def _parcels_of_order(code: str) -> list[Parcel]:
    """A platform order number scanned instead of the waybill (订单号): its parcel when it has
    exactly one that waits to ship; refused when it has several (scan the waybill then)."""
    parcels = list(
        Parcel.objects.filter(lines__order_line__order__platform_order_id=code)
        .filter(scope.own_q())  # a supplier's parcels of the order are not at this bench
        .exclude(status__in=[P.CANCELLED, P.SHIPPED])
        .distinct()
        .order_by("seq")
    )
    if len(parcels) > 1:
        raise VerifyRefused(
            gettext("Order %(order)s ships in %(n)d parcels: scan the waybill of the one in hand.")
            % {"order": code, "n": len(parcels)}
        )
    return parcels


def verify_lookup(tracking_no: str) -> VerifyTicket:
    """A scanned waybill → its parcel's ticket. Refused (``VerifyRefused``) for an unknown
    number, a cancelled parcel, one without a number yet, one that shipped, and one whose order
    was cancelled or is being refunded, and a supplier's parcel (the bench is the own warehouses').
    A verified parcel comes back as it is (``verified``)."""
    parcel = find_parcel(tracking_no)
    supplier = (
        Parcel.objects.filter(pk=parcel.pk, fulfilment__warehouse__kind=scope.SUPPLIER)
        .values_list("fulfilment__warehouse__name", flat=True)
        .first()
    )
    if supplier is not None:
        raise VerifyRefused(
            gettext("Parcel %(no)s is shipped by supplier %(name)s, not from this warehouse.")
            % {"no": parcel_label(parcel), "name": supplier}
        )
    if parcel.status != P.VERIFIED:
        why = _why_not_verifiable(parcel)
        if why:
            raise VerifyRefused(why)
    return ticket(parcel)


def _match(tk: VerifyTicket, code: str) -> VerifyLine | None:
    for line in tk.lines:
        if code in line.codes():
            return line
    folded = code.casefold()
    for line in tk.lines:
        if folded in {c.casefold() for c in line.codes()}:
            return line
    return None


def _not_in_parcel(code: str, tk: VerifyTicket) -> str:
    sku = Sku.objects.filter(Q(merchant_code=code) | Q(barcode=code)).first()
    if sku is not None:
        return gettext("Wrong item: %(code)s %(name)s is not in this parcel.") % {
            "code": sku.merchant_code,
            "name": sku.name,
        }
    if code == tk.parcel.tracking_no:
        return gettext("This is the parcel's waybill: scan the items now.")
    if Parcel.objects.filter(tracking_no=code).exclude(status=P.CANCELLED).exists():
        return gettext("%(code)s is another parcel's waybill: finish this parcel or start again.") % {
            "code": code
        }
    return gettext("Unknown code %(code)s: it is no item of this parcel.") % {"code": code}


def verify_scan(parcel: Parcel | int, code: str, *, actor=None, client_id: str = "") -> ScanResult:
    """One scanned item code into ``parcel``: counted when the parcel holds that item and not
    all of it was scanned yet; otherwise refused with a message (wrong item, too many, parcel
    not at the bench) and nothing counts. Every scan is recorded. A repeated ``client_id``
    returns the first outcome without counting again."""
    return _count(parcel, code=_clean_code(code), actor=actor, client_id=client_id)


def verify_by_hand(
    parcel: Parcel | int, item: str, *, reason: str, actor=None, client_id: str = ""
) -> ScanResult:
    """One unit of the parcel's line ``item`` (a ``VerifyLine.key``) counted without a scan —
    its barcode is missing or will not read (强制) — with the packer's reason on record.
    Refused without a reason, for an item the parcel does not hold, and past its quantity."""
    reason = " ".join(str(reason or "").split())[:200]
    return _count(parcel, code=BY_HAND, item=str(item or ""), reason=reason, actor=actor, client_id=client_id)


BY_HAND = "(by hand)"


def _count(parcel, *, code: str, actor, client_id: str, item: str = "", reason: str = "") -> ScanResult:
    pk = parcel if isinstance(parcel, int) else parcel.pk
    client_id = str(client_id or "")[:64]
    by_hand = code == BY_HAND
    with transaction.atomic():
        parcel = Parcel.objects.select_for_update().get(pk=pk)
        if client_id:
            seen = VerifyScan.objects.filter(parcel=parcel, client_id=client_id).first()
            if seen is not None:
                return ScanResult(seen.accepted, seen.message, ticket(parcel), seen.item)
        tk = ticket(parcel)
        if not code:
            return ScanResult(False, gettext("Empty scan: scan the item's barcode."), tk)
        ok, counted = False, ""
        line = tk.line(item) if by_hand else _match(tk, code)
        if parcel.status == P.VERIFIED:
            message = gettext("Parcel %(no)s is already verified.") % {"no": parcel_label(parcel)}
        elif why := _why_not_verifiable(parcel):
            message = why
        elif line is None:
            message = gettext("This parcel holds no such item.") if by_hand else _not_in_parcel(code, tk)
        elif line.complete:
            counted = line.key
            message = gettext(
                "Too many: this parcel holds %(n)d × %(code)s, all %(n)d are scanned already."
            ) % {
                "n": line.quantity,
                "code": line.merchant_code,
            }
        elif by_hand and len(reason) < 2:
            counted = line.key
            message = gettext("Counting an item by hand needs a reason (e.g. the barcode is torn).")
        else:
            ok, counted = True, line.key
            line.scanned += 1
            message = gettext("%(code)s %(scanned)d/%(n)d") % {
                "code": line.merchant_code,
                "scanned": line.scanned,
                "n": line.quantity,
            }
            if by_hand:
                message += " · " + gettext("counted by hand: %(reason)s") % {"reason": reason}
            if tk.complete:
                message = gettext("All items scanned: confirm the parcel.")
        VerifyScan.objects.create(
            parcel=parcel,
            code=code,
            item=counted,
            accepted=ok,
            message=(message + (f" [{reason}]" if by_hand and reason and reason not in message else ""))[
                :300
            ],
            client_id=client_id,
            actor=actor if getattr(actor, "pk", None) else None,
        )
        return ScanResult(ok, message, tk, counted)


@transaction.atomic
def verify_reset(parcel: Parcel | int, *, actor=None) -> VerifyTicket:
    """Start the parcel's scanning again (the accepted scans stop counting; the record stays)."""
    pk = parcel if isinstance(parcel, int) else parcel.pk
    parcel = Parcel.objects.select_for_update().get(pk=pk)
    if parcel.status == P.VERIFIED:
        raise VerifyRefused(gettext("Parcel %(no)s is already verified.") % {"no": parcel_label(parcel)})
    VerifyScan.objects.filter(parcel=parcel, accepted=True, cleared=False).update(cleared=True)
    return ticket(parcel)


def _clean_weight(weight_g) -> int | None:
    if weight_g in (None, ""):
        return None
    try:
        weight = int(weight_g)
    except (TypeError, ValueError):
        raise VerifyRefused(gettext("The weight must be a whole number of grams.")) from None
    if not 0 < weight <= MAX_WEIGHT_G:
        raise VerifyRefused(
            gettext("The weight must be between 1 and %(max)d grams.") % {"max": MAX_WEIGHT_G}
        )
    return weight


def verify_done(parcel: Parcel | int, *, actor, weight_g=None) -> Parcel:
    """Every item scanned → the parcel is VERIFIED (verified_at/by, weight when given).
    Idempotent: a verified parcel stays verified (a weight given again is recorded).
    Refused (``VerifyRefused``) while items are missing or when the parcel may not ship."""
    weight = _clean_weight(weight_g)
    pk = parcel if isinstance(parcel, int) else parcel.pk
    with transaction.atomic():
        parcel = Parcel.objects.select_for_update().get(pk=pk)
        if parcel.status == P.VERIFIED:
            if weight is not None and weight != parcel.weight_g:
                parcel.weight_g = weight
                parcel.save(update_fields=["weight_g", "updated_at"])
            return parcel
        why = _why_not_verifiable(parcel)
        if why:
            raise VerifyRefused(why)
        tk = ticket(parcel)
        missing = [line for line in tk.lines if not line.complete]
        if missing:
            raise VerifyRefused(
                gettext("Not all items are scanned: %(missing)s.")
                % {
                    "missing": gettext(", ").join(
                        f"{line.merchant_code} {line.scanned}/{line.quantity}" for line in missing
                    )
                }
            )
        parcel.status = P.VERIFIED
        parcel.verified_at = timezone.now()
        parcel.verified_by = actor if getattr(actor, "pk", None) else None
        fields = ["status", "verified_at", "verified_by", "updated_at"]
        if weight is not None:
            parcel.weight_g = weight
            fields.append("weight_g")
        parcel.save(update_fields=fields)
        services._order_events(
            parcel.fulfilment,
            f"parcel {parcel.seq}/{parcel.count} {parcel.tracking_no} verified"
            + (f", {weight} g" if weight is not None else ""),
            actor=parcel.verified_by,
            kind="parcel_verified",
        )
    return parcel

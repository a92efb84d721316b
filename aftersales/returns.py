"""Returns in (退货入库): a return parcel scanned at an own warehouse, matched to its after-sale,
inspected good / defective, and booked through the stock ledger.

- ``receive`` — the return waybill scanned: one ``ReturnReceipt`` per warehouse and number
  (a rescan finds it), matched to the after-sale whose ``return_tracking_no`` is that number
  (spaces dropped, letters upper-cased) → MATCHED and "退货已签收" on the after-sale's
  timeline; nothing matches → UNCLAIMED (无主件).
- ``candidates`` — for an unclaimed parcel: after-sales still waiting for their return whose
  return waybill looks like it, whose order's phone tail is the one on the parcel's label, or
  whose lines hold a SKU found in the parcel; ``match`` links one by hand.
- ``inspect`` — counts per SKU (good, defective): good units back into the warehouse's
  sellable stock, defective ones into its defective location, through
  ``inventory.services.receive_return`` (source key ``return:<receipt id>:<sku id>``: a retry
  books nothing twice); ``ReturnReceiptLine`` rows; INSPECTED; "验货：良品 2 件、次品 1 件" on the
  timeline. More than the after-sale covers is refused (``ReturnExcess``) unless confirmed.
  An unclaimed parcel can be booked anyway ("无主件入库", ``unclaimed=True``): the goods are
  on the shelf either way; when it is matched later, it is linked and nothing is booked again.

Stock comes back only here, never because a platform says "refunded". The platform refund
stays the merchant's click (``aftersales.actions.confirm_receipt``) after inspection.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.db.models import Q, Value
from django.db.models.functions import Length, Replace, StrIndex, Upper
from django.utils import timezone
from django.utils.translation import gettext as _

from aftersales.models import AfterSale, AfterSaleEvent, AfterSaleLine, ReturnReceipt, ReturnReceiptLine
from inventory import services as stock
from inventory.models import Sku, Warehouse

RECEIVED = "return_arrived"  # timeline kinds (h-core's own "return_received" is the exchange mark)
MATCHED = "return_matched"
INSPECTED = "return_inspected"
WAITING = (AfterSale.Queue.AWAITING_RETURN, AfterSale.Queue.AWAITING_RECEIPT)
MAX_CANDIDATES = 50
_PHONE_TAIL = re.compile(r"^\d{4}$")


class ReturnRefused(ValueError):
    """The operator's request cannot be done (message in zh-Hans)."""


class ReturnExcess(ReturnRefused):
    """More units than the after-sale covers: a warning the operator may confirm."""

    def __init__(self, message: str, excess: dict[int, tuple[int, int]]) -> None:
        super().__init__(message)
        self.excess = excess  # sku_id → (counted, covered)


def normalise(tracking_no: str) -> str:
    """A waybill number as compared: no whitespace at all, letters upper-case."""
    return "".join(str(tracking_no or "").split()).upper()


def _record(after_sale: AfterSale, kind: str, message: str, *, actor=None, data=None) -> None:
    """A timeline event (and order event) through ``aftersales.services.record`` (h-core)."""
    from aftersales.services import record

    source = AfterSaleEvent.Source.MERCHANT if actor is not None else AfterSaleEvent.Source.SYSTEM
    record(after_sale, kind, message, source=source, actor=actor, data=data or {})


def _find(tracking_no: str) -> AfterSale | None:
    """The after-sale whose return waybill is ``tracking_no`` (normalised); one still waiting
    for its goods first, then the newest."""
    if not tracking_no:
        return None
    qs = AfterSale.objects.exclude(return_tracking_no="")
    order = ["-id"]
    rows = list(qs.filter(return_tracking_no=tracking_no).order_by(*order)[:10])  # the index
    if not rows:
        rows = list(
            qs.annotate(norm=Upper(Replace("return_tracking_no", Value(" "), Value(""))))
            .filter(norm=tracking_no)
            .order_by(*order)[:10]
        )
    if not rows:
        return None
    claimed = set(
        ReturnReceipt.objects.filter(after_sale__in=rows)
        .exclude(tracking_no=tracking_no)
        .values_list("after_sale_id", flat=True)
    )
    rows.sort(key=lambda a: (a.queue not in WAITING, a.pk in claimed, -a.pk))
    return rows[0]


def _clean_tail(phone_tail: str) -> str:
    tail = "".join(str(phone_tail or "").split())
    if tail and not _PHONE_TAIL.match(tail):
        raise ReturnRefused(_("The phone tail is the last 4 digits."))
    return tail


@transaction.atomic
def receive(
    *,
    warehouse: Warehouse,
    tracking_no: str,
    carrier: str = "",
    actor=None,
    phone_tail: str = "",
    note: str = "",
) -> ReturnReceipt:
    """The return parcel with waybill ``tracking_no`` arrived at ``warehouse`` (an own one).
    Idempotent per warehouse and number: a rescan finds the same receipt (and fills in a phone
    tail or note given now); an unclaimed one is tried against the after-sales again.
    ``receipt.created`` says whether this scan made it."""
    number = normalise(tracking_no)
    if not number:
        raise ReturnRefused(_("Scan the return waybill number."))
    if len(number) > ReturnReceipt._meta.get_field("tracking_no").max_length:
        raise ReturnRefused(_("This is not a waybill number (too long)."))
    if warehouse.kind != Warehouse.Kind.OWN:
        raise ReturnRefused(_("Returns are received at an own warehouse."))
    tail = _clean_tail(phone_tail)
    note = " ".join(str(note or "").split())[:300]
    try:
        with transaction.atomic():
            receipt, created = ReturnReceipt.objects.get_or_create(
                warehouse=warehouse,
                tracking_no=number,
                defaults={"carrier": carrier[:64], "phone_tail": tail, "note": note, "received_by": actor},
            )
    except IntegrityError:  # the same scan at the same moment elsewhere
        receipt, created = ReturnReceipt.objects.get(warehouse=warehouse, tracking_no=number), False
    receipt = ReturnReceipt.objects.select_for_update().get(pk=receipt.pk)
    if not created:
        changed = []
        for field, value in (("phone_tail", tail), ("note", note), ("carrier", carrier[:64])):
            if value and getattr(receipt, field) != value:
                setattr(receipt, field, value)
                changed.append(field)
        if changed:
            receipt.save(update_fields=changed)
    if receipt.after_sale_id is None:
        after_sale = _find(number)
        if after_sale is not None:
            _link(receipt, after_sale, actor=actor, how="waybill")
    receipt.created = created
    return receipt


def _link(receipt: ReturnReceipt, after_sale: AfterSale, *, actor, how: str) -> None:
    receipt.after_sale = after_sale
    receipt.matched_at = timezone.now()
    if receipt.status == ReturnReceipt.Status.UNCLAIMED:
        receipt.status = ReturnReceipt.Status.MATCHED
    receipt.save(update_fields=["after_sale", "matched_at", "status"])
    data = {"receipt": receipt.pk, "tracking_no": receipt.tracking_no, "warehouse": receipt.warehouse_id}
    if how == "waybill":
        message = _("Return received: waybill %(no)s at %(warehouse)s") % {
            "no": receipt.tracking_no,
            "warehouse": receipt.warehouse.name,
        }
        _record(after_sale, RECEIVED, message, actor=actor, data=data)
        return
    message = _("Return received: unclaimed parcel %(no)s at %(warehouse)s matched by hand") % {
        "no": receipt.tracking_no,
        "warehouse": receipt.warehouse.name,
    }
    _record(after_sale, MATCHED, message, actor=actor, data=data)
    if receipt.status == ReturnReceipt.Status.INSPECTED:  # booked as 无主件入库 before: nothing again
        good, defective = _totals(receipt)
        _record(
            after_sale,
            INSPECTED,
            _inspected_message(good, defective) + _(" (booked as an unclaimed parcel before)"),
            actor=actor,
            data={**data, "good": good, "defective": defective, "late": True},
        )


def _totals(receipt: ReturnReceipt) -> tuple[int, int]:
    lines = list(receipt.lines.all())
    return sum(line.good for line in lines), sum(line.defective for line in lines)


def _inspected_message(good: int, defective: int) -> str:
    return _("Inspected: %(good)d good, %(defective)d defective") % {"good": good, "defective": defective}


def _similar(theirs: str, number: str) -> bool:
    if not theirs:
        return False
    if theirs == number:
        return True
    if len(number) < 6:
        return False
    return theirs.endswith(number[-6:]) or number in theirs or (len(theirs) >= 6 and theirs in number)


def candidates(receipt: ReturnReceipt, *, sku_codes: Iterable[str] = ()) -> list[AfterSale]:
    """After-sales an unclaimed parcel may belong to: still waiting for their return (待退货 /
    待收货), not yet matched to another parcel, and whose return waybill looks like this one
    (one contains the other, or the last 6 characters agree), whose order's phone tail is the
    parcel's, or whose lines hold one of the SKUs found in it (``sku_codes``, and the SKUs of
    a receipt already booked as unclaimed). Best first; each has ``reasons`` (zh-Hans)."""
    number = receipt.tracking_no
    codes = {c.strip().upper() for c in sku_codes if c and c.strip()}
    codes |= {code.upper() for code in receipt.lines.values_list("sku__merchant_code", flat=True)}
    if codes:
        sku_ids = set(
            Sku.objects.annotate(code=Upper("merchant_code"))
            .filter(code__in=codes)
            .values_list("pk", flat=True)
        )
        sku_ids |= set(Sku.objects.filter(barcode__in=codes).values_list("pk", flat=True))
    else:
        sku_ids = set()
    norm = Upper(Replace("return_tracking_no", Value(" "), Value("")))
    qs = AfterSale.objects.filter(queue__in=WAITING).alias(
        norm=norm, norm_len=Length(norm), inside=StrIndex(Value(number), norm)
    )
    similar = Q(norm=number)
    if len(number) >= 6:  # one contains the other (a prefix added or dropped), or the same end
        similar |= Q(norm__endswith=number[-6:]) | Q(norm__contains=number) | Q(inside__gt=0, norm_len__gte=6)
    by_tail = Q(order__phone_tail=receipt.phone_tail) if receipt.phone_tail else Q(pk__in=[])
    by_sku = Q(lines__sku_id__in=sku_ids) if sku_ids else Q(pk__in=[])
    rows = list(
        qs.filter(similar | by_tail | by_sku)
        .exclude(receipts__isnull=False)  # its parcel is already in
        .select_related("order", "store")
        .distinct()
        .order_by("-id")[: MAX_CANDIDATES * 4]
    )
    line_skus: dict[int, set[int]] = defaultdict(set)
    for after_sale_id, sku_id in AfterSaleLine.objects.filter(after_sale__in=rows).values_list(
        "after_sale_id", "sku_id"
    ):
        line_skus[after_sale_id].add(sku_id)
    scored = []
    for after_sale in rows:
        reasons = []
        theirs = normalise(after_sale.return_tracking_no)
        if _similar(theirs, number):
            reasons.append(_("return waybill %(no)s") % {"no": after_sale.return_tracking_no})
        if receipt.phone_tail and after_sale.order_id and after_sale.order.phone_tail == receipt.phone_tail:
            reasons.append(_("phone tail %(tail)s") % {"tail": receipt.phone_tail})
        if sku_ids & line_skus[after_sale.pk]:
            reasons.append(_("same SKU"))
        if reasons:
            after_sale.reasons = reasons
            scored.append(after_sale)
    scored.sort(key=lambda a: (-len(a.reasons), -a.pk))
    return scored[:MAX_CANDIDATES]


@transaction.atomic
def _match(receipt: ReturnReceipt, after_sale: AfterSale, *, actor=None) -> ReturnReceipt:
    receipt = ReturnReceipt.objects.select_for_update().select_related("warehouse").get(pk=receipt.pk)
    if receipt.after_sale_id == after_sale.pk:
        return receipt
    if receipt.after_sale_id is not None:
        raise ReturnRefused(_("This parcel is already matched to another after-sale."))
    taken = (
        ReturnReceipt.objects.filter(after_sale=after_sale)
        .exclude(pk=receipt.pk)
        .values_list("tracking_no", flat=True)
        .first()
    )
    if taken is not None:
        raise ReturnRefused(_("This after-sale already has its return parcel %(no)s.") % {"no": taken})
    _link(receipt, after_sale, actor=actor, how="hand")
    return receipt


def match(receipt: ReturnReceipt, after_sale: AfterSale, *, actor=None) -> ReturnReceipt:
    """Link an unclaimed parcel to ``after_sale`` by hand. Already linked to it: nothing
    changes. Booked before as 无主件入库: linked, and nothing is booked again (an exchange's
    replacement then follows, as after an inspection)."""
    receipt = _match(receipt, after_sale, actor=actor)
    _exchange_back(receipt, actor=actor)
    return receipt


def expected(receipt: ReturnReceipt) -> dict[int, int]:
    """sku_id → units the matched after-sale covers (empty for an unclaimed parcel)."""
    if receipt.after_sale_id is None:
        return {}
    covered: dict[int, int] = defaultdict(int)
    for sku_id, quantity, line_quantity in AfterSaleLine.objects.filter(
        after_sale_id=receipt.after_sale_id
    ).values_list("sku_id", "quantity", "order_line__quantity"):
        if sku_id is not None:
            # 0 = the platform does not say how many (Kuaishou): at most the whole order line
            covered[sku_id] += quantity or line_quantity or 0
    return dict(covered)


def inspect(
    receipt: ReturnReceipt,
    counts: dict[int, tuple[int, int]],
    *,
    actor=None,
    confirm_excess: bool = False,
    unclaimed: bool = False,
) -> ReturnReceipt:
    """Book what came back: ``counts`` is sku_id → (good, defective). Good units go back into
    the receiving warehouse's sellable stock (and so to every shop), defective ones into its
    defective location; ``ReturnReceiptLine`` rows; INSPECTED. Once only: inspecting an
    inspected receipt again returns it unchanged (and books nothing).

    A matched parcel: more units of a SKU than the after-sale covers, or a SKU it does not
    cover, raises ``ReturnExcess`` unless ``confirm_excess``. An unclaimed one is booked only
    with ``unclaimed=True`` (无主件入库).

    An exchange's goods back: after the booking commits, ``aftersales.effects.on_return_received``
    (its mark, the queue, and the replacement order — h-core / h-reship; idempotent)."""
    receipt = _inspect(receipt, counts, actor=actor, confirm_excess=confirm_excess, unclaimed=unclaimed)
    _exchange_back(receipt, actor=actor)
    return receipt


def _exchange_back(receipt: ReturnReceipt, *, actor) -> None:
    if receipt.status != ReturnReceipt.Status.INSPECTED or receipt.after_sale_id is None:
        return
    after_sale = AfterSale.objects.get(pk=receipt.after_sale_id)
    if after_sale.type == AfterSale.Type.EXCHANGE:
        from aftersales import effects

        effects.on_return_received(after_sale, actor=actor)


@transaction.atomic
def _inspect(receipt, counts, *, actor, confirm_excess, unclaimed) -> ReturnReceipt:
    receipt = ReturnReceipt.objects.select_for_update().select_related("warehouse").get(pk=receipt.pk)
    if receipt.status == ReturnReceipt.Status.INSPECTED:
        return receipt
    if receipt.status == ReturnReceipt.Status.UNCLAIMED and not unclaimed:
        raise ReturnRefused(
            _("An unclaimed parcel is matched to its after-sale first, or booked as an unclaimed parcel.")
        )
    clean: dict[int, tuple[int, int]] = {}
    for sku_id, pair in counts.items():
        good, defective = (int(v) for v in pair)
        if good < 0 or defective < 0:
            raise ReturnRefused(_("Counts cannot be negative."))
        if good or defective:
            clean[int(sku_id)] = (good, defective)
    if not clean:
        raise ReturnRefused(_("Nothing counted: enter the good and defective units."))
    skus = Sku.objects.in_bulk(list(clean))
    if len(skus) != len(clean):
        raise ReturnRefused(_("Unknown SKU."))
    if receipt.status == ReturnReceipt.Status.MATCHED and not confirm_excess:
        covered = expected(receipt)
        excess = {
            sku_id: (good + defective, covered.get(sku_id, 0))
            for sku_id, (good, defective) in clean.items()
            if good + defective > covered.get(sku_id, 0)
        }
        if excess:
            parts = "; ".join(
                _("%(code)s: %(counted)d counted, %(covered)d in the after-sale")
                % {"code": skus[sku_id].merchant_code, "counted": counted, "covered": covered_qty}
                for sku_id, (counted, covered_qty) in sorted(excess.items())
            )
            raise ReturnExcess(
                _(
                    "More than the after-sale covers (%(parts)s). Check the parcel, then confirm to book it anyway."
                )
                % {"parts": parts},
                excess,
            )
    reason = _("Return %(no)s") % {"no": receipt.tracking_no}
    for sku_id in sorted(clean):
        good, defective = clean[sku_id]
        stock.receive_return(
            sku=skus[sku_id],
            warehouse=receipt.warehouse,
            good=good,
            defective=defective,
            source_key=f"return:{receipt.pk}:{sku_id}",
            reason=reason,
            user=actor,
        )
        ReturnReceiptLine.objects.create(receipt=receipt, sku_id=sku_id, good=good, defective=defective)
    receipt.status = ReturnReceipt.Status.INSPECTED
    receipt.inspected_at = timezone.now()
    receipt.save(update_fields=["status", "inspected_at"])
    if receipt.after_sale_id is not None:
        good = sum(g for g, _d in clean.values())
        defective = sum(d for _g, d in clean.values())
        _record(
            receipt.after_sale,
            INSPECTED,
            _inspected_message(good, defective),
            actor=actor,
            data={
                "receipt": receipt.pk,
                "good": good,
                "defective": defective,
                "lines": {str(k): list(v) for k, v in clean.items()},
            },
        )
    return receipt

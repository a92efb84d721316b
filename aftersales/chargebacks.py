"""Supplier charge-backs (扣款): a refund the supplier caused — wrong item, damage, late, a
quality problem — becomes a deduction line on the supplier's statement (finance reads
``open_for_supplier``).

One live charge-back per after-sale (the model's constraint ``one_live_charge_back``; a second
attempt is a ``ValidationError``, not a database error). Amounts in integer fen: by default
the supplier's cost of the refunded lines (the dispatch lines' unit cost × the refunded
quantity), never above what the after-sale refunded. Only an OPEN one can be cancelled; once
finance billed it (BILLED) it stays.
"""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, QuerySet, Sum
from django.utils.translation import gettext

from aftersales.models import AfterSale, ChargeBack
from ecbao.money import format_yuan
from suppliers.models import DispatchLine, Supplier

S = ChargeBack.Status
REASONS = ChargeBack.Reason


def _record(after_sale: AfterSale, kind: str, message: str, *, actor=None, data=None):
    from aftersales import services  # lazily: services may call back into this module

    return services.record(after_sale, kind, message, source="merchant", actor=actor, data=data or {})


def default_amount(after_sale: AfterSale) -> int:
    """The supplier's cost of the refunded lines (fen), at most what the after-sale refunded.

    The refunded lines are the after-sale's lines on the supplier's dispatch (each dispatch
    line's unit cost × the after-sale line's quantity, or the whole dispatch line when the
    platform gave no quantity); an after-sale that names no lines covers the dispatch's lines
    of its order."""
    if not after_sale.dispatch_id:
        return 0
    dispatch_lines = {
        dl.order_line_id: dl
        for dl in DispatchLine.objects.filter(dispatch_id=after_sale.dispatch_id).select_related("order_line")
    }
    own = list(after_sale.lines.all())
    total = 0
    if own:
        for row in own:
            dl = dispatch_lines.get(row.order_line_id)
            if dl is not None:
                total += dl.unit_cost_fen * min(row.quantity or dl.quantity, dl.quantity)
    else:
        for dl in dispatch_lines.values():
            if after_sale.order_id is None or dl.order_line.order_id == after_sale.order_id:
                total += dl.unit_cost_fen * dl.quantity
    if after_sale.refund_fen > 0:
        total = min(total, after_sale.refund_fen)
    return total


def live(after_sale: AfterSale) -> ChargeBack | None:
    return after_sale.charge_backs.exclude(status=S.CANCELLED).first()


def create(after_sale: AfterSale, *, amount_fen: int, reason: str, note: str = "", actor=None) -> ChargeBack:
    """Charge ``amount_fen`` back to the supplier whose dispatch the after-sale is on."""
    if not after_sale.supplier_id:
        raise ValidationError(gettext("This after-sale is not on a supplier's dispatch."))
    if reason not in REASONS.values:
        raise ValidationError(gettext("Choose a reason."))
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int) or amount_fen <= 0:
        raise ValidationError(gettext("The amount must be more than zero."))
    if after_sale.refund_fen > 0 and amount_fen > after_sale.refund_fen:
        raise ValidationError(
            gettext("The amount may not exceed what the after-sale refunded (%(yuan)s).")
            % {"yuan": format_yuan(after_sale.refund_fen, symbol=True)}
        )
    try:
        with transaction.atomic():
            AfterSale.objects.select_for_update().filter(pk=after_sale.pk).first()
            if live(after_sale) is not None:
                raise IntegrityError("one_live_charge_back")
            charge_back = ChargeBack.objects.create(
                supplier_id=after_sale.supplier_id,
                after_sale=after_sale,
                dispatch_id=after_sale.dispatch_id,
                amount_fen=amount_fen,
                reason=reason,
                note=(note or "").strip()[:300],
                created_by=actor if getattr(actor, "pk", None) else None,
            )
            _record(
                after_sale,
                "charge_back",
                f"charge-back {format_yuan(amount_fen, symbol=True)} to the supplier ({reason})",
                actor=actor,
                data={"charge_back": charge_back.pk, "amount_fen": amount_fen, "reason": reason},
            )
    except IntegrityError:
        raise ValidationError(
            gettext("This after-sale already has a charge-back; cancel it first to charge again.")
        ) from None
    return charge_back


def cancel(charge_back: ChargeBack, *, actor=None) -> ChargeBack:
    """Cancel an OPEN charge-back (cancelling a cancelled one changes nothing)."""
    with transaction.atomic():
        found = ChargeBack.objects.select_for_update().get(pk=charge_back.pk)
        if found.status == S.CANCELLED:
            return found
        if found.status != S.OPEN:
            raise ValidationError(
                gettext("Only an open charge-back can be cancelled; this one is on a statement.")
            )
        found.status = S.CANCELLED
        found.save(update_fields=["status", "updated_at"])
        _record(
            found.after_sale,
            "charge_back_cancelled",
            f"charge-back {format_yuan(found.amount_fen, symbol=True)} cancelled",
            actor=actor,
            data={"charge_back": found.pk},
        )
    return found


def open_for_supplier(supplier: Supplier | int, *, until: datetime | None = None) -> QuerySet[ChargeBack]:
    """The supplier's OPEN charge-backs (created before ``until`` when given), oldest first:
    what finance puts on the next statement."""
    supplier_id = supplier if isinstance(supplier, int) else supplier.pk
    qs = ChargeBack.objects.filter(supplier_id=supplier_id, status=S.OPEN)
    if until is not None:
        qs = qs.filter(created_at__lt=until)
    return qs.select_related("after_sale").order_by("created_at", "id")


def listing(*, supplier_id: int | None = None, status: str = "") -> QuerySet[ChargeBack]:
    qs = ChargeBack.objects.select_related("supplier", "after_sale", "created_by")
    if supplier_id:
        qs = qs.filter(supplier_id=supplier_id)
    if status in S.values:
        qs = qs.filter(status=status)
    return qs.order_by("-id")


def totals(qs: QuerySet[ChargeBack]) -> dict:
    """{status: (count, fen)} and "all" over ``qs`` (one query)."""
    rows = qs.order_by().values("status").annotate(n=Count("pk"), fen=Sum("amount_fen"))
    result = {row["status"]: (row["n"], row["fen"] or 0) for row in rows}
    result["all"] = (sum(n for n, _f in result.values()), sum(f for _n, f in result.values()))
    return result

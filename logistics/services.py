"""Parcels for fulfilments, shipping them, and the write-back outbox's records.

Parcels follow their fulfilment (``orders.Fulfilment``, the shipment unit):

- ``ensure_parcels`` gives every open fulfilment of an approved (or partly shipped) order its
  default parcel — one parcel holding every open line's open quantity — idempotently;
- ``plan_parcels`` ships one fulfilment as n parcels instead (quantities must add up), refused
  once a parcel has a waybill number or was printed;
- when orders change fulfilments after parcels exist (merge, unmerge, split, hold, cancel,
  shipped or cancelled on the platform), ``orders.hooks`` calls back into this module inside
  the same transaction:

  * a parcel **without** a number just follows: it is dropped before the change and the
    fulfilment's default parcel is made again after it (a multi-parcel plan of a changed
    fulfilment is lost; it is planned again);
  * a parcel **with** a waybill number (or printed, or shipped) **blocks** a change made by
    hand (merge, unmerge, split, hold, cancel by a person): the person cancels the waybill first
    (``logistics.waybills``), so no number is ever silently orphaned;
  * a change the platform decided (cancelled, refunded, address changed, shipped elsewhere)
    cannot be refused: a numbered parcel is cancelled (``Parcel.error`` says why; its live
    waybill stays for recycling), except that a parcel whose tracking number the platform
    lists for the order is recorded as shipped — the platform shipped it with our number
    (``logistics.events.ParcelsShipped`` follows, as after ``shipping.ship_parcels``).

``parcels_consistent`` is the invariant (like ``orders.services.line_quantities_consistent``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, Max, OuterRef, ProtectedError, Q, Sum
from django.utils import timezone
from django.utils.translation import gettext

from ecbao import events
from logistics.events import ParcelsShipped
from logistics.models import Parcel, ParcelLine, Waybill
from orders.models import Fulfilment, FulfilmentLine, LineStatus, Order, OrderLine, OrderStatus

logger = logging.getLogger(__name__)
P = Parcel.Status

#: orders whose open fulfilments get parcels
SHIPPABLE_ORDER_STATES = (OrderStatus.APPROVED, OrderStatus.PARTIALLY_SHIPPED)
#: parcel states before shipping that hold a number (or a print): they block changes by hand
NUMBERED_STATES = (P.NUMBERED, P.PRINTED, P.VERIFIED)
UNSHIPPED_STATES = (P.NEW, *NUMBERED_STATES)
_CLOSED_LINES = (LineStatus.CANCELLED, LineStatus.REFUNDED)
#: seq of a cancelled parcel moves above this, so live parcels keep seq 1..m
_RETIRED_SEQ = 1000


# --- which fulfilments ship ---------------------------------------------------------------------------------


def _shippable_fulfilments():
    """Open fulfilments with lines whose every order is approved or partly shipped."""
    not_ready = FulfilmentLine.objects.filter(fulfilment=OuterRef("pk")).exclude(
        order_line__order__status__in=SHIPPABLE_ORDER_STATES
    )
    has_lines = FulfilmentLine.objects.filter(fulfilment=OuterRef("pk"))
    return Fulfilment.objects.filter(status=Fulfilment.Status.OPEN).filter(
        Exists(has_lines), ~Exists(not_ready)
    )


def _ids(fulfilments) -> set[int]:
    return {f if isinstance(f, int) else f.pk for f in fulfilments}


def open_quantities(fulfilment: Fulfilment) -> dict[int, int]:
    """{order line id: quantity still to ship in this fulfilment}: the fulfilment line's
    quantity less what shipped parcels of it carried; cancelled/refunded lines ship nothing."""
    shipped = dict(
        ParcelLine.objects.filter(parcel__fulfilment=fulfilment, parcel__status=P.SHIPPED)
        .values("order_line_id")
        .annotate(n=Sum("quantity"))
        .values_list("order_line_id", "n")
    )
    result = {}
    for fl in fulfilment.lines.select_related("order_line").order_by("order_line_id"):
        if fl.order_line.status in _CLOSED_LINES or fl.order_line.status == LineStatus.SHIPPED:
            continue
        left = fl.quantity - shipped.get(fl.order_line_id, 0)
        if left > 0:
            result[fl.order_line_id] = left
    return result


def _numbered(parcel: Parcel) -> bool:
    return bool(
        parcel.status in NUMBERED_STATES
        or parcel.tracking_no
        or parcel.print_count
        or parcel.waybills.filter(status__in=[Waybill.Status.REQUESTED, Waybill.Status.ISSUED]).exists()
    )


def _live_waybill():
    return Waybill.objects.filter(
        parcel=OuterRef("pk"), status__in=[Waybill.Status.REQUESTED, Waybill.Status.ISSUED]
    )


def _numbered_q() -> Q:
    return (
        Q(status__in=NUMBERED_STATES) | ~Q(tracking_no="") | Q(print_count__gt=0) | Q(Exists(_live_waybill()))
    )


# --- default parcels --------------------------------------------------------------------------------------


def _next_seq(fulfilment_id: int) -> int:
    top = (
        Parcel.objects.filter(fulfilment_id=fulfilment_id, seq__lt=_RETIRED_SEQ).aggregate(m=Max("seq"))["m"]
        or 0
    )
    return top + 1


def _create_parcels(fulfilment: Fulfilment, plans: list[dict[int, int]]) -> list[Parcel]:
    live = Parcel.objects.filter(fulfilment=fulfilment).exclude(status=P.CANCELLED)
    start = _next_seq(fulfilment.pk)
    count = live.count() + len(plans)
    created = []
    for i, plan in enumerate(plans):
        parcel = Parcel.objects.create(
            fulfilment=fulfilment, store_id=fulfilment.store_id, seq=start + i, count=count
        )
        ParcelLine.objects.bulk_create(
            ParcelLine(parcel=parcel, order_line_id=line_id, quantity=qty)
            for line_id, qty in sorted(plan.items())
        )
        created.append(parcel)
    live.exclude(pk__in=[p.pk for p in created]).update(count=count)
    return created


def _drop(parcel: Parcel, *, why: str) -> None:
    """A parcel without a number goes; one with history (failed waybill calls, prints) is
    kept, cancelled, out of the live seq range."""
    try:
        with transaction.atomic():
            parcel.delete()
    except ProtectedError:
        _retire(parcel, why=why)


def _retire(parcel: Parcel, *, why: str) -> None:
    top = Parcel.objects.filter(fulfilment_id=parcel.fulfilment_id).aggregate(m=Max("seq"))["m"] or 0
    parcel.status = P.CANCELLED
    parcel.seq = max(top, _RETIRED_SEQ) + 1
    parcel.error = why[:300]
    parcel.save(update_fields=["status", "seq", "error", "updated_at"])


def _follow(fulfilment: Fulfilment, *, shippable: bool) -> int:
    """Make this fulfilment's unshipped parcels right again; returns parcels created."""
    unshipped = list(
        Parcel.objects.filter(fulfilment=fulfilment, status__in=UNSHIPPED_STATES).order_by("seq")
    )
    if not shippable:
        for parcel in unshipped:
            if not _numbered(parcel):
                _drop(parcel, why=gettext("the order no longer waits to ship"))
        return 0
    if unshipped and parcels_consistent(fulfilment):
        return 0
    if any(_numbered(p) for p in unshipped):
        # Cannot happen through orders (a numbered parcel blocks changes by hand); keep it visible.
        Parcel.objects.filter(pk__in=[p.pk for p in unshipped]).update(
            error=gettext("parcels do not match the fulfilment any more: cancel the waybill and plan again")
        )
        return 0
    for parcel in unshipped:
        _drop(parcel, why=gettext("replanned"))
    quantities = open_quantities(fulfilment)
    if not quantities:
        return 0
    return len(_create_parcels(fulfilment, [quantities]))


def ensure_parcels(*, fulfilments: Iterable[Fulfilment | int] | None = None) -> int:
    """Every open fulfilment of an approved (or partly shipped) order gets its default parcel;
    parcels of the given fulfilments follow them (see the module docstring). Idempotent:
    returns the number of parcels created. ``fulfilments=None``: every shippable fulfilment
    that has no unshipped parcel yet (the workbench calls this before listing)."""
    created = 0
    if fulfilments is None:
        unshipped = Parcel.objects.filter(fulfilment=OuterRef("pk"), status__in=UNSHIPPED_STATES)
        ids = list(
            _shippable_fulfilments().filter(~Exists(unshipped)).order_by("id").values_list("pk", flat=True)
        )
        for start in range(0, len(ids), 200):
            with transaction.atomic():
                for fulfilment in Fulfilment.objects.select_for_update().filter(
                    pk__in=ids[start : start + 200]
                ):
                    created += _follow(fulfilment, shippable=True)
        return created
    ids = sorted(_ids(fulfilments))
    with transaction.atomic():
        shippable = set(_shippable_fulfilments().filter(pk__in=ids).values_list("pk", flat=True))
        for fulfilment in Fulfilment.objects.select_for_update().filter(pk__in=ids).order_by("pk"):
            created += _follow(fulfilment, shippable=fulfilment.pk in shippable)
    return created


@transaction.atomic
def plan_parcels(*, fulfilment: Fulfilment | int, parcels: list[dict[int, int]], actor=None) -> list[Parcel]:
    """Ship ``fulfilment`` as ``len(parcels)`` parcels, each ``{order line id: quantity}``; per
    line the quantities add up to what is still to ship. Replaces the unshipped parcels;
    refused once one of them has a waybill number or was printed."""
    pk = fulfilment if isinstance(fulfilment, int) else fulfilment.pk
    fulfilment = Fulfilment.objects.select_for_update().get(pk=pk)
    if not _shippable_fulfilments().filter(pk=pk).exists():
        raise ValidationError(gettext("only an open fulfilment of orders waiting to ship can be planned"))
    unshipped = list(Parcel.objects.filter(fulfilment=fulfilment, status__in=UNSHIPPED_STATES))
    if any(_numbered(p) for p in unshipped):
        raise ValidationError(
            gettext("a parcel already has a waybill number or was printed: cancel the waybill first")
        )
    wanted = open_quantities(fulfilment)
    plans: list[dict[int, int]] = []
    totals: dict[int, int] = defaultdict(int)
    for n, raw in enumerate(parcels, start=1):
        plan = {}
        for line_id, qty in dict(raw).items():
            try:
                line_id, qty = int(line_id), int(qty)
            except (TypeError, ValueError):
                raise ValidationError(
                    gettext("parcel %(n)s: quantities must be whole numbers") % {"n": n}
                ) from None
            if qty < 0:
                raise ValidationError(gettext("parcel %(n)s: a quantity cannot be negative") % {"n": n})
            if line_id not in wanted:
                raise ValidationError(
                    gettext("parcel %(n)s: line %(line)s is not to ship in this fulfilment")
                    % {"n": n, "line": line_id}
                )
            if qty:
                plan[line_id] = qty
                totals[line_id] += qty
        if not plan:
            raise ValidationError(gettext("parcel %(n)s is empty") % {"n": n})
        plans.append(plan)
    if not plans:
        raise ValidationError(gettext("plan at least one parcel"))
    if dict(totals) != wanted:
        wrong = min(set(totals) ^ set(wanted) | {k for k in wanted if totals.get(k) != wanted[k]})
        raise ValidationError(
            gettext("line %(line)s: the parcels hold %(got)s, %(want)s are to ship")
            % {"line": wrong, "got": totals.get(wrong, 0), "want": wanted.get(wrong, 0)}
        )
    for parcel in unshipped:
        _drop(parcel, why=gettext("replanned"))
    created = _create_parcels(fulfilment, plans)
    _order_events(fulfilment, f"planned as {len(created)} parcel(s)", actor=actor)
    return created


def _order_events(fulfilment: Fulfilment, message: str, *, actor=None, kind: str = "parcels_planned") -> None:
    from orders.models import OrderEvent

    order_ids = sorted(set(fulfilment.lines.values_list("order_line__order_id", flat=True)))
    OrderEvent.objects.bulk_create(
        OrderEvent(order_id=pk, kind=kind, source="user" if actor else "system", actor=actor, message=message)
        for pk in order_ids
    )


def parcels_consistent(fulfilment: Fulfilment) -> bool:
    """The invariant: per fulfilment line, the live (not cancelled) parcels carry exactly its
    quantity while the fulfilment is open and its orders wait to ship; never more in any case;
    and parcel lines only name lines of their fulfilment."""
    fulfilment_lines = {
        fl.order_line_id: (fl.quantity, fl.order_line.status)
        for fl in fulfilment.lines.select_related("order_line")
    }
    carried: dict[int, int] = defaultdict(int)
    for line_id, qty in (
        ParcelLine.objects.filter(parcel__fulfilment=fulfilment)
        .exclude(parcel__status=P.CANCELLED)
        .values_list("order_line_id", "quantity")
    ):
        if line_id not in fulfilment_lines:
            return False
        carried[line_id] += qty
    open_ = (
        fulfilment.status == Fulfilment.Status.OPEN
        and _shippable_fulfilments().filter(pk=fulfilment.pk).exists()
    )
    for line_id, (qty, status) in fulfilment_lines.items():
        if carried.get(line_id, 0) > qty:
            return False
        if open_ and status not in _CLOSED_LINES and carried.get(line_id, 0) != qty:
            return False
    if open_:
        return True
    # Not shipping (held, cancelled, shipped elsewhere): no unshipped parcel may be left live.
    return not Parcel.objects.filter(fulfilment=fulfilment, status__in=UNSHIPPED_STATES).exists()


# --- orders.hooks: parcels follow fulfilment changes -------------------------------------------------------


def frozen_fulfilments(fulfilment_ids: set[int]) -> dict[int, str]:
    """{fulfilment id: why} for fulfilments whose parcels block a change by hand."""
    found: dict[int, str] = {}
    for parcel in (
        Parcel.objects.filter(fulfilment_id__in=fulfilment_ids)
        .exclude(status=P.CANCELLED)
        .filter(_numbered_q() | Q(status=P.SHIPPED))
        .order_by("fulfilment_id", "seq")
    ):
        if parcel.fulfilment_id in found:
            continue
        if parcel.status == P.SHIPPED:
            why = gettext("parcel %(seq)s/%(count)s has shipped")
        elif parcel.tracking_no:
            why = gettext("parcel %(seq)s/%(count)s has waybill number %(no)s: cancel the waybill first")
        else:
            why = gettext("parcel %(seq)s/%(count)s has a waybill or was printed: cancel the waybill first")
        found[parcel.fulfilment_id] = why % {
            "seq": parcel.seq,
            "count": parcel.count,
            "no": parcel.tracking_no,
        }
    return found


def fulfilments_changing(fulfilment_ids: set[int], *, reason: str, by_platform: bool) -> None:
    """Before orders change these fulfilments: unnumbered parcels go (they are made again
    after the change); numbered ones (only reachable when the platform decided) are shipped
    when the platform lists their number for the order, otherwise cancelled."""
    tracking_by_fulfilment: dict[int, set[str]] = defaultdict(set)
    if reason == "platform_shipped":
        for fid, numbers in (
            FulfilmentLine.objects.filter(fulfilment_id__in=fulfilment_ids)
            .values_list("fulfilment_id", "order_line__order__tracking_numbers")
            .distinct()
        ):
            tracking_by_fulfilment[fid].update(numbers or [])
    shipped: list[int] = []
    for parcel in Parcel.objects.select_for_update().filter(
        fulfilment_id__in=fulfilment_ids, status__in=UNSHIPPED_STATES
    ):
        if not _numbered(parcel):
            _drop(parcel, why=gettext("the fulfilment changed (%(reason)s)") % {"reason": reason})
        elif parcel.tracking_no and parcel.tracking_no in tracking_by_fulfilment.get(
            parcel.fulfilment_id, ()
        ):
            parcel.status, parcel.shipped_at = P.SHIPPED, timezone.now()
            parcel.error = gettext("shipped according to the platform")
            parcel.save(update_fields=["status", "shipped_at", "error", "updated_at"])
            shipped.append(parcel.pk)
        else:
            logger.info("parcel %s cancelled: fulfilment %s %s", parcel.pk, parcel.fulfilment_id, reason)
            _retire(
                parcel,
                why=gettext("cancelled: the order changed on the platform (%(reason)s); recycle its waybill")
                % {"reason": reason},
            )
    if shipped:  # recorded shipped because the platform says so: the layers above follow
        order_ids = ParcelLine.objects.filter(parcel_id__in=shipped).values_list(
            "order_line__order_id", flat=True
        )
        events.publish(
            ParcelsShipped(parcel_ids=tuple(sorted(shipped)), order_ids=tuple(sorted(set(order_ids))))
        )


def fulfilments_changed(fulfilment_ids: set[int]) -> None:
    """After orders changed (or created, or joined) these fulfilments: parcels follow."""
    shippable = set(_shippable_fulfilments().filter(pk__in=fulfilment_ids).values_list("pk", flat=True))
    for fulfilment in Fulfilment.objects.filter(pk__in=fulfilment_ids).order_by("pk"):
        _follow(fulfilment, shippable=fulfilment.pk in shippable)


def platform_order_id(order: Order) -> str:
    """The platform order a parcel of ``order`` is known by at the platform (taking a waybill,
    reading its trace): an after-sale's replacement order (exchange, reissue) is unknown to the
    platform — it ships to its source order's receiver (the same ciphertexts), so the source
    order's id."""
    if order.source_order_id is not None:
        return Order.objects.values_list("platform_order_id", flat=True).get(pk=order.source_order_id)
    return order.platform_order_id


def orders_of_parcel(parcel: Parcel) -> list[Order]:
    return list(
        Order.objects.filter(
            pk__in=OrderLine.objects.filter(parcel_lines__parcel=parcel).values("order_id")
        ).order_by("pk")
    )

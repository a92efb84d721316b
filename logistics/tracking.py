"""Tracking: carrier events per parcel, delivered / exception status, ship-by countdowns and
intercepts.

- ``record(parcel, events, source)`` stores a parcel's carrier events (``TrackingEvent``, unique
  per parcel by ``fingerprint``: the same event pulled twice, or pulled and pushed, is stored
  once) and moves the parcel's ``tracking_status`` / ``last_event_at`` / ``delivered_at`` —
  only ever forward: an event older than the newest one known (a late pull, a push overtaken by
  another) is kept in the timeline but changes nothing;
- ``pull(parcel)`` reads the trace through the shop's connector (``Connector.track``); the beat
  task ``pull_due()`` pulls the current tenant's shipped, undelivered parcels not pulled within
  ``PULL_EVERY`` (oldest pull first, a bounded batch; one parcel's failure is kept on it in
  ``tracking_error`` and retried next round);
- ``record_pushed(...)`` takes the events a platform pushed (WeChat's express-path event, via
  ``channels.events.TrackingPushed``);
- ``overdue(hours=…)`` lists orders not yet shipped whose promised ship-by time (``Order.ship_by``)
  is past or within ``hours``; ``ship_countdown`` renders the countdown (template filter
  ``logistics_tracking.countdown``) and ``ship_by_of_parcels`` gives it per parcel;
- a parcel entering ``exception`` is an alert (``exception_parcels``, ``alert_counts``);
- ``request_intercept(parcel, order, *, actor, reason)`` asks to stop a parcel whose order was
  refunded after it left: one open request per (parcel, order), handed to after-sales. When the
  platform refunds a shipped order (orders raise ``ShippedOrderRefunded``) every shipped parcel
  of it still on its way gets one (``intercept_refunded``, also swept by ``pull_due``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Exists, Min, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext

from channels import carriers
from channels.errors import ChannelError
from channels.models import Store
from channels.services import connector_for
from channels.types import TrackingEvent as ChannelTrackingEvent
from channels.types import TrackingStatus
from logistics import scope
from logistics.models import Intercept, Parcel, TrackingEvent, WriteBack
from logistics.services import platform_order_id
from orders.models import LineStatus, Order, OrderLine, OrderStatus

logger = logging.getLogger(__name__)
T = Parcel.Tracking

#: a shipped parcel on its way is pulled again after this long
PULL_EVERY = timedelta(hours=2)
#: parcels pulled per beat run (per tenant); the rest wait for the next run
PULL_BATCH = 200
#: parcels shipped longer ago than this are no longer pulled (the carrier has forgotten them)
PULL_FOR = timedelta(days=30)
#: a parcel still on its way is stopped by an intercept; these are past stopping
FINAL = (T.DELIVERED, T.RETURNED)
#: to break ties between events of the same second
_RANK = {
    T.NONE: 0,
    T.COLLECTED: 1,
    T.IN_TRANSIT: 2,
    T.DELIVERING: 3,
    T.EXCEPTION: 4,
    T.DELIVERED: 5,
    T.RETURNED: 6,
}


@dataclass(frozen=True)
class Recorded:
    new: int  # events stored now (0: all known already)
    status: str  # the parcel's tracking status afterwards
    changed: bool  # the parcel's status moved


def fingerprint(event: ChannelTrackingEvent) -> str:
    """The same carrier event, pulled or pushed, any number of times → one fingerprint. The
    place is left out (a platform's push may omit what its pull gives)."""
    text = " ".join(event.description.split())
    key = f"{int(event.occurred_at.timestamp())}|{TrackingStatus(event.status).value}|{text}"
    return hashlib.sha256(key.encode()).hexdigest()


def _later(a: tuple[datetime, str], b: tuple[datetime | None, str]) -> bool:
    """Is event ``a`` (time, status) newer than ``b``?"""
    if b[0] is None:
        return True
    return (a[0], _RANK.get(a[1], 0)) > (b[0], _RANK.get(b[1], 0))


def record(parcel: Parcel, events: Iterable[ChannelTrackingEvent], source: str = "pull") -> Recorded:
    """Store ``events`` of ``parcel`` (idempotent) and move its status forward (see module docstring)."""
    rows: dict[str, ChannelTrackingEvent] = {}
    for event in events:
        if event.occurred_at.tzinfo is None:
            raise ValueError("tracking event times must be aware")
        rows.setdefault(fingerprint(event), event)
    with transaction.atomic():
        locked = Parcel.objects.select_for_update().get(pk=parcel.pk)
        known = set(
            TrackingEvent.objects.filter(parcel=locked, fingerprint__in=list(rows)).values_list(
                "fingerprint", flat=True
            )
        )
        fresh = [(fp, e) for fp, e in rows.items() if fp not in known]
        TrackingEvent.objects.bulk_create(
            [
                TrackingEvent(
                    parcel=locked,
                    occurred_at=e.occurred_at,
                    status=TrackingStatus(e.status).value,
                    description=e.description[:500],
                    location=e.location[:100],
                    source=source[:8],
                    fingerprint=fp,
                )
                for fp, e in fresh
            ],
            ignore_conflicts=True,
        )
        before = locked.tracking_status
        newest = (locked.last_event_at, locked.tracking_status)
        for _, e in fresh:
            status = TrackingStatus(e.status).value
            if _later((e.occurred_at, status), newest):
                newest = (e.occurred_at, status)
            if status == T.DELIVERED and (locked.delivered_at is None or e.occurred_at < locked.delivered_at):
                locked.delivered_at = e.occurred_at
        locked.last_event_at, locked.tracking_status = newest
        if locked.tracking_status == T.RETURNED:
            locked.delivered_at = None
        locked.save(update_fields=["last_event_at", "tracking_status", "delivered_at", "updated_at"])
    changed = locked.tracking_status != before
    if changed and locked.tracking_status == T.EXCEPTION:
        logger.warning("parcel %s (%s) has a carrier exception", locked.pk, locked.tracking_no)
    parcel.tracking_status, parcel.last_event_at = locked.tracking_status, locked.last_event_at
    parcel.delivered_at = locked.delivered_at
    return Recorded(new=len(fresh), status=locked.tracking_status, changed=changed)


# --- pulling ------------------------------------------------------------------------------------------------


def _first_order(parcel: Parcel) -> Order | None:
    return (
        Order.objects.filter(pk__in=OrderLine.objects.filter(parcel_lines__parcel=parcel).values("order_id"))
        .order_by("pk")
        .first()
    )


def carrier_code(parcel: Parcel) -> str:
    """The code the parcel was shipped with on its platform (the write-back's), else the table's."""
    used = (
        WriteBack.objects.filter(parcel=parcel, tracking_no=parcel.tracking_no)
        .exclude(carrier_code="")
        .values_list("carrier_code", flat=True)
        .first()
    )
    return used or carriers.code_for(parcel.store.platform, parcel.carrier)


def pull(parcel: Parcel, *, connect=None) -> Recorded:
    """Read ``parcel``'s trace from its platform and record it. Raises ChannelError (kept on the
    parcel as ``tracking_error``) when the platform cannot be reached or refuses."""
    if not parcel.tracking_no:
        raise ValueError("a parcel without a tracking number has no trace")
    order = _first_order(parcel)
    connector = (connect or connector_for)(parcel.store)
    now = timezone.now()
    try:
        events = connector.track(
            carrier_code=carrier_code(parcel),
            tracking_no=parcel.tracking_no,
            platform_order_id=platform_order_id(order) if order else "",
        )
    except ChannelError as exc:
        Parcel.objects.filter(pk=parcel.pk).update(tracking_pulled_at=now, tracking_error=str(exc)[:300])
        raise
    result = record(parcel, events, "pull")
    Parcel.objects.filter(pk=parcel.pk).update(tracking_pulled_at=now, tracking_error="")
    parcel.tracking_pulled_at, parcel.tracking_error = now, ""
    return result


def due_parcels(*, now: datetime | None = None, limit: int = PULL_BATCH):
    now = now or timezone.now()
    return (
        Parcel.objects.filter(status=Parcel.Status.SHIPPED, shipped_at__gte=now - PULL_FOR)
        .exclude(tracking_no="")
        .exclude(tracking_status__in=FINAL)
        .filter(store__status__in=(Store.Status.ACTIVE, Store.Status.ERROR))  # as the order pulls
        .filter(Q(tracking_pulled_at__isnull=True) | Q(tracking_pulled_at__lt=now - PULL_EVERY))
        .select_related("store")
        .order_by("tracking_pulled_at", "pk")[:limit]
    )


def pull_due(*, now: datetime | None = None, limit: int = PULL_BATCH, connect=None) -> dict[str, int]:
    """The beat task's work in the current tenant: pull due parcels, then sweep refunds after
    shipment for intercepts. Returns counts."""
    pulled = failed = new = 0
    for parcel in list(due_parcels(now=now, limit=limit)):
        try:
            result = pull(parcel, connect=connect)
        except ChannelError as exc:
            failed += 1
            logger.info("tracking pull of parcel %s failed: %s", parcel.pk, exc)
            continue
        pulled += 1
        new += result.new
    intercepts = intercept_refunded()
    return {"pulled": pulled, "failed": failed, "events": new, "intercepts": intercepts}


def record_pushed(
    *, store_id: int, tracking_no: str, events: Iterable[ChannelTrackingEvent]
) -> Recorded | None:
    """Events a platform pushed for a tracking number of one of its stores; None when no shipped
    parcel of that store has the number (a number shipped outside ecbao)."""
    parcel = (
        Parcel.objects.filter(store_id=store_id, tracking_no=tracking_no, status=Parcel.Status.SHIPPED)
        .order_by("-pk")
        .first()
    )
    if parcel is None:
        return None
    return record(parcel, events, "push")


# --- ship-by countdown --------------------------------------------------------------------------------------


def overdue(*, hours: float = 0, now: datetime | None = None, warehouse=None):
    """Orders not yet (fully) shipped whose ship-by time is past or within ``hours``, soonest
    first — those with a line still to ship from an own warehouse (``warehouse=None``; a
    supplier's lateness is the dispatches' SLA) or from ``warehouse``."""
    now = now or timezone.now()
    open_lines = OrderLine.objects.filter(order=OuterRef("pk")).exclude(
        status__in=(LineStatus.SHIPPED, LineStatus.CANCELLED, LineStatus.REFUNDED)
    )
    if warehouse is None:
        open_lines = open_lines.filter(scope.own_q(prefix=""))
    else:
        open_lines = open_lines.filter(scope.warehouse_q(warehouse, prefix=""))
    return (
        Order.objects.filter(Exists(open_lines))
        .filter(
            status__in=(
                OrderStatus.APPROVED,
                OrderStatus.PARTIALLY_SHIPPED,
                OrderStatus.TO_REVIEW,
                OrderStatus.HELD,
            ),
            ship_by__isnull=False,
            ship_by__lte=now + timedelta(hours=hours),
        )
        .select_related("store")
        .order_by("ship_by", "pk")
    )


def ship_by_of_parcels(parcel_ids: Iterable[int]) -> dict[int, datetime]:
    """The earliest ship-by time among each parcel's orders (for the workbench's countdown column)."""
    rows = (
        Parcel.objects.filter(pk__in=list(parcel_ids), lines__order_line__order__ship_by__isnull=False)
        .values("pk")
        .annotate(ship_by=Min("lines__order_line__order__ship_by"))
    )
    return {r["pk"]: r["ship_by"] for r in rows}


def ship_countdown(ship_by: datetime | None, *, now: datetime | None = None) -> tuple[str, str]:
    """(text, level) for a ship-by time: "剩 5 小时 12 分" / "超时 2 小时"; level ``late`` (past),
    ``soon`` (within 6 hours) or ``ok``; ("", "") without a ship-by time."""
    if ship_by is None:
        return "", ""
    left = ship_by - (now or timezone.now())
    seconds = int(abs(left.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, minutes = rest // 3600, rest % 3600 // 60
    if days:
        span = gettext("%(d)s d %(h)s h") % {"d": days, "h": hours}
    elif hours:
        span = gettext("%(h)s h %(m)s min") % {"h": hours, "m": minutes}
    else:
        span = gettext("%(m)s min") % {"m": max(minutes, 1) if seconds else 0}
    if left.total_seconds() < 0:
        return gettext("overdue %(span)s") % {"span": span}, "late"
    return gettext("%(span)s left") % {"span": span}, "soon" if left <= timedelta(hours=6) else "ok"


# --- alerts -------------------------------------------------------------------------------------------------


def exception_parcels():
    """Shipped parcels whose newest carrier event is an exception (问题件)."""
    return (
        Parcel.objects.filter(status=Parcel.Status.SHIPPED, tracking_status=T.EXCEPTION)
        .select_related("store")
        .order_by("-last_event_at", "-pk")
    )


def alert_counts(*, hours: float = 6, now: datetime | None = None) -> dict[str, int]:
    return {
        "exceptions": exception_parcels().count(),
        "overdue": overdue(hours=0, now=now).count(),
        "due_soon": overdue(hours=hours, now=now).count(),
        "intercepts": Intercept.objects.filter(status=Intercept.Status.REQUESTED).count(),
    }


# --- intercepts ---------------------------------------------------------------------------------------------


def request_intercept(parcel: Parcel, order: Order, *, actor=None, reason: str = "") -> Intercept:
    """Ask to stop ``parcel`` (shipped, on its way) of ``order``; at most one open request per
    (parcel, order): asking again returns the open one. After-sales takes it from here."""
    if parcel.status != Parcel.Status.SHIPPED:
        raise ValueError(gettext("Only a shipped parcel can be intercepted."))
    if not OrderLine.objects.filter(order=order, parcel_lines__parcel=parcel).exists():
        raise ValueError(gettext("This parcel does not carry this order."))
    open_one = Intercept.objects.filter(parcel=parcel, order=order, status=Intercept.Status.REQUESTED).first()
    if open_one is not None:
        return open_one
    try:
        with transaction.atomic():
            return Intercept.objects.create(parcel=parcel, order=order, actor=actor, reason=reason[:200])
    except IntegrityError:  # asked at the same moment elsewhere
        return Intercept.objects.get(parcel=parcel, order=order, status=Intercept.Status.REQUESTED)


def intercept_refunded(order_ids: Iterable[int] | None = None) -> int:
    """Every shipped parcel still on its way of an order refunded after shipment (``is_refunding``
    on a shipped order) gets an intercept request, once. Returns how many were made."""
    orders = Order.objects.filter(
        is_refunding=True, status__in=(OrderStatus.SHIPPED, OrderStatus.PARTIALLY_SHIPPED)
    )
    if order_ids is not None:
        orders = orders.filter(pk__in=list(order_ids))
    made = 0
    reason = gettext("Refunded on the platform after shipment")
    for order in orders:
        parcels = (
            Parcel.objects.filter(status=Parcel.Status.SHIPPED, lines__order_line__order=order)
            .exclude(tracking_status__in=FINAL)
            .exclude(intercepts__order=order)
            .distinct()
        )
        for parcel in parcels:
            request_intercept(parcel, order, actor=None, reason=reason)
            made += 1
    return made


def close_intercepts(ids, *, done: bool, actor=None) -> int:
    """After-sales reports the outcome of several open requests; returns how many it closed
    (requests already closed are left as they are)."""
    return Intercept.objects.filter(pk__in=list(ids), status=Intercept.Status.REQUESTED).update(
        status=Intercept.Status.DONE if done else Intercept.Status.FAILED, updated_at=timezone.now()
    )


def close_intercept(intercept: Intercept, *, done: bool, actor=None) -> Intercept:
    """After-sales reports the outcome (intercepted, or failed)."""
    Intercept.objects.filter(pk=intercept.pk, status=Intercept.Status.REQUESTED).update(
        status=Intercept.Status.DONE if done else Intercept.Status.FAILED, updated_at=timezone.now()
    )
    intercept.refresh_from_db()
    return intercept


# --- event handlers (logistics.apps) ------------------------------------------------------------------------


def on_tracking_pushed(event) -> None:
    """``channels.events.TrackingPushed``: record the pushed events (a pull catches up on a failure)."""
    events = [
        ChannelTrackingEvent(
            occurred_at=datetime.fromisoformat(at),
            status=TrackingStatus(status),
            description=description,
            location=location,
            platform_status=platform_status,
        )
        for at, status, description, location, platform_status in event.events
    ]
    record_pushed(store_id=event.store_id, tracking_no=event.tracking_no, events=events)


def on_shipped_order_refunded(event) -> None:
    """``orders.events.ShippedOrderRefunded``: intercept its parcels on their way (``pull_due``
    sweeps again, so a failure here is caught up)."""
    intercept_refunded([event.order_id])

"""Platform-native dropship (平台代发): a dispatch whose supplier is on the platform is assigned
there instead of being shipped through ecbao's portal.

Which dispatches: the store is a WeChat 小店 and the supplier has ``wechat_supplier_appid``
(代发管理, by line and quantity), or the store is a Kuaishou shop and the supplier has
``kuaishou_factory_code`` (``open.dropshipping``, a whole order). Douyin has no such API: its
dispatches go through the portal.

**Native instead of the portal's shipping** (decision): the supplier takes a privacy waybill with
the platform's encrypted order code and ships on the platform, so ecbao never hands it a
receiver — not even a mask. The dispatch stays in the portal and the merchant's lists (flagged by
``Dispatch.native``) so both sides see its state, SLA and statement; ecbao's own ship actions must
not ship a native dispatch a second time (one ship path). When the platform refuses the
assignment (no relation with the supplier, nothing left to assign, a merged fulfilment of
several orders, Kuaishou asked for part of an order), the dispatch falls back to the portal:
``native`` goes back to "" and ``native_error`` says why. A temporary failure (timeout, rate
limit, expired token) keeps ``native`` and ``native_error`` visible and is retried by
``assign_task`` with backoff; ``retry`` / the task are idempotent (the connector reads the
order's assignments before assigning, so a lost reply never assigns twice).

State: ``native_id`` (WeChat ``ds_order_id`` / Kuaishou ``allocateOrderCode``), ``native_state``
(the neutral ``channels.types.DropshipState``), per-line ``DispatchLine.delivery_deadline`` from
the platform (and ``Dispatch.ship_by`` = the earliest). It moves on WeChat's pushes
(``channels.events.DropshipChanged`` → ``sync_order_task``) and on polling (``poll_task``,
Kuaishou has no push). When the platform says the supplier shipped, the order is read again
and goes through the order ingestion (``orders.services.ingest_channel_order``: the platform's
shipment ships the lines), the dispatch lines take the shipped quantities the platform reports
and ``suppliers.dispatches.refresh`` (h-dispatch) runs when it exists.

A dispatch that is cancelled (``CANCELLING``) is withdrawn on the platform (``cancel``): done
→ the interception is confirmed (``CANCELLED``, ``intercepted``); the supplier already shipped
→ ``intercepted`` False, ``native_error`` says so.

Hooks: ``dispatches.fulfilments_changed`` calls ``on_dispatch_created(ids)`` and
``on_dispatch_cancelling(ids)``; they enqueue ``assign_task`` / ``cancel_task`` after the commit
for the dispatches that concern the platform (one query per batch).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta

from celery import shared_task
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext

from channels import services as channel_services
from channels.errors import (
    AuthExpired,
    ChannelError,
    NotSupported,
    PlatformRejected,
    RateLimited,
    TemporarilyUnavailable,
)
from channels.events import DropshipChanged, OrderChanged
from channels.types import DropshipAssignment, DropshipState, Platform
from ecbao import events
from ecbao.celery import register_periodic
from orders import services as order_services
from suppliers import dispatches
from suppliers.models import Dispatch, DispatchLine

logger = logging.getLogger("suppliers.native")

#: what a temporary failure is (retried with backoff); anything else is the platform's "no"
TEMPORARY = (TemporarilyUnavailable, RateLimited)
MAX_RETRIES = 8
POLL_AFTER = timedelta(minutes=10)  # poll a live assignment no more often than this [choice]
CLOSED = (Dispatch.Status.SHIPPED, Dispatch.Status.CANCELLED)


def native_kind(dispatch: Dispatch) -> str:
    """``Dispatch.Native`` this dispatch can take on its platform ("" = the portal)."""
    supplier, platform = dispatch.supplier, dispatch.store.platform
    if platform == Platform.WECHAT and supplier.wechat_supplier_appid:
        return Dispatch.Native.WECHAT
    if platform == Platform.KUAISHOU and supplier.kuaishou_factory_code:
        return Dispatch.Native.KUAISHOU
    return Dispatch.Native.NONE


def _supplier_id(dispatch: Dispatch) -> str:
    s = dispatch.supplier
    return s.wechat_supplier_appid if dispatch.native == Dispatch.Native.WECHAT else s.kuaishou_factory_code


def _lines(dispatch: Dispatch) -> list[DispatchLine]:
    return list(dispatch.lines.select_related("order_line__order").order_by("id"))


def platform_lines(dispatch: Dispatch) -> list[tuple[str, str, int]]:
    """(platform product, platform SKU, quantity) in platform-SKU units: an order line counts what
    the listing sells (a combo SKU is one unit however many items ecbao picks for it)."""
    grouped: dict[tuple[str, str], int] = {}
    for line in _lines(dispatch):
        key = (line.order_line.platform_product_id, line.order_line.platform_sku_id)
        grouped[key] = grouped.get(key, 0) + line.quantity
    return [(p, s, q) for (p, s), q in grouped.items()]


def _platform_order_id(dispatch: Dispatch) -> str | None:
    """The one platform order of the dispatch; None for a merged fulfilment of several orders."""
    ids = {line.order_line.order.platform_order_id for line in _lines(dispatch)}
    return ids.pop() if len(ids) == 1 else None


def _known_ids(dispatch: Dispatch) -> tuple[str, ...]:
    """Native ids other dispatches of this store already hold (never adopted by this one)."""
    return tuple(
        Dispatch.objects.filter(store_id=dispatch.store_id)
        .exclude(pk=dispatch.pk)
        .exclude(native_id="")
        .values_list("native_id", flat=True)
    )


def _error(exc: Exception) -> str:
    if isinstance(exc, NotSupported):
        return gettext("The platform has no dropship assignment.")
    if isinstance(exc, AuthExpired):
        return gettext("The shop's authorisation expired: connect the shop again.")
    if isinstance(exc, TEMPORARY):
        return gettext("The platform did not answer; retrying: %(error)s") % {"error": exc}
    return gettext("The platform refused: %(error)s") % {"error": exc}


def _locked(dispatch_id: int) -> Dispatch:
    return Dispatch.objects.select_for_update().select_related("supplier", "store").get(pk=dispatch_id)


def _connector(dispatch: Dispatch):
    return channel_services.connector_for(dispatch.store)


# --- assign -------------------------------------------------------------------------------------


def assign(*, dispatch: Dispatch) -> Dispatch:
    """Assign the dispatch on its platform when its supplier is there (see the module docstring).
    Idempotent: an assigned dispatch is left alone. Raises a temporary ChannelError (after
    recording it in ``native_error``) so that the task retries; a refusal falls back to the portal."""
    with transaction.atomic():
        d = _locked(dispatch.pk)
        kind = native_kind(d)
        if not kind or d.status in CLOSED or d.status == Dispatch.Status.CANCELLING:
            return d
        if d.native_id and d.native_state != DropshipState.CANCELLED:
            return d  # assigned already
        order_id = _platform_order_id(d)
        if order_id is None:
            d.native, d.native_error = (
                Dispatch.Native.NONE,
                gettext("A dispatch of several merged orders cannot be assigned on the platform."),
            )
            d.save(update_fields=["native", "native_error", "updated_at"])
            return d
        d.native = kind
        supplier_id, lines, known = _supplier_id(d), platform_lines(d), _known_ids(d)
        d.save(update_fields=["native", "updated_at"])
    connector = _connector(d)
    try:
        assignment = connector.assign_dropship(
            platform_order_id=order_id, supplier_id=supplier_id, lines=lines, known_ids=known
        )
    except TEMPORARY + (AuthExpired,) as exc:
        _record_error(d.pk, _error(exc))
        raise
    except ChannelError as exc:  # the platform said no: the portal takes over
        logger.info("native assignment of dispatch %s refused: %s", d.pk, exc)
        with transaction.atomic():
            d = _locked(d.pk)
            d.native, d.native_state, d.native_error = Dispatch.Native.NONE, "", _error(exc)[:300]
            d.save(update_fields=["native", "native_state", "native_error", "updated_at"])
        return d
    finally:
        connector.http.close()
    return _apply(d.pk, assignment)


def _shipped_counts(a: DropshipAssignment) -> dict[tuple[str, str], int] | None:
    """Shipped quantity per (product, SKU) as the platform reports it (its lines, else its
    parcels); None when it names none."""
    counts: dict[tuple[str, str], int] = {}
    for x in a.lines:
        if x.shipped_quantity and x.platform_sku_id:
            key = (x.platform_product_id, x.platform_sku_id)
            counts[key] = counts.get(key, 0) + x.shipped_quantity
    if not counts:
        for parcel in a.parcels:
            for product_id, sku_id, qty in parcel.lines:
                counts[(product_id, sku_id)] = counts.get((product_id, sku_id), 0) + qty
    return counts or None


def _record_error(dispatch_id: int, message: str) -> None:
    Dispatch.objects.filter(pk=dispatch_id).update(native_error=message[:300], updated_at=timezone.now())


def _apply(dispatch_id: int, a: DropshipAssignment) -> Dispatch:
    """Store what the platform says of the dispatch's assignment: id, state, per-line deadlines;
    a withdrawal confirms a pending cancellation (intercepted on the platform)."""
    confirm = False
    with transaction.atomic():
        d = _locked(dispatch_id)
        d.native_id, d.native_state, d.native_error = a.native_id, a.state.value, ""
        deadlines = {(x.platform_product_id, x.platform_sku_id): x.delivery_deadline for x in a.lines}
        earliest = min((t for t in deadlines.values() if t), default=None)
        for line in _lines(d):
            key = (line.order_line.platform_product_id, line.order_line.platform_sku_id)
            # the platform's per-line deadline; where a reply omits it, the order's promise
            deadline = deadlines.get(key) or earliest or line.order_line.order.ship_by
            if deadline and line.delivery_deadline != deadline:
                line.delivery_deadline = deadline
                line.save(update_fields=["delivery_deadline"])
        earliest = min((x.delivery_deadline for x in d.lines.all() if x.delivery_deadline), default=None)
        if earliest and (d.ship_by is None or earliest < d.ship_by):
            d.ship_by = earliest
        if a.state == DropshipState.CANCELLED and d.status not in CLOSED:
            if d.status == Dispatch.Status.CANCELLING:
                confirm = True
            else:  # withdrawn on the platform by someone else: the portal takes over
                d.native, d.native_id = Dispatch.Native.NONE, ""
                d.native_error = gettext("The assignment was cancelled on the platform.")
        d.save()
        if confirm:
            d = dispatches.confirm_cancel(dispatch=d, intercepted=True)
    return d


def _follow_shipment(dispatch: Dispatch, a: DropshipAssignment) -> Dispatch:
    """After ``dispatches.refresh``: where the order ingestion could not tell which lines shipped
    (the platform shipped part of the order), the platform's counts for this assignment are
    the dispatch's — per SKU, all of it when the platform names none (Kuaishou's whole oid)."""
    if a.state != DropshipState.SHIPPED or dispatch.status in CLOSED:
        return dispatch
    counts = _shipped_counts(a)
    with transaction.atomic():
        d = _locked(dispatch.pk)
        for line in _lines(d):
            key = (line.order_line.platform_product_id, line.order_line.platform_sku_id)
            take = line.quantity if counts is None else min(line.quantity, counts.get(key, 0))
            if counts is not None:
                counts[key] = counts.get(key, 0) - take
            if take > line.shipped_quantity:
                line.shipped_quantity = take
                line.save(update_fields=["shipped_quantity"])
        rows = list(d.lines.all())
        if d.status not in CLOSED and any(x.shipped_quantity for x in rows):
            done = all(x.shipped_quantity >= x.quantity for x in rows)
            d.status = Dispatch.Status.SHIPPED if done else Dispatch.Status.PARTIALLY_SHIPPED
            d.shipped_at = d.shipped_at or timezone.now()
            d.save(update_fields=["status", "shipped_at", "updated_at"])
    return d


# --- cancel -------------------------------------------------------------------------------------


def cancel(*, dispatch: Dispatch) -> Dispatch:
    """Withdraw a cancelled dispatch's assignment on the platform (idempotent)."""
    d = Dispatch.objects.select_related("supplier", "store").get(pk=dispatch.pk)
    if not d.native or not d.native_id or d.native_state == DropshipState.CANCELLED:
        return d
    order_id = _platform_order_id(d) or ""
    connector = _connector(d)
    try:
        assignment = connector.cancel_dropship(platform_order_id=order_id, native_id=d.native_id)
    except TEMPORARY + (AuthExpired,) as exc:
        _record_error(d.pk, _error(exc))
        raise
    except PlatformRejected as exc:  # the supplier shipped first: not intercepted
        _record_error(
            d.pk, gettext("The supplier shipped before the cancellation: %(error)s") % {"error": exc}
        )
        if d.status == Dispatch.Status.CANCELLING:
            dispatches.confirm_cancel(dispatch=d, intercepted=False)
        return sync(dispatch=d)
    finally:
        connector.http.close()
    return _apply(d.pk, assignment)


# --- follow the platform ------------------------------------------------------------------------


def sync(*, dispatch: Dispatch) -> Dispatch:
    """Read the assignment again; when the supplier shipped, the order is read again and ingested
    (the platform's shipment ships the order's lines) and the dispatch follows."""
    d = Dispatch.objects.select_related("supplier", "store").get(pk=dispatch.pk)
    if not d.native or not d.native_id:
        return d
    order_id = _platform_order_id(d) or ""
    connector = _connector(d)
    try:
        assignment = connector.get_dropship(platform_order_id=order_id, native_id=d.native_id)
        order = connector.get_order(order_id) if assignment.state == DropshipState.SHIPPED else None
    except TEMPORARY + (AuthExpired,) as exc:
        _record_error(d.pk, _error(exc))
        raise
    finally:
        connector.http.close()
    if order is not None:
        with transaction.atomic():
            channel_services.store_order_version(
                store=d.store, order=order, payload=order.raw, source="dropship"
            )
            order_services.ingest_channel_order(store=d.store, co=order)
    d = _apply(d.pk, assignment)
    d = dispatches.refresh(d)  # the lifecycle: shipped lines of the order → the dispatch
    return _follow_shipment(d, assignment)


def retry(*, dispatch: Dispatch) -> Dispatch:
    """The merchant's "retry" on a dispatch whose native assignment failed: assign again (a
    dispatch that fell back to the portal after a refusal is tried once more)."""
    return assign(dispatch=dispatch)


# --- hooks and tasks ----------------------------------------------------------------------------


ON_PLATFORM = Q(store__platform=Platform.WECHAT) & ~Q(supplier__wechat_supplier_appid="") | Q(
    store__platform=Platform.KUAISHOU
) & ~Q(supplier__kuaishou_factory_code="")


def on_dispatch_created(dispatch_ids: Iterable[int]) -> None:
    """``dispatches`` created these: each whose supplier is on the platform is assigned there
    by a task after the commit (one query for the batch)."""
    ids = list(Dispatch.objects.filter(ON_PLATFORM, pk__in=list(dispatch_ids)).values_list("pk", flat=True))
    if ids:
        transaction.on_commit(lambda: [assign_task.delay(i) for i in ids])


def on_dispatch_cancelling(dispatch_ids: Iterable[int]) -> None:
    """``dispatches`` turned these CANCELLING: natively assigned ones are withdrawn by a task."""
    ids = list(
        Dispatch.objects.filter(pk__in=list(dispatch_ids)).exclude(native_id="").values_list("pk", flat=True)
    )
    if ids:
        transaction.on_commit(lambda: [cancel_task.delay(i) for i in ids])


def on_dropship_changed(event: DropshipChanged) -> None:
    """A push said an order's assignments changed: sync its native dispatches."""
    transaction.on_commit(lambda: sync_order_task.delay(event.store_id, event.platform_order_id))


def on_order_changed(event: OrderChanged) -> None:
    """A new version of an order (its shipment, typically): sync its live native dispatches."""
    live = (
        Dispatch.objects.filter(
            store_id=event.store_id, lines__order_line__order__platform_order_id=event.platform_order_id
        )
        .exclude(native="")
        .exclude(status__in=CLOSED)
    )
    if live.exists():
        transaction.on_commit(lambda: sync_order_task.delay(event.store_id, event.platform_order_id))


def subscribe() -> None:
    """``SuppliersConfig.ready``: follow the platform's pushes."""
    events.subscribe(DropshipChanged, on_dropship_changed)
    events.subscribe(OrderChanged, on_order_changed)


def _backoff(task, exc: Exception):
    countdown = min(3600, 30 * 2**task.request.retries)
    if isinstance(exc, RateLimited):
        countdown = max(countdown, int(exc.retry_after))
    return task.retry(exc=exc, countdown=countdown, max_retries=MAX_RETRIES)


def _run(task, action, dispatch_id: int) -> str:
    """One native action on a dispatch; a temporary failure is retried with backoff."""
    try:
        return action(dispatch=Dispatch.objects.get(pk=dispatch_id)).native_state
    except TEMPORARY + (AuthExpired,) as exc:
        raise _backoff(task, exc) from exc


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES)
def assign_task(self, dispatch_id: int) -> str:
    return _run(self, assign, dispatch_id)


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES)
def cancel_task(self, dispatch_id: int) -> str:
    return _run(self, cancel, dispatch_id)


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES)
def sync_order_task(self, store_id: int, platform_order_id: str) -> int:
    ids = list(
        Dispatch.objects.filter(
            store_id=store_id, lines__order_line__order__platform_order_id=platform_order_id
        )
        .exclude(native="")
        .values_list("pk", flat=True)
        .distinct()
    )
    try:
        for pk in ids:
            sync(dispatch=Dispatch.objects.get(pk=pk))
    except TEMPORARY + (AuthExpired,) as exc:
        raise _backoff(self, exc) from exc
    return len(ids)


@shared_task(acks_late=True)
def poll_task(limit: int = 200) -> int:
    """Periodic: live native dispatches not updated for ``POLL_AFTER`` are read again (Kuaishou
    has no dropship push; a lost WeChat push is caught up); failed assignments are retried."""
    stale = timezone.now() - POLL_AFTER
    live = Dispatch.objects.exclude(native="").exclude(status__in=CLOSED).filter(updated_at__lt=stale)
    done = 0
    for d in live.order_by("updated_at")[:limit]:
        try:
            if d.native_id:
                if d.status == Dispatch.Status.CANCELLING:
                    cancel(dispatch=d)
                else:
                    sync(dispatch=d)
            else:
                assign(dispatch=d)
            done += 1
        except ChannelError as exc:
            logger.info("native dispatch %s not synced: %s", d.pk, exc)
    return done


register_periodic("suppliers.native_poll", "suppliers.native.poll_task", 300.0)

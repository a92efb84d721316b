"""Order actions: ingestion from the channel layer, review, holds, cancellation, merge and split.

Ingestion is idempotent (the same version twice changes nothing), order-preserving (an
older platform version never overwrites a newer one: update time first, then the status
progression) and atomic per order (one transaction under a row lock on the order).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import orjson
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, ProtectedError, Q, Subquery, Sum
from django.utils import timezone
from django.utils.translation import gettext

from channels.models import ChannelOrderState, OrderSnapshot, Store
from channels.types import ChannelOrder, channel_order_from_json
from channels.types import OrderStatus as ChannelStatus
from ecbao import events
from ecbao.db import JSONText, copy_models, insert_new, next_ids, row_class
from inventory import services as stock
from inventory.models import Listing, Sku, StockLedgerEntry, Warehouse
from inventory.sync import ensure_listing
from orders import hooks, review, status
from orders.events import ShippedOrderRefunded
from orders.models import (
    Fulfilment,
    FulfilmentLine,
    IngestionFailure,
    LineStatus,
    Order,
    OrderEvent,
    OrderLine,
    OrderStatus,
    ReviewRule,
)

logger = logging.getLogger(__name__)
S = OrderStatus

_CHANNEL_RANK = {s.value: s.rank for s in ChannelStatus}


def _fingerprint(co: ChannelOrder) -> str:
    """Digest of the platform-given receiver identity; "" when the platform gives none (never merged automatically)."""
    key = co.receiver.fingerprint()
    return hashlib.sha256(key.encode()).hexdigest() if key else ""


def _receiver_changed(order: Order, co: ChannelOrder, fingerprint: str) -> bool:
    """Identity against identity when both versions carry one; else the masks and the region
    (ciphertexts are re-encrypted between versions and prove nothing)."""
    if order.receiver_fingerprint and fingerprint:
        return order.receiver_fingerprint != fingerprint
    r = co.receiver
    old = (
        order.receiver_name_mask,
        order.receiver_phone_mask,
        order.receiver_address_mask,
        order.province,
        order.city,
        order.district,
    )
    new = (
        r.name.mask[:100],
        r.phone.mask[:40],
        r.address.mask[:300],
        r.province[:40],
        r.city[:40],
        r.district[:40],
    )
    return any(old) and old != new


def _phone_tail(mask: str) -> str:
    digits = "".join(ch for ch in mask if ch.isdigit())
    return digits[-4:] if len(digits) >= 4 else ""


def _is_stale(order: Order, co: ChannelOrder) -> bool:
    if co.updated_at != order.platform_updated_at:
        return co.updated_at < order.platform_updated_at
    return _CHANNEL_RANK[co.status.value] <= _CHANNEL_RANK.get(order.channel_status, -1)


def _event(
    order: Order,
    kind: str,
    *,
    source: str = "platform",
    message: str = "",
    before=None,
    after=None,
    actor=None,
) -> None:
    OrderEvent.objects.create(
        order=order,
        kind=kind,
        source=source,
        message=message[:500],
        before=before or {},
        after=after or {},
        actor=actor,
    )


def add_event(order: Order, kind: str, *, source: str = "platform", message: str = "", actor=None) -> None:
    """Write an order event (the order's timeline) from a higher layer (e.g. after-sales)."""
    _event(order, kind, source=source, message=message, actor=actor)


# --- ingestion --------------------------------------------------------------------------------------


@contextmanager
def ingestion_transaction():
    """A transaction for applying stored channel versions, committed without waiting for the
    WAL flush (``synchronous_commit = off``, this transaction only).

    Safe because nothing here is the only copy: the versions it applies were committed
    durably by the channel layer first, so a crash that loses the last few hundred
    milliseconds of ingestion only leaves versions that ``reconcile_ingestion`` applies again.
    Never use it for a transaction that stores platform data itself."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
        yield


def ingest_snapshots(*, snapshot_ids: list[int], batch: int = 500, progress=None) -> int:
    """Apply many stored channel versions, ``batch`` per transaction, through ``ingest_batch``
    (set-based for new orders); ``progress(done)`` after each. A version that cannot be applied
    is recorded as an ``IngestionFailure``. Returns the number of versions read."""
    done = 0
    for start in range(0, len(snapshot_ids), batch):
        chunk = snapshot_ids[start : start + batch]
        by_store: dict[int, list[tuple[ChannelOrder, int]]] = {}
        with connection.cursor() as cursor:  # the normalised JSON as text, parsed by orjson
            cursor.execute(
                f"SELECT id, store_id, normalized::text FROM {OrderSnapshot._meta.db_table} "
                "WHERE id = ANY(%s) ORDER BY id",
                [list(chunk)],
            )
            rows = cursor.fetchall()
        newest: dict[tuple[int, str], tuple[int, ChannelOrder, int]] = {}
        for pk, store_id, normalized in rows:
            co = channel_order_from_json(orjson.loads(normalized))
            by_store.setdefault(store_id, []).append((co, pk))
            current = newest.get((store_id, co.platform_order_id))
            if current is None or _newer(co, current[1]):
                newest[(store_id, co.platform_order_id)] = (store_id, co, pk)
            done += 1
        stores = {store.pk: store for store in Store.objects.filter(pk__in=by_store)}
        try:
            with ingestion_transaction():
                _lock_stock_of(by_store)
                # Earliest payment first across every store of the chunk (stores share stock):
                # consecutive versions of one store go to ``ingest_batch`` together.
                ordered = sorted(newest.values(), key=lambda x: _payment_order(x[1]))
                for store_id, segment in itertools.groupby(ordered, key=lambda x: x[0]):
                    ingest_batch(store=stores[store_id], items=[(co, pk) for _, co, pk in segment])
        except Exception:
            # One bad version must not hold back the rest: apply them one by one; what still
            # fails stays unapplied (logged) and the reconcile sweep tries it again.
            logger.exception("batch ingestion failed; applying %s versions one by one", len(chunk))
            for store in stores.values():
                for co, snapshot_id in by_store[store.pk]:
                    try:
                        with transaction.atomic():
                            _lock_stock_of({store.pk: [(co, snapshot_id)]})
                            ingest_channel_order(store=store, co=co, snapshot_id=snapshot_id)
                    except Exception as exc:
                        logger.exception(
                            "ingesting order %s (snapshot %s) failed", co.platform_order_id, snapshot_id
                        )
                        _record_failure(store, co.platform_order_id, snapshot_id, exc)
        if progress is not None:
            progress(done)
    return done


def _lock_stock_of(by_store: dict[int, list[tuple[ChannelOrder, int | None]]]) -> None:
    """Lock every stock row these versions can touch, up front, in the one global order
    (``inventory.services.lock_stock``): the SKUs of their lines' listings (or, for a listing
    not made yet, of their merchant codes) and of the orders' existing lines. A transaction
    spans several stores, each reserving in several statements and the known orders line by
    line; locked in that order, two transactions could deadlock (issue 11 d6)."""
    listings, lines, codes = Q(pk__in=[]), Q(pk__in=[]), set()
    for store_id, items in by_store.items():
        listings |= Q(
            store_id=store_id, platform_sku_id__in={cl.platform_sku_id for co, _ in items for cl in co.lines}
        )
        lines |= Q(
            order__store_id=store_id, order__platform_order_id__in=[co.platform_order_id for co, _ in items]
        )
        codes |= {cl.merchant_code for co, _ in items for cl in co.lines if cl.merchant_code}
    sku_ids = set(Listing.objects.filter(listings, sku__isnull=False).values_list("sku_id", flat=True))
    sku_ids |= set(Sku.objects.filter(merchant_code__in=codes).values_list("pk", flat=True))
    sku_ids |= set(OrderLine.objects.filter(lines, sku__isnull=False).values_list("sku_id", flat=True))
    stock.lock_stock(sku_ids=sku_ids)


RETRY_FIRST = timedelta(minutes=5)  # the pause after a first failure; doubled after each further one
RETRY_LONGEST = timedelta(hours=6)


def _record_failure(store: Store, platform_order_id: str, snapshot_id: int, exc: Exception) -> None:
    now = timezone.now()
    error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
    failure, created = IngestionFailure.objects.get_or_create(
        store=store,
        platform_order_id=platform_order_id,
        defaults={
            "snapshot_id": snapshot_id,
            "last_error": error,
            "first_failed_at": now,
            "last_failed_at": now,
            "next_attempt_at": now + RETRY_FIRST,
        },
    )
    if created:
        return
    if failure.snapshot_id != snapshot_id:  # a newer version fails now: its own count
        failure.snapshot_id, failure.attempts, failure.first_failed_at = snapshot_id, 0, now
    failure.attempts += 1
    failure.last_error, failure.last_failed_at = error, now
    failure.next_attempt_at = now + min(RETRY_FIRST * 2 ** (failure.attempts - 1), RETRY_LONGEST)
    failure.save()


def _unreflected():
    """The newest channel versions that no order reflects yet."""
    reflected = Order.objects.filter(
        store_id=OuterRef("store_id"),
        platform_order_id=OuterRef("platform_order_id"),
        platform_updated_at__gte=OuterRef("platform_updated_at"),
    )
    return ChannelOrderState.objects.filter(~Exists(reflected))


def reconcile_ingestion(*, limit: int = 1000, retry_now: bool = False, progress=None) -> int:
    """Ingest the newest channel versions that no order reflects yet, up to ``limit``.

    ``OrderChanged`` reaches ingestion through a queued task; if enqueueing failed (broker
    down) or the task gave up, the version is still stored in the channel layer, and this
    periodic sweep picks it up. Versions never tried come first, then failed ones whose pause
    is over (oldest due first): failures never starve newer versions. ``retry_now`` (the
    workbench's button) also retries failures still pausing. ``progress(done, total)`` after
    each batch. Returns the number of versions tried."""
    now = timezone.now()
    failed = IngestionFailure.objects.filter(
        store_id=OuterRef("store_id"),
        platform_order_id=OuterRef("platform_order_id"),
        snapshot_id=OuterRef("snapshot_id"),
    )
    candidates = _unreflected().annotate(next_at=Subquery(failed.values("next_attempt_at")[:1]))
    if not retry_now:
        candidates = candidates.filter(Q(next_at__isnull=True) | Q(next_at__lte=now))
    pending = list(
        candidates.order_by(F("next_at").asc(nulls_first=True), "platform_updated_at").values_list(
            "snapshot_id", flat=True
        )[:limit]
    )
    if progress is not None:
        progress(0, len(pending))
    tried = ingest_snapshots(
        snapshot_ids=pending, progress=progress and (lambda done: progress(done, len(pending)))
    )
    # A failure is over once its order reflects that version or a newer one replaced it.
    still = _unreflected().filter(
        store_id=OuterRef("store_id"),
        platform_order_id=OuterRef("platform_order_id"),
        snapshot_id=OuterRef("snapshot_id"),
    )
    IngestionFailure.objects.filter(~Exists(still)).delete()
    cache.set(BACKLOG_CACHE_KEY, {"checked_at": timezone.now().isoformat()}, None)
    return tried


BACKLOG_CACHE_KEY = "orders:ingestion-backlog"
BACKLOG_SHOWN = 10


def ingestion_backlog() -> dict:
    """Platform versions of this tenant that could not be applied: how many, the latest
    ``BACKLOG_SHOWN`` (attempts, next attempt, last error) and when the sweep last ran."""
    failing = IngestionFailure.objects.count()
    return {
        "failing": failing,
        "failures": list(IngestionFailure.objects.select_related("store")[:BACKLOG_SHOWN]) if failing else [],
        "checked_at": (cache.get(BACKLOG_CACHE_KEY) or {}).get("checked_at"),
    }


@transaction.atomic
def ingest_channel_order(*, store: Store, co: ChannelOrder, snapshot_id: int | None = None) -> Order:
    order = (
        Order.objects.select_for_update().filter(store=store, platform_order_id=co.platform_order_id).first()
    )
    if order is not None and _is_stale(order, co):
        return order
    created = order is None
    # The platform's unpaid → paid change (not ecbao's status: an order held by hand before
    # payment is paid all the same, and its stock must be reserved then).
    newly_paid = co.status not in (ChannelStatus.UNPAID, ChannelStatus.CANCELLED) and (
        created or order.channel_status == ChannelStatus.UNPAID.value
    )
    if created:
        order = Order(
            store=store,
            platform=co.platform.value,
            platform_order_id=co.platform_order_id,
            status=S.PENDING_PAYMENT,
        )
    before = {
        "channel_status": order.channel_status,
        "platform_status": order.platform_status,
        "paid_fen": order.paid_fen,
        "buyer_remark": order.buyer_remark,
        "seller_remark": order.seller_remark,
    }
    fingerprint = _fingerprint(co)
    address_changed = not created and _receiver_changed(order, co, fingerprint)
    _copy_fields(order, co, fingerprint, snapshot_id)
    if address_changed and order.status not in status.SHIPPED_STATES:
        order.address_changed = True
    order.save()
    unmatched_saved = order.has_unmatched
    lines = _upsert_lines(order, co)
    if order.has_unmatched != unmatched_saved:  # computed from the lines, saved for unpaid orders too
        order.save(update_fields=["has_unmatched", "updated_at"])
    after = {
        "channel_status": order.channel_status,
        "platform_status": order.platform_status,
        "paid_fen": order.paid_fen,
        "buyer_remark": order.buyer_remark,
        "seller_remark": order.seller_remark,
    }
    if created:
        _event(order, "created", message=f"{co.platform.value} order {co.platform_order_id}", after=after)
    elif before != after:
        _event(order, "platform_updated", before=before, after=after)
    if address_changed:
        _event(order, "address_changed", message="receiver changed on the platform")
    _apply_channel_status(order, co, lines, newly_paid=newly_paid)
    return order


# --- set-based ingestion ---------------------------------------------------------------------------------

_BATCHABLE = frozenset({ChannelStatus.UNPAID, ChannelStatus.PAID})


def _newer(a: ChannelOrder, b: ChannelOrder) -> bool:
    return (a.updated_at, _CHANNEL_RANK[a.status.value]) > (b.updated_at, _CHANNEL_RANK[b.status.value])


def ingest_batch(*, store: Store, items: list[tuple[ChannelOrder, int | None]]) -> int:
    """Apply many channel versions of one store (the caller's transaction), with the same result
    as ``ingest_channel_order`` for each newest version.

    Orders ecbao has not seen that arrive unpaid or paid without refunds — the bulk of any
    stream — are created set-based: one statement each for the orders, lines, reservations
    (``inventory.services.reserve_many``), events, fulfilments and final statuses. Everything
    else (updates of known orders, orders first seen shipped, cancelled or refunding, orders
    another worker created meanwhile) goes through ``ingest_channel_order`` one by one, in a
    savepoint each. All versions are applied in payment order, so the earliest payment gets
    short stock whether its order is new or known. Returns the number of orders created
    set-based."""
    newest: dict[str, tuple[ChannelOrder, int | None]] = {}
    for co, snapshot_id in items:
        current = newest.get(co.platform_order_id)
        if current is None or _newer(co, current[0]):
            newest[co.platform_order_id] = (co, snapshot_id)
    known = set(
        Order.objects.filter(store=store, platform_order_id__in=list(newest)).values_list(
            "platform_order_id", flat=True
        )
    )
    # Stock goes to the earliest payment first, as if the orders had arrived one by one: every
    # version (new orders and known ones that just became paid alike) in payment order; each
    # run of consecutive new orders is created set-based.
    created: set[str] = set()
    run: list[tuple[ChannelOrder, int | None]] = []

    def flush() -> None:
        if run:
            done = _create_orders(store, run)
            created.update(done)
            for co, sid in run:  # another worker created it meanwhile
                if co.platform_order_id not in done:
                    ingest_channel_order(store=store, co=co, snapshot_id=sid)
            run.clear()

    for co, sid in sorted(newest.values(), key=lambda x: _payment_order(x[0])):
        if (
            co.platform_order_id not in known
            and co.status in _BATCHABLE
            and co.lines
            and not any(x.refund_state for x in co.lines)
        ):
            run.append((co, sid))
        else:
            flush()
            ingest_channel_order(store=store, co=co, snapshot_id=sid)
    flush()
    return len(created)


def _payment_order(co: ChannelOrder) -> tuple:
    return (co.paid_at or co.created_at, co.platform_order_id)


_OrderRow = row_class(Order)  # an order row for COPY (review rules read it like an Order)
_FulfilmentRow = row_class(Fulfilment)


@dataclass(slots=True)
class _LineRow:
    """An order line row for COPY (a model instance costs several times more to build)."""

    id: int
    platform_line_id: str
    platform_product_id: str
    platform_sku_id: str
    listing_id: int
    sku_id: int | None
    merchant_code: str
    title: str
    spec: str
    quantity: int
    unit_price_fen: int
    paid_fen: int
    is_gift: bool
    refund_state: str
    status: str
    order_id: int | None = None
    shipped_quantity: int = 0
    warehouse_id: int | None = None
    route_note: str = ""
    route_version: int | None = None
    route_rule_id: int | None = None

    @property
    def reservation_key(self) -> str:
        return f"order-line:{self.id}"  # as OrderLine.reservation_key


_EMPTY = JSONText("{}")
_FROM_PENDING = JSONText(json.dumps({"status": S.PENDING_PAYMENT.value}))
_TO_STATUS = {s: JSONText(json.dumps({"status": s.value})) for s in (S.HELD, S.APPROVED, S.TO_REVIEW)}


@dataclass(slots=True)
class _EventRow:
    order: _OrderRow
    kind: str
    source: str
    message: str
    before: dict | JSONText = _EMPTY
    after: dict | JSONText = _EMPTY
    actor_id: int | None = None

    @property
    def order_id(self) -> int:
        return self.order.pk


def _create_orders(store: Store, fresh: list[tuple[ChannelOrder, int | None]]) -> set[str]:
    """The set-based half of ``ingest_batch``: returns the platform ids it created.

    Line ids are drawn first, so stock is reserved and the review decided before the orders
    are written — each order row is written once, with its final status. An order another
    worker inserted meanwhile is skipped by the insert; its reservations are given back."""
    # Stock goes to the earliest payment first, as if the orders had arrived one by one.
    fresh = sorted(fresh, key=lambda x: _payment_order(x[0]))
    listings = _listings_for(store, [cl for co, _ in fresh for cl in co.lines])
    line_ids = iter(next_ids(OrderLine, sum(len(co.lines) for co, _ in fresh)))
    built: list[tuple[_OrderRow, ChannelOrder, list[_LineRow]]] = []
    for co, snapshot_id in fresh:
        order = _OrderRow(
            store_id=store.pk,
            platform=co.platform.value,
            platform_order_id=co.platform_order_id,
            status=S.PENDING_PAYMENT,
        )
        _copy_fields(order, co, _fingerprint(co), snapshot_id)
        lines = [
            _line_row(cl, listings[(cl.platform_product_id, cl.platform_sku_id)], next(line_ids))
            for cl in co.lines
        ]
        order.has_unmatched = any(line.status == LineStatus.UNMATCHED for line in lines)
        built.append((order, co, lines))
    paid = [
        (order, [line for line in lines if line.sku_id is not None])
        for order, co, lines in built
        if co.status == ChannelStatus.PAID
    ]
    _apply_routes([(order, lines) for order, lines in paid if lines])
    by_warehouse: dict[int, list[tuple[str, int, int]]] = defaultdict(list)
    for _, lines in paid:
        for line in lines:
            if line.status != LineStatus.UNROUTED:
                by_warehouse[line.warehouse_id].append((line.reservation_key, line.sku_id, line.quantity))
    warehouses = Warehouse.objects.in_bulk(list(by_warehouse))
    reserved: dict[str, bool] = {}
    for warehouse_id, wanted in sorted(by_warehouse.items()):
        reserved.update(stock.reserve_many(wanted, warehouse=warehouses[warehouse_id]))
    rules = review.active_rules()
    decided: dict[str, tuple[str, str]] = {}
    for order, co, lines in built:
        if co.status != ChannelStatus.PAID:
            continue
        for line in lines:
            if line.sku_id is not None and line.status != LineStatus.UNROUTED:
                line.status = (
                    LineStatus.RESERVED if reserved.get(line.reservation_key) else LineStatus.OUT_OF_STOCK
                )
        order.is_out_of_stock = any(line.status == LineStatus.OUT_OF_STOCK for line in lines)
        decision, reasons = review.decide(order, rules)
        if any(line.status == LineStatus.UNROUTED for line in lines):
            decision, reasons = "held", [*reasons, hooks.ROUTING_HOLD]
        if decision == "held":
            order.hold_reasons = sorted(set(reasons))
            decided[order.platform_order_id] = (S.HELD, "held by review rules: " + ", ".join(reasons))
        elif decision == "approved":
            decided[order.platform_order_id] = (S.APPROVED, "approved automatically")
        else:
            decided[order.platform_order_id] = (S.TO_REVIEW, "waiting for review")
        order.status = decided[order.platform_order_id][0]
    inserted = dict(
        (pid, pk)
        for pk, pid in insert_new(
            Order,
            [order for order, _, _ in built],
            conflict=("store", "platform_order_id"),
            returning=("id", "platform_order_id"),
        )
    )
    for order, _, lines in built:
        if order.platform_order_id not in inserted:
            for line in lines:
                stock.release_reservation(
                    source_key=line.reservation_key, reason="order created by another worker"
                )
    built = [x for x in built if x[0].platform_order_id in inserted]
    events_: list[_EventRow] = []
    approved: list[tuple[_OrderRow, list[_LineRow]]] = []
    for order, co, lines in built:
        order.pk = inserted[order.platform_order_id]
        for line in lines:
            line.order_id = order.pk
        events_.append(
            _EventRow(
                order,
                "created",
                "platform",
                f"{co.platform.value} order {co.platform_order_id}",
                after={
                    "channel_status": order.channel_status,
                    "platform_status": order.platform_status,
                    "paid_fen": order.paid_fen,
                    "buyer_remark": order.buyer_remark,
                    "seller_remark": order.seller_remark,
                },
            )
        )
        if co.status != ChannelStatus.PAID:
            continue
        target, message = decided[order.platform_order_id]
        events_.append(
            _EventRow(
                order,
                "paid",
                "platform",
                "paid; stock short" if order.is_out_of_stock else "paid; stock reserved",
            )
        )
        events_.append(
            _EventRow(
                order,
                "status_changed",
                "rule",
                message,
                before=_FROM_PENDING,
                after=_TO_STATUS[target],
            )
        )
        if target == S.APPROVED:
            approved.append((order, lines))
    copy_models(OrderLine, [line for _, _, lines in built for line in lines], with_pk=True)
    events_.extend(_open_fulfilments(store, approved, merge=rules[ReviewRule.Kind.AUTO_MERGE].enabled))
    copy_models(OrderEvent, events_)
    return {order.platform_order_id for order, _, _ in built}


def _listings_for(store: Store, lines) -> dict[tuple[str, str], Listing]:
    keys = {(cl.platform_product_id, cl.platform_sku_id) for cl in lines}
    found = {
        (x.platform_product_id, x.platform_sku_id): x
        for x in Listing.objects.filter(store=store, platform_sku_id__in={sku for _, sku in keys})
    }
    # New listings are created in key order: two batches of one store that bring the same new
    # SKUs in a different order would otherwise deadlock on the listing's unique index.
    for cl in sorted(lines, key=lambda cl: (cl.platform_product_id, cl.platform_sku_id)):
        key = (cl.platform_product_id, cl.platform_sku_id)
        if key not in found:
            found[key] = ensure_listing(
                store=store,
                platform_product_id=cl.platform_product_id,
                platform_sku_id=cl.platform_sku_id,
                merchant_code=cl.merchant_code,
                title=cl.title,
                spec=cl.spec,
            )
    return found


def _line_row(cl, listing: Listing, pk: int) -> _LineRow:
    matched = listing.match == Listing.Match.MATCHED and listing.sku_id is not None
    return _LineRow(
        id=pk,
        platform_line_id=cl.platform_line_id,
        platform_product_id=cl.platform_product_id,
        platform_sku_id=cl.platform_sku_id,
        listing_id=listing.pk,
        sku_id=listing.sku_id if matched else None,
        merchant_code=cl.merchant_code,
        title=cl.title[:300],
        spec=cl.spec[:200],
        quantity=cl.quantity,
        unit_price_fen=cl.unit_price_fen,
        paid_fen=cl.paid_fen,
        is_gift=cl.is_gift,
        refund_state=cl.refund_state,
        status=LineStatus.PENDING if matched else LineStatus.UNMATCHED,
    )


@dataclass(slots=True)
class _FulfilmentLineRow:
    fulfilment_id: int
    order_line_id: int
    quantity: int


def _open_fulfilments(
    store: Store, approved: list[tuple[_OrderRow, list[_LineRow]]], *, merge: bool
) -> list[_EventRow]:
    """``_open_fulfilment`` for many new approved orders: one fulfilment per order and warehouse
    that ships its lines, or, with the auto-merge rule, per receiver and warehouse (joining a
    waiting fulfilment of the last 48 hours)."""
    if not approved:
        return []
    waiting: dict[tuple[str, int | None], Fulfilment | _FulfilmentRow] = {}
    if merge:
        since = timezone.now() - timedelta(hours=MERGE_WINDOW_HOURS)
        fingerprints = {o.receiver_fingerprint for o, _ in approved if o.receiver_fingerprint}
        approved_line = FulfilmentLine.objects.filter(
            fulfilment=OuterRef("pk"), order_line__order__status=S.APPROVED
        )
        for f in (
            Fulfilment.objects.filter(
                store=store,
                receiver_fingerprint__in=fingerprints,
                status=Fulfilment.Status.OPEN,
                created_at__gte=since,
            )
            .filter(Exists(approved_line))
            .order_by("id")
        ):
            waiting.setdefault((f.receiver_fingerprint, f.warehouse_id), f)
        blocked = hooks.frozen(f.pk for f in waiting.values())  # a parcel with a waybill takes no more lines
        waiting = {key: f for key, f in waiting.items() if f.pk not in blocked}
    targets: list[tuple[_OrderRow, list[_LineRow], Fulfilment | _FulfilmentRow]] = []
    merged: list[_OrderRow] = []
    unmerged: list[_OrderRow] = []  # the platform gives no receiver identity: never merged automatically
    new: list[_FulfilmentRow] = []
    for order, lines in approved:
        joined_one = False
        for warehouse_id, group in _by_warehouse(lines):
            key = (order.receiver_fingerprint, warehouse_id)
            target = waiting.get(key) if merge and order.receiver_fingerprint else None
            if target is None:
                target = _FulfilmentRow(
                    store_id=store.pk,
                    receiver_fingerprint=order.receiver_fingerprint,
                    warehouse_id=warehouse_id,
                )
                new.append(target)
                if merge and order.receiver_fingerprint:
                    waiting[key] = target
            else:
                target.is_merged = True
                joined_one = True
            targets.append((order, group, target))
        if joined_one:
            merged.append(order)
        if merge and not order.receiver_fingerprint:
            unmerged.append(order)
    for fulfilment, pk in zip(new, next_ids(Fulfilment, len(new)), strict=True):
        fulfilment.pk = pk
    copy_models(Fulfilment, new, with_pk=True)
    new_ids = {f.pk for f in new}
    joined = {f.pk for _, _, f in targets if f.is_merged and f.pk not in new_ids}
    if joined:
        Fulfilment.objects.filter(pk__in=joined).update(is_merged=True)
    copy_models(
        FulfilmentLine,
        [
            _FulfilmentLineRow(target.pk, line.id, line.quantity)
            for _, group, target in targets
            for line in group
        ],
    )
    # Parcels of a waiting fulfilment that took new lines follow; a new fulfilment of the
    # default warehouse gets its parcels when shipping asks (logistics.ensure_parcels), one of
    # another warehouse (a supplier's: its dispatch) is announced now.
    default_id = stock.default_warehouse().pk
    hooks.after(joined | {f.pk for f in new if f.warehouse_id not in (None, default_id)})
    into: dict[int, list[int]] = defaultdict(list)
    for order, _, target in targets:
        if target.is_merged:
            into[order.pk].append(target.pk)
    return [
        _EventRow(order, "merged", "rule", f"merged into fulfilment {', '.join(map(str, into[order.pk]))}")
        for order in merged
    ] + [_EventRow(order, NOT_MERGED, "rule", "") for order in unmerged]


_PLATFORM_DONE = (ChannelStatus.SHIPPED, ChannelStatus.COMPLETED, ChannelStatus.CANCELLED)


def _copy_fields(order: Order, co: ChannelOrder, fingerprint: str, snapshot_id: int | None) -> None:
    r = co.receiver
    order.channel_status = co.status.value
    order.platform_status = co.platform_status
    order.buyer_id = co.buyer_id
    order.receiver_name_cipher, order.receiver_name_mask = r.name.cipher, r.name.mask[:100]
    order.receiver_phone_cipher, order.receiver_phone_mask = r.phone.cipher, r.phone.mask[:40]
    order.receiver_phone_index = r.phone.index[:200]
    order.receiver_address_cipher, order.receiver_address_mask = r.address.cipher, r.address.mask[:300]
    order.province, order.city, order.district = r.province[:40], r.city[:40], r.district[:40]
    order.receiver_fingerprint = fingerprint
    order.phone_tail = _phone_tail(r.phone.mask)
    listed = {p.tracking_no for p in co.packages if p.tracking_no}
    if order.status in status.SHIPPED_STATES and co.status not in _PLATFORM_DONE:
        # ecbao shipped parcels whose write-back has not landed yet: keep their numbers until
        # the platform says the whole order shipped (then its list is the truth).
        listed |= set(order.tracking_numbers or ())
    order.tracking_numbers = sorted(listed)
    order.buyer_remark, order.seller_remark = co.buyer_remark, co.seller_remark
    order.goods_fen, order.freight_fen = co.goods_fen, co.freight_fen
    order.discount_fen, order.paid_fen = co.discount_fen, co.paid_fen
    order.placed_at = co.created_at
    order.paid_at, order.ship_by = co.paid_at, co.ship_by
    order.shipped_at, order.finished_at = co.shipped_at, co.finished_at
    order.platform_updated_at = co.updated_at
    order.ship_blocked_reason = co.ship_blocked_reason[:200]
    order.snapshot_id = snapshot_id
    # Two sources: the platform's refund marks on the lines, and an open after-sale (aftersales,
    # through ``hooks.refund_open``) that may be ahead of the order's own version.
    order.is_refunding = any(line.refund_state for line in co.lines) or (
        order.pk is not None and hooks.refund_open(order.pk)
    )


def _upsert_lines(order: Order, co: ChannelOrder) -> list[OrderLine]:
    existing = {line.platform_line_id: line for line in order.lines.all()}
    result = []
    for cl in co.lines:
        line = existing.get(cl.platform_line_id)
        if line is None:
            listing = ensure_listing(
                store=order.store,
                platform_product_id=cl.platform_product_id,
                platform_sku_id=cl.platform_sku_id,
                merchant_code=cl.merchant_code,
                title=cl.title,
                spec=cl.spec,
            )
            line = OrderLine(
                order=order,
                platform_line_id=cl.platform_line_id,
                listing=listing,
                sku_id=listing.sku_id if listing.match == Listing.Match.MATCHED else None,
                status=LineStatus.PENDING,
            )
        line.platform_product_id, line.platform_sku_id = cl.platform_product_id, cl.platform_sku_id
        line.merchant_code, line.title, line.spec = cl.merchant_code, cl.title[:300], cl.spec[:200]
        line.quantity, line.unit_price_fen, line.paid_fen = cl.quantity, cl.unit_price_fen, cl.paid_fen
        line.is_gift, line.refund_state = cl.is_gift, cl.refund_state
        if line.sku_id is None and line.status == LineStatus.PENDING:
            line.status = LineStatus.UNMATCHED
        line.save()
        result.append(line)
    order.has_unmatched = any(line.status == LineStatus.UNMATCHED for line in result)
    return result


def _apply_channel_status(
    order: Order, co: ChannelOrder, lines: list[OrderLine], *, newly_paid: bool = False
) -> None:
    cs = co.status
    if cs == ChannelStatus.UNPAID:
        return
    if cs == ChannelStatus.CANCELLED:
        _release_lines(order, lines, reason="cancelled on the platform")
        if order.status in status.OPEN_STATES:
            status.transition(order, S.CANCELLED, source="platform", message="cancelled on the platform")
        elif order.status in status.SHIPPED_STATES and not order.is_refunding:
            order.is_refunding = True
            order.save(update_fields=["is_refunding", "updated_at"])
            _event(order, "refund_after_shipment", message="platform cancelled a shipped order")
            events.publish(ShippedOrderRefunded(order_id=order.pk))
        return
    # Paid or later: lines refunded before shipment give their stock back, and their
    # fulfilments follow (the same path as an after-sale's refund: ``refund_lines``).
    refunded = [
        line for line in lines if line.refund_state == "refunded" and line.status in _UNSHIPPED_LINE_STATES
    ]
    if refunded:
        _refund_lines(order, refunded, reason="refund", by_platform=True)
    if order.status == S.PENDING_PAYMENT:
        _on_paid(order, lines)
    elif newly_paid and order.status in status.OPEN_STATES:
        _on_paid_while_handled(order, lines)
    elif order.address_changed and order.status in (S.APPROVED, S.TO_REVIEW):
        _hold(order, ["address_changed"], source="rule", message="address changed after review")
    if cs in (ChannelStatus.SHIPPED, ChannelStatus.PARTIALLY_SHIPPED, ChannelStatus.COMPLETED):
        _mark_shipped_on_platform(order, lines, partial=cs == ChannelStatus.PARTIALLY_SHIPPED)
    if cs == ChannelStatus.COMPLETED and order.status in (S.SHIPPED, S.PARTIALLY_SHIPPED):
        status.transition(order, S.COMPLETED, source="platform", message="received by the buyer")


_ROUTE_FIELDS = ["warehouse", "route_note", "route_version", "route_rule_id"]


def _apply_routes(pairs: list[tuple[object, list]]) -> None:
    """Route these lines (``hooks.route``): each gets its warehouse and why, or UNROUTED when
    no one can ship it. Without a router, or for a line it leaves out, the default warehouse."""
    if not pairs:
        return
    routes = hooks.route(pairs)
    default_id = None
    for _, lines in pairs:
        for line in lines:
            r = routes.get(line.id)
            if r is not None and r.warehouse_id is None:
                line.status = LineStatus.UNROUTED
                line.warehouse_id = None
                line.route_note = (r.hold or r.note)[:300]
            else:
                if r is None:
                    default_id = default_id or stock.default_warehouse().pk
                line.warehouse_id = r.warehouse_id if r else default_id
                line.route_note = (r.note if r else "")[:300]
                if line.status == LineStatus.UNROUTED:
                    line.status = LineStatus.PENDING
            line.route_version = r.version if r else None
            line.route_rule_id = r.rule_id if r else None


def _reserve_lines(order: Order, lines: list[OrderLine]) -> None:
    """Route and reserve the lines that hold nothing yet (new, short of stock, or waiting for a
    shipper), each in the warehouse routing chose."""
    todo = [
        line
        for line in lines
        if line.sku_id is not None
        and line.status in (LineStatus.PENDING, LineStatus.OUT_OF_STOCK, LineStatus.UNROUTED)
    ]
    _apply_routes([(order, todo)] if todo else [])
    warehouses = Warehouse.objects.in_bulk({line.warehouse_id for line in todo if line.warehouse_id})
    for line in todo:
        if line.status != LineStatus.UNROUTED:
            try:
                stock.reserve_stock(
                    source_key=line.reservation_key,
                    sku=line.sku,
                    quantity=line.quantity,
                    warehouse=warehouses[line.warehouse_id],
                )
            except stock.InsufficientStock:
                line.status = LineStatus.OUT_OF_STOCK
            else:
                line.status = LineStatus.RESERVED
        line.save(update_fields=["status", *_ROUTE_FIELDS])
    order.is_out_of_stock = any(line.status == LineStatus.OUT_OF_STOCK for line in lines)
    order.has_unmatched = any(line.status == LineStatus.UNMATCHED for line in lines)
    order.save(update_fields=["is_out_of_stock", "has_unmatched", "updated_at"])


def _release_lines(order: Order, lines: list[OrderLine], *, reason: str, by_platform: bool = True) -> None:
    _close_open_fulfilment(order, reason="cancel", by_platform=by_platform)  # may refuse: before any change
    for line in lines:
        if line.status in (
            LineStatus.RESERVED,
            LineStatus.OUT_OF_STOCK,
            LineStatus.PENDING,
            LineStatus.UNMATCHED,
            LineStatus.UNROUTED,
        ):
            stock.release_reservation(source_key=line.reservation_key, reason=reason)
            line.status = LineStatus.CANCELLED
            line.save(update_fields=["status"])


def _on_paid(order: Order, lines: list[OrderLine]) -> None:
    _reserve_lines(order, lines)
    _event(
        order, "paid", message="paid; stock reserved" if not order.is_out_of_stock else "paid; stock short"
    )
    _run_review(order)


def _on_paid_while_handled(order: Order, lines: list[OrderLine]) -> None:
    """Paid on the platform after a person already moved the order (held it before payment):
    the payment reserves the stock; a hold stays, with what the review rules add to it."""
    _reserve_lines(order, lines)
    _event(
        order, "paid", message="paid; stock reserved" if not order.is_out_of_stock else "paid; stock short"
    )
    if order.status == S.HELD:
        decision, reasons = _decide(order)
        if decision == "held":
            _hold(order, reasons, source="rule", message="held by review rules: " + ", ".join(reasons))


def _decide(order: Order) -> tuple[str, list[str]]:
    """``review.decide``, and held (reason ``routing``) while a line has no shipper."""
    decision, reasons = review.decide(order)
    if order.lines.filter(status=LineStatus.UNROUTED).exists():
        return "held", [*reasons, hooks.ROUTING_HOLD]
    return decision, reasons


def _run_review(order: Order, *, source: str = "rule") -> None:
    decision, reasons = _decide(order)
    if decision == "held":
        _hold(order, reasons, source=source, message="held by review rules: " + ", ".join(reasons))
    elif decision == "approved":
        order.hold_reasons = []
        status.transition(order, S.APPROVED, source=source, message="approved automatically")
        _reroute_stale(order)
        _open_fulfilment(order)
    else:
        order.hold_reasons = []
        status.transition(order, S.TO_REVIEW, source=source, message="waiting for review")


def _hold(order: Order, reasons: list[str], *, source: str, message: str, actor=None) -> None:
    if order.status != S.HELD:  # a hold by hand may be refused (a parcel has a waybill): before any change
        _close_open_fulfilment(order, reason="hold", by_platform=source != "user")
    order.hold_reasons = sorted(set(order.hold_reasons) | set(reasons))
    if order.status == S.HELD:
        order.save(update_fields=["hold_reasons", "updated_at"])
        _event(
            order,
            "hold_reasons",
            source=source,
            message=message,
            after={"hold_reasons": order.hold_reasons},
            actor=actor,
        )
        return
    status.transition(order, S.HELD, source=source, message=message, actor=actor)


def _mark_shipped_on_platform(order: Order, lines: list[OrderLine], *, partial: bool) -> None:
    """The platform says the order (partly) shipped — possibly shipped outside ecbao."""
    target = S.PARTIALLY_SHIPPED if partial else S.SHIPPED
    if order.status in (S.SHIPPED, S.COMPLETED) or order.status == target:
        return
    if not partial:
        for line in lines:
            if line.status == LineStatus.RESERVED:
                # What is still reserved (parts ecbao shipped itself are consumed already).
                stock.ship_reservation(source_key=line.reservation_key, reason="shipped (platform)")
                line.status, line.shipped_quantity = LineStatus.SHIPPED, line.quantity
                line.save(update_fields=["status", "shipped_quantity"])
        _ship_out_of_fulfilments(order)
    if status.can_transition(order, target):
        status.transition(order, target, source="platform", message="shipped according to the platform")


#: order states in which ecbao ships parcels
SHIPPABLE_STATES = (S.APPROVED, S.PARTIALLY_SHIPPED)


def ship_refusal(order: Order) -> str:
    """Why ``order`` cannot ship now ("" when it can): held, cancelled, refunding, not yet
    reviewed, or the platform forbids shipping."""
    if order.status == S.HELD:
        return gettext("order %(id)s is held") % {"id": order.platform_order_id}
    if order.status == S.CANCELLED:
        return gettext("order %(id)s is cancelled") % {"id": order.platform_order_id}
    if order.is_refunding:
        return gettext("order %(id)s has a refund in progress") % {"id": order.platform_order_id}
    if order.status not in SHIPPABLE_STATES:
        return gettext("order %(id)s is not waiting to ship (%(status)s)") % {
            "id": order.platform_order_id,
            "status": order.get_status_display(),
        }
    if order.ship_blocked_reason:
        return gettext("order %(id)s: the platform forbids shipping (%(why)s)") % {
            "id": order.platform_order_id,
            "why": order.ship_blocked_reason,
        }
    return ""


def lines_shipped(
    order: Order,
    quantities: dict[int, int],
    *,
    key: str,
    tracking_no: str,
    carrier: str = "",
    source: str = "system",
    actor=None,
) -> bool:
    """ecbao shipped ``quantities`` ({order line id: units}) of ``order`` in one parcel
    (``key`` names the shipment, e.g. ``parcel:12``; the caller's transaction, with the order
    locked). The reserved stock goes out through the ledger (``inventory.services.ship_reserved``,
    one shipment key per line), the lines count what shipped (SHIPPED when all of it did), the
    order moves to partially shipped / shipped through the status machine with an event, and
    the tracking number joins ``tracking_numbers``.

    Idempotent by ``key``: a repeat changes nothing and returns False. Raises ValidationError
    (nothing changed) when the order cannot ship (``ship_refusal``) or a line cannot ship
    that many."""
    order = Order.objects.select_for_update().get(pk=order.pk)
    lines = {line.pk: line for line in OrderLine.objects.select_for_update().filter(order=order)}
    line_keys = {pk: f"{key}:line:{pk}" for pk in quantities}
    if StockLedgerEntry.objects.filter(
        source_type=stock.SHIPMENT_SOURCE, source_id__in=list(line_keys.values())
    ).exists():
        return False  # shipped by this key before
    why = ship_refusal(order)
    if why:
        raise ValidationError(why)
    if not quantities:
        raise ValidationError(gettext("nothing to ship"))
    for line_id, qty in sorted(quantities.items()):
        line = lines.get(line_id)
        if line is None:
            raise ValidationError(
                gettext("line %(line)s is not a line of order %(id)s")
                % {"line": line_id, "id": order.platform_order_id}
            )
        left = line.quantity - line.shipped_quantity
        if line.status != LineStatus.RESERVED or qty <= 0 or qty > left:
            raise ValidationError(
                gettext("order %(id)s line %(line)s: %(qty)s to ship, %(left)s can (%(status)s)")
                % {
                    "id": order.platform_order_id,
                    "line": line.platform_line_id,
                    "qty": qty,
                    "left": left if line.status == LineStatus.RESERVED else 0,
                    "status": line.get_status_display(),
                }
            )
    for line_id, qty in sorted(quantities.items()):
        line = lines[line_id]
        try:
            stock.ship_reserved(
                source_key=line.reservation_key,
                quantity=qty,
                key=line_keys[line_id],
                sku=line.sku,
                reason=f"shipped {tracking_no}",
            )
        except ValueError as exc:  # the reservation does not hold it (released or short)
            raise ValidationError(
                gettext("order %(id)s line %(line)s: %(error)s")
                % {"id": order.platform_order_id, "line": line.platform_line_id, "error": exc}
            ) from exc
        line.shipped_quantity += qty
        if line.shipped_quantity == line.quantity:
            line.status = LineStatus.SHIPPED
        line.save(update_fields=["shipped_quantity", "status"])
    if tracking_no and tracking_no not in order.tracking_numbers:
        order.tracking_numbers = sorted({*order.tracking_numbers, tracking_no})
    order.shipped_at = order.shipped_at or timezone.now()
    order.save(update_fields=["tracking_numbers", "shipped_at", "updated_at"])
    done = all(line.status in (LineStatus.SHIPPED, *_CLOSED_LINE_STATES) for line in lines.values())
    message = f"shipped {sum(quantities.values())} unit(s) in {carrier} {tracking_no}".replace("  ", " ")
    after = {
        "tracking_no": tracking_no,
        "carrier": carrier,
        "lines": {lines[pk].platform_line_id: qty for pk, qty in sorted(quantities.items())},
    }
    target = S.SHIPPED if done else S.PARTIALLY_SHIPPED
    if order.status != target:
        status.transition(
            order, target, source=source, actor=actor, message=message, kind="shipped", details=after
        )
    else:
        _event(order, "shipped", source=source, actor=actor, message=message, after=after)
    return True


_CLOSED_LINE_STATES = (LineStatus.CANCELLED, LineStatus.REFUNDED)


def _ship_out_of_fulfilments(order: Order) -> None:
    """The order's open fulfilments are shipped. One it shares with other orders (merged)
    stays open for them: this order's lines move out of it into a shipped fulfilment of their
    own, so the others keep their parcel and every line's quantities still add up."""
    own = list(
        FulfilmentLine.objects.select_for_update(of=("self",)).filter(
            order_line__order=order, fulfilment__status=Fulfilment.Status.OPEN
        )
    )
    if not own:
        return
    holding = {fl.fulfilment_id for fl in own}
    hooks.before(holding, reason="platform_shipped", by_platform=True)
    shared = set(
        FulfilmentLine.objects.filter(fulfilment_id__in=holding)
        .exclude(order_line__order=order)
        .values_list("fulfilment_id", flat=True)
    )
    Fulfilment.objects.filter(pk__in=holding - shared).update(status=Fulfilment.Status.SHIPPED)
    if not shared:
        hooks.after(holding)
        return
    shipped = Fulfilment.objects.create(
        store=order.store,
        receiver_fingerprint=order.receiver_fingerprint,
        status=Fulfilment.Status.SHIPPED,
        warehouse_id=Fulfilment.objects.get(pk=min(shared)).warehouse_id,
    )
    _move_lines([fl for fl in own if fl.fulfilment_id in shared], shipped)
    _refresh_merged(shared)
    _event(
        order,
        "unmerged",
        message=f"shipped on the platform: out of merged fulfilment {min(shared)} into fulfilment {shipped.pk}",
    )
    hooks.after(holding)


def rematch_waiting_lines(*, listing_id: int) -> int:
    """A listing got its SKU: lines waiting on it get the SKU, paid orders reserve and are reviewed again."""
    count = 0
    for line in OrderLine.objects.filter(listing_id=listing_id, status=LineStatus.UNMATCHED).select_related(
        "order"
    ):
        with transaction.atomic():
            order = Order.objects.select_for_update().get(pk=line.order_id)
            line.refresh_from_db()
            if line.status != LineStatus.UNMATCHED:
                continue
            line.sku_id = Listing.objects.get(pk=listing_id).sku_id
            line.status = LineStatus.PENDING
            line.save(update_fields=["sku", "status"])
            count += 1
            lines = list(order.lines.all())
            _event(
                order,
                "line_matched",
                source="system",
                message=f"line {line.platform_line_id} → {line.merchant_code}",
            )
            if order.status in (S.HELD, S.TO_REVIEW, S.APPROVED):
                _reserve_lines(order, lines)
                if order.status == S.HELD and not (set(order.hold_reasons) - {"unmatched", "stock_short"}):
                    order.hold_reasons = []
                    status.transition(order, S.TO_REVIEW, source="system", message="SKU matched")
                    _run_review(order)
    return count


# --- manual actions -----------------------------------------------------------------------------------


@transaction.atomic
def approve(*, order: Order, actor) -> Order:
    order = Order.objects.select_for_update().get(pk=order.pk)
    if order.status not in (S.TO_REVIEW, S.HELD):
        raise status.InvalidTransition(order, S.APPROVED)
    if order.channel_status == ChannelStatus.UNPAID.value:
        raise ValidationError(gettext("an order not paid yet cannot be approved"))
    lines = list(order.lines.all())
    _reserve_lines(order, lines)
    if order.has_unmatched or order.is_out_of_stock:
        raise ValidationError(gettext("lines without a matched SKU or without stock cannot be approved"))
    if any(line.status == LineStatus.UNROUTED for line in lines):
        raise ValidationError(gettext("lines that no warehouse or supplier can ship cannot be approved"))
    order.hold_reasons = []
    status.transition(order, S.APPROVED, source="user", actor=actor, message="approved by hand")
    _reroute_stale(order)
    _open_fulfilment(order)
    return order


@transaction.atomic
def hold(*, order: Order, actor, reason: str) -> Order:
    if not reason.strip():
        raise ValidationError(gettext("a hold needs a reason"))
    order = Order.objects.select_for_update().get(pk=order.pk)
    if order.status not in (S.TO_REVIEW, S.APPROVED, S.HELD, S.PENDING_PAYMENT):
        raise status.InvalidTransition(order, S.HELD)
    _hold(order, ["manual"], source="user", message=reason, actor=actor)
    return order


@transaction.atomic
def release(*, order: Order, actor) -> Order:
    """Take a held order out of hold: review runs again without the manual hold."""
    order = Order.objects.select_for_update().get(pk=order.pk)
    if order.status != S.HELD:
        raise status.InvalidTransition(order, S.TO_REVIEW)
    order.address_changed = False  # the person looked at it
    order.hold_reasons = []
    if order.channel_status == ChannelStatus.UNPAID.value:  # held before payment: wait for it
        status.transition(order, S.PENDING_PAYMENT, source="user", actor=actor, message="released from hold")
        return order
    status.transition(order, S.TO_REVIEW, source="user", actor=actor, message="released from hold")
    _reserve_lines(order, list(order.lines.all()))
    _run_review(order, source="user")
    return order


@transaction.atomic
def cancel(*, order: Order, actor, reason: str) -> Order:
    """Cancel in ecbao (the platform order is untouched): stock is released."""
    if not reason.strip():
        raise ValidationError(gettext("a cancellation needs a reason"))
    order = Order.objects.select_for_update().get(pk=order.pk)
    if order.status not in status.OPEN_STATES:
        raise status.InvalidTransition(order, S.CANCELLED)
    _release_lines(order, list(order.lines.all()), reason=f"cancelled in ecbao: {reason}", by_platform=False)
    status.transition(order, S.CANCELLED, source="user", actor=actor, message=reason)
    return order


@transaction.atomic
def set_rule(*, kind: str, enabled: bool, threshold_fen: int | None = None) -> ReviewRule:
    if kind not in ReviewRule.Kind.values:
        raise ValidationError({"kind": gettext("unknown rule")})
    if kind == ReviewRule.Kind.AMOUNT_OVER and enabled and (threshold_fen is None or threshold_fen < 0):
        raise ValidationError({"threshold_fen": gettext("the amount rule needs a threshold in fen")})
    rule, _ = ReviewRule.objects.update_or_create(
        kind=kind, defaults={"enabled": enabled, "threshold_fen": threshold_fen}
    )
    return rule


# --- fulfilments: merge and split -------------------------------------------------------------------------

MERGE_WINDOW_HOURS = 48
#: event kind: the auto-merge rule is on but the platform gives no receiver identity for the order
NOT_MERGED = "not_merged_no_identity"


def _reroute_stale(order: Order) -> None:
    """At approval: reserved lines routed under another rule set version than the active one
    are routed again (they are not dispatched yet: their fulfilment opens after this). A line
    whose new route is a hold, or whose new warehouse lacks the stock, keeps its old route."""
    version = hooks.route_version()
    if version is None:
        return
    stale = [
        line
        for line in order.lines.select_related("sku").filter(status=LineStatus.RESERVED, shipped_quantity=0)
        if line.route_version != version
    ]
    if not stale:
        return
    routes = hooks.route([(order, stale)])
    for line in stale:
        r = routes.get(line.pk)
        if r is None or r.warehouse_id is None or line.warehouse_id is None:
            continue  # no answer, a hold (a route that ships stays), or a line from before routing
        if r.warehouse_id != line.warehouse_id:
            if not _move_reservation(line, r.warehouse_id, reason=f"routed again (rules v{version})"):
                continue
            _event(
                order,
                "rerouted",
                source="rule",
                message=f"line {line.platform_line_id}: {r.note}"[:500],
                before={"warehouse": line.warehouse_id},
                after={"warehouse": r.warehouse_id},
            )
        line.route_note, line.route_version, line.route_rule_id = r.note[:300], r.version, r.rule_id
        line.warehouse_id = r.warehouse_id
        line.save(update_fields=_ROUTE_FIELDS)


def _move_reservation(line: OrderLine, warehouse_id: int, *, reason: str) -> bool:
    """Reserve ``line`` in another warehouse instead; False (the old reservation back) when that
    one lacks the stock — what was just released is still there in this transaction."""

    def reserve_in(pk: int) -> None:
        stock.reserve_stock(
            source_key=line.reservation_key,
            sku=line.sku,
            quantity=line.quantity,
            warehouse=Warehouse.objects.get(pk=pk),
        )

    stock.release_reservation(source_key=line.reservation_key, reason=reason)
    try:
        reserve_in(warehouse_id)
    except stock.InsufficientStock:
        reserve_in(line.warehouse_id)
        return False
    return True


def _by_warehouse(lines) -> list[tuple[int | None, list]]:
    """Lines grouped by the warehouse that ships them, in a stable order (unrouted first, then by id)."""
    groups: dict[int | None, list] = defaultdict(list)
    for line in lines:
        groups[line.warehouse_id].append(line)
    return sorted(groups.items(), key=lambda g: (g[0] is not None, g[0] or 0))


def _open_fulfilment(order: Order) -> None:
    """Approved order → its lines in open fulfilments, one per warehouse that ships them (own or
    a supplier's: ``OrderLine.warehouse``), each merged with a waiting one of the same shop,
    receiver and warehouse when the auto-merge rule is on."""
    if Fulfilment.objects.filter(lines__order_line__order=order, status=Fulfilment.Status.OPEN).exists():
        return
    lines = order.lines.exclude(status__in=[LineStatus.CANCELLED, LineStatus.REFUNDED])
    merge = review.active_rules()[ReviewRule.Kind.AUTO_MERGE].enabled
    if merge and not order.receiver_fingerprint:
        _event(order, NOT_MERGED, source="rule")
    opened: set[int] = set()
    for warehouse_id, group in _by_warehouse(lines):
        fulfilment = (
            _waiting_fulfilment(order, warehouse_id) if merge and order.receiver_fingerprint else None
        )
        if fulfilment is None:
            fulfilment = Fulfilment.objects.create(
                store=order.store, receiver_fingerprint=order.receiver_fingerprint, warehouse_id=warehouse_id
            )
        else:
            fulfilment.is_merged = True
            fulfilment.save(update_fields=["is_merged"])
            _event(order, "merged", source="rule", message=f"merged into fulfilment {fulfilment.pk}")
        FulfilmentLine.objects.bulk_create(
            FulfilmentLine(fulfilment=fulfilment, order_line=line, quantity=line.quantity) for line in group
        )
        opened.add(fulfilment.pk)
    hooks.after(opened)


def _waiting_fulfilment(order: Order, warehouse_id: int | None) -> Fulfilment | None:
    """An open fulfilment of the last 48 hours to the same receiver, shipped from the same place,
    that can still take lines (no parcel with a waybill)."""
    since = timezone.now() - timedelta(hours=MERGE_WINDOW_HOURS)
    candidates = list(
        Fulfilment.objects.filter(
            store=order.store,
            receiver_fingerprint=order.receiver_fingerprint,
            warehouse_id=warehouse_id,
            status=Fulfilment.Status.OPEN,
            created_at__gte=since,
            lines__order_line__order__status=S.APPROVED,
        )
        .exclude(receiver_fingerprint="")
        .order_by("id")
        .distinct()[:10]
    )
    blocked = hooks.frozen(f.pk for f in candidates)  # a parcel with a waybill takes no more lines
    return next((f for f in candidates if f.pk not in blocked), None)


def _close_open_fulfilment(order: Order, *, reason: str = "cancel", by_platform: bool = True) -> None:
    own = FulfilmentLine.objects.filter(order_line__order=order, fulfilment__status=Fulfilment.Status.OPEN)
    holding = set(own.values_list("fulfilment_id", flat=True))
    hooks.before(holding, reason=reason, by_platform=by_platform)
    own.delete()
    _drop_empty_fulfilments(holding)
    _refresh_merged(holding)  # a merged parcel left with one order is not merged any more
    hooks.after(holding)


def _drop_empty_fulfilments(fulfilment_ids) -> None:
    """Delete these fulfilments where they are open and empty now; one that something of a
    higher layer still refers to (a cancelled parcel's history) is kept, cancelled."""
    for fulfilment in Fulfilment.objects.filter(
        pk__in=fulfilment_ids, status=Fulfilment.Status.OPEN, lines__isnull=True
    ):
        try:
            fulfilment.delete()
        except ProtectedError:
            fulfilment.status = Fulfilment.Status.CANCELLED
            fulfilment.save(update_fields=["status"])


@transaction.atomic
def merge(*, orders: list[Order], actor) -> Fulfilment:
    """Merge approved orders of one shop to the same receiver into one fulfilment."""
    locked = list(Order.objects.select_for_update().filter(pk__in=[o.pk for o in orders]).order_by("pk"))
    if len(locked) < 2:
        raise ValidationError(gettext("choose at least two orders to merge"))
    if any(o.status != S.APPROVED for o in locked):
        raise ValidationError(gettext("only orders waiting to ship can be merged"))
    if len({o.store_id for o in locked}) > 1 or len({o.receiver_fingerprint for o in locked}) > 1:
        raise ValidationError(gettext("merged orders must be from one shop to one receiver"))
    for order in locked:
        _open_fulfilment(order)
    holding = set(
        FulfilmentLine.objects.filter(
            order_line__order__in=locked, fulfilment__status=Fulfilment.Status.OPEN
        ).values_list("fulfilment_id", flat=True)
    )
    shippers = set(Fulfilment.objects.filter(pk__in=holding).values_list("warehouse_id", flat=True))
    if len(shippers) > 1:
        raise ValidationError(gettext("merged orders must ship from one warehouse or supplier"))
    hooks.before(holding, reason="merge", by_platform=False)
    target = Fulfilment.objects.create(
        store=locked[0].store,
        receiver_fingerprint=locked[0].receiver_fingerprint,
        is_merged=True,
        warehouse_id=shippers.pop() if shippers else None,
    )
    # A split order has a line in several open fulfilments: one target line per order line,
    # with the quantities summed (the line's total is unchanged).
    moving = list(
        FulfilmentLine.objects.select_for_update(of=("self",)).filter(
            order_line__order__in=locked, fulfilment__status=Fulfilment.Status.OPEN
        )
    )
    _move_lines(moving, target)
    _drop_empty_fulfilments(holding)
    _refresh_merged(holding)
    for order in locked:
        _event(order, "merged", source="user", actor=actor, message=f"merged into fulfilment {target.pk}")
    hooks.after(holding | {target.pk})
    return target


def _move_lines(moving: list[FulfilmentLine], target: Fulfilment) -> None:
    """Move fulfilment lines into ``target``, one line per order line with the quantities
    summed (a split line sits in several fulfilments; the line's total is unchanged)."""
    totals: dict[int, int] = {}
    for fl in moving:
        totals[fl.order_line_id] = totals.get(fl.order_line_id, 0) + fl.quantity
    FulfilmentLine.objects.filter(pk__in=[fl.pk for fl in moving]).delete()
    FulfilmentLine.objects.bulk_create(
        FulfilmentLine(fulfilment=target, order_line_id=pk, quantity=n) for pk, n in sorted(totals.items())
    )


def _refresh_merged(fulfilment_ids) -> None:
    """``is_merged`` of these fulfilments again from the orders they still hold."""
    for fulfilment in Fulfilment.objects.filter(pk__in=fulfilment_ids):
        merged = fulfilment.lines.values("order_line__order_id").distinct().count() > 1
        if fulfilment.is_merged != merged:
            fulfilment.is_merged = merged
            fulfilment.save(update_fields=["is_merged"])


@transaction.atomic
def unmerge(*, fulfilment: Fulfilment, actor) -> list[Fulfilment]:
    """Give every order of a merged fulfilment its own fulfilment again."""
    fulfilment = Fulfilment.objects.select_for_update().get(pk=fulfilment.pk)
    if fulfilment.status != Fulfilment.Status.OPEN:
        raise ValidationError(gettext("only open fulfilments can be unmerged"))
    hooks.before({fulfilment.pk}, reason="unmerge", by_platform=False)
    result = []
    order_ids = sorted(set(fulfilment.lines.values_list("order_line__order_id", flat=True)))
    for order_id in order_ids[1:]:
        order = Order.objects.get(pk=order_id)
        own = Fulfilment.objects.create(
            store=order.store,
            receiver_fingerprint=order.receiver_fingerprint,
            warehouse_id=fulfilment.warehouse_id,
        )
        fulfilment.lines.filter(order_line__order_id=order_id).update(fulfilment=own)
        _event(order, "unmerged", source="user", actor=actor, message=f"own fulfilment {own.pk}")
        result.append(own)
    fulfilment.is_merged = False
    fulfilment.save(update_fields=["is_merged"])
    hooks.after({fulfilment.pk, *(f.pk for f in result)})
    return [fulfilment, *result]


@transaction.atomic
def split(*, order: Order, parts: dict[int, int], actor) -> Fulfilment:
    """Move ``parts`` ({order line id: quantity}) of an approved order into a new fulfilment."""
    order = Order.objects.select_for_update().get(pk=order.pk)
    if order.status != S.APPROVED:
        raise ValidationError(gettext("only orders waiting to ship can be split"))
    _open_fulfilment(order)
    # The lines split off come out of one fulfilment (an order routed to several shippers has one each).
    source = (
        Fulfilment.objects.filter(
            status=Fulfilment.Status.OPEN,
            lines__order_line__order=order,
            lines__order_line_id__in=[pk for pk, qty in parts.items() if qty > 0],
        )
        .order_by("pk")
        .first()
    )
    if source is None:
        raise ValidationError(gettext("choose at least one line and quantity to split off"))
    hooks.before({source.pk}, reason="split", by_platform=False)
    moved = 0
    new = Fulfilment.objects.create(
        store=order.store, receiver_fingerprint=order.receiver_fingerprint, warehouse_id=source.warehouse_id
    )
    for line_id, qty in parts.items():
        if qty <= 0:
            continue
        fl = (
            FulfilmentLine.objects.select_for_update()
            .filter(fulfilment=source, order_line_id=line_id, order_line__order=order)
            .first()
        )
        if fl is None or qty > fl.quantity:
            raise ValidationError(
                gettext("line %(line)s: cannot move %(qty)s") % {"line": line_id, "qty": qty}
            )
        if qty == fl.quantity:
            fl.fulfilment = new
            fl.save(update_fields=["fulfilment"])
        else:
            fl.quantity -= qty
            fl.save(update_fields=["quantity"])
            FulfilmentLine.objects.create(fulfilment=new, order_line_id=line_id, quantity=qty)
        moved += qty
    if not moved:
        raise ValidationError(gettext("choose at least one line and quantity to split off"))
    if not source.lines.exists():
        raise ValidationError(gettext("a split must leave something in the original fulfilment"))
    _event(
        order,
        "split",
        source="user",
        actor=actor,
        message=f"{moved} item(s) to fulfilment {new.pk}",
        after={str(k): v for k, v in parts.items()},
    )
    hooks.after({source.pk, new.pk})
    return new


def line_quantities_consistent(order: Order) -> bool:
    """Per open line, the fulfilment quantities add up to the line quantity (an invariant)."""
    for line in order.lines.exclude(status__in=[LineStatus.CANCELLED, LineStatus.REFUNDED]):
        total = line.fulfilment_lines.aggregate(n=Sum("quantity"))["n"] or 0
        if order.status == S.APPROVED and total != line.quantity:
            return False
    return True


# --- refunds before shipment (after-sales) ---------------------------------------------------------

#: line states in which nothing has left: a refund before shipment closes the line
_UNSHIPPED_LINE_STATES = (
    LineStatus.RESERVED,
    LineStatus.OUT_OF_STOCK,
    LineStatus.PENDING,
    LineStatus.UNMATCHED,
    LineStatus.UNROUTED,
)


def refund_lines(
    *, order: Order, line_ids, reason: str = "refund", by_platform: bool = True, actor=None
) -> list[OrderLine]:
    """The platform refunded these lines of ``order`` before they shipped (a whole line: the
    platforms refund the whole sub-order before shipment). Lines not yet shipped become
    REFUNDED, their reservations are released, and their open fulfilments follow through
    ``hooks`` (logistics drops an unnumbered parcel or retires a numbered one; a supplier's
    dispatch left without lines goes CANCELLING). Locks the order as ingestion does.
    Idempotent: lines already refunded or shipped are left alone; returns the lines refunded
    now."""
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order.pk)
        lines = list(
            OrderLine.objects.select_for_update()
            .filter(order=order, pk__in=list(line_ids), status__in=_UNSHIPPED_LINE_STATES, shipped_quantity=0)
            .order_by("pk")
        )
        if lines:
            _refund_lines(order, lines, reason=reason, by_platform=by_platform, actor=actor)
        return lines


def _refund_lines(
    order: Order, lines: list[OrderLine], *, reason: str, by_platform: bool, actor=None
) -> None:
    """``refund_lines`` with the order locked (also the order snapshot's "refunded" lines)."""
    own = list(
        FulfilmentLine.objects.select_for_update(of=("self",)).filter(
            order_line__in=lines, fulfilment__status=Fulfilment.Status.OPEN
        )
    )
    holding = {fl.fulfilment_id for fl in own}
    hooks.before(holding, reason=reason, by_platform=by_platform)  # parcels / dispatches detach first
    FulfilmentLine.objects.filter(pk__in=[fl.pk for fl in own]).delete()
    _drop_empty_fulfilments(holding)
    _refresh_merged(holding)
    for line in lines:
        stock.release_reservation(source_key=line.reservation_key, reason="refunded before shipment")
        line.status = LineStatus.REFUNDED
        line.save(update_fields=["status"])
        _event(
            order,
            "line_refunded",
            source="platform" if by_platform else "user",
            actor=actor,
            message=gettext("line %(line)s refunded before shipment") % {"line": line.platform_line_id},
        )
    hooks.after(holding)
    order.is_out_of_stock = order.lines.filter(status=LineStatus.OUT_OF_STOCK).exists()
    order.has_unmatched = order.lines.filter(status=LineStatus.UNMATCHED).exists()
    order.save(update_fields=["is_out_of_stock", "has_unmatched", "updated_at"])


# --- replacement orders of after-sales (h-reship) ------------------------------------------------------------

REPLACEMENT_SHIP_WITHIN = timedelta(hours=48)


@transaction.atomic
def create_replacement_order(
    *, source_order: Order, items: list[tuple[int, int]], origin: str, after_sale_ref: str, actor=None
) -> Order:
    """The order that ships an after-sale's replacement (换货补发单, ``origin`` EXCHANGE) or a
    missing / broken piece (补寄单, REISSUE), made by ecbao itself: same shop and receiver as
    ``source_order`` (ciphertexts, masks, index, region, fingerprint — never plaintext), one line
    per ``items`` entry ((SKU id, quantity)) at price 0 and ``paid_fen`` 0, ``platform_order_id``
    ``<source id>-R<n>``, ``ship_by`` 48 hours from now.

    It is reserved and routed through the same code as a paid platform order (``_reserve_lines``:
    a supplier's SKU becomes that supplier's dispatch, an own SKU ships from the warehouse) and
    approved at once: the merchant decided the after-sale, so the review rules (remarks, amount,
    auto-approve off …) do not hold it. Only what makes shipping impossible holds it — stock
    short (``stock_short``) or no one to ship a line (``routing``) — like any order.

    Such an order is never pulled from the platform and never written back as a platform order
    (logistics skips its write-back); its tracking number goes to the platform through the
    after-sale (``aftersales.reship``). Idempotent per (source order, ``after_sale_ref``): a
    second call returns the order the first made, whatever its items."""
    from orders.models import OrderOrigin

    if origin not in (OrderOrigin.EXCHANGE, OrderOrigin.REISSUE):
        raise ValueError(f"a replacement order is an exchange or a reissue, not {origin!r}")
    if not after_sale_ref:
        raise ValueError("a replacement order needs the platform after-sale id")
    existing = Order.objects.filter(source_order_id=source_order.pk, after_sale_ref=after_sale_ref).first()
    if existing is not None:
        return existing
    wanted: dict[int, int] = defaultdict(int)
    for sku_id, quantity in items:
        if int(quantity) <= 0:
            raise ValidationError(gettext("a replacement needs a positive quantity per SKU"))
        wanted[int(sku_id)] += int(quantity)
    if not wanted:
        raise ValidationError(gettext("a replacement needs at least one SKU"))
    skus = Sku.objects.in_bulk(list(wanted))
    if len(skus) != len(wanted):
        raise ValidationError(gettext("SKU %(id)s does not exist") % {"id": min(set(wanted) - set(skus))})
    # Stock rows first, then the orders: the lock order of ingestion and shipping.
    stock.lock_stock(sku_ids=set(wanted))
    source = Order.objects.select_for_update().get(pk=source_order.pk)
    existing = Order.objects.filter(source_order=source, after_sale_ref=after_sale_ref).first()
    if existing is not None:  # made meanwhile (we waited for the lock)
        return existing
    n = Order.objects.filter(source_order=source).count() + 1
    while Order.objects.filter(
        store_id=source.store_id, platform_order_id=f"{source.platform_order_id}-R{n}"
    ).exists():
        n += 1
    now = timezone.now()
    order = Order.objects.create(
        store_id=source.store_id,
        platform=source.platform,
        platform_order_id=f"{source.platform_order_id}-R{n}",
        status=S.PENDING_PAYMENT,
        channel_status=ChannelStatus.PAID.value,
        platform_status="",
        buyer_id=source.buyer_id,
        receiver_name_cipher=source.receiver_name_cipher,
        receiver_name_mask=source.receiver_name_mask,
        receiver_phone_cipher=source.receiver_phone_cipher,
        receiver_phone_mask=source.receiver_phone_mask,
        receiver_phone_index=source.receiver_phone_index,
        receiver_address_cipher=source.receiver_address_cipher,
        receiver_address_mask=source.receiver_address_mask,
        province=source.province,
        city=source.city,
        district=source.district,
        receiver_fingerprint=source.receiver_fingerprint,
        phone_tail=source.phone_tail,
        placed_at=now,
        paid_at=now,
        ship_by=now + REPLACEMENT_SHIP_WITHIN,
        platform_updated_at=now,
        origin=origin,
        source_order=source,
        after_sale_ref=after_sale_ref,
    )
    source_lines = {line.sku_id: line for line in source.lines.exclude(sku__isnull=True).order_by("id")}
    lines = []
    for i, (sku_id, quantity) in enumerate(sorted(wanted.items()), start=1):
        sku, like = skus[sku_id], source_lines.get(sku_id)
        lines.append(
            OrderLine.objects.create(
                order=order,
                platform_line_id=f"R{i}",
                platform_product_id=like.platform_product_id if like else "",
                platform_sku_id=like.platform_sku_id if like else "",
                sku=sku,
                merchant_code=sku.merchant_code,
                title=(like.title if like else sku.name)[:300],
                spec=(like.spec if like else sku.spec)[:200],
                quantity=quantity,
                unit_price_fen=0,
                paid_fen=0,
                status=LineStatus.PENDING,
            )
        )
    is_exchange = origin == OrderOrigin.EXCHANGE
    message = (
        gettext("Exchange replacement order %(order)s created for after-sale %(ref)s")
        if is_exchange
        else gettext("Reissue order %(order)s created for after-sale %(ref)s")
    ) % {"order": order.platform_order_id, "ref": after_sale_ref}
    who = {"source": "user" if actor else "system", "actor": actor}
    details = {"origin": origin, "after_sale": after_sale_ref, "replacement": order.platform_order_id}
    _event(
        order, "created", message=message, after={**details, "source_order": source.platform_order_id}, **who
    )
    _event(source, "replacement_created", message=message, after=details, **who)
    _reserve_lines(order, lines)
    holds = []
    if order.is_out_of_stock:
        holds.append(ReviewRule.Kind.STOCK_SHORT.value)
    if any(line.status == LineStatus.UNROUTED for line in lines):
        holds.append(hooks.ROUTING_HOLD)
    if holds:
        _hold(order, holds, message="held: " + ", ".join(holds), **who)
    else:
        status.transition(
            order, S.APPROVED, message="approved: the merchant decided the after-sale (review rules do not apply)",
            **who,
        )  # fmt: skip
        _open_fulfilment(order)
    return order

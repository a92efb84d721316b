"""Channel stock sync: every change of available stock reaches every listing of the SKU.

- Each stock change writes a ``StockChange`` outbox row in its own transaction; after
  commit, ``schedule_stock_sync`` signals the stock-sync daemon (``run_daemon``) through a
  Redis queue, one signal per tenant and burst (debounced per process).
- ``sync_pending_changes`` reads the outbox, **coalesces** the rows per SKU, pushes each
  affected listing once, and only then deletes the rows it read: a crash before the pushes
  are recorded leaves the rows for the next round (a listing already showing the number is
  not pushed again).
- ``push_listing`` computes the number *inside a row lock on the listing* from the current
  balances, so two workers can never publish an older number after a newer one: whoever
  pushes last computed last.
- Platforms with delta-only stock APIs get ``current=None`` and read the platform's number
  themselves before writing the difference.
- One round pushes the listings of different stores concurrently (``STOCK_SYNC_THREADS``
  threads, each with its own database connection and one connector per store, all on one
  pooled HTTP client per process); listings of one store go one after the other.
- A push that fails leaves its listing ``FAILED``; the daemon retries failed listings with
  backoff (a Redis sorted set of due tenants), the periodic task ``retry_failed_pushes`` is
  the safety net. A listing the platform rate-limited is held (skipped by every round)
  for as long as the platform asked, then retried. Pushes do not wait long inside the row
  lock: rate limits and outages fail fast and are retried later, recomputing the number.
- The periodic task is the safety net: it drains the outbox, then pushes listings still
  pending (a push asked for and lost), those whose accepted number differs from the last
  computed one, and in turn the least recently checked ones (``push_unsynced_listings``).
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
import time
from dataclasses import dataclass, field

import httpx
import redis
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from channels import services as channel_services
from channels.connectors.base import RetryPolicy
from channels.errors import ChannelError, RateLimited
from channels.models import Store
from channels.types import Listing as ChannelListing
from ecbao import events
from ecbao import redis as ecbao_redis
from inventory import selectors
from inventory.events import ListingMatched
from inventory.models import ComboComponent, Listing, Sku, StockChange, StockRule

logger = logging.getLogger(__name__)

PENDING_TTL_SECONDS = 30  # a lost signal is re-raised by the next change or the periodic task
MAX_PUSH_ATTEMPTS = 20  # failed pushes are retried until this many attempts in a row failed
RETRY_FIRST_DELAY = 0.1  # seconds before the first retry of a failed push; doubles each time
RETRY_MAX_DELAY = 30.0  # seconds between retries of a listing that keeps failing
DEFAULT_THREADS = 8  # settings.STOCK_SYNC_THREADS overrides
PUSH_TIMEOUT = 10.0  # seconds per HTTP call of a push
MAX_HOLD = 120.0  # longest wait a platform's rate-limit answer can impose on a listing

# A push holds its listing's row lock while it talks to the platform: retry a flaky call a
# little, but never sleep long in the lock (a rate-limited or failing push is retried later
# by the daemon, recomputing the number).
PUSH_RETRY = RetryPolicy(attempts=3, base_delay=0.1, max_delay=1.0, rate_limit_attempts=2)


def publish_quantity(*, available: int, rule: StockRule | None) -> int:
    """The stock rule: floor(available × percent/100) + add − safety, clamped to [floor, cap]."""
    if rule is None:
        return max(available, 0)
    qty = math.floor(max(available, 0) * rule.percent / 100) + rule.add - rule.safety
    qty = max(qty, rule.floor, 0)
    if rule.cap is not None:
        qty = min(qty, rule.cap)
    return qty


def rule_for(listing: Listing) -> StockRule | None:
    rules = {
        r.sku_id: r
        for r in StockRule.objects.filter(
            Q(sku=listing.sku_id) | Q(sku__isnull=True), store_id=listing.store_id
        )
    }
    return rules.get(listing.sku_id) or rules.get(None)


def listing_quantity(listing: Listing) -> int:
    rule = rule_for(listing)
    warehouse_ids = list(rule.warehouses.values_list("pk", flat=True)) if rule else []
    available = selectors.available(listing.sku, warehouse_ids=warehouse_ids or None)
    return publish_quantity(available=available, rule=rule)


# --- listings --------------------------------------------------------------------------------


@dataclass
class ListingRefresh:
    store_id: int
    seen: int = 0
    created: int = 0
    matched: int = 0
    unmatched: int = 0


def ensure_listing(
    *,
    store: Store,
    platform_product_id: str,
    platform_sku_id: str,
    merchant_code: str,
    title: str = "",
    spec: str = "",
) -> Listing:
    """The listing for a platform SKU seen in an order, created (and auto-matched by merchant
    code) on first sight, so order lines always have a listing to wait on."""
    listing = Listing.objects.filter(
        store=store, platform_product_id=platform_product_id, platform_sku_id=platform_sku_id
    ).first()
    if listing is not None:
        return listing
    sku = Sku.objects.filter(merchant_code=merchant_code, is_active=True).first() if merchant_code else None
    listing, created = Listing.objects.get_or_create(
        store=store,
        platform_product_id=platform_product_id,
        platform_sku_id=platform_sku_id,
        defaults={
            "merchant_code": merchant_code,
            "title": title[:300],
            "spec": spec[:200],
            "sku": sku,
            "match": Listing.Match.MATCHED if sku else Listing.Match.UNMATCHED,
        },
    )
    if created and sku:
        # Publish its stock through the stock-sync daemon (an outbox row for the SKU), not a
        # Celery task per listing: a pull that meets many new SKUs must not queue platform
        # calls in front of the order ingestion tasks, and the daemon coalesces per SKU.
        StockChange.objects.create(sku=sku)
        transaction.on_commit(schedule_stock_sync)
    return listing


@transaction.atomic
def refresh_listings(*, store: Store, connector=None) -> ListingRefresh:
    """Pull the shop's SKUs, upsert listings, auto-match unmatched ones by merchant code."""
    connector = connector or channel_services.connector_for(store)
    result = ListingRefresh(store_id=store.pk)
    codes = {}
    for item in connector.iter_listings():
        result.seen += 1
        listing, created = Listing.objects.get_or_create(
            store=store,
            platform_product_id=item.platform_product_id,
            platform_sku_id=item.platform_sku_id,
            defaults={
                "merchant_code": item.merchant_code,
                "title": item.title[:300],
                "spec": item.spec[:200],
                "platform_stock": item.stock,
            },
        )
        result.created += created
        if not created:
            listing.merchant_code, listing.title, listing.spec = (
                item.merchant_code,
                item.title[:300],
                item.spec[:200],
            )
            listing.platform_stock = item.stock
            listing.save(update_fields=["merchant_code", "title", "spec", "platform_stock", "updated_at"])
        if listing.match == Listing.Match.UNMATCHED and listing.merchant_code:
            codes.setdefault(listing.merchant_code, []).append(listing.pk)
    skus = dict(
        Sku.objects.filter(merchant_code__in=codes, is_active=True).values_list("merchant_code", "pk")
    )
    for code, listing_ids in codes.items():
        if code in skus:
            Listing.objects.filter(pk__in=listing_ids).update(
                sku_id=skus[code], match=Listing.Match.MATCHED, push_state=Listing.PushState.PENDING
            )
    result.matched = Listing.objects.filter(store=store, match=Listing.Match.MATCHED).count()
    result.unmatched = Listing.objects.filter(store=store, match=Listing.Match.UNMATCHED).count()
    transaction.on_commit(lambda: enqueue_store_push(store.pk))
    return result


@transaction.atomic
def match_listing(*, listing: Listing, sku: Sku | None) -> Listing:
    """Resolve an unmatched listing by hand (``sku=None`` ignores it)."""
    listing.sku = sku
    listing.match = Listing.Match.MATCHED if sku else Listing.Match.IGNORED
    listing.push_state = Listing.PushState.PENDING
    listing.save(update_fields=["sku", "match", "push_state", "updated_at"])
    if sku:
        events.publish(ListingMatched(listing_id=listing.pk, sku_id=sku.pk))
        transaction.on_commit(lambda: enqueue_listing_push(listing.pk))
    return listing


@transaction.atomic
def set_listing_lock(*, listing: Listing, locked: bool) -> Listing:
    listing.locked = locked
    listing.push_state = Listing.PushState.LOCKED if locked else Listing.PushState.PENDING
    listing.save(update_fields=["locked", "push_state", "updated_at"])
    if not locked:
        transaction.on_commit(lambda: enqueue_listing_push(listing.pk))
    return listing


# --- pushing ------------------------------------------------------------------------------


@dataclass
class PushOutcome:
    listing_id: int
    quantity: int | None = None
    pushed: bool = False
    error: str = ""
    attempts: int = 0  # consecutive failed attempts after this one (0 when it worked)
    retry_after: float = 0.0  # the platform's hint when it rate-limited the push


_http_lock = threading.Lock()
_http: tuple[int, httpx.Client] | None = None


def shared_http() -> httpx.Client:
    """One HTTP client (connection pool) per process for every stock push: creating a client
    loads the CA bundle (~20 ms of CPU, under the GIL) and opens new connections, which
    cost more than the push itself. httpx clients are thread-safe; a forked child makes its own."""
    global _http
    with _http_lock:
        if _http is None or _http[0] != os.getpid():
            _http = (os.getpid(), httpx.Client(timeout=PUSH_TIMEOUT, limits=httpx.Limits(max_connections=64)))
        return _http[1]


def _connector(store: Store, connectors: dict):
    """One connector per store and round (``connectors`` caches them), on the shared client."""
    if store.pk not in connectors:
        connectors[store.pk] = channel_services.connector_for(store, retry=PUSH_RETRY, http=shared_http())
    return connectors[store.pk]


def push_listing(
    *, listing_id: int, force: bool = False, connector=None, connectors: dict | None = None
) -> PushOutcome:
    """Publish the rule's number for one listing (see module docstring).

    ``connectors``: a per-store connector cache shared by the pushes of one round."""
    return _push_listing(listing_id, force, connector, connectors if connectors is not None else {})


def _push_listing(listing_id: int, force: bool, connector, connectors: dict) -> PushOutcome:
    outcome = PushOutcome(listing_id=listing_id)
    with transaction.atomic():
        listing = (
            Listing.objects.select_for_update(of=("self",))
            .select_related("sku", "store")
            .filter(pk=listing_id)
            .first()
        )
        if listing is None or listing.sku is None or listing.match != Listing.Match.MATCHED:
            return outcome
        if listing.locked or listing.store.status != Store.Status.ACTIVE:
            return outcome
        quantity = listing_quantity(listing)
        outcome.quantity = quantity
        listing.computed_qty = quantity
        if not force and listing.pushed_qty == quantity and listing.push_state == Listing.PushState.IN_SYNC:
            listing.save(update_fields=["computed_qty", "updated_at"])
            return outcome
        target = ChannelListing(
            platform_product_id=listing.platform_product_id,
            platform_sku_id=listing.platform_sku_id,
            merchant_code=listing.merchant_code,
            title=listing.title,
            spec=listing.spec,
            stock=listing.platform_stock if listing.platform_stock is not None else -1,
        )
        try:
            connector = connector or _connector(listing.store, connectors)
            connector.set_stock(
                listing=target,
                quantity=quantity,
                current=None,
                idempotency_key=f"stock-{connection.schema_name}-{listing.pk}-{quantity}-{timezone.now().timestamp():.3f}",
            )
        except ChannelError as exc:
            outcome.error = str(exc)
            if isinstance(exc, RateLimited):
                outcome.retry_after = exc.retry_after
                hold_listing(listing.pk, exc.retry_after)
            listing.push_state = Listing.PushState.FAILED
            listing.push_error = str(exc)[:2000]
            listing.push_attempts += 1
            outcome.attempts = listing.push_attempts
            listing.save(
                update_fields=["computed_qty", "push_state", "push_error", "push_attempts", "updated_at"]
            )
            return outcome
        if listing.push_state == Listing.PushState.FAILED:
            release_hold(listing.pk)  # a push that bypassed the hold (e.g. forced) worked
        listing.pushed_qty = listing.platform_stock = quantity
        listing.pushed_at = timezone.now()
        listing.push_state = Listing.PushState.IN_SYNC
        listing.push_error = ""
        listing.push_attempts = 0
        listing.save()
        outcome.pushed = True
    return outcome


def _push_or_mark_failed(listing_id: int, connectors: dict) -> PushOutcome:
    """``push_listing`` that never raises: an unexpected error marks the listing failed (so it
    is retried) instead of aborting the rest of the round."""
    try:
        return push_listing(listing_id=listing_id, connectors=connectors)
    except Exception as exc:
        logger.exception("stock push of listing %s failed", listing_id)
        message = f"{type(exc).__name__}: {exc}"[:2000]
        Listing.objects.filter(pk=listing_id).update(
            push_state=Listing.PushState.FAILED, push_error=message, push_attempts=F("push_attempts") + 1
        )
        attempts = Listing.objects.filter(pk=listing_id).values_list("push_attempts", flat=True).first()
        return PushOutcome(listing_id=listing_id, error=message, attempts=attempts or 1)


def _push_store_groups(groups: queue.SimpleQueue, outcomes: list[PushOutcome]) -> None:
    """Take stores' listing lists off ``groups`` until it is empty; push each store's
    listings in order with one connector."""
    while True:
        try:
            listing_ids = groups.get_nowait()
        except queue.Empty:
            return
        connectors: dict = {}
        for listing_id in listing_ids:
            outcomes.append(_push_or_mark_failed(listing_id, connectors))


def sync_threads() -> int:
    return max(1, int(getattr(settings, "STOCK_SYNC_THREADS", DEFAULT_THREADS)))


def _hold_key(listing_id: int) -> str:
    return ecbao_redis.key("stock-sync", "hold", connection.schema_name, str(listing_id))


def hold_listing(listing_id: int, seconds: float) -> None:
    """The platform rate-limited this listing's push and asked to wait: rounds skip it until
    then (its retry is scheduled for that moment), instead of hammering the limit."""
    try:
        ecbao_redis.client().set(_hold_key(listing_id), 1, px=max(1, int(min(seconds, MAX_HOLD) * 1000)))
    except Exception:  # best effort: without the hold the next round simply tries again
        logger.warning("could not hold listing %s after a rate limit", listing_id, exc_info=True)


def release_hold(listing_id: int) -> None:
    try:
        ecbao_redis.client().delete(_hold_key(listing_id))
    except Exception:
        logger.warning("could not release the hold on listing %s", listing_id, exc_info=True)


def held_listings(listing_ids: list[int]) -> dict[int, float]:
    """Listings on hold after a rate limit → seconds left."""
    if not listing_ids:
        return {}
    try:
        pipe = ecbao_redis.client().pipeline(transaction=False)
        for listing_id in listing_ids:
            pipe.pttl(_hold_key(listing_id))
        left = pipe.execute()
    except Exception:
        logger.warning("could not read stock push holds", exc_info=True)
        return {}
    return {i: ms / 1000 for i, ms in zip(listing_ids, left, strict=True) if ms and ms > 0}


def push_listings(listing_ids: list[int], *, threads: int | None = None) -> list[PushOutcome]:
    """Push listings, stores concurrently (one thread and DB connection per worker), each
    store's listings in order. Inside an open transaction (tests) everything runs inline,
    since other connections could not see uncommitted rows. Listings on hold after a rate
    limit are left for their scheduled retry."""
    held = held_listings(listing_ids)
    if held:
        _schedule_retry_quietly(min(held.values()))
        listing_ids = [i for i in listing_ids if i not in held]
    by_store: dict[int, list[int]] = {}
    for listing_id, store_id in (
        Listing.objects.filter(pk__in=listing_ids).order_by("store_id", "id").values_list("pk", "store_id")
    ):
        by_store.setdefault(store_id, []).append(listing_id)
    groups: queue.SimpleQueue = queue.SimpleQueue()
    for ids in by_store.values():
        groups.put(ids)
    outcomes: list[PushOutcome] = []
    workers = min(threads or sync_threads(), len(by_store))
    if workers <= 1 or connection.in_atomic_block:
        _push_store_groups(groups, outcomes)
        return outcomes
    schema = connection.schema_name

    def work() -> None:
        from django_tenants.utils import schema_context

        try:
            with schema_context(schema):
                _push_store_groups(groups, outcomes)
        except Exception:
            logger.exception("stock push worker failed in %s", schema)
        finally:
            connection.close()

    pool = [threading.Thread(target=work, name=f"stock-push-{i}", daemon=True) for i in range(workers - 1)]
    for thread in pool:
        thread.start()
    _push_store_groups(groups, outcomes)  # this thread works too, on its own connection
    for thread in pool:
        thread.join()
    return outcomes


def listings_for_skus(sku_ids: set[int]) -> list[int]:
    """Listings to push when these SKUs' stock changed (combinations that use them included)."""
    combos = set(ComboComponent.objects.filter(component_id__in=sku_ids).values_list("combo_id", flat=True))
    return list(
        Listing.objects.filter(
            sku_id__in=sku_ids | combos,
            match=Listing.Match.MATCHED,
            locked=False,
            store__status=Store.Status.ACTIVE,
        )
        .order_by("store_id", "id")
        .values_list("pk", flat=True)
    )


@dataclass
class SyncRound:
    changes: int = 0
    skus: int = 0
    outcomes: list[PushOutcome] = field(default_factory=list)


def sync_pending_changes(*, batch: int = 5000, threads: int | None = None) -> SyncRound:
    """Consume the outbox once: coalesce per SKU, push every affected listing once, then delete
    the rows read. Two workers reading the same rows push nothing twice (each push compares
    the listing's accepted number under its row lock); a worker that dies mid-round leaves
    the rows for the next one."""
    result = SyncRound()
    rows = list(StockChange.objects.order_by("id").values_list("pk", "sku_id")[:batch])
    if not rows:
        return result
    result.changes = len(rows)
    sku_ids = {sku_id for _, sku_id in rows}
    result.skus = len(sku_ids)
    listing_ids = listings_for_skus(sku_ids)
    result.outcomes = push_listings(listing_ids, threads=threads)
    answered = {o.listing_id for o in result.outcomes}
    unanswered = [i for i in listing_ids if i not in answered]
    if Listing.objects.filter(pk__in=unanswered).exclude(push_state=Listing.PushState.FAILED).exists():
        # A push worker died before it recorded these (its log says why): keep the rows. (A
        # failed listing, e.g. one held after a rate limit, is pushed again by the retries.)
        raise IncompleteRound(f"stock push round left {len(unanswered)} listings unanswered")
    # Every push is recorded now (pushed, or failed and left to the retries): acknowledge.
    StockChange.objects.filter(pk__in=[pk for pk, _ in rows]).delete()
    return result


class IncompleteRound(RuntimeError):
    """A sync round could not record a push for every listing; its outbox rows are kept."""


def push_unsynced_listings(*, limit: int = 500, threads: int | None = None) -> SyncRound:
    """The safety net's pushes: listings still pending, those whose accepted number differs
    from the last computed one, then the least recently checked (up to ``limit`` in all).
    Each push recomputes the number from the balances and calls the platform only when it
    differs from what the platform last accepted, so a change whose signal and outbox row
    were both lost still reaches the platform within a few rounds. Failed listings are left
    to ``retry_failed_listings``."""
    candidates = Listing.objects.filter(
        match=Listing.Match.MATCHED, locked=False, store__status=Store.Status.ACTIVE
    ).exclude(push_state=Listing.PushState.FAILED)
    unsynced = (
        Q(push_state=Listing.PushState.PENDING)
        | Q(pushed_qty__isnull=True)
        | Q(computed_qty__isnull=True)
        | ~Q(pushed_qty=F("computed_qty"))
    )
    ids = list(candidates.filter(unsynced).order_by("updated_at").values_list("pk", flat=True)[:limit])
    if len(ids) < limit:
        ids += (
            candidates.exclude(pk__in=ids)
            .order_by("updated_at")
            .values_list("pk", flat=True)[: limit - len(ids)]
        )
    result = SyncRound(outcomes=push_listings(ids, threads=threads) if ids else [])
    schedule_retry_if_failed(result.outcomes)
    return result


def retry_failed_listings(*, limit: int = 500, threads: int | None = None) -> SyncRound:
    """Push again every listing whose last push failed (fewer than MAX_PUSH_ATTEMPTS in a
    row); each push recomputes the current number."""
    ids = list(
        Listing.objects.filter(
            push_state=Listing.PushState.FAILED,
            push_attempts__lt=MAX_PUSH_ATTEMPTS,
            match=Listing.Match.MATCHED,
            locked=False,
            store__status=Store.Status.ACTIVE,
        )
        .order_by("updated_at")
        .values_list("pk", flat=True)[:limit]
    )
    result = SyncRound(outcomes=push_listings(ids, threads=threads) if ids else [])
    schedule_retry_if_failed(result.outcomes)
    return result


def retry_delay(outcomes: list[PushOutcome]) -> float | None:
    """When to retry a round's failed pushes (None: nothing to retry): exponential in the
    fewest consecutive failures among them, at least the platform's rate-limit hint."""
    failed = [o for o in outcomes if o.error and o.attempts < MAX_PUSH_ATTEMPTS]
    if not failed:
        return None
    fewest = min(max(o.attempts, 1) for o in failed)
    delay = min(RETRY_MAX_DELAY, RETRY_FIRST_DELAY * 2 ** (fewest - 1))
    hint = max(o.retry_after for o in failed)
    return max(delay, min(hint, 2 * RETRY_MAX_DELAY))


def _pending_key(schema: str) -> str:
    return ecbao_redis.key("stock-sync", "pending", schema)


def queue_key() -> str:
    return ecbao_redis.key("stock-sync", "queue")


SIGNAL_DELAY_SECONDS = 0.02
_signal_lock = threading.Lock()
_dirty_schemas: set[str] = set()
_signaller: threading.Thread | None = None


def schedule_stock_sync() -> None:
    """Called after a stock change commits: signal the stock-sync daemon for this tenant.

    Trailing debounce per process: the first change marks the tenant and starts a short-lived
    thread that sends the Redis signal ``SIGNAL_DELAY_SECONDS`` later; changes until then
    only find the mark. A burst of reservations costs one Redis round trip instead of one
    each, and the daemon hears of every change within the delay (it clears the Redis flag
    before it drains, so a change committed while it works raises a new signal). A process
    that dies inside the delay loses only the signal: the periodic sync task drains the
    outbox anyway."""
    global _signaller
    schema = connection.schema_name
    with _signal_lock:
        if schema in _dirty_schemas:
            return
        _dirty_schemas.add(schema)
        if _signaller is None or not _signaller.is_alive():
            _signaller = threading.Thread(target=_send_signals, name="stock-sync-signal", daemon=True)
            _signaller.start()


def _send_signals() -> None:
    global _signaller
    while True:
        time.sleep(SIGNAL_DELAY_SECONDS)
        with _signal_lock:
            schemas = sorted(_dirty_schemas)
            _dirty_schemas.clear()
            if not schemas:
                _signaller = None
                return
        for schema in schemas:
            try:
                signal_stock_sync(schema)
            except Exception:  # the periodic sync task is the safety net
                logger.warning("stock-sync signal for %s not sent", schema, exc_info=True)


def signal_stock_sync(schema: str) -> None:
    """Tell the stock-sync daemon ``schema`` has pending stock changes (two Redis round trips
    when the flag is new, one when a signal is already pending)."""
    client = ecbao_redis.client()
    if client.set(_pending_key(schema), 1, nx=True, ex=PENDING_TTL_SECONDS):
        client.rpush(queue_key(), schema)


def _reset_after_fork() -> None:
    global _signal_lock, _signaller
    _signal_lock = threading.Lock()
    _signaller = None
    _dirty_schemas.clear()


os.register_at_fork(after_in_child=_reset_after_fork)


def take_signal(timeout: float) -> str | None:
    """Block until a tenant has pending stock changes; returns its schema (flag cleared)."""
    client = ecbao_redis.client()
    try:
        item = client.blpop([queue_key()], timeout=max(timeout, 0.01))  # 0 would block forever
    except (redis.exceptions.TimeoutError, redis.exceptions.ConnectionError):
        logger.warning("stock-sync signal queue unreachable; retrying", exc_info=True)
        time.sleep(min(max(timeout, 0.1), 1.0))
        return None
    if item is None:
        return None
    schema = item[1].decode()
    client.delete(_pending_key(schema))
    return schema


def retry_key() -> str:
    return ecbao_redis.key("stock-sync", "retry")


def schedule_retry(delay: float, schema: str | None = None) -> None:
    """Ask the daemon to retry this tenant's failed pushes in ``delay`` seconds (an earlier
    request for the same tenant wins)."""
    ecbao_redis.client().zadd(retry_key(), {schema or connection.schema_name: time.time() + delay}, lt=True)


def schedule_retry_if_failed(outcomes: list[PushOutcome]) -> None:
    delay = retry_delay(outcomes)
    if delay is not None:
        _schedule_retry_quietly(delay)


def _schedule_retry_quietly(delay: float) -> None:
    try:
        schedule_retry(delay)
    except Exception:  # the periodic retry task still finds the failed listings
        logger.exception("could not schedule a stock push retry")


def take_due_retries() -> list[str]:
    """Tenants whose failed pushes are due for a retry (each taken by one daemon only)."""
    client = ecbao_redis.client()
    due = client.zrangebyscore(retry_key(), "-inf", time.time())
    return [m.decode() for m in due if client.zrem(retry_key(), m)]


def next_retry_in() -> float | None:
    """Seconds until the next scheduled retry (None: none scheduled)."""
    first = ecbao_redis.client().zrange(retry_key(), 0, 0, withscores=True)
    return max(first[0][1] - time.time(), 0.0) if first else None


def drain(*, max_rounds: int = 50, threads: int | None = None) -> SyncRound:
    """Run sync rounds in the current tenant until the outbox is empty."""
    total = SyncRound()
    for _ in range(max_rounds):
        result = sync_pending_changes(threads=threads)
        if not result.changes:
            break
        total.changes += result.changes
        total.skus += result.skus
        total.outcomes.extend(result.outcomes)
    schedule_retry_if_failed(total.outcomes)
    return total


def run_daemon(
    *,
    stop: threading.Event | None = None,
    timeout: float = 5.0,
    once: bool = False,
    threads: int | None = None,
) -> None:
    """The stock-sync daemon's loop (``manage.py stock_sync_daemon``; tests run it in a
    thread): drain a tenant's outbox when its signal arrives, retry failed pushes when due."""
    from django_tenants.utils import get_tenant_model, schema_context

    stop = stop or threading.Event()
    tenants = get_tenant_model()

    def serve(schema: str, what: str, action) -> None:
        if not tenants.objects.filter(schema_name=schema).exclude(schema_name="public").exists():
            return
        with schema_context(schema):
            try:
                result = action(threads=threads)
            except Exception:
                logger.exception("stock sync (%s) failed in %s", what, schema)
                return
        pushed = sum(1 for o in result.outcomes if o.pushed)
        failed = sum(1 for o in result.outcomes if o.error)
        logger.info(
            "stock sync %s %s: %s changes, %s SKUs, %s pushes, %s failed",
            what,
            schema,
            result.changes,
            result.skus,
            pushed,
            failed,
        )

    while not stop.is_set():
        try:
            for schema in take_due_retries():
                serve(schema, "retry", retry_failed_listings)
            wait = timeout
            due_in = next_retry_in()
            if due_in is not None:
                wait = min(wait, max(due_in, 0.02))
            schema = take_signal(wait)
            if schema:
                serve(schema, "changes", drain)
        except Exception:  # a daemon keeps running: Redis or the database may come back
            logger.exception("stock-sync daemon loop failed; continuing")
            stop.wait(1.0)
        close_old_connections()
        if once:
            break


def enqueue_listing_push(listing_id: int) -> None:
    from inventory.tasks import push_listing_task

    push_listing_task.delay(listing_id)


def enqueue_store_push(store_id: int) -> None:
    for listing_id in Listing.objects.filter(store_id=store_id, match=Listing.Match.MATCHED).values_list(
        "pk", flat=True
    ):
        enqueue_listing_push(listing_id)

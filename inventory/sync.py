"""Channel stock sync: every change of available stock reaches every listing of the SKU.

- Each stock change writes a ``StockChange`` outbox row in its own transaction; after
  commit, ``schedule_stock_sync`` enqueues one sync task (debounced through Redis).
- ``sync_pending_changes`` consumes the outbox (SKIP LOCKED, so several workers share it),
  **coalesces** the rows per SKU, and pushes each affected listing once.
- ``push_listing`` computes the number *inside a row lock on the listing* from the current
  balances, so two workers can never publish an older number after a newer one: whoever
  pushes last computed last.
- Platforms with delta-only stock APIs get ``current=None`` and read the platform's number
  themselves before writing the difference.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from channels import services as channel_services
from channels.errors import ChannelError
from channels.models import Store
from channels.types import Listing as ChannelListing
from ecbao import events
from ecbao import redis as ecbao_redis
from inventory import selectors
from inventory.events import ListingMatched
from inventory.models import ComboComponent, Listing, Sku, StockChange, StockRule

logger = logging.getLogger(__name__)

PENDING_TTL_SECONDS = 30  # a lost signal is re-raised by the next change or the periodic task


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
        transaction.on_commit(lambda: enqueue_listing_push(listing.pk))
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


def push_listing(*, listing_id: int, force: bool = False, connector=None) -> PushOutcome:
    """Publish the rule's number for one listing (see module docstring)."""
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
        connector = connector or channel_services.connector_for(listing.store)
        target = ChannelListing(
            platform_product_id=listing.platform_product_id,
            platform_sku_id=listing.platform_sku_id,
            merchant_code=listing.merchant_code,
            title=listing.title,
            spec=listing.spec,
            stock=listing.platform_stock if listing.platform_stock is not None else -1,
        )
        try:
            connector.set_stock(
                listing=target,
                quantity=quantity,
                current=None,
                idempotency_key=f"stock-{connection.schema_name}-{listing.pk}-{quantity}-{timezone.now().timestamp():.3f}",
            )
        except ChannelError as exc:
            outcome.error = str(exc)
            listing.push_state = Listing.PushState.FAILED
            listing.push_error = str(exc)[:2000]
            listing.push_attempts += 1
            listing.save(
                update_fields=["computed_qty", "push_state", "push_error", "push_attempts", "updated_at"]
            )
            return outcome
        listing.pushed_qty = listing.platform_stock = quantity
        listing.pushed_at = timezone.now()
        listing.push_state = Listing.PushState.IN_SYNC
        listing.push_error = ""
        listing.push_attempts = 0
        listing.save()
        outcome.pushed = True
    return outcome


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


def sync_pending_changes(*, batch: int = 5000) -> SyncRound:
    """Consume the outbox once: coalesce per SKU, push every affected listing once."""
    result = SyncRound()
    with transaction.atomic():
        rows = list(
            StockChange.objects.select_for_update(skip_locked=True)
            .order_by("id")
            .values_list("pk", "sku_id")[:batch]
        )
        if not rows:
            return result
        StockChange.objects.filter(pk__in=[pk for pk, _ in rows]).delete()
    result.changes = len(rows)
    sku_ids = {sku_id for _, sku_id in rows}
    result.skus = len(sku_ids)
    for listing_id in listings_for_skus(sku_ids):
        result.outcomes.append(push_listing(listing_id=listing_id))
    return result


def _pending_key(schema: str) -> str:
    return ecbao_redis.key("stock-sync", "pending", schema)


def queue_key() -> str:
    return ecbao_redis.key("stock-sync", "queue")


def schedule_stock_sync() -> None:
    """Called after a stock change commits: signal the stock-sync daemon for this tenant.

    One Redis round trip when a signal is already pending (the common case under load), two
    when it is new; the daemon clears the flag before it drains, so a change committed
    while it works raises a new signal."""
    schema = connection.schema_name
    client = ecbao_redis.client()
    if client.set(_pending_key(schema), 1, nx=True, ex=PENDING_TTL_SECONDS):
        client.rpush(queue_key(), schema)


def take_signal(timeout: float) -> str | None:
    """Block until a tenant has pending stock changes; returns its schema (flag cleared)."""
    client = ecbao_redis.client()
    item = client.blpop([queue_key()], timeout=timeout)
    if item is None:
        return None
    schema = item[1].decode()
    client.delete(_pending_key(schema))
    return schema


def drain(*, max_rounds: int = 50) -> SyncRound:
    """Run sync rounds in the current tenant until the outbox is empty."""
    total = SyncRound()
    for _ in range(max_rounds):
        result = sync_pending_changes()
        if not result.changes:
            break
        total.changes += result.changes
        total.skus += result.skus
        total.outcomes.extend(result.outcomes)
    return total


def enqueue_listing_push(listing_id: int) -> None:
    from inventory.tasks import push_listing_task

    push_listing_task.delay(listing_id)


def enqueue_store_push(store_id: int) -> None:
    for listing_id in Listing.objects.filter(store_id=store_id, match=Listing.Match.MATCHED).values_list(
        "pk", flat=True
    ):
        enqueue_listing_push(listing_id)

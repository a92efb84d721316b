"""Incremental pulls: walk update-time windows for a store and keep every order (and after-sale)
version. The after-sale pull (``pull_after_sales``, notes in its section) has the same shape.

Rules that make the pull safe to run at any time, twice, or concurrently:
- one pull per (store, kind) at a time: a PostgreSQL advisory lock held for the run (freed
  automatically if the worker dies);
- windows never exceed the platform's maximum (``Connector.max_order_window``);
- each run starts ``OVERLAP`` before the watermark, so versions the platform committed late
  (stamped with an earlier update time than their commit) are still seen;
- the window's end stays ``SETTLE`` behind "now", so a version still being written is not
  half-seen;
- the platform is read outside any transaction, so tokens renewed during a run are saved at
  once even when the run fails later; each batch of orders commits on its own (storage is
  idempotent), and the watermark advances only after its whole window is stored; a failure
  leaves it where it was and the next run repeats the window.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.db import connection
from django.utils import timezone

from channels import services
from channels.connectors.base import time_spans
from channels.errors import ChannelError, PlatformRejected
from channels.models import ChannelAfterSaleState, Store, SyncCursor

logger = logging.getLogger(__name__)

OVERLAP = timedelta(minutes=5)
SETTLE = timedelta(seconds=2)
INITIAL_LOOKBACK = timedelta(days=3)
STORE_BATCH = 200  # orders stored per statement set (one OrdersChanged event each)
READ_AHEAD = True  # fetch the next batch from the platform while storing this one


@dataclass
class PullResult:
    store_id: int
    windows: int = 0
    orders_seen: int = 0
    orders_changed: int = 0
    skipped: bool = False
    error: str = ""


def order_windows(
    *, start: datetime, end: datetime, max_window: timedelta
) -> list[tuple[datetime, datetime]]:
    """Split [start, end] into consecutive windows no longer than ``max_window``."""
    return list(time_spans(start, end, max_window)) if start < end else []


@contextmanager
def advisory_lock(name: str):
    """A session-level PostgreSQL advisory lock scoped to the current schema; yields False
    when someone else holds it."""
    digest = hashlib.blake2b(f"ecbao:{connection.schema_name}:{name}".encode(), digest_size=8).digest()
    key = int.from_bytes(digest, "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        acquired = cursor.fetchone()[0]
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


_DONE = object()


def _in_batches(produce: Callable[[], Iterator], size: int) -> Iterator[list]:
    batch: list = []
    for item in produce():
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _read_ahead(produce: Callable[[], Iterator], size: int, depth: int = 2) -> Iterator[list]:
    """Batches of ``size`` items from ``produce()``, iterated in a helper thread that stays at
    most ``depth`` batches ahead. An error there is raised here, in order; when the consumer
    stops early (its own error), the helper stops at its next batch."""
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            batch: list = []
            for item in produce():
                batch.append(item)
                if len(batch) >= size:
                    if not put(batch):
                        return
                    batch = []
            if batch and not put(batch):
                return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer
            put(exc)
        finally:
            connection.close()  # this thread's own connection, if a token save opened one

    helper = threading.Thread(target=run, name="pull-read-ahead", daemon=True)
    helper.start()
    try:
        while True:
            item = handoff.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        helper.join(timeout=30)


def pull_orders(*, store_id: int, now: datetime | None = None, connector=None) -> PullResult:
    """Pull every order of ``store_id`` changed since its watermark (see module docstring)."""
    result = PullResult(store_id=store_id)
    with advisory_lock(f"pull-orders:{store_id}") as acquired:
        if not acquired:
            result.skipped = True
            return result
        store = Store.objects.get(pk=store_id)
        if store.status not in (Store.Status.ACTIVE, Store.Status.ERROR):
            result.skipped = True
            return result
        cursor, _ = SyncCursor.objects.get_or_create(store=store, kind=SyncCursor.Kind.ORDERS)
        now = now or timezone.now()
        connector = connector or services.connector_for(store)
        end = now - SETTLE
        start = (cursor.watermark - OVERLAP) if cursor.watermark else end - INITIAL_LOOKBACK
        start = max(start, now - connector.max_lookback + timedelta(minutes=1))
        windows = order_windows(start=start, end=end, max_window=connector.max_order_window)
        SyncCursor.objects.filter(pk=cursor.pk).update(
            state=SyncCursor.State.RUNNING,
            started_at=timezone.now(),
            finished_at=None,
            windows_total=len(windows),
            windows_done=0,
            items_seen=0,
            last_error="",
        )
        try:
            for lower, upper in windows:
                # No transaction around the platform calls: a token renewed on the way is saved
                # at once, and stays saved when the window fails later (rolled back, the store
                # would keep tokens the platform already retired). Each batch commits on its own.
                # The platform is read one batch ahead in another thread, so fetching the next
                # page overlaps storing this one — unless the caller holds a transaction, whose
                # uncommitted rows (the store itself) a token save on another connection
                # could not see.
                read = _read_ahead if READ_AHEAD and not connection.in_atomic_block else _in_batches
                window = partial(connector.iter_orders, updated_from=lower, updated_to=upper)
                with closing(read(window, STORE_BATCH)) as batches:
                    for batch in batches:
                        result.orders_seen += len(batch)
                        result.orders_changed += len(
                            services.store_order_versions(store=store, orders=batch, source="pull")
                        )
                result.windows += 1
                SyncCursor.objects.filter(pk=cursor.pk).update(
                    watermark=upper, windows_done=result.windows, items_seen=result.orders_seen
                )
        except ChannelError as exc:
            result.error = str(exc)
            SyncCursor.objects.filter(pk=cursor.pk).update(
                state=SyncCursor.State.FAILED, last_error=str(exc)[:2000], finished_at=timezone.now()
            )
            services.record_store_error(store=store, error=exc)
            logger.warning("order pull for store %s stopped: %s", store_id, exc)
            return result
        SyncCursor.objects.filter(pk=cursor.pk).update(
            state=SyncCursor.State.IDLE, finished_at=timezone.now()
        )
        if store.last_error or store.status == Store.Status.ERROR:
            Store.objects.filter(pk=store.pk).update(last_error="", status=Store.Status.ACTIVE)
    return result


# --- after-sales ------------------------------------------------------------------------------------
#
# The same shape as the order pull: one run per store at a time (advisory lock), a per-store
# watermark (``SyncCursor`` kind ``after_sales``) moved only after a whole window is stored, an
# overlap and a settle margin, errors on the cursor and the store. Each version goes through
# ``services.store_after_sale_version(..., source="pull")``, which is idempotent and
# order-preserving and publishes ``AfterSaleChanged`` for a newer one.
#
# Douyin (``update_start_time``) and Kuaishou (``queryType=2``, one-day spans) list by update
# time. WeChat's list filters by creation time only (§3.7: no update-time filter confirmed), so
# its windows list the after-sales *created* in them, and every after-sale of the store still open
# on our side is read again (detail) on each run — that is how a WeChat change is seen without a
# push.

REREAD_LIMIT = 500  # open WeChat after-sales read again per run (the least recently changed first)
OPEN_AFTER_SALE_STATUSES = (
    "waiting_merchant",
    "waiting_buyer_return",
    "waiting_merchant_receipt",
    "refunding",
)


@dataclass
class AfterSalePullResult:
    store_id: int
    windows: int = 0
    seen: int = 0
    changed: int = 0
    reread: int = 0
    skipped: bool = False
    error: str = ""


def _created_only(connector) -> bool:
    return bool(getattr(connector, "after_sales_listed_by_creation", False))


def pull_after_sales(*, store_id: int, now: datetime | None = None, connector=None) -> AfterSalePullResult:
    """Pull every after-sale of ``store_id`` changed since its watermark (see the notes above)."""
    result = AfterSalePullResult(store_id=store_id)
    with advisory_lock(f"pull-after-sales:{store_id}") as acquired:
        if not acquired:
            result.skipped = True
            return result
        store = Store.objects.get(pk=store_id)
        if store.status not in (Store.Status.ACTIVE, Store.Status.ERROR):
            result.skipped = True
            return result
        cursor, _ = SyncCursor.objects.get_or_create(store=store, kind=SyncCursor.Kind.AFTER_SALES)
        now = now or timezone.now()
        connector = connector or services.connector_for(store)
        end = now - SETTLE
        start = (cursor.watermark - OVERLAP) if cursor.watermark else end - INITIAL_LOOKBACK
        start = max(start, now - connector.max_lookback + timedelta(minutes=1))
        windows = order_windows(start=start, end=end, max_window=connector.max_order_window)
        created_only = _created_only(connector)
        SyncCursor.objects.filter(pk=cursor.pk).update(
            state=SyncCursor.State.RUNNING, started_at=timezone.now(), finished_at=None,
            windows_total=len(windows), windows_done=0, items_seen=0, last_error="",
        )  # fmt: skip

        def keep(after_sale) -> None:
            result.seen += 1
            if services.store_after_sale_version(store=store, after_sale=after_sale, source="pull"):
                result.changed += 1

        try:
            for lower, upper in windows:
                listing = connector.iter_after_sales_created if created_only else connector.iter_after_sales
                for after_sale in (
                    listing(created_from=lower, created_to=upper)
                    if created_only
                    else listing(updated_from=lower, updated_to=upper)
                ):
                    keep(after_sale)
                result.windows += 1
                SyncCursor.objects.filter(pk=cursor.pk).update(
                    watermark=upper, windows_done=result.windows, items_seen=result.seen
                )
            if created_only:
                open_ids = list(
                    ChannelAfterSaleState.objects.filter(store=store, status__in=OPEN_AFTER_SALE_STATUSES)
                    .order_by("changed_at", "pk")
                    .values_list("platform_after_sale_id", flat=True)[:REREAD_LIMIT]
                )
                for platform_after_sale_id in open_ids:
                    try:
                        after_sale = connector.get_after_sale(platform_after_sale_id)
                    except PlatformRejected as exc:  # this one is refused (gone, not ours): skip it
                        logger.warning(
                            "after-sale %s of store %s not re-read: %s", platform_after_sale_id, store_id, exc
                        )
                        continue
                    result.reread += 1
                    keep(after_sale)
        except ChannelError as exc:
            result.error = str(exc)
            SyncCursor.objects.filter(pk=cursor.pk).update(
                state=SyncCursor.State.FAILED, last_error=str(exc)[:2000], finished_at=timezone.now()
            )
            services.record_store_error(store=store, error=exc)
            logger.warning("after-sale pull for store %s stopped: %s", store_id, exc)
            return result
        SyncCursor.objects.filter(pk=cursor.pk).update(
            state=SyncCursor.State.IDLE, finished_at=timezone.now(), items_seen=result.seen
        )
    return result


def pull_after_sales_of_all_stores(*, now: datetime | None = None) -> list[AfterSalePullResult]:
    """Every active store of this schema in turn; one store's failure (any exception) is recorded on
    its result and its cursor and does not stop the others."""
    results = []
    for store_id in Store.objects.filter(status__in=[Store.Status.ACTIVE, Store.Status.ERROR]).values_list(
        "pk", flat=True
    ):
        try:
            results.append(pull_after_sales(store_id=store_id, now=now))
        except Exception as exc:  # noqa: BLE001 - any failure stays with its store
            logger.exception("after-sale pull for store %s failed", store_id)
            SyncCursor.objects.filter(store_id=store_id, kind=SyncCursor.Kind.AFTER_SALES).update(
                state=SyncCursor.State.FAILED, last_error=str(exc)[:2000], finished_at=timezone.now()
            )
            results.append(AfterSalePullResult(store_id=store_id, error=str(exc)))
    return results

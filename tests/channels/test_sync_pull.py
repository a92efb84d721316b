"""``channels.sync.pull_orders`` against the Douyin sandbox (in-process WSGI, FakeClock).

The watermark moves only together with a stored window; a platform failure half-way leaves it
where the last stored window ended and shows the error on the store and its cursor; a second
pull of the same store while one runs is skipped (advisory lock); expired tokens are renewed
and saved (encrypted) on the store; a withdrawn authorisation marks the store ``auth_expired``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from django.db import connection
from django_tenants.utils import schema_context

from channels import services
from channels.connectors.base import RetryPolicy
from channels.models import ChannelOrderState, OrderSnapshot, Store, SyncCursor
from channels.sync import OVERLAP, SETTLE, advisory_lock, pull_orders
from sandbox.clock import FakeClock
from sandbox.douyin import DouyinApp
from sandbox.faults import Faults
from sandbox.model import App, Order
from sandbox.seed import seed_default_world
from sandbox.world import OrderItemSpec, World

BASE = "http://douyin.sandbox"
DAY = 86400


@dataclass
class Rig:
    world: World
    clock: FakeClock
    faults: Faults
    gateway: DouyinApp

    @property
    def app(self) -> App:
        return self.world.apps("douyin")[0]

    @property
    def shop_id(self) -> str:
        return self.world.shops("douyin")[0].shop_id

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now(), UTC)

    def http(self) -> httpx.Client:
        return httpx.Client(transport=httpx.WSGITransport(app=self.gateway), base_url=BASE)

    def connector(self, store: Store):
        """The store's connector (token refreshes saved to the store), over the WSGI transport."""
        return services.connector_for(
            store, http=self.http(), now=self.now, retry=RetryPolicy(sleep=lambda seconds: None)
        )

    def pull(self, store: Store, connector=None, now: datetime | None = None):
        store = Store.objects.get(pk=store.pk)
        connector = connector or self.connector(store)
        return pull_orders(store_id=store.pk, now=now or self.now(), connector=connector)

    def order(self, *, pay: bool = True) -> Order:
        sku = self.world.skus(self.shop_id)[0]
        return self.world.create_order(
            shop_id=self.shop_id, buyer_id=1, items=[OrderItemSpec(sku.sku_id, 1)], pay=pay
        )


@pytest.fixture
def rig(tmp_path, settings):
    # Two days and an hour of history before "now" (the wall clock, so that nothing else differs).
    clock = FakeClock(start=float(int(time.time()) - 2 * DAY - 3600))
    world = World(tmp_path / "douyin.sqlite3", seed=11, clock=clock)
    seed_default_world(world, platforms=("douyin",), shops_per_platform=1, buyers=10, product_count=3)
    faults = Faults(world)
    settings.CHANNEL_BASE_URLS = {**settings.CHANNEL_BASE_URLS, "douyin": BASE}
    yield Rig(world=world, clock=clock, faults=faults, gateway=DouyinApp(world, faults=faults))
    world.close()


@pytest.fixture
def store(rig: Rig, in_alpha) -> Store:
    """The shop connected to alpha through the OAuth code exchange."""
    services.register_app(
        platform="douyin", app_key=rig.app.app_key, secrets={"app_secret": rig.app.app_secret}
    )
    connector = services.unbound_connector(
        platform="douyin", app_key=rig.app.app_key, http=rig.http(), now=rig.now
    )
    grant = connector.exchange_code(code=rig.world.create_oauth_code(rig.app.app_key, rig.shop_id).code)
    return services.connect_store(platform="douyin", app_key=rig.app.app_key, grant=grant)


def history(rig: Rig) -> list[Order]:
    """Three orders a day apart (one per one-day window of the first pull); "now" is an hour
    after the last."""
    orders = []
    for day in range(3):
        rig.clock.advance(60 if day == 0 else DAY)
        orders.append(rig.order())
    rig.clock.advance(3600)
    return orders


def stored_ids(store: Store) -> set[str]:
    return set(ChannelOrderState.objects.filter(store=store).values_list("platform_order_id", flat=True))


def cursor_of(store: Store) -> SyncCursor:
    return SyncCursor.objects.get(store=store, kind=SyncCursor.Kind.ORDERS)


def test_first_pull_walks_one_day_windows_and_moves_the_watermark_to_the_end(rig: Rig, store: Store):
    first, second, third = history(rig)
    result = rig.pull(store)
    assert (result.windows, result.orders_seen, result.orders_changed, result.error) == (3, 3, 3, "")
    assert stored_ids(store) == {first.order_id, second.order_id, third.order_id}
    cursor = cursor_of(store)
    assert cursor.watermark == rig.now() - SETTLE
    assert (cursor.state, cursor.windows_total, cursor.windows_done, cursor.items_seen) == ("idle", 3, 3, 3)
    assert set(OrderSnapshot.objects.filter(store=store).values_list("source", flat=True)) == {"pull"}

    # The next pull starts OVERLAP before the watermark: one window, nothing new stored twice.
    rig.clock.advance(600)
    again = rig.pull(store)
    assert (again.windows, again.orders_changed) == (1, 0)
    assert cursor_of(store).watermark == rig.now() - SETTLE
    assert OrderSnapshot.objects.filter(store=store).count() == 3


def test_a_failure_half_way_keeps_the_watermark_at_the_last_stored_window(rig: Rig, store: Store):
    first, second, third = history(rig)
    Store.objects.filter(pk=store.pk).update(status=Store.Status.ERROR)  # an earlier problem
    connector = rig.connector(store)
    windows: list[tuple[datetime, datetime]] = []
    iter_orders = connector.iter_orders

    def second_window_fails(*, updated_from, updated_to):
        windows.append((updated_from, updated_to))
        if len(windows) == 2:  # the platform's order list starts failing: every call a 502/503/504
            rig.faults.set("douyin", "/order/searchList", http_5xx_rate=1.0)
        yield from iter_orders(updated_from=updated_from, updated_to=updated_to)

    connector.iter_orders = second_window_fails
    result = rig.pull(store, connector)
    assert result.windows == 1 and result.error.startswith("HTTP 50")
    assert stored_ids(store) == {first.order_id}
    cursor = cursor_of(store)
    assert cursor.watermark == windows[0][1]  # the end of the one window that was stored
    assert cursor.state == SyncCursor.State.FAILED and cursor.last_error == result.error
    assert cursor.windows_done == 1 and cursor.windows_total == 3
    failed = Store.objects.get(pk=store.pk)
    assert failed.last_error == result.error and failed.last_error_at is not None
    assert failed.status == Store.Status.ERROR  # a passing failure does not change the status

    # The platform recovers: the next pull repeats from the watermark (minus the overlap).
    rig.faults.clear("douyin")
    rig.clock.advance(60)
    recovered = rig.pull(store)
    assert not recovered.error and recovered.orders_changed == 2
    assert stored_ids(store) == {first.order_id, second.order_id, third.order_id}
    cursor = cursor_of(store)
    assert cursor.watermark == rig.now() - SETTLE and cursor.state == SyncCursor.State.IDLE
    assert cursor.last_error == ""
    healthy = Store.objects.get(pk=store.pk)
    assert (healthy.status, healthy.last_error) == (Store.Status.ACTIVE, "")


def test_a_failure_in_the_first_window_leaves_no_watermark(rig: Rig, store: Store):
    history(rig)
    rig.faults.set("douyin", "/order/searchList", http_5xx_rate=1.0)
    result = rig.pull(store)
    assert result.windows == 0 and result.error
    cursor = cursor_of(store)
    assert cursor.watermark is None and cursor.state == SyncCursor.State.FAILED
    assert not stored_ids(store)
    assert Store.objects.get(pk=store.pk).status == Store.Status.ACTIVE


def test_a_second_pull_of_the_same_store_is_skipped_while_one_runs(rig: Rig, store: Store):
    history(rig)
    schema, held, release = connection.schema_name, threading.Event(), threading.Event()

    def another_pull_holds_the_lock() -> None:  # another worker, on its own connection
        try:
            with schema_context(schema), advisory_lock(f"pull-orders:{store.pk}") as acquired:
                assert acquired
                held.set()
                release.wait(10)
        finally:
            connection.close()

    other = threading.Thread(target=another_pull_holds_the_lock)
    other.start()
    try:
        assert held.wait(10)
        skipped = rig.pull(store)
        assert skipped.skipped and skipped.windows == 0
        assert not SyncCursor.objects.filter(store=store).exists() and not stored_ids(store)
    finally:
        release.set()
        other.join(10)
    done = rig.pull(store)
    assert not done.skipped and done.orders_changed == 3


def test_another_tenant_may_pull_a_store_with_the_same_id_at_the_same_time(rig: Rig, store: Store, beta):
    """The lock is per schema: beta's store 1 is not alpha's store 1."""
    history(rig)
    schema, held, release = connection.schema_name, threading.Event(), threading.Event()

    def other_tenant_pulls() -> None:
        try:
            with schema_context(beta.schema_name), advisory_lock(f"pull-orders:{store.pk}") as acquired:
                assert acquired
                held.set()
                release.wait(10)
        finally:
            connection.close()

    other = threading.Thread(target=other_tenant_pulls)
    other.start()
    try:
        assert held.wait(10)
        assert connection.schema_name == schema
        assert not rig.pull(store).skipped
    finally:
        release.set()
        other.join(10)


def raw_token_columns(store: Store) -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT access_token, refresh_token FROM channels_store WHERE id = %s", [store.pk])
        return cursor.fetchone()


def test_an_expired_access_token_is_renewed_and_saved_encrypted(rig: Rig, store: Store):
    old_access, old_refresh = store.access_token, store.refresh_token
    rig.clock.advance(8 * DAY)  # Douyin access tokens live 7 days, refresh tokens 14
    rig.order()
    rig.clock.advance(10)
    result = rig.pull(store)
    assert not result.error and result.orders_changed == 1
    renewed = Store.objects.get(pk=store.pk)
    assert renewed.access_token and renewed.access_token != old_access
    assert renewed.refresh_token and renewed.refresh_token != old_refresh
    assert renewed.access_expires_at > rig.now() + timedelta(days=6)
    assert renewed.token_issued_at > store.token_issued_at
    assert rig.world.get_token(renewed.access_token).shop_id == rig.shop_id
    calls = [(c.path, c.code) for c in reversed(rig.world.recent_calls(10))]
    assert ("/token/refresh", "10000") in calls and not any("expired" in code for _, code in calls)
    raw_access, raw_refresh = raw_token_columns(renewed)  # stored encrypted, never in plain text
    assert renewed.access_token not in raw_access and renewed.refresh_token not in raw_refresh
    assert raw_access != raw_refresh


def test_a_token_the_platform_says_expired_is_renewed_and_the_call_repeated(rig: Rig, store: Store):
    """The store believes its token is good; the platform answers access-token-expired."""
    Store.objects.filter(pk=store.pk).update(access_expires_at=rig.now() + timedelta(days=30))
    rig.clock.advance(8 * DAY)
    order = rig.order()
    rig.clock.advance(10)
    result = rig.pull(store)
    assert not result.error and stored_ids(store) == {order.order_id}
    calls = [(c.path, c.code) for c in reversed(rig.world.recent_calls(10))]  # oldest first
    expired = calls.index(("/order/searchList", "40003/isv.access-token-expired"))
    assert calls[expired + 1 : expired + 3] == [("/token/refresh", "10000"), ("/order/searchList", "10000")]
    renewed = Store.objects.get(pk=store.pk)
    assert renewed.access_token != store.access_token and renewed.status == Store.Status.ACTIVE
    assert renewed.access_expires_at < rig.now() + timedelta(days=8)


def test_a_withdrawn_authorisation_marks_the_store_auth_expired(rig: Rig, store: Store):
    history(rig)
    assert not rig.pull(store).error
    watermark = cursor_of(store).watermark
    rig.world.revoke_authorization(rig.app.app_key, rig.shop_id)  # the merchant removed the app
    rig.clock.advance(600)
    rig.order()
    result = rig.pull(store)
    assert result.error and result.windows == 0
    lost = Store.objects.get(pk=store.pk)
    assert lost.status == Store.Status.AUTH_EXPIRED
    assert "authorization" in lost.last_error or "authorisation" in lost.last_error
    cursor = cursor_of(store)
    assert cursor.watermark == watermark and cursor.state == SyncCursor.State.FAILED
    # Until the merchant connects the shop again, pulls leave it alone.
    assert rig.pull(store).skipped


def test_the_window_end_stays_behind_now(rig: Rig, store: Store):
    """An order changed within the last SETTLE seconds is left for the next pull."""
    history(rig)
    rig.pull(store)
    rig.clock.advance(1)
    fresh = rig.order()
    assert rig.pull(store).orders_changed == 0 and fresh.order_id not in stored_ids(store)
    rig.clock.advance(SETTLE.total_seconds() + 1)
    assert rig.pull(store).orders_changed == 1 and fresh.order_id in stored_ids(store)


def test_the_overlap_finds_a_version_stamped_before_the_watermark(rig: Rig, store: Store):
    """A version the platform committed late, with an update time already behind the watermark."""
    history(rig)
    rig.pull(store, now=rig.now() + timedelta(seconds=60))  # our clock runs a minute ahead
    late = rig.order()  # stamped 58 s before the watermark
    assert late.update_time < cursor_of(store).watermark.timestamp()
    rig.clock.advance(120)
    assert rig.pull(store).orders_changed == 1 and late.order_id in stored_ids(store)
    assert OVERLAP >= timedelta(minutes=1)

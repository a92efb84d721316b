"""The periodic after-sale pull (``channels.sync.pull_after_sales``) against the sandbox's three
platforms served over real HTTP, with stores connected the merchant's way in tenant alpha.

Each version is stored once (a second pull of the same versions changes nothing); a newer version
replaces the state and an older one never does; WeChat's list (by creation time) is completed by
re-reading the open after-sales; a failing store does not stop the others and shows its error on
the store and its cursor, and the next run repairs it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from channels import services
from channels.models import AfterSaleSnapshot, ChannelAfterSaleState, Store, SyncCursor
from channels.sync import pull_after_sales, pull_after_sales_of_all_stores
from sandbox.clock import FakeClock
from sandbox.faults import Faults
from sandbox.seed import seed_default_world
from sandbox.server import SandboxServer, ServerOptions
from sandbox.world import OrderItemSpec, ShipmentSpec, World
from tests.e2e.test_stock_sync import _secrets, connect_shop

PLATFORMS = ("douyin", "kuaishou", "wechat")
EVIDENCE = "https://img.sandbox/ev/pulled.jpg"
LIST_PATHS = {
    "douyin": "/afterSale/List",
    "kuaishou": "/open/seller/order/refund/pcursor/list",
    "wechat": "/channels/ec/aftersale/getaftersalelist",
}


@pytest.fixture
def sandbox(tmp_path, settings):
    # The sandbox's fake clock starts at the wall clock: Douyin and Kuaishou refuse request
    # timestamps more than 10 minutes off theirs, so their tests move it by seconds only.
    clock = FakeClock(start=time.time())
    world = World(tmp_path / "world.sqlite3", seed=42, clock=clock)
    seed_default_world(world, shops_per_platform=1, buyers=10, product_count=3)
    server = SandboxServer(
        world, ServerOptions(ports={p: 0 for p in PLATFORMS}, simulate=False, push=False, threads=4)
    )
    for platform in PLATFORMS:
        Faults(world).set(platform, "*", qps=0)
    server.start()
    settings.CHANNEL_BASE_URLS = {**settings.CHANNEL_BASE_URLS, **server.urls}
    try:
        yield world, clock
    finally:
        server.stop()
        world.close()


@pytest.fixture
def stores(sandbox, in_alpha) -> dict[str, Store]:
    world, _ = sandbox
    tenant = services.current_tenant()
    for platform in ("douyin", "kuaishou"):  # the deployment's own apps (WeChat: the shop's self-use app)
        app = next(a for a in world.apps(platform) if a.app_type == "tool")
        services.register_app(platform=platform, app_key=app.app_key, secrets=_secrets(app))
    return {p: connect_shop(world, world.shops(p)[0], tenant) for p in PLATFORMS}


def at(clock: FakeClock, ahead: float = 10) -> datetime:
    """A "now" for the pull a little after the sandbox's (fake) time, past the settle margin."""
    return datetime.fromtimestamp(clock.now() + ahead, UTC)


def order(world: World, store: Store, *, shipped: bool = False):
    sku = world.skus(store.platform_shop_id)[0]
    o = world.create_order(
        shop_id=store.platform_shop_id, buyer_id=1, items=[OrderItemSpec(sku.sku_id, 1)], pay=True
    )
    if shipped:
        world.ship_order(o.order_id, [ShipmentSpec("ZTO", f"ZT9{o.order_id[-8:]}", None)])
    return o


def state(store: Store, aftersale_id: str) -> ChannelAfterSaleState:
    return ChannelAfterSaleState.objects.get(store=store, platform_after_sale_id=aftersale_id)


def test_each_version_is_stored_once_and_newer_versions_win(sandbox, stores) -> None:
    world, clock = sandbox
    applied = {}
    for platform, store in stores.items():
        clock.advance(20)
        refund_order = order(world, store)
        refund = world.apply_aftersale(
            refund_order.order_id, refund_order.lines[0].line_id, kind="refund_unshipped"
        )
        clock.advance(20)
        return_order = order(world, store, shipped=True)
        ret = world.apply_aftersale(
            return_order.order_id, return_order.lines[0].line_id, kind="return_refund", evidence=[EVIDENCE]
        )
        applied[platform] = (refund, ret)
    now = at(clock)
    for platform, store in stores.items():
        result = pull_after_sales(store_id=store.pk, now=now)
        refund, ret = applied[platform]
        assert not result.error and result.changed == 2, (platform, result)
        assert state(store, refund.aftersale_id).status == "waiting_merchant"
        assert state(store, ret.aftersale_id).status == "waiting_merchant"
        # the full after-sale, as a push would read it (Kuaishou: the detail behind the list)
        assert state(store, ret.aftersale_id).snapshot.normalized["evidence"] == [EVIDENCE], platform
        cursor = SyncCursor.objects.get(store=store, kind=SyncCursor.Kind.AFTER_SALES)
        assert cursor.state == SyncCursor.State.IDLE and cursor.watermark is not None
    snapshots = AfterSaleSnapshot.objects.count()

    # The same versions again (the overlap re-lists them): nothing changes.
    for store in stores.values():
        again = pull_after_sales(store_id=store.pk, now=now)
        assert not again.error and again.changed == 0 and again.seen >= 1
    assert AfterSaleSnapshot.objects.count() == snapshots

    # The merchant agrees on the platform: the next pull stores the newer version.
    older = {}
    for platform, store in stores.items():
        refund, _ = applied[platform]
        older[platform] = services.connector_for(store).get_after_sale(refund.aftersale_id)
        clock.advance(10)
        world.agree_aftersale(refund.aftersale_id)
    later = at(clock)
    for platform, store in stores.items():
        refund, ret = applied[platform]
        result = pull_after_sales(store_id=store.pk, now=later)
        assert not result.error and result.changed == 1, (platform, result)
        newest = state(store, refund.aftersale_id)
        assert newest.status in ("refunding", "succeeded")
        # An older version arriving late (a slow push, a retried page) never replaces it.
        assert (
            services.store_after_sale_version(store=store, after_sale=older[platform], source="push") is False
        )
        assert state(store, refund.aftersale_id).snapshot_id == newest.snapshot_id
        assert state(store, ret.aftersale_id).status == "waiting_merchant"


def test_wechat_changes_are_seen_by_reading_the_open_ones_again(sandbox, stores) -> None:
    world, clock = sandbox
    store = stores["wechat"]
    o = order(world, store, shipped=True)
    ret = world.apply_aftersale(o.order_id, o.lines[0].line_id, kind="return_refund")
    first = pull_after_sales(store_id=store.pk, now=at(clock))
    assert first.changed == 1 and state(store, ret.aftersale_id).status == "waiting_merchant"
    clock.advance(3600)  # the creation window is long past the watermark now
    world.agree_aftersale(ret.aftersale_id)
    second = pull_after_sales(store_id=store.pk, now=at(clock))
    assert not second.error and second.reread >= 1 and second.changed == 1
    assert state(store, ret.aftersale_id).status == "waiting_buyer_return"
    world.close_aftersale(ret.aftersale_id)
    third = pull_after_sales(store_id=store.pk, now=at(clock, 20))
    assert third.changed == 1 and state(store, ret.aftersale_id).status == "closed"
    fourth = pull_after_sales(store_id=store.pk, now=at(clock, 30))
    assert fourth.reread == 0 and fourth.changed == 0  # closed: no longer read again


def test_a_failing_store_does_not_stop_the_others_and_shows_its_error(sandbox, stores) -> None:
    world, clock = sandbox
    for store in stores.values():
        o = order(world, store)
        world.apply_aftersale(o.order_id, o.lines[0].line_id, kind="refund_unshipped")
    Faults(world).set("douyin", LIST_PATHS["douyin"], http_5xx_rate=1.0)
    results = {r.store_id: r for r in pull_after_sales_of_all_stores(now=at(clock))}
    failed = stores["douyin"]
    assert results[failed.pk].error and "50" in results[failed.pk].error
    cursor = SyncCursor.objects.get(store=failed, kind=SyncCursor.Kind.AFTER_SALES)
    assert cursor.state == SyncCursor.State.FAILED and cursor.last_error and cursor.watermark is None
    assert Store.objects.get(pk=failed.pk).last_error
    assert not ChannelAfterSaleState.objects.filter(store=failed).exists()
    for platform in ("kuaishou", "wechat"):
        ok = results[stores[platform].pk]
        assert not ok.error and ok.changed == 1
    Faults(world).clear("douyin", LIST_PATHS["douyin"])
    repaired = pull_after_sales(store_id=failed.pk, now=at(clock, 20))
    assert not repaired.error and repaired.changed == 1
    cursor.refresh_from_db()
    assert cursor.state == SyncCursor.State.IDLE and cursor.watermark is not None
    assert cursor.watermark <= at(clock, 20) - timedelta(seconds=1)

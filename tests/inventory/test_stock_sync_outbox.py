"""The stock-sync outbox loses no change: its rows go only after their pushes are recorded, and
the periodic safety net pushes listings that may show a wrong number (issue 11 d11).

A Douyin shop of the sandbox (in-process over httpx's WSGI transport) holds the platform's
stock; ecbao's sync pushes to it through the shop's own connector."""

from __future__ import annotations

import pytest

from channels import services as channel_services
from channels.connectors.base import RetryPolicy
from channels.models import Store
from inventory import services, sync, tasks
from inventory.models import Goods, Listing, Sku, StockChange
from tests.inventory.test_publishing import sandbox, stores  # noqa: F401 - fixtures


@pytest.fixture
def douyin(sandbox, stores, monkeypatch) -> Store:  # noqa: F811 - fixtures
    real = channel_services.connector_for

    def sandbox_connector(store: Store, **_kwargs):
        return real(
            store, http=sandbox.http(store.platform), now=sandbox.now, retry=RetryPolicy(sleep=lambda s: None)
        )

    monkeypatch.setattr(sync.channel_services, "connector_for", sandbox_connector)
    return stores["douyin"]


def listed_sku(sandbox, store: Store, n: int, *, on_hand: int, **listing) -> tuple[Sku, Listing, str]:  # noqa: F811
    platform_sku = sandbox.world.skus(store.platform_shop_id)[n]
    sku = Sku.objects.create(
        goods=Goods.objects.get_or_create(name="袜子")[0], merchant_code=f"OUTBOX-{n}", name="袜子"
    )
    services.receive_stock(sku=sku, quantity=on_hand, reason="opening")
    row = Listing.objects.create(
        store=store,
        platform_product_id=platform_sku.product_id,
        platform_sku_id=platform_sku.sku_id,
        merchant_code=sku.merchant_code,
        sku=sku,
        match=Listing.Match.MATCHED,
        **listing,
    )
    return sku, row, platform_sku.sku_id


def platform_stock(sandbox, platform_sku_id: str) -> int:  # noqa: F811
    return sandbox.world.get_sku(platform_sku_id).stock


def test_issue11_d11_a_crash_between_reading_the_outbox_and_pushing_loses_no_change(
    sandbox,  # noqa: F811
    douyin,
    monkeypatch,
):
    sku, listing, platform_sku_id = listed_sku(sandbox, douyin, 0, on_hand=7)
    assert StockChange.objects.filter(sku=sku).exists()
    # The process dies while it talks to the platform (after it took the outbox rows).
    crashing = [True]
    world = sandbox.world
    for name in ("set_stock", "adjust_stock"):
        real = getattr(world, name)

        def crash(*args, _real=real, **kwargs):
            if crashing[0]:
                raise SystemExit("worker killed during the push")
            return _real(*args, **kwargs)

        monkeypatch.setattr(world, name, crash)
    with pytest.raises(SystemExit):
        sync.sync_pending_changes()
    assert StockChange.objects.filter(sku=sku).exists()  # still there for the next round
    crashing[0] = False
    sync.drain()
    assert platform_stock(sandbox, platform_sku_id) == 7
    listing.refresh_from_db()
    assert (listing.pushed_qty, listing.push_state) == (7, Listing.PushState.IN_SYNC)
    assert not StockChange.objects.filter(sku=sku).exists()


def test_issue11_d11_the_safety_net_pushes_pending_and_stale_listings(sandbox, douyin):  # noqa: F811
    _, pending, pending_sku = listed_sku(sandbox, douyin, 0, on_hand=4)
    # "In sync" with an old number (what a lost outbox row left behind before the fix).
    _, stale, stale_sku = listed_sku(
        sandbox, douyin, 1, on_hand=9, push_state=Listing.PushState.IN_SYNC, pushed_qty=3, computed_qty=3
    )
    StockChange.objects.all().delete()  # the signals and outbox rows were lost
    tasks.sync_stock_changes()
    assert platform_stock(sandbox, pending_sku) == 4
    assert platform_stock(sandbox, stale_sku) == 9
    for row in (pending, stale):
        row.refresh_from_db()
        assert row.push_state == Listing.PushState.IN_SYNC

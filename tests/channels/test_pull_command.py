"""``manage.py pull_orders`` (and its old name ``channels_pull``) against the Douyin sandbox
served over real HTTP: what it prints per store, what it stores, and how it refuses an unknown
tenant or store and reports a failed pull."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from channels import services
from channels.models import ChannelOrderState, Store, SyncCursor
from sandbox.seed import seed_default_world
from sandbox.server import SandboxServer, ServerOptions
from sandbox.world import OrderItemSpec, World
from tests.e2e.conftest import PhasedClock

ORDERS_PER_SHOP = (12, 5)


@dataclass
class Sandbox:
    world: World
    server: SandboxServer
    shop_ids: list[str]


@pytest.fixture
def sandbox(tmp_path, settings):
    """Two Douyin shops with orders placed over the last hour, served on a free port."""
    clock = PhasedClock(start=time.time() - 3600)
    world = World(tmp_path / "douyin.sqlite3", seed=31, clock=clock)
    seed_default_world(world, platforms=("douyin",), shops_per_platform=2, buyers=10, product_count=3)
    shop_ids = [shop.shop_id for shop in world.shops("douyin")]
    for shop_id, count in zip(shop_ids, ORDERS_PER_SHOP, strict=True):
        sku = world.skus(shop_id)[0]
        world.set_stock(sku.sku_id, 1000)
        for buyer in range(count):
            clock.advance(60)
            world.create_order(
                shop_id=shop_id, buyer_id=1 + buyer % 10, items=[OrderItemSpec(sku.sku_id, 1)], pay=True
            )
    clock.go_live()
    server = SandboxServer(world, ServerOptions(ports={}, simulate=False, push=False, threads=4))
    server.start()
    settings.CHANNEL_BASE_URLS = {**settings.CHANNEL_BASE_URLS, "douyin": server.urls["douyin"]}
    try:
        yield Sandbox(world=world, server=server, shop_ids=shop_ids)
    finally:
        server.stop()
        world.close()


@pytest.fixture
def stores(sandbox: Sandbox, in_alpha) -> list[Store]:
    """Both shops connected to alpha through the OAuth code exchange."""
    app = sandbox.world.apps("douyin")[0]
    services.register_app(platform="douyin", app_key=app.app_key, secrets={"app_secret": app.app_secret})
    connected = []
    for shop_id in sandbox.shop_ids:
        connector = services.unbound_connector(platform="douyin", app_key=app.app_key)
        grant = connector.exchange_code(code=sandbox.world.create_oauth_code(app.app_key, shop_id).code)
        connector.http.close()
        connected.append(services.connect_store(platform="douyin", app_key=app.app_key, grant=grant))
    return connected


def pull(*args: str, command: str = "pull_orders") -> str:
    out = StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


LINE = re.compile(
    r"store (?P<id>\d+) douyin (?P<shop>\S+) \((?P<name>.*)\): windows=(?P<windows>\d+) "
    r"seen=(?P<seen>\d+) changed=(?P<changed>\d+) in (?P<seconds>[\d.]+) s \((?P<rate>[\d.]+) orders/s\)$"
)


def parsed(output: str) -> dict[int, dict[str, str]]:
    lines = output.strip().splitlines()
    matches = [LINE.match(line) for line in lines]
    assert all(matches), lines
    return {int(m["id"]): m.groupdict() for m in matches}


def state_ids(store: Store) -> set[str]:
    return set(ChannelOrderState.objects.filter(store=store).values_list("platform_order_id", flat=True))


def test_pulls_every_active_store_of_the_tenant_and_reports_each(sandbox: Sandbox, stores: list[Store]):
    first, second = stores
    report = parsed(pull("alpha"))
    assert set(report) == {first.pk, second.pk}
    for store, count in zip(stores, ORDERS_PER_SHOP, strict=True):
        row = report[store.pk]
        assert row["shop"] == store.platform_shop_id and row["name"] == store.name
        assert int(row["windows"]) >= 1  # the first pull looks back three days: one-day windows
        assert (int(row["seen"]), int(row["changed"])) == (count, count)
        seconds, rate = float(row["seconds"]), float(row["rate"])  # seconds are rounded to 0.01
        assert rate > 0 and abs(rate * seconds - count) <= rate * 0.005 + seconds * 0.05 + 0.01
        assert state_ids(store) == {o.order_id for o in sandbox.world.orders(store.platform_shop_id)}
        cursor = SyncCursor.objects.get(store=store, kind=SyncCursor.Kind.ORDERS)
        assert cursor.state == SyncCursor.State.IDLE and cursor.watermark is not None

    # Run again: the same orders are seen, nothing changes (the pull is idempotent).
    again = parsed(pull("--tenant", "alpha"))
    assert [int(again[s.pk]["changed"]) for s in stores] == [0, 0]
    assert ChannelOrderState.objects.filter(store__in=stores).count() == sum(ORDERS_PER_SHOP)


def test_one_store_by_id_by_shop_id_or_platform_and_shop_id(sandbox: Sandbox, stores: list[Store]):
    first, second = stores
    by_id = parsed(pull("alpha", "--store", str(second.pk)))
    assert set(by_id) == {second.pk} and int(by_id[second.pk]["changed"]) == ORDERS_PER_SHOP[1]
    assert not state_ids(first)

    by_shop = parsed(pull("--tenant", alpha_schema(), "--store", first.platform_shop_id))
    assert set(by_shop) == {first.pk} and int(by_shop[first.pk]["changed"]) == ORDERS_PER_SHOP[0]
    by_platform_shop = parsed(pull("alpha", "--store", f"douyin:{first.platform_shop_id}"))
    assert set(by_platform_shop) == {first.pk} and int(by_platform_shop[first.pk]["changed"]) == 0


def alpha_schema() -> str:
    from tenants.models import Tenant

    return Tenant.objects.get(slug="alpha").schema_name


def test_the_old_name_channels_pull_is_the_same_command(sandbox: Sandbox, stores: list[Store]):
    report = parsed(pull("--schema", alpha_schema(), "--store", str(stores[0].pk), command="channels_pull"))
    assert int(report[stores[0].pk]["changed"]) == ORDERS_PER_SHOP[0]
    assert len(state_ids(stores[0])) == ORDERS_PER_SHOP[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nosuch",), "no tenant 'nosuch' (give a tenant slug or schema name)"),
        (("public",), "no tenant 'public'"),
        ((), "which tenant?"),
        (("alpha", "--tenant", "beta"), "two tenants given"),
        (("alpha", "--store", "999999"), "no store '999999' in tenant alpha"),
        (("alpha", "--store", "kuaishou:1"), "no store 'kuaishou:1' in tenant alpha"),
    ],
)
def test_unknown_tenants_and_stores_are_refused_in_one_line(stores, args, message):
    with pytest.raises(CommandError) as refused:
        pull(*args)
    assert message in str(refused.value) and "\n" not in str(refused.value)
    assert not ChannelOrderState.objects.exists()


def test_a_store_of_another_tenant_is_not_found(sandbox: Sandbox, stores: list[Store], beta):
    """beta has no stores: alpha's store ids and shop ids mean nothing there."""
    for value in (str(stores[0].pk), stores[0].platform_shop_id):
        with pytest.raises(CommandError, match=f"no store '{value}' in tenant beta"):
            pull("beta", "--store", value)
    assert pull("beta") == "tenant beta: no active stores\n"
    assert not state_ids(stores[0])


def test_a_failed_pull_is_reported_and_exits_non_zero(sandbox: Sandbox, stores: list[Store]):
    first, second = stores
    app = sandbox.world.apps("douyin")[0]
    sandbox.world.revoke_authorization(app.app_key, first.platform_shop_id)  # the merchant removed the app
    out = StringIO()
    with pytest.raises(CommandError, match="^1 of 2 pulls failed$"):
        call_command("pull_orders", "alpha", stdout=out)
    lines = dict(line.split(":", 1) for line in out.getvalue().strip().splitlines())
    failed = lines[f"store {first.pk} douyin {first.platform_shop_id} ({first.name})"]
    assert "FAILED: shop authorisation lost" in failed and "seen=0" in failed
    assert "FAILED" not in lines[f"store {second.pk} douyin {second.platform_shop_id} ({second.name})"]
    assert len(state_ids(second)) == ORDERS_PER_SHOP[1] and not state_ids(first)
    lost = Store.objects.get(pk=first.pk)
    assert lost.status == Store.Status.AUTH_EXPIRED and "authorisation" in lost.last_error

    # Asked for by name, a store that cannot be pulled says why (and is not a failure).
    skipped = pull("alpha", "--store", str(first.pk))
    assert skipped.strip().endswith("skipped (store is auth_expired)")
    # The periodic set leaves it out.
    assert set(parsed(pull("alpha"))) == {second.pk}

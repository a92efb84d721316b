"""Token refreshes of one shop from several processes at once (issue 11 d9), against the Kuaishou
sandbox over real HTTP — Kuaishou rotates refresh tokens: the old one answers with the same new
pair for 5 minutes, then is discarded (``refreshToken.discarded``).

Each process refreshes from the tokens it read when it started. Unserialised, every process that
finds the token due refreshes again, and one that read the tokens before another refreshed uses
a refresh token the platform has discarded: the shop is flagged "authorisation expired" though
nothing is wrong with it. Serialised (the store's row locked, tokens read again, a newer pair
adopted), one refresh happens and every operation goes through.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
import traceback
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone
from django_tenants.utils import schema_context

from channels import services, sync, tasks
from channels.errors import AuthExpired
from channels.models import Store
from channels.routing.models import PlatformApp, ShopRoute
from sandbox.clock import FakeClock
from sandbox.seed import seed_default_world
from sandbox.server import SandboxServer, ServerOptions
from sandbox.world import OrderItemSpec, World

REFRESH_PATH = "/oauth2/refresh_token"
GRACE = 300  # seconds the sandbox (and Kuaishou) still answer an old refresh token


@pytest.fixture
def kuaishou(tmp_path, settings):
    clock = FakeClock(start=float(int(time.time())))
    world = World(tmp_path / "ks.sqlite3", seed=41, clock=clock)
    seed_default_world(world, platforms=("kuaishou",), shops_per_platform=1, buyers=5, product_count=2)
    shop_id = world.shops("kuaishou")[0].shop_id
    sku = world.skus(shop_id)[0]
    world.set_stock(sku.sku_id, 100)
    order = world.create_order(shop_id=shop_id, buyer_id=1, items=[OrderItemSpec(sku.sku_id, 1)], pay=True)
    server = SandboxServer(world, ServerOptions(ports={}, simulate=False, push=False, threads=8))
    server.start()
    server.faults.set("kuaishou", "*", qps=0)
    settings.CHANNEL_BASE_URLS = {**settings.CHANNEL_BASE_URLS, "kuaishou": server.urls["kuaishou"]}
    try:
        yield world, clock, shop_id, order.lines[0].line_id
    finally:
        server.stop()
        world.close()


@pytest.fixture
def tenant(committed_tenant):
    return committed_tenant("tokrace")


@pytest.fixture
def store(kuaishou, tenant):
    """The shop connected to a tenant of its own (committed: other processes see it), its token
    judged due: issued 47.5 of its 48 hours ago, as the store row says."""
    world, _clock, shop_id, _oid = kuaishou
    app = world.apps("kuaishou")[0]
    secrets = {"app_secret": app.app_secret, "sign_secret": app.sign_secret, "message_key": app.message_key}
    services.register_app(platform="kuaishou", app_key=app.app_key, secrets=secrets)
    with schema_context(tenant.schema_name):
        connector = services.unbound_connector(platform="kuaishou", app_key=app.app_key)
        grant = connector.exchange_code(code=world.create_oauth_code(app.app_key, shop_id).code)
        connected = services.connect_store(platform="kuaishou", app_key=app.app_key, grant=grant)
        Store.objects.filter(pk=connected.pk).update(
            access_expires_at=timezone.now() + timedelta(minutes=30),
            token_issued_at=timezone.now() - timedelta(hours=47, minutes=30),
        )
    connection.set_schema_to_public()
    try:
        yield connected
    finally:
        connection.set_schema_to_public()
        ShopRoute.objects.filter(platform="kuaishou", tenant=tenant).delete()
        PlatformApp.objects.filter(platform="kuaishou", app_key=app.app_key).delete()


def refresh_calls(world: World) -> list[str]:
    return [c.code for c in world.recent_calls(5000) if c.path == REFRESH_PATH]


def stored(schema: str, store_id: int) -> Store:
    with schema_context(schema):
        row = Store.objects.get(pk=store_id)
    connection.set_schema_to_public()
    return row


# --- one operation of the mix, in its own OS process ------------------------------------------------


def _operate(kind: str, schema: str, store_id: int, oid: str, start, results) -> None:
    try:
        with schema_context(schema):
            start.wait(timeout=60)
            if kind == "pull":
                result = sync.pull_orders(store_id=store_id)
                outcome = result.error or f"seen {result.orders_seen}"
            elif kind == "order":  # a push being processed: the order's detail
                order = services.connector_for(Store.objects.get(pk=store_id)).get_order(oid)
                outcome = f"order {order.platform_order_id}"
            elif kind == "listings":  # stock sync reading the shop's SKUs
                outcome = f"{len(list(services.connector_for(Store.objects.get(pk=store_id)).iter_listings()))} listings"
            else:  # the periodic refresh ahead of expiry
                outcome = f"refreshed {tasks.refresh_expiring_tokens()}"
            status = Store.objects.get(pk=store_id).status
        results.put((kind, "ok" if status == Store.Status.ACTIVE else f"store {status}", outcome))
    except BaseException:  # reported to the test
        results.put((kind, "error", traceback.format_exc()))
    finally:
        connections.close_all()


def test_issue11_d9_processes_refreshing_at_once_refresh_once_and_the_shop_stays_healthy(
    kuaishou, store, tenant
):
    world, clock, _shop_id, oid = kuaishou
    before = stored(tenant.schema_name, store.pk)
    kinds = ["pull", "order", "listings", "refresh", "order", "listings", "pull", "refresh"]
    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Barrier(len(kinds)), ctx.Queue()
    connections.close_all()  # no open connection is inherited by the children
    processes = [
        ctx.Process(target=_operate, args=(kind, tenant.schema_name, store.pk, oid, start, results))
        for kind in kinds
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    assert [o for o in outcomes if o[1] != "ok"] == []
    assert all("error" not in o[2] and "授权" not in o[2] for o in outcomes), outcomes
    # One refresh reached the platform; every other process adopted its tokens.
    assert len(refresh_calls(world)) == 1
    after = stored(tenant.schema_name, store.pk)
    assert after.access_token != before.access_token and after.refresh_token != before.refresh_token
    assert (after.status, after.last_error) == (Store.Status.ACTIVE, "")
    # The stored refresh token is the live one: it still works once the old one is discarded.
    clock.advance(GRACE + 60)
    with schema_context(tenant.schema_name):
        services.connector_for(after).refresh_now()
        assert Store.objects.get(pk=store.pk).status == Store.Status.ACTIVE
    connection.set_schema_to_public()


def test_issue11_d9_a_process_that_read_the_tokens_before_another_refreshed_adopts_the_new_pair(
    kuaishou, store, tenant
):
    """Process A reads the store's tokens and works on (a long pull); process B refreshes; more
    than 5 minutes later A finds its token due. A must take B's tokens, not refresh with the
    refresh token B used up (Kuaishou: discarded) — which would flag a healthy shop."""
    world, clock, _shop_id, oid = kuaishou
    read, refreshed = threading.Event(), threading.Event()
    errors: list[BaseException] = []
    seen: list[str] = []

    def slow_reader() -> None:
        try:
            with schema_context(tenant.schema_name):
                connector = services.connector_for(Store.objects.get(pk=store.pk))
                read.set()
                assert refreshed.wait(timeout=60)
                seen.append(connector.get_order(oid).platform_order_id)
        except BaseException as exc:  # reported to the test
            errors.append(exc)
        finally:
            connection.close()

    def refresher() -> None:
        try:
            assert read.wait(timeout=60)
            with schema_context(tenant.schema_name):
                services.connector_for(Store.objects.get(pk=store.pk)).refresh_now()
            clock.advance(GRACE + 60)  # the refresh token A read is discarded now
            refreshed.set()
        except BaseException as exc:  # reported to the test
            errors.append(exc)
            refreshed.set()
        finally:
            connection.close()

    threads = [threading.Thread(target=slow_reader), threading.Thread(target=refresher)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not [e for e in errors if isinstance(e, AuthExpired)], errors
    assert errors == [] and seen == [oid]
    assert len(refresh_calls(world)) == 1
    after = stored(tenant.schema_name, store.pk)
    assert (after.status, after.last_error) == (Store.Status.ACTIVE, "")

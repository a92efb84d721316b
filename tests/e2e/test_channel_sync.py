"""End to end: every order of a Douyin, a Kuaishou and a WeChat shop ends up in ecbao with its
latest status, through pushes and pulls running at the same time.

The sandbox serves the three platforms over real HTTP (waitress on free ports, in threads);
``settings.CHANNEL_BASE_URLS`` points at it, so the connectors do not know it is a sandbox.
Each shop first gets a history (2½ hours of buyers and a merchant bot, simulated on a
fast-forward clock: ~2 000 orders, most of them shipped, received, completed, refunded or
cancelled), then the world goes live on the wall clock and a dedicated tenant connects one
shop per platform through the platforms' own authorisation calls and pulls that history.
From then on, while the simulator keeps placing and changing orders, the push dispatcher
posts every change to the live Django app's ``/hooks/<platform>/`` (with deliberate
duplicates and reordering), the real Celery worker (``tenant_worker``) routes and processes
them, and ``channels.sync.pull_orders`` runs again and again. Once the simulator stops and
both paths settle, ecbao's newest known version of each order (``ChannelOrderState``) must
match the sandbox world exactly, and the push path must have carried its share.

The orders layer stays attached (``OrderChanged`` / ``OrdersChanged`` feed ingestion on the
same worker): once the channel layer matches the world, ecbao's orders must match it too
(every order, with its status). The default per-path rate limits of the sandbox are lifted
(they would only make the test slower).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from channels import oauth
from channels import services as channel_services
from channels.models import ChannelOrderState, InboxMessage, OrderSnapshot, Store, SyncCursor
from channels.routing.models import PlatformApp, PushReceipt
from channels.sync import SETTLE, pull_orders
from channels.types import OrderStatus
from orders.models import Order
from sandbox.model import Order as WorldOrder
from sandbox.model import OrderLine
from sandbox.pushes import PushSettings
from sandbox.seed import seed_default_world
from sandbox.server import SandboxServer, ServerOptions
from sandbox.simulator import BuyerSimulator, SimConfig
from sandbox.wechat import create_self_use_app, shop_username
from sandbox.world import World
from tests.e2e.conftest import PhasedClock, wait_until

log = logging.getLogger(__name__)

SEED = 2718  # not the default world's seed: app keys and shop ids differ from other tests'
SLUG = "sync-e2e"
PLATFORMS = ("douyin", "kuaishou", "wechat")
TIME_COMPRESSION = 3600  # platform timers: payment 1 s, merchant ships after 2–6 s, receipt 24–96 s …
HISTORY_MINUTES = 150
HISTORY_ORDERS_PER_MINUTE = 4.5  # per shop: ~2 000 orders before the shops are connected
LIVE_SECONDS = 15
LIVE_ORDERS_PER_MINUTE = 40  # per shop
DUPLICATES, REORDERED = 0.15, 0.2

# The world's neutral order status → ecbao's, written out from the platforms' documented
# status tables (Douyin 1/2/101/3/5/4, WeChat 10/20/21/30/100/200/250), not from a connector.
ORDER_STATUS = {
    "unpaid": OrderStatus.UNPAID,
    "paid": OrderStatus.PAID,
    "part_shipped": OrderStatus.PARTIALLY_SHIPPED,
    "shipped": OrderStatus.SHIPPED,
    "received": OrderStatus.COMPLETED,  # Douyin 5 已完成, WeChat 100 (no separate "received")
    "completed": OrderStatus.COMPLETED,
    "cancelled": OrderStatus.CANCELLED,
}


def kuaishou_line_status(order: WorldOrder, line: OrderLine) -> OrderStatus:
    """Kuaishou renders one platform order per (non-gift) line, with its own status: 10 unpaid,
    30 paid, 40 shipped, 50 received, 70 finished, 80 closed (cancelled or refunded in full)."""
    if order.status == "unpaid":
        return OrderStatus.UNPAID
    if order.status == "cancelled" or line.refunded_qty >= line.qty:
        return OrderStatus.CANCELLED
    if order.status in ("paid", "part_shipped", "shipped"):
        if not line.shipped_qty:
            return OrderStatus.PAID
        return OrderStatus.SHIPPED if line.shipped_qty >= line.qty else OrderStatus.PARTIALLY_SHIPPED
    return OrderStatus.COMPLETED


def expected_orders(world: World, platform: str, shop_id: str) -> dict[str, str]:
    """{platform order id: neutral status} of one shop, read from the world."""
    out = {}
    for order in world.orders(shop_id):
        if platform == "kuaishou":
            for line in order.lines:
                if not line.is_gift:  # gifts ride along as sub-orders of the line that earned them
                    out[line.line_id] = kuaishou_line_status(order, line).value
        else:
            out[order.order_id] = ORDER_STATUS[order.status].value
    return out


def register_tool_apps(world: World) -> None:
    """This deployment's apps = the sandbox world's tool (ISV) apps."""
    for app in world.apps():
        if app.app_type == "tool":
            channel_services.register_app(platform=app.platform, app_key=app.app_key, secrets=_secrets(app))


def _secrets(app) -> dict:
    secrets = {"app_secret": app.app_secret}
    for source, target in (
        ("sign_secret", "sign_secret"),
        ("message_key", "message_key"),
        ("push_token", "token"),
        ("encoding_aes_key", "aes_key"),
    ):
        if getattr(app, source):
            secrets[target] = getattr(app, source)
    return secrets


def build_world(path) -> tuple[World, PhasedClock, dict[str, str], BuyerSimulator]:
    """A seeded world whose first shop per platform already has a history of orders."""
    clock = PhasedClock(start=time.time() - HISTORY_MINUTES * 60 - 30)
    world = World(path, seed=SEED, clock=clock, time_compression=TIME_COMPRESSION)
    seed_default_world(world, buyers=200)
    shops = {p: world.shops(p)[0].shop_id for p in PLATFORMS}
    for shop_id in shops.values():  # enough stock for thousands of orders
        for sku in world.skus(shop_id):
            world.set_stock(sku.sku_id, 100_000)
    sim = BuyerSimulator(
        world,
        seed=SEED,
        config=SimConfig(orders_per_minute=HISTORY_ORDERS_PER_MINUTE, merchant_bot=True),
        shops=list(shops.values()),
    )
    sim.run_for(HISTORY_MINUTES * 60)
    clock.go_live()
    return world, clock, shops, sim


def connect(world: World, platform: str, shop_id: str) -> tuple[Store, str]:
    """Connect a shop the way a merchant does (OAuth code exchange; WeChat: the shop's self-use
    app, which names the shop by its ``gh_`` id); returns the store and its push URL path."""
    if platform == "wechat":
        app = create_self_use_app(world, shop_id)
        channel_services.register_app(
            platform=platform,
            app_key=app.app_key,
            secrets=_secrets(app),
            tenant=channel_services.current_tenant(),
        )
        connector = channel_services.unbound_connector(platform=platform, app_key=app.app_key)
        grant = connector.self_use_token()
        mode, hook = Store.AuthMode.SELF_USE, f"/hooks/{platform}/{app.app_key}/"
    else:
        app = next(a for a in world.apps(platform) if a.app_type == "tool")
        code = world.create_oauth_code(app.app_key, shop_id)
        connector = channel_services.unbound_connector(platform=platform, app_key=app.app_key)
        grant = connector.exchange_code(code=code.code, redirect_uri=oauth.callback_url(platform))
        mode, hook = Store.AuthMode.OAUTH, f"/hooks/{platform}/"
    connector.http.close()
    store = channel_services.connect_store(
        platform=platform, app_key=app.app_key, grant=grant, auth_mode=mode
    )
    return store, hook


def test_orders_in_ecbao_equal_the_platforms_after_pushes_and_pulls(
    tmp_path, settings, monkeypatch, committed_tenant, tenant_worker, live_url
):
    started = time.monotonic()
    timings: dict[str, float] = {}
    world, _clock, shops, sim = build_world(tmp_path / "world.sqlite3")
    history_orders = len(world.orders())
    timings["world"] = time.monotonic() - started
    server = SandboxServer(
        world,
        ServerOptions(
            ports=dict.fromkeys(("status", *PLATFORMS), 0),
            simulate=False,  # the test drives its own simulator
            push=True,
            time_compression=TIME_COMPRESSION,
        ),
    )
    for platform in PLATFORMS:  # lift the default per-path rate limits
        server.faults.set(platform, "*", qps=0)
    app_keys = [a.app_key for a in world.apps()]
    server.start()
    try:
        settings.CHANNEL_BASE_URLS = {p: server.urls[p] for p in PLATFORMS}
        public = live_url.format(host="localhost")
        tenant = committed_tenant(SLUG)
        timings["tenant"] = time.monotonic() - started - timings["world"]
        register_tool_apps(world)
        stores: dict[str, Store] = {}
        with schema_context(tenant.schema_name):
            hooks = {}
            for platform in PLATFORMS:
                stores[platform], hooks[platform] = connect(world, platform, shops[platform])
            assert stores["wechat"].platform_shop_id == shop_username(world, shops["wechat"])
            timings["set_up"] = time.monotonic() - started
            # The first sync of a newly connected shop: its whole recent history.
            for platform, store in stores.items():
                first = pull_orders(store_id=store.pk)
                assert not first.error and first.orders_changed > 500, (platform, first)
            timings["first_pulls"] = time.monotonic() - started - timings["set_up"]
            # From now on the platforms push every change (duplicated, out of order) to ecbao.
            for platform, store in stores.items():
                PushSettings.save(
                    world,
                    platform,
                    duplicate_probability=DUPLICATES,
                    reorder_probability=REORDERED,
                    max_reorder_delay=TIME_COMPRESSION,  # held back up to 1 s
                )
                world.update_app(store.app_key, webhook_url=public + hooks[platform])

            # --- live: the simulator places and changes orders while pushes and pulls run -----
            sim.config.orders_per_minute = LIVE_ORDERS_PER_MINUTE
            first_event = world.last_event_id()
            sim.start(interval=0.05)
            pulls: Counter = Counter()
            changed_by_pulls = 0
            live_until = time.monotonic() + LIVE_SECONDS
            try:
                while time.monotonic() < live_until:
                    for platform, store in stores.items():
                        result = pull_orders(store_id=store.pk)
                        assert not result.error and not result.skipped, (platform, result)
                        changed_by_pulls += result.orders_changed
                        pulls[platform] += 1
            finally:
                sim.stop()
        connection.set_schema_to_public()
        live_events = world.last_event_id() - first_event
        timings["live"] = time.monotonic() - started - timings["set_up"] - timings["first_pulls"]
        settling = time.monotonic()

        # --- settle: every push delivered, routed and processed; then one last pull ----------
        dispatcher = server.dispatcher
        assert wait_until(lambda: dispatcher.pending_count() == 0, timeout=30), "pushes still pending"

        def inbox_settled() -> bool:
            if PushReceipt.objects.filter(app_key__in=app_keys, status=PushReceipt.Status.RECEIVED).exists():
                return False
            with schema_context(tenant.schema_name):
                busy = InboxMessage.objects.filter(
                    status__in=[InboxMessage.Status.PENDING, InboxMessage.Status.FAILED]
                ).exists()
            connection.set_schema_to_public()
            return not busy

        if not wait_until(inbox_settled, timeout=600, interval=0.5):  # the worker also ingests the history
            with schema_context(tenant.schema_name):
                stuck = list(
                    InboxMessage.objects.exclude(status=InboxMessage.Status.PROCESSED).values_list(
                        "platform", "topic", "status", "last_error"
                    )[:5]
                )
            pytest.fail(f"push intake did not settle: {stuck}")
        last_change = max(o.update_time for o in world.orders())
        wait_until(lambda: time.time() > last_change + SETTLE.total_seconds() + 1, timeout=10)
        timings["settle"] = time.monotonic() - settling
        final_pull_at = timezone.now()
        with schema_context(tenant.schema_name):
            for store in stores.values():
                result = pull_orders(store_id=store.pk)
                assert not result.error and not result.skipped

            # --- the orders in ecbao are the orders on the platforms ----------------------------
            compared = 0
            for platform, store in stores.items():
                want = expected_orders(world, platform, shops[platform])
                have = dict(
                    ChannelOrderState.objects.filter(store=store).values_list("platform_order_id", "status")
                )
                assert set(have) == set(want), (
                    platform,
                    len(set(want) - set(have)),
                    len(set(have) - set(want)),
                )
                wrong = {k: (have[k], want[k]) for k in want if have[k] != want[k]}
                assert not wrong, (platform, len(wrong), list(wrong.items())[:5])
                compared += len(want)
                store.refresh_from_db()
                assert store.status == Store.Status.ACTIVE and not store.last_error
                cursor = SyncCursor.objects.get(store=store, kind=SyncCursor.Kind.ORDERS)
                assert cursor.state == SyncCursor.State.IDLE
                assert cursor.watermark >= final_pull_at - SETTLE - timedelta(seconds=1)

            # --- and so are the orders in the workbench (ingested by the worker) ---------------
            def orders_match() -> bool:
                return all(
                    dict(Order.objects.filter(store=store).values_list("platform_order_id", "channel_status"))
                    == expected_orders(world, platform, shops[platform])
                    for platform, store in stores.items()
                )

            assert wait_until(orders_match, timeout=600, interval=0.5), {
                platform: len(
                    set(expected_orders(world, platform, shops[platform]).items())
                    - set(
                        Order.objects.filter(store=store).values_list("platform_order_id", "channel_status")
                    )
                )
                for platform, store in stores.items()
            }

            # --- the push path carried orders, once per message ---------------------------------
            inbox = InboxMessage.objects.all()
            processed = inbox.filter(status=InboxMessage.Status.PROCESSED).count()
            ids = list(inbox.values_list("platform", "message_id"))
            assert len(ids) == len(set(ids))
            by_platform = Counter(p for p, _ in ids)
            pushed_snapshots = Counter(
                OrderSnapshot.objects.filter(source=OrderSnapshot.Source.PUSH).values_list(
                    "store__platform", flat=True
                )
            )
            inbox_count = len(ids)
            latest_from_push = ChannelOrderState.objects.filter(
                snapshot__source=OrderSnapshot.Source.PUSH
            ).count()
        connection.set_schema_to_public()
        receipts = PushReceipt.objects.filter(app_key__in=app_keys)
        receipt_count = receipts.count()
        assert set(receipts.values_list("status", flat=True)) == {PushReceipt.Status.ROUTED}
        world.flush_calls()
        outbox = dict(world.read("SELECT status, COUNT(*) FROM push_outbox GROUP BY status"))
        duplicates = world.read(
            "SELECT COUNT(*) FROM push_outbox WHERE duplicate_of != 0 AND status = 'delivered'"
        )[0][0]
        reordered = world.read("SELECT COUNT(*) FROM push_outbox WHERE reordered = 1")[0][0]
        numbers = {
            "orders_compared": compared,
            "history_orders": history_orders,
            "live_orders": len(world.orders()) - history_orders,
            "live_events": live_events,
            "pulls": dict(pulls),
            "changed_by_pulls_while_live": changed_by_pulls,
            "outbox": outbox,
            "duplicates_delivered": duplicates,
            "reordered": reordered,
            "receipts": receipt_count,
            "inbox": inbox_count,
            "inbox_by_platform": dict(by_platform),
            "processed": processed,
            "push_snapshots": dict(pushed_snapshots),
            "latest_version_from_push": latest_from_push,
            "seconds": {k: round(v, 1) for k, v in timings.items()}
            | {"total": round(time.monotonic() - started, 1)},
        }
        print(numbers)
        log.info("channel sync end to end: %s", numbers)
        assert compared > 2000
        assert all(n >= 3 for n in pulls.values()) and changed_by_pulls > 0
        assert set(by_platform) == set(PLATFORMS) and processed > 0
        # Pushes stored versions of their own (per platform only when a pull had not stored the same
        # version first: on a quiet machine the pulls, every second, often win the race).
        assert sum(pushed_snapshots.values()) > 0 and latest_from_push > 0
        assert outbox.get("failed", 0) == 0 and duplicates > 0 and reordered > 0
        assert receipt_count == inbox_count  # duplicates arrived, were acknowledged and stored once
    finally:
        sim.stop()
        server.stop()
        connection.set_schema_to_public()
        PushReceipt.objects.filter(app_key__in=app_keys).delete()
        PlatformApp.objects.filter(app_key__in=app_keys).delete()
        world.close()

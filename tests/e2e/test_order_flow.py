"""The whole path with the sandbox running: buyers place orders on a Douyin, a Kuaishou and a
WeChat shop → pushes bring them into the order workbench within seconds (the real Celery
worker ingests them: order, lines, events, review, stock reservation) → a pull completes
them → every shop's published stock drops to the stock rule's number, pushed by the
stock-sync loop alone (nothing is force-pushed) → every order's status, lines, amounts and
merges equal the shops' → no plaintext receiver of the world's buyers anywhere ecbao keeps
things (tenant and public tables, Redis, the logs, an xlsx export; ``tests.buyer_data_scan``).

The sandbox serves its untidy shapes (ids as numbers or strings, 2024 ciphertexts, orders
without ``hash_code``, plaintext receivers in older payloads …), as the platforms do.

Builds on the harness of ``test_channel_sync`` (sandbox over real HTTP, a committed tenant of
its own, pushes to the live Django app)."""

from __future__ import annotations

import threading
import time
from collections import defaultdict

from django.contrib.auth import get_user_model
from django.db import connection, connections
from django.db.models import Sum
from django_tenants.utils import schema_context

from channels.routing.models import PlatformApp, PushReceipt
from channels.sync import pull_orders
from inventory import selectors as stock_selectors
from inventory import sync as stock_sync
from inventory.models import Goods, Listing, Sku, StockLevel
from inventory.services import receive_stock
from orders import exports
from orders import services as order_services
from orders.models import Fulfilment, LineStatus, Order, OrderLine
from sandbox.seed import seed_default_world
from sandbox.server import SandboxServer, ServerOptions
from sandbox.simulator import BuyerSimulator, SimConfig
from sandbox.world import World
from tests.buyer_data_scan import LogCapture, database_texts, redis_texts, scan, world_plaintexts, xlsx_text
from tests.e2e.conftest import wait_until
from tests.e2e.test_channel_sync import connect, expected_orders, register_tool_apps

try:  # the sandbox's seeded untidy shapes (older payloads with plaintext receivers among them)
    from sandbox import untidy
except ImportError:  # a sandbox without them
    untidy = None

PLAINTEXT_VARIATIONS = ("douyin.plaintext_receiver", "wechat.plaintext_address")
SEED = 4242
SLUG = "flow-e2e"
PLATFORMS = ("douyin", "kuaishou", "wechat")
ON_HAND = 500


def test_orders_flow_from_the_shops_to_the_workbench_and_stock_back_to_the_shops(
    tmp_path, settings, committed_tenant, tenant_worker, live_url
):
    world = World(str(tmp_path / "world.sqlite3"), seed=SEED, time_compression=3600)
    seed_default_world(world, buyers=80)
    if untidy is not None:  # more of the older payloads that carry plaintext receivers
        untidy.set_rates(world, dict.fromkeys(PLAINTEXT_VARIATIONS, 0.5))
    shops = {p: world.shops(p)[0].shop_id for p in PLATFORMS}
    for shop_id in shops.values():
        for sku in world.skus(shop_id):
            world.set_stock(sku.sku_id, 10_000)
    server = SandboxServer(
        world,
        ServerOptions(
            ports=dict.fromkeys(("status", *PLATFORMS), 0), simulate=False, push=True, time_compression=3600
        ),
    )
    for platform in PLATFORMS:
        server.faults.set(platform, "*", qps=0)
    app_keys = [a.app_key for a in world.apps()]
    server.start()
    stop_sync = threading.Event()
    logs = LogCapture().__enter__()
    try:
        settings.CHANNEL_BASE_URLS = {p: server.urls[p] for p in PLATFORMS}
        public = live_url.format(host="localhost")
        tenant = committed_tenant(SLUG)
        register_tool_apps(world)
        with schema_context(tenant.schema_name):
            stores = {}
            for platform in PLATFORMS:
                store, hook = connect(world, platform, shops[platform])
                stores[platform] = store
                world.update_app(store.app_key, webhook_url=public + hook)
            # The merchant's catalogue: one SKU per merchant code the shops sell, 500 on hand.
            goods = Goods.objects.create(name="演示货品")
            codes = {sku.code for shop_id in shops.values() for sku in world.skus(shop_id)}
            for code in sorted(codes):
                receive_stock(
                    sku=Sku.objects.create(goods=goods, merchant_code=code, name=code),
                    quantity=ON_HAND,
                    reason="opening stock",
                )
            for store in stores.values():
                refresh = stock_sync.refresh_listings(store=store)
                assert refresh.matched == refresh.seen > 0  # every listing matched by merchant code
        connection.set_schema_to_public()

        def stock_sync_loop() -> None:  # what the stock-sync daemon does, in this test's tenant
            try:
                with schema_context(tenant.schema_name):
                    while not stop_sync.is_set():
                        stock_sync.drain()
                        time.sleep(0.1)
            finally:
                connections.close_all()

        syncer = threading.Thread(target=stock_sync_loop, daemon=True)
        syncer.start()

        # --- buyers place orders; pushes bring them in --------------------------------------------
        sim = BuyerSimulator(
            world,
            seed=SEED,
            shops=list(shops.values()),
            config=SimConfig(orders_per_minute=240, p_never_pay=0.0, p_pay_later=0.0),
        )
        sim.start(interval=0.05)
        time.sleep(6)
        sim.stop()
        placed = {p: expected_orders(world, p, shops[p]) for p in PLATFORMS}
        paid = {p: {k for k, v in placed[p].items() if v != "unpaid"} for p in PLATFORMS}
        assert sum(len(v) for v in paid.values()) >= 30

        def all_paid_orders_arrived() -> bool:
            with schema_context(tenant.schema_name):
                ok = all(
                    paid[p]
                    <= set(Order.objects.filter(store=stores[p]).values_list("platform_order_id", flat=True))
                    for p in PLATFORMS
                )
            connection.set_schema_to_public()
            return ok

        started = time.monotonic()
        assert wait_until(all_paid_orders_arrived, timeout=240, interval=0.2), (
            "pushed orders did not all arrive"
        )
        arrival_seconds = time.monotonic() - started

        # --- a pull completes the picture ------------------------------------------------------------
        wait_until(lambda: server.dispatcher.pending_count() == 0, timeout=30)
        time.sleep(2.5)  # past the pull's settle lag for the last changes
        with schema_context(tenant.schema_name):
            for store in stores.values():
                result = pull_orders(store_id=store.pk)
                assert not result.error
        connection.set_schema_to_public()

        def ingested() -> bool:
            with schema_context(tenant.schema_name):
                have = {
                    p: dict(
                        Order.objects.filter(store=stores[p]).values_list(
                            "platform_order_id", "channel_status"
                        )
                    )
                    for p in PLATFORMS
                }
            connection.set_schema_to_public()
            return all(have[p] == placed[p] for p in PLATFORMS)

        assert wait_until(ingested, timeout=240, interval=0.3), "orders in ecbao differ from the shops"

        with schema_context(tenant.schema_name):
            # Stock is reserved for exactly the open order lines, and the ledger balances.
            reserved_lines = defaultdict(int)
            for code, qty in OrderLine.objects.filter(status=LineStatus.RESERVED).values_list(
                "merchant_code", "quantity"
            ):
                reserved_lines[code] += qty
            levels = dict(StockLevel.objects.values_list("sku__merchant_code").annotate(r=Sum("reserved")))
            assert {c: r for c, r in levels.items() if r} == dict(reserved_lines)
            assert sum(reserved_lines.values()) > 0
            assert stock_selectors.ledger_mismatches() == []
            statuses = set(Order.objects.values_list("status", flat=True))
            assert statuses & {"approved", "held"}  # reviewed on arrival

            # Every shop publishes the rule's number (100 % of available): it dropped with the
            # reservations. The last pushes may still be in flight: wait for them.
            # The loop pushes ecbao's number whenever ecbao's availability moves. A shop also moves
            # its own number (it deducts on order creation, restores on cancel) for orders ecbao
            # reserved nothing for yet; no push follows those, so only the listings whose SKU
            # ecbao's reservations moved are compared (with the loop broken, all of them differ).
            def moved(listing) -> bool:
                return stock_selectors.available(listing.sku) < ON_HAND

            def published_ok() -> bool:
                return not drift()

            def drift() -> list:
                return [
                    (
                        listing.sku.merchant_code,
                        stock_selectors.available(listing.sku),
                        world.get_sku(listing.platform_sku_id).stock,
                    )
                    for listing in Listing.objects.select_related("sku")
                    if moved(listing)
                    and world.get_sku(listing.platform_sku_id) is not None
                    and world.get_sku(listing.platform_sku_id).stock != stock_selectors.available(listing.sku)
                ]

            assert wait_until(published_ok, timeout=120, interval=0.3), (
                "the stock-sync loop left drift",
                drift(),
            )
            dropped = sum(moved(listing) for listing in Listing.objects.select_related("sku"))
            assert dropped > 0
            merged = check_orders_equal_the_shops(world, stores, shops)
            xlsx = export_all_orders(tenant)
        connection.set_schema_to_public()

        # --- no plaintext buyer data anywhere ecbao keeps things --------------------------------------
        plain = world_plaintexts(world)
        assert len(plain) > 100
        served_plaintext = untidy is not None and any(
            untidy.hit(world, name, order.order_id)
            for name in PLAINTEXT_VARIATIONS
            for order in world.orders()
        )
        assert served_plaintext or untidy is None  # the scan has something to find
        sources = {
            **database_texts(tenant.schema_name),
            **database_texts("public"),
            **redis_texts(),
            "logs": logs.text(),
            "xlsx": xlsx_text(xlsx),
        }
        assert "订单" in sources["xlsx"] and len(sources["logs"]) > 0
        found = scan(plain, sources)
        assert not found, found[:5]
        print(
            {
                "paid_orders": sum(len(v) for v in paid.values()),
                "arrival_s": round(arrival_seconds, 1),
                "reserved_units": sum(reserved_lines.values()),
                "listings_dropped": dropped,
                "merged_fulfilments": merged,
                "plaintexts_scanned": len(plain),
                "sources_scanned": len(sources),
            }
        )
    finally:
        logs.__exit__(None, None, None)
        stop_sync.set()
        server.stop()
        connection.set_schema_to_public()
        PushReceipt.objects.filter(app_key__in=app_keys).delete()
        PlatformApp.objects.filter(app_key__in=app_keys).delete()
        world.close()


def world_orders_by_ecbao_id(world: World, platform: str, shop_id: str) -> dict[str, tuple]:
    """{ecbao's platform order id: (world order, [world lines it holds])}: Kuaishou makes one
    order per non-gift line, its gifts riding along; the others one per world order."""
    out = {}
    for order in world.orders(shop_id):
        if platform == "kuaishou":
            for line in order.lines:
                if not line.is_gift:
                    gifts = [g for g in order.lines if g.is_gift and g.master_line_id == line.line_id]
                    out[line.line_id] = (order, [line, *gifts])
        else:
            out[order.order_id] = (order, list(order.lines))
    return out


def check_orders_equal_the_shops(world: World, stores: dict, shops: dict) -> int:
    """Every order's lines and amounts equal the world's; orders share a shipment exactly when
    the platform gave them one receiver identity (and then they are one world receiver); an
    order with no identity is alone and says why. Returns the number of merged shipments."""
    receiver_of: dict[int, tuple] = {}
    for platform, store in stores.items():
        want = world_orders_by_ecbao_id(world, platform, shops[platform])
        for order in Order.objects.filter(store=store).prefetch_related("lines"):
            world_order, world_lines = want[order.platform_order_id]
            r = world_order.receiver
            receiver_of[order.pk] = (platform, r.name, r.phone, r.detail)
            have = sorted((line.merchant_code, line.quantity) for line in order.lines.all())
            assert have == sorted((line.code, line.qty) for line in world_lines), (platform, order)
            if world_order.pay_time:
                if platform == "kuaishou":
                    main = world_lines[0]
                    paid = main.sum_fen - main.discount_fen + main.post_fen
                    assert (order.paid_fen, order.goods_fen) == (paid, main.sum_fen), order
                else:
                    assert (order.paid_fen, order.goods_fen) == (
                        world_order.pay_fen,
                        world_order.goods_fen,
                    ), order
                    lines_paid = sum(line.paid_fen for line in order.lines.all())
                    # Douyin's line pay_amount includes the line's freight, WeChat's real_price not
                    freight = 0 if platform == "douyin" else world_order.post_fen
                    assert lines_paid == world_order.pay_fen - freight, (platform, order)
            if order.status == "approved":
                alone = not order.receiver_fingerprint
                said = order.events.filter(kind=order_services.NOT_MERGED).exists()
                assert alone == said, order
            if platform == "kuaishou":
                assert not order.receiver_fingerprint  # Kuaishou gives no receiver identity
    # fingerprint ⇔ one world receiver, among orders that have one
    by_fingerprint: dict[str, set] = defaultdict(set)
    for pk, fingerprint in Order.objects.exclude(receiver_fingerprint="").values_list(
        "pk", "receiver_fingerprint"
    ):
        by_fingerprint[fingerprint].add(receiver_of[pk])
    assert all(len(receivers) == 1 for receivers in by_fingerprint.values())
    merged = 0
    for fulfilment in Fulfilment.objects.prefetch_related("lines__order_line__order"):
        orders = {fl.order_line.order for fl in fulfilment.lines.all()}
        if len(orders) > 1:
            merged += 1
            assert fulfilment.is_merged
            assert len({o.receiver_fingerprint for o in orders}) == 1 and all(
                o.receiver_fingerprint for o in orders
            )
            assert len({receiver_of[o.pk] for o in orders}) == 1
    return merged


def export_all_orders(tenant) -> bytes:
    """The workbench's xlsx export of every order, run by the worker."""
    owner = get_user_model().objects.get(username=f"{tenant.slug}-owner")
    export_id = exports.start_export(user=owner, query="", language="zh-hans")

    def done() -> bool:
        meta = exports.export_for(export_id, user=owner)
        assert meta and meta["state"] != "failed", meta
        return meta["state"] == "done"

    assert wait_until(done, timeout=120, interval=0.3), "the export did not finish"
    with exports.open_download(exports.export_for(export_id, user=owner)) as fh:
        return fh.read()

"""End-to-end ingestion: orders placed in the sandbox, pulled over real HTTP by the connectors
(signing, paging, detail fetches), stored as snapshots, ingested into orders with lines,
events and stock reservations — orders per second per platform, with the sandbox's default
rate limits in force."""

from __future__ import annotations

import os
import random
import time
from datetime import timedelta
from pathlib import Path

from common import BENCH_SCHEMA, ROOT, ensure_bench_tenant
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

PER_PLATFORM = int(os.environ.get("BENCH_E2E_ORDERS", "1500"))


def build_world(path: Path):
    from channels.sandbox.seed import seed_default_world
    from channels.sandbox.world import OrderItemSpec, World

    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    world = World(str(path), seed=11)
    seed_default_world(world, shops_per_platform=1, buyers=300)
    rng = random.Random(5)
    for shop in world.shops():
        skus = world.skus(shop.shop_id)
        for sku in skus:
            world.set_stock(sku.sku_id, 10**7)
        for _ in range(PER_PLATFORM):
            items = [
                OrderItemSpec(sku_id=rng.choice(skus).sku_id, qty=1 + rng.randrange(2))
                for _ in range(1 if shop.platform == "kuaishou" else 1 + rng.randrange(2))
            ]
            world.create_order(shop_id=shop.shop_id, buyer_id=1 + rng.randrange(300), items=items, pay=True)
    return world


def main() -> dict:
    from channels import services, sync
    from channels.models import ChannelOrderState, Store
    from channels.sandbox.server import SandboxServer, ServerOptions
    from inventory.models import Goods, Sku, StockLevel
    from inventory.services import default_warehouse
    from orders.services import ingest_snapshots

    ensure_bench_tenant()
    world = build_world(ROOT / ".data" / "bench-sandbox.sqlite3")
    server = SandboxServer(world, ServerOptions(ports={}, simulate=False, push=False, threads=8))
    server.start()
    urls = server.urls
    settings.CHANNEL_BASE_URLS = {p: urls[p] for p in ("douyin", "kuaishou", "wechat")}
    results: dict = {"orders_per_platform": PER_PLATFORM}
    try:
        with schema_context(BENCH_SCHEMA):
            with connection.cursor() as cursor:
                cursor.execute(
                    "TRUNCATE orders_fulfilmentline, orders_fulfilment, orders_orderevent, "
                    "orders_orderline, orders_order, channels_channelorderstate, channels_ordersnapshot, "
                    "channels_synccursor RESTART IDENTITY CASCADE"
                )
            Store.objects.filter(platform_shop_id__in=[s.shop_id for s in world.shops()]).delete()
            goods, _ = Goods.objects.get_or_create(name="e2e bench")
            warehouse = default_warehouse()
            for code in {sku.code for shop in world.shops() for sku in world.skus(shop.shop_id)}:
                sku, _ = Sku.objects.get_or_create(
                    merchant_code=code, defaults={"goods": goods, "name": code}
                )
                StockLevel.objects.update_or_create(
                    sku=sku, warehouse=warehouse, defaults={"on_hand": 10**9, "reserved": 0}
                )
            for shop in world.shops():
                platform = shop.platform
                app = next(a for a in world.apps(platform) if a.app_type == "tool")
                secrets = {
                    "app_secret": app.app_secret,
                    "sign_secret": app.sign_secret,
                    "message_key": app.message_key,
                    "token": app.push_token,
                    "aes_key": app.encoding_aes_key,
                }
                services.register_app(
                    platform=platform, app_key=app.app_key, secrets={k: v for k, v in secrets.items() if v}
                )
                connector = services.unbound_connector(platform=platform, app_key=app.app_key)
                if platform == "wechat":
                    from channels.sandbox.wechat import create_self_use_app

                    self_app = create_self_use_app(world, shop.shop_id)
                    services.register_app(
                        platform=platform,
                        app_key=self_app.app_key,
                        secrets={
                            "app_secret": self_app.app_secret,
                            "token": self_app.push_token,
                            "aes_key": self_app.encoding_aes_key,
                        },
                    )
                    connector = services.unbound_connector(platform=platform, app_key=self_app.app_key)
                    grant = connector.self_use_token(platform_shop_id=shop.shop_id)
                    store = services.connect_store(
                        platform=platform,
                        app_key=self_app.app_key,
                        grant=grant,
                        auth_mode=Store.AuthMode.SELF_USE,
                    )
                else:
                    code = world.create_oauth_code(app.app_key, shop.shop_id)
                    grant = connector.exchange_code(code=code.code)
                    store = services.connect_store(platform=platform, app_key=app.app_key, grant=grant)
                started = time.perf_counter()
                # Orders were placed a moment ago: end the window past the settle lag.
                pulled = sync.pull_orders(store_id=store.pk, now=timezone.now() + timedelta(seconds=5))
                pull_s = time.perf_counter() - started
                snapshot_ids = list(
                    ChannelOrderState.objects.filter(store=store).values_list("snapshot_id", flat=True)
                )
                started = time.perf_counter()
                ingest_snapshots(snapshot_ids=snapshot_ids)
                ingest_s = time.perf_counter() - started
                n = len(snapshot_ids)
                row = {
                    "platform_orders": n,
                    "pull_s": round(pull_s, 2),
                    "ingest_s": round(ingest_s, 2),
                    "pull_orders_per_s": round(n / pull_s, 1),
                    "ingest_orders_per_s": round(n / ingest_s, 1),
                    "end_to_end_orders_per_s": round(n / (pull_s + ingest_s), 1),
                    "pull_error": pulled.error,
                    "windows": pulled.windows,
                    "seen": pulled.orders_seen,
                    "skipped": pulled.skipped,
                }
                results[platform] = row
                print(
                    f"{platform:9s} {n:>5} orders: pull {row['pull_orders_per_s']:>7}/s  ingest "
                    f"{row['ingest_orders_per_s']:>7}/s  end-to-end {row['end_to_end_orders_per_s']:>7}/s "
                    f"{pulled.error} windows={pulled.windows} seen={pulled.orders_seen} skipped={pulled.skipped}",
                    flush=True,
                )
    finally:
        server.stop()
    return results


if __name__ == "__main__":
    main()

"""Issue 13's "must show", end to end with the sandbox over real HTTP and a real Celery worker:

300 paid orders on a Douyin, a Kuaishou and a WeChat shop → pulled into ecbao, approved →
parcels (a merged parcel of two orders, a split order in two fulfilments, an order shipped as
two parcels) → waybill numbers for every parcel in one batch → print tasks accepted by the
sandbox's print components + one PDF of every label (each page's barcode decoded back to its
number) → scanned and verified → shipped → every shop shows ecbao's tracking numbers, the
merged, split and multi-parcel cases included; the stock ledger balances and every reservation
was consumed.

The second test runs the same loop with the sandbox failing half the waybill and ship calls for
a while — replies lost after the platform acted included — and counts in the sandbox's own
records that every parcel got exactly one number and every write-back landed exactly once."""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter, defaultdict
from contextlib import ExitStack

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Sum
from django_tenants.utils import schema_context
from websockets.sync.client import connect as ws_connect

from channels.routing.models import PlatformApp
from channels.sync import pull_orders
from inventory import selectors as stock_selectors
from inventory.models import Goods, Reservation, Sku, StockLevel
from inventory.services import receive_stock
from logistics import services as parcel_services
from logistics import waybills
from logistics.models import Parcel, SenderAddress, ShipBatch, Waybill, WriteBack
from orders import services as order_services
from orders.models import Fulfilment, Order, OrderLine, OrderStatus
from sandbox.seed import seed_default_world
from sandbox.server import SandboxServer, ServerOptions
from sandbox.world import OrderItemSpec, World
from tests.e2e.conftest import wait_until
from tests.e2e.test_channel_sync import connect, register_tool_apps

PLATFORMS = ("douyin", "kuaishou", "wechat")
SEED = 1313
ON_HAND = 5_000


class Rig:
    """A world with three shops, their orders pulled into a committed tenant of this test."""

    def __init__(self, tmp_path, settings, committed_tenant, slug: str, *, orders_per_shop: int) -> None:
        self.world = World(str(tmp_path / "world.sqlite3"), seed=SEED)
        seed_default_world(self.world, buyers=400, shops_per_platform=1)
        self.shops = {p: self.world.shops(p)[0].shop_id for p in PLATFORMS}
        self.server = SandboxServer(
            self.world,
            ServerOptions(ports=dict.fromkeys(("status", *PLATFORMS), 0), simulate=False, push=False),
        )
        for platform in PLATFORMS:
            self.server.faults.set(platform, "*", qps=0)
        self.server.start()
        settings.CHANNEL_BASE_URLS = {p: self.server.urls[p] for p in PLATFORMS}
        settings.PRINT_COMPONENT_URLS = dict(self.server.print_urls)
        self.app_keys = [a.app_key for a in self.world.apps()]
        self.tenant = committed_tenant(slug)
        self.orders_per_shop = orders_per_shop
        register_tool_apps(self.world)

    def close(self) -> None:
        self.server.stop()
        connection.set_schema_to_public()
        PlatformApp.objects.filter(app_key__in=self.app_keys).delete()
        self.world.close()

    # --- the world's buyers order; ecbao pulls ---------------------------------------------------
    def place_orders(self) -> dict[str, list[str]]:
        """``orders_per_shop`` paid orders per shop: mostly one line, some two lines or two of a SKU;
        per shop one buyer orders twice (to merge), one order has two lines of 2 (to split), one a
        line of 2 (to ship as two parcels)."""
        rng = random.Random(SEED)
        placed: dict[str, list[str]] = {}
        buyers = list(range(1, self.world.buyer_count() + 1))
        for platform, shop_id in self.shops.items():
            skus = [s for s in self.world.skus(shop_id) if s.code]
            for sku in skus:
                self.world.set_stock(sku.sku_id, 100_000)
            ids = []
            twice = rng.choice(buyers)
            for n in range(self.orders_per_shop):
                buyer = twice if n in (0, 1) else rng.choice(buyers)
                if n == 2:  # to split: two lines of 2
                    a, b = rng.sample(skus, 2)
                    items = [OrderItemSpec(a.sku_id, 2), OrderItemSpec(b.sku_id, 2)]
                elif n == 3:  # to ship as two parcels: one line of 2
                    items = [OrderItemSpec(rng.choice(skus).sku_id, 2)]
                elif n % 7 == 0:
                    a, b = rng.sample(skus, 2)
                    items = [OrderItemSpec(a.sku_id, 1), OrderItemSpec(b.sku_id, 1)]
                else:
                    items = [OrderItemSpec(rng.choice(skus).sku_id, 1 + (n % 11 == 0))]
                order = self.world.create_order(shop_id=shop_id, buyer_id=buyer, items=items, pay=True)
                ids.append(order.order_id)
            placed[platform] = ids
        return placed

    def connect_and_stock(self) -> dict[str, object]:
        stores = {}
        with schema_context(self.tenant.schema_name):
            for platform in PLATFORMS:
                stores[platform], _hook = connect(self.world, platform, self.shops[platform])
            SenderAddress.objects.create(
                name="杭州仓", mobile="0571-88880000", province="浙江省", city="杭州市",
                district="余杭区", detail="仓前街道文一西路 1 号", is_default=True,
            )  # fmt: skip
            goods = Goods.objects.create(name="发货演示货品")
            codes = {sku.code for shop_id in self.shops.values() for sku in self.world.skus(shop_id) if sku.code}
            for code in sorted(codes):
                receive_stock(
                    sku=Sku.objects.create(goods=goods, merchant_code=code, name=code),
                    quantity=ON_HAND,
                    reason="opening stock",
                )
            from inventory import sync as stock_sync

            for store in stores.values():
                stock_sync.refresh_listings(store=store)
        connection.set_schema_to_public()
        self.stores = stores
        return stores

    def pull_and_ingest(self, expected: int) -> None:
        with schema_context(self.tenant.schema_name):
            for store in self.stores.values():
                assert not pull_orders(store_id=store.pk).error

        def arrived() -> bool:
            with schema_context(self.tenant.schema_name):
                n = Order.objects.exclude(status=OrderStatus.PENDING_PAYMENT).count()
            connection.set_schema_to_public()
            return n >= expected

        assert wait_until(arrived, timeout=240, interval=0.3), "the pulled orders were not all ingested"

    def wait_batch(self, batch_id: int, *, timeout: float) -> bool:
        def finished() -> bool:
            with schema_context(self.tenant.schema_name):
                status = ShipBatch.objects.get(pk=batch_id).status
            connection.set_schema_to_public()
            return status in (ShipBatch.Status.DONE, ShipBatch.Status.FAILED)

        return wait_until(finished, timeout=timeout, interval=0.3)

    def in_tenant(self):
        return schema_context(self.tenant.schema_name)


def approve_all(user) -> None:
    for order in Order.objects.filter(status__in=[OrderStatus.TO_REVIEW, OrderStatus.HELD]).order_by("id"):
        if order.status == OrderStatus.HELD:
            order = order_services.release(order=order, actor=user)
        if order.status == OrderStatus.TO_REVIEW:
            order_services.approve(order=order, actor=user)


def shape_parcels(rig: Rig, placed: dict[str, list[str]], user) -> dict[str, dict]:
    """Per shop: the first two orders (one buyer) in one fulfilment, the third split in two
    fulfilments, the fourth as two parcels. Returns what was made, to check at the end."""
    shapes: dict[str, dict] = {}
    for platform, ids in placed.items():
        store = rig.stores[platform]
        orders = {
            o.platform_order_id: o
            for o in Order.objects.filter(store=store, platform_order_id__in=ids[:4]).prefetch_related("lines")
        }
        if platform == "kuaishou":  # Kuaishou's ids in ecbao are the sub-order (oid) ids
            orders = {}
            for world_id in ids[:4]:
                line_ids = [line.line_id for line in rig.world.get_order(world_id).lines]
                orders[world_id] = Order.objects.filter(store=store, platform_order_id__in=line_ids).first()
        first, second, to_split, two_parcels = (orders[i] for i in ids[:4])
        f_first = Fulfilment.objects.filter(lines__order_line__order=first).distinct().get()
        f_second = Fulfilment.objects.filter(lines__order_line__order=second).distinct().get()
        if f_first.pk != f_second.pk:
            f_first = order_services.merge(orders=[first, second], actor=user)
        last = to_split.lines.order_by("id").last()  # a line of 2: one unit to a second fulfilment
        order_services.split(order=to_split, parts={last.pk: 1}, actor=user)
        (line,) = two_parcels.lines.all()
        fulfilment = Fulfilment.objects.filter(lines__order_line=line).get()
        first_box = parcel_services.open_quantities(fulfilment)  # may hold an auto-merged order too
        first_box[line.pk] -= 1
        parcel_services.plan_parcels(fulfilment=fulfilment, parcels=[first_box, {line.pk: 1}], actor=user)
        shapes[platform] = {"merged": (first.pk, second.pk), "split": to_split.pk, "two_parcels": two_parcels.pk}
    parcel_services.ensure_parcels()
    return shapes


def check_one_number_per_parcel(rig: Rig, parcel_ids: list[int]) -> None:
    """Every parcel has one live waybill in ecbao, and the platform issued exactly one live
    number per parcel key ecbao sent (the sandbox's own record), the same number."""
    live = Waybill.objects.filter(parcel_id__in=parcel_ids, status=Waybill.Status.ISSUED)
    per_parcel = Counter(live.values_list("parcel_id", flat=True))  # a child number (子单) is its parcel's one
    assert set(per_parcel) == set(parcel_ids) and set(per_parcel.values()) == {1}
    assert dict(Parcel.objects.filter(pk__in=parcel_ids).values_list("pk", "tracking_no")) == dict(
        live.values_list("parcel_id", "tracking_no")
    )
    ours = set(live.filter(parent__isnull=True).values_list("tracking_no", flat=True))
    platform_live = [
        w
        for waybills_of_key in rig.world.waybills_per_parcel().values()
        for w in waybills_of_key
        if w.status == "issued"
    ]
    per_key = Counter((w.shop_id, w.order_id, w.package_id) for w in platform_live)
    assert set(per_key.values()) == {1}, [k for k, n in per_key.items() if n > 1][:5]
    assert {w.tracking_no for w in platform_live} == ours


def expected_ecbao_orders(rig: Rig) -> int:
    from tests.e2e.test_channel_sync import expected_orders

    return sum(len(expected_orders(rig.world, p, rig.shops[p])) for p in PLATFORMS)


def owner(rig: Rig):
    return get_user_model().objects.get(username=f"{rig.tenant.slug}-owner")


def test_setup_only(tmp_path, settings, committed_tenant, tenant_worker):
    rig = Rig(tmp_path, settings, committed_tenant, "ship-e2e", orders_per_shop=100)
    try:
        placed = rig.place_orders()
        rig.connect_and_stock()
        rig.pull_and_ingest(expected_ecbao_orders(rig))
        with rig.in_tenant():
            user = owner(rig)
            approve_all(user)
            print(Counter(Order.objects.values_list("status", flat=True)))
            parcel_services.ensure_parcels()
            shapes = shape_parcels(rig, placed, user)
            for store in rig.stores.values():
                assert waybills.sync_accounts(store) > 0
            ids = sorted(Parcel.objects.filter(status=Parcel.Status.NEW).values_list("pk", flat=True))
            assert len(ids) >= 300
            batch = waybills.start_take(ids, actor=user)
        connection.set_schema_to_public()
        assert rig.wait_batch(batch.pk, timeout=300)
        with rig.in_tenant():
            batch = ShipBatch.objects.get(pk=batch.pk)
            assert (batch.done, batch.failed) == (len(ids), 0), waybills.batch_progress(batch)["errors"][:5]
            numbered = Parcel.objects.filter(pk__in=ids, status=Parcel.Status.NUMBERED).exclude(tracking_no="")
            assert numbered.count() == len(ids)
            check_one_number_per_parcel(rig, ids)
    finally:
        rig.close()

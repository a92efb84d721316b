"""Shared set-up of the waybill tests and bench: a sandbox world served over real HTTP, its
three shops connected to the current tenant the way a merchant connects them, orders placed
by the world's buyers and brought into ecbao through the connectors (real platform ids and
ciphertext receivers), SKUs with stock, a sender address, and the shops' waybill accounts."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings

from channels import services as channel_services
from channels.models import Store
from inventory.models import Goods, Sku
from inventory.services import receive_stock
from logistics import services as parcels
from logistics import waybills
from logistics.models import Parcel, SenderAddress
from orders import services as order_services
from orders.models import Fulfilment, Order, OrderStatus
from sandbox.seed import seed_default_world
from sandbox.server import SandboxServer, ServerOptions
from sandbox.world import OrderItemSpec, World
from tests.e2e.test_channel_sync import connect, register_tool_apps

PLATFORMS = ("douyin", "kuaishou", "wechat")
EWAYBILL_PATHS = {
    "douyin": "/logistics/newCreateOrder",
    "kuaishou": "/open/express/ebill/get",
    "wechat": "/channels/ec/logistics/ewaybill/biz/order/create",
}


def start_sandbox(path, *, seed: int = 1313, buyers: int = 60, unlimited: bool = True) -> SandboxServer:
    world = World(str(path), seed=seed)
    seed_default_world(world, shops_per_platform=1, buyers=buyers, product_count=4)
    for shop in (world.shops(p)[0] for p in PLATFORMS):
        for sku in world.skus(shop.shop_id):
            world.set_stock(sku.sku_id, 100_000)
        for account in world.waybill_accounts(shop.shop_id):  # plenty of numbers
            world.create_waybill_account(
                shop_id=shop.shop_id, carrier=account.carrier, netsite_code=account.netsite_code,
                netsite_name=account.netsite_name, available=100_000, sender=account.sender,
            )  # fmt: skip
    server = SandboxServer(
        world,
        ServerOptions(ports=dict.fromkeys(("status", *PLATFORMS), 0), simulate=False, push=False, threads=16),
    )
    if unlimited:
        for platform in PLATFORMS:
            server.faults.set(platform, "*", qps=0)
    server.start()
    return server


@dataclass
class Shops:
    """The sandbox's three shops, connected to the current tenant."""

    server: SandboxServer
    stores: dict[str, Store]
    shop_ids: dict[str, str]
    buyer: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PLATFORMS, 0))

    @property
    def world(self) -> World:
        return self.server.world

    def order(self, platform: str, *quantities: int, buyer: int | None = None, sku: int = 0) -> Order:
        """A paid order in the world, ingested into ecbao (approved)."""
        shop_id = self.shop_ids[platform]
        skus = self.world.skus(shop_id)
        if buyer is None:
            self.buyer[platform] += 1
            buyer = self.buyer[platform] % 50 + 1
        items = [
            OrderItemSpec(skus[(sku + i) % len(skus)].sku_id, q) for i, q in enumerate(quantities or (1,))
        ]
        placed = self.world.create_order(shop_id=shop_id, buyer_id=buyer, items=items, pay=True)
        platform_id = placed.lines[0].line_id if platform == "kuaishou" else placed.order_id
        store = self.stores[platform]
        connector = channel_services.connector_for(store)
        try:
            co = connector.get_order(platform_id)
        finally:
            connector.http.close()
        order = order_services.ingest_channel_order(store=store, co=co)
        if order.status != OrderStatus.APPROVED:
            order = order_services.approve(order=order, actor=None)
        return order


def connect_shops(server: SandboxServer) -> Shops:
    """Inside the current tenant: the shops, SKUs for every merchant code, a sender, accounts."""
    world = server.world
    settings.CHANNEL_BASE_URLS = {**settings.CHANNEL_BASE_URLS, **{p: server.urls[p] for p in PLATFORMS}}
    register_tool_apps(world)
    shop_ids = {p: world.shops(p)[0].shop_id for p in PLATFORMS}
    stores = {p: connect(world, p, shop_ids[p])[0] for p in PLATFORMS}
    goods = Goods.objects.create(name="测试货品")
    codes = {sku.code for shop_id in shop_ids.values() for sku in world.skus(shop_id)}
    for code in sorted(codes):
        sku = Sku.objects.create(goods=goods, merchant_code=code, name=code, weight_g=300)
        receive_stock(sku=sku, quantity=100_000, reason="opening stock")
    SenderAddress.objects.get_or_create(
        is_default=True,
        defaults={"name": "鲸选仓库", "mobile": "13800005678", "province": "浙江省", "city": "杭州市",
                  "district": "余杭区", "street": "仓前街道", "detail": "文一西路1号"},
    )  # fmt: skip
    for store in stores.values():
        assert waybills.sync_accounts(store) == 3
    return Shops(server, stores, shop_ids)


def fulfilment_of(order: Order) -> Fulfilment:
    return (
        Fulfilment.objects.filter(lines__order_line__order=order, status=Fulfilment.Status.OPEN)
        .distinct()
        .get()
    )


def parcels_of(order: Order) -> list[Parcel]:
    f = fulfilment_of(order)
    parcels.ensure_parcels(fulfilments=[f])
    return list(f.parcels.exclude(status=Parcel.Status.CANCELLED).order_by("seq"))


def world_order_id(shops: Shops, order: Order) -> str:
    """The world's order id for an ecbao order (Kuaishou orders are the world's lines)."""
    if order.platform == "kuaishou":
        return shops.world._resolve_order_id(order.platform_order_id)
    return order.platform_order_id

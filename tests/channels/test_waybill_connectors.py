"""E-waybills through the three connectors over real HTTP (waitress sandbox): per-parcel,
idempotent takes (the same key never takes a second number, a lost reply included),
multi-parcel orders, child waybills, merged parcels, cancel and recycle, accounts, reprints.
No database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from channels import carriers
from channels.connectors import connector_class
from channels.connectors.base import AppCredentials, Connector, RetryPolicy, ShopSession
from channels.errors import PlatformRejected
from channels.types import Platform, ShipFrom, ShipmentParcel, WaybillAccount, WaybillItem, WaybillRequest
from sandbox.faults import Faults
from sandbox.seed import seed_default_world
from sandbox.server import SandboxServer, ServerOptions
from sandbox.wechat import create_self_use_app
from sandbox.world import OrderItemSpec, World

PLATFORMS = ("douyin", "kuaishou", "wechat")
SENDER = ShipFrom(name="鲸选仓库", mobile="13800005678", province="浙江省", city="杭州市", district="余杭区",
                  street="仓前街道", detail="文一西路1号")  # fmt: skip


class LosingTransport(httpx.HTTPTransport):
    """Real HTTP; the reply of the next ``lose`` calls to a path is dropped after the platform
    acted (the client sees a timeout)."""

    def __init__(self) -> None:
        super().__init__()
        self.lose: dict[str, int] = {}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        path = request.url.path
        if self.lose.get(path):
            response.read()
            self.lose[path] -= 1
            raise httpx.ReadTimeout("reply lost", request=request)
        return response


@dataclass
class Shop:
    platform: str
    shop_id: str
    connector: Connector
    transport: LosingTransport


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    world = World(tmp_path_factory.mktemp("waybills") / "world.sqlite3", seed=913)
    seed_default_world(world, shops_per_platform=1, buyers=10, product_count=4)
    server = SandboxServer(
        world, ServerOptions(ports={p: 0 for p in PLATFORMS}, simulate=False, push=False, threads=4)
    )
    for platform in PLATFORMS:  # this module counts numbers, not the gateway's token bucket
        Faults(world).set(platform, "*", qps=0)
    server.start()
    yield server
    server.stop()
    world.close()


@pytest.fixture(scope="module")
def shops(server: SandboxServer) -> dict[str, Shop]:
    world = server.world
    out = {}
    for platform in PLATFORMS:
        shop_id = world.shops(platform)[0].shop_id
        transport = LosingTransport()
        http = httpx.Client(transport=transport, timeout=10, trust_env=False)
        if platform == "wechat":
            app = create_self_use_app(world, shop_id)
            creds = AppCredentials(
                app.app_key, app.app_secret, token=app.push_token, aes_key=app.encoding_aes_key
            )
        else:
            app = next(a for a in world.apps(platform) if a.app_type == "tool")
            creds = AppCredentials(
                app.app_key, app.app_secret, sign_secret=app.sign_secret, message_key=app.message_key
            )
        connector = connector_class(platform)(
            credentials=creds, base_url=server.urls[platform], http=http, retry=RetryPolicy(base_delay=0.01)
        )
        if platform == "wechat":
            grant = connector.self_use_token(platform_shop_id=shop_id)
        else:
            grant = connector.exchange_code(code=world.create_oauth_code(app.app_key, shop_id).code)
        connector.session = ShopSession(platform_shop_id=grant.platform_shop_id)
        connector.apply_grant(grant)
        out[platform] = Shop(platform, shop_id, connector, transport)
    return out


def order(world: World, shop: Shop, *quantities: int, buyer: int = 1, sku: int = 0):
    skus = world.skus(shop.shop_id)
    items = [OrderItemSpec(skus[sku + i].sku_id, q) for i, q in enumerate(quantities or (1,))]
    return world.create_order(shop_id=shop.shop_id, buyer_id=buyer, items=items, pay=True)


def platform_id(world: World, shop: Shop, o) -> str:
    """The id the connector knows the order by (Kuaishou: the main line's oid)."""
    return o.lines[0].line_id if shop.platform == "kuaishou" else o.order_id


def account(shop: Shop, carrier: str) -> WaybillAccount:
    return next(a for a in shop.connector.list_waybill_accounts() if a.carrier == carrier)


def request(shop: Shop, acct: WaybillAccount, order_ids: list[str], **kwargs) -> WaybillRequest:
    return WaybillRequest(
        key=kwargs.pop("key", None) or f"t-{uuid.uuid4().hex}",
        carrier_code=kwargs.pop("carrier_code", acct.carrier_code),
        platform_order_ids=tuple(order_ids),
        sender=SENDER,
        items=(WaybillItem("316不锈钢保温杯", 1),),
        account_id=acct.account_id,
        branch_code=acct.branch_code,
        **kwargs,
    )


def world_account(world: World, shop: Shop, carrier: str):
    neutral = {"zto": "ZTO", "sf": "SF", "yto": "YTO"}[carrier]
    return world.waybill_accounts(shop.shop_id, neutral)[0]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_accounts_list_carriers_branches_and_balances(
    platform: str, server: SandboxServer, shops: dict[str, Shop]
) -> None:
    shop = shops[platform]
    accounts = shop.connector.list_waybill_accounts()
    assert {a.carrier for a in accounts} == {"zto", "yto", "sf"}
    for a in accounts:
        sandbox_account = world_account(server.world, shop, a.carrier)
        assert a.branch_code == sandbox_account.netsite_code and a.branch_name == sandbox_account.netsite_name
        assert a.available == sandbox_account.available
        assert a.carrier_code == carriers.code_for(platform, a.carrier, ewaybill=True)
        assert a.sender is not None and a.sender.province == "浙江省"
    if platform == "wechat":
        assert all(a.account_id and a.recycled is not None and a.cancelled is not None for a in accounts)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_same_key_twice_gives_one_number(
    platform: str, server: SandboxServer, shops: dict[str, Shop]
) -> None:
    world, shop = server.world, shops[platform]
    o = order(world, shop, 2)
    acct = account(shop, "zto")
    before = world_account(world, shop, "zto").available
    req = request(shop, acct, [platform_id(world, shop, o)])
    first = shop.connector.take_waybill(req)
    again = shop.connector.take_waybill(req)
    assert first.tracking_no == again.tracking_no and first.key == req.key
    assert world_account(world, shop, "zto").available == before - 1
    taken = world.get_waybill(first.tracking_no)
    assert taken.status == "issued" and taken.order_id == o.order_id and taken.shop_id == shop.shop_id
    assert first.carrier == "zto" and first.shipping_code == carriers.code_for(platform, "zto")
    assert first.print_info.print_data and o.receiver.phone not in first.print_info.print_data
    if platform == "wechat":
        assert first.platform_waybill_id.isdigit()
    if platform == "douyin":
        assert first.sort_code == taken.sort_code and first.package_center and first.print_info.sign
    if platform == "kuaishou":
        assert first.print_info.sign and first.print_info.key and first.print_info.template_url
    # the number ships the order with the carrier code ship() wants
    line_ids = None
    shop.connector.ship(
        platform_order_id=platform_id(world, shop, o),
        parcels=[ShipmentParcel(first.shipping_code, first.tracking_no, line_ids or ())],
        request_id=f"ship-{req.key}",
    )
    assert world.get_order(o.order_id).packages[0].tracking_no == first.tracking_no


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_lost_reply_is_repeated_with_the_same_key_and_takes_no_second_number(
    platform: str, server: SandboxServer, shops: dict[str, Shop]
) -> None:
    world, shop = server.world, shops[platform]
    o = order(world, shop, 1)
    acct = account(shop, "yto")
    before = world_account(world, shop, "yto").available
    path = {"douyin": "/logistics/newCreateOrder", "kuaishou": "/open/express/ebill/get",
            "wechat": "/channels/ec/logistics/ewaybill/biz/order/create"}[platform]  # fmt: skip
    shop.transport.lose[path] = 1
    waybill = shop.connector.take_waybill(request(shop, acct, [platform_id(world, shop, o)]))
    assert shop.transport.lose[path] == 0  # the reply was lost once, the connector asked again
    assert world_account(world, shop, "yto").available == before - 1
    assert world.get_waybill(waybill.tracking_no).status == "issued"


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_multi_parcel_order_takes_one_number_per_parcel(
    platform: str, server: SandboxServer, shops: dict[str, Shop]
) -> None:
    world, shop = server.world, shops[platform]
    o = order(world, shop, 3)
    acct = account(shop, "zto")
    oid = platform_id(world, shop, o)
    taken = [
        shop.connector.take_waybill(request(shop, acct, [oid], parcel_index=n, parcel_count=3))
        for n in (1, 2, 3)
    ]
    assert len({w.tracking_no for w in taken}) == 3
    assert all(world.get_waybill(w.tracking_no).order_id == o.order_id for w in taken)
    with pytest.raises(ValueError):  # ZTO has no child waybills anywhere
        shop.connector.take_waybill(request(shop, acct, [oid], child_count=1))


@pytest.mark.parametrize("platform", PLATFORMS)
def test_child_waybills_come_with_the_parent_and_once(
    platform: str, server: SandboxServer, shops: dict[str, Shop]
) -> None:
    world, shop = server.world, shops[platform]
    assert carriers.child_waybills(platform, "sf")
    o = order(world, shop, 3)
    acct = account(shop, "sf")
    before = world_account(world, shop, "sf").available
    req = request(shop, acct, [platform_id(world, shop, o)], parcel_count=3, child_count=2)
    parent = shop.connector.take_waybill(req)
    again = shop.connector.take_waybill(req)
    assert len(parent.children) == 2 and again.child_tracking_nos == parent.child_tracking_nos
    assert again.tracking_no == parent.tracking_no
    assert world_account(world, shop, "sf").available == before - 3
    for child in parent.children:
        stored = world.get_waybill(child.tracking_no)
        assert stored.parent == parent.tracking_no and child.print_info.print_data
    # a reprint of a child piece
    reprinted = shop.connector.print_data(
        carrier_code=acct.carrier_code, tracking_no=parent.children[0].tracking_no,
        platform_waybill_id=parent.platform_waybill_id, request=req, parent_tracking_no=parent.tracking_no,
    )  # fmt: skip
    assert reprinted.print_data


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_merged_parcel_of_two_orders_takes_one_number(
    platform: str, server: SandboxServer, shops: dict[str, Shop]
) -> None:
    world, shop = server.world, shops[platform]
    first, second = order(world, shop, 1, buyer=4), order(world, shop, 2, buyer=4, sku=1)
    ids = [platform_id(world, shop, first), platform_id(world, shop, second)]
    acct = account(shop, "zto")
    before = world_account(world, shop, "zto").available
    waybill = shop.connector.take_waybill(request(shop, acct, ids))
    assert waybill.platform_order_ids == tuple(ids)
    assert world_account(world, shop, "zto").available == before - 1
    assert (
        world.get_waybill(waybill.tracking_no).order_id == first.order_id
    )  # the receiver is the first order's


@pytest.mark.parametrize("platform", PLATFORMS)
def test_cancel_recycles_the_number_and_is_repeatable(
    platform: str, server: SandboxServer, shops: dict[str, Shop]
) -> None:
    world, shop = server.world, shops[platform]
    o = order(world, shop, 1)
    acct = account(shop, "zto")
    start = world_account(world, shop, "zto")
    req = request(shop, acct, [platform_id(world, shop, o)])
    waybill = shop.connector.take_waybill(req)
    listed = account(shop, "zto")
    assert listed.available == start.available - 1
    cancel = {"carrier_code": acct.carrier_code, "tracking_no": waybill.tracking_no,
              "platform_waybill_id": waybill.platform_waybill_id}  # fmt: skip
    shop.connector.cancel_waybill(**cancel)
    shop.connector.cancel_waybill(**cancel)  # already cancelled: done, not an error
    assert world.get_waybill(waybill.tracking_no).status == "cancelled"
    after = world_account(world, shop, "zto")
    assert (after.available, after.cancelled, after.recycled) == (
        start.available,
        start.cancelled + 1,
        start.recycled + 1,
    )
    if platform == "wechat":
        relisted = account(shop, "zto")
        assert (relisted.cancelled, relisted.recycled) == (after.cancelled, after.recycled)
        with pytest.raises(PlatformRejected):  # the key's number is gone: a new take needs a new key
            shop.connector.take_waybill(req)
    fresh = shop.connector.take_waybill(request(shop, acct, [platform_id(world, shop, o)]))
    assert fresh.tracking_no != waybill.tracking_no


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_shipped_number_cannot_be_cancelled(
    platform: str, server: SandboxServer, shops: dict[str, Shop]
) -> None:
    world, shop = server.world, shops[platform]
    o = order(world, shop, 1)
    acct = account(shop, "zto")
    waybill = shop.connector.take_waybill(request(shop, acct, [platform_id(world, shop, o)]))
    shop.connector.ship(platform_order_id=platform_id(world, shop, o),
                        parcels=[ShipmentParcel(waybill.shipping_code, waybill.tracking_no)], request_id="s1")  # fmt: skip
    with pytest.raises(PlatformRejected):
        shop.connector.cancel_waybill(carrier_code=acct.carrier_code, tracking_no=waybill.tracking_no,
                                      platform_waybill_id=waybill.platform_waybill_id)  # fmt: skip
    assert world.get_waybill(waybill.tracking_no).status == "issued"


@pytest.mark.parametrize("platform", PLATFORMS)
def test_reprint_and_print_notice(platform: str, server: SandboxServer, shops: dict[str, Shop]) -> None:
    world, shop = server.world, shops[platform]
    o = order(world, shop, 1)
    acct = account(shop, "zto")
    req = request(shop, acct, [platform_id(world, shop, o)])
    waybill = shop.connector.take_waybill(req)
    ids = {
        "carrier_code": acct.carrier_code,
        "tracking_no": waybill.tracking_no,
        "platform_waybill_id": waybill.platform_waybill_id,
    }
    again = shop.connector.print_data(**ids, request=req)
    assert again.print_data
    shop.connector.report_printed(**ids, reprint=False)
    shop.connector.report_printed(**ids, reprint=True)
    if platform == "kuaishou":
        with pytest.raises(PlatformRejected):  # print data comes only with the take
            shop.connector.print_data(**ids)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_refusals_are_platform_rejected(platform: str, server: SandboxServer, shops: dict[str, Shop]) -> None:
    world, shop = server.world, shops[platform]
    o = order(world, shop, 1)
    acct = account(shop, "zto")
    code = carriers.code_for(platform, "yunda", ewaybill=True)  # no account with Yunda
    assert code == {"wechat": "YUNDA", "kuaishou": "YUNDA", "douyin": "yunda"}[platform]
    with pytest.raises(PlatformRejected):
        shop.connector.take_waybill(request(shop, acct, [platform_id(world, shop, o)], carrier_code=code))


def test_the_carrier_table_maps_every_platform_code() -> None:
    assert carriers.code_for(Platform.WECHAT, "yunda") == "YD"
    assert carriers.code_for(Platform.WECHAT, "yunda", ewaybill=True) == "YUNDA"
    assert carriers.code_for(Platform.KUAISHOU, "yunda") == "11"
    assert carriers.code_for(Platform.KUAISHOU, "yunda", ewaybill=True) == "YUNDA"
    assert (
        carriers.key_of(Platform.KUAISHOU, "109")
        == "jtexpress"
        == carriers.key_of(Platform.KUAISHOU, "JT", ewaybill=True)
    )
    assert (
        carriers.key_of(Platform.WECHAT, "YUNDA", ewaybill=True)
        == "yunda"
        == carriers.key_of(Platform.WECHAT, "YD")
    )
    # Douyin: the platform's own list wins over the expected slug, matched by name
    from channels.types import Carrier

    listed = carriers.resolve_listed(
        [Carrier("zto-new", "中通快递"), Carrier("ztoky", "中通快运"), Carrier("x", "某某快递")]
    )
    assert listed == {"zto": "zto-new"}
    assert carriers.code_for(Platform.DOUYIN, "zto", listed=listed) == "zto-new"
    assert carriers.code_for(Platform.DOUYIN, "yto", listed=listed) == "yuantong"
    assert carriers.child_waybills("kuaishou", "sf") and not carriers.child_waybills("kuaishou", "jd")

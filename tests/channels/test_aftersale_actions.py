"""Answering after-sales through each platform's API (issue 15): the connectors' answer methods
against the sandbox over real HTTP (``SandboxServer``), driving the buyer's side through
``World``. Approve / refuse / confirm the return / ship an exchange or reissue, reasons and
return addresses, Douyin's ``update_time`` guard and parcel intercept, WeChat's one refund call
per order per minute. Every action must also emit the platform's push. No database."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from channels.connectors import connector_class
from channels.connectors.base import AppCredentials, Connector, RetryPolicy, ShopSession
from channels.errors import NotSupported, PlatformRejected, RateLimited
from channels.types import AfterSaleStatus, AfterSaleType
from sandbox import douyin as sb_douyin
from sandbox import kuaishou as sb_kuaishou
from sandbox import wechat as sb_wechat
from sandbox.faults import Faults
from sandbox.model import AfterSaleStatus as S
from sandbox.model import EventKind
from sandbox.seed import seed_default_world
from sandbox.server import SandboxServer, ServerOptions
from sandbox.wechat import create_self_use_app
from sandbox.world import InvalidArgument, OrderItemSpec, ShipmentSpec, World

PLATFORMS = ("douyin", "kuaishou", "wechat")


@dataclass
class Shop:
    platform: str
    shop_id: str
    connector: Connector


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    world = World(tmp_path_factory.mktemp("aftersales") / "world.sqlite3", seed=515)
    seed_default_world(world, shops_per_platform=1, buyers=10, product_count=4)
    server = SandboxServer(
        world, ServerOptions(ports={p: 0 for p in PLATFORMS}, simulate=False, push=False, threads=4)
    )
    for platform in PLATFORMS:
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
        http = httpx.Client(timeout=10, trust_env=False)
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
        out[platform] = Shop(platform, shop_id, connector)
    return out


def paid_order(world: World, shop: Shop, *quantities: int, sku: int = 0):
    skus = world.skus(shop.shop_id)
    items = [OrderItemSpec(skus[sku + i].sku_id, q) for i, q in enumerate(quantities or (1,))]
    return world.create_order(shop_id=shop.shop_id, buyer_id=1, items=items, pay=True)


_tracking = iter(range(10**6))


def shipped_order(world: World, shop: Shop, *quantities: int, carrier: str = "ZTO"):
    o = paid_order(world, shop, *quantities)
    tracking = f"{carrier}77{next(_tracking):08d}"
    world.ship_order(o.order_id, [ShipmentSpec(carrier, tracking, None)])
    return world.get_order(o.order_id), tracking


def platform_order_id(shop: Shop, o) -> str:
    return o.lines[0].line_id if shop.platform == "kuaishou" else o.order_id


def answer_args(shop: Shop, o, a) -> dict:
    return {"platform_after_sale_id": a.aftersale_id, "platform_order_id": platform_order_id(shop, o)}


def pushes_of(world: World, since: int, aftersale_id: str) -> list:
    """The platform push messages the world's events after ``since`` produce for one after-sale."""
    out = []
    for event in world.events_after(since):
        if event.aftersale_id != aftersale_id:
            continue
        if event.platform == "douyin":
            out.append(sb_douyin.message_data(world, event))
        elif event.platform == "kuaishou":
            app = next(a for a in world.apps("kuaishou") if a.app_type == "tool")
            out.extend(sb_kuaishou.push_messages(world, app, event, "m1"))
        else:
            out.append(sb_wechat.push_message(world, event))
    return [m for m in out if m]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_refund_before_shipment_is_approved_and_pushed(platform, server, shops) -> None:
    world, shop = server.world, shops[platform]
    o = paid_order(world, shop, 1)
    a = world.apply_aftersale(o.order_id, o.lines[0].line_id, kind="refund_unshipped", reason="拍错了")
    before = world.last_event_id()
    shop.connector.approve_after_sale(**answer_args(shop, o, a))
    assert world.get_aftersale(a.aftersale_id).status == S.SUCCESS
    seen = shop.connector.get_after_sale(a.aftersale_id)
    assert seen.status == AfterSaleStatus.SUCCEEDED and seen.type == AfterSaleType.REFUND_ONLY
    assert seen.shipped in (False, None)
    messages = pushes_of(world, before, a.aftersale_id)
    assert messages, "approval emitted no platform push"
    if platform == "kuaishou":
        assert {m["event"] for m in messages} >= {"kwaishop_aftersales_updateRefund"}
    elif platform == "wechat":
        assert {m["Event"] for m in messages} == {"channels_ec_aftersale_update"}
    else:
        assert {tag for tag, _ in messages} >= {"206"}  # refunded


@pytest.mark.parametrize("platform", PLATFORMS)
def test_return_with_address_then_receipt_confirmed(platform, server, shops) -> None:
    world, shop = server.world, shops[platform]
    o, _ = shipped_order(world, shop, 2)
    a = world.apply_aftersale(
        o.order_id, o.lines[0].line_id, kind="return_refund", qty=1, evidence=["https://img.sandbox/ev/1.jpg"]
    )
    addresses = shop.connector.return_addresses()
    assert (
        len(addresses) == 2
        and sum(x.is_default for x in addresses) == 1
        and all(x.id and x.text for x in addresses)
    )
    chosen = next(x for x in addresses if not x.is_default)
    seen = shop.connector.get_after_sale(a.aftersale_id)
    assert seen.type == AfterSaleType.RETURN_REFUND and seen.deadline is not None
    assert seen.evidence == ("https://img.sandbox/ev/1.jpg",)
    shop.connector.approve_after_sale(
        **answer_args(shop, o, a), version=seen.version, return_address_id=chosen.id
    )
    after = world.get_aftersale(a.aftersale_id)
    assert after.status == S.WAIT_BUYER_RETURN and after.return_address_id == chosen.id
    with pytest.raises(PlatformRejected):  # nothing came back yet
        shop.connector.confirm_return_received(**answer_args(shop, o, a))
    world.buyer_return_goods(a.aftersale_id, carrier="YTO", tracking_no="YT5550001")
    seen = shop.connector.get_after_sale(a.aftersale_id)
    assert seen.status == AfterSaleStatus.WAITING_MERCHANT_RECEIPT and seen.return_tracking_no == "YT5550001"
    shop.connector.confirm_return_received(**answer_args(shop, o, a), version=seen.version)
    assert world.get_aftersale(a.aftersale_id).status == S.SUCCESS


@pytest.mark.parametrize("platform", PLATFORMS)
def test_refusal_with_a_platform_reason(platform, server, shops) -> None:
    world, shop = server.world, shops[platform]
    o, _ = shipped_order(world, shop, 1)
    a = world.apply_aftersale(o.order_id, o.lines[0].line_id, kind="refund_shipped")
    reasons = shop.connector.after_sale_reject_reasons()
    assert len(reasons) >= 2 and all(r.code and r.text for r in reasons)
    plain = next(r for r in reasons if not r.needs_evidence)
    version = shop.connector.get_after_sale(a.aftersale_id).version
    shop.connector.reject_after_sale(
        **answer_args(shop, o, a), version=version, reason_code=plain.code, reason="已协商"
    )
    refused = world.get_aftersale(a.aftersale_id)
    assert refused.status == S.SELLER_REJECTED and refused.reject_reason_code == plain.code
    assert shop.connector.get_after_sale(a.aftersale_id).status == AfterSaleStatus.REJECTED
    with pytest.raises(PlatformRejected):  # nothing left to refuse
        shop.connector.reject_after_sale(**answer_args(shop, o, a), reason_code=plain.code)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_exchange_return_then_replacement_shipped(platform, server, shops) -> None:
    world, shop = server.world, shops[platform]
    o, _ = shipped_order(world, shop, 1)
    other = world.skus(shop.shop_id)[1]
    a = world.apply_aftersale(o.order_id, o.lines[0].line_id, kind="exchange", exchange_sku_id=other.sku_id)
    seen = shop.connector.get_after_sale(a.aftersale_id)
    assert seen.type == AfterSaleType.EXCHANGE and seen.exchange_sku_code == other.code
    shop.connector.approve_after_sale(**answer_args(shop, o, a), version=seen.version)
    default = next(x for x in world.return_addresses(shop.shop_id) if x["is_default"])
    assert (
        world.get_aftersale(a.aftersale_id).return_address_id == default["address_id"]
    )  # none named: the default
    world.buyer_return_goods(a.aftersale_id, carrier="ZTO", tracking_no="ZT5550002")
    version = shop.connector.get_after_sale(a.aftersale_id).version
    shop.connector.ship_exchange(
        **answer_args(shop, o, a), carrier_code="sf", tracking_no="SF5550003", version=version
    )
    done = world.get_aftersale(a.aftersale_id)
    assert done.status == S.WAIT_BUYER_RECEIVE and (done.exchange_carrier, done.exchange_tracking_no) == (
        "SF",
        "SF5550003",
    )


@pytest.mark.parametrize("platform", ["douyin", "kuaishou"])
def test_reissue_waits_for_the_merchants_parcel(platform, server, shops) -> None:
    world, shop = server.world, shops[platform]
    o, _ = shipped_order(world, shop, 1)
    a = world.apply_aftersale(o.order_id, o.lines[0].line_id, kind="reship", reason="少发了")
    seen = shop.connector.get_after_sale(a.aftersale_id)
    assert seen.type == AfterSaleType.RESHIP and seen.refund_fen == 0
    before = world.last_event_id()
    shop.connector.approve_after_sale(**answer_args(shop, o, a), version=seen.version)
    assert world.get_aftersale(a.aftersale_id).status == S.WAIT_SELLER_SHIP
    seen = shop.connector.get_after_sale(a.aftersale_id)
    assert seen.status == AfterSaleStatus.WAITING_MERCHANT  # the merchant must send it
    shop.connector.ship_exchange(
        **answer_args(shop, o, a), carrier_code="zto", tracking_no="ZT5550004", version=seen.version
    )
    assert world.get_aftersale(a.aftersale_id).status == S.WAIT_BUYER_RECEIVE
    assert len(pushes_of(world, before, a.aftersale_id)) >= 2  # approved, parcel sent
    world.buyer_receive_exchange(a.aftersale_id)
    assert shop.connector.get_after_sale(a.aftersale_id).status == AfterSaleStatus.SUCCEEDED


def test_wechat_has_no_reissue(server, shops) -> None:
    world, shop = server.world, shops["wechat"]
    o, _ = shipped_order(world, shop, 1)
    with pytest.raises(InvalidArgument):
        world.apply_aftersale(o.order_id, o.lines[0].line_id, kind="reship")


def test_douyin_refuses_a_stale_version(server, shops) -> None:
    world, shop = server.world, shops["douyin"]
    o = paid_order(world, shop, 1)
    a = world.apply_aftersale(o.order_id, o.lines[0].line_id, kind="refund_unshipped")
    version = shop.connector.get_after_sale(a.aftersale_id).version
    assert version == str(world.get_aftersale(a.aftersale_id).update_time)
    with pytest.raises(PlatformRejected) as stale:
        shop.connector.approve_after_sale(**answer_args(shop, o, a), version=str(int(version) - 1))
    assert stale.value.code == "stale_version"
    assert world.get_aftersale(a.aftersale_id).status == S.WAIT_SELLER_AGREE
    shop.connector.approve_after_sale(**answer_args(shop, o, a), version=version)
    assert world.get_aftersale(a.aftersale_id).status == S.SUCCESS


def test_douyin_intercept_in_transit_costs_and_after_delivery_is_refused(server, shops) -> None:
    world, shop = server.world, shops["douyin"]
    o, tracking = shipped_order(world, shop, 1, carrier="SF")
    a = world.apply_aftersale(o.order_id, o.lines[0].line_id, kind="refund_shipped")
    result = shop.connector.intercept_parcel(
        platform_after_sale_id=a.aftersale_id, carrier_code="sf", tracking_no=tracking
    )
    assert result.accepted and result.cost_fen == 1500 and result.reason == ""
    again = shop.connector.intercept_parcel(
        platform_after_sale_id=a.aftersale_id, carrier_code="sf", tracking_no=tracking
    )
    assert again == result and len(world.get_aftersale(a.aftersale_id).intercepts) == 1
    delivered, tracking2 = shipped_order(world, shop, 1)
    world.receive_order(delivered.order_id)
    b = world.apply_aftersale(delivered.order_id, delivered.lines[0].line_id, kind="refund_shipped")
    refused = shop.connector.intercept_parcel(
        platform_after_sale_id=b.aftersale_id, carrier_code="zhongtong", tracking_no=tracking2
    )
    assert not refused.accepted and refused.cost_fen == 0 and "签收" in refused.reason
    with pytest.raises(PlatformRejected):
        shop.connector.intercept_parcel(
            platform_after_sale_id=b.aftersale_id, carrier_code="zto", tracking_no="NOPE1"
        )


@pytest.mark.parametrize("platform", ["kuaishou", "wechat"])
def test_no_intercept_api_elsewhere(platform, shops) -> None:
    with pytest.raises(NotSupported):
        shops[platform].connector.intercept_parcel(
            platform_after_sale_id="1", carrier_code="zto", tracking_no="ZT1"
        )


def test_wechat_one_refund_call_per_order_per_minute(server, shops) -> None:
    world, shop = server.world, shops["wechat"]
    o = paid_order(world, shop, 1, 1)
    first = world.apply_aftersale(o.order_id, o.lines[0].line_id, kind="refund_unshipped")
    second = world.apply_aftersale(o.order_id, o.lines[1].line_id, kind="refund_unshipped")
    shop.connector.approve_after_sale(**answer_args(shop, o, first))
    with pytest.raises(RateLimited) as limited:
        shop.connector.approve_after_sale(**answer_args(shop, o, second))
    assert 0 < limited.value.retry_after <= 60
    assert world.get_aftersale(second.aftersale_id).status == S.WAIT_SELLER_AGREE
    other = paid_order(world, shop, 1)  # another order is not held back
    third = world.apply_aftersale(other.order_id, other.lines[0].line_id, kind="refund_unshipped")
    shop.connector.approve_after_sale(**answer_args(shop, other, third))
    assert world.get_aftersale(third.aftersale_id).status == S.SUCCESS


def test_world_events_name_each_step(server, shops) -> None:
    """The world's event log (which feeds every platform's push) records each answer."""
    world, shop = server.world, shops["kuaishou"]
    o, _ = shipped_order(world, shop, 1)
    before = world.last_event_id()
    a = world.apply_aftersale(o.order_id, o.lines[0].line_id, kind="return_refund")
    shop.connector.approve_after_sale(**answer_args(shop, o, a))
    world.buyer_return_goods(a.aftersale_id, carrier="ZTO", tracking_no="ZT5550009")
    shop.connector.confirm_return_received(**answer_args(shop, o, a))
    kinds = [e.kind for e in world.events_after(before) if e.aftersale_id == a.aftersale_id]
    assert kinds[:3] == [
        EventKind.AFTERSALE_CREATED,
        EventKind.AFTERSALE_RETURN_AGREED,
        EventKind.AFTERSALE_BUYER_RETURNED,
    ]
    assert EventKind.AFTERSALE_REFUNDED in kinds

"""Contract tests: ``WechatConnector`` / ``WechatPushCodec`` against the sandbox ``WechatApp``
(in-process WSGI transport, seeded world, FakeClock). No database, no sleeping."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from channels.connectors import connector_class, push_codec
from channels.connectors.base import AppCredentials, RetryPolicy, ShopSession
from channels.connectors.wechat import WechatConnector, WechatPushCodec
from channels.errors import AuthExpired, BadPushMessage, PlatformRejected, RateLimited, TemporarilyUnavailable
from channels.types import (
    AfterSaleStatus,
    AfterSaleType,
    OrderStatus,
    Platform,
    ShipFrom,
    ShipmentParcel,
    TokenGrant,
    WaybillRequest,
)
from sandbox.clock import FakeClock
from sandbox.faults import Faults
from sandbox.model import App
from sandbox.pushes import PushDispatcher, outbox_rows
from sandbox.seed import seed_default_world
from sandbox.simulator import BuyerSimulator, SimConfig
from sandbox.wechat import WechatApp, WechatLimits, create_self_use_app, shop_username
from sandbox.world import OrderItemSpec, ShipmentSpec, World

BASE = "http://api.weixin.sandbox"


class RecordingTransport(httpx.BaseTransport):
    """The WSGI transport plus a log of (path, errcode), the peak number of requests in flight,
    an optional rendezvous for the first ``meet`` order details (proves they run concurrently) and
    optional "the reply was lost" failures (the call reaches the platform, the client times out)."""

    def __init__(self, app: WechatApp) -> None:
        self.inner = httpx.WSGITransport(app=app)
        self.log: list[tuple[str, int]] = []
        self.lock = threading.Lock()
        self.in_flight = self.peak = 0
        self.barrier: threading.Barrier | None = None
        self.met = 0
        self.lose_reply: set[str] = set()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            barrier = None
            if (
                self.barrier is not None
                and request.url.path == "/channels/ec/order/get"
                and self.met < self.barrier.parties
            ):
                barrier, self.met = self.barrier, self.met + 1  # only the first `parties` details meet
        try:
            if barrier is not None:
                try:
                    barrier.wait(timeout=5)
                except threading.BrokenBarrierError:
                    pass
            response = self.inner.handle_request(request)
            response.read()
            try:
                code = json.loads(response.content).get("errcode", 0)
            except (ValueError, AttributeError):
                code = -999
            with self.lock:
                self.log.append((request.url.path, code))
            if request.url.path in self.lose_reply:
                raise httpx.ReadTimeout("reply lost", request=request)
            return response
        finally:
            with self.lock:
                self.in_flight -= 1

    def calls(self, path: str) -> list[int]:
        with self.lock:
            return [code for p, code in self.log if p == path]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_735_699_995.0)  # hh:mm:15 – rate-limit waits are "until the next minute"


@pytest.fixture
def world(tmp_path: Path, clock: FakeClock) -> Iterator[World]:
    w = World(tmp_path / "wechat-connector.sqlite3", seed=31, clock=clock)
    seed_default_world(w, platforms=("wechat",), buyers=40)
    yield w
    w.close()


@pytest.fixture
def sandbox(world: World) -> WechatApp:
    # The gateway's token bucket runs on real time while retries here do not sleep: lift it
    # (45011 itself is exercised through faults and WechatLimits).
    Faults(world).set("wechat", "*", qps=0)
    return WechatApp(world)


@pytest.fixture
def transport(sandbox: WechatApp) -> RecordingTransport:
    return RecordingTransport(sandbox)


@pytest.fixture
def http(transport: RecordingTransport) -> Iterator[httpx.Client]:
    with httpx.Client(transport=transport, base_url=BASE) as client:
        yield client


@pytest.fixture
def shop_id(world: World) -> str:
    return world.shops("wechat")[0].shop_id


@pytest.fixture
def self_app(world: World, shop_id: str) -> App:
    return create_self_use_app(world, shop_id)


@pytest.fixture
def sleeps() -> list[float]:
    return []


def credentials_of(app: App) -> AppCredentials:
    return AppCredentials(
        app_key=app.app_key, app_secret=app.app_secret, token=app.push_token, aes_key=app.encoding_aes_key
    )


def make_connector(
    app: App, http: httpx.Client, clock: FakeClock, sleeps: list[float], **kwargs: Any
) -> WechatConnector:
    return WechatConnector(
        credentials=credentials_of(app),
        base_url=BASE,
        http=http,
        retry=RetryPolicy(sleep=sleeps.append),
        now=lambda: datetime.fromtimestamp(clock.now(), UTC),
        **kwargs,
    )


@pytest.fixture
def grants() -> list[TokenGrant]:
    return []


@pytest.fixture
def conn(
    self_app: App, http: httpx.Client, clock: FakeClock, sleeps: list[float], grants: list[TokenGrant]
) -> WechatConnector:
    """A connected self-use shop: the first refresh_tokens() fills in the shop's id."""
    c = make_connector(self_app, http, clock, sleeps)
    c.session.on_new_tokens = grants.append
    c.apply_grant(c.refresh_tokens())
    return c


def paid_order(world: World, shop_id: str, *quantities: int, buyer_id: int = 1) -> Any:
    skus = world.skus(shop_id)
    items = [OrderItemSpec(skus[i * 2].sku_id, qty) for i, qty in enumerate(quantities or (1,))]
    return world.create_order(shop_id=shop_id, buyer_id=buyer_id, items=items, pay=True)


# --------------------------------------------------------------------------- registration and tokens


def test_module_registers_connector_and_codec() -> None:
    assert connector_class("wechat") is WechatConnector
    assert isinstance(push_codec("wechat"), WechatPushCodec)
    assert WechatConnector.max_order_window < timedelta(
        days=7
    ) and WechatConnector.max_order_window > timedelta(days=6, hours=23)


def test_refresh_tokens_uses_stable_token_and_names_the_shop(conn: WechatConnector, world: World, shop_id: str, grants: list[TokenGrant],
                                                             transport: RecordingTransport) -> None:  # fmt: skip
    [grant] = grants
    assert grant.platform_shop_id == shop_username(world, shop_id) == conn.session.platform_shop_id
    assert grant.shop_name == world.get_shop(shop_id).name and grant.refresh_token == ""
    assert grant.access_expires_at - datetime.fromtimestamp(world.now(), UTC) == timedelta(seconds=7200)
    assert transport.calls("/cgi-bin/stable_token") == [0]
    # a proactive refresh at 80 % of the life gets the same token back (stable_token normal mode)
    again = conn.refresh_tokens()
    assert again.access_token == grant.access_token


def test_token_refreshed_reactively_after_42001(conn: WechatConnector, world: World, shop_id: str, clock: FakeClock,
                                                transport: RecordingTransport, grants: list[TokenGrant]) -> None:  # fmt: skip
    order = paid_order(world, shop_id)
    conn.session.access_expires_at = (
        None  # the connector does not know the expiry: only the platform can tell
    )
    old = conn.session.access_token
    clock.advance(7200)
    assert conn.get_order(order.order_id).platform_order_id == order.order_id
    assert transport.calls("/channels/ec/order/get") == [42001, 0]
    assert transport.calls("/cgi-bin/stable_token") == [0, 0]
    assert conn.session.access_token != old and grants[-1].access_token == conn.session.access_token
    # a token killed elsewhere (40001, e.g. someone force-refreshed) is replaced the same way
    Faults(world).revoke_tokens("wechat", shop_id=shop_id)
    assert conn.get_order(order.order_id).status == OrderStatus.PAID
    assert transport.calls("/channels/ec/order/get")[-2:] == [40001, 0]


def test_refresh_failure_is_auth_expired(
    self_app: App, http: httpx.Client, clock: FakeClock, sleeps: list[float]
) -> None:
    wrong = make_connector(App(**{**self_app.__dict__, "app_secret": "not-the-secret"}), http, clock, sleeps)
    with pytest.raises(AuthExpired):
        wrong.refresh_tokens()
    unconnected = make_connector(self_app, http, clock, sleeps)
    with pytest.raises(AuthExpired):
        unconnected.list_carriers()  # no token yet


def test_third_party_platform_authorisation_and_refresh(world: World, http: httpx.Client, clock: FakeClock, sleeps: list[float],
                                                        shop_id: str, transport: RecordingTransport) -> None:  # fmt: skip
    component = world.apps("wechat")[0]

    def ticket() -> str:  # in production: the latest ticket WeChat pushed to the authorisation-event URL
        return http.get(
            "/sandbox/component_verify_ticket", params={"component_appid": component.app_key}
        ).json()["component_verify_ticket"]

    conn = make_connector(component, http, clock, sleeps, verify_ticket=ticket)
    url = urlparse(conn.authorize_url(redirect_uri="https://erp.example/wechat/callback", state="t-9"))
    params = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert url.path == "/authorize" and params["component_appid"] == component.app_key
    consent = http.post("/authorize", data={**params, "shop_id": shop_id})
    code = parse_qs(urlparse(consent.headers["location"]).query)["auth_code"][0]
    grant = conn.exchange_code(code=code)
    assert (
        grant.platform_shop_id == shop_username(world, shop_id)
        and grant.shop_name == world.get_shop(shop_id).name
    )
    assert grant.refresh_token.startswith("wx") and "refreshtoken@@@" in grant.refresh_token
    conn.session = ShopSession(platform_shop_id=grant.platform_shop_id)
    conn.apply_grant(grant)
    order = paid_order(world, shop_id)
    assert conn.get_order(order.order_id).platform_shop_id == grant.platform_shop_id
    clock.advance(7200)
    conn.session.access_expires_at = None
    assert (
        conn.get_order(order.order_id).platform_order_id == order.order_id
    )  # 42001 → api_authorizer_token → retry
    assert transport.calls("/cgi-bin/component/api_authorizer_token") == [0]
    assert transport.calls("/cgi-bin/component/api_component_token") == [
        0,
        0,
    ]  # the component token expired too
    world.revoke_authorization(component.app_key, shop_id)
    with pytest.raises(AuthExpired):
        conn.get_order(order.order_id)
    no_ticket = make_connector(component, http, clock, sleeps)
    with pytest.raises(AuthExpired):
        no_ticket.exchange_code(code="whatever")


# --------------------------------------------------------------------------- limits


def test_rate_limits_become_rate_limited(conn: WechatConnector, world: World, sandbox: WechatApp, sleeps: list[float],
                                         transport: RecordingTransport) -> None:  # fmt: skip
    faults = Faults(world)
    faults.set("wechat", "/channels/ec/order/deliverycompanylist/get", rate_limit_rate=1.0)
    sandbox.faults = faults
    with pytest.raises(RateLimited) as caught:
        conn.list_carriers()
    assert caught.value.retry_after == pytest.approx(45.5)  # "retry next minute": the clock reads hh:mm:15
    assert transport.calls("/channels/ec/order/deliverycompanylist/get") == [45011] * 5
    assert sleeps == [conn.retry.max_delay] * 4
    faults.clear("wechat")
    WechatLimits.save(world, daily_quota=1)
    conn.get_order(paid_order(world, world.shops("wechat")[0].shop_id).order_id)
    with pytest.raises(RateLimited) as daily:
        conn.api("/channels/ec/order/get", {"order_id": "1"})
    assert 3600 < daily.value.retry_after <= 86400  # until midnight in Asia/Shanghai
    WechatLimits.save(world, daily_quota=0)
    faults.set("wechat", "/channels/ec/order/deliverycompanylist/get", error_rate=1.0)
    with pytest.raises(TemporarilyUnavailable):
        conn.list_carriers()


# --------------------------------------------------------------------------- orders


def test_iter_orders_pages_ids_then_details_with_bounded_concurrency(conn: WechatConnector, world: World, shop_id: str,
                                                                     clock: FakeClock, transport: RecordingTransport) -> None:  # fmt: skip
    origin = clock.now()
    BuyerSimulator(
        world,
        seed=2,
        config=SimConfig(orders_per_minute=4, merchant_bot=True, merchant_ship_delay=900),
        shops=[shop_id],
    ).run_for(3600)
    transport.barrier = threading.Barrier(2)
    got = list(
        conn.iter_orders(
            updated_from=datetime.fromtimestamp(origin, UTC),
            updated_to=datetime.fromtimestamp(clock.now(), UTC),
        )
    )
    truth = {o.order_id: o for o in world.orders(shop_id)}
    assert len(truth) > 150 and sorted(o.platform_order_id for o in got) == sorted(truth)
    assert len(transport.calls("/channels/ec/order/list/get")) == -(-len(truth) // 100)
    assert 2 <= transport.peak <= conn.detail_workers  # details overlapped, never more than that
    statuses = {o.status for o in got}
    assert {OrderStatus.PAID, OrderStatus.SHIPPED} <= statuses
    for order in got:
        source = truth[order.platform_order_id]
        assert order.platform == Platform.WECHAT and order.platform_shop_id == conn.session.platform_shop_id
        assert str(order.raw["order_id"]) == order.platform_order_id and order.updated_at.tzinfo is not None
        assert order.updated_at == datetime.fromtimestamp(source.update_time, UTC)
        assert [(ln.platform_line_id, ln.merchant_code, ln.quantity, ln.is_gift) for ln in order.lines] == [
            (f"{ln.product_id}:{ln.sku_id}", ln.code, ln.qty, ln.is_gift) for ln in source.lines
        ]
        name, phone, address = order.receiver.name, order.receiver.phone, order.receiver.address
        assert name.cipher == phone.cipher == address.cipher == ""
        assert name.index == phone.index == address.index == ""  # WeChat gives no per-field index
        address_info = order.raw["order_detail"]["delivery_info"]["address_info"]
        assert order.receiver.identity == address_info.get("hash_code", "")  # the merge identity
        assert source.receiver.phone not in json.dumps(order.to_json(), ensure_ascii=False)
        assert phone.mask == source.receiver.phone[:3] + "****" + source.receiver.phone[-4:]
    with pytest.raises(ValueError):
        list(
            conn.iter_orders(
                updated_from=datetime.fromtimestamp(origin, UTC),
                updated_to=datetime.fromtimestamp(origin, UTC) + timedelta(days=7),
            )
        )


def test_detail_workers_bound(self_app: App, http: httpx.Client, clock: FakeClock, sleeps: list[float], world: World, shop_id: str,
                              transport: RecordingTransport) -> None:  # fmt: skip
    serial = make_connector(self_app, http, clock, sleeps, detail_workers=1)
    serial.apply_grant(serial.refresh_tokens())
    start = clock.now()
    made = {paid_order(world, shop_id, buyer_id=i + 1).order_id for i in range(12)}
    window = {
        "updated_from": datetime.fromtimestamp(start, UTC),
        "updated_to": datetime.fromtimestamp(clock.now(), UTC),
    }
    assert {o.platform_order_id for o in serial.iter_orders(**window)} == made
    assert transport.peak == 1
    two = make_connector(self_app, http, clock, sleeps, detail_workers=2)
    two.apply_grant(two.refresh_tokens())
    transport.barrier, transport.met, transport.peak = threading.Barrier(2), 0, 0
    assert {o.platform_order_id for o in two.iter_orders(**window)} == made
    assert transport.peak == 2


def test_order_mapping_details(conn: WechatConnector, world: World, shop_id: str) -> None:
    skus = world.skus(shop_id)
    order = world.create_order(
        shop_id=shop_id, buyer_id=7, pay=True, post_fen=600, buyer_words="周末送",
        items=[OrderItemSpec(skus[0].sku_id, 2, discount_fen=300), OrderItemSpec(skus[1].sku_id, 1, gift_of=0)],
    )  # fmt: skip
    world.set_seller_remark(order.order_id, "加急")
    got = conn.get_order(order.order_id)
    assert (got.status, got.platform_status) == (OrderStatus.PAID, "20")
    assert (got.goods_fen, got.freight_fen, got.discount_fen, got.paid_fen) == (
        order.goods_fen,
        600,
        order.discount_fen,
        order.pay_fen,
    )
    assert (got.buyer_remark, got.seller_remark) == ("周末送", "加急")
    main, gift = got.lines
    assert main.unit_price_fen == skus[0].price_fen and main.paid_fen == skus[0].price_fen * 2 - 300
    assert gift.is_gift and gift.paid_fen == 0 and main.spec == ";".join(f"{n}:{v}" for n, v in skus[0].spec)
    assert got.paid_at == datetime.fromtimestamp(
        order.pay_time, UTC
    ) and got.ship_by == datetime.fromtimestamp(order.promise_ship_time, UTC)
    assert got.receiver.province == order.receiver.province and got.buyer_id.startswith("o")
    with pytest.raises(PlatformRejected) as caught:
        conn.get_order("3700000000000000000")
    assert caught.value.code == "10021001"


# --------------------------------------------------------------------------- shipping


def test_partial_then_full_shipment_moves_20_21_30(conn: WechatConnector, world: World, shop_id: str) -> None:
    order = paid_order(world, shop_id, 2, 1)
    first, second = conn.get_order(order.order_id).lines
    assert {"SF", "ZTO", "YTO", "YD", "EMS", "JD", "STO"} <= {c.code for c in conn.list_carriers()}
    conn.ship(
        platform_order_id=order.order_id,
        parcels=[ShipmentParcel("ZTO", "7801", ((first.platform_line_id, 1),))],
        request_id="r1",
    )
    partial = conn.get_order(order.order_id)
    assert (partial.status, partial.platform_status) == (OrderStatus.PARTIALLY_SHIPPED, "21")
    assert (
        partial.packages[0].lines == ((first.platform_line_id, 1),)
        and partial.packages[0].carrier_code == "ZTO"
    )
    conn.ship(
        platform_order_id=order.order_id, parcels=[ShipmentParcel("SF", "SF7802")], request_id="r2"
    )  # whole rest
    done = conn.get_order(order.order_id)
    assert (done.status, done.platform_status) == (OrderStatus.SHIPPED, "30")
    assert [(p.tracking_no, p.lines) for p in done.packages] == [
        ("7801", ((first.platform_line_id, 1),)),
        ("SF7802", ((first.platform_line_id, 1), (second.platform_line_id, 1))),
    ]
    assert done.shipped_at is not None
    with pytest.raises(PlatformRejected):
        conn.ship(platform_order_id=order.order_id, parcels=[ShipmentParcel("SF", "SF7803")], request_id="r3")


def test_multi_parcel_shipment_in_one_call_and_never_resent(conn: WechatConnector, world: World, shop_id: str,
                                                            transport: RecordingTransport) -> None:  # fmt: skip
    order = paid_order(world, shop_id, 1, 3)
    first, second = conn.get_order(order.order_id).lines
    parcels = [
        ShipmentParcel("YTO", "YT1", ((first.platform_line_id, 1), (second.platform_line_id, 1))),
        ShipmentParcel("YD", "4300001", ((second.platform_line_id, 2),)),
    ]
    transport.lose_reply.add("/channels/ec/order/delivery/send")
    with pytest.raises(TemporarilyUnavailable):
        conn.ship(platform_order_id=order.order_id, parcels=parcels, request_id="multi-1")
    assert transport.calls("/channels/ec/order/delivery/send") == [0]  # sent once, not retried
    transport.lose_reply.clear()
    shipped = conn.get_order(order.order_id)
    assert shipped.status == OrderStatus.SHIPPED and [p.tracking_no for p in shipped.packages] == [
        "YT1",
        "4300001",
    ]


# --------------------------------------------------------------------------- stock and listings


def test_listings_and_stock_set_up_and_down_land_exactly(conn: WechatConnector, world: World, shop_id: str,
                                                         transport: RecordingTransport) -> None:  # fmt: skip
    listings = list(conn.iter_listings())
    truth = {s.sku_id: s for s in world.skus(shop_id)}
    assert sorted(x.platform_sku_id for x in listings) == sorted(truth)
    listing = listings[0]
    sku = truth[listing.platform_sku_id]
    assert (listing.merchant_code, listing.stock, listing.price_fen) == (sku.code, sku.stock, sku.price_fen)
    current = conn.get_stock(listing)
    conn.set_stock(listing=listing, quantity=current + 25, current=current, idempotency_key="k1")
    assert conn.get_stock(listing) == current + 25 == world.get_sku(sku.sku_id).stock
    conn.set_stock(listing=listing, quantity=3, current=current + 25, idempotency_key="k2")
    assert conn.get_stock(listing) == 3
    conn.set_stock(listing=listing, quantity=3, current=3, idempotency_key="k3")  # nothing to do: no call
    conn.set_stock(listing=listing, quantity=40, current=None, idempotency_key="k4")
    assert conn.get_stock(listing) == 40
    bodies = [code for code in transport.calls("/channels/ec/product/stock/update")]
    assert bodies == [0, 0, 0]
    with pytest.raises(PlatformRejected) as insufficient:
        conn.set_stock(
            listing=listing, quantity=0, current=41, idempotency_key="k5"
        )  # stale current: 41 > 40
    assert insufficient.value.code == "10020219" and conn.get_stock(listing) == 40
    # a delta write whose reply is lost is not re-sent (it may have landed)
    transport.lose_reply.add("/channels/ec/product/stock/update")
    with pytest.raises(TemporarilyUnavailable):
        conn.set_stock(listing=listing, quantity=45, current=40, idempotency_key="k6")
    transport.lose_reply.clear()
    assert transport.calls("/channels/ec/product/stock/update")[-1:] == [0] and conn.get_stock(listing) == 45
    WechatLimits.save(world, stock_updates_per_sku_per_minute=1)
    world.clock.advance(60)  # type: ignore[attr-defined]
    conn.set_stock(listing=listing, quantity=50, current=45, idempotency_key="k7")
    with pytest.raises(RateLimited):
        conn.set_stock(listing=listing, quantity=55, current=50, idempotency_key="k8")
    assert conn.get_stock(listing) == 50


# --------------------------------------------------------------------------- after-sales, money, waybills, buyer data


def test_after_sales_ids_then_details(
    conn: WechatConnector, world: World, shop_id: str, clock: FakeClock
) -> None:
    start = clock.now()
    order = paid_order(world, shop_id, 2)
    world.ship_order(order.order_id, [ShipmentSpec("ZTO", "78001")])
    returned = world.apply_aftersale(
        order.order_id, order.lines[0].line_id, kind="return_refund", qty=1, reason="七天无理由"
    )
    refund_only = paid_order(world, shop_id, 1, buyer_id=2)
    refund = world.apply_aftersale(
        refund_only.order_id, refund_only.lines[0].line_id, kind="refund_unshipped", reason="不想要了"
    )
    world.agree_aftersale(refund.aftersale_id)
    clock.advance(5)
    got = {a.platform_after_sale_id: a for a in conn.iter_after_sales(updated_from=datetime.fromtimestamp(start, UTC),
                                                                      updated_to=datetime.fromtimestamp(clock.now(), UTC))}  # fmt: skip
    assert set(got) == {returned.aftersale_id, refund.aftersale_id}
    r = got[returned.aftersale_id]
    assert (r.type, r.status, r.platform_status) == (
        AfterSaleType.RETURN_REFUND,
        AfterSaleStatus.WAITING_MERCHANT,
        "MERCHANT_PROCESSING",
    )
    assert r.platform_line_id == f"{order.lines[0].product_id}:{order.lines[0].sku_id}" and r.quantity == 1
    assert r.refund_fen == returned.refund_fen and r.platform_order_id == order.order_id
    f = got[refund.aftersale_id]
    assert (f.type, f.status) == (AfterSaleType.REFUND_ONLY, AfterSaleStatus.SUCCEEDED)
    assert conn.get_order(refund_only.order_id).status == OrderStatus.CANCELLED  # every item refunded: 200


def test_settlements_ids_then_details(
    conn: WechatConnector, world: World, shop_id: str, clock: FakeClock
) -> None:
    start = clock.now()
    orders = [paid_order(world, shop_id, 1, buyer_id=i + 1) for i in range(4)]
    for o in orders:
        world.ship_order(o.order_id, [ShipmentSpec("ZTO", f"78{o.order_id[-8:]}")])
        world.receive_order(o.order_id)
        world.complete_order(o.order_id)
    clock.advance(5)
    lines = list(
        conn.iter_settlements(
            start=datetime.fromtimestamp(start, UTC), end=datetime.fromtimestamp(clock.now(), UTC)
        )
    )
    assert len(lines) == 8 and len({x.platform_line_id for x in lines}) == 8
    assert {x.platform_order_id for x in lines} == {o.order_id for o in orders}
    truth = sum(s.settle_fen for _, s in world.settlements(shop_id, start=int(start), end=world.now()))
    assert sum(x.amount_fen for x in lines) == truth
    fees = [x for x in lines if x.service_fee_fen]
    assert len(fees) == 4 and all(x.amount_fen == -x.service_fee_fen < 0 for x in fees)
    assert all(
        x.settled_at.tzinfo is not None
        and abs((x.settled_at - datetime.fromtimestamp(world.now(), UTC)).total_seconds()) <= 5
        for x in lines
    )


def test_take_waybill(conn: WechatConnector, world: World, shop_id: str) -> None:
    orders = [paid_order(world, shop_id, 1, buyer_id=i + 1) for i in range(2)]
    sender = ShipFrom(name="鲸选仓库", mobile="13800005678", province="浙江省", city="杭州市", district="余杭区", detail="仓前街道1号")  # fmt: skip
    accounts = {a.carrier: a for a in conn.list_waybill_accounts()}
    zto = accounts["zto"]
    waybills = [
        conn.take_waybill(WaybillRequest(key=f"k{o.order_id}", carrier_code=zto.carrier_code, platform_order_ids=(o.order_id,),
                                         sender=sender, account_id=zto.account_id, branch_code=zto.branch_code))
        for o in orders
    ]  # fmt: skip
    for w, o in zip(waybills, orders, strict=True):
        issued = world.get_waybill(w.tracking_no)
        assert issued is not None and issued.order_id == o.order_id and w.shipping_code == "ZTO"
        assert w.print_info.print_data and o.receiver.phone not in w.print_info.print_data
    with pytest.raises(PlatformRejected):  # no EMS account
        conn.take_waybill(WaybillRequest(key="k-ems", carrier_code="EMS", platform_order_ids=(orders[0].order_id,),
                                         sender=sender, account_id=zto.account_id, branch_code=zto.branch_code))  # fmt: skip


def test_decrypt_reads_one_field_of_the_decoded_address(
    conn: WechatConnector, world: World, shop_id: str
) -> None:
    world.update_shop(shop_id, decrypt_quota_per_day=3)
    order = paid_order(world, shop_id)
    r = order.receiver
    assert conn.decrypt(platform_order_id=order.order_id, cipher="phone", account_id="u-1") == r.phone
    assert conn.decrypt(platform_order_id=order.order_id, cipher="name", account_id="u-1") == r.name
    assert (
        conn.decrypt(platform_order_id=order.order_id, cipher="address", account_id="u-1")
        == r.street + r.detail
    )
    with pytest.raises(PlatformRejected) as quota:
        conn.decrypt(platform_order_id=order.order_id, cipher="phone", account_id="u-1")
    assert quota.value.code == "10021102"
    with pytest.raises(ValueError):
        conn.decrypt(platform_order_id=order.order_id, cipher="", account_id="u-1")


# --------------------------------------------------------------------------- pushes


OFFICIAL_VECTORS = [
    ("1714036504", "1514711492", "f464b24fc39322e44b38aa78f5edd27bd1441696"),
    ("1714037059", "486452656", "899cf89e464efb63f54ddac96b0a0a235f53aa78"),
]


def test_url_verification_vectors() -> None:
    codec = WechatPushCodec()
    credentials = AppCredentials(app_key="wx1", app_secret="s", token="AAAAA", aes_key="")
    for timestamp, nonce, signature in OFFICIAL_VECTORS:
        reply = codec.verify_url(
            query={"signature": signature, "timestamp": timestamp, "nonce": nonce, "echostr": "hello"},
            credentials=credentials,
        )
        assert reply is not None and (reply.status, reply.body) == (200, "hello")
        tampered = {"signature": signature, "timestamp": timestamp, "nonce": nonce + "1", "echostr": "hello"}
        assert codec.verify_url(query=tampered, credentials=credentials) is None


class CodecReceiver:
    """An ERP push endpoint on 127.0.0.1: decodes with ``WechatPushCodec`` and answers with its
    ``ack()``/``reject()``; the first ``refuse_first`` deliveries are rejected."""

    def __init__(self, credentials: AppCredentials, refuse_first: int = 0) -> None:
        self.codec, self.credentials, self.refuse_first = WechatPushCodec(), credentials, refuse_first
        self.decoded: list[Any] = []
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                query = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
                with receiver.lock:
                    receiver.requests.append((query, body))
                    refuse = len(receiver.requests) <= receiver.refuse_first
                    try:
                        receiver.decoded.extend(
                            receiver.codec.decode(
                                headers={}, query=query, body=body, credentials=receiver.credentials
                            )
                        )
                        reply = receiver.codec.reject() if refuse else receiver.codec.ack()
                    except BadPushMessage:
                        reply = receiver.codec.reject()
                data = reply.body.encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/push/wechat"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_push_round_trip(
    world: World, self_app: App, shop_id: str, conn: WechatConnector, clock: FakeClock
) -> None:
    credentials = credentials_of(self_app)
    receiver = CodecReceiver(credentials, refuse_first=1)
    dispatcher = PushDispatcher(world)
    try:
        world.update_app(self_app.app_key, webhook_url=receiver.url)
        order = paid_order(world, shop_id, 2)
        world.ship_order(order.order_id, [ShipmentSpec("ZTO", "7899", [(order.lines[0].line_id, 1)])])
        aftersale = world.apply_aftersale(
            order.order_id, order.lines[0].line_id, kind="refund_shipped", qty=1, reason="破损"
        )
        while dispatcher.deliver_due():
            pass
        assert all(r["status"] == "delivered" for r in outbox_rows(world, platform="wechat"))
        kinds = [(m.topic, m.kind, m.object_id) for m in receiver.decoded]
        oid = order.order_id
        assert kinds == [
            ("channels_ec_order_new", "order", oid),  # refused …
            ("channels_ec_order_pay", "order", oid),
            ("channels_ec_order_deliver", "order", oid),
            ("channels_ec_aftersale_update", "after_sale", aftersale.aftersale_id),
            ("channels_ec_order_new", "order", oid),  # … and delivered again (retry after 0 s)
        ]
        first, retried = receiver.decoded[0], receiver.decoded[4]
        assert first.message_id == retried.message_id  # the retry is recognised as the same message
        assert len({m.message_id for m in receiver.decoded}) == 4
        assert all(m.platform_shop_id == conn.session.platform_shop_id for m in receiver.decoded)
        assert receiver.decoded[3].payload["order_id"] == oid  # what intake hands to after-sale processing
        assert receiver.decoded[2].payload["order_info"]["finish_delivery"] == 0
        # the pushed order id resolves through the connector
        assert conn.get_order(receiver.decoded[2].object_id).status == OrderStatus.PARTIALLY_SHIPPED
        # tampering and foreign keys are refused
        query, body = receiver.requests[-1]
        codec = WechatPushCodec()
        envelope = json.loads(body)
        forged = json.dumps({**envelope, "Encrypt": envelope["Encrypt"][:-8] + "AAAAAAA="}).encode()
        with pytest.raises(BadPushMessage):
            codec.decode(headers={}, query=query, body=forged, credentials=credentials)
        with pytest.raises(BadPushMessage):
            codec.decode(
                headers={}, query={**query, "msg_signature": "0" * 40}, body=body, credentials=credentials
            )
        other = AppCredentials(
            app_key="wx0000000000000000", app_secret="", token=credentials.token, aes_key=credentials.aes_key
        )
        with pytest.raises(BadPushMessage):
            codec.decode(headers={}, query=query, body=body, credentials=other)
        with pytest.raises(BadPushMessage):
            codec.decode(headers={}, query=query, body=b"<xml/>", credentials=credentials)
        ack, reject = codec.ack(), codec.reject()
        assert (ack.status, ack.content_type, ack.body) == (
            200,
            "text/plain",
            "success",
        ) and reject.body != "success"
    finally:
        dispatcher.stop()
        receiver.close()


def test_lenient_ids_and_own_message_ids() -> None:
    codec = WechatPushCodec()
    numeric = codec.to_message({"ToUserName": "gh_1", "CreateTime": 1, "Event": "channels_ec_order_pay",
                                "order_info": {"order_id": 3705115058471208928, "pay_time": 1}})  # fmt: skip
    textual = codec.to_message({"ToUserName": "gh_1", "CreateTime": 1, "Event": "channels_ec_order_pay",
                                "order_info": {"order_id": "3705115058471208928", "pay_time": 1}})  # fmt: skip
    assert numeric.object_id == textual.object_id == "3705115058471208928" and numeric.kind == "order"
    own = codec.to_message(
        {"ToUserName": "gh_1", "CreateTime": 1, "Event": "product_spu_update", "MsgId": 99}
    )
    assert (own.kind, own.message_id, own.object_id) == ("other", "99", "")

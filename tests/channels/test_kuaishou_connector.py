"""Contract tests: ``KuaishouConnector`` and ``KuaishouPushCodec`` against the Kuaishou sandbox.

Every call goes over HTTP (httpx's in-process WSGI transport) to ``KuaishouApp`` on a seeded
world with a ``FakeClock``. A small recording WSGI layer (``Wire``) sits between the two: it
records each call, can lose an answer after the platform did the work (a timeout), and can
change the world between two pages. No database is used.
"""

from __future__ import annotations

import io
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from channels import types as neutral
from channels.connectors import connector_class, push_codec
from channels.connectors.base import AppCredentials, RetryPolicy, ShopSession
from channels.connectors.kuaishou import (
    EXPRESS_CODES,
    KuaishouConnector,
    KuaishouPushCodec,
    check_result,
    fen,
    parse_bill_time,
    sign_params,
)
from channels.connectors.scrub import looks_like_cipher
from channels.errors import AuthExpired, BadPushMessage, PlatformRejected, RateLimited, TemporarilyUnavailable
from channels.types import (
    AfterSaleStatus,
    OrderStatus,
    Platform,
    ShipFrom,
    ShipmentParcel,
    TokenGrant,
    WaybillRequest,
)
from sandbox import kuaishou as sandbox_kuaishou
from sandbox.clock import FakeClock
from sandbox.kuaishou import HEARTBEAT, KuaishouApp, encrypt_push, hold_order
from sandbox.kuaishou import KuaishouPushCodec as SandboxPushCodec
from sandbox.model import AfterSaleType, App, Order
from sandbox.pushes import PushDispatcher
from sandbox.seed import WAREHOUSE_SENDER, seed_default_world
from sandbox.simulator import BuyerSimulator, SimConfig
from sandbox.world import OrderItemSpec, ShipmentSpec, World
from tests.sandbox.refclients.kuaishou import signature as reference_signature

BASE = "http://kuaishou.sandbox"
CALLBACK = "https://erp.example/callback/kuaishou"
HOUR = 3600
DAY = 86400
SENDER = {
    k: WAREHOUSE_SENDER[k] for k in ("name", "mobile", "province", "city", "district", "street", "detail")
}


# --------------------------------------------------------------------------- the wire


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, str]
    answer: Any = None

    @property
    def business(self) -> dict[str, Any]:
        return json.loads(self.params.get("param") or "{}")

    @property
    def result(self) -> Any:
        return self.answer.get("result") if isinstance(self.answer, dict) else None


class Wire:
    """WSGI layer in front of the sandbox: records calls, can fail them, can act between them.

    ``failures[path]`` queues what happens to the next calls of that path: ``"lose"`` lets the
    platform do the work and then times out (the answer never arrives). ``after(call)`` runs
    after each answered call."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.calls: list[Call] = []
        self.failures: dict[str, list[str]] = defaultdict(list)
        self.after: Callable[[Call], None] | None = None

    def to(self, path: str) -> list[Call]:
        return [c for c in self.calls if c.path == path]

    @property
    def paths(self) -> list[str]:
        return [c.path for c in self.calls]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        params = {
            k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()
        }
        if body and "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
            params.update({k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()})
        call = Call(environ["REQUEST_METHOD"], environ["PATH_INFO"], params)
        self.calls.append(call)
        seen: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen["status"], seen["headers"] = status, headers
            return lambda data: None

        chunks = b"".join(self.app(environ, capture))
        try:
            call.answer = json.loads(chunks)
        except ValueError:
            call.answer = None
        failure = self.failures[call.path].pop(0) if self.failures.get(call.path) else ""
        if failure == "lose":
            raise httpx.ReadTimeout("the answer was lost")
        if self.after is not None:
            self.after(call)
        start_response(seen["status"], seen["headers"])
        return [chunks]


# --------------------------------------------------------------------------- the rig


@dataclass
class Rig:
    world: World
    clock: FakeClock
    sandbox: KuaishouApp
    wire: Wire
    http: httpx.Client
    app: App
    shop_id: str
    credentials: AppCredentials
    sleeps: list[float] = field(default_factory=list)
    grants: list[TokenGrant] = field(default_factory=list)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now(), UTC)

    def connector(self, session: ShopSession | None = None, **kwargs: Any) -> KuaishouConnector:
        return KuaishouConnector(
            credentials=self.credentials,
            base_url=BASE,
            session=session,
            http=self.http,
            retry=RetryPolicy(sleep=self.sleeps.append),
            now=self.now,
            **kwargs,
        )

    def connect(self) -> KuaishouConnector:
        """Authorise through the page and the connector, like a merchant connecting a shop."""
        unbound = self.connector()
        url = urlsplit(unbound.authorize_url(redirect_uri=CALLBACK, state="s1"))
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        answer = self.http.post(url.path, data={**query, "shop_id": self.shop_id})
        assert answer.status_code == 302, answer.text
        code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
        grant = unbound.exchange_code(code=code, redirect_uri=CALLBACK)
        session = ShopSession(
            platform_shop_id=grant.platform_shop_id,
            access_token=grant.access_token,
            access_expires_at=grant.access_expires_at,
            refresh_token=grant.refresh_token,
            refresh_expires_at=grant.refresh_expires_at,
            issued_at=self.now(),
            on_new_tokens=self.grants.append,
        )
        return self.connector(session)

    def place(
        self,
        *specs: tuple[int, int],
        gift_of: dict[int, int] | None = None,
        pay: bool = True,
        post_fen: int = 0,
    ) -> Order:
        skus = self.world.skus(self.shop_id)
        items = [
            OrderItemSpec(skus[i].sku_id, qty, gift_of=(gift_of or {}).get(pos))
            for pos, (i, qty) in enumerate(specs)
        ]
        return self.world.create_order(
            shop_id=self.shop_id, buyer_id=3, items=items, pay=pay, post_fen=post_fen
        )


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    clock = FakeClock(start=1_735_700_000.0)
    world = World(tmp_path / "ks.sqlite3", seed=23, clock=clock)
    seed_default_world(world, platforms=("kuaishou",), buyers=40)
    app = world.update_app(world.apps("kuaishou")[0].app_key, redirect_uri=CALLBACK)
    sandbox = KuaishouApp(world)
    wire = Wire(sandbox)
    with httpx.Client(transport=httpx.WSGITransport(app=wire), base_url=BASE) as http:
        credentials = AppCredentials(
            app.app_key, app.app_secret, sign_secret=app.sign_secret, message_key=app.message_key
        )
        yield Rig(world, clock, sandbox, wire, http, app, world.shops("kuaishou")[0].shop_id, credentials)
    world.close()


@pytest.fixture
def ks(rig: Rig) -> KuaishouConnector:
    return rig.connect()


# --------------------------------------------------------------------------- signing and registry


def test_signature_matches_the_independent_reference_client() -> None:
    params = {"appkey": "ks1", "method": "open.order.detail", "version": "1", "param": '{"oid":5}', "access_token": "t",
              "timestamp": "1735700000000", "signMethod": "HMAC_SHA256"}  # fmt: skip
    assert sign_params(params, "sec") == reference_signature(params, "sec", "HMAC_SHA256")
    assert sign_params({**params, "signMethod": "MD5"}, "sec", "MD5") == reference_signature(
        {**params, "signMethod": "MD5"}, "sec", "MD5"
    )


def test_registry_returns_the_kuaishou_classes() -> None:
    assert connector_class("kuaishou") is KuaishouConnector
    assert isinstance(push_codec("kuaishou"), KuaishouPushCodec)


def test_error_mapping() -> None:
    with pytest.raises(RateLimited):
        check_result(
            {"result": 1016, "error_msg": "Exceed qps limit, KEY [apiId:x;appkey:y], MAX_QPS [300.0]"}
        )
    with pytest.raises(RateLimited):
        check_result({"result": 99, "error_msg": "[1017] exceed quota limit,[apiId:x;primaryUserId:1]"})
    with pytest.raises(AuthExpired):
        check_result({"result": 24, "error_msg": "AUTHORIZATION_REVOKED"})
    with pytest.raises(PlatformRejected) as rejected:
        check_result({"result": 21, "error_msg": "order operation reject", "sub_code": "X"})
    assert (rejected.value.code, rejected.value.sub_code) == ("21", "X")
    with pytest.raises(TemporarilyUnavailable):
        check_result("<html>")
    assert fen("8900") == 8900 and fen("-12.5") == -1250 and fen(None) == 0
    assert parse_bill_time("2025-01-01 08:00:00") == datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_bill_time("1735689600000") == datetime(2025, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- authorisation and tokens


def test_exchange_code_names_the_shop(rig: Rig) -> None:
    unbound = rig.connector()
    url = unbound.authorize_url(redirect_uri=CALLBACK, state="xyz")
    assert (
        url.startswith(f"{BASE}/oauth/authorize?") and "response_type=code" in url and "merchant_order" in url
    )
    assert rig.connector(authorize_base="https://open.kwaixiaodian.com/oauth/authorize").authorize_url(
        redirect_uri=CALLBACK, state="s").startswith("https://open.kwaixiaodian.com/oauth/authorize?app_id=")  # fmt: skip
    ks = rig.connect()
    shop = rig.world.get_shop(rig.shop_id)
    assert ks.session.platform_shop_id == rig.shop_id
    assert ks.session.access_expires_at == rig.now() + timedelta(hours=48)
    assert ks.session.refresh_expires_at == rig.now() + timedelta(days=180)
    assert rig.wire.paths[-2:] == ["/oauth2/access_token", "/open/user/seller/get"]
    assert rig.wire.calls[-2].method == "GET"
    seller = rig.wire.calls[-1]
    assert seller.result == 1 and seller.answer["data"]["name"] == shop.name


def test_token_is_refreshed_before_it_expires(rig: Rig, ks: KuaishouConnector) -> None:
    old_refresh = ks.session.refresh_token
    rig.clock.advance(39 * HOUR)  # past 80 % of 48 h
    ks.get_order(rig.place((0, 1)).lines[0].line_id)
    assert rig.wire.paths[-2:] == ["/oauth2/refresh_token", "/open/order/detail"]
    assert rig.wire.calls[-2].method == "POST"
    [grant] = rig.grants
    assert grant.refresh_token != old_refresh and ks.session.refresh_token == grant.refresh_token
    assert grant.refresh_expires_at == rig.now() + timedelta(days=180) - timedelta(hours=39)  # inherited
    assert rig.wire.calls[-1].params["access_token"] == grant.access_token


def test_a_failed_early_refresh_does_not_stop_a_call_while_the_token_works(
    rig: Rig, ks: KuaishouConnector
) -> None:
    token = ks.session.access_token
    rig.sandbox.faults.set("kuaishou", "/oauth2/refresh_token", error_rate=1.0)
    rig.clock.advance(40 * HOUR)
    listings = list(ks.iter_listings())
    assert listings and ks.session.access_token == token and rig.grants == []
    assert (
        len(rig.wire.to("/oauth2/refresh_token")) == ks.retry.attempts
    )  # retried: the old refresh token stays usable
    rig.clock.advance(9 * HOUR)  # now expired: the refresh must work or the call fails
    with pytest.raises(TemporarilyUnavailable):
        list(ks.iter_listings())


def test_expired_token_is_refreshed_once_and_the_call_repeated(rig: Rig, ks: KuaishouConnector) -> None:
    order = rig.place((0, 1))
    ks.session.access_expires_at = rig.now() + timedelta(days=30)  # a stale belief: no proactive refresh
    ks.session.issued_at = rig.now()
    rig.clock.advance(49 * HOUR)
    found = ks.get_order(order.lines[0].line_id)
    assert found.platform_order_id == order.lines[0].line_id
    assert rig.wire.paths[-3:] == ["/open/order/detail", "/oauth2/refresh_token", "/open/order/detail"]
    assert rig.wire.calls[-3].answer["error_msg"] == "TOKEN过期"
    assert len(rig.grants) == 1


def test_discarded_refresh_token_means_reconnect(rig: Rig, ks: KuaishouConnector) -> None:
    first = ks.session.refresh_token
    ks.refresh_tokens()  # rotates, but this session keeps the old one
    rig.clock.advance(301)
    with pytest.raises(AuthExpired, match="refreshToken.discarded"):
        ks.refresh_tokens()
    assert ks.session.refresh_token == first


def test_withdrawn_authorisation_is_auth_expired(rig: Rig, ks: KuaishouConnector) -> None:
    rig.world.revoke_authorization(rig.app.app_key, rig.shop_id)
    with pytest.raises(AuthExpired, match="withdrew"):
        list(ks.iter_listings())


def test_rate_limit_is_retried_then_raised(rig: Rig, ks: KuaishouConnector) -> None:
    rig.sandbox.faults.set("kuaishou", "/open/order/detail", rate_limit_rate=1.0)
    with pytest.raises(RateLimited, match="Exceed qps limit"):
        ks.get_order(rig.place((0, 1)).lines[0].line_id)
    assert len(rig.wire.to("/open/order/detail")) == ks.retry.rate_limit_attempts
    assert rig.sleeps == [1.0] * (ks.retry.rate_limit_attempts - 1)


def test_read_is_retried_after_a_lost_answer(rig: Rig, ks: KuaishouConnector) -> None:
    order = rig.place((0, 1))
    rig.wire.failures["/open/order/detail"] = ["lose"]
    assert ks.get_order(order.lines[0].line_id).platform_order_id == order.lines[0].line_id
    assert len(rig.wire.to("/open/order/detail")) == 2


# --------------------------------------------------------------------------- orders


def test_orders_map_to_one_line_each_with_gift_lines(rig: Rig, ks: KuaishouConnector) -> None:
    start = rig.now()
    order = rig.place((0, 2), (1, 1), (2, 1), gift_of={2: 0}, post_fen=600)
    rig.world.set_seller_remark(order.order_id, "加急", 1)
    rig.clock.advance(5)
    found = {o.platform_order_id: o for o in ks.iter_orders(updated_from=start, updated_to=rig.now())}
    main, other, gift = order.lines
    assert set(found) == {main.line_id, other.line_id}
    first = found[main.line_id]
    assert first.platform is Platform.KUAISHOU and first.platform_shop_id == rig.shop_id
    assert first.status is OrderStatus.PAID and first.platform_status == "30"
    assert [(ln.platform_line_id, ln.is_gift, ln.quantity, ln.merchant_code) for ln in first.lines] == [
        (main.line_id, False, 2, main.code), (gift.line_id, True, 1, gift.code),
    ]  # fmt: skip
    assert first.lines[0].unit_price_fen == main.unit_price_fen and first.lines[1].paid_fen == 0
    assert first.freight_fen == 600 and first.paid_fen == main.sum_fen - main.discount_fen + 600
    shown_ms = sandbox_kuaishou.wms(rig.world, order.create_time)  # milliseconds, not always .000
    assert first.created_at == datetime.fromtimestamp(shown_ms / 1000, UTC) and first.paid_at is not None
    assert first.updated_at.tzinfo is UTC and first.ship_by is not None
    assert first.seller_remark == "加急" and first.ship_blocked_reason == ""
    assert first.receiver.name.cipher and first.receiver.name.mask.startswith(order.receiver.name[0])
    assert order.receiver.phone not in json.dumps(first.to_json(), ensure_ascii=False)
    assert first.raw["orderBaseInfo"]["oid"] == int(main.line_id)
    assert all(c.method == "GET" and c.business["queryType"] == 2 and c.business["pageSize"] == 50
               for c in rig.wire.to("/open/order/cursor/list"))  # fmt: skip


def test_iter_orders_walks_the_cursor_to_nomore_and_splits_long_windows(
    rig: Rig, ks: KuaishouConnector
) -> None:
    start = rig.now()
    for sku in rig.world.skus(rig.shop_id)[:3]:
        rig.world.set_stock(sku.sku_id, 1000)
    placed = [rig.place((i % 3, 1)) for i in range(120)]
    rig.clock.advance(8 * DAY)
    late = rig.place((0, 1))
    found = [o.platform_order_id for o in ks.iter_orders(updated_from=start, updated_to=rig.now())]
    assert sorted(found) == sorted([o.lines[0].line_id for o in placed] + [late.lines[0].line_id])
    pages = rig.wire.to("/open/order/cursor/list")
    assert len(pages) == 4  # 50 + 50 + 20 in the first 7-day window, 1 in the rest
    assert [c.business["cursor"] == "" for c in pages] == [True, False, False, True]
    assert max(c.business["endTime"] - c.business["beginTime"] for c in pages) <= 7 * DAY * 1000


def test_iter_orders_returns_each_order_once_while_the_shop_keeps_changing(
    rig: Rig, ks: KuaishouConnector
) -> None:
    sim = BuyerSimulator(
        rig.world,
        seed=3,
        config=SimConfig(orders_per_minute=3.0, p_multi_line=0.4, p_gift=0.2),
        shops=[rig.shop_id],
    )
    start = rig.now()
    sim.run_for(2 * HOUR)
    end = rig.now()
    lo, hi = int(start.timestamp()), int(end.timestamp())
    expected = {
        ln.line_id
        for o in rig.world.orders(rig.shop_id)
        if lo <= o.update_time <= hi
        for ln in o.lines
        if not ln.is_gift
    }

    def between(call: Call) -> None:
        if call.path == "/open/order/cursor/list":
            sim.run_for(90)
            for order in rig.world.orders(rig.shop_id)[:40:7]:
                rig.world.set_seller_remark(order.order_id, "改", 2)

    rig.wire.after = between
    found = [o.platform_order_id for o in ks.iter_orders(updated_from=start, updated_to=end)]
    rig.wire.after = None
    assert len(found) == len(set(found)) and set(found) == expected


def test_partial_shipment_is_partially_shipped_and_a_held_order_says_why(
    rig: Rig, ks: KuaishouConnector
) -> None:
    order = rig.place((0, 3))
    oid = order.lines[0].line_id
    ks.ship(
        platform_order_id=oid,
        parcels=[ShipmentParcel("9", rig.world.new_tracking_no("ZTO"), ((oid, 1),))],
        request_id="r1",
    )
    partial = ks.get_order(oid)
    assert partial.status is OrderStatus.PARTIALLY_SHIPPED and partial.platform_status == "40"
    assert [p.carrier_code for p in partial.packages] == ["9"] and partial.shipped_at is not None
    held = rig.place((1, 1))
    hold_order(rig.world, held.lines[0].line_id, codes=[2])
    blocked = ks.get_order(held.lines[0].line_id)
    assert (
        "disableDeliveryReasonCode=2" in blocked.ship_blocked_reason and "风控" in blocked.ship_blocked_reason
    )


# --------------------------------------------------------------------------- shipping


def test_whole_order_ships_with_goods_deliver(rig: Rig, ks: KuaishouConnector) -> None:
    order = rig.place((0, 2))
    oid = order.lines[0].line_id
    tracking = rig.world.new_tracking_no("ZTO")
    ks.ship(platform_order_id=oid, parcels=[ShipmentParcel("9", tracking)], request_id="r1")
    [deliver] = rig.wire.to("/open/seller/order/goods/deliver")
    assert deliver.method == "POST" and deliver.business == {
        "orderId": int(oid),
        "expressCode": 9,
        "expressNo": tracking,
    }
    shipped = rig.world.get_order(order.order_id)
    assert shipped.lines[0].shipped_qty == 2 and shipped.packages[0].tracking_no == tracking
    assert ks.get_order(oid).status is OrderStatus.SHIPPED


def test_whole_order_with_a_gift_and_two_boxes_uses_split_deliver_and_append(
    rig: Rig, ks: KuaishouConnector
) -> None:
    order = rig.place((0, 1), (1, 1), gift_of={1: 0})
    main, gift = order.lines
    boxes = [
        ShipmentParcel("9", rig.world.new_tracking_no("ZTO")),
        ShipmentParcel("9", rig.world.new_tracking_no("ZTO")),
    ]
    ks.ship(platform_order_id=main.line_id, parcels=boxes, request_id="r2")
    [split] = rig.wire.to("/open/order/goods/split/deliver")
    assert split.business["deliveryItemInfoList"][0]["deliveryGoodsInfoList"] == [
        {"oid": int(main.line_id), "deliveryNum": 1}, {"oid": int(gift.line_id), "deliveryNum": 1},
    ]  # fmt: skip
    assert len(rig.wire.to("/open/seller/order/goods/logistics/append")) == 1
    shipped = ks.get_order(main.line_id)
    assert shipped.status is OrderStatus.SHIPPED
    assert {p.tracking_no for p in shipped.packages} == {b.tracking_no for b in boxes}


def test_multi_parcel_partial_shipping_by_lines(rig: Rig, ks: KuaishouConnector) -> None:
    order = rig.place((0, 3))
    oid = order.lines[0].line_id
    parcels = [ShipmentParcel("9", rig.world.new_tracking_no("ZTO"), ((oid, 1),)),
               ShipmentParcel("4", rig.world.new_tracking_no("SF"), ((oid, 1),))]  # fmt: skip
    ks.ship(platform_order_id=oid, parcels=parcels, request_id="r3")
    assert rig.world.get_order(order.order_id).lines[0].shipped_qty == 2
    ks.ship(
        platform_order_id=oid,
        parcels=[ShipmentParcel("9", rig.world.new_tracking_no("ZTO"))],
        request_id="r4",
    )
    done = ks.get_order(oid)
    assert done.status is OrderStatus.SHIPPED and len(done.packages) == 3
    assert len(rig.wire.to("/open/order/goods/split/deliver")) == 2  # the rest of a partly shipped order


def test_shipping_refusal_and_no_resend_after_a_lost_answer(rig: Rig, ks: KuaishouConnector) -> None:
    order = rig.place((0, 1))
    oid = order.lines[0].line_id
    with pytest.raises(PlatformRejected) as refused:
        ks.ship(platform_order_id=oid, parcels=[ShipmentParcel("5", "7123456789012")], request_id="r5")
    assert refused.value.code == "11"
    rig.wire.failures["/open/seller/order/goods/deliver"] = ["lose"]
    with pytest.raises(TemporarilyUnavailable):
        ks.ship(
            platform_order_id=oid,
            parcels=[ShipmentParcel("9", rig.world.new_tracking_no("ZTO"))],
            request_id="r6",
        )
    assert (
        len(rig.wire.to("/open/seller/order/goods/deliver")) == 2
    )  # the refused one and the lost one; no resend
    assert rig.world.get_order(order.order_id).lines[0].shipped_qty == 1


def test_carriers_from_the_api_and_the_published_fallback(rig: Rig, ks: KuaishouConnector) -> None:
    carriers = {c.code: c.name for c in ks.list_carriers()}
    assert (
        carriers["9"] == "中通快递"
        and carriers["109"] == "极兔速递"
        and all(code.isdigit() for code in carriers)
    )
    del rig.sandbox.routes["/open/logistics/company/list"]
    fallback = {c.code: c.name for c in ks.list_carriers()}
    assert fallback == {str(code): name for code, name in EXPRESS_CODES.items()}


# --------------------------------------------------------------------------- stock and listings


def test_listings_carry_codes_stock_and_prices(rig: Rig, ks: KuaishouConnector) -> None:
    listings = list(ks.iter_listings())
    skus = rig.world.skus(rig.shop_id)
    assert {(x.platform_sku_id, x.merchant_code, x.stock, x.price_fen) for x in listings} == {
        (s.sku_id, s.code, s.stock, s.price_fen) for s in skus
    }


@pytest.mark.parametrize("change", [+37, -11])
def test_set_stock_lands_exactly_on_the_target(rig: Rig, ks: KuaishouConnector, change: int) -> None:
    listing = next(iter(ks.iter_listings()))
    target = listing.stock + change
    ks.set_stock(listing=listing, quantity=target, current=listing.stock, idempotency_key="k1")
    assert rig.world.get_sku(listing.platform_sku_id).stock == target
    [update] = rig.wire.to("/open/item/sku/stock/update")
    assert update.method == "POST"
    assert update.business == {"kwaiItemId": int(listing.platform_product_id), "skuId": int(listing.platform_sku_id),
                               "skuChangeStock": abs(change), "changeType": 1 if change > 0 else 2}  # fmt: skip


def test_set_stock_reads_when_current_is_unknown_and_skips_when_equal(
    rig: Rig, ks: KuaishouConnector
) -> None:
    listing = next(iter(ks.iter_listings()))
    rig.world.adjust_stock(listing.platform_sku_id, -5)  # an order took stock since the listing was read
    ks.set_stock(listing=listing, quantity=listing.stock, current=None, idempotency_key="k2")
    assert rig.world.get_sku(listing.platform_sku_id).stock == listing.stock
    assert rig.wire.paths[-2:] == ["/open/item/sku/list/get", "/open/item/sku/stock/update"]
    calls = len(rig.wire.calls)
    ks.set_stock(listing=listing, quantity=listing.stock, current=listing.stock, idempotency_key="k3")
    assert len(rig.wire.calls) == calls


def test_a_delta_that_timed_out_is_not_sent_again(rig: Rig, ks: KuaishouConnector) -> None:
    listing = next(iter(ks.iter_listings()))
    rig.wire.failures["/open/item/sku/stock/update"] = ["lose"]
    with pytest.raises(TemporarilyUnavailable):
        ks.set_stock(listing=listing, quantity=listing.stock + 4, current=listing.stock, idempotency_key="k4")
    assert len(rig.wire.to("/open/item/sku/stock/update")) == 1
    assert rig.world.get_sku(listing.platform_sku_id).stock == listing.stock + 4  # applied exactly once


# --------------------------------------------------------------------------- after-sales, settlements, waybills, PII


def test_after_sales_are_read_in_one_day_windows(rig: Rig, ks: KuaishouConnector) -> None:
    start = rig.now()
    first = rig.place((0, 1))
    refund = rig.world.apply_aftersale(
        first.order_id, first.lines[0].line_id, kind=AfterSaleType.REFUND_UNSHIPPED, reason="拍错了"
    )
    rig.clock.advance(2 * DAY + 60)
    second = rig.place((1, 1))
    rig.world.ship_order(second.order_id, [ShipmentSpec("ZTO", rig.world.new_tracking_no("ZTO"))])
    ret = rig.world.apply_aftersale(
        second.order_id, second.lines[0].line_id, kind=AfterSaleType.RETURN_REFUND
    )
    rig.world.agree_aftersale(ret.aftersale_id)
    found = {
        a.platform_after_sale_id: a for a in ks.iter_after_sales(updated_from=start, updated_to=rig.now())
    }
    assert set(found) == {refund.aftersale_id, ret.aftersale_id}
    a, b = found[refund.aftersale_id], found[ret.aftersale_id]
    assert (a.type, a.status, a.platform_order_id, a.refund_fen, a.reason) == (
        neutral.AfterSaleType.REFUND_ONLY, AfterSaleStatus.WAITING_MERCHANT, first.lines[0].line_id, refund.refund_fen, "拍错了")  # fmt: skip
    assert (b.type, b.status, b.platform_status) == (
        neutral.AfterSaleType.RETURN_REFUND,
        AfterSaleStatus.WAITING_BUYER_RETURN,
        "30",
    )
    windows = rig.wire.to("/open/seller/order/refund/pcursor/list")
    assert len(windows) == 3 and all(
        c.business["endTime"] - c.business["beginTime"] <= DAY * 1000 for c in windows
    )


def test_settlements(rig: Rig, ks: KuaishouConnector) -> None:
    start = rig.now()
    order = rig.place((0, 1), (1, 2))
    rig.world.ship_order(order.order_id, [ShipmentSpec("ZTO", rig.world.new_tracking_no("ZTO"))])
    rig.world.receive_order(order.order_id)
    completed = rig.world.complete_order(order.order_id)
    rig.clock.advance(60)
    lines = list(ks.iter_settlements(start=start, end=rig.now()))
    assert sorted(x.platform_order_id for x in lines) == sorted(ln.line_id for ln in order.lines)
    by_line = {x.platform_order_id: x for x in lines}
    for line in completed.lines:
        settled = by_line[line.line_id]
        assert settled.kind == "settle" and settled.amount_fen > 0
        assert (
            settled.amount_fen + settled.service_fee_fen == line.pay_fen
        )  # fee = the platform's technical service fee
        assert settled.settled_at == datetime.fromtimestamp(completed.complete_time, UTC)
        assert settled.raw["orderNo"] == int(line.line_id)
    assert len({x.platform_line_id for x in lines}) == 2
    assert all(c.method == "GET" for c in rig.wire.to("/open/funds/financial/settled/bill/detail"))


def test_waybills_are_taken_with_ciphertexts_and_ship_with_the_same_carrier(
    rig: Rig, ks: KuaishouConnector
) -> None:
    orders = [rig.place((0, 1)), rig.place((1, 1), (2, 1), gift_of={1: 0})]
    oids = [o.lines[0].line_id for o in orders]
    requests = [WaybillRequest(key=f"k{oid}", carrier_code="ZTO", platform_order_ids=(oid,), sender=ShipFrom(**SENDER)) for oid in oids]  # fmt: skip
    waybills = [ks.take_waybill(r) for r in requests]
    assert [w.platform_order_ids for w in waybills] == [(oid,) for oid in oids]
    assert all(w.shipping_code == "9" and w.carrier == "zto" for w in waybills)
    assert waybills[0].print_info.sign
    first, second = (c.business["getEbillOrderRequest"][0] for c in rig.wire.to("/open/express/ebill/get"))
    assert first["expressCompanyCode"] == "ZTO" and looks_like_cipher(first["receiverContract"]["name"])
    assert first["requestId"] == requests[0].key
    assert len(second["itemList"]) == 2  # the gift travels in the same parcel
    again = ks.take_waybill(requests[0])
    assert again.tracking_no == waybills[0].tracking_no  # one waybill per key
    ks.ship(
        platform_order_id=oids[0],
        parcels=[ShipmentParcel(waybills[0].shipping_code, waybills[0].tracking_no)],
        request_id="w",
    )
    assert ks.get_order(oids[0]).status is OrderStatus.SHIPPED


def test_decrypt_one_field_and_the_daily_quota(rig: Rig, ks: KuaishouConnector) -> None:
    order = rig.place((0, 1))
    oid = order.lines[0].line_id
    found = ks.get_order(oid)
    assert (
        ks.decrypt(platform_order_id=oid, cipher=found.receiver.phone.cipher, account_id="u1")
        == order.receiver.phone
    )
    [call] = rig.wire.to("/open/order/decrypt/batch")
    assert call.method == "POST" and call.business == {
        "batchDecryptList": [{"bizId": oid, "encryptedData": found.receiver.phone.cipher}]
    }
    rig.world.consume_decrypt_quota(rig.shop_id, 10_000)
    with pytest.raises(PlatformRejected) as refused:
        ks.decrypt(platform_order_id=oid, cipher=found.receiver.name.cipher, account_id="u1")
    assert refused.value.code == "6"


# --------------------------------------------------------------------------- pushes


def test_push_round_trip(rig: Rig) -> None:
    rig.world.update_app(rig.app.app_key, webhook_url="http://erp.example/push/kuaishou")
    rig.world.authorize(rig.app.app_key, rig.shop_id)
    order = rig.place((0, 1), (1, 1), pay=False)
    refund_order = rig.place((2, 1))
    refund = rig.world.apply_aftersale(
        refund_order.order_id, refund_order.lines[0].line_id, kind=AfterSaleType.REFUND_UNSHIPPED
    )
    dispatcher = PushDispatcher(rig.world, seed=1)
    try:
        messages = dispatcher.due_messages()
    finally:
        dispatcher.stop()
    sandbox_codec, codec = SandboxPushCodec(), KuaishouPushCodec()
    decoded = []
    for message in messages:
        for post in sandbox_codec.encode(rig.world, rig.world.get_app(rig.app.app_key), message):
            assert post.headers["Content-Type"].startswith("text/plain")
            decoded += codec.decode(
                headers=post.headers, query={}, body=post.body, credentials=rig.credentials
            )
    created = [m for m in decoded if m.topic == "kwaishop_order_addOrder"]
    assert [m.object_id for m in created[:2]] == [ln.line_id for ln in order.lines]
    assert all(m.kind == "order" and m.platform_shop_id == rig.shop_id for m in created)
    [after_sale] = [m for m in decoded if m.kind == "after_sale"]
    assert after_sale.object_id == refund.aftersale_id and after_sale.topic == "kwaishop_aftersales_addRefund"
    assert len({m.message_id for m in decoded}) == len(decoded)
    assert codec.ack().body == '{"result":1}' and json.loads(codec.reject().body)["result"] != 1


def test_heartbeat_and_bad_pushes(rig: Rig) -> None:
    codec = KuaishouPushCodec()
    [beat] = codec.decode(
        headers={},
        query={},
        body=encrypt_push(rig.app.message_key, HEARTBEAT).encode(),
        credentials=rig.credentials,
    )
    assert beat.kind == "test" and beat.message_id
    [plain] = codec.decode(headers={}, query={}, body=b'{"test":true}', credentials=rig.credentials)
    assert plain.kind == "test"
    with pytest.raises(BadPushMessage):
        codec.decode(headers={}, query={}, body=b"not base64 at all!", credentials=rig.credentials)
    other_key = AppCredentials(rig.app.app_key, "", message_key="MDEyMzQ1Njc4OWFiY2RlZg==")
    body = encrypt_push(
        rig.app.message_key, json.dumps({"event": "kwaishop_order_paySuccess", "info": "{}"})
    ).encode()
    with pytest.raises(BadPushMessage):
        codec.decode(headers={}, query={}, body=body, credentials=other_key)
    stranger = encrypt_push(
        rig.app.message_key,
        json.dumps({"event": "kwaishop_order_paySuccess", "appKey": "ks999", "info": "{}"}),
    )
    with pytest.raises(BadPushMessage):
        codec.decode(headers={}, query={}, body=stranger.encode(), credentials=rig.credentials)
    [digest_id] = codec.decode(headers={}, query={}, credentials=rig.credentials,
                               body=encrypt_push(rig.app.message_key, json.dumps({"event": "kwaishop_item_x", "bizId": 5})).encode())  # fmt: skip
    assert digest_id.kind == "other" and digest_id.object_id == "5" and len(digest_id.message_id) == 64

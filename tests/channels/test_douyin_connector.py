"""Contract tests: ``DouyinConnector`` and ``DouyinPushCodec`` against the Douyin sandbox.

Every call goes over HTTP (httpx's in-process WSGI transport) to ``DouyinApp`` on a seeded
world with a ``FakeClock``. A small recording WSGI layer (``Wire``) sits between the two:
it records each call and can lose an answer or answer 503 the way a load balancer would,
or change the world between two pages. No database is used.
"""

from __future__ import annotations

import hashlib
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

from channels.connectors import connector_class, push_codec
from channels.connectors.base import AppCredentials, PushMessage, RetryPolicy, ShopSession
from channels.connectors.douyin import (
    DouyinConnector,
    DouyinPushCodec,
    bill_time,
    canonical_param_json,
    check_envelope,
    sign_request,
)
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
from sandbox.clock import FakeClock
from sandbox.douyin import CIPHER, DouyinApp, signed_query
from sandbox.douyin import DouyinPushCodec as SandboxPushCodec
from sandbox.faults import RateLimiter
from sandbox.model import AfterSaleType, App, Order
from sandbox.pushes import PushDispatcher, outbox_rows
from sandbox.seed import WAREHOUSE_SENDER, seed_default_world
from sandbox.simulator import BuyerSimulator
from sandbox.world import OrderItemSpec, ShipmentSpec, World

BASE = "http://douyin.sandbox"
DAY = 86400
SENDER = {
    "name": WAREHOUSE_SENDER["name"],
    "mobile": WAREHOUSE_SENDER["mobile"],
    "province": WAREHOUSE_SENDER["province"],
    "city": WAREHOUSE_SENDER["city"],
    "district": WAREHOUSE_SENDER["district"],
    "street": WAREHOUSE_SENDER["street"],
    "detail": WAREHOUSE_SENDER["detail"],
}


# --------------------------------------------------------------------------- the wire


@dataclass
class Call:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int
    answer: Any = None

    @property
    def params(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def code(self) -> int | None:
        return self.answer.get("code") if isinstance(self.answer, dict) else None


class Wire:
    """WSGI layer in front of the sandbox: records calls, can fail them, can act between them.

    ``failures[path]`` is a queue of what to do to the next calls of that path:
    ``"503"`` answers a load balancer's 503 without reaching the platform; ``"lose"`` lets
    the platform do the work and then answers 502 (the answer was lost on the way back).
    ``after(call)`` runs after each answered call (e.g. the world changes between pages).
    """

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
        path = environ["PATH_INFO"]
        query = {
            k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()
        }
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        headers["content-type"] = environ.get("CONTENT_TYPE", "")
        failure = self.failures[path].pop(0) if self.failures.get(path) else ""
        if failure == "503":
            self.calls.append(Call(path, query, headers, body, 503))
            start_response("503 Service Unavailable", [("Content-Type", "text/html")])
            return [b"<html><body><h1>503 Service Unavailable</h1></body></html>"]
        seen: dict[str, Any] = {}

        def capture(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            seen["status"], seen["headers"] = status, response_headers

        payload = b"".join(self.app(environ, capture))
        try:
            answer = json.loads(payload)
        except ValueError:
            answer = None
        call = Call(path, query, headers, body, int(seen["status"].split()[0]), answer)
        self.calls.append(call)
        if failure == "lose":
            start_response("502 Bad Gateway", [("Content-Type", "text/html")])
            return [b"<html><body><h1>502 Bad Gateway</h1></body></html>"]
        if self.after is not None:
            self.after(call)
        start_response(seen["status"], seen["headers"])
        return [payload]


# --------------------------------------------------------------------------- the sandbox


@dataclass
class Sandbox:
    world: World
    clock: FakeClock
    app: DouyinApp
    wire: Wire
    sleeps: list[float] = field(default_factory=list)
    grants: list[TokenGrant] = field(default_factory=list)

    @property
    def dy_app(self) -> App:
        return self.world.apps("douyin")[0]

    @property
    def shop_id(self) -> str:
        return self.world.shops("douyin")[0].shop_id

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now(), UTC)

    def connector(
        self, *, app: App | None = None, session: ShopSession | None = None, **kwargs: Any
    ) -> DouyinConnector:
        app = app or self.dy_app
        return DouyinConnector(
            credentials=AppCredentials(app_key=app.app_key, app_secret=app.app_secret),
            base_url=BASE,
            session=session,
            http=httpx.Client(transport=httpx.WSGITransport(app=self.wire), base_url=BASE),
            retry=RetryPolicy(sleep=self.sleeps.append),
            now=self.now,
            **kwargs,
        )

    def connected(self, **kwargs: Any) -> DouyinConnector:
        """A connector whose shop went through the code exchange (the wire is then cleared)."""
        connector = self.connector(**kwargs)
        code = self.world.create_oauth_code(self.dy_app.app_key, self.shop_id)
        grant = connector.exchange_code(code=code.code)
        connector.session = ShopSession(
            platform_shop_id=grant.platform_shop_id, on_new_tokens=self.grants.append
        )
        connector.apply_grant(grant)
        self.grants.clear()
        self.wire.calls.clear()
        return connector

    def skus(self) -> list[Any]:
        return self.world.skus(self.shop_id)

    def order(self, items: list[tuple[int, int]] | None = None, *, pay: bool = True, **kwargs: Any) -> Order:
        """A buyer orders ``[(sku index, qty)]`` in the shop."""
        skus = self.skus()
        specs = [OrderItemSpec(skus[i].sku_id, qty) for i, qty in items or [(0, 1)]]
        return self.world.create_order(shop_id=self.shop_id, buyer_id=1, items=specs, pay=pay, **kwargs)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    yield from _sandbox(tmp_path / "douyin.db")


def _sandbox(path: Path, *, limiter: RateLimiter | None = None) -> Iterator[Sandbox]:
    clock = FakeClock(start=1_735_700_000)
    world = World(path, seed=7, clock=clock)
    seed_default_world(world, platforms=("douyin",), shops_per_platform=2, buyers=40)
    app = DouyinApp(world, limiter=limiter)
    yield Sandbox(world=world, clock=clock, app=app, wire=Wire(app))
    world.close()


# --------------------------------------------------------------------------- registry, signing, envelope


def test_registry_exposes_connector_and_push_codec() -> None:
    assert connector_class("douyin") is DouyinConnector
    assert isinstance(push_codec("douyin"), DouyinPushCodec)


def test_sign_matches_hand_computed_hmac_sha256() -> None:
    # Values computed with `openssl dgst -sha256 -hmac` over the §1.2 concatenation.
    secret = "s3cr3t-app-secret"
    assert (
        sign_request(
            app_key="7123456789012345678",
            app_secret=secret,
            method="order.orderDetail",
            param_json='{"shop_order_id":"6920000000000000001"}',
            timestamp="1700000000",
        )
        == "6ca9c77dd3563d5432fe87c123441df522ee40a2d75546b6758bee82a6282a9c"
    )
    param_json = canonical_param_json({"shop_id": 12345678, "grant_type": "authorization_self", "code": ""})
    assert param_json == '{"code":"","grant_type":"authorization_self","shop_id":12345678}'
    assert (
        sign_request(
            app_key="7123456789012345678",
            app_secret=secret,
            method="token.create",
            param_json=param_json,
            timestamp="1700000000",
        )
        == "2187da0b109b8467248e3909a6b12f2fc7cc405a552a951434198e366dde6c4b"
    )


def test_canonical_param_json_sorts_every_level_and_keeps_chinese() -> None:
    obj = {"b": {"d": 1, "c": "中通<&>"}, "a": [{"z": True, "y": None}], "e": {}}
    assert canonical_param_json(obj) == '{"a":[{"y":null,"z":true}],"b":{"c":"中通<&>","d":1},"e":{}}'


def test_request_carries_the_system_parameters_and_the_signed_canonical_body(sandbox: Sandbox) -> None:
    connector = sandbox.connected()
    order = sandbox.order()
    connector.get_order(order.order_id)
    (call,) = sandbox.wire.calls
    assert call.path == "/order/orderDetail"
    assert set(call.query) == {"app_key", "method", "timestamp", "v", "sign", "sign_method", "access_token"}
    assert call.query["app_key"] == sandbox.dy_app.app_key
    assert call.query["method"] == "order.orderDetail"
    assert call.query["timestamp"] == str(int(sandbox.clock.now()))
    assert call.query["v"] == "2"
    assert call.query["sign_method"] == "hmac-sha256"
    assert call.query["access_token"] == connector.session.access_token
    assert call.body == f'{{"shop_order_id":"{order.order_id}"}}'.encode()
    assert call.query["sign"] == sign_request(
        app_key=sandbox.dy_app.app_key,
        app_secret=sandbox.dy_app.app_secret,
        method="order.orderDetail",
        param_json=call.body.decode(),
        timestamp=call.query["timestamp"],
    )
    assert call.headers["content-type"] == "application/json"
    assert call.headers["x-open-no-old-err-code"] == "1"
    assert call.code == 10000
    assert "err_no" not in call.answer  # the header asked for the new envelope only


def test_token_calls_carry_no_access_token(sandbox: Sandbox) -> None:
    sandbox.connected()
    connector = sandbox.connector()
    connector.exchange_code(
        code=sandbox.world.create_oauth_code(sandbox.dy_app.app_key, sandbox.shop_id).code
    )
    (call,) = sandbox.wire.calls
    assert call.path == "/token/create"
    assert "access_token" not in call.query
    assert call.params == {"code": call.params["code"], "grant_type": "authorization_code"}


@pytest.mark.parametrize(
    ("envelope", "error", "sub_code"),
    [
        ({"code": 40003, "sub_code": "isv.signature-invalid"}, PlatformRejected, "isv.signature-invalid"),
        ({"code": 30001, "sub_code": "dop.authorization-no-existed"}, AuthExpired, None),
        ({"code": 30001, "sub_code": "dop.authorization-closed"}, AuthExpired, None),
        (
            {"code": 30001, "sub_code": "isv.app-permissions-insufficient"},
            PlatformRejected,
            "isv.app-permissions-insufficient",
        ),
        ({"code": 60000, "sub_code": "isv.traffic-limited"}, RateLimited, None),
        ({"code": 20000, "sub_code": "dop.service-error"}, TemporarilyUnavailable, None),
        ({"code": 20001, "sub_code": ""}, TemporarilyUnavailable, None),
        ({"code": 50000, "sub_code": ""}, TemporarilyUnavailable, None),
        (
            {"code": 50002, "sub_code": "isv.business-failed:20002"},
            PlatformRejected,
            "isv.business-failed:20002",
        ),
        ({"msg": "no code"}, TemporarilyUnavailable, None),
    ],
)
def test_envelope_codes_map_to_neutral_errors(
    envelope: dict[str, Any], error: type[Exception], sub_code: str | None
) -> None:
    with pytest.raises(error) as raised:
        check_envelope({"msg": "x", "sub_msg": "y", **envelope})
    if sub_code is not None:
        assert raised.value.sub_code == sub_code
        assert raised.value.code == str(envelope["code"])


def test_envelope_success_returns_data_and_token_failures_depend_on_the_call() -> None:
    assert check_envelope({"code": 10000, "msg": "success", "data": {"a": 1}}) == {"a": 1}
    failed = {"code": 50001, "sub_code": "dop.token-generate-failed:token-expired", "sub_msg": "token已过期"}
    with pytest.raises(AuthExpired):
        check_envelope(failed, token_call=True)
    with pytest.raises(PlatformRejected):
        check_envelope(failed)


# --------------------------------------------------------------------------- tokens


def test_oauth_through_the_authorize_page_then_code_exchange(sandbox: Sandbox) -> None:
    connector = sandbox.connector(service_id=sandbox.dy_app.service_id)
    url = connector.authorize_url(redirect_uri="https://erp.example/douyin/callback", state="st-42")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{BASE}/authorize"
    assert parse_qs(parts.query) == {
        "service_id": [sandbox.dy_app.service_id],
        "state": ["st-42"],
        "redirect_uri": ["https://erp.example/douyin/callback"],
    }
    browser = httpx.Client(transport=httpx.WSGITransport(app=sandbox.app), base_url=BASE)
    page = browser.get(url)
    assert page.status_code == 200 and "同意授权" in page.text
    form = {
        "service_id": sandbox.dy_app.service_id,
        "state": "st-42",
        "redirect_uri": "https://erp.example/douyin/callback",
        "shop_id": sandbox.shop_id,
    }
    agreed = browser.post("/authorize", data=form)
    assert agreed.status_code == 302
    callback = urlsplit(agreed.headers["location"])
    assert callback.netloc == "erp.example"
    returned = parse_qs(callback.query)
    assert returned["state"] == ["st-42"]

    grant = connector.exchange_code(
        code=returned["code"][0], redirect_uri="https://erp.example/douyin/callback"
    )
    assert grant.platform_shop_id == sandbox.shop_id
    assert grant.shop_name == sandbox.world.get_shop(sandbox.shop_id).name
    assert grant.access_expires_at == sandbox.now() + timedelta(days=7)
    assert grant.access_expires_at.tzinfo is UTC
    assert grant.refresh_expires_at == sandbox.now() + timedelta(days=14)
    token = sandbox.world.get_token(grant.access_token)
    assert (
        token is not None and token.refresh_token == grant.refresh_token and token.shop_id == sandbox.shop_id
    )

    connector.session = ShopSession(platform_shop_id=grant.platform_shop_id)
    connector.apply_grant(grant)
    order = sandbox.order()
    assert connector.get_order(order.order_id).platform_order_id == order.order_id


def test_authorize_url_without_service_id_names_the_app(sandbox: Sandbox) -> None:
    connector = sandbox.connector(authorize_base="https://fuwu.jinritemai.com/authorize")
    url = connector.authorize_url(redirect_uri="", state="s")
    assert url == f"https://fuwu.jinritemai.com/authorize?app_key={sandbox.dy_app.app_key}&state=s"


def test_exchanging_a_bad_code_is_rejected(sandbox: Sandbox) -> None:
    with pytest.raises(PlatformRejected) as raised:
        sandbox.connector().exchange_code(code="not-a-code")
    assert raised.value.sub_code == "dop.token-generate-failed:code-invalid"


def test_self_use_app_gets_a_token_by_shop_id_and_falls_back_to_it(sandbox: Sandbox) -> None:
    own = sandbox.world.create_app(
        App(
            app_key="7000000000000000042",
            platform="douyin",
            name="自用应用",
            app_secret="self-secret",
            app_type="self",
        )
    )
    sandbox.world.authorize(own.app_key, sandbox.shop_id)
    connector = sandbox.connector(app=own, self_use=True)
    grant = connector.self_use_token(sandbox.shop_id)
    (call,) = sandbox.wire.calls
    assert call.params == {"code": "", "grant_type": "authorization_self", "shop_id": int(sandbox.shop_id)}
    assert grant.platform_shop_id == sandbox.shop_id and grant.access_token

    # The refresh token is gone: a self-use app mints a new token instead of giving up.
    connector.session = ShopSession(
        platform_shop_id=sandbox.shop_id,
        access_token=grant.access_token,
        access_expires_at=grant.access_expires_at,
    )
    fresh = connector.refresh_tokens()
    assert fresh.access_token and sandbox.wire.paths[-1] == "/token/create"

    other_shop = sandbox.world.shops("douyin")[1].shop_id
    with pytest.raises(AuthExpired):
        connector.self_use_token(other_shop)


def test_proactive_refresh_near_expiry(sandbox: Sandbox) -> None:
    connector = sandbox.connected()
    old = connector.session.access_token
    order = sandbox.order()

    sandbox.clock.advance(6 * DAY)  # a day left: Douyin would hand back the same pair, so no refresh yet
    connector.get_order(order.order_id)
    assert sandbox.wire.paths == ["/order/orderDetail"]

    sandbox.clock.advance(DAY - 30 * 60)  # 30 minutes left
    connector.get_order(order.order_id)
    assert sandbox.wire.paths[1:] == ["/token/refresh", "/order/orderDetail"]
    assert sandbox.wire.calls[-1].code == 10000
    assert connector.session.access_token != old
    assert sandbox.wire.calls[-1].query["access_token"] == connector.session.access_token
    (grant,) = sandbox.grants
    assert grant.access_token == connector.session.access_token
    assert grant.access_expires_at == sandbox.now() + timedelta(days=7)


def test_failed_proactive_refresh_keeps_using_the_valid_token(sandbox: Sandbox) -> None:
    connector = sandbox.connected()
    old = connector.session.access_token
    order = sandbox.order()
    sandbox.clock.advance(7 * DAY - 20 * 60)
    sandbox.wire.failures["/token/refresh"] = ["503"] * 4
    assert connector.get_order(order.order_id).platform_order_id == order.order_id
    assert sandbox.wire.paths == ["/token/refresh"] * 4 + ["/order/orderDetail"]
    assert connector.session.access_token == old and not sandbox.grants


def test_reactive_refresh_after_access_token_expired(sandbox: Sandbox) -> None:
    connector = sandbox.connected()
    connector.session.access_expires_at = None  # the connector does not know the expiry
    order = sandbox.order()
    sandbox.clock.advance(7 * DAY + 60)
    assert connector.get_order(order.order_id).platform_order_id == order.order_id
    assert sandbox.wire.paths == ["/order/orderDetail", "/token/refresh", "/order/orderDetail"]
    first, _, retried = sandbox.wire.calls
    assert (first.code, first.answer["sub_code"]) == (40003, "isv.access-token-expired")
    assert retried.code == 10000 and retried.query["access_token"] != first.query["access_token"]
    assert len(sandbox.grants) == 1


def test_refresh_that_cannot_succeed_means_auth_expired(sandbox: Sandbox) -> None:
    connector = sandbox.connected()
    connector.session.access_expires_at = None
    order = sandbox.order()
    sandbox.clock.advance(15 * DAY)  # the refresh token (14 days) is gone too
    with pytest.raises(AuthExpired):
        connector.get_order(order.order_id)
    assert sandbox.wire.paths == ["/order/orderDetail", "/token/refresh"]
    assert sandbox.wire.calls[-1].answer["sub_code"] == "dop.token-generate-failed:token-expired"


def test_revoked_authorisation_is_auth_expired_without_refresh(sandbox: Sandbox) -> None:
    connector = sandbox.connected()
    order = sandbox.order()
    sandbox.world.revoke_authorization(sandbox.dy_app.app_key, sandbox.shop_id)
    with pytest.raises(AuthExpired):
        connector.get_order(order.order_id)
    assert sandbox.wire.paths == ["/order/orderDetail"]


def test_missing_token_is_auth_expired_before_any_call(sandbox: Sandbox) -> None:
    with pytest.raises(AuthExpired):
        sandbox.connector(session=ShopSession(platform_shop_id=sandbox.shop_id)).list_carriers()
    assert sandbox.wire.calls == []


# --------------------------------------------------------------------------- retries


def test_rate_limit_storm_gives_up_after_bounded_retries(sandbox: Sandbox) -> None:
    connector = sandbox.connected()
    order = sandbox.order()
    sandbox.app.faults.set("douyin", "/order/orderDetail", rate_limit_rate=1.0)
    with pytest.raises(RateLimited):
        connector.get_order(order.order_id)
    calls = sandbox.wire.to("/order/orderDetail")
    assert len(calls) == connector.retry.rate_limit_attempts == 5
    assert {c.code for c in calls} == {60000}
    assert sandbox.sleeps == [1.0] * 4


def test_qps_limit_is_waited_out(tmp_path: Path) -> None:
    monotonic = [1000.0]  # the limiter's time moves only while the connector waits
    slept: list[float] = []

    def wait(seconds: float) -> None:
        slept.append(seconds)
        monotonic[0] += seconds

    for sandbox in _sandbox(tmp_path / "qps.db", limiter=RateLimiter(monotonic=lambda: monotonic[0])):
        connector = sandbox.connected()
        connector.retry.sleep = wait
        sandbox.app.faults.set("douyin", "/order/logisticsCompanyList", qps=1, burst=1)
        assert connector.list_carriers() and connector.list_carriers()
        assert [c.code for c in sandbox.wire.calls] == [10000, 60000, 10000]
        assert slept == [1.0]


def test_5xx_on_a_read_is_retried(sandbox: Sandbox) -> None:
    connector = sandbox.connected()
    order = sandbox.order()
    sandbox.wire.failures["/order/orderDetail"] = ["503", "503"]
    assert connector.get_order(order.order_id).platform_order_id == order.order_id
    assert [c.status for c in sandbox.wire.calls] == [503, 503, 200]
    assert len(sandbox.sleeps) == 2
    assert all(0 <= s <= connector.retry.max_delay for s in sandbox.sleeps)


def test_persistent_5xx_and_malformed_bodies_end_as_temporarily_unavailable(sandbox: Sandbox) -> None:
    connector = sandbox.connected()
    order = sandbox.order()
    sandbox.app.faults.set("douyin", "/order/orderDetail", http_5xx_rate=1.0)
    with pytest.raises(TemporarilyUnavailable):
        connector.get_order(order.order_id)
    assert len(sandbox.wire.calls) == connector.retry.attempts
    assert {c.status for c in sandbox.wire.calls} <= {502, 503, 504}

    sandbox.app.faults.clear("douyin")
    sandbox.app.faults.set("douyin", "/order/logisticsCompanyList", malformed_rate=1.0)
    sandbox.wire.calls.clear()
    with pytest.raises(TemporarilyUnavailable):
        connector.list_carriers()
    assert len(sandbox.wire.calls) == connector.retry.attempts


def test_5xx_on_a_write_without_idempotency_key_is_not_resent(sandbox: Sandbox) -> None:
    connector = sandbox.connected()
    order = sandbox.order()
    sandbox.wire.failures["/order/logisticsAdd"] = ["503"]
    with pytest.raises(TemporarilyUnavailable):
        connector.ship(
            platform_order_id=order.order_id,
            parcels=[ShipmentParcel("zhongtong", "73100000000001")],
            request_id="r1",
        )
    assert sandbox.wire.paths == ["/order/logisticsAdd"]
    assert sandbox.world.get_order(order.order_id).status == "paid"
    assert sandbox.sleeps == []

    # Lost answer: the platform shipped, the connector still does not re-send.
    sandbox.wire.failures["/order/logisticsAdd"] = ["lose"]
    with pytest.raises(TemporarilyUnavailable):
        connector.ship(
            platform_order_id=order.order_id,
            parcels=[ShipmentParcel("zhongtong", "73100000000001")],
            request_id="r2",
        )
    assert sandbox.wire.paths == ["/order/logisticsAdd"] * 2
    assert len(sandbox.world.get_order(order.order_id).packages) == 1


# --------------------------------------------------------------------------- orders


def test_order_maps_to_neutral_fields(sandbox: Sandbox) -> None:
    connector = sandbox.connected()
    skus = sandbox.skus()
    order = sandbox.world.create_order(
        shop_id=sandbox.shop_id,
        buyer_id=3,
        items=[
            OrderItemSpec(skus[0].sku_id, 2, discount_fen=500),
            OrderItemSpec(skus[1].sku_id, 1, gift_of=0),
        ],
        post_fen=800,
        buyer_words="请尽快发货",
        pay=True,
    )
    sandbox.world.set_seller_remark(order.order_id, "优先", 2)
    order = sandbox.world.get_order(order.order_id)
    got = connector.get_order(order.order_id)

    assert got.platform is Platform.DOUYIN
    assert (got.platform_shop_id, got.platform_order_id) == (sandbox.shop_id, order.order_id)
    assert (got.status, got.platform_status) == (OrderStatus.PAID, "2")
    assert got.created_at == datetime.fromtimestamp(order.create_time, UTC)
    assert got.updated_at == datetime.fromtimestamp(order.update_time, UTC)
    assert got.paid_at == datetime.fromtimestamp(order.pay_time, UTC)
    assert got.ship_by == datetime.fromtimestamp(order.promise_ship_time, UTC)
    assert got.shipped_at is None and got.finished_at is None
    assert got.goods_fen == skus[0].price_fen * 2 + skus[1].price_fen
    assert got.discount_fen == 500 + skus[1].price_fen  # the gift is discounted in full
    assert got.freight_fen == 800
    assert got.paid_fen == got.goods_fen - got.discount_fen + got.freight_fen == order.pay_fen
    assert (got.buyer_remark, got.seller_remark, got.ship_blocked_reason) == ("请尽快发货", "优先", "")
    main, gift = got.lines
    assert main.platform_line_id == order.lines[0].line_id and gift.platform_line_id == order.lines[1].line_id
    assert (main.platform_product_id, main.platform_sku_id) == (skus[0].product_id, skus[0].sku_id)
    assert (main.merchant_code, main.quantity, main.unit_price_fen) == (skus[0].code, 2, skus[0].price_fen)
    assert main.paid_fen == order.lines[0].pay_fen and not main.is_gift
    assert main.spec == ";".join(f"{n}:{v}" for n, v in skus[0].spec)
    assert gift.is_gift and gift.paid_fen == 0
    assert got.raw["order_id"] == order.order_id and got.raw["sku_order_list"][0]["code"] == skus[0].code

    r, world_r = got.receiver, order.receiver
    for field_, plain in ((r.name, world_r.name), (r.phone, world_r.phone), (r.address, world_r.detail)):
        assert plain not in json.dumps(got.raw, ensure_ascii=False)
        assert sandbox.world.vault.decrypt(field_.cipher, CIPHER)[2] == plain
        assert field_.index == ""  # the order carries no search index (issue 11 d15)
        assert field_.mask and field_.mask != plain
    assert r.name.mask == world_r.name[0] + "*" * (len(world_r.name) - 1)
    assert (r.province, r.city, r.district, r.town) == (
        world_r.province,
        world_r.city,
        world_r.district,
        world_r.street,
    )
    assert got.to_json()["receiver"]["phone"]["cipher"] == r.phone.cipher


def test_order_status_follows_the_life_cycle(sandbox: Sandbox) -> None:
    connector = sandbox.connected()
    world = sandbox.world
    unpaid = sandbox.order(pay=False)
    assert connector.get_order(unpaid.order_id).status == OrderStatus.UNPAID
    world.cancel_order(unpaid.order_id, reason="不想要了")
    assert connector.get_order(unpaid.order_id).status == OrderStatus.CANCELLED

    order = sandbox.order([(0, 2), (1, 1)])
    first, second = order.lines
    world.ship_order(order.order_id, [ShipmentSpec("ZTO", "73100000000007", [(first.line_id, 1)])])
    partial = connector.get_order(order.order_id)
    assert partial.status == OrderStatus.PARTIALLY_SHIPPED
    (package,) = partial.packages
    assert (package.tracking_no, package.carrier_code, package.lines) == (
        "73100000000007",
        "zhongtong",
        ((first.line_id, 1),),
    )
    assert package.platform_package_id == world.get_order(order.order_id).packages[0].package_id

    world.ship_order(order.order_id, [ShipmentSpec("YTO", "YT0000000000008")])
    shipped = connector.get_order(order.order_id)
    assert shipped.status == OrderStatus.SHIPPED and len(shipped.packages) == 2
    assert shipped.shipped_at is not None
    world.receive_order(order.order_id)
    done = connector.get_order(order.order_id)
    assert done.status == OrderStatus.COMPLETED and done.finished_at == sandbox.now()


def test_risk_review_status_blocks_shipping(sandbox: Sandbox) -> None:
    connector = sandbox.connected()
    raw = connector.get_order(sandbox.order().order_id).raw
    held = connector.order_from_payload({**raw, "order_status": 105, "main_status": 105})
    assert held.status == OrderStatus.PAID
    assert "risk" in held.ship_blocked_reason
    assert connector.order_from_payload({**raw, "order_status": 101}).status == OrderStatus.PARTIALLY_SHIPPED


def _window_orders(world: World, shop_id: str, lower: int, upper: int) -> set[str]:
    return {o.order_id for o in world.orders(shop_id) if lower <= o.update_time <= upper}


def test_small_window_yields_each_order_once(sandbox: Sandbox) -> None:
    connector = sandbox.connected()
    start = sandbox.now()
    placed = []
    for i in range(5):
        placed.append(sandbox.order([(i, 1)]).order_id)
        sandbox.clock.advance(10)
    got = [o.platform_order_id for o in connector.iter_orders(updated_from=start, updated_to=sandbox.now())]
    assert sorted(got) == sorted(placed)
    (call,) = sandbox.wire.calls
    assert call.params == {
        "update_time_start": int(start.timestamp()),
        "update_time_end": int(sandbox.clock.now()),
        "order_by": "update_time",
        "order_asc": True,
        "size": 100,
        "page": 0,
    }


def test_long_window_is_split_into_days(sandbox: Sandbox) -> None:
    connector = sandbox.connected()
    start = sandbox.now()
    placed = []
    for day in range(3):
        placed.append(sandbox.order([(day, 1)]).order_id)
        sandbox.clock.advance(DAY)
    got = {o.platform_order_id for o in connector.iter_orders(updated_from=start, updated_to=sandbox.now())}
    assert got == set(placed)
    windows = [(c.params["update_time_start"], c.params["update_time_end"]) for c in sandbox.wire.calls]
    assert all(0 < end - begin <= DAY for begin, end in windows)
    assert windows[0][0] == int(start.timestamp()) and windows[-1][1] == int(sandbox.clock.now())


def _busy_window(sandbox: Sandbox) -> tuple[int, int]:
    """230 paid orders: 40 in separate seconds, 130 in one second, 60 more in separate seconds."""
    skus = sandbox.skus()
    start = int(sandbox.clock.now())
    for i in range(230):
        sandbox.world.create_order(
            shop_id=sandbox.shop_id,
            buyer_id=1 + i % 40,
            items=[OrderItemSpec(skus[i % len(skus)].sku_id)],
            pay=True,
        )
        if i < 40 or i >= 170:
            sandbox.clock.advance(3)
        elif i == 169:
            sandbox.clock.advance(2)
    end = int(sandbox.clock.now())
    sandbox.clock.advance(3600)  # the window lies in the past
    return start, end


def _disturb_pages(sandbox: Sandbox, pages: int = 3) -> None:
    """After each of the first ``pages`` order-list answers, change the first three orders on
    that page (they leave the window) and let the buyer simulator run a few events."""
    simulator = BuyerSimulator(sandbox.world, seed=5, shops=[sandbox.shop_id])
    done = [0]

    def after(call: Call) -> None:
        if call.path != "/order/searchList" or done[0] >= pages or call.code != 10000:
            return
        done[0] += 1
        for o in call.answer["data"]["shop_order_list"][:3]:
            sandbox.world.set_seller_remark(o["order_id"], "加急", 1)
        simulator.step(3)

    sandbox.wire.after = after


def _naive_page_walk(sandbox: Sandbox, connector: DouyinConnector, start: int, end: int) -> set[str]:
    """What plain page-number paging sees (signed with the sandbox's own helper)."""
    http = httpx.Client(transport=httpx.WSGITransport(app=sandbox.wire), base_url=BASE)
    seen: set[str] = set()
    page = 0
    while True:
        params = {
            "update_time_start": start,
            "update_time_end": end,
            "order_by": "update_time",
            "order_asc": True,
            "size": 100,
            "page": page,
        }
        query, body = signed_query(
            sandbox.dy_app,
            "/order/searchList",
            params,
            timestamp=int(sandbox.clock.now()),
            access_token=connector.session.access_token,
        )
        data = http.post("/order/searchList", params=query, content=body.encode()).json()["data"]
        seen |= {o["order_id"] for o in data["shop_order_list"]}
        page += 1
        if page * 100 >= data["total"]:
            return seen


def test_window_walk_never_skips_while_orders_change_between_pages(tmp_path: Path) -> None:
    # The hazard: plain paging of the same world under the same changes misses orders.
    for naive in _sandbox(tmp_path / "naive.db"):
        connector = naive.connected()
        start, end = _busy_window(naive)
        _disturb_pages(naive)
        seen = _naive_page_walk(naive, connector, start, end)
        assert _window_orders(naive.world, naive.shop_id, start, end) - seen

    for sandbox in _sandbox(tmp_path / "walk.db"):
        connector = sandbox.connected()
        start, end = _busy_window(sandbox)
        before = _window_orders(sandbox.world, sandbox.shop_id, start, end)
        assert len(before) == 230
        _disturb_pages(sandbox)
        lower, upper = datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)
        walked = [o.platform_order_id for o in connector.iter_orders(updated_from=lower, updated_to=upper)]
        after = _window_orders(sandbox.world, sandbox.shop_id, start, end)
        assert len(after) < len(before)  # orders really left the window during the walk
        assert after <= set(walked) <= before
        assert len(walked) == len(set(walked))  # versions already yielded are not yielded again

        calls = sandbox.wire.to("/order/searchList")
        one_second = [c.params for c in calls if c.params["update_time_start"] == c.params["update_time_end"]]
        assert [p["page"] for p in one_second] == [0, 1, 0, 1]  # the busy second, walked again after it moved
        assert all((c.params["page"] + 1) * c.params["size"] <= 10_000 for c in calls)

        # The orders that moved on are in the next window: nothing is lost across windows.
        sandbox.wire.after = None
        moved_on = {
            o.platform_order_id for o in connector.iter_orders(updated_from=upper, updated_to=sandbox.now())
        }
        assert before - after <= moved_on
        everything = {o.order_id for o in sandbox.world.orders(sandbox.shop_id) if o.update_time >= start}
        assert everything <= set(walked) | moved_on


# --------------------------------------------------------------------------- shipping


def test_whole_order_shipment(sandbox: Sandbox) -> None:
    connector = sandbox.connected()
    order = sandbox.order([(0, 2), (1, 1)])
    connector.ship(
        platform_order_id=order.order_id,
        parcels=[ShipmentParcel("zhongtong", "73100000000011")],
        request_id="ship-1",
    )
    (call,) = sandbox.wire.calls
    assert call.path == "/order/logisticsAdd" and call.code == 10000
    assert call.params == {
        "order_id": order.order_id,
        "company_code": "zhongtong",
        "logistics_code": "73100000000011",
    }
    world_order = sandbox.world.get_order(order.order_id)
    assert world_order.status == "shipped"
    assert [(p.carrier, p.tracking_no) for p in world_order.packages] == [("ZTO", "73100000000011")]
    assert connector.get_order(order.order_id).status == OrderStatus.SHIPPED


def test_multi_package_shipment_is_idempotent_by_request_id(sandbox: Sandbox) -> None:
    connector = sandbox.connected()
    order = sandbox.order([(0, 2), (1, 1)])
    first, second = (line.line_id for line in order.lines)
    parcels = [
        ShipmentParcel("zhongtong", "73100000000021", ((first, 1),)),
        ShipmentParcel("yuantong", "YT0000000000022", ((second, 1),)),
    ]
    sandbox.wire.failures["/order/logisticsAddMultiPack"] = ["lose"]  # shipped, answer lost: retried safely
    connector.ship(platform_order_id=order.order_id, parcels=parcels, request_id="pack-1")
    calls = sandbox.wire.to("/order/logisticsAddMultiPack")
    assert len(calls) == 2 and calls[0].params == calls[1].params
    assert calls[0].params == {
        "order_id": order.order_id,
        "request_id": "pack-1",
        "pack_list": [
            {
                "company_code": "zhongtong",
                "logistics_code": "73100000000021",
                "shipped_order_info": [{"shipped_num": 1, "shipped_order_id": first}],
            },
            {
                "company_code": "yuantong",
                "logistics_code": "YT0000000000022",
                "shipped_order_info": [{"shipped_num": 1, "shipped_order_id": second}],
            },
        ],
    }
    connector.ship(platform_order_id=order.order_id, parcels=parcels, request_id="pack-1")  # a plain repeat
    world_order = sandbox.world.get_order(order.order_id)
    assert len(world_order.packages) == 2
    assert connector.get_order(order.order_id).status == OrderStatus.PARTIALLY_SHIPPED

    connector.ship(
        platform_order_id=order.order_id,
        parcels=[ShipmentParcel("zhongtong", "73100000000023", ((first, 1),))],
        request_id="pack-2",
    )
    shipped = connector.get_order(order.order_id)
    assert shipped.status == OrderStatus.SHIPPED
    assert sorted(p.tracking_no for p in shipped.packages) == [
        "73100000000021",
        "73100000000023",
        "YT0000000000022",
    ]


def test_shipment_refused_by_the_platform(sandbox: Sandbox) -> None:
    connector = sandbox.connected()
    order = sandbox.order()
    sandbox.world.apply_aftersale(order.order_id, order.lines[0].line_id, kind=AfterSaleType.REFUND_UNSHIPPED)
    with pytest.raises(PlatformRejected) as raised:
        connector.ship(
            platform_order_id=order.order_id,
            parcels=[ShipmentParcel("zhongtong", "73100000000031")],
            request_id="x",
        )
    assert raised.value.code == "50002" and raised.value.sub_code.startswith("isv.business-failed")
    with pytest.raises(ValueError):
        connector.ship(
            platform_order_id=order.order_id,
            parcels=[ShipmentParcel("zhongtong", "1"), ShipmentParcel("zhongtong", "2")],
            request_id="y",
        )


def test_carriers(sandbox: Sandbox) -> None:
    carriers = sandbox.connected().list_carriers()
    assert ("zhongtong", "中通快递") in {(c.code, c.name) for c in carriers}
    assert len({c.code for c in carriers}) == len(carriers) == 10


# --------------------------------------------------------------------------- listings and stock


def test_listings_cover_every_sku_of_the_shop(sandbox: Sandbox) -> None:
    listings = list(sandbox.connected().iter_listings())
    world_skus = sandbox.skus()
    assert {
        (x.platform_product_id, x.platform_sku_id, x.merchant_code, x.stock, x.price_fen) for x in listings
    } == {(s.product_id, s.sku_id, s.code, s.stock, s.price_fen) for s in world_skus}
    assert len(listings) == len(world_skus)
    product = sandbox.world.get_product(world_skus[0].product_id)
    first = next(x for x in listings if x.platform_sku_id == world_skus[0].sku_id)
    assert first.title == product.title and first.spec == ";".join(v for _, v in world_skus[0].spec)


def test_stock_set_lands_exactly_even_when_an_answer_is_lost(sandbox: Sandbox) -> None:
    connector = sandbox.connected()
    listing = next(iter(connector.iter_listings()))
    sandbox.wire.calls.clear()
    connector.set_stock(listing=listing, quantity=37, current=listing.stock, idempotency_key="k-1")
    assert sandbox.world.get_sku(listing.platform_sku_id).stock == 37
    (call,) = sandbox.wire.calls
    assert call.params == {
        "sku_id": int(listing.platform_sku_id),
        "product_id": int(listing.platform_product_id),
        "stock_num": 37,
        "incremental": False,
    }

    sandbox.wire.failures["/sku/syncStock"] = ["lose"]
    connector.set_stock(listing=listing, quantity=0, current=37, idempotency_key="k-2")
    assert len(sandbox.wire.to("/sku/syncStock")) == 3
    assert sandbox.world.get_sku(listing.platform_sku_id).stock == 0


# --------------------------------------------------------------------------- after-sales, settlements


def test_after_sales_in_window(sandbox: Sandbox) -> None:
    connector = sandbox.connected()
    world = sandbox.world
    start = sandbox.now()
    refund_order = sandbox.order([(0, 2)])
    refund = world.apply_aftersale(
        refund_order.order_id,
        refund_order.lines[0].line_id,
        kind=AfterSaleType.REFUND_UNSHIPPED,
        reason="拍错了",
    )
    sandbox.clock.advance(60)
    return_order = sandbox.order([(1, 1)])
    world.ship_order(return_order.order_id, [ShipmentSpec("ZTO", "73100000000041")])
    ret = world.apply_aftersale(
        return_order.order_id,
        return_order.lines[0].line_id,
        kind=AfterSaleType.RETURN_REFUND,
        reason="尺码不合适",
    )
    world.agree_aftersale(ret.aftersale_id)
    sandbox.clock.advance(60)

    got = {
        a.platform_after_sale_id: a
        for a in connector.iter_after_sales(updated_from=start, updated_to=sandbox.now())
    }
    assert set(got) == {refund.aftersale_id, ret.aftersale_id}
    a = got[refund.aftersale_id]
    assert (a.platform_order_id, a.platform_line_id) == (refund_order.order_id, refund_order.lines[0].line_id)
    assert (a.type, a.status, a.platform_status) == ("refund_only", AfterSaleStatus.WAITING_MERCHANT, "6")
    assert a.refund_fen == refund.refund_fen + refund.refund_post_fen and a.quantity == 2
    assert a.reason == "拍错了" and a.created_at == datetime.fromtimestamp(refund.apply_time, UTC)
    b = got[ret.aftersale_id]
    assert (b.type, b.status) == ("return_refund", AfterSaleStatus.WAITING_BUYER_RETURN)
    assert b.updated_at == datetime.fromtimestamp(world.get_aftersale(ret.aftersale_id).update_time, UTC)
    (call,) = sandbox.wire.to("/afterSale/List")
    assert call.params["order_by"] == ["update_time asc"] and call.params["page"] == 0


def test_settlements_page_with_the_platform_cursor(sandbox: Sandbox) -> None:
    connector = sandbox.connected()
    world = sandbox.world
    start = sandbox.now()
    for i in range(105):
        order = sandbox.order([(i % 20, 1)])
        world.ship_order(order.order_id, [ShipmentSpec("ZTO", f"731{i:011d}")])
        world.receive_order(order.order_id)
        world.complete_order(order.order_id)
        sandbox.clock.advance(30)
    lines = list(connector.iter_settlements(start=start, end=sandbox.now()))
    assert len(lines) == 105 == len({x.platform_line_id for x in lines})
    rows = {r[0]: json.loads(r[1]) for r in world.read("SELECT line_id, doc FROM settlements")}
    for line in lines:
        row = rows[line.raw["order_id"]]
        assert (line.amount_fen, line.service_fee_fen, line.commission_fen) == (
            row["settle_fen"],
            row["service_fee_fen"],
            0,
        )
        assert line.platform_order_id == row["order_id"] and line.kind == "settle"
        assert line.settled_at == datetime.fromtimestamp(row["settle_time"], UTC)
    first, second = sandbox.wire.to("/order/getSettleBillDetailV3")
    assert (
        first.params["start_time"]
        == bill_time(start)
        == (start + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S")
    )
    assert "start_index" not in first.params and first.answer["data"]["is_end"] == 0
    assert second.params["start_index"] == first.answer["data"]["next_start_index"]
    assert second.params["start_time"] == first.answer["data"]["next_start_time"]


# --------------------------------------------------------------------------- waybills and buyer data


def test_waybills_are_taken_with_ciphertext_receivers(sandbox: Sandbox) -> None:
    connector = sandbox.connected()
    orders = [sandbox.order([(0, 1)]), sandbox.order([(1, 2)])]
    sender = ShipFrom(**SENDER)
    waybills = [
        connector.take_waybill(WaybillRequest(key=f"k{n}", carrier_code="zhongtong", platform_order_ids=(o.order_id,), sender=sender))
        for n, o in enumerate(orders)
    ]  # fmt: skip
    assert [w.platform_order_ids for w in waybills] == [(o.order_id,) for o in orders]
    creates = sandbox.wire.to("/logistics/newCreateOrder")
    for order, waybill, create in zip(orders, waybills, creates, strict=True):
        (info,) = create.params["order_infos"]
        stored = sandbox.world.get_waybill(waybill.tracking_no)
        assert stored.order_id == order.order_id and stored.carrier == "ZTO"
        assert (waybill.carrier_code, waybill.carrier, waybill.sort_code) == (
            "zhongtong",
            "zto",
            stored.sort_code,
        )
        receiver = info["receiver_info"]
        assert sandbox.world.vault.decrypt(receiver["contact"]["mobile"], CIPHER)[2] == order.receiver.phone
        assert (
            sandbox.world.vault.decrypt(receiver["address"]["detail_address"], CIPHER)[2]
            == order.receiver.detail
        )
        assert receiver["address"]["province_name"] == order.receiver.province
        for plain in (order.receiver.name, order.receiver.phone, order.receiver.detail):
            assert plain.encode() not in create.body
        printed = waybill.print_info
        shop, content = sandbox.world.vault.unseal(printed.print_data)
        assert (
            shop == sandbox.shop_id and waybill.tracking_no in content and order.receiver.phone not in content
        )
        assert printed.sign == sandbox.world.vault.mac(printed.print_data)
        assert create.params["sender_info"]["contact"] == {"name": "鲸选仓库", "mobile": "13800005678"}
        assert "鲸选仓库".encode() in create.body  # not \\u-escaped
    with pytest.raises(PlatformRejected) as raised:  # no e-waybill account with Yunda
        connector.take_waybill(WaybillRequest(key="k9", carrier_code="yunda", platform_order_ids=(orders[0].order_id,), sender=sender))  # fmt: skip
    assert raised.value.code == "2001"
    assert len(sandbox.wire.to("/logistics/newCreateOrder")) == 3


def test_decrypt_one_field_for_one_person(sandbox: Sandbox) -> None:
    connector = sandbox.connected()
    order = sandbox.order()
    receiver = connector.get_order(order.order_id).receiver
    assert (
        connector.decrypt(platform_order_id=order.order_id, cipher=receiver.phone.cipher, account_id="user-7")
        == order.receiver.phone
    )
    call = sandbox.wire.calls[-1]
    assert call.params == {
        "account_id": "user-7",
        "cipher_infos": [{"auth_id": order.order_id, "cipher_text": receiver.phone.cipher}],
    }
    assert (
        connector.decrypt(
            platform_order_id=order.order_id, cipher=receiver.address.cipher, account_id="user-7"
        )
        == order.receiver.detail
    )

    tampered = (
        receiver.name.cipher[:-6]
        + ("A" if receiver.name.cipher[-6] != "A" else "B")
        + receiver.name.cipher[-5:]
    )
    with pytest.raises(PlatformRejected):
        connector.decrypt(platform_order_id=order.order_id, cipher=tampered, account_id="user-7")
    unpaid = sandbox.order(pay=False)
    unpaid_cipher = connector.get_order(unpaid.order_id).receiver.phone.cipher
    with pytest.raises(PlatformRejected) as raised:
        connector.decrypt(platform_order_id=unpaid.order_id, cipher=unpaid_cipher, account_id="user-7")
    assert raised.value.code == "300003"


# --------------------------------------------------------------------------- pushes


def _deliver_pushes(sandbox: Sandbox) -> tuple[list[PushMessage], list[httpx.Request]]:
    codec = DouyinPushCodec()
    credentials = AppCredentials(sandbox.dy_app.app_key, sandbox.dy_app.app_secret)
    messages: list[PushMessage] = []
    requests: list[httpx.Request] = []

    def receive(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        headers = dict(request.headers)
        assert codec.app_key_of(headers=headers, query={}, body=request.content) == credentials.app_key
        messages.extend(
            codec.decode(headers=headers, query={}, body=request.content, credentials=credentials)
        )
        reply = codec.ack()
        return httpx.Response(reply.status, headers={"Content-Type": reply.content_type}, text=reply.body)

    dispatcher = PushDispatcher(sandbox.world, client=httpx.Client(transport=httpx.MockTransport(receive)))
    while dispatcher.deliver_due():
        pass
    dispatcher.stop()
    return messages, requests


def test_push_round_trip_with_the_sandbox_encoder(sandbox: Sandbox) -> None:
    sandbox.world.update_app(sandbox.dy_app.app_key, webhook_url="https://erp.example/hooks/douyin")
    sandbox.connected()  # authorises the shop, so its events are pushed to the app
    order = sandbox.order()
    after_sale = sandbox.world.apply_aftersale(
        order.order_id, order.lines[0].line_id, kind=AfterSaleType.REFUND_UNSHIPPED
    )
    messages, requests = _deliver_pushes(sandbox)

    assert [(m.topic, m.kind, m.object_id) for m in messages] == [
        ("100", "order", order.order_id),
        ("101", "order", order.order_id),
        ("200", "after_sale", after_sale.aftersale_id),
    ]
    assert {m.platform_shop_id for m in messages} == {sandbox.shop_id}
    assert all(m.message_id for m in messages) and len({m.message_id for m in messages}) == 3
    assert (
        str(messages[1].payload["p_id"]) == order.order_id
        and messages[1].payload["pay_amount"] == order.pay_fen
    )
    assert {row["status"] for row in outbox_rows(sandbox.world, platform="douyin")} == {"delivered"}
    assert len(requests) == 3


def test_push_signature_and_shape_are_enforced(sandbox: Sandbox) -> None:
    sandbox.world.update_app(sandbox.dy_app.app_key, webhook_url="https://erp.example/hooks/douyin")
    sandbox.connected()
    sandbox.order(pay=False)
    _, (request,) = _deliver_pushes(sandbox)
    codec = DouyinPushCodec()
    credentials = AppCredentials(sandbox.dy_app.app_key, sandbox.dy_app.app_secret)
    body, headers = request.content, dict(request.headers)
    assert len(codec.decode(headers=headers, query={}, body=body, credentials=credentials)) == 1
    assert (
        len(
            codec.decode(
                headers={k.upper(): v for k, v in headers.items()},
                query={},
                body=body,
                credentials=credentials,
            )
        )
        == 1
    )

    index = body.index(b'"tag":"100"') + len(b'"tag":"10')
    changed_body = body[:index] + b"1" + body[index + 1 :]
    sign = headers["event-sign"]
    changed_sign = sign[:-1] + ("0" if sign[-1] != "0" else "1")
    for bad_headers, bad_body in (
        (headers, changed_body),
        ({**headers, "event-sign": changed_sign}, body),
        ({k: v for k, v in headers.items() if k != "event-sign"}, body),
        ({**headers, "app-id": "7999999999999999999"}, body),
    ):
        with pytest.raises(BadPushMessage):
            codec.decode(headers=bad_headers, query={}, body=bad_body, credentials=credentials)

    def signed(raw: bytes) -> dict[str, str]:
        digest = hashlib.md5(credentials.app_key.encode() + raw + credentials.app_secret.encode()).hexdigest()  # noqa: S324
        return {"app-id": credentials.app_key, "event-sign": digest}

    for malformed in (
        b"{not json",
        b'{"tag":"100"}',
        b'[{"tag":"100","data":"{}"}]',
        b'[{"tag":"100","msg_id":"1","data":"[1]"}]',
    ):
        with pytest.raises(BadPushMessage):
            codec.decode(headers=signed(malformed), query={}, body=malformed, credentials=credentials)
    (product,) = codec.decode(
        headers=signed(b'[{"tag":"400","msg_id":"9","data":"{\\"product_id\\":36,\\"shop_id\\":1}"}]'),
        query={},
        body=b'[{"tag":"400","msg_id":"9","data":"{\\"product_id\\":36,\\"shop_id\\":1}"}]',
        credentials=credentials,
    )
    assert (product.kind, product.object_id, product.platform_shop_id) == ("product", "36", "1")


def test_push_signature_matches_hand_computed_md5() -> None:
    body = b'[{"tag":"100","msg_id":"1","data":"{}"}]'
    credentials = AppCredentials("7123456789012345678", "s3cr3t-app-secret")
    headers = {
        "app-id": credentials.app_key,
        "event-sign": "84440d893ac23984d454cb4f12ecbc26",
    }  # md5sum of the concatenation
    (message,) = DouyinPushCodec().decode(headers=headers, query={}, body=body, credentials=credentials)
    assert (message.kind, message.message_id, message.object_id) == ("order", "1", "")


def test_push_replies() -> None:
    codec = DouyinPushCodec()
    sandbox_codec = SandboxPushCodec()
    ack, reject = codec.ack(), codec.reject()
    assert json.loads(ack.body) == {"code": 0, "msg": "success"} and ack.content_type == "application/json"
    assert json.loads(reject.body) == {"code": 1, "msg": "fail"}
    assert sandbox_codec.is_ack(ack.status, ack.body.encode())
    assert not sandbox_codec.is_ack(reject.status, reject.body.encode())
    assert codec.verify_url(query={}, credentials=AppCredentials("k", "s")) is None

"""Lost replies (the platform acted, the caller saw a failure), the countable call log and its
effects (parcels, waybill numbers), and the e-waybill rate limits — over real HTTP where the
point is what a client sees."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from channels.connectors.douyin.api import check_envelope
from channels.connectors.kuaishou.api import check_result
from channels.connectors.wechat.connector import WechatConnector
from channels.errors import RateLimited
from sandbox import douyin, main
from sandbox.faults import Faults, RateLimiter
from sandbox.model import CallRecord
from sandbox.seed import seed_default_world
from sandbox.server import SandboxServer, ServerOptions
from sandbox.wechat import WechatApp, create_self_use_app
from sandbox.world import OrderItemSpec, ShipmentSpec, World
from tests.sandbox.refclients.douyin import DouyinRefClient
from tests.sandbox.refclients.wechat import WechatRefClient
from tests.sandbox.test_kuaishou_api import make_env

SHIP = "/order/logisticsAdd"
TAKE = "/logistics/newCreateOrder"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[SandboxServer]:
    world = World(tmp_path / "lost.sqlite3", seed=5, call_log_cap=None)
    seed_default_world(world, platforms=("douyin",), buyers=20)
    server = SandboxServer(world, ServerOptions(ports={}, simulate=False, push=False, threads=4))
    server.start()
    yield server
    server.stop()
    world.close()


def _client(server: SandboxServer, http: httpx.Client) -> tuple[DouyinRefClient, str, str]:
    world = server.world
    app, shop_id = world.apps("douyin")[0], world.shops("douyin")[0].shop_id
    return (
        DouyinRefClient(app.app_key, app.app_secret, http=http),
        douyin.ensure_token(world, app, shop_id),
        shop_id,
    )


def _paid_order(world: World, shop_id: str, qty: int = 1):
    sku = next(s for s in world.skus(shop_id) if s.stock >= 5)
    return world.create_order(shop_id=shop_id, buyer_id=1, pay=True, items=[OrderItemSpec(sku.sku_id, qty)])


def test_a_timeout_after_the_platform_shipped(served: SandboxServer) -> None:
    """The client times out, yet the parcel is on the order; the call log counts one successful
    ship call, marked as a lost reply; a retry is then refused as already shipped."""
    world = served.world
    served.faults.set("douyin", SHIP, lost_reply_rate=1.0, timeout_seconds=3.0)
    with httpx.Client(base_url=served.urls["douyin"], timeout=0.5, trust_env=False) as http:
        client, token, shop_id = _client(served, http)
        order = _paid_order(world, shop_id)
        before = world.last_call_id()
        params = {"order_id": order.order_id, "company_code": "zhongtong", "logistics_code": "75000000000001"}
        with pytest.raises(httpx.ReadTimeout):
            client.call(SHIP, params, token)
        assert world.tracking_numbers(order_id=order.order_id) == {order.order_id: ["75000000000001"]}
        served.faults.clear("douyin", SHIP)
        again = client.call(SHIP, params, token)
        assert (again["code"], again["sub_code"]) == (50002, "isv.business-failed:20002")
    assert world.call_counts(path=SHIP, after_id=before) == {("douyin", SHIP, shop_id): 1}
    assert world.call_counts(path=SHIP, ok=False, after_id=before) == {("douyin", SHIP, shop_id): 1}
    lost, refused = world.calls(platform="douyin", path=SHIP, after_id=before)
    assert (lost.ok, lost.code, lost.fault) == (True, "10000", "lost-reply:timeout")
    assert (refused.ok, refused.code) == (False, "50002/isv.business-failed:20002")
    [action] = world.ship_actions(order_id=order.order_id)
    assert (action.kind, action.package.tracking_no) == ("order_shipped", "75000000000001")


def test_a_gateway_error_after_the_platform_issued_a_waybill(served: SandboxServer) -> None:
    """A 502/504 page replaces the answer of a call that took a waybill number: the number exists
    in the world (and is counted per parcel) although the caller saw a gateway error."""
    world = served.world
    served.faults.set("douyin", TAKE, lost_reply_5xx_rate=1.0)
    with httpx.Client(base_url=served.urls["douyin"], timeout=5, trust_env=False) as http:
        client, token, shop_id = _client(served, http)
        order = _paid_order(world, shop_id)
        request = {
            "logistics_code": "zhongtong",
            "sender_info": {
                "address": {"detail_address": "仓库"},
                "contact": {"name": "仓管", "mobile": "13800000000"},
            },
            "order_infos": [
                {"order_id": order.order_id, "pack_id": "P1", "receiver_info": {"contact": {"name": "x"}}}
            ],
        }
        answer = client.send(client.prepare(TAKE, request, token))
        assert answer.status_code in (502, 504) and answer.headers["content-type"].startswith("text/html")
    [waybill] = world.issued_waybills(order_id=order.order_id)
    assert (waybill.shop_id, waybill.package_id, waybill.status) == (shop_id, "P1", "issued")
    assert world.waybills_per_parcel(platform="douyin") == {(shop_id, order.order_id, "P1"): [waybill]}
    [call] = world.calls(path=TAKE)
    assert call.ok and call.http_status in (502, 504) and call.fault.startswith("lost-reply:")
    world.cancel_waybill(waybill.tracking_no)
    assert [w.status for w in world.issued_waybills(order_id=order.order_id)] == ["cancelled"]
    assert world.issued_waybills(order_id=order.order_id, include_cancelled=False) == []
    assert world.waybills_per_order(platform="douyin")[order.order_id][0].tracking_no == waybill.tracking_no
    assert world.waybills_per_order(platform="kuaishou") == {}


def test_lost_replies_are_set_from_the_cli_and_the_admin_endpoint(served: SandboxServer, capsys) -> None:
    assert main(["--data", served.world.path, "fault", "douyin", SHIP, "--lost-reply-rate", "0.5"]) == 0
    assert "lost_reply_rate=0.5" in capsys.readouterr().out
    with httpx.Client(base_url=served.urls["status"], trust_env=False) as status:
        answer = status.post(
            "/admin/fault", json={"platform": "douyin", "path": SHIP, "lost_reply_5xx_rate": 0.25}
        )
        assert answer.json()["rule"]["lost_reply_5xx_rate"] == 0.25
    deadline = time.monotonic() + 3  # the running server re-reads rules within a second
    while served.faults.rule("douyin", SHIP).lost_reply_5xx_rate != 0.25 and time.monotonic() < deadline:
        time.sleep(0.05)
    rule = served.faults.rule("douyin", SHIP)
    assert (rule.lost_reply_rate, rule.lost_reply_5xx_rate) == (0.5, 0.25)


def test_lost_reply_rates_are_probabilities(tmp_path: Path) -> None:
    world = World(tmp_path / "w.sqlite3")
    faults = Faults(world, seed=1)
    faults.set("douyin", SHIP, lost_reply_rate=0.3, lost_reply_5xx_rate=0.5)
    outcomes = [faults.decide("douyin", SHIP)[0].lost_reply for _ in range(1000)]
    assert 240 < outcomes.count("timeout") < 360
    assert 280 < sum(o in ("502", "504") for o in outcomes) < 420  # half of the remaining 70 %
    assert all(not faults.decide("douyin", "/order/searchList")[0].lost_reply for _ in range(50))
    world.close()


def test_call_counts_filter_and_the_cap(tmp_path: Path) -> None:
    world = World(tmp_path / "w.sqlite3", call_log_cap=None)
    for i in range(30):
        world.log_call(
            CallRecord(time=i, platform="douyin", path=f"/logistics/{'a' if i % 3 else 'b'}", http_status=200,
                       code="10000", shop_id=f"s{i % 2}", ok=i % 5 != 0)
        )  # fmt: skip
    counts = world.call_counts(path="/logistics/*")
    assert sum(counts.values()) == 24 and counts[("douyin", "/logistics/b", "s0")] == 4
    assert world.call_counts(path="/logistics/a", shop_id="s1", ok=None) == {
        ("douyin", "/logistics/a", "s1"): 10
    }
    assert len(world.calls(ok=False)) == 6
    world.call_log_cap = 5
    world.log_call(CallRecord(time=99, platform="wechat", path="/x", http_status=200, code="0"))
    world.flush_calls()
    assert len(world.calls()) == 5 and world.calls()[-1].path == "/x"
    world.close()


def test_shipped_packages_per_order_and_per_line(tmp_path: Path) -> None:
    world = World(tmp_path / "w.sqlite3", seed=2)
    seed_default_world(world, platforms=("kuaishou",), buyers=10)
    shop_id = world.shops("kuaishou")[0].shop_id
    skus = [s for s in world.skus(shop_id) if s.stock >= 5]
    order = world.create_order(
        shop_id=shop_id,
        buyer_id=1,
        pay=True,
        items=[OrderItemSpec(skus[0].sku_id, 2), OrderItemSpec(skus[1].sku_id, 1)],
    )
    first, second = order.lines
    world.ship_order(order.order_id, [ShipmentSpec("ZTO", "7500000000001", [(first.line_id, 2)])])
    world.ship_order(order.order_id, [ShipmentSpec("YTO", "YT00000000001", [(second.line_id, 1)])])
    assert world.tracking_numbers(platform="kuaishou") == {order.order_id: ["7500000000001", "YT00000000001"]}
    by_line = world.shipped_packages(order_id=second.line_id)  # a Kuaishou oid is a line id
    assert [p.tracking_no for p in by_line[order.order_id]] == ["7500000000001", "YT00000000001"]
    assert [a.kind for a in world.ship_actions(shop_id=shop_id)] == ["order_part_shipped", "order_shipped"]
    assert world.shipped_packages(platform="douyin") == {}
    world.close()


# --------------------------------------------------------------------------- e-waybill rate limits


def test_wechat_ewaybill_apis_take_500_calls_a_minute_then_45011(tmp_path: Path) -> None:
    """≈500 calls per minute per API on the e-waybill paths (operations.md §2), answered with
    45011, which the WeChat connector turns into RateLimited; other paths keep DEFAULT_QPS."""
    world = World(tmp_path / "wx.sqlite3", seed=11)
    seed_default_world(world, platforms=("wechat",), buyers=10)
    now = [0.0]
    app = WechatApp(world, limiter=RateLimiter(monotonic=lambda: now[0]))
    shop_id = world.shops("wechat")[0].shop_id
    self_app = create_self_use_app(world, shop_id)
    path = "/channels/ec/logistics/ewaybill/biz/delivery/get"
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://wx") as http:
        wx = WechatRefClient(self_app.app_key, self_app.app_secret, http=http)
        wx.login()
        codes = [wx.raw(path, {}).get("errcode", 0) for _ in range(501)]
        assert codes[:500] == [0] * 500 and codes[500] == 45011
        assert wx.raw("/channels/ec/logistics/ewaybill/biz/account/get", {}).get("errcode", 0) != 45011
        limited = wx.raw(path, {})
        with pytest.raises(RateLimited):
            WechatConnector._check(SimpleNamespace(now=lambda: datetime.now(UTC)), limited)
        now[0] += 60 / 500 + 0.001  # one call's worth of the minute refilled
        assert [wx.raw(path, {}).get("errcode", 0) for _ in range(2)] == [0, 45011]
    assert app.faults.rule("wechat", path).burst == 500
    assert app.faults.rule("wechat", "/channels/ec/order/list/get").qps is None  # DEFAULT_QPS
    world.close()


def test_douyin_and_kuaishou_ewaybill_rate_limits_speak_the_connectors_language(
    world: World, client: DouyinRefClient, token: dict, tmp_path: Path
) -> None:
    """Douyin and Kuaishou publish no e-waybill figure: DEFAULT_QPS applies (tightened here by a
    rule); the refusal is the shape each connector recognises as RateLimited."""
    app = douyin.DouyinApp(world, limiter=RateLimiter(monotonic=lambda: 0.0))
    app.faults.set("douyin", "/logistics/listShopNetsite", qps=2, burst=2)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://dy") as http:
        dy = DouyinRefClient(client.app_key, client.app_secret, http=http, clock=client.clock)
        answers = [dy.call("/logistics/listShopNetsite", {}, token["access_token"]) for _ in range(3)]
    assert [a["code"] for a in answers] == [10000, 10000, 60000]
    with pytest.raises(RateLimited):
        check_envelope(answers[2])
    envs = make_env(tmp_path)
    env = next(envs)
    try:
        env.sandbox.limiter = RateLimiter(monotonic=lambda: 0.0)
        env.sandbox.faults.set("kuaishou", "/open/express/subscribe/query", qps=1, burst=1)
        first, second = (env.call("open.express.subscribe.query", {}) for _ in range(2))
        assert first["result"] != 1016 and second["result"] == 1016
        with pytest.raises(RateLimited):
            check_result(second)
    finally:
        next(envs, None)  # closes the client and the world

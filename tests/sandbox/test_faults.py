"""Faults on demand and rate limits: switched from Python, the CLI and the status-port admin endpoint."""

from __future__ import annotations

import time

import httpx
import pytest

from sandbox import main
from sandbox.douyin import DouyinApp
from sandbox.faults import Faults, RateLimiter
from sandbox.server import SandboxServer, ServerOptions, StatusApp
from sandbox.world import World
from tests.sandbox.refclients.douyin import DouyinRefClient

SEARCH = {"page": 0, "size": 5}


def test_injected_5xx_service_error_rate_limit_storm_and_malformed(
    douyin_app: DouyinApp, client: DouyinRefClient, token: dict
) -> None:
    faults, at = douyin_app.faults, token["access_token"]
    faults.set("douyin", "/order/searchList", http_5xx_rate=1.0)
    response = client.send(client.prepare("/order/searchList", SEARCH, at))
    assert response.status_code in (502, 503, 504) and response.headers["content-type"].startswith(
        "text/html"
    )
    assert (
        client.call("/order/orderDetail", {"shop_order_id": "1"}, at)["code"] == 50002
    )  # other paths unaffected
    faults.set("douyin", "/order/searchList", http_5xx_rate=0.0, error_rate=1.0)
    answer = client.call("/order/searchList", SEARCH, at)
    assert (answer["code"], answer["sub_code"]) == (20000, "dop.service-error")
    faults.set("douyin", "/order/searchList", error_rate=0.0, rate_limit_rate=1.0)
    answer = client.call("/order/searchList", SEARCH, at)
    assert (answer["code"], answer["msg"], answer["sub_code"]) == (
        60000,
        "触发限流，请稍后重试",
        "isv.traffic-limited",
    )
    faults.set("douyin", "/order/searchList", rate_limit_rate=0.0, malformed_rate=1.0)
    response = client.send(client.prepare("/order/searchList", SEARCH, at))
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()
    faults.clear("douyin")
    assert client.call("/order/searchList", SEARCH, at)["code"] == 10000


def test_error_rate_is_a_probability(douyin_app: DouyinApp, client: DouyinRefClient, token: dict) -> None:
    douyin_app.faults.set("douyin", "*", error_rate=0.3, qps=0)  # qps 0: no token bucket
    codes = [client.call("/order/searchList", SEARCH, token["access_token"])["code"] for _ in range(200)]
    assert 30 < codes.count(20000) < 90 and codes.count(10000) == 200 - codes.count(20000)


def test_token_bucket_per_app_and_path(
    world: World, client: DouyinRefClient, token: dict, http: httpx.Client
) -> None:
    now = [0.0]
    app = DouyinApp(world, limiter=RateLimiter(monotonic=lambda: now[0]))
    app.faults.set("douyin", "/order/searchList", qps=5, burst=5)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://dy") as own_http:
        limited = DouyinRefClient(client.app_key, client.app_secret, http=own_http, clock=client.clock)
        codes = [limited.call("/order/searchList", SEARCH, token["access_token"])["code"] for _ in range(7)]
        assert codes == [10000] * 5 + [60000] * 2
        assert (
            limited.call("/order/orderDetail", {"shop_order_id": "1"}, token["access_token"])["code"] != 60000
        )
        now[0] += 0.2  # one token refilled at 5 QPS
        assert [
            limited.call("/order/searchList", SEARCH, token["access_token"])["code"] for _ in range(2)
        ] == [10000, 60000]


def test_latency_and_revocation(douyin_app: DouyinApp, client: DouyinRefClient, token: dict) -> None:
    douyin_app.faults.set("douyin", "/order/searchList", latency_ms=120)
    started = time.perf_counter()
    assert client.call("/order/searchList", SEARCH, token["access_token"])["code"] == 10000
    assert time.perf_counter() - started >= 0.12
    douyin_app.faults.clear("douyin")
    assert douyin_app.faults.revoke_tokens("douyin") == 1
    answer = client.call("/order/searchList", SEARCH, token["access_token"])
    assert (answer["code"], answer["sub_code"]) == (40003, "isv.access-token-no-existed")


def test_cli_fault_reaches_a_running_app_through_the_file(
    world: World, douyin_app: DouyinApp, client: DouyinRefClient, token: dict
) -> None:
    assert main(["--data", world.path, "fault", "douyin", "/order/searchList", "--error-rate", "1"]) == 0
    deadline = time.monotonic() + 5
    code = None
    while time.monotonic() < deadline:  # another process's write is seen within the cache period
        code = client.call("/order/searchList", SEARCH, token["access_token"])["code"]
        if code == 20000:
            break
        time.sleep(0.05)
    assert code == 20000
    assert main(["--data", world.path, "fault", "douyin", "--clear"]) == 0
    assert Faults(world).rules() == {}


def test_status_port_admin_endpoint(
    world: World, douyin_app: DouyinApp, client: DouyinRefClient, token: dict
) -> None:
    server = SandboxServer(world, ServerOptions(simulate=False, push=False))
    server.faults = douyin_app.faults  # the status app and the Douyin app share one Faults
    with httpx.Client(
        transport=httpx.WSGITransport(app=StatusApp(server)), base_url="http://status"
    ) as admin:
        reply = admin.post(
            "/admin/fault", json={"platform": "douyin", "path": "/order/searchList", "rate_limit_rate": 1}
        )
        assert reply.json()["ok"] and reply.json()["rule"]["rate_limit_rate"] == 1
        assert client.call("/order/searchList", SEARCH, token["access_token"])["code"] == 60000
        admin.post("/admin/fault", json={"platform": "douyin", "path": "/order/searchList", "clear": True})
        assert client.call("/order/searchList", SEARCH, token["access_token"])["code"] == 10000
        assert admin.post("/admin/revoke-tokens", json={"platform": "douyin"}).json()["revoked"] == 1
        assert (
            client.call("/order/searchList", SEARCH, token["access_token"])["sub_code"]
            == "isv.access-token-no-existed"
        )
        assert admin.post("/admin/fault", json={"platform": "douyin", "bogus": 1}).status_code == 400

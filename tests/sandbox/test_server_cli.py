"""The sandbox over real HTTP (waitress), the status page and the command line."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sandbox import main
from sandbox.seed import seed_default_world
from sandbox.server import SandboxServer, ServerOptions
from sandbox.world import World
from tests.sandbox.conftest import PushReceiver
from tests.sandbox.refclients.douyin import DouyinRefClient


@pytest.fixture
def running(tmp_path: Path) -> Iterator[SandboxServer]:
    world = World(tmp_path / "served.sqlite3", seed=3, time_compression=600)
    seed_default_world(world, platforms=("douyin",), buyers=30)
    options = ServerOptions(ports={"status": 0, "douyin": 0, "kuaishou": 0, "wechat": 0}, orders_per_minute=120,
                            time_compression=600, threads=4)  # fmt: skip
    server = SandboxServer(world, options)
    server.start()
    yield server
    server.stop()
    world.close()


def _oauth_over_http(server: SandboxServer, http: httpx.Client) -> DouyinRefClient:
    app = server.world.apps("douyin")[0]
    shop_id = server.world.shops("douyin")[0].shop_id
    http.get("/authorize", params={"service_id": app.service_id, "state": "x"}).raise_for_status()
    answer = http.post("/authorize", data={"app_key": app.app_key, "state": "x", "shop_id": shop_id})
    assert (
        answer.status_code == 200 and "授权成功" in answer.text
    )  # no redirect URI configured: code shown on the page
    code = answer.text.split("<code id='code'>")[1].split("</code>")[0]
    client = DouyinRefClient(app.app_key, app.app_secret, http=http)
    client.token = client.token_create_by_code(code)["data"]  # type: ignore[attr-defined]
    return client


def test_real_http_calls_pushes_and_status_page(running: SandboxServer) -> None:
    urls = running.urls
    assert {"douyin", "status"} <= set(urls)  # plus any other platform module present
    receiver = PushReceiver()
    try:
        app = running.world.apps("douyin")[0]
        running.world.update_app(app.app_key, webhook_url=receiver.url)
        with httpx.Client(base_url=urls["douyin"], timeout=5, trust_env=False) as http:
            client = _oauth_over_http(running, http)
            access = client.token["access_token"]  # type: ignore[attr-defined]
            deadline = time.monotonic() + 10
            total = 0
            while time.monotonic() < deadline and total < 3:  # the simulator places ~2 orders/s per shop
                total = client.data("/order/searchList", {"size": 10}, access)["total"]
                time.sleep(0.05)
            assert total >= 3
            assert receiver.requests or running.dispatcher.wait_until(
                lambda: bool(receiver.requests), timeout=10
            )
            messages = client.verify_push(*receiver.requests[0])
            assert messages[0]["tag"] in {"100", "101", "106"}
        with httpx.Client(base_url=urls["status"], trust_env=False) as status:
            page = status.get("/")
            assert page.status_code == 200 and app.app_key in page.text and app.app_secret in page.text
            snapshot = status.get("/api/status").json()
            assert snapshot["counts"]["orders"] >= 3
            assert any(
                c["path"] == "/order/searchList" and c["code"] == "10000" for c in snapshot["recent_calls"]
            )
            assert snapshot["recent_pushes"]
    finally:
        receiver.close()


def test_timeout_fault_outlasts_the_client_timeout(running: SandboxServer) -> None:
    running.faults.set("douyin", "/order/logisticsCompanyList", timeout_rate=1.0, timeout_seconds=2.0)
    with httpx.Client(base_url=running.urls["douyin"], timeout=0.3, trust_env=False) as http:
        client = _oauth_over_http(running, http)
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            client.call("/order/logisticsCompanyList", {}, client.token["access_token"])  # type: ignore[attr-defined]
        assert 0.3 <= time.monotonic() - started < 2.0


def test_sign_prints_a_curl_command_that_works(
    running: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    path = running.world.path
    assert (
        main(
            [
                "--data",
                path,
                "sign",
                "douyin",
                "/order/searchList",
                '{"page":0,"size":2}',
                "--base-url",
                running.urls["douyin"],
            ]
        )
        == 0
    )
    command = capsys.readouterr().out.strip()
    assert command.startswith("curl -sS -X POST ")
    if shutil.which("curl"):
        output = subprocess.run(shlex.split(command), capture_output=True, check=True, timeout=10).stdout  # noqa: S603 - our own command
    else:
        args = shlex.split(command)
        output = httpx.post(
            args[4], content=args[-1].encode(), headers={"Content-Type": "application/json"}, trust_env=False
        ).content
    answer = json.loads(output)
    assert answer["code"] == 10000 and answer["data"]["size"] == 2


def test_cli_status_reset_configure_push(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "cli.sqlite3")
    assert main(["--data", data, "reset", "--seed", "5"]) == 0
    assert "world reset and seeded (seed 5)" in capsys.readouterr().out
    assert main(["--data", data, "configure", "douyin", "--webhook-url", "http://127.0.0.1:9/hook"]) == 0
    assert main(["--data", data, "push", "douyin", "--duplicate-probability", "0.1"]) == 0
    assert main(["--data", data, "fault", "douyin", "/order/searchList", "--latency-ms", "50"]) == 0
    capsys.readouterr()
    assert main(["--data", data, "status"]) == 0
    status = json.loads(capsys.readouterr().out)
    douyin = next(a for a in status["apps"] if a["platform"] == "douyin")
    assert douyin["webhook_url"] == "http://127.0.0.1:9/hook" and len(douyin["app_key"]) == 19
    assert status["push_settings"]["douyin"]["duplicate_probability"] == 0.1
    assert status["faults"] == [{"platform": "douyin", "path": "/order/searchList", "latency_ms": 50.0}]
    assert len([s for s in status["shops"] if s["platform"] == "douyin"]) == 3
    assert status["counts"]["products"] > 40

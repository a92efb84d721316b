"""Fixtures for the platform sandbox tests: a seeded world on a FakeClock, the Douyin app
reached in-process through httpx's WSGI transport, and the reference client. No database."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from sandbox.clock import FakeClock
from sandbox.douyin import DouyinApp
from sandbox.model import App
from sandbox.seed import seed_default_world
from sandbox.world import World
from tests.sandbox.refclients.douyin import DouyinRefClient


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_735_700_000.0)


@pytest.fixture
def world(tmp_path: Path, clock: FakeClock) -> Iterator[World]:
    w = World(tmp_path / "sandbox.sqlite3", seed=42, clock=clock)
    seed_default_world(w, platforms=("douyin",), buyers=60)
    yield w
    w.close()


@pytest.fixture
def douyin_app(world: World) -> DouyinApp:
    return DouyinApp(world)


@pytest.fixture
def http(douyin_app: DouyinApp) -> Iterator[httpx.Client]:
    with httpx.Client(
        transport=httpx.WSGITransport(app=douyin_app), base_url="http://douyin.sandbox"
    ) as client:
        yield client


@pytest.fixture
def dy_app(world: World) -> App:
    return world.apps("douyin")[0]


@pytest.fixture
def client(dy_app: App, http: httpx.Client, clock: FakeClock) -> DouyinRefClient:
    return DouyinRefClient(dy_app.app_key, dy_app.app_secret, http=http, clock=clock.now)


@pytest.fixture
def shop_id(world: World) -> str:
    return world.shops("douyin")[0].shop_id


def authorize_via_page(http: httpx.Client, app: App, shop_id: str, state: str = "st-1") -> str:
    """Walk the authorize page like a merchant: open it, pick the shop, click 同意授权; return the code."""
    page = http.get("/authorize", params={"service_id": app.service_id, "state": state})
    assert page.status_code == 200 and "同意授权" in page.text and shop_id in page.text
    answer = http.post(
        "/authorize",
        data={"service_id": app.service_id, "app_key": app.app_key, "state": state, "shop_id": shop_id},
    )
    assert answer.status_code == 302, answer.text
    query = parse_qs(urlparse(answer.headers["location"]).query)
    assert query["state"] == [state]
    return query["code"][0]


@pytest.fixture
def token(world: World, http: httpx.Client, dy_app: App, client: DouyinRefClient, shop_id: str) -> dict:
    """A real token obtained through the OAuth page and /token/create."""
    world.update_app(dy_app.app_key, redirect_uri="https://erp.example/callback/douyin")
    code = authorize_via_page(http, dy_app, shop_id)
    envelope = client.token_create_by_code(code)
    assert envelope["code"] == 10000, envelope
    return envelope["data"]


class PushReceiver:
    """A tiny HTTP server on 127.0.0.1 (random port) that records pushes.

    ``fail_first`` replies fail for the first N requests (HTTP 500), then the Douyin ack.
    """

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.requests.append((dict(self.headers.items()), body))
                    failing = len(receiver.requests) <= receiver.fail_first
                reply = b'{"code":1,"msg":"fail"}' if failing else b'{"code":0,"msg":"success"}'
                self.send_response(500 if failing else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/douyin/push"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def bodies(self) -> list[bytes]:
        with self.lock:
            return [b for _, b in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def push_receiver() -> Iterator[PushReceiver]:
    receiver = PushReceiver()
    yield receiver
    receiver.close()


def decode(response: httpx.Response) -> dict:
    return json.loads(response.content)


@pytest.fixture(autouse=True)
def _sleeps_not_interrupted():
    """A SandboxServer.stop() elsewhere in the run sets the module-wide STOP event, which cuts
    injected latencies short; every sandbox test starts with it cleared."""
    from sandbox.faults import STOP

    STOP.clear()
    yield

"""Kuaishou sandbox pushes: AES-CBC bodies checked with an independent decryption, one message
per order id, the ``{"result":1}`` acknowledgement, the retry schedule and the heartbeat."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sandbox.kuaishou import send_heartbeat, wms
from sandbox.pushes import PushDispatcher, outbox_rows
from sandbox.world import ShipmentSpec
from tests.sandbox.refclients.kuaishou import decrypt_push_body
from tests.sandbox.test_kuaishou_api import KsEnv, make_env

COMPRESSION = 60.0  # retry delays of 5, 10, 20, 30, 60 minutes become seconds


class KuaishouReceiver:
    """An HTTP receiver on 127.0.0.1 (random port): refuses the first ``fail_first`` requests
    with ``{"result":0}``, then answers ``{"result":1}``."""

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
                reply = b'{"result":0}' if failing else b'{"result":1}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/kuaishou/push"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self) -> list[bytes]:
        with self.lock:
            return [b for _, b in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[KsEnv]:
    yield from make_env(tmp_path)


@pytest.fixture
def receiver() -> Iterator[KuaishouReceiver]:
    value = KuaishouReceiver()
    yield value
    value.close()


@pytest.fixture
def dispatcher(env: KsEnv) -> Iterator[PushDispatcher]:
    value = PushDispatcher(env.world, time_compression=COMPRESSION, seed=1)
    yield value
    value.stop()


def subscribe(env: KsEnv, url: str) -> None:
    env.world.update_app(env.app.app_key, webhook_url=url)


def test_order_push_body_decrypts_with_the_documented_algorithm(
    env: KsEnv, receiver: KuaishouReceiver, dispatcher: PushDispatcher
) -> None:
    subscribe(env, receiver.url)
    order = env.place((0, 1), (1, 2), (2, 1), gift_of={2: 0}, pay=False)
    assert dispatcher.deliver_due() == 1
    headers, body = receiver.requests[0]
    assert headers["Content-Type"].startswith("text/plain")
    assert body.decode() not in order.receiver.name  # not plaintext
    messages = [decrypt_push_body(env.app.message_key, b) for b in receiver.bodies()]
    assert [m["event"] for m in messages] == [
        "kwaishop_order_addOrder"
    ] * 2  # one per main order, none for the gift
    assert [m["bizId"] for m in messages] == [int(order.lines[0].line_id), int(order.lines[1].line_id)]
    first = messages[0]
    assert (
        first["appKey"] == env.app.app_key and first["userId"] == int(env.shop_id) and first["test"] is False
    )
    info = json.loads(first["info"])
    assert info["oid"] == int(order.lines[0].line_id) and info["sellerId"] == int(env.shop_id)
    shown = wms(env.world, order.create_time)  # milliseconds within the world second
    assert order.create_time * 1000 <= shown <= order.create_time * 1000 + 999
    assert info["createTime"] == shown and first["createTime"] == shown
    assert len({m["eventId"] for m in messages}) == 2
    seller = env.data("open.user.seller.get", {})
    assert first["openId"] == seller["openId"]


def test_status_pushes_follow_the_world(
    env: KsEnv, receiver: KuaishouReceiver, dispatcher: PushDispatcher
) -> None:
    order = env.place((0, 1), pay=False)
    subscribe(env, receiver.url)
    env.world.pay_order(order.order_id)
    env.world.ship_order(order.order_id, [ShipmentSpec("ZTO", env.world.new_tracking_no("ZTO"))])
    a = env.world.apply_aftersale(
        order.order_id, order.lines[0].line_id, kind="refund_shipped", reason="破损"
    )
    dispatcher.deliver_due()
    messages = [decrypt_push_body(env.app.message_key, b) for b in receiver.bodies()]
    assert [m["event"] for m in messages] == [
        "kwaishop_order_paySuccess", "kwaishop_order_delivering", "kwaishop_aftersales_addRefund",
    ]  # fmt: skip
    assert [json.loads(m["info"]).get("status") for m in messages] == [30, 40, 10]
    refund = json.loads(messages[2]["info"])
    assert messages[2]["bizId"] == int(a.aftersale_id) and refund["orderId"] == int(order.lines[0].line_id)
    assert refund["refundId"] == int(a.aftersale_id) and refund["handlingWay"] == 10


def test_push_is_retried_on_the_documented_schedule_until_acknowledged(
    env: KsEnv, dispatcher: PushDispatcher
) -> None:
    receiver = KuaishouReceiver(fail_first=3)
    try:
        subscribe(env, receiver.url)
        order = env.place((0, 1), pay=False)  # one event: order created
        start = env.clock.now()
        delivered_at = []
        for delay in (0, 5, 10, 20):
            env.clock.advance(delay)
            assert dispatcher.deliver_due() == 1
            delivered_at.append(env.clock.now() - start)
        rows = {r["kind"]: r for r in outbox_rows(env.world, platform="kuaishou")}
        created = rows["order_created"]
        assert created["status"] == "delivered" and created["attempts"] == 4
        assert delivered_at == [0, 5, 15, 35]  # 5, 10, 20 minutes divided by the compression
        bodies = receiver.bodies()
        assert len(set(bodies[:4])) == 1  # the same encrypted message each time
        assert decrypt_push_body(env.app.message_key, bodies[0])["bizId"] == int(order.lines[0].line_id)
    finally:
        receiver.close()


def test_push_fails_after_five_retries(env: KsEnv, dispatcher: PushDispatcher) -> None:
    receiver = KuaishouReceiver(fail_first=100)
    try:
        env.place((0, 1), pay=False)
        subscribe(env, receiver.url)
        env.place((1, 1), pay=False)
        for delay in (0, 5, 10, 20, 30, 60):
            env.clock.advance(delay)
            assert dispatcher.deliver_due() == 1
        env.clock.advance(3600)
        assert dispatcher.deliver_due() == 0
        [row] = outbox_rows(env.world, platform="kuaishou")
        assert row["status"] == "failed" and row["attempts"] == 6
    finally:
        receiver.close()


def test_heartbeat_is_the_encrypted_test_message(env: KsEnv, receiver: KuaishouReceiver) -> None:
    subscribe(env, receiver.url)
    assert send_heartbeat(env.world, env.app.app_key)
    assert decrypt_push_body(env.app.message_key, receiver.bodies()[0]) == {"test": True}
    unhappy = KuaishouReceiver(fail_first=1)
    try:
        subscribe(env, unhappy.url)
        assert not send_heartbeat(env.world, env.app.app_key)
    finally:
        unhappy.close()

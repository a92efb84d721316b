"""WeChat pushes (§3.8): URL verification vectors and handshake, secure-mode envelopes decrypted and
verified with an independent implementation, event names, retries until ``success``. No database."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from sandbox import wechat
from sandbox.clock import FakeClock
from sandbox.model import App
from sandbox.pushes import PushDispatcher, outbox_rows
from sandbox.seed import seed_default_world
from sandbox.world import OrderItemSpec, ShipmentSpec, World
from tests.sandbox.refclients.wechat import decrypt, sha1_signature

OFFICIAL_VECTORS = [
    ("AAAAA", "1714036504", "1514711492", "f464b24fc39322e44b38aa78f5edd27bd1441696"),
    ("AAAAA", "1714037059", "486452656", "899cf89e464efb63f54ddac96b0a0a235f53aa78"),
]


class WechatReceiver:
    """A push URL on 127.0.0.1 (random port): answers the GET handshake when the signature matches
    ``token`` and records each POST; the first ``fail_first`` POSTs get ``fail``, then ``success``."""

    def __init__(self, token: str, clock: FakeClock, fail_first: int = 0) -> None:
        self.token, self.clock, self.fail_first = token, clock, fail_first
        self.posts: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, status: int, text: str) -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                q = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
                ok = q.get("signature") == sha1_signature(
                    receiver.token, q.get("timestamp", ""), q.get("nonce", "")
                )
                self._reply(200 if ok else 403, q.get("echostr", "") if ok else "bad signature")

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                q = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
                with receiver.lock:
                    receiver.posts.append({"query": q, "body": body, "at": receiver.clock.now()})
                    failing = len(receiver.posts) <= receiver.fail_first
                self._reply(200, "fail" if failing else "success")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/wechat/push"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def open_push(app: App, post: dict[str, Any]) -> dict[str, Any]:
    """Verify and decrypt one recorded push exactly as §3.8 describes (no sandbox code)."""
    q, envelope = post["query"], json.loads(post["body"])
    assert q["encrypt_type"] == "aes" and set(envelope) == {"ToUserName", "Encrypt"}
    assert q["signature"] == sha1_signature(app.push_token, q["timestamp"], q["nonce"])
    assert q["msg_signature"] == sha1_signature(
        app.push_token, q["timestamp"], q["nonce"], envelope["Encrypt"]
    )
    message, appid = decrypt(app.encoding_aes_key, envelope["Encrypt"])
    assert appid == app.app_key and message["ToUserName"] == envelope["ToUserName"]
    return message


@pytest.fixture
def wx_world(tmp_path: Path, clock: FakeClock) -> Iterator[World]:
    w = World(tmp_path / "wechat-push.sqlite3", seed=23, clock=clock)
    seed_default_world(w, platforms=("wechat",), buyers=20)
    yield w
    w.close()


@pytest.fixture
def wx_shop(wx_world: World) -> str:
    return wx_world.shops("wechat")[0].shop_id


@pytest.fixture
def wx_self_app(wx_world: World, wx_shop: str) -> App:
    return wechat.create_self_use_app(wx_world, wx_shop)


@pytest.fixture
def dispatcher(wx_world: World) -> Iterator[PushDispatcher]:
    d = PushDispatcher(wx_world, time_compression=1.0)
    yield d
    d.stop()


def test_official_url_verification_vectors() -> None:
    for token, timestamp, nonce, expected in OFFICIAL_VECTORS:
        assert sha1_signature(token, timestamp, nonce) == expected
        assert wechat.signature(token, timestamp, nonce) == expected


def test_url_verification_handshake(wx_world: World, wx_self_app: App, clock: FakeClock) -> None:
    good = WechatReceiver(wx_self_app.push_token, clock)
    wrong = WechatReceiver("another-token", clock)
    try:
        assert wechat.verify_webhook_url(
            wx_world, wx_world.update_app(wx_self_app.app_key, webhook_url=good.url)
        )
        assert not wechat.verify_webhook_url(
            wx_world, wx_world.update_app(wx_self_app.app_key, webhook_url=wrong.url)
        )
    finally:
        good.close()
        wrong.close()


def test_pushes_decrypt_verify_and_are_retried_until_acknowledged(
    wx_world: World, wx_self_app: App, wx_shop: str, clock: FakeClock, dispatcher: PushDispatcher
) -> None:
    receiver = WechatReceiver(wx_self_app.push_token, clock, fail_first=4)
    try:
        app = wx_world.update_app(wx_self_app.app_key, webhook_url=receiver.url)
        start = clock.now()
        order = wx_world.create_order(
            shop_id=wx_shop, buyer_id=2, items=[OrderItemSpec(wx_world.skus(wx_shop)[0].sku_id)]
        )
        assert dispatcher.deliver_due() == 1  # 1st push: "fail"
        assert dispatcher.deliver_due() == 1  # retry after 0 s: "fail"
        assert dispatcher.deliver_due() == 1  # retry after 0 s: "fail"
        assert dispatcher.deliver_due() == 0  # next retry only after 10 s
        clock.advance(10)
        assert dispatcher.deliver_due() == 1  # 4th push: "fail"
        clock.advance(59)
        assert dispatcher.deliver_due() == 0
        clock.advance(1)
        assert dispatcher.deliver_due() == 1  # 5th push, one minute later: "success"
        assert dispatcher.pending_count() == 0
        [row] = outbox_rows(wx_world, platform="wechat")
        assert (row["status"], row["attempts"]) == ("delivered", 5)
        assert [round(p["at"] - start) for p in receiver.posts] == [0, 0, 0, 10, 70]
        messages = [open_push(app, post) for post in receiver.posts]
        assert all(m == messages[0] for m in messages)  # the same message every time …
        assert len({json.loads(p["body"])["Encrypt"] for p in receiver.posts}) == 5  # … freshly encrypted
        message = messages[0]
        assert message["Event"] == "channels_ec_order_new" and message["MsgType"] == "event"
        assert str(message["order_info"]["order_id"]) == order.order_id
        assert message["ToUserName"] == wechat.shop_username(wx_world, wx_shop)
        assert message["CreateTime"] == order.create_time
    finally:
        receiver.close()


def test_gives_up_after_ten_pushes(
    wx_world: World, wx_self_app: App, wx_shop: str, clock: FakeClock, dispatcher: PushDispatcher
) -> None:
    receiver = WechatReceiver(wx_self_app.push_token, clock, fail_first=10**6)
    try:
        wx_world.update_app(wx_self_app.app_key, webhook_url=receiver.url)
        start = clock.now()
        wx_world.create_order(
            shop_id=wx_shop, buyer_id=3, items=[OrderItemSpec(wx_world.skus(wx_shop)[0].sku_id)]
        )
        for delay in (0, *wechat.WechatPushCodec.retry_schedule):
            clock.advance(delay)
            assert dispatcher.deliver_due() == 1
        clock.advance(86400)
        assert dispatcher.deliver_due() == 0
        [row] = outbox_rows(wx_world, platform="wechat")
        assert (row["status"], row["attempts"]) == ("failed", 10)
        offsets = [round(p["at"] - start) for p in receiver.posts]
        assert offsets == [0, 0, 0, 10, 70, 370, 2170, 5770, 9370, 12970]  # ≈ 3.6 h
    finally:
        receiver.close()


def test_event_names_follow_the_order_and_aftersale_life(
    wx_world: World, wx_self_app: App, wx_shop: str, clock: FakeClock, dispatcher: PushDispatcher
) -> None:
    receiver = WechatReceiver(wx_self_app.push_token, clock)
    try:
        app = wx_world.update_app(wx_self_app.app_key, webhook_url=receiver.url)
        skus = wx_world.skus(wx_shop)
        order = wx_world.create_order(
            shop_id=wx_shop,
            buyer_id=4,
            items=[OrderItemSpec(skus[0].sku_id, 2), OrderItemSpec(skus[3].sku_id)],
        )
        wx_world.pay_order(order.order_id)
        first, second = order.lines
        wx_world.ship_order(order.order_id, [ShipmentSpec("ZTO", "7811111111", [(first.line_id, 2)])])
        wx_world.ship_order(order.order_id, [ShipmentSpec("SF", "SF2222222222", [(second.line_id, 1)])])
        aftersale = wx_world.apply_aftersale(
            order.order_id, first.line_id, kind="refund_shipped", qty=1, reason="少件"
        )
        wx_world.agree_aftersale(aftersale.aftersale_id)
        wx_world.receive_order(order.order_id)
        wx_world.complete_order(order.order_id)
        unpaid = wx_world.create_order(shop_id=wx_shop, buyer_id=5, items=[OrderItemSpec(skus[1].sku_id)])
        wx_world.cancel_order(unpaid.order_id, reason="超时未支付", kind="unpaid_timeout")
        while dispatcher.deliver_due():
            pass
        messages = [open_push(app, post) for post in receiver.posts]
        summary = []
        for m in messages:
            body = m.get("order_info") or m.get("finder_shop_aftersale_status_update")
            detail = {
                k: v
                for k, v in body.items()
                if k in ("finish_delivery", "status", "cancel_type", "confirm_type")
            }
            summary.append((m["Event"], str(body["order_id"]), detail))
        oid, uid = order.order_id, unpaid.order_id
        assert summary == [
            ("channels_ec_order_new", oid, {}),
            ("channels_ec_order_pay", oid, {}),
            ("channels_ec_order_deliver", oid, {"finish_delivery": 0}),
            ("channels_ec_order_deliver", oid, {"finish_delivery": 1}),
            ("channels_ec_aftersale_update", oid, {"status": "MERCHANT_PROCESSING"}),
            (
                "channels_ec_aftersale_update",
                oid,
                {"status": "MERCHANT_PROCESSING"},
            ),  # agreed, refund on its way
            ("channels_ec_aftersale_update", oid, {"status": "MERCHANT_REFUND_SUCCESS"}),
            ("channels_ec_order_confirm", oid, {"confirm_type": 1}),
            ("channels_ec_order_settle", oid, {}),
            ("channels_ec_order_new", uid, {}),
            ("channels_ec_order_cancel", uid, {"cancel_type": 2}),
        ]
        update = messages[4]["finder_shop_aftersale_status_update"]
        assert update["after_sale_order_id"] == aftersale.aftersale_id and isinstance(update["order_id"], str)
        assert (
            int(messages[1]["order_info"]["pay_time"]) == wx_world.get_order(oid).pay_time
        )  # number or text
        assert messages[8]["order_info"]["settle_time"] == wx_world.get_order(oid).complete_time
    finally:
        receiver.close()

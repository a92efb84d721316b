"""Push intake: the public ``/hooks/<platform>/`` endpoint, routing to tenants, processing.

Every push here is produced by the sandbox's own push codecs (the bytes a platform would
POST: Douyin's signed JSON array, Kuaishou's AES body, WeChat's secure-mode envelope) and
POSTed with the Django test client to the public domain.
"""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx
import pytest
from django.core.management import call_command
from django.db import connection
from django_tenants.utils import schema_context

from channels import intake, services
from channels.connectors import push_codec
from channels.connectors.base import RetryPolicy
from channels.models import ChannelOrderState, InboxMessage, OrderSnapshot, Store
from channels.routing.models import PushReceipt
from channels.types import TokenGrant
from sandbox import douyin as sandbox_douyin
from sandbox import kuaishou as sandbox_kuaishou
from sandbox import wechat as sandbox_wechat
from sandbox.clock import FakeClock
from sandbox.faults import Faults
from sandbox.model import App
from sandbox.pushes import EncodedPush, PushDispatcher, codec_for
from sandbox.seed import seed_default_world
from sandbox.world import OrderItemSpec, World

PLATFORMS = ("douyin", "kuaishou", "wechat")
ACKS = {
    "douyin": (200, '{"code":0,"msg":"success"}'),
    "kuaishou": (200, '{"result":1}'),
    "wechat": (200, "success"),
}
BASES = {
    "douyin": "http://douyin.sandbox",
    "kuaishou": "http://kuaishou.sandbox",
    "wechat": "http://wechat.sandbox",
}


class Sandbox:
    """A seeded three-platform world on a FakeClock (at wall-clock time) and its push codecs."""

    def __init__(self, path) -> None:
        self.clock = FakeClock(start=float(int(time.time())))
        self.world = World(path, seed=23, clock=self.clock)
        seed_default_world(self.world, shops_per_platform=2, buyers=10, product_count=3)
        self.faults = Faults(self.world)
        self.gateways = {
            "douyin": sandbox_douyin.create_app(self.world, faults=self.faults),
            "kuaishou": sandbox_kuaishou.create_app(self.world, faults=self.faults),
            "wechat": sandbox_wechat.create_app(self.world, faults=self.faults),
        }

    def app(self, platform: str) -> App:
        return next(a for a in self.world.apps(platform) if a.app_type == "tool")

    def shop(self, platform: str, index: int = 0) -> str:
        return self.world.shops(platform)[index].shop_id

    def shop_key(self, platform: str, index: int = 0) -> str:
        """How the platform names the shop to the ERP (WeChat: the ``gh_`` original id)."""
        shop_id = self.shop(platform, index)
        return sandbox_wechat.shop_username(self.world, shop_id) if platform == "wechat" else shop_id

    def subscribe(self, app: App, shop_id: str) -> None:
        self.world.authorize(app.app_key, shop_id)
        self.world.update_app(app.app_key, webhook_url=f"https://ecbao.example/hooks/{app.platform}/")

    def order(self, platform: str, index: int = 0, *, pay: bool = False):
        shop_id = self.shop(platform, index)
        sku = self.world.skus(shop_id)[0]
        return self.world.create_order(
            shop_id=shop_id, buyer_id=1, items=[OrderItemSpec(sku.sku_id, 1)], pay=pay
        )

    def pushes(self) -> list[EncodedPush]:
        """Every push due now, encoded by the platform's sandbox codec (then marked delivered)."""
        dispatcher = PushDispatcher(self.world)
        try:
            messages = dispatcher.due_messages()
        finally:
            dispatcher.stop()
        posts: list[EncodedPush] = []
        for message in messages:
            encoded = codec_for(message.platform).encode(
                self.world, self.world.get_app(message.app_key), message
            )
            posts += encoded if isinstance(encoded, list) else [encoded] if encoded else []
        with self.world.write() as c:
            c.executemany("UPDATE push_outbox SET status='delivered' WHERE id=?", [(m.id,) for m in messages])
        return posts

    def http(self, platform: str) -> httpx.Client:
        return httpx.Client(
            transport=httpx.WSGITransport(app=self.gateways[platform]), base_url=BASES[platform]
        )


def secrets_of(app: App) -> dict:
    secrets = {"app_secret": app.app_secret}
    for source, target in (("sign_secret", "sign_secret"), ("message_key", "message_key"),
                           ("push_token", "token"), ("encoding_aes_key", "aes_key")):  # fmt: skip
        if getattr(app, source):
            secrets[target] = getattr(app, source)
    return secrets


@pytest.fixture
def sandbox(tmp_path, settings, monkeypatch):
    box = Sandbox(tmp_path / "world.sqlite3")
    settings.CHANNEL_BASE_URLS = dict(BASES)
    # Processing fetches orders through the connector: over the in-process WSGI transport.
    connector_for = services.connector_for
    monkeypatch.setattr(
        services,
        "connector_for",
        lambda store, **kw: connector_for(
            store,
            http=box.http(store.platform),
            now=lambda: datetime.fromtimestamp(box.clock.now(), UTC),
            retry=RetryPolicy(sleep=lambda seconds: None),
            **kw,
        ),
    )
    yield box
    box.world.close()


def register(box: Sandbox, platform: str) -> App:
    app = box.app(platform)
    services.register_app(platform=platform, app_key=app.app_key, secrets=secrets_of(app))
    return app


def fake_connect(tenant, platform: str, shop_key: str, app_key: str) -> Store:
    """A store connected to ``tenant`` without talking to the platform (routing needs no tokens)."""
    with schema_context(tenant.schema_name):
        grant = TokenGrant(
            access_token="t-" + shop_key,
            access_expires_at=datetime.now(UTC) + timedelta(days=1),
            platform_shop_id=shop_key,
            shop_name=f"{platform} {shop_key}",
        )
        store = services.connect_store(platform=platform, app_key=app_key, grant=grant)
    connection.set_schema_to_public()
    return store


def post(client, platform: str, push: EncodedPush, *, path: str = ""):
    headers = dict(push.headers)
    content_type = headers.pop("Content-Type")
    query = urlsplit(push.url).query
    url = (path or f"/hooks/{platform}/") + (f"?{query}" if query else "")
    return client.post(url, data=push.body, content_type=content_type, headers=headers)


def inbox_of(tenant) -> list[InboxMessage]:
    with schema_context(tenant.schema_name):
        rows = list(InboxMessage.objects.select_related("store").order_by("id"))
    connection.set_schema_to_public()
    return rows


# --- receiving ------------------------------------------------------------------------------------


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_verified_push_is_stored_then_acknowledged(
    platform, sandbox, public_client, django_capture_on_commit_callbacks
):
    app = register(sandbox, platform)
    sandbox.subscribe(app, sandbox.shop(platform))
    sandbox.order(platform)
    (push,) = sandbox.pushes()
    with django_capture_on_commit_callbacks() as queued:
        response = post(public_client, platform, push)
    assert (response.status_code, response.content.decode()) == ACKS[platform]
    (receipt,) = PushReceipt.objects.all()
    assert (receipt.platform, receipt.app_key, receipt.status, receipt.messages) == (
        platform,
        app.app_key,
        "received",
        1,
    )
    assert receipt.body == push.body.decode()  # as received: still encrypted where the platform encrypts
    assert len(queued) == 1  # routing is enqueued once the receipt is committed


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_forged_push_gets_the_failure_reply_and_nothing_is_stored(platform, sandbox, public_client):
    app = register(sandbox, platform)
    sandbox.subscribe(app, sandbox.shop(platform))
    sandbox.order(platform)
    (push,) = sandbox.pushes()
    reject = push_codec(platform).reject()
    if platform == "douyin":  # a signature that does not match the body
        forged = EncodedPush(push.url, push.body.replace(b'"tag":"100"', b'"tag":"101"'), push.headers)
    elif platform == "kuaishou":  # encrypted with another message key
        other = sandbox_kuaishou.encrypt_push(
            "MDEyMzQ1Njc4OWFiY2RlZg==", '{"event":"kwaishop_order_addOrder"}'
        )
        forged = EncodedPush(push.url, other.encode(), push.headers)
    else:  # a msg_signature that does not cover the envelope
        forged = EncodedPush(push.url.replace("msg_signature=", "msg_signature=0"), push.body, push.headers)
    response = post(public_client, platform, forged)
    assert (response.status_code, response.content.decode()) == (reject.status, reject.body)
    assert response.content.decode() != ACKS[platform][1]
    garbage = post(public_client, platform, EncodedPush(push.url, b"\x00not a push", push.headers))
    assert garbage.content.decode() == reject.body
    assert not PushReceipt.objects.exists()


def test_a_push_for_an_app_ecbao_does_not_know_is_refused(sandbox, public_client):
    app = sandbox.app("douyin")  # not registered
    sandbox.subscribe(app, sandbox.shop("douyin"))
    sandbox.order("douyin")
    (push,) = sandbox.pushes()
    response = post(public_client, "douyin", push)
    assert response.content.decode() == '{"code":1,"msg":"fail"}'
    assert not PushReceipt.objects.exists()
    assert (
        public_client.post("/hooks/taobao/", data=b"[]", content_type="application/json").status_code == 404
    )


# --- routing --------------------------------------------------------------------------------------


@pytest.mark.parametrize("platform", PLATFORMS)
def test_routing_puts_each_message_in_its_tenants_inbox_once(platform, sandbox, public_client, alpha, beta):
    app = register(sandbox, platform)
    mine = fake_connect(alpha, platform, sandbox.shop_key(platform, 0), app.app_key)
    fake_connect(beta, platform, sandbox.shop_key(platform, 1), app.app_key)  # beta's shop is another one
    sandbox.subscribe(app, sandbox.shop(platform, 0))
    order = sandbox.order(platform)
    (push,) = sandbox.pushes()
    post(public_client, platform, push)
    post(public_client, platform, push)  # the platform delivers the same message again: one receipt
    (first,) = PushReceipt.objects.all()
    for _ in range(2):  # and routing runs twice for it
        routed = intake.route_receipt(receipt_id=first.pk)
        assert (routed.status, routed.error) == (PushReceipt.Status.ROUTED, "")
    assert PushReceipt.objects.get(pk=first.pk).attempts == 2
    (message,) = inbox_of(alpha)
    expected_object = order.lines[0].line_id if platform == "kuaishou" else order.order_id
    assert (message.platform, message.store_id, message.status) == (
        platform,
        mine.pk,
        InboxMessage.Status.PENDING,
    )
    assert message.payload["kind"] == "order" and message.payload["object_id"] == expected_object
    assert message.receipt_id == first.pk
    assert inbox_of(beta) == []


def test_a_push_for_a_shop_nobody_connected_waits_until_it_can_be_rerouted(sandbox, public_client, alpha):
    app = register(sandbox, "douyin")
    sandbox.subscribe(app, sandbox.shop("douyin"))
    sandbox.order("douyin")
    (push,) = sandbox.pushes()
    post(public_client, "douyin", push)
    receipt = intake.route_receipt(receipt_id=PushReceipt.objects.get().pk)
    assert receipt.status == PushReceipt.Status.UNROUTABLE
    assert receipt.error == f"no tenant for shop(s) {sandbox.shop('douyin')}"
    assert inbox_of(alpha) == []

    store = fake_connect(alpha, "douyin", sandbox.shop("douyin"), app.app_key)
    call_command("channels_inbox", "--reroute", stdout=io.StringIO())
    receipt.refresh_from_db()
    assert (receipt.status, receipt.error, receipt.attempts) == (PushReceipt.Status.ROUTED, "", 2)
    (message,) = inbox_of(alpha)
    assert message.store_id == store.pk


def test_a_self_use_wechat_app_routes_to_its_store_whatever_shop_id_it_was_saved_with(
    sandbox, public_client, alpha
):
    """A self-use app is one shop: its pushes (``ToUserName`` = the ``gh_`` id) reach the store
    even when it was connected under the platform's numeric shop id (as ``sandbox_demo`` does)."""
    shop_id = sandbox.shop("wechat")
    app = sandbox_wechat.create_self_use_app(sandbox.world, shop_id)
    services.register_app(platform="wechat", app_key=app.app_key, secrets=secrets_of(app), tenant=alpha)
    store = fake_connect(alpha, "wechat", shop_id, app.app_key)
    sandbox.world.update_app(app.app_key, webhook_url=f"https://ecbao.example/hooks/wechat/{app.app_key}/")
    sandbox.order("wechat")
    (push,) = sandbox.pushes()
    response = post(public_client, "wechat", push, path=f"/hooks/wechat/{app.app_key}/")
    assert response.content == b"success"
    assert intake.route_receipt(receipt_id=PushReceipt.objects.get().pk).status == PushReceipt.Status.ROUTED
    (message,) = inbox_of(alpha)
    assert message.store_id == store.pk


# --- processing -----------------------------------------------------------------------------------


def connect_for_real(box: Sandbox, platform: str, tenant) -> Store:
    """Connect the first shop through the platform's OAuth code exchange (over WSGI)."""
    app = register(box, platform)
    with schema_context(tenant.schema_name):
        connector = services.unbound_connector(
            platform=platform, app_key=app.app_key, http=box.http(platform)
        )
        grant = connector.exchange_code(
            code=box.world.create_oauth_code(app.app_key, box.shop(platform)).code
        )
        store = services.connect_store(platform=platform, app_key=app.app_key, grant=grant)
    connection.set_schema_to_public()
    return store


@pytest.mark.parametrize("platform", ["douyin", "kuaishou"])
def test_a_failed_message_keeps_its_error_until_retried(
    platform, sandbox, public_client, alpha, django_capture_on_commit_callbacks
):
    store = connect_for_real(sandbox, platform, alpha)
    sandbox.subscribe(sandbox.app(platform), sandbox.shop(platform))
    order = sandbox.order(platform, pay=True)
    for push in sandbox.pushes():
        post(public_client, platform, push)
    for receipt in PushReceipt.objects.order_by("id"):
        intake.route_receipt(receipt_id=receipt.pk)
    created, paid = inbox_of(alpha)
    detail_path = {"douyin": "/order/orderDetail", "kuaishou": "/open/order/detail"}[platform]
    sandbox.faults.set(platform, detail_path, http_5xx_rate=1.0)  # the detail API is down
    with schema_context(alpha.schema_name):
        with pytest.raises(Exception, match="HTTP 50"):
            intake.process_inbox_message(message_id=created.pk)
        failed = InboxMessage.objects.get(pk=created.pk)
        assert (failed.status, failed.attempts) == (InboxMessage.Status.FAILED, 1)
        assert failed.last_error.startswith("HTTP 50")
        assert Store.objects.get(pk=store.pk).last_error == failed.last_error
        assert not ChannelOrderState.objects.exists()

        with django_capture_on_commit_callbacks() as queued:
            intake.retry_inbox_message(message_id=created.pk)
            intake.retry_inbox_message(message_id=paid.pk)  # not failed: left alone
        assert len(queued) == 1
        assert InboxMessage.objects.get(pk=created.pk).status == InboxMessage.Status.PENDING

        sandbox.faults.clear(platform)
        done = intake.process_inbox_message(message_id=created.pk)
        assert (done.status, done.attempts, done.last_error) == (InboxMessage.Status.PROCESSED, 2, "")
        assert intake.process_inbox_message(message_id=created.pk).attempts == 2  # processed: left alone
        intake.process_inbox_message(message_id=paid.pk)
        expected_id = order.lines[0].line_id if platform == "kuaishou" else order.order_id
        state = ChannelOrderState.objects.get(store=store)
        assert (state.platform_order_id, state.status) == (expected_id, "paid")
        assert set(OrderSnapshot.objects.values_list("source", flat=True)) == {OrderSnapshot.Source.PUSH}
    connection.set_schema_to_public()


def test_a_message_for_a_disconnected_store_fails_with_a_reason(sandbox, public_client, alpha):
    app = register(sandbox, "douyin")
    store = fake_connect(alpha, "douyin", sandbox.shop("douyin"), app.app_key)
    sandbox.subscribe(app, sandbox.shop("douyin"))
    sandbox.order("douyin")
    (push,) = sandbox.pushes()
    post(public_client, "douyin", push)
    intake.route_receipt(receipt_id=PushReceipt.objects.get().pk)
    (message,) = inbox_of(alpha)
    with schema_context(alpha.schema_name):
        Store.objects.filter(pk=store.pk).delete()
        with pytest.raises(Exception, match="no connected store"):
            intake.process_inbox_message(message_id=message.pk)
        failed = InboxMessage.objects.get(pk=message.pk)
        assert failed.status == InboxMessage.Status.FAILED and "no connected store" in failed.last_error
    connection.set_schema_to_public()


# --- WeChat URL verification -----------------------------------------------------------------------


def test_wechat_url_verification_echoes_echostr(sandbox, public_client):
    app = register(sandbox, "wechat")
    timestamp, nonce = str(int(time.time())), "1357924680"
    signature = sandbox_wechat.signature(app.push_token, timestamp, nonce)
    query = {"signature": signature, "timestamp": timestamp, "nonce": nonce, "echostr": "8512640743921"}
    response = public_client.get("/hooks/wechat/", query)
    assert (response.status_code, response.content) == (200, b"8512640743921")
    refused = public_client.get("/hooks/wechat/", {**query, "signature": "0" * 40})
    assert refused.status_code == 400 and refused.content != b"8512640743921"
    assert not PushReceipt.objects.exists()


def test_a_push_for_another_shop_of_the_same_app_is_not_given_to_the_only_tenant(
    sandbox, public_client, alpha
):
    """The deployment's app serves every merchant: a message naming a shop nobody connected is
    unroutable, even when exactly one shop of that app is connected (to someone else)."""
    app = register(sandbox, "douyin")
    fake_connect(alpha, "douyin", sandbox.shop("douyin", 0), app.app_key)
    sandbox.subscribe(app, sandbox.shop("douyin", 1))
    sandbox.order("douyin", 1)
    (push,) = sandbox.pushes()
    post(public_client, "douyin", push)
    receipt = intake.route_receipt(receipt_id=PushReceipt.objects.get().pk)
    assert receipt.status == PushReceipt.Status.UNROUTABLE
    assert inbox_of(alpha) == []

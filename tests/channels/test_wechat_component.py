"""WeChat third-party platform (第三方平台, "component") authorisation events, end to end.

The sandbox's push dispatcher delivers the ``component_verify_ticket`` (encrypted XML, secure
mode) every 10 simulated minutes to ecbao's authorisation-event URL — through the Django test
client, so the request runs the real public URL, view, intake and database in this test's
transaction. Shops are then connected through the Shops page, the sandbox consent page and the
public OAuth callback, and pull orders and refresh tokens with the stored ticket.
"""

from __future__ import annotations

import html
import logging
import re
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.db import connection
from django_tenants.utils import schema_context

from channels import component, intake, services, sync
from channels.connectors.base import AppCredentials, RetryPolicy
from channels.connectors.wechat import ComponentEvent, decode_component_event
from channels.models import ChannelOrderState, Store
from channels.routing.models import PlatformApp, PushReceipt
from ecbao.crypto import decrypt_text
from sandbox import main as sandbox_main
from sandbox import wechat as sandbox_wechat
from sandbox.model import App
from sandbox.pushes import EncodedPush, PushDispatcher, outbox_rows
from tests.channels.test_intake import BASES, Sandbox, secrets_of
from tests.channels.test_shops_pages import come_back, login, state_of
from tests.conftest import OWNER_PASSWORD

TICKET_PATH = "/cgi-bin/component/api_component_token"
REFRESH_PATH = "/cgi-bin/component/api_authorizer_token"


class DjangoTransport(httpx.BaseTransport):
    """Hands the sandbox dispatcher's POSTs to ecbao through Django's test client (same thread,
    same test transaction), and records the replies."""

    def __init__(self, client) -> None:
        self.client = client
        self.replies: list[tuple[int, bytes]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.client.generic(
            request.method,
            request.url.raw_path.decode(),
            data=request.read(),
            content_type=request.headers.get("content-type", ""),
        )
        self.replies.append((response.status_code, response.content))
        return httpx.Response(response.status_code, content=response.content)


@pytest.fixture
def box(db, tmp_path, settings, monkeypatch):
    sandbox = Sandbox(tmp_path / "world.sqlite3")
    sandbox.faults.set("wechat", "*", qps=0)  # the gateway's bucket runs on real time
    settings.CHANNEL_BASE_URLS = dict(BASES)
    settings.CHANNEL_AUTHORIZE_URLS = {
        **settings.CHANNEL_AUTHORIZE_URLS,
        "wechat": BASES["wechat"] + "/authorize",
    }
    unbound, bound = services.unbound_connector, services.connector_for
    extra = {
        "now": lambda: datetime.fromtimestamp(sandbox.clock.now(), UTC),
        "retry": RetryPolicy(sleep=lambda seconds: None),
    }
    monkeypatch.setattr(  # the connectors reach the sandbox in process, on its clock
        services,
        "unbound_connector",
        lambda *, platform, app_key, **kw: unbound(
            platform=platform, app_key=app_key, http=sandbox.http(platform), **extra, **kw
        ),
    )
    monkeypatch.setattr(
        services,
        "connector_for",
        lambda store, **kw: bound(store, http=sandbox.http(store.platform), **extra, **kw),
    )
    yield sandbox
    sandbox.world.close()


@pytest.fixture
def wx(box) -> App:
    """The sandbox's WeChat third-party platform, registered as this deployment's WeChat app and
    pushing its authorisation events to ecbao."""
    app = box.app("wechat")
    services.register_app(platform="wechat", app_key=app.app_key, secrets=secrets_of(app))
    return box.world.update_app(
        app.app_key, auth_event_url="http://localhost" + component.endpoint_path(app.app_key)
    )


@pytest.fixture
def transport(public_client) -> DjangoTransport:
    return DjangoTransport(public_client)


@pytest.fixture
def dispatcher(box, transport):
    d = PushDispatcher(box.world, client=httpx.Client(transport=transport))
    yield d
    d.stop()


@pytest.fixture
def owner(alpha_client):
    return login(alpha_client, "alpha-owner", OWNER_PASSWORD)


def stored(app: App) -> PlatformApp:
    return PlatformApp.objects.get(platform="wechat", app_key=app.app_key)


def raw_column(app: App, column: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM channel_routing_platformapp WHERE app_key = %s", [app.app_key])
        return cursor.fetchone()[0]


def current_ticket(box: Sandbox, app: App) -> tuple[str, datetime]:
    ticket, created = box.gateways["wechat"].current_verify_ticket(app)
    return ticket, datetime.fromtimestamp(created, UTC)


def encoded_ticket_push(box: Sandbox, app: App) -> EncodedPush:
    """The ticket push WeChat would send now (queued and encoded by the sandbox, not delivered)."""
    sandbox_wechat.push_verify_ticket(box.world, app)
    (push,) = box.pushes()
    return push


def deliver(client, push: EncodedPush):
    query = urlsplit(push.url).query
    return client.post(
        f"{urlsplit(push.url).path}?{query}", data=push.body, content_type=push.headers["Content-Type"]
    )


def calls(box: Sandbox, path: str) -> list[str]:
    """The sandbox's answers (errcode) to calls of ``path``, oldest first (from its call log)."""
    return [c.code for c in reversed(box.world.recent_calls(5000)) if c.path == path]


def connect_through_the_shops_page(box: Sandbox, owner, public_client, alpha, shop_index: int = 0) -> Store:
    """Shops page → the sandbox's consent page → the public OAuth callback, like a merchant."""
    page = owner.get("/shops/").content.decode()
    assert 'data-testid="connect-wechat"' in page and 'data-testid="wechat-ticket-pending"' not in page
    location = owner.get("/shops/connect/wechat/")["Location"]
    assert location.startswith(BASES["wechat"] + "/authorize?")
    http = box.http("wechat")
    consent = http.get(location)
    shop_id = box.shop("wechat", shop_index)
    assert consent.status_code == 200 and sandbox_wechat.shop_username(box.world, shop_id) in consent.text
    form = {
        name: html.unescape(value)
        for name, value in re.findall(r"<input type='hidden' name='([^']+)' value='([^']*)'>", consent.text)
    }
    agreed = http.post("/authorize", data={**form, "shop_id": shop_id})
    back = urlsplit(agreed.headers["location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == "http://localhost/oauth/callback/wechat/"
    code = parse_qs(back.query)["auth_code"][0]
    query = {"auth_code": code, "state": state_of(location), "expires_in": "600"}
    response = come_back(public_client, owner, "wechat", query)
    assert response.status_code == 302 and "connected=" in response["Location"], response["Location"]
    with schema_context(alpha.schema_name):
        store = Store.objects.get(platform="wechat")
    connection.set_schema_to_public()
    return store


# --- the sandbox side (no ecbao) --------------------------------------------------------------------


def test_the_sandbox_pushes_the_ticket_every_10_minutes_as_encrypted_xml(box):
    configure = ["configure", "wechat", "--auth-event-url", "http://127.0.0.1:9/auth-events"]
    assert sandbox_main(["--data", box.world.path, *configure]) == 0  # the CLI, as a developer would
    app = box.app("wechat")
    assert app.auth_event_url == "http://127.0.0.1:9/auth-events"
    seen: list[httpx.Request] = []

    def receive(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text="success")

    dispatcher = PushDispatcher(box.world, client=httpx.Client(transport=httpx.MockTransport(receive)))
    try:
        assert dispatcher.deliver_due() == 1  # promptly, once the dispatcher runs (server start)
        assert dispatcher.deliver_due() == 0  # not again within the 10-minute slot
        box.clock.advance(600)
        assert dispatcher.deliver_due() == 1
        box.world.update_app(app.app_key, auth_event_url="http://127.0.0.1:9/moved")
        assert dispatcher.deliver_due() == 1  # a new URL gets the current ticket at once
    finally:
        dispatcher.stop()
    first, second, moved = seen
    assert moved.url.path == "/moved"
    # ecbao's receiver (an implementation independent of the sandbox's encoder) opens it
    credentials = AppCredentials(app_key=app.app_key, **secrets_of(app))
    events = [
        decode_component_event(query=dict(r.url.params), body=r.content, credentials=credentials)
        for r in seen
    ]
    assert {r.url.params["encrypt_type"] for r in seen} == {"aes"}
    assert first.content.startswith(b"<xml><AppId><![CDATA[" + app.app_key.encode() + b"]]></AppId><Encrypt>")
    assert [e.info_type for e in events] == ["component_verify_ticket"] * 3
    assert events[1].ticket == current_ticket(box, app)[0] == events[2].ticket != events[0].ticket
    assert events[1].created_at - events[0].created_at == timedelta(minutes=10)
    assert events[0].ticket.encode() not in first.content  # encrypted


def test_a_failed_ticket_push_is_retried_and_a_revocation_pushes_unauthorized_once(box):
    app = box.world.update_app(box.app("wechat").app_key, auth_event_url="http://127.0.0.1:9/auth-events")
    replies = iter(["fail", "success", "success"])
    bodies: list[httpx.Request] = []

    def receive(request: httpx.Request) -> httpx.Response:
        bodies.append(request)
        return httpx.Response(200, text=next(replies))

    dispatcher = PushDispatcher(box.world, client=httpx.Client(transport=httpx.MockTransport(receive)))
    try:
        dispatcher.deliver_due()
        (row,) = outbox_rows(box.world, platform="wechat")
        assert (row["status"], row["attempts"], row["kind"]) == ("pending", 1, "app_verify_ticket")
        dispatcher.deliver_due()  # WeChat's schedule: the first retry comes at once
        (row,) = outbox_rows(box.world, platform="wechat")
        assert (row["status"], row["attempts"]) == ("delivered", 2)
        shop_id = box.shop("wechat")
        box.world.authorize(app.app_key, shop_id)
        box.world.revoke_authorization(app.app_key, shop_id)
        box.world.revoke_authorization(app.app_key, shop_id)  # already revoked: no second event
        dispatcher.deliver_due()
    finally:
        dispatcher.stop()
    assert [r["kind"] for r in outbox_rows(box.world, platform="wechat")] == [
        "app_unauthorized",
        "app_verify_ticket",
    ]
    credentials = AppCredentials(app_key=app.app_key, **secrets_of(app))
    event = decode_component_event(
        query=dict(bodies[-1].url.params), body=bodies[-1].content, credentials=credentials
    )
    assert (event.info_type, event.authorizer_appid) == (
        "unauthorized",
        sandbox_wechat.shop_appid(box.world, shop_id),
    )


# --- ecbao's intake -------------------------------------------------------------------------------


def test_a_pushed_ticket_is_stored_encrypted_and_the_newest_is_kept(box, wx, dispatcher, transport):
    assert dispatcher.deliver_due() == 1
    assert transport.replies == [(200, b"success")]
    ticket, created = current_ticket(box, wx)
    app = stored(wx)
    assert (app.verify_ticket, app.verify_ticket_at) == (ticket, created)
    raw = raw_column(wx, "verify_ticket")
    assert ticket not in raw and decrypt_text(raw) == ticket  # encrypted at rest
    (receipt,) = PushReceipt.objects.all()
    assert (receipt.kind, receipt.status, receipt.app_key, receipt.error) == (
        "authorization",
        "routed",
        wx.app_key,
        "",
    )
    assert receipt.body.startswith("<xml><AppId>") and ticket not in receipt.body  # stored as received
    assert component.read_verify_ticket(wx.app_key) == ticket

    box.clock.advance(600)  # ten simulated minutes later: the next ticket replaces it
    assert dispatcher.deliver_due() == 1
    newer, newer_at = current_ticket(box, wx)
    assert newer != ticket and (stored(wx).verify_ticket, stored(wx).verify_ticket_at) == (newer, newer_at)
    assert [o["status"] for o in outbox_rows(box.world, platform="wechat")] == ["delivered", "delivered"]


def test_a_duplicate_or_older_ticket_never_overwrites_the_newer(box, wx, public_client):
    older = encoded_ticket_push(box, wx)
    box.clock.advance(600)
    newer = encoded_ticket_push(box, wx)
    newest_ticket, newest_at = current_ticket(box, wx)
    assert deliver(public_client, newer).content == b"success"
    raw = raw_column(wx, "verify_ticket")
    for push in (older, newer):  # a late retry of the older push, then a duplicate of the newer
        assert deliver(public_client, push).content == b"success"  # acknowledged: WeChat stops retrying
    assert raw_column(wx, "verify_ticket") == raw  # not even rewritten
    assert (stored(wx).verify_ticket, stored(wx).verify_ticket_at) == (newest_ticket, newest_at)
    receipts = list(PushReceipt.objects.order_by("id"))  # the duplicate is not stored again
    assert [r.status for r in receipts] == ["routed"] * 2
    assert [bool(r.error) for r in receipts] == [False, True]
    # the routing task (or ``channels_inbox --reroute``) applying a receipt again changes nothing
    assert intake.route_receipt(receipt_id=receipts[1].pk).status == PushReceipt.Status.ROUTED
    assert stored(wx).verify_ticket == newest_ticket


def test_a_bad_msg_signature_or_foreign_key_is_refused_and_nothing_is_stored(box, wx, public_client, caplog):
    push = encoded_ticket_push(box, wx)
    forged = EncodedPush(push.url.replace("msg_signature=", "msg_signature=0"), push.body, push.headers)
    other_key = "".join(reversed(wx.encoding_aes_key))
    encrypted = sandbox_wechat.encrypt_message(other_key, wx.app_key, b"<xml></xml>", b"0" * 16)
    timestamp, nonce = "1700000000", "42"
    foreign = EncodedPush(
        "http://localhost"
        + component.endpoint_path(wx.app_key)
        + "?timestamp=1700000000&nonce=42&encrypt_type=aes"
        f"&msg_signature={sandbox_wechat.signature(wx.push_token, timestamp, nonce, encrypted)}",
        sandbox_wechat.xml_message({"AppId": wx.app_key, "Encrypt": encrypted}).encode(),
        push.headers,
    )
    garbage = EncodedPush(push.url, b'<!DOCTYPE xml [<!ENTITY a "b">]><xml>&a;</xml>', push.headers)
    with caplog.at_level(logging.WARNING, logger="channels.component"):
        for bad in (forged, foreign, garbage):
            response = deliver(public_client, bad)
            assert (response.status_code, response.content) == (400, b"invalid signature")
        unknown = public_client.post(
            "/hooks/wechat/component/wx0000000000000000/" + "?" + urlsplit(push.url).query,
            data=push.body,
            content_type="text/xml",
        )
    assert unknown.status_code == 400
    assert len([r for r in caplog.records if "authorisation event" in r.getMessage()]) == 4
    assert not PushReceipt.objects.exists()
    assert (stored(wx).verify_ticket, stored(wx).verify_ticket_at, raw_column(wx, "verify_ticket")) == (
        "",
        None,
        "",
    )


# --- connecting, pulling, refreshing ----------------------------------------------------------------


def test_a_shop_connects_through_the_component_flow_pulls_orders_and_refreshes_with_the_stored_ticket(
    box, wx, dispatcher, owner, public_client, alpha
):
    dispatcher.deliver_due()  # the ticket arrives
    store = connect_through_the_shops_page(box, owner, public_client, alpha)
    shop_id = box.shop("wechat")
    assert store.platform_shop_id == sandbox_wechat.shop_username(box.world, shop_id)
    assert store.auth_mode == Store.AuthMode.OAUTH and store.app_key == wx.app_key
    assert store.refresh_token.startswith(sandbox_wechat.shop_appid(box.world, shop_id) + ":")
    assert calls(box, TICKET_PATH) == ["0"]  # the component token came from the pushed ticket

    order = box.order("wechat", pay=True)
    with schema_context(alpha.schema_name):
        result = sync.pull_orders(store_id=store.pk, now=datetime.fromtimestamp(box.clock.now() + 10, UTC))
        assert result.error == "" and result.orders_seen >= 1
        assert ChannelOrderState.objects.get(store=store, platform_order_id=order.order_id).status == "paid"
    connection.set_schema_to_public()

    # Two hours later the shop's token and the component token have expired; the stored ticket
    # (valid 12 h) gets a new component token, which renews the shop's token.
    box.clock.advance(7200 + 60)
    with schema_context(alpha.schema_name):
        before = Store.objects.get(pk=store.pk).access_token
        fresh = services.connector_for(Store.objects.get(pk=store.pk)).get_order(order.order_id)
        assert fresh.platform_order_id == order.order_id
        after = Store.objects.get(pk=store.pk)
        assert after.access_token != before and after.status == Store.Status.ACTIVE
    connection.set_schema_to_public()
    assert calls(box, REFRESH_PATH) == ["0"] and calls(box, TICKET_PATH) == ["0", "0"]


def test_one_component_token_is_shared_by_every_connector(box, wx, dispatcher, owner, public_client, alpha):
    dispatcher.deliver_due()
    store = connect_through_the_shops_page(box, owner, public_client, alpha)
    with schema_context(alpha.schema_name):
        for _ in range(2):  # two workers, each with its own connector, refresh the shop's token
            connector = services.connector_for(Store.objects.get(pk=store.pk))
            connector.apply_grant(connector.refresh_tokens())
    connection.set_schema_to_public()
    assert calls(box, REFRESH_PATH) == ["0", "0"]
    assert calls(box, TICKET_PATH) == ["0"]  # fetched once (for the code exchange), then reused
    app = stored(wx)
    token = app.component_token
    assert token and token not in raw_column(wx, "component_token")  # encrypted at rest
    left = app.component_token_expires_at - datetime.fromtimestamp(box.clock.now(), UTC)
    assert timedelta(hours=1, minutes=55) < left <= timedelta(hours=2)

    # ~5 minutes before it expires a connector asks for a new one, and shares that instead
    box.clock.advance(7200 - 240)
    with schema_context(alpha.schema_name):
        for _ in range(2):
            connector = services.connector_for(Store.objects.get(pk=store.pk))
            connector.apply_grant(connector.refresh_tokens())
    connection.set_schema_to_public()
    assert calls(box, TICKET_PATH) == ["0", "0"]
    assert stored(wx).component_token != token


def test_a_shared_component_token_wechat_refuses_is_replaced_once(
    box, wx, dispatcher, owner, public_client, alpha
):
    dispatcher.deliver_due()
    store = connect_through_the_shops_page(box, owner, public_client, alpha)
    later = datetime.fromtimestamp(box.clock.now(), UTC) + timedelta(hours=1)
    component.ComponentTokenStore(wx.app_key).save("86_not-a-token", later)  # e.g. from another deployment
    with schema_context(alpha.schema_name):
        connector = services.connector_for(Store.objects.get(pk=store.pk))
        connector.apply_grant(connector.refresh_tokens())
    connection.set_schema_to_public()
    assert calls(box, REFRESH_PATH) == ["40001", "0"]
    assert calls(box, TICKET_PATH) == ["0", "0"]  # the sandbox gave the live token back, now shared
    assert stored(wx).component_token not in ("", "86_not-a-token")


def test_unauthorized_marks_the_store_authorisation_expired(
    box, wx, dispatcher, owner, public_client, alpha, django_capture_on_commit_callbacks
):
    dispatcher.deliver_due()
    store = connect_through_the_shops_page(box, owner, public_client, alpha)
    box.clock.advance(max(0.0, time.time() - box.clock.now()) + 5)  # the platform's clock: after connecting
    box.world.revoke_authorization(wx.app_key, box.shop("wechat"))  # the merchant cancels on WeChat
    with django_capture_on_commit_callbacks() as queued:
        dispatcher.deliver_due()  # (plus the next ticket if the minute crossed a 10-minute slot)
    receipt = PushReceipt.objects.get(kind="authorization", status="received")
    assert len(queued) == 1  # applied by the routing task, after the reply
    for attempt in (1, 2):  # the task may run twice
        routed = intake.route_receipt(receipt_id=receipt.pk)
        assert (routed.status, routed.error, routed.attempts) == ("routed", "", attempt)
        with schema_context(alpha.schema_name):
            lost = Store.objects.get(pk=store.pk)
            assert lost.status == Store.Status.AUTH_EXPIRED
            assert "cancelled the authorisation" in lost.last_error
        connection.set_schema_to_public()
    page = owner.get("/shops/").content.decode()
    assert "badge-auth_expired" in page and 'href="/shops/connect/wechat/"' in page  # reconnect


def test_a_late_unauthorized_leaves_a_shop_connected_again_since_alone(
    box, wx, dispatcher, owner, public_client, alpha
):
    dispatcher.deliver_due()
    store = connect_through_the_shops_page(box, owner, public_client, alpha)
    authorizer = sandbox_wechat.shop_appid(box.world, box.shop("wechat"))

    def unauthorized(appid: str, at: datetime) -> ComponentEvent:
        return ComponentEvent(
            component_appid=wx.app_key, info_type="unauthorized", created_at=at, authorizer_appid=appid
        )

    # a retried push about a revocation from before the merchant authorised again
    late = unauthorized(authorizer, store.connected_at - timedelta(minutes=30))
    assert intake.apply_event(late) == f"no connected store for authorizer {authorizer}"
    assert intake.apply_event(unauthorized("wx0123456789abcdef", datetime.now(UTC))) == (
        "no connected store for authorizer wx0123456789abcdef"
    )
    with schema_context(alpha.schema_name):
        assert Store.objects.get(pk=store.pk).status == Store.Status.ACTIVE
    connection.set_schema_to_public()


# --- no ticket ------------------------------------------------------------------------------------


def test_without_a_fresh_ticket_the_button_is_hidden_and_the_error_says_why(box, wx, owner, alpha):
    page = owner.get("/shops/").content.decode()
    assert 'data-testid="connect-wechat"' not in page
    assert 'data-testid="wechat-ticket-pending"' in page and "component_verify_ticket" in page
    assert "微信小店的平台授权需等微信推送" in page  # zh-Hans first
    refused = owner.get("/shops/connect/wechat/", follow=True)  # the button's URL typed in
    assert refused.redirect_chain == [("/shops/", 302)]
    assert refused.content.decode().count("微信小店的平台授权需等微信推送") == 2  # message + line
    code = box.world.create_oauth_code(wx.app_key, box.shop("wechat")).code
    with schema_context(alpha.schema_name):
        connector = services.unbound_connector(platform="wechat", app_key=wx.app_key)
        with pytest.raises(
            component.VerifyTicketUnavailable, match="no component_verify_ticket has been received"
        ) as caught:
            connector.exchange_code(code=code)
    assert component.endpoint_path(wx.app_key) in str(caught.value)
    assert calls(box, TICKET_PATH) == []

    # a ticket older than 12 h is no better
    stale = datetime.now(UTC) - timedelta(hours=12, minutes=1)
    PlatformApp.objects.filter(app_key=wx.app_key).update(
        verify_ticket="ticket@@@old", verify_ticket_at=stale
    )
    assert 'data-testid="connect-wechat"' not in owner.get("/shops/").content.decode()
    with pytest.raises(component.VerifyTicketUnavailable, match="valid 12 h"):
        component.read_verify_ticket(wx.app_key)

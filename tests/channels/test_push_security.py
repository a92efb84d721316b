"""Pushes under attack: another tenant's app, replays (issue 12).

A merchant may register their own (self-use) app, so its keys are in an attacker's hands: a push
signed with them and naming another tenant's shop must be refused — on every platform and on the
WeChat third-party platform's authorisation-event URL — and nothing may reach the victim's inbox.
The pushes are the sandbox's own, re-signed / re-encrypted with the attacker's keys by the
sandbox's push crypto helpers.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode, urlsplit

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from channels import component, intake, services, tasks
from channels.connectors import push_codec
from channels.models import Store
from channels.routing.models import PushReceipt
from sandbox import douyin as sandbox_douyin
from sandbox import kuaishou as sandbox_kuaishou
from sandbox import wechat as sandbox_wechat
from sandbox.model import App
from sandbox.pushes import EncodedPush
from tests.channels import test_intake
from tests.channels.test_intake import ACKS, PLATFORMS, fake_connect, inbox_of, post, register

sandbox = test_intake.sandbox  # the three-platform sandbox fixture

ATTACKER = {
    "douyin": App(app_key="7300000000000000666", platform="douyin", name="evil", app_secret="evil-secret"),
    "kuaishou": App(
        app_key="ks666evil",
        platform="kuaishou",
        name="evil",
        app_secret="evil-secret",
        sign_secret="evil-sign",
        message_key=base64.b64encode(b"evil-message-key").decode(),
    ),
    "wechat": App(
        app_key="wx6666666666666666",
        platform="wechat",
        name="evil",
        app_secret="evil-secret",
        push_token="eviltoken",
        encoding_aes_key=base64.b64encode(hashlib.sha256(b"evil").digest()).decode().rstrip("="),
    ),
}


def attacker_secrets(app: App) -> dict:
    return {
        "douyin": {"app_secret": app.app_secret},
        "kuaishou": {
            "app_secret": app.app_secret,
            "sign_secret": app.sign_secret,
            "message_key": app.message_key,
        },
        "wechat": {"app_secret": app.app_secret, "token": app.push_token, "aes_key": app.encoding_aes_key},
    }[app.platform]


def resign(platform: str, push: EncodedPush, genuine: App, evil: App) -> EncodedPush:
    """The same message, signed / encrypted with the attacker's app instead of ``genuine``."""
    if platform == "douyin":
        headers = {**push.headers, "app-id": evil.app_key}
        headers["event-sign"] = sandbox_douyin.push_sign(evil.app_key, push.body, evil.app_secret)
        return EncodedPush(push.url, push.body, headers)
    if platform == "kuaishou":
        message = json.loads(sandbox_kuaishou.decrypt_push(genuine.message_key, push.body.decode()))
        message["appKey"] = evil.app_key
        body = sandbox_kuaishou.encrypt_push(evil.message_key, json.dumps(message)).encode()
        return EncodedPush(push.url, body, push.headers)
    envelope = json.loads(push.body)
    plain, _appid = sandbox_wechat.decrypt_message(genuine.encoding_aes_key, envelope["Encrypt"])
    encrypted = sandbox_wechat.encrypt_message(
        evil.encoding_aes_key, evil.app_key, plain, b"0123456789abcdef"
    )
    query = sandbox_wechat.secure_push_query(evil, str(int(datetime.now(UTC).timestamp())), "4242", encrypted)
    body = json.dumps({"ToUserName": envelope["ToUserName"], "Encrypt": encrypted}).encode()
    return EncodedPush(f"{urlsplit(push.url).path}?{urlencode(query)}", body, push.headers)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_issue12_d1_a_push_signed_with_another_tenants_app_never_reaches_the_victim(
    platform, sandbox, public_client, alpha, beta
):
    app = register(sandbox, platform)  # the deployment's app; alpha (the victim) connected a shop with it
    victim = fake_connect(alpha, platform, sandbox.shop_key(platform, 0), app.app_key)
    evil = ATTACKER[platform]  # beta registered its own app and connected its own shop with it
    services.register_app(
        platform=platform, app_key=evil.app_key, secrets=attacker_secrets(evil), tenant=beta
    )
    fake_connect(beta, platform, "beta-own-shop", evil.app_key)
    sandbox.subscribe(app, sandbox.shop(platform, 0))
    sandbox.order(platform)
    (genuine,) = sandbox.pushes()
    forged = resign(platform, genuine, app, evil)

    # Signed correctly with beta's keys, naming alpha's shop: refused at the door, nothing stored.
    response = post(public_client, platform, forged, path=f"/hooks/{platform}/{evil.app_key}/")
    assert response.content.decode() == push_codec(platform).reject().body
    assert not PushReceipt.objects.exists()

    # A receipt of that push stored anyway (e.g. before alpha connected the shop) is refused when routed.
    query = dict(pair.split("=", 1) for pair in urlsplit(forged.url).query.split("&") if pair)
    receipt = PushReceipt.objects.create(
        platform=platform,
        app_key=evil.app_key,
        query={k: v for k, v in query.items()},
        headers={k.lower(): v for k, v in forged.headers.items()},
        body=forged.body.decode(),
        messages=1,
    )
    routed = intake.route_receipt(receipt_id=receipt.pk)
    assert routed.status == PushReceipt.Status.UNROUTABLE
    assert routed.error == f"refused: shop(s) {sandbox.shop_key(platform, 0)} belong to another app"
    assert inbox_of(alpha) == [] and inbox_of(beta) == []

    # The genuine push still reaches alpha's store.
    assert post(public_client, platform, genuine).content.decode() == ACKS[platform][1]
    latest = PushReceipt.objects.exclude(pk=receipt.pk).get()
    assert intake.route_receipt(receipt_id=latest.pk).status == PushReceipt.Status.ROUTED
    (message,) = inbox_of(alpha)
    assert message.store_id == victim.pk
    assert inbox_of(beta) == []


def test_issue12_d1_the_component_authorisation_url_takes_no_other_apps_events(
    sandbox, public_client, alpha, beta
):
    """WeChat third-party platform: an ``unauthorized`` event for alpha's shop, encrypted with beta's
    self-use app keys, sent to beta's app id and to the deployment component's URL: both refused,
    alpha's store stays connected."""
    app = register(sandbox, "wechat")  # the deployment's WeChat app is a third-party platform
    victim = fake_connect(alpha, "wechat", sandbox.shop_key("wechat", 0), app.app_key)
    with schema_context(alpha.schema_name):
        Store.objects.filter(pk=victim.pk).update(refresh_token="wxauthorizer0001:refresh")
    connection.set_schema_to_public()
    evil = ATTACKER["wechat"]
    services.register_app(
        platform="wechat", app_key=evil.app_key, secrets=attacker_secrets(evil), tenant=beta
    )
    now = int(datetime.now(UTC).timestamp())
    fields = {
        "AppId": evil.app_key,
        "CreateTime": now,
        "InfoType": "unauthorized",
        "AuthorizerAppid": "wxauthorizer0001",
    }
    encrypted = sandbox_wechat.encrypt_message(
        evil.encoding_aes_key, evil.app_key, sandbox_wechat.xml_message(fields).encode(), b"0123456789abcdef"
    )
    query = sandbox_wechat.secure_push_query(evil, str(now), "77", encrypted)
    body = sandbox_wechat.xml_message({"AppId": evil.app_key, "Encrypt": encrypted}).encode()
    for target in (evil.app_key, app.app_key):
        response = public_client.post(
            f"{component.endpoint_path(target)}?{urlencode(query)}", data=body, content_type="text/xml"
        )
        assert response.content.decode() == push_codec("wechat").reject().body
    assert not PushReceipt.objects.exists()
    with schema_context(alpha.schema_name):
        assert Store.objects.get(pk=victim.pk).status == Store.Status.ACTIVE
    connection.set_schema_to_public()


# --- replays (issue 12 d6) --------------------------------------------------------------------------


def restamp(platform: str, push: EncodedPush, app: App, *, age: timedelta) -> EncodedPush:
    """The same push, validly signed with the app's own keys, with the timestamp it carries
    moved ``age`` into the past (what an old push replayed now looks like)."""
    then = int((datetime.now(UTC) - age).timestamp())
    if platform == "douyin":  # the event times in each message's data
        items = json.loads(push.body)
        for item in items:
            data = json.loads(item["data"])
            item["data"] = json.dumps({k: then if k.endswith("_time") else v for k, v in data.items()})
        body = json.dumps(items).encode()
        return resign("douyin", EncodedPush(push.url, body, push.headers), app, app)
    if platform == "kuaishou":  # the message's createTime / updateTime (ms)
        message = json.loads(sandbox_kuaishou.decrypt_push(app.message_key, push.body.decode()))
        message.update(createTime=then * 1000, updateTime=then * 1000)
        body = sandbox_kuaishou.encrypt_push(app.message_key, json.dumps(message)).encode()
        return EncodedPush(push.url, body, push.headers)
    encrypted = json.loads(push.body)["Encrypt"]  # WeChat: the signed query timestamp
    query = sandbox_wechat.secure_push_query(app, str(then), "31337", encrypted)
    return EncodedPush(f"{urlsplit(push.url).path}?{urlencode(query)}", push.body, push.headers)


def genuine_push(box, platform: str, tenant) -> tuple[App, EncodedPush]:
    """The deployment's app, a shop of ``tenant`` connected with it, and the push of a new order."""
    app = register(box, platform)
    fake_connect(tenant, platform, box.shop_key(platform, 0), app.app_key)
    box.subscribe(app, box.shop(platform, 0))
    box.order(platform)
    (push,) = box.pushes()
    return app, push


WINDOWS = {"douyin": timedelta(hours=12), "kuaishou": timedelta(hours=3), "wechat": timedelta(hours=4)}


@pytest.mark.parametrize("platform", PLATFORMS)
def test_issue12_d6_a_push_delivered_again_or_replayed_is_stored_once(
    platform, sandbox, public_client, alpha
):
    app, push = genuine_push(sandbox, platform, alpha)
    for _ in range(3):  # a redelivery after a lost acknowledgement, then a replay: acknowledged
        assert post(public_client, platform, push).content.decode() == ACKS[platform][1]
    (receipt,) = PushReceipt.objects.all()
    assert len(receipt.dedupe_key) == 64
    # The same messages re-stamped within the window (a retry stamped anew) are the same receipt too.
    recent = restamp(platform, push, app, age=timedelta(minutes=2))
    assert post(public_client, platform, recent).content.decode() == ACKS[platform][1]
    assert PushReceipt.objects.count() == 1


@pytest.mark.parametrize("platform", PLATFORMS)
def test_issue12_d6_a_push_older_than_the_platforms_window_is_refused(
    platform, sandbox, public_client, alpha
):
    app, push = genuine_push(sandbox, platform, alpha)
    reject = push_codec(platform).reject().body
    stale = restamp(platform, push, app, age=WINDOWS[platform] + timedelta(minutes=10))
    assert post(public_client, platform, stale).content.decode() == reject
    future = restamp(platform, push, app, age=-timedelta(minutes=40))  # stamped ahead of our clock
    assert post(public_client, platform, future).content.decode() == reject
    assert not PushReceipt.objects.exists()
    edge = restamp(platform, push, app, age=WINDOWS[platform] - timedelta(minutes=10))
    assert post(public_client, platform, edge).content.decode() == ACKS[platform][1]
    assert PushReceipt.objects.count() == 1


def test_issue12_d6_receipts_are_pruned_after_the_retention_period(db):
    now = timezone.now()
    for days, key in ((8, "a" * 64), (6, "b" * 64), (30, "")):
        receipt = PushReceipt.objects.create(platform="douyin", app_key="k", body="[]", dedupe_key=key)
        PushReceipt.objects.filter(pk=receipt.pk).update(received_at=now - timedelta(days=days))
    assert tasks.prune_push_receipts() >= 2
    assert list(PushReceipt.objects.filter(app_key="k").values_list("dedupe_key", flat=True)) == ["b" * 64]

"""Issue 15 item 4, "straight to the shipper": an after-sale on a supplier's dispatch reaches
that supplier's portal and API (and no other supplier's), the supplier answers — 已拦截 confirms
the dispatch's cancellation, 已收到退货 keeps good/defective counts, 拒绝 carries evidence kept
in the tenant's file storage — each answer once, and the supplier is told by a signed webhook.
After-sales come through the real path: the channel layer's stored version, then ingestion."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from aftersales import supplier as portal_service
from aftersales.models import AfterSale
from suppliers.models import Dispatch
from tenants import services as tenant_services
from tenants.accounts.models import Role
from tests.aftersales.portal_rig import CS, CT, ingest
from tests.conftest import api_key, make_user
from tests.suppliers import conftest as supplier_fixtures
from tests.suppliers import test_dispatch_notify
from tests.suppliers.portal_rig import client_for, two_suppliers

pytestmark = pytest.mark.django_db
store, skus = supplier_fixtures.store, supplier_fixtures.skus  # the orders fixtures
hook_server = test_dispatch_notify.hook_server  # a webhook receiver on loopback

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PHONE = re.compile(rb"(?<![\d*])1[3-9]\d{9}(?!\d)")


@pytest.fixture
def world(alpha, store, skus, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    w = two_suppliers(alpha, store, skus, (1, "TS-WHT-L", 1), (2, "CAP-RED", 2))
    w["store"] = store
    return w


def _answer_events(after_sale) -> int:
    return after_sale.events.filter(kind="supplier_answer").count()


def test_refund_before_shipment_reaches_the_supplier_and_intercepted_confirms_the_cancellation(alpha, world):
    a_client, b_client = client_for(alpha, world["user_a"]), client_for(alpha, world["user_b"])
    # the platform refunded the line before it shipped: the dispatch waits for the supplier
    after_sale = ingest(world["store"], world["order_a"], "AS-1", status=CS.SUCCEEDED, refund_fen=1990)
    assert (after_sale.supplier_id, after_sale.dispatch_id) == (world["a"].pk, world["dispatch_a"].pk)
    assert after_sale.type == AfterSale.Type.REFUND_UNSHIPPED
    world["dispatch_a"].refresh_from_db()
    assert world["dispatch_a"].status == Dispatch.Status.CANCELLING

    # A's portal: the 售后 badge, the 待处理 tab with 请确认拦截; B sees nothing of it
    home = a_client.get("/supplier/").content.decode()
    assert 'data-testid="aftersale-waiting">1<' in home
    page = a_client.get("/supplier/aftersales/").content.decode()
    assert f'data-after-sale-id="{after_sale.pk}"' in page and 'data-testid="needs-intercept"' in page
    assert "请确认拦截" in page
    assert (
        f'data-after-sale-id="{after_sale.pk}"'
        not in b_client.get("/supplier/aftersales/?tab=all").content.decode()
    )
    for url in (
        f"/supplier/aftersales/{after_sale.pk}/",
        f"/supplier/aftersales/{after_sale.pk}/evidence/0/",
    ):
        assert b_client.get(url).status_code == 404, url
    assert (
        b_client.post(f"/supplier/aftersales/{after_sale.pk}/answer/", {"answer": "intercepted"}).status_code
        == 404
    )
    detail = a_client.get(f"/supplier/aftersales/{after_sale.pk}/").content.decode()
    assert "SUP-CAP-RED" in detail and "138****8888" in detail and not PHONE.search(detail.encode())
    assert 'data-testid="answer-intercepted"' in detail and 'data-testid="answer-received"' not in detail

    # 已拦截: the answer is recorded, the dispatch's cancellation confirmed (intercepted)
    response = a_client.post(f"/supplier/aftersales/{after_sale.pk}/answer/", {"answer": "intercepted"})
    assert response.status_code == 302
    after_sale.refresh_from_db()
    world["dispatch_a"].refresh_from_db()
    assert after_sale.supplier_answer == "intercepted" and after_sale.supplier_answered_at is not None
    assert world["dispatch_a"].status == Dispatch.Status.CANCELLED and world["dispatch_a"].intercepted is True
    assert _answer_events(after_sale) == 1
    event = after_sale.events.get(kind="supplier_answer")
    assert event.source == "supplier" and event.actor_id == world["user_a"].pk
    # the order's history says so too (aftersales.services.record)
    assert world["order_a"].events.filter(kind="after_sale_supplier_answer").count() == 1
    # the same answer again (a double click, a retried request): still one event
    a_client.post(f"/supplier/aftersales/{after_sale.pk}/answer/", {"answer": "intercepted"})
    assert _answer_events(after_sale) == 1
    # handled: out of 待处理, into 已处理; the badge is gone
    assert (
        f'data-after-sale-id="{after_sale.pk}"' not in a_client.get("/supplier/aftersales/").content.decode()
    )
    assert (
        f'data-after-sale-id="{after_sale.pk}"'
        in a_client.get("/supplier/aftersales/?tab=answered").content.decode()
    )
    assert 'data-testid="aftersale-waiting">0<' in a_client.get("/supplier/").content.decode()
    # the service refuses another supplier outright
    with pytest.raises(AfterSale.DoesNotExist):
        portal_service.answer(after_sale, supplier=world["b"], answer="not_intercepted")


def test_return_received_with_counts_and_a_refusal_with_evidence_in_the_tenant_storage(
    alpha, world, settings
):
    a_client, b_client = client_for(alpha, world["user_a"]), client_for(alpha, world["user_b"])
    ret = ingest(
        world["store"], world["order_a"], "AS-2", type=CT.RETURN_REFUND, status=CS.WAITING_MERCHANT_RECEIPT,
        shipped=True, tracking="YT9000001", evidence=("https://img.example/1.jpg",),
    )  # fmt: skip
    assert ret.supplier_id == world["a"].pk and ret.queue == AfterSale.Queue.AWAITING_RECEIPT
    page = a_client.get("/supplier/aftersales/").content.decode()
    assert f'data-after-sale-id="{ret.pk}"' in page and 'data-testid="needs-receipt"' in page
    detail = a_client.get(f"/supplier/aftersales/{ret.pk}/").content.decode()
    assert "YT9000001" in detail and "https://img.example/1.jpg" in detail
    line = ret.lines.get()
    assert line.quantity == 2
    # 已收到退货 with one good, one defective
    a_client.post(
        f"/supplier/aftersales/{ret.pk}/answer/",
        {"answer": "received", f"good_{line.pk}": "1", f"defective_{line.pk}": "1", "note": "外盒破损"},
    )
    ret.refresh_from_db()
    assert ret.supplier_answer == "received"
    assert ret.events.get(kind="supplier_answer").data["counts"] == {str(line.pk): [1, 1]}
    # more pieces than the line has: refused, nothing changes
    a_client.post(
        f"/supplier/aftersales/{ret.pk}/answer/", {"answer": "received", f"good_{line.pk}": "3", "note": "x"}
    )
    assert _answer_events(ret) == 1

    # 拒绝 needs a note; evidence must be an image or a PDF (by content) of at most 5 MB
    refused_url = f"/supplier/aftersales/{ret.pk}/answer/"
    a_client.post(refused_url, {"answer": "refused", "note": ""})
    fake = SimpleUploadedFile("photo.png", b"MZ not an image", content_type="image/png")
    a_client.post(refused_url, {"answer": "refused", "note": "买家寄回的不是我们的货", "evidence": [fake]})
    big = SimpleUploadedFile("big.png", PNG + b"\x00" * (5 * 1024 * 1024), content_type="image/png")
    a_client.post(refused_url, {"answer": "refused", "note": "买家寄回的不是我们的货", "evidence": [big]})
    ret.refresh_from_db()
    assert ret.supplier_answer == "received" and ret.supplier_evidence == []
    photo = SimpleUploadedFile("退货照片.png", PNG, content_type="image/png")
    a_client.post(refused_url, {"answer": "refused", "note": "买家寄回的不是我们的货", "evidence": [photo]})
    ret.refresh_from_db()
    assert ret.supplier_answer == "refused" and ret.supplier_note == "买家寄回的不是我们的货"
    [entry] = ret.supplier_evidence
    assert entry["content_type"] == "image/png" and entry["sha256"] == hashlib.sha256(PNG).hexdigest()
    # kept in the tenant's own folder of the file storage (MEDIA_ROOT/<schema>/…)
    stored = Path(settings.MEDIA_ROOT) / alpha.schema_name / entry["path"]
    assert stored.read_bytes() == PNG
    # the same refusal with the same photo again: one event, one file
    photo.seek(0)
    a_client.post(refused_url, {"answer": "refused", "note": "买家寄回的不是我们的货", "evidence": [photo]})
    ret.refresh_from_db()
    assert len(ret.supplier_evidence) == 1 and ret.events.filter(kind="supplier_answer").count() == 2

    # served back to A and to the merchant, never to B or to another tenant's domain
    evidence_url = f"/supplier/aftersales/{ret.pk}/evidence/0/"
    response = a_client.get(evidence_url)
    assert response.status_code == 200 and b"".join(response.streaming_content) == PNG
    assert response["Content-Type"] == "image/png" and "no-store" in response["Cache-Control"]
    assert b_client.get(evidence_url).status_code == 404
    assert a_client.get(f"/supplier/aftersales/{ret.pk}/evidence/1/").status_code == 404
    owner = make_user(alpha, "owner-ev", Role.OWNER)
    merchant = client_for(alpha, owner)
    merchant_url = f"/aftersales/{ret.pk}/supplier-evidence/0/"
    response = merchant.get(merchant_url)
    assert response.status_code == 200 and b"".join(response.streaming_content) == PNG
    assert a_client.get(merchant_url).status_code == 403  # a supplier is refused the merchant's pages
    session = a_client.cookies[settings.SESSION_COOKIE_NAME].value
    other = Client(HTTP_HOST=tenant_services.domain_for("beta"), raise_request_exception=False)
    other.cookies[settings.SESSION_COOKIE_NAME] = session
    assert other.get(evidence_url).status_code in (302, 403, 404)


def test_supplier_api_lists_its_own_and_answers_once_per_idempotency_key(alpha, world):
    after_sale = ingest(world["store"], world["order_a"], "AS-3", status=CS.SUCCEEDED)
    host = tenant_services.domain_for(alpha.slug)
    a_api = Client(HTTP_HOST=host, HTTP_AUTHORIZATION=f"Token {api_key(alpha, 'sup-a')}")
    b_api = Client(HTTP_HOST=host, HTTP_AUTHORIZATION=f"Token {api_key(alpha, 'sup-b')}")
    base = "/api/v1/supplier/after-sales/"
    listed = a_api.get(base + "?queue=waiting").json()
    assert [row["id"] for row in listed["results"]] == [after_sale.pk]
    assert listed["results"][0]["needs"] == "intercept"
    assert b_api.get(base).json()["results"] == []
    assert a_api.get(base + "?answered=true").json()["results"] == []
    detail = a_api.get(f"{base}{after_sale.pk}/")
    assert detail.status_code == 200 and detail.json()["receiver"]["phone"] == "138****8888"
    assert detail.json()["lines"][0]["supplier_code"] == "SUP-CAP-RED" and not PHONE.search(detail.content)
    assert b_api.get(f"{base}{after_sale.pk}/").status_code == 404
    assert (
        b_api.post(
            f"{base}{after_sale.pk}/answer/", {"answer": "intercepted"}, content_type="application/json"
        ).status_code
        == 404
    )

    refused = a_api.post(
        f"{base}{after_sale.pk}/answer/", {"answer": "refused"}, content_type="application/json"
    )
    assert refused.status_code == 400  # a refusal without a note
    received = a_api.post(
        f"{base}{after_sale.pk}/answer/", {"answer": "received"}, content_type="application/json"
    )
    assert received.status_code == 400  # not a return
    for _ in range(2):
        response = a_api.post(
            f"{base}{after_sale.pk}/answer/",
            {"answer": "not_intercepted", "note": "已发出"},
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY="answer-1",
        )
        assert response.status_code == 200 and response.json()["supplier_answer"] == "not_intercepted"
    assert _answer_events(after_sale) == 1
    world["dispatch_a"].refresh_from_db()
    assert (
        world["dispatch_a"].status == Dispatch.Status.CANCELLED and world["dispatch_a"].intercepted is False
    )
    assert [r["id"] for r in a_api.get(base + "?queue=answered").json()["results"]] == [after_sale.pk]
    # a staff token is refused the supplier API
    make_user(alpha, "op-api", Role.OPERATOR)
    staff = Client(HTTP_HOST=host, HTTP_AUTHORIZATION=f"Token {api_key(alpha, 'op-api')}")
    assert staff.get(base).status_code == 403


def test_new_after_sale_is_sent_to_the_supplier_signed(
    alpha,
    world,
    hook_server,
    settings,
    django_capture_on_commit_callbacks,
):
    settings.SUPPLIER_WEBHOOK_ALLOW_PRIVATE = True
    url, received, answers = hook_server
    world["a"].webhook_url, world["a"].webhook_secret = url, "as-secret"
    world["a"].save()
    after_sale = ingest(world["store"], world["order_a"], "AS-4", status=CS.WAITING_MERCHANT)
    with django_capture_on_commit_callbacks() as callbacks:
        portal_service.notify_new(after_sale)
    assert len(callbacks) == 1
    answers.append(500)  # the supplier's server fails once: retried with the same delivery id
    assert portal_service.notify_task.apply(args=[after_sale.pk]).get() is True
    assert len(received) == 2
    headers, body = received[-1]
    expected = hmac.new(b"as-secret", headers["x-ecbao-timestamp"].encode() + b"." + body, hashlib.sha256)
    assert headers["x-ecbao-signature"] == "sha256=" + expected.hexdigest()
    assert (
        headers["x-ecbao-event"] == "after_sale"
        and headers["x-ecbao-delivery"] == f"{after_sale.pk}:after_sale"
    )
    payload = json.loads(body)
    assert payload["after_sale"]["dispatch"] == world["dispatch_a"].pk
    assert payload["after_sale"]["lines"][0]["supplier_code"] == "SUP-CAP-RED"
    assert not PHONE.search(body) and "$tel$" not in body.decode()
    # sent once: a duplicate task sends nothing
    assert portal_service.notify_task.apply(args=[after_sale.pk]).get() is False
    assert len(received) == 2


def test_new_after_sale_email_is_in_chinese_with_codes_and_no_buyer_data(alpha, world, mailoutbox):
    world["a"].notify_email = "ops@sa.example"
    world["a"].save()
    after_sale = ingest(
        world["store"], world["order_a"], "AS-5", type=CT.RETURN_REFUND, shipped=True, tracking="YT1"
    )
    assert portal_service.notify_task.apply(args=[after_sale.pk]).get() is True
    [message] = mailoutbox
    assert message.to == ["ops@sa.example"] and "退货退款" in message.subject
    assert "SUP-CAP-RED" in message.body and "YT1" in message.body and "供应商门户" in message.body
    assert not PHONE.search(message.body.encode()) and "张" not in message.body
    assert after_sale.events.filter(kind="supplier_notified").count() == 1
    assert portal_service.notify_task.apply(args=[after_sale.pk]).get() is False and len(mailoutbox) == 1

"""Nothing counts as processed that nothing consumed, and nothing waits forever for a lost task
(issue 11 d8).

- After-sale pushes: the after-sale is fetched from the platform and stored as a version
  (``AfterSaleSnapshot`` / ``ChannelAfterSaleState``, a stale version never replaces the newest)
  before the message is "processed"; a failed fetch leaves it "failed".
- Messages of kinds nothing consumes are "ignored" on delivery, never "processed".
- Receipts still "received" and messages still "pending" after their task was lost are enqueued
  again by the periodic sweeps; ``retry_failed_inbox`` skips messages attempted recently.

The enqueued tasks are read back from the real Redis broker queue.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from channels import intake, services, tasks
from channels.models import AfterSaleSnapshot, ChannelAfterSaleState, InboxMessage
from channels.routing.models import PushReceipt
from channels.types import AfterSale, AfterSaleItem, AfterSaleStatus, AfterSaleType, Platform
from ecbao.celery import app as celery_app
from sandbox import douyin as sandbox_douyin
from sandbox.pushes import EncodedPush
from tests.channels import test_intake
from tests.channels.test_intake import connect_for_real, fake_connect, inbox_of, post, register

sandbox = test_intake.sandbox  # the three-platform sandbox fixture
AFTER_SALE_PATHS = {"douyin": "/afterSale/List", "kuaishou": "/open/seller/order/refund/detail"}


def enqueued(task: str) -> list[list]:
    """Arguments of every ``task`` message waiting in this run's broker queue (real Redis)."""
    with celery_app.connection_for_write() as conn:
        raw = conn.default_channel.client.lrange(celery_app.conf.task_default_queue, 0, -1)
    found = []
    for item in raw:
        message = json.loads(item)
        if message["headers"]["task"] == task:
            args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
            found.append(args)
    return found


@pytest.mark.parametrize("platform", ["douyin", "kuaishou"])
def test_issue11_d8_an_after_sale_push_is_stored_as_a_version_before_it_counts_as_processed(
    platform, sandbox, public_client, alpha
):
    store = connect_for_real(sandbox, platform, alpha)
    sandbox.subscribe(sandbox.app(platform), sandbox.shop(platform))
    order = sandbox.order(platform, pay=True)
    applied = sandbox.world.apply_aftersale(order.order_id, order.lines[0].line_id, kind="refund_unshipped")

    def route_new_pushes() -> list[InboxMessage]:
        for push in sandbox.pushes():
            post(public_client, platform, push)
        for receipt in PushReceipt.objects.filter(status=PushReceipt.Status.RECEIVED).order_by("id"):
            intake.route_receipt(receipt_id=receipt.pk)
        return [m for m in inbox_of(alpha) if m.payload["kind"] == "after_sale"]

    (message,) = route_new_pushes()
    assert message.payload["object_id"] == applied.aftersale_id
    with schema_context(alpha.schema_name):
        # The platform cannot be reached: the message fails, nothing is stored.
        sandbox.faults.set(platform, AFTER_SALE_PATHS[platform], http_5xx_rate=1.0)
        with pytest.raises(Exception, match="HTTP 50"):
            intake.process_inbox_message(message_id=message.pk)
        assert InboxMessage.objects.get(pk=message.pk).status == InboxMessage.Status.FAILED
        assert not ChannelAfterSaleState.objects.exists()
        sandbox.faults.clear(platform)

        done = intake.process_inbox_message(message_id=message.pk)
        assert done.status == InboxMessage.Status.PROCESSED
        state = ChannelAfterSaleState.objects.get(store=store, platform_after_sale_id=applied.aftersale_id)
        assert state.status == "waiting_merchant" and state.platform_order_id
        first = state.snapshot
    connection.set_schema_to_public()

    sandbox.world.agree_aftersale(applied.aftersale_id)  # the merchant agreed on the platform
    newer = [m for m in route_new_pushes() if m.pk != message.pk]
    with schema_context(alpha.schema_name):
        for later in newer:
            intake.process_inbox_message(message_id=later.pk)
        state = ChannelAfterSaleState.objects.get(store=store, platform_after_sale_id=applied.aftersale_id)
        assert state.snapshot_id != first.pk and state.platform_updated_at >= first.platform_updated_at
        assert state.status in ("refunding", "succeeded")
        # The older version, stored again (a late retry), is kept once and never replaces the newer.
        stale = first.normalized
        again = AfterSale(
            **{
                **stale,
                "platform": Platform(stale["platform"]),
                "type": AfterSaleType(stale["type"]),
                "status": AfterSaleStatus(stale["status"]),
                "created_at": datetime.fromisoformat(stale["created_at"]),
                "updated_at": first.platform_updated_at,
                "deadline": datetime.fromisoformat(stale["deadline"]) if stale.get("deadline") else None,
                "evidence": tuple(stale.get("evidence") or ()),
                "items": tuple(AfterSaleItem(**i) for i in stale.get("items") or ()),
            }
        )
        assert services.store_after_sale_version(store=store, after_sale=again, source="push") is False
        assert ChannelAfterSaleState.objects.get(pk=state.pk).snapshot_id == state.snapshot_id
        assert AfterSaleSnapshot.objects.filter(platform_after_sale_id=applied.aftersale_id).count() == 2
    connection.set_schema_to_public()


def test_issue11_d8_a_message_nothing_consumes_is_ignored_not_processed(sandbox, public_client, alpha):
    app = register(sandbox, "douyin")
    shop = sandbox.shop("douyin")
    fake_connect(alpha, "douyin", shop, app.app_key)
    data = json.dumps({"shop_id": int(shop), "product_id": 3512345678901234567})
    body = json.dumps([{"tag": "400", "msg_id": "7301-product-1", "data": data}]).encode()
    headers = {
        "Content-Type": "application/json",
        "app-id": app.app_key,
        "event-sign": sandbox_douyin.push_sign(app.app_key, body, app.app_secret),
    }
    assert post(public_client, "douyin", EncodedPush("/hooks/douyin/", body, headers)).status_code == 200
    intake.route_receipt(receipt_id=PushReceipt.objects.get().pk)
    (message,) = inbox_of(alpha)
    assert (message.topic, message.status) == ("400", InboxMessage.Status.IGNORED)
    with schema_context(alpha.schema_name):
        assert intake.process_inbox_message(message_id=message.pk).status == InboxMessage.Status.IGNORED
        # One delivered as pending before (an older ecbao) is ignored when its turn comes, not processed.
        legacy = InboxMessage.objects.create(
            platform="douyin",
            message_id="7301-product-0",
            topic="400",
            payload={"kind": "product", "object_id": "1"},
        )
        assert intake.process_inbox_message(message_id=legacy.pk).status == InboxMessage.Status.IGNORED
    connection.set_schema_to_public()


def test_issue11_d8_receipts_whose_routing_task_was_lost_are_routed_again(db):
    now = timezone.now()
    rows = {}
    for name, status, age in (
        ("lost", PushReceipt.Status.RECEIVED, 10),
        ("fresh", PushReceipt.Status.RECEIVED, 1),
        ("routed", PushReceipt.Status.ROUTED, 10),
    ):
        receipt = PushReceipt.objects.create(platform="douyin", app_key="k", body="[]", status=status)
        PushReceipt.objects.filter(pk=receipt.pk).update(received_at=now - timedelta(minutes=age))
        rows[name] = receipt.pk
    assert tasks.resend_stuck_receipts() >= 1  # (other tests' committed receipts may be stuck too)
    sent = [args[0] for args in enqueued("channels.tasks.route_push_receipt")]
    assert rows["lost"] in sent and rows["fresh"] not in sent and rows["routed"] not in sent


def test_issue11_d8_pending_messages_whose_task_was_lost_are_processed_again(in_alpha):
    now = timezone.now()
    rows = {}
    for name, status, age, attempted in (
        ("lost", InboxMessage.Status.PENDING, 10, None),
        ("lost-mid-attempt", InboxMessage.Status.PENDING, 30, 20),
        ("fresh", InboxMessage.Status.PENDING, 1, None),
        ("being-processed", InboxMessage.Status.PENDING, 30, 1),
        ("processed", InboxMessage.Status.PROCESSED, 10, 9),
    ):
        message = InboxMessage.objects.create(
            platform="douyin", message_id=f"m-{name}", topic="100", payload={"kind": "order"}, status=status
        )
        InboxMessage.objects.filter(pk=message.pk).update(
            received_at=now - timedelta(minutes=age),
            attempted_at=None if attempted is None else now - timedelta(minutes=attempted),
        )
        rows[name] = message.pk
    assert tasks.resend_stuck_messages() == 2
    sent = {args[0] for args in enqueued("channels.tasks.process_inbox_message_task")}
    assert {rows["lost"], rows["lost-mid-attempt"]} <= sent
    assert not {rows["fresh"], rows["being-processed"], rows["processed"]} & sent


def test_issue11_d8_retry_failed_inbox_skips_messages_attempted_recently(
    in_alpha, django_capture_on_commit_callbacks
):
    now = timezone.now()
    rows = {}
    for name, attempts, attempted in (("due", 2, 10), ("recent", 2, 1), ("exhausted", 10, 60)):
        message = InboxMessage.objects.create(
            platform="douyin",
            message_id=f"f-{name}",
            topic="100",
            payload={"kind": "order"},
            status=InboxMessage.Status.FAILED,
            attempts=attempts,
        )
        InboxMessage.objects.filter(pk=message.pk).update(attempted_at=now - timedelta(minutes=attempted))
        rows[name] = message.pk
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.retry_failed_inbox() == 1
    status = dict(InboxMessage.objects.filter(pk__in=rows.values()).values_list("pk", "status"))
    assert status[rows["due"]] == InboxMessage.Status.PENDING
    assert status[rows["recent"]] == status[rows["exhausted"]] == InboxMessage.Status.FAILED
    assert rows["due"] in {args[0] for args in enqueued("channels.tasks.process_inbox_message_task")}


def test_issue11_d8_the_receipt_sweeps_run_once_in_the_public_schema_the_inbox_sweep_per_tenant(alpha, beta):
    from celery.signals import before_task_publish
    from tenant_schemas_celery.scheduler import TenantAwareScheduler

    from tenants.models import Tenant

    published = []

    def capture(headers=None, **kwargs):
        published.append((headers.get("task"), headers.get("_schema_name")))

    names = (
        "channels.resend_stuck_receipts",
        "channels.prune_push_receipts",
        "channels.resend_stuck_messages",
    )
    before_task_publish.connect(capture)
    try:
        scheduler = TenantAwareScheduler(app=celery_app, lazy=True)
        scheduler.setup_schedule()
        for name, entry in scheduler.schedule.items():
            if name.split("@")[0] in names:
                scheduler.apply_entry(entry)
    finally:
        before_task_publish.disconnect(capture)
        connection.set_schema_to_public()

    def schemas(task: str) -> list[str]:
        return sorted(schema for name, schema in published if name == task)

    assert schemas("channels.tasks.resend_stuck_receipts") == ["public"]
    assert schemas("channels.tasks.prune_push_receipts") == ["public"]
    tenants = sorted(Tenant.objects.exclude(schema_name="public").values_list("schema_name", flat=True))
    assert {"alpha", "beta"} <= set(tenants) and schemas("channels.tasks.resend_stuck_messages") == tenants

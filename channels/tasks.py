"""Channel-layer Celery tasks: thin wrappers around sync, intake and services.

The push tasks intake enqueues itself (``route_push_receipt``, ``process_inbox_message_task``)
are defined in ``channels.intake`` and re-exported here: ``tasks`` sits on top of the channel
modules and nothing below imports it."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from channels import intake, services, sync
from channels.errors import ChannelError
from channels.intake import process_inbox_message_task, route_push_receipt  # noqa: F401 - re-exported
from channels.models import Store
from ecbao.celery import register_periodic


@shared_task(acks_late=True, max_retries=3, default_retry_delay=10)
def pull_store_orders(store_id: int) -> dict:
    result = sync.pull_orders(store_id=store_id)
    return {
        "store_id": store_id,
        "windows": result.windows,
        "seen": result.orders_seen,
        "changed": result.orders_changed,
        "skipped": result.skipped,
        "error": result.error,
    }


@shared_task(acks_late=True)
def pull_all_stores() -> int:
    """Periodic safety net behind the pushes: pull every active store."""
    ids = list(
        Store.objects.filter(status__in=[Store.Status.ACTIVE, Store.Status.ERROR]).values_list(
            "pk", flat=True
        )
    )
    for store_id in ids:
        pull_store_orders.delay(store_id)
    return len(ids)


@shared_task(acks_late=True, max_retries=3, default_retry_delay=10)
def pull_store_after_sales(store_id: int) -> dict:
    """One store's after-sales since its watermark (``sync.pull_after_sales``)."""
    result = sync.pull_after_sales(store_id=store_id)
    return {
        "store_id": store_id,
        "windows": result.windows,
        "seen": result.seen,
        "changed": result.changed,
        "reread": result.reread,
        "skipped": result.skipped,
        "error": result.error,
    }


@shared_task(acks_late=True)
def pull_all_after_sales() -> int:
    """Periodic safety net behind the after-sale pushes: one pull task per active store (a
    failing store fails its own task only; its error shows on the store and its cursor)."""
    ids = list(
        Store.objects.filter(status__in=[Store.Status.ACTIVE, Store.Status.ERROR]).values_list(
            "pk", flat=True
        )
    )
    for store_id in ids:
        pull_store_after_sales.delay(store_id)
    return len(ids)


@shared_task(acks_late=True)
def retry_failed_inbox(max_messages: int = 200) -> int:
    """Periodic: re-queue failed messages whose last attempt is at least 5 minutes old."""
    return intake.retry_failed_messages(limit=max_messages)


@shared_task(acks_late=True)
def resend_stuck_messages() -> int:
    """Periodic, per tenant: processing for inbox messages whose task was lost."""
    return intake.resend_stuck_messages()


@shared_task(acks_late=True)
def resend_stuck_receipts() -> int:
    """Periodic, public schema: routing for push receipts whose task was lost."""
    return intake.resend_stuck_receipts()


@shared_task(acks_late=True)
def prune_push_receipts() -> int:
    """Periodic, public schema: receipts older than the retention period are deleted."""
    return intake.prune_receipts()


@shared_task(acks_late=True)
def refresh_expiring_tokens() -> int:
    """Periodic: refresh tokens ahead of expiry so pulls and pushes never hit an expired one."""
    soon = timezone.now() + timedelta(hours=2)
    count = 0
    for store in Store.objects.filter(status=Store.Status.ACTIVE, access_expires_at__lt=soon):
        connector = services.connector_for(store)
        try:
            connector.refresh_now()
            count += 1
        except ChannelError as exc:
            services.record_store_error(store=store, error=exc)
    return count


register_periodic("channels.pull_all_stores", "channels.tasks.pull_all_stores", 120.0)
# [choice] every 5 minutes: pushes carry the news, the pull repairs what a lost push missed
register_periodic("channels.pull_all_after_sales", "channels.tasks.pull_all_after_sales", 300.0)
register_periodic("channels.retry_failed_inbox", "channels.tasks.retry_failed_inbox", 300.0)
register_periodic("channels.resend_stuck_messages", "channels.tasks.resend_stuck_messages", 300.0)
register_periodic(
    "channels.resend_stuck_receipts", "channels.tasks.resend_stuck_receipts", 300.0, tenant_schemas=["public"]
)
register_periodic(
    "channels.prune_push_receipts", "channels.tasks.prune_push_receipts", 3600.0, tenant_schemas=["public"]
)
register_periodic("channels.refresh_expiring_tokens", "channels.tasks.refresh_expiring_tokens", 600.0)

"""Channel-layer Celery tasks: thin wrappers around sync, intake and services.

The push tasks intake enqueues itself (``route_push_receipt``, ``process_inbox_message_task``)
are defined in ``channels.intake`` and re-exported here: ``tasks`` sits on top of the channel
modules and nothing below imports it."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from channels import intake, services, sync
from channels.errors import ChannelError
from channels.intake import process_inbox_message_task, route_push_receipt  # noqa: F401 - re-exported
from channels.models import InboxMessage, Store
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


@shared_task(acks_late=True)
def retry_failed_inbox(max_messages: int = 200) -> int:
    """Periodic: re-queue failed messages whose last attempt is not too recent."""
    ids = list(
        InboxMessage.objects.filter(status=InboxMessage.Status.FAILED, attempts__lt=10)
        .order_by("received_at")
        .values_list("pk", flat=True)[:max_messages]
    )
    with transaction.atomic():
        for message_id in ids:
            intake.retry_inbox_message(message_id=message_id)
    return len(ids)


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
register_periodic("channels.retry_failed_inbox", "channels.tasks.retry_failed_inbox", 300.0)
register_periodic("channels.refresh_expiring_tokens", "channels.tasks.refresh_expiring_tokens", 600.0)

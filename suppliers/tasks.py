"""Celery tasks of dispatches (thin). Tenant-aware: each runs in the schema it was sent from
(tenant-schemas-celery carries it); the beat entry runs once per tenant."""

from __future__ import annotations

from celery import shared_task

from ecbao.celery import register_periodic
from suppliers import dispatches, notify

NOTIFY_RETRIES = 8


def backoff(retries: int) -> int:
    """Seconds before retry ``retries + 1``: 15 s, 30 s, 1 min … capped at 30 min."""
    return min(1800, 15 * 2**retries)


@shared_task(bind=True, acks_late=True, max_retries=NOTIFY_RETRIES)
def notify_task(self, dispatch_id: int, event: str) -> bool:
    """Tell the supplier about a new or cancelled dispatch (``suppliers.notify.notify``);
    retried with backoff, the last error stays on the dispatch (``notify_error``)."""
    try:
        return notify.notify(dispatch_id, event)
    except notify.NotifyError as exc:
        if self.request.retries >= self.max_retries:
            return False
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc


@shared_task(acks_late=True, max_retries=0)
def refresh_dispatches_task() -> int:
    """Open dispatches whose parcels shipped (from the portal, the workbench or the platform)
    catch up with them; ``dispatches.refresh`` is idempotent."""
    return dispatches.refresh_open()


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def follow_shipped_parcels_task(parcel_ids: list[int]) -> int:
    """Parcels shipped (``logistics.events.ParcelsShipped``): the dispatches of their
    fulfilments follow at once (``dispatches.refresh_fulfilments``, idempotent) instead of
    waiting for the sweep below. Returns how many changed status."""
    return dispatches.follow_shipped_parcels(parcel_ids)


def on_parcels_shipped(event) -> None:
    """``ParcelsShipped`` (after the shipping commit): a task in this tenant's schema."""
    follow_shipped_parcels_task.delay(list(event.parcel_ids))


register_periodic("suppliers.refresh_dispatches", "suppliers.tasks.refresh_dispatches_task", 300.0)

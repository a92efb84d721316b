from celery import shared_task

from ecbao.celery import register_periodic
from inventory import sync
from inventory.models import Listing, StockChange


@shared_task(acks_late=True)
def sync_stock_changes() -> dict:
    """Periodic safety net behind the stock-sync daemon: drain the outbox, then push the
    listings that may show a wrong number (``sync.push_unsynced_listings``)."""
    result = sync.drain()
    if StockChange.objects.exists():
        sync.schedule_stock_sync()
    checked = sync.push_unsynced_listings()
    return {
        "changes": result.changes,
        "skus": result.skus,
        "pushes": sum(1 for o in [*result.outcomes, *checked.outcomes] if o.pushed),
        "checked": len(checked.outcomes),
    }


@shared_task(acks_late=True, max_retries=5)
def push_listing_task(listing_id: int, force: bool = False) -> dict:
    outcome = sync.push_listing(listing_id=listing_id, force=force)
    return {
        "listing": listing_id,
        "quantity": outcome.quantity,
        "pushed": outcome.pushed,
        "error": outcome.error,
    }


@shared_task(acks_late=True)
def retry_failed_pushes() -> int:
    """Periodic: failed pushes are retried (each push recomputes the current number)."""
    ids = list(
        Listing.objects.filter(
            push_state=Listing.PushState.FAILED, push_attempts__lt=sync.MAX_PUSH_ATTEMPTS
        ).values_list("pk", flat=True)[:500]
    )
    for listing_id in ids:
        push_listing_task.delay(listing_id)
    return len(ids)


register_periodic("inventory.sync_stock_changes", "inventory.tasks.sync_stock_changes", 30.0)
register_periodic("inventory.retry_failed_pushes", "inventory.tasks.retry_failed_pushes", 60.0)

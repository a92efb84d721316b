from celery import shared_task

from ecbao.celery import register_periodic
from orders import services


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def ingest_snapshot_task(snapshot_id: int) -> str:
    order = services.ingest_snapshot(snapshot_id=snapshot_id)
    return order.status if order else "missing"


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def ingest_snapshots_task(snapshot_ids: list[int]) -> int:
    """A pulled page of versions, applied set-based (``services.ingest_batch``)."""
    return services.ingest_snapshots(snapshot_ids=snapshot_ids)


@shared_task(acks_late=True)
def reconcile_ingestion_task() -> int:
    """Periodic safety net: channel versions whose ingestion task was lost."""
    return services.reconcile_ingestion()


register_periodic("orders.reconcile_ingestion", "orders.tasks.reconcile_ingestion_task", 300.0)


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def rematch_listing_task(listing_id: int) -> int:
    return services.rematch_waiting_lines(listing_id=listing_id)


from orders import export_tasks  # noqa: E402, F401  (registers the export task in workers)

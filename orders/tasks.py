from celery import shared_task
from django.db import connection

from ecbao import redis as ecbao_redis
from ecbao.celery import register_periodic
from orders import retry, services

# --- pushed versions: micro-batched -------------------------------------------------------------
#
# Pushes bring one order version at a time, often many per second (a live stream). Each
# version id goes onto a per-tenant Redis list, and one drain task (scheduled when the list was
# idle, ``DRAIN_DELAY`` later) applies whatever has gathered by then through the set-based
# ``ingest_snapshots`` — a burst of pushes becomes a few batches instead of one task each. A
# version lost on the way (Redis down, a worker killed mid-batch) is still stored in the channel
# layer, and ``reconcile_ingestion`` applies it within minutes.

DRAIN_DELAY = 0.05  # seconds a drain waits for more versions to gather
DRAIN_BATCH = 500


def _pending_key(schema: str) -> str:
    return ecbao_redis.key("orders", "ingest", schema)


def _scheduled_key(schema: str) -> str:
    return ecbao_redis.key("orders", "ingest-scheduled", schema)


def enqueue_ingest(snapshot_id: int) -> None:
    """Called after a pushed version commits (``OrderChanged``)."""
    schema = connection.schema_name
    client = ecbao_redis.client()
    client.rpush(_pending_key(schema), snapshot_id)
    if client.set(_scheduled_key(schema), 1, nx=True, ex=60):
        drain_ingest_task.apply_async(countdown=DRAIN_DELAY)


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def drain_ingest_task() -> int:
    """Apply this tenant's gathered pushed versions, ``DRAIN_BATCH`` at a time."""
    schema = connection.schema_name
    client = ecbao_redis.client()
    client.delete(_scheduled_key(schema))  # a version gathered from now on schedules another drain
    done = 0
    while ids := client.lpop(_pending_key(schema), DRAIN_BATCH):
        try:
            done += services.ingest_snapshots(snapshot_ids=sorted({int(i) for i in ids}))
        except Exception:
            client.rpush(_pending_key(schema), *ids)  # back for the retry
            raise
    return done


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def ingest_snapshots_task(snapshot_ids: list[int]) -> int:
    """A pulled page of versions, applied set-based (``services.ingest_batch``)."""
    return services.ingest_snapshots(snapshot_ids=snapshot_ids)


@shared_task(acks_late=True)
def reconcile_ingestion_task() -> int:
    """Periodic safety net: channel versions whose ingestion task was lost."""
    return services.reconcile_ingestion()


register_periodic("orders.reconcile_ingestion", "orders.tasks.reconcile_ingestion_task", 300.0)


@shared_task(acks_late=True, max_retries=0)
def retry_ingestion_task(retry_id: str) -> dict:
    """The workbench's "retry now" (``orders.retry``): the sweep, failures included, with progress."""
    return retry.run_retry(retry_id=retry_id)


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def rematch_listing_task(listing_id: int) -> int:
    return services.rematch_waiting_lines(listing_id=listing_id)


from orders import export_tasks  # noqa: E402, F401  (registers the export task in workers)

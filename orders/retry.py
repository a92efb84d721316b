""" "Retry now" on the workbench: the ingestion sweep as a background task with progress.

- :func:`start_retry` records a retry in the cache (keys are tenant-scoped) under a random id,
  remembers it as this tenant's current retry, and queues ``retry_ingestion_task`` once the
  request's transaction commits; while one is queued or running, the button joins it;
- :func:`run_retry` (the task) runs ``services.reconcile_ingestion`` with ``retry_now`` (failed
  versions are tried again at once, not after their pause), recording after each batch how many
  versions it tried, and at the end how many still fail;
- the workbench polls :func:`retry_for` (htmx) until the retry is done.
"""

from __future__ import annotations

import logging
import re
import uuid

from django.core.cache import cache
from django.db import connection, transaction

from orders import services

logger = logging.getLogger(__name__)

LIMIT = 2000  # versions one retry tries (the 5-minute sweep goes on with the rest)
TTL_SECONDS = 3600
CURRENT_KEY = "orders-ingestion-retry:current"
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


def _key(retry_id: str) -> str:
    return f"orders-ingestion-retry:{retry_id}"


def start_retry() -> str:
    """Queue a retry of this tenant's unapplied versions, or join the one under way."""
    from orders.tasks import retry_ingestion_task

    current = retry_for(cache.get(CURRENT_KEY) or "")
    if current and current["state"] in (QUEUED, RUNNING):
        return current["id"]
    retry_id = uuid.uuid4().hex
    meta = {"schema": connection.schema_name, "state": QUEUED, "done": 0, "total": None, "failing": None}
    cache.set(_key(retry_id), meta, TTL_SECONDS)
    cache.set(CURRENT_KEY, retry_id, TTL_SECONDS)
    transaction.on_commit(lambda: retry_ingestion_task.delay(retry_id))
    return retry_id


def retry_for(retry_id: str) -> dict | None:
    """The retry's state, when it exists in this tenant."""
    if not re.fullmatch(r"[0-9a-f]{32}", retry_id or ""):
        return None
    meta = cache.get(_key(retry_id))
    if not meta or meta.get("schema") != connection.schema_name:
        return None
    total = meta.get("total") or 0
    percent = 100 if meta["state"] == DONE else (min(99, meta["done"] * 100 // total) if total else 0)
    return {**meta, "id": retry_id, "percent": percent}


def current_retry() -> dict | None:
    """This tenant's latest retry (shown on the workbench while it is under way)."""
    retry_id = cache.get(CURRENT_KEY)
    return retry_for(retry_id) if retry_id else None


def run_retry(*, retry_id: str) -> dict:
    """The task's body (safe to run twice: a second run finds less to do)."""
    meta = cache.get(_key(retry_id))
    if not meta or meta.get("schema") != connection.schema_name:
        return {"retry": retry_id, "state": "missing"}

    def progress(done: int, total: int) -> None:
        meta.update(state=RUNNING, done=done, total=total)
        cache.set(_key(retry_id), meta, TTL_SECONDS)

    try:
        tried = services.reconcile_ingestion(limit=LIMIT, retry_now=True, progress=progress)
    except Exception:
        logger.exception("ingestion retry %s failed", retry_id)
        meta.update(state=FAILED)
        cache.set(_key(retry_id), meta, TTL_SECONDS)
        raise
    failing = services.ingestion_backlog()["failing"]
    meta.update(state=DONE, done=tried, total=tried, failing=failing)
    cache.set(_key(retry_id), meta, TTL_SECONDS)
    return {"retry": retry_id, "state": DONE, "tried": tried, "failing": failing}

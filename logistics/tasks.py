"""Celery tasks of shipping (each calls a service)."""

from celery import shared_task

from ecbao.celery import register_periodic
from logistics import waybills


@shared_task(acks_late=True, max_retries=0)
def take_waybills_task(batch_id: int) -> dict:
    """Take waybill numbers for a batch (``waybills.start_take``); safe to run again."""
    batch = waybills.run_take_batch(batch_id)
    return {"batch": batch.pk, "done": batch.done, "failed": batch.failed, "total": batch.total}


# --- write-backs (logistics.writeback) -----------------------------------------------------------


@shared_task(acks_late=True, max_retries=0)
def send_write_backs_task(limit: int = 200) -> int:
    """Send due write-backs (beat, and a kick after each shipping commit). Rows are claimed
    with SKIP LOCKED, so overlapping runs share the work instead of repeating it."""
    from logistics import writeback

    total = 0
    while True:
        accepted = writeback.send_due(limit=limit)
        total += accepted
        if accepted < limit:
            return total


register_periodic("logistics.send_write_backs", "logistics.tasks.send_write_backs_task", 60.0)

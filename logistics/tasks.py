"""Celery tasks of shipping (each calls a service)."""

from celery import shared_task

from logistics import waybills


@shared_task(acks_late=True, max_retries=0)
def take_waybills_task(batch_id: int) -> dict:
    """Take waybill numbers for a batch (``waybills.start_take``); safe to run again."""
    batch = waybills.run_take_batch(batch_id)
    return {"batch": batch.pk, "done": batch.done, "failed": batch.failed, "total": batch.total}

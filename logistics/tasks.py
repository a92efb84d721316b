"""Celery tasks of shipping (thin: look up, call a service). Tenant-aware: each runs in the
schema it was sent from."""

from __future__ import annotations

from celery import shared_task

from channels.errors import ChannelError
from ecbao.celery import register_periodic
from logistics import printing, tracking, waybills


@shared_task(acks_late=True, max_retries=0)
def take_waybills_task(batch_id: int) -> dict:
    """Take waybill numbers for a batch (``waybills.start_take``); safe to run again."""
    batch = waybills.run_take_batch(batch_id)
    return {"batch": batch.pk, "done": batch.done, "failed": batch.failed, "total": batch.total}


# --- write-backs (logistics.writeback) -----------------------------------------------------------


@shared_task(acks_late=True, max_retries=0)
def send_write_backs_task(limit: int = 20) -> int:
    """Send due write-backs (beat, and a kick after each shipping commit) until none is due.
    Rows are claimed ``limit`` at a time with SKIP LOCKED, so overlapping runs (several
    workers, several kicks) share the work instead of queueing behind one another."""
    from logistics import writeback

    total = 0
    while True:
        claimed, accepted = writeback.send_round(limit=limit)
        total += accepted
        if not claimed:
            return total


@shared_task(acks_late=True, max_retries=0)
def ship_batch_task(batch_id: int) -> dict:
    """Ship a batch of parcels (``shipping.start_ship``); safe to run again."""
    from logistics import shipping

    batch = shipping.run_ship_batch(batch_id)
    return {"batch": batch.pk, "done": batch.done, "failed": batch.failed, "total": batch.total}


register_periodic("logistics.send_write_backs", "logistics.tasks.send_write_backs_task", 60.0)
# --- printing ---------------------------------------------------------------------------------------


@shared_task(bind=True, acks_late=True, max_retries=6)
def report_printed_task(self, record_id: int) -> bool:
    """Tell the platform a label printed (WeChat); retried with backoff, then kept visible."""
    try:
        return printing.report_printed(record_id)
    except ChannelError as exc:
        if self.request.retries >= self.max_retries:
            printing.report_failed(record_id, str(exc))
            return False
        raise self.retry(exc=exc, countdown=min(600, 5 * 2**self.request.retries)) from exc


@shared_task(acks_late=True, max_retries=0)
def render_pdf_task(batch_id: int) -> dict:
    """Render a labels batch to one PDF in tenant storage (progress on the batch)."""
    batch = printing.render_pdf(batch_id)
    return {"batch": batch.pk, "status": batch.status, "done": batch.done, "failed": batch.failed}


# --- ship by hand (logistics.manual) -------------------------------------------------------------


@shared_task(acks_late=True, max_retries=0)
def import_tracking_task(batch_id: int) -> dict:
    """Import a tracking-number workbook kept for batch ``batch_id`` (``manual.start_import``)."""
    from logistics import manual

    return manual.run_import(batch_id)


# --- tracking (logistics.tracking) ---------------------------------------------------------------------------
@shared_task(acks_late=True)
def pull_tracking_due() -> dict:
    """Pull the traces of this tenant's shipped parcels that are due; sweep refunds for intercepts."""
    return tracking.pull_due()


register_periodic("logistics.pull_tracking_due", "logistics.tasks.pull_tracking_due", 600.0)

"""The order export task (thin: the work is in ``orders.exports``).

Imported by ``orders.tasks`` so that workers register it."""

from celery import shared_task

from orders import exports


@shared_task(acks_late=True, max_retries=0)
def export_orders_task(export_id: str) -> dict:
    """Write export ``export_id`` (its filter and owner are in the cache) to tenant storage."""
    return exports.run_export(export_id=export_id)

"""Celery tasks of the after-sales app (thin: they call services). Sent while a tenant's schema
is active, a task carries that schema (tenant-schemas-celery); the beat entries run in every
tenant's schema (``ecbao.celery.register_periodic``)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.core.exceptions import ValidationError
from django.db import OperationalError
from django.utils.translation import gettext

from ecbao.celery import register_periodic

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def ingest_task(store_id: int, platform_after_sale_id: str) -> int | None:
    """``AfterSaleChanged`` → the newest version applied (``services.ingest``)."""
    from aftersales import services

    after_sale = services.ingest(store_id=store_id, platform_after_sale_id=platform_after_sale_id)
    return after_sale.pk if after_sale else None


@shared_task(acks_late=True)
def sweep_task() -> int:
    """Periodic safety net: versions whose event was lost, after-sales whose order arrived."""
    from aftersales import services

    return services.sweep()


register_periodic("aftersales.sweep", "aftersales.tasks.sweep_task", 180.0)


@shared_task(acks_late=True)
def auto_approve_task(after_sale_id: int) -> int | None:
    """A new after-sale waiting for the merchant: the auto-approve rule decides
    (``aftersales.policy.auto_approve``, h-actions)."""
    from aftersales.models import AfterSale

    try:
        from aftersales.policy import auto_approve
    except ImportError:
        return None
    after_sale = AfterSale.objects.filter(pk=after_sale_id).first()
    if after_sale is None or after_sale.queue != AfterSale.Queue.PENDING:
        return None
    action = auto_approve(after_sale)
    return getattr(action, "pk", None)


@shared_task(acks_late=True, autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=5)
def cancel_waybill_task(after_sale_id: int, parcel_id: int) -> str:
    """A numbered parcel retired by a refund before shipment: its waybill number is cancelled
    at the platform (recycled), on the after-sale's timeline."""
    from aftersales import services
    from aftersales.models import AfterSale
    from logistics import waybills
    from logistics.models import Parcel, Waybill

    after_sale = AfterSale.objects.select_related("order").get(pk=after_sale_id)
    parcel = Parcel.objects.get(pk=parcel_id)
    if not Waybill.objects.filter(parcel=parcel, status=Waybill.Status.ISSUED).exists():
        return "done"
    try:
        waybills.cancel_parcel_waybill(parcel, reason="refund")
    except ValidationError as exc:
        message = gettext("the waybill %(no)s could not be cancelled: %(error)s") % {
            "no": parcel.tracking_no,
            "error": "; ".join(exc.messages),
        }
        services.record(after_sale, "waybill_cancel_failed", message)
        return "failed"
    services.record(
        after_sale,
        "waybill_cancelled",
        gettext("waybill %(no)s cancelled at the platform (recycled)") % {"no": parcel.tracking_no},
    )
    return "cancelled"


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def replacement_task(after_sale_id: int) -> int | None:
    """An exchange's return is in / a reissue was approved (seen by ingestion): the replacement
    order (``effects.make_replacement`` → ``reship.ensure_replacement``, idempotent; a refusal
    goes on the timeline)."""
    from aftersales import effects

    order = effects.make_replacement(after_sale_id)
    return order.pk if order is not None else None

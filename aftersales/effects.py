"""Side effects of an after-sale by type and moment, run by ``services.ingest`` in its
transaction (the order and the after-sale locked). Each is idempotent: a mark in
``AfterSale.effects`` says it was done, so a repeated or late version does nothing twice.

- refund before shipment (``refund_unshipped``): while open the order must not ship
  (``Order.is_refunding``); when it SUCCEEDS the lines not yet shipped are refunded
  (``orders.services.refund_lines``: reservation released, fulfilments follow — logistics drops an
  unnumbered parcel or retires a numbered one, a supplier's dispatch left empty goes CANCELLING);
  after the commit a retired numbered parcel's waybill is cancelled at the platform
  (``tasks.cancel_waybill_task``). A line whose parcel already left gets an intercept request
  instead (``logistics.tracking.request_intercept``; a supplier's dispatch: the supplier is
  asked in the portal).
- refund after shipment (``refund_shipped``): the order is flagged (event, ``is_refunding``
  while open) and every parcel of the lines still on its way gets an intercept request.
- return and refund: nothing moves stock here (only the inspection of a return receipt does);
  the return waybill is put on the timeline when the platform gives it.
- exchange / reissue: ``aftersales.reship.ensure_replacement`` when an exchange's return is in
  and when a reissue was approved.
- a new after-sale waiting for the merchant: ``aftersales.policy.auto_approve`` after the commit.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils.translation import gettext

from aftersales.models import AfterSale
from aftersales.services import (
    OPEN_QUEUES,
    REFUND_TYPES,
    order_has_open_refund,
    order_lines,
    record,
    reissue_approved,
    return_in,
)
from channels.types import AfterSaleStatus as CS
from logistics.models import Parcel, Waybill
from logistics.tracking import FINAL, request_intercept
from orders import services as order_services
from orders.models import Order

logger = logging.getLogger(__name__)
T = AfterSale.Type


def _mark(after_sale: AfterSale, key: str, value=True) -> None:
    after_sale.effects = {**after_sale.effects, key: value}


def apply(after_sale: AfterSale, *, before: dict | None) -> None:
    """Run what this version of the after-sale calls for (``before``: the state before this
    version, None for a new one or a link to its order)."""
    if after_sale.order_id:
        order = Order.objects.select_for_update(no_key=True).get(pk=after_sale.order_id)
        after_sale.order = order
        if after_sale.type in REFUND_TYPES:
            _refund(after_sale, order)
        if after_sale.type in (T.EXCHANGE, T.RESHIP):
            _replacement(after_sale)
        sync_refunding(order)
    if (
        after_sale.return_tracking_no
        and after_sale.effects.get("return_waybill") != after_sale.return_tracking_no
    ):
        _mark(after_sale, "return_waybill", after_sale.return_tracking_no)
        record(
            after_sale,
            "return_shipped",
            gettext("the buyer sent the return: %(carrier)s %(no)s")
            % {"carrier": after_sale.return_carrier, "no": after_sale.return_tracking_no},
            source="platform",
        )
    if after_sale.supplier_id and not after_sale.effects.get("supplier_notified"):
        # straight to the shipper: the supplier whose dispatch it is hears of it (email / webhook)
        _mark(after_sale, "supplier_notified")
        from aftersales import supplier

        supplier.notify_new(after_sale)
    if (
        after_sale.queue == AfterSale.Queue.PENDING
        and after_sale.channel_status == CS.WAITING_MERCHANT.value
        and not after_sale.effects.get("auto_approve")
    ):
        _mark(after_sale, "auto_approve")
        pk = after_sale.pk
        from aftersales import tasks

        transaction.on_commit(lambda: tasks.auto_approve_task.delay(pk))


# --- refunds -----------------------------------------------------------------------------------------------


def _refund(after_sale: AfterSale, order: Order) -> None:
    lines = order_lines(after_sale)
    if after_sale.channel_status in (CS.REJECTED.value, CS.CLOSED.value):
        return  # nothing to undo: is_refunding follows (sync_refunding)
    if after_sale.type == T.REFUND_SHIPPED and not after_sale.effects.get("flagged"):
        _mark(after_sale, "flagged")
        record(
            after_sale,
            "refund_after_shipment",
            gettext("refund asked after shipment: the shipment is flagged"),
            source="platform",
        )
    _intercept(after_sale, order, lines)
    if after_sale.type == T.REFUND_UNSHIPPED and after_sale.channel_status == CS.SUCCEEDED.value:
        if after_sale.effects.get("refunded"):
            return
        refunded = order_services.refund_lines(
            order=order, line_ids=[line.pk for line in lines], reason="refund", by_platform=True
        )
        _mark(after_sale, "refunded", [line.pk for line in refunded])
        if refunded:
            record(
                after_sale,
                "lines_refunded",
                gettext("refunded before shipment: %(lines)s released from stock and shipping")
                % {"lines": ", ".join(line.platform_line_id for line in refunded)},
            )
        _cancel_waybills(after_sale, [line.pk for line in refunded])


def _intercept(after_sale: AfterSale, order: Order, lines) -> None:
    """Parcels of these lines that already left and are still on their way: an intercept
    request each (once); a supplier's shipped dispatch: the supplier is asked (portal)."""
    done = set(after_sale.effects.get("intercepts", ()))
    parcels = (
        Parcel.objects.filter(status=Parcel.Status.SHIPPED, lines__order_line__in=lines)
        .exclude(tracking_status__in=FINAL)
        .exclude(pk__in=done)
        .distinct()
        .order_by("pk")
    )
    made = []
    for parcel in parcels:
        request_intercept(
            parcel,
            order,
            reason=gettext("after-sale %(id)s: refund asked after the parcel left")
            % {"id": after_sale.platform_after_sale_id},
        )
        made.append(parcel)
    if not made:
        return
    _mark(after_sale, "intercepts", sorted(done | {p.pk for p in made}))
    numbers = ", ".join(p.tracking_no or str(p.pk) for p in made)
    if after_sale.supplier_id:
        message = gettext("the parcel %(numbers)s had left: supplier asked to intercept it") % {
            "numbers": numbers
        }
    else:
        message = gettext("the parcel %(numbers)s had left: intercept requested") % {"numbers": numbers}
    record(after_sale, "intercept_requested", message, data={"parcels": [p.pk for p in made]})


def _cancel_waybills(after_sale: AfterSale, line_ids: list[int]) -> None:
    """Parcels of the refunded lines retired with a live waybill number: cancel the number at
    the platform after the commit (recycled)."""
    if not line_ids:
        return
    parcel_ids = sorted(
        set(
            Parcel.objects.filter(
                status=Parcel.Status.CANCELLED,
                lines__order_line_id__in=line_ids,
                waybills__status=Waybill.Status.ISSUED,
            ).values_list("pk", flat=True)
        )
    )
    if not parcel_ids:
        return
    _mark(after_sale, "waybills_to_cancel", parcel_ids)
    pk = after_sale.pk
    from aftersales import tasks

    transaction.on_commit(
        lambda: [tasks.cancel_waybill_task.delay(pk, parcel_id) for parcel_id in parcel_ids]
    )


def sync_refunding(order: Order) -> None:
    """``Order.is_refunding`` from both sources: the platform's refund marks on the lines (the
    order's version) and an open refund after-sale."""
    want = order.lines.exclude(refund_state="").exists() or order_has_open_refund(order.pk)
    if order.is_refunding != want:
        order.is_refunding = want
        order.save(update_fields=["is_refunding", "updated_at"])
        order_services.add_event(
            order,
            "refunding" if want else "refund_closed",
            source="platform",
            message=gettext("refund in progress: the order must not ship")
            if want
            else gettext("no refund open any more"),
        )


# --- exchanges and reissues ----------------------------------------------------------------------------------


def _replacement(after_sale: AfterSale) -> None:
    """An exchange whose return is in / an approved reissue: its replacement order, made after
    the commit (``tasks.replacement_task`` → ``reship.ensure_replacement``, idempotent, with the
    stock, order, after-sale lock order of its own)."""
    if after_sale.effects.get("replacement") or after_sale.reship_order_id:
        return
    due = return_in(after_sale) if after_sale.type == T.EXCHANGE else reissue_approved(after_sale)
    if not due or after_sale.channel_status in (CS.REJECTED.value, CS.CLOSED.value):
        return
    _mark(after_sale, "replacement", "requested")
    pk = after_sale.pk
    from aftersales import tasks

    transaction.on_commit(lambda: tasks.replacement_task.delay(pk))


def on_return_received(after_sale: AfterSale, *, actor=None) -> AfterSale:
    """An exchange's return is back with the merchant before the platform says so (the merchant
    confirmed receipt, or a return receipt was inspected: h-actions / h-returns call this, outside
    their own transaction): the mark ``return_received``, the queue 待退款/待补发, then the
    replacement order at once (``reship.ensure_replacement``, its own lock order). Idempotent."""
    from aftersales.services import queue_for

    with transaction.atomic():
        if after_sale.order_id:  # orders' lock order: the order first
            Order.objects.select_for_update(no_key=True).filter(pk=after_sale.order_id).first()
        after_sale = AfterSale.objects.select_for_update().get(pk=after_sale.pk)
        if after_sale.type != T.EXCHANGE:
            return after_sale
        if not after_sale.effects.get("return_received"):
            _mark(after_sale, "return_received")
            if after_sale.queue in OPEN_QUEUES:
                after_sale.queue = queue_for(after_sale)
            record(
                after_sale,
                "return_received",
                gettext("the return is back: the replacement is due"),
                actor=actor,
            )
        if (
            after_sale.channel_status not in (CS.REJECTED.value, CS.CLOSED.value)
            and not after_sale.reship_order_id
        ):
            _mark(after_sale, "replacement", "requested")
        after_sale.save()
    if after_sale.effects.get("replacement") and not after_sale.reship_order_id:
        make_replacement(after_sale.pk, actor=actor)
        after_sale.refresh_from_db()
    return after_sale


def make_replacement(after_sale_id: int, *, actor=None):
    """``reship.ensure_replacement`` (idempotent); a refusal (a SKU ecbao does not know, the
    order not in ecbao) goes on the timeline and returns None."""
    from django.core.exceptions import ValidationError

    from aftersales.reship import ensure_replacement

    try:
        return ensure_replacement(after_sale_id, actor=actor)
    except ValidationError as exc:
        record(
            AfterSale.objects.get(pk=after_sale_id),
            "replacement_failed",
            gettext("the replacement order could not be made: %(error)s")
            % {"error": "; ".join(exc.messages)},
            order_event=False,
        )
        return None


__all__ = ["OPEN_QUEUES", "apply", "make_replacement", "on_return_received", "sync_refunding"]

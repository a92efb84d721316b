"""Replacement orders of exchanges (换货) and reissues (补寄), and their tracking to the platform.

- ``ensure_replacement(after_sale)`` — the after-sale's replacement order
  (``orders.services.create_replacement_order``): an exchange ships the SKU the buyer asked for
  (``AfterSale.exchange["sku_code"]``, a merchant code, else a platform SKU id of the shop's
  listings) or, when the platform names none, the same SKUs as the lines, in the lines'
  quantities; a reissue ships the lines' SKUs and quantities. Zero price, same receiver,
  reserved, routed (own warehouse or a supplier's dispatch) and approved. Sets
  ``AfterSale.reship_order`` and writes the timeline. Idempotent: a second call returns the same
  order (``aftersales.effects`` calls it when an exchange's return is in / a reissue is approved).
- ``on_parcels_shipped(event)`` — ``logistics.events.ParcelsShipped``: a replacement order's
  parcel shipped, so its carrier and tracking number go to the platform through the after-sale
  (``aftersales.actions.ship_replacement``: Douyin / Kuaishou / WeChat's exchange-reship call),
  never as a platform order's write-back. In a Celery task carrying the tenant's schema; exactly
  once per parcel (a parcel already sent — an action with its tracking number — is skipped; the
  action's own key guards a race), whatever the number of deliveries.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from celery import shared_task
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext

from aftersales.models import AfterSale, AfterSaleAction
from inventory import services as stock
from inventory.models import Listing, Sku
from orders import services as order_services
from orders.models import Order, OrderOrigin

logger = logging.getLogger(__name__)
T = AfterSale.Type

ORIGIN_OF = {T.EXCHANGE: OrderOrigin.EXCHANGE, T.RESHIP: OrderOrigin.REISSUE}


def _exchange_sku(after_sale: AfterSale) -> Sku | None:
    """The SKU the buyer asked for in exchange, when the platform names one: by merchant code,
    else by the shop's listing of that platform SKU id. None when the platform names none;
    ValidationError when it names one ecbao does not know."""
    code = str((after_sale.exchange or {}).get("sku_code") or "").strip()
    if not code:
        return None
    sku = Sku.objects.filter(merchant_code=code).first()
    if sku is None:
        listing = (
            Listing.objects.filter(store_id=after_sale.store_id, platform_sku_id=code, sku__isnull=False)
            .select_related("sku")
            .first()
        )
        sku = listing.sku if listing else None
    if sku is None:
        raise ValidationError(
            gettext("The exchange asks for SKU %(code)s, which matches no SKU in ecbao.") % {"code": code}
        )
    return sku


def replacement_items(after_sale: AfterSale) -> list[tuple[int, int]]:
    """[(SKU id, quantity)] the replacement ships (see the module docstring)."""
    wanted: dict[int, int] = defaultdict(int)
    for line in after_sale.lines.select_related("order_line").order_by("id"):
        order_line = line.order_line
        sku_id = line.sku_id or (order_line.sku_id if order_line else None)
        quantity = line.quantity or (order_line.quantity if order_line else 0)
        if sku_id is None or quantity <= 0:
            raise ValidationError(
                gettext("Line %(line)s of the after-sale has no SKU or quantity in ecbao.")
                % {"line": line.platform_line_id or line.pk}
            )
        wanted[sku_id] += quantity
    if not wanted and after_sale.order_id is not None:
        # no lines given: a one-line order's line (Kuaishou: one sub-order per order)
        lines = list(after_sale.order.lines.exclude(sku__isnull=True).order_by("id"))
        if len(lines) == 1:
            wanted[lines[0].sku_id] = after_sale.quantity or lines[0].quantity
    if after_sale.type == T.EXCHANGE:
        sku = _exchange_sku(after_sale)
        if sku is not None:
            return [(sku.pk, sum(wanted.values()) or after_sale.quantity or 1)]
    if not wanted:
        raise ValidationError(gettext("The after-sale names no line to replace."))
    return sorted(wanted.items())


def ensure_replacement(after_sale, *, actor=None) -> Order:
    """The after-sale's replacement order, made once (see the module docstring). Raises
    ValidationError when it cannot be made: not an exchange or reissue, its order not in ecbao
    yet, a line without a SKU, an exchange SKU ecbao does not know."""
    given = after_sale if isinstance(after_sale, AfterSale) else None
    order = _ensure_replacement(after_sale if given is None else given.pk, actor=actor)
    if given is not None:  # a caller that saves its instance afterwards keeps the link
        given.reship_order = order
    return order


def _ensure_replacement(pk: int, *, actor=None) -> Order:
    after_sale = AfterSale.objects.select_related("order").get(pk=pk)
    if after_sale.reship_order_id is not None:
        return after_sale.reship_order
    if after_sale.type not in ORIGIN_OF:
        raise ValidationError(gettext("Only an exchange or a reissue has a replacement order."))
    if after_sale.order_id is None:
        raise ValidationError(gettext("The after-sale's order is not in ecbao yet."))
    items = replacement_items(after_sale)
    with transaction.atomic():
        # The lock order of ingestion: stock rows, the order, then the after-sale.
        stock.lock_stock(sku_ids={sku_id for sku_id, _ in items})
        source = Order.objects.select_for_update().get(pk=after_sale.order_id)
        after_sale = AfterSale.objects.select_for_update().get(pk=pk)
        if after_sale.reship_order_id is not None:
            return after_sale.reship_order
        order = order_services.create_replacement_order(
            source_order=source,
            items=items,
            origin=ORIGIN_OF[after_sale.type],
            after_sale_ref=after_sale.platform_after_sale_id,
            actor=actor,
        )
        after_sale.reship_order = order
        after_sale.save(update_fields=["reship_order", "updated_at"])
        from aftersales.services import record

        message = (
            gettext("Exchange replacement order %(order)s created for after-sale %(ref)s")
            if after_sale.type == T.EXCHANGE
            else gettext("Reissue order %(order)s created for after-sale %(ref)s")
        ) % {"order": order.platform_order_id, "ref": after_sale.platform_after_sale_id}
        record(
            after_sale,
            "replacement_created",
            message,
            source="merchant" if actor else "system",
            actor=actor,
            data={"order_id": order.pk, "platform_order_id": order.platform_order_id, "items": items},
            order_event=False,  # create_replacement_order wrote it on both orders
        )
    return order


# --- the replacement's tracking to the platform -----------------------------------------------------------


def on_parcels_shipped(event) -> None:
    """``ParcelsShipped`` (after the shipping commit): when a replacement order is among the
    orders, a task in this tenant's schema sends its tracking (``send_tracking``)."""
    if Order.objects.filter(pk__in=list(event.order_ids)).exclude(origin=OrderOrigin.PLATFORM).exists():
        send_tracking_task.delay(list(event.parcel_ids))


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def send_tracking_task(parcel_ids: list[int]) -> int:
    return send_tracking(parcel_ids)


def send_tracking(parcel_ids) -> int:
    """For every shipped parcel of these carrying a replacement order, its carrier code (the one
    a write-back would send on that platform) and tracking number to the platform through the
    after-sale (``actions.ship_replacement``). A parcel already sent is skipped. Returns how many
    answers were given now."""
    from aftersales import actions
    from aftersales.services import record
    from logistics.models import Parcel
    from logistics.shipping import carrier_code

    sent = 0
    parcels = (
        Parcel.objects.filter(pk__in=list(parcel_ids), status=Parcel.Status.SHIPPED)
        .exclude(tracking_no="")
        .select_related("store")
        .order_by("pk")
    )
    for parcel in parcels:
        orders = Order.objects.filter(lines__parcel_lines__parcel=parcel).exclude(origin=OrderOrigin.PLATFORM)
        for order in orders.distinct().order_by("pk"):
            after_sale = (
                AfterSale.objects.filter(reship_order=order).first()
                or AfterSale.objects.filter(
                    store_id=order.store_id, platform_after_sale_id=order.after_sale_ref
                ).first()
            )
            if after_sale is None:
                logger.warning(
                    "replacement order %s shipped: no after-sale %s", order.pk, order.after_sale_ref
                )
                continue
            if AfterSaleAction.objects.filter(
                after_sale=after_sale,
                kind=AfterSaleAction.Kind.RESHIP,
                params__tracking_no=parcel.tracking_no,
            ).exists():
                continue  # sent before (a second delivery of the event)
            code = carrier_code(parcel)
            try:
                actions.ship_replacement(after_sale, carrier_code=code, tracking_no=parcel.tracking_no)
            except ValidationError as exc:
                record(
                    after_sale,
                    "replacement_tracking_refused",
                    gettext("The replacement's tracking number %(no)s was not sent: %(why)s")
                    % {"no": parcel.tracking_no, "why": "; ".join(exc.messages)},
                    data={"parcel_id": parcel.pk, "carrier_code": code, "tracking_no": parcel.tracking_no},
                )
                continue
            sent += 1
    return sent

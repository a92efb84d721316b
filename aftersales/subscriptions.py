"""What the after-sales app listens to (wired in ``AftersalesConfig.ready``)."""

from __future__ import annotations


def on_after_sale_changed(event) -> None:
    """``channels.events.AfterSaleChanged`` (after the channel layer's commit): ingest in a
    task that carries the current tenant's schema."""
    from aftersales import tasks

    tasks.ingest_task.delay(event.store_id, event.platform_after_sale_id)


def subscribe() -> None:
    from aftersales import services
    from channels.events import AfterSaleChanged
    from ecbao import events
    from orders import hooks

    events.subscribe(AfterSaleChanged, on_after_sale_changed)
    # A replacement order's parcel shipped: its tracking goes to the platform's after-sale (h-reship).
    from aftersales import reship
    from logistics.events import ParcelsShipped

    events.subscribe(ParcelsShipped, reship.on_parcels_shipped)
    # Order.is_refunding stays set while a refund after-sale is open (orders' own version may lag).
    hooks.register_refund_check(services.order_has_open_refund)

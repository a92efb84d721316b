"""Set-up of the answer tests (``aftersales.actions``, the policy, the API): the sandbox over real
HTTP with its three shops connected to the tenant (``tests.logistics.waybill_world``), buyers'
after-sales applied in the world, read through the connector, stored as channel versions and
ingested (``aftersales.services.ingest``) — the way a pull brings them in."""

from __future__ import annotations

from typing import Any

from channels import services as channel_services
from channels.connectors.base import RetryPolicy
from orders.models import Order
from sandbox.world import ShipmentSpec
from tests.logistics.waybill_world import Shops, world_order_id

#: the paths an answer (approve / refuse / confirm) goes to, per platform
ANSWER_PATHS = {
    "douyin": ("/afterSale/operate",),
    "kuaishou": (
        "/open/seller/order/refund/approve",
        "/open/seller/order/refund/returngoods/approve",
        "/open/seller/order/refund/confirm/receipt",
        "/open/refund/reject",
        "/open/refund/confirm/and/send",
    ),
    "wechat": (
        "/channels/ec/aftersale/acceptapply",
        "/channels/ec/aftersale/rejectapply",
        "/channels/ec/aftersale/acceptexchangereship",
    ),
}


def connect(store):
    """Short pauses between a connector's own retries (the sandbox's faults are deliberate)."""
    return channel_services.connector_for(store, retry=RetryPolicy(base_delay=0.01, rate_limit_attempts=1))


def pull(store, platform_after_sale_id: str):
    """Read one after-sale from the platform, store the version, ingest it (as a pull does)."""
    from aftersales import services

    connector = channel_services.connector_for(store)
    try:
        version = connector.get_after_sale(platform_after_sale_id)
    finally:
        connector.http.close()
    channel_services.store_after_sale_version(store=store, after_sale=version, source="pull")
    return services.ingest(store_id=store.pk, platform_after_sale_id=platform_after_sale_id)


def ship_in_world(shops: Shops, order: Order, *, tracking_no: str = "") -> str:
    """The merchant shipped the whole order on the platform (the buyer can then ask a return)."""
    oid = world_order_id(shops, order)
    tracking_no = tracking_no or f"YT{order.pk:010d}"
    shops.world.ship_order(oid, [ShipmentSpec(carrier="YTO", tracking_no=tracking_no)])
    return tracking_no


def apply(
    shops: Shops, platform: str, kind: str, *, order: Order | None = None, line: int = 0, **kwargs: Any
):
    """The buyer applies for ``kind`` on a line of an order (a new one, shipped first for every
    kind but a refund before shipment); returns the ingested ``AfterSale``."""
    order = order or shops.order(platform, 1)
    if kind != "refund_unshipped" and not shops.world.get_order(world_order_id(shops, order)).packages:
        ship_in_world(shops, order)
    line_id = shops.world.get_order(world_order_id(shops, order)).lines[line].line_id
    applied = shops.world.apply_aftersale(
        world_order_id(shops, order), line_id, kind=kind, reason="不想要了", **kwargs
    )
    after_sale = pull(shops.stores[platform], applied.aftersale_id)
    assert after_sale is not None
    return after_sale


def operate_calls(shops: Shops, platform: str, *, ok: bool | None = True, after_id: int = 0) -> int:
    """How many answer calls the platform logged (accepted by default)."""
    return sum(
        sum(shops.world.call_counts(platform=platform, path=path, ok=ok, after_id=after_id).values())
        for path in ANSWER_PATHS[platform]
    )


def world_status(shops: Shops, after_sale) -> str:
    return str(shops.world.get_aftersale(after_sale.platform_after_sale_id).status)

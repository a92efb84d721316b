"""Rows for the after-sales page tests (h-pages): a shop, orders and after-sales written
straight into the tenant's tables (real PostgreSQL), as ingestion would leave them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

from django.utils import timezone

from aftersales.models import AfterSale, AfterSaleLine
from channels.models import Store
from inventory.models import Goods, Sku
from orders.models import Order, OrderLine

T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
_seq = count(1)


def store(name: str = "抖店旗舰店", platform: str = "douyin", shop_id: str = "2001") -> Store:
    return Store.objects.create(platform=platform, platform_shop_id=shop_id, name=name, app_key="k")


def sku(code: str) -> Sku:
    goods, _new = Goods.objects.get_or_create(name="纯棉T恤")
    return Sku.objects.create(goods=goods, merchant_code=code, name=code)


def order(shop: Store, *, oid: str | None = None, lines=(), shipped_at=None) -> Order:
    """An order with ``lines`` = (sku, quantity, paid_fen); shipped when ``shipped_at``."""
    n = next(_seq)
    o = Order.objects.create(
        store=shop,
        platform=shop.platform,
        platform_order_id=oid or f"69{n:017d}",
        status="shipped" if shipped_at else "approved",
        channel_status="shipped" if shipped_at else "paid",
        platform_status="3" if shipped_at else "2",
        receiver_name_mask="张*",
        receiver_phone_mask="138****8888",
        receiver_address_mask="文***号",
        placed_at=T0,
        paid_at=T0,
        shipped_at=shipped_at,
        platform_updated_at=T0,
        paid_fen=sum(fen for _s, _q, fen in lines),
    )
    for i, (s, qty, fen) in enumerate(lines, 1):
        OrderLine.objects.create(
            order=o,
            platform_line_id=f"{o.platform_order_id}-{i}",
            sku=s,
            merchant_code=s.merchant_code,
            title=f"T恤 {s.merchant_code}",
            quantity=qty,
            paid_fen=fen,
            shipped_quantity=qty if shipped_at else 0,
        )
    return o


def after_sale(
    o: Order,
    *,
    queue: str = "pending",
    type: str = "refund_unshipped",  # noqa: A002
    refund_fen: int = 990,
    deadline=None,
    hours: float | None = None,
    reason: str = "不想要了",
    applied_at=None,
    channel_status: str | None = None,
    supplier=None,
    warehouse=None,
    tracking: str = "",
    **extra,
) -> AfterSale:
    n = next(_seq)
    if hours is not None:
        deadline = timezone.now() + timedelta(hours=hours)
    status = (
        channel_status
        or {
            "pending": "waiting_merchant",
            "awaiting_return": "waiting_buyer_return",
            "awaiting_receipt": "waiting_merchant_receipt",
            "awaiting_refund": "refunding",
            "done": "succeeded",
            "closed": "closed",
        }[queue]
    )
    a = AfterSale.objects.create(
        store=o.store,
        platform=o.platform,
        platform_after_sale_id=f"AS{n:012d}",
        platform_order_id=o.platform_order_id,
        order=o,
        type=type,
        queue=queue,
        channel_status=status,
        platform_status={"waiting_merchant": "6", "succeeded": "12"}.get(status, "27"),
        reason=reason,
        refund_fen=refund_fen,
        quantity=sum(line.quantity for line in o.lines.all()),
        deadline=deadline,
        platform_updated_at=T0,
        applied_at=applied_at or timezone.now(),
        supplier=supplier,
        warehouse=warehouse,
        return_tracking_no=tracking,
        **extra,
    )
    for line in o.lines.all():
        AfterSaleLine.objects.create(
            after_sale=a,
            order_line=line,
            platform_line_id=line.platform_line_id,
            sku=line.sku,
            quantity=line.quantity,
            refund_fen=line.paid_fen,
        )
    return a


def platform_after_sale(shops, order: Order, *, kind: str = "refund_unshipped", **kw) -> AfterSale:
    """The buyer applies on the sandbox (first line of ``order``); the version is read through
    the connector, kept by the channel layer and ingested (the AfterSaleChanged task's path)."""
    from tests.logistics.waybill_world import world_order_id

    world = shops.world
    placed = world.get_order(world_order_id(shops, order))
    applied = world.apply_aftersale(placed.order_id, placed.lines[0].line_id, kind=kind, **kw)
    return pull(order.store, applied.aftersale_id)


def pull(shop: Store, platform_after_sale_id: str) -> AfterSale:
    """Read one after-sale from the platform again and apply it."""
    from aftersales import services
    from channels import services as channel_services

    connector = channel_services.connector_for(shop)
    try:
        version = connector.get_after_sale(platform_after_sale_id)
    finally:
        connector.http.close()
    channel_services.store_after_sale_version(store=shop, after_sale=version, source="pull")
    return services.ingest(store_id=shop.pk, platform_after_sale_id=version.platform_after_sale_id)

"""Data for the returns tests: a Douyin order (phone mask 138****8888) whose line is covered by
a return-and-refund after-sale waiting for its goods, with the return waybill the buyer gave."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from aftersales.models import AfterSale, AfterSaleLine
from channels.models import Store
from inventory import services as stock
from inventory.models import Goods, Sku
from orders import services as order_services
from tests.orders.conftest import channel_order, line, receiver

T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


def shop(shop_id: str = "2001") -> Store:
    return Store.objects.create(platform="douyin", platform_shop_id=shop_id, name="抖店旗舰店", app_key="k")


def skus(*codes: str, on_hand: int = 10) -> dict[str, Sku]:
    goods = Goods.objects.create(name="纯棉T恤")
    result = {}
    for code in codes:
        sku = Sku.objects.create(goods=goods, merchant_code=code, name=f"T恤 {code}", spec="白 L")
        stock.receive_stock(sku=sku, quantity=on_hand, reason="opening")
        result[code] = sku
    return result


def after_sale(
    store: Store,
    *,
    oid: str,
    lines: tuple[tuple[str, int], ...] = (("TS-WHT-L", 2),),
    return_tracking_no: str = "",
    queue: str = AfterSale.Queue.AWAITING_RECEIPT,
    type: str = AfterSale.Type.RETURN_REFUND,
    phone: str = "138****8888",
) -> AfterSale:
    """An after-sale covering the order's lines (code, quantity). Created directly (TODO: through
    channels.services.store_after_sale_version + aftersales.services.ingest once they land)."""
    rcv = receiver(f"idx-{oid}")
    rcv = replace(rcv, phone=replace(rcv.phone, mask=phone))
    order = order_services.ingest_channel_order(
        store=store,
        co=channel_order(
            oid=oid,
            lines=tuple(line(n, code, qty=qty) for n, (code, qty) in enumerate(lines, 1)),
            receiver=rcv,
        ),
    )
    sale = AfterSale.objects.create(
        store=store,
        platform="douyin",
        platform_after_sale_id=f"AS{oid}",
        platform_order_id=oid,
        order=order,
        type=type,
        queue=queue,
        channel_status="WAITING_MERCHANT_RECEIPT",
        platform_status="11",
        reason="尺码不合适",
        refund_fen=9900,
        quantity=sum(q for _c, q in lines),
        evidence=["https://img.example/1.jpg"],
        platform_updated_at=T0,
        applied_at=T0,
        return_carrier="顺丰",
        return_tracking_no=return_tracking_no,
        shipped_before=True,
    )
    for order_line in order.lines.all():
        AfterSaleLine.objects.create(
            after_sale=sale,
            order_line=order_line,
            platform_line_id=order_line.platform_line_id,
            sku_id=order_line.sku_id,
            quantity=order_line.quantity,
            refund_fen=order_line.paid_fen,
        )
    return sale

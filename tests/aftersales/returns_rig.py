"""Data for the returns tests: a Douyin order (phone mask 138****8888) whose line is covered by
a return-and-refund after-sale waiting for its goods, with the return waybill the buyer gave."""

from __future__ import annotations

from dataclasses import replace

from aftersales.models import AfterSale
from channels.models import Store
from inventory import services as stock
from inventory.models import Goods, Sku
from orders import services as order_services
from tests.aftersales import ingest_rig
from tests.aftersales.ingest_rig import CS, CT
from tests.orders.conftest import channel_order, line, receiver


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
    """An after-sale covering the order's lines (code, quantity), kept by the channel layer and
    ingested (``tests.aftersales.ingest_rig``: store_after_sale_version + aftersales.services.ingest)."""
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
    status = {
        AfterSale.Queue.AWAITING_RECEIPT: CS.WAITING_MERCHANT_RECEIPT,
        AfterSale.Queue.AWAITING_RETURN: CS.WAITING_BUYER_RETURN,
        AfterSale.Queue.DONE: CS.SUCCEEDED,
    }[queue]
    sale = ingest_rig.deliver(
        store,
        ingest_rig.version(
            order,
            after_sale_id=f"AS{oid}",
            type=CT(type),
            status=status,
            platform_status="11",
            reason="尺码不合适",
            shipped=True,
            return_tracking_no=return_tracking_no,
            return_carrier="sf" if return_tracking_no else "",
            evidence=("https://img.example/1.jpg",),
        ),
    )
    assert sale is not None and sale.queue == queue and sale.lines.count() == len(lines)
    return sale

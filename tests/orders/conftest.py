from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from channels.models import Store
from channels.types import ChannelOrder, ChannelOrderLine, CipherField, OrderStatus, Platform, Receiver
from inventory import services as stock
from inventory.models import Goods, Sku

T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


@pytest.fixture
def store(in_alpha):
    return Store.objects.create(platform="douyin", platform_shop_id="2001", name="抖店旗舰店", app_key="k")


@pytest.fixture
def skus(in_alpha):
    goods = Goods.objects.create(name="纯棉T恤")
    result = {}
    for code, on_hand in (("TS-WHT-L", 10), ("TS-BLK-M", 1), ("CAP-RED", 5)):
        sku = Sku.objects.create(goods=goods, merchant_code=code, name=code)
        stock.receive_stock(sku=sku, quantity=on_hand, reason="opening")
        result[code] = sku
    return result


def line(n: int, code: str = "TS-WHT-L", qty: int = 1, price: int = 9900, **kw) -> ChannelOrderLine:
    return ChannelOrderLine(
        f"L{n}", f"P-{code}", f"S-{code}", code, "T恤", "白 L", qty, price, price * qty, **kw
    )


def receiver(phone_index: str = "idx-138") -> Receiver:
    return Receiver(
        CipherField("#name#", "张*", "idx-zhang"),
        CipherField("$tel$", "138****8888", phone_index),
        CipherField("#addr#", "文***号", "idx-addr"),
        "浙江省",
        "杭州市",
        "西湖区",
    )


def channel_order(
    oid: str = "6920000000000000001", status=OrderStatus.PAID, at=T0, lines=None, **kw
) -> ChannelOrder:
    lines = lines or (line(1),)
    return ChannelOrder(
        platform=Platform.DOUYIN,
        platform_shop_id="2001",
        platform_order_id=oid,
        platform_status={
            "unpaid": "1",
            "paid": "2",
            "shipped": "3",
            "completed": "5",
            "cancelled": "4",
            "partially_shipped": "101",
        }[status.value],
        status=status,
        created_at=T0 - timedelta(minutes=5),
        updated_at=at,
        lines=tuple(lines),
        receiver=kw.pop("receiver", receiver()),
        paid_at=T0 if status != OrderStatus.UNPAID else None,
        goods_fen=sum(x.paid_fen for x in lines),
        paid_fen=sum(x.paid_fen for x in lines),
        **kw,
    )


def later(co: ChannelOrder, seconds: int = 60, **changes) -> ChannelOrder:
    return replace(co, updated_at=co.updated_at + timedelta(seconds=seconds), **changes)

"""After-sale payloads of the three platforms → the neutral ``AfterSale`` (issue 15).

Real-shaped payloads (field names of platform-apis §1.7 / §2.7 / §3.7, values invented), tidy and
untidy (ids as numbers or strings, optional blocks missing or null); a malformed one raises a
``ChannelError`` naming the problem, never a KeyError. No database, no network."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from channels.connectors.base import AppCredentials, ShopSession
from channels.connectors.douyin import DouyinConnector
from channels.connectors.kuaishou.aftersales import after_sale_from_kuaishou
from channels.connectors.wechat.aftersales import after_sale_from_wechat
from channels.errors import ChannelError
from channels.types import AfterSaleItem, AfterSaleStatus, AfterSaleType

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def douyin() -> DouyinConnector:
    return DouyinConnector(
        credentials=AppCredentials(app_key="k", app_secret="s"),
        base_url="http://douyin.invalid",
        session=ShopSession(platform_shop_id="4463798"),
    )


def douyin_item(**info_overrides) -> dict:
    info = {
        "aftersale_id": "7312345678901234567",
        "aftersale_order_type": 1,
        "aftersale_type": 0,
        "aftersale_status": 6,
        "related_id": "6923456789012345671",
        "apply_time": 1765100000,
        "update_time": 1765100300,
        "status_deadline": 1765272800,
        "refund_amount": 5900,
        "refund_post_amount": 600,
        "aftersale_num": 2,
        "refund_status": 1,
        "return_logistics_code": "",
        "return_logistics_company_name": "",
        "exchange_sku_info": None,
        "got_pkg": 1,
        "reason_second_labels": [],
        "remark": "",
        "evidence": [{"type": 1, "url": "https://p3.douyinpic.com/ev/1.jpg", "desc": ""}],
    }
    info.update(info_overrides)
    return {
        "aftersale_info": info,
        "order_info": {
            "shop_order_id": 6923456789012345670,  # a number, as some payloads carry it
            "related_order_info": [
                {
                    "sku_order_id": 6923456789012345671,
                    "shop_sku_code": "TEA-500",
                    "item_num": 3,
                    "aftersale_item_num": 2,
                    "aftersale_pay_amount": 5900,
                    "price": 2950,
                }
            ],
        },
        "text_part": {"reason_text": "商品破损", "pictures": "https://p3.douyinpic.com/ev/2.jpg"},
        "seller_logs": [],
    }


def test_douyin_return_maps_every_neutral_field() -> None:
    a = douyin().after_sale_from_payload(douyin_item())
    assert a.platform_after_sale_id == "7312345678901234567"
    assert a.platform_order_id == "6923456789012345670" and a.platform_line_id == "6923456789012345671"
    assert a.type == AfterSaleType.RETURN_REFUND and a.status == AfterSaleStatus.WAITING_MERCHANT
    assert a.refund_fen == 6500 and a.quantity == 2 and a.reason == "商品破损"
    assert a.deadline == datetime.fromtimestamp(1765272800, UTC)
    assert a.version == "1765100300" and a.platform_type == "0" and a.refund_status == "1"
    assert a.shipped is None  # type 0 does not say
    assert a.evidence == ("https://p3.douyinpic.com/ev/1.jpg", "https://p3.douyinpic.com/ev/2.jpg")
    assert a.items == (
        AfterSaleItem(
            platform_line_id="6923456789012345671", quantity=2, refund_fen=5900, merchant_code="TEA-500"
        ),
    )


@pytest.mark.parametrize(("kind", "neutral", "shipped"), [
    (1, AfterSaleType.REFUND_ONLY, True), (2, AfterSaleType.REFUND_ONLY, False),
    (3, AfterSaleType.EXCHANGE, None), (7, AfterSaleType.RESHIP, None), (6, AfterSaleType.OTHER, None),
])  # fmt: skip
def test_douyin_types_and_shipment(kind: int, neutral: AfterSaleType, shipped: bool | None) -> None:
    a = douyin().after_sale_from_payload(douyin_item(aftersale_type=str(kind)))
    assert (a.type, a.shipped, a.platform_type) == (neutral, shipped, str(kind))


def test_douyin_exchange_return_waybill_and_untidy_fields() -> None:
    item = douyin_item(
        aftersale_type=3,
        aftersale_status=11,
        status_deadline=1765272800000,  # milliseconds
        update_time="1765100400",
        return_logistics_code="YT7000001",
        return_logistics_company_name="圆通速递",
        exchange_sku_info={"sku_id": 3456, "code": "TEA-500-RED", "num": 1},
        evidence=None,
    )
    item["text_part"] = None
    item["order_info"]["related_order_info"].append({"sku_order_id": None})  # junk row: skipped
    a = douyin().after_sale_from_payload(item)
    assert a.status == AfterSaleStatus.WAITING_MERCHANT_RECEIPT
    assert a.deadline == datetime.fromtimestamp(1765272800, UTC)
    assert a.version == "1765100400" and a.return_tracking_no == "YT7000001" and a.return_carrier == "yto"
    assert a.exchange_sku_code == "TEA-500-RED" and a.evidence == () and len(a.items) == 1


def test_douyin_missing_optionals_and_malformed() -> None:
    bare = {"aftersale_info": {"aftersale_id": 7312345678901234999, "apply_time": 1765100000}}
    a = douyin().after_sale_from_payload(bare)
    assert a.platform_after_sale_id == "7312345678901234999" and a.deadline is None and a.items == ()
    assert a.version == "" and a.platform_order_id == "" and a.type == AfterSaleType.OTHER
    for junk in ({}, {"aftersale_info": None}, {"aftersale_info": {"aftersale_id": "1"}}, "oops"):
        with pytest.raises(ChannelError, match="malformed"):
            douyin().after_sale_from_payload(junk)  # type: ignore[arg-type]


def kuaishou_refund(**overrides) -> dict:
    raw = {
        "oid": 2412070000123456,
        "refundId": "2412070000999001",
        "handlingWay": 1,
        "negotiateStatus": 1,
        "refundFee": 3900,
        "skuId": 11223344,
        "relSkuId": 0,
        "skuNick": "TEA-250",
        "itemId": 556677,
        "refundReason": 12,
        "refundReasonDesc": "不想要了",
        "status": 11,
        "refundType": 1,
        "refundDesc": "不想要了",
        "submitTime": 1765100000000,
        "createTime": 1765100000000,
        "updateTime": 1765100300000,
        "negotiateUpdateTime": 1765100300000,
        "endTime": 0,
        "expireTime": 1765272800000,
        "receiptStatus": 2,
        "logisticsId": 0,
        "pictures": "https://kwai.img/p/1.jpg,https://kwai.img/p/2.jpg",
    }
    raw.update(overrides)
    return raw


def test_kuaishou_return_maps_every_neutral_field() -> None:
    a = after_sale_from_kuaishou(kuaishou_refund(), shop_id="887766")
    assert a.platform_after_sale_id == "2412070000999001" and a.platform_order_id == "2412070000123456"
    assert a.type == AfterSaleType.RETURN_REFUND and a.status == AfterSaleStatus.WAITING_MERCHANT
    assert a.deadline == datetime.fromtimestamp(1765272800, UTC) and a.version == ""
    assert a.platform_type == "1" and a.reason_code == "12" and a.refund_status == "1"
    assert a.evidence == ("https://kwai.img/p/1.jpg", "https://kwai.img/p/2.jpg")
    assert a.items == (
        AfterSaleItem(
            platform_line_id="2412070000123456",
            refund_fen=3900,
            merchant_code="TEA-250",
            platform_sku_id="11223344",
        ),
    )
    assert a.shipped is True


@pytest.mark.parametrize(("way", "neutral"), [
    (10, AfterSaleType.REFUND_ONLY), (3, AfterSaleType.EXCHANGE), (4, AfterSaleType.RESHIP), (5, AfterSaleType.OTHER),
])  # fmt: skip
def test_kuaishou_handling_ways(way: int, neutral: AfterSaleType) -> None:
    a = after_sale_from_kuaishou(kuaishou_refund(handlingWay=str(way)), shop_id="887766")
    assert a.type == neutral and a.platform_type == str(way)
    if way == 10:
        assert a.shipped is None


def test_kuaishou_untidy_and_malformed() -> None:
    a = after_sale_from_kuaishou(
        kuaishou_refund(
            expireTime=0,
            pictures=None,
            relSkuId="99887766",
            logisticsInfo={"expressNo": "ZT1", "expressCode": 9},
        ),
        shop_id="887766",
    )
    assert a.deadline is None and a.evidence == () and a.items[0].platform_sku_id == "99887766"
    assert a.return_tracking_no == "ZT1" and a.return_carrier == "zto"
    for junk in ({}, {"oid": 1}, None, []):
        with pytest.raises(ChannelError, match="malformed"):
            after_sale_from_kuaishou(junk, shop_id="887766")  # type: ignore[arg-type]


def wechat_order(**overrides) -> dict:
    a = {
        "after_sale_order_id": 3717000000001234,
        "order_id": "3717000000000001",
        "status": "MERCHANT_PROCESSING",
        "type": "REFUND",
        "sub_type": "REFUND_BEFORE_SHIP",
        "reason": "拍错了",
        "openid": "o-buyer",
        "product_info": {"product_id": 10000123, "sku_id": "2000045", "sku_code": "TEA-100", "count": 1},
        "details": {
            "desc": "",
            "receive_product": False,
            "cancel_time": 0,
            "media_id_list": ["https://mmecimage.cn/p/ev1.jpg", "MEDIA_ID_NOT_A_LINK"],
        },  # fmt: skip
        "refund_info": {"amount": 1990, "refund_reason": "拍错了"},
        "return_info": {"waybill_id": "", "delivery_id": "", "delivery_name": ""},
        "create_time": 1765100000,
        "update_time": 1765100300,
        "deadline": 1765272800,
    }
    a.update(overrides)
    return a


def test_wechat_refund_maps_every_neutral_field() -> None:
    a = after_sale_from_wechat(wechat_order(), shop_id="wxshop", now=NOW)
    assert a.platform_after_sale_id == "3717000000001234" and a.platform_order_id == "3717000000000001"
    assert a.platform_line_id == "10000123:2000045"  # as the WeChat order mapping names lines
    assert a.type == AfterSaleType.REFUND_ONLY and a.shipped is False
    assert a.deadline == datetime.fromtimestamp(1765272800, UTC) and a.version == ""
    assert a.platform_type == "REFUND/REFUND_BEFORE_SHIP" and a.refund_fen == 1990
    assert a.evidence == ("https://mmecimage.cn/p/ev1.jpg",)
    assert a.items == (
        AfterSaleItem(
            platform_line_id="10000123:2000045",
            quantity=1,
            refund_fen=1990,
            merchant_code="TEA-100",
            platform_sku_id="2000045",
        ),
    )


def test_wechat_return_exchange_untidy_and_malformed() -> None:
    a = after_sale_from_wechat(
        wechat_order(
            type="EXCHANGE", sub_type=None, status="MERCHANT_WAIT_RECEIPT", deadline=None, details=None,
            return_info={"waybill_id": "SF100", "delivery_id": "SF", "delivery_name": "顺丰速运"},
            exchange_product_info={"product_id": 10000123, "old_sku_id": 2000045, "new_sku_id": 2000046,
                                   "sku_code": "TEA-100-L"},
        ),
        shop_id="wxshop",
        now=NOW,
    )  # fmt: skip
    assert a.type == AfterSaleType.EXCHANGE and a.status == AfterSaleStatus.WAITING_MERCHANT_RECEIPT
    assert a.shipped is True and a.deadline is None and a.evidence == ()
    assert a.return_carrier == "sf" and a.return_tracking_no == "SF100" and a.exchange_sku_code == "TEA-100-L"
    bare = after_sale_from_wechat({"after_sale_order_id": "1", "order_id": 2}, shop_id="wxshop", now=NOW)
    assert bare.items == () and bare.platform_order_id == "2" and bare.created_at == NOW
    for junk in ({}, {"order_id": 1}, "x", None):
        with pytest.raises(ChannelError, match="malformed"):
            after_sale_from_wechat(junk, shop_id="wxshop", now=NOW)

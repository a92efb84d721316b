"""Issue 11, "Real platform data" (d13–d17) and the sandbox's untidy shapes, met by the
connectors with literal payloads shaped like the platforms' published ones."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import httpx
import pytest

from channels import intake, services
from channels.connectors import scrub_payload
from channels.connectors.base import AppCredentials, RetryPolicy, ShopSession
from channels.connectors.douyin import DouyinConnector
from channels.connectors.kuaishou import KuaishouConnector
from channels.connectors.kuaishou.orders import order_from_kuaishou
from channels.connectors.wechat import WechatConnector, WechatPushCodec
from channels.models import OrderSnapshot, Store
from channels.routing.models import PushReceipt
from channels.types import AfterSaleStatus, OrderStatus, ShipmentParcel

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
PLAIN_NAME, PLAIN_PHONE, PLAIN_DETAIL = "张三丰", "13812345678", "文三路 90 号 3 幢 501 室"


def douyin(http: httpx.Client | None = None) -> DouyinConnector:
    return DouyinConnector(
        credentials=AppCredentials("dk", "ds"),
        base_url="http://douyin.test",
        session=ShopSession("2001", access_token="t", access_expires_at=datetime(2030, 1, 1, tzinfo=UTC)),
        http=http,
        now=lambda: NOW,
    )


def kuaishou(http: httpx.Client | None = None) -> KuaishouConnector:
    return KuaishouConnector(
        credentials=AppCredentials("kk", "ks", sign_secret="ss"),
        base_url="http://kuaishou.test",
        session=ShopSession("3001", access_token="t", access_expires_at=datetime(2030, 1, 1, tzinfo=UTC)),
        http=http,
        retry=RetryPolicy(sleep=lambda s: None),
        now=lambda: NOW,
    )


def wechat(http: httpx.Client | None = None) -> WechatConnector:
    return WechatConnector(
        credentials=AppCredentials("wx-app", "wx-secret"),
        base_url="http://wechat.test",
        session=ShopSession("wx-shop", access_token="t", access_expires_at=datetime(2030, 1, 1, tzinfo=UTC)),
        http=http,
        retry=RetryPolicy(sleep=lambda s: None),
        now=lambda: NOW,
        detail_workers=1,
    )


# --------------------------------------------------------------------------- payloads


def douyin_order(*, cipher_head: str = "", open_address_id: str | None = "oaid-1", **over) -> dict:
    """A Douyin shop order as ``/order/searchList`` gives it; 2024 ciphertexts (empty first
    segment, ``*`` inside), enums and ids as strings, line-level receiver copies."""
    receiver = {
        "post_receiver": "",
        "encrypt_post_receiver": f"#{cipher_head}#Zm9v*YmFyYmF6cXV4#1##",
        "post_tel": "",
        "encrypt_post_tel": f"${cipher_head}$bWFza2*VkMTIzNDU2$1$$",
        "mask_post_receiver": "张**",
        "mask_post_tel": "138****5678",
        "post_addr": {
            "province": {"name": "浙江省", "id": "33"},
            "city": {"name": "杭州市", "id": "330100"},
            "town": {"name": "西湖区", "id": "330106"},
            "street": {"name": "文新街道", "id": "330106011"},
            "detail": "",
            "encrypt_detail": f"#{cipher_head}#ZGV0*YWlsZGV0YWls#1##",
        },
        "mask_post_addr": {"province": {"name": "浙江省"}, "detail": "文***室"},
    }
    line = {
        "order_id": "6920000000000000002",
        "parent_order_id": "6920000000000000001",
        "order_status": "2",
        "product_id": 3600000000000000001,
        "product_id_str": "3600000000000000001",
        "sku_id": "1760000000000000001",
        "code": "TSHIRT-WHT-L",
        "product_name": "纯棉T恤",
        "spec": [{"name": "颜色", "value": "白色"}],
        "item_num": "2",
        "origin_amount": 9900,
        "sum_amount": "19800",
        "pay_amount": 18800,
        "theme_type": "1",
        "content_id": "0",
        "after_sale_info": {"after_sale_status": "0", "refund_status": "0"},
        **copy.deepcopy(receiver),
    }
    order = {
        "shop_id": 2001,
        "order_id": "6920000000000000001",
        "order_status": "2",
        "main_status": "2",
        "create_time": 1763600000,
        "pay_time": "1763600060",
        "update_time": 1763600100,
        "order_amount": 18800,
        "pay_amount": "18800",
        "post_amount": 0,
        "promotion_amount": 1000,
        "buyer_words": "",
        "sku_order_list": [line],
        **receiver,
    }
    if open_address_id is not None:
        order["open_address_id"] = open_address_id
    order.update(over)
    return order


def kuaishou_order(*, status: int = 30, delivery: dict | None = None, address: bool = True, **base) -> dict:
    """A Kuaishou order (§2.4): per-field ciphertext markers, string expressCode, a 4-digit city
    code, millisecond times with non-zero milliseconds, empty plain address fields."""
    raw = {
        "orderBaseInfo": {
            "oid": 2311150000000001,
            "status": status,
            "createTime": 1763600000123,
            "payTime": "1763600060456",
            "updateTime": 1763600100789,
            "totalFee": 9900,
            "expressFee": 0,
            "discountFee": 0,
            "buyerOpenId": "f1b68e8f2a4995ed14bf572415fe0000",
            "validPromiseShipmentTimeStamp": 1763772860000,
            "disableDeliveryReasonCode": [],
            "riskCode": 0,
            **base,
        },
        "orderItemInfo": {
            "skuId": "5000000000001",
            "skuNick": "TSHIRT-WHT-L",
            "itemId": 4000000000001,
            "itemTitle": "纯棉T恤",
            "num": 1,
            "price": "9900",
            "skuDesc": "白色",
        },  # fmt: skip
        "orderAddress": {
            "consignee": "",
            "mobile": "",
            "address": "",
            "encryptedConsignee": "#name#c2lnbmVkbmFtZTEyMw#1##" if address else "",
            "desensitiseConsignee": "张*" if address else "",
            "encryptedMobile": "$mobile$c2lnbmVkbW9iaWxl$1$" if address else "",
            "desensitiseMobile": "138****5678" if address else "",
            "encryptedAddress": "~address~c2lnbmVkYWRkcmVzcw~1~~" if address else "",
            "desensitiseAddress": "文***室" if address else "",
            "provinceCode": 330000,
            "province": "浙江省",
            "cityCode": 3301,
            "city": "杭州市",
            "districtCode": 330106,
            "district": "西湖区",
        },  # fmt: skip
        "orderLogisticsInfo": [{"expressNo": "YT100", "expressCode": "6", "logisticsId": 88}]
        if status >= 40
        else [],
        "orderRefundList": [],
    }
    if delivery is not None:
        raw["orderDeliveryInfo"] = delivery
    return raw


def wechat_order(
    *, hash_code: str | None = None, real_price: bool = True, plain: bool = False, **over
) -> dict:
    """``/channels/ec/order/get``'s ``order`` as the doc samples show it (no ``hash_code``)."""
    lines = [
        {"product_id": 10000000666721, "sku_id": "577952001", "sku_cnt": 2, "title": "纯棉T恤",
         "sale_price": 9900, "real_price": 18000, "sku_code": "纯棉T恤-白-L"},
        {"product_id": "10000000666722", "sku_id": 577952002, "sku_cnt": 1, "title": "帽子",
         "sale_price": "3000", "real_price": 2600, "sku_code": "帽子-红"},
    ]  # fmt: skip
    if not real_price:
        for line in lines:
            del line["real_price"]
    address = {
        "user_name": PLAIN_NAME if plain else "张**",
        "tel_number": PLAIN_PHONE if plain else "138****5678",
        "detail_info": PLAIN_DETAIL if plain else "文***室",
        "province_name": "浙江省",
        "city_name": "杭州市",
        "county_name": "西湖区",
        "postal_code": "310000",
    }
    if hash_code is not None:
        address["hash_code"] = hash_code
    order = {
        "order_id": 3705115058471208928,
        "status": "20",
        "create_time": "1763600000",
        "update_time": 1763600100,
        "order_detail": {
            "product_infos": lines,
            "pay_info": {"pay_time": "1763600060"},
            "price_info": {
                "product_price": 22800,
                "order_price": 21600,
                "freight": 1000,
                "discounted_price": 2200,
            },
            "delivery_info": {"address_info": address, "delivery_product_info": []},
        },
    }
    order.update(over)
    return order


def calls(handler):
    seen: list[httpx.Request] = []

    def transport(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    return seen, httpx.Client(transport=httpx.MockTransport(transport))


# --------------------------------------------------------------------------- d13


def test_issue11_d13_kuaishou_shipped_order_without_delivery_info_is_shipped_not_partly():
    shipped = order_from_kuaishou(kuaishou_order(status=40), shop_id="3001")
    assert shipped.status is OrderStatus.SHIPPED
    partly = order_from_kuaishou(
        kuaishou_order(status=40, delivery={"deliveryNum": 0, "packageNum": 1}), shop_id="3001"
    )
    assert partly.status is OrderStatus.PARTIALLY_SHIPPED  # the platform's own count still counts


def test_issue11_d13_kuaishou_ship_does_not_deliver_a_shipped_order_again():
    detail = kuaishou_order(status=40)

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/open/order/detail"):
            return httpx.Response(200, json={"result": 1, "data": detail})
        return httpx.Response(200, json={"result": 1, "data": {}})

    seen, http = calls(answer)
    kuaishou(http).ship(
        platform_order_id="2311150000000001",
        parcels=[ShipmentParcel(carrier_code="6", tracking_no="YT200")],
        request_id="r1",
    )
    written = [r.url.path for r in seen if r.method == "POST"]
    assert "/open/seller/order/goods/deliver" not in written
    assert "/open/order/goods/split/deliver" not in written
    assert written == ["/open/seller/order/goods/logistics/append"]  # an extra box, nothing delivered twice


# --------------------------------------------------------------------------- d14, d15 (connector side)


def test_issue11_d14_wechat_without_hash_code_gives_no_receiver_identity():
    one = wechat().to_channel_order(wechat_order())
    other = wechat().to_channel_order(wechat_order(order_id="3705115058471208929"))
    assert one.receiver.fingerprint() == "" == other.receiver.fingerprint()  # never auto-merged
    with_hash = wechat().to_channel_order(wechat_order(hash_code="h-1"))
    assert with_hash.receiver.fingerprint() and with_hash.receiver.identity == "h-1"


def test_issue11_d14_kuaishou_gives_no_receiver_identity_with_or_without_address():
    for address in (True, False):
        order = order_from_kuaishou(kuaishou_order(address=address), shop_id="3001")
        assert order.receiver.fingerprint() == ""


def test_issue11_d15_douyin_index_is_not_guessed_from_the_ciphertext():
    today = douyin().order_from_payload(douyin_order())
    again = douyin().order_from_payload(douyin_order(cipher_head="", update_time=1763600200))
    assert [f.index for f in (today.receiver.name, today.receiver.phone, today.receiver.address)] == [
        "",
        "",
        "",
    ]
    # the identity is the platform's open_address_id, whatever the ciphertexts look like
    assert today.receiver.fingerprint() == again.receiver.fingerprint() == "id:oaid-1"
    headed = douyin().order_from_payload(douyin_order(cipher_head="xyz", open_address_id=None))
    assert headed.receiver.fingerprint() == ""  # an index-looking head is not taken as one


# --------------------------------------------------------------------------- d16


def test_issue11_d16_connectors_keep_no_plaintext_receiver_in_raw():
    old = douyin_order(post_receiver=PLAIN_NAME, post_tel=PLAIN_PHONE)
    old["post_addr"]["detail"] = PLAIN_DETAIL
    old["sku_order_list"][0].update(post_receiver=PLAIN_NAME, post_tel=PLAIN_PHONE)
    raws = {
        "douyin": douyin().order_from_payload(old).raw,
        "wechat": wechat().to_channel_order(wechat_order(plain=True)).raw,
    }
    ks = kuaishou_order()
    ks["orderAddress"].update(consignee=PLAIN_NAME, mobile=PLAIN_PHONE, address=PLAIN_DETAIL)
    raws["kuaishou"] = order_from_kuaishou(ks, shop_id="3001").raw
    for platform, raw in raws.items():
        text = json.dumps(raw, ensure_ascii=False)
        for plain in (PLAIN_NAME, PLAIN_PHONE, PLAIN_DETAIL):
            assert plain not in text, (platform, plain)
    assert raws["douyin"]["post_tel"] == "138****5678"  # replaced by its mask
    assert raws["douyin"]["encrypt_post_tel"] == old["encrypt_post_tel"]  # ciphertexts stay
    assert raws["kuaishou"]["orderAddress"]["consignee"] == "张*"
    assert raws["wechat"]["order_detail"]["delivery_info"]["address_info"]["province_name"] == "浙江省"
    # the masks the order shows are never plaintext either: made from it the platform's way
    r = wechat().to_channel_order(wechat_order(plain=True)).receiver
    assert r.phone.mask == PLAIN_PHONE[:3] + "****" + PLAIN_PHONE[-4:]
    assert r.name.mask == PLAIN_NAME[0] + "*" * (len(PLAIN_NAME) - 1)
    assert r.address.mask == PLAIN_DETAIL[:3] + "****"
    wechat_raw = json.dumps(raws["wechat"], ensure_ascii=False)
    assert r.phone.mask in wechat_raw and r.name.mask in wechat_raw  # the stored payload keeps the masks


def test_issue11_d16_stored_order_versions_hold_no_plaintext(in_alpha):
    store = Store.objects.create(platform="douyin", platform_shop_id="2001", name="抖店", app_key="k")
    old = douyin_order(post_receiver=PLAIN_NAME, post_tel=PLAIN_PHONE)
    old["post_addr"]["detail"] = PLAIN_DETAIL
    co = douyin().order_from_payload(douyin_order())
    services.store_order_version(store=store, order=co, payload=old, source="push")  # a payload given as is
    text = json.dumps(list(OrderSnapshot.objects.values_list("payload", flat=True)), ensure_ascii=False)
    assert OrderSnapshot.objects.count() == 1
    for plain in (PLAIN_NAME, PLAIN_PHONE, PLAIN_DETAIL):
        assert plain not in text


# --------------------------------------------------------------------------- d17


def test_issue11_d17_wechat_line_paid_without_real_price():
    with_real = wechat().to_channel_order(wechat_order())
    assert [line.paid_fen for line in with_real.lines] == [18000, 2600]
    without = wechat().to_channel_order(wechat_order(real_price=False))
    paid = [line.paid_fen for line in without.lines]
    assert all(paid) and sum(paid) == 21600 - 1000  # the goods' share of order_price, by list value
    assert paid == [17889, 2711]  # 20600 split 19800 : 3000, largest remainder first


def test_issue11_d17_douyin_times_in_milliseconds():
    order = douyin().order_from_payload(douyin_order(create_time=1763600000123, update_time="1763600100456"))
    assert order.created_at == datetime.fromtimestamp(1763600000.123, UTC)
    assert order.updated_at == datetime.fromtimestamp(1763600100.456, UTC)
    assert order.paid_at == datetime.fromtimestamp(1763600060, UTC)


def test_issue11_d17_one_unreadable_wechat_after_sale_does_not_end_the_walk():
    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content or b"{}")
        if request.url.path.endswith("/aftersale/getaftersalelist"):
            return httpx.Response(
                200, json={"errcode": 0, "after_sale_order_id_list": ["A1", 2, "A3"], "has_more": False}
            )
        if body.get("after_sale_order_id") == "2":
            return httpx.Response(200, json={"errcode": 9710001, "errmsg": "aftersale not exist"})
        return httpx.Response(
            200,
            json={
                "errcode": 0,
                "after_sale_order": {
                    "after_sale_order_id": body["after_sale_order_id"],
                    "order_id": 3705115058471208928,
                    "status": "MERCHANT_PROCESSING",
                    "type": "REFUND",
                    "product_info": {"product_id": "1", "sku_id": 2, "count": "1"},
                    "refund_info": {"amount": "2600"},
                    "create_time": 1763600000,
                    "update_time": "1763600100",
                },
            },
        )

    _, http = calls(answer)
    got = list(wechat(http).iter_after_sales(updated_from=NOW, updated_to=NOW))
    assert [a.platform_after_sale_id for a in got] == ["A1", "A3"]
    assert got[0].status is AfterSaleStatus.WAITING_MERCHANT and got[0].refund_fen == 2600


# --------------------------------------------------------------------------- the sandbox's untidy shapes


@pytest.mark.parametrize("oid", [3705115058471208928, "3705115058471208928"])
def test_wechat_ids_and_times_as_numbers_or_strings(oid):
    order = wechat().to_channel_order(wechat_order(order_id=oid))
    assert order.platform_order_id == "3705115058471208928"
    assert order.paid_at == datetime.fromtimestamp(1763600060, UTC) and order.status is OrderStatus.PAID
    assert [line.merchant_code for line in order.lines] == ["纯棉T恤-白-L", "帽子-红"]  # Chinese sku_code
    assert [line.unit_price_fen for line in order.lines] == [9900, 3000]  # a string price


def test_douyin_string_enums_ids_and_line_level_receiver():
    order = douyin().order_from_payload(douyin_order())
    assert (order.status, order.platform_status, order.platform_shop_id) == (OrderStatus.PAID, "2", "2001")
    (line,) = order.lines
    assert (line.platform_sku_id, line.quantity, line.paid_fen) == ("1760000000000000001", 2, 18800)
    assert order.goods_fen == 19800 and order.paid_fen == 18800
    assert order.receiver.name.cipher.startswith("##") and order.receiver.phone.cipher.startswith("$$")
    assert order.receiver.district == "西湖区" and order.receiver.address.mask == "文***室"


def test_kuaishou_markers_codes_times_and_empty_plain_fields():
    order = order_from_kuaishou(kuaishou_order(status=40), shop_id="3001")
    assert order.created_at == datetime.fromtimestamp(1763600000.123, UTC)
    assert order.paid_at == datetime.fromtimestamp(1763600060.456, UTC)
    assert order.receiver.phone.cipher == "$mobile$c2lnbmVkbW9iaWxl$1$"
    assert order.receiver.address.cipher == "~address~c2lnbmVkYWRkcmVzcw~1~~"
    assert (order.receiver.city, order.receiver.name.mask) == ("杭州市", "张*")
    assert [(p.tracking_no, p.carrier_code) for p in order.packages] == [("YT100", "6")]  # expressCode "6"
    assert order.lines[0].unit_price_fen == 9900 and order.lines[0].platform_sku_id == "5000000000001"


def test_issue11_d16_push_messages_and_routed_bodies_hold_no_plaintext():
    data = {
        "p_id": 6920000000000000001,
        "shop_id": 2001,
        "receiver_msg": {
            "name": PLAIN_NAME,
            "tel": PLAIN_PHONE,
            "addr": {"province": {"name": "浙江省"}, "detail": PLAIN_DETAIL},
            "encrypt_detail": "##ZGV0*YWlsZGV0YWls#1##",
        },
        "post_tel": PLAIN_PHONE,
    }
    body = json.dumps([{"tag": "105", "msg_id": "m1", "data": json.dumps(data, ensure_ascii=False)}])
    receipt = PushReceipt(platform="douyin", body=body)
    assert intake._scrub_body(receipt)  # a routed receipt's plain-JSON body
    message = scrub_payload("douyin", data)  # what goes into the tenant's inbox
    for text in (receipt.body, json.dumps(message, ensure_ascii=False)):
        for plain in (PLAIN_NAME, PLAIN_PHONE, PLAIN_DETAIL):
            assert plain not in text
    assert message["p_id"] == 6920000000000000001 and message["receiver_msg"]["encrypt_detail"]
    stored = json.loads(json.loads(receipt.body)[0]["data"])
    assert stored["shop_id"] == 2001 and stored["receiver_msg"]["addr"]["province"] == {"name": "浙江省"}
    assert not intake._scrub_body(receipt)  # idempotent: nothing left to change


@pytest.mark.parametrize("oid", [3705115058471208928, "3705115058471208928"])
def test_wechat_order_events_with_ids_and_times_as_numbers_or_strings(oid):
    message = WechatPushCodec.to_message(
        {
            "ToUserName": "gh_shop",
            "CreateTime": "1763600100",
            "Event": "channels_ec_order_pay",
            "order_info": {"order_id": oid, "pay_time": 1763600060 if isinstance(oid, int) else "1763600060"},
        }
    )
    assert (message.kind, message.object_id, message.payload["order_id"]) == (
        "order",
        "3705115058471208928",
        "3705115058471208928",
    )


def test_douyin_exchange_after_sale_with_a_string_price():
    item = {
        "aftersale_info": {
            "aftersale_id": 7300000000000000001,
            "aftersale_type": "3",
            "aftersale_status": "6",
            "related_id": "6920000000000000002",
            "apply_time": "1763600000",
            "update_time": 1763600100123,
            "refund_amount": "0",
            "aftersale_num": "1",
            "refund_status": 0,
            "exchange_sku_info": {
                "sku_id": 1760000000000000002,
                "code": "TSHIRT-WHT-M",
                "num": 1,
                "price": "9900",
            },
        },
        "order_info": {"shop_order_id": 6920000000000000001},
    }
    after_sale = douyin().after_sale_from_payload(item)
    assert (after_sale.platform_after_sale_id, after_sale.platform_order_id) == (
        "7300000000000000001",
        "6920000000000000001",
    )
    assert after_sale.type.value == "exchange" and after_sale.status is AfterSaleStatus.WAITING_MERCHANT
    assert after_sale.updated_at == datetime.fromtimestamp(1763600100.123, UTC)

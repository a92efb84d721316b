"""Kuaishou sandbox: shipping (whole, split, append, change), stock deltas, listings,
after-sales, settlement bills and e-waybills."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import untidy
from sandbox.kuaishou import EBILL_CODES, hold_order, set_reserved_stock
from sandbox.model import AfterSaleType
from sandbox.world import ShipmentSpec
from tests.sandbox.test_kuaishou_api import KsEnv, make_env

DAY_MS = 86400 * 1000


@pytest.fixture
def env(tmp_path: Path) -> Iterator[KsEnv]:
    for env in make_env(tmp_path):
        # These tests read shipped quantities; shipped orders without orderDeliveryInfo: test_untidy.py.
        untidy.set_rates(env.world, {"kuaishou.no_delivery_info": 0})
        yield env


def detail(env: KsEnv, oid: str) -> dict:
    return env.data("open.order.detail", {"oid": int(oid)})


# --------------------------------------------------------------------------- carriers and shipping


def test_carrier_list_has_the_official_integer_codes(env: KsEnv) -> None:
    carriers = {c["expressCode"]: c["expressName"] for c in env.data("open.logistics.company.list", {})}
    assert (
        carriers[9] == "中通快递"
        and carriers[6] == "圆通速递"
        and carriers[4] == "顺丰速运"
        and carriers[109] == "极兔速递"
    )
    assert all(isinstance(code, int) for code in carriers)


def test_whole_deliver_ships_the_line_and_refuses_a_second_time(env: KsEnv) -> None:
    order = env.place((0, 2), (1, 1))
    main, other = order.lines
    tracking = env.world.new_tracking_no("ZTO")
    envelope = env.call("open.seller.order.goods.deliver", {"orderId": int(main.line_id), "expressCode": 9, "expressNo": tracking},
                        http_method="POST")  # fmt: skip
    assert envelope["result"] == 1
    shipped = detail(env, main.line_id)
    assert shipped["orderBaseInfo"]["status"] == 40 and shipped["orderBaseInfo"]["sendTime"] > 0
    assert shipped["orderDeliveryInfo"]["deliveryNum"] == 2
    assert (
        shipped["orderLogisticsInfo"][0]["expressNo"] == tracking
        and shipped["orderLogisticsInfo"][0]["expressCode"] == 9
    )
    assert detail(env, other.line_id)["orderBaseInfo"]["status"] == 30  # the sibling line is its own order
    again = env.call("open.seller.order.goods.deliver", {"orderId": int(main.line_id), "expressCode": 9, "expressNo": tracking},
                     http_method="POST")  # fmt: skip
    assert again["result"] == 21


def test_deliver_rules(env: KsEnv) -> None:
    order = env.place((0, 1))
    oid = int(order.lines[0].line_id)
    for code, expected in ((999, "快递公司不存在"), (5, "快递公司已下线")):
        envelope = env.call("open.seller.order.goods.deliver", {"orderId": oid, "expressCode": code, "expressNo": "ZT1234567890"},
                            http_method="POST")  # fmt: skip
        assert (envelope["result"], envelope["error_msg"]) == (11, expected)
    bad_no = env.call(
        "open.seller.order.goods.deliver",
        {"orderId": oid, "expressCode": 9, "expressNo": "纸条"},
        http_method="POST",
    )
    assert bad_no["result"] == 11
    hold_order(env.world, order.lines[0].line_id, codes=[1])
    held = env.call("open.seller.order.goods.deliver", {"orderId": oid, "expressCode": 9, "expressNo": "7123456789012"},
                    http_method="POST")  # fmt: skip
    assert held["result"] == 11 and "多人拼团" in held["error_msg"]
    hold_order(env.world, order.lines[0].line_id, codes=[])
    env.world.apply_aftersale(order.order_id, order.lines[0].line_id, kind=AfterSaleType.REFUND_UNSHIPPED)
    refunding = env.call("open.seller.order.goods.deliver", {"orderId": oid, "expressCode": 9, "expressNo": "7123456789012"},
                         http_method="POST")  # fmt: skip
    assert refunding["result"] == 21 and "退款" in refunding["error_msg"]


def test_gift_orders_must_be_shipped_with_split_deliver(env: KsEnv) -> None:
    order = env.place((0, 3), (1, 1), gift_of={1: 0})
    main, gift = order.lines
    refused = env.call("open.seller.order.goods.deliver", {"orderId": int(gift.line_id), "expressCode": 9, "expressNo": "7123456789012"},
                       http_method="POST")  # fmt: skip
    assert refused["result"] == 11
    first, second = env.world.new_tracking_no("ZTO"), env.world.new_tracking_no("SF")
    split = {
        "mainOrderId": int(main.line_id),
        "deliveryItemInfoList": [
            {"expressCode": 9, "expressNo": first, "deliveryGoodsInfoList": [{"oid": int(main.line_id), "deliveryNum": 1},
                                                                             {"oid": int(gift.line_id), "deliveryNum": 1}]},
            {"expressCode": 4, "expressNo": second, "deliveryGoodsInfoList": [{"oid": int(main.line_id), "deliveryNum": 1}]},
        ],
    }  # fmt: skip
    assert env.call("open.order.goods.split.deliver", split, http_method="POST")["result"] == 1
    partial = detail(env, main.line_id)
    assert (
        partial["orderBaseInfo"]["status"] == 40 and partial["orderDeliveryInfo"]["deliveryNum"] == 2
    )  # of 3
    assert partial["orderDeliveryInfo"]["totalPackageNum"] == 2
    assert {x["expressNo"] for x in partial["orderLogisticsInfo"]} == {first, second}
    [sub] = partial["subOrderInfo"]
    assert sub["subOrderBaseInfo"]["status"] == 40 and sub["subOrderDeliveryInfo"]["deliveryNum"] == 1
    too_many = {"mainOrderId": int(main.line_id), "deliveryItemInfoList": [
        {"expressCode": 9, "expressNo": env.world.new_tracking_no("ZTO"), "deliveryGoodsInfoList": [{"oid": int(main.line_id), "deliveryNum": 2}]}]}  # fmt: skip
    assert env.call("open.order.goods.split.deliver", too_many, http_method="POST")["result"] == 13
    rest = {"mainOrderId": int(main.line_id), "deliveryItemInfoList": [
        {"expressCode": 9, "expressNo": env.world.new_tracking_no("ZTO"), "deliveryGoodsInfoList": [{"oid": int(main.line_id), "deliveryNum": 1}]}]}  # fmt: skip
    assert env.call("open.order.goods.split.deliver", rest, http_method="POST")["result"] == 1
    assert detail(env, main.line_id)["orderDeliveryInfo"]["deliveryNum"] == 3


def test_split_deliver_refuses_oids_of_another_main_order(env: KsEnv) -> None:
    order = env.place((0, 1), (1, 1))
    first, second = order.lines
    body = {"mainOrderId": int(first.line_id), "deliveryItemInfoList": [
        {"expressCode": 9, "expressNo": "7123456789012", "deliveryGoodsInfoList": [{"oid": int(second.line_id), "deliveryNum": 1}]}]}  # fmt: skip
    assert env.call("open.order.goods.split.deliver", body, http_method="POST")["result"] == 13


def test_append_package_and_update_logistics(env: KsEnv) -> None:
    order = env.place((0, 1))
    oid = order.lines[0].line_id
    no_ship = env.call("open.seller.order.goods.logistics.append", {"oid": int(oid), "expressCode": 9, "expressNo": "7123456789012"},
                       http_method="POST")  # fmt: skip
    assert no_ship["result"] == 21
    env.world.ship_order(order.order_id, [ShipmentSpec("ZTO", env.world.new_tracking_no("ZTO"))])
    extra = env.world.new_tracking_no("ZTO")
    assert env.call("open.seller.order.goods.logistics.append", {"oid": int(oid), "expressCode": 9, "expressNo": extra},
                    http_method="POST")["result"] == 1  # fmt: skip
    appended = detail(env, oid)
    assert len(appended["orderLogisticsInfo"]) == 2 and appended["orderDeliveryInfo"]["maxPackageNum"] == 1
    assert appended["orderDeliveryInfo"]["deliveryNum"] == 1
    package_id = appended["orderLogisticsInfo"][0]["logisticsId"]
    fixed = env.world.new_tracking_no("SF")
    update = {"orderId": int(oid), "expressCode": 4, "expressNo": fixed, "logisticsId": package_id}
    assert env.call("open.seller.order.logistics.update", update, http_method="POST")["result"] == 1
    after = detail(env, oid)["orderLogisticsInfo"]
    assert {"expressNo": fixed, "expressCode": 4, "logisticsId": package_id} in after


# --------------------------------------------------------------------------- stock and listings


def test_stock_update_is_delta_only(env: KsEnv) -> None:
    sku = env.world.skus(env.shop_id)[0]
    base = {"kwaiItemId": int(sku.product_id), "skuId": int(sku.sku_id)}
    assert (
        env.call(
            "open.item.sku.stock.update", {**base, "skuChangeStock": 5, "changeType": 1}, http_method="POST"
        )["result"]
        == 1
    )
    assert env.world.get_sku(sku.sku_id).stock == sku.stock + 5
    assert (
        env.call(
            "open.item.sku.stock.update", {**base, "skuChangeStock": 3, "changeType": 2}, http_method="POST"
        )["result"]
        == 1
    )
    assert env.world.get_sku(sku.sku_id).stock == sku.stock + 2
    for bad in (
        {"skuChangeStock": 0, "changeType": 1},
        {"skuChangeStock": 1, "changeType": 3},
        {"skuChangeStock": 9_999_999, "changeType": 1},
    ):
        assert env.call("open.item.sku.stock.update", {**base, **bad}, http_method="POST")["result"] == 13
    too_much = env.call(
        "open.item.sku.stock.update",
        {**base, "skuChangeStock": sku.stock + 3, "changeType": 2},
        http_method="POST",
    )
    assert (too_much["result"], too_much["error_msg"]) == (21, "当前库存不足，请减少预留数量")


def test_reserved_stock_cannot_be_reduced(env: KsEnv) -> None:
    sku = env.world.skus(env.shop_id)[0]
    set_reserved_stock(env.world, sku.sku_id, sku.stock - 2)
    base = {"kwaiItemId": int(sku.product_id), "skuId": int(sku.sku_id), "changeType": 2}
    assert (
        env.call("open.item.sku.stock.update", {**base, "skuChangeStock": 2}, http_method="POST")["result"]
        == 1
    )
    refused = env.call("open.item.sku.stock.update", {**base, "skuChangeStock": 1}, http_method="POST")
    assert refused["result"] == 21 and env.world.get_sku(sku.sku_id).stock == sku.stock - 2


def test_item_and_sku_lists_carry_merchant_codes_and_stock(env: KsEnv) -> None:
    first = env.data("open.item.list.get", {"pageNumber": 1, "pageSize": 10})
    products = env.world.products(env.shop_id, limit=1000)[1]
    assert first["totalItemCount"] == len(products) and first["totalPage"] == -(-len(products) // 10)
    second = env.data("open.item.list.get", {"pageNumber": 2, "pageSize": 10})
    items = first["items"] + second["items"]
    assert len({i["kwaiItemId"] for i in items}) == len(items) == len(products)
    sku_codes = {s["skuNick"]: s["skuStock"] for i in items for s in i["skuList"]}
    assert sku_codes == {s.code: s.stock for s in env.world.skus(env.shop_id)}
    one = items[0]
    skus = env.data("open.item.sku.list.get", {"kwaiItemId": one["kwaiItemId"]})
    assert skus["skuCount"] == len(one["skuList"]) and [s["kwaiSkuId"] for s in skus["skuList"]] == [
        s["kwaiSkuId"] for s in one["skuList"]
    ]


# --------------------------------------------------------------------------- after-sales


def test_refund_list_and_detail(env: KsEnv) -> None:
    order = env.place((0, 1), (1, 1))
    first, second = order.lines
    a = env.world.apply_aftersale(
        order.order_id, first.line_id, kind=AfterSaleType.REFUND_UNSHIPPED, reason="拍错了"
    )
    env.clock.advance(60)
    b = env.world.apply_aftersale(
        order.order_id, second.line_id, kind=AfterSaleType.REFUND_UNSHIPPED, reason="不想要了"
    )
    env.world.agree_aftersale(b.aftersale_id)
    now = env.now_ms()
    base = {
        "beginTime": now - 3_600_000,
        "endTime": now,
        "type": 9,
        "pageSize": 1,
        "currentPage": 1,
        "sort": 2,
        "queryType": 2,
    }
    page = env.data("open.seller.order.refund.pcursor.list", {**base, "pcursor": ""})
    assert page["totalSize"] == 2 and page["totalPage"] == 2 and page["pcursor"] != "nomore"
    page2 = env.data("open.seller.order.refund.pcursor.list", {**base, "pcursor": page["pcursor"]})
    assert page2["pcursor"] == "nomore"
    listed = page["refundOrderInfoList"] + page2["refundOrderInfoList"]
    assert [int(r["refundId"]) for r in listed] == [
        int(a.aftersale_id),
        int(b.aftersale_id),
    ]  # untidy: str or int
    assert [r["status"] for r in listed] == [10, 60] and [r["handlingWay"] for r in listed] == [10, 10]
    assert (
        listed[0]["oid"] == int(first.line_id)
        and listed[0]["skuNick"] == first.code
        and listed[0]["negotiateStatus"] == 1
    )
    waiting = env.data(
        "open.seller.order.refund.pcursor.list", {**base, "type": 8, "pageSize": 10, "pcursor": ""}
    )
    assert [r["refundId"] for r in waiting["refundOrderInfoList"]] == [int(a.aftersale_id)]
    one = env.data("open.seller.order.refund.detail", {"refundId": int(a.aftersale_id)})
    assert (
        one["refundId"] == int(a.aftersale_id)
        and one["refundFee"] == a.refund_fen
        and one["refundReasonDesc"] == "拍错了"
    )
    assert detail(env, first.line_id)["orderRefundList"] == [
        {"refundId": int(a.aftersale_id), "refundStatus": 10}
    ]
    assert detail(env, second.line_id)["orderBaseInfo"]["status"] == 80  # fully refunded before shipment


def test_refund_list_window_is_one_day(env: KsEnv) -> None:
    now = env.now_ms()
    base = {"type": 9, "pageSize": 10, "currentPage": 1, "pcursor": ""}
    assert (
        env.call(
            "open.seller.order.refund.pcursor.list", {**base, "beginTime": now - DAY_MS - 1, "endTime": now}
        )["result"]
        == 300019
    )
    assert (
        env.call("open.seller.order.refund.pcursor.list", {**base, "beginTime": now, "endTime": now - 5})[
            "result"
        ]
        == 300003
    )
    assert (
        env.call(
            "open.seller.order.refund.pcursor.list", {**base, "beginTime": now - DAY_MS, "endTime": now}
        )["result"]
        == 1
    )
    assert env.call("open.seller.order.refund.detail", {"refundId": 123})["result"] == 300011


# --------------------------------------------------------------------------- settlement


def test_settled_bills_page_by_order_create_time_and_order_number(env: KsEnv) -> None:
    orders = []
    for _ in range(3):
        order = env.place((0, 1), (1, 1))
        env.world.ship_order(order.order_id, [ShipmentSpec("ZTO", env.world.new_tracking_no("ZTO"))])
        env.world.receive_order(order.order_id)
        env.world.complete_order(order.order_id)
        orders.append(order)
        env.clock.advance(30)
    now = env.now_ms()
    window = {"settlementStartTime": now - 3_600_000, "settlementEndTime": now, "size": 4}
    page = env.data("open.funds.financial.settled.bill.detail", {**window, "cursor": ""})
    assert len(page["orders"]) == 4 and page["cursor"] != "nomore"
    first_create, first_no = (int(x) for x in page["cursor"].split(","))
    assert first_no == page["orders"][-1]["orderNo"]
    rest = env.data("open.funds.financial.settled.bill.detail", {**window, "cursor": page["cursor"]})
    assert rest["cursor"] == "nomore"
    bills = page["orders"] + rest["orders"]
    assert sorted(b["orderNo"] for b in bills) == sorted(int(ln.line_id) for o in orders for ln in o.lines)
    line = orders[0].lines[0]
    bill = next(b for b in bills if b["orderNo"] == int(line.line_id))
    fee = int(bill["platformCommissionAmount"])
    assert (
        int(bill["actualPayAmount"]) == line.pay_fen and int(bill["settlementAmount"]) == line.pay_fen - fee
    )
    assert bill["productName"] == line.title and bill["settlementStatus"] == "已结算"
    by_order = env.data("open.funds.financial.settled.bill.detail", {"orderId": int(line.line_id)})
    assert [b["orderNo"] for b in by_order["orders"]] == [int(line.line_id)]


# --------------------------------------------------------------------------- e-waybills


def waybill_request(env: KsEnv, oid: str, *, package: str = "1", company: str = "ZTO") -> dict:
    order = detail(env, oid)
    address = order["orderAddress"]
    base = order["orderBaseInfo"]
    return {
        "merchantCode": base["sellerOpenId"], "merchantName": base["sellerNick"], "packageCode": package,
        "itemList": [{"itemTitle": order["orderItemInfo"]["itemTitle"], "itemQuantity": order["orderItemInfo"]["num"]}],
        "receiverContract": {"name": address["encryptedConsignee"], "mobile": address["encryptedMobile"]},
        "senderContract": {"name": "仓库", "mobile": "13800005678"},
        "expressCompanyCode": company, "orderChannel": "KUAISHOU", "tradeOrderCode": oid,
        "senderAddress": {"provinceName": "浙江省", "cityName": "杭州市", "districtName": "余杭区", "detailAddress": "海创园"},
        "receiverAddress": {"provinceName": address["province"], "cityName": address["city"], "districtName": address["district"],
                            "detailAddress": address["encryptedAddress"]},
        "requestId": f"{oid}-{package}",
    }  # fmt: skip


def test_ebill_takes_one_number_per_package_and_is_idempotent(env: KsEnv) -> None:
    order = env.place((0, 1))
    oid = order.lines[0].line_id
    request = waybill_request(env, oid)
    [first] = env.data("open.express.ebill.get", {"getEbillOrderRequest": [request]}, http_method="POST")
    assert first["baseResponse"]["success"] and first["requestId"] == request["requestId"]
    number = first["data"][0]["waybillCode"]
    assert number.startswith("7") and first["data"][0]["signature"] and first["data"][0]["printData"]
    [again] = env.data("open.express.ebill.get", {"getEbillOrderRequest": [request]}, http_method="POST")
    assert again["data"][0]["waybillCode"] == number
    [second] = env.data(
        "open.express.ebill.get",
        {"getEbillOrderRequest": [waybill_request(env, oid, package="2")]},
        http_method="POST",
    )
    assert second["data"][0]["waybillCode"] != number
    # ship with the waybill's carrier only
    wrong = env.call(
        "open.seller.order.goods.deliver",
        {"orderId": int(oid), "expressCode": 6, "expressNo": number},
        http_method="POST",
    )
    assert (wrong["result"], wrong["error_msg"]) == (11, "电子面单取号与发货快递公司不一致")
    assert env.call("open.seller.order.goods.deliver", {"orderId": int(oid), "expressCode": 9, "expressNo": number},
                    http_method="POST")["result"] == 1  # fmt: skip


def test_ebill_for_a_kuaishou_order_needs_the_order_ciphertexts(env: KsEnv) -> None:
    order = env.place((0, 1))
    oid = order.lines[0].line_id
    request = waybill_request(env, oid)
    request["receiverContract"] = {"name": order.receiver.name, "mobile": order.receiver.phone}
    [answer] = env.data("open.express.ebill.get", {"getEbillOrderRequest": [request]}, http_method="POST")
    assert not answer["baseResponse"]["success"] and "密文" in answer["baseResponse"]["message"]


def test_subscriptions_and_cancel(env: KsEnv) -> None:
    subscriptions = env.data("open.express.subscribe.query", {})
    assert {s["expressCompanyCode"] for s in subscriptions} == {EBILL_CODES[c] for c in ("ZTO", "YTO", "SF")}
    zto = next(s for s in subscriptions if s["expressCompanyCode"] == "ZTO")
    order = env.place((0, 1))
    [taken] = env.data(
        "open.express.ebill.get",
        {"getEbillOrderRequest": [waybill_request(env, order.lines[0].line_id)]},
        http_method="POST",
    )
    number = taken["data"][0]["waybillCode"]
    after = next(s for s in env.data("open.express.subscribe.query", {"expressCompanyCode": "ZTO"}))
    assert after["availableQuantity"] == zto["availableQuantity"] - 1
    assert (
        env.call(
            "open.express.ebill.cancel",
            {"waybillCode": number, "expressCompanyCode": "ZTO"},
            http_method="POST",
        )["result"]
        == 1
    )
    assert (
        env.call(
            "open.express.ebill.cancel",
            {"waybillCode": number, "expressCompanyCode": "ZTO"},
            http_method="POST",
        )["result"]
        == 21
    )

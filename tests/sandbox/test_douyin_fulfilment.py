"""Douyin shipping, stock, after-sales, settlement bills, e-waybills and listings (§1.5–§1.10)."""

from __future__ import annotations

import time

from sandbox.clock import FakeClock
from sandbox.model import AfterSaleType, OrderStatus
from sandbox.world import OrderItemSpec, World
from tests.sandbox.refclients.douyin import DouyinRefClient


def _order(world: World, shop_id: str, *quantities: int, pay: bool = True):
    skus = [s for s in world.skus(shop_id) if s.stock >= 5]
    return world.create_order(
        shop_id=shop_id,
        buyer_id=1,
        pay=pay,
        items=[OrderItemSpec(skus[i].sku_id, q) for i, q in enumerate(quantities)],
    )


def test_logistics_add_ships_whole_order(
    world: World, client: DouyinRefClient, token: dict, shop_id: str
) -> None:
    order = _order(world, shop_id, 1, 2)
    companies = {c["code"] for c in client.data("/order/logisticsCompanyList", {}, token["access_token"])}
    assert "zhongtong" in companies
    assert (
        client.data(
            "/order/logisticsAdd",
            {"order_id": order.order_id, "company_code": "zhongtong", "logistics_code": "75012345678901"},
            token["access_token"],
        )
        == {}
    )
    detail = client.data("/order/orderDetail", {"shop_order_id": order.order_id}, token["access_token"])[
        "shop_order_detail"
    ]
    assert (detail["order_status"], detail["main_status"]) == (3, 3) and detail["ship_time"] > 0
    [pkg] = detail["logistics_info"]
    assert pkg["tracking_no"] == "75012345678901" and pkg["company"] == "zhongtong"
    assert sorted((i["sku_order_id"], i["product_count"]) for i in pkg["product_info"]) == sorted(
        (ln.line_id, ln.qty) for ln in order.lines
    )
    again = client.call(
        "/order/logisticsAdd",
        {"order_id": order.order_id, "company_code": "zhongtong", "logistics_code": "x"},
        token["access_token"],
    )
    assert (again["code"], again["sub_code"]) == (50002, "isv.business-failed:20002")
    bad_company = client.call(
        "/order/logisticsAdd",
        {"order_id": _order(world, shop_id, 1).order_id, "company_code": "nope", "logistics_code": "1"},
        token["access_token"],
    )
    assert bad_company["code"] == 40004
    edited = client.call(
        "/order/logisticsEdit",
        {"order_id": order.order_id, "company_code": "yuantong", "logistics_code": "YT1234567890123"},
        token["access_token"],
    )
    assert edited["code"] == 10000
    assert world.get_order(order.order_id).packages[0].tracking_no == "YT1234567890123"


def test_multi_pack_partial_shipment_is_line_exact_and_idempotent(
    world: World, client: DouyinRefClient, token: dict, shop_id: str
) -> None:
    order = _order(world, shop_id, 3, 1)
    first, second = order.lines
    params = {
        "order_id": order.order_id,
        "request_id": "req-1",
        "pack_list": [
            {
                "shipped_order_info": [{"shipped_order_id": first.line_id, "shipped_num": 2}],
                "company_code": "shunfeng",
                "logistics_code": "SF1000000000001",
            },
            {
                "shipped_order_info": [{"shipped_order_id": second.line_id, "shipped_num": 1}],
                "company_code": "zhongtong",
                "logistics_code": "75000000000002",
            },
        ],
    }
    data = client.data("/order/logisticsAddMultiPack", params, token["access_token"])
    assert [p["logistics_code"] for p in data["pack_list"]] == ["SF1000000000001", "75000000000002"]
    assert data["pack_list"][0]["shipped_order_info"] == [
        {"shipped_order_id": first.line_id, "shipped_num": 2, "shipped_item_ids": []}
    ]
    assert (
        client.data("/order/logisticsAddMultiPack", params, token["access_token"]) == data
    )  # same request_id: first result
    detail = client.data("/order/orderDetail", {"shop_order_id": order.order_id}, token["access_token"])[
        "shop_order_detail"
    ]
    assert detail["main_status"] == 101 and [x["order_status"] for x in detail["sku_order_list"]] == [2, 3]
    too_many = client.call("/order/logisticsAddMultiPack", {**params, "request_id": "req-2", "pack_list": [
        {"shipped_order_info": [{"shipped_order_id": first.line_id, "shipped_num": 2}], "company_code": "shunfeng", "logistics_code": "SF1"}]},
        token["access_token"])  # fmt: skip
    assert too_many["code"] == 40004  # only one left on that line
    rest = {**params, "request_id": "req-3", "pack_list": [
        {"shipped_order_info": [{"shipped_order_id": first.line_id, "shipped_num": 1}], "company_code": "yunda", "logistics_code": "4300000000003"}]}  # fmt: skip
    client.data("/order/logisticsAddMultiPack", rest, token["access_token"])
    assert world.get_order(order.order_id).status == OrderStatus.SHIPPED


def test_pending_refund_blocks_shipping_unless_rejected(
    world: World, client: DouyinRefClient, token: dict, shop_id: str
) -> None:
    order = _order(world, shop_id, 1)
    refund = world.apply_aftersale(
        order.order_id, order.lines[0].line_id, kind=AfterSaleType.REFUND_UNSHIPPED, reason="拍错了"
    )
    blocked = client.call(
        "/order/logisticsAdd",
        {"order_id": order.order_id, "company_code": "zhongtong", "logistics_code": "7501"},
        token["access_token"],
    )
    assert (blocked["code"], blocked["sub_code"]) == (50002, "isv.business-failed:20003")
    shipped = client.call(
        "/order/logisticsAdd",
        {
            "order_id": order.order_id,
            "company_code": "zhongtong",
            "logistics_code": "7501",
            "is_refund_reject": True,
        },
        token["access_token"],
    )
    assert shipped["code"] == 10000
    assert world.get_aftersale(refund.aftersale_id).status == "seller_rejected"


def test_stock_sync_semantics(world: World, client: DouyinRefClient, token: dict, shop_id: str) -> None:
    sku = world.skus(shop_id)[0]
    at = token["access_token"]
    assert (
        client.data(
            "/sku/syncStock", {"sku_id": sku.sku_id, "product_id": sku.product_id, "stock_num": 7}, at
        )
        == {}
    )
    assert client.data("/sku/stockNum", {"sku_id": sku.sku_id}, at)["stock_num"] == 7
    client.data("/sku/syncStock", {"code": sku.code, "stock_num": 0}, at)  # by merchant code, zero allowed
    assert world.get_sku(sku.sku_id).stock == 0
    delta = {"code": sku.code, "stock_num": 5, "incremental": True, "idempotent_id": "inc-1"}
    client.data("/sku/syncStock", delta, at)
    repeat = client.call("/sku/syncStock", delta, at)
    assert (repeat["code"], repeat["sub_code"]) == (40003, "isv.idempotent-id-existed")
    assert world.get_sku(sku.sku_id).stock == 5
    no_id = client.call("/sku/syncStock", {"code": sku.code, "stock_num": 1, "incremental": True}, at)
    assert (no_id["code"], no_id["sub_code"]) == (40002, "isv.parameter-missing")
    negative = client.call(
        "/sku/syncStock",
        {"code": sku.code, "stock_num": -9, "incremental": True, "idempotent_id": "inc-2"},
        at,
    )
    assert negative["code"] == 50002 and world.get_sku(sku.sku_id).stock == 5
    assert (
        client.call("/sku/syncStock", {"code": "NO-SUCH", "stock_num": 1}, at)["sub_code"]
        == "isv.business-failed:30001"
    )
    other_shop_sku = world.skus(world.shops("douyin")[1].shop_id)[0]
    assert (
        client.call("/sku/syncStock", {"sku_id": other_shop_sku.sku_id, "stock_num": 1}, at)["code"] == 50002
    )


def test_stock_batch_is_all_or_nothing(
    world: World, client: DouyinRefClient, token: dict, shop_id: str
) -> None:
    product = next(p for p in world.products(shop_id)[1] if len(p.skus) >= 2)
    a, b = product.skus[0], product.skus[1]
    at = token["access_token"]
    client.data(
        "/sku/syncStockBatch",
        {
            "product_id": product.product_id,
            "sku_sync_list": [{"sku_id": a.sku_id, "stock_num": 11}, {"sku_id": b.sku_id, "stock_num": 12}],
        },
        at,
    )
    assert (world.get_sku(a.sku_id).stock, world.get_sku(b.sku_id).stock) == (11, 12)
    failed = client.call(
        "/sku/syncStockBatch",
        {
            "product_id": product.product_id,
            "sku_sync_list": [
                {"sku_id": a.sku_id, "stock_num": 1},
                {"sku_id": "1700000000000000000", "stock_num": 1},
            ],
        },
        at,
    )
    assert failed["code"] == 50002
    assert world.get_sku(a.sku_id).stock == 11  # the first item was rolled back


def test_orders_reduce_platform_stock_and_cancellation_restores(world: World, shop_id: str) -> None:
    sku = world.skus(shop_id)[0]
    world.set_stock(sku.sku_id, 5)
    at_order = world.create_order(shop_id=shop_id, buyer_id=1, items=[OrderItemSpec(sku.sku_id, 2)])
    assert world.get_sku(sku.sku_id).stock == 3
    at_pay = world.create_order(
        shop_id=shop_id, buyer_id=1, items=[OrderItemSpec(sku.sku_id, 3)], stock_reduce="pay"
    )
    assert world.get_sku(sku.sku_id).stock == 3
    world.pay_order(at_pay.order_id)
    assert world.get_sku(sku.sku_id).stock == 0
    world.cancel_order(at_order.order_id, reason="超时未支付", kind="unpaid_timeout")
    assert world.get_sku(sku.sku_id).stock == 2
    refund = world.apply_aftersale(
        at_pay.order_id, at_pay.lines[0].line_id, kind=AfterSaleType.REFUND_UNSHIPPED
    )
    world.agree_aftersale(refund.aftersale_id)
    assert world.get_sku(sku.sku_id).stock == 5
    order = world.get_order(at_pay.order_id)
    assert order.status == OrderStatus.CANCELLED and order.cancel_kind == "refund"


def test_aftersale_list_detail_and_operate(
    world: World, client: DouyinRefClient, token: dict, shop_id: str, clock: FakeClock
) -> None:
    at = token["access_token"]
    order = _order(world, shop_id, 2, 1)
    client.data(
        "/order/logisticsAdd",
        {"order_id": order.order_id, "company_code": "zhongtong", "logistics_code": "75099"},
        at,
    )
    since = world.now()
    clock.advance(60)
    ret = world.apply_aftersale(
        order.order_id, order.lines[0].line_id, kind=AfterSaleType.RETURN_REFUND, qty=1, reason="七天无理由"
    )
    exch = world.apply_aftersale(
        order.order_id, order.lines[1].line_id, kind=AfterSaleType.EXCHANGE, reason="尺码不合适"
    )
    listing = client.data(
        "/afterSale/List",
        {
            "update_start_time": since,
            "update_end_time": world.now(),
            "order_by": ["update_time asc"],
            "page": 0,
            "size": 10,
        },
        at,
    )
    assert listing["total"] == 2 and not listing["has_more"]
    info = {str(i["aftersale_info"]["aftersale_id"]): i for i in listing["items"]}  # ids: numbers or strings
    assert (
        info[ret.aftersale_id]["aftersale_info"]["aftersale_type"] == 0
        and info[ret.aftersale_id]["aftersale_info"]["aftersale_status"] == 6
    )
    assert info[ret.aftersale_id]["aftersale_info"]["aftersale_num"] == 1
    assert (
        info[ret.aftersale_id]["order_info"]["related_order_info"][0]["shop_sku_code"] == order.lines[0].code
    )
    assert info[exch.aftersale_id]["aftersale_info"]["aftersale_type"] == 3
    # Return: agree (101) → buyer returns → agree refund (111) → success 12, refund 3.
    client.data("/afterSale/operate", {"type": 101, "items": [{"aftersale_id": ret.aftersale_id}]}, at)
    world.buyer_return_goods(ret.aftersale_id, carrier="YTO", tracking_no="YT9000000000001")
    detail = client.data("/afterSale/Detail", {"after_sale_id": ret.aftersale_id}, at)
    assert detail["process_info"]["after_sale_info"]["after_sale_status"] == 11
    assert detail["process_info"]["logistics_info"]["return"]["tracking_no"] == "YT9000000000001"
    stale = client.call(
        "/afterSale/operate",
        {"type": 111, "items": [{"aftersale_id": ret.aftersale_id, "update_time": 1}]},
        at,
    )
    assert stale["sub_code"] == "isv.business-failed:40003"  # version guard
    version = detail["process_info"]["after_sale_info"]["update_time"]
    done = client.data(
        "/afterSale/operate",
        {"type": 111, "items": [{"aftersale_id": ret.aftersale_id, "update_time": version}]},
        at,
    )
    assert done["items"][0]["status_code"] == 0
    final = client.data("/afterSale/Detail", {"after_sale_id": ret.aftersale_id}, at)["process_info"][
        "after_sale_info"
    ]
    assert (final["after_sale_status"], final["refund_status"]) == (12, 3)
    # Exchange: agree (301) → returned → reship (311, logistics required) → 13.
    client.data("/afterSale/operate", {"type": 301, "items": [{"aftersale_id": exch.aftersale_id}]}, at)
    world.buyer_return_goods(exch.aftersale_id, carrier="ZTO", tracking_no="75088")
    no_logistics = client.call(
        "/afterSale/operate", {"type": 311, "items": [{"aftersale_id": exch.aftersale_id}]}, at
    )
    assert no_logistics["code"] == 40002
    client.data(
        "/afterSale/operate",
        {
            "type": 311,
            "items": [
                {
                    "aftersale_id": exch.aftersale_id,
                    "logistics": {"company_code": "shunfeng", "logistics_code": "SF77"},
                }
            ],
        },
        at,
    )
    assert (
        client.data("/afterSale/Detail", {"after_sale_id": exch.aftersale_id}, at)["process_info"][
            "after_sale_info"
        ]["after_sale_status"]
        == 13
    )
    wrong = client.call(
        "/afterSale/operate", {"type": 201, "items": [{"aftersale_id": exch.aftersale_id}]}, at
    )
    assert wrong["code"] == 50002
    line = client.data("/order/orderDetail", {"shop_order_id": order.order_id}, at)["shop_order_detail"][
        "sku_order_list"
    ][0]
    assert line["after_sale_info"] == {"after_sale_status": 12, "after_sale_type": 0, "refund_status": 3}


def test_settlement_bill_pages_with_cursor(
    world: World, client: DouyinRefClient, token: dict, shop_id: str, clock: FakeClock
) -> None:
    at = token["access_token"]
    start = world.now()
    lines = 0
    for _ in range(5):
        order = _order(world, shop_id, 1, 1)
        client.data(
            "/order/logisticsAdd",
            {"order_id": order.order_id, "company_code": "zhongtong", "logistics_code": "7501"},
            at,
        )
        world.receive_order(order.order_id)
        clock.advance(30)
        world.complete_order(order.order_id)
        lines += len(order.lines)
    fmt = lambda ts: time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts + 8 * 3600))  # noqa: E731
    params = {"start_time": fmt(start), "end_time": fmt(world.now()), "size": 3}
    rows = []
    while True:
        data = client.data("/order/getSettleBillDetailV3", params, at)
        assert data["code"] == "100000"
        rows += data["data"]
        if data["is_end"] == 1:
            break
        params = {**params, "start_index": data["next_start_index"], "start_time": data["next_start_time"]}
    assert len(rows) == lines and len({r["order_id"] for r in rows}) == lines
    for row in rows:
        assert (
            row["settle_amount"]
            == row["real_pay_amount"] - row["refund_before_settle"] - row["platform_service_fee"]
        )
        assert row["trade_type"] == 0


def test_ewaybill_create_print_cancel(
    world: World, client: DouyinRefClient, token: dict, shop_id: str
) -> None:
    at = token["access_token"]
    order = _order(world, shop_id, 1)
    netsites = client.data("/logistics/listShopNetsite", {"logistics_code": "zhongtong"}, at)["netsites"]
    assert netsites and netsites[0]["company"] == "zhongtong"
    balance = int(netsites[0]["amount"])
    detail = client.data("/order/orderDetail", {"shop_order_id": order.order_id}, at)["shop_order_detail"]
    created = client.data("/logistics/newCreateOrder", {
        "logistics_code": "zhongtong",
        "sender_info": {"address": {"province_name": "浙江省", "city_name": "杭州市", "district_name": "余杭区", "detail_address": "仓前"}, "contact": {"name": "仓库", "mobile": "13800000000"}},
        "order_infos": [
            {"order_id": order.order_id, "receiver_info": {"address": {"detail_address": detail["post_addr"]["encrypt_detail"]}, "contact": {"name": detail["encrypt_post_receiver"], "mobile": detail["encrypt_post_tel"]}}, "items": [{"item_name": "T恤", "item_count": 1}]},
            {"order_id": "6900000000000000001", "receiver_info": {"contact": {"name": "x"}}},
        ],
    }, at)  # fmt: skip
    [bill] = created["ebill_infos"]
    assert bill["order_id"] == order.order_id and bill["track_no"] and bill["sort_code"]
    assert created["err_infos"][0]["order_id"] == "6900000000000000001"
    after = client.data("/logistics/listShopNetsite", {"logistics_code": "zhongtong"}, at)["netsites"][0]
    assert int(after["amount"]) == balance - 1 and after["allocated_quantity"] == 1
    printed = client.data(
        "/logistics/waybillApply",
        {"waybill_applies": [{"logistics_code": "zhongtong", "track_no": bill["track_no"]}]},
        at,
    )
    [info] = printed["waybill_infos"]
    assert info["print_data"] and info["sign"] and order.receiver.phone not in info["print_data"]
    _, content = world.vault.unseal(info["print_data"])
    assert order.receiver.name not in content and bill["track_no"] in content  # masked receiver only
    cancelled = client.data(
        "/logistics/cancelOrder", {"logistics_code": "zhongtong", "track_no": bill["track_no"]}, at
    )
    assert cancelled == {"cancel_result": {"success": True}}
    reprint = client.data(
        "/logistics/waybillApply",
        {"waybill_applies": [{"logistics_code": "zhongtong", "track_no": bill["track_no"]}]},
        at,
    )
    assert reprint["err_infos"] and not reprint["waybill_infos"]


def test_listings_and_product_create(
    world: World, client: DouyinRefClient, token: dict, shop_id: str
) -> None:
    at = token["access_token"]
    first = client.data("/product/listV2", {"page": 1, "size": 5}, at)
    total = first["total"]
    assert total == len(world.products(shop_id)[1]) and len(first["data"]) == 5
    product_id = str(first["data"][0]["product_id"])
    skus = client.data("/sku/list", {"product_id": product_id}, at)
    assert {s["code"] for s in skus} == {s.code for s in world.get_product(product_id).skus}
    detail = client.data("/product/detail", {"product_id": product_id}, at)
    assert {p["code"] for p in detail["spec_prices"]} == {s["code"] for s in skus}
    created = client.data("/product/addV2", {
        "name": "铺货测试商品纯棉袜子五双装", "pic": "https://img.example/a.jpg|https://img.example/b.jpg", "category_leaf_id": 20219,
        "specs": "颜色|白色,黑色", "commit": True, "outer_product_id": "ERP-1001",
        "spec_prices": '[{"spec_detail_name1":"白色","stock_num":10,"price":1990,"code":"SOCK-WHT"},{"spec_detail_name1":"黑色","stock_num":0,"price":1990,"code":"SOCK-BLK"}]',
    }, at)  # fmt: skip
    assert [s["code"] for s in created["sku"]] == ["SOCK-WHT", "SOCK-BLK"] and created[
        "outer_product_id"
    ] == "ERP-1001"
    assert client.data("/product/listV2", {"page": 1, "size": 100}, at)["total"] == total + 1
    by_code = client.data("/sku/detail", {"code": "SOCK-WHT"}, at)
    assert by_code["stock_num"] == 10 and by_code["spec_detail_name1"] == "白色"
    bad = client.call("/product/addV2", {"name": "x", "pic": "p", "spec_prices": '[{"price":0}]'}, at)
    assert bad["code"] == 40004

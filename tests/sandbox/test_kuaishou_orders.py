"""Kuaishou sandbox: one-SKU orders, gift sub-orders, the cursor list under churn, PII decrypt."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import untidy
from sandbox.kuaishou import hold_order, wms
from sandbox.model import OrderStatus
from sandbox.simulator import BuyerSimulator, SimConfig
from sandbox.world import OrderItemSpec, ShipmentSpec, WorldError
from tests.sandbox.test_kuaishou_api import KsEnv, make_env

DAY_MS = 86400 * 1000


@pytest.fixture
def env(tmp_path: Path) -> Iterator[KsEnv]:
    for env in make_env(tmp_path):
        # These tests read shipped quantities; shipped orders without orderDeliveryInfo: test_untidy.py.
        untidy.set_rates(env.world, {"kuaishou.no_delivery_info": 0})
        yield env


def list_page(env: KsEnv, *, begin: int, end: int, cursor: str = "", size: int = 50, query_type: int = 2, sort: int = 2,
              view: int = 1) -> dict:  # fmt: skip
    params = {"orderViewStatus": view, "pageSize": size, "sort": sort, "queryType": query_type, "beginTime": begin,
              "endTime": end, "cursor": cursor}  # fmt: skip
    return env.data("open.order.cursor.list", params)


def walk(env: KsEnv, *, begin: int, end: int, size: int, between: object = None, **kwargs: int) -> list[int]:
    oids: list[int] = []
    cursor = ""
    while True:
        data = list_page(env, begin=begin, end=end, cursor=cursor, size=size, **kwargs)
        assert len(data["orderList"]) <= size
        oids += [o["orderBaseInfo"]["oid"] for o in data["orderList"]]
        cursor = data["cursor"]
        if cursor == "nomore":
            return oids
        assert data["orderList"], "a page before the end is never empty"
        if callable(between):
            between()


# --------------------------------------------------------------------------- order shape


def test_every_line_is_its_own_order_and_gifts_hang_under_their_main_order(env: KsEnv) -> None:
    order = env.place((0, 2), (1, 1), (2, 1), gift_of={2: 0}, post_fen=800)
    main, other, gift = order.lines
    listed = list_page(env, begin=env.now_ms() - 60_000, end=env.now_ms())["orderList"]
    by_oid = {o["orderBaseInfo"]["oid"]: o for o in listed}
    assert set(by_oid) == {int(main.line_id), int(other.line_id)}  # the gift is not a top-level order
    first = by_oid[int(main.line_id)]
    base, item = first["orderBaseInfo"], first["orderItemInfo"]
    assert (
        base["status"] == 30
        and base["payTime"] == wms(env.world, order.pay_time)  # ms, some with non-zero milliseconds
        and base["createTime"] == wms(env.world, order.create_time)
    )
    assert base["totalFee"] == main.unit_price_fen * 2 - main.discount_fen and base["expressFee"] == 800
    assert item["skuNick"] == main.code and item["num"] == 2 and item["skuId"] == int(main.sku_id)
    assert item["price"] == main.unit_price_fen and item["itemId"] == int(main.product_id)
    assert base["allActivityType"] == [18]
    [sub] = first["subOrderInfo"]
    assert sub["subOrderType"] == 2 and sub["subOrderBaseInfo"]["oid"] == int(gift.line_id)
    assert (
        sub["subOrderItemInfo"]["skuNick"] == gift.code
        and sub["subOrderItemInfo"]["discountFee"] == gift.unit_price_fen
    )
    assert (
        by_oid[int(other.line_id)]["subOrderInfo"] == []
        and by_oid[int(other.line_id)]["orderBaseInfo"]["expressFee"] == 0
    )
    address = first["orderAddress"]
    receiver = order.receiver
    assert address["desensitiseConsignee"].startswith(receiver.name[0]) and receiver.name not in str(first)
    assert receiver.phone not in str(first) and receiver.detail not in str(first)
    assert address["desensitiseMobile"] == receiver.phone[:3] + "****" + receiver.phone[-4:]
    assert address["provinceCode"] == int(receiver.province_code) and address["town"] == receiver.street
    # the same receiver encrypts differently in every order (the search index would not)
    assert address["encryptedConsignee"] != by_oid[int(other.line_id)]["orderAddress"]["encryptedConsignee"]


def test_detail_equals_the_list_item_and_statuses_follow_the_life_cycle(env: KsEnv) -> None:
    order = env.place((0, 1))
    oid = int(order.lines[0].line_id)
    listed = list_page(env, begin=env.now_ms() - 60_000, end=env.now_ms())["orderList"]
    assert env.data("open.order.detail", {"oid": oid}) == listed[0]
    unpaid = env.place((1, 1), pay=False)
    assert (
        env.data("open.order.detail", {"oid": int(unpaid.lines[0].line_id)})["orderBaseInfo"]["status"] == 10
    )
    env.world.ship_order(order.order_id, [ShipmentSpec("ZTO", env.world.new_tracking_no("ZTO"))])
    shipped = env.data("open.order.detail", {"oid": oid})
    assert shipped["orderBaseInfo"]["status"] == 40 and shipped["orderDeliveryInfo"]["deliveryNum"] == 1
    assert shipped["orderLogisticsInfo"][0]["expressCode"] == 9
    env.world.receive_order(order.order_id)
    assert env.data("open.order.detail", {"oid": oid})["orderBaseInfo"]["status"] == 50
    env.world.complete_order(order.order_id)
    assert env.data("open.order.detail", {"oid": oid})["orderBaseInfo"]["status"] == 70
    env.world.cancel_order(unpaid.order_id, reason="超时未支付", kind="unpaid_timeout")
    assert (
        env.data("open.order.detail", {"oid": int(unpaid.lines[0].line_id)})["orderBaseInfo"]["status"] == 80
    )


def test_another_sellers_order_is_rejected(env: KsEnv) -> None:
    other_shop = env.world.shops("kuaishou")[1].shop_id
    sku = env.world.skus(other_shop)[0]
    order = env.world.create_order(
        shop_id=other_shop, buyer_id=2, items=[OrderItemSpec(sku.sku_id)], pay=True
    )
    envelope = env.call("open.order.detail", {"oid": int(order.lines[0].line_id)})
    assert (envelope["result"], envelope["error_msg"]) == (21, "order operation reject")


def test_held_order_hides_the_address_and_has_no_promised_ship_time(env: KsEnv) -> None:
    order = env.place((0, 1))
    oid = order.lines[0].line_id
    hold_order(env.world, oid, codes=[2], risk_code=10001)
    detail = env.data("open.order.detail", {"oid": int(oid)})
    assert (
        detail["orderBaseInfo"]["disableDeliveryReasonCode"] == [2]
        and detail["orderBaseInfo"]["riskCode"] == 10001
    )
    assert detail["orderBaseInfo"]["validPromiseShipmentTimeStamp"] == 0
    assert (
        detail["orderAddress"]["encryptedConsignee"] == ""
        and detail["orderAddress"]["desensitiseMobile"] == ""
    )


# --------------------------------------------------------------------------- list parameters


def test_window_limits(env: KsEnv) -> None:
    now = env.now_ms()
    base = {"orderViewStatus": 1, "pageSize": 10, "queryType": 2, "cursor": ""}
    for begin, end, code in (
        (now, now - 1, 300003),
        (now - 7 * DAY_MS - 1, now, 300004),
        (now - 91 * DAY_MS, now - 90 * DAY_MS + 5, 300005),
    ):
        envelope = env.call("open.order.cursor.list", {**base, "beginTime": begin, "endTime": end})
        assert envelope["result"] == code, envelope
    assert (
        env.call("open.order.cursor.list", {**base, "beginTime": now - 7 * DAY_MS, "endTime": now})["result"]
        == 1
    )
    too_big = env.call(
        "open.order.cursor.list", {**base, "pageSize": 51, "beginTime": now - 1000, "endTime": now}
    )
    assert too_big["result"] == 13


def test_view_status_filter_and_create_time_query(env: KsEnv) -> None:
    paid = env.place((0, 1))
    unpaid = env.place((1, 1), pay=False)
    now = env.now_ms()
    to_ship = list_page(env, begin=now - 60_000, end=now, view=3)["orderList"]
    assert [o["orderBaseInfo"]["oid"] for o in to_ship] == [int(paid.lines[0].line_id)]
    to_pay = list_page(env, begin=now - 60_000, end=now, view=2, query_type=1)["orderList"]
    assert [o["orderBaseInfo"]["oid"] for o in to_pay] == [int(unpaid.lines[0].line_id)]


def test_cursor_from_other_query_is_refused_and_nomore_is_final(env: KsEnv) -> None:
    for _ in range(3):
        env.place((0, 1))
    now = env.now_ms()
    first = list_page(env, begin=now - 60_000, end=now, size=1)
    assert first["cursor"] != "nomore"
    other = env.call("open.order.cursor.list", {"orderViewStatus": 1, "pageSize": 1, "queryType": 1, "beginTime": now - 60_000,
                                                "endTime": now, "cursor": first["cursor"]})  # fmt: skip
    assert other["result"] == 13
    done = list_page(env, begin=now - 60_000, end=now, cursor="nomore")
    assert done["orderList"] == [] and done["cursor"] == "nomore"


@pytest.mark.parametrize("sort", [1, 2])
@pytest.mark.parametrize("end_offset_ms", [0, 3_600_000])
def test_cursor_returns_every_order_exactly_once_while_orders_keep_changing(
    env: KsEnv, sort: int, end_offset_ms: int
) -> None:
    """Orders in the window when paging starts come back exactly once, whatever happens in between:
    the simulator places, pays, cancels and changes orders, and we ship, remark and refund some.
    With ``end_offset_ms`` the window reaches into the future, so changed orders stay inside it."""
    sim = BuyerSimulator(env.world, seed=5, config=SimConfig(orders_per_minute=3.0, p_multi_line=0.5, p_gift=0.3),
                         shops=[env.shop_id])  # fmt: skip
    start_ms = env.now_ms()
    sim.run_for(2 * 3600)
    begin, end = start_ms, env.now_ms() + end_offset_ms
    lo, hi = math.ceil(begin / 1000), end // 1000
    in_window = [order for order in env.world.orders(env.shop_id) if lo <= order.update_time <= hi]
    expected = {int(line.line_id) for order in in_window for line in order.lines if not line.is_gift}
    assert len(expected) > 150
    rng = random.Random(sort * 7 + end_offset_ms)
    changed: set[str] = set()

    def churn() -> None:
        sim.run_for(rng.uniform(10, 120))
        for picked in rng.sample(in_window, 4):
            order = env.world.get_order(picked.order_id)
            assert order is not None
            try:
                action = rng.choice(("remark", "ship", "refund"))
                if action == "ship" and order.status == OrderStatus.PAID:
                    env.world.ship_order(
                        order.order_id, [ShipmentSpec("YTO", env.world.new_tracking_no("YTO"))]
                    )
                elif action == "refund" and order.status == OrderStatus.PAID:
                    env.world.apply_aftersale(order.order_id, order.lines[0].line_id, kind="refund_unshipped")
                else:
                    env.world.set_seller_remark(order.order_id, f"备注{rng.randrange(100)}", rng.randrange(6))
                changed.add(order.order_id)
            except WorldError:
                pass

    oids = walk(env, begin=begin, end=end, size=20, between=churn, sort=sort)
    assert len(changed) > 20  # the walk really raced with changes
    assert len(oids) == len(set(oids)), "an order came back twice"
    assert set(oids) == expected


def test_paging_skips_nothing_when_an_order_leaves_the_window_mid_walk(env: KsEnv) -> None:
    orders = [env.place((0, 1)) for _ in range(5)]
    env.clock.advance(5)
    begin, end = env.now_ms() - 60_000, env.now_ms()
    first = list_page(env, begin=begin, end=end, size=2, sort=2)
    seen = [o["orderBaseInfo"]["oid"] for o in first["orderList"]]
    env.clock.advance(30)
    last = orders[-1]
    env.world.set_seller_remark(last.order_id, "改了", 1)  # now updated after the window's end
    rest = walk_from(env, begin, end, first["cursor"])
    assert sorted(seen + rest) == sorted(int(o.lines[0].line_id) for o in orders)


def walk_from(env: KsEnv, begin: int, end: int, cursor: str) -> list[int]:
    oids: list[int] = []
    while cursor != "nomore":
        data = list_page(env, begin=begin, end=end, cursor=cursor, size=2, sort=2)
        oids += [o["orderBaseInfo"]["oid"] for o in data["orderList"]]
        cursor = data["cursor"]
    return oids


# --------------------------------------------------------------------------- PII


def test_decrypt_batch_checks_order_binding_and_counts_the_daily_quota(env: KsEnv) -> None:
    order = env.place((0, 1))
    other = env.place((1, 1))
    oid, other_oid = order.lines[0].line_id, other.lines[0].line_id
    address = env.data("open.order.detail", {"oid": int(oid)})["orderAddress"]
    batch = [
        {"bizId": oid, "encryptedData": address["encryptedConsignee"]},
        {"bizId": oid, "encryptedData": address["encryptedMobile"]},
        {"bizId": other_oid, "encryptedData": address["encryptedAddress"]},  # ciphertext of another order
        {"bizId": oid, "encryptedData": "not-a-cipher"},
    ]
    envelope = env.call("open.order.decrypt.batch", {"batchDecryptList": batch}, http_method="POST")
    assert envelope["result"] == 1
    results = envelope["batchDecryptResultList"]
    assert [r["errorCode"] for r in results] == [1, 1, 4, 2]
    assert (
        results[0]["decryptedData"] == order.receiver.name
        and results[1]["decryptedData"] == order.receiver.phone
    )
    assert env.world.decrypt_used_today(env.shop_id) == 2


def test_decrypt_stops_at_the_shops_daily_quota(env: KsEnv) -> None:
    order = env.place((0, 1))
    oid = order.lines[0].line_id
    cipher = env.data("open.order.detail", {"oid": int(oid)})["orderAddress"]["encryptedAddress"]
    env.world.consume_decrypt_quota(env.shop_id, 999)  # 1000 a day by default
    results = env.call("open.order.decrypt.batch", {"batchDecryptList": [{"bizId": oid, "encryptedData": cipher}] * 2},
                       http_method="POST")["batchDecryptResultList"]  # fmt: skip
    assert [r["errorCode"] for r in results] == [1, 6]
    assert results[0]["decryptedData"] == order.receiver.detail and results[1]["decryptedData"] == ""


def test_decrypt_batch_is_limited_to_100_items(env: KsEnv) -> None:
    envelope = env.call("open.order.decrypt.batch", {"batchDecryptList": [{"bizId": "1", "encryptedData": "x"}] * 101},
                        http_method="POST")  # fmt: skip
    assert envelope["result"] == 13

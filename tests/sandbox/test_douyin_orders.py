"""Douyin orders (§1.4): incremental paging under concurrent change, detail, receiver PII and decryption."""

from __future__ import annotations

import json
from typing import Any

from sandbox import untidy
from sandbox.clock import FakeClock
from sandbox.douyin import Renderer, order_status
from sandbox.simulator import BuyerSimulator, SimConfig
from sandbox.world import OrderItemSpec, World
from tests.sandbox.refclients.douyin import DouyinRefClient


def walk_window(client: DouyinRefClient, access_token: str, start: int, end: int, erp: dict[str, dict[str, Any]],
                between_calls: Any = None) -> int:  # fmt: skip
    """How a careful ERP pulls [start, end]: order_by update_time ascending, page 0, and after each
    full page the next query starts at the last update_time seen (inclusive, so ties are re-read
    and de-duplicated). Orders updated meanwhile leave the window for a later one, so nothing is
    skipped. Returns the number of calls."""
    cursor, page, calls = start, 0, 0
    while True:
        data = client.data(
            "/order/searchList",
            {
                "update_time_start": cursor,
                "update_time_end": end,
                "order_by": "update_time",
                "order_asc": True,
                "page": page,
                "size": 100,
            },
            access_token,
        )
        calls += 1
        if between_calls:
            between_calls()
        orders = data["shop_order_list"]
        ids = [o["order_id"] for o in orders]
        assert len(ids) == len(set(ids)), "an order appeared twice in one page"
        assert [o["update_time"] for o in orders] == sorted(o["update_time"] for o in orders)
        for o in orders:
            known = erp.get(o["order_id"])
            if known is None or o["update_time"] >= known["update_time"]:
                erp[o["order_id"]] = {
                    "update_time": o["update_time"],
                    "order_status": o["order_status"],
                    "main_status": o["main_status"],
                }
        if len(orders) < 100:
            return calls
        last = orders[-1]["update_time"]
        if last == cursor:
            page += 1  # a whole page shares one second: page through that second
        else:
            cursor, page = last, 0


def test_paging_returns_every_order_exactly_once_while_the_world_changes(
    world: World, client: DouyinRefClient, token: dict, shop_id: str, clock: FakeClock
) -> None:
    sim = BuyerSimulator(
        world,
        seed=5,
        config=SimConfig(orders_per_minute=5, merchant_bot=True, merchant_ship_delay=1800),
        shops=[shop_id],
    )
    origin = world.now()
    sim.run_for(3600)  # an hour of history: ~300 orders, many already changed
    erp: dict[str, dict[str, Any]] = {}
    first_seen: dict[str, int] = {}
    synced_to, overlap, calls = origin, 120, 0
    for _ in range(8):
        end = world.now() - 1
        calls += walk_window(
            client, token["access_token"], max(origin, synced_to - overlap), end, erp, lambda: sim.step(4)
        )
        for order_id, seen in erp.items():
            first_seen.setdefault(order_id, seen["update_time"])
        synced_to = end
        sim.step(40)
    # The buyers stop; one last walk up to now must leave the ERP equal to the platform.
    end = world.now()
    calls += walk_window(client, token["access_token"], max(origin, synced_to - overlap), end, erp)
    renderer = Renderer(world)
    truth = {}
    for order in world.orders(shop_id):
        status, main_status, _ = order_status(order)
        truth[order.order_id] = {
            "update_time": order.update_time,
            "order_status": status,
            "main_status": main_status,
        }
    assert len(truth) > 250 and calls > 8
    assert erp == truth
    # The world really moved under the walk: many orders changed after the ERP first saw them.
    assert sum(1 for order_id, ut in first_seen.items() if ut < truth[order_id]["update_time"]) > 30
    assert {o["order_id"] for o in [renderer.shop_order(o) for o in world.orders(shop_id)]} == set(erp)


def test_offset_pages_cover_a_static_window_exactly_once(
    world: World, client: DouyinRefClient, token: dict, shop_id: str
) -> None:
    sim = BuyerSimulator(world, seed=9, config=SimConfig(orders_per_minute=2), shops=[shop_id])
    sim.run_for(1800)
    expected = [
        o.order_id
        for o in sorted(world.orders(shop_id), key=lambda o: (o.create_time, o.order_id), reverse=True)
    ]
    seen: list[str] = []
    page = 0
    while True:
        data = client.data(
            "/order/searchList", {"page": page, "size": 7}, token["access_token"]
        )  # default: create_time desc
        assert data["total"] == len(expected) and data["page"] == page and data["size"] == 7
        seen += [o["order_id"] for o in data["shop_order_list"]]
        if not data["shop_order_list"]:
            break
        page += 1
    assert seen == expected


def test_search_filters_and_limits(world: World, client: DouyinRefClient, token: dict, shop_id: str) -> None:
    BuyerSimulator(world, seed=3, config=SimConfig(orders_per_minute=3), shops=[shop_id]).run_for(3600)
    paid = client.data(
        "/order/searchList", {"size": 100, "combine_status": [{"order_status": "2"}]}, token["access_token"]
    )
    assert paid["total"] > 0 and {o["order_status"] for o in paid["shop_order_list"]} == {2}
    now = world.now()
    recent = client.data(
        "/order/searchList",
        {"size": 100, "create_time_start": now - 600, "create_time_end": now},
        token["access_token"],
    )
    assert all(now - 600 <= o["create_time"] <= now for o in recent["shop_order_list"])
    too_deep = client.call("/order/searchList", {"page": 100, "size": 100}, token["access_token"])
    assert (too_deep["code"], too_deep["sub_code"]) == (40004, "isv.parameter-invalid")
    bad_order_by = client.call("/order/searchList", {"order_by": "pay_time"}, token["access_token"])
    assert bad_order_by["code"] == 40004


def test_multi_line_order_shape_and_detail(
    world: World, client: DouyinRefClient, token: dict, shop_id: str
) -> None:
    skus = world.skus(shop_id)
    order = world.create_order(
        shop_id=shop_id, buyer_id=1, pay=True, post_fen=800, buyer_words="请尽快发货",
        items=[OrderItemSpec(skus[0].sku_id, 2, discount_fen=500), OrderItemSpec(skus[5].sku_id, 1), OrderItemSpec(skus[9].sku_id, 1, gift_of=0)],
    )  # fmt: skip
    detail = client.data("/order/orderDetail", {"shop_order_id": order.order_id}, token["access_token"])[
        "shop_order_detail"
    ]
    assert detail["order_id"] == order.order_id and detail["order_level"] == 2 and detail["order_status"] == 2
    assert detail["buyer_words"] == "请尽快发货" and detail["post_amount"] == 800
    lines = detail["sku_order_list"]
    assert [x["order_id"] for x in lines] == [ln.line_id for ln in order.lines]
    assert all(x["parent_order_id"] == order.order_id and x["order_level"] == 3 for x in lines)
    assert lines[0]["code"] == skus[0].code and lines[0]["item_num"] == 2
    assert lines[0]["sum_amount"] == skus[0].price_fen * 2 and lines[0]["promotion_amount"] == 500
    assert lines[0]["given_product_type"] == "MASTER"
    assert (
        lines[2]["given_product_type"] == "FREE"
        and lines[2]["pay_amount"] == 0
        and lines[2]["master_sku_order_id_list"] == [lines[0]["order_id"]]
    )
    assert detail["pay_amount"] == sum(x["pay_amount"] for x in lines)
    missing = client.call(
        "/order/orderDetail", {"shop_order_id": "6900000000000000000"}, token["access_token"]
    )
    assert (missing["code"], missing["sub_code"]) == (50002, "isv.business-failed:20001")


def test_receiver_pii_only_masked_and_encrypted(
    world: World, client: DouyinRefClient, token: dict, shop_id: str
) -> None:
    untidy.set_rates(world, {"douyin.plaintext_receiver": 0})  # older orders' plaintext: test_untidy.py
    order = world.create_order(
        shop_id=shop_id, buyer_id=2, items=[OrderItemSpec(world.skus(shop_id)[0].sku_id)], pay=True
    )
    r = order.receiver
    listing = client.call("/order/searchList", {"size": 100}, token["access_token"])
    text = json.dumps(listing, ensure_ascii=False)
    assert r.name not in text and r.phone not in text and r.detail not in text
    item = next(o for o in listing["data"]["shop_order_list"] if o["order_id"] == order.order_id)
    assert item["post_receiver"] == "" and item["post_tel"] == "" and item["post_addr"]["detail"] == ""
    assert item["mask_post_receiver"] == r.name[0] + "*" * (len(r.name) - 1)
    assert item["mask_post_tel"] == r.phone[:2] + "*" * 7 + r.phone[-2:]
    assert item["encrypt_post_receiver"].startswith("#") and item["encrypt_post_tel"].startswith("$")
    decrypted = client.data(
        "/order/batchDecrypt",
        {"cipher_infos": [{"auth_id": order.order_id, "cipher_text": item[k]} for k in ("encrypt_post_receiver", "encrypt_post_tel")]
         + [{"auth_id": order.order_id, "cipher_text": item["post_addr"]["encrypt_detail"]}], "account_id": "u-7", "account_type": "main_account"},
        token["access_token"],
    )  # fmt: skip
    assert [(d["decrypt_text"], d["data_type"], d["err_no"]) for d in decrypted["decrypt_infos"]] == [
        (r.name, 2, 0),
        (r.phone, 3, 0),
        (r.detail, 1, 0),
    ]
    # Older format: the first segment is what /order/getSearchIndex gives for the plaintext; the
    # 2024 format ("$$…*…$1$$") has an empty first segment and carries no search index.
    index = client.data(
        "/order/getSearchIndex", {"plain_text": r.phone, "sensitive_type": 3}, token["access_token"]
    )["encrypt_index_text"]
    first, second = item["encrypt_post_tel"].split("$")[1:3]
    assert first == index if first else (index not in second and "*" in second)
    masked = client.data(
        "/order/batchSensitive",
        {"cipher_infos": [{"auth_id": order.order_id, "cipher_text": item["encrypt_post_tel"]}]},
        token["access_token"],
    )
    assert masked["decrypt_infos"][0]["decrypt_text"] == r.phone[:2] + "*" * 7 + r.phone[-2:]


def test_decrypt_quota_and_refusals(
    world: World, client: DouyinRefClient, token: dict, shop_id: str, clock: FakeClock
) -> None:
    world.update_shop(shop_id, decrypt_quota_per_day=3)
    sku = world.skus(shop_id)[0].sku_id
    paid = world.create_order(shop_id=shop_id, buyer_id=3, items=[OrderItemSpec(sku)], pay=True)
    unpaid = world.create_order(shop_id=shop_id, buyer_id=4, items=[OrderItemSpec(sku)])
    other_shop = world.shops("douyin")[1].shop_id
    foreign = world.create_order(
        shop_id=other_shop, buyer_id=5, items=[OrderItemSpec(world.skus(other_shop)[0].sku_id)], pay=True
    )
    renderer = Renderer(world)
    mine, theirs, pending = (
        renderer.shop_order(paid),
        renderer.shop_order(foreign),
        renderer.shop_order(unpaid),
    )

    def decrypt(infos: list[tuple[str, str]]) -> dict[str, Any]:
        return client.data(
            "/order/batchDecrypt",
            {"cipher_infos": [{"auth_id": a, "cipher_text": c} for a, c in infos]},
            token["access_token"],
        )

    refused = decrypt([
        (foreign.order_id, theirs["encrypt_post_tel"]),  # another shop's order
        (paid.order_id, theirs["encrypt_post_tel"]),  # own order id, another shop's ciphertext
        (paid.order_id, "#not#a-cipher#1##"),
        (unpaid.order_id, pending["encrypt_post_tel"]),  # not paid yet
    ])  # fmt: skip
    assert [d["err_no"] for d in refused["decrypt_infos"]] == [300001, 300002, 300002, 300003]
    assert all(d["decrypt_text"] == "" for d in refused["decrypt_infos"])
    assert world.decrypt_used_today(shop_id) == 0  # refusals cost nothing
    fields = [
        mine["encrypt_post_receiver"],
        mine["encrypt_post_tel"],
        mine["post_addr"]["encrypt_detail"],
        mine["encrypt_post_tel"],
    ]
    result = decrypt([(paid.order_id, c) for c in fields])
    assert [d["err_no"] for d in result["decrypt_infos"]] == [0, 0, 0, 300008]
    assert result["custom_err"]["err_code"] == 300008 and result["decrypt_infos"][3]["decrypt_text"] == ""
    assert decrypt([(paid.order_id, fields[0])])["decrypt_infos"][0]["err_no"] == 300008
    clock.advance(86400)  # a new day in Asia/Shanghai
    assert decrypt([(paid.order_id, fields[0])])["decrypt_infos"][0]["err_no"] == 0
    too_many = client.call(
        "/order/batchDecrypt",
        {"cipher_infos": [{"auth_id": paid.order_id, "cipher_text": fields[0]}] * 51},
        token["access_token"],
    )
    assert (too_many["code"], too_many["sub_code"]) == (40004, "isv.parameter-invalid")

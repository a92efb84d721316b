"""The sandbox is as untidy as the platforms (issue 11): every seeded variation is actually
served, deterministically for a seed, and the knob turns it off. Payloads are fetched over the
platforms' APIs and counted by shape."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox import untidy
from sandbox.clock import FakeClock
from sandbox.douyin import CIPHER, DouyinApp, message_data
from sandbox.kuaishou import CIPHER_FIELDS, push_messages
from sandbox.model import AfterSaleType, EventKind, Order
from sandbox.seed import seed_default_world
from sandbox.wechat import WechatApp, create_self_use_app, push_message
from sandbox.world import OrderItemSpec, ShipmentSpec, World
from tests.sandbox.refclients.douyin import DouyinRefClient
from tests.sandbox.refclients.wechat import WechatRefClient
from tests.sandbox.test_kuaishou_api import KsEnv, make_env

ORDERS = 80
DY_2024 = re.compile(r"^(##[^#*]+\*[^#]+#1##|\$\$[^$*]+\*[^$]+\$1\$\$)$")
DY_OLD = re.compile(r"^(#[^#*]+#[^#]+#1##|\$[^$*]+\$[^$]+\$1\$\$)$")


@pytest.fixture
def world(tmp_path: Path, clock: FakeClock) -> Iterator[World]:
    """The Douyin world of conftest, with every variation on (also those still off by default)."""
    w = World(tmp_path / "sandbox.sqlite3", seed=42, clock=clock)
    untidy.set_rates(w, untidy.FULL_RATES)
    seed_default_world(w, platforms=("douyin",), buyers=60)
    yield w
    w.close()


def place_orders(world: World, shop_id: str, count: int = ORDERS) -> list[Order]:
    """Paid orders from many buyers; every third shipped, every fifth with two lines."""
    skus = world.skus(shop_id)
    orders = []
    for n in range(count):
        items = [OrderItemSpec(skus[n % len(skus)].sku_id)]
        if n % 5 == 0:
            items.append(OrderItemSpec(skus[(n + 1) % len(skus)].sku_id, 2))
        order = world.create_order(
            shop_id=shop_id, buyer_id=1 + n % min(30, world.buyer_count()), items=items, pay=True
        )
        if n % 3 == 0:
            world.ship_order(order.order_id, [ShipmentSpec("ZTO", f"7{n:013d}")])
        orders.append(order)
    return orders


# --------------------------------------------------------------------------- Douyin


def dy_orders(client: DouyinRefClient, token: dict) -> list[dict[str, Any]]:
    return client.data("/order/searchList", {"size": 100}, token["access_token"])["shop_order_list"]


def test_douyin_serves_every_variation(
    world: World, client: DouyinRefClient, token: dict, shop_id: str
) -> None:
    orders = place_orders(world, shop_id)
    listed = dy_orders(client, token)
    assert len(listed) == ORDERS
    formats = Counter()
    for o in listed:
        ciphers = [o["encrypt_post_receiver"], o["encrypt_post_tel"], o["post_addr"]["encrypt_detail"]]
        kinds = {"2024" if DY_2024.match(c) else "old" if DY_OLD.match(c) else c for c in ciphers}
        assert len(kinds) == 1, ciphers  # one format per order
        formats[kinds.pop()] += 1
        for line in o["sku_order_list"]:  # line-level receiver fields, the same as the order's
            assert line["encrypt_post_tel"] == o["encrypt_post_tel"]
            assert line["post_addr"]["encrypt_detail"] == o["post_addr"]["encrypt_detail"]
            assert line["mask_post_receiver"] == o["mask_post_receiver"]
            assert line["theme_type"] == "1" and isinstance(line["theme_type"], str)
        assert isinstance(o["open_address_id"], str) and o["open_address_id"]
    assert set(formats) == {"2024", "old"} and min(formats.values()) >= ORDERS // 5, formats

    by_id = {o.order_id: o for o in orders}
    plain = [o for o in listed if o["post_tel"]]
    assert 0 < len(plain) < ORDERS // 4
    for o in plain:  # older orders carry plaintext receivers, as old payloads did
        r = by_id[o["order_id"]].receiver
        assert (o["post_receiver"], o["post_tel"], o["post_addr"]["detail"]) == (r.name, r.phone, r.detail)
    missing = [o for o in listed if "order_phase_list" not in o]
    assert 0 < len(missing) < ORDERS
    # open_address_id: same receiver + address → same id; different receivers → different ids.
    ids = Counter((by_id[o["order_id"]].buyer_id, o["open_address_id"]) for o in listed)
    per_buyer = Counter(buyer for buyer, _ in ids)
    assert all(n == 1 for n in per_buyer.values())
    assert len({o["open_address_id"] for o in listed}) == len(per_buyer)


def test_douyin_exchange_sku_info_price_is_a_string(
    world: World, client: DouyinRefClient, token: dict, shop_id: str
) -> None:
    skus = world.skus(shop_id)
    order = world.create_order(shop_id=shop_id, buyer_id=3, items=[OrderItemSpec(skus[0].sku_id)], pay=True)
    world.ship_order(order.order_id, [ShipmentSpec("ZTO", "73100000000001")])
    a = world.apply_aftersale(
        order.order_id, order.lines[0].line_id, kind=AfterSaleType.EXCHANGE, exchange_sku_id=skus[1].sku_id
    )
    items = client.data("/afterSale/List", {"page": 0, "size": 10}, token["access_token"])["items"]
    info = next(
        i["aftersale_info"] for i in items if str(i["aftersale_info"]["aftersale_id"]) == a.aftersale_id
    )
    assert info["exchange_sku_info"]["price"] == str(skus[1].price_fen)


def test_douyin_push_ids_are_numbers_or_strings(world: World, shop_id: str) -> None:
    place_orders(world, shop_id, 40)
    kinds = Counter()
    for event in world.events_after(0, 1000):
        rendered = message_data(world, event)
        if rendered is not None:
            kinds[type(rendered[1]["p_id"]).__name__] += 1
            assert isinstance(rendered[1]["shop_id"], type(rendered[1]["p_id"]))
    assert kinds["int"] > 0 and kinds["str"] > 0, kinds


def decrypt(client: DouyinRefClient, token: dict, auth_id: str, *ciphers: str) -> list[tuple[int, str]]:
    infos = client.data(
        "/order/batchDecrypt",
        {"cipher_infos": [{"auth_id": auth_id, "cipher_text": c} for c in ciphers]},
        token["access_token"],
    )["decrypt_infos"]
    return [(d["err_no"], d["decrypt_text"]) for d in infos]


def changed_index(cipher: str) -> str:
    """The same ciphertext with one character of its index/head segment changed."""
    s = cipher[0]
    start = 2 if cipher[1] == s else 1  # 2024: "##head*…"; older: "#index#…"
    swap = "B" if cipher[start] != "B" else "C"
    return cipher[:start] + swap + cipher[start + 1 :]


def test_douyin_decrypt_refuses_a_changed_index_and_another_shops_ciphertext(
    world: World, client: DouyinRefClient, token: dict, shop_id: str
) -> None:
    place_orders(world, shop_id, 30)
    other = world.shops("douyin")[1].shop_id
    foreign = place_orders(world, other, 1)[0]
    listed = dy_orders(client, token)
    new = next(o for o in listed if DY_2024.match(o["encrypt_post_tel"]))
    old = next(o for o in listed if DY_OLD.match(o["encrypt_post_tel"]))
    for o in (new, old):
        good = [o["encrypt_post_tel"], o["encrypt_post_receiver"]]
        assert [err for err, _ in decrypt(client, token, o["order_id"], *good)] == [0, 0]
        bad = decrypt(client, token, o["order_id"], *(changed_index(c) for c in good))
        assert bad == [(300002, ""), (300002, "")], o["encrypt_post_tel"]
    # Another shop's ciphertext, in either format, under one of this shop's orders: refused.
    theirs = DouyinApp(world).render.shop_order(foreign)
    assert decrypt(client, token, new["order_id"], theirs["encrypt_post_tel"]) == [(300002, "")]
    untidy.set_rates(world, {"douyin.cipher_2024": 0 if DY_2024.match(theirs["encrypt_post_tel"]) else 1})
    flipped = DouyinApp(world).render.shop_order(foreign)
    assert flipped["encrypt_post_tel"] != theirs["encrypt_post_tel"]
    assert decrypt(client, token, new["order_id"], flipped["encrypt_post_tel"]) == [(300002, "")]


def test_douyin_reencrypted_address_keeps_its_search_index_and_open_address_id(
    world: World, client: DouyinRefClient, token: dict, shop_id: str
) -> None:
    untidy.set_rates(world, {"douyin.cipher_2024": 1})
    skus = world.skus(shop_id)
    first = world.create_order(shop_id=shop_id, buyer_id=7, items=[OrderItemSpec(skus[0].sku_id)], pay=True)
    second = world.create_order(shop_id=shop_id, buyer_id=7, items=[OrderItemSpec(skus[1].sku_id)], pay=True)
    before = {o["order_id"]: o for o in dy_orders(client, token)}
    world.change_address(first.order_id, first.receiver)  # re-saved unchanged → re-encrypted
    after = {o["order_id"]: o for o in dy_orders(client, token)}
    a, b, c = before[first.order_id], after[first.order_id], before[second.order_id]
    assert len({a["encrypt_post_tel"], b["encrypt_post_tel"], c["encrypt_post_tel"]}) == 3
    assert len({a["post_addr"]["encrypt_detail"], b["post_addr"]["encrypt_detail"]}) == 2
    assert a["open_address_id"] == b["open_address_id"] == c["open_address_id"]
    r = first.receiver
    index = client.data(
        "/order/getSearchIndex", {"plain_text": r.phone, "sensitive_type": 3}, token["access_token"]
    )
    assert index["encrypt_index_text"] not in a["encrypt_post_tel"]  # the ciphertext does not carry it
    assert [
        t for _, t in decrypt(client, token, first.order_id, a["encrypt_post_tel"], b["encrypt_post_tel"])
    ] == [
        r.phone,
        r.phone,
    ]


def test_douyin_variations_are_deterministic_and_the_knob_turns_them_off(
    tmp_path: Path, clock: FakeClock
) -> None:
    def payloads(name: str, seed: int, overrides: dict[str, float] | None = None) -> list[dict[str, Any]]:
        w = World(tmp_path / f"{name}.sqlite3", seed=seed, clock=clock)
        untidy.set_rates(w, overrides or untidy.FULL_RATES)
        seed_default_world(w, platforms=("douyin",), buyers=60)
        shop = w.shops("douyin")[0].shop_id
        render = DouyinApp(w).render
        out = [render.shop_order(o) for o in place_orders(w, shop, 40)]
        w.close()
        return out

    one, again, other = payloads("a", 42), payloads("b", 42), payloads("c", 43)
    assert json.dumps(one) == json.dumps(again)
    assert [bool(DY_2024.match(o["encrypt_post_tel"])) for o in one] != [
        bool(DY_2024.match(o["encrypt_post_tel"])) for o in other
    ]
    tidy = payloads("d", 42, {"*": 0})
    assert all(DY_OLD.match(o["encrypt_post_tel"]) and not o["post_tel"] for o in tidy)
    assert all("open_address_id" not in o and "order_phase_list" in o for o in tidy)
    assert all(
        "theme_type" not in line and "post_addr" not in line for o in tidy for line in o["sku_order_list"]
    )


# --------------------------------------------------------------------------- Kuaishou


@pytest.fixture
def ks(tmp_path: Path) -> Iterator[KsEnv]:
    for env in make_env(tmp_path):
        untidy.set_rates(env.world, untidy.FULL_RATES)
        yield env


def ks_orders(env: KsEnv) -> list[dict[str, Any]]:
    out, cursor = [], ""
    while cursor != "nomore":
        data = env.data("open.order.cursor.list", {"orderViewStatus": 1, "pageSize": 50, "sort": 2, "queryType": 2,
                                                   "beginTime": env.now_ms() - 3_600_000, "endTime": env.now_ms() + 1000,
                                                   "cursor": cursor})  # fmt: skip
        out += data["orderList"]
        cursor = data["cursor"]
    return out


KS_FIELDS = re.compile(r"^(#[^#]+#[^#]+#1##|\$[^$]+\$[^$]+\$1\$|~[^~]+~[^~]+~1~~)$")
KS_OLD = re.compile(r"^~[^~]+~[^~]+~1~~$")


def test_kuaishou_serves_every_variation(ks: KsEnv) -> None:
    place_orders(ks.world, ks.shop_id)
    listed = ks_orders(ks)
    assert len(listed) >= ORDERS
    markers = Counter()
    for o in listed:
        a = o["orderAddress"]
        name, mobile, address = a["encryptedConsignee"], a["encryptedMobile"], a["encryptedAddress"]
        if name.startswith("#"):
            assert (mobile[0], address[0]) == ("$", "~") and all(
                KS_FIELDS.match(c) for c in (name, mobile, address)
            )
            markers["fields"] += 1
        else:
            assert all(KS_OLD.match(c) for c in (name, mobile, address))
            markers["old"] += 1
        assert (a["consignee"], a["mobile"], a["address"]) == ("", "", "")
    assert min(markers["fields"], markers["old"]) > 0, markers

    codes = Counter(type(p["expressCode"]).__name__ for o in listed for p in o["orderLogisticsInfo"])
    assert codes["str"] > 0 and codes["int"] > 0, codes
    city = Counter(len(str(o["orderAddress"]["cityCode"])) for o in listed)
    assert city[4] > 0 and city[6] > 0, city
    times = [o["orderBaseInfo"][k] for o in listed for k in ("createTime", "payTime", "updateTime")]
    assert all(t % 1000 for t in times)  # milliseconds are never all zero
    shipped = [o for o in listed if o["orderBaseInfo"]["status"] == 40]
    no_info = [o for o in shipped if "orderDeliveryInfo" not in o]
    assert 0 < len(no_info) < len(shipped)
    assert any("orderCpsInfo" not in o for o in listed) and any("orderCpsInfo" in o for o in listed)


def test_kuaishou_search_index_matches_the_ciphertexts_index_and_decrypt_refuses_a_changed_one(
    ks: KsEnv,
) -> None:
    orders = place_orders(ks.world, ks.shop_id, 20)
    listed = {o["orderBaseInfo"]["oid"]: o for o in ks_orders(ks)}
    for order in orders[:6]:
        line, r = order.lines[0], order.receiver
        a = listed[int(line.line_id)]["orderAddress"]
        index = ks.data(
            "open.order.search.index.batch",
            {
                "indexParamList": [
                    {"plainText": r.detail, "type": 1},
                    {"plainText": r.name, "type": 2},
                    {"plainText": r.phone, "type": 3},
                ]
            },  # fmt: skip
            http_method="POST",
        )["indexResultList"]
        cipher = (a["encryptedAddress"], a["encryptedConsignee"], a["encryptedMobile"])
        assert [i["searchIndex"] for i in index] == [c[1:].split(c[0])[0] for c in cipher]
        answer = ks.client.call(
            "open.order.decrypt.batch",
            {"batchDecryptList": [{"bizId": line.line_id, "encryptedData": c} for c in cipher]
             + [{"bizId": line.line_id, "encryptedData": changed_index(c)} for c in cipher]},
            ks.token,
            http_method="POST",
        )  # fmt: skip
        assert [(d["errorCode"], d["decryptedData"]) for d in answer["batchDecryptResultList"]] == [
            (1, r.detail), (1, r.name), (1, r.phone), (2, ""), (2, ""), (2, ""),
        ]  # fmt: skip
    assert CIPHER_FIELDS.unwrap(a["encryptedMobile"]) is not None


def test_kuaishou_push_ids_are_numbers_or_strings(ks: KsEnv) -> None:
    place_orders(ks.world, ks.shop_id, 30)
    kinds = Counter()
    for event in ks.world.events_after(0, 1000):
        for m in push_messages(ks.world, ks.app, event, f"m{event.event_id}"):
            kinds[type(m["bizId"]).__name__] += 1
            assert type(json.loads(m["info"]).get("oid", m["bizId"])) is type(m["bizId"])
    assert kinds["int"] > 0 and kinds["str"] > 0, kinds


# --------------------------------------------------------------------------- WeChat


@pytest.fixture
def wx_env(tmp_path: Path, clock: FakeClock) -> Iterator[tuple[World, WechatRefClient, str]]:
    w = World(tmp_path / "wechat.sqlite3", seed=11, clock=clock)
    untidy.set_rates(w, untidy.FULL_RATES)
    seed_default_world(w, platforms=("wechat",), buyers=60)
    shop = w.shops("wechat")[0].shop_id
    app = create_self_use_app(w, shop)
    with httpx.Client(
        transport=httpx.WSGITransport(app=WechatApp(w)), base_url="http://api.weixin.sandbox"
    ) as http:
        client = WechatRefClient(app.app_key, app.app_secret, http=http)
        client.login()
        yield w, client, shop
    w.close()


def test_wechat_serves_every_variation(wx_env: tuple[World, WechatRefClient, str]) -> None:
    world, wx, shop = wx_env
    codes = {s.code for s in world.skus(shop)}
    chinese = {c for c in codes if re.search(r"[\u4e00-\u9fff]", c)}
    assert chinese and chinese < codes
    skus = world.skus(shop)
    cn_sku = next(s for s in skus if s.code in chinese)
    orders = place_orders(world, shop, 60)
    orders.append(
        world.create_order(shop_id=shop, buyer_id=9, items=[OrderItemSpec(cn_sku.sku_id)], pay=True)
    )
    by_id = {o.order_id: o for o in orders}
    fetched = [wx.order(o.order_id) for o in orders]
    id_types = Counter(type(o["order_id"]).__name__ for o in fetched)
    pay_types = Counter(type(o["order_detail"]["pay_info"]["pay_time"]).__name__ for o in fetched)
    assert id_types["int"] > 0 and id_types["str"] > 0 and pay_types["int"] > 0 and pay_types["str"] > 0
    infos = [o["order_detail"]["delivery_info"]["address_info"] for o in fetched]
    assert 0 < sum("hash_code" not in i for i in infos) < len(infos)
    plain = [(o, i) for o, i in zip(fetched, infos, strict=True) if "*" not in i["tel_number"]]
    assert 0 < len(plain) < len(infos) // 4
    for o, i in plain:
        assert i["user_name"] == by_id[str(o["order_id"])].receiver.name
    lines = [line for o in fetched for line in o["order_detail"]["product_infos"]]
    assert 0 < sum("real_price" not in line for line in lines) < len(lines)
    assert any(line["sku_code"] == cn_sku.code for line in lines)
    assert 0 < sum("ext_info" not in o["order_detail"] for o in fetched) < len(fetched)

    events = Counter()
    for event in world.events_after(0, 1000):
        message = push_message(world, event)
        if message and event.kind == EventKind.ORDER_PAID:
            info = message["order_info"]
            assert type(info["order_id"]) is type(info["pay_time"])
            events[type(info["order_id"]).__name__] += 1
    assert events["int"] > 0 and events["str"] > 0, events


def test_wechat_tidy_world_has_no_chinese_codes_and_full_payloads(tmp_path: Path, clock: FakeClock) -> None:
    w = World(tmp_path / "tidy.sqlite3", seed=11, clock=clock)
    untidy.set_rates(w, {"*": 0})
    seed_default_world(w, platforms=("wechat",), buyers=20)
    shop = w.shops("wechat")[0].shop_id
    assert not any(re.search(r"[\u4e00-\u9fff]", s.code) for s in w.skus(shop))
    render = WechatApp(w).render
    for order in place_orders(w, shop, 20):
        o = render.order(order)
        assert (
            o["order_id"] == order.order_id
            and "hash_code" in o["order_detail"]["delivery_info"]["address_info"]
        )
        assert all("real_price" in line for line in o["order_detail"]["product_infos"])
    w.close()


def test_untidy_knob_rejects_unknown_names_and_the_cli_sets_rates(world: World) -> None:
    with pytest.raises(ValueError):
        untidy.set_rates(world, {"douyin.nope": 0})
    untidy.set_rates(world, {"*": 0, "douyin.cipher_2024": 1})
    assert untidy.rates(world)["douyin.cipher_2024"] == 1 and untidy.rates(world)["wechat.no_hash_code"] == 0
    untidy.set_rates(world, None)
    assert untidy.rates(world) == untidy.DEFAULT_RATES
    assert all(untidy.DEFAULT_RATES[n] in (0, untidy.FULL_RATES[n]) for n in untidy.VARIATIONS)
    assert sum(1 for n in untidy.VARIATIONS if untidy.DEFAULT_RATES[n]) > len(untidy.VARIATIONS) // 2
    assert CIPHER.unwrap("##head*payload#1##") == ("head", "payload", True)

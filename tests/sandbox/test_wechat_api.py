"""WeChat Channels shop sandbox (platform-apis.md §3): tokens, orders, shipping, stock, after-sales,
funds, e-waybills, PII decode and limits, driven by the independent reference client. No database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from sandbox import untidy
from sandbox.clock import FakeClock
from sandbox.faults import Faults
from sandbox.model import App, OrderStatus
from sandbox.seed import seed_default_world
from sandbox.simulator import BuyerSimulator, SimConfig
from sandbox.wechat import WechatApp, WechatLimits, create_self_use_app, shop_appid, shop_username
from sandbox.world import OrderItemSpec, ShipmentSpec, World
from tests.sandbox.refclients.wechat import WechatError, WechatRefClient

# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def wx_world(tmp_path: Path, clock: FakeClock) -> Iterator[World]:
    w = World(tmp_path / "wechat.sqlite3", seed=11, clock=clock)
    seed_default_world(w, platforms=("wechat",), buyers=40)
    yield w
    w.close()


@pytest.fixture
def wx_app(wx_world: World) -> WechatApp:
    return WechatApp(wx_world)


@pytest.fixture
def wx_http(wx_app: WechatApp) -> Iterator[httpx.Client]:
    with httpx.Client(
        transport=httpx.WSGITransport(app=wx_app), base_url="http://api.weixin.sandbox"
    ) as client:
        yield client


@pytest.fixture
def wx_shop(wx_world: World) -> str:
    return wx_world.shops("wechat")[0].shop_id


@pytest.fixture
def self_app(wx_world: World, wx_shop: str) -> App:
    return create_self_use_app(wx_world, wx_shop)


@pytest.fixture
def wx(self_app: App, wx_http: httpx.Client) -> WechatRefClient:
    client = WechatRefClient(self_app.app_key, self_app.app_secret, http=wx_http)
    client.login()
    return client


def paid_order(world: World, shop_id: str, *quantities: int, buyer_id: int = 1, **kwargs: Any) -> Any:
    skus = world.skus(shop_id)
    items = [OrderItemSpec(skus[i * 3].sku_id, qty) for i, qty in enumerate(quantities or (1,))]
    return world.create_order(shop_id=shop_id, buyer_id=buyer_id, items=items, pay=True, **kwargs)


def errcode(body: dict[str, Any]) -> int:
    return body.get("errcode", 0)


# --------------------------------------------------------------------------- tokens (§3.1)


def test_token_errors_follow_the_error_catalogue(
    wx: WechatRefClient, self_app: App, clock: FakeClock
) -> None:
    assert errcode(wx.raw("/channels/ec/basics/info/get", {}, access_token="")) == 41001
    assert errcode(wx.raw("/channels/ec/basics/info/get", {}, access_token="86_not-a-token")) == 40001
    assert (
        errcode(wx.http.get("/channels/ec/order/get", params={"access_token": wx.access_token}).json())
        == 43002
    )
    bad = wx.http.post("/channels/ec/order/get", params={"access_token": wx.access_token}, content=b"{oops")
    assert errcode(bad.json()) == 47001
    assert (
        errcode(wx.http.post("/channels/ec/order/get", params={"access_token": wx.access_token}).json())
        == 44002
    )
    assert "rid:" in wx.raw("/channels/ec/order/get", {}, access_token="")["errmsg"]
    # credentials
    assert errcode(WechatRefClient(self_app.app_key, "wrong", http=wx.http).token()) == 40125
    assert errcode(WechatRefClient("wx0000000000000000", "x", http=wx.http).stable_token()) == 40013
    assert (
        errcode(
            wx.http.get("/cgi-bin/token", params={"grant_type": "password", "appid": self_app.app_key}).json()
        )
        == 40002
    )
    assert errcode(wx.http.get("/cgi-bin/stable_token").json()) == 43002
    # expiry after exactly 7200 s
    assert wx.call("/channels/ec/basics/info/get")["info"]["username"].startswith("gh_")
    clock.advance(7199)
    assert errcode(wx.raw("/channels/ec/basics/info/get")) == 0
    clock.advance(1)
    assert errcode(wx.raw("/channels/ec/basics/info/get")) == 42001
    assert errcode(wx.raw("/channels/unknown/api")) == 40066


def test_cgi_token_supersedes_with_five_minute_grace_and_is_isolated_from_stable_token(
    wx: WechatRefClient, clock: FakeClock
) -> None:
    first = wx.token()
    assert first["expires_in"] == 7200 and first["access_token"] != wx.access_token
    second = wx.token()
    assert second["access_token"] != first["access_token"]
    assert errcode(wx.raw("/channels/ec/basics/info/get", access_token=first["access_token"])) == 0  # grace
    clock.advance(300)
    assert (
        errcode(wx.raw("/channels/ec/basics/info/get", access_token=first["access_token"])) == 40001
    )  # not latest
    assert errcode(wx.raw("/channels/ec/basics/info/get", access_token=second["access_token"])) == 0
    assert errcode(wx.raw("/channels/ec/basics/info/get")) == 0  # the stable token is untouched


def test_stable_token_renewal_window_and_force_refresh(wx: WechatRefClient, clock: FakeClock) -> None:
    original = wx.access_token
    clock.advance(1000)
    again = wx.stable_token()
    assert again == {"access_token": original, "expires_in": 6200}
    clock.advance(6200 - 299)  # 299 s left: inside the 5-minute window a new token comes out
    renewed = wx.stable_token()
    assert renewed["access_token"] != original and renewed["expires_in"] == 7200
    assert errcode(wx.raw("/channels/ec/basics/info/get", access_token=original)) == 0  # both work meanwhile
    assert wx.stable_token()["access_token"] == renewed["access_token"]
    clock.advance(299)
    assert errcode(wx.raw("/channels/ec/basics/info/get", access_token=original)) == 42001
    forced = wx.stable_token(force_refresh=True)
    assert forced["access_token"] != renewed["access_token"] and forced["expires_in"] == 7200
    assert errcode(wx.raw("/channels/ec/basics/info/get", access_token=renewed["access_token"])) == 40001
    assert errcode(wx.raw("/channels/ec/basics/info/get", access_token=forced["access_token"])) == 0
    assert errcode(wx.stable_token(force_refresh=True)) == 45011  # force refreshes ≥ 30 s apart
    for _ in range(19):
        clock.advance(31)
        assert "access_token" in wx.stable_token(force_refresh=True)
    clock.advance(31)
    assert errcode(wx.stable_token(force_refresh=True)) == 45009  # 20 a day
    assert "access_token" in wx.stable_token()  # normal mode is not limited


def test_third_party_platform_authorisation_flow(
    wx_world: World, wx_http: httpx.Client, wx_shop: str, clock: FakeClock
) -> None:
    component = wx_world.apps("wechat")[0]
    assert component.app_type != "self"
    assert errcode(WechatRefClient(component.app_key, component.app_secret, http=wx_http).token()) == 40013
    page = wx_http.get(
        "/authorize",
        params={"appid": component.app_key, "redirect_uri": "https://erp.example/cb", "state": "s1"},
    )
    assert (
        page.status_code == 200 and "确认授权" in page.text and shop_username(wx_world, wx_shop) in page.text
    )
    answer = wx_http.post(
        "/authorize",
        data={
            "component_appid": component.app_key,
            "shop_id": wx_shop,
            "state": "s1",
            "redirect_uri": "https://erp.example/cb",
        },
    )
    assert answer.status_code == 302
    query = parse_qs(urlparse(answer.headers["location"]).query)
    assert query["state"] == ["s1"] and query["expires_in"] == ["600"]
    auth_code = query["auth_code"][0]
    body = {"component_appid": component.app_key, "component_appsecret": component.app_secret}
    stale = wx_http.post(
        "/cgi-bin/component/api_component_token", json={**body, "component_verify_ticket": "ticket@@@forged"}
    )
    assert errcode(stale.json()) == 61006
    ticket = wx_http.get(
        "/sandbox/component_verify_ticket", params={"component_appid": component.app_key}
    ).json()
    clock.advance(3 * 3600)  # a ticket stays valid for 12 h
    reply = wx_http.post(
        "/cgi-bin/component/api_component_token",
        json={**body, "component_verify_ticket": ticket["component_verify_ticket"]},
    )
    component_token = reply.json()["component_access_token"]
    assert reply.json()["expires_in"] == 7200
    # the code is single use and expires after 10 minutes
    exchanged = wx_http.post(
        "/cgi-bin/component/api_query_auth",
        params={"access_token": component_token},
        json={"component_appid": component.app_key, "authorization_code": auth_code},
    ).json()
    assert errcode(exchanged) == 61010  # three hours later: expired
    auth_code = parse_qs(urlparse(wx_http.post("/authorize", data={"appid": component.app_key, "shop_id": wx_shop,
                                                                    "redirect_uri": "https://erp.example/cb"}).headers["location"]).query)["auth_code"][0]  # fmt: skip
    exchanged = wx_http.post(
        "/cgi-bin/component/api_query_auth",
        params={"access_token": component_token},
        json={"component_appid": component.app_key, "authorization_code": auth_code},
    ).json()
    info = exchanged["authorization_info"]
    assert info["authorizer_appid"] == shop_appid(wx_world, wx_shop) and info["expires_in"] == 7200
    assert {f["funcscope_category"]["id"] for f in info["func_info"]} >= {129, 130, 131}
    assert info["authorizer_refresh_token"].startswith("refreshtoken@@@")
    again = wx_http.post(
        "/cgi-bin/component/api_query_auth",
        params={"access_token": component_token},
        json={"component_appid": component.app_key, "authorization_code": auth_code},
    ).json()
    assert errcode(again) == 61009
    shop_call = wx_http.post(
        "/channels/ec/basics/info/get", params={"access_token": info["authorizer_access_token"]}, json={}
    )
    assert shop_call.json()["info"]["username"] == shop_username(wx_world, wx_shop)
    # a component token is not a shop token and vice versa
    assert (
        errcode(
            wx_http.post(
                "/channels/ec/basics/info/get", params={"access_token": component_token}, json={}
            ).json()
        )
        == 40001
    )
    refresh_body = {"component_appid": component.app_key, "authorizer_appid": info["authorizer_appid"],
                    "authorizer_refresh_token": info["authorizer_refresh_token"]}  # fmt: skip
    refreshed = wx_http.post(
        "/cgi-bin/component/api_authorizer_token", params={"access_token": component_token}, json=refresh_body
    ).json()
    assert refreshed["authorizer_access_token"] != info["authorizer_access_token"]
    assert refreshed["authorizer_refresh_token"] == info["authorizer_refresh_token"]
    wrong = wx_http.post("/cgi-bin/component/api_authorizer_token", params={"access_token": component_token},
                         json={**refresh_body, "authorizer_refresh_token": "refreshtoken@@@nope"}).json()  # fmt: skip
    assert errcode(wrong) == 61023
    wx_world.revoke_authorization(component.app_key, wx_shop)
    revoked = wx_http.post(
        "/cgi-bin/component/api_authorizer_token", params={"access_token": component_token}, json=refresh_body
    ).json()
    assert errcode(revoked) == 61003
    gone = wx_http.post(
        "/channels/ec/basics/info/get", params={"access_token": refreshed["authorizer_access_token"]}, json={}
    )
    assert errcode(gone.json()) == 40001


# --------------------------------------------------------------------------- orders (§3.4)


def test_order_detail_shape_and_masked_receiver(wx: WechatRefClient, wx_world: World, wx_shop: str) -> None:
    untidy.set_rates(wx_world, {"*": 0})  # the documented shape; the untidy ones: test_untidy.py
    skus = wx_world.skus(wx_shop)
    order = wx_world.create_order(
        shop_id=wx_shop, buyer_id=3, pay=True, post_fen=800, buyer_words="不要放快递柜",
        items=[OrderItemSpec(skus[0].sku_id, 2, discount_fen=500), OrderItemSpec(skus[4].sku_id, 1),
               OrderItemSpec(skus[8].sku_id, 1, gift_of=0)],
    )  # fmt: skip
    raw = wx.raw("/channels/ec/order/get", {"order_id": order.order_id})
    r = order.receiver
    text = json.dumps(raw, ensure_ascii=False)
    assert r.name not in text and r.phone not in text and r.detail not in text
    o = raw["order"]
    # order_id is a string in most answers and a number in some (test_untidy.py)
    assert (str(o["order_id"]), o["status"], o["create_time"]) == (order.order_id, 20, order.create_time)
    lines = o["order_detail"]["product_infos"]
    assert [(x["product_id"], x["sku_id"], x["sku_cnt"], x["sku_code"]) for x in lines] == [
        (ln.product_id, ln.sku_id, ln.qty, ln.code) for ln in order.lines
    ]
    assert (
        lines[0]["sale_price"] == skus[0].price_fen and lines[0]["real_price"] == skus[0].price_fen * 2 - 500
    )
    assert lines[2]["is_free_gift"] is True and lines[2].get("real_price", 0) == 0
    price = o["order_detail"]["price_info"]
    assert (
        price["freight"] == 800
        and price["order_price"] == order.pay_fen
        and price["product_price"] == order.goods_fen
    )
    address = o["order_detail"]["delivery_info"]["address_info"]
    assert address["user_name"] == r.name[0] + "*" * (len(r.name) - 1)
    assert address["tel_number"] == r.phone[:3] + "****" + r.phone[-4:]
    assert (address["province_name"], address["city_name"], address["county_name"]) == (
        r.province,
        r.city,
        r.district,
    )
    assert len(address["hash_code"]) == 32
    assert o["order_detail"]["ext_info"]["customer_notes"] == "不要放快递柜"
    assert isinstance(o["order_id"], str) and all(isinstance(x["product_id"], str) for x in lines)
    # the same receiver in another order has the same hash_code
    twin = wx_world.create_order(shop_id=wx_shop, buyer_id=3, items=[OrderItemSpec(skus[1].sku_id)], pay=True)
    assert (
        wx.order(twin.order_id)["order_detail"]["delivery_info"]["address_info"]["hash_code"]
        == address["hash_code"]
    )
    assert errcode(wx.raw("/channels/ec/order/get", {"order_id": "3700000000000000000"})) == 10021001


def test_list_returns_ids_only_with_limits(
    wx: WechatRefClient, wx_world: World, wx_shop: str, clock: FakeClock
) -> None:
    start = wx_world.now()
    made = [paid_order(wx_world, wx_shop).order_id for _ in range(5)]
    clock.advance(10)
    page = wx.call(
        "/channels/ec/order/list/get",
        {"update_time_range": {"start_time": start, "end_time": wx_world.now()}, "page_size": 3},
    )
    assert set(page) == {"errcode", "errmsg", "order_id_list", "next_key", "has_more"}
    assert page["has_more"] is True and len(page["order_id_list"]) == 3
    rest = wx.call("/channels/ec/order/list/get", {"update_time_range": {"start_time": start, "end_time": wx_world.now()},
                                                  "page_size": 3, "next_key": page["next_key"]})  # fmt: skip
    assert rest["has_more"] is False and page["order_id_list"] + rest["order_id_list"] == made
    assert wx.order_ids(start, wx_world.now(), page_size=2) == made
    week = 7 * 86400
    assert (
        errcode(
            wx.raw(
                "/channels/ec/order/list/get",
                {"update_time_range": {"start_time": start, "end_time": start + week + 1}},
            )
        )
        == 40097
    )
    assert (
        errcode(
            wx.raw(
                "/channels/ec/order/list/get",
                {"update_time_range": {"start_time": start, "end_time": start + week}},
            )
        )
        == 0
    )
    assert errcode(wx.raw("/channels/ec/order/list/get", {"page_size": 10})) == 40097
    assert (
        errcode(
            wx.raw(
                "/channels/ec/order/list/get",
                {"create_time_range": {"start_time": start, "end_time": start + 60}, "page_size": 101},
            )
        )
        == 40097
    )
    assert (
        errcode(
            wx.raw(
                "/channels/ec/order/list/get",
                {"create_time_range": {"start_time": start, "end_time": start + 60}, "next_key": "garbage"},
            )
        )
        == 40097
    )
    unpaid = wx_world.create_order(
        shop_id=wx_shop, buyer_id=2, items=[OrderItemSpec(wx_world.skus(wx_shop)[0].sku_id)]
    )
    only_unpaid = wx.call(
        "/channels/ec/order/list/get",
        {"create_time_range": {"start_time": start, "end_time": wx_world.now() + 1}, "status": 10},
    )
    assert only_unpaid["order_id_list"] == [unpaid.order_id]


def test_next_key_paging_returns_every_order_exactly_once_while_the_world_changes(
    wx: WechatRefClient, wx_world: World, wx_shop: str
) -> None:
    """The window is frozen when paging starts: orders updated meanwhile are still returned exactly once
    (and again in a later window, under their new update time); orders created meanwhile are not."""
    sim = BuyerSimulator(
        wx_world,
        seed=4,
        config=SimConfig(orders_per_minute=6, merchant_bot=True, merchant_ship_delay=1200),
        shops=[wx_shop],
    )
    origin = wx_world.now()
    sim.run_for(3600)
    seen_versions: dict[str, int] = {}
    window_start = origin
    changed_meanwhile = created_meanwhile = 0
    for _ in range(6):
        window_end = wx_world.now()
        expected = {
            o.order_id for o in wx_world.orders(wx_shop) if window_start <= o.update_time < window_end
        }
        before = {o.order_id for o in wx_world.orders(wx_shop)}
        walked = wx.order_ids(window_start, window_end, page_size=7, between_pages=lambda: sim.step(6))
        assert len(walked) == len(set(walked)), "an order was returned twice"
        assert set(walked) == expected, "an order that was in the window was skipped (or a stranger appeared)"
        now_orders = {o.order_id: o for o in wx_world.orders(wx_shop)}
        changed_meanwhile += sum(1 for oid in expected if now_orders[oid].update_time >= window_end)
        created_meanwhile += len(set(now_orders) - before)
        for oid in walked:
            seen_versions[oid] = window_end
        window_start = window_end
    final_end = wx_world.now() + 1
    for oid in wx.order_ids(window_start, final_end):
        seen_versions[oid] = final_end
    assert changed_meanwhile > 0 and created_meanwhile > 0
    truth = {o.order_id: o.update_time for o in wx_world.orders(wx_shop) if o.update_time >= origin}
    assert set(seen_versions) == set(truth) and len(truth) > 300
    # every order was last seen in the window holding its latest update
    assert all(truth[oid] < seen_versions[oid] for oid in truth)


# --------------------------------------------------------------------------- shipping (§3.5)


def test_partial_then_full_shipment_moves_20_21_30(
    wx: WechatRefClient, wx_world: World, wx_shop: str
) -> None:
    order = paid_order(wx_world, wx_shop, 2, 1)
    first, second = order.lines
    carriers = {
        c["delivery_id"]: c["delivery_name"]
        for c in wx.call("/channels/ec/order/deliverycompanylist/get")["company_list"]
    }
    assert {"SF", "YTO", "ZTO", "STO", "YD", "EMS", "JD"} <= set(carriers) and carriers["SF"] == "顺丰速运"
    parcel = {"delivery_id": "ZTO", "waybill_id": "7800000000001", "deliver_type": 1,
              "product_infos": [{"product_id": first.product_id, "sku_id": first.sku_id, "product_cnt": 1}]}  # fmt: skip
    wx.call("/channels/ec/order/delivery/send", {"order_id": order.order_id, "delivery_list": [parcel]})
    detail = wx.order(order.order_id)
    assert detail["status"] == 21
    assert detail["order_detail"]["delivery_info"]["delivery_product_info"][0]["product_infos"] == [
        {"product_id": first.product_id, "sku_id": first.sku_id, "product_cnt": 1}
    ]
    too_many = {
        **parcel,
        "waybill_id": "7800000000002",
        "product_infos": [{**parcel["product_infos"][0], "product_cnt": 2}],
    }
    assert (
        errcode(
            wx.raw(
                "/channels/ec/order/delivery/send", {"order_id": order.order_id, "delivery_list": [too_many]}
            )
        )
        == 10021003
    )
    unknown = {**parcel, "delivery_id": "NOPE"}
    assert (
        errcode(
            wx.raw(
                "/channels/ec/order/delivery/send", {"order_id": order.order_id, "delivery_list": [unknown]}
            )
        )
        == 10021004
    )
    rest = [
        {"delivery_id": "SF", "waybill_id": "SF0000000000001", "deliver_type": 1,
         "product_infos": [{"product_id": first.product_id, "sku_id": first.sku_id, "product_cnt": 1}]},
        {"delivery_id": "YTO", "waybill_id": "YT0000000000001", "deliver_type": 1,
         "product_infos": [{"product_id": second.product_id, "sku_id": second.sku_id, "product_cnt": 1}]},
    ]  # fmt: skip
    wx.call("/channels/ec/order/delivery/send", {"order_id": order.order_id, "delivery_list": rest})
    detail = wx.order(order.order_id)
    assert detail["status"] == 30
    assert [p["waybill_id"] for p in detail["order_detail"]["delivery_info"]["delivery_product_info"]] == [
        "7800000000001", "SF0000000000001", "YT0000000000001"
    ]  # fmt: skip
    assert (
        errcode(
            wx.raw("/channels/ec/order/delivery/send", {"order_id": order.order_id, "delivery_list": rest})
        )
        == 10021002
    )


def test_refund_pending_blocks_shipping(wx: WechatRefClient, wx_world: World, wx_shop: str) -> None:
    order = paid_order(wx_world, wx_shop, 1)
    line = order.lines[0]
    wx_world.apply_aftersale(order.order_id, line.line_id, kind="refund_unshipped", reason="不想要了")
    parcel = {"delivery_id": "ZTO", "waybill_id": "7800000000009", "deliver_type": 1,
              "product_infos": [{"product_id": line.product_id, "sku_id": line.sku_id, "product_cnt": 1}]}  # fmt: skip
    assert (
        errcode(
            wx.raw(
                "/channels/ec/order/delivery/send", {"order_id": order.order_id, "delivery_list": [parcel]}
            )
        )
        == 10021005
    )
    assert wx.order(order.order_id)["aftersale_detail"]["on_aftersale_order_cnt"] == 1


# --------------------------------------------------------------------------- stock and listings (§3.6)


def test_stock_diff_types_errors_and_per_sku_frequency_cap(
    wx: WechatRefClient, wx_world: World, wx_shop: str, clock: FakeClock
) -> None:
    sku = wx_world.skus(wx_shop)[0]
    ids = {"product_id": sku.product_id, "sku_id": sku.sku_id}

    def stock() -> int:
        data = wx.call("/channels/ec/product/stock/get", ids)["data"]
        assert data["total_stock_num"] == data["normal_stock_num"]
        return data["normal_stock_num"]

    wx.call("/channels/ec/product/stock/update", {**ids, "diff_type": 3, "num": 50})
    assert stock() == 50
    wx.call("/channels/ec/product/stock/update", {**ids, "diff_type": 1, "num": 7})
    assert stock() == 57
    wx.call("/channels/ec/product/stock/update", {**ids, "diff_type": 2, "num": 17})
    assert stock() == 40
    assert (
        errcode(wx.raw("/channels/ec/product/stock/update", {**ids, "diff_type": 2, "num": 41})) == 10020219
    )
    assert stock() == 40
    assert errcode(wx.raw("/channels/ec/product/stock/update", {**ids, "diff_type": 4, "num": 1})) == 40097
    assert (
        errcode(wx.raw("/channels/ec/product/stock/update", {**ids, "sku_id": "1", "diff_type": 1, "num": 1}))
        == 10020052
    )
    other = wx_world.skus(wx_world.shops("wechat")[1].shop_id)[0]
    foreign = {"product_id": other.product_id, "sku_id": other.sku_id, "diff_type": 1, "num": 1}
    assert errcode(wx.raw("/channels/ec/product/stock/update", foreign)) == 10020050
    WechatLimits.save(wx_world, stock_updates_per_sku_per_minute=2)
    clock.advance(60)
    assert errcode(wx.raw("/channels/ec/product/stock/update", {**ids, "diff_type": 1, "num": 1})) == 0
    assert errcode(wx.raw("/channels/ec/product/stock/update", {**ids, "diff_type": 1, "num": 1})) == 0
    assert errcode(wx.raw("/channels/ec/product/stock/update", {**ids, "diff_type": 1, "num": 1})) == 10020112
    assert stock() == 42
    clock.advance(60)
    assert errcode(wx.raw("/channels/ec/product/stock/update", {**ids, "diff_type": 1, "num": 1})) == 0


def test_product_listing_and_publishing(wx: WechatRefClient, wx_world: World, wx_shop: str) -> None:
    expected = {p.product_id for p in wx_world.products(wx_shop, limit=1000)[1]}
    seen, key = [], ""
    while True:
        page = wx.call(
            "/channels/ec/product/list/get", {"page_size": 7, **({"next_key": key} if key else {})}
        )
        assert page["total_num"] == len(expected)
        seen += page["product_ids"]
        if not page["product_ids"]:
            break
        key = page["next_key"]
    assert sorted(seen) == sorted(expected) and len(seen) == len(set(seen))
    product = wx.call("/channels/ec/product/get", {"product_id": seen[0], "data_type": 1})["product"]
    truth = wx_world.get_product(seen[0])
    assert product["status"] == 5 and product["title"] == truth.title
    assert [(s["sku_id"], s["sku_code"], s["stock_num"], s["sale_price"]) for s in product["skus"]] == [
        (s.sku_id, s.code, s.stock, s.price_fen) for s in truth.skus
    ]
    created = wx.call(
        "/channels/ec/product/add",
        {"title": "新品保温杯", "head_imgs": ["https://img.example/cup.jpg"], "cats_v2": [{"cat_id": "6091"}], "listing": True,
         "skus": [{"sale_price": 5900, "stock_num": 30, "sku_code": "CUP-NEW-1", "sku_attrs": [{"attr_key": "颜色", "attr_value": "白"}]}]},
    )["data"]  # fmt: skip
    new = wx.call("/channels/ec/product/get", {"product_id": created["product_id"]})["product"]
    assert (
        new["status"] == 5 and new["skus"][0]["sku_code"] == "CUP-NEW-1" and new["skus"][0]["stock_num"] == 30
    )
    assert (
        errcode(
            wx.raw(
                "/channels/ec/product/add", {"title": "x", "head_imgs": ["a"], "skus": [{"sale_price": 0}]}
            )
        )
        == 40097
    )


# --------------------------------------------------------------------------- PII (§3.4)


def test_sensitive_info_decode_quota_and_refusals(
    wx: WechatRefClient, wx_world: World, wx_shop: str, clock: FakeClock
) -> None:
    wx_world.update_shop(wx_shop, decrypt_quota_per_day=2)
    order = paid_order(wx_world, wx_shop)
    r = order.receiver
    decoded = wx.call("/channels/ec/order/sensitiveinfo/decode", {"order_id": order.order_id})["address_info"]
    assert (decoded["user_name"], decoded["tel_number"], decoded["detail_info"]) == (
        r.name,
        r.phone,
        r.street + r.detail,
    )
    assert (
        decoded.get("hash_code")  # some orders have none, as the published samples
        == wx.order(order.order_id)["order_detail"]["delivery_info"]["address_info"].get("hash_code")
    )
    unpaid = wx_world.create_order(
        shop_id=wx_shop, buyer_id=5, items=[OrderItemSpec(wx_world.skus(wx_shop)[0].sku_id)]
    )
    assert (
        errcode(wx.raw("/channels/ec/order/sensitiveinfo/decode", {"order_id": unpaid.order_id})) == 10021101
    )
    assert wx_world.decrypt_used_today(wx_shop) == 1  # refusals cost nothing
    wx.call("/channels/ec/order/sensitiveinfo/decode", {"order_id": order.order_id})
    assert (
        errcode(wx.raw("/channels/ec/order/sensitiveinfo/decode", {"order_id": order.order_id})) == 10021102
    )
    clock.advance(86400)  # a new day in Asia/Shanghai (and a new token)
    wx.login()
    assert errcode(wx.raw("/channels/ec/order/sensitiveinfo/decode", {"order_id": order.order_id})) == 0
    foreign = paid_order(wx_world, wx_world.shops("wechat")[1].shop_id)
    assert (
        errcode(wx.raw("/channels/ec/order/sensitiveinfo/decode", {"order_id": foreign.order_id})) == 10021001
    )


# --------------------------------------------------------------------------- after-sales (§3.7) and funds (§3.9)


def test_aftersale_ids_then_detail_with_string_statuses(
    wx: WechatRefClient, wx_world: World, wx_shop: str, clock: FakeClock
) -> None:
    start = wx_world.now()
    order = paid_order(wx_world, wx_shop, 2)
    line = order.lines[0]
    wx_world.ship_order(order.order_id, [ShipmentSpec("ZTO", "78000001")])
    a = wx_world.apply_aftersale(
        order.order_id, line.line_id, kind="return_refund", qty=1, reason="七天无理由退货"
    )
    clock.advance(5)
    listed = wx.call(
        "/channels/ec/aftersale/getaftersalelist",
        {"begin_create_time": start, "end_create_time": wx_world.now()},
    )
    assert listed["after_sale_order_id_list"] == [a.aftersale_id] and listed["has_more"] is False
    detail = wx.call("/channels/ec/aftersale/getaftersaleorder", {"after_sale_order_id": a.aftersale_id})[
        "after_sale_order"
    ]
    assert (detail["type"], detail["status"], detail["order_id"]) == (
        "RETURN",
        "MERCHANT_PROCESSING",
        order.order_id,
    )
    assert detail["product_info"] == {
        "product_id": line.product_id,
        "sku_id": line.sku_id,
        "sku_code": line.code,
        "count": 1,
    }
    assert detail["refund_info"]["amount"] == a.refund_fen
    wx_world.agree_aftersale(a.aftersale_id)
    wx_world.buyer_return_goods(a.aftersale_id, carrier="SF", tracking_no="SF1234567890")
    clock.advance(5)
    by_update = wx.call(
        "/channels/ec/aftersale/getaftersalelist",
        {"begin_update_time": start, "end_update_time": wx_world.now()},
    )
    assert by_update["after_sale_order_id_list"] == [a.aftersale_id]
    detail = wx.call("/channels/ec/aftersale/getaftersaleorder", {"after_sale_order_id": a.aftersale_id})[
        "after_sale_order"
    ]
    assert (
        detail["status"] == "MERCHANT_WAIT_RECEIPT" and detail["return_info"]["waybill_id"] == "SF1234567890"
    )
    wx_world.agree_aftersale(a.aftersale_id)
    final = wx.call("/channels/ec/aftersale/getaftersaleorder", {"after_sale_order_id": a.aftersale_id})[
        "after_sale_order"
    ]
    assert final["status"] == "MERCHANT_RETURN_SUCCESS"
    assert (
        errcode(wx.raw("/channels/ec/aftersale/getaftersaleorder", {"after_sale_order_id": "1"})) == 10020000
    )
    assert errcode(wx.raw("/channels/ec/aftersale/getaftersalelist", {"next_key": ""})) == 40097


def test_funds_flows_ids_then_detail(
    wx: WechatRefClient, wx_world: World, wx_shop: str, clock: FakeClock
) -> None:
    start = wx_world.now()
    orders = [paid_order(wx_world, wx_shop, 1, buyer_id=i + 1) for i in range(3)]
    for o in orders:
        wx_world.ship_order(o.order_id, [ShipmentSpec("YTO", f"YT{o.order_id[-10:]}")])
        wx_world.receive_order(o.order_id)
        wx_world.complete_order(o.order_id)
    clock.advance(10)
    flow_ids, key = [], ""
    while True:
        page = wx.call("/channels/ec/funds/getfundsflowlist", {"page": 1, "page_size": 4, "start_time": start, "end_time": wx_world.now(),
                                                               **({"next_key": key} if key else {})})  # fmt: skip
        flow_ids += page["flow_ids"]
        key = page["next_key"]
        if not page["has_more"]:
            break
    assert len(flow_ids) == 6 and len(set(flow_ids)) == 6  # income + service fee per order
    details = [
        wx.call("/channels/ec/funds/getfundsflowdetail", {"flow_id": f})["funds_flow"] for f in flow_ids
    ]
    income = [d for d in details if d["flow_type"] == 1]
    fees = [d for d in details if d["flow_type"] == 2]
    assert sorted(d["amount"] for d in income) == sorted(o.pay_fen for o in orders)
    assert sum(d["amount"] for d in fees) == sum(o.pay_fen * 50 // 1000 for o in orders)
    assert {d["related_info_list"][0]["order_id"] for d in details} == {o.order_id for o in orders}
    assert details[-1]["balance"] == sum(d["amount"] for d in income) - sum(d["amount"] for d in fees)
    assert len(details[0]["bookkeeping_time"]) == 19
    assert (
        errcode(wx.raw("/channels/ec/funds/getfundsflowdetail", {"flow_id": "100000000000000091"})) == 40097
    )


# --------------------------------------------------------------------------- e-waybill (§3.10)


def test_ewaybill_precreate_create_print_cancel(wx: WechatRefClient, wx_world: World, wx_shop: str) -> None:
    order = paid_order(wx_world, wx_shop, 1)
    line = order.lines[0]
    assert {
        d["delivery_id"] for d in wx.call("/channels/ec/logistics/ewaybill/biz/delivery/get")["list"]
    } == {"ZTO", "YTO", "SF"}
    account = wx.call("/channels/ec/logistics/ewaybill/biz/account/get", {"delivery_id": "ZTO"})[
        "account_list"
    ][0]
    template = wx.call("/channels/ec/logistics/ewaybill/biz/template/get", {"delivery_id": "ZTO"})[
        "total_template"
    ][0]["default_template_id"]
    request = {
        "delivery_id": "ZTO", "site_code": account["site_info"]["site_code"], "ewaybill_acct_id": account["acct_id"],
        "sender": {"name": "仓库", "mobile": "13800005678", "province": "浙江省", "city": "杭州市", "county": "余杭区", "address": "仓前街道1号"},
        "ec_order_list": [{"ec_order_id": order.order_id, "goods_list": [{"good_name": line.title, "good_count": 1,
                                                                          "product_id": line.product_id, "sku_id": line.sku_id}]}],
    }  # fmt: skip
    numeric = {**request, "ec_order_list": [{"ec_order_id": int(order.order_id), "goods_list": []}]}
    assert errcode(wx.raw("/channels/ec/logistics/ewaybill/biz/order/precreate", numeric)) == 10025020
    ewaybill_order_id = wx.call("/channels/ec/logistics/ewaybill/biz/order/precreate", request)[
        "ewaybill_order_id"
    ]
    created = wx.call(
        "/channels/ec/logistics/ewaybill/biz/order/create",
        {**request, "ewaybill_order_id": ewaybill_order_id, "template_id": template},
    )
    again = wx.raw(
        "/channels/ec/logistics/ewaybill/biz/order/create",
        {**request, "ewaybill_order_id": ewaybill_order_id, "template_id": template},
    )
    assert errcode(again) == 10025019  # 电子面单已存在: no second number; read it back instead
    read = wx.call("/channels/ec/logistics/ewaybill/biz/order/get", {"ewaybill_order_id": ewaybill_order_id})
    assert (
        read["order_info"]["waybill_id"]
        == created["waybill_id"]
        == created["waybill_id_list"][0]["waybill_id"]
    )
    printed = wx.call(
        "/channels/ec/logistics/ewaybill/biz/print/get",
        {"ewaybill_order_id": ewaybill_order_id, "template_id": template},
    )
    assert printed["print_info"] and order.receiver.phone not in printed["print_info"]
    after = wx.call("/channels/ec/logistics/ewaybill/biz/account/get", {"delivery_id": "ZTO"})[
        "account_list"
    ][0]
    assert after["available"] == account["available"] - 1 and after["allocated"] == account["allocated"] + 1
    wx.call("/channels/ec/logistics/ewaybill/biz/order/cancel", {"ewaybill_order_id": ewaybill_order_id, "delivery_id": "ZTO",
                                                                  "waybill_id": created["waybill_id"]})  # fmt: skip
    got = wx.call("/channels/ec/logistics/ewaybill/biz/order/get", {"ewaybill_order_id": ewaybill_order_id})[
        "order_info"
    ]
    assert got["status"] == 2 and got["waybill_id"] == created["waybill_id"]
    assert (
        errcode(
            wx.raw("/channels/ec/logistics/ewaybill/biz/print/get", {"ewaybill_order_id": ewaybill_order_id})
        )
        == 10025006
    )
    recycled = wx.call("/channels/ec/logistics/ewaybill/biz/account/get", {"delivery_id": "ZTO"})[
        "account_list"
    ][0]
    assert (recycled["available"], recycled["cancel"], recycled["recycled"]) == (
        account["available"],
        account["cancel"] + 1,
        account["recycled"] + 1,
    )
    cancel = {
        "ewaybill_order_id": ewaybill_order_id,
        "delivery_id": "ZTO",
        "waybill_id": created["waybill_id"],
    }
    assert errcode(wx.raw("/channels/ec/logistics/ewaybill/biz/order/cancel", cancel)) == 10025006


def test_ewaybill_self_defined_id_sub_orders_and_shipped_numbers(
    wx: WechatRefClient, wx_world: World, wx_shop: str
) -> None:
    order = paid_order(wx_world, wx_shop, 1)
    account = wx.call("/channels/ec/logistics/ewaybill/biz/account/get", {"delivery_id": "SF"})[
        "account_list"
    ][0]
    zto = wx.call("/channels/ec/logistics/ewaybill/biz/account/get", {"delivery_id": "ZTO"})["account_list"][
        0
    ]
    sender = {
        "name": "仓库",
        "mobile": "13800005678",
        "province": "浙江省",
        "city": "杭州市",
        "address": "仓前街道1号",
    }
    request = {"delivery_id": "SF", "site_code": account["site_info"]["site_code"], "ewaybill_acct_id": account["acct_id"],
               "sender": sender, "ec_order_list": [{"ec_order_id": order.order_id, "goods_list": []}], "template_id": "single"}  # fmt: skip
    assert (
        errcode(
            wx.raw(
                "/channels/ec/logistics/ewaybill/biz/order/create", {**request, "ewaybill_order_id": "12x"}
            )
        )
        == 40097
    )
    created = wx.call(
        "/channels/ec/logistics/ewaybill/biz/order/create", {**request, "ewaybill_order_id": "918273645"}
    )
    assert created["ewaybill_order_id"] == "918273645"
    # a precreate with the same self-defined id: already exists
    assert (
        errcode(
            wx.raw(
                "/channels/ec/logistics/ewaybill/biz/order/precreate",
                {**request, "ewaybill_order_id": "918273645"},
            )
        )
        == 10025019
    )
    sub = {
        "ewaybill_order_id": "918273645",
        "waybill_id": created["waybill_id"],
        "delivery_id": "SF",
        "add_package_quantity": 2,
    }
    listed = wx.call("/channels/ec/logistics/ewaybill/biz/order/addsuborder", sub)["waybill_id_list"]
    assert [w["waybill_type"] for w in listed] == [1, 2, 2] and listed[0]["waybill_id"] == created[
        "waybill_id"
    ]
    after = wx.call("/channels/ec/logistics/ewaybill/biz/account/get", {"delivery_id": "SF"})["account_list"][
        0
    ]
    assert after["available"] == account["available"] - 3
    child = listed[1]["waybill_id"]
    assert wx.call(
        "/channels/ec/logistics/ewaybill/biz/print/get",
        {"ewaybill_order_id": "918273645", "sub_waybill_id": child},
    )["print_info"]
    # ZTO has no child pieces
    z = {**request, "delivery_id": "ZTO", "site_code": zto["site_info"]["site_code"], "ewaybill_acct_id": zto["acct_id"],
         "ewaybill_order_id": "918273646"}  # fmt: skip
    z_created = wx.call("/channels/ec/logistics/ewaybill/biz/order/create", z)
    no_sub = {
        **sub,
        "ewaybill_order_id": "918273646",
        "waybill_id": z_created["waybill_id"],
        "delivery_id": "ZTO",
    }
    assert errcode(wx.raw("/channels/ec/logistics/ewaybill/biz/order/addsuborder", no_sub)) == 10025005
    # a number an order shipped with cannot be cancelled
    wx_world.ship_order(order.order_id, [ShipmentSpec("SF", created["waybill_id"])])
    cancel = {"ewaybill_order_id": "918273645", "delivery_id": "SF", "waybill_id": created["waybill_id"]}
    assert errcode(wx.raw("/channels/ec/logistics/ewaybill/biz/order/cancel", cancel)) == 10025007


# --------------------------------------------------------------------------- limits (§3.11)


def test_minute_and_daily_quotas_and_rate_limit_storm(
    wx: WechatRefClient, wx_world: World, wx_app: WechatApp, clock: FakeClock
) -> None:
    WechatLimits.save(wx_world, path_minute_quota={"/channels/ec/basics/info/get": 3})
    clock.set((clock.now() // 60 + 1) * 60)  # start of a minute
    assert [errcode(wx.raw("/channels/ec/basics/info/get")) for _ in range(4)] == [0, 0, 0, 45011]
    limited = wx.raw("/channels/ec/basics/info/get")
    assert limited["errmsg"].startswith("api minute-quota reach limit must slower retry next minute")
    assert errcode(wx.raw("/channels/ec/order/deliverycompanylist/get")) == 0  # quotas are per API
    clock.advance(60)
    assert errcode(wx.raw("/channels/ec/basics/info/get")) == 0
    WechatLimits.save(wx_world, path_minute_quota={}, daily_quota=2)
    assert [errcode(wx.raw("/channels/ec/order/deliverycompanylist/get")) for _ in range(2)] == [0, 45009]
    WechatLimits.save(wx_world, daily_quota=0)
    Faults(wx_world).set("wechat", "/channels/ec/order/get", rate_limit_rate=1.0)
    wx_app.faults = Faults(wx_world)
    assert errcode(wx.raw("/channels/ec/order/get", {"order_id": "1"})) == 45011
    Faults(wx_world).set("wechat", "/channels/ec/order/get", rate_limit_rate=0.0, error_rate=1.0)
    wx_app.faults = Faults(wx_world)
    assert errcode(wx.raw("/channels/ec/order/get", {"order_id": "1"})) == -1


def test_orders_move_stock_like_the_platform(wx: WechatRefClient, wx_world: World, wx_shop: str) -> None:
    """Sanity: orders reduce the stock the API reports; a pre-payment cancel restores it."""
    sku = wx_world.skus(wx_shop)[0]
    ids = {"product_id": sku.product_id, "sku_id": sku.sku_id}
    before = wx.call("/channels/ec/product/stock/get", ids)["data"]["normal_stock_num"]
    order = wx_world.create_order(shop_id=wx_shop, buyer_id=1, items=[OrderItemSpec(sku.sku_id, 2)])
    assert wx.call("/channels/ec/product/stock/get", ids)["data"]["normal_stock_num"] == before - 2
    wx_world.cancel_order(order.order_id, reason="不想要了", kind="buyer")
    assert wx.call("/channels/ec/product/stock/get", ids)["data"]["normal_stock_num"] == before
    assert wx.order(order.order_id)["status"] == 250
    assert wx_world.get_order(order.order_id).status == OrderStatus.CANCELLED


def test_error_raised_by_reference_client(wx: WechatRefClient) -> None:
    with pytest.raises(WechatError) as caught:
        wx.call("/channels/ec/order/get", {"order_id": "3700000000000000001"})
    assert caught.value.errcode == 10021001

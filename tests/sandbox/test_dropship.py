"""The sandbox's platform-native dropship: WeChat 代发管理 endpoints over the WSGI app (envelopes,
error codes, untidy ids), and the simulated supplier scheduled by the buyer simulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sandbox import dropship
from sandbox.clock import FakeClock
from sandbox.faults import Faults
from sandbox.model import EventKind, OrderStatus
from sandbox.seed import seed_default_world
from sandbox.simulator import BuyerSimulator, SimConfig
from sandbox.wechat import WechatApp, ensure_token
from sandbox.world import OrderItemSpec, World

SUPPLIER = "wxsupplier0001"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path / "ds.sqlite3", seed=5, clock=FakeClock(start=1_735_700_000.0))
    seed_default_world(w, platforms=("wechat",), buyers=5, shops_per_platform=1)
    Faults(w).set("wechat", "*", qps=0)
    yield w
    w.close()


@pytest.fixture
def call(world: World):
    shop_id = world.shops("wechat")[0].shop_id
    token = ensure_token(world, shop_id)
    client = httpx.Client(transport=httpx.WSGITransport(app=WechatApp(world)), base_url="http://wx")

    def post(path: str, body: dict) -> dict:
        return client.post(
            f"/channels/ec/order/dropship/{path}", params={"access_token": token}, json=body
        ).json()

    yield post
    client.close()


def order_of(world: World, qty: int = 2):
    shop_id = world.shops("wechat")[0].shop_id
    sku = world.skus(shop_id)[0]
    return world.create_order(shop_id=shop_id, buyer_id=1, items=[OrderItemSpec(sku.sku_id, qty)], pay=True)


def test_wechat_endpoints_answer_like_wechat(world: World, call) -> None:
    order = order_of(world, 2)
    line = order.lines[0]
    product = [{"spu_id": line.product_id, "sku_id": line.sku_id, "product_cnt": 1}]
    assert (
        call(
            "assign",
            {"order_id": order.order_id, "supplier_appid": SUPPLIER, "dropship_product_list": product},
        )["errcode"]
        == 10021201
    )  # not bound
    dropship.bind_supplier(world, order.shop_id, SUPPLIER, "杭州茶厂")
    ok = call(
        "assign", {"order_id": order.order_id, "supplier_appid": SUPPLIER, "dropship_product_list": product}
    )
    assert ok == {"errcode": 0, "errmsg": "ok"}  # no ds_order_id in the reply
    over = [{**product[0], "product_cnt": 2}]
    refused = call(
        "assign", {"order_id": order.order_id, "supplier_appid": SUPPLIER, "dropship_product_list": over}
    )
    assert refused["errcode"] == 10021202 and "rid:" in refused["errmsg"]
    listed = call("list", {"order_id": order.order_id, "page_info": {"limit": 10}})
    assert listed["total"] == 1 and listed["has_more"] is False
    [ds_id] = listed["ds_order_id_list"]
    got = call("get", {"ds_order_id": ds_id})["dropship_order"]
    assert str(got["ds_order_id"]) == ds_id and got["status"] == 1 and got["supplier_appid"] == SUPPLIER
    assert [(str(p["sku_id"]), p["product_cnt"]) for p in got["product_infos"]] == [(line.sku_id, 1)]
    assert call("get", {"ds_order_id": "999"})["errcode"] == 10021203
    # the merchant cannot ship what the supplier holds: 1 of 2 units is left to it
    token = ensure_token(world, order.shop_id)
    with httpx.Client(transport=httpx.WSGITransport(app=WechatApp(world)), base_url="http://wx") as client:
        both = {"order_id": order.order_id, "delivery_list": [{"delivery_id": "ZTO", "waybill_id": "7300000000001",
                "deliver_type": 1, "product_infos": [{"product_id": line.product_id, "sku_id": line.sku_id, "product_cnt": 2}]}]}  # fmt: skip
        refused = client.post(
            "/channels/ec/order/delivery/send", params={"access_token": token}, json=both
        ).json()
    assert refused["errcode"] == 10021003
    dropship.supplier_ship(world, ds_id)
    assert call("cancel", {"ds_order_id": ds_id, "order_id": order.order_id})["errcode"] == 10021204
    assert world.get_order(order.order_id).status == OrderStatus.PART_SHIPPED  # 1 of 2 units shipped


def test_untidy_dropship_ids_come_as_numbers_and_strings(world: World, call) -> None:
    dropship.bind_supplier(world, world.shops("wechat")[0].shop_id, SUPPLIER)
    kinds = set()
    for _ in range(8):
        order = order_of(world, 1)
        line = order.lines[0]
        call("assign", {"order_id": order.order_id, "supplier_appid": SUPPLIER,
                        "dropship_product_list": [{"spu_id": line.product_id, "sku_id": line.sku_id, "product_cnt": 1}]})  # fmt: skip
        [ds_id] = call("list", {"order_id": order.order_id})["ds_order_id_list"]
        kinds.add(type(call("get", {"ds_order_id": ds_id})["dropship_order"]["ds_order_id"]))
    assert kinds == {int, str}


def test_the_simulated_supplier_ships_when_due(world: World) -> None:
    sim = BuyerSimulator(world, seed=1, config=SimConfig(orders_per_minute=0.0, p_address_change=0,
                                                          p_refund_before_ship=0), shops=[])  # fmt: skip
    order = order_of(world, 3)
    dropship.bind_supplier(world, order.shop_id, SUPPLIER)
    ds = dropship.assign(world, shop_id=order.shop_id, order_id=order.order_id, supplier=SUPPLIER,
                         items=[(order.lines[0].line_id, 3)])  # fmt: skip
    sim.run_for(world.timer("dropship_ship") - 10)
    assert dropship.get(world, ds.ds_id).status == dropship.ASSIGNED
    sim.run_for(20)
    shipped = dropship.get(world, ds.ds_id)
    assert shipped.status == dropship.SHIPPED and shipped.lines[0].shipped_qty == 3
    placed = world.get_order(order.order_id)
    assert (
        placed.status == OrderStatus.SHIPPED
        and placed.packages[0].tracking_no == shipped.waybills[0].tracking_no
    )
    kinds = [e.kind for e in world.events_after(0) if e.order_id == order.order_id]
    assert kinds.index(EventKind.DROPSHIP_ASSIGNED) < kinds.index(EventKind.ORDER_SHIPPED)

"""Platform-native dropship through the connectors, against the sandbox's WeChat and Kuaishou
apps (in-process WSGI: the sandbox checks tokens and Kuaishou's signatures). No database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from channels.connectors.base import AppCredentials, RetryPolicy, ShopSession
from channels.connectors.douyin import DouyinConnector
from channels.connectors.kuaishou import KuaishouConnector
from channels.connectors.wechat import WechatConnector, WechatPushCodec
from channels.errors import NotSupported, PlatformRejected
from channels.types import DropshipState, ShipmentParcel
from sandbox import dropship
from sandbox.clock import FakeClock
from sandbox.faults import Faults
from sandbox.kuaishou import KuaishouApp, ensure_token
from sandbox.model import EventKind
from sandbox.pushes import OutboxMessage
from sandbox.seed import seed_default_world
from sandbox.wechat import WechatApp, create_self_use_app
from sandbox.wechat import WechatPushCodec as SandboxWechatCodec
from sandbox.world import OrderItemSpec, World

SUPPLIER = "wx5f1e2d3c4b5a6978"


class LosingTransport(httpx.BaseTransport):
    """WSGI to the sandbox; the reply of a path in ``lose`` is lost once the platform acted."""

    def __init__(self, app: Any) -> None:
        self.inner = httpx.WSGITransport(app=app)
        self.lose: set[str] = set()
        self.paths: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        response.read()
        self.paths.append(request.url.path)
        if request.url.path in self.lose:
            self.lose.discard(request.url.path)
            raise httpx.ReadTimeout("reply lost", request=request)
        return response

    def count(self, path: str) -> int:
        return self.paths.count(path)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_735_700_000.0)


@pytest.fixture
def world(tmp_path: Path, clock: FakeClock) -> Iterator[World]:
    w = World(tmp_path / "dropship.sqlite3", seed=77, clock=clock)
    seed_default_world(w, platforms=("wechat", "kuaishou"), buyers=10, shops_per_platform=2)
    Faults(w).set("wechat", "*", qps=0)
    Faults(w).set("kuaishou", "*", qps=0)
    yield w
    w.close()


def now_of(clock: FakeClock):
    return lambda: datetime.fromtimestamp(clock.now(), UTC)


@pytest.fixture
def wx(world: World, clock: FakeClock) -> Iterator[tuple[WechatConnector, LosingTransport, str]]:
    shop_id = world.shops("wechat")[0].shop_id
    app = create_self_use_app(world, shop_id)
    transport = LosingTransport(WechatApp(world))
    with httpx.Client(transport=transport, base_url="http://wx.sandbox") as http:
        conn = WechatConnector(
            credentials=AppCredentials(app_key=app.app_key, app_secret=app.app_secret),
            base_url="http://wx.sandbox",
            http=http,
            retry=RetryPolicy(sleep=lambda s: None),
            now=now_of(clock),
        )
        conn.apply_grant(conn.refresh_tokens())
        yield conn, transport, shop_id


def wx_order(world: World, shop_id: str, *quantities: int):
    skus = world.skus(shop_id)
    items = [OrderItemSpec(skus[i].sku_id, q) for i, q in enumerate(quantities)]
    return world.create_order(shop_id=shop_id, buyer_id=1, items=items, pay=True)


def test_wechat_assigns_by_line_and_quantity_and_refuses_more_than_is_left(wx, world: World) -> None:
    conn, transport, shop_id = wx
    dropship.bind_supplier(world, shop_id, SUPPLIER, "杭州茶厂")
    order = wx_order(world, shop_id, 3, 1)
    a, b = order.lines
    first = conn.assign_dropship(
        platform_order_id=order.order_id, supplier_id=SUPPLIER, lines=[(a.product_id, a.sku_id, 2)]
    )
    assert first.state == DropshipState.ASSIGNED and first.native_id and first.supplier_id == SUPPLIER
    assert [(x.platform_sku_id, x.quantity) for x in first.lines] == [(a.sku_id, 2)]
    deadline = world.get_order(order.order_id).promise_ship_time
    assert all(x.delivery_deadline in (None, datetime.fromtimestamp(deadline, UTC)) for x in first.lines)
    # the rest of line a and line b to the same supplier: a second, distinct assignment
    second = conn.assign_dropship(
        platform_order_id=order.order_id,
        supplier_id=SUPPLIER,
        lines=[(a.product_id, a.sku_id, 1), (b.product_id, b.sku_id, 1)],
    )
    assert second.native_id != first.native_id
    with pytest.raises(PlatformRejected) as refused:  # nothing left on line a
        conn.assign_dropship(
            platform_order_id=order.order_id,
            supplier_id=SUPPLIER,
            lines=[(a.product_id, a.sku_id, 1)],
            known_ids=(first.native_id, second.native_id),
        )
    assert refused.value.code == "10021202"
    assert {x.native_id for x in conn.list_dropships(platform_order_id=order.order_id)} == {
        first.native_id,
        second.native_id,
    }
    with pytest.raises(PlatformRejected) as unbound:
        conn.assign_dropship(platform_order_id=wx_order(world, shop_id, 1).order_id, supplier_id="wx-nobody",
                             lines=[(a.product_id, a.sku_id, 1)])  # fmt: skip
    assert unbound.value.code == "10021201"


def test_wechat_lost_reply_never_assigns_twice(wx, world: World) -> None:
    conn, transport, shop_id = wx
    dropship.bind_supplier(world, shop_id, SUPPLIER)
    order = wx_order(world, shop_id, 2)
    line = order.lines[0]
    lines = [(line.product_id, line.sku_id, 2)]
    transport.lose.add("/channels/ec/order/dropship/assign")
    got = conn.assign_dropship(platform_order_id=order.order_id, supplier_id=SUPPLIER, lines=lines)
    again = conn.assign_dropship(
        platform_order_id=order.order_id, supplier_id=SUPPLIER, lines=lines
    )  # a retried task
    assert got.native_id == again.native_id
    assert transport.count("/channels/ec/order/dropship/assign") == 1
    assert len(dropship.of_order(world, order.order_id)) == 1


def test_wechat_cancel_then_the_supplier_ships_with_the_order_code_only(
    wx, world: World, clock: FakeClock
) -> None:
    conn, transport, shop_id = wx
    dropship.bind_supplier(world, shop_id, SUPPLIER)
    order = wx_order(world, shop_id, 1, 2)
    a, b = order.lines
    one = conn.assign_dropship(
        platform_order_id=order.order_id, supplier_id=SUPPLIER, lines=[(a.product_id, a.sku_id, 1)]
    )
    assert (
        conn.cancel_dropship(platform_order_id=order.order_id, native_id=one.native_id).state
        == DropshipState.CANCELLED
    )
    assert (
        conn.cancel_dropship(platform_order_id=order.order_id, native_id=one.native_id).state
        == DropshipState.CANCELLED
    )
    # cancelled quantities can be assigned again
    two = conn.assign_dropship(
        platform_order_id=order.order_id,
        supplier_id=SUPPLIER,
        lines=[(a.product_id, a.sku_id, 1), (b.product_id, b.sku_id, 2)],
        known_ids=(one.native_id,),
    )
    view = dropship.supplier_view(world, dropship.get(world, two.native_id))
    receiver = world.get_order(order.order_id).receiver
    assert receiver.phone not in json.dumps(view, ensure_ascii=False) and "*" in view["receiver"]["mobile"]
    assert view["ewaybill_order_code"].startswith("EWO")
    clock.advance(world.timer("dropship_ship"))
    assert dropship.run_due(world) == 1
    shipped = conn.get_dropship(platform_order_id=order.order_id, native_id=two.native_id)
    assert shipped.state == DropshipState.SHIPPED
    [parcel] = shipped.parcels
    assert sorted(q for _, _, q in parcel.lines) == [1, 2] and parcel.tracking_no
    platform_order = conn.get_order(order.order_id)
    assert platform_order.status.value == "shipped"
    assert [p.tracking_no for p in platform_order.packages] == [parcel.tracking_no]
    with pytest.raises(PlatformRejected):
        conn.cancel_dropship(platform_order_id=order.order_id, native_id=two.native_id)


def test_wechat_assign_and_cancel_are_pushed_as_ext_info_update_14_15(world: World) -> None:
    shop_id = world.shops("wechat")[0].shop_id
    app = create_self_use_app(world, shop_id, webhook_url="http://erp.invalid/hook")
    dropship.bind_supplier(world, shop_id, SUPPLIER)
    order = wx_order(world, shop_id, 1)
    ds = dropship.assign(world, shop_id=shop_id, order_id=order.order_id, supplier=SUPPLIER,
                         items=[(order.lines[0].line_id, 1)])  # fmt: skip
    dropship.cancel(world, ds.ds_id)
    events = [
        e
        for e in world.events_after(0)
        if e.kind in (EventKind.DROPSHIP_ASSIGNED, EventKind.DROPSHIP_CANCELLED)
    ]
    codec, decoder = SandboxWechatCodec(), WechatPushCodec()
    creds = AppCredentials(
        app_key=app.app_key, app_secret=app.app_secret, token=app.push_token, aes_key=app.encoding_aes_key
    )
    decoded = []
    for i, event in enumerate(events):
        push = codec.encode(world, app, OutboxMessage(id=i + 1, platform="wechat", app_key=app.app_key, shop_id=shop_id,
                                                      msg_id=str(i), attempts=0, created_at=0.0, duplicate_of=0, event=event))  # fmt: skip
        query = dict(httpx.URL(push.url).params)
        [message] = decoder.decode(headers={}, query=query, body=push.body, credentials=creds)
        decoded.append((message.kind, message.object_id, str(message.payload["order_info"]["type"])))
    assert decoded == [("dropship", order.order_id, "14"), ("dropship", order.order_id, "15")]


def test_douyin_has_no_dropship_api() -> None:
    conn = DouyinConnector(
        credentials=AppCredentials(app_key="k", app_secret="s"), base_url="http://dy.invalid"
    )
    with pytest.raises(NotSupported):
        conn.assign_dropship(platform_order_id="1", supplier_id="x", lines=[("p", "s", 1)])
    with pytest.raises(NotSupported):
        conn.list_dropships(platform_order_id="1")


# --------------------------------------------------------------------------- Kuaishou


@pytest.fixture
def ks(world: World, clock: FakeClock) -> Iterator[dict[str, Any]]:
    app = next(a for a in world.apps("kuaishou") if a.app_type == "tool")
    merchant, factory = (s.shop_id for s in world.shops("kuaishou")[:2])
    transport = LosingTransport(KuaishouApp(world))
    creds = AppCredentials(app_key=app.app_key, app_secret=app.app_secret, sign_secret=app.sign_secret)
    with httpx.Client(transport=transport, base_url="http://ks.sandbox") as http:

        def connector(shop_id: str) -> KuaishouConnector:
            world.authorize(app.app_key, shop_id)
            session = ShopSession(platform_shop_id=shop_id, access_token=ensure_token(world, app, shop_id))
            return KuaishouConnector(credentials=creds, base_url="http://ks.sandbox", session=session, http=http,
                                     retry=RetryPolicy(sleep=lambda s: None), now=now_of(clock))  # fmt: skip

        yield {"merchant": connector(merchant), "factory": connector(factory), "transport": transport,
               "shop": merchant, "factory_code": factory}  # fmt: skip


def ks_oid(world: World, shop_id: str, qty: int = 2) -> str:
    sku = world.skus(shop_id)[0]
    order = world.create_order(shop_id=shop_id, buyer_id=2, items=[OrderItemSpec(sku.sku_id, qty)], pay=True)
    return order.lines[0].line_id


def test_kuaishou_allocates_whole_orders_once_and_cancels(ks, world: World) -> None:
    merchant, transport, factory = ks["merchant"], ks["transport"], ks["factory_code"]
    oid = ks_oid(world, ks["shop"], 2)
    co = merchant.get_order(oid)
    line = co.lines[0]
    with pytest.raises(PlatformRejected):  # not related to the factory yet
        merchant.assign_dropship(platform_order_id=oid, supplier_id=factory,
                                 lines=[(line.platform_product_id, line.platform_sku_id, 2)])  # fmt: skip
    merchant.bind_dropship_supplier(supplier_id=factory, request_id="rel-1")
    with pytest.raises(PlatformRejected) as partial:
        merchant.assign_dropship(platform_order_id=oid, supplier_id=factory,
                                 lines=[(line.platform_product_id, line.platform_sku_id, 1)])  # fmt: skip
    assert partial.value.code == "local"
    path = "/open/dropshipping/order/batch/allocate"
    before = transport.count(path)  # the refused attempt above
    transport.lose.add(path)
    lines = [(line.platform_product_id, line.platform_sku_id, 2)]
    got = merchant.assign_dropship(platform_order_id=oid, supplier_id=factory, lines=lines)
    again = merchant.assign_dropship(platform_order_id=oid, supplier_id=factory, lines=lines)
    assert got.native_id == again.native_id and got.state == DropshipState.ASSIGNED
    assert (
        transport.count(path) == before + 1
        and len(dropship.of_order(world, world.order_id_of_line(oid))) == 1
    )
    assert got.lines[0].delivery_deadline is not None
    with pytest.raises(PlatformRejected) as own:  # the factory's to ship now, not the merchant's
        merchant.ship(platform_order_id=oid, parcels=[ShipmentParcel(carrier_code="9", tracking_no="75300000000001")],
                      request_id="own-1")  # fmt: skip
    assert "厂家" in str(own.value)
    assert (
        merchant.cancel_dropship(platform_order_id=oid, native_id=got.native_id).state
        == DropshipState.CANCELLED
    )


def test_kuaishou_factory_takes_waybills_ten_a_call_and_delivers(ks, world: World) -> None:
    merchant, factory, transport = ks["merchant"], ks["factory"], ks["transport"]
    merchant.bind_dropship_supplier(supplier_id=ks["factory_code"], request_id="rel-2")
    allocations = []
    for _ in range(12):
        oid = ks_oid(world, ks["shop"], 1)
        line = merchant.get_order(oid).lines[0]
        allocations.append((oid, merchant.assign_dropship(platform_order_id=oid, supplier_id=ks["factory_code"],
                                                          lines=[(line.platform_product_id, line.platform_sku_id, 1)])))  # fmt: skip
    requests = [{"allocateOrderCode": a.native_id, "expressCompanyCode": "ZTO", "requestId": f"r{i}-{piece}"}
                for i, (_, a) in enumerate(allocations) for piece in (1, 2)]  # fmt: skip
    answers = factory.dropship_take_waybills(requests)
    assert transport.count("/open/dropshipping/ebill/batch/get") == 3  # 24 requests: 10 + 10 + 4
    assert len(answers) == 24 and all(a["baseResponse"]["success"] for a in answers)
    assert (
        factory.dropship_take_waybills(requests[:1])[0]["data"][0]["waybillCode"]
        == answers[0]["data"][0]["waybillCode"]
    )
    with pytest.raises(PlatformRejected):  # the platform itself refuses more than ten
        factory._api("open.dropshipping.ebill.batch.get", {"dsOrderGetReq": requests[:11]}, write=True)
    oid, allocation = allocations[0]
    number = answers[0]["data"][0]["waybillCode"]
    factory.dropship_deliver(
        allocate_order_code=allocation.native_id, express_company_code="ZTO", waybill_code=number
    )
    factory.dropship_deliver(
        allocate_order_code=allocation.native_id, express_company_code="ZTO", waybill_code=number
    )
    state = merchant.get_dropship(platform_order_id=oid, native_id=allocation.native_id)
    assert state.state == DropshipState.SHIPPED and [p.tracking_no for p in state.parcels] == [number]
    shipped = merchant.get_order(oid)
    assert shipped.status.value == "shipped" and [p.tracking_no for p in shipped.packages] == [number]
    with pytest.raises(PlatformRejected):  # someone else's allocation
        merchant.dropship_deliver(allocate_order_code=allocations[1][1].native_id, express_company_code="ZTO",
                                  waybill_code=number)  # fmt: skip

"""Carrier traces in the sandbox world (traces.py): parcels move along on the sandbox clock,
deterministically per seed, some meet trouble; WeChat pushes each change as the logistics
helper's ``add_express_path`` event. No database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import traces, wechat
from sandbox.clock import FakeClock
from sandbox.pushes import PushDispatcher, outbox_rows
from sandbox.seed import seed_default_world
from sandbox.world import OrderItemSpec, ShipmentSpec, World
from tests.sandbox.test_wechat_pushes import WechatReceiver, open_push

HOUR = 3600


@pytest.fixture
def wx_world(tmp_path: Path, clock: FakeClock) -> Iterator[World]:
    w = World(tmp_path / "traces.sqlite3", seed=31, clock=clock)
    seed_default_world(w, platforms=("wechat",), buyers=20)
    yield w
    w.close()


def ship(world: World, shop_id: str, carrier: str = "ZTO") -> str:
    sku = world.skus(shop_id)[0]
    order = world.create_order(shop_id=shop_id, buyer_id=3, items=[OrderItemSpec(sku.sku_id)], pay=True)
    tracking_no = world.new_tracking_no(carrier)
    world.ship_order(order.order_id, [ShipmentSpec(carrier, tracking_no)])
    return tracking_no


def test_a_parcel_moves_along_on_the_clock_and_the_same_seed_gives_the_same_journey(
    wx_world: World, clock: FakeClock, tmp_path: Path
) -> None:
    wx_world.set_setting(traces.EXCEPTION_RATE_SETTING, 0.0)
    shop_id = wx_world.shops("wechat")[0].shop_id
    tracking_no = ship(wx_world, shop_id)
    trace = traces.get(wx_world, tracking_no)
    assert trace is not None and trace.nodes(wx_world) == []
    seen = []
    for _ in range(60):
        clock.advance(HOUR)
        seen.append([n.status for n in traces.get(wx_world, tracking_no).nodes(wx_world)])
    assert seen[0] == [] and seen[-1][-1] == traces.DELIVERED
    assert seen[-1] == ["collected", "in_transit", "in_transit", "in_transit", "delivering", "delivered"]
    assert all(earlier == later[: len(earlier)] for earlier, later in zip(seen, seen[1:], strict=False))
    times = [n.time for n in traces.get(wx_world, tracking_no).nodes(wx_world)]
    assert times == sorted(set(times)) and times[0] > trace.start
    assert traces.get(wx_world, tracking_no).journey(wx_world) == trace.journey(wx_world)  # fixed node times


def test_some_parcels_meet_trouble_and_some_go_back(wx_world: World) -> None:
    journeys = [
        [
            n.status
            for n in traces.plan(
                seed=wx_world.seed,
                tracking_no=wx_world.new_tracking_no("YTO"),
                carrier_name="圆通速递",
                start=1_735_700_000,
                dest_province="四川省",
                dest_city="成都市",
                compression=1.0,
                exception_rate=traces.DEFAULT_EXCEPTION_RATE,
            )  # fmt: skip
        ]
        for _ in range(400)
    ]
    returned = [j for j in journeys if j[-1] == traces.RETURNED]
    late = [j for j in journeys if j[-1] == traces.DELIVERED and traces.EXCEPTION in j]
    assert 10 <= len(late) + len(returned) <= 50  # ~7 %
    assert returned and late
    assert all(traces.DELIVERED not in j for j in returned)


def test_fast_forward_and_incidents_never_change_a_node_already_seen(wx_world: World) -> None:
    wx_world.set_setting(traces.EXCEPTION_RATE_SETTING, 0.0)
    shop_id = wx_world.shops("wechat")[0].shop_id
    tracking_no = ship(wx_world, shop_id)
    traces.fast_forward(wx_world, 12 * HOUR, [tracking_no])
    before = traces.get(wx_world, tracking_no).nodes(wx_world)
    assert before and before[-1].status == traces.IN_TRANSIT
    traces.incident(wx_world, tracking_no, returned=True)
    after = traces.get(wx_world, tracking_no).nodes(wx_world)
    assert after[: len(before)] == before
    assert [n.status for n in after[len(before) :]] == [traces.EXCEPTION, traces.RETURNED]
    traces.fast_forward(wx_world, 100 * HOUR, [tracking_no])
    assert traces.get(wx_world, tracking_no).nodes(wx_world)[-1].status == traces.RETURNED


def test_wechat_pushes_each_trace_change_as_add_express_path(wx_world: World, clock: FakeClock) -> None:
    wx_world.set_setting(traces.EXCEPTION_RATE_SETTING, 0.0)
    shop_id = wx_world.shops("wechat")[0].shop_id
    app = wechat.create_self_use_app(wx_world, shop_id)
    receiver = WechatReceiver(app.push_token, clock)
    dispatcher = PushDispatcher(wx_world, time_compression=1.0)
    try:
        app = wx_world.update_app(app.app_key, webhook_url=receiver.url)
        tracking_no = ship(wx_world, shop_id)
        for _ in range(60):
            clock.advance(HOUR)
            dispatcher.deliver_due()
        messages = [open_push(app, p) for p in receiver.posts]
        paths = [m for m in messages if m["Event"] == "add_express_path"]
        assert paths, [m["Event"] for m in messages]
        assert all(m["WayBillId"] == tracking_no and m["DeliveryID"] == "ZTO" for m in paths)
        assert [m["Count"] for m in paths] == sorted({m["Count"] for m in paths})  # one push per change
        last = paths[-1]
        assert last["Count"] == 6 and [a["ActionType"] for a in last["Actions"]] == [
            100001,
            200001,
            200001,
            200001,
            300002,
            300003,
        ]
        assert {str(m["OrderId"]) for m in paths} == {traces.get(wx_world, tracking_no).order_id}
        pushed = len(paths)
        clock.advance(24 * HOUR)
        dispatcher.deliver_due()
        assert (
            sum(1 for r in outbox_rows(wx_world, platform="wechat") if r["kind"] == "logistics_updated")
            == pushed
        )
    finally:
        dispatcher.stop()
        receiver.close()

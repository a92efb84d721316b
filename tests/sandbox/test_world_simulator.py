"""The neutral world and the buyer simulator: determinism, variety, persistence, reset."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from sandbox.clock import FakeClock
from sandbox.model import AfterSaleType, EventKind, OrderStatus
from sandbox.seed import seed_default_world
from sandbox.simulator import BuyerSimulator, SimConfig
from sandbox.world import World

DAY = 86400


def _world(path: Path, seed: int = 11) -> World:
    world = World(path, seed=seed, clock=FakeClock(start=1_735_700_000))
    seed_default_world(world, platforms=("douyin",), buyers=40)
    return world


def _fingerprint(world: World) -> list[tuple]:
    return [(o.order_id, o.status, o.update_time, tuple(ln.code for ln in o.lines)) for o in world.orders()]


def test_same_seed_same_world(tmp_path: Path) -> None:
    runs = []
    for name in ("a", "b"):
        world = _world(tmp_path / f"{name}.sqlite3")
        BuyerSimulator(world, seed=4, config=SimConfig(orders_per_minute=1, merchant_bot=True)).run_for(
            2 * 3600
        )
        runs.append((_fingerprint(world), [e.kind for e in world.events_after(0, 100000)]))
        world.close()
    assert runs[0] == runs[1] and len(runs[0][0]) > 100
    other = _world(tmp_path / "c.sqlite3", seed=12)
    BuyerSimulator(other, seed=4, config=SimConfig(orders_per_minute=1, merchant_bot=True)).run_for(2 * 3600)
    assert _fingerprint(other) != runs[0][0]


def test_step_performs_n_events_and_moves_the_clock(tmp_path: Path) -> None:
    world = _world(tmp_path / "w.sqlite3")
    sim = BuyerSimulator(world, seed=1, config=SimConfig(orders_per_minute=2))
    before, events = world.clock.now(), world.last_event_id()
    assert sim.step(5) == 5
    assert world.clock.now() > before and world.last_event_id() > events
    with pytest.raises(TypeError):
        BuyerSimulator(World(tmp_path / "real.sqlite3"), seed=1).run_for(10)


def test_simulated_days_have_realistic_variety(tmp_path: Path) -> None:
    world = _world(tmp_path / "w.sqlite3")
    shop_id = world.shops("douyin")[0].shop_id
    config = SimConfig(orders_per_minute=0.045, merchant_bot=True, p_address_change=0.15, p_refund_before_ship=0.12,
                       p_aftersale_after_ship=0.3, p_cancel_unpaid=0.06, p_never_pay=0.08)  # fmt: skip
    BuyerSimulator(world, seed=8, config=config, shops=[shop_id]).run_for(12 * DAY)
    orders = world.orders(shop_id)
    statuses = Counter(o.status for o in orders)
    assert len(orders) > 550
    assert statuses[OrderStatus.COMPLETED] > 80 and statuses[OrderStatus.CANCELLED] > 25
    assert Counter(o.cancel_kind for o in orders if o.status == OrderStatus.CANCELLED).keys() >= {
        "unpaid_timeout",
        "buyer",
        "refund",
    }
    assert sum(len(o.lines) > 1 for o in orders) > 40
    assert any(ln.is_gift for o in orders for ln in o.lines)
    assert sum(bool(o.buyer_words) for o in orders) > 40 and sum(o.address_changes > 0 for o in orders) > 15
    assert sum(o.post_fen > 0 for o in orders) > 25 and any(o.stock_reduce == "pay" for o in orders)
    aftersales = world.query_aftersales(shop_id, limit=10**6)[1]
    # reissues (补寄) are not simulated: tests drive them through World.apply_aftersale(kind="reship")
    assert Counter(a.type for a in aftersales).keys() == set(AfterSaleType) - {AfterSaleType.RESHIP}
    partial = [
        o for o in orders if any(ln.refunded_qty for ln in o.lines) and o.status != OrderStatus.CANCELLED
    ]
    assert partial, "some orders were refunded in part and still delivered"
    assert any(a.status == "exchange_success" for a in aftersales)
    settled = world.settlements(shop_id, start=0, end=2**31, limit=10**6)
    assert len(settled) >= statuses[OrderStatus.COMPLETED]
    # Every change bumped update_time: each event's snapshot carries the event's own time.
    for event in world.events_after(0, 10**6):
        if "order" in event.data and event.kind != EventKind.PRODUCT_CHANGED:
            assert event.data["order"]["update_time"] == event.time


def test_world_persists_and_resets(tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite3"
    world = _world(path)
    sim = BuyerSimulator(world, seed=2, config=SimConfig(orders_per_minute=1))
    sim.run_for(1800)
    counts, agenda, clock = world.counts(), world.agenda_size(), world.clock
    assert agenda > 0
    world.close()
    reopened = World(path, clock=clock)
    assert reopened.counts() == counts and reopened.agenda_size() == agenda and reopened.seed == 11
    BuyerSimulator(reopened, seed=3, config=SimConfig(orders_per_minute=0)).run_for(
        3600
    )  # carries on with the stored agenda
    assert reopened.agenda_size() < agenda or reopened.counts()["events"] > counts["events"]
    reopened.reset()
    assert reopened.is_empty() and reopened.counts()["orders"] == 0 and reopened.agenda_size() == 0
    reopened.close()


def test_real_time_tick(tmp_path: Path) -> None:
    world = World(tmp_path / "rt.sqlite3", seed=1, time_compression=1000)
    seed_default_world(world, platforms=("douyin",), buyers=10)
    sim = BuyerSimulator(world, seed=1, config=SimConfig(orders_per_minute=0))
    order = sim.place_random_order(world.shops("douyin")[0].shop_id)
    assert order is not None and order.status == OrderStatus.UNPAID
    # Pay delay is 3–60 s nominal → at most 60 ms at 1000×; wait on the condition, not a fixed time.
    sim.start(interval=0.01)
    try:
        import time

        deadline = time.monotonic() + 5
        while world.get_order(order.order_id).status == OrderStatus.UNPAID and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        sim.stop()
    assert world.get_order(order.order_id).status in (OrderStatus.PAID, OrderStatus.CANCELLED)

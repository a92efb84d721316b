"""Write-backs against the sandbox over real HTTP: parcels get real waybill numbers from the
shops' e-waybill services, ship, and the outbox tells each platform — whole orders, multi-parcel
orders, a merged parcel (every order in it), a split order (each part) — exactly once, counted
in the sandbox's own log of accepted shipping changes (``World.ship_actions``); with the
sandbox failing half the ship calls, lost replies included, every write-back still lands once.
"""

from __future__ import annotations

from collections import Counter

import pytest

from channels import services as channel_services
from channels.connectors.base import RetryPolicy
from logistics import services as parcel_services
from logistics import waybills, writeback
from logistics.models import Parcel, WriteBack
from logistics.shipping import ship_parcels
from orders import services as order_services
from orders.models import Fulfilment, OrderStatus
from tests.logistics.waybill_world import (
    PLATFORMS,
    Shops,
    connect_shops,
    fulfilment_of,
    parcels_of,
    start_sandbox,
    world_order_id,
)

W = WriteBack.Status
SHIP_PATHS = {
    "douyin": ("/order/logisticsAdd", "/order/logisticsAddMultiPack"),
    "kuaishou": (
        "/open/seller/order/goods/deliver",
        "/open/order/goods/split/deliver",
        "/open/seller/order/goods/logistics/append",
    ),
    "wechat": ("/channels/ec/order/delivery/send",),
}
CLIENT_TIMEOUT = 0.5


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = start_sandbox(tmp_path_factory.mktemp("writeback") / "world.sqlite3", seed=2613)
    yield server
    server.stop()
    server.world.close()


@pytest.fixture
def shops(server, in_alpha, settings) -> Shops:
    settings.WRITEBACK_RETRY_BASE_SECONDS = 0
    for platform in PLATFORMS:
        server.faults.clear(platform)
        server.faults.set(platform, "*", qps=0)
    return connect_shops(server)


def connect(store):
    """Connectors with a short client timeout (the sandbox's lost replies sleep past it) and
    short retry pauses."""
    return channel_services.connector_for(
        store, timeout=CLIENT_TIMEOUT, retry=RetryPolicy(base_delay=0.01, rate_limit_attempts=1)
    )


def numbered(parcels: list[Parcel]) -> list[Parcel]:
    for parcel in parcels:
        waybills.take_for_parcel(parcel, connect=connect)
        parcel.refresh_from_db()
        assert parcel.status == Parcel.Status.NUMBERED and parcel.tracking_no
    return parcels


def actions(shops: Shops, order) -> Counter:
    """{tracking number: shipping changes the platform accepted with it} for an ecbao order."""
    return Counter(
        a.package.tracking_no for a in shops.world.ship_actions(order_id=world_order_id(shops, order))
    )


def platform_numbers(shops: Shops, order) -> set[str]:
    oid = world_order_id(shops, order)
    return set(shops.world.tracking_numbers(order_id=oid).get(oid, []))


def drain(rounds: int = 30) -> None:
    """Send until every write-back is accepted (retry pauses are 0 s in these tests)."""
    for _ in range(rounds):
        writeback.send_due(limit=500, connect=connect)
        if not WriteBack.objects.exclude(status=W.ACCEPTED).exists():
            return


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_whole_order_is_written_back_once_and_the_platform_view_kept(shops, platform):
    order = shops.order(platform, 2)
    [parcel] = numbered(parcels_of(order))
    result = ship_parcels([parcel.pk])
    assert result.ok and len(result.write_backs) == 1
    wb = WriteBack.objects.get()
    assert wb.lines == [] and wb.status == W.PENDING

    assert writeback.send_due(connect=connect) == 1
    wb.refresh_from_db()
    assert wb.status == W.ACCEPTED and wb.accepted_at and wb.attempts == 1
    assert platform_numbers(shops, order) == {parcel.tracking_no}
    assert actions(shops, order) == {parcel.tracking_no: 1}
    # the platform's view, kept beside ecbao's
    assert [p["tracking_no"] for p in wb.platform_packages] == [parcel.tracking_no] and wb.platform_checked_at
    # nothing due: nothing sent again
    assert writeback.send_due(connect=connect) == 0
    assert writeback.send(wb, connect=connect) == W.ACCEPTED
    assert actions(shops, order) == {parcel.tracking_no: 1}


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_multi_parcel_order_writes_back_each_parcel_with_its_lines(shops, platform):
    # Kuaishou: one order is one line, so its parcels split the quantity
    order = shops.order(platform, 3) if platform == "kuaishou" else shops.order(platform, 2, 1)
    lines = list(order.lines.order_by("id"))
    f = fulfilment_of(order)
    if platform == "kuaishou":
        plan = [{lines[0].pk: 2}, {lines[0].pk: 1}]
    else:
        plan = [{lines[0].pk: 2}, {lines[1].pk: 1}]
    parcels = numbered(parcel_services.plan_parcels(fulfilment=f, parcels=plan))
    assert ship_parcels([p.pk for p in parcels]).ok
    order.refresh_from_db()
    assert order.status == OrderStatus.SHIPPED
    assert all(wb.lines for wb in WriteBack.objects.all())
    drain()
    assert set(WriteBack.objects.values_list("status", flat=True)) == {W.ACCEPTED}
    assert platform_numbers(shops, order) == {p.tracking_no for p in parcels}
    assert actions(shops, order) == {p.tracking_no: 1 for p in parcels}


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_merged_parcel_is_written_back_to_every_order_in_it(shops, platform):
    a, b = same_receiver(shops, platform)
    merged = fulfilment_of(a)  # auto-merged: one buyer, one address
    if fulfilment_of(b).pk != merged.pk:
        merged = order_services.merge(orders=[a, b], actor=None)
    parcel_services.ensure_parcels(fulfilments=[merged])
    [parcel] = numbered(list(merged.parcels.exclude(status=Parcel.Status.CANCELLED)))
    assert ship_parcels([parcel.pk]).ok
    assert WriteBack.objects.count() == 2
    drain()
    assert set(WriteBack.objects.values_list("status", flat=True)) == {W.ACCEPTED}
    for order in (a, b):
        assert platform_numbers(shops, order) == {parcel.tracking_no}
        assert actions(shops, order) == {parcel.tracking_no: 1}


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_split_order_is_written_back_per_part(shops, platform):
    order = shops.order(platform, 3)
    line = order.lines.get()
    part = order_services.split(order=order, parts={line.pk: 1}, actor=None)
    [rest] = Fulfilment.objects.filter(lines__order_line__order=order, status="open").exclude(pk=part.pk)
    [first] = numbered(parcels_of_fulfilment(part))
    assert ship_parcels([first.pk]).ok
    drain()
    order.refresh_from_db()
    assert order.status == OrderStatus.PARTIALLY_SHIPPED
    assert platform_numbers(shops, order) == {first.tracking_no}
    [second] = numbered(parcels_of_fulfilment(rest))
    assert ship_parcels([second.pk]).ok
    drain()
    assert WriteBack.objects.get(parcel=first).lines == [[line.platform_line_id, 1]]
    assert WriteBack.objects.get(parcel=second).lines == [[line.platform_line_id, 2]]
    assert platform_numbers(shops, order) == {first.tracking_no, second.tracking_no}
    assert actions(shops, order) == {first.tracking_no: 1, second.tracking_no: 1}


def same_receiver(shops: Shops, platform: str):
    """Two orders of one buyer to one address (a world buyer may use several addresses)."""
    for buyer in range(41, 50):
        a = shops.order(platform, 1, buyer=buyer)
        b = shops.order(platform, 2, buyer=buyer, sku=1)
        if a.receiver_fingerprint == b.receiver_fingerprint:
            return a, b
    raise AssertionError("no buyer ordered twice to one address")


def parcels_of_fulfilment(f: Fulfilment) -> list[Parcel]:
    parcel_services.ensure_parcels(fulfilments=[f])
    return list(f.parcels.exclude(status=Parcel.Status.CANCELLED).order_by("seq"))


def test_with_half_the_ship_calls_failing_every_write_back_lands_exactly_once(shops):
    made = []
    for platform in PLATFORMS:
        for i in range(4):
            made.append(shops.order(platform, 1 + i % 2))
        # a multi-parcel order too
        order = shops.order(platform, 2)
        line = order.lines.get()
        parcel_services.plan_parcels(fulfilment=fulfilment_of(order), parcels=[{line.pk: 1}, {line.pk: 1}])
        made.append(order)
    parcels = numbered([p for order in made for p in parcels_of(order)])
    faults = {
        "error_rate": 0.1,
        "http_5xx_rate": 0.1,
        "lost_reply_5xx_rate": 0.15,
        "lost_reply_rate": 0.15,
        "timeout_seconds": 0.8,
        "qps": 0,
    }
    for platform, paths in SHIP_PATHS.items():
        for path in paths:
            shops.server.faults.set(platform, path, **faults)
    assert ship_parcels([p.pk for p in parcels]).ok
    for _ in range(6):  # a while under faults
        writeback.send_due(limit=500, connect=connect)
    lost = [
        c
        for platform, paths in SHIP_PATHS.items()
        for path in paths
        for c in shops.world.calls(platform=platform, path=path, ok=True)
        if c.fault
    ]
    for platform in PLATFORMS:
        shops.server.faults.clear(platform)
        shops.server.faults.set(platform, "*", qps=0)
    drain()
    assert set(WriteBack.objects.values_list("status", flat=True)) == {W.ACCEPTED}
    attempts = list(WriteBack.objects.values_list("attempts", flat=True))
    assert max(attempts) > 1  # the faults did bite
    assert lost  # some calls acted on the platform and their replies were lost
    for order in made:
        mine = set(
            Parcel.objects.filter(lines__order_line__order=order).values_list("tracking_no", flat=True)
        )
        assert platform_numbers(shops, order) == mine
        assert actions(shops, order) == {no: 1 for no in mine}, order.platform_order_id


def test_a_refused_write_back_gives_up_visibly_and_can_be_retried(shops, settings):
    order = shops.order("douyin", 1)
    [parcel] = numbered(parcels_of(order))
    ship_parcels([parcel.pk])
    for path in SHIP_PATHS["douyin"]:
        shops.server.faults.set("douyin", path, error_rate=1.0, qps=0)
    for _ in range(writeback.MAX_ATTEMPTS):
        writeback.send_due(connect=connect)
    wb = WriteBack.objects.get()
    assert wb.status == W.GIVEN_UP and wb.attempts == writeback.MAX_ATTEMPTS and wb.last_error
    assert writeback.send_due(connect=connect) == 0  # given up: not sent by the sweep
    shops.server.faults.clear("douyin")
    shops.server.faults.set("douyin", "*", qps=0)
    assert writeback.retry_write_backs([wb.pk]) == 1
    assert writeback.send_due(connect=connect) == 1
    wb.refresh_from_db()
    assert wb.status == W.ACCEPTED
    assert actions(shops, order) == {parcel.tracking_no: 1}


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_multi_piece_sf_shipment_writes_back_the_parent_and_child_numbers(shops, platform):
    from logistics.models import CarrierRule, Waybill

    CarrierRule.objects.create(name="顺丰", priority=1, carrier="sf")
    order = shops.order(platform, 2)
    line = order.lines.get()
    parcels = parcel_services.plan_parcels(
        fulfilment=fulfilment_of(order), parcels=[{line.pk: 1}, {line.pk: 1}]
    )
    waybills.take_for_parcel(parcels[0], connect=connect)
    for p in parcels:
        p.refresh_from_db()
    assert all(p.tracking_no for p in parcels)
    child = Waybill.objects.get(parcel=parcels[1])
    assert child.parent_id  # a child number (子母件) under parcel 1's
    assert ship_parcels([p.pk for p in parcels]).ok
    drain()
    assert set(WriteBack.objects.values_list("status", flat=True)) == {W.ACCEPTED}
    assert platform_numbers(shops, order) == {p.tracking_no for p in parcels}
    assert actions(shops, order) == {p.tracking_no: 1 for p in parcels}

"""orders ↔ routing: lines are reserved where the router sends them, a line no one can ship
holds the order (reason ``routing``), fulfilments open one per shipper, stale routes are redone
at approval — with a stand-in router (the suppliers app's engine is tested in tests/suppliers)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from inventory import services as stock
from inventory.models import Reservation, StockLevel, Warehouse
from orders import hooks, services
from orders.models import Fulfilment, LineStatus, Order, OrderStatus, ReviewRule
from tests.orders.conftest import channel_order, line

pytestmark = pytest.mark.django_db


class StandInRouter:
    """Routes by merchant code: ``table`` {code: warehouse id | None (hold)}; others → default."""

    def __init__(self, table: dict[str, int | None], version: int | None = 1):
        self.table, self.current = table, version
        self.hook = hooks.RouteHook(route=self.route, version=lambda: self.current)

    def route(self, pairs):
        from inventory.models import Sku

        codes = dict(Sku.objects.values_list("pk", "merchant_code"))
        result = {}
        for _, lines in pairs:
            for ln in lines:
                code = codes.get(ln.sku_id)
                if code in self.table:
                    wh = self.table[code]
                    result[ln.id] = hooks.LineRoute(
                        warehouse_id=wh,
                        note=f"v{self.current}: {code} → {wh}",
                        version=self.current,
                        rule_id=7,
                        hold="" if wh else f"无人可发 {code}",
                    )
        return result


@pytest.fixture
def supplier_wh(in_alpha, skus):
    wh = Warehouse.objects.create(name="杭州茶厂", code="SUP-T1", kind=Warehouse.Kind.SUPPLIER)
    for sku in skus.values():
        stock.receive_stock(sku=sku, quantity=50, warehouse=wh, reason="reported")
    return wh


@pytest.fixture
def router():
    made = []

    def make(table, version=1):
        r = StandInRouter(table, version)
        hooks.register_router(r.hook)
        made.append(r)
        return r

    yield make
    for r in made:
        hooks._routers.remove(r.hook)


def _reserved_in(line_id: int) -> int:
    return Reservation.objects.get(source_key=f"order-line:{line_id}").warehouse_id


@pytest.mark.parametrize("one_by_one", [True, False], ids=["one-by-one", "batch"])
def test_lines_reserve_where_routed_and_fulfilments_open_per_shipper(
    store, skus, supplier_wh, router, one_by_one
):
    router({"CAP-RED": supplier_wh.pk})
    co = channel_order(lines=(line(1, "TS-WHT-L", 2), line(2, "CAP-RED", 3)))
    if one_by_one:
        services.ingest_channel_order(store=store, co=co)
    else:
        services.ingest_batch(store=store, items=[(co, None)])
    order = Order.objects.get()
    assert order.status == OrderStatus.APPROVED
    own, dropship = order.lines.order_by("platform_line_id")
    default = stock.default_warehouse()
    assert (own.warehouse_id, dropship.warehouse_id) == (default.pk, supplier_wh.pk)
    assert dropship.route_note == f"v1: CAP-RED → {supplier_wh.pk}" and dropship.route_rule_id == 7
    assert _reserved_in(own.pk) == default.pk and _reserved_in(dropship.pk) == supplier_wh.pk
    assert StockLevel.objects.get(sku=skus["CAP-RED"], warehouse=supplier_wh).reserved == 3
    assert StockLevel.objects.get(sku=skus["CAP-RED"], warehouse=default).reserved == 0
    shippers = {
        f.warehouse_id: sorted(f.lines.values_list("order_line_id", flat=True))
        for f in Fulfilment.objects.filter(status=Fulfilment.Status.OPEN)
    }
    assert shippers == {default.pk: [own.pk], supplier_wh.pk: [dropship.pk]}


@pytest.mark.parametrize("one_by_one", [True, False], ids=["one-by-one", "batch"])
def test_a_line_no_one_can_ship_holds_the_order_until_routed(store, skus, supplier_wh, router, one_by_one):
    r = router({"CAP-RED": None})
    co = channel_order(lines=(line(1, "TS-WHT-L"), line(2, "CAP-RED")))
    if one_by_one:
        services.ingest_channel_order(store=store, co=co)
    else:
        services.ingest_batch(store=store, items=[(co, None)])
    order = Order.objects.get()
    assert order.status == OrderStatus.HELD and hooks.ROUTING_HOLD in order.hold_reasons
    stuck = order.lines.get(platform_line_id="L2")
    assert stuck.status == LineStatus.UNROUTED and stuck.route_note == "无人可发 CAP-RED"
    assert not Reservation.objects.filter(source_key=stuck.reservation_key).exists()
    assert not Fulfilment.objects.filter(status=Fulfilment.Status.OPEN).exists()
    with pytest.raises(ValidationError):
        services.approve(order=order, actor=None)
    # A supplier can take it now: releasing the hold routes the line again.
    r.table["CAP-RED"] = supplier_wh.pk
    services.release(order=order, actor=None)
    order.refresh_from_db()
    stuck.refresh_from_db()
    assert order.status == OrderStatus.APPROVED
    assert stuck.status == LineStatus.RESERVED and _reserved_in(stuck.pk) == supplier_wh.pk


def test_approval_reroutes_lines_routed_under_an_older_rule_set(store, skus, supplier_wh, router):
    services.set_rule(kind=ReviewRule.Kind.AUTO_APPROVE, enabled=False)
    r = router({}, version=1)
    services.ingest_channel_order(store=store, co=channel_order(lines=(line(1, "CAP-RED", 2),)))
    order = Order.objects.get()
    ln = order.lines.get()
    default = stock.default_warehouse()
    assert order.status == OrderStatus.TO_REVIEW and _reserved_in(ln.pk) == default.pk
    r.table["CAP-RED"], r.current = supplier_wh.pk, 2
    services.approve(order=order, actor=None)
    ln.refresh_from_db()
    assert ln.warehouse_id == supplier_wh.pk and ln.route_version == 2
    assert _reserved_in(ln.pk) == supplier_wh.pk
    assert StockLevel.objects.get(sku=skus["CAP-RED"], warehouse=default).reserved == 0
    assert Fulfilment.objects.get(status=Fulfilment.Status.OPEN).warehouse_id == supplier_wh.pk
    assert order.events.filter(kind="rerouted").count() == 1


def test_merging_refuses_orders_that_ship_from_different_places(store, skus, supplier_wh, router):
    services.set_rule(kind=ReviewRule.Kind.AUTO_MERGE, enabled=False)
    router({"CAP-RED": supplier_wh.pk})
    services.ingest_channel_order(store=store, co=channel_order("A1", lines=(line(1, "CAP-RED"),)))
    services.ingest_channel_order(store=store, co=channel_order("A2", lines=(line(1, "TS-WHT-L"),)))
    with pytest.raises(ValidationError, match="同一个仓库或供应商"):
        services.merge(orders=list(Order.objects.all()), actor=None)


def test_a_reroute_to_a_warehouse_short_of_stock_keeps_the_old_route(store, skus, supplier_wh, router):
    services.set_rule(kind=ReviewRule.Kind.AUTO_APPROVE, enabled=False)
    r = router({}, version=1)
    services.ingest_channel_order(store=store, co=channel_order(lines=(line(1, "CAP-RED", 3),)))
    order = Order.objects.get()
    ln = order.lines.get()
    default = stock.default_warehouse()
    stock.count_stock(sku=skus["CAP-RED"], counted=2, warehouse=supplier_wh)  # 2 there, 3 wanted
    r.table["CAP-RED"], r.current = supplier_wh.pk, 2
    services.approve(order=order, actor=None)
    ln.refresh_from_db()
    assert ln.warehouse_id == default.pk and _reserved_in(ln.pk) == default.pk
    assert Reservation.objects.get(source_key=ln.reservation_key).status == Reservation.Status.ACTIVE
    assert StockLevel.objects.get(sku=skus["CAP-RED"], warehouse=default).reserved == 3
    assert StockLevel.objects.get(sku=skus["CAP-RED"], warehouse=supplier_wh).reserved == 0
    assert not order.events.filter(kind="rerouted").exists()
    assert Fulfilment.objects.get(status=Fulfilment.Status.OPEN).warehouse_id == default.pk

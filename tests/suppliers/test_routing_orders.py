"""The router in orders (suppliers.router through orders.hooks): split orders over two
suppliers and the own warehouse, the exception queue, versioned rules that never move
dispatched lines, the dry run matching what activating then does, capacity, query count."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from inventory import services as stock
from inventory.models import Reservation
from orders import hooks
from orders import services as orders
from orders.models import Fulfilment, LineStatus, Order, OrderLine, OrderStatus, ReviewRule
from suppliers import router, rules
from suppliers import services as suppliers
from tests.orders.conftest import channel_order, line

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(store, skus):
    """Two suppliers: 杭州茶厂 supplies CAP-RED (stock 5), 义乌百货 supplies CAP-RED (priority
    after, stock 5) and TS-BLK-M (stock 3). The own warehouse holds TS-WHT-L 10, TS-BLK-M 1,
    CAP-RED 5 (tests.orders.conftest.skus)."""
    tea = suppliers.create_supplier(name="杭州茶厂", code="TEA")
    yiwu = suppliers.create_supplier(name="义乌百货", code="YIWU")
    suppliers.set_supplier_sku(supplier=tea, sku=skus["CAP-RED"], cost_fen=1200, priority=10)
    suppliers.set_supplier_sku(supplier=yiwu, sku=skus["CAP-RED"], cost_fen=900, priority=20)
    suppliers.set_supplier_sku(supplier=yiwu, sku=skus["TS-BLK-M"], cost_fen=3000)
    suppliers.report_stock(supplier=tea, sku=skus["CAP-RED"], on_hand=5)
    suppliers.report_stock(supplier=yiwu, sku=skus["CAP-RED"], on_hand=5)
    suppliers.report_stock(supplier=yiwu, sku=skus["TS-BLK-M"], on_hand=3)
    return {"tea": tea, "yiwu": yiwu, "own": stock.default_warehouse(), **skus}


def active(*rule_kw) -> int:
    """A new active rule set of just these rules."""
    draft = rules.create_draft()
    draft.rules.all().delete()
    for kw in rule_kw:
        rules.add_rule(rule_set=draft, **kw)
    return rules.activate(rule_set=draft).version


def reserved_in(ln) -> int:
    return Reservation.objects.get(source_key=ln.reservation_key, status="active").warehouse_id


@pytest.mark.parametrize("one_by_one", [True, False], ids=["one-by-one", "batch"])
def test_one_order_split_over_two_suppliers_and_the_own_warehouse(store, world, one_by_one):
    version = active({"name": "拆单", "action": "split", "conditions": {"platforms": ["douyin"]}})
    co = channel_order(lines=(line(1, "TS-WHT-L", 2), line(2, "CAP-RED", 3), line(3, "TS-BLK-M", 1)))
    if one_by_one:
        orders.ingest_channel_order(store=store, co=co)
    else:
        orders.ingest_batch(store=store, items=[(co, None)])
    order = Order.objects.get()
    assert order.status == OrderStatus.APPROVED
    own, cap, blk = order.lines.order_by("platform_line_id")
    assert (own.warehouse_id, cap.warehouse_id, blk.warehouse_id) == (
        world["own"].pk,
        world["tea"].warehouse_id,
        world["yiwu"].warehouse_id,
    )
    assert cap.route_note == "规则 10「拆单」：平台 抖音 → 按供应商拆单：供应商 杭州茶厂，成本 ¥12.00，库存 5"
    assert own.route_note.startswith("规则 10「拆单」：平台 抖音 → 按供应商拆单：无供应商 → 自有仓 ")
    assert {ln.route_version for ln in (own, cap, blk)} == {version}
    assert [reserved_in(x) for x in (own, cap, blk)] == [x.warehouse_id for x in (own, cap, blk)]
    shippers = {
        f.warehouse_id: list(f.lines.values_list("order_line_id", flat=True))
        for f in Fulfilment.objects.filter(status=Fulfilment.Status.OPEN)
    }
    assert shippers == {
        world["own"].pk: [own.pk],
        world["tea"].warehouse_id: [cap.pk],
        world["yiwu"].warehouse_id: [blk.pk],
    }


def test_a_line_no_one_can_take_waits_in_the_exception_queue_until_stock_is_reported(store, world):
    """No rule set at all: the implicit default still routes dropship SKUs, and holds what no
    one can take; reported stock + release (重新分流) routes it."""
    suppliers.report_stock(supplier=world["tea"], sku=world["CAP-RED"], on_hand=0)
    suppliers.report_stock(supplier=world["yiwu"], sku=world["CAP-RED"], on_hand=1)
    order = orders.ingest_channel_order(
        store=store, co=channel_order(lines=(line(1, "TS-WHT-L"), line(2, "CAP-RED", 6)))
    )
    assert hooks.route_version() is None
    assert order.status == OrderStatus.HELD and order.hold_reasons == [hooks.ROUTING_HOLD]
    stuck = order.lines.get(platform_line_id="L2")
    assert stuck.status == LineStatus.UNROUTED and stuck.warehouse_id is None
    assert stuck.route_note == (
        "无供应商可接单：杭州茶厂 库存 0 < 6；义乌百货 库存 1 < 6；自有仓 主仓 库存 5 < 6"
    )
    queue = rules.routing_exceptions()
    assert [o.pk for o in queue] == [order.pk]
    assert [ln.pk for ln in queue[0].unrouted] == [stuck.pk]
    suppliers.report_stock(supplier=world["yiwu"], sku=world["CAP-RED"], on_hand=8)
    orders.release(order=order, actor=None)
    order.refresh_from_db()
    stuck.refresh_from_db()
    assert order.status == OrderStatus.APPROVED and stuck.status == LineStatus.RESERVED
    assert stuck.warehouse_id == world["yiwu"].warehouse_id and reserved_in(stuck) == stuck.warehouse_id
    assert stuck.route_note == "未命中规则：自有仓缺货 → 供应商 义乌百货，成本 ¥9.00，库存 8"
    assert rules.routing_exceptions() == []


def test_a_new_rule_set_never_reroutes_a_dispatched_line(store, world):
    v1 = active({"name": "茶厂", "action": "supplier", "supplier": world["tea"], "conditions": {}})
    first = orders.ingest_channel_order(store=store, co=channel_order("A1", lines=(line(1, "CAP-RED"),)))
    dispatched = first.lines.get()
    assert dispatched.warehouse_id == world["tea"].warehouse_id and dispatched.route_version == v1
    fulfilment = Fulfilment.objects.get(status=Fulfilment.Status.OPEN)
    assert fulfilment.warehouse_id == world["tea"].warehouse_id
    v2 = active({"name": "义乌", "action": "supplier", "supplier": world["yiwu"], "conditions": {}})
    assert hooks.route_version() == v2 != v1
    second = orders.ingest_channel_order(store=store, co=channel_order("A2", lines=(line(1, "CAP-RED"),)))
    assert second.lines.get().warehouse_id == world["yiwu"].warehouse_id  # new lines: the new rules
    dispatched.refresh_from_db()
    fulfilment.refresh_from_db()
    assert dispatched.warehouse_id == world["tea"].warehouse_id and dispatched.route_version == v1
    assert (
        fulfilment.status == Fulfilment.Status.OPEN and fulfilment.warehouse_id == world["tea"].warehouse_id
    )
    assert reserved_in(dispatched) == world["tea"].warehouse_id
    # the dry run of a further draft lists it as fixed, not as a line that would move
    draft = rules.create_draft()
    assert dispatched.pk not in {x.line_id for x in rules.dry_run(rule_set=draft, days=30).lines}


def test_the_dry_run_matches_what_activating_then_approving_does(store, world):
    orders.set_rule(kind=ReviewRule.Kind.AUTO_APPROVE, enabled=False)
    cos = [
        channel_order("B1", lines=(line(1, "CAP-RED", 2), line(2, "TS-WHT-L"))),
        channel_order("B2", lines=(line(1, "TS-BLK-M"), line(2, "CAP-RED"))),
        channel_order("B3", lines=(line(1, "TS-WHT-L", 3),), buyer_remark="送人"),
    ]
    for co in cos:
        orders.ingest_channel_order(store=store, co=co)
    assert set(Order.objects.values_list("status", flat=True)) == {OrderStatus.TO_REVIEW, OrderStatus.HELD}
    draft = rules.create_draft()
    rules.add_rule(rule_set=draft, name="便宜", action="cheapest", conditions={"skus": [world["CAP-RED"].pk]})
    rules.add_rule(
        rule_set=draft,
        name="留言",
        action="supplier",
        supplier=world["yiwu"],
        conditions={"tags": ["buyer_remark"]},
    )
    rules.add_rule(rule_set=draft, name="拆单", action="split")
    preview = rules.dry_run(rule_set=draft, days=30)
    said = {x.line_id: (x.warehouse_id, x.note) for x in preview.lines}
    assert len(said) == 5 and preview.moving >= 2
    by_route = {(x.current_warehouse_id, x.warehouse_id) for x in preview.lines if x.moves}
    assert (world["own"].pk, world["yiwu"].warehouse_id) in by_route  # cheapest: 义乌 ¥9.00
    rules.activate(rule_set=draft)
    for order in Order.objects.order_by("paid_at", "id"):  # payment order, as the dry run assumes
        orders.approve(order=order, actor=None)
    landed = {ln.pk: (ln.warehouse_id, ln.route_note) for ln in OrderLine.objects.all()}
    assert landed == said
    assert all(reserved_in(ln) == said[ln.pk][0] for ln in OrderLine.objects.all())


def test_capacity_counts_todays_lines_at_the_supplier(store, world):
    yiwu = world["yiwu"]
    type(yiwu).objects.filter(pk=yiwu.pk).update(daily_capacity=1)
    active({"name": "义乌", "action": "supplier", "supplier": yiwu, "conditions": {}})
    from django.utils import timezone

    now = timezone.now()
    a = orders.ingest_channel_order(store=store, co=channel_order("C1", lines=(line(1, "CAP-RED"),), at=now))
    Order.objects.filter(pk=a.pk).update(paid_at=now)
    b = orders.ingest_channel_order(store=store, co=channel_order("C2", lines=(line(1, "CAP-RED"),), at=now))
    assert a.lines.get().warehouse_id == yiwu.warehouse_id
    ln = b.lines.get()
    assert ln.warehouse_id == world["own"].pk  # over capacity: the default, own stock
    assert "义乌百货 今日产能已满（1）" in ln.route_note


def test_routing_costs_a_fixed_number_of_queries(store, world):
    active(
        {"name": "茶", "action": "cheapest", "conditions": {"brands": ["西湖"]}},
        {"name": "拆单", "action": "split"},
    )
    type(world["yiwu"]).objects.filter(pk=world["yiwu"].pk).update(daily_capacity=100)

    def pairs(n):
        built = []
        for i in range(n):
            o = Order(
                store_id=store.pk,
                platform="douyin",
                province="浙江省",
                city="杭州市",
                paid_fen=100,
                placed_at=None,
            )
            o.paid_at = None
            from django.utils import timezone

            o.placed_at = timezone.now()
            lines = [
                type(
                    "L",
                    (),
                    {
                        "id": i * 3 + k,
                        "sku_id": s.pk,
                        "quantity": 1,
                        "paid_fen": 100,
                        "status": "pending",
                        "warehouse_id": None,
                    },
                )()
                for k, s in enumerate((world["CAP-RED"], world["TS-BLK-M"], world["TS-WHT-L"]))
            ]
            built.append((o, lines))
        return built

    router.route(pairs(1))  # compiles the active rules once (cached per version)
    with CaptureQueriesContext(connection) as few:
        router.route(pairs(2))
    with CaptureQueriesContext(connection) as many:
        routes = router.route(pairs(40))
    assert len(many) == len(few) <= 6
    assert len(routes) == 120

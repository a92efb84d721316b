"""Dispatches (代发单) follow supplier fulfilments: created once, amounts exact, cancellations
confirmed by the supplier, frozen once acknowledged, shipped from parcels."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from channels.types import OrderStatus as CS
from orders import hooks
from orders import services as orders
from orders.models import Fulfilment, OrderStatus
from suppliers import dispatches
from suppliers.models import Dispatch
from tests.orders.conftest import channel_order, later
from tests.suppliers.dispatch_rig import line, make_world

D = Dispatch.Status


@pytest.fixture
def world(store, skus):
    yield from make_world(store, skus)


def test_a_supplier_fulfilment_becomes_one_dispatch_and_a_repeat_changes_nothing(world):
    order = world.order("D1", line(1, "TEA-1", qty=2, price=3000), line(2, "TS-WHT-L", qty=1))
    assert order.status == OrderStatus.APPROVED
    dispatch = Dispatch.objects.get()
    assert dispatch.supplier == world.tea and dispatch.status == D.NEW
    assert dispatch.fulfilment.warehouse_id == world.tea.warehouse_id
    (row,) = dispatch.lines.all()
    assert (row.sku.merchant_code, row.supplier_code, row.quantity, row.unit_cost_fen, row.paid_fen) == (
        "TEA-1", "T1", 2, 1200, 6000,
    )  # fmt: skip
    assert (dispatch.goods_cost_fen, dispatch.freight_fen, dispatch.amount_fen) == (2400, 200, 6000)
    # The hook runs again (orders repeats it after any change): the same dispatch, untouched.
    before = Dispatch.objects.values().get()
    hooks.after({dispatch.fulfilment_id})
    dispatches.fulfilments_changed({dispatch.fulfilment_id})
    assert list(Dispatch.objects.values()) == [before] and dispatch.lines.count() == 1


def test_an_order_split_over_two_suppliers_and_the_own_warehouse_keeps_its_amount_exact(world):
    # 7 lines' worth of odd amounts, freight 1001 and an order-level discount of 337 fen that the
    # lines' paid amounts do not carry: the parts must still add up to the order's paid amount.
    order = world.order(
        "D2",
        line(1, "TEA-1", qty=3, price=3333),
        line(2, "TEA-2", qty=1, price=1999),
        line(3, "CUP-1", qty=2, price=4567),
        line(4, "TS-WHT-L", qty=1, price=9901),
        freight_fen=1001,
        discount_fen=337,
    )
    assert order.paid_fen == 3 * 3333 + 1999 + 2 * 4567 + 9901 + 1001 - 337
    fulfilments = list(Fulfilment.objects.filter(lines__order_line__order=order).distinct())
    assert len(fulfilments) == 3
    tea, cup = Dispatch.objects.get(supplier=world.tea), Dispatch.objects.get(supplier=world.cup)
    own = next(f for f in fulfilments if f.pk not in (tea.fulfilment_id, cup.fulfilment_id))
    amounts = dispatches.fulfilment_amounts(f.pk for f in fulfilments)
    assert amounts[tea.fulfilment_id] == tea.amount_fen and amounts[cup.fulfilment_id] == cup.amount_fen
    assert tea.amount_fen + cup.amount_fen + amounts[own.pk] == order.paid_fen
    # Each part carries its lines' payment and a share of the rest in proportion.
    assert sum(r.paid_fen for r in tea.lines.all()) == 3 * 3333 + 1999
    assert 3 * 3333 + 1999 < tea.amount_fen < 3 * 3333 + 1999 + 664
    # Supplier's money: cost × units, per-unit freight 3 × 100 plus the per-dispatch 600 once.
    assert (tea.goods_cost_fen, tea.freight_fen) == (3 * 1200 + 800, 300 + 600)
    assert (cup.goods_cost_fen, cup.freight_fen) == (2 * 2500, 0)
    # A split (by hand, before the supplier acknowledged) keeps every part exact.
    tea_line = tea.lines.get(sku__merchant_code="TEA-1").order_line
    new = orders.split(order=order, parts={tea_line.pk: 1}, actor=None)
    split_off = Dispatch.objects.get(fulfilment=new)
    tea.refresh_from_db()
    assert tea.lines.get(order_line=tea_line).quantity == 2 and split_off.lines.get().quantity == 1
    amounts = dispatches.fulfilment_amounts([*(f.pk for f in fulfilments), new.pk])
    assert sum(amounts.values()) == order.paid_fen
    assert (tea.amount_fen, split_off.amount_fen) == (amounts[tea.fulfilment_id], amounts[new.pk])


@pytest.mark.parametrize("allocation", [(10, [1, 1, 1]), (-7, [3, 0, 5]), (0, [0, 0]), (5, [0, 0])])
def test_largest_remainder_adds_up(allocation):
    total, weights = allocation
    assert sum(dispatches.allocate(total, weights)) == total


def test_cancelled_before_shipment_the_supplier_confirms_the_interception(world):
    order = world.order("D3", line(1, "CUP-1", qty=1, price=5000))
    dispatch = Dispatch.objects.get()
    orders.cancel(order=order, actor=None, reason="buyer changed mind")
    dispatch.refresh_from_db()
    assert dispatch.status == D.CANCELLING and dispatch.cancelled_at is not None
    assert "cancelled" in dispatch.cancel_reason or "取消" in dispatch.cancel_reason
    assert dispatch.fulfilment.status == Fulfilment.Status.CANCELLED and dispatch.lines.count() == 1
    assert dispatches.acknowledge(dispatches=[dispatch], actor=None) == 0  # not new any more
    other = world.order("D3b", line(1, "CUP-1", qty=1, price=5000)).lines.get().dispatch_lines.get().dispatch
    with pytest.raises(ValidationError, match=f"{other.pk} "):
        dispatches.confirm_cancel(dispatch=other, intercepted=True)  # nothing to confirm there
    done = dispatches.confirm_cancel(dispatch=dispatch, intercepted=True)
    assert (done.status, done.intercepted) == (D.CANCELLED, True) and done.cancel_confirmed_at
    assert (
        dispatches.confirm_cancel(dispatch=dispatch, intercepted=True).cancel_confirmed_at
        == done.cancel_confirmed_at
    )
    assert order.events.filter(kind="dispatch_cancel_confirmed").count() == 1


def test_an_acknowledged_dispatch_refuses_changes_by_hand_but_follows_the_platform(world):
    order = world.order("D4", line(1, "TEA-1", qty=2, price=3000), line(2, "TEA-2", qty=1, price=2000))
    dispatch = Dispatch.objects.get()
    assert dispatches.acknowledge(dispatches=[dispatch], actor=None) == 1
    assert dispatches.acknowledge(dispatches=[dispatch.pk], actor=None) == 0  # idempotent
    first = dispatch.lines.first().order_line
    with pytest.raises(ValidationError, match=str(dispatch.pk)):
        orders.split(order=order, parts={first.pk: 1}, actor=None)
    with pytest.raises(ValidationError, match=str(dispatch.pk)):
        orders.hold(order=order, actor=None, reason="check address")
    dispatch.refresh_from_db()
    assert dispatch.status == D.ACKNOWLEDGED and dispatch.lines.get(order_line=first).quantity == 2
    # The platform cancels: that cannot be refused; the supplier is asked to intercept.
    co = channel_order(
        oid="D4", lines=(line(1, "TEA-1", qty=2, price=3000), line(2, "TEA-2", qty=1, price=2000))
    )
    orders.ingest_channel_order(store=world.store, co=later(co, status=CS.CANCELLED, platform_status="4"))
    dispatch.refresh_from_db()
    assert dispatch.status == D.CANCELLING


def test_refresh_follows_the_supplier_parcels_partial_then_whole(world):
    from logistics import services as parcels
    from logistics.models import Parcel
    from logistics.shipping import ship_parcels

    order = world.order("D5", line(1, "TEA-1", qty=2, price=3000), line(2, "TEA-2", qty=1, price=2000))
    dispatch = Dispatch.objects.get()
    tea1, tea2 = (dispatch.lines.get(sku__merchant_code=c) for c in ("TEA-1", "TEA-2"))
    first, second = parcels.plan_parcels(
        fulfilment=dispatch.fulfilment_id,
        parcels=[{tea1.order_line_id: 1}, {tea1.order_line_id: 1, tea2.order_line_id: 1}],
    )
    dispatches.acknowledge(dispatches=[dispatch], actor=None)
    for n, parcel in enumerate((first, second)):
        Parcel.objects.filter(pk=parcel.pk).update(
            status=Parcel.Status.NUMBERED, tracking_no=f"SF{n}", carrier="sf"
        )

    assert ship_parcels([first.pk]).ok
    assert dispatches.refresh(dispatch).status == D.PARTIALLY_SHIPPED
    assert [r.shipped_quantity for r in dispatch.lines.order_by("id")] == [1, 0]  # one of two in parcel 1
    assert dispatches.refresh(dispatch.pk).status == D.PARTIALLY_SHIPPED  # a repeat: the same
    assert ship_parcels([second.pk]).ok
    assert dispatches.refresh_open() == 1  # the sweep finds it too
    dispatch.refresh_from_db()
    second.refresh_from_db()
    assert dispatch.status == D.SHIPPED and dispatch.shipped_at == second.shipped_at
    assert [r.shipped_quantity for r in dispatch.lines.order_by("id")] == [2, 1]
    order.refresh_from_db()
    assert order.status == OrderStatus.SHIPPED
    assert dispatches.refresh_open() == 0


def test_shipped_on_the_platform_ships_the_dispatch(world):
    co = channel_order(oid="D6", lines=(line(1, "CUP-1", qty=2, price=4000),))
    orders.ingest_channel_order(store=world.store, co=co)
    orders.ingest_channel_order(store=world.store, co=later(co, status=CS.SHIPPED, platform_status="3"))
    dispatch = Dispatch.objects.get()
    assert dispatch.status == D.SHIPPED and dispatch.lines.get().shipped_quantity == 2

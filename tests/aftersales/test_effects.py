"""Side effects of after-sales by type and moment (h-core). The refund before shipment on a
supplier's dispatched line and the refund after a parcel left run against the sandbox over real
HTTP (orders read through the connectors, waybill numbers taken and cancelled at the sandbox
platform); the after-sale versions go through the channel layer's real path
(tests/aftersales/ingest_rig.py). Ledger check after each."""

from __future__ import annotations

import pytest

from aftersales import tasks
from aftersales.models import AfterSale
from inventory.models import Sku
from logistics import services as parcel_services
from logistics import shipping, waybills
from logistics.models import CarrierRule, Intercept, Parcel, SenderAddress, Waybill
from orders import services as orders
from orders.models import FulfilmentLine, LineStatus, OrderEvent
from suppliers import dispatches, routing, rules
from suppliers.models import Dispatch
from tests.aftersales.ingest_rig import CS, assert_stock_exact, deliver, fingerprint, later, version
from tests.orders.conftest import channel_order, line
from tests.orders.conftest import later as later_order

pytestmark = pytest.mark.django_db
Q = AfterSale.Queue


def ours(callbacks) -> list:
    """The after-commit callbacks of the side effects (not the channel layer's event)."""
    return [c for c in callbacks if c.__module__ == "aftersales.effects"]


def run_waybill_cancels(after_sale: AfterSale) -> list[str]:
    """What the after-commit task does for each retired numbered parcel (run here, in the test's
    transaction, instead of through the broker)."""
    after_sale.refresh_from_db()
    return [
        tasks.cancel_waybill_task(after_sale.pk, pk)
        for pk in after_sale.effects.get("waybills_to_cancel", [])
    ]


def test_a_refund_before_shipment_stops_shipping_while_open_and_releases_the_line_when_it_succeeds(
    store, skus, django_capture_on_commit_callbacks
):
    co = channel_order("6940000000000000001", lines=(line(1), line(2, "CAP-RED", qty=2)))
    order = orders.ingest_channel_order(store=store, co=co)
    l1, l2 = order.lines.order_by("pk")
    assert l1.status == LineStatus.RESERVED and orders.ship_refusal(order) == ""
    v1 = version(order, lines=[l1], shipped=False)
    with django_capture_on_commit_callbacks() as callbacks:
        after_sale = deliver(store, v1)
    assert len(ours(callbacks)) == 1  # the auto-approve rule is asked after the commit
    order.refresh_from_db()
    assert order.is_refunding and orders.ship_refusal(order)  # the order must not ship
    # the order's own next version (no refund mark on its lines yet) keeps the flag: both sources
    order = orders.ingest_channel_order(store=store, co=later_order(co, seller_remark="备注"))
    assert order.is_refunding
    with django_capture_on_commit_callbacks() as callbacks:
        after_sale = deliver(store, later(v1, status=CS.SUCCEEDED, platform_status="refund_success"))
    assert after_sale.queue == Q.DONE and ours(callbacks) == []  # no numbered parcel: nothing to cancel
    l1.refresh_from_db()
    l2.refresh_from_db()
    order.refresh_from_db()
    assert (l1.status, l2.status) == (LineStatus.REFUNDED, LineStatus.RESERVED)
    assert not order.is_refunding and orders.ship_refusal(order) == ""
    assert list(
        FulfilmentLine.objects.filter(order_line__order=order).values_list("order_line_id", flat=True)
    ) == [l2.pk]
    assert OrderEvent.objects.filter(order=order, kind="line_refunded").count() == 1
    assert after_sale.events.filter(kind="lines_refunded").count() == 1
    assert_stock_exact(l1)
    seen = fingerprint(after_sale)
    deliver(store, later(v1, status=CS.SUCCEEDED, platform_status="refund_success"))  # a repeat
    assert fingerprint(after_sale) == seen
    assert_stock_exact(l1)


def test_a_refused_refund_lifts_the_shipping_stop(store, skus):
    order = orders.ingest_channel_order(store=store, co=channel_order("6940000000000000002"))
    v1 = version(order, shipped=False)
    deliver(store, v1)
    order.refresh_from_db()
    assert order.is_refunding
    deliver(store, later(v1, status=CS.REJECTED, platform_status="refused"))
    order.refresh_from_db()
    assert not order.is_refunding
    assert order.lines.get().status == LineStatus.RESERVED
    assert OrderEvent.objects.filter(order=order, kind="refund_closed").exists()
    assert_stock_exact()


def test_the_order_snapshot_refund_mark_goes_the_same_way_as_refund_lines(store, skus):
    """The order's own version says a line was refunded before shipment: the line's fulfilment
    follows as through ``refund_lines`` (before, only the stock was released)."""
    co = channel_order("6940000000000000003", lines=(line(1), line(2, "CAP-RED")))
    order = orders.ingest_channel_order(store=store, co=co)
    l1 = order.lines.get(platform_line_id="L1")
    assert FulfilmentLine.objects.filter(order_line=l1).exists()
    refunded = (co.lines[0].__class__(**{**co.lines[0].__dict__, "refund_state": "refunded"}), co.lines[1])
    orders.ingest_channel_order(store=store, co=later_order(co, lines=refunded))
    l1.refresh_from_db()
    assert l1.status == LineStatus.REFUNDED
    assert not FulfilmentLine.objects.filter(order_line=l1).exists()
    assert_stock_exact(l1)


# --- with the sandbox over real HTTP ---------------------------------------------------------------


def _supplier_for(shops, code):
    from tests.suppliers.factories import bind, make_supplier

    a = make_supplier("A", name="杭州茶厂")
    bind(a, Sku.objects.get(merchant_code=code), stock=40)
    SenderAddress.objects.create(name="茶厂发货部", mobile="0571-80000001", province="浙江省", city="杭州市",
                                 detail="茶园路 8 号", warehouse=a.warehouse)  # fmt: skip
    draft = rules.create_draft(note="after-sales")
    rules.add_rule(rule_set=draft, name=f"{code} → {a.name}", action=routing.SUPPLIER,
                   conditions={"skus": [Sku.objects.get(merchant_code=code).pk]}, supplier=a)  # fmt: skip
    rules.activate(rule_set=draft)
    return a


def test_a_refund_before_shipment_on_a_dispatched_line_reaches_the_supplier_and_the_waybill_is_cancelled(
    shops, django_capture_on_commit_callbacks
):
    world, store = shops.world, shops.stores["douyin"]
    codes = [s.code for s in world.skus(shops.shop_ids["douyin"])][:2]
    a = _supplier_for(shops, codes[1])
    CarrierRule.objects.create(name="抖店中通", priority=1, store_ids=[store.pk], carrier="zto")
    order = shops.order("douyin", 1, 1)  # codes[0] from the own warehouse, codes[1] from 杭州茶厂
    parcel_services.ensure_parcels()
    parcels = {p.fulfilment.warehouse_id: p for p in Parcel.objects.select_related("fulfilment")}
    pa = parcels.pop(a.warehouse_id)
    [own] = parcels.values()
    waybills.take_for_parcel(own)
    waybills.run_take_batch(waybills.start_take([pa.pk], warehouse=a.warehouse).pk)
    own.refresh_from_db()
    pa.refresh_from_db()
    numbers = {own.pk: own.tracking_no, pa.pk: pa.tracking_no}
    assert all(numbers.values())
    dispatch = Dispatch.objects.get(supplier=a)
    assert dispatches.acknowledge(dispatches=[dispatch], actor=None) == 1  # the supplier has it
    lines = list(order.lines.order_by("pk"))

    v1 = version(order, shipped=False)
    after_sale = deliver(store, v1)
    assert after_sale.type == AfterSale.Type.REFUND_UNSHIPPED
    # straight to the shipper: the supplier's line makes it the supplier's after-sale
    assert (after_sale.supplier, after_sale.dispatch, after_sale.warehouse) == (a, dispatch, a.warehouse)
    with django_capture_on_commit_callbacks() as callbacks:
        after_sale = deliver(store, later(v1, status=CS.SUCCEEDED, platform_status="12"))
    assert len(ours(callbacks)) == 1  # the waybill cancellations are sent after the commit
    dispatch.refresh_from_db()
    assert dispatch.status == Dispatch.Status.CANCELLING  # the supplier must confirm the interception
    assert "refund" in dispatch.cancel_reason or "退款" in dispatch.cancel_reason
    assert OrderEvent.objects.filter(order=order, kind="dispatch_cancelling").exists()
    assert {p.status for p in Parcel.objects.filter(pk__in=numbers)} == {Parcel.Status.CANCELLED}
    assert sorted(after_sale.effects["waybills_to_cancel"]) == sorted(numbers)
    assert run_waybill_cancels(after_sale) == ["cancelled", "cancelled"]
    for pk, number in numbers.items():
        assert world.get_waybill(number).status == "cancelled"  # recycled at the platform
        assert Waybill.objects.get(parcel_id=pk, tracking_no=number).status == Waybill.Status.CANCELLED
    assert after_sale.events.filter(kind="waybill_cancelled").count() == 2
    assert run_waybill_cancels(after_sale) == ["done", "done"]  # a retried task changes nothing
    assert {ln.status for ln in order.lines.all()} == {LineStatus.REFUNDED}
    assert_stock_exact(*lines)
    # the supplier confirms the interception; the dispatch closes
    dispatches.confirm_cancel(dispatch=dispatch, intercepted=True)
    dispatch.refresh_from_db()
    assert dispatch.status == Dispatch.Status.CANCELLED


@pytest.mark.parametrize("platform", ["douyin", "kuaishou"])
def test_a_refund_after_a_parcel_left_produces_an_intercept_request(shops, platform):
    store = shops.stores[platform]
    CarrierRule.objects.create(name="中通", priority=1, store_ids=[store.pk], carrier="zto")
    order = shops.order(platform, 1)
    parcel_services.ensure_parcels()
    parcel = Parcel.objects.get(lines__order_line__order=order)
    waybills.take_for_parcel(parcel)
    assert shipping.ship_parcels([parcel.pk]).shipped == [parcel.pk]
    parcel.refresh_from_db()
    assert parcel.status == Parcel.Status.SHIPPED and parcel.tracking_status not in ("delivered", "returned")

    v1 = version(order, shipped=True)
    after_sale = deliver(store, v1)
    assert after_sale.type == AfterSale.Type.REFUND_SHIPPED and after_sale.shipped_before
    [intercept] = Intercept.objects.filter(parcel=parcel, order=order)
    assert intercept.status == Intercept.Status.REQUESTED
    order.refresh_from_db()
    assert order.is_refunding
    assert OrderEvent.objects.filter(order=order, kind="after_sale_refund_after_shipment").count() == 1
    assert after_sale.events.filter(kind="intercept_requested").count() == 1
    seen = fingerprint(after_sale)
    deliver(store, v1)  # the same push again
    deliver(store, later(v1, status=CS.WAITING_MERCHANT, platform_status="again"))
    assert Intercept.objects.filter(parcel=parcel, order=order).count() == 1
    assert after_sale.events.filter(kind="intercept_requested").count() == 1
    assert fingerprint(after_sale)[-1] == seen[-1]  # the marks
    assert order.lines.get().status == LineStatus.SHIPPED  # nothing goes back to stock here
    assert_stock_exact()


def test_a_refund_said_unshipped_whose_parcel_left_in_ecbao_is_intercepted_not_refunded(shops):
    store = shops.stores["wechat"]
    CarrierRule.objects.create(name="中通", priority=1, store_ids=[store.pk], carrier="zto")
    order = shops.order("wechat", 1)
    parcel_services.ensure_parcels()
    parcel = Parcel.objects.get(lines__order_line__order=order)
    waybills.take_for_parcel(parcel)
    shipping.ship_parcels([parcel.pk])
    v1 = version(order, shipped=False)
    after_sale = deliver(store, v1)
    assert after_sale.type == AfterSale.Type.REFUND_UNSHIPPED
    assert Intercept.objects.filter(parcel=parcel, order=order).count() == 1
    after_sale = deliver(store, later(v1, status=CS.SUCCEEDED))
    assert order.lines.get().status == LineStatus.SHIPPED and after_sale.effects["refunded"] == []
    assert_stock_exact()


def test_an_exchange_gets_its_replacement_once_the_return_is_in_and_an_approved_reissue_too(
    store, skus, django_capture_on_commit_callbacks
):
    from aftersales.models import AfterSaleAction
    from tests.aftersales.ingest_rig import CT

    order = orders.ingest_channel_order(store=store, co=channel_order("6940000000000000009"))
    v = version(order, type=CT.EXCHANGE)
    for status in (CS.WAITING_MERCHANT, CS.WAITING_BUYER_RETURN, CS.WAITING_MERCHANT_RECEIPT):
        v = later(v, status=status, platform_status=status.value)
        with django_capture_on_commit_callbacks() as callbacks:
            exchange = deliver(store, v)
        assert not [c for c in ours(callbacks) if "replacement" in str(c.__code__.co_names)]
    assert exchange.reship_order is None and "replacement" not in exchange.effects
    v = later(v, status=CS.WAITING_MERCHANT, platform_status="8")  # the return is in: ship the replacement
    with django_capture_on_commit_callbacks() as callbacks:
        exchange = deliver(store, v)
    assert exchange.queue == Q.AWAITING_REFUND and len(ours(callbacks)) == 1
    made = tasks.replacement_task(exchange.pk)
    exchange.refresh_from_db()
    assert exchange.reship_order_id == made and exchange.reship_order.origin == "exchange"
    with django_capture_on_commit_callbacks() as callbacks:
        deliver(store, later(v, 30, platform_status="8-again"))
    assert ours(callbacks) == []  # asked once
    assert tasks.replacement_task(exchange.pk) == made  # a retried task makes nothing new

    # a reissue (补寄): waiting for the merchant; approved (the platform waits for the merchant's
    # parcel: still WAITING_MERCHANT) → the zero-price order
    r = version(order, type=CT.RESHIP)
    with django_capture_on_commit_callbacks() as callbacks:
        reissue = deliver(store, r)
    assert reissue.queue == Q.PENDING and len(ours(callbacks)) == 1  # the auto-approve rule only
    AfterSaleAction.objects.create(
        after_sale=reissue,
        kind=AfterSaleAction.Kind.APPROVE,
        status=AfterSaleAction.Status.DONE,
        key="t:approve",
    )  # what h-actions leaves once the platform took the approval
    with django_capture_on_commit_callbacks() as callbacks:
        reissue = deliver(store, later(r, platform_status="8"))
    assert reissue.queue == Q.AWAITING_REFUND and len(ours(callbacks)) == 1
    made = tasks.replacement_task(reissue.pk)
    reissue.refresh_from_db()
    assert reissue.reship_order_id == made and reissue.reship_order.origin == "reissue"
    assert reissue.reship_order.paid_fen == 0
    assert_stock_exact()


@pytest.mark.parametrize("platform", ["douyin", "kuaishou"])
def test_end_to_end_the_buyer_refunds_a_dispatched_line_before_shipment_and_the_merchant_approves(
    shops, platform, django_capture_on_commit_callbacks
):
    """The buyer applies at the sandbox platform; the after-sale is read through the connector
    (as the pull does) and ingested; the merchant approves through the platform API
    (``aftersales.actions.approve``); the platform refunds; the next version releases the line:
    the supplier's dispatch goes CANCELLING and the numbered parcel's waybill is cancelled at
    the platform."""
    from aftersales import actions
    from aftersales import services as after_sales
    from channels import services as channel_services
    from tests.logistics.waybill_world import world_order_id

    world, store = shops.world, shops.stores[platform]
    code = world.skus(shops.shop_ids[platform])[0].code
    a = _supplier_for(shops, code)
    CarrierRule.objects.create(name="中通", priority=1, store_ids=[store.pk], carrier="zto")
    order = shops.order(platform, 1)
    parcel_services.ensure_parcels()
    parcel = Parcel.objects.get(lines__order_line__order=order)
    waybills.run_take_batch(waybills.start_take([parcel.pk], warehouse=a.warehouse).pk)
    parcel.refresh_from_db()
    assert parcel.tracking_no and parcel.fulfilment.warehouse_id == a.warehouse_id
    dispatch = Dispatch.objects.get(supplier=a)
    line = order.lines.get()
    applied = world.apply_aftersale(
        world_order_id(shops, order), line.platform_line_id, kind="refund_unshipped", reason="不想要了"
    )

    def read() -> AfterSale:
        connector = channel_services.connector_for(store)
        try:
            version = connector.get_after_sale(applied.aftersale_id)
        finally:
            connector.http.close()
        channel_services.store_after_sale_version(store=store, after_sale=version, source="pull")
        return after_sales.ingest(store_id=store.pk, platform_after_sale_id=applied.aftersale_id)

    after_sale = read()
    assert (after_sale.type, after_sale.queue) == (AfterSale.Type.REFUND_UNSHIPPED, Q.PENDING)
    assert (after_sale.order, after_sale.supplier, after_sale.dispatch) == (order, a, dispatch)
    order.refresh_from_db()
    assert order.is_refunding
    action = actions.approve(after_sale)
    assert action.status == action.Status.DONE, action.error
    with django_capture_on_commit_callbacks() as callbacks:
        after_sale = after_sales.ingest(store_id=store.pk, platform_after_sale_id=applied.aftersale_id)
    if after_sale.channel_status != "succeeded":  # not read back by the action: read it now
        with django_capture_on_commit_callbacks() as callbacks:
            after_sale = read()
    assert (after_sale.channel_status, after_sale.queue) == ("succeeded", Q.DONE)
    assert len(ours(callbacks)) == 1
    line.refresh_from_db()
    dispatch.refresh_from_db()
    assert line.status == LineStatus.REFUNDED and dispatch.status == Dispatch.Status.CANCELLING
    assert run_waybill_cancels(after_sale) == ["cancelled"]
    assert world.get_waybill(parcel.tracking_no).status == "cancelled"
    order.refresh_from_db()
    assert not order.is_refunding
    assert_stock_exact(line)

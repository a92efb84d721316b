"""Platform-native dropship end to end: dispatches whose supplier is on the platform are assigned
there through the connectors, against the sandbox served over real HTTP, and follow what the
platform says (pushes through the inbox, reads); the simulated supplier ships with the platform's
encrypted order code and never sees the receiver in plain text."""

from __future__ import annotations

import json

import httpx
import pytest

from channels import intake
from channels import services as channel_services
from channels.errors import TemporarilyUnavailable
from channels.models import InboxMessage
from channels.routing.models import PushReceipt
from inventory.models import Sku
from orders import hooks
from orders.models import LineStatus, OrderStatus
from sandbox import dropship
from sandbox.model import EventKind
from sandbox.pushes import OutboxMessage
from sandbox.wechat import WechatPushCodec, create_self_use_app
from suppliers import native
from suppliers.models import Dispatch, DispatchLine, ReceiverReveal
from tests.logistics.waybill_world import Shops, connect_shops, fulfilment_of, world_order_id
from tests.suppliers.factories import bind, make_supplier

APPID = "wxds0000supplier1"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    from tests.logistics.waybill_world import start_sandbox

    server = start_sandbox(tmp_path_factory.mktemp("native") / "world.sqlite3", buyers=10)
    yield server
    server.stop()
    server.world.close()


def dispatch_for(order, supplier) -> Dispatch:
    """The supplier's dispatch of the whole order (what the dispatch lifecycle creates)."""
    fulfilment = fulfilment_of(order)
    dispatch = Dispatch.objects.create(supplier=supplier, fulfilment=fulfilment, store=order.store)
    for line in fulfilment.lines.select_related("order_line"):
        DispatchLine.objects.create(dispatch=dispatch, order_line=line.order_line, quantity=line.quantity)
    return dispatch


def push_through_inbox(shops: Shops, order, kinds: set[str], monkeypatch, capture) -> list[tuple[int, str]]:
    """The sandbox's pushes of ``kinds`` for the order, received, routed to the inbox and
    processed; returns the syncs ``native`` enqueued (store id, platform order id)."""
    world, shop_id = shops.world, shops.shop_ids["wechat"]
    app = create_self_use_app(world, shop_id)
    queued: list[tuple[int, str]] = []
    monkeypatch.setattr(native.sync_order_task, "delay", lambda store_id, oid: queued.append((store_id, oid)))
    codec = WechatPushCodec()
    for event in world.events_after(0, 100000):
        if event.order_id != world_order_id(shops, order) or event.kind not in kinds:
            continue
        push = codec.encode(world, app, OutboxMessage(id=event.event_id, platform="wechat", app_key=app.app_key,
                                                      shop_id=shop_id, msg_id=str(event.event_id), attempts=0,
                                                      created_at=0.0, duplicate_of=0, event=event))  # fmt: skip
        reply = intake.receive_push(platform="wechat", app_key=app.app_key, method="POST",
                                    headers=dict(push.headers), query=dict(httpx.URL(push.url).params), body=push.body)  # fmt: skip
        assert reply.body == "success"
        receipt = PushReceipt.objects.order_by("-id").first()
        intake.route_receipt(receipt_id=receipt.pk)
    for message in InboxMessage.objects.filter(payload__kind="dropship", status="pending"):
        with capture(execute=True):  # DropshipChanged reaches its subscriber once this commits
            intake.process_inbox_message(message_id=message.pk)
    return queued


def test_a_wechat_dispatch_is_assigned_natively_and_the_supplier_ships_without_plaintext(
    sandbox, in_alpha, monkeypatch, django_capture_on_commit_callbacks
):
    shops = connect_shops(sandbox)
    world, shop_id = shops.world, shops.shop_ids["wechat"]
    dropship.bind_supplier(world, shop_id, APPID, "杭州茶厂")
    supplier = make_supplier("NWX", wechat_supplier_appid=APPID)
    for sku in Sku.objects.all():  # the supplier supplies every SKU; a router sends lines to it
        bind(supplier, sku, cost_fen=1000, stock=100)
    router = hooks.RouteHook(
        route=lambda pairs: {ln.id: hooks.LineRoute(supplier.warehouse_id, note="native test")
                             for _, lines in pairs for ln in lines},
        version=lambda: None,
    )  # fmt: skip
    hooks.register_router(router)
    assigns: list[int] = []
    monkeypatch.setattr(native.assign_task, "delay", assigns.append)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            order = shops.order("wechat", 2, 1)  # routed → fulfilment → the lifecycle's dispatch
    finally:
        hooks._routers.remove(router)
    created = Dispatch.objects.filter(lines__order_line__order=order.pk, supplier=supplier).distinct().get()
    assert assigns == [created.pk] and created.lines.count() == 2
    assert native.assign_task.run(created.pk) == "assigned"  # the task's body, as a worker runs it
    dispatch = Dispatch.objects.get(pk=created.pk)
    assert (dispatch.native, dispatch.native_state, dispatch.native_error) == ("wechat", "assigned", "")
    [assigned] = dropship.of_order(world, world_order_id(shops, order))
    assert assigned.ds_id == dispatch.native_id and sorted(x.qty for x in assigned.lines) == [1, 2]
    deadlines = {line.delivery_deadline for line in dispatch.lines.all()}
    assert len(deadlines) == 1 and None not in deadlines and dispatch.ship_by == deadlines.pop()
    assert native.assign(dispatch=dispatch).native_id == dispatch.native_id  # a retried task: nothing new
    assert len(dropship.of_order(world, world_order_id(shops, order))) == 1

    # the assignment push (ext_info_update type 14) goes through the inbox to a sync of the order
    queued = push_through_inbox(
        shops, order, {EventKind.DROPSHIP_ASSIGNED}, monkeypatch, django_capture_on_commit_callbacks
    )
    assert queued == [(order.store_id, order.platform_order_id)]
    assert native.sync_order_task.run(*queued[0]) == 1

    # the supplier sees a mask and the encrypted order code, and ships with it
    view = dropship.supplier_view(world, dropship.get(world, dispatch.native_id))
    receiver = world.get_order(world_order_id(shops, order)).receiver
    seen = json.dumps(view, ensure_ascii=False)
    assert receiver.phone not in seen and receiver.name not in seen and "*" in view["receiver"]["mobile"]
    shipped = dropship.supplier_ship(world, dispatch.native_id)
    assert shipped.waybills[0].ewaybill_order_code == view["ewaybill_order_code"]

    # the platform says shipped → the order ingestion ships the lines, the dispatch follows
    dispatch = native.sync(dispatch=dispatch)
    assert (dispatch.status, dispatch.native_state) == (Dispatch.Status.SHIPPED, "shipped")
    assert [(x.quantity, x.shipped_quantity) for x in dispatch.lines.order_by("quantity")] == [(1, 1), (2, 2)]
    order.refresh_from_db()
    assert order.status == OrderStatus.SHIPPED
    assert set(order.lines.values_list("status", flat=True)) == {LineStatus.SHIPPED}
    assert ReceiverReveal.objects.count() == 0  # no decrypt on anyone's behalf


def test_kuaishou_whole_orders_native_partial_ones_fall_back_and_cancel_intercepts(sandbox, in_alpha):
    shops = connect_shops(sandbox)
    factory = "F2001"
    supplier = make_supplier("NKS", kuaishou_factory_code=factory)
    store = shops.stores["kuaishou"]
    connector = channel_services.connector_for(store)
    connector.bind_dropship_supplier(supplier_id=factory, request_id="ecbao-NKS")
    connector.http.close()
    whole = native.assign(dispatch=dispatch_for(shops.order("kuaishou", 2), supplier))
    assert (whole.native, whole.native_state) == ("kuaishou", "assigned")
    assert whole.lines.get().delivery_deadline is not None

    # a dispatch of part of an order: Kuaishou allocates whole orders → the portal takes it
    order = shops.order("kuaishou", 3)
    fulfilment = fulfilment_of(order)
    part = Dispatch.objects.create(supplier=supplier, fulfilment=fulfilment, store=store)
    DispatchLine.objects.create(dispatch=part, order_line=fulfilment.lines.get().order_line, quantity=1)
    part = native.assign(dispatch=part)
    assert (part.native, part.native_id) == ("", "") and "整单" in part.native_error

    # the buyer cancels before shipment: the assignment is withdrawn, the interception confirmed
    Dispatch.objects.filter(pk=whole.pk).update(status=Dispatch.Status.CANCELLING)
    cancelled = native.cancel(dispatch=whole)
    assert (cancelled.status, cancelled.intercepted, cancelled.native_state) == (
        Dispatch.Status.CANCELLED, True, "cancelled",
    )  # fmt: skip
    assert native.cancel(dispatch=cancelled).native_state == "cancelled"  # again: nothing to do


def test_a_platform_outage_is_visible_and_retried_without_a_second_assignment(
    sandbox, in_alpha, monkeypatch, django_capture_on_commit_callbacks
):
    shops = connect_shops(sandbox)
    world, shop_id = shops.world, shops.shop_ids["wechat"]
    dropship.bind_supplier(world, shop_id, APPID)
    supplier = make_supplier("NWX2", wechat_supplier_appid=APPID)
    order = shops.order("wechat", 1)
    dispatch = dispatch_for(order, supplier)
    sandbox.faults.set("wechat", "/channels/ec/order/dropship/assign", lost_reply_5xx_rate=1.0)
    try:
        dispatch = native.assign(dispatch=dispatch)  # the platform acted, its reply was lost
    finally:
        sandbox.faults.set("wechat", "/channels/ec/order/dropship/assign", lost_reply_5xx_rate=0.0)
    assert dispatch.native_state == "assigned"
    sandbox.faults.set("wechat", "/channels/ec/order/dropship/list", error_rate=1.0)
    try:
        other = dispatch_for(shops.order("wechat", 1), supplier)
        with pytest.raises(TemporarilyUnavailable):
            native.assign(dispatch=other)
    finally:
        sandbox.faults.set("wechat", "/channels/ec/order/dropship/list", error_rate=0.0)
    other.refresh_from_db()
    assert other.native == "wechat" and other.native_error and not other.native_id  # visible, to retry
    assert native.retry(dispatch=other).native_state == "assigned"
    assert len(dropship.of_order(world, world_order_id(shops, order))) == 1

    # the lifecycle's hook: only dispatches whose supplier is on the platform get an assign task
    queued: list[int] = []
    monkeypatch.setattr(native.assign_task, "delay", queued.append)
    portal = dispatch_for(shops.order("wechat", 1), make_supplier("NPORTAL"))
    fresh = dispatch_for(shops.order("wechat", 1), supplier)
    with django_capture_on_commit_callbacks(execute=True):
        native.on_dispatch_created([portal.pk, fresh.pk])
    assert queued == [fresh.pk]

"""Exchanges (换货) and reissues (补寄) — ``aftersales.reship`` — with the sandbox over real HTTP:
the buyer asks for an exchange on a shipped Douyin order, the after-sale comes in through the
channel layer, the merchant approves, the buyer's return comes back → one replacement order
(zero price, same receiver, reserved, approved); it takes a waybill for its source order, ships
through ``ship_parcels`` with no write-back and no platform ship call, and its tracking reaches
the platform's after-sale exactly once however often ``ParcelsShipped`` is delivered. A reissue
of a supplier's SKU becomes that supplier's dispatch. Stock and reservations exact throughout."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from aftersales import reship
from aftersales import services as after_sales
from aftersales import tasks as after_sale_tasks
from aftersales.models import AfterSale, AfterSaleAction, AfterSaleEvent, AfterSaleLine
from channels import carriers
from channels import services as channel_services
from inventory import selectors as stock_selectors
from inventory import services as stock
from inventory.models import Sku
from logistics import waybills, writeback
from logistics.models import Parcel, WriteBack
from logistics.shipping import ship_parcels
from orders.models import LineStatus, Order, OrderEvent, OrderOrigin, OrderStatus
from suppliers.models import Dispatch
from tests.logistics.waybill_world import Shops, connect_shops, parcels_of, start_sandbox, world_order_id
from tests.orders.conftest import channel_order, line
from tests.suppliers.dispatch_rig import make_world

SHIP_PATHS = ("/order/logisticsAdd", "/order/logisticsAddMultiPack")
OPERATE = "/afterSale/operate"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = start_sandbox(tmp_path_factory.mktemp("reship") / "world.sqlite3", seed=1515)
    yield server
    server.stop()
    server.world.close()


@pytest.fixture
def shops(server, in_alpha, settings) -> Shops:
    settings.WRITEBACK_RETRY_BASE_SECONDS = 0
    for platform in ("douyin", "kuaishou", "wechat"):
        server.faults.clear(platform)
        server.faults.set(platform, "*", qps=0)
    return connect_shops(server)


def pull(shops: Shops, platform: str, after_sale_id: str) -> AfterSale:
    """The platform's after-sale read through the connector, stored, ingested (as the push /
    the periodic pull does)."""
    store = shops.stores[platform]
    connector = channel_services.connector_for(store)
    try:
        version = connector.get_after_sale(after_sale_id)
    finally:
        connector.http.close()
    channel_services.store_after_sale_version(store=store, after_sale=version, source="pull")
    return after_sales.ingest(store_id=store.pk, platform_after_sale_id=after_sale_id)


def ship_by_waybill(order: Order, *, capture) -> Parcel:
    [parcel] = parcels_of(order)
    waybills.take_for_parcel(parcel)
    parcel.refresh_from_db()
    assert parcel.status == Parcel.Status.NUMBERED and parcel.tracking_no
    with capture(execute=True):
        assert ship_parcels([parcel.pk]).ok
    parcel.refresh_from_db()
    return parcel


def ship_calls(shops: Shops) -> int:
    return sum(len(shops.world.calls(platform="douyin", path=p, ok=True)) for p in SHIP_PATHS)


def test_an_exchange_ships_its_replacement_and_the_tracking_reaches_the_after_sale_once(
    shops, monkeypatch, django_capture_on_commit_callbacks
):
    world = shops.world
    order = shops.order("douyin", 1)
    sent: list[list[int]] = []
    monkeypatch.setattr(reship.send_tracking_task, "delay", sent.append)
    ship_by_waybill(order, capture=django_capture_on_commit_callbacks)
    writeback.send_due()
    assert WriteBack.objects.get(order=order).status == WriteBack.Status.ACCEPTED
    assert sent == []  # a platform order: nothing for the after-sales

    # the buyer asks to exchange the piece for another SKU of the shop
    oid = world_order_id(shops, order)
    placed = world.get_order(oid)
    other = next(s for s in world.skus(shops.shop_ids["douyin"]) if s.sku_id != placed.lines[0].sku_id)
    applied = world.apply_aftersale(
        oid, placed.lines[0].line_id, kind="exchange", exchange_sku_id=other.sku_id
    )
    after_sale = pull(shops, "douyin", applied.aftersale_id)
    assert after_sale.type == AfterSale.Type.EXCHANGE and after_sale.order_id == order.pk
    assert after_sale.exchange.get("sku_code") == other.code
    world.agree_aftersale(applied.aftersale_id)
    pull(shops, "douyin", applied.aftersale_id)
    world.buyer_return_goods(applied.aftersale_id, carrier="zto", tracking_no="73100000009901")
    after_sale = pull(shops, "douyin", applied.aftersale_id)

    made = reship.ensure_replacement(after_sale)  # made by the effects already, or now
    assert reship.ensure_replacement(after_sale).pk == made.pk  # idempotent
    after_sale.refresh_from_db()
    assert after_sale.reship_order_id == made.pk
    assert Order.objects.filter(source_order=order).count() == 1
    made.refresh_from_db()
    assert (made.origin, made.after_sale_ref, made.status) == (
        OrderOrigin.EXCHANGE,
        applied.aftersale_id,
        OrderStatus.APPROVED,
    )
    assert made.receiver_phone_cipher == order.receiver_phone_cipher and made.paid_fen == 0
    [ln] = made.lines.all()
    assert ln.sku == Sku.objects.get(merchant_code=other.code) and ln.quantity == applied.qty
    assert ln.status == LineStatus.RESERVED and ln.warehouse_id == stock.default_warehouse().pk
    assert AfterSaleEvent.objects.filter(after_sale=after_sale, kind="replacement_created").count() == 1
    assert OrderEvent.objects.filter(order=order, kind="replacement_created").count() == 1
    assert stock_selectors.ledger_mismatches() == []

    # it ships: a waybill taken for its source order, no write-back, no platform ship call
    ships = ship_calls(shops)
    parcel = ship_by_waybill(made, capture=django_capture_on_commit_callbacks)
    writeback.send_due()
    made.refresh_from_db()
    assert made.status == OrderStatus.SHIPPED and not WriteBack.objects.filter(order=made).exists()
    assert ship_calls(shops) == ships
    assert stock_selectors.ledger_mismatches() == []
    # its trace is read for the source order (the platform has no order <id>-R1)
    from logistics import tracking

    tracking.pull(parcel)
    parcel.refresh_from_db()
    assert parcel.tracking_error == "" and parcel.tracking_pulled_at

    # ParcelsShipped → the task → the after-sale's reship call, once, even delivered twice
    assert sent == [[parcel.pk]]
    operated = len(world.calls(platform="douyin", path=OPERATE, ok=True))
    assert reship.send_tracking_task.run(sent[0]) == 1
    assert reship.send_tracking_task.run(sent[0]) == 0
    assert len(world.calls(platform="douyin", path=OPERATE, ok=True)) == operated + 1
    [action] = AfterSaleAction.objects.filter(after_sale=after_sale, kind=AfterSaleAction.Kind.RESHIP)
    assert action.status == AfterSaleAction.Status.DONE, action.error
    assert action.params["tracking_no"] == parcel.tracking_no
    # the carrier code a write-back of this parcel would send (Douyin: the e-waybill's slug)
    waybill = parcel.waybills.get(status="issued")
    assert action.params["carrier_code"] == carriers.shipping_code(
        "douyin", parcel.carrier, ewaybill_code=waybill.platform_carrier_code
    )
    platform_view = world.get_aftersale(applied.aftersale_id)
    assert (platform_view.exchange_tracking_no, platform_view.exchange_carrier.lower()) == (
        parcel.tracking_no,
        parcel.carrier,
    )


@pytest.fixture
def shop(in_alpha):
    """A Douyin shop of the orders tests (``tests.orders.conftest.store``)."""
    from channels.models import Store

    return Store.objects.create(platform="douyin", platform_shop_id="2001", name="抖店旗舰店", app_key="k")


@pytest.fixture
def shop_skus(in_alpha):
    """SKUs with stock, as ``tests.orders.conftest.skus``."""
    from inventory.models import Goods

    goods = Goods.objects.create(name="纯棉T恤")
    made = {}
    for code, on_hand in (("TS-WHT-L", 10), ("CAP-RED", 5)):
        made[code] = Sku.objects.create(goods=goods, merchant_code=code, name=code)
        stock.receive_stock(sku=made[code], quantity=on_hand, reason="opening")
    return made


@pytest.fixture
def supplier_world(shop, shop_skus):
    yield from make_world(shop, shop_skus)


def _after_sale(order, *, type_, lines, exchange=None, ref="") -> AfterSale:
    """An after-sale row as ingestion leaves it (for the moments the sandbox has no type of)."""
    after_sale = AfterSale.objects.create(
        store=order.store,
        platform=order.platform,
        platform_after_sale_id=ref or f"AS-{order.platform_order_id}",
        platform_order_id=order.platform_order_id,
        order=order,
        type=type_,
        channel_status="waiting_merchant",
        platform_status="1",
        platform_updated_at=order.placed_at,
        applied_at=order.placed_at,
        exchange=exchange or {},
    )
    for order_line, quantity in lines:
        AfterSaleLine.objects.create(
            after_sale=after_sale,
            order_line=order_line,
            platform_line_id=order_line.platform_line_id,
            sku=order_line.sku,
            quantity=quantity,
        )
    return after_sale


def test_a_reissue_of_a_suppliers_sku_becomes_that_suppliers_dispatch(supplier_world):
    w = supplier_world
    order = w.order("RS1", line(1, "TEA-1", qty=3, price=1000), line(2, qty=1))
    tea_line = order.lines.get(platform_line_id="L1")
    after_sale = _after_sale(order, type_=AfterSale.Type.RESHIP, lines=[(tea_line, 1)])
    made = reship.ensure_replacement(after_sale)
    assert reship.ensure_replacement(after_sale.pk).pk == made.pk
    assert (made.origin, made.status, made.paid_fen) == (OrderOrigin.REISSUE, OrderStatus.APPROVED, 0)
    [ln] = made.lines.all()
    assert (ln.sku_id, ln.quantity, ln.unit_price_fen, ln.warehouse_id) == (
        w.skus["TEA-1"].pk,
        1,
        0,
        w.tea.warehouse_id,
    )
    dispatch = Dispatch.objects.filter(lines__order_line=ln).get()
    assert dispatch.supplier_id == w.tea.pk and dispatch.status == Dispatch.Status.NEW
    after_sale.refresh_from_db()
    assert after_sale.reship_order_id == made.pk
    assert [e.message for e in after_sale.events.all()] == [
        f"补寄单 RS1-R1 已为售后单 {after_sale.platform_after_sale_id} 创建"
    ]
    assert stock_selectors.ledger_mismatches() == []


def test_an_exchange_sku_ecbao_does_not_know_is_refused_in_words(shop, shop_skus):
    from orders import services as orders

    order = orders.ingest_channel_order(store=shop, co=channel_order(oid="EX1"))
    after_sale = _after_sale(
        order,
        type_=AfterSale.Type.EXCHANGE,
        lines=[(order.lines.get(), 1)],
        exchange={"sku_code": "NO-SUCH"},
    )
    with pytest.raises(ValidationError) as refused:
        reship.ensure_replacement(after_sale)
    assert refused.value.messages == ["换货要求的 SKU NO-SUCH 在 ecbao 中找不到对应的 SKU。"]
    assert not Order.objects.filter(source_order=order).exists()
    # the platform names a known code: that SKU, in the lines' quantity
    AfterSale.objects.filter(pk=after_sale.pk).update(exchange={"sku_code": "CAP-RED"})
    made = reship.ensure_replacement(after_sale)
    assert [(ln.sku_id, ln.quantity) for ln in made.lines.all()] == [(shop_skus["CAP-RED"].pk, 1)]
    refund = _after_sale(order, type_=AfterSale.Type.RETURN_REFUND, lines=[], ref="AS-OTHER")
    with pytest.raises(ValidationError):
        reship.ensure_replacement(refund)


REPLY_PATHS = {  # the platform's "here is the replacement's parcel" call
    "douyin": "/afterSale/operate",
    "kuaishou": "/open/refund/confirm/and/send",
    "wechat": "/channels/ec/aftersale/acceptexchangereship",
}
PLATFORM_SHIP_PATHS = {
    "douyin": ("/order/logisticsAdd", "/order/logisticsAddMultiPack"),
    "kuaishou": (
        "/open/seller/order/goods/deliver",
        "/open/order/goods/split/deliver",
        "/open/seller/order/goods/logistics/append",
    ),
    "wechat": ("/channels/ec/order/delivery/send",),
}


def _count(world, platform: str, paths) -> int:
    return sum(len(world.calls(platform=platform, path=p, ok=True)) for p in paths)


@pytest.mark.parametrize(
    ("platform", "kind"),
    [("kuaishou", "exchange"), ("wechat", "exchange"), ("douyin", "reship"), ("kuaishou", "reship")],
)
def test_each_platforms_exchange_and_reissue_end_to_end(
    shops, platform, kind, monkeypatch, django_capture_on_commit_callbacks
):
    """Approved through the platform API (``actions.approve``), the exchange's return confirmed
    in (``effects.on_return_received``, as a receipt or the merchant does) or the reissue
    approved → the replacement order (made by the effects), shipped, its tracking on the
    platform's after-sale once; no write-back, no platform ship call for it."""
    from aftersales import actions, effects

    world = shops.world
    sent: list[list[int]] = []
    monkeypatch.setattr(reship.send_tracking_task, "delay", sent.append)
    order = shops.order(platform, 1)
    ship_by_waybill(order, capture=django_capture_on_commit_callbacks)
    writeback.send_due()
    oid = world_order_id(shops, order)
    placed = world.get_order(oid)
    line_id = order.platform_order_id if platform == "kuaishou" else placed.lines[0].line_id
    applied = world.apply_aftersale(oid, line_id, kind=kind, qty=1)
    after_sale = pull(shops, platform, applied.aftersale_id)
    assert after_sale.order_id == order.pk
    assert after_sale.type == (AfterSale.Type.EXCHANGE if kind == "exchange" else AfterSale.Type.RESHIP)

    action = actions.approve(after_sale)
    assert action.status == AfterSaleAction.Status.DONE, action.error
    after_sale = pull(shops, platform, applied.aftersale_id)
    if kind == "exchange":
        world.buyer_return_goods(applied.aftersale_id, carrier="ZTO", tracking_no="73100000008801")
        after_sale = pull(shops, platform, applied.aftersale_id)
        after_sale = effects.on_return_received(after_sale)
    # due (an exchange's return in, a reissue approved through ecbao): the effects queue the
    # replacement after the commit; the task's body, as a worker runs it
    after_sale.refresh_from_db()
    assert after_sale.effects.get("replacement") == "requested"
    after_sale_tasks.replacement_task(after_sale.pk)
    after_sale.refresh_from_db()
    made = after_sale.reship_order
    assert made is not None and made.source_order_id == order.pk and made.status == OrderStatus.APPROVED
    assert made.origin == (OrderOrigin.EXCHANGE if kind == "exchange" else OrderOrigin.REISSUE)
    assert [(ln.sku_id, ln.quantity, ln.paid_fen) for ln in made.lines.all()] == [
        (order.lines.get().sku_id, 1, 0)
    ]
    assert stock_selectors.ledger_mismatches() == []

    ships = _count(world, platform, PLATFORM_SHIP_PATHS[platform])
    parcel = ship_by_waybill(made, capture=django_capture_on_commit_callbacks)
    writeback.send_due()
    assert not WriteBack.objects.filter(order=made).exists()
    assert _count(world, platform, PLATFORM_SHIP_PATHS[platform]) == ships
    from logistics import tracking

    tracking.pull(parcel)  # its trace is read for the source order (WeChat names the order)
    parcel.refresh_from_db()
    assert parcel.tracking_error == "" and parcel.tracking_pulled_at
    assert sent == [[parcel.pk]]
    before = world.last_call_id()
    assert reship.send_tracking_task.run(sent[0]) == 1
    assert reship.send_tracking_task.run(sent[0]) == 0  # delivered again: nothing sent
    assert len(world.calls(platform=platform, path=REPLY_PATHS[platform], ok=True, after_id=before)) == 1
    view = world.get_aftersale(applied.aftersale_id)
    assert view.exchange_tracking_no == parcel.tracking_no and view.exchange_carrier.lower() == parcel.carrier
    assert stock_selectors.ledger_mismatches() == []


def test_an_exchange_routed_to_a_supplier_ships_from_the_portal_and_reaches_the_platform(
    shops, monkeypatch, django_capture_on_commit_callbacks
):
    """The replacement SKU is a supplier's: the replacement order becomes that supplier's
    dispatch; the supplier enters its tracking number (as the portal does: ``logistics.manual``
    scoped to its warehouse) → ParcelsShipped → the dispatch is SHIPPED at once (no sweep) and
    the number reaches the Douyin after-sale once."""
    from aftersales import effects
    from logistics import manual
    from orders import hooks
    from suppliers import tasks as supplier_tasks
    from tests.suppliers.factories import bind, make_supplier

    world = shops.world
    sent: list[list[int]] = []
    followed: list[list[int]] = []
    monkeypatch.setattr(reship.send_tracking_task, "delay", sent.append)
    monkeypatch.setattr(supplier_tasks.follow_shipped_parcels_task, "delay", followed.append)
    order = shops.order("douyin", 1)
    ship_by_waybill(order, capture=django_capture_on_commit_callbacks)
    writeback.send_due()
    followed.clear()
    oid = world_order_id(shops, order)
    placed = world.get_order(oid)
    other = next(s for s in world.skus(shops.shop_ids["douyin"]) if s.sku_id != placed.lines[0].sku_id)
    supplier = make_supplier(code="HZTEA", name="杭州茶厂")
    supplied = Sku.objects.get(merchant_code=other.code)
    bind(supplier, supplied, cost_fen=1200, stock=20)
    router = hooks.RouteHook(
        route=lambda pairs: {
            ln.id: hooks.LineRoute(supplier.warehouse_id, note="test router")
            for _, lines in pairs
            for ln in lines
            if ln.sku_id == supplied.pk
        },
        version=lambda: None,
    )
    hooks.register_router(router)
    try:
        applied = world.apply_aftersale(
            oid, placed.lines[0].line_id, kind="exchange", exchange_sku_id=other.sku_id
        )
        pull(shops, "douyin", applied.aftersale_id)
        world.agree_aftersale(applied.aftersale_id)
        pull(shops, "douyin", applied.aftersale_id)
        world.buyer_return_goods(applied.aftersale_id, carrier="ZTO", tracking_no="73100000006601")
        after_sale = effects.on_return_received(pull(shops, "douyin", applied.aftersale_id))
        after_sale.refresh_from_db()
        assert after_sale.effects.get("replacement") == "requested"
        after_sale_tasks.replacement_task(after_sale.pk)  # the task's body, as a worker runs it
    finally:
        hooks._routers.remove(router)
    after_sale.refresh_from_db()
    made = after_sale.reship_order
    dispatch = Dispatch.objects.filter(lines__order_line__order=made).distinct().get()
    assert dispatch.supplier_id == supplier.pk and dispatch.status == Dispatch.Status.NEW
    assert stock_selectors.ledger_mismatches() == []

    with django_capture_on_commit_callbacks(execute=True):
        entry = manual.enter_tracking(made, "中通", "73100000006602", warehouse=supplier.warehouse)
    assert entry.shipped and not WriteBack.objects.filter(order=made).exists()
    assert sent == [[entry.parcel.pk]] and followed == [[entry.parcel.pk]]
    from suppliers.tasks import follow_shipped_parcels_task

    assert follow_shipped_parcels_task.run(followed[0]) == 1
    dispatch.refresh_from_db()
    assert dispatch.status == Dispatch.Status.SHIPPED
    before = world.last_call_id()
    assert reship.send_tracking_task.run(sent[0]) == 1
    assert reship.send_tracking_task.run(sent[0]) == 0
    assert len(world.calls(platform="douyin", path=OPERATE, ok=True, after_id=before)) == 1
    view = world.get_aftersale(applied.aftersale_id)
    assert (view.exchange_tracking_no, view.exchange_carrier.lower()) == ("73100000006602", "zto")
    assert stock_selectors.ledger_mismatches() == []

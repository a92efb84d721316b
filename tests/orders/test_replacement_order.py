"""An after-sale's replacement order (``orders.services.create_replacement_order``): an exchange's
换货补发单 or a reissue's 补寄单 — the source order's shop and receiver (ciphertexts and masks
only), zero price, reserved and routed like a paid platform order (own SKU → own warehouse, a
supplier's SKU → that supplier's dispatch), approved whatever the review rules say, made once
per after-sale."""

from datetime import timedelta

import pytest
from django.utils import timezone

from inventory import selectors as stock_selectors
from inventory import services as stock
from inventory.models import Reservation
from orders import services as orders
from orders.models import Fulfilment, LineStatus, Order, OrderEvent, OrderOrigin, OrderStatus
from suppliers.models import Dispatch
from tests.orders.conftest import channel_order, line
from tests.suppliers.dispatch_rig import make_world

RECEIVER_FIELDS = (
    "buyer_id", "receiver_name_cipher", "receiver_name_mask", "receiver_phone_cipher", "receiver_phone_mask",
    "receiver_phone_index", "receiver_address_cipher", "receiver_address_mask", "province", "city",
    "district", "receiver_fingerprint", "phone_tail",
)  # fmt: skip


@pytest.fixture
def world(store, skus):
    yield from make_world(store, skus)


def source(store, oid="SRC1", *lines):
    return orders.ingest_channel_order(
        store=store, co=channel_order(oid=oid, lines=lines or (line(1, qty=2),))
    )


def open_fulfilments(order) -> list[Fulfilment]:
    return list(
        Fulfilment.objects.filter(lines__order_line__order=order, status=Fulfilment.Status.OPEN)
        .distinct()
        .order_by("pk")
    )


def test_an_exchange_order_is_made_once_reserved_in_the_own_warehouse_and_approved(store, skus):
    src = source(store)
    sku = skus["TS-WHT-L"]
    before = Order.objects.count()
    made = orders.create_replacement_order(
        source_order=src, items=[(sku.pk, 1)], origin=OrderOrigin.EXCHANGE, after_sale_ref="AS-1"
    )
    made.refresh_from_db()
    assert (made.origin, made.source_order_id, made.after_sale_ref) == (OrderOrigin.EXCHANGE, src.pk, "AS-1")
    assert (made.store_id, made.platform, made.platform_order_id) == (src.store_id, src.platform, "SRC1-R1")
    for name in RECEIVER_FIELDS:
        assert getattr(made, name) == getattr(src, name), name
    assert made.receiver_name_cipher == "#name#" and made.receiver_phone_mask == "138****8888"
    assert made.ship_by - timezone.now() > timedelta(hours=47)
    assert (made.paid_fen, made.goods_fen, made.status, made.hold_reasons) == (0, 0, OrderStatus.APPROVED, [])
    [ln] = made.lines.all()
    assert (ln.sku_id, ln.quantity, ln.unit_price_fen, ln.paid_fen) == (sku.pk, 1, 0, 0)
    assert ln.status == LineStatus.RESERVED and ln.warehouse_id == stock.default_warehouse().pk
    assert Reservation.objects.get(source_key=ln.reservation_key).quantity == 1
    [f] = open_fulfilments(made)
    assert f.warehouse_id in (None, stock.default_warehouse().pk)
    assert stock_selectors.ledger_mismatches() == []
    for order in (made, src):
        event = OrderEvent.objects.get(
            order=order, kind="created" if order == made else "replacement_created"
        )
        assert event.message == "换货补发单 SRC1-R1 已为售后单 AS-1 创建"

    again = orders.create_replacement_order(
        source_order=src, items=[(sku.pk, 5)], origin=OrderOrigin.EXCHANGE, after_sale_ref="AS-1"
    )
    assert again.pk == made.pk and Order.objects.count() == before + 1
    assert Reservation.objects.filter(source_key=ln.reservation_key).count() == 1

    # another after-sale of the same order: its own order, numbered on
    other = orders.create_replacement_order(
        source_order=src, items=[(skus["CAP-RED"].pk, 2)], origin=OrderOrigin.REISSUE, after_sale_ref="AS-2"
    )
    assert other.platform_order_id == "SRC1-R2" and other.origin == OrderOrigin.REISSUE
    assert (
        OrderEvent.objects.get(order=other, kind="created").message == "补寄单 SRC1-R2 已为售后单 AS-2 创建"
    )
    assert stock_selectors.ledger_mismatches() == []


def test_review_rules_do_not_hold_a_replacement(store, skus):
    orders.set_rule(kind="auto_approve", enabled=False)
    orders.set_rule(kind="amount_over", enabled=True, threshold_fen=0)
    src = source(store, "SRC2", line(1, qty=1))
    assert src.status != OrderStatus.APPROVED  # a platform order waits for review
    made = orders.create_replacement_order(
        source_order=src, items=[(skus["CAP-RED"].pk, 1)], origin=OrderOrigin.REISSUE, after_sale_ref="AS-9"
    )
    assert made.status == OrderStatus.APPROVED and open_fulfilments(made)


def test_a_replacement_short_of_stock_is_held_not_lost(store, skus):
    src = source(store, "SRC3")
    made = orders.create_replacement_order(
        source_order=src, items=[(skus["TS-BLK-M"].pk, 3)], origin=OrderOrigin.EXCHANGE, after_sale_ref="AS-3"
    )
    assert made.status == OrderStatus.HELD and made.hold_reasons == ["stock_short"]
    assert made.lines.get().status == LineStatus.OUT_OF_STOCK and not open_fulfilments(made)
    assert stock_selectors.ledger_mismatches() == []


def shipped(order) -> Order:
    """Ship the order's parcels (a number typed by hand): an after-sale comes after shipment."""
    from logistics import services as parcels
    from logistics.models import Parcel
    from logistics.shipping import ship_parcels

    parcels.ensure_parcels(fulfilments=open_fulfilments(order))
    ids = list(Parcel.objects.filter(lines__order_line__order=order).values_list("pk", flat=True).distinct())
    for n, pk in enumerate(ids):
        Parcel.objects.filter(pk=pk).update(
            status="numbered", carrier="zto", tracking_no=f"ZT9{order.pk:05d}{n:04d}"
        )
    assert ship_parcels(ids).ok
    order.refresh_from_db()
    assert order.status == OrderStatus.SHIPPED
    return order


def test_a_suppliers_sku_becomes_that_suppliers_dispatch(world):
    src = shipped(world.order("SRC4", line(1, qty=1, price=3000)))
    made = orders.create_replacement_order(
        source_order=src,
        items=[(world.skus["TEA-1"].pk, 1), (world.skus["TS-WHT-L"].pk, 1)],
        origin=OrderOrigin.REISSUE,
        after_sale_ref="AS-4",
    )
    assert made.status == OrderStatus.APPROVED
    by_sku = {ln.sku_id: ln for ln in made.lines.all()}
    assert by_sku[world.skus["TEA-1"].pk].warehouse_id == world.tea.warehouse_id
    assert by_sku[world.skus["TS-WHT-L"].pk].warehouse_id == stock.default_warehouse().pk
    dispatch = Dispatch.objects.filter(lines__order_line__order=made).distinct().get()
    assert dispatch.supplier_id == world.tea.pk and dispatch.amount_fen == 0
    assert [(x.order_line.sku_id, x.quantity) for x in dispatch.lines.all()] == [(world.skus["TEA-1"].pk, 1)]
    assert dispatch.ship_by == made.ship_by
    assert stock_selectors.ledger_mismatches() == []

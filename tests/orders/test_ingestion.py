from dataclasses import replace

import pytest

from channels.types import OrderStatus as CS
from inventory.models import Listing, StockLevel
from inventory.sync import match_listing
from orders import services
from orders.models import LineStatus, Order, OrderEvent, OrderStatus
from tests.orders.conftest import channel_order, later, line


def reserved(sku) -> int:
    return StockLevel.objects.get(sku=sku).reserved


def test_paid_order_is_reserved_and_auto_approved(store, skus):
    order = services.ingest_channel_order(store=store, co=channel_order(lines=(line(1, qty=2),)))
    assert order.status == OrderStatus.APPROVED
    assert order.lines.get().status == LineStatus.RESERVED
    assert reserved(skus["TS-WHT-L"]) == 2
    assert list(order.events.values_list("kind", flat=True)) == ["created", "paid", "status_changed"]
    assert order.phone_tail == "8888" and order.receiver_phone_mask == "138****8888"


def test_unpaid_order_waits_and_reserves_on_payment(store, skus):
    co = channel_order(status=CS.UNPAID)
    order = services.ingest_channel_order(store=store, co=co)
    assert order.status == OrderStatus.PENDING_PAYMENT and reserved(skus["TS-WHT-L"]) == 0
    order = services.ingest_channel_order(store=store, co=later(co, status=CS.PAID, platform_status="2"))
    assert order.status == OrderStatus.APPROVED and reserved(skus["TS-WHT-L"]) == 1


def test_the_same_snapshot_twice_changes_nothing(store, skus):
    co = channel_order()
    services.ingest_channel_order(store=store, co=co)
    events_before = OrderEvent.objects.count()
    services.ingest_channel_order(store=store, co=co)
    assert OrderEvent.objects.count() == events_before
    assert reserved(skus["TS-WHT-L"]) == 1 and Order.objects.count() == 1


def test_a_stale_snapshot_never_overwrites_a_newer_one(store, skus):
    paid = channel_order(buyer_remark="")
    shipped = later(paid, 600, status=CS.SHIPPED, platform_status="3")
    services.ingest_channel_order(store=store, co=shipped)  # the newer one arrives first (push)
    order = services.ingest_channel_order(store=store, co=paid)  # the older one from a pull
    assert order.channel_status == "shipped" and order.platform_status == "3"
    assert order.status == OrderStatus.SHIPPED
    assert reserved(skus["TS-WHT-L"]) == 0  # shipped: the reservation was consumed
    assert StockLevel.objects.get(sku=skus["TS-WHT-L"]).on_hand == 9


def test_out_of_order_statuses_with_equal_times_follow_the_progression(store, skus):
    paid = channel_order()
    cancelled = replace(paid, status=CS.CANCELLED, platform_status="4")
    services.ingest_channel_order(store=store, co=cancelled)
    order = services.ingest_channel_order(store=store, co=paid)
    assert order.status == OrderStatus.CANCELLED


def test_buyer_cancellation_releases_stock(store, skus):
    co = channel_order(lines=(line(1, qty=3),))
    services.ingest_channel_order(store=store, co=co)
    assert reserved(skus["TS-WHT-L"]) == 3
    order = services.ingest_channel_order(store=store, co=later(co, status=CS.CANCELLED, platform_status="4"))
    assert order.status == OrderStatus.CANCELLED and reserved(skus["TS-WHT-L"]) == 0
    assert order.lines.get().status == LineStatus.CANCELLED


def test_refund_before_shipment_releases_that_line_only(store, skus):
    co = channel_order(lines=(line(1), line(2, "CAP-RED")))
    services.ingest_channel_order(store=store, co=co)
    refunded = later(co, lines=(line(1), line(2, "CAP-RED", refund_state="refunded")))
    order = services.ingest_channel_order(store=store, co=refunded)
    assert reserved(skus["TS-WHT-L"]) == 1 and reserved(skus["CAP-RED"]) == 0
    assert order.lines.get(platform_line_id="L2").status == LineStatus.REFUNDED
    assert order.is_refunding


def test_short_stock_marks_the_line_and_holds_the_order(store, skus):
    order = services.ingest_channel_order(store=store, co=channel_order(lines=(line(1, "TS-BLK-M", qty=2),)))
    assert order.status == OrderStatus.HELD and order.hold_reasons == ["stock_short"]
    assert order.lines.get().status == LineStatus.OUT_OF_STOCK and order.is_out_of_stock


def test_unmatched_line_waits_and_proceeds_once_matched(store, skus):
    order = services.ingest_channel_order(store=store, co=channel_order(lines=(line(1, "NEW-CODE"),)))
    assert order.status == OrderStatus.HELD and order.hold_reasons == ["unmatched"]
    listing = Listing.objects.get(store=store, merchant_code="NEW-CODE")
    assert listing.match == Listing.Match.UNMATCHED
    match_listing(listing=listing, sku=skus["CAP-RED"])
    assert services.rematch_waiting_lines(listing_id=listing.pk) == 1
    order.refresh_from_db()
    assert order.status == OrderStatus.APPROVED and reserved(skus["CAP-RED"]) == 1


def test_address_change_after_approval_holds_the_order(store, skus):
    co = channel_order()
    services.ingest_channel_order(store=store, co=co)
    from tests.orders.conftest import receiver

    order = services.ingest_channel_order(store=store, co=later(co, receiver=receiver(phone_index="idx-139")))
    assert order.status == OrderStatus.HELD and "address_changed" in order.hold_reasons
    assert order.events.filter(kind="address_changed").exists()


def test_platform_risk_holds(store, skus):
    order = services.ingest_channel_order(store=store, co=channel_order(ship_blocked_reason="risk review"))
    assert order.status == OrderStatus.HELD and order.hold_reasons == ["platform_risk"]


@pytest.mark.parametrize(
    ("field", "reason"), [("buyer_remark", "buyer_remark"), ("seller_remark", "seller_remark")]
)
def test_remarks_hold(store, skus, field, reason):
    order = services.ingest_channel_order(store=store, co=channel_order(**{field: "请发顺丰"}))
    assert order.status == OrderStatus.HELD and order.hold_reasons == [reason]


def test_amount_rule_and_disabled_rules(store, skus):
    services.set_rule(kind="amount_over", enabled=True, threshold_fen=5000)
    order = services.ingest_channel_order(store=store, co=channel_order())
    assert order.hold_reasons == ["amount_over"]
    services.set_rule(kind="buyer_remark", enabled=False)
    services.set_rule(kind="amount_over", enabled=False)
    other = services.ingest_channel_order(
        store=store, co=channel_order(oid="6920000000000000009", buyer_remark="hi")
    )
    assert other.status == OrderStatus.APPROVED


def test_no_auto_approve_leaves_orders_to_review(store, skus):
    services.set_rule(kind="auto_approve", enabled=False)
    order = services.ingest_channel_order(store=store, co=channel_order())
    assert order.status == OrderStatus.TO_REVIEW


def test_tracking_numbers_from_the_platform_are_searchable(store, skus):
    from channels.types import Package
    from orders.selectors import OrderFilters, apply_filters

    co = channel_order(
        status=CS.SHIPPED, packages=(Package(tracking_no="ZT7788990011", carrier_code="zhongtong"),)
    )
    order = services.ingest_channel_order(store=store, co=co)
    assert order.tracking_numbers == ["ZT7788990011"]
    found = apply_filters(Order.objects.all(), OrderFilters(q="ZT7788990011"))
    assert list(found) == [order]


def test_a_version_whose_ingestion_task_was_lost_is_swept_in(store, skus):
    from channels.services import store_order_version

    co = channel_order(oid="6929999999999999999")
    # Stored by the channel layer; the OrderChanged task never ran (the test transaction
    # never commits, so no after-commit delivery happens — as if the broker were down).
    store_order_version(store=store, order=co, payload={"order_id": co.platform_order_id}, source="pull")
    assert not Order.objects.filter(platform_order_id=co.platform_order_id).exists()
    assert services.reconcile_ingestion() == 1
    order = Order.objects.get(platform_order_id=co.platform_order_id)
    assert order.status == OrderStatus.APPROVED and reserved(skus["TS-WHT-L"]) == 1
    assert services.reconcile_ingestion() == 0  # nothing left behind, nothing applied twice
    newer = later(co, status=CS.CANCELLED, platform_status="4")
    store_order_version(
        store=store, order=newer, payload={"order_id": co.platform_order_id, "v": 2}, source="push"
    )
    assert services.reconcile_ingestion() == 1
    assert Order.objects.get(pk=order.pk).status == OrderStatus.CANCELLED and reserved(skus["TS-WHT-L"]) == 0

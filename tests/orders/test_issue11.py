"""Issue 11, orders: each defect's test, named after it."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db.models import Sum

from channels.types import OrderStatus as ChannelStatus
from inventory.models import StockLevel
from inventory.selectors import ledger_mismatches
from orders import services
from orders.models import Fulfilment, FulfilmentLine, LineStatus, Order
from tests.conftest import OWNER_PASSWORD
from tests.orders.conftest import T0, channel_order, later, line


def ingest(store, oid, **kw) -> Order:
    return services.ingest_channel_order(store=store, co=channel_order(oid=oid, **kw))


def assert_lines_add_up(*orders: Order) -> None:
    """The invariant: per live order line, its fulfilment lines add up to the line's quantity,
    and every order holds its lines in at most one open fulfilment per line."""
    for order in orders:
        for ol in order.lines.exclude(status__in=[LineStatus.CANCELLED, LineStatus.REFUNDED]):
            total = FulfilmentLine.objects.filter(order_line=ol).aggregate(n=Sum("quantity"))["n"]
            assert total == ol.quantity, (order.platform_order_id, ol.platform_line_id, total)


@pytest.fixture
def owner(alpha_client):
    response = alpha_client.post("/accounts/login/", {"username": "alpha-owner", "password": OWNER_PASSWORD})
    assert response.status_code == 302
    return alpha_client


def test_issue11_d1_merge_after_a_partial_split_sums_per_line(in_alpha, store, skus, owner):
    services.set_rule(kind="auto_merge", enabled=False)
    a = ingest(store, "D1A", lines=(line(1, qty=3), line(2, "CAP-RED", qty=1)))
    b = ingest(store, "D1B", lines=(line(1, "CAP-RED", qty=2),))
    l1 = a.lines.get(platform_line_id="L1")
    owner.post(f"/orders/{a.pk}/split/", {f"qty_{l1.pk}": "1"})
    assert FulfilmentLine.objects.filter(order_line=l1).count() == 2  # L1 in two open shipments

    response = owner.post(f"/orders/{a.pk}/merge/", {"ids": [b.pk]}, follow=True)
    assert response.status_code == 200
    target = Fulfilment.objects.get(lines__order_line=l1)
    assert f"已合并到包裹 {target.pk}。" in response.content.decode()
    assert target.is_merged and target.status == Fulfilment.Status.OPEN
    assert sorted(
        target.lines.values_list(
            "order_line__order__platform_order_id", "order_line__platform_line_id", "quantity"
        )
    ) == [
        ("D1A", "L1", 3),
        ("D1A", "L2", 1),
        ("D1B", "L1", 2),
    ]
    assert Fulfilment.objects.filter(status=Fulfilment.Status.OPEN).count() == 1
    assert_lines_add_up(a, b)


def _apply(path: str, store, co) -> None:
    if path == "one_by_one":
        services.ingest_channel_order(store=store, co=co)
    else:
        services.ingest_batch(store=store, items=[(co, None)])


@pytest.mark.parametrize("path", ["one_by_one", "batch"])
def test_issue11_d2_an_order_held_before_payment_reserves_when_paid_and_ships_from_stock(
    in_alpha, store, skus, path
):
    unpaid = channel_order("D2", status=ChannelStatus.UNPAID, lines=(line(1, qty=2),))
    _apply(path, store, unpaid)
    order = services.hold(order=Order.objects.get(platform_order_id="D2"), actor=None, reason="等买家确认")
    assert order.status == "held"

    _apply(path, store, later(unpaid, status=ChannelStatus.PAID, platform_status="2", paid_at=T0))
    order.refresh_from_db()
    assert order.status == "held" and order.hold_reasons == ["manual"]  # the hand-made hold stays
    assert order.lines.get().status == LineStatus.RESERVED
    assert StockLevel.objects.get(sku=skus["TS-WHT-L"]).reserved == 2
    assert order.events.filter(kind="paid").count() == 1

    _apply(path, store, later(unpaid, 120, status=ChannelStatus.SHIPPED, platform_status="3", paid_at=T0))
    order.refresh_from_db()
    level = StockLevel.objects.get(sku=skus["TS-WHT-L"])
    assert order.status == "shipped" and order.lines.get().status == LineStatus.SHIPPED
    assert (level.on_hand, level.reserved) == (10 - 2, 0)
    assert not ledger_mismatches()


def test_issue11_d3_a_platform_shipment_of_one_merged_order_moves_its_lines_out(in_alpha, store, skus):
    a_co = channel_order("D3A", lines=(line(1, qty=2), line(2, "CAP-RED", qty=1)))
    a = services.ingest_channel_order(store=store, co=a_co)
    b = ingest(store, "D3B", lines=(line(1, qty=3),))  # same receiver: merged automatically
    merged = Fulfilment.objects.filter(lines__order_line__order=a).distinct().get()
    assert merged.is_merged and Fulfilment.objects.get(lines__order_line__order=b) == merged
    assert StockLevel.objects.get(sku=skus["TS-WHT-L"]).reserved == 5

    services.ingest_channel_order(
        store=store, co=later(a_co, status=ChannelStatus.SHIPPED, platform_status="3")
    )
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.status, b.status) == ("shipped", "approved")
    merged.refresh_from_db()
    assert merged.status == Fulfilment.Status.OPEN and not merged.is_merged  # B's parcel, B's alone
    assert sorted(merged.lines.values_list("order_line__order__platform_order_id", "quantity")) == [
        ("D3B", 3)
    ]
    shipped = Fulfilment.objects.filter(lines__order_line__order=a).distinct().get()
    assert shipped.status == Fulfilment.Status.SHIPPED and shipped != merged
    assert sorted(shipped.lines.values_list("order_line__platform_line_id", "quantity")) == [
        ("L1", 2),
        ("L2", 1),
    ]
    level = StockLevel.objects.get(sku=skus["TS-WHT-L"])
    assert (level.on_hand, level.reserved) == (10 - 2, 3)  # B's reservation is still live
    assert_lines_add_up(a, b)

    # B goes on with its one parcel: a later platform version gives it no second fulfilment.
    services.ingest_channel_order(
        store=store, co=later(channel_order("D3B", lines=(line(1, qty=3),)), seller_remark="")
    )
    services.set_rule(kind="auto_merge", enabled=True)
    services._open_fulfilment(b)
    assert Fulfilment.objects.filter(lines__order_line__order=b).distinct().get() == merged
    assert not ledger_mismatches()


def test_issue11_d2_an_order_held_before_payment_is_released_to_wait_for_payment(in_alpha, store, skus):
    unpaid = channel_order("D2R", status=ChannelStatus.UNPAID, lines=(line(1, qty=2),))
    order = services.ingest_channel_order(store=store, co=unpaid)
    order = services.hold(order=order, actor=None, reason="等买家确认")
    with pytest.raises(ValidationError, match="尚未付款"):
        services.approve(order=order, actor=None)
    order = services.release(order=order, actor=None)
    assert order.status == "pending_payment"  # not approved, nothing reserved, while unpaid
    assert order.lines.get().status == LineStatus.PENDING
    assert StockLevel.objects.get(sku=skus["TS-WHT-L"]).reserved == 0
    services.ingest_channel_order(
        store=store, co=later(unpaid, status=ChannelStatus.PAID, platform_status="2", paid_at=T0)
    )
    order.refresh_from_db()
    assert order.status == "approved" and order.lines.get().status == LineStatus.RESERVED
    assert StockLevel.objects.get(sku=skus["TS-WHT-L"]).reserved == 2
    assert not ledger_mismatches()


def test_issue11_d3_cancelling_one_merged_order_leaves_the_other_its_own_parcel(in_alpha, store, skus):
    a = ingest(store, "D3C", lines=(line(1, qty=2),))
    b = ingest(store, "D3D", lines=(line(1, "CAP-RED", qty=1),))
    merged = Fulfilment.objects.filter(lines__order_line__order=a).distinct().get()
    assert merged.is_merged
    services.cancel(order=a, actor=None, reason="买家取消")
    merged.refresh_from_db()
    assert merged.status == Fulfilment.Status.OPEN and not merged.is_merged
    assert list(merged.lines.values_list("order_line__order__platform_order_id", "quantity")) == [("D3D", 1)]
    assert_lines_add_up(b)
    assert not FulfilmentLine.objects.filter(order_line__order=a).exists()

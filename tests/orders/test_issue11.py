"""Issue 11, orders: each defect's test, named after it."""

from __future__ import annotations

import pytest
from django.db.models import Sum

from orders import services
from orders.models import Fulfilment, FulfilmentLine, LineStatus, Order
from tests.conftest import OWNER_PASSWORD
from tests.orders.conftest import channel_order, line


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

import pytest
from django.core.exceptions import ValidationError
from django.db.models import Sum

from inventory.models import StockLevel
from orders import services
from orders.models import Fulfilment, FulfilmentLine, OrderStatus
from orders.status import InvalidTransition
from tests.orders.conftest import channel_order, line


def ingest(store, oid, **kw):
    return services.ingest_channel_order(store=store, co=channel_order(oid=oid, **kw))


def fulfilment_quantities(order) -> dict[str, int]:
    rows = (
        FulfilmentLine.objects.filter(order_line__order=order)
        .values("order_line__platform_line_id")
        .annotate(n=Sum("quantity"))
    )
    return {r["order_line__platform_line_id"]: r["n"] for r in rows}


def test_hold_release_approve_cancel_with_events(store, skus):
    order = ingest(store, "A1")
    order = services.hold(order=order, actor=None, reason="buyer asked to wait")
    assert order.status == OrderStatus.HELD and order.hold_reasons == ["manual"]
    assert not Fulfilment.objects.filter(lines__order_line__order=order).exists()
    order = services.release(order=order, actor=None)
    assert order.status == OrderStatus.APPROVED
    order = services.cancel(order=order, actor=None, reason="duplicate")
    assert order.status == OrderStatus.CANCELLED
    assert StockLevel.objects.get(sku=skus["TS-WHT-L"]).reserved == 0
    assert list(order.events.filter(source="user").values_list("message", flat=True)) == [
        "buyer asked to wait",
        "released from hold",
        "approved automatically",  # release runs the review again
        "duplicate",
    ]


def test_invalid_transitions_raise_clear_errors(store, skus):
    order = services.cancel(order=ingest(store, "A2"), actor=None, reason="x")
    with pytest.raises(InvalidTransition, match="cannot go from cancelled to approved"):
        services.approve(order=order, actor=None)
    with pytest.raises(ValidationError):
        services.hold(order=ingest(store, "A3"), actor=None, reason=" ")


def test_approving_a_short_order_by_hand_is_refused(store, skus):
    order = ingest(store, "A4", lines=(line(1, "TS-BLK-M", qty=5),))
    with pytest.raises(ValidationError):
        services.approve(order=order, actor=None)


def test_orders_to_the_same_receiver_merge_automatically_and_unmerge(store, skus):
    a = ingest(store, "M1", lines=(line(1, qty=2),))
    b = ingest(store, "M2", lines=(line(1, "CAP-RED", qty=1),))
    fa = Fulfilment.objects.get(lines__order_line__order=a)
    assert Fulfilment.objects.filter(lines__order_line__order=b).get() == fa and fa.is_merged
    parts = services.unmerge(fulfilment=fa, actor=None)
    assert len(parts) == 2
    assert fulfilment_quantities(a) == {"L1": 2} and fulfilment_quantities(b) == {"L1": 1}
    merged = services.merge(orders=[a, b], actor=None)
    assert set(merged.lines.values_list("order_line__order_id", flat=True)) == {a.pk, b.pk}
    assert fulfilment_quantities(a) == {"L1": 2} and fulfilment_quantities(b) == {"L1": 1}


def test_merge_refuses_other_receivers_or_unapproved_orders(store, skus):
    from tests.orders.conftest import receiver

    a = ingest(store, "N1")
    b = ingest(store, "N2", receiver=receiver(phone_index="someone-else"))
    with pytest.raises(ValidationError, match="同一收货人"):
        services.merge(orders=[a, b], actor=None)
    c = ingest(store, "N3", buyer_remark="hold me")
    with pytest.raises(ValidationError, match="待发货的订单"):
        services.merge(orders=[a, c], actor=None)


def test_split_keeps_quantities_and_amounts_exact(store, skus):
    order = ingest(store, "S1", lines=(line(1, qty=3, price=1000), line(2, "CAP-RED", qty=2, price=500)))
    l1 = order.lines.get(platform_line_id="L1")
    new = services.split(order=order, parts={l1.pk: 2}, actor=None)
    assert dict(new.lines.values_list("order_line__platform_line_id", "quantity")) == {"L1": 2}
    assert fulfilment_quantities(order) == {"L1": 3, "L2": 2}
    assert services.line_quantities_consistent(order)
    # What each shipment carries, valued from its fulfilment lines: the split-off one holds two
    # of L1, the original one L1 and both of L2; together exactly what the buyer paid.
    values = {
        f.pk: sum(fl.quantity * fl.order_line.unit_price_fen for fl in f.lines.select_related("order_line"))
        for f in Fulfilment.objects.filter(lines__order_line__order=order).distinct()
    }
    assert values == {new.pk: 2 * 1000, next(k for k in values if k != new.pk): 1 * 1000 + 2 * 500}
    assert sum(values.values()) == order.paid_fen
    with pytest.raises(ValidationError):
        services.split(order=order, parts={l1.pk: 5}, actor=None)


def test_auto_merge_is_a_merchant_rule(store, skus):
    services.set_rule(kind="auto_merge", enabled=False)
    a = ingest(store, "R1")
    b = ingest(store, "R2")
    fa = Fulfilment.objects.get(lines__order_line__order=a)
    fb = Fulfilment.objects.get(lines__order_line__order=b)
    assert fa != fb and not fa.is_merged  # same shop and receiver, but the rule is off

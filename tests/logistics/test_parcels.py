"""Parcels follow their fulfilments: default parcels, multi-parcel plans, merge/unmerge/split/
hold/cancel after parcels exist, and the shipping workbench tabs."""

import pytest
from django.core.exceptions import ValidationError

from logistics import selectors, services
from logistics.models import Parcel, ParcelLine
from orders import services as orders
from orders.models import Fulfilment, OrderStatus
from tests.orders.conftest import channel_order, line, receiver

P = Parcel.Status


def ingest(store, oid, **kw):
    return orders.ingest_channel_order(store=store, co=channel_order(oid=oid, **kw))


def fulfilment_of(order) -> Fulfilment:
    return (
        Fulfilment.objects.filter(lines__order_line__order=order, status=Fulfilment.Status.OPEN)
        .distinct()
        .get()
    )


def live(fulfilment) -> list[Parcel]:
    return list(fulfilment.parcels.exclude(status=P.CANCELLED).order_by("seq"))


def contents(parcel) -> dict[str, int]:
    return {pl.order_line.platform_line_id: pl.quantity for pl in parcel.lines.select_related("order_line")}


def test_approved_order_gets_one_default_parcel_idempotently(store, skus):
    order = ingest(store, "E1", lines=(line(1, qty=2), line(2, "CAP-RED", qty=1)))
    assert order.status == OrderStatus.APPROVED
    f = fulfilment_of(order)
    services.ensure_parcels(fulfilments=[f])
    services.ensure_parcels(fulfilments=[f])
    assert services.ensure_parcels() == 0
    [parcel] = live(f)
    assert (parcel.seq, parcel.count, parcel.status) == (1, 1, P.NEW)
    assert contents(parcel) == {"L1": 2, "L2": 1}
    assert services.parcels_consistent(f)
    # a held order's fulfilment has no parcel
    held = orders.hold(order=ingest(store, "E2", receiver=receiver("other")), actor=None, reason="wait")
    assert not Parcel.objects.filter(lines__order_line__order=held).exists()


def test_ensure_parcels_sweeps_fulfilments_made_set_based(store, skus):
    ids = [ingest(store, f"S{i}", receiver=receiver(f"r{i}")).pk for i in range(3)]
    Parcel.objects.all().delete()
    assert services.ensure_parcels() == 3
    assert services.ensure_parcels() == 0
    assert Parcel.objects.filter(lines__order_line__order_id__in=ids).distinct().count() == 3


def test_plan_multi_parcel_and_refuse_wrong_sums(store, skus):
    order = ingest(store, "MP1", lines=(line(1, qty=3), line(2, "CAP-RED", qty=2)))
    f = fulfilment_of(order)
    l1, l2 = (order.lines.get(platform_line_id=x).pk for x in ("L1", "L2"))
    with pytest.raises(ValidationError, match="共 2 件，应发 3 件"):
        services.plan_parcels(fulfilment=f, parcels=[{l1: 1}, {l1: 1, l2: 2}])
    with pytest.raises(ValidationError, match="是空的"):
        services.plan_parcels(fulfilment=f, parcels=[{l1: 3, l2: 2}, {}])
    with pytest.raises(ValidationError, match="不在本发货单"):
        services.plan_parcels(fulfilment=f, parcels=[{l1: 3, l2: 2, 999999: 1}])
    assert [contents(p) for p in live(f)] == [{"L1": 3, "L2": 2}]  # nothing half-applied
    parcels = services.plan_parcels(fulfilment=f, parcels=[{l1: 2}, {l1: 1, l2: 1}, {l2: 1}])
    assert [(p.seq, p.count) for p in parcels] == [(1, 3), (2, 3), (3, 3)]
    assert [contents(p) for p in live(f)] == [{"L1": 2}, {"L1": 1, "L2": 1}, {"L2": 1}]
    assert services.parcels_consistent(f)
    services.ensure_parcels(fulfilments=[f])  # a plan is kept
    assert len(live(f)) == 3
    # once a parcel has a number, the plan is frozen
    Parcel.objects.filter(pk=parcels[0].pk).update(status=P.NUMBERED, tracking_no="SF100")
    with pytest.raises(ValidationError, match="运单号"):
        services.plan_parcels(fulfilment=f, parcels=[{l1: 3, l2: 2}])


def test_unnumbered_parcels_follow_merge_unmerge_split_hold_cancel(store, skus):
    orders.set_rule(kind="auto_merge", enabled=False)
    a = ingest(store, "F1", lines=(line(1, qty=2),))
    b = ingest(store, "F2", lines=(line(1, "CAP-RED", qty=1),))
    fa, fb = fulfilment_of(a), fulfilment_of(b)
    assert len(live(fa)) == len(live(fb)) == 1
    merged = orders.merge(orders=[a, b], actor=None)
    [parcel] = live(merged)
    assert sorted(parcel.lines.values_list("quantity", flat=True)) == [1, 2]
    assert {o.pk for o in services.orders_of_parcel(parcel)} == {a.pk, b.pk}
    assert not Parcel.objects.filter(fulfilment__in=[fa, fb]).exists()
    own = orders.unmerge(fulfilment=merged, actor=None)
    assert [len(live(f)) for f in own] == [1, 1]
    assert all(services.parcels_consistent(f) for f in own)
    a.refresh_from_db()
    new = orders.split(order=a, parts={a.lines.get().pk: 1}, actor=None)
    [source] = Fulfilment.objects.filter(lines__order_line__order=a, status="open").exclude(pk=new.pk)
    assert [contents(p) for p in live(new)] == [{"L1": 1}]
    assert [contents(p) for p in live(source)] == [{"L1": 1}]
    assert services.parcels_consistent(source) and services.parcels_consistent(new)
    orders.hold(order=a, actor=None, reason="wait")
    assert not Parcel.objects.filter(lines__order_line__order=a).exclude(status=P.CANCELLED).exists()
    orders.cancel(order=b, actor=None, reason="dup")
    assert not Parcel.objects.filter(lines__order_line__order=b).exclude(status=P.CANCELLED).exists()
    assert not ParcelLine.objects.filter(order_line__order__in=[a, b], parcel__status=P.NEW).exists()


def test_a_numbered_parcel_blocks_changes_by_hand_but_not_the_platform(store, skus):
    orders.set_rule(kind="auto_merge", enabled=False)
    a = ingest(store, "N1", lines=(line(1, qty=2),))
    b = ingest(store, "N2", lines=(line(1, "CAP-RED", qty=1),))
    [pa] = live(fulfilment_of(a))
    Parcel.objects.filter(pk=pa.pk).update(status=P.NUMBERED, tracking_no="YT1")
    for action in (
        lambda: orders.merge(orders=[a, b], actor=None),
        lambda: orders.split(order=a, parts={a.lines.get().pk: 1}, actor=None),
        lambda: orders.hold(order=a, actor=None, reason="wait"),
        lambda: orders.cancel(order=a, actor=None, reason="dup"),
    ):
        with pytest.raises(ValidationError, match="YT1"):
            action()
    a.refresh_from_db()
    assert a.status == OrderStatus.APPROVED and live(fulfilment_of(a))[0].tracking_no == "YT1"
    # auto-merge never joins a fulfilment whose parcel has a number
    orders.set_rule(kind="auto_merge", enabled=True)
    c = ingest(store, "N3", lines=(line(1, "CAP-RED", qty=1),))
    assert fulfilment_of(c).pk != fulfilment_of(a).pk
    # the platform cancels: the parcel is cancelled, its waybill left for recycling
    orders.ingest_channel_order(
        store=store,
        co=channel_order(
            oid="N1", status=channel_order().status.CANCELLED, lines=(line(1, qty=2),), at=_later()
        ),
    )
    pa.refresh_from_db()
    assert pa.status == P.CANCELLED and "回收运单号" in pa.error and pa.seq > 1000


def _later():
    from datetime import timedelta

    from tests.orders.conftest import T0

    return T0 + timedelta(minutes=5)


def test_shipped_outside_ecbao_closes_new_parcels(store, skus):
    from channels.types import OrderStatus as CS

    order = ingest(store, "X1", lines=(line(1, qty=2),))
    f = fulfilment_of(order)
    [parcel] = live(f)
    orders.ingest_channel_order(
        store=store, co=channel_order(oid="X1", status=CS.SHIPPED, lines=(line(1, qty=2),), at=_later())
    )
    assert not Parcel.objects.filter(pk=parcel.pk).exists()
    f.refresh_from_db()
    assert f.status == Fulfilment.Status.SHIPPED and services.parcels_consistent(f)


def test_workbench_tabs_count_and_page(store, skus):
    orders.set_rule(kind="auto_merge", enabled=False)
    made = [ingest(store, f"W{i}", receiver=receiver(f"w{i}")) for i in range(5)]
    held = orders.hold(order=made[0], actor=None, reason="x")
    parcels = list(Parcel.objects.exclude(status=P.CANCELLED).order_by("id"))
    Parcel.objects.filter(pk=parcels[1].pk).update(status=P.PRINTED, tracking_no="T1")
    Parcel.objects.filter(pk=parcels[2].pk).update(status=P.SHIPPED, tracking_no="T2")
    assert selectors.tab_counts() == {"to_print": 2, "to_ship": 1, "shipped": 1}
    page = selectors.parcel_page("to_print", size=1)
    assert len(page.rows) == 1 and page.next_key
    rest = selectors.parcel_page("to_print", after=page.next_key, size=1)
    assert rest.rows[0].pk < page.rows[0].pk and rest.next_key is None
    assert held.pk not in {o.pk for p in page.rows + rest.rows for o in selectors.parcel_orders(p)}


def test_auto_merge_into_a_waiting_fulfilment_grows_its_unnumbered_parcel(store, skus):
    a = ingest(store, "J1", lines=(line(1, qty=1),))
    f = fulfilment_of(a)
    assert [contents(p) for p in live(f)] == [{"L1": 1}]
    b = ingest(store, "J2", lines=(line(1, "CAP-RED", qty=2),))  # same receiver: joins f
    assert fulfilment_of(b).pk == f.pk
    [parcel] = live(f)
    assert sorted(parcel.lines.values_list("order_line__order_id", "quantity")) == [(a.pk, 1), (b.pk, 2)]
    assert services.parcels_consistent(f)

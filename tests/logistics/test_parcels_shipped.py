"""``logistics.events.ParcelsShipped`` after parcels ship — through ``ship_parcels``, a number
entered by hand, or the platform saying so — once per transaction with every id; an after-sale's
replacement order (exchange / reissue) ships with no write-back; suppliers follow the event
(a dispatch is SHIPPED without the 5-minute sweep); the workbench tags replacement orders."""

from datetime import timedelta

import pytest

from channels.types import OrderStatus as CS
from channels.types import Package
from ecbao import events
from inventory import selectors as stock_selectors
from logistics import manual
from logistics import services as parcels
from logistics.events import ParcelsShipped
from logistics.models import Parcel, WriteBack
from logistics.shipping import ship_parcels
from orders import services as orders
from orders.models import Fulfilment, OrderOrigin, OrderStatus
from suppliers import tasks as supplier_tasks
from suppliers.models import Dispatch
from tenants.accounts.models import Role
from tests.conftest import make_user
from tests.orders.conftest import T0, channel_order, line, receiver
from tests.suppliers.dispatch_rig import make_world

P = Parcel.Status
_numbers = iter(range(7_300_000, 7_400_000))


@pytest.fixture
def published(monkeypatch):
    """Every ParcelsShipped delivered (after its commit); the suppliers' task is recorded, not sent."""
    seen: list[ParcelsShipped] = []
    sent: list[list[int]] = []
    events.subscribe(ParcelsShipped, seen.append)
    monkeypatch.setattr(supplier_tasks.follow_shipped_parcels_task, "delay", sent.append)
    yield seen, sent
    events.unsubscribe(ParcelsShipped, seen.append)


def ingest(store, oid, *lines, **kw):
    return orders.ingest_channel_order(
        store=store, co=channel_order(oid=oid, lines=lines or (line(1),), **kw)
    )


def parcel_of(order) -> Parcel:
    f = Fulfilment.objects.filter(lines__order_line__order=order, status="open").distinct().get()
    parcels.ensure_parcels(fulfilments=[f])
    return f.parcels.exclude(status=P.CANCELLED).get()


def numbered(parcel: Parcel) -> Parcel:
    Parcel.objects.filter(pk=parcel.pk).update(
        status=P.NUMBERED, carrier="zto", tracking_no=f"ZT{next(_numbers)}"
    )
    parcel.refresh_from_db()
    return parcel


def replacement(store, skus, oid="SRC1", origin=OrderOrigin.EXCHANGE, who="idx-138"):
    source = ingest(store, oid, receiver=receiver(who))
    src_parcel = numbered(parcel_of(source))
    assert ship_parcels([src_parcel.pk]).ok
    return source, orders.create_replacement_order(
        source_order=source, items=[(skus["CAP-RED"].pk, 1)], origin=origin, after_sale_ref=f"AS-{oid}"
    )


def test_a_replacement_ships_without_a_write_back_and_one_event_names_every_parcel(
    store, skus, published, django_capture_on_commit_callbacks
):
    seen, sent = published
    source, made = replacement(store, skus)
    assert made.status == OrderStatus.APPROVED
    # the same buyer's new platform order joins its parcel (auto-merge); another buyer's ships apart
    same = ingest(store, "SAME", line(1, "CAP-RED", qty=1))
    other = ingest(store, "OTHER", line(1, "CAP-RED", qty=1), receiver=receiver("idx-other"))
    a, b = numbered(parcel_of(made)), numbered(parcel_of(other))
    assert parcel_of(same) == a
    write_backs = WriteBack.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        result = ship_parcels([a.pk, b.pk])
    assert result.ok and sorted(result.shipped) == sorted([a.pk, b.pk])
    made.refresh_from_db()
    assert made.status == OrderStatus.SHIPPED and a.tracking_no in made.tracking_numbers
    assert not WriteBack.objects.filter(order=made).exists()  # the platform has no such order
    assert list(WriteBack.objects.filter(parcel=a).values_list("order_id", flat=True)) == [same.pk]
    assert WriteBack.objects.filter(order=other).count() == 1 and WriteBack.objects.count() == write_backs + 2
    assert seen == [ParcelsShipped(tuple(sorted([a.pk, b.pk])), tuple(sorted([made.pk, same.pk, other.pk])))]
    assert sent == [sorted([a.pk, b.pk])]
    assert stock_selectors.ledger_mismatches() == []

    with django_capture_on_commit_callbacks(execute=True):  # again: nothing shipped, nothing told
        assert ship_parcels([a.pk, b.pk]).already
    assert len(seen) == 1


def test_a_number_entered_by_hand_publishes_the_event(
    store, skus, published, django_capture_on_commit_callbacks
):
    seen, _sent = published
    _source, made = replacement(store, skus, "HAND", origin=OrderOrigin.REISSUE)
    with django_capture_on_commit_callbacks(execute=True):
        entry = manual.enter_tracking(made, "中通", "73100000000077")
    assert entry.shipped and not WriteBack.objects.filter(order=made).exists()
    assert seen == [ParcelsShipped((entry.parcel.pk,), (made.pk,))]


def test_a_parcel_recorded_shipped_because_the_platform_says_so_publishes_the_event(
    store, skus, published, django_capture_on_commit_callbacks
):
    seen, _sent = published
    order = ingest(store, "PLAT")
    parcel = numbered(parcel_of(order))
    with django_capture_on_commit_callbacks(execute=True):
        orders.ingest_channel_order(
            store=store,
            co=channel_order(
                oid="PLAT",
                status=CS.SHIPPED,
                at=T0 + timedelta(minutes=5),
                packages=(Package(parcel.tracking_no, "zhongtong", lines=(("L1", 1),)),),
            ),
        )
    parcel.refresh_from_db()
    assert parcel.status == P.SHIPPED
    assert seen == [ParcelsShipped((parcel.pk,), (order.pk,))]


@pytest.fixture
def world(store, skus):
    yield from make_world(store, skus)


def test_parcels_shipped_makes_a_suppliers_dispatch_shipped_without_the_sweep(
    world, published, django_capture_on_commit_callbacks
):
    _seen, sent = published
    order = world.order("TEA", line(1, "TEA-1", qty=2))
    dispatch = Dispatch.objects.filter(lines__order_line__order=order).distinct().get()
    parcel = numbered(parcel_of(order))
    with django_capture_on_commit_callbacks(execute=True):
        assert ship_parcels([parcel.pk]).ok
    dispatch.refresh_from_db()
    assert dispatch.status == Dispatch.Status.NEW  # shipping alone does not touch the dispatch
    assert sent == [[parcel.pk]]
    assert supplier_tasks.follow_shipped_parcels_task.run(sent[0]) == 1  # what the worker runs
    dispatch.refresh_from_db()
    assert dispatch.status == Dispatch.Status.SHIPPED and dispatch.shipped_at
    assert [(x.quantity, x.shipped_quantity) for x in dispatch.lines.all()] == [(2, 2)]
    assert supplier_tasks.follow_shipped_parcels_task.run(sent[0]) == 0  # delivered twice: nothing more


def test_the_workbench_tags_replacement_orders(store, skus, alpha, alpha_client):
    _source, made = replacement(store, skus, "TAG")
    _s2, reissue = replacement(store, skus, "TAG2", origin=OrderOrigin.REISSUE, who="idx-2")
    parcel_of(made), parcel_of(reissue)
    make_user(alpha, "ship-wh", Role.WAREHOUSE, "Staff-pass-2026")
    assert (
        alpha_client.post(
            "/accounts/login/", {"username": "ship-wh", "password": "Staff-pass-2026"}
        ).status_code
        == 302
    )
    page = alpha_client.get("/shipping/").content.decode()
    assert page.count('data-testid="origin-tag"') == 2
    assert ">换货</span>" in page and ">补寄</span>" in page


def test_a_write_back_of_a_replacement_order_is_never_sent(store, skus):
    """None is made (above); one that exists anyway (made by hand, an old bug) is given up unsent."""
    from logistics import writeback
    from logistics.shipping import write_back_key

    _source, made = replacement(store, skus, "WB")
    parcel = numbered(parcel_of(made))
    assert ship_parcels([parcel.pk]).ok and not WriteBack.objects.filter(order=made).exists()
    wb = WriteBack.objects.create(
        parcel=parcel, order=made, key=write_back_key(parcel.pk, made.pk), lines=[], carrier_code="zhongtong",
        tracking_no=parcel.tracking_no,
    )  # fmt: skip

    def no_platform(store):
        raise AssertionError("a replacement order's write-back reached for the platform")

    assert writeback.send(wb, connect=no_platform) == WriteBack.Status.GIVEN_UP
    wb.refresh_from_db()
    assert wb.status == WriteBack.Status.GIVEN_UP and "after-sale" in wb.last_error and wb.sent_at is None
    assert writeback.send_due(connect=no_platform) == 0

import threading
import uuid

import pytest
from django.db import DatabaseError, connection, transaction
from django_tenants.utils import schema_context

from inventory import selectors, services
from inventory.models import ComboComponent, Goods, Reservation, Sku, StockLedgerEntry, StockLevel


def make_sku(code=None, on_hand=0, **extra) -> Sku:
    goods = Goods.objects.create(name="T恤")
    sku = Sku.objects.create(
        goods=goods, merchant_code=code or f"SKU-{uuid.uuid4().hex[:8]}", name="T恤 白 L", **extra
    )
    if on_hand:
        services.receive_stock(sku=sku, quantity=on_hand, reason="opening stock")
    return sku


def level(sku) -> StockLevel:
    return StockLevel.objects.get(sku=sku)


def test_reserve_release_ship_keep_the_ledger_balanced(in_alpha):
    sku = make_sku(on_hand=10)
    assert services.reserve_stock(source_key="line:1", sku=sku, quantity=3).created
    assert (level(sku).on_hand, level(sku).reserved) == (10, 3)
    assert selectors.available(sku) == 7
    assert services.release_reservation(source_key="line:1", reason="buyer cancelled") == 1
    assert (level(sku).on_hand, level(sku).reserved) == (10, 0)
    services.reserve_stock(source_key="line:2", sku=sku, quantity=4)
    assert services.ship_reservation(source_key="line:2") == 1
    assert (level(sku).on_hand, level(sku).reserved) == (6, 0)
    kinds = list(StockLedgerEntry.objects.filter(sku=sku).order_by("id").values_list("kind", flat=True))
    assert kinds == ["receipt", "reservation", "release", "reservation", "shipment"]
    assert selectors.ledger_mismatches() == []


def test_reservation_and_release_are_idempotent(in_alpha):
    sku = make_sku(on_hand=5)
    services.reserve_stock(source_key="line:9", sku=sku, quantity=2)
    again = services.reserve_stock(source_key="line:9", sku=sku, quantity=2)
    assert not again.created
    assert level(sku).reserved == 2
    assert services.release_reservation(source_key="line:9") == 1
    assert services.release_reservation(source_key="line:9") == 0
    assert level(sku).reserved == 0
    assert Reservation.objects.get(source_key="line:9").status == Reservation.Status.RELEASED


def test_short_stock_reserves_nothing(in_alpha):
    sku = make_sku(on_hand=1)
    with pytest.raises(services.InsufficientStock):
        services.reserve_stock(source_key="line:big", sku=sku, quantity=2)
    assert level(sku).reserved == 0
    assert not Reservation.objects.filter(source_key="line:big").exists()


def test_combination_sku_reserves_all_components_or_none(in_alpha):
    shirt, cap = make_sku(on_hand=5), make_sku(on_hand=1)
    combo = make_sku(is_combo=True)
    ComboComponent.objects.create(combo=combo, component=shirt, quantity=2)
    ComboComponent.objects.create(combo=combo, component=cap, quantity=1)
    assert selectors.available(combo) == 1
    services.reserve_stock(source_key="line:c1", sku=combo, quantity=1)
    assert (level(shirt).reserved, level(cap).reserved) == (2, 1)
    with pytest.raises(services.InsufficientStock):
        services.reserve_stock(source_key="line:c2", sku=combo, quantity=1)
    assert (level(shirt).reserved, level(cap).reserved) == (2, 1)  # the shirt part was rolled back
    assert selectors.available(combo) == 0


def test_adjustments_and_counts_cannot_undercut_reservations(in_alpha):
    sku = make_sku(on_hand=5)
    services.reserve_stock(source_key="line:a", sku=sku, quantity=4)
    with pytest.raises(services.InsufficientStock):
        services.adjust_stock(sku=sku, delta=-2, reason="damaged")
    services.adjust_stock(sku=sku, delta=-1, reason="damaged")
    assert services.count_stock(sku=sku, counted=4) is None
    services.count_stock(sku=sku, counted=9)
    assert (level(sku).on_hand, level(sku).reserved) == (9, 4)
    assert selectors.ledger_mismatches() == []


def test_ledger_rows_cannot_be_changed_or_deleted(in_alpha):
    sku = make_sku(on_hand=1)
    entry = StockLedgerEntry.objects.get(sku=sku)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        StockLedgerEntry.objects.filter(pk=entry.pk).update(on_hand_delta=100)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        entry.delete()


def test_many_parallel_orders_never_take_more_than_the_last_units(django_db_blocker, alpha_schema_committed):
    """Real parallel database sessions (threads, one connection each) race for 5 units."""
    with django_db_blocker.unblock(), schema_context("alpha"):
        sku = make_sku(on_hand=5)
    racers = 24
    barrier = threading.Barrier(racers)
    outcomes: list[str] = []
    lock = threading.Lock()

    def racer(i: int) -> None:
        try:
            with django_db_blocker.unblock(), schema_context("alpha"):
                barrier.wait(timeout=10)
                try:
                    services.reserve_stock(source_key=f"race:{sku.pk}:{i}", sku=sku, quantity=1)
                    result = "ok"
                except services.InsufficientStock:
                    result = "short"
            with lock:
                outcomes.append(result)
        finally:
            connection.close()

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(racers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["ok"] * 5 + ["short"] * (racers - 5)
    with django_db_blocker.unblock(), schema_context("alpha"):
        assert (level(sku).on_hand, level(sku).reserved) == (5, 5)
        assert Reservation.objects.filter(sku=sku, status="active").count() == 5
        assert [row for row in selectors.ledger_mismatches() if row[0] == sku.pk] == []


def test_issue11_d10_a_released_key_can_be_reserved_again(in_alpha):
    """A line released (routed elsewhere, cancelled and re-paid) reserves again when asked;
    while its reservation is live, asking again reserves nothing more."""
    shirt, cap = make_sku(on_hand=5), make_sku(on_hand=5)
    combo = make_sku(is_combo=True)
    ComboComponent.objects.create(combo=combo, component=shirt, quantity=2)
    ComboComponent.objects.create(combo=combo, component=cap, quantity=1)
    for key, sku in (("line:r1", shirt), ("line:r2", combo)):
        assert services.reserve_stock(source_key=key, sku=sku, quantity=1).created
        assert services.release_reservation(source_key=key) >= 1
        assert services.reserve_stock(source_key=key, sku=sku, quantity=1).created
        assert not services.reserve_stock(source_key=key, sku=sku, quantity=1).created
    assert (level(shirt).reserved, level(cap).reserved) == (3, 1)
    assert set(
        Reservation.objects.filter(source_key__in=["line:r1", "line:r2"]).values_list("status", flat=True)
    ) == {"active"}
    # The batch path too, and a shipped key stays shipped.
    assert services.reserve_many([("line:r3", cap.pk, 2)]) == {"line:r3": True}
    services.release_reservation(source_key="line:r3")
    assert services.reserve_many([("line:r3", cap.pk, 2)]) == {"line:r3": True}
    assert services.reserve_many([("line:r3", cap.pk, 2)]) == {"line:r3": True}
    assert level(cap).reserved == 3
    services.ship_reservation(source_key="line:r1")
    assert not services.reserve_stock(source_key="line:r1", sku=shirt, quantity=1).created
    assert (level(shirt).on_hand, level(shirt).reserved) == (4, 2)
    assert selectors.ledger_mismatches() == []

"""Partial consumption of a reservation (``inventory.services.ship_reserved``)."""

import pytest

from inventory import selectors, services
from inventory.models import ComboComponent, Reservation, StockChange, StockLedgerEntry
from tests.inventory.test_stock import level, make_sku


def test_partial_shipments_consume_the_reservation_step_by_step_idempotently(in_alpha):
    sku = make_sku(on_hand=10)
    services.reserve_stock(source_key="order-line:1", sku=sku, quantity=3)
    changes = StockChange.objects.count()
    assert services.ship_reserved(source_key="order-line:1", quantity=2, key="parcel:1:line:1") == 1
    assert (level(sku).on_hand, level(sku).reserved) == (8, 1)
    r = Reservation.objects.get(source_key="order-line:1")
    assert (r.status, r.quantity) == (Reservation.Status.ACTIVE, 1)
    assert StockChange.objects.count() == changes + 1  # the stock-sync outbox hears of it
    # a retry of the same shipment changes nothing
    assert services.ship_reserved(source_key="order-line:1", quantity=2, key="parcel:1:line:1") == 0
    assert (level(sku).on_hand, level(sku).reserved) == (8, 1)
    # more than is left is refused
    with pytest.raises(ValueError, match="still reserved"):
        services.ship_reserved(source_key="order-line:1", quantity=2, key="parcel:2:line:1")
    assert services.ship_reserved(source_key="order-line:1", quantity=1, key="parcel:2:line:1") == 1
    assert Reservation.objects.get(source_key="order-line:1").status == Reservation.Status.CONSUMED
    assert (level(sku).on_hand, level(sku).reserved) == (7, 0)
    rows = StockLedgerEntry.objects.filter(kind="shipment", sku=sku).order_by("id")
    assert [(e.on_hand_delta, e.reserved_delta, e.source_id) for e in rows] == [
        (-2, -2, "parcel:1:line:1"),
        (-1, -1, "parcel:2:line:1"),
    ]
    assert selectors.ledger_mismatches() == []
    # nothing active any more: a whole-reservation ship (the platform said shipped) does nothing
    assert services.ship_reservation(source_key="order-line:1") == 0
    with pytest.raises(ValueError, match="no active reservation"):
        services.ship_reserved(source_key="order-line:1", quantity=1, key="parcel:3:line:1")


def test_the_rest_of_a_partly_shipped_reservation_goes_with_ship_reservation(in_alpha):
    sku = make_sku(on_hand=5)
    services.reserve_stock(source_key="order-line:2", sku=sku, quantity=4)
    services.ship_reserved(source_key="order-line:2", quantity=1, key="p:1")
    assert services.ship_reservation(source_key="order-line:2") == 1
    assert (level(sku).on_hand, level(sku).reserved) == (1, 0)
    assert selectors.ledger_mismatches() == []


def test_a_combination_ships_its_components(in_alpha):
    a, b = make_sku(on_hand=10), make_sku(on_hand=10)
    combo = make_sku(is_combo=True)
    ComboComponent.objects.create(combo=combo, component=a, quantity=2)
    ComboComponent.objects.create(combo=combo, component=b, quantity=1)
    services.reserve_stock(source_key="order-line:3", sku=combo, quantity=3)
    with pytest.raises(ValueError, match="several SKUs"):
        services.ship_reserved(source_key="order-line:3", quantity=1, key="p:x")
    assert services.ship_reserved(source_key="order-line:3", quantity=1, key="p:1", sku=combo) == 2
    assert (level(a).on_hand, level(a).reserved) == (8, 4)
    assert (level(b).on_hand, level(b).reserved) == (9, 2)
    assert selectors.ledger_mismatches() == []

"""Reserving many lines in one statement (``reserve_many``)."""

from __future__ import annotations

import pytest

from inventory import services as stock
from inventory.models import (
    ComboComponent,
    Goods,
    Reservation,
    Sku,
    StockChange,
    StockLedgerEntry,
    StockLevel,
)
from inventory.selectors import ledger_mismatches

pytestmark = pytest.mark.django_db


@pytest.fixture
def skus(in_alpha):
    goods = Goods.objects.create(name="帽子")
    result = {}
    for code, on_hand in (("A", 5), ("B", 2), ("C", 0)):
        result[code] = Sku.objects.create(goods=goods, merchant_code=code, name=code)
        if on_hand:
            stock.receive_stock(sku=result[code], quantity=on_hand, reason="opening")
    return result


def level(sku) -> tuple[int, int]:
    row = StockLevel.objects.get(sku=sku)
    return row.on_hand, row.reserved


def test_lines_are_served_in_the_given_order_and_the_ledger_follows_each(skus):
    a, b = skus["A"], skus["B"]
    result = stock.reserve_many(
        [("k1", a.pk, 2), ("k2", b.pk, 1), ("k3", a.pk, 3), ("k4", a.pk, 1), ("k5", b.pk, 1)]
    )
    assert result == {"k1": True, "k2": True, "k3": True, "k4": False, "k5": True}
    assert level(a) == (5, 5) and level(b) == (2, 2)
    entries = list(
        StockLedgerEntry.objects.filter(kind="reservation", sku=a)
        .order_by("id")
        .values_list("source_id", "reserved_after")
    )
    assert sorted(entries) == [("k1", 2), ("k3", 5)]
    assert StockChange.objects.filter(sku__in=[a, b]).exists()
    assert not ledger_mismatches()


def test_a_line_that_does_not_fit_leaves_the_stock_to_later_lines_that_do(skus):
    """As one by one: each line in turn takes stock if what is left covers it."""
    a = skus["A"]
    result = stock.reserve_many([("k1", a.pk, 3), ("big", a.pk, 3), ("small", a.pk, 1), ("k4", a.pk, 2)])
    assert result == {"k1": True, "big": False, "small": True, "k4": False}
    assert level(a) == (5, 4)
    assert not ledger_mismatches()


def test_repeating_a_batch_is_idempotent(skus):
    a, b = skus["A"], skus["B"]
    items = [("k1", a.pk, 2), ("k2", b.pk, 2)]
    assert stock.reserve_many(items) == {"k1": True, "k2": True}
    ledger = StockLedgerEntry.objects.count()
    assert stock.reserve_many(items) == {"k1": True, "k2": True}
    assert StockLedgerEntry.objects.count() == ledger
    assert level(a) == (5, 2) and level(b) == (2, 2)
    assert Reservation.objects.count() == 2


def test_a_sku_without_stock_row_is_short(skus):
    assert stock.reserve_many([("k", skus["C"].pk, 1)]) == {"k": False}
    assert not Reservation.objects.exists()


def test_combinations_reserve_all_components_or_nothing(skus):
    a, b = skus["A"], skus["B"]
    combo = Sku.objects.create(goods=a.goods, merchant_code="SET", name="套装", is_combo=True)
    ComboComponent.objects.create(combo=combo, component=a, quantity=1)
    ComboComponent.objects.create(combo=combo, component=b, quantity=2)
    assert stock.reserve_many([("set1", combo.pk, 1), ("set2", combo.pk, 1), ("plain", a.pk, 1)]) == {
        "set1": True,
        "set2": False,
        "plain": True,
    }
    assert level(a) == (5, 2) and level(b) == (2, 2)
    assert not ledger_mismatches()

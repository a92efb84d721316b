"""The kernel's one keyset pager (ecbao.paging): every list walks it forwards and backwards
without a gap or a repeat, ties on the leading field included, and a bad key is no key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ecbao import paging
from inventory.models import Goods, Sku

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def skus(in_alpha):
    goods = Goods.objects.create(name="g")
    rows = [Sku(goods=goods, merchant_code=f"C-{i:03d}", name=f"n{i}") for i in range(23)]
    Sku.objects.bulk_create(rows)
    # three SKUs per instant: the leading field ties, the id decides
    for n, sku in enumerate(Sku.objects.order_by("id")):
        Sku.objects.filter(pk=sku.pk).update(created_at=T0 + timedelta(seconds=n // 3))
    return list(Sku.objects.order_by("-created_at", "-id"))


def _walk(keyset, qs, size):
    seen, page = [], keyset.page(qs, size=size)
    seen += page.rows
    while page.next_key:
        page = keyset.page(qs, after=page.next_key, size=size)
        seen += page.rows
    back = []
    while page.prev_key:
        page = keyset.page(qs, before=page.prev_key, size=size)
        back = page.rows + back
    return seen, back


@pytest.mark.parametrize("size", [1, 4, 5, 23, 50])
def test_two_field_keyset_walks_forwards_and_back_with_ties(skus, size):
    keyset = paging.Keyset("-created_at", "-id")
    forward, backward = _walk(keyset, Sku.objects.all(), size)
    assert [s.pk for s in forward] == [s.pk for s in skus]
    last_page = len(skus) - (len(skus) % size or size)
    assert [s.pk for s in backward] == [s.pk for s in skus[:last_page]]


def test_text_and_id_keysets(skus):
    by_code = paging.Keyset("merchant_code")
    first = by_code.page(Sku.objects.all(), size=10)
    assert first.next_key == "C-009" and first.prev_key is None
    second = by_code.page(Sku.objects.all(), after=first.next_key, size=10)
    assert [s.merchant_code for s in second.rows][:2] == ["C-010", "C-011"]
    assert second.prev_key == "C-010"
    again = by_code.page(Sku.objects.all(), before=second.prev_key, size=10)
    assert [s.pk for s in again.rows] == [s.pk for s in first.rows]

    newest = paging.Keyset("-pk")
    ids = sorted((s.pk for s in skus), reverse=True)
    page = newest.page(Sku.objects.all(), after=str(ids[4]), size=3)
    assert [s.pk for s in page.rows] == ids[5:8]


def test_keys_round_trip_and_bad_keys_are_no_keys(skus):
    keyset = paging.Keyset("-created_at", "-id")
    sku = skus[7]
    key = keyset.key(sku)
    assert keyset.parse(Sku, key) == (sku.created_at, sku.pk)
    for bad in ("", "x", "1.2.3", "12", "99999999999999999999.1", "-.1", "1.x"):
        assert keyset.parse(Sku, bad) is None
        assert [s.pk for s in keyset.page(Sku.objects.all(), after=bad, size=3).rows] == [
            s.pk for s in skus[:3]
        ]
    with pytest.raises(ValueError):
        paging.Keyset("merchant_code", "id").parse(Sku, "a.1")  # text may only come last

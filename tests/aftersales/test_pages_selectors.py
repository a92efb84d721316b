"""aftersales.selectors: queue counts, the deadline order and its pages, the countdown words,
the reasons report (refund rate by SKU, shop and supplier) — on real PostgreSQL rows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.translation import override

from aftersales import selectors
from tests.aftersales import pages_rig as rig
from tests.suppliers.factories import make_supplier

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(in_alpha):
    return rig.store()


def test_queue_counts_and_deadline_order(shop):
    s = rig.sku("TS-1")
    late = rig.after_sale(rig.order(shop, lines=[(s, 1, 990)]), hours=30)
    soon = rig.after_sale(rig.order(shop, lines=[(s, 1, 990)]), hours=2)
    none = rig.after_sale(rig.order(shop, lines=[(s, 1, 990)]))
    rig.after_sale(rig.order(shop, lines=[(s, 1, 990)]), queue="done")
    counts = selectors.queue_counts()
    assert counts["pending"] == 3 and counts["done"] == 1 and counts["all"] == 4
    assert counts["closed"] == 0
    rows = list(selectors.after_sales(queue="pending"))
    assert [r.pk for r in rows] == [soon.pk, late.pk, none.pk]
    # pages of one keep the order across the null deadline, both ways
    p1 = selectors.page(selectors.after_sales(queue="pending"), queue="pending", size=1)
    p2 = selectors.page(selectors.after_sales(queue="pending"), queue="pending", after=p1.next_key, size=1)
    p3 = selectors.page(selectors.after_sales(queue="pending"), queue="pending", after=p2.next_key, size=1)
    assert [p1.rows[0].pk, p2.rows[0].pk, p3.rows[0].pk] == [soon.pk, late.pk, none.pk]
    assert p3.next_key is None
    back = selectors.page(selectors.after_sales(queue="pending"), queue="pending", before=p3.prev_key, size=1)
    assert [r.pk for r in back.rows] == [late.pk]
    back = selectors.page(selectors.after_sales(queue="pending"), queue="pending", before=p2.prev_key, size=1)
    assert [r.pk for r in back.rows] == [soon.pk]


def test_filters_and_search(shop):
    other = rig.store("快手小店", "kuaishou", "3001")
    s = rig.sku("TS-2")
    a = rig.after_sale(rig.order(shop, oid="6911", lines=[(s, 1, 990)]), tracking="SF123456")
    b = rig.after_sale(rig.order(other, oid="6922", lines=[(s, 1, 990)]), type="return_refund")
    assert list(selectors.after_sales(platform="kuaishou")) == [b]
    assert list(selectors.after_sales(store_id=shop.pk)) == [a]
    assert list(selectors.after_sales(type="return_refund")) == [b]
    assert list(selectors.after_sales(q="SF1234")) == [a]
    assert list(selectors.after_sales(q="6922")) == [b]
    assert list(selectors.after_sales(q=b.platform_after_sale_id)) == [b]
    assert selectors.queue_counts(platform="kuaishou")["pending"] == 1


def test_countdown_words():
    now = timezone.now()
    with override("zh-hans"):
        assert selectors.countdown(now + timedelta(hours=3, minutes=12, seconds=5), now=now) == (
            "还剩 3 小时 12 分",
            "countdown-urgent",
        )
        assert selectors.countdown(now - timedelta(minutes=20), now=now) == (
            "已超时 20 分",
            "countdown-overdue",
        )
        assert selectors.countdown(now + timedelta(days=2, hours=1), now=now)[1] == "countdown-ok"
    assert selectors.countdown(None) == ("", "")


def test_reasons_report_by_sku_store_and_supplier(shop):
    now = timezone.now()
    since, until = now - timedelta(days=30), now + timedelta(minutes=1)
    a, b = rig.sku("A-1"), rig.sku("B-1")
    tea = make_supplier("HZT", "杭州茶厂")
    # shipped in the period: 4 orders with A (5 pieces), 1 with B
    orders = [
        rig.order(shop, lines=[(a, q, 990 * q)], shipped_at=now - timedelta(days=1)) for q in (1, 1, 1, 2)
    ]
    rig.order(shop, lines=[(b, 1, 500)], shipped_at=now - timedelta(days=2))
    rig.order(shop, lines=[(a, 3, 2970)], shipped_at=now - timedelta(days=60))  # before the period
    rig.after_sale(orders[0], queue="done", refund_fen=990, reason="质量问题", supplier=tea)
    rig.after_sale(orders[3], queue="pending", refund_fen=1980, reason="质量问题")
    rig.after_sale(orders[1], queue="closed", refund_fen=990, reason="不想要了")
    rig.after_sale(orders[2], refund_fen=990, applied_at=now - timedelta(days=40))  # before the period

    by_sku = selectors.reasons_report(since=since, until=until, by="sku")
    assert len(by_sku) == 1
    row = by_sku[0]
    assert row["key"] == a.pk and row["after_sales"] == 3 and row["pieces"] == 4
    assert row["refund_fen"] == 990 + 1980 + 990 and row["refunded"] == 1 and row["refunded_fen"] == 990
    assert row["shipped_orders"] == 4 and row["shipped_pieces"] == 5
    assert row["rate"] == pytest.approx(3 / 4) and row["piece_rate"] == pytest.approx(4 / 5)
    assert row["reasons"] == [("质量问题", 2), ("不想要了", 1)]

    [by_store] = selectors.reasons_report(since=since, until=until, by="store")
    assert by_store["key"] == shop.pk and by_store["after_sales"] == 3 and by_store["shipped_orders"] == 5
    assert by_store["rate"] == pytest.approx(3 / 5)

    by_supplier = {r["key"]: r for r in selectors.reasons_report(since=since, until=until, by="supplier")}
    assert by_supplier[tea.pk]["after_sales"] == 1 and by_supplier[tea.pk]["rate"] is None
    assert by_supplier[None]["after_sales"] == 2 and by_supplier[None]["shipped_orders"] == 5
    with pytest.raises(ValueError):
        selectors.reasons_report(since=since, until=until, by="colour")

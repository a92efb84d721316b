"""Set-based ingestion (``ingest_batch``) gives the same orders as one-by-one ingestion.

The same catalogue and the same channel orders go into two tenants: alpha through
``ingest_batch`` (one call), beta through ``ingest_channel_order`` one order at a time, in
payment order. Everything an operator or the stock can see must be equal.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from datetime import timedelta

import pytest
from django_tenants.utils import schema_context

from channels.models import Store
from channels.types import OrderStatus, Platform
from inventory import services as stock
from inventory.models import ComboComponent, Goods, Reservation, Sku, StockLedgerEntry, StockLevel
from inventory.selectors import ledger_mismatches
from orders import services
from orders.models import Fulfilment, LineStatus, Order, OrderEvent
from tests.orders.conftest import T0, channel_order, later, line, receiver


def catalogue() -> Store:
    goods = Goods.objects.create(name="纯棉T恤")
    skus = {}
    for code, on_hand in (("TS-WHT-L", 10), ("TS-BLK-M", 1), ("CAP-RED", 5)):
        skus[code] = Sku.objects.create(goods=goods, merchant_code=code, name=code)
        stock.receive_stock(sku=skus[code], quantity=on_hand, reason="opening")
    combo = Sku.objects.create(goods=goods, merchant_code="SET-TS-CAP", name="套装", is_combo=True)
    ComboComponent.objects.create(combo=combo, component=skus["TS-WHT-L"], quantity=1)
    ComboComponent.objects.create(combo=combo, component=skus["CAP-RED"], quantity=2)
    return Store.objects.create(platform="douyin", platform_shop_id="2001", name="抖店旗舰店", app_key="k")


def scenario():
    """(orders known before the batch, the batch) — newest versions last."""

    def paid(n, *lines, minutes, **kw):
        co = channel_order(
            f"69{n:017d}",
            lines=lines,
            receiver=kw.pop("receiver", receiver(f"idx-{n}")),
            at=T0 + timedelta(minutes=minutes),
            **kw,
        )
        return replace(co, paid_at=T0 + timedelta(minutes=minutes))

    known = paid(20, line(1, "CAP-RED"), minutes=-30)
    batch = [
        paid(1, line(1, "TS-WHT-L", 2), line(2, "CAP-RED"), minutes=1),  # approved
        paid(2, line(1, "TS-BLK-M"), minutes=2),  # takes the last black one
        paid(3, line(1, "TS-BLK-M"), minutes=3),  # stock short → held
        paid(4, line(1, "CAP-RED"), minutes=4, buyer_remark="周末送货"),  # held: remark
        paid(5, line(1, "NOPE-404"), minutes=5),  # held: unmatched
        channel_order("69" + f"{6:017d}", status=OrderStatus.UNPAID, receiver=receiver("idx-6")),
        paid(7, line(1, "TS-WHT-L"), minutes=7, receiver=receiver("idx-1")),  # same receiver as 1 → merged
        paid(8, line(1, "SET-TS-CAP"), minutes=8),  # combination: components reserved
        paid(9, line(1, "TS-WHT-L"), minutes=9, status=OrderStatus.SHIPPED),  # first seen shipped
        paid(11, line(1, "TS-WHT-L"), line(2, "CAP-RED", refund_state="refunded"), minutes=11),
        # unpaid with an unmatched SKU: the flag is set on both paths (issue 11 d4)
        channel_order("69" + f"{12:017d}", status=OrderStatus.UNPAID, lines=(line(1, "NOPE-405"),)),
        later(known, 120, status=OrderStatus.CANCELLED, platform_status="4"),  # update of a known order
    ]
    unpaid_then_paid = paid(10, line(1, "CAP-RED"), minutes=10)
    batch.insert(9, replace(unpaid_then_paid, status=OrderStatus.UNPAID, updated_at=T0, paid_at=None))
    batch.append(unpaid_then_paid)
    return known, batch


def newest(orders):
    result = {}
    for co in orders:
        cur = result.get(co.platform_order_id)
        if cur is None or (co.updated_at, co.status.rank) > (cur.updated_at, cur.status.rank):
            result[co.platform_order_id] = co
    return list(result.values())


# Differ between the tenants by construction: row ids, write times, the parent's id.
_NOT_COMPARED = {"id", "created_at", "updated_at", "order"}


def every_field(obj) -> dict:
    """Every column of a row; relations by what they point at (ids differ between tenants)."""
    result = {}
    for field in obj._meta.concrete_fields:
        if field.name in _NOT_COMPARED:
            continue
        value = getattr(obj, field.name)
        if field.is_relation and value is not None:
            value = {
                "store": lambda x: x.platform_shop_id,
                "sku": lambda x: x.merchant_code,
                "warehouse": lambda x: x.code,
            }.get(field.name, lambda x: (x.platform_product_id, x.platform_sku_id))(value)
        result[field.name] = value
    return result


def describe() -> dict:
    orders = {}
    for order in Order.objects.prefetch_related("lines__sku", "lines__listing", "events"):
        fulfilments = Fulfilment.objects.filter(lines__order_line__order=order).distinct()
        orders[order.platform_order_id] = {
            "row": every_field(order),
            "line_rows": [every_field(x) for x in order.lines.all()],
            "status": order.status,
            "hold": sorted(order.hold_reasons),
            "flags": (order.is_out_of_stock, order.has_unmatched, order.is_refunding),
            "lines": [
                (x.platform_line_id, x.status, x.sku.merchant_code if x.sku else None)
                for x in order.lines.all()
            ],
            # (fulfilment ids differ between the tenants' sequences)
            "events": [
                (e.kind, e.source, re.sub(r"fulfilment \d+", "fulfilment #", e.message), e.before, e.after)
                for e in order.events.all()
            ],
            "fulfilments": sorted(
                (
                    f.status,
                    f.is_merged,
                    sorted(
                        {
                            x.order_line.order.platform_order_id
                            for x in f.lines.select_related("order_line__order")
                        }
                    ),
                )
                for f in fulfilments
            ),
        }
    levels = {
        level.sku.merchant_code: (level.on_hand, level.reserved)
        for level in StockLevel.objects.select_related("sku")
    }
    ledger = Counter(StockLedgerEntry.objects.values_list("kind", flat=True))
    return {
        "orders": orders,
        "levels": levels,
        "ledger": ledger,
        "reservations": Reservation.objects.filter(status="active").count(),
    }


@pytest.mark.django_db(transaction=False)
def test_issue11_d4_a_batch_gives_the_same_orders_stock_and_history_as_one_by_one(alpha, beta):
    known, batch = scenario()
    with schema_context(alpha.schema_name):
        store = catalogue()
        services.ingest_channel_order(store=store, co=known)
        created = services.ingest_batch(store=store, items=[(co, None) for co in batch])
        batched = describe()
        assert not ledger_mismatches()
    with schema_context(beta.schema_name):
        store = catalogue()
        services.ingest_channel_order(store=store, co=known)
        for co in sorted(newest(batch), key=lambda co: (co.paid_at or co.created_at, co.platform_order_id)):
            services.ingest_channel_order(store=store, co=co)
        one_by_one = describe()
    assert created == 10  # 1–8, 10 and 12; 9 (shipped), 11 (refunded line) and 20 (known) one by one
    assert batched["orders"].keys() == one_by_one["orders"].keys()
    for pid, seen in batched["orders"].items():
        assert seen == one_by_one["orders"][pid], pid
    assert batched == one_by_one
    o = batched["orders"]
    assert o["69" + f"{1:017d}"]["status"] == "approved"
    assert o["69" + f"{3:017d}"]["hold"] == ["stock_short"]
    assert o["69" + f"{4:017d}"]["hold"] == ["buyer_remark"]
    assert o["69" + f"{5:017d}"]["hold"] == ["unmatched"]
    assert o["69" + f"{6:017d}"]["status"] == "pending_payment"
    assert o["69" + f"{7:017d}"]["fulfilments"] == [("open", True, ["69" + f"{1:017d}", "69" + f"{7:017d}"])]
    assert o["69" + f"{8:017d}"]["status"] == "approved"  # the combination took the last caps
    # 20 was cancelled (T0-28 min) before 10 was paid: its cap went to 10, the last one
    assert o["69" + f"{10:017d}"]["status"] == "approved"
    assert batched["levels"]["CAP-RED"] == (5, 5)
    assert o["69" + f"{12:017d}"]["row"]["has_unmatched"] is True
    assert batched["levels"]["TS-BLK-M"] == (1, 1)


@pytest.mark.django_db(transaction=False)
def test_a_batch_applied_twice_changes_nothing(in_alpha):
    store = catalogue()
    _, batch = scenario()
    services.ingest_batch(store=store, items=[(co, None) for co in batch])
    first = describe()
    assert services.ingest_batch(store=store, items=[(co, None) for co in batch]) == 0
    assert describe() == first


@pytest.mark.django_db(transaction=False)
def test_an_order_another_worker_created_meanwhile_is_left_to_the_one_by_one_path(in_alpha):
    store = catalogue()
    co = channel_order("6900000000000000042", lines=(line(1, "TS-WHT-L", 3),))
    services.ingest_channel_order(store=store, co=co)
    # _create_orders did not see it in its "known" query: the insert skips it and nothing else is written.
    assert services._create_orders(store, [(co, None)]) == set()
    assert Order.objects.count() == 1
    assert OrderEvent.objects.count() == 3  # created, paid, approved — once
    assert StockLevel.objects.get(sku__merchant_code="TS-WHT-L").reserved == 3


@pytest.mark.django_db(transaction=False)
def test_stock_goes_to_the_earliest_payment_in_a_batch(in_alpha):
    store = catalogue()
    late = replace(
        channel_order("6900000000000000002", lines=(line(1, "TS-BLK-M"),)), paid_at=T0 + timedelta(minutes=9)
    )
    early = replace(
        channel_order("6900000000000000001", lines=(line(1, "TS-BLK-M"),)), paid_at=T0 + timedelta(minutes=1)
    )
    services.ingest_batch(store=store, items=[(late, None), (early, None)])
    assert Order.objects.get(platform_order_id=early.platform_order_id).status == "approved"
    later_order = Order.objects.get(platform_order_id=late.platform_order_id)
    assert (later_order.status, later_order.hold_reasons) == ("held", ["stock_short"])
    assert later_order.lines.get().status == LineStatus.OUT_OF_STOCK


@pytest.mark.django_db(transaction=False)
def test_issue11_d5_a_known_order_paid_earlier_gets_the_stock_before_a_new_one(in_alpha):
    store = catalogue()
    known = channel_order("6900000000000000071", status=OrderStatus.UNPAID, lines=(line(1, "TS-BLK-M"),))
    services.ingest_batch(store=store, items=[(known, None)])
    paid_early = later(
        known, 600, status=OrderStatus.PAID, platform_status="2", paid_at=T0 + timedelta(minutes=1)
    )
    new = replace(
        channel_order("6900000000000000072", lines=(line(1, "TS-BLK-M"),), receiver=receiver("idx-72")),
        paid_at=T0 + timedelta(minutes=5),
    )
    services.ingest_batch(store=store, items=[(new, None), (paid_early, None)])
    first = Order.objects.get(platform_order_id=known.platform_order_id)
    second = Order.objects.get(platform_order_id=new.platform_order_id)
    assert (first.status, first.lines.get().status) == ("approved", LineStatus.RESERVED)
    assert (second.status, second.hold_reasons) == ("held", ["stock_short"])
    assert second.lines.get().status == LineStatus.OUT_OF_STOCK
    assert StockLevel.objects.get(sku__merchant_code="TS-BLK-M").reserved == 1
    assert not ledger_mismatches()


@pytest.mark.django_db(transaction=False)
def test_one_bad_version_does_not_hold_back_the_others(in_alpha, caplog):
    """A malformed line (quantity 0) fails its own order only; the rest of the page is applied."""
    from channels.services import store_order_versions

    store = catalogue()
    good = [channel_order(f"69000000000000001{i:02d}", receiver=receiver(f"idx-{i}")) for i in range(3)]
    bad = channel_order("6900000000000000999", lines=(line(1, "CAP-RED", qty=0),))
    ids = store_order_versions(store=store, orders=[*good, bad], source="pull")
    assert services.ingest_snapshots(snapshot_ids=ids) == 4
    assert set(Order.objects.values_list("platform_order_id", flat=True)) == {
        co.platform_order_id for co in good
    }
    assert "6900000000000000999" in caplog.text
    assert not ledger_mismatches()


def test_issue11_d5_earliest_payment_gets_the_stock_across_the_stores_of_one_batch(in_alpha):
    """Pushed versions of a tenant's shops are drained together: the shops share the stock, so
    the earliest payment wins it whichever shop it came from (not the shop listed first)."""
    from channels.services import store_order_versions

    first_shop = catalogue()  # a Douyin shop: listed before a Kuaishou one when stores go one by one
    other_shop = Store.objects.create(
        platform="kuaishou", platform_shop_id="3002", name="快手小店", app_key="k2"
    )
    late = replace(
        channel_order("6900000000000000081", lines=(line(1, "TS-BLK-M"),), receiver=receiver("idx-81")),
        paid_at=T0 + timedelta(minutes=9),
    )
    early = replace(
        channel_order("6900000000000000082", lines=(line(1, "TS-BLK-M"),), receiver=receiver("idx-82")),
        platform=Platform.KUAISHOU,
        platform_shop_id="3002",
        paid_at=T0 + timedelta(minutes=2),
    )
    ids = store_order_versions(store=first_shop, orders=[late], source="push")
    ids += store_order_versions(store=other_shop, orders=[early], source="push")
    assert services.ingest_snapshots(snapshot_ids=ids) == 2

    winner = Order.objects.get(platform_order_id=early.platform_order_id)
    loser = Order.objects.get(platform_order_id=late.platform_order_id)
    assert winner.store_id == other_shop.pk and winner.lines.get().status == LineStatus.RESERVED
    assert loser.lines.get().status == LineStatus.OUT_OF_STOCK and loser.hold_reasons == ["stock_short"]
    assert StockLevel.objects.get(sku__merchant_code="TS-BLK-M").reserved == 1
    assert not ledger_mismatches()

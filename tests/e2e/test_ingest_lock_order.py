"""Two ingestion transactions whose orders reserve the same SKUs in opposite line orders (two
real sessions, a third holding the rows in between): the stock rows are locked up front in one
global order, so neither transaction deadlocks."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from datetime import timedelta

from django.db import connection, transaction
from django_tenants.utils import schema_context

from channels.models import Store
from channels.services import _store_versions
from channels.types import OrderStatus
from inventory import services as stock
from inventory.models import Goods, Sku, StockLevel
from inventory.selectors import ledger_mismatches
from orders.models import LineStatus, Order, OrderLine
from orders.services import ingest_channel_order, ingest_snapshots
from tests.e2e.conftest import wait_until, waiting_for_locks
from tests.orders.conftest import T0, channel_order, line, receiver


def test_issue11_d6_ingestion_takes_its_stock_locks_in_one_global_order(committed_tenant, caplog):
    tenant = committed_tenant("lockorder")
    with schema_context(tenant.schema_name):
        store = Store.objects.create(platform="douyin", platform_shop_id="2001", name="抖店", app_key="k")
        goods = Goods.objects.create(name="T恤")
        skus = {}
        for code in ("A", "B", "GATE-1", "GATE-2"):  # created in this order: ids ascend
            skus[code] = Sku.objects.create(goods=goods, merchant_code=code, name=code)
            stock.receive_stock(sku=skus[code], quantity=10, reason="opening")
        # Two known unpaid orders whose lines are in opposite SKU order, a gate between them.
        unpaid = [
            channel_order(
                "6900000000000000001",
                status=OrderStatus.UNPAID,
                lines=(line(1, "B"), line(2, "GATE-1"), line(3, "A")),
            ),
            channel_order(
                "6900000000000000002",
                status=OrderStatus.UNPAID,
                lines=(line(1, "A"), line(2, "GATE-2"), line(3, "B")),
            ),
        ]
        for co in unpaid:
            ingest_channel_order(store=store, co=co)
        paid = [
            replace(
                co,
                status=OrderStatus.PAID,
                platform_status="2",
                paid_at=T0,
                updated_at=T0 + timedelta(minutes=5),
                receiver=receiver(f"idx-{i}"),
            )
            for i, co in enumerate(unpaid)
        ]
        snapshot_ids = [sid for _, sid, _ in _store_versions(store=store, orders=paid, source="push")]
    assert len(snapshot_ids) == 2

    gate_held, open_gate = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def gate() -> None:
        try:
            with schema_context(tenant.schema_name), transaction.atomic():
                list(StockLevel.objects.select_for_update().filter(sku__in=[skus["GATE-1"], skus["GATE-2"]]))
                gate_held.set()
                open_gate.wait(timeout=30)
        finally:
            connection.close()

    def ingest(snapshot_id: int) -> None:
        try:
            with schema_context(tenant.schema_name):
                ingest_snapshots(snapshot_ids=[snapshot_id])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    caplog.set_level(logging.ERROR, logger="orders.services")
    gatekeeper = threading.Thread(target=gate)
    gatekeeper.start()
    assert gate_held.wait(timeout=10)
    first = threading.Thread(target=ingest, args=(snapshot_ids[0],))
    first.start()
    assert wait_until(lambda: waiting_for_locks() >= 1, timeout=10)  # the first holds B (or A, B), waits
    second = threading.Thread(target=ingest, args=(snapshot_ids[1],))
    second.start()
    assert wait_until(lambda: waiting_for_locks() >= 2, timeout=10)
    open_gate.set()
    for thread in (gatekeeper, first, second):
        thread.join(timeout=60)
    assert not errors, errors
    assert "deadlock" not in caplog.text
    assert "ingestion failed" not in caplog.text
    with schema_context(tenant.schema_name):
        assert set(OrderLine.objects.values_list("status", flat=True)) == {LineStatus.RESERVED}
        assert Order.objects.filter(channel_status="paid").count() == 2
        assert {s.sku.merchant_code: s.reserved for s in StockLevel.objects.select_related("sku")} == {
            "A": 2,
            "B": 2,
            "GATE-1": 1,
            "GATE-2": 1,
        }
        assert not ledger_mismatches()

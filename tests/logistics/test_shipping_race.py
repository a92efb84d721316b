"""A race, on committed data with a real Celery worker and the sandbox over HTTP: two people
ship the same parcels at once, the write-back sender runs in a thread of its own and in the
worker (kicked after each shipping commit), and the platform's orders are read back and
ingested meanwhile — saying "shipped" as soon as a write-back lands. Afterwards every parcel
shipped once, the ledger balances with each line consumed once, every write-back landed once
(the sandbox's own log of shipping changes), and every order is shipped."""

from __future__ import annotations

import threading
from collections import Counter

from django.db import connection
from django_tenants.utils import schema_context

from channels import services as channel_services
from channels.connectors.base import RetryPolicy
from inventory import selectors as stock_selectors
from inventory.models import Reservation, StockLedgerEntry
from logistics import services as parcel_services
from logistics import waybills, writeback
from logistics.models import Parcel, ShipBatch, WriteBack
from logistics.shipping import ship_parcels, ship_progress, start_ship
from orders import services as order_services
from orders.models import Order, OrderLine, OrderStatus
from tests.e2e.conftest import committed_tenant, db, wait_until  # noqa: F401  (committed data for the worker)
from tests.logistics.test_writeback import SHIP_PATHS
from tests.logistics.waybill_world import (
    PLATFORMS,
    connect_shops,
    fulfilment_of,
    start_sandbox,
    world_order_id,
)

W = WriteBack.Status


def test_two_ship_clicks_the_sender_the_worker_and_a_platform_pull_at_once(
    tmp_path,
    settings,
    committed_tenant,  # noqa: F811  (the e2e fixture, imported above)
    tenant_worker,
):
    settings.WRITEBACK_RETRY_BASE_SECONDS = 0
    server = start_sandbox(tmp_path / "world.sqlite3", seed=3131)
    tenant = committed_tenant("ship-race")
    try:
        with schema_context(tenant.schema_name):
            shops = connect_shops(server)
            made = []
            for platform in PLATFORMS:
                for n in range(3):
                    made.append(shops.order(platform, 1 + n % 2))
                order = shops.order(platform, 2, sku=2)  # two parcels, one unit each
                line = order.lines.get()
                parcel_services.plan_parcels(
                    fulfilment=fulfilment_of(order), parcels=[{line.pk: 1}, {line.pk: 1}]
                )
                made.append(order)
            parcel_services.ensure_parcels()
            parcels = list(Parcel.objects.filter(lines__order_line__order__in=made).distinct().order_by("pk"))
            for parcel in parcels:
                waybills.take_for_parcel(parcel)
            ids = [p.pk for p in parcels]
            lines = {line.pk: line.quantity for line in OrderLine.objects.filter(order__in=made)}
            before = {line.reservation_key for line in OrderLine.objects.filter(order__in=made)}
            stores = {o.pk: o.store for o in made}
        connection.set_schema_to_public()
        for platform, paths in SHIP_PATHS.items():  # a fifth of the replies lost after acting
            for path in paths:
                server.faults.set(platform, path, lost_reply_5xx_rate=0.2, qps=0)

        results, errors = [], []
        start = threading.Barrier(4)
        stop = threading.Event()

        def in_tenant(fn):
            def run():
                try:
                    with schema_context(tenant.schema_name):
                        start.wait(timeout=30)
                        fn()
                except Exception as exc:  # surfaced below
                    errors.append(exc)
                finally:
                    connection.close()

            return threading.Thread(target=run)

        def ship():
            results.append(ship_parcels(ids))

        def connect(store):
            return channel_services.connector_for(store, retry=RetryPolicy(base_delay=0.01))

        def send():
            while not stop.is_set():
                writeback.send_due(limit=50, connect=connect)

        def pull():
            while not stop.is_set():
                for order in Order.objects.filter(pk__in=[o.pk for o in made]).order_by("pk"):
                    connector = connect(stores[order.pk])
                    try:
                        co = connector.get_order(order.platform_order_id)
                    finally:
                        connector.http.close()
                    order_services.ingest_channel_order(store=stores[order.pk], co=co)

        threads = [in_tenant(ship), in_tenant(ship), in_tenant(send), in_tenant(pull)]
        for t in threads:
            t.start()
        threads[0].join(120)
        threads[1].join(120)
        with schema_context(tenant.schema_name):
            assert wait_until(
                lambda: not WriteBack.objects.exclude(status=W.ACCEPTED).exists(), timeout=120, interval=0.2
            ), list(WriteBack.objects.values_list("status", "last_error"))
        stop.set()
        for t in threads[2:]:
            t.join(120)
        assert not errors, errors

        # The two clicks: every parcel shipped by exactly one of them, the other saw it shipped.
        first, second = results
        assert sorted(first.shipped + second.shipped) == ids and not first.errors and not second.errors
        assert sorted(first.already + second.already) == ids

        with schema_context(tenant.schema_name):
            # one last read of every order: the platforms all say shipped now
            for order in Order.objects.filter(pk__in=[o.pk for o in made]):
                connector = connect(stores[order.pk])
                try:
                    order_services.ingest_channel_order(
                        store=stores[order.pk], co=connector.get_order(order.platform_order_id)
                    )
                finally:
                    connector.http.close()
            assert set(
                Order.objects.filter(pk__in=[o.pk for o in made]).values_list("status", flat=True)
            ) == {OrderStatus.SHIPPED}
            assert set(Parcel.objects.filter(pk__in=ids).values_list("status", flat=True)) == {
                Parcel.Status.SHIPPED
            }
            # stock: each line's units left once, through ecbao's shipments only
            out = Counter()
            for source_id, delta in StockLedgerEntry.objects.filter(kind="shipment").values_list(
                "source_id", "on_hand_delta"
            ):
                out[source_id] += -delta
            by_line = Counter()
            for key, qty in out.items():
                assert key.startswith("parcel:"), key  # nothing consumed by the platform path
                by_line[int(key.rsplit(":", 1)[1])] += qty
            assert dict(by_line) == lines
            assert set(
                Reservation.objects.filter(source_key__in=before).values_list("status", flat=True)
            ) == {Reservation.Status.CONSUMED}
            assert stock_selectors.ledger_mismatches() == []
            # one write-back per (parcel, order), each landed once on the platform
            pairs = set(
                Parcel.objects.filter(pk__in=ids).values_list("pk", "lines__order_line__order_id").distinct()
            )
            assert set(WriteBack.objects.values_list("parcel_id", "order_id")) == pairs
            for order in made:
                mine = set(
                    Parcel.objects.filter(lines__order_line__order=order).values_list(
                        "tracking_no", flat=True
                    )
                )
                oid = world_order_id(shops, order)
                landed = Counter(a.package.tracking_no for a in shops.world.ship_actions(order_id=oid))
                assert landed == {no: 1 for no in mine}, order.platform_order_id
        connection.set_schema_to_public()
    finally:
        server.stop()
        server.world.close()


def test_a_ship_batch_runs_in_the_worker_and_its_commits_kick_the_sender(
    tmp_path,
    settings,
    committed_tenant,  # noqa: F811  (the e2e fixture, imported above)
    tenant_worker,
):
    """发货 on many parcels: a batch task ships them (progress, refusals kept), each chunk's
    commit kicks the write-back task, which lands every write-back without any sweep."""
    server = start_sandbox(tmp_path / "world.sqlite3", seed=3232)
    tenant = committed_tenant("ship-kick")
    try:
        with schema_context(tenant.schema_name):
            shops = connect_shops(server)
            made = [shops.order(platform, 1, buyer=10 + n) for platform in PLATFORMS for n in range(2)]
            parcel_services.ensure_parcels()
            parcels = list(Parcel.objects.filter(lines__order_line__order__in=made).distinct().order_by("pk"))
            for parcel in parcels:
                waybills.take_for_parcel(parcel)
            refused = parcels[0]
            Order.objects.filter(lines__parcel_lines__parcel=refused).update(is_refunding=True)
            batch = start_ship([p.pk for p in parcels])
            assert wait_until(
                lambda: ShipBatch.objects.get(pk=batch.pk).status == ShipBatch.Status.DONE,
                timeout=60,
                interval=0.1,
            )
            progress = ship_progress(batch)
            assert (progress["total"], progress["done"], progress["failed"]) == (
                len(parcels),
                len(parcels) - 1,
                1,
            )
            assert progress["errors"] == [
                {"parcel": refused.pk, "error": Parcel.objects.get(pk=refused.pk).error}
            ]
            assert "退款" in progress["errors"][0]["error"]
            assert wait_until(
                lambda: (
                    WriteBack.objects.count() == len(parcels) - 1
                    and set(WriteBack.objects.values_list("status", flat=True)) == {W.ACCEPTED}
                ),
                timeout=60,
                interval=0.1,
            ), list(WriteBack.objects.values_list("status", "last_error"))
            for parcel in Parcel.objects.filter(pk__in=[p.pk for p in parcels[1:]]):
                order = Order.objects.get(lines__parcel_lines__parcel=parcel)
                oid = world_order_id(shops, order)
                assert shops.world.tracking_numbers(order_id=oid)[oid] == [parcel.tracking_no]
        connection.set_schema_to_public()
    finally:
        server.stop()
        server.world.close()

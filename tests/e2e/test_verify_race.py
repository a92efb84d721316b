"""Two packers (or a scanner's double read) scan the parcel's last unit at the same moment, and
two confirms race: real sessions on committed data, lined up on the parcel's row lock by a third
session holding it. Exactly one scan counts, the other is refused as one too many; the parcel is
verified once (one order event)."""

from __future__ import annotations

import threading

from django.db import connection, transaction
from django_tenants.utils import schema_context

from channels.models import Store
from inventory import services as stock
from inventory.models import Goods, Sku
from logistics import packing
from logistics import services as parcels
from logistics.models import Parcel, VerifyScan
from orders import services
from orders.models import OrderEvent
from tests.e2e.conftest import wait_until, waiting_for_locks
from tests.orders.conftest import channel_order, line

P = Parcel.Status


def _race(tenant, parcel_pk: int, calls) -> list:
    """Run ``calls`` in threads while a third session holds the parcel's row; release it once
    every call waits for that lock; return their results (or exceptions)."""
    held, release = threading.Event(), threading.Event()
    results: list = [None] * len(calls)

    def gate() -> None:
        try:
            with schema_context(tenant.schema_name), transaction.atomic():
                Parcel.objects.select_for_update().get(pk=parcel_pk)
                held.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    def run(i, call) -> None:
        try:
            with schema_context(tenant.schema_name):
                results[i] = call()
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            results[i] = exc
        finally:
            connection.close()

    gatekeeper = threading.Thread(target=gate)
    gatekeeper.start()
    assert held.wait(timeout=10)
    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    lined_up = wait_until(lambda: waiting_for_locks() >= len(calls), timeout=10)
    release.set()
    for thread in (gatekeeper, *threads):
        thread.join(timeout=60)
    assert lined_up, "the calls did not wait for the parcel's lock"
    return results


def test_racing_scans_of_the_last_unit_count_once_and_confirms_verify_once(committed_tenant):
    tenant = committed_tenant("verify-race")
    with schema_context(tenant.schema_name):
        store = Store.objects.create(platform="douyin", platform_shop_id="2001", name="抖店", app_key="k")
        sku = Sku.objects.create(goods=Goods.objects.create(name="T恤"), merchant_code="TS-1", name="T恤")
        stock.receive_stock(sku=sku, quantity=5, reason="opening")
        services.set_rule(kind="auto_approve", enabled=True)
        services.ingest_channel_order(
            store=store, co=channel_order(oid="6940000000000000001", lines=(line(1, "TS-1"),))
        )
        parcels.ensure_parcels()
        parcel = Parcel.objects.get()
        Parcel.objects.filter(pk=parcel.pk).update(tracking_no="ZTR1", carrier="zto", status=P.PRINTED)
    connection.set_schema_to_public()

    scans = _race(
        tenant,
        parcel.pk,
        [
            lambda: packing.verify_scan(parcel.pk, "TS-1", client_id="a"),
            lambda: packing.verify_scan(parcel.pk, "TS-1", client_id="b"),
        ],
    )
    assert not [r for r in scans if isinstance(r, BaseException)], scans
    assert sorted(r.ok for r in scans) == [False, True]
    assert "数量超出" in next(r.message for r in scans if not r.ok)

    done = _race(tenant, parcel.pk, [lambda: packing.verify_done(parcel.pk, actor=None) for _ in range(2)])
    assert not [r for r in done if isinstance(r, BaseException)], done
    with schema_context(tenant.schema_name):
        assert VerifyScan.objects.filter(parcel_id=parcel.pk, accepted=True).count() == 1
        assert Parcel.objects.get(pk=parcel.pk).status == P.VERIFIED
        assert OrderEvent.objects.filter(kind="parcel_verified").count() == 1
    connection.set_schema_to_public()

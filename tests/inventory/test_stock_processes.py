"""Every stock operation at once from many OS processes, each on its own database connection.

Ten processes (``stock_stress_worker``) run a seeded mix of reservations, batch reservations
with keys the others share (an order line reserved by its push and its pull), releases,
shipments, adjustments, counts and receipts on three SKUs and a combination of two of them,
with little stock, so that most operations meet a boundary. The only documented refusal is
``InsufficientStock``; afterwards the balances equal the ledger's sums and the active
reservations, and the ledger shows no key reserved twice.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
from django.db import connection, transaction
from django_tenants.utils import schema_context

from inventory import services
from inventory.models import ComboComponent, Goods, Reservation, Sku, StockLedgerEntry, StockLevel
from inventory.selectors import ledger_mismatches
from tenants import services as tenant_services
from tests.e2e.conftest import wait_until, waiting_for_locks

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 10
ITERATIONS = 120  # per process
SHARED_KEYS = 30


@pytest.fixture
def db(django_db_setup, django_db_blocker):
    """The test database without the per-test transaction: the worker processes must see what
    this test commits."""
    with django_db_blocker.unblock():
        assert connection.settings_dict["NAME"].startswith("test_"), "not the test database"
        yield
    connection.set_schema_to_public()


@pytest.fixture
def tenant(db):
    """A committed tenant of its own (the ledger is append-only: its rows stay), dropped after."""
    connection.set_schema_to_public()
    made = tenant_services.create_tenant(
        slug="stockmix", name="Stock mix", owner_username="stockmix-owner", owner_password="Owner-pass-2026"
    ).tenant
    try:
        yield made
    finally:
        connection.set_schema_to_public()
        tenant_services.delete_tenant(slug=made.slug)


def start_workers(job: dict) -> list[subprocess.Popen]:
    workers = []
    for i in range(PROCESSES):
        workers.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.inventory.stock_stress_worker",
                    json.dumps({**job, "worker": i, "seed": i}),
                ],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    return workers


def key_histories(sku_ids: list[int]) -> dict[tuple[str, int], list[str]]:
    history: dict[tuple[str, int], list[str]] = defaultdict(list)
    for key, sku_id, kind in (
        StockLedgerEntry.objects.filter(sku_id__in=sku_ids, source_type="reservation")
        .order_by("id")
        .values_list("source_id", "sku_id", "kind")
    ):
        history[(key, sku_id)].append(kind)
    return history


def test_issue11_d12_every_stock_operation_from_many_processes_keeps_the_books(tenant):
    with schema_context(tenant.schema_name):
        warehouse = services.default_warehouse()
        goods = Goods.objects.create(name="压力测试")
        plain = [Sku.objects.create(goods=goods, merchant_code=f"ST-{c}", name=c) for c in "ABC"]
        for sku in plain:
            services.receive_stock(sku=sku, quantity=6, reason="opening", warehouse=warehouse)
        combo = Sku.objects.create(goods=goods, merchant_code="ST-SET", name="套装", is_combo=True)
        ComboComponent.objects.create(combo=combo, component=plain[0], quantity=1)
        ComboComponent.objects.create(combo=combo, component=plain[1], quantity=2)
    sku_ids = [s.pk for s in plain]
    job = {
        "database": connection.settings_dict["NAME"],
        "schema": tenant.schema_name,
        "warehouse": warehouse.pk,
        "plain": sku_ids,
        "combo": combo.pk,
        "iterations": ITERATIONS,
        "shared_keys": SHARED_KEYS,
    }
    workers = start_workers(job)
    try:
        for proc in workers:
            assert proc.stdout.readline().strip() == "ready", "a worker failed to start"
        started = time.monotonic()
        for proc in workers:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in workers:
            out, _ = proc.communicate(timeout=300)
            assert proc.returncode == 0
            results.append(json.loads(out.strip().splitlines()[-1]))
        seconds = time.monotonic() - started
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.kill()

    ops = sum(sum(r["ops"].values()) for r in results)
    errors: dict[str, int] = defaultdict(int)
    for r in results:
        for what, n in r["errors"].items():
            errors[what] += n
    shorts = sum(sum(r["short"].values()) for r in results)
    print(
        f"\nstock processes: {PROCESSES} × {ITERATIONS} ops = {ops} in {seconds:.1f} s; short {shorts}; errors {dict(errors)}"
    )
    assert ops == PROCESSES * ITERATIONS
    if errors:
        seen: dict[str, str] = {}
        for r in results:
            for sample in r["samples"]:
                seen.setdefault(sample.split("\n", 1)[0], sample)
        print("\n\n".join(seen.values()))
    assert not errors, dict(errors)

    with schema_context(tenant.schema_name):
        assert [row for row in ledger_mismatches() if row[0] in sku_ids] == []
        levels = StockLevel.objects.filter(sku_id__in=sku_ids)
        assert all(0 <= lv.reserved <= lv.on_hand for lv in levels)
        # No key reserved twice: per key and SKU the ledger alternates reservation → release,
        # ends after a shipment, and an open reservation in the ledger is the active row.
        reservations = {(r.source_key, r.sku_id): r for r in Reservation.objects.filter(sku_id__in=sku_ids)}
        for (key, sku_id), kinds in key_histories(sku_ids).items():
            live = False
            for kind in kinds:
                if kind == "reservation":
                    assert not live, f"{key} reserved twice on SKU {sku_id}: {kinds}"
                    live = True
                else:
                    assert live, f"{key} closed while not reserved on SKU {sku_id}: {kinds}"
                    live = False
            assert "shipment" not in kinds[:-1], f"{key} reserved again after shipment: {kinds}"
            row = reservations[(key, sku_id)]
            assert (row.status == Reservation.Status.ACTIVE) == live, (key, kinds, row.status)
        # A combination is reserved, released and shipped whole.
        by_key: dict[str, set[str]] = defaultdict(set)
        for (key, _sku_id), row in reservations.items():
            by_key[key].add(row.status)
        assert [key for key, statuses in by_key.items() if len(statuses) > 1] == []


def test_a_duplicate_that_commits_while_the_reservation_waits_is_reserved_once(tenant):
    """One session reserves a line inside its transaction and holds the row; a second reserves
    the same line on its own (one statement) and waits for the row. When the first commits, the
    second answers "already reserved": one reservation, counted once."""
    with schema_context(tenant.schema_name):
        goods = Goods.objects.create(name="袜子")
        sku = Sku.objects.create(goods=goods, merchant_code="DUP", name="袜子")
        services.receive_stock(sku=sku, quantity=5, reason="opening")
    first_reserved, commit_first = threading.Event(), threading.Event()
    answers: dict[str, object] = {}

    def first() -> None:
        try:
            with schema_context(tenant.schema_name), transaction.atomic():
                answers["first"] = services.reserve_stock(source_key="line:dup", sku=sku, quantity=2).created
                first_reserved.set()
                commit_first.wait(timeout=30)
        finally:
            connection.close()

    def second() -> None:
        try:
            with schema_context(tenant.schema_name):
                answers["second"] = services.reserve_stock(source_key="line:dup", sku=sku, quantity=2).created
        except Exception as exc:  # noqa: BLE001 - the finding
            answers["second"] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    assert first_reserved.wait(timeout=10)
    threads[1].start()
    assert wait_until(lambda: waiting_for_locks() >= 1, timeout=10)
    commit_first.set()
    for thread in threads:
        thread.join(timeout=30)
    assert answers == {"first": True, "second": False}
    with schema_context(tenant.schema_name):
        assert StockLevel.objects.get(sku=sku).reserved == 2
        assert Reservation.objects.get(source_key="line:dup").status == Reservation.Status.ACTIVE
        assert key_histories([sku.pk])[("line:dup", sku.pk)] == ["reservation"]
        assert ledger_mismatches() == []

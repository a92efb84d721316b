"""Shared set-up for benchmarks: Django, a dedicated tenant, timing helpers."""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ecbao.settings")
os.environ.setdefault("ECBAO_TESTING", "1")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

BENCH_SCHEMA = "bench"


def ensure_bench_tenant() -> str:
    """Migrate and create the ``bench`` tenant once; reused by later runs."""
    from tenants import services
    from tenants.models import Tenant

    call_command("migrate_schemas", "--shared", verbosity=0)
    call_command("bootstrap", verbosity=0)
    if not Tenant.objects.filter(schema_name=BENCH_SCHEMA).exists():
        services.create_tenant(
            slug=BENCH_SCHEMA,
            name="Benchmark",
            owner_username="bench",
            owner_password="Bench-pass-2026",  # noqa: S106 - local benchmark tenant
        )
    else:
        call_command("migrate_schemas", "--schema", BENCH_SCHEMA, verbosity=0)
    connection.set_schema_to_public()
    return BENCH_SCHEMA


def run_clients(clients: int, seconds: float, make_worker) -> dict:
    """Run ``clients`` threads for ``seconds``; each calls ``make_worker(i)()`` → a function
    doing one operation and returning True on success. Returns ops/s and latency stats."""
    stop = threading.Event()
    barrier = threading.Barrier(clients + 1)
    counts = [0] * clients
    failures = [0] * clients
    latencies: list[list[float]] = [[] for _ in range(clients)]

    def loop(i: int) -> None:
        from django.db import connections

        op = make_worker(i)
        barrier.wait()
        try:
            while not stop.is_set():
                t0 = time.perf_counter()
                ok = op()
                latencies[i].append(time.perf_counter() - t0)
                if ok:
                    counts[i] += 1
                else:
                    failures[i] += 1
        finally:
            close = getattr(op, "close", None)
            if close:
                close()
            connections.close_all()

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    flat = sorted(x for per in latencies for x in per)
    return {
        "clients": clients,
        "ops": sum(counts),
        "failed": sum(failures),
        "ops_per_s": round(sum(counts) / elapsed, 1),
        "p50_ms": round(statistics.median(flat) * 1000, 2) if flat else None,
        "p99_ms": round(flat[int(len(flat) * 0.99) - 1] * 1000, 2) if flat else None,
    }

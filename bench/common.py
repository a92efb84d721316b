"""Shared set-up for benchmarks: Django, a clean tenant per benchmark, the sandbox call log,
timing helpers."""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
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

BENCH_SLUG_PREFIX = "bench"
OWNER = "bench"
OWNER_PASSWORD = "Bench-pass-2026"  # noqa: S105 - local benchmark tenants
_public_ready = False


def prepare_public() -> None:
    """Migrate the public schema and bootstrap it, once per run."""
    global _public_ready
    if not _public_ready:
        call_command("migrate_schemas", "--shared", verbosity=0)
        call_command("bootstrap", verbosity=0)
        _public_ready = True


def drop_bench_tenants() -> list[str]:
    """Drop every tenant a benchmark made (slug ``bench…``): left by a crashed run, or by the
    versions before each benchmark got its own tenant (their stores kept being pushed to)."""
    from tenants import services
    from tenants.models import Tenant

    prepare_public()
    connection.set_schema_to_public()
    slugs = list(Tenant.objects.filter(slug__startswith=BENCH_SLUG_PREFIX).values_list("slug", flat=True))
    for slug in slugs:
        services.delete_tenant(slug=slug)
    return slugs


@contextmanager
def clean_tenant(name: str) -> Iterator[str]:
    """A new, empty tenant ``bench-<name>`` for one benchmark (sign-up's service: schema,
    domain, owner ``bench``); its schema — stores, outbox, listings, orders — is dropped when
    the benchmark ends, so no benchmark meets another's leftovers. Yields the schema name."""
    from tenants import services
    from tenants.models import Tenant

    prepare_public()
    connection.set_schema_to_public()
    slug = f"{BENCH_SLUG_PREFIX}-{name}"
    if Tenant.objects.filter(slug=slug).exists():
        services.delete_tenant(slug=slug)
    tenant = services.create_tenant(
        slug=slug, name=f"Benchmark {name}", owner_username=OWNER, owner_password=OWNER_PASSWORD
    ).tenant
    connection.set_schema_to_public()
    try:
        yield tenant.schema_name
    finally:
        from django.db import connections

        connections.close_all()  # a thread's or this process's open transaction must not block DROP
        connection.set_schema_to_public()
        services.delete_tenant(slug=slug)


def domain_of(schema: str) -> str:
    from tenants.models import Domain

    return Domain.objects.filter(tenant__schema_name=schema, is_primary=True).values_list(
        "domain", flat=True
    )[0]


# --- the sandbox's call log: what the platforms answered --------------------------------------------

SUCCESS_CODES = {"10000", "1", "0", "200"}  # Douyin, Kuaishou, WeChat, plain HTTP
RATE_LIMIT_CODES = {"60000", "1016", "1017", "15", "16", "17", "45009", "45011", "10020112"}


def platform_errors(world, *, after_id: int = 0, since: float | None = None) -> dict:
    """Calls the sandbox logged (after call id ``after_id``, or since the unix time ``since``)
    and how many were not answered with success: ``errors`` per ``platform:code`` and
    ``rate_limited`` (a QPS refusal or a platform rate-limit code). Read after the sandbox
    flushed its log (it does so on ``/api/status`` and when it stops)."""
    where, params = ("time >= ?", (since,)) if since is not None else ("id > ?", (after_id,))
    rows = world.read(f"SELECT platform, code, fault FROM call_log WHERE {where}", params)
    out = {"calls": len(rows), "errors": 0, "rate_limited": 0, "by_code": {}}
    for platform, code, fault in rows:
        head = str(code).split("/")[0]
        if head not in SUCCESS_CODES:
            out["errors"] += 1
            out["by_code"][f"{platform}:{code}"] = out["by_code"].get(f"{platform}:{code}", 0) + 1
        if head in RATE_LIMIT_CODES or "qps" in (fault or "") or "rate-limit" in (fault or ""):
            out["rate_limited"] += 1
    return out


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

"""Channel stock push: how long from a stock change's commit until all 30 shops show it.

Three processes, as in production: the platform sandbox (``python -m sandbox serve``,
real HTTP on free ports, 10 shops per platform), the stock-sync daemon
(``manage.py stock_sync_daemon``) and this one, which changes stock in a dedicated tenant and
polls the sandbox's world file until every shop shows the new number. One SKU per phase is
listed on all 30 shops and auto-matched by merchant code (no stock rule: 100 %).

Phases:
- ``sequential``: REPEATS reservations one at a time; latency = commit → the last of the 30
  shops shows the new number (p50/p99/max), with the daemon pushing shops concurrently;
- ``sequential_1_thread``: the same with ``--threads 1`` (every shop one after the other);
- ``burst``: BURST reservations of one SKU as fast as they commit (~1 s): stock writes per
  shop (coalescing ratio) and the time until all 30 are right.

API calls, faults and rate-limit answers are counted from the sandbox's call log. The
sandbox's limits are left as they are: per-app token buckets (Douyin 100, Kuaishou 300,
WeChat 100 calls/s per path; the 10 Douyin shops share one app, so do the 10 Kuaishou shops;
every WeChat shop is its own self-use app) and WeChat's 60 stock updates per SKU per minute
(each phase uses its own SKU so that a phase stays under it).
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

from common import RATE_LIMIT_CODES, ROOT, SUCCESS_CODES, clean_tenant, platform_errors
from django_tenants.utils import schema_context

REPEATS = int(os.environ.get("BENCH_STOCK_REPEATS", "50"))
REPEATS_ONE_THREAD = int(os.environ.get("BENCH_STOCK_REPEATS_1T", "20"))
BURST = int(os.environ.get("BENCH_STOCK_BURST", "200"))
THREADS = int(os.environ.get("BENCH_STOCK_THREADS", "8"))
SEED = 30  # not the default world's seed: shop ids differ from other benches' and demos'
SHOPS_PER_PLATFORM = 10
PLATFORMS = ("douyin", "kuaishou", "wechat")
START = 100_000  # available units at the start of each phase
CODES = {"sequential": "TSHIRT-WHT-M", "sequential_1_thread": "TSHIRT-WHT-L", "burst": "TSHIRT-BLK-M"}
STOCK_WRITE_PATHS = {
    "douyin": "/sku/syncStock",
    "kuaishou": "/open/item/sku/stock/update",
    "wechat": "/channels/ec/product/stock/update",
}
STOCK_READ_PATHS = {"kuaishou": "/open/item/sku/list/get"}  # Kuaishou reads before its delta


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sandbox port {port} did not open")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


# --- the sandbox world and the ERP tenant -------------------------------------------------------


def make_world(path: Path):
    from sandbox.seed import seed_default_world
    from sandbox.world import World

    world = World(path, seed=SEED)
    # product_count=1: every shop lists the first product (a T-shirt in 4 SKUs).
    seed_default_world(world, shops_per_platform=SHOPS_PER_PLATFORM, buyers=10, product_count=1)
    return world


def _secrets(app) -> dict:
    secrets = {"app_secret": app.app_secret}
    for source, target in (
        ("sign_secret", "sign_secret"),
        ("message_key", "message_key"),
        ("push_token", "token"),
        ("encoding_aes_key", "aes_key"),
    ):
        if getattr(app, source):
            secrets[target] = getattr(app, source)
    return secrets


def connect_shops(world, tenant) -> list[int]:
    """Connect all 30 sandbox shops through the platforms' authorisation calls (OAuth code
    exchange; WeChat: each shop's self-use app) and pull their listings, which are
    auto-matched to the merchant SKUs by merchant code."""
    from channels import services
    from channels.models import Store
    from inventory import sync
    from inventory.models import Goods, Listing, Sku
    from sandbox.wechat import create_self_use_app

    with schema_context(tenant.schema_name):
        goods, _ = Goods.objects.get_or_create(name="纯棉圆领短袖T恤")
        for code in CODES.values():
            Sku.objects.get_or_create(merchant_code=code, defaults={"goods": goods, "name": code})

    for app in world.apps():
        if app.app_type == "tool":
            services.register_app(platform=app.platform, app_key=app.app_key, secrets=_secrets(app))
    store_ids = []
    with schema_context(tenant.schema_name):
        for platform in PLATFORMS:
            for shop in world.shops(platform):
                if platform == "wechat":
                    app = create_self_use_app(world, shop.shop_id)
                    services.register_app(
                        platform=platform, app_key=app.app_key, secrets=_secrets(app), tenant=tenant
                    )
                    connector = services.unbound_connector(platform=platform, app_key=app.app_key)
                    grant = connector.self_use_token(platform_shop_id=shop.shop_id)
                    mode = Store.AuthMode.SELF_USE
                else:
                    app = next(a for a in world.apps(platform) if a.app_type == "tool")
                    code = world.create_oauth_code(app.app_key, shop.shop_id)
                    connector = services.unbound_connector(platform=platform, app_key=app.app_key)
                    grant = connector.exchange_code(code=code.code)
                    mode = Store.AuthMode.OAUTH
                connector.http.close()
                store = services.connect_store(
                    platform=platform, app_key=app.app_key, grant=grant, auth_mode=mode, name=shop.name
                )
                with mock.patch.object(sync, "enqueue_store_push"):  # the daemon pushes, not Celery
                    sync.refresh_listings(store=store)
                store_ids.append(store.pk)
        # Listings remembered from an earlier run would skip a push of the same number.
        Listing.objects.filter(store_id__in=store_ids).update(
            push_state=Listing.PushState.PENDING, pushed_qty=None, push_attempts=0
        )
    return store_ids


def prepare_sku(tenant, code: str) -> tuple[int, list[str], list[int]]:
    """The merchant SKU for ``code`` with START available (earlier runs' reservations
    released); returns its id, the 30 sandbox SKU ids and the 30 listing ids."""
    from inventory import services as stock
    from inventory.models import Listing, Reservation, Sku, StockChange

    with schema_context(tenant.schema_name):
        sku = Sku.objects.get(merchant_code=code)
        listings = list(
            Listing.objects.filter(sku=sku, match=Listing.Match.MATCHED).values_list("pk", "platform_sku_id")
        )
        for key in Reservation.objects.filter(sku=sku, status="active").values_list("source_key", flat=True):
            stock.release_reservation(source_key=key)
        stock.count_stock(sku=sku, counted=START, reason="bench start")
        StockChange.objects.filter(sku=sku).delete()
    return sku.pk, [platform_sku for _, platform_sku in listings], [pk for pk, _ in listings]


# --- the other processes ----------------------------------------------------------------------


def start_sandbox(data: Path, log: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    ports = {name: free_port() for name in ("status", *PLATFORMS)}
    args = [sys.executable, "-m", "sandbox", "--data", str(data), "serve", "--no-simulator",
            "--seed", str(SEED), "--time-compression", "1"]  # fmt: skip
    for name, port in ports.items():
        args += [f"--{name}-port", str(port)]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT)
    for port in ports.values():
        wait_port(port)
    return proc, {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}


def start_daemon(urls: dict[str, str], threads: int, log: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env.update({f"ECBAO_{p.upper()}_API": urls[p] for p in PLATFORMS})
    args = [sys.executable, "manage.py", "stock_sync_daemon", "--timeout", "1", "--threads", str(threads)]
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log.open("a"), stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# --- measuring --------------------------------------------------------------------------------


class Probe:
    """Reads the sandbox world file (WAL: never blocks the sandbox's writers)."""

    def __init__(self, world, status_url: str) -> None:
        self.world = world
        self.status_url = status_url

    def stocks(self, sku_ids: list[str]) -> list[int]:
        marks = ",".join("?" * len(sku_ids))
        return [
            row[0] for row in self.world.read(f"SELECT stock FROM skus WHERE sku_id IN ({marks})", sku_ids)
        ]

    def wait_all(self, sku_ids: list[str], value: int, timeout: float = 60.0) -> float | None:
        """perf_counter() when every SKU first shows ``value`` (None on timeout)."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if all(s == value for s in self.stocks(sku_ids)):
                return time.perf_counter()
            time.sleep(0.002)
        return None

    def last_call_id(self) -> int:
        self.flush()
        return self.world.read("SELECT COALESCE(MAX(id), 0) FROM call_log")[0][0]

    def flush(self) -> None:
        import httpx

        httpx.get(f"{self.status_url}/api/status", timeout=30)  # the server flushes its call log

    def calls(self, after_id: int) -> dict:
        """Stock API calls since ``after_id``: writes per platform, Kuaishou's reads, faults and
        rate-limit answers (on any path)."""
        self.flush()
        rows = self.world.read("SELECT platform, path, code, fault FROM call_log WHERE id > ?", (after_id,))
        out = {
            "writes": dict.fromkeys(PLATFORMS, 0),
            "reads": 0,
            "errors": 0,
            "rate_limited": 0,
            "by_code": {},
        }
        for platform, path, code, fault in rows:
            if path == STOCK_WRITE_PATHS.get(platform):
                out["writes"][platform] += 1
            elif path == STOCK_READ_PATHS.get(platform):
                out["reads"] += 1
            head = str(code).split("/")[0]
            if head not in SUCCESS_CODES:
                out["errors"] += 1
                out["by_code"][f"{platform}:{code}"] = out["by_code"].get(f"{platform}:{code}", 0) + 1
            if head in RATE_LIMIT_CODES or "qps" in (fault or "") or "rate-limit" in (fault or ""):
                out["rate_limited"] += 1
        return out


def sequential(tenant, probe: Probe, code: str, repeats: int, tag: str) -> dict:
    from inventory import services as stock
    from inventory.models import Sku

    sku_id, world_skus, _ = prepare_sku(tenant, code)
    assert len(world_skus) == 3 * SHOPS_PER_PLATFORM, f"{code} is listed on {len(world_skus)} shops"
    with schema_context(tenant.schema_name):
        # prepare_sku dropped its own outbox rows; this receipt starts the phase.
        stock.receive_stock(sku=Sku.objects.get(pk=sku_id), quantity=1, reason="bench start")
    if probe.wait_all(world_skus, START + 1) is None:
        raise RuntimeError(f"{tag}: the initial number never reached every shop")
    since = probe.last_call_id()
    latencies = []
    value = START + 1
    with schema_context(tenant.schema_name):
        sku = Sku.objects.get(pk=sku_id)
        for i in range(repeats):
            stock.reserve_stock(source_key=f"bench:{tag}:{time.time_ns()}:{i}", sku=sku, quantity=1)
            committed = time.perf_counter()
            value -= 1
            done = probe.wait_all(world_skus, value)
            if done is None:
                raise RuntimeError(f"{tag}: change {i} did not reach every shop within 60 s")
            latencies.append((done - committed) * 1000)
            time.sleep(0.05)
    calls = probe.calls(since)
    writes = sum(calls["writes"].values())
    return {
        "changes": repeats,
        "shops": len(world_skus),
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "max_ms": round(max(latencies), 1),
        "mean_ms": round(statistics.fmean(latencies), 1),
        "stock_writes_per_change": round(writes / repeats, 2),
        "kuaishou_reads_per_change": round(calls["reads"] / repeats, 2),
        "errors": calls["errors"],
        "rate_limited": calls["rate_limited"],
        "error_codes": calls["by_code"],
    }


def burst(tenant, probe: Probe, code: str, count: int) -> dict:
    from inventory import services as stock
    from inventory.models import Sku

    sku_id, world_skus, _ = prepare_sku(tenant, code)
    with schema_context(tenant.schema_name):
        stock.receive_stock(sku=Sku.objects.get(pk=sku_id), quantity=1, reason="bench start")
    if probe.wait_all(world_skus, START + 1) is None:
        raise RuntimeError("burst: the initial number never reached every shop")
    since = probe.last_call_id()
    with schema_context(tenant.schema_name):
        sku = Sku.objects.get(pk=sku_id)
        started = time.perf_counter()
        for i in range(count):
            stock.reserve_stock(source_key=f"bench:burst:{time.time_ns()}:{i}", sku=sku, quantity=1)
        last_commit = time.perf_counter()
    done = probe.wait_all(world_skus, START + 1 - count)
    if done is None:
        raise RuntimeError("burst: the final number did not reach every shop within 60 s")
    time.sleep(0.5)  # a late (stale) write would show up in the counts and the final check
    stale = [s for s in probe.stocks(world_skus) if s != START + 1 - count]
    calls = probe.calls(since)
    writes = sum(calls["writes"].values())
    per_shop = writes / len(world_skus)
    return {
        "changes": count,
        "shops": len(world_skus),
        "burst_seconds": round(last_commit - started, 3),
        "all_right_after_first_commit_ms": round((done - started) * 1000, 1),
        "all_right_after_last_commit_ms": round((done - last_commit) * 1000, 1),
        "stock_writes": writes,
        "writes_per_shop": round(per_shop, 2),
        "coalescing_ratio": round(count / per_shop, 1) if per_shop else None,
        "writes_by_platform": calls["writes"],
        "wrong_after_settling": len(stale),
        "errors": calls["errors"],
        "rate_limited": calls["rate_limited"],
        "error_codes": calls["by_code"],
    }


def main() -> dict:
    with clean_tenant("stock") as schema:
        return run(schema)


def run(schema: str) -> dict:
    from django.conf import settings
    from django.test.utils import override_settings

    from tenants.models import Tenant

    tenant = Tenant.objects.get(schema_name=schema)
    tmp = Path(tempfile.mkdtemp(prefix="bench-stock-"))
    data = tmp / "world.sqlite3"
    world = make_world(data)
    sandbox, urls = start_sandbox(data, tmp / "sandbox.log")
    daemon = None
    results: dict = {"threads": THREADS, "machine_load_1m_before": round(os.getloadavg()[0], 2)}
    try:
        with override_settings(
            CHANNEL_BASE_URLS={**settings.CHANNEL_BASE_URLS, **{p: urls[p] for p in PLATFORMS}}
        ):
            t0 = time.perf_counter()
            connect_shops(world, tenant)
            results["connect_and_pull_30_shops_s"] = round(time.perf_counter() - t0, 2)
        probe = Probe(world, urls["status"])
        first_call = 0

        daemon = start_daemon(urls, THREADS, tmp / "daemon.log")
        results["sequential"] = sequential(tenant, probe, CODES["sequential"], REPEATS, "seq")
        results["burst"] = burst(tenant, probe, CODES["burst"], BURST)
        stop(daemon)

        daemon = start_daemon(urls, 1, tmp / "daemon.log")
        results["sequential_1_thread"] = sequential(
            tenant, probe, CODES["sequential_1_thread"], REPEATS_ONE_THREAD, "seq1"
        )
        results["machine_load_1m_after"] = round(os.getloadavg()[0], 2)
        probe.flush()
        results["platform_errors"] = platform_errors(world, after_id=first_call)  # the whole run
    finally:
        if daemon is not None:
            stop(daemon)
        stop(sandbox)
        world.close()
    results["logs"] = str(tmp)
    seq, one, b = results["sequential"], results["sequential_1_thread"], results["burst"]
    errors = results["platform_errors"]
    print(
        f"stock push to {seq['shops']} shops: commit → all shops p50 {seq['p50_ms']} ms, p99 {seq['p99_ms']} ms "
        f"({THREADS} threads; 1 thread: p50 {one['p50_ms']} ms, p99 {one['p99_ms']} ms); "
        f"{seq['stock_writes_per_change']} writes/change; burst of {b['changes']} in {b['burst_seconds']} s → "
        f"{b['writes_per_shop']} writes/shop (coalescing {b['coalescing_ratio']}:1), all right "
        f"{b['all_right_after_last_commit_ms']} ms after the last commit; platform calls {errors['calls']}, "
        f"errors {errors['errors']} {errors['by_code'] or ''}, rate-limited {errors['rate_limited']}; "
        f"load {results['machine_load_1m_before']}→{results['machine_load_1m_after']}"
    )
    return results


if __name__ == "__main__":
    main()

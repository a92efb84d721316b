"""End-to-end ingestion in the production shape: orders placed in the sandbox, pulled over real
HTTP by the connectors (signing, paging, detail fetches) for three stores at once, stored page by
page as channel versions (``store_order_versions``: one ``OrdersChanged`` per page), and ingested
into orders with lines, events and stock reservations by a real Celery worker consuming the
``ingest_snapshots_task`` each page enqueues.

Three processes, as in production: this one pulls (one thread per store); the sandbox serves the
platforms from its own process (the platforms are elsewhere); a prefork Celery worker (``-c 2``)
ingests. The clock runs from the start of the pulls until every sandbox order is an ecbao order.
The sandbox's default rate limits stay in force (per app and API path: Douyin 100 QPS, Kuaishou
300, WeChat 100). WeChat lists ids only and needs one ``/channels/ec/order/get`` per order, so its
pull cannot beat ~100 orders/s; the Douyin + Kuaishou rate is reported apart as well.

``BENCH_E2E_ORDERS`` orders per platform (default 2,000); ``BENCH_E2E_WORKERS`` worker processes
(default 2); ``BENCH_E2E_WECHAT_WORKERS`` WeChat detail fetches in flight (default 16).

CPU seconds are reported per process (the pull, the sandbox, the worker with its pool), for the
embedded PostgreSQL server (every database on it: other engineers' test runs share it) and for the
whole machine, over the whole run and over the stretch until Douyin and Kuaishou were done.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from common import ROOT, clean_tenant, platform_errors
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

PER_PLATFORM = int(os.environ.get("BENCH_E2E_ORDERS", "2000"))
# Added to every sandbox answer (ms): real platforms are a network away, not on loopback.
LATENCY_MS = float(os.environ.get("BENCH_E2E_LATENCY_MS", "0"))
# 0 turns off the pull's read-ahead (fetch the next batch while storing this one), to compare.
READ_AHEAD = os.environ.get("BENCH_E2E_READ_AHEAD", "1") != "0"
WORKERS = int(os.environ.get("BENCH_E2E_WORKERS", "2"))
WECHAT_DETAIL_WORKERS = int(os.environ.get("BENCH_E2E_WECHAT_WORKERS", "16"))
TARGET_PER_S = 1000  # PRODUCT.md: end to end from the sandbox over HTTP
WAIT_TIMEOUT = 120.0  # seconds from the start of the pulls
POLL = 0.05
PLATFORMS = ("douyin", "kuaishou", "wechat")
INGEST_TASK = "orders.tasks.ingest_snapshots_task"

# The sandbox process: opens the world file the parent built (SQLite WAL, so both processes
# may read and write it), serves every platform on random ports, reports its URLs and the
# counts it sees on one stdout line, and stops when the parent closes its stdin.
SANDBOX_ENTRY = """
import json, logging, sys
from sandbox.server import SandboxServer, ServerOptions
from sandbox.world import World

logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "Task queue depth is N" per request
world = World(sys.argv[1])
server = SandboxServer(world, ServerOptions(ports={}, simulate=False, push=False, threads=8))
latency_ms = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
for platform in ("douyin", "kuaishou", "wechat") if latency_ms else ():
    server.faults.set(platform, "*", latency_ms=latency_ms)  # a network's round trip
server.start()
sys.stdout.write(json.dumps({"urls": server.urls, "counts": world.counts()}) + "\\n")
sys.stdout.flush()
try:
    sys.stdin.read()
finally:
    server.stop()
    world.close()
"""


def build_world(path: Path):
    """The sandbox world: one shop per platform, ``PER_PLATFORM`` paid orders each (1-2 lines;
    Kuaishou orders have one line), stock enough for all."""
    from sandbox.seed import seed_default_world
    from sandbox.world import OrderItemSpec, World

    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    world = World(str(path), seed=11)
    seed_default_world(world, shops_per_platform=1, buyers=300)
    rng = random.Random(5)
    for shop in world.shops():
        skus = world.skus(shop.shop_id)
        for sku in skus:
            world.set_stock(sku.sku_id, 10**7)
        for _ in range(PER_PLATFORM):
            items = [
                OrderItemSpec(sku_id=rng.choice(skus).sku_id, qty=1 + rng.randrange(2))
                for _ in range(1 if shop.platform == "kuaishou" else 1 + rng.randrange(2))
            ]
            world.create_order(shop_id=shop.shop_id, buyer_id=1 + rng.randrange(300), items=items, pay=True)
    return world


# --- the sandbox process ----------------------------------------------------------------------


def start_sandbox(path: Path) -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SANDBOX_ENTRY, str(path), str(LATENCY_MS)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()  # blocks until the servers are bound (or the child died)
    if not line:
        proc.wait(5)
        raise RuntimeError(f"sandbox process exited with {proc.returncode} before reporting its URLs")
    return proc, json.loads(line)


def stop_sandbox(proc: subprocess.Popen) -> None:
    try:
        proc.stdin.close()  # the child stops its servers and flushes its call log
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# --- the Celery worker ------------------------------------------------------------------------


def start_worker(queue: str, logfile: Path, urls: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """A prefork worker on this run's queue, in the same environment (DATABASE_URL, REDIS_URL,
    ECBAO_* set by devstack). Logs at INFO to ``logfile``: retries are only logged at INFO."""
    name = f"bench-e2e-{os.getpid()}@{socket.gethostname()}"
    env = {
        **os.environ,
        "ECBAO_DOUYIN_API": urls["douyin"],
        "ECBAO_KUAISHOU_API": urls["kuaishou"],
        "ECBAO_WECHAT_API": urls["wechat"],
    }
    logfile.unlink(missing_ok=True)
    cmd = [
        str(Path(sys.executable).parent / "celery"),
        "-A", "ecbao", "worker",
        "-Q", queue, "-c", str(WORKERS), "-P", "prefork", "-n", name,
        "-l", "info", "--logfile", str(logfile),
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    return proc, name


def wait_for_worker(proc: subprocess.Popen, name: str, timeout: float = 60.0) -> float:
    from ecbao.celery import app

    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"celery worker exited with {proc.returncode} before answering a ping")
        if app.control.ping(destination=[name], timeout=0.5):
            return time.perf_counter() - started
    raise RuntimeError(f"celery worker {name} did not answer a ping within {timeout:.0f}s")


def stop_worker(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.terminate()  # warm shutdown
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def read_worker_log(logfile: Path) -> dict:
    text = logfile.read_text(errors="replace") if logfile.exists() else ""
    durations = [
        float(m)
        for m in re.findall(rf"Task {re.escape(INGEST_TASK)}\[[^\]]+\] succeeded in ([0-9.]+)s", text)
    ]
    return {
        "tasks_succeeded": len(durations),
        "task_seconds_total": round(sum(durations), 2),
        "task_seconds_max": round(max(durations), 2) if durations else None,
        "retries": len(re.findall(r"\] retry: ", text)),
        "failures": len(re.findall(r"raised unexpected", text)),
        "error_lines": len(re.findall(r"\b(ERROR|CRITICAL)/", text)),
    }


# --- the bench tenant ---------------------------------------------------------------------------


def reset_tenant(world) -> None:
    """Empty orders, channel versions and stock holds; SKUs with stock for every sandbox code;
    review rules back to their defaults (auto-approve and auto-merge on)."""
    from channels.models import Store
    from inventory.models import Goods, Sku, StockLevel
    from inventory.services import default_warehouse
    from orders.models import ReviewRule

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE orders_fulfilmentline, orders_fulfilment, orders_orderevent, "
            "orders_orderline, orders_order, channels_channelorderstate, channels_ordersnapshot, "
            "channels_synccursor RESTART IDENTITY CASCADE"
        )
        cursor.execute("DELETE FROM inventory_reservation; DELETE FROM inventory_stockchange;")
        cursor.execute("UPDATE inventory_stocklevel SET reserved = 0")
    Store.objects.filter(platform_shop_id__in=[s.shop_id for s in world.shops()]).delete()
    ReviewRule.objects.all().delete()
    goods, _ = Goods.objects.get_or_create(name="e2e bench")
    warehouse = default_warehouse()
    for code in {sku.code for shop in world.shops() for sku in world.skus(shop.shop_id)}:
        sku, _ = Sku.objects.get_or_create(merchant_code=code, defaults={"goods": goods, "name": code})
        StockLevel.objects.update_or_create(
            sku=sku, warehouse=warehouse, defaults={"on_hand": 10**9, "reserved": 0}
        )


def connect_store(world, shop):
    """Register the platform app and connect the shop as a merchant would (OAuth code over
    HTTP; WeChat: a self-use app's stable token)."""
    from channels import services
    from channels.models import Store

    platform = shop.platform
    app = next(a for a in world.apps(platform) if a.app_type == "tool")
    secrets = {
        "app_secret": app.app_secret,
        "sign_secret": app.sign_secret,
        "message_key": app.message_key,
        "token": app.push_token,
        "aes_key": app.encoding_aes_key,
    }
    services.register_app(
        platform=platform, app_key=app.app_key, secrets={k: v for k, v in secrets.items() if v}
    )
    if platform == "wechat":
        from sandbox.wechat import create_self_use_app

        self_app = create_self_use_app(world, shop.shop_id)
        services.register_app(
            platform=platform,
            app_key=self_app.app_key,
            secrets={
                "app_secret": self_app.app_secret,
                "token": self_app.push_token,
                "aes_key": self_app.encoding_aes_key,
            },
        )
        connector = services.unbound_connector(platform=platform, app_key=self_app.app_key)
        grant = connector.self_use_token(platform_shop_id=shop.shop_id)
        return services.connect_store(
            platform=platform, app_key=self_app.app_key, grant=grant, auth_mode=Store.AuthMode.SELF_USE
        )
    connector = services.unbound_connector(platform=platform, app_key=app.app_key)
    code = world.create_oauth_code(app.app_key, shop.shop_id)
    grant = connector.exchange_code(code=code.code)
    return services.connect_store(platform=platform, app_key=app.app_key, grant=grant)


def check_ingestion(store_ids: list[int]) -> dict:
    """Every order has lines; every line with a SKU holds exactly one active reservation."""
    from django.db.models import Count

    from orders.models import Order

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE l.sku_id IS NOT NULL), "
            "count(*) FILTER (WHERE l.status = 'reserved') "
            "FROM orders_orderline l JOIN orders_order o ON o.id = l.order_id WHERE o.store_id = ANY(%s)",
            [store_ids],
        )
        lines, with_sku, reserved_lines = cursor.fetchone()
        cursor.execute(
            "SELECT count(*) FROM inventory_reservation r WHERE r.status = 'active' AND r.source_key IN ("
            "SELECT 'order-line:' || l.id FROM orders_orderline l JOIN orders_order o ON o.id = l.order_id "
            "WHERE o.store_id = ANY(%s) AND l.sku_id IS NOT NULL)",
            [store_ids],
        )
        reservations = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM inventory_reservation")
        reservations_all = cursor.fetchone()[0]
    orders = Order.objects.filter(store_id__in=store_ids)
    return {
        "orders": orders.count(),
        "orders_without_lines": orders.filter(lines__isnull=True).count(),
        "lines": lines,
        "lines_with_sku": with_sku,
        "lines_reserved": reserved_lines,
        "reservations": reservations,
        "reservations_in_schema": reservations_all,
        "orders_by_status": dict(
            orders.order_by().values_list("status").annotate(n=Count("id")).values_list("status", "n")
        ),
    }


# --- CPU accounting ----------------------------------------------------------------------------


def cpu_sample(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system) so far of each process (the worker: with its pool processes;
    this process: without its children, which are the sandbox and the worker), and the
    machine's busy CPU seconds."""
    import psutil

    out = {}
    for name, pid in pids.items():
        try:
            root = psutil.Process(pid)
            procs = [root] if pid == os.getpid() else [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        total = 0.0
        for proc in procs:
            try:
                t = proc.cpu_times()
            except psutil.Error:
                continue
            total += t.user + t.system
        out[name] = total
    postmaster = _postmaster()
    if postmaster is not None:
        try:  # the server, its live backends, and the backends it has reaped (every database)
            own = postmaster.cpu_times()
            total = own.user + own.system + own.children_user + own.children_system
            for child in postmaster.children():
                try:
                    t = child.cpu_times()
                except psutil.Error:
                    continue
                total += t.user + t.system
            out["postgres_all_databases"] = total
        except psutil.Error:
            pass
    t = psutil.cpu_times()
    out["machine"] = t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0)
    return out


def _postmaster():
    """The embedded PostgreSQL server (``make bench`` starts it), if that is the one in use."""
    import psutil

    from ecbao.devstack import DATA

    try:
        return psutil.Process(int((DATA / "pg" / "postmaster.pid").read_text().split()[0]))
    except (OSError, ValueError, IndexError, psutil.Error):
        return None


def cpu_delta(before: dict[str, float], after: dict[str, float], seconds: float) -> dict:
    used = {k: round(after[k] - before[k], 2) for k in before if k in after}
    used["others"] = round(used.get("machine", 0.0) - sum(v for k, v in used.items() if k != "machine"), 2)
    used["wall_s"] = round(seconds, 2)
    used["cores_available"] = os.cpu_count()
    return used


@contextmanager
def exclusive_run(name: str):
    """One run of this bench at a time: concurrent runs in one database would use the same
    ``bench-e2e`` tenant (and drop it), so a second run waits on a PostgreSQL advisory lock held
    by its own connection."""
    from django.db import connections

    conn = connections.create_connection("default")
    key = int.from_bytes(
        hashlib.blake2b(f"ecbao:{name}".encode(), digest_size=8).digest(), "big", signed=True
    )
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            if not cursor.fetchone()[0]:
                print("another bench_e2e_ingest run is using the bench tenant: waiting for it", flush=True)
                cursor.execute("SELECT pg_advisory_lock(%s)", [key])
        yield
    finally:
        conn.close()  # frees the lock


# --- the run ----------------------------------------------------------------------------------


def pull_store(store_id: int, platform: str, now, barrier: threading.Barrier, out: dict) -> None:
    """One store's pull on its own thread and connection, as a pull task would run it."""
    from channels import services, sync
    from channels.models import Store

    row: dict = {}
    try:
        with schema_context(SCHEMA):
            connector = None
            if platform == "wechat":  # its detail fetches run in parallel, bounded by the sandbox QPS
                connector = services.connector_for(
                    Store.objects.get(pk=store_id), detail_workers=WECHAT_DETAIL_WORKERS
                )
            barrier.wait()
            started = time.perf_counter()
            row["result"] = sync.pull_orders(store_id=store_id, now=now, connector=connector)
            row["ended"] = time.perf_counter()
            row["pull_s"] = row["ended"] - started
    except Exception as exc:  # reported, and the wait below gives up
        row["exception"] = repr(exc)
        barrier.abort()
    finally:
        out[platform] = row
        connection.close()


def sandbox_calls(world, since: float) -> dict:
    """API calls the sandbox logged during the run: per platform and path, and how many its
    QPS limiter refused."""
    rows = world.read(
        "SELECT platform, path, count(*), sum(fault LIKE '%qps%') FROM call_log WHERE time >= ? "
        "GROUP BY platform, path ORDER BY platform, path",
        (since,),
    )
    return {f"{p} {path}": {"calls": n, "qps_refused": int(q or 0)} for p, path, n, q in rows}


SCHEMA = ""  # this run's clean tenant


def main() -> dict:
    global SCHEMA
    from channels import sync

    sync.READ_AHEAD = READ_AHEAD
    with exclusive_run("bench_e2e_ingest"), clean_tenant("e2e") as schema:
        SCHEMA = schema
        return run()


def run() -> dict:
    world_path = ROOT / ".data" / f"bench-sandbox-{os.getpid()}.sqlite3"
    logfile = ROOT / ".data" / f"bench-e2e-worker-{os.getpid()}.log"
    world = build_world(world_path)
    try:
        results = measure(world, logfile)
    finally:
        world.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{world_path}{suffix}").unlink(missing_ok=True)
    if results["problems"]:
        print(f"  worker log kept: {logfile}", flush=True)
    else:
        logfile.unlink(missing_ok=True)
    return results


def measure(world, logfile: Path) -> dict:
    from celery.signals import after_task_publish
    from django.db.models import Count

    from orders import review
    from orders.models import Order
    from sandbox.faults import DEFAULT_QPS, Faults
    from sandbox.wechat import WechatLimits

    shops = {shop.platform: shop for shop in world.shops()}
    sandbox_orders = {p: world.orders(shops[p].shop_id) for p in PLATFORMS}
    expected_lines = sum(len(o.lines) for orders in sandbox_orders.values() for o in orders)
    fault_rules = Faults(world).rules()
    limits = {
        "qps_per_app_and_path": dict(DEFAULT_QPS),
        "fault_rules": {f"{p} {path}": rule for (p, path), rule in fault_rules.items()},
        "wechat_quotas": vars(WechatLimits.load(world)),
        "defaults_in_force": not fault_rules,
    }
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    published: list[tuple[str, str]] = []

    def on_publish(sender=None, headers=None, **_):
        if sender == INGEST_TASK:
            published.append((headers.get("id"), headers.get("_schema_name")))

    results: dict = {
        "orders_per_platform": PER_PLATFORM,
        "target_orders_per_s": TARGET_PER_S,
        "worker_processes": WORKERS,
        "rate_limits": limits,
        "sandbox_latency_ms": LATENCY_MS,
        "read_ahead": READ_AHEAD,
        "load_before": [round(x, 2) for x in os.getloadavg()],
    }
    sandbox = worker = None
    try:
        sandbox, info = start_sandbox(Path(world.path))
        urls = info["urls"]
        results["sandbox"] = {
            "pid": sandbox.pid,
            "orders_seen_by_sandbox_process": info["counts"].get("orders"),
        }
        settings.CHANNEL_BASE_URLS = {p: urls[p] for p in PLATFORMS}
        worker, worker_name = start_worker(queue, logfile, urls)
        with schema_context(SCHEMA):
            reset_tenant(world)
            rules = review.active_rules()
            results["review_rules"] = {k: rules[k].enabled for k in ("auto_approve", "auto_merge")}
            stores = {p: connect_store(world, shops[p]) for p in PLATFORMS}
        results["worker_ready_s"] = round(wait_for_worker(worker, worker_name), 2)
        store_ids = {p: stores[p].pk for p in PLATFORMS}
        expected = {store_ids[p]: len(sandbox_orders[p]) for p in PLATFORMS}
        total_expected = sum(expected.values())

        after_task_publish.connect(on_publish, weak=False)
        pulls: dict[str, dict] = {}
        barrier = threading.Barrier(len(PLATFORMS) + 1, timeout=60)
        # Orders were placed a moment ago: end the windows past the settle lag.
        now = timezone.now() + timedelta(seconds=5)
        threads = [
            threading.Thread(target=pull_store, args=(store_ids[p], p, now, barrier, pulls), name=f"pull-{p}")
            for p in PLATFORMS
        ]
        for thread in threads:
            thread.start()
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            raise RuntimeError(f"a pull thread failed before the start: {pulls}") from None
        t0 = time.perf_counter()
        wall_t0 = time.time()
        cpu_pids = {"pull": os.getpid(), "sandbox": sandbox.pid, "worker": worker.pid}
        cpu_t0 = cpu_sample(cpu_pids)
        cpu_dk = None
        dk = [store_ids["douyin"], store_ids["kuaishou"]]
        done_at: dict[int, float] = {}
        last_total, last_change = -1, t0
        with schema_context(SCHEMA):
            while True:
                counts = dict(
                    Order.objects.filter(store_id__in=list(expected))
                    .order_by()
                    .values("store_id")
                    .annotate(n=Count("id"))
                    .values_list("store_id", "n")
                )
                at = time.perf_counter()
                for sid, n in expected.items():
                    if sid not in done_at and counts.get(sid, 0) >= n:
                        done_at[sid] = at - t0
                if cpu_dk is None and all(sid in done_at for sid in dk):
                    cpu_dk = cpu_delta(cpu_t0, cpu_sample(cpu_pids), at - t0)
                total = sum(counts.values())
                if total != last_total:
                    last_total, last_change = total, at
                if len(done_at) == len(expected) or at - t0 > WAIT_TIMEOUT:
                    break
                if not any(t.is_alive() for t in threads) and at - last_change > 15:
                    break  # the pulls ended and nothing has arrived for a while
                time.sleep(POLL)
            wall_s = time.perf_counter() - t0
            results["cpu_s"] = cpu_delta(cpu_t0, cpu_sample(cpu_pids), wall_s)
            if cpu_dk:
                results["cpu_s_until_douyin_kuaishou_done"] = cpu_dk
            for thread in threads:
                thread.join(30)
            after_task_publish.disconnect(on_publish)
            check = check_ingestion(list(expected))
        results["load_after"] = [round(x, 2) for x in os.getloadavg()]

        complete = len(done_at) == len(expected)
        results.update(
            {
                "sandbox_orders": total_expected,
                "sandbox_lines": expected_lines,
                "complete": complete,
                "wall_s": round(wall_s, 2),
                "end_to_end_orders_per_s": round(check["orders"] / wall_s, 1),
                "meets_target": complete and check["orders"] / wall_s >= TARGET_PER_S,
            }
        )
        for p in PLATFORMS:
            row = pulls.get(p, {})
            pulled = row.get("result")
            n = len(sandbox_orders[p])
            pull_s = row.get("pull_s")
            e2e_s = done_at.get(store_ids[p])
            results[p] = {
                "orders": n,
                "pull_s": round(pull_s, 2) if pull_s else None,
                "pull_orders_per_s": round(n / pull_s, 1) if pull_s else None,
                "done_s": round(e2e_s, 2) if e2e_s else None,  # from t0 until its last order was ingested
                "ingest_lag_after_pull_s": round(e2e_s - pull_s, 2) if e2e_s and pull_s else None,
                "pull_error": pulled.error if pulled else row.get("exception", "no result"),
                "windows": pulled.windows if pulled else None,
                "seen": pulled.orders_seen if pulled else None,
                "changed": pulled.orders_changed if pulled else None,
                "skipped": pulled.skipped if pulled else None,
            }
        if all(sid in done_at for sid in dk):
            dk_s = max(done_at[sid] for sid in dk)
            results["douyin_kuaishou"] = {
                "orders": sum(expected[sid] for sid in dk),
                "done_s": round(dk_s, 2),
                "end_to_end_orders_per_s": round(sum(expected[sid] for sid in dk) / dk_s, 1),
                "note": "measured in the same run, while the WeChat pull ran beside them",
            }
    finally:
        worker_rc = stop_worker(worker) if worker is not None else None
        if sandbox is not None:
            stop_sandbox(sandbox)

    # After the sandbox flushed its call log.
    results["sandbox_calls"] = sandbox_calls(world, wall_t0 - 1)
    results["platform_errors"] = platform_errors(world)  # the whole run, connecting included
    from celery.result import AsyncResult

    from ecbao.celery import app

    states: dict[str, int] = {}
    for task_id, _ in published:
        state = AsyncResult(task_id, app=app).state
        states[state] = states.get(state, 0) + 1
    worker_log = read_worker_log(logfile)
    results["tasks"] = {
        "published": len(published),
        "schemas": sorted({s or "" for _, s in published}),
        "states": states,
        "worker_exit_code": worker_rc,
        **worker_log,
    }
    results["check"] = check
    problems = []
    if check["orders"] != total_expected:
        problems.append(f"{check['orders']} orders ingested, sandbox has {total_expected}")
    if check["orders_without_lines"]:
        problems.append(f"{check['orders_without_lines']} orders without lines")
    if check["lines"] != expected_lines:
        problems.append(f"{check['lines']} lines, sandbox has {expected_lines}")
    if check["reservations"] != check["lines_with_sku"]:
        problems.append(
            f"{check['reservations']} reservations for {check['lines_with_sku']} lines with a SKU"
        )
    if check["lines_reserved"] != check["lines_with_sku"]:  # stock is ample: every line reserved
        problems.append(f"{check['lines_reserved']} of {check['lines_with_sku']} lines reserved")
    if states.get("SUCCESS", 0) != len(published):
        problems.append(f"task states {states}")
    if worker_log["retries"] or worker_log["failures"] or worker_log["error_lines"]:
        problems.append(f"worker log: {worker_log}")
    if results["tasks"]["schemas"] != [SCHEMA]:
        problems.append(f"tasks sent for schemas {results['tasks']['schemas']}")
    results["problems"] = problems
    report(results)
    return results


def report(r: dict) -> None:
    lim = r["rate_limits"]
    print(
        f"sandbox in its own process (pid {r['sandbox']['pid']}, sees {r['sandbox']['orders_seen_by_sandbox_process']} "
        f"orders); Celery worker: {r['worker_processes']} prefork processes (ready in {r['worker_ready_s']}s); "
        f"review rules {r['review_rules']}; load before {r['load_before']} after {r.get('load_after')}",
        flush=True,
    )
    print(
        f"rate limits: {'sandbox defaults in force' if lim['defaults_in_force'] else 'CHANGED: ' + str(lim['fault_rules'])}"
        f" — QPS per app and path {lim['qps_per_app_and_path']}; WeChat lists ids only and fetches each order with"
        f" /channels/ec/order/get, so its pull is bounded by that path's QPS",
        flush=True,
    )
    print(
        f"sandbox latency per answer {r['sandbox_latency_ms']} ms; pull read-ahead {'on' if r['read_ahead'] else 'off'}",
        flush=True,
    )
    for p in PLATFORMS:
        row = r[p]
        print(
            f"  {p:9s} {row['orders']:>5} orders: pull {row['pull_s']}s = {row['pull_orders_per_s']}/s; "
            f"last order ingested at {row['done_s']}s (lag after pull {row['ingest_lag_after_pull_s']}s) "
            f"{row['pull_error'] or ''} windows={row['windows']} seen={row['seen']}",
            flush=True,
        )
    for key, calls in r["sandbox_calls"].items():
        if calls["calls"] > 50 or calls["qps_refused"]:
            print(
                f"  sandbox {key}: {calls['calls']} calls, {calls['qps_refused']} refused by QPS", flush=True
            )
    t = r["tasks"]
    print(
        f"  ingestion tasks: {t['published']} sent (schemas {t['schemas']}), states {t['states']}, "
        f"{t['tasks_succeeded']} succeeded in {t['task_seconds_total']}s of task time (max {t['task_seconds_max']}s), "
        f"retries {t['retries']}, failures {t['failures']}",
        flush=True,
    )
    c = r["check"]
    print(
        f"  check: {c['orders']} orders, {c['orders_without_lines']} without lines, {c['lines']} lines "
        f"({c['lines_with_sku']} with a SKU, {c['lines_reserved']} reserved), {c['reservations']} reservations; "
        f"statuses {c['orders_by_status']}",
        flush=True,
    )
    if "douyin_kuaishou" in r:
        dk = r["douyin_kuaishou"]
        print(
            f"END TO END Douyin+Kuaishou only: {dk['orders']} orders done at {dk['done_s']}s = "
            f"{dk['end_to_end_orders_per_s']}/s ({dk['note']})",
            flush=True,
        )
    verdict = "meets" if r["meets_target"] else "BELOW"
    print(
        f"END TO END all three: {r['sandbox_orders']} orders in {r['wall_s']}s = {r['end_to_end_orders_per_s']}/s "
        f"({verdict} the {r['target_orders_per_s']}/s target{'' if r['complete'] else '; INCOMPLETE'})",
        flush=True,
    )
    for key, label in (
        ("cpu_s_until_douyin_kuaishou_done", "until Douyin+Kuaishou done"),
        ("cpu_s", "whole run"),
    ):
        if key in r:
            c = r[key]
            print(
                f"  CPU seconds {label} ({c['wall_s']}s wall × {c['cores_available']} cores): pull {c.get('pull')}, "
                f"sandbox {c.get('sandbox')}, worker {c.get('worker')}, PostgreSQL (all databases) "
                f"{c.get('postgres_all_databases')}, everything else {c['others']}, machine {c.get('machine')}",
                flush=True,
            )
    e = r["platform_errors"]
    print(
        f"  platform calls {e['calls']}: errors {e['errors']} {e['by_code'] or ''}, rate-limited {e['rate_limited']}",
        flush=True,
    )
    print(f"  problems: {r['problems'] or 'none'}", flush=True)


if __name__ == "__main__":
    main()

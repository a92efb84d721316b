"""Waybill numbers per second against the platform sandbox over real HTTP, within its limits.

Two measurements, in a tenant of its own, the sandbox in a process of its own (its default
limits: WeChat's e-waybill APIs ≈500 calls a minute per app and API path — a bucket of 500
refilled at 500/60 per second, answered with 45011 —, Douyin 100 and Kuaishou 300 calls a
second per path):

1. ``take_for_parcel`` one parcel after another per platform, in this process: the latency of
   one take (Douyin: order detail + newCreateOrder; Kuaishou: ebill/get; WeChat: order/create
   + print/get, paced by the connector at 8 e-waybill calls a second);
2. ``start_take`` of every other parcel (three platforms, one batch) run by a real Celery
   worker process: wall time from the call to the batch's end, per platform the time its last
   number arrived, and — for WeChat — the e-waybill calls per minute the sandbox saw (sliding
   60 s window, per path and all paths together) against the 500 limit, and any 45011.

Every parcel must end with exactly one number (checked against the sandbox's waybills per key).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from common import ROOT, clean_tenant, platform_errors
from django.conf import settings
from django.db import connection
from django_tenants.utils import schema_context

PER_PLATFORM = int(os.environ.get("BENCH_WAYBILLS_PER_PLATFORM", "100"))  # parcels in the batch
SEQUENTIAL = int(os.environ.get("BENCH_WAYBILLS_SEQUENTIAL", "30"))  # parcels per platform, one by one
LATENCY_MS = float(os.environ.get("BENCH_WAYBILLS_LATENCY_MS", "0"))
PLATFORMS = ("douyin", "kuaishou", "wechat")
WECHAT_LIMIT_PER_MIN = 500
EWAYBILL_PREFIX = {
    "douyin": "/logistics/",
    "kuaishou": "/open/express/ebill/",
    "wechat": "/channels/ec/logistics/ewaybill/biz/",
}

SANDBOX_ENTRY = """
import json, logging, sys
from sandbox.server import SandboxServer, ServerOptions
from sandbox.world import World

logging.getLogger("waitress.queue").setLevel(logging.ERROR)
world = World(sys.argv[1])
server = SandboxServer(world, ServerOptions(ports={}, simulate=False, push=False, threads=16))
latency_ms = float(sys.argv[2])
for platform in ("douyin", "kuaishou", "wechat") if latency_ms else ():
    server.faults.set(platform, "*", latency_ms=latency_ms)
server.start()
sys.stdout.write(json.dumps({"urls": server.urls}) + "\\n")
sys.stdout.flush()
try:
    sys.stdin.read()
finally:
    server.stop()
    world.close()
"""


def build_world(path: Path):
    from sandbox.seed import seed_default_world
    from sandbox.world import World

    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    world = World(str(path), seed=17)
    seed_default_world(world, shops_per_platform=1, buyers=400, product_count=4)
    for shop in world.shops():
        for sku in world.skus(shop.shop_id):
            world.set_stock(sku.sku_id, 10**7)
        for a in world.waybill_accounts(shop.shop_id):
            world.create_waybill_account(
                shop_id=a.shop_id, carrier=a.carrier, netsite_code=a.netsite_code,
                netsite_name=a.netsite_name, available=10**6, sender=a.sender,
            )  # fmt: skip
    return world


def start_sandbox(path: Path) -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SANDBOX_ENTRY, str(path), str(LATENCY_MS)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    line = proc.stdout.readline()
    if not line:
        proc.wait(5)
        raise RuntimeError(f"sandbox process exited with {proc.returncode} before reporting its URLs")
    return proc, json.loads(line)


def stop_sandbox(proc: subprocess.Popen) -> None:
    try:
        proc.stdin.close()
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def start_worker(urls: dict[str, str], logfile: Path) -> tuple[subprocess.Popen, str]:
    name = f"bench-waybills-{os.getpid()}@{socket.gethostname()}"
    env = {
        **os.environ,
        "ECBAO_DOUYIN_API": urls["douyin"],
        "ECBAO_KUAISHOU_API": urls["kuaishou"],
        "ECBAO_WECHAT_API": urls["wechat"],
    }
    cmd = [
        str(Path(sys.executable).parent / "celery"), "-A", "ecbao", "worker",
        "-Q", settings.CELERY_TASK_DEFAULT_QUEUE, "-c", "1", "-P", "prefork", "-n", name,
        "-l", "info", "--logfile", str(logfile),
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT), name


def wait_for_worker(proc: subprocess.Popen, name: str, timeout: float = 60.0) -> None:
    from ecbao.celery import app

    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"celery worker exited with {proc.returncode}")
        if app.control.ping(destination=[name], timeout=0.5):
            return
    raise RuntimeError(f"celery worker {name} did not answer a ping within {timeout:.0f}s")


def stop_worker(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def connect_shops(world) -> dict:
    """The three shops connected as a merchant connects them, SKUs with stock, a sender, the
    waybill accounts synced, and a default carrier rule (ZTO)."""
    from channels import services as channel_services
    from channels.models import Store
    from inventory.models import Goods, Sku
    from inventory.services import receive_stock
    from logistics import waybills
    from logistics.models import CarrierRule, SenderAddress
    from sandbox.wechat import create_self_use_app

    stores = {}
    for shop in (world.shops(p)[0] for p in PLATFORMS):
        platform = shop.platform
        if platform == "wechat":
            app = create_self_use_app(world, shop.shop_id)
            secrets = {"app_secret": app.app_secret, "token": app.push_token, "aes_key": app.encoding_aes_key}
            channel_services.register_app(platform=platform, app_key=app.app_key, secrets=secrets)
            connector = channel_services.unbound_connector(platform=platform, app_key=app.app_key)
            grant = connector.self_use_token(platform_shop_id=shop.shop_id)
            mode = Store.AuthMode.SELF_USE
        else:
            app = next(a for a in world.apps(platform) if a.app_type == "tool")
            secrets = {
                "app_secret": app.app_secret,
                "sign_secret": app.sign_secret,
                "message_key": app.message_key,
            }
            channel_services.register_app(
                platform=platform, app_key=app.app_key, secrets={k: v for k, v in secrets.items() if v}
            )
            connector = channel_services.unbound_connector(platform=platform, app_key=app.app_key)
            grant = connector.exchange_code(code=world.create_oauth_code(app.app_key, shop.shop_id).code)
            mode = Store.AuthMode.OAUTH
        connector.http.close()
        stores[platform] = channel_services.connect_store(
            platform=platform, app_key=app.app_key, grant=grant, auth_mode=mode
        )
    goods = Goods.objects.create(name="压测货品")
    for code in sorted({s.code for p in PLATFORMS for s in world.skus(world.shops(p)[0].shop_id)}):
        sku = Sku.objects.create(goods=goods, merchant_code=code, name=code, weight_g=400)
        receive_stock(sku=sku, quantity=10**6, reason="opening stock")
    SenderAddress.objects.create(
        name="鲸选仓库", mobile="13800005678", province="浙江省", city="杭州市", district="余杭区",
        street="仓前街道", detail="文一西路1号", is_default=True,
    )  # fmt: skip
    for store in stores.values():
        waybills.sync_accounts(store)
    CarrierRule.objects.create(name="默认中通", priority=100, carrier="zto")
    return stores


_buyer = 0


def place_orders(world, stores: dict, count: int) -> dict[str, list[int]]:
    """``count`` paid orders per shop, read over HTTP and ingested; returns their parcel ids."""
    from channels import services as channel_services
    from logistics import services as parcel_services
    from logistics.models import Parcel
    from orders import services as order_services
    from orders.models import OrderStatus
    from sandbox.world import OrderItemSpec

    global _buyer
    out: dict[str, list[int]] = {}
    for platform, store in stores.items():
        shop_id = world.shops(platform)[0].shop_id
        skus = world.skus(shop_id)
        connector = channel_services.connector_for(store)
        order_ids = []
        for n in range(count):
            _buyer = _buyer % 400 + 1  # a buyer of their own per order: no merges
            placed = world.create_order(
                shop_id=shop_id,
                buyer_id=_buyer,
                items=[OrderItemSpec(skus[n % len(skus)].sku_id, 1)],
                pay=True,
            )
            pid = placed.lines[0].line_id if platform == "kuaishou" else placed.order_id
            order = order_services.ingest_channel_order(store=store, co=connector.get_order(pid))
            if order.status != OrderStatus.APPROVED:
                order = order_services.approve(order=order, actor=None)
            order_ids.append(order.pk)
        connector.http.close()
        parcel_services.ensure_parcels()
        out[platform] = list(
            Parcel.objects.filter(lines__order_line__order_id__in=order_ids, status=Parcel.Status.NEW)
            .distinct()
            .order_by("pk")
            .values_list("pk", flat=True)
        )
    return out


def sequential(parcels: dict[str, list[int]]) -> dict:
    from logistics import waybills

    out = {}
    for platform, ids in parcels.items():
        started = time.perf_counter()
        for pk in ids:
            waybills.take_for_parcel(pk)
        elapsed = time.perf_counter() - started
        out[platform] = {
            "parcels": len(ids),
            "seconds": round(elapsed, 2),
            "waybills_per_s": round(len(ids) / elapsed, 1),
            "ms_per_waybill": round(elapsed / len(ids) * 1000, 1),
        }
        print(
            f"  take_for_parcel {platform}: {out[platform]['waybills_per_s']}/s ({out[platform]['ms_per_waybill']} ms each)"
        )
    return out


def batch(parcels: dict[str, list[int]], stores: dict) -> dict:
    from logistics import waybills
    from logistics.models import ShipBatch, Waybill

    ids = [pk for per in parcels.values() for pk in per]
    started_wall = time.time()
    started = time.perf_counter()
    shipbatch = waybills.start_take(ids)
    while ShipBatch.objects.filter(pk=shipbatch.pk, status__in=["queued", "running"]).exists():
        time.sleep(0.1)
    elapsed = time.perf_counter() - started
    shipbatch.refresh_from_db()
    per_platform = {}
    for platform in stores:
        last = (
            Waybill.objects.filter(parcel_id__in=parcels[platform], status=Waybill.Status.ISSUED)
            .order_by("-updated_at")
            .values_list("updated_at", flat=True)
            .first()
        )
        seconds = last.timestamp() - started_wall if last else None
        per_platform[platform] = {
            "parcels": len(parcels[platform]),
            "last_number_after_s": round(seconds, 2) if seconds else None,
            "waybills_per_s": round(len(parcels[platform]) / seconds, 1) if seconds else None,
        }
    result = {
        "parcels": len(ids),
        "done": shipbatch.done,
        "failed": shipbatch.failed,
        "status": shipbatch.status,
        "wall_s": round(elapsed, 2),
        "waybills_per_s": round(len(ids) / elapsed, 1),
        "per_platform": per_platform,
        "started_at": started_wall,
    }
    print(
        f"  start_take {len(ids)} parcels: {result['wall_s']} s, {result['waybills_per_s']}/s overall; "
        + ", ".join(f"{p} {v['waybills_per_s']}/s" for p, v in per_platform.items())
    )
    return result


def wechat_minute_rates(world, since: float) -> dict:
    """WeChat's e-waybill calls as the sandbox saw them: the rate while the batch took numbers
    and the most in any 60 s, per path and all paths together."""
    rows = world.read(
        "SELECT time, path, code FROM call_log WHERE platform='wechat' AND time >= ? AND path LIKE ?",
        (since, EWAYBILL_PREFIX["wechat"] + "%"),
    )
    times_by_path: dict[str, list[float]] = defaultdict(list)
    for at, path, _code in rows:
        times_by_path[path].append(at)
        times_by_path["*"].append(at)

    def peak(times: list[float]) -> int:
        times.sort()
        best, lo = 0, 0
        for hi, t in enumerate(times):
            while times[lo] < t - 60:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    def per_minute(times: list[float]) -> float | None:
        span = max(times) - min(times) if len(times) > 1 else 0
        return round((len(times) - 1) / span * 60, 1) if span else None

    return {
        "calls": len(rows),
        "calls_per_min_while_taking": {
            path: per_minute(times) for path, times in sorted(times_by_path.items())
        },
        "rate_limited_45011": sum(1 for r in rows if str(r[2]) == "45011"),
        "peak_calls_per_60s": {path: peak(times) for path, times in sorted(times_by_path.items())},
        "limit_per_path_per_min": WECHAT_LIMIT_PER_MIN,
    }


def check_one_number_per_parcel(world, parcel_ids: list[int]) -> dict:
    from logistics.models import Parcel, Waybill

    numbered = Parcel.objects.filter(pk__in=parcel_ids, status=Parcel.Status.NUMBERED).count()
    ours = set(
        Waybill.objects.filter(parcel_id__in=parcel_ids, status=Waybill.Status.ISSUED).values_list(
            "tracking_no", flat=True
        )
    )
    per_key = world.waybills_per_parcel(include_cancelled=True)
    duplicates = sum(1 for numbers in per_key.values() if len(numbers) != 1)
    live = {w.tracking_no for numbers in per_key.values() for w in numbers if w.status == "issued"}
    return {
        "parcels": len(parcel_ids),
        "numbered": numbered,
        "keys_with_more_than_one_number": duplicates,
        "sandbox_numbers_not_in_ecbao": len(live - ours),
        "ok": numbered == len(parcel_ids) and not duplicates and live == ours,
    }


def main() -> dict:
    with clean_tenant("waybills") as schema:
        return run(schema)


def run(schema: str) -> dict:
    world_path = ROOT / ".data" / f"bench-waybills-{os.getpid()}.sqlite3"
    logfile = ROOT / ".data" / f"bench-waybills-worker-{os.getpid()}.log"
    world_path.parent.mkdir(exist_ok=True)
    world = build_world(world_path)
    proc, info = start_sandbox(world_path)
    worker = None
    urls = info["urls"]
    saved = dict(settings.CHANNEL_BASE_URLS)
    settings.CHANNEL_BASE_URLS = {**saved, **{p: urls[p] for p in PLATFORMS}}
    try:
        with schema_context(schema):
            t0 = time.perf_counter()
            stores = connect_shops(world)
            seq = place_orders(world, stores, SEQUENTIAL)
            bat = place_orders(world, stores, PER_PLATFORM)
            setup_s = round(time.perf_counter() - t0, 1)
            print(
                f"  set-up: {sum(map(len, seq.values())) + sum(map(len, bat.values()))} orders in {setup_s} s"
            )
            since = time.time()
            one_by_one = sequential(seq)
            worker, name = start_worker(urls, logfile)
            wait_for_worker(worker, name)
            batch_since = time.time()
            batched = batch(bat, stores)
        connection.set_schema_to_public()
    finally:
        if worker is not None:
            stop_worker(worker)
        stop_sandbox(proc)
        settings.CHANNEL_BASE_URLS = saved
    try:
        with schema_context(schema):
            check = check_one_number_per_parcel(
                world, [pk for per in (*seq.values(), *bat.values()) for pk in per]
            )
        wechat = wechat_minute_rates(world, batch_since)
        errors = platform_errors(world, since=since)
    finally:
        world.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{world_path}{suffix}").unlink(missing_ok=True)
    if check["ok"]:
        logfile.unlink(missing_ok=True)
    else:
        print(f"  worker log kept: {logfile}")
    print(
        f"  WeChat e-waybill calls per minute while taking: {wechat['calls_per_min_while_taking']}, "
        f"busiest 60 s: {wechat['peak_calls_per_60s']} "
        f"(limit {WECHAT_LIMIT_PER_MIN} per path), 45011: {wechat['rate_limited_45011']}; one number per parcel: {check['ok']}"
    )
    return {
        "latency_ms_added": LATENCY_MS,
        "setup_s": setup_s,
        "take_for_parcel_sequential": one_by_one,
        "start_take_batch": batched,
        "wechat_ewaybill": wechat,
        "one_number_per_parcel": check,
        "platform_errors": errors,
    }


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()

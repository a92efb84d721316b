"""End to end: with the platforms failing in every way the sandbox can fail, repeated pulls
still converge on every order of a Douyin, a Kuaishou and a WeChat shop, each with its latest
status, once.

The sandbox serves the three platforms over real HTTP (waitress on free ports, in threads);
``settings.CHANNEL_BASE_URLS`` points at it. Each shop first gets ~2½ days of history (buyers
and a merchant bot on a fast-forward clock, a few hundred orders per shop), then the world
goes live on the wall clock, a tenant of its own connects one shop per platform, and the
fault rules go on (``sandbox.faults``): on the order list and order detail paths
HTTP 502/503/504 pages, the platforms' "service busy" errors, rate-limit storms, truncated
bodies and timeouts; on the token paths 5xx, busy errors and rate limits. Between rounds of
pulls the simulator keeps placing and changing orders, every store's order list gets a storm
of one fault kind (each pull into it must fail and keep its watermark), and the platforms
expire or revoke the shops' access tokens. Two moments are scripted: Douyin renews an expired
token and then fails the rest of the pull (the new token must be kept — Douyin has retired the
old pair), and WeChat's token expires while the connector's worker threads fetch order
details (the thread that renews it must save it, in the tenant's schema).

Every pull is ``channels.sync.pull_orders(store_id=…)`` in the tenant's schema, run again and
again as the periodic task does: a pull that fails half-way keeps its watermark and the next
one repeats from there. The only difference from the task's connector: a short client timeout
and short back-off sleeps (``connector_for(store, timeout=…, retry=…)``), and two attempts
instead of four, so that failures reach the pull instead of being absorbed by retries. With
the faults still on, each store is pulled until a pull completes without error after the last
change; then ``ChannelOrderState`` must equal the sandbox world exactly.

Order ingestion (the orders layer) is detached: it has its own tests, and here it would only
make the run slower.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime

from django.db import connection
from django.db.models import Count
from django_tenants.utils import schema_context

from channels import events as channel_events
from channels import services as channel_services
from channels.connectors.base import Connector, RetryPolicy
from channels.models import ChannelOrderState, Store, SyncCursor
from channels.routing.models import PlatformApp
from channels.sync import SETTLE, PullResult, pull_orders
from ecbao import events
from sandbox.seed import seed_default_world
from sandbox.server import SandboxServer, ServerOptions
from sandbox.simulator import BuyerSimulator, SimConfig
from sandbox.world import OrderItemSpec, World
from tests.e2e.conftest import PhasedClock, wait_until
from tests.e2e.test_channel_sync import connect, expected_orders, register_tool_apps

log = logging.getLogger(__name__)

SEED = 1729  # a world of its own: app keys and shop ids differ from the other e2e tests'
SLUG = "faults-e2e"
PLATFORMS = ("douyin", "kuaishou", "wechat")
TIME_COMPRESSION = 3600  # platform timers: payment 1 s, merchant ships after 2–6 s, receipt 24–96 s …
HISTORY_SECONDS = int(2.5 * 86400)  # more than one day: Douyin's first pull walks several windows
HISTORY_ORDERS_PER_MINUTE = 0.08  # per shop: ~290 orders before the shops are connected
LIVE_ORDERS_PER_MINUTE = 90  # per shop, while the rounds of pulls run
FINAL_PULLS = 25  # per store, after the simulator stopped; faults stay on

CLIENT_TIMEOUT = 0.4  # seconds; a "timeout" fault holds the answer back longer
RETRY = RetryPolicy(attempts=2, base_delay=0.005, max_delay=0.02, rate_limit_attempts=2)

LIST_PATHS = {
    "douyin": "/order/searchList",
    "kuaishou": "/open/order/cursor/list",
    "wechat": "/channels/ec/order/list/get",
}
DETAIL_PATHS = {"wechat": "/channels/ec/order/get"}  # the only pull that fetches details
TOKEN_PATHS = {
    "douyin": "/token/refresh",
    "kuaishou": "/oauth2/refresh_token",
    "wechat": "/cgi-bin/stable_token",
}
LIST_FAULTS = {
    "http_5xx_rate": 0.08,
    "error_rate": 0.06,
    "rate_limit_rate": 0.07,
    "malformed_rate": 0.05,
    "timeout_rate": 0.03,
    "timeout_seconds": 0.8,
}
# A pull of a few hundred WeChat orders makes a few hundred detail calls: lower rates.
DETAIL_FAULTS = {
    "http_5xx_rate": 0.012,
    "error_rate": 0.008,
    "rate_limit_rate": 0.008,
    "malformed_rate": 0.006,
    "timeout_rate": 0.003,
    "timeout_seconds": 0.8,
}
# Only faults that stop a call before the platform acts on it (see the test's docstring).
TOKEN_FAULTS = {"http_5xx_rate": 0.2, "error_rate": 0.1, "rate_limit_rate": 0.1}
# One storm per round and store, on its order list: every call fails this way.
STORM_KINDS = ("http_5xx_rate", "error_rate", "rate_limit_rate", "malformed_rate", "timeout_rate")

# Reading the sandbox's call log: fault labels ("http503", "timeout", …) by kind, the result
# code of a successful token call, and the answers that refuse an expired / revoked token.
FAULT_KINDS = {
    "http": "5xx",
    "time": "timeout",
    "erro": "error",
    "rate": "rate-limit-storm",
    "malf": "malformed",
}
TOKEN_OK = {"douyin": "10000", "kuaishou": "1", "wechat": "0"}
TOKEN_REFUSED = {
    "douyin": lambda code: code.startswith("40003/isv.access-token"),
    "kuaishou": lambda code: code == "24",
    "wechat": lambda code: code in ("40001", "42001"),
}


def build_world(path) -> tuple[World, dict[str, str]]:
    clock = PhasedClock(start=time.time() - HISTORY_SECONDS - 60)
    world = World(path, seed=SEED, clock=clock, time_compression=TIME_COMPRESSION)
    seed_default_world(world, buyers=120, shops_per_platform=1, product_count=4)
    shops = {p: world.shops(p)[0].shop_id for p in PLATFORMS}
    for shop_id in shops.values():
        for sku in world.skus(shop_id):
            world.set_stock(sku.sku_id, 100_000)
    sim = BuyerSimulator(
        world,
        seed=SEED,
        config=SimConfig(orders_per_minute=HISTORY_ORDERS_PER_MINUTE, merchant_bot=True),
        shops=list(shops.values()),
    )
    sim.run_for(HISTORY_SECONDS)
    clock.go_live()
    return world, shops


def expire_access_tokens(world: World, shop_id: str) -> int:
    """The platform's clock says the shop's access tokens ran out (the store still believes
    they are good for days): the next call is answered "access token expired"."""
    now = world.now()
    count = 0
    for token in world.tokens(shop_id=shop_id):
        if not token.revoked_at and token.access_expires_at > now:
            token.access_expires_at = now
            world.save_token(token)
            count += 1
    return count


def pull(store_id: int, prepare: Callable[[Connector], None] | None = None) -> PullResult:
    """One run of the periodic pull (a fresh connector each time, as the task builds it);
    ``prepare`` may arm the connector with a scripted platform behaviour first."""
    store = Store.objects.get(pk=store_id)
    connector = channel_services.connector_for(store, timeout=CLIENT_TIMEOUT, retry=RETRY)
    if prepare is not None:
        prepare(connector)
    try:
        return pull_orders(store_id=store_id, connector=connector)
    finally:
        connector.http.close()


def watermark(store: Store) -> datetime | None:
    cursor = SyncCursor.objects.filter(store=store, kind=SyncCursor.Kind.ORDERS).first()
    return cursor.watermark if cursor else None


def test_pulls_converge_on_every_order_while_the_platforms_fail(
    tmp_path, settings, monkeypatch, committed_tenant
):
    """Faults that stop a call before the platform acts on it are injected on the token paths
    too; a refresh answer lost *after* the platform rotated the tokens (timeout / truncated
    body on ``/token/refresh``) is left out on purpose: on Douyin the old pair is dead by then,
    so no client can recover without the merchant authorising again."""
    started = time.monotonic()
    timings: dict[str, float] = {}
    for event in (channel_events.OrderChanged, channel_events.OrdersChanged):
        monkeypatch.setitem(events._handlers, event, [])
    world, shops = build_world(tmp_path / "world.sqlite3")
    sim: BuyerSimulator | None = None
    history_orders = len(world.orders())
    timings["world"] = time.monotonic() - started
    server = SandboxServer(
        world,
        ServerOptions(
            ports=dict.fromkeys(("status", *PLATFORMS), 0),
            simulate=False,  # the test drives its own simulator
            push=False,  # pulls only
            time_compression=TIME_COMPRESSION,
            threads=12,
        ),
    )
    faults = server.faults
    for platform in PLATFORMS:  # lift the default per-path rate limits (storms come from the rules)
        faults.set(platform, "*", qps=0)
    server.start()
    try:
        settings.CHANNEL_BASE_URLS = {p: server.urls[p] for p in PLATFORMS}
        tenant = committed_tenant(SLUG)
        register_tool_apps(world)
        with schema_context(tenant.schema_name):
            stores = {platform: connect(world, platform, shops[platform])[0] for platform in PLATFORMS}
            first_tokens = {p: s.access_token for p, s in stores.items()}
            timings["set_up"] = time.monotonic() - started

            # --- the platforms start failing --------------------------------------------------
            world.flush_calls()
            first_call = world.read("SELECT COALESCE(MAX(id), 0) FROM call_log")[0][0]

            def background_faults(platform: str) -> None:
                faults.set(platform, LIST_PATHS[platform], **LIST_FAULTS)
                faults.set(platform, TOKEN_PATHS[platform], **TOKEN_FAULTS)
                if platform in DETAIL_PATHS:
                    faults.set(platform, DETAIL_PATHS[platform], **DETAIL_FAULTS)

            for platform in PLATFORMS:
                background_faults(platform)

            results: dict[str, list[PullResult]] = defaultdict(list)
            marks: dict[str, list[datetime | None]] = {p: [None] for p in PLATFORMS}

            def run(platform: str, prepare: Callable[[Connector], None] | None = None) -> PullResult:
                result = pull(stores[platform].pk, prepare)
                results[platform].append(result)
                marks[platform].append(watermark(stores[platform]))
                assert not result.skipped, (platform, result)  # never auth_expired, never locked out
                return result

            def quiet(platform: str) -> None:
                """No background faults on the platform's paths (for the scripted pulls)."""
                off = dict.fromkeys(STORM_KINDS, 0.0)
                for paths in (LIST_PATHS, TOKEN_PATHS, DETAIL_PATHS):
                    if platform in paths:
                        faults.set(platform, paths[platform], **off)

            renewed: dict[str, tuple[str, str]] = {}  # platform → (new access token, thread)

            def record_renewal(connector: Connector, platform: str) -> None:
                save = connector.session.on_new_tokens

                def on_new_tokens(grant) -> None:
                    save(grant)
                    renewed[platform] = (grant.access_token, threading.current_thread().name)
                    if platform == "douyin":  # …and from now on the order list fails
                        faults.set("douyin", LIST_PATHS["douyin"], http_5xx_rate=1.0)

                connector.session.on_new_tokens = on_new_tokens

            def token_expires_during_details(connector: Connector) -> None:
                record_renewal(connector, "wechat")
                get_order, armed = connector.get_order, threading.Event()

                def get_order_once_expired(order_id: str):
                    if not armed.is_set():
                        armed.set()
                        scripted["expired"] += expire_access_tokens(world, shops["wechat"])
                    return get_order(order_id)

                connector.get_order = get_order_once_expired

            def scripted_pull(platform: str) -> None:
                """Douyin: the platform renews the expired token, then its order list fails for
                the rest of the pull — the new token must be kept (the platform retired the old
                pair). WeChat: the token expires while the order details are fetched, so one of
                the connector's worker threads renews it — and must save it."""
                quiet(platform)
                if platform == "douyin":
                    scripted["expired"] += expire_access_tokens(world, shops["douyin"])
                    result = run("douyin", lambda connector: record_renewal(connector, "douyin"))
                    assert result.error, result
                else:
                    result = run("wechat", token_expires_during_details)
                    assert not result.error, result
                    assert renewed["wechat"][1].startswith("wechat-order"), renewed
                token = Store.objects.get(pk=stores[platform].pk).access_token
                assert token == renewed[platform][0], (platform, renewed)
                background_faults(platform)

            # --- rounds: pulls while the simulator changes orders and the platforms misbehave --
            # Each round each store is pulled twice: once into a storm of one fault kind on its
            # order list (every call fails: the pull must fail and keep its watermark), once with
            # the background faults (in rounds 1 and 3 after its token expired or was revoked).
            # Storm kinds rotate so every store meets every kind.
            scripted: Counter = Counter()
            first_live_event = world.last_event_id()
            sim = BuyerSimulator(
                world,
                seed=SEED + 1,
                config=SimConfig(orders_per_minute=LIVE_ORDERS_PER_MINUTE, merchant_bot=True),
                shops=list(shops.values()),
            )
            # A few WeChat orders of known age, so that the scripted WeChat pull fetches several
            # details (the connector fetches a lone one in the calling thread).
            sku = world.skus(shops["wechat"])[0]
            for buyer in (1, 2, 3):
                world.create_order(
                    shop_id=shops["wechat"], buyer_id=buyer, items=[OrderItemSpec(sku.sku_id, 1)]
                )
            placed = time.time()
            sim.start(interval=0.05)
            try:
                for round_no in range(len(STORM_KINDS)):
                    for i, platform in enumerate(PLATFORMS):
                        kind = STORM_KINDS[(round_no + i) % len(STORM_KINDS)]
                        storm_rule = {**dict.fromkeys(STORM_KINDS, 0.0), kind: 1.0}  # only this kind
                        faults.set(platform, LIST_PATHS[platform], **storm_rule)
                        before = watermark(stores[platform])
                        storm = run(platform)
                        assert storm.error and not storm.windows, (platform, kind, storm)
                        assert watermark(stores[platform]) == before, (platform, kind)
                        background_faults(platform)
                        # The platform expires or invalidates the shop's access token.
                        if round_no in (1, 3) and (round_no, platform) != (1, "wechat"):
                            scripted["expired"] += expire_access_tokens(world, shops[platform])
                        if (round_no, platform) == (1, "wechat"):
                            scripted["revoked"] += faults.revoke_tokens("wechat", shop_id=shops["wechat"])
                        run(platform)
                        if (round_no, platform) in ((0, "douyin"), (2, "wechat")):
                            wait_until(lambda: time.time() > placed + SETTLE.total_seconds() + 0.5, timeout=5)
                            scripted_pull(platform)
            finally:
                sim.stop()
            live_events = world.last_event_id() - first_live_event
            timings["rounds"] = time.monotonic() - started - timings["set_up"]

            # --- converge: faults still on; pull until a pull after the last change succeeds ---
            last_change = max(o.update_time for o in world.orders())
            assert wait_until(lambda: time.time() > last_change + SETTLE.total_seconds() + 1, timeout=10)
            final_pulls: Counter = Counter()
            for platform in PLATFORMS:
                for _ in range(FINAL_PULLS):
                    final_pulls[platform] += 1
                    if not run(platform).error:
                        break
                else:
                    errors = [r.error for r in results[platform][-5:]]
                    raise AssertionError(f"{platform}: no clean pull in {FINAL_PULLS}: {errors}")
            timings["converge"] = time.monotonic() - started - timings["set_up"] - timings["rounds"]

            # --- the orders in ecbao are the orders on the platforms, once each ----------------
            compared = 0
            for platform, store in stores.items():
                want = expected_orders(world, platform, shops[platform])
                rows = ChannelOrderState.objects.filter(store=store)
                have = dict(rows.values_list("platform_order_id", "status"))
                assert rows.count() == len(have), (platform, "duplicate order states")
                assert not rows.values("platform_order_id").annotate(n=Count("id")).filter(n__gt=1)
                assert set(have) == set(want), (
                    platform,
                    len(set(want) - set(have)),
                    len(set(have) - set(want)),
                )
                wrong = {k: (have[k], want[k]) for k in want if have[k] != want[k]}
                assert not wrong, (platform, len(wrong), list(wrong.items())[:5])
                if platform != "kuaishou":  # one platform order per world order: compare versions too
                    updated = dict(rows.values_list("platform_order_id", "platform_updated_at"))
                    stale = [
                        o.order_id
                        for o in world.orders(shops[platform])
                        if updated[o.order_id] != datetime.fromtimestamp(o.update_time, UTC)
                    ]
                    assert not stale, (platform, len(stale), stale[:5])
                compared += len(want)

                # The store is healthy again, with new tokens (the old ones were expired/revoked).
                store.refresh_from_db()
                assert store.status == Store.Status.ACTIVE and not store.last_error, (
                    platform,
                    store.last_error,
                )
                assert store.access_token and store.access_token != first_tokens[platform], platform
                assert world.get_token(store.access_token).shop_id == shops[platform]
                cursor = SyncCursor.objects.get(store=store, kind=SyncCursor.Kind.ORDERS)
                assert cursor.state == SyncCursor.State.IDLE and not cursor.last_error

                # A pull that failed never moved the watermark past what it stored, nor back.
                seen = [m for m in marks[platform] if m is not None]
                assert seen == sorted(seen), platform
                for before, after, result in zip(
                    marks[platform][:-1], marks[platform][1:], results[platform], strict=True
                ):
                    if result.error and not result.windows:
                        assert after == before, (platform, result)
        connection.set_schema_to_public()

        # --- the faults fired, and the expired tokens were renewed by refresh calls ------------
        world.flush_calls()
        calls = world.read(
            "SELECT platform, path, http_status, code, fault FROM call_log WHERE id > ?", (first_call,)
        )
        fired: dict[str, Counter] = defaultdict(Counter)
        refreshes: Counter = Counter()
        token_refused: Counter = Counter()
        for platform, path, status, code, fault in calls:
            for label in filter(None, fault.split(",")):
                fired[platform][FAULT_KINDS.get(label[:4], label)] += 1
            if status >= 500:
                fired[platform]["answered 5xx"] += 1
            if code == "malformed":
                fired[platform]["answered malformed"] += 1
            if path == TOKEN_PATHS[platform] and status == 200 and code == TOKEN_OK[platform]:
                refreshes[platform] += 1
            if TOKEN_REFUSED[platform](code):
                token_refused[platform] += 1
        errored = {p: sum(1 for r in rs if r.error) for p, rs in results.items()}
        numbers = {
            "history_orders": history_orders,
            "live_orders": len(world.orders()) - history_orders,
            "live_events": live_events,
            "orders_compared": compared,
            "pulls": {p: len(rs) for p, rs in results.items()},
            "pulls_errored": errored,
            "final_pulls": dict(final_pulls),
            "scripted": dict(scripted),
            "calls": len(calls),
            "faults_fired": {p: dict(c) for p, c in fired.items()},
            "refreshes": dict(refreshes),
            "token_refused": dict(token_refused),
            "seconds": {k: round(v, 1) for k, v in timings.items()}
            | {"total": round(time.monotonic() - started, 1)},
        }
        print(numbers)
        log.info("pull under faults: %s", numbers)
        assert compared > 800 and numbers["live_orders"] > 0 and live_events > numbers["live_orders"]
        for platform in PLATFORMS:
            kinds = fired[platform]
            for kind in ("5xx", "error", "rate-limit-storm", "malformed", "timeout"):
                assert kinds[kind] > 0, (platform, kind, dict(kinds))
            assert kinds["answered 5xx"] > 0, (platform, dict(kinds))
            # Every store's token was refused at least once and renewed by a refresh call.
            assert token_refused[platform] >= 1 and refreshes[platform] >= 1, (platform, numbers)
            assert errored[platform] >= len(STORM_KINDS), (platform, errored)  # failed, and recovered
        # A truncated body is served when the call got past authentication (not, e.g., to a
        # call whose token had just expired).
        assert sum(fired[p]["answered malformed"] for p in PLATFORMS) > 0, fired
        assert scripted["expired"] >= 6 and scripted["revoked"] >= 1, scripted
    finally:
        if sim is not None:
            sim.stop()
        server.stop()
        connection.set_schema_to_public()
        PlatformApp.objects.filter(app_key__in=[a.app_key for a in world.apps()]).delete()
        world.close()

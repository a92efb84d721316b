"""Shipping and write-backs: parcels shipped per second, and write-backs per second against the
platform sandbox over real HTTP.

In a tenant of its own, the sandbox in a process of its own (as ``bench_waybills``):
``BENCH_SHIP_PER_PLATFORM`` paid orders per shop (three shops) are ingested, get their default
parcel and a real waybill number (untimed). Then:

1. ``ship_parcels`` of every parcel at once: wall time, parcels per second and SQL statements
   per parcel (stock out through the ledger, order lines and orders, fulfilments, one outbox
   row per (parcel, order), in chunks of ``shipping.CHUNK`` parcels per transaction);
2. ``writeback.send_due`` draining the outbox: half of the write-backs by one sender, the
   other half by ``SENDERS`` senders at once (threads; rows are claimed with SKIP LOCKED):
   write-backs per second, platform calls per write-back (the ship call and the read of the
   platform's view kept beside ecbao's).

Checked: every order shipped, the ledger balances, and each tracking number landed exactly
once on its platform (the sandbox's ship actions).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from pathlib import Path

from bench_waybills import build_world, connect_shops, place_orders, start_sandbox, stop_sandbox
from common import ROOT, clean_tenant, platform_errors
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

PER_PLATFORM = int(os.environ.get("BENCH_SHIP_PER_PLATFORM", "100"))
SENDERS = int(os.environ.get("BENCH_SHIP_SENDERS", "4"))


def take_numbers(parcels: dict[str, list[int]]) -> None:
    """A waybill number for every parcel, one thread per platform (untimed set-up)."""
    from logistics import waybills

    schema = connection.schema_name
    errors = []

    def take(ids: list[int]) -> None:
        try:
            with schema_context(schema):
                for pk in ids:
                    waybills.take_for_parcel(pk)
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=take, args=(ids,)) for ids in parcels.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def drain(senders: int, limit: int) -> tuple[float, int]:
    """``senders`` threads calling ``send_due`` until ``limit`` write-backs were accepted."""
    from logistics import writeback
    from logistics.models import WriteBack

    schema = connection.schema_name
    accepted = [0] * senders
    stop = threading.Event()

    def run(i: int) -> None:
        try:
            with schema_context(schema):
                while not stop.is_set():
                    got = writeback.send_due(limit=10)
                    accepted[i] += got
                    if (
                        sum(accepted) >= limit
                        or not got
                        and not WriteBack.objects.exclude(status=WriteBack.Status.ACCEPTED)
                        .filter(status__in=["pending", "failed"])
                        .exists()
                    ):
                        return
        finally:
            connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, sum(accepted)


def main() -> dict:
    with clean_tenant("shipping") as schema:
        return run(schema)


def run(schema: str) -> dict:
    from inventory import selectors as stock_selectors
    from logistics import shipping
    from logistics.models import Parcel, WriteBack
    from orders.models import Order, OrderStatus

    path = ROOT / ".data" / "bench-shipping.sqlite3"
    world = build_world(Path(path))
    world.close()
    proc, info = start_sandbox(path)
    saved = dict(settings.CHANNEL_BASE_URLS)
    settings.CHANNEL_BASE_URLS = {**saved, **info["urls"]}
    kick = shipping._kick_sender
    shipping._kick_sender = lambda: None  # no worker here: the bench drains the outbox itself
    from sandbox.world import World

    world = World(str(path))
    try:
        with schema_context(schema):
            stores = connect_shops(world)
            parcels = place_orders(world, stores, PER_PLATFORM)
            take_numbers(parcels)
            ids = sorted(pk for pks in parcels.values() for pk in pks)
            assert Parcel.objects.filter(pk__in=ids, status=Parcel.Status.NUMBERED).count() == len(ids)

            # The physical floor in the same run: one trivial statement's round trip, inside
            # a transaction, on this connection.
            with connection.cursor() as cursor:
                t0 = time.perf_counter()
                for _ in range(2000):
                    cursor.execute("SELECT 1")
                floor_ms = (time.perf_counter() - t0) / 2000 * 1000
            with CaptureQueriesContext(connection) as queries:
                t0 = time.perf_counter()
                result = shipping.ship_parcels(ids)
                ship_s = time.perf_counter() - t0
            assert result.ok and len(result.shipped) == len(ids), result.errors
            assert stock_selectors.ledger_mismatches() == []
            statements = len(queries.captured_queries)

            first_call = world.read("SELECT COALESCE(MAX(id), 0) FROM call_log")[0][0]
            half = len(result.write_backs) // 2
            one_s, one = drain(1, half)
            many_s, many = drain(SENDERS, len(result.write_backs) - one)
            assert set(WriteBack.objects.values_list("status", flat=True)) == {WriteBack.Status.ACCEPTED}
            assert set(Order.objects.values_list("status", flat=True)) == {OrderStatus.SHIPPED}
            landed = Counter(a.package.tracking_no for a in world.ship_actions())
            mine = set(Parcel.objects.filter(pk__in=ids).values_list("tracking_no", flat=True))
            duplicates = {no: n for no, n in landed.items() if no in mine and n != 1}
            assert not duplicates and mine <= set(landed), duplicates
            calls = world.read("SELECT COUNT(*) FROM call_log WHERE id > ?", (first_call,))[0][0]
            out = {
                "parcels": len(ids),
                "ship_seconds": round(ship_s, 2),
                "parcels_per_second": round(len(ids) / ship_s, 1),
                "sql_per_parcel": round(statements / len(ids), 1),
                "ms_per_parcel": round(ship_s / len(ids) * 1000, 1),
                "select_1_ms": round(floor_ms, 3),
                "write_backs": len(result.write_backs),
                "one_sender": {
                    "write_backs": one,
                    "seconds": round(one_s, 2),
                    "per_second": round(one / one_s, 1),
                },
                f"{SENDERS}_senders": {
                    "write_backs": many,
                    "seconds": round(many_s, 2),
                    "per_second": round(many / many_s, 1),
                },
                "platform_calls_per_write_back": round(calls / len(result.write_backs), 2),
                "landed_exactly_once": not duplicates,
                "platform_errors": platform_errors(world, after_id=first_call),
            }
    finally:
        shipping._kick_sender = kick
        settings.CHANNEL_BASE_URLS = saved
        world.close()
        stop_sandbox(proc)
    print(out)
    return out


if __name__ == "__main__":
    main()

"""Reservations per second: the full reservation (stock row + reservation + ledger + outbox,
through ``inventory.services.reserve_stock``) against the bare conditional UPDATE it needs,
on one hot SKU and spread over many SKUs, measured in the same run on the same database."""

from __future__ import annotations

import itertools
import os

from common import clean_tenant, run_clients
from django.db import connection, connections
from django_tenants.utils import schema_context

SECONDS = float(os.environ.get("BENCH_SECONDS", "4"))
HOT_CLIENTS = [2, 8, 32, 64]


def setup_skus(count: int, prefix: str) -> list[int]:
    from inventory.models import Goods, Sku, StockLevel
    from inventory.services import default_warehouse

    warehouse = default_warehouse()
    goods, _ = Goods.objects.get_or_create(name=f"bench {prefix}")
    existing = {s.merchant_code: s.pk for s in Sku.objects.filter(merchant_code__startswith=f"{prefix}-")}
    new = [
        Sku(goods=goods, merchant_code=f"{prefix}-{i:05d}", name=f"bench {i}")
        for i in range(count)
        if f"{prefix}-{i:05d}" not in existing
    ]
    Sku.objects.bulk_create(new, batch_size=2000)
    ids = list(
        Sku.objects.filter(merchant_code__startswith=f"{prefix}-").order_by("pk").values_list("pk", flat=True)
    )
    StockLevel.objects.bulk_create(
        [StockLevel(sku_id=i, warehouse=warehouse, on_hand=10**9, reserved=0) for i in ids],
        ignore_conflicts=True,
        batch_size=2000,
    )
    StockLevel.objects.filter(sku_id__in=ids).update(on_hand=10**9, reserved=0)
    return ids


def reset(ids: list[int]) -> None:
    from inventory.models import Reservation, StockChange, StockLevel

    # The ledger is append-only by design; the bench tenant's ledger simply grows.
    Reservation.objects.filter(sku_id__in=ids).delete()
    StockChange.objects.filter(sku_id__in=ids).delete()
    StockLevel.objects.filter(sku_id__in=ids).update(reserved=0)


def bare_worker(sku_ids: list[int], warehouse_id: int):
    def make(i: int):
        conn = connections.create_connection("default")
        conn.ensure_connection()
        conn.set_schema(BENCH_SCHEMA)
        cursor = conn.cursor()
        ids = itertools.cycle(sku_ids[i % len(sku_ids) :] + sku_ids[: i % len(sku_ids)])

        def op() -> bool:
            cursor.execute(
                "UPDATE inventory_stocklevel SET reserved = reserved + 1 "
                "WHERE sku_id = %s AND warehouse_id = %s AND on_hand - reserved >= 1",
                [next(ids), warehouse_id],
            )
            return cursor.rowcount == 1

        op.close = conn.close
        return op

    return make


def full_worker(sku_ids: list[int], tag: str):
    from inventory.models import Sku
    from inventory.services import InsufficientStock, default_warehouse, reserve_stock

    def make(i: int):
        connection.set_schema(BENCH_SCHEMA)
        skus = [Sku(pk=pk, is_combo=False) for pk in sku_ids]
        warehouse = default_warehouse()
        start = i % len(skus)
        order = itertools.cycle(skus[start:] + skus[:start])
        counter = itertools.count()

        def op() -> bool:
            try:
                reserve_stock(
                    source_key=f"{tag}:{i}:{next(counter)}", sku=next(order), quantity=1, warehouse=warehouse
                )
                return True
            except InsufficientStock:
                return False

        return op

    return make


BENCH_SCHEMA = ""  # this run's clean tenant


def main() -> dict:
    global BENCH_SCHEMA
    with clean_tenant("reservation") as schema:
        BENCH_SCHEMA = schema
        return run()


def run() -> dict:
    results: dict = {"seconds_per_run": SECONDS, "hot": [], "spread": []}
    with schema_context(BENCH_SCHEMA):
        from inventory.services import default_warehouse

        warehouse_id = default_warehouse().pk
        hot = setup_skus(1, "HOT")
        spreads = {n: setup_skus(n, f"S{n}") for n in (1000, 10000)}
    for clients in HOT_CLIENTS:
        with schema_context(BENCH_SCHEMA):
            reset(hot)
        bare = run_clients(clients, SECONDS, bare_worker(hot, warehouse_id))
        with schema_context(BENCH_SCHEMA):
            reset(hot)
        full = run_clients(clients, SECONDS, full_worker(hot, f"hot{clients}"))
        row = {
            "clients": clients,
            "bare_update_per_s": bare["ops_per_s"],
            "reservation_per_s": full["ops_per_s"],
            "ratio": round(full["ops_per_s"] / bare["ops_per_s"], 3) if bare["ops_per_s"] else None,
            "reservation_p99_ms": full["p99_ms"],
            "bare_p99_ms": bare["p99_ms"],
        }
        results["hot"].append(row)
        print(
            f"hot SKU, {clients:>2} clients: bare UPDATE {bare['ops_per_s']:>8}/s  "
            f"reservation {full['ops_per_s']:>8}/s  ratio {row['ratio']}  p99 {full['p99_ms']} ms"
        )
    for n, ids in spreads.items():
        with schema_context(BENCH_SCHEMA):
            reset(ids)
        bare = run_clients(8, SECONDS, bare_worker(ids, warehouse_id))
        with schema_context(BENCH_SCHEMA):
            reset(ids)
        full = run_clients(8, SECONDS, full_worker(ids, f"spread{n}"))
        row = {
            "skus": n,
            "clients": 8,
            "bare_update_per_s": bare["ops_per_s"],
            "reservation_per_s": full["ops_per_s"],
            "ratio": round(full["ops_per_s"] / bare["ops_per_s"], 3) if bare["ops_per_s"] else None,
        }
        results["spread"].append(row)
        print(
            f"{n:>5} SKUs, 8 clients: bare UPDATE {bare['ops_per_s']:>8}/s  reservation {full['ops_per_s']:>8}/s  "
            f"ratio {row['ratio']}"
        )
    hot8 = next(r for r in results["hot"] if r["clients"] == 8)
    for row in results["spread"]:
        row["vs_hot_8"] = round(row["reservation_per_s"] / hot8["reservation_per_s"], 2)
    return results


if __name__ == "__main__":
    main()

"""One OS process of the multi-process stock test (``test_stock_processes.py``).

Run as ``python -m tests.inventory.stock_stress_worker`` with a JSON job on the command line;
it connects to the test database on its own connection, says ``ready``, waits for ``go`` on
stdin (so that every process starts together), runs its operations and prints one JSON line
with what it did and every exception it met. Only ``InsufficientStock`` is a documented
answer; anything else is reported as an error.
"""

from __future__ import annotations

import json
import os
import random
import sys
import traceback
from collections import Counter
from urllib.parse import urlsplit, urlunsplit


def _point_at_test_database(name: str) -> None:
    parts = urlsplit(os.environ["DATABASE_URL"])
    os.environ["DATABASE_URL"] = urlunsplit(parts._replace(path=f"/{name}"))


def shared_item(k: int, plain: list[int]) -> tuple[str, int, int]:
    """Shared key ``k`` always stands for the same line (SKU, quantity), as an order line does
    when its push and its pull both reserve it."""
    return f"shared-{k}", plain[k % len(plain)], 1 + k % 2


def run(job: dict) -> dict:
    from django.db import transaction
    from django_tenants.utils import schema_context

    from inventory import services
    from inventory.models import Sku, Warehouse

    rng = random.Random(job["seed"])
    me = job["worker"]
    ops: Counter[str] = Counter()
    short: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    samples: list[str] = []  # the first traceback of each kind of error
    with schema_context(job["schema"]):
        warehouse = Warehouse.objects.get(pk=job["warehouse"])
        plain = [Sku.objects.get(pk=pk) for pk in job["plain"]]
        combo = Sku.objects.get(pk=job["combo"])
        plain_ids = [s.pk for s in plain]
        mine: list[str] = []  # own keys that may hold a reservation
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            return {"worker": me, "aborted": True}

        def reserve_own() -> None:
            key = f"w{me}-{ops['reserve']}"
            sku = rng.choice([*plain, combo])
            services.reserve_stock(source_key=key, sku=sku, quantity=rng.randint(1, 2), warehouse=warehouse)
            mine.append(key)

        def reserve_shared() -> None:
            k = rng.randrange(job["shared_keys"])
            if k % 5 == 4:  # some shared lines are combinations
                services.reserve_stock(source_key=f"shared-{k}", sku=combo, quantity=1, warehouse=warehouse)
            else:
                key, sku_id, qty = shared_item(k, plain_ids)
                services.reserve_stock(
                    source_key=key,
                    sku=next(s for s in plain if s.pk == sku_id),
                    quantity=qty,
                    warehouse=warehouse,
                )

        def reserve_batch() -> None:
            picks = rng.sample(range(job["shared_keys"]), rng.randint(2, 6))
            items = [shared_item(k, plain_ids) for k in picks if k % 5 != 4]
            items += [(f"shared-{k}", combo.pk, 1) for k in picks if k % 5 == 4]
            items += [
                (f"w{me}-b{ops['batch']}-{i}", rng.choice(plain_ids), 1) for i in range(rng.randint(0, 2))
            ]
            with transaction.atomic():  # as ingestion runs it
                services.reserve_many(items, warehouse=warehouse)
            mine.extend(key for key, _, _ in items if key.startswith("w"))

        def any_key() -> str:
            if mine and rng.random() < 0.6:
                return mine.pop(rng.randrange(len(mine)))
            return f"shared-{rng.randrange(job['shared_keys'])}"

        def release() -> None:
            services.release_reservation(source_key=any_key(), reason="stress: cancelled")

        def ship() -> None:
            services.ship_reservation(source_key=any_key(), reason="stress: shipped")

        def adjust() -> None:
            delta = rng.choice([-2, -1, 1, 2])
            services.adjust_stock(sku=rng.choice(plain), delta=delta, reason="stress", warehouse=warehouse)

        def count() -> None:
            services.count_stock(sku=rng.choice(plain), counted=rng.randint(0, 8), warehouse=warehouse)

        def receive() -> None:
            services.receive_stock(sku=rng.choice(plain), quantity=rng.randint(1, 3), warehouse=warehouse)

        actions = {
            "reserve": (reserve_own, 18),
            "reserve_shared": (reserve_shared, 10),
            "batch": (reserve_batch, 14),
            "release": (release, 20),
            "ship": (ship, 10),
            "adjust": (adjust, 10),
            "count": (count, 6),
            "receive": (receive, 12),
        }
        names = list(actions)
        weights = [actions[n][1] for n in names]
        for _ in range(job["iterations"]):
            name = rng.choices(names, weights)[0]
            ops[name] += 1
            try:
                actions[name][0]()
            except services.InsufficientStock:
                short[name] += 1
            except Exception as exc:  # noqa: BLE001 - every other exception is the finding
                what = f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
                if what not in errors:
                    samples.append(f"{what}\n{''.join(traceback.format_exception(exc))[-3000:]}")
                errors[what] += 1
    return {"worker": me, "ops": dict(ops), "short": dict(short), "errors": dict(errors), "samples": samples}


def main() -> None:
    job = json.loads(sys.argv[1])
    _point_at_test_database(job["database"])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ecbao.settings")
    import django

    django.setup()
    result = run(job)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

"""A new tenant ready: sign-up's service (tenant row, schema with every migration applied,
domain, owner) timed end to end, then deleted. Target ≤ 2 s."""

from __future__ import annotations

import os
import statistics
import time

from common import prepare_public

RUNS = int(os.environ.get("BENCH_TENANTS", "5"))


def main() -> dict:
    from tenants import services
    from tenants.models import Tenant

    prepare_public()
    slugs = [f"benchnew{i}" for i in range(RUNS)]
    for slug in slugs:
        if Tenant.objects.filter(slug=slug).exists():
            services.delete_tenant(slug=slug)
    seconds = []
    try:
        for slug in slugs:
            started = time.perf_counter()
            services.create_tenant(
                slug=slug,
                name="新商家",
                owner_username="owner",
                owner_password="New-merchant-2026!",  # noqa: S106 - throwaway benchmark tenant
            )
            seconds.append(time.perf_counter() - started)
    finally:
        for slug in slugs:
            if Tenant.objects.filter(slug=slug).exists():
                services.delete_tenant(slug=slug)
    result = {
        "runs": RUNS,
        "median_s": round(statistics.median(seconds), 2),
        "max_s": round(max(seconds), 2),
        "target_s": 2.0,
    }
    print(
        f"new tenant ready: median {result['median_s']} s, max {result['max_s']} s over {RUNS} (target ≤ 2 s)"
    )
    return result


if __name__ == "__main__":
    main()

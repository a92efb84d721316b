"""A small load generator: signed Douyin ``/order/searchList`` calls over real HTTP.

``python -m sandbox loadtest --seconds 10 --threads 8`` against a running
``serve`` (use another process, so client and server do not share one GIL).
Signing uses the same documented algorithm as any client; each thread re-signs
every call (timestamps are part of the signature).
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

from . import douyin
from .world import World


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        lat = sorted(self.latencies_ms) or [0.0]
        p50 = statistics.median(lat)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        return (
            f"{self.requests} requests in {self.seconds:.1f} s = {self.rate:.1f} req/s "
            f"({self.errors} errors), latency p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        )


def run_load(
    world: World,
    *,
    base_url: str,
    seconds: float = 10.0,
    threads: int = 8,
    params: dict[str, Any] | None = None,
    shop_id: str | None = None,
) -> LoadResult:
    """Hammer ``/order/searchList`` from ``threads`` threads for ``seconds``."""
    app = world.apps("douyin")[0]
    shop_id = shop_id or world.shops("douyin")[0].shop_id
    token = douyin.ensure_token(world, app, shop_id)
    params = params or {"page": 0, "size": 100, "order_by": "update_time", "order_asc": False}
    deadline = time.monotonic() + seconds
    lock = threading.Lock()
    latencies: list[float] = []
    counts = {"ok": 0, "errors": 0}

    def worker() -> None:
        with httpx.Client(base_url=base_url, timeout=30, trust_env=False) as http:
            while time.monotonic() < deadline:
                query, body = douyin.signed_query(
                    app, "/order/searchList", params, timestamp=int(time.time()), access_token=token
                )
                started = time.perf_counter()
                try:
                    response = http.post(
                        "/order/searchList",
                        params=query,
                        content=body.encode(),
                        headers={"x-open-no-old-err-code": "1"},
                    )
                    ok = response.status_code == 200 and response.json().get("code") == 10000
                except httpx.HTTPError:
                    ok = False
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    latencies.append(elapsed)
                    counts["ok" if ok else "errors"] += 1

    started = time.monotonic()
    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return LoadResult(counts["ok"], counts["errors"], time.monotonic() - started, latencies)

"""The order workbench at scale: server time of the dashboard list and the API list with
ORDERS (default 1,000,000) orders in one tenant — page 1, deep pages (keyset), status tabs,
phone-tail search — p50/p95 over repeated requests, through the real views (Django test
client: middleware, tenant routing, templates; no network)."""

from __future__ import annotations

import os
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

from common import OWNER, OWNER_PASSWORD, clean_tenant, domain_of
from django.db import connection
from django.test import Client
from django_tenants.utils import schema_context

ORDERS = int(os.environ.get("BENCH_LIST_ORDERS", "1000000"))
REPEAT = int(os.environ.get("BENCH_LIST_REPEAT", "20"))
STATUSES = (
    ["approved"] * 5
    + ["shipped"] * 8
    + ["completed"] * 10
    + ["held", "to_review", "pending_payment", "cancelled", "partially_shipped"]
)


def populate(store_ids: list[int]) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM orders_order")
        have = cursor.fetchone()[0]
    if have >= ORDERS:
        return have
    raw = connection.connection
    rng = random.Random(7)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    start = have
    batch = 100_000
    while start < ORDERS:
        end = min(start + batch, ORDERS)
        with raw.cursor() as cur, raw.transaction():
            with cur.copy(
                "COPY orders_order (store_id, platform, platform_order_id, status, channel_status, platform_status, "
                "hold_reasons, is_refunding, has_unmatched, is_out_of_stock, address_changed, ship_blocked_reason, "
                "buyer_id, receiver_name_cipher, receiver_name_mask, receiver_phone_cipher, receiver_phone_mask, "
                "receiver_phone_index, receiver_address_cipher, receiver_address_mask, province, city, district, "
                "receiver_fingerprint, phone_tail, buyer_remark, seller_remark, goods_fen, freight_fen, discount_fen, "
                "paid_fen, placed_at, paid_at, platform_updated_at, created_at, updated_at, tracking_numbers) FROM STDIN"
            ) as copy:
                for i in range(start, end):
                    placed = t0 + timedelta(seconds=i * 25)
                    tail = f"{rng.randrange(10000):04d}"
                    status = STATUSES[i % len(STATUSES)]
                    paid = 990 + (i % 500) * 100
                    copy.write_row(
                        (
                            store_ids[i % len(store_ids)],
                            "douyin",
                            f"69{i:017d}",
                            status,
                            "paid",
                            "2",
                            '["buyer_remark"]' if status == "held" else "[]",
                            i % 97 == 0,
                            False,
                            False,
                            False,
                            "",
                            f"b{i % 50000}",
                            f"#n{i}#",
                            "张*",
                            f"$t{i}$",
                            f"138****{tail}",
                            f"pi{i}",
                            f"#a{i}#",
                            "文***号",
                            "浙江省",
                            "杭州市",
                            "西湖区",
                            f"fp{i % 300000}",
                            tail,
                            "",
                            "",
                            paid,
                            0,
                            0,
                            paid,
                            placed,
                            placed,
                            placed,
                            placed,
                            placed,
                            [],
                        )
                    )
            # The ids first: no other statement may run on the connection while a COPY is open.
            cur.execute(
                "SELECT id FROM orders_order WHERE platform_order_id >= %s AND platform_order_id < %s",
                [f"69{start:017d}", f"69{end:017d}"],
            )
            order_ids = [row[0] for row in cur.fetchall()]
            with cur.copy(
                "COPY orders_orderline (order_id, platform_line_id, platform_product_id, platform_sku_id, "
                "merchant_code, title, spec, quantity, unit_price_fen, paid_fen, is_gift, status, "
                "refund_state) FROM STDIN"
            ) as copy:
                for order_id in order_ids:
                    copy.write_row(
                        (
                            order_id,
                            f"{order_id}-1",
                            "P1",
                            "S1",
                            f"SKU-{order_id % 2000:04d}",
                            "商品",
                            "规格",
                            1,
                            990,
                            990,
                            False,
                            "reserved",
                            "",
                        )
                    )
        print(f"  populated {end} orders", flush=True)
        start = end
    return ORDERS


def _next_dashboard_page(response) -> str | None:
    import html
    import re

    match = re.search(r'href="\?([^"]*after=[^"]+)" data-testid="next-page"', response.content.decode())
    return f"/orders/?{html.unescape(match.group(1))}" if match else None


def timed(client: Client, url: str, **headers) -> tuple[float, object]:
    started = time.perf_counter()
    response = client.get(url, **headers)
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, (url, response.status_code, response.content[:300])
    return elapsed, response


def stats(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 1),
        "n": len(ordered),
    }


def main() -> dict:
    with clean_tenant("orderlist") as schema:
        return run(schema)


def run(schema: str) -> dict:
    with schema_context(schema):
        from django.contrib.auth import get_user_model

        from channels.models import Store
        from tenants.accounts.services import issue_api_token

        stores = [
            Store.objects.get_or_create(
                platform="douyin",
                platform_shop_id=f"list-shop-{i}",
                defaults={"name": f"店铺{i}", "app_key": "bench"},
            )[0].pk
            for i in range(5)
        ]
        total = populate(stores)
        with connection.cursor() as cursor:  # as after autovacuum: visibility map set, statistics fresh
            cursor.execute("VACUUM ANALYZE orders_order")
            cursor.execute("VACUUM ANALYZE orders_orderline")
        owner = get_user_model().objects.get(username=OWNER)
        token = issue_api_token(user=owner, name="bench")[1]
    connection.set_schema_to_public()
    client = Client(HTTP_HOST=domain_of(schema))
    assert client.post("/accounts/login/", {"username": OWNER, "password": OWNER_PASSWORD}).status_code == 302
    api = {"HTTP_AUTHORIZATION": f"Token {token}"}
    cases = {
        "dashboard page 1": "/orders/",
        "dashboard tab 待发货": "/orders/?status=approved",
        "dashboard tab 异常": "/orders/?status=held",
        "dashboard phone tail": "/orders/?q=8888",
        "api page 1": "/api/v1/orders/",
        "api tab shipped": "/api/v1/orders/?status=shipped",
    }
    results: dict = {"orders": total}
    for name, url in cases.items():
        timed(client, url, **(api if url.startswith("/api") else {}))  # warm
        samples = [timed(client, url, **(api if url.startswith("/api") else {}))[0] for _ in range(REPEAT)]
        results[name] = stats(samples)
        print(f"{name:24s} p50 {results[name]['p50_ms']:>7} ms  p95 {results[name]['p95_ms']:>7} ms")
    # Deep pages: follow the keyset links 200 pages down, then time that page.
    for label, url, headers, next_of in (
        (
            "dashboard page 200",
            "/orders/",
            {},
            _next_dashboard_page,
        ),
        ("api page 200", "/api/v1/orders/", api, lambda r: r.json().get("next")),
    ):
        for _ in range(199):
            _, response = timed(client, url, **headers)
            following = next_of(response)
            if not following:  # fewer than 200 pages: time the last one
                break
            url = following
        samples = [timed(client, url, **headers)[0] for _ in range(REPEAT)]
        results[label] = stats(samples)
        print(f"{label:24s} p50 {results[label]['p50_ms']:>7} ms  p95 {results[label]['p95_ms']:>7} ms")
    return results


if __name__ == "__main__":
    main()

"""Routing (分流) decisions per second with 200 rules and 10,000 order lines: through the router
(``suppliers.router.route``: the rule set, supplier SKUs, stock levels and today's capacity
read from PostgreSQL, then the engine) in batches of 200 orders as ``orders.ingest_batch``
routes them, and in one call of all 10,000; next to the engine alone on a world already built,
and the bare evaluation of the same 200 rules in a loop (first rule whose conditions match, no
action, no world).

The tenant: 40 suppliers (5 with a daily capacity), 2,000 SKUs over 200 goods (20 brands, 10
categories), each SKU bound to 1–3 suppliers with reported stock, own stock for every other
SKU, 3 shops. 200 rules: 199 with 2–3 conditions each (SKU lists of 20, brands, categories,
provinces, shops, platforms, amounts, hours, weekdays, tags) and actions mixed over the five,
most of which a line does not match, and a last SPLIT rule for the rest — so a decision walks
deep into the list. 10,000 one-line orders from 31 provinces, amounts and paid times spread.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from common import clean_tenant
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

RULES = 200
ORDERS = 10_000
BATCH = 200
PROVINCES = [
    "浙江省", "江苏省", "上海市", "北京市", "广东省", "福建省", "山东省", "河南省", "河北省", "湖北省",
    "湖南省", "四川省", "重庆市", "安徽省", "江西省", "陕西省", "山西省", "辽宁省", "吉林省", "黑龙江省",
    "云南省", "贵州省", "广西壮族自治区", "海南省", "天津市", "内蒙古自治区", "宁夏回族自治区", "甘肃省",
    "青海省", "西藏自治区", "新疆维吾尔自治区",
]  # fmt: skip


def setup(rng: random.Random) -> dict:
    from channels.models import Store
    from inventory.models import Goods, Sku, StockLevel
    from inventory.services import default_warehouse
    from suppliers import rules, services
    from suppliers.models import RouteRule, Supplier, SupplierSku

    own = default_warehouse()
    stores = [
        Store.objects.create(platform=p, platform_shop_id=f"bench-{p}", name=f"bench {p}", app_key="k")
        for p in ("douyin", "kuaishou", "wechat")
    ]
    goods = Goods.objects.bulk_create(
        Goods(name=f"bench goods {i}", code=f"G{i:04d}", brand=f"品牌{i % 20}", category=f"类目{i % 10}")
        for i in range(200)
    )
    skus = Sku.objects.bulk_create(
        Sku(goods=goods[i % 200], merchant_code=f"R-{i:05d}", name=f"bench {i}") for i in range(2000)
    )
    suppliers = [services.create_supplier(name=f"供应商{i:02d}", code=f"S{i:02d}") for i in range(40)]
    Supplier.objects.filter(pk__in=[s.pk for s in suppliers[:5]]).update(daily_capacity=100_000)
    bindings, levels = [], []
    for sku in skus:
        for sup in rng.sample(suppliers, rng.randint(1, 3)):
            bindings.append(
                SupplierSku(
                    supplier=sup,
                    sku=sku,
                    cost_fen=rng.randint(500, 5000),
                    freight=rng.choice(["free", "per_unit", "per_dispatch"]),
                    freight_fen=rng.choice([0, 300, 600]),
                    priority=rng.randint(1, 200),
                )
            )
            levels.append(StockLevel(sku=sku, warehouse_id=sup.warehouse_id, on_hand=rng.randint(0, 10_000)))
        if sku.pk % 2:
            levels.append(StockLevel(sku=sku, warehouse=own, on_hand=rng.randint(0, 50)))
    SupplierSku.objects.bulk_create(bindings, batch_size=2000)
    StockLevel.objects.bulk_create(levels, batch_size=2000)

    draft = rules.create_draft(note="bench")
    made = []
    for n in range(RULES - 1):
        kinds = rng.sample(
            [
                "skus",
                "brands",
                "categories",
                "provinces",
                "stores",
                "platforms",
                "amount",
                "hours",
                "weekdays",
                "tags",
            ],
            rng.randint(2, 3),
        )
        c: dict = {}
        for kind in kinds:
            if kind == "skus":
                c["skus"] = [s.pk for s in rng.sample(skus, 20)]
            elif kind == "brands":
                c["brands"] = [f"品牌{rng.randrange(20)}"]
            elif kind == "categories":
                c["categories"] = [f"类目{rng.randrange(10)}"]
            elif kind == "provinces":
                c["provinces"] = [p.rstrip("省市") for p in rng.sample(PROVINCES, 3)]
            elif kind == "stores":
                c["stores"] = [rng.choice(stores).pk]
            elif kind == "platforms":
                c["platforms"] = [rng.choice(["douyin", "kuaishou", "wechat"])]
            elif kind == "amount":
                lo = rng.randint(0, 20_000)
                c["amount_min_fen"], c["amount_max_fen"] = lo, lo + rng.randint(1000, 20_000)
            elif kind == "hours":
                start = rng.randrange(24)
                c["hours"] = [start, (start + rng.randint(2, 8)) % 24 or 24]
            elif kind == "weekdays":
                c["weekdays"] = sorted(rng.sample(range(1, 8), 3))
            else:
                c["tags"] = ["buyer_remark"]
        action = rng.choice(["supplier", "supplier", "cheapest", "warehouse", "split", "hold"])
        made.append(
            RouteRule(
                rule_set=draft,
                priority=(n + 1) * 10,
                name=f"规则{n + 1}",
                action=action,
                conditions=rules.clean_conditions(c),
                supplier=rng.choice(suppliers) if action == "supplier" else None,
                warehouse=own if action == "warehouse" else None,
            )
        )
    made.append(
        RouteRule(rule_set=draft, priority=RULES * 10, name="其余拆单", action="split", conditions={})
    )
    RouteRule.objects.bulk_create(made)
    rules.activate(rule_set=draft)
    return {"stores": stores, "skus": skus}


def orders(rng: random.Random, world: dict) -> list:
    """(order, [line]) rows as orders hands them to the router (not written)."""
    t0 = datetime(2026, 12, 7, 0, 0, tzinfo=UTC)
    pairs = []
    for i in range(ORDERS):
        store = rng.choice(world["stores"])
        sku = rng.choice(world["skus"])
        qty = rng.randint(1, 3)
        paid = rng.randint(990, 39_900) * qty
        at = t0 - timedelta(minutes=rng.randrange(7 * 24 * 60))
        order = SimpleNamespace(
            store_id=store.pk,
            platform=store.platform,
            province=rng.choice(PROVINCES),
            city="",
            paid_fen=paid,
            paid_at=at,
            placed_at=at,
            buyer_remark="送人" if i % 7 == 0 else "",
            seller_remark="",
            is_refunding=False,
        )
        ln = SimpleNamespace(
            id=i + 1, sku_id=sku.pk, quantity=qty, paid_fen=paid, status="pending", warehouse_id=None
        )
        pairs.append((order, [ln]))
    return pairs


def main() -> dict:
    from suppliers import router, routing

    rng = random.Random(14)
    with clean_tenant("routing") as schema, schema_context(schema):
        world = setup(rng)
        pairs = orders(rng, world)
        router.route(pairs[:BATCH])  # warm: prepared plans, imports

        started = time.perf_counter()
        routed = {}
        for i in range(0, ORDERS, BATCH):
            routed.update(router.route(pairs[i : i + BATCH]))
        batched_s = time.perf_counter() - started
        with CaptureQueriesContext(connection) as captured:
            router.route(pairs[:BATCH])

        started = time.perf_counter()
        whole = router.route(pairs)
        whole_s = time.perf_counter() - started

        book = router.load_book()
        lines = [ln for _, lns in pairs for ln in lns]
        world_obj, goods, midnight = router.build_world(book, lines)
        facts = list(router.facts(pairs, world_obj, goods, midnight))
        started = time.perf_counter()
        engine_routes = routing.route(book, world_obj, facts)
        engine_s = time.perf_counter() - started

        started = time.perf_counter()
        first = {}
        for o, lns in facts:
            for ln in lns:
                first[ln.id] = next((r.id for r in book.rules if r.matches(o, ln)), None)
        bare_s = time.perf_counter() - started

        by_rule = sum(1 for r in routed.values() if r.rule_id is not None)
        held = sum(1 for r in routed.values() if r.warehouse_id is None)
        depth = [
            next((k for k, r in enumerate(book.rules) if r.id == rid), len(book.rules))
            for rid in first.values()
        ]
        result = {
            "rules": len(book.rules),
            "queries_per_router_call": len(captured),
            "query_ms": [round(float(q["time"]) * 1000, 1) for q in captured.captured_queries],
            "lines": len(lines),
            "batch": BATCH,
            "router_batched_s": round(batched_s, 3),
            "router_batched_per_s": round(ORDERS / batched_s),
            "router_one_call_s": round(whole_s, 3),
            "router_one_call_per_s": round(ORDERS / whole_s),
            "engine_only_s": round(engine_s, 3),
            "engine_only_per_s": round(ORDERS / engine_s),
            "bare_match_loop_s": round(bare_s, 3),
            "bare_match_loop_per_s": round(ORDERS / bare_s),
            "routed_by_a_rule": by_rule,
            "held": held,
            "mean_rules_walked": round(sum(depth) / len(depth), 1),
            "engine_matches_router": sum(1 for k in whole if whole[k] == engine_routes[k]),
        }
        for key, value in result.items():
            print(f"   {key}: {value}")
        return result

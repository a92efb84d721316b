"""Order ingestion: the ingestion core (neutral orders → orders + lines + events + reservations
+ review + fulfilments, ``ingest_batch``; no channel snapshot — the pull path below adds it)
against Django bulk_create and raw psycopg COPY of the same order and line rows, measured in
the same run on the same database; then the same core on a realistic mix (``run_mix``).

The end-to-end rate (sandbox over HTTP → connector → ingestion) is measured by
``bench_e2e_ingest.py`` when the sandbox and connectors are present.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

from common import clean_tenant
from django.db import connection, transaction
from django_tenants.utils import schema_context

N = int(os.environ.get("BENCH_ORDERS", "3000"))


def channel_order(
    i: int,
    codes: list[str],
    *,
    status: str = "paid",
    at: datetime | None = None,
    buyer: int | None = None,
    remark: str = "",
):
    """Order ``i`` (1–3 lines of ``codes``, deterministic in ``i``) as the connector hands it
    over; ``buyer``: receivers with the same number share the platform's search indexes (one
    person: their paid orders may merge); ``at``: this version's update time."""
    from channels.types import ChannelOrder, ChannelOrderLine, CipherField, OrderStatus, Platform, Receiver

    created = T0 + timedelta(seconds=i)
    at = at or created
    lines = tuple(
        ChannelOrderLine(
            f"{i}-{j}",
            f"P-{codes[(i + j) % len(codes)]}",
            f"S-{codes[(i + j) % len(codes)]}",  # one listing per SKU
            codes[(i + j) % len(codes)],
            "商品",
            "规格",
            1 + j % 2,
            1990,
            1990 * (1 + j % 2),
        )
        for j in range(1 + i % 3)
    )
    who = i if buyer is None else buyer
    phone = f"1{who % 10**10:010d}"
    neutral = {"unpaid": OrderStatus.UNPAID, "paid": OrderStatus.PAID, "shipped": OrderStatus.SHIPPED}[status]
    return ChannelOrder(
        platform=Platform.DOUYIN,
        platform_shop_id="bench-shop",
        platform_order_id=f"69{i:017d}",
        platform_status={"unpaid": "1", "paid": "2", "shipped": "3"}[status],
        status=neutral,
        created_at=created,
        updated_at=at,
        lines=lines,
        receiver=Receiver(
            CipherField(f"#n{who}#", "张*", f"ni{who}"),
            CipherField(f"${phone}$", phone[:3] + "****" + phone[-4:], f"pi{who}"),
            CipherField(f"#a{who}#", "文***号", f"ai{who}"),
            "浙江省",
            "杭州市",
            "西湖区",
        ),
        paid_at=created if status != "unpaid" else None,
        shipped_at=at if status == "shipped" else None,
        goods_fen=sum(x.paid_fen for x in lines),
        paid_fen=sum(x.paid_fen for x in lines),
        buyer_remark=remark,
        raw={
            "order_id": f"69{i:017d}",
            "update_time": int((at - T0).total_seconds()),
            "sku_order_list": [{"order_id": x.platform_line_id} for x in lines],
        },
    )


T0 = datetime(2026, 11, 1, tzinfo=UTC)


def neutral_orders(n: int, offset: int, codes: list[str]):
    """``n`` new paid orders, each to its own receiver (the all-new best case)."""
    return [channel_order(i, codes) for i in range(offset, offset + n)]


def setup(codes: list[str]):
    from channels.models import Store
    from inventory.models import Goods, Sku, StockLevel
    from inventory.services import default_warehouse
    from orders.models import ReviewRule

    store, _ = Store.objects.get_or_create(
        platform="douyin", platform_shop_id="bench-shop", defaults={"name": "bench", "app_key": "bench"}
    )
    goods, _ = Goods.objects.get_or_create(name="ingest bench")
    warehouse = default_warehouse()
    for code in codes:
        sku, _ = Sku.objects.get_or_create(merchant_code=code, defaults={"goods": goods, "name": code})
        StockLevel.objects.update_or_create(
            sku=sku, warehouse=warehouse, defaults={"on_hand": 10**9, "reserved": 0}
        )
    ReviewRule.objects.update_or_create(kind="auto_approve", defaults={"enabled": True})
    return store


# --- a realistic mix ------------------------------------------------------------------------------


def run_mix(store, codes: list[str], short_codes: list[str], n: int, batch: int = 500) -> dict:
    """A stream as a busy shop sends it, beside the all-new best case: first ``n // 2`` known
    orders are ingested untimed (70 % paid, 30 % unpaid; one paid order in ten then held by
    hand); then ``n`` versions are timed, in update-time order, through the same
    ``ingest_batch`` in batches of ``batch``:

    - 45 % new paid orders whose receivers repeat (about a third share a receiver with
      another order: auto-merged into one fulfilment),
    - 10 % new paid orders with a buyer remark (held by the review rule),
    - 10 % new paid orders of ten short-stock SKUs (``n // 100`` units each, about a third of
      what they are asked for: the rest is 缺货),
    - 20 % known paid orders now shipped by the platform (their reservations are deducted),
    - 15 % known unpaid orders now paid (stock reserved now).

    Returns versions/s and what the stream did (so the mix is seen to happen)."""
    import random

    from inventory.models import Sku, StockLevel
    from inventory.services import default_warehouse
    from orders import services
    from orders.models import Fulfilment, Order, ReviewRule
    from orders.services import ingest_batch, ingestion_transaction

    rng = random.Random(7)
    ReviewRule.objects.update_or_create(kind="buyer_remark", defaults={"enabled": True})
    ReviewRule.objects.update_or_create(kind="stock_short", defaults={"enabled": True})
    ReviewRule.objects.update_or_create(kind="auto_merge", defaults={"enabled": True})
    warehouse = default_warehouse()
    StockLevel.objects.filter(sku__merchant_code__in=short_codes, warehouse=warehouse).update(
        on_hand=max(1, n // 100), reserved=0
    )
    assert Sku.objects.filter(merchant_code__in=short_codes).count() == len(short_codes)

    known = n // 2
    base = 10_000_000  # order numbers apart from the best case's
    seed = [channel_order(base + i, codes, status="unpaid" if i % 10 >= 7 else "paid") for i in range(known)]
    with ingestion_transaction():
        for start in range(0, known, batch):
            ingest_batch(store=store, items=[(co, None) for co in seed[start : start + batch]])
    paid = [co for co in seed if co.status == "paid"]
    unpaid = [co for co in seed if co.status == "unpaid"]
    with transaction.atomic():
        for co in paid[::10]:
            order = Order.objects.get(store=store, platform_order_id=co.platform_order_id)
            services.hold(order=order, actor=None, reason="bench: held by hand")

    t = T0 + timedelta(seconds=base + 2 * n + 10)  # after every order's creation
    stream = []
    buyers = max(1, int(n * 0.45 * 0.7))  # repeats: ~30 % of these orders share a receiver
    next_id = base + known
    shipped = rng.sample(paid, min(len(paid), int(n * 0.20)))
    now_paid = rng.sample(unpaid, min(len(unpaid), int(n * 0.15)))
    kinds = (
        ["new"] * int(n * 0.45)
        + ["remark"] * int(n * 0.10)
        + ["short"] * int(n * 0.10)
        + ["shipped"] * len(shipped)
        + ["paid"] * len(now_paid)
    )
    rng.shuffle(kinds)
    for kind in kinds:
        t += timedelta(milliseconds=10)
        if kind == "shipped":
            co = shipped.pop()
            stream.append(channel_order(int(co.platform_order_id[2:]), codes, status="shipped", at=t))
        elif kind == "paid":
            co = now_paid.pop()
            stream.append(channel_order(int(co.platform_order_id[2:]), codes, status="paid", at=t))
        else:
            next_id += 1
            stream.append(
                channel_order(
                    next_id,
                    short_codes if kind == "short" else codes,
                    at=t,
                    buyer=base + rng.randrange(buyers) if kind == "new" else None,
                    remark="请发顺丰" if kind == "remark" else "",
                )
            )
    started = time.perf_counter()
    for start in range(0, len(stream), batch):
        with ingestion_transaction():
            ingest_batch(store=store, items=[(co, None) for co in stream[start : start + batch]])
    seconds = time.perf_counter() - started
    from django.db.models import Count

    orders = Order.objects.filter(store=store)
    return {
        "versions": len(stream),
        "known_orders_before": known,
        "versions_per_s": round(len(stream) / seconds, 1),
        "stream_kinds": {k: kinds.count(k) for k in dict.fromkeys(kinds)},
        "orders_by_status": dict(orders.order_by().values_list("status").annotate(n=Count("id"))),
        "out_of_stock_orders": orders.filter(is_out_of_stock=True).count(),
        "merged_fulfilments": Fulfilment.objects.filter(is_merged=True).count(),
    }


def clear_orders():
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE orders_fulfilmentline, orders_fulfilment, orders_orderevent, orders_orderline, "
            "orders_order, channels_channelorderstate, channels_ordersnapshot RESTART IDENTITY CASCADE"
        )
        cursor.execute("DELETE FROM inventory_reservation; DELETE FROM inventory_stockchange;")
        cursor.execute("UPDATE inventory_stocklevel SET reserved = 0")


def run_core(store, orders, batch: int = 500) -> float:
    """The ingestion core as PRODUCT defines it: normalised orders → orders upserted with
    lines, events, reservations (and fulfilments), ``ingest_batch`` per batch of 500."""
    from orders.services import ingest_batch, ingestion_transaction

    started = time.perf_counter()
    for start in range(0, len(orders), batch):
        with ingestion_transaction():  # as the ingestion task runs it
            ingest_batch(store=store, items=[(co, None) for co in orders[start : start + batch]])
    return len(orders) / (time.perf_counter() - started)


def run_pull_path(store, orders, batch: int = 500) -> float:
    """What a pulled page costs in production: the channel layer stores each version (raw
    payload + normalised, newest-version rows), then the ingestion task reads them back and
    runs ``ingest_batch`` — one transaction per batch here (two in production: the
    ingestion task's commits without waiting for the WAL flush, see ``ingestion_transaction``)."""
    from channels.services import store_order_versions
    from orders.services import ingest_snapshots

    started = time.perf_counter()
    for start in range(0, len(orders), batch):
        with transaction.atomic():
            ids = store_order_versions(store=store, orders=orders[start : start + batch], source="pull")
            ingest_snapshots(snapshot_ids=ids, batch=batch)
    return len(orders) / (time.perf_counter() - started)


def run_one_by_one(store, orders) -> float:
    """The push path: each order's version stored on its own, then the ingestion task's work
    for that one version (``ingest_snapshots([id])``, as the push drain task runs it)."""
    from channels.models import ChannelOrderState
    from channels.services import store_order_version
    from orders.services import ingest_snapshots

    started = time.perf_counter()
    for co in orders:
        store_order_version(store=store, order=co, payload=co.raw, source="push")
        snapshot_id = (
            ChannelOrderState.objects.filter(store=store, platform_order_id=co.platform_order_id)
            .values_list("snapshot_id", flat=True)
            .get()
        )
        ingest_snapshots(snapshot_ids=[snapshot_id])
    return len(orders) / (time.perf_counter() - started)


def order_rows(store, orders):
    now = datetime.now(UTC)
    for co in orders:
        r = co.receiver
        yield (
            store.pk,
            "douyin",
            co.platform_order_id,
            "approved",
            "paid",
            "2",
            "[]",
            False,
            False,
            False,
            False,
            "",
            co.buyer_id,
            r.name.cipher,
            r.name.mask,
            r.phone.cipher,
            r.phone.mask,
            r.phone.index,
            r.address.cipher,
            r.address.mask,
            r.province,
            r.city,
            r.district,
            "fp",
            r.phone.mask[-4:],
            "",
            "",
            co.goods_fen,
            0,
            0,
            co.paid_fen,
            co.created_at,
            co.paid_at,
            co.updated_at,
            now,
            now,
            [],
        )


ORDER_COLUMNS = (
    "store_id, platform, platform_order_id, status, channel_status, platform_status, hold_reasons, "
    "is_refunding, has_unmatched, is_out_of_stock, address_changed, ship_blocked_reason, buyer_id, "
    "receiver_name_cipher, receiver_name_mask, receiver_phone_cipher, receiver_phone_mask, "
    "receiver_phone_index, receiver_address_cipher, receiver_address_mask, province, city, district, "
    "receiver_fingerprint, phone_tail, buyer_remark, seller_remark, goods_fen, freight_fen, discount_fen, "
    "paid_fen, placed_at, paid_at, platform_updated_at, created_at, updated_at, tracking_numbers"
)


def run_copy(store, orders) -> float:
    """Raw psycopg 3 COPY of the same order rows and their lines (the physical ceiling)."""
    raw = connection.connection  # psycopg.Connection
    started = time.perf_counter()
    with transaction.atomic(), raw.cursor() as cur:
        with cur.copy(f"COPY orders_order ({ORDER_COLUMNS}) FROM STDIN") as copy:
            for row in order_rows(store, orders):
                copy.write_row(row)
        cur.execute("SELECT id, platform_order_id FROM orders_order WHERE store_id = %s", [store.pk])
        ids = dict((pid, oid) for oid, pid in cur.fetchall())
        with cur.copy(
            "COPY orders_orderline (order_id, platform_line_id, platform_product_id, platform_sku_id, "
            "merchant_code, title, spec, quantity, unit_price_fen, paid_fen, is_gift, status, refund_state) "
            "FROM STDIN"
        ) as copy:
            for co in orders:
                for x in co.lines:
                    copy.write_row(
                        (
                            ids[co.platform_order_id],
                            x.platform_line_id,
                            x.platform_product_id,
                            x.platform_sku_id,
                            x.merchant_code,
                            x.title,
                            x.spec,
                            x.quantity,
                            x.unit_price_fen,
                            x.paid_fen,
                            False,
                            "reserved",
                            "",
                        )
                    )
    return len(orders) / (time.perf_counter() - started)


def run_bulk_create(store, orders) -> float:
    from orders.models import Order, OrderLine

    started = time.perf_counter()
    with transaction.atomic():
        objs = []
        for row in order_rows(store, orders):
            values = dict(zip([c.strip() for c in ORDER_COLUMNS.split(",")], row, strict=True))
            values["hold_reasons"] = []
            values.pop("created_at"), values.pop("updated_at")
            objs.append(Order(**values))
        Order.objects.bulk_create(objs, batch_size=1000)
        by_pid = {o.platform_order_id: o.pk for o in objs}
        OrderLine.objects.bulk_create(
            [
                OrderLine(
                    order_id=by_pid[co.platform_order_id],
                    platform_line_id=x.platform_line_id,
                    platform_product_id=x.platform_product_id,
                    platform_sku_id=x.platform_sku_id,
                    merchant_code=x.merchant_code,
                    title=x.title,
                    spec=x.spec,
                    quantity=x.quantity,
                    unit_price_fen=x.unit_price_fen,
                    paid_fen=x.paid_fen,
                    status="reserved",
                )
                for co in orders
                for x in co.lines
            ],
            batch_size=2000,
        )
    return len(orders) / (time.perf_counter() - started)


def main() -> dict:
    with clean_tenant("ingestion") as schema:
        return run(schema)


def run(schema: str) -> dict:
    codes = [f"ING-{i:03d}" for i in range(200)]
    with schema_context(schema):
        store = setup(codes)
        orders = neutral_orders(N, 0, codes)
        clear_orders()
        # Every SKU's listing met once before timing (as in a shop that has sold before): the
        # first order of a listing creates and matches it, which is not what is measured here.
        run_core(store, neutral_orders(len(codes), 9_000_000, codes))
        clear_orders()
        core = run_core(store, orders)
        clear_orders()
        pull_path = run_pull_path(store, orders)
        clear_orders()
        single = run_one_by_one(store, orders[: max(1, N // 10)])
        clear_orders()
        bulk = run_bulk_create(store, orders)
        clear_orders()
        copy = run_copy(store, orders)
        clear_orders()
        short_codes = codes[-10:]
        mix = run_mix(store, codes[:-10], short_codes, N)
        clear_orders()
    result = {
        "orders": N,
        "lines_per_order": "1-3",
        "core_orders_per_s": round(core, 1),
        "pull_path_orders_per_s": round(pull_path, 1),
        "one_by_one_orders_per_s": round(single, 1),
        "bulk_create_orders_per_s": round(bulk, 1),
        "copy_orders_per_s": round(copy, 1),
        "core_vs_copy": round(core / copy, 3),
        "core_vs_bulk_create": round(core / bulk, 3),
        "mix": mix,
        "mix_vs_core": round(mix["versions_per_s"] / core, 3),
    }
    print(
        f"ingestion core {result['core_orders_per_s']}/s · pull path {result['pull_path_orders_per_s']}/s · one by one {result['one_by_one_orders_per_s']}/s · bulk_create {result['bulk_create_orders_per_s']}/s · "
        f"COPY {result['copy_orders_per_s']}/s · core/COPY {result['core_vs_copy']} · core/bulk {result['core_vs_bulk_create']}"
    )
    print(
        f"realistic mix: {mix['versions_per_s']} versions/s ({result['mix_vs_core']} of all-new) — "
        f"{mix['stream_kinds']}; afterwards {mix['orders_by_status']}, {mix['out_of_stock_orders']} out of stock, "
        f"{mix['merged_fulfilments']} merged fulfilments"
    )
    return result


if __name__ == "__main__":
    main()

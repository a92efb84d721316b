"""Two ingestion batches of one store at the same time (two workers, two real sessions)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from django.db import connection
from django_tenants.utils import schema_context

from channels.models import Store
from channels.types import ChannelOrder, ChannelOrderLine, CipherField, OrderStatus, Platform, Receiver
from inventory import services as stock
from inventory.models import Goods, Listing, Sku
from inventory.selectors import ledger_mismatches
from orders.models import Order
from orders.services import ingest_batch, ingestion_transaction

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
SKUS = 80


def order(n: int, code: str) -> ChannelOrder:
    return ChannelOrder(
        platform=Platform.DOUYIN,
        platform_shop_id="3001",
        platform_order_id=f"69{n:017d}",
        platform_status="2",
        status=OrderStatus.PAID,
        created_at=T0,
        updated_at=T0 + timedelta(seconds=n),
        lines=(ChannelOrderLine(f"L{n}", f"P-{code}", f"S-{code}", code, "袜子", "", 1, 990, 990),),
        receiver=Receiver(
            CipherField("#n#", "李*", f"n{n}"),
            CipherField("$p$", "139****0000", f"p{n}"),
            CipherField("#a#", "文***号", f"a{n}"),
            "浙江省",
            "杭州市",
            "西湖区",
        ),
        paid_at=T0 + timedelta(seconds=n),
        goods_fen=990,
        paid_fen=990,
    )


def test_batches_bringing_the_same_new_skus_in_opposite_order_both_commit(committed_tenant):
    """Each batch meets the store's platform SKUs for the first time and creates their listings.
    Created in batch order, two batches with the SKUs in opposite order deadlocked on the
    listing's unique index; created in key order, the second waits for the first."""
    tenant = committed_tenant("concur")
    codes = [f"SOCK-{i:03d}" for i in range(SKUS)]
    with schema_context(tenant.schema_name):
        store = Store.objects.create(platform="douyin", platform_shop_id="3001", name="抖店", app_key="k")
        goods = Goods.objects.create(name="袜子")
        for code in codes:
            stock.receive_stock(
                sku=Sku.objects.create(goods=goods, merchant_code=code, name=code),
                quantity=5,
                reason="opening",
            )
    batches = [
        [order(i, code) for i, code in enumerate(codes)],
        [order(1000 + i, code) for i, code in enumerate(reversed(codes))],
    ]
    ready = threading.Barrier(2)
    errors: list[BaseException] = []

    def ingest(batch):
        try:
            with schema_context(tenant.schema_name), ingestion_transaction():
                ready.wait(timeout=10)
                ingest_batch(store=store, items=[(co, None) for co in batch])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=ingest, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    with schema_context(tenant.schema_name):
        assert Order.objects.count() == 2 * SKUS
        assert Listing.objects.filter(store=store).count() == SKUS
        assert set(Order.objects.values_list("status", flat=True)) == {"approved"}
        assert not ledger_mismatches()

"""Ingestion against a writer that holds the after-sale (an answer's outcome, a supplier's answer)
and then writes the order's timeline: two real sessions on committed data. Ingestion locks the
order first (FOR NO KEY UPDATE), then the after-sale; the other writer's order event only takes
KEY SHARE on the order, so neither waits for the other in a circle — no deadlock, both land."""

from __future__ import annotations

import threading

from django.db import connection, transaction
from django_tenants.utils import schema_context

from aftersales import services
from aftersales.models import AfterSale
from channels.models import Store
from inventory import services as stock
from inventory.models import Goods, Sku
from orders import services as orders
from orders.models import OrderEvent
from tests.aftersales.ingest_rig import CS, deliver, later, store_version, version
from tests.e2e.conftest import committed_tenant, db, wait_until, waiting_for_locks  # noqa: F401
from tests.orders.conftest import channel_order


def test_ingestion_and_a_writer_holding_the_after_sale_do_not_deadlock(committed_tenant):  # noqa: F811
    tenant = committed_tenant("as-race")
    with schema_context(tenant.schema_name):
        store = Store.objects.create(platform="douyin", platform_shop_id="2001", name="抖店", app_key="k")
        sku = Sku.objects.create(goods=Goods.objects.create(name="T恤"), merchant_code="TS-WHT-L", name="T恤")
        stock.receive_stock(sku=sku, quantity=10, reason="opening")
        order = orders.ingest_channel_order(store=store, co=channel_order("6960000000000000001"))
        v1 = version(order, after_sale_id="AS-RACE")
        after_sale = deliver(store, v1)
        store_version(store, later(v1, status=CS.REFUNDING, platform_status="refunding"))

    holding, go = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:  # holds the after-sale, then writes the timeline (an order event too)
        try:
            with schema_context(tenant.schema_name), transaction.atomic():
                locked = AfterSale.objects.select_for_update().get(pk=after_sale.pk)
                holding.set()
                go.wait(10)
                services.record(locked, "answer", "供应商已回复", source="supplier")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    def ingester() -> None:
        try:
            with schema_context(tenant.schema_name):
                services.ingest(store_id=store.pk, platform_after_sale_id="AS-RACE")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer), threading.Thread(target=ingester)]
    threads[0].start()
    assert holding.wait(10)
    threads[1].start()
    assert wait_until(lambda: waiting_for_locks() >= 1, timeout=10)  # ingestion waits for the after-sale
    go.set()
    for t in threads:
        t.join(30)
    assert errors == []
    with schema_context(tenant.schema_name):
        after_sale.refresh_from_db()
        assert after_sale.queue == AfterSale.Queue.AWAITING_REFUND
        assert OrderEvent.objects.filter(order=order, kind="after_sale_answer").count() == 1
    connection.set_schema_to_public()

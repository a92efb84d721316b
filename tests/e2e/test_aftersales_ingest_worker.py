"""AfterSaleChanged → the ingest task through a real Celery worker: the channel layer stores a
version in a tenant's schema (committed), its event is published after the commit, the handler
enqueues ``aftersales.tasks.ingest_task`` carrying that schema, and the worker (its own
connection) applies it there — and nowhere else. The beat sweep, sent for one tenant, applies a
version whose event was lost in that tenant only."""

from __future__ import annotations

from django.db import connection, transaction
from django_tenants.utils import schema_context

from aftersales.models import AfterSale
from aftersales.tasks import sweep_task
from channels.models import Store
from inventory import services as stock
from inventory.models import Goods, Sku
from orders import services as orders
from tests.aftersales.ingest_rig import store_version, version
from tests.e2e.conftest import wait_until
from tests.orders.conftest import channel_order


def _shop_with_order() -> tuple[Store, object]:
    store = Store.objects.create(platform="douyin", platform_shop_id="2001", name="抖店", app_key="k")
    sku = Sku.objects.create(goods=Goods.objects.create(name="T恤"), merchant_code="TS-WHT-L", name="T恤")
    stock.receive_stock(sku=sku, quantity=10, reason="opening")
    return store, orders.ingest_channel_order(store=store, co=channel_order("6950000000000000001"))


def test_the_event_enqueues_the_ingest_task_in_the_tenant_schema(committed_tenant, tenant_worker):
    one, other = committed_tenant("as-one"), committed_tenant("as-two")
    with schema_context(other.schema_name):
        _shop_with_order()
    with schema_context(one.schema_name):
        store, order = _shop_with_order()
        v = version(order, after_sale_id="AS-WORKER")
        with transaction.atomic():  # committed: the event is published after this commit
            assert store_version(store, v)
        assert wait_until(
            lambda: AfterSale.objects.filter(platform_after_sale_id="AS-WORKER").exists(), timeout=30
        )
        after_sale = AfterSale.objects.get(platform_after_sale_id="AS-WORKER")
        assert after_sale.order_id == order.pk and after_sale.events.filter(kind="created").count() == 1
        # a version whose event is lost (stored outside any event delivery): the beat sweep applies it
        lost = version(order, after_sale_id="AS-LOST")
        from aftersales import subscriptions
        from channels.events import AfterSaleChanged
        from channels.services import store_after_sale_version
        from ecbao import events

        events.unsubscribe(AfterSaleChanged, subscriptions.on_after_sale_changed)
        try:
            with transaction.atomic():
                store_after_sale_version(store=store, after_sale=lost, source="pull")
        finally:
            events.subscribe(AfterSaleChanged, subscriptions.on_after_sale_changed)
        assert not AfterSale.objects.filter(platform_after_sale_id="AS-LOST").exists()
        assert sweep_task.delay().get(timeout=60) == 1
        assert AfterSale.objects.filter(platform_after_sale_id="AS-LOST").exists()
    with schema_context(other.schema_name):
        assert not AfterSale.objects.exists()
    connection.set_schema_to_public()

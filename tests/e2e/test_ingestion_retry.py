""" "Retry now" on the order workbench, through a real Celery worker: the button queues the
retry task, the workbench polls its progress (htmx) until it is done and says what is left."""

from __future__ import annotations

import re

from django_tenants.utils import schema_context

from channels.models import Store
from channels.services import _store_versions
from inventory.models import Goods, Sku
from inventory.services import receive_stock
from orders import services
from orders.models import IngestionFailure, Order
from tests.conftest import tenant_client
from tests.e2e.conftest import OWNER_PASSWORD, wait_until
from tests.orders.conftest import channel_order, line, receiver

SLUG = "retry11"


def test_issue11_d7_retry_now_runs_as_a_task_with_progress_on_the_workbench(committed_tenant, tenant_worker):
    tenant = committed_tenant(SLUG)
    with schema_context(tenant.schema_name):
        store = Store.objects.create(platform="douyin", platform_shop_id="2001", name="抖店", app_key="k")
        sku = Sku.objects.create(
            goods=Goods.objects.create(name="帽子"), merchant_code="CAP-RED", name="帽子"
        )
        receive_stock(sku=sku, quantity=5, reason="opening")
        broken = channel_order("6940000000000000001", lines=(line(1, "CAP-RED", qty=0),))
        _store_versions(store=store, orders=[broken], source="push")  # its ingestion task lost
        services.reconcile_ingestion()  # the sweep: fails, recorded, pausing
        assert IngestionFailure.objects.get().attempts == 1
        good = channel_order("6940000000000000002", lines=(line(1, "CAP-RED"),), receiver=receiver("i2"))
        _store_versions(store=store, orders=[good], source="push")  # lost too, not swept yet

    client = tenant_client(tenant)
    assert (
        client.post("/accounts/login/", {"username": f"{SLUG}-owner", "password": OWNER_PASSWORD}).status_code
        == 302
    )
    page = client.get("/orders/").content.decode()
    assert 'data-testid="ingestion-failures"' in page and "ValueError: quantity must be positive" in page

    started = client.post("/orders/ingestion/retry/", HTTP_HX_REQUEST="true")
    assert started.status_code == 200
    html = started.content.decode()
    retry_id = started.context["retry"]["id"]
    assert started.context["retry"]["state"] in ("queued", "running", "done")
    if started.context["retry"]["state"] != "done":  # the worker may already be through
        assert f'hx-get="/orders/ingestion/retry/{retry_id}/"' in html and 'hx-trigger="every 1s"' in html

    seen = []

    def done() -> bool:
        response = client.get(f"/orders/ingestion/retry/{retry_id}/", HTTP_HX_REQUEST="true")
        seen.append(response.context["retry"])
        return response.context["retry"]["state"] == "done"

    assert wait_until(done, timeout=60, interval=0.2), seen[-1]
    final = client.get(f"/orders/ingestion/retry/{retry_id}/", HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in final  # polling stops
    assert "仍有 1 个平台订单版本未能导入。" in final
    assert (seen[-1]["done"], seen[-1]["total"], seen[-1]["percent"]) == (2, 2, 100)
    with schema_context(tenant.schema_name):
        assert Order.objects.filter(platform_order_id=good.platform_order_id).exists()
        failure = IngestionFailure.objects.get()
        assert failure.attempts == 2  # retried at once, its pause notwithstanding
    # The list shows the finished retry and the failure that is left.
    page = client.get("/orders/").content.decode()
    assert re.search(r'data-testid="ingestion-retry" data-state="done"', page)

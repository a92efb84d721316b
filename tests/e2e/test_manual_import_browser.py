"""Ship by hand in a real headless Chromium: a workbook too large to import within the request
is imported by a real Celery worker while the page polls its progress (htmx); the report lists
the bad row with its reason, the good rows' orders are shipped; one order's number is entered
through the form."""

from __future__ import annotations

import pytest
from django.db import connection
from django_tenants.utils import schema_context
from openpyxl import Workbook

from channels.models import Store
from inventory.models import Goods, Sku
from inventory.services import receive_stock
from logistics import manual
from logistics import services as parcels
from logistics.models import Parcel
from orders import services
from orders.models import Order, OrderStatus
from tests.e2e.conftest import OWNER_PASSWORD
from tests.orders.conftest import channel_order, receiver

pytestmark = pytest.mark.browser


def test_import_runs_in_the_worker_and_the_page_follows_it(
    committed_tenant, browser, live_url, tenant_worker, tmp_path, monkeypatch
):
    monkeypatch.setattr(manual, "INLINE_ROWS", 2)  # so that 5 rows go to the worker
    monkeypatch.setattr(manual, "CHUNK", 2)
    tenant = committed_tenant("manual-e2e")
    with schema_context(tenant.schema_name):
        store = Store.objects.create(
            platform="douyin", platform_shop_id="2001", name="抖店旗舰店", app_key="k"
        )
        sku = Sku.objects.create(
            goods=Goods.objects.create(name="纯棉T恤"), merchant_code="TS-WHT-L", name="T恤"
        )
        receive_stock(sku=sku, quantity=50, reason="opening")
        for i in range(6):
            services.ingest_channel_order(
                store=store, co=channel_order(oid=f"6910000000000{i}", receiver=receiver(f"r{i}"))
            )
        parcels.ensure_parcels()
    connection.set_schema_to_public()

    book = Workbook()
    book.active.append(["平台订单号", "快递公司", "运单号"])
    for i in range(4):
        book.active.append([f"6910000000000{i}", "中通快递", f"7310000000010{i}"])
    book.active.append(["6990000000000", "中通快递", "73100000000199"])  # row 6: no such order
    path = tmp_path / "运单号.xlsx"
    book.save(path)

    base = live_url.format(host="manual-e2e.localhost")
    page = browser.new_page()
    try:
        page.goto(base + "/accounts/login/")
        page.fill("#id_username", "manual-e2e-owner")
        page.fill("#id_password", OWNER_PASSWORD)
        page.click("button[type=submit]")
        page.click("[data-testid=nav-import-tracking]")
        page.set_input_files("[data-testid=manual-import-form] input[type=file]", str(path))
        page.click("[data-testid=manual-import-submit]")
        page.wait_for_selector("[data-testid=import-batch]")
        # the worker runs it; the block polls itself until the summary replaces the progress bar
        page.wait_for_selector("[data-testid=import-summary]", timeout=30_000)
        summary = page.locator("[data-testid=import-summary]").inner_text()
        assert "共 5 行：录入 4" in summary and "有问题 1" in summary
        errors = page.locator("[data-testid=import-error]")
        assert errors.count() == 1
        assert "没有这个单号的订单。" in errors.inner_text() and "6990000000000" in errors.inner_text()

        # one more order through the form
        page.goto(base + "/shipping/manual/")
        page.fill("#id_platform_order_id", "69100000000005")
        page.select_option("#id_carrier", "sf")
        page.fill("#id_tracking_no", "SF1234567890123")
        page.click("[data-testid=manual-entry-submit]")
        assert "已发货，运单号 SF1234567890123" in page.locator(".messages").inner_text()
    finally:
        page.close()

    with schema_context(tenant.schema_name):
        assert Order.objects.filter(status=OrderStatus.SHIPPED).count() == 5
        assert sorted(Parcel.objects.filter(manual=True).values_list("tracking_no", flat=True)) == [
            *(f"7310000000010{i}" for i in range(4)),
            "SF1234567890123",
        ]
    connection.set_schema_to_public()

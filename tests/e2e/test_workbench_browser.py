"""The order workbench in a real headless Chromium: tab counts, a shop filter, bulk approve
through htmx, and the order detail's timeline."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from channels.models import Store
from channels.types import OrderStatus as CS
from inventory.models import Goods, Sku
from inventory.services import receive_stock
from orders import services
from tests.e2e.conftest import OWNER_PASSWORD
from tests.orders.conftest import channel_order, line

pytestmark = pytest.mark.browser


def test_operator_walks_the_workbench(committed_tenant, browser, live_url):
    tenant = committed_tenant("wb-e2e")
    with schema_context(tenant.schema_name):
        douyin = Store.objects.create(
            platform="douyin", platform_shop_id="2001", name="抖店旗舰店", app_key="k"
        )
        other = Store.objects.create(platform="douyin", platform_shop_id="2002", name="抖店二店", app_key="k")
        goods = Goods.objects.create(name="纯棉T恤")
        for code in ("TS-WHT-L", "CAP-RED"):
            receive_stock(
                sku=Sku.objects.create(goods=goods, merchant_code=code, name=code), quantity=50, reason="x"
            )
        services.set_rule(kind="auto_approve", enabled=False)
        for i in range(4):
            services.ingest_channel_order(store=douyin, co=channel_order(oid=f"69100000000000000{i}"))
        services.ingest_channel_order(store=other, co=channel_order(oid="692000000000000001"))
        services.ingest_channel_order(
            store=douyin,
            co=channel_order(oid="693000000000000001", buyer_remark="请发顺丰", lines=(line(1, "CAP-RED"),)),
        )
        services.ingest_channel_order(
            store=douyin, co=channel_order(oid="694000000000000001", status=CS.UNPAID)
        )
    connection.set_schema_to_public()

    base = live_url.format(host="wb-e2e.localhost")
    page = browser.new_page()
    try:
        page.goto(base + "/accounts/login/")
        page.fill("#id_username", "wb-e2e-owner")
        page.fill("#id_password", OWNER_PASSWORD)
        page.click("button[type=submit]")
        page.goto(base + "/orders/")

        def count(tab: str) -> str:
            return page.locator(f"[data-testid=tab-{tab}] .count").inner_text().strip()

        assert (count("to_review"), count("held"), count("pending_payment"), count("approved")) == (
            "5",
            "1",
            "1",
            "0",
        )
        assert "待审核" in page.locator("[data-testid=tab-to_review]").inner_text()

        page.click("[data-testid=tab-to_review]")
        page.select_option("select[name=store]", str(douyin.pk))
        page.click("[data-testid=order-filters] button[type=submit]")
        page.wait_for_url(re.compile(r".*store=.*"))
        rows = page.locator("[data-testid=order-row]")
        assert rows.count() == 4  # the other shop's order is filtered out

        boxes = page.locator("[data-testid=order-row] input[name=ids]")
        boxes.nth(0).check()
        boxes.nth(1).check()
        page.click("[data-testid=bulk-actions] button[value=approve]")
        page.wait_for_selector("[data-testid=batch-result]")
        assert page.locator("[data-testid=batch-result] li.ok").count() == 2
        assert count("approved") == "2" and count("to_review") == "2"  # counts follow the shop filter

        page.goto(base + "/orders/?status=approved")
        page.locator("[data-testid=order-row] a").first.click()
        page.wait_for_selector("[data-testid=timeline]")
        # the approval the bulk action made: one event, by this user, to approved; the badge says 待发货
        approvals = page.locator("[data-testid=timeline] tbody tr").filter(has_text="approved by hand")
        assert approvals.count() == 1
        row = approvals.first.inner_text()
        assert "wb-e2e-owner" in row and "待审核 → 待发货" in row, row
        assert page.locator("[data-testid=order-status]").inner_text().strip() == "待发货"
        assert page.locator("[data-testid=snapshots]").count() == 1
    finally:
        page.close()

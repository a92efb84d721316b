"""The after-sales queue in a real headless Chromium, with after-sales from the sandbox's three
platforms (real HTTP) kept by the channel layer and ingested: the merchant sees the 待处理 tab
sorted by the platforms' deadlines with countdowns, opens one and refuses it with one of the
platform's reason codes, approves another on its page, ticks the two small refunds left and
approves them in bulk (批量同意, results per row) — and the tab counts follow."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.db.models import F
from django_tenants.utils import schema_context

from aftersales.models import AfterSale
from tests.aftersales import pages_rig as rig
from tests.e2e.conftest import OWNER_PASSWORD
from tests.logistics.waybill_world import connect_shops, start_sandbox

pytestmark = pytest.mark.browser


@pytest.fixture
def sandbox(tmp_path):
    server = start_sandbox(tmp_path / "world.sqlite3", seed=1516)
    yield server
    server.stop()
    server.world.close()


def test_the_merchant_works_the_after_sales_queue(committed_tenant, sandbox, browser, live_url, settings):
    tenant = committed_tenant("shouhou-e2e")
    settings.CHANNEL_BASE_URLS = dict(settings.CHANNEL_BASE_URLS)  # restored after the test
    with schema_context(tenant.schema_name):
        shops = connect_shops(sandbox)
        made = {
            "refuse": rig.platform_after_sale(shops, shops.order("douyin", 1), reason="不想要了"),
            "approve": rig.platform_after_sale(shops, shops.order("wechat", 1), reason="拍错了"),
            "bulk1": rig.platform_after_sale(shops, shops.order("kuaishou", 1), reason="多拍"),
            "bulk2": rig.platform_after_sale(shops, shops.order("douyin", 1, sku=1), reason="不想要了"),
        }
        assert all(a.queue == "pending" and a.deadline for a in made.values())
        by_deadline = list(
            AfterSale.objects.filter(queue="pending")
            .order_by(F("deadline").asc(nulls_last=True), "id")
            .values_list("pk", flat=True)
        )
    connection.set_schema_to_public()

    base = live_url.format(host="shouhou-e2e.localhost")
    page = browser.new_page()

    def count(tab: str) -> int:
        return int(page.locator(f"[data-testid=count-{tab}]").inner_text())

    def row_ids() -> list[int]:
        return [
            int(i.removeprefix("after-sale-"))
            for i in page.locator("[data-testid=after-sale-row]").evaluate_all("rows => rows.map(r => r.id)")
        ]

    try:
        page.goto(base + "/accounts/login/")
        page.fill("#id_username", "shouhou-e2e-owner")
        page.fill("#id_password", OWNER_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("[data-testid=nav-aftersales]")
        assert page.locator("[data-testid=nav-aftersales-count]").inner_text() == "4"
        page.click("[data-testid=nav-aftersales]")
        page.wait_for_selector("[data-testid=aftersale-table]")

        # 待处理, nearest deadline first, each with its countdown in words
        assert "待处理" in page.locator("[data-testid=tab-pending]").inner_text()
        assert page.locator("[data-testid=tab-pending]").get_attribute("class") == "active"
        assert count("pending") == 4 and count("all") == 4 and count("closed") == 0
        assert row_ids() == by_deadline
        countdowns = page.locator("[data-testid=after-sale-row] [data-testid=countdown]").all_inner_texts()
        assert len(countdowns) == 4 and all(re.fullmatch(r"还剩 .+", t) for t in countdowns), countdowns
        assert "未发货仅退款" in page.locator(f"#after-sale-{made['refuse'].pk}").inner_text()

        # open one and refuse it with a reason code the platform accepts
        page.click(f"#after-sale-{made['refuse'].pk} [data-testid=after-sale-link]")
        page.wait_for_selector("[data-testid=reject-form]")
        options = page.locator("#id_reject-reason_code option").evaluate_all(
            "opts => opts.map(o => [o.value, o.textContent])"
        )
        code = next(value for value, text in options if value and "需凭证" not in text)
        page.select_option("#id_reject-reason_code", code)
        page.fill("#id_reject-reason", "商品已在途，请拒收")
        page.click("[data-testid=reject]")
        page.wait_for_selector(".messages")
        assert "平台已受理" in page.locator(".messages").inner_text()
        assert page.locator("[data-testid=queue]").inner_text() == "已关闭"
        assert "商品已在途，请拒收" in page.locator("[data-testid=timeline]").inner_text()

        # back to the queue, open another and approve it
        page.click("[data-testid=nav-aftersales]")
        assert count("pending") == 3 and count("closed") == 1
        page.click(f"#after-sale-{made['approve'].pk} [data-testid=after-sale-link]")
        page.click("[data-testid=approve]")
        page.wait_for_selector(".messages")
        assert "平台已受理" in page.locator(".messages").inner_text()
        assert page.locator("[data-testid=queue]").inner_text() != "待处理"

        # tick the two small refunds left and approve them in bulk
        page.click("[data-testid=nav-aftersales]")
        assert count("pending") == 2
        assert sorted(row_ids()) == sorted([made["bulk1"].pk, made["bulk2"].pk])
        for key in ("bulk1", "bulk2"):
            page.check(f"#after-sale-{made[key].pk} input[name=ids]")
        page.click("[data-testid=bulk-approve]")
        page.wait_for_selector("[data-testid=batch-result]")
        assert page.locator("[data-testid=result-approved]").count() == 2
        assert page.locator("[data-testid=result-refused]").count() == 0
        assert count("pending") == 0 and count("closed") == 1
        assert count("awaiting_refund") + count("done") == 3 and count("all") == 4
        assert page.locator("[data-testid=after-sale-row]").count() == 0
    finally:
        page.close()

    with schema_context(tenant.schema_name):
        queues = dict(AfterSale.objects.values_list("pk", "queue"))
        assert queues[made["refuse"].pk] == "closed"
        assert all(queues[made[k].pk] in ("awaiting_refund", "done") for k in ("approve", "bulk1", "bulk2"))
        assert made["refuse"].actions.get().status == "done"
    connection.set_schema_to_public()

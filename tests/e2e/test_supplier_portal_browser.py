"""The supplier portal in a real headless Chromium, on a phone-sized screen: a supplier user logs in
and lands on /supplier/, sees the new dispatch (masked receiver), acknowledges it (接单), enters
the tracking number on the dispatch page, and the dispatch shows 已发货 — shipped through
logistics, with one write-back for the order; the merchant's own line of the order is untouched."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django_tenants.utils import schema_context

from channels.models import Store
from inventory.models import Goods, Sku
from inventory.services import receive_stock
from logistics.models import Parcel, WriteBack
from suppliers.models import Dispatch
from tenants.accounts.models import Role
from tenants.accounts.services import create_user
from tests.suppliers.portal_rig import PASSWORD, order_for, supplier

pytestmark = pytest.mark.browser


def test_a_supplier_acknowledges_and_ships_a_dispatch_in_the_portal(committed_tenant, browser, live_url):
    tenant = committed_tenant("portal-e2e")
    with schema_context(tenant.schema_name):
        store = Store.objects.create(
            platform="douyin", platform_shop_id="2001", name="抖店旗舰店", app_key="k"
        )
        goods = Goods.objects.create(name="纯棉T恤")
        skus = {}
        for code in ("TS-WHT-L", "CAP-RED"):
            skus[code] = Sku.objects.create(goods=goods, merchant_code=code, name=code)
            receive_stock(sku=skus[code], quantity=10, reason="opening")
        tea = supplier("HZT", [skus["CAP-RED"]])
        order, dispatch = order_for(store, tea, "6930000000000001", (1, "TS-WHT-L", 1), (2, "CAP-RED", 2))
        user = create_user(username="hzt-1", password=PASSWORD, role=Role.SUPPLIER)
        get_user_model().objects.filter(pk=user.pk).update(supplier_id=tea.pk)
    connection.set_schema_to_public()

    base = live_url.format(host="portal-e2e.localhost")
    page = browser.new_page(viewport={"width": 390, "height": 844})
    try:
        page.goto(base + "/accounts/login/")
        page.fill("#id_username", "hzt-1")
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("[data-testid=dispatch-table]")
        assert page.url.endswith("/supplier/")
        assert page.locator("[data-testid=supplier-name]").inner_text() == "HZT 供应商"
        row = page.locator(f"#dispatch-{dispatch.pk}")
        assert "138****8888" in row.inner_text() and "6930000000000001" in row.inner_text()
        assert page.locator("[data-testid=dispatch-status]").first.inner_text() == "新单"

        row.locator("input[name=ids]").check()
        page.click("[data-testid=action-acknowledge]")
        page.wait_for_selector("[data-testid=messages]")
        assert "已接单 1 个代发单" in page.locator("[data-testid=messages]").inner_text()

        page.click("[data-testid=tab-to_ship]")
        page.click(f"#dispatch-{dispatch.pk} [data-testid=dispatch-link]")
        assert page.locator("[data-testid=dispatch-status]").inner_text() == "待发货"
        assert "TS-WHT-L" not in page.locator("[data-testid=dispatch-lines]").inner_text()
        page.select_option("#id_carrier", "zto")
        page.fill("#id_tracking_no", "73100000000088")
        page.click("[data-testid=tracking-submit]")
        page.wait_for_selector("[data-testid=messages]")
        assert "已发货" in page.locator("[data-testid=messages]").inner_text()
        assert page.locator("[data-testid=dispatch-status]").inner_text() == "已发货"
        assert page.locator("[data-testid=tracking-no]").inner_text() == "73100000000088"

        page.click("[data-testid=nav-dispatches]")
        page.click("[data-testid=tab-shipped]")
        assert "73100000000088" in page.locator(f"#dispatch-{dispatch.pk}").inner_text()
    finally:
        page.close()

    with schema_context(tenant.schema_name):
        assert Dispatch.objects.get(pk=dispatch.pk).status == Dispatch.Status.SHIPPED
        [parcel] = Parcel.objects.filter(fulfilment_id=dispatch.fulfilment_id, status=Parcel.Status.SHIPPED)
        assert list(WriteBack.objects.values_list("parcel_id", "order_id", "tracking_no")) == [
            (parcel.pk, order.pk, "73100000000088")
        ]
        own = Parcel.objects.filter(lines__order_line__merchant_code="TS-WHT-L").distinct()
        assert own.exists() and not own.filter(status=Parcel.Status.SHIPPED).exists()
    connection.set_schema_to_public()

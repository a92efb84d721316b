"""Receiving a return by scan in a real headless Chromium: the warehouse's barcode scanner is
keyboard input ending in Enter. The return waybill (typed as the label shows it, lower case)
finds its after-sale (kept by the channel layer and ingested); 1 good and 1 defective are
booked: sellable stock +1, the defective location +1, two RETURN ledger rows, the ledger check
passes; the after-sale's timeline says so. An unknown waybill is 无主件, in red, with the error
beep."""

from __future__ import annotations

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from aftersales.models import AfterSaleEvent, ReturnReceipt
from inventory import selectors
from inventory import services as stock
from inventory.models import StockLedgerEntry, StockLevel, Warehouse
from tests.aftersales import returns_rig as rig
from tests.e2e.conftest import OWNER_PASSWORD

pytestmark = pytest.mark.browser


def _setup(tenant) -> dict:
    with schema_context(tenant.schema_name):
        store = rig.shop()
        sku = rig.skus("TS-WHT-L", on_hand=10)["TS-WHT-L"]
        sale = rig.after_sale(store, oid="6930000000000000501", return_tracking_no="SF1234567890")
        warehouse = stock.default_warehouse()
        ids = {
            "sku": sku.pk,
            "sale": sale.pk,
            "as_id": sale.platform_after_sale_id,
            "warehouse": warehouse.pk,
        }
        ids["warehouse_name"] = warehouse.name
        ids["on_hand"] = StockLevel.objects.get(sku=sku, warehouse=warehouse).on_hand
    connection.set_schema_to_public()
    return ids


def _state(tenant, ids) -> dict:
    with schema_context(tenant.schema_name):
        defective = Warehouse.objects.filter(
            kind=Warehouse.Kind.DEFECTIVE, parent_id=ids["warehouse"]
        ).first()
        levels = dict(StockLevel.objects.filter(sku_id=ids["sku"]).values_list("warehouse_id", "on_hand"))
        state = {
            "sellable": levels.get(ids["warehouse"]),
            "defective": levels.get(defective.pk) if defective else None,
            "ledger": sorted(
                StockLedgerEntry.objects.filter(source_type="return").values_list(
                    "warehouse_id", "on_hand_delta", "source_id"
                )
            ),
            "defective_id": defective.pk if defective else None,
            "receipt_id": ReturnReceipt.objects.order_by("id").values_list("pk", flat=True).first(),
            "receipts": list(ReturnReceipt.objects.order_by("id").values_list("tracking_no", "status")),
            "events": list(
                AfterSaleEvent.objects.filter(
                    after_sale_id=ids["sale"], kind__in=["return_arrived", "return_inspected"]
                )
                .order_by("id")
                .values_list("message", flat=True)
            ),
            "mismatches": selectors.ledger_mismatches(),
        }
    connection.set_schema_to_public()
    return state


def test_warehouse_receives_a_return_by_scan(committed_tenant, browser, live_url):
    tenant = committed_tenant("returns-e2e")
    ids = _setup(tenant)
    base = live_url.format(host="returns-e2e.localhost")
    page = browser.new_page()
    try:
        page.goto(base + "/accounts/login/")
        page.fill("#id_username", "returns-e2e-owner")
        page.fill("#id_password", OWNER_PASSWORD)
        page.click("button[type=submit]")
        page.goto(base + "/aftersales/returns/scan/")
        page.wait_for_selector("#returns-bench[data-ready]")
        bench = page.locator("#returns-bench")
        message = page.locator("[data-testid=returns-message]")
        assert page.locator("[data-testid=scan-label]").inner_text() == "扫描退货运单号"

        def wait_beep(before: int) -> str:
            page.wait_for_function(
                "n => Number(document.getElementById('returns-bench').dataset.beeps || 0) > n", arg=before
            )
            return message.inner_text()

        def scan(code: str) -> str:
            """Type like a scanner (characters, then Enter) into the focused box."""
            before = int(bench.get_attribute("data-beeps") or 0)
            assert page.evaluate("document.activeElement.id") == "scan-input"
            page.keyboard.type(code)
            page.keyboard.press("Enter")
            return wait_beep(before)

        said = scan("sf1234 567890")
        assert "退货已签收" in said and ids["as_id"] in said, said
        assert bench.get_attribute("data-last-beep") == "ok"
        assert page.locator("[data-testid=receipt-tracking]").inner_text() == "SF1234567890"
        assert page.locator("[data-testid=as-id]").inner_text() == ids["as_id"]
        assert page.locator("[data-testid=as-order]").inner_text() == "6930000000000000501"
        assert page.locator("[data-testid=as-reason]").inner_text() == "尺码不合适"
        assert page.locator("[data-testid=as-photos] a").count() == 1
        rows = page.locator("[data-testid=inspect-line]")
        assert rows.count() == 1 and rows.first.get_attribute("data-code") == "TS-WHT-L"
        assert rows.first.locator("td").nth(2).inner_text() == "2"  # expected
        assert page.locator("[data-testid=good-input]").input_value() == "2"  # default: all good
        assert page.locator("[data-testid=confirm-refund]").is_hidden()

        page.fill("[data-testid=good-input]", "1")
        page.fill("[data-testid=defective-input]", "1")
        before = int(bench.get_attribute("data-beeps") or 0)
        page.click("[data-testid=inspect-submit]")
        said = wait_beep(before)
        assert said == "已入库：良品 1 件入可售库存，次品 1 件入次品仓。", said
        assert page.locator("[data-testid=receipt-status]").get_attribute("data-status") == "inspected"
        assert page.locator("[data-testid=inspect-submit]").is_hidden()
        assert page.locator(
            "[data-testid=confirm-refund]"
        ).is_visible()  # the merchant's click, not automatic
        state = _state(tenant, ids)
        key = f"return:{state['receipt_id']}:{ids['sku']}"
        assert state["sellable"] == ids["on_hand"] + 1
        assert state["defective"] == 1
        assert state["ledger"] == sorted([(ids["warehouse"], 1, key), (state["defective_id"], 1, key)])
        assert state["receipts"] == [("SF1234567890", "inspected")]
        assert state["events"] == [
            f"退货已签收：运单 SF1234567890（{ids['warehouse_name']}）",
            "验货：良品 1 件、次品 1 件",
        ]
        assert state["mismatches"] == []

        # the same parcel scanned again books nothing
        said = scan("SF1234567890")
        assert "已签收并验货" in said, said
        assert _state(tenant, ids)["ledger"] == state["ledger"]

        # an unknown waybill: 无主件, in red, with the error beep
        page.click("[data-testid=next-parcel]")
        said = scan("NOPE-404")
        assert "无主件" in said, said
        assert bench.get_attribute("data-last-beep") == "error"
        assert message.get_attribute("data-kind") == "refused"
        assert page.locator("[data-testid=unclaimed-box]").is_visible()
        assert page.locator("[data-testid=receipt-status]").get_attribute("data-status") == "unclaimed"
        assert _state(tenant, ids)["receipts"] == [("SF1234567890", "inspected"), ("NOPE-404", "unclaimed")]
    finally:
        page.close()

"""Scan-to-verify in a real headless Chromium: the packer's barcode scanner is keyboard input
ending in Enter. A wrong item and one too many are refused (message in zh-Hans, an error beep,
the parcel not verified); a reload continues where the scans left off; the right items complete
the parcel and Enter (or the waybill scanned again) makes it VERIFIED; then the next parcel,
one of whose items is counted by hand with a reason.
The pick list of both parcels is walked by location."""

from __future__ import annotations

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from channels.models import Store
from inventory import services as stock
from inventory.models import Goods, Sku
from logistics import services as parcels
from logistics.models import Parcel, VerifyScan
from orders import services
from tests.e2e.conftest import OWNER_PASSWORD
from tests.orders.conftest import channel_order, line, receiver

pytestmark = pytest.mark.browser
P = Parcel.Status


def _setup(tenant) -> dict[str, int]:
    with schema_context(tenant.schema_name):
        store = Store.objects.create(
            platform="douyin", platform_shop_id="2001", name="抖店旗舰店", app_key="k"
        )
        goods = Goods.objects.create(name="纯棉T恤")
        for code, location, barcode in (
            ("TS-WHT-L", "A-10", ""),
            ("CAP-RED", "A-2", "6901234567892"),
            ("SOCK-9", "B-1", ""),
        ):
            sku = Sku.objects.create(goods=goods, merchant_code=code, name=f"商品 {code}", barcode=barcode)
            stock.receive_stock(sku=sku, quantity=50, reason="opening")
            stock.set_location(sku=sku, location=location)
        services.set_rule(kind="auto_approve", enabled=True)
        ids = {}
        for oid, tracking_no, lines in (
            ("6930000000000000001", "ZTB0001", (line(1, "TS-WHT-L", qty=2), line(2, "CAP-RED", qty=1))),
            ("6930000000000000002", "ZTB0002", (line(1, "SOCK-9", qty=3),)),
        ):
            order = services.ingest_channel_order(
                store=store, co=channel_order(oid=oid, lines=lines, receiver=receiver(f"idx-{oid}"))
            )
            parcels.ensure_parcels()
            parcel = Parcel.objects.filter(lines__order_line__order=order).distinct().get()
            Parcel.objects.filter(pk=parcel.pk).update(
                tracking_no=tracking_no, carrier="zto", status=P.PRINTED
            )
            ids[tracking_no] = parcel.pk
    connection.set_schema_to_public()
    return ids


def _status(tenant, pk: int) -> Parcel:
    with schema_context(tenant.schema_name):
        parcel = Parcel.objects.select_related("verified_by").get(pk=pk)
    connection.set_schema_to_public()
    return parcel


def test_packer_scans_a_wrong_item_then_the_right_ones(committed_tenant, browser, live_url):
    tenant = committed_tenant("verify-e2e")
    ids = _setup(tenant)
    base = live_url.format(host="verify-e2e.localhost")
    page = browser.new_page()
    try:
        page.goto(base + "/accounts/login/")
        page.fill("#id_username", "verify-e2e-owner")
        page.fill("#id_password", OWNER_PASSWORD)
        page.click("button[type=submit]")
        page.click("[data-testid=nav-verify]")
        page.wait_for_selector("#verify-bench[data-ready]")
        bench = page.locator("#verify-bench")
        message = page.locator("[data-testid=verify-message]")

        def scan(code: str) -> str:
            """Type like a scanner (characters, then Enter) and wait for the answer's beep."""
            before = int(bench.get_attribute("data-beeps") or 0)
            page.keyboard.type(code)
            page.keyboard.press("Enter")
            page.wait_for_function(
                "n => Number(document.getElementById('verify-bench').dataset.beeps || 0) > n", arg=before
            )
            return message.inner_text()

        def scanned() -> dict[str, str]:
            rows = page.locator("[data-testid=verify-line]")
            return {
                rows.nth(i).get_attribute("data-code"): rows.nth(i)
                .locator("[data-testid=line-scanned]")
                .inner_text()
                for i in range(rows.count())
            }

        assert page.locator("[data-testid=scan-label]").inner_text() == "请扫描运单号"
        # an unknown waybill is refused
        assert "没有运单号为 NOPE-1 的包裹" in scan("NOPE-1")
        assert bench.get_attribute("data-last-beep") == "error"

        assert "请扫描商品" in scan("ZTB0001")
        assert page.locator("[data-testid=parcel-tracking]").inner_text() == "ZTB0001"
        # lines walk the shelves: A-2 before A-10
        codes = page.locator("[data-testid=verify-line]").evaluate_all(
            "rows => rows.map(r => r.dataset.code)"
        )
        assert codes == ["CAP-RED", "TS-WHT-L"]

        # a wrong item: refused, with a message and the error beep; nothing counts
        refused = scan("SOCK-9")
        assert "商品错误" in refused and "SOCK-9" in refused, refused
        assert bench.get_attribute("data-last-beep") == "error"
        assert message.get_attribute("data-kind") == "refused"
        assert scanned() == {"CAP-RED": "0", "TS-WHT-L": "0"}

        assert scan("TS-WHT-L").startswith("TS-WHT-L 1/2")
        assert bench.get_attribute("data-last-beep") == "ok"
        # a reload continues where the scans left off (progress is on the server)
        page.reload()
        page.wait_for_selector("[data-testid=verify-line]")
        assert scanned() == {"CAP-RED": "0", "TS-WHT-L": "1"}
        assert page.locator("[data-testid=scan-label]").inner_text() == "请扫描商品条码"

        scan("TS-WHT-L")
        too_many = scan("TS-WHT-L")
        assert "数量超出" in too_many, too_many
        assert bench.get_attribute("data-last-beep") == "error"
        assert page.locator("[data-testid=verify-done]").is_disabled()
        parcel = _status(tenant, ids["ZTB0001"])
        assert parcel.status == P.PRINTED and parcel.verified_at is None  # not verified while incomplete

        assert "全部扫描" in scan("6901234567892")  # CAP-RED by its barcode
        assert scanned() == {"CAP-RED": "1", "TS-WHT-L": "2"}
        assert "回车" in page.locator("[data-testid=scan-label]").inner_text()
        assert "验货完成" in scan("")  # Enter confirms
        assert page.locator("[data-testid=parcel-status]").get_attribute("data-status") == "verified"
        parcel = _status(tenant, ids["ZTB0001"])
        assert parcel.status == P.VERIFIED and parcel.verified_by.username == "verify-e2e-owner"

        # next parcel: the scanner types faster than the server answers; scans stay in order
        assert "请扫描商品" in scan("ztb0002")
        before = int(bench.get_attribute("data-beeps") or 0)
        for code in ("SOCK-9", "SOCK-9"):
            page.keyboard.type(code)
            page.keyboard.press("Enter")
        page.wait_for_function(
            "n => Number(document.getElementById('verify-bench').dataset.beeps || 0) >= n + 2", arg=before
        )
        assert scanned() == {"SOCK-9": "2"}
        # the third sock's barcode is torn: counted by hand, with a reason (强制)
        page.once("dialog", lambda dialog: dialog.accept("条码破损"))
        before = int(bench.get_attribute("data-beeps") or 0)
        page.click("[data-testid=by-hand]")
        page.wait_for_function(
            "n => Number(document.getElementById('verify-bench').dataset.beeps || 0) > n", arg=before
        )
        assert scanned() == {"SOCK-9": "3"} and "全部扫描" in message.inner_text()
        page.fill("[data-testid=weight-input]", "730")
        page.locator("[data-testid=scan-input]").focus()
        assert "验货完成" in scan("ZTB0002")  # the waybill scanned again confirms
        parcel = _status(tenant, ids["ZTB0002"])
        assert (parcel.status, parcel.weight_g) == (P.VERIFIED, 730)
        assert page.locator("[data-testid=verified-row]").count() == 2

        # a verified parcel scanned again is shown as verified, not re-opened
        assert "已验货" in scan("ZTB0001")
        with schema_context(tenant.schema_name):
            assert VerifyScan.objects.filter(accepted=False).count() == 2  # the wrong item, the extra one
        connection.set_schema_to_public()

        # the pick list of both parcels, walked by location
        page.goto(base + f"/shipping/pick/?ids={ids['ZTB0001']},{ids['ZTB0002']}")
        rows = page.locator("[data-testid=pick-row]")
        got = [rows.nth(i).locator("td").nth(1).inner_text() for i in range(rows.count())]
        assert got == ["CAP-RED", "TS-WHT-L", "SOCK-9"]  # B-1
        assert "共 6 件" in page.locator("[data-testid=pick-units]").inner_text()
    finally:
        page.close()

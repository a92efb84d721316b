"""Batch take-and-print in a real headless Chromium, with the sandbox over real HTTP, its print
components over WebSocket and a real Celery worker:

on the shipping workbench's 待打单 tab the operator ticks every parcel (two orders on each of a
Douyin, a Kuaishou and a WeChat shop) → 取号: a batch the worker runs, its progress polled, the
table reloading with the numbers → 打印: static/logistics/print.js hands each label to its
platform's print component. The Kuaishou component is not running at first: the page says so
and those tasks are journaled as failed; the others print. Once it runs, 打印 again prints the
rest. The sandbox components' journal shows every number printed exactly once, the rows moved
to 待发货, and WeChat was told of each print. A second test restarts a component while a label is
on its way: the page reconnects and asks for the task's status."""

from __future__ import annotations

import re
import socket

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from channels.routing.models import PlatformApp
from inventory.models import Goods, Sku
from inventory.services import receive_stock
from logistics.models import Parcel, PrintRecord
from sandbox.printer import PrintComponent, PrinterSettings
from sandbox.seed import seed_default_world
from sandbox.server import SandboxServer, ServerOptions
from sandbox.world import World
from tests.e2e.conftest import OWNER_PASSWORD, wait_until
from tests.e2e.test_channel_sync import connect as connect_shop
from tests.e2e.test_channel_sync import register_tool_apps
from tests.logistics.shipping_rig import PLATFORMS, connect_stores, parcel_of, place, prepare_shop, take

pytestmark = pytest.mark.browser
P = Parcel.Status
SLUG = "ship-browser"


def dead_url() -> str:
    """A print component URL where nothing listens (the component is not running)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"ws://127.0.0.1:{port}/ks/printer"


def test_operator_takes_numbers_and_prints_a_batch(
    tmp_path, settings, committed_tenant, tenant_worker, browser, live_url
):
    world = World(str(tmp_path / "world.sqlite3"), seed=2027)
    seed_default_world(world, shops_per_platform=1, buyers=20, product_count=4)
    server = SandboxServer(
        world, ServerOptions(ports=dict.fromkeys(("status", *PLATFORMS), 0), simulate=False, push=False)
    )
    for platform in PLATFORMS:
        server.faults.set(platform, "*", qps=0)
        for sku in world.skus(world.shops(platform)[0].shop_id):
            world.set_stock(sku.sku_id, 10_000)
    server.start()
    app_keys = [a.app_key for a in world.apps()]
    page = None
    try:
        settings.CHANNEL_BASE_URLS = {p: server.urls[p] for p in PLATFORMS}
        not_running = dead_url()
        settings.PRINT_COMPONENT_URLS = {**server.print_urls, "kuaishou": not_running}
        tenant = committed_tenant(SLUG)
        with schema_context(tenant.schema_name):
            stores = connect_stores(world)
            ids = {p: [parcel_of(place(world, stores[p], 1, buyer=b)).pk for b in (1, 2)] for p in PLATFORMS}
            for store in stores.values():
                prepare_shop(store)
        connection.set_schema_to_public()
        all_ids = [pk for pks in ids.values() for pk in pks]

        page = browser.new_page()
        base = live_url.format(host=f"{SLUG}.localhost")
        page.goto(base + "/accounts/login/")
        page.fill("#id_username", f"{SLUG}-owner")
        page.fill("#id_password", OWNER_PASSWORD)
        page.click("button[type=submit]")
        page.click("[data-testid=nav-shipping]")
        page.wait_for_selector("[data-testid=parcel-table]")

        def count(tab: str) -> str:
            return page.locator(f"[data-testid=tab-{tab}] .count").inner_text().strip()

        assert "待打单" in page.locator("[data-testid=tab-to_print]").inner_text()
        assert (count("to_print"), count("to_ship")) == ("6", "0")
        rows = page.locator("[data-testid=parcel-row]")
        assert rows.count() == 6 and set(page.locator("[data-testid=tracking-no]").all_inner_texts()) == {"—"}

        # --- 取号: a batch in the worker, progress polled, the table reloads with the numbers --------
        page.check("[data-testid=parcel-table] input[data-select-all]")
        page.click("[data-testid=action-take]")
        page.wait_for_selector("[data-testid=batch-status]", state="attached")
        page.wait_for_function(
            """() => {
                const cells = [...document.querySelectorAll('[data-testid=tracking-no]')];
                return cells.length === 6 && cells.every((c) => c.textContent.trim() !== '—');
            }""",
            timeout=60_000,
        )
        with schema_context(tenant.schema_name):
            numbers = dict(Parcel.objects.filter(pk__in=all_ids).values_list("pk", "tracking_no"))
            assert set(Parcel.objects.filter(pk__in=all_ids).values_list("status", flat=True)) == {P.NUMBERED}
        connection.set_schema_to_public()
        assert set(page.locator("[data-testid=tracking-no]").all_inner_texts()) == set(numbers.values())

        # --- 打印 with the Kuaishou component not running -----------------------------------------
        page.check("[data-testid=parcel-table] input[data-select-all]")
        page.click("[data-testid=action-print]")
        status = page.locator("[data-testid=print-status]")
        status.get_by_text("已打印 4 张，失败 2 张。").wait_for(timeout=30_000)
        text = status.inner_text()
        assert "本机未运行快手小店打印组件" in text and not_running in text, text
        page.wait_for_function(
            "() => document.querySelector('[data-testid=tab-to_ship] .count').textContent.trim() === '4'",
            timeout=15_000,
        )
        assert count("to_print") == "2"
        printed = world.print_counts()
        assert {no: printed.get(no) for pk, no in numbers.items() if pk not in ids["kuaishou"]} == {
            no: 1 for pk, no in numbers.items() if pk not in ids["kuaishou"]
        }
        assert not any(numbers[pk] in printed for pk in ids["kuaishou"])

        # --- the component runs now: 打印 again prints the rest ---------------------------------------
        settings.PRINT_COMPONENT_URLS = dict(server.print_urls)
        page.reload()
        page.wait_for_selector("[data-testid=parcel-row]")
        assert page.locator("[data-testid=parcel-row]").count() == 2
        page.check("[data-testid=parcel-table] input[data-select-all]")
        page.click("[data-testid=action-print]")
        page.locator("[data-testid=print-status]").get_by_text("已打印 2 张，失败 0 张。").wait_for(
            timeout=30_000
        )
        page.wait_for_function(
            "() => document.querySelector('[data-testid=tab-to_ship] .count').textContent.trim() === '6'",
            timeout=15_000,
        )
        assert count("to_print") == "0"
        page.click("[data-testid=tab-to_ship]")
        page.wait_for_url(re.compile(r".*tab=to_ship.*"))
        assert set(page.locator("[data-testid=tracking-no]").all_inner_texts()) == set(numbers.values())

        # the sandbox components' journal: every number printed exactly once, on its platform's component
        assert world.print_counts() == dict.fromkeys(numbers.values(), 1)
        for platform, pks in ids.items():
            counts = world.print_counts(component=platform)
            assert all(counts.get(numbers[pk]) == 1 for pk in pks), (platform, counts)

        with schema_context(tenant.schema_name):
            parcels = Parcel.objects.filter(pk__in=all_ids)
            assert {(p.status, p.print_count) for p in parcels} == {(P.PRINTED, 1)}
            records = PrintRecord.objects.filter(parcel_id__in=ids["kuaishou"]).order_by("id")
            assert [r.status for r in records] == ["failed", "failed", "printed", "printed"]
            assert all(not_running in r.error for r in records[:2])

            def wechat_told() -> bool:  # the worker's report_printed_task
                return not PrintRecord.objects.filter(
                    parcel_id__in=ids["wechat"], status="printed", reported_at__isnull=True
                ).exists()

            assert wait_until(wechat_told, timeout=30)
        connection.set_schema_to_public()
        told = world.call_counts(platform="wechat", path="/channels/ec/logistics/ewaybill/biz/order/print")
        assert sum(told.values()) == 2
    finally:
        if page is not None:
            page.close()
        server.stop()
        connection.set_schema_to_public()
        PlatformApp.objects.filter(app_key__in=app_keys).delete()
        world.close()


def test_a_dropped_component_connection_is_reopened_and_the_task_asked_for(
    tmp_path, settings, committed_tenant, browser, live_url
):
    """The Douyin component restarts while a label is on its way: the page reconnects, asks
    ``getTaskStatus`` (the restarted component answers from its journal) and records the print
    once — nothing printed twice, nothing left unknown."""
    world = World(str(tmp_path / "world.sqlite3"), seed=2028)
    seed_default_world(world, platforms=("douyin",), shops_per_platform=1, buyers=5, product_count=3)
    server = SandboxServer(world, ServerOptions(ports={"status": 0, "douyin": 0}, simulate=False, push=False))
    server.faults.set("douyin", "*", qps=0)
    for sku in world.skus(world.shops("douyin")[0].shop_id):
        world.set_stock(sku.sku_id, 10_000)
    server.start()
    app_keys = [a.app_key for a in world.apps()]
    page = None
    slug = "ship-reconnect"
    try:
        settings.CHANNEL_BASE_URLS = {"douyin": server.urls["douyin"]}
        settings.PRINT_COMPONENT_URLS = dict(server.print_urls)
        tenant = committed_tenant(slug)
        with schema_context(tenant.schema_name):
            register_tool_apps(world)
            store = connect_shop(world, "douyin", world.shops("douyin")[0].shop_id)[0]
            goods = Goods.objects.create(name="货品")
            for sku in world.skus(world.shops("douyin")[0].shop_id):
                receive_stock(
                    sku=Sku.objects.create(goods=goods, merchant_code=sku.code, name=sku.code),
                    quantity=50,
                    reason="x",
                )
            parcel = parcel_of(place(world, store, 1))
            take(parcel)
            parcel.refresh_from_db()
        connection.set_schema_to_public()
        PrinterSettings.save(world, "douyin", delay_ms=1500)  # the label is still on its way when …

        page = browser.new_page()
        base = live_url.format(host=f"{slug}.localhost")
        page.goto(base + "/accounts/login/")
        page.fill("#id_username", f"{slug}-owner")
        page.fill("#id_password", OWNER_PASSWORD)
        page.click("button[type=submit]")
        page.goto(base + "/shipping/")
        page.check("[data-testid=parcel-table] input[data-select-all]")
        page.click("[data-testid=action-print]")
        page.locator(f"#parcel-{parcel.pk} [data-print-status]").get_by_text(
            "已发送，等待打印结果…"
        ).wait_for()
        old = server.printers["douyin"]
        old.stop()  # … the component restarts (its connections close; its spool finishes the label)
        restarted = PrintComponent(world, "douyin", port=old.port)
        restarted.start()
        server.printers["douyin"] = restarted
        page.locator("[data-testid=print-status]").get_by_text("已打印 1 张，失败 0 张。").wait_for(
            timeout=30_000
        )
        assert world.print_counts() == {parcel.tracking_no: 1}
        with schema_context(tenant.schema_name):
            parcel.refresh_from_db()
            assert (parcel.status, parcel.print_count) == (P.PRINTED, 1)
            [record] = PrintRecord.objects.filter(parcel=parcel)
            assert record.status == "printed" and record.printer
        connection.set_schema_to_public()
    finally:
        if page is not None:
            page.close()
        server.stop()
        connection.set_schema_to_public()
        PlatformApp.objects.filter(app_key__in=app_keys).delete()
        world.close()

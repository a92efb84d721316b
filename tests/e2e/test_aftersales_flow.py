"""Issue 15's "must show", end to end with the sandbox over real HTTP, a real Celery worker and
committed data: on a Douyin, a Kuaishou and a WeChat shop, each after-sale type the platform
has, from the buyer's application to its end —

- refund before shipment: approved through the platform API → the line refunded, its
  reservation released;
- refund after shipment: the parcel that left gets an intercept request (Douyin: the platform's
  intercept API, with its cost), then approved;
- return and refund: approved with a return address → the buyer sends the parcel back → it is
  received by scanning its waybill at the own warehouse, inspected (good back to sellable
  stock through the ledger) → confirmed on the platform, refunded;
- exchange: the same return, the defective piece to the defective location → a replacement
  order ships → its tracking number reaches the platform's after-sale → the buyer receives it;
- reissue (补寄, Douyin and Kuaishou; WeChat has none): a zero-price order ships and its number
  reaches the platform's after-sale.

The buyer acts in the sandbox world (``World.apply_aftersale`` …); ecbao learns through the
connector (``get_after_sale`` → ``store_after_sale_version``), and everything after that runs as
in production: the ``AfterSaleChanged`` event → the Celery worker's ingestion and side effects.
After each case the ledger check passes and no refunded line keeps a reservation."""

from __future__ import annotations

import itertools

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from aftersales import actions, returns
from aftersales.models import AfterSale
from channels import services as channel_services
from channels.routing.models import PlatformApp
from inventory import selectors as stock_selectors
from inventory.models import Reservation, Sku, StockLevel
from inventory.services import default_warehouse
from logistics import manual, writeback
from logistics.models import Intercept, WriteBack
from orders import services as order_services
from orders.models import LineStatus, Order, OrderLine, OrderStatus
from sandbox.world import OrderItemSpec
from suppliers.models import Dispatch, RouteRule, RuleSet
from tenants.accounts.models import Role, User
from tests.e2e.conftest import wait_until
from tests.logistics.waybill_world import PLATFORMS, connect_shops, start_sandbox
from tests.suppliers.factories import bind, make_supplier

SLUG = "refund-e2e"
Q = AfterSale.Queue
TIMEOUT = 60
_numbers = itertools.count(1)


def place(shops, platform: str, sku_index: int = 0):
    """A paid order on the sandbox shop, ingested and approved: (world order, world line, order)."""
    shop_id = shops.shop_ids[platform]
    sku = shops.world.skus(shop_id)[sku_index]
    placed = shops.world.create_order(
        shop_id=shop_id, buyer_id=next(_numbers) % 40 + 1, items=[OrderItemSpec(sku.sku_id, 2)], pay=True
    )
    store = shops.stores[platform]
    platform_id = placed.lines[0].line_id if platform == "kuaishou" else placed.order_id
    order = order_services.ingest_channel_order(
        store=store, co=channel_services.connector_for(store).get_order(platform_id)
    )
    if order.status != OrderStatus.APPROVED:
        order = order_services.approve(order=order, actor=None)
    return placed, placed.lines[0], order


def ship(order: Order) -> str:
    """Ship the order from the own warehouse with a carrier's number; written back to the shop."""
    number = f"7731{next(_numbers):08d}"
    entry = manual.enter_tracking(order, "zto", number)
    assert entry.shipped, entry.ship_error

    def written() -> bool:
        writeback.send_due(limit=50)
        return not WriteBack.objects.exclude(status=WriteBack.Status.ACCEPTED).exists()

    assert wait_until(written, timeout=TIMEOUT, interval=0.3)
    return number


def pull(store, platform_after_sale_id: str) -> None:
    """ecbao reads the after-sale from the platform (what a push or the periodic pull does); the
    worker ingests it (AfterSaleChanged)."""
    connector = channel_services.connector_for(store)
    channel_services.store_after_sale_version(
        store=store, after_sale=connector.get_after_sale(platform_after_sale_id), source="pull"
    )


def arrived(store, platform_after_sale_id: str, queue: str) -> AfterSale:
    """Wait until the worker has ingested the after-sale into ``queue``."""

    def row():
        return AfterSale.objects.filter(store=store, platform_after_sale_id=platform_after_sale_id).first()

    assert wait_until(lambda: (r := row()) is not None and r.queue == queue, timeout=TIMEOUT, interval=0.2), (
        platform_after_sale_id,
        queue,
        row() and (row().queue, row().channel_status, row().platform_status, row().last_error),
    )
    return row()


def sent_back(shops, platform: str, kind: str):
    """A shipped order whose buyer applied for ``kind`` (return or exchange), approved through the
    platform with the shop's return address, and sent one piece back: (order, world after-sale,
    after-sale in 待收货, return waybill)."""
    store, world = shops.stores[platform], shops.world
    placed, line, order = place(shops, platform)
    ship(order)
    a = world.apply_aftersale(placed.order_id, line.line_id, kind=kind, qty=1)
    pull(store, a.aftersale_id)
    after_sale = arrived(store, a.aftersale_id, Q.PENDING)
    done(actions.approve(after_sale))
    arrived(store, a.aftersale_id, Q.AWAITING_RETURN)
    back = f"YT7{next(_numbers):09d}"
    world.buyer_return_goods(a.aftersale_id, carrier="YTO", tracking_no=back)
    pull(store, a.aftersale_id)
    after_sale = arrived(store, a.aftersale_id, Q.AWAITING_RECEIPT)
    assert after_sale.return_tracking_no == back
    return order, a, after_sale, back


def replacement_delivered(shops, store, replacement: Order, platform_after_sale_id: str) -> None:
    """The replacement order ships from the own warehouse with a carrier's number: no write-back
    (not a platform order); the number reaches the platform's after-sale (ParcelsShipped → the
    worker → ``ship_exchange``); the buyer receives it → 已完成; stock exact."""
    world = shops.world
    number = f"SF1{next(_numbers):09d}"
    entry = manual.enter_tracking(replacement, "sf", number)
    assert entry.shipped, entry.ship_error
    assert not WriteBack.objects.filter(order=replacement).exists()
    assert wait_until(
        lambda: world.get_aftersale(platform_after_sale_id).exchange_tracking_no == number,
        timeout=TIMEOUT,
        interval=0.3,
    ), world.get_aftersale(platform_after_sale_id)
    world.buyer_receive_exchange(platform_after_sale_id)
    pull(store, platform_after_sale_id)
    arrived(store, platform_after_sale_id, Q.DONE)
    stock_exact()


def explain(after_sale: AfterSale) -> dict:
    after_sale.refresh_from_db()
    return {
        "queue": after_sale.queue,
        "status": (after_sale.channel_status, after_sale.platform_status),
        "events": list(after_sale.events.values_list("kind", "message")),
        "actions": list(after_sale.actions.values_list("kind", "status", "error")),
    }


def done(action) -> None:
    assert action.status == "done", (action.kind, action.status, action.error)


def stock_exact() -> None:
    assert stock_selectors.ledger_mismatches() == []
    refunded = Reservation.objects.filter(
        source_key__in=[ln.reservation_key for ln in OrderLine.objects.filter(status=LineStatus.REFUNDED)]
    )
    assert not refunded.filter(status=Reservation.Status.ACTIVE).exists()


def on_hand(sku: Sku, warehouse) -> int:
    level = StockLevel.objects.filter(sku=sku, warehouse=warehouse).first()
    return level.on_hand if level else 0


def test_every_after_sale_type_on_every_platform_end_to_end(
    tmp_path, committed_tenant, tenant_worker, settings
):
    server = start_sandbox(tmp_path / "world.sqlite3", seed=1515)
    world = server.world
    app_keys: list[str] = []
    try:
        tenant = committed_tenant(SLUG)
        with schema_context(tenant.schema_name):
            shops = connect_shops(server)
            app_keys = [a.app_key for a in world.apps()]
            own = default_warehouse()
            for platform in PLATFORMS:
                store = shops.stores[platform]

                # --- refund before shipment
                placed, line, order = place(shops, platform)
                a = world.apply_aftersale(
                    placed.order_id, line.line_id, kind="refund_unshipped", reason="拍错了"
                )
                pull(store, a.aftersale_id)
                after_sale = arrived(store, a.aftersale_id, Q.PENDING)
                assert after_sale.order_id == order.pk and not after_sale.shipped_before
                assert Order.objects.get(pk=order.pk).is_refunding
                done(actions.approve(after_sale))
                after_sale = arrived(store, a.aftersale_id, Q.DONE)
                assert wait_until(
                    lambda o=order: not o.lines.exclude(status=LineStatus.REFUNDED).exists(), timeout=TIMEOUT
                ), list(order.lines.values_list("status", flat=True))
                stock_exact()

                # --- refund after shipment: the parcel on its way gets an intercept request
                placed, line, order = place(shops, platform)
                ship(order)
                a = world.apply_aftersale(placed.order_id, line.line_id, kind="refund_shipped", qty=1)
                pull(store, a.aftersale_id)
                after_sale = arrived(store, a.aftersale_id, Q.PENDING)
                assert after_sale.shipped_before
                assert wait_until(lambda o=order: Intercept.objects.filter(order=o).exists(), timeout=TIMEOUT)
                if platform == "douyin":  # the platform's intercept API, with its cost
                    (intercept,) = actions.intercept(after_sale)
                    done(intercept)
                    assert intercept.result.get("cost_fen", 0) > 0, intercept.result
                done(actions.approve(after_sale))
                arrived(store, a.aftersale_id, Q.DONE)
                stock_exact()

                # --- return and refund: scanned in at the own warehouse, good back to stock
                order, a, after_sale, back = sent_back(shops, platform, "return_refund")
                sku = order.lines.get().sku
                before = on_hand(sku, own)
                receipt = returns.receive(warehouse=own, tracking_no=back)
                assert receipt.after_sale_id == after_sale.pk
                returns.inspect(receipt, {sku.pk: (1, 0)})
                assert on_hand(sku, own) == before + 1
                done(actions.confirm_receipt(after_sale))
                arrived(store, a.aftersale_id, Q.DONE)
                stock_exact()

                # --- exchange: the piece comes back defective, a replacement order ships
                order, a, after_sale, back = sent_back(shops, platform, "exchange")
                sku = order.lines.get().sku
                before = on_hand(sku, own)
                receipt = returns.receive(warehouse=own, tracking_no=back)
                returns.inspect(receipt, {sku.pk: (0, 1)})
                assert on_hand(sku, own) == before  # defective: not sellable
                # the inspected return makes the replacement order (aftersales.effects.on_return_received)
                after_sale.refresh_from_db()
                replacement = Order.objects.get(pk=after_sale.reship_order_id)
                assert replacement.source_order_id == order.pk and replacement.paid_fen == 0
                assert replacement.origin == "exchange"
                assert replacement.status == OrderStatus.APPROVED, replacement.status
                replacement_delivered(shops, store, replacement, a.aftersale_id)

                # --- reissue (补寄): a zero-price order whose number reaches the after-sale
                if platform == "wechat":
                    continue  # WeChat has no reissue after-sale
                placed, line, order = place(shops, platform)
                ship(order)
                a = world.apply_aftersale(
                    placed.order_id, line.line_id, kind="reship", qty=1, reason="少发了"
                )
                pull(store, a.aftersale_id)
                after_sale = arrived(store, a.aftersale_id, Q.PENDING)
                assert after_sale.type == AfterSale.Type.RESHIP
                done(actions.approve(after_sale))

                def reissued(pk=after_sale.pk):
                    return AfterSale.objects.get(pk=pk).reship_order_id

                assert wait_until(reissued, timeout=TIMEOUT), explain(after_sale)
                replacement = Order.objects.get(pk=reissued())
                assert replacement.paid_fen == 0 and replacement.origin == "reissue"
                replacement_delivered(shops, store, replacement, a.aftersale_id)
        connection.set_schema_to_public()
    finally:
        server.stop()
        connection.set_schema_to_public()
        PlatformApp.objects.filter(app_key__in=app_keys).delete()
        world.close()


SUPPLIER_SLUG = "refund-sup-e2e"
SUPPLIER_PASSWORD = "Supplier-pass-2026"


@pytest.mark.browser
def test_a_return_routed_to_a_supplier_is_confirmed_in_the_portal(
    tmp_path, committed_tenant, tenant_worker, browser, live_url
):
    """A Douyin line routed to 杭州茶厂 ships from the supplier; the buyer returns a piece: the
    after-sale reaches the supplier's portal at once (and only that supplier's), the supplier
    confirms the return in the portal in Chromium at phone width, the merchant sees the answer
    and confirms on the platform → refunded; stock exact (the supplier's stock is what it reports)."""
    server = start_sandbox(tmp_path / "world.sqlite3", seed=1616)
    world = server.world
    app_keys: list[str] = []
    page = None
    try:
        tenant = committed_tenant(SUPPLIER_SLUG)
        with schema_context(tenant.schema_name):
            shops = connect_shops(server)
            app_keys = [a.app_key for a in world.apps()]
            store = shops.stores["douyin"]
            sku = Sku.objects.get(merchant_code=world.skus(shops.shop_ids["douyin"])[1].code)
            tea = make_supplier(code="HZTEA", name="杭州茶厂")
            other = make_supplier(code="YWBH", name="义乌百货")
            bind(tea, sku, cost_fen=1200, stock=50)
            rules = RuleSet.objects.create(version=1, status=RuleSet.Status.ACTIVE)
            RouteRule.objects.create(
                rule_set=rules, priority=10, name="茶厂的货", action=RouteRule.Action.SUPPLIER,
                supplier=tea, conditions={"skus": [sku.pk]},
            )  # fmt: skip
            for supplier, username in ((tea, "tea-user"), (other, "bazaar-user")):
                user = User(username=username, role=Role.SUPPLIER, supplier_id=supplier.pk)
                user.set_password(SUPPLIER_PASSWORD)
                user.save()
            placed, line, order = place(shops, "douyin", sku_index=1)
            assert order.lines.get().warehouse_id == tea.warehouse_id
            dispatch = Dispatch.objects.get(supplier=tea, fulfilment__lines__order_line__order=order)
            # the supplier ships (its own carrier number through the supplier-scoped path)
            entry = manual.enter_tracking(order, "yto", f"YT8{next(_numbers):09d}", warehouse=tea.warehouse)
            assert entry.shipped, entry.ship_error

            def written() -> bool:
                writeback.send_due(limit=50)
                return not WriteBack.objects.exclude(status=WriteBack.Status.ACCEPTED).exists()

            assert wait_until(written, timeout=TIMEOUT, interval=0.3)
            a = world.apply_aftersale(
                placed.order_id, line.line_id, kind="return_refund", qty=1, reason="质量问题"
            )
            pull(store, a.aftersale_id)
            after_sale = arrived(store, a.aftersale_id, Q.PENDING)
            assert (after_sale.supplier_id, after_sale.dispatch_id) == (tea.pk, dispatch.pk)
            done(actions.approve(after_sale))
            arrived(store, a.aftersale_id, Q.AWAITING_RETURN)
            back = f"YT7{next(_numbers):09d}"
            world.buyer_return_goods(a.aftersale_id, carrier="YTO", tracking_no=back)
            pull(store, a.aftersale_id)
            after_sale = arrived(store, a.aftersale_id, Q.AWAITING_RECEIPT)
            supplier_stock = on_hand(sku, tea.warehouse)
        connection.set_schema_to_public()

        base = live_url.format(host=f"{SUPPLIER_SLUG}.localhost")
        page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone

        def login(username: str) -> None:
            page.goto(base + "/accounts/login/")
            page.fill("#id_username", username)
            page.fill("#id_password", SUPPLIER_PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(base + "/supplier/**")

        login("bazaar-user")  # another supplier sees nothing of it
        page.goto(f"{base}/supplier/aftersales/?tab=all")
        assert page.locator("[data-testid=aftersale-row]").count() == 0
        assert page.goto(f"{base}/supplier/aftersales/{after_sale.pk}/").status == 404
        page.context.clear_cookies()

        login("tea-user")
        page.goto(f"{base}/supplier/aftersales/")
        row = page.locator(f"[data-testid=aftersale-row][data-after-sale-id='{after_sale.pk}']")
        assert row.locator("[data-testid=needs-receipt]").count() == 1
        page.goto(f"{base}/supplier/aftersales/{after_sale.pk}/")
        assert back in page.locator("[data-testid=return-waybill]").inner_text()
        page.check("[data-testid=answer-received]")
        page.locator("input[name^=good_]").first.fill("1")
        page.fill("[data-testid=answer-note]", "已收到，完好")
        page.click("[data-testid=answer-submit]")
        page.wait_for_selector("[data-testid=supplier-answer]")

        with schema_context(tenant.schema_name):
            after_sale = AfterSale.objects.get(pk=after_sale.pk)
            assert after_sale.supplier_answer == AfterSale.SupplierAnswer.RECEIVED
            assert after_sale.events.filter(source="supplier").exists()
            done(actions.confirm_receipt(after_sale))
            arrived(store, a.aftersale_id, Q.DONE)
            assert on_hand(sku, tea.warehouse) == supplier_stock  # the supplier reports its own stock
            stock_exact()
        connection.set_schema_to_public()
    finally:
        if page is not None:
            page.close()
        server.stop()
        connection.set_schema_to_public()
        PlatformApp.objects.filter(app_key__in=app_keys).delete()
        world.close()

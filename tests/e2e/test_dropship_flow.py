"""Issue 14's "must show", end to end with the sandbox over real HTTP and a real headless Chromium:

buyers order on a Douyin, a Kuaishou and a WeChat shop; each order has a line of a SKU that
supplier 杭州茶厂 supplies, one that 义乌百货 supplies and one the merchant keeps in its own
warehouse → the active routing rules send each line to its shipper (the route note says why) →
杭州茶厂 works in the portal in Chromium: sees its new dispatches, accepts them, enters a
tracking number for each and ships; 义乌百货's own system pushes its numbers through the
supplier API with a token; the merchant's warehouse takes platform waybills and ships the rest →
every number reaches the right shop on the right line, each write-back exactly once, and the
orders go 部分发货 → 已发货. A second order per shop, routed to 杭州茶厂, is cancelled by the
buyer before shipment: the portal shows it at once under 已取消 (请确认拦截) and the supplier
confirms the interception."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from channels import services as channel_services
from channels.routing.models import PlatformApp
from inventory import selectors as stock_selectors
from inventory.models import Sku
from logistics import services as parcel_services
from logistics import shipping, waybills, writeback
from logistics.models import Parcel, SenderAddress, WriteBack
from orders import services as order_services
from orders.models import Fulfilment, Order, OrderStatus
from sandbox.seed import seed_default_world
from sandbox.server import SandboxServer, ServerOptions
from sandbox.world import OrderItemSpec, World
from suppliers.models import Dispatch, RouteRule, RuleSet
from tenants.accounts.models import Role, User
from tests.e2e.conftest import wait_until
from tests.logistics.shipping_rig import PLATFORMS, connect_stores, prepare_shop
from tests.suppliers.factories import bind, make_supplier

pytestmark = pytest.mark.browser
SLUG = "drop-e2e"
SUPPLIER_PASSWORD = "Supplier-pass-2026"
D = Dispatch.Status


def ingest(world: World, store, placed) -> list[Order]:
    """The ecbao orders of a sandbox order (a Kuaishou order is one ecbao order per sub-order)."""
    connector = channel_services.connector_for(store)
    ids = [line.line_id for line in placed.lines] if store.platform == "kuaishou" else [placed.order_id]
    return [order_services.ingest_channel_order(store=store, co=connector.get_order(i)) for i in ids]


def refetch(world: World, store, order: Order) -> Order:
    connector = channel_services.connector_for(store)
    return order_services.ingest_channel_order(store=store, co=connector.get_order(order.platform_order_id))


def shop_numbers(world: World) -> dict[tuple[str, str], set[str]]:
    """{(world order id, line id or "*" for WeChat): tracking numbers the shop shows on it}."""
    out: dict[tuple[str, str], set[str]] = defaultdict(set)
    for platform in PLATFORMS:
        for oid, packages in world.shipped_packages(platform=platform).items():
            for package in packages:
                for item in package.items:
                    out[(oid, "*" if platform == "wechat" else item.line_id)].add(package.tracking_no)
    return out


def test_lines_routed_to_two_suppliers_and_the_own_warehouse_each_ship_and_reach_their_shop(
    tmp_path, settings, committed_tenant, browser, live_url
):
    world = World(str(tmp_path / "world.sqlite3"), seed=1414)
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
        tenant = committed_tenant(SLUG)
        with schema_context(tenant.schema_name):
            stores = connect_stores(world)
            for store in stores.values():
                prepare_shop(store)
            # Per shop: the first SKU is 杭州茶厂's, the second 义乌百货's, the third the merchant's own.
            shop_skus = {p: [s for s in world.skus(world.shops(p)[0].shop_id)][:3] for p in PLATFORMS}
            codes = [{shop_skus[p][i].code for p in PLATFORMS} for i in range(3)]
            tea = make_supplier(code="HZTEA", name="杭州茶厂")
            bazaar = make_supplier(code="YWBH", name="义乌百货")
            for supplier, group, cost in ((tea, codes[0], 1200), (bazaar, codes[1], 800)):
                for sku in Sku.objects.filter(merchant_code__in=group):
                    bind(supplier, sku, cost_fen=cost, stock=100)
                SenderAddress.objects.create(
                    name=supplier.name, mobile="0571-86660001", province="浙江省", city="杭州市",
                    district="西湖区", detail="龙井路 8 号", warehouse=supplier.warehouse,
                )  # fmt: skip
            rules = RuleSet.objects.create(version=1, status=RuleSet.Status.ACTIVE)
            for priority, supplier, group in ((10, tea, codes[0]), (20, bazaar, codes[1])):
                RouteRule.objects.create(
                    rule_set=rules, priority=priority, name=f"{supplier.name}的货",
                    action=RouteRule.Action.SUPPLIER, supplier=supplier,
                    conditions={"skus": list(Sku.objects.filter(merchant_code__in=group).values_list("pk", flat=True))},
                )  # fmt: skip
            for supplier, username in ((tea, "tea-user"), (bazaar, "bazaar-user")):
                user = User(username=username, role=Role.SUPPLIER, supplier_id=supplier.pk)
                user.set_password(SUPPLIER_PASSWORD)
                user.save()

            # --- buyers order: X = three lines (one per shipper), Y = the tea line only (cancelled later)
            placed = {}
            for platform in PLATFORMS:
                a, b, own = shop_skus[platform]
                shop_id = world.shops(platform)[0].shop_id
                x = world.create_order(
                    shop_id=shop_id, buyer_id=1,
                    items=[OrderItemSpec(a.sku_id, 1), OrderItemSpec(b.sku_id, 2), OrderItemSpec(own.sku_id, 1)],
                    pay=True,
                )  # fmt: skip
                y = world.create_order(
                    shop_id=shop_id, buyer_id=2, items=[OrderItemSpec(a.sku_id, 1)], pay=True
                )
                placed[platform] = (
                    x,
                    ingest(world, stores[platform], x),
                    y,
                    ingest(world, stores[platform], y),
                )

            # --- routed: every line to its shipper, the note says why
            for platform, (_x, x_orders, _y, _y_orders) in placed.items():
                lines = {ln.merchant_code: ln for o in x_orders for ln in o.lines.select_related("warehouse")}
                a, b, own = (lines[s.code] for s in shop_skus[platform])
                assert a.warehouse_id == tea.warehouse_id and "杭州茶厂" in a.route_note, (
                    platform,
                    a.route_note,
                )
                assert b.warehouse_id == bazaar.warehouse_id and "义乌百货" in b.route_note
                assert own.warehouse.kind == "own"
                for o in x_orders:
                    assert Order.objects.get(pk=o.pk).status == OrderStatus.APPROVED
            assert Dispatch.objects.filter(supplier=tea, status=D.NEW).count() == 6  # X and Y on 3 shops
            assert Dispatch.objects.filter(supplier=bazaar, status=D.NEW).count() == 3

            # --- the buyer cancels Y before shipment: the tea dispatch awaits the supplier's answer
            for platform, (_x, _xo, y, y_orders) in placed.items():
                world.cancel_order(y.order_id, reason="不想要了")
                for order in y_orders:
                    refetch(world, stores[platform], order)
            cancelled = list(Dispatch.objects.filter(supplier=tea, status=D.CANCELLING))
            assert len(cancelled) == 3
        connection.set_schema_to_public()

        # --- 杭州茶厂 in the portal: accept, enter a number per dispatch, ship
        page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
        base = live_url.format(host=f"{SLUG}.localhost")
        page.goto(base + "/accounts/login/")
        page.fill("#id_username", "tea-user")
        page.fill("#id_password", SUPPLIER_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(base + "/supplier/**")
        assert page.locator("[data-testid=supplier-name]").inner_text().strip() == "杭州茶厂"
        assert (
            page.locator("[data-testid=dispatch-row]").count() == 3
        )  # 新单: the cancelled ones are not there
        for box in page.locator("[data-testid=dispatch-row] input[name=ids]").all():  # cards on a phone
            box.check()
        page.click("[data-testid=action-acknowledge]")
        page.wait_for_selector("[data-testid=messages]")
        tea_numbers = {}
        with schema_context(tenant.schema_name):
            open_ids = sorted(
                Dispatch.objects.filter(supplier=tea, status=D.ACKNOWLEDGED).values_list("pk", flat=True)
            )
        connection.set_schema_to_public()
        assert len(open_ids) == 3
        for n, dispatch_id in enumerate(open_ids):
            page.goto(f"{base}/supplier/dispatches/{dispatch_id}/")
            number = f"YT88000{n:05d}"
            page.select_option("#id_carrier", "yto")
            page.fill("#id_tracking_no", number)
            page.click("[data-testid=tracking-submit]")
            page.wait_for_selector("[data-testid=dispatch-status]:has-text('已发货')")
            tea_numbers[dispatch_id] = number
        # the cancellations: shown under 已取消, confirmed as intercepted
        for dispatch in cancelled:
            page.goto(f"{base}/supplier/dispatches/{dispatch.pk}/")
            page.click("[data-testid=intercepted-yes]")
            page.wait_for_selector("[data-testid=dispatch-status]:has-text('已取消')")

        with schema_context(tenant.schema_name):
            assert set(
                Dispatch.objects.filter(pk__in=[d.pk for d in cancelled]).values_list("status", flat=True)
            ) == {D.CANCELLED}
            assert all(d.intercepted for d in Dispatch.objects.filter(pk__in=[d.pk for d in cancelled]))
            # Douyin allows per-line shipment: after the first shipper the order is 部分发货.
            douyin_x = placed["douyin"][1][0]
            assert Order.objects.get(pk=douyin_x.pk).status == OrderStatus.PARTIALLY_SHIPPED

            # --- 义乌百货 through the supplier API (its own system, a token)
            from rest_framework.test import APIClient

            from tenants.accounts.models import ApiToken

            bazaar_user = User.objects.get(username="bazaar-user")
            _token, key = ApiToken.objects.create(user=bazaar_user, expiry=None, name="erp")
        connection.set_schema_to_public()
        api = APIClient(HTTP_HOST=f"{SLUG}.localhost", HTTP_AUTHORIZATION=f"Token {key}")
        listed = api.get("/api/v1/supplier/dispatches/", {"status": "new"})
        assert listed.status_code == 200, listed.content
        rows = listed.json()["results"]
        assert len(rows) == 3
        bazaar_numbers = {}
        for n, row in enumerate(rows):
            number = f"7731000{n:05d}"
            answer = api.post(
                f"/api/v1/supplier/dispatches/{row['id']}/tracking/",
                {"carrier": "zto", "tracking_no": number},
                format="json",
                HTTP_IDEMPOTENCY_KEY=f"ship-{row['id']}",
            )
            assert answer.status_code in (200, 201), answer.content
            bazaar_numbers[row["id"]] = number

        # --- the merchant's own warehouse: platform waybills, then ship
        with schema_context(tenant.schema_name):
            parcel_services.ensure_parcels()
            own_parcels = list(
                Parcel.objects.filter(status=Parcel.Status.NEW, fulfilment__warehouse__kind="own").order_by(
                    "pk"
                )
            )
            assert len(own_parcels) == 3  # one per shop (a Kuaishou sub-order is an ecbao order of its own)
            for parcel in own_parcels:
                waybills.take_for_parcel(parcel)
            result = shipping.ship_parcels([p.pk for p in own_parcels], actor=None)
            assert not getattr(result, "refused", None), result

            def drained() -> bool:
                writeback.send_due(limit=100)
                return not WriteBack.objects.exclude(status=WriteBack.Status.ACCEPTED).exists()

            assert wait_until(drained, timeout=60, interval=0.3), list(
                WriteBack.objects.exclude(status=WriteBack.Status.ACCEPTED).values_list("status", "error")
            )

            # --- every number on the right shop and line, each write-back once
            shown = shop_numbers(world)
            for platform, (x, x_orders, _y, _yo) in placed.items():
                by_code = {}
                for order in x_orders:
                    assert Order.objects.get(pk=order.pk).status == OrderStatus.SHIPPED, platform
                    for line in order.lines.all():
                        numbers = set(
                            Parcel.objects.filter(lines__order_line=line).values_list(
                                "tracking_no", flat=True
                            )
                        )
                        assert len(numbers) == 1
                        by_code[line.merchant_code] = (order, line, numbers.pop())
                a, b, own = (by_code[s.code] for s in shop_skus[platform])
                assert a[2] in tea_numbers.values() and b[2] in bazaar_numbers.values()
                assert own[2] not in {*tea_numbers.values(), *bazaar_numbers.values()}
                for _order, line, number in (a, b, own):
                    world_oid = x.order_id
                    key = (world_oid, "*" if platform == "wechat" else line.platform_line_id)
                    assert number in shown[key], (platform, line.merchant_code, number, shown.get(key))
            actions = Counter((act.order_id, act.package.tracking_no) for act in world.ship_actions())
            assert set(actions.values()) == {1}, [k for k, n in actions.items() if n > 1]
            assert len(actions) == 9  # 3 shippers × 3 shops
            assert set(
                Dispatch.objects.filter(status__in=[D.SHIPPED]).values_list("supplier_id", flat=True)
            ) == {tea.pk, bazaar.pk}
            assert Dispatch.objects.filter(status=D.SHIPPED).count() == 6
            assert not Fulfilment.objects.filter(status=Fulfilment.Status.OPEN).exists()
            assert stock_selectors.ledger_mismatches() == []
        connection.set_schema_to_public()
    finally:
        if page is not None:
            page.close()
        server.stop()
        connection.set_schema_to_public()
        PlatformApp.objects.filter(app_key__in=app_keys).delete()
        world.close()

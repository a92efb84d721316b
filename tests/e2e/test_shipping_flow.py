"""Issue 13's "must show", end to end with the sandbox over real HTTP and a real Celery worker:

300 paid orders on a Douyin, a Kuaishou and a WeChat shop → pulled into ecbao, approved →
parcels (a merged parcel of two orders, a split order in two fulfilments, an order shipped as
two parcels) → waybill numbers for every parcel in one batch → print tasks accepted by the
sandbox's print components + one PDF of every label (each page's barcode decoded back to its
number) → scanned and verified → shipped → every shop shows ecbao's tracking numbers, the
merged, split and multi-parcel cases included; the stock ledger balances and every reservation
was consumed.

The second test runs the same loop with the sandbox failing half the waybill and ship calls for
a while — replies lost after the platform acted included — and counts in the sandbox's own
records that every parcel got exactly one number and every write-back landed exactly once."""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Sum
from django_tenants.utils import schema_context

from channels.routing.models import PlatformApp
from channels.sync import SETTLE, pull_orders
from inventory import selectors as stock_selectors
from inventory.models import Goods, Reservation, Sku, StockLevel
from inventory.services import receive_stock
from logistics import packing, printing, shipping, waybills, writeback
from logistics import services as parcel_services
from logistics.models import Parcel, SenderAddress, ShipBatch, Waybill, WriteBack
from orders import services as order_services
from orders.models import Fulfilment, Order, OrderLine, OrderStatus
from sandbox.seed import seed_default_world
from sandbox.server import SandboxServer, ServerOptions
from sandbox.world import OrderItemSpec, World
from tests.e2e.conftest import wait_until
from tests.e2e.test_channel_sync import connect, register_tool_apps
from tests.logistics.shipping_rig import ComponentClient
from tests.logistics.test_labels import decode_pages
from tests.logistics.test_writeback import SHIP_PATHS
from tests.logistics.waybill_world import EWAYBILL_PATHS

PLATFORMS = ("douyin", "kuaishou", "wechat")
SEED = 1313
ON_HAND = 5_000


class Rig:
    """A world with three shops, their orders pulled into a committed tenant of this test."""

    def __init__(self, tmp_path, settings, committed_tenant, slug: str, *, orders_per_shop: int) -> None:
        self.world = World(str(tmp_path / "world.sqlite3"), seed=SEED)
        seed_default_world(self.world, buyers=400, shops_per_platform=1)
        self.shops = {p: self.world.shops(p)[0].shop_id for p in PLATFORMS}
        self.server = SandboxServer(
            self.world,
            ServerOptions(ports=dict.fromkeys(("status", *PLATFORMS), 0), simulate=False, push=False),
        )
        for platform in PLATFORMS:
            self.server.faults.set(platform, "*", qps=0)
        self.server.start()
        settings.CHANNEL_BASE_URLS = {p: self.server.urls[p] for p in PLATFORMS}
        settings.PRINT_COMPONENT_URLS = dict(self.server.print_urls)
        self.app_keys = [a.app_key for a in self.world.apps()]
        self.tenant = committed_tenant(slug)
        self.orders_per_shop = orders_per_shop
        register_tool_apps(self.world)

    def close(self) -> None:
        self.server.stop()
        connection.set_schema_to_public()
        PlatformApp.objects.filter(app_key__in=self.app_keys).delete()
        self.world.close()

    # --- the world's buyers order; ecbao pulls ---------------------------------------------------
    def place_orders(self) -> dict[str, list[str]]:
        """``orders_per_shop`` paid orders per shop: mostly one line, some two lines or two of a SKU;
        per shop one buyer orders twice (to merge), one order has two lines of 2 (to split), one a
        line of 2 (to ship as two parcels)."""
        rng = random.Random(SEED)
        placed: dict[str, list[str]] = {}
        buyers = list(range(1, self.world.buyer_count() + 1))
        for platform, shop_id in self.shops.items():
            skus = [s for s in self.world.skus(shop_id) if s.code]
            for sku in skus:
                self.world.set_stock(sku.sku_id, 100_000)
            ids = []
            twice = rng.choice(buyers)
            for n in range(self.orders_per_shop):
                buyer = twice if n in (0, 1) else rng.choice(buyers)
                if n == 2:  # to split: two lines of 2
                    a, b = rng.sample(skus, 2)
                    items = [OrderItemSpec(a.sku_id, 2), OrderItemSpec(b.sku_id, 2)]
                elif n == 3:  # to ship as two parcels: one line of 2
                    items = [OrderItemSpec(rng.choice(skus).sku_id, 2)]
                elif n % 7 == 0:
                    a, b = rng.sample(skus, 2)
                    items = [OrderItemSpec(a.sku_id, 1), OrderItemSpec(b.sku_id, 1)]
                else:
                    items = [OrderItemSpec(rng.choice(skus).sku_id, 1 + (n % 11 == 0))]
                order = self.world.create_order(shop_id=shop_id, buyer_id=buyer, items=items, pay=True)
                ids.append(order.order_id)
            placed[platform] = ids
        return placed

    def connect_and_stock(self) -> dict[str, object]:
        stores = {}
        with schema_context(self.tenant.schema_name):
            for platform in PLATFORMS:
                stores[platform], _hook = connect(self.world, platform, self.shops[platform])
            SenderAddress.objects.create(
                name="杭州仓", mobile="0571-88880000", province="浙江省", city="杭州市",
                district="余杭区", detail="仓前街道文一西路 1 号", is_default=True,
            )  # fmt: skip
            goods = Goods.objects.create(name="发货演示货品")
            codes = {
                sku.code for shop_id in self.shops.values() for sku in self.world.skus(shop_id) if sku.code
            }
            for code in sorted(codes):
                receive_stock(
                    sku=Sku.objects.create(goods=goods, merchant_code=code, name=code),
                    quantity=ON_HAND,
                    reason="opening stock",
                )
            from inventory import sync as stock_sync

            for store in stores.values():
                stock_sync.refresh_listings(store=store)
        connection.set_schema_to_public()
        self.stores = stores
        return stores

    def pull_and_ingest(self, expected: int) -> None:
        # A pull's window ends SETTLE behind now (a version still being written is left for the
        # next pull): orders placed a moment ago come with a pull after that.
        time.sleep(SETTLE.total_seconds() + 0.5)
        with schema_context(self.tenant.schema_name):
            for store in self.stores.values():
                assert not pull_orders(store_id=store.pk).error

        def arrived() -> bool:
            with schema_context(self.tenant.schema_name):
                n = Order.objects.exclude(status=OrderStatus.PENDING_PAYMENT).count()
            connection.set_schema_to_public()
            return n >= expected

        assert wait_until(arrived, timeout=240, interval=0.3), "the pulled orders were not all ingested"

    def wait_batch(self, batch_id: int, *, timeout: float) -> bool:
        def finished() -> bool:
            with schema_context(self.tenant.schema_name):
                status = ShipBatch.objects.get(pk=batch_id).status
            connection.set_schema_to_public()
            return status in (ShipBatch.Status.DONE, ShipBatch.Status.FAILED)

        return wait_until(finished, timeout=timeout, interval=0.3)

    def drain_write_backs(self, *, timeout: float = 300) -> None:
        """Send the outbox until every write-back is accepted (the worker is kicked on commit
        too; this loop is the beat's part)."""

        def drained() -> bool:
            with schema_context(self.tenant.schema_name):
                writeback.send_due(limit=500)
                open_ = WriteBack.objects.exclude(status=WriteBack.Status.ACCEPTED).count()
            connection.set_schema_to_public()
            return open_ == 0

        assert wait_until(drained, timeout=timeout, interval=0.5), "write-backs left unsent"

    def orders_waiting_in_parcels(self):
        """Buyers order, ecbao pulls, every order is approved and waits in parcels (the merged,
        split and two-parcel shapes made), each shop's e-waybill accounts read: (owner, shapes)."""
        placed = self.place_orders()
        self.connect_and_stock()
        self.pull_and_ingest(expected_ecbao_orders(self))
        with self.in_tenant():
            user = owner(self)
            approve_all(user)
            parcel_services.ensure_parcels()
            shapes = shape_parcels(self, placed, user)
            for store in self.stores.values():
                assert waybills.sync_accounts(store) > 0
        connection.set_schema_to_public()
        return user, shapes

    def in_tenant(self):
        return schema_context(self.tenant.schema_name)


def approve_all(user) -> None:
    for order in Order.objects.filter(status__in=[OrderStatus.TO_REVIEW, OrderStatus.HELD]).order_by("id"):
        if order.status == OrderStatus.HELD:
            order = order_services.release(order=order, actor=user)
        if order.status == OrderStatus.TO_REVIEW:
            order_services.approve(order=order, actor=user)


def shape_parcels(rig: Rig, placed: dict[str, list[str]], user) -> dict[str, dict]:
    """Per shop: the first two orders (one buyer) in one fulfilment, the third split in two
    fulfilments, the fourth as two parcels. Returns what was made, to check at the end."""
    shapes: dict[str, dict] = {}
    for platform, ids in placed.items():
        store = rig.stores[platform]
        orders = {
            o.platform_order_id: o
            for o in Order.objects.filter(store=store, platform_order_id__in=ids[:4]).prefetch_related(
                "lines"
            )
        }
        if platform == "kuaishou":  # Kuaishou's ids in ecbao are the sub-order (oid) ids
            orders = {}
            for world_id in ids[:4]:
                line_ids = [line.line_id for line in rig.world.get_order(world_id).lines]
                orders[world_id] = Order.objects.filter(store=store, platform_order_id__in=line_ids).first()
        first, second, to_split, two_parcels = (orders[i] for i in ids[:4])
        f_first = Fulfilment.objects.filter(lines__order_line__order=first).distinct().get()
        f_second = Fulfilment.objects.filter(lines__order_line__order=second).distinct().get()
        if f_first.pk != f_second.pk:
            f_first = order_services.merge(orders=[first, second], actor=user)
        last = to_split.lines.order_by("id").last()  # a line of 2: one unit to a second fulfilment
        order_services.split(order=to_split, parts={last.pk: 1}, actor=user)
        (line,) = two_parcels.lines.all()
        fulfilment = Fulfilment.objects.filter(lines__order_line=line).get()
        first_box = parcel_services.open_quantities(fulfilment)  # may hold an auto-merged order too
        first_box[line.pk] -= 1
        parcel_services.plan_parcels(fulfilment=fulfilment, parcels=[first_box, {line.pk: 1}], actor=user)
        shapes[platform] = {
            "merged": (first.pk, second.pk),
            "split": to_split.pk,
            "two_parcels": two_parcels.pk,
        }
    parcel_services.ensure_parcels()
    return shapes


def check_one_number_per_parcel(rig: Rig, parcel_ids: list[int]) -> None:
    """Every parcel has one live waybill in ecbao, and the platform issued exactly one live
    number per parcel key ecbao sent (the sandbox's own record), the same number."""
    live = Waybill.objects.filter(parcel_id__in=parcel_ids, status=Waybill.Status.ISSUED)
    per_parcel = Counter(
        live.values_list("parcel_id", flat=True)
    )  # a child number (子单) is its parcel's one
    assert set(per_parcel) == set(parcel_ids) and set(per_parcel.values()) == {1}
    assert dict(Parcel.objects.filter(pk__in=parcel_ids).values_list("pk", "tracking_no")) == dict(
        live.values_list("parcel_id", "tracking_no")
    )
    ours = set(live.filter(parent__isnull=True).values_list("tracking_no", flat=True))
    platform_live = [
        w
        for waybills_of_key in rig.world.waybills_per_parcel().values()
        for w in waybills_of_key
        if w.status == "issued"
    ]
    per_key = Counter((w.shop_id, w.order_id, w.package_id) for w in platform_live)
    assert set(per_key.values()) == {1}, [k for k, n in per_key.items() if n > 1][:5]
    assert {w.tracking_no for w in platform_live} == ours


def world_order_of(rig: Rig, order: Order) -> str:
    """The world's order id of an ecbao order (Kuaishou: ecbao's order is the sub-order oid)."""
    if order.platform == "kuaishou":
        return rig.world.order_id_of_line(order.platform_order_id) or order.platform_order_id
    return order.platform_order_id


def shop_numbers_per_line(rig: Rig) -> dict[tuple[str, str], set[str]]:
    """{(world order id, line id): tracking numbers of the shop's packages that carry the line}.
    WeChat names no lines to the seller (ecbao's line key is product:sku): its lines are "*"."""
    out: dict[tuple[str, str], set[str]] = defaultdict(set)
    for platform in PLATFORMS:
        for oid, packages in rig.world.shipped_packages(platform=platform).items():
            for package in packages:
                for item in package.items:
                    out[(oid, "*" if platform == "wechat" else item.line_id)].add(package.tracking_no)
    return out


def ecbao_numbers_per_line(rig: Rig, parcels) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = defaultdict(set)
    for parcel in parcels.prefetch_related("lines__order_line__order"):
        for line in parcel.lines.all():
            order = line.order_line.order
            key = (
                world_order_of(rig, order),
                "*" if order.platform == "wechat" else line.order_line.platform_line_id,
            )
            out[key].add(parcel.tracking_no)
    return out


def check_shops_show_ecbao_tracking(rig: Rig, ids: list[int]) -> None:
    """Per order line, the shop shows exactly the tracking numbers of ecbao's parcels that carry
    it; and each write-back landed exactly once (the shop's ship actions, not folded)."""
    parcels = Parcel.objects.filter(pk__in=ids)
    assert set(parcels.values_list("status", flat=True)) == {Parcel.Status.SHIPPED}
    wanted = ecbao_numbers_per_line(rig, parcels)
    shown = shop_numbers_per_line(rig)
    assert {k: shown.get(k, set()) for k in wanted} == dict(wanted)
    actions = Counter((a.order_id, a.package.tracking_no) for a in rig.world.ship_actions())
    assert set(actions.values()) == {1}, [k for k, n in actions.items() if n > 1][:5]


def check_shapes(rig: Rig, shapes: dict[str, dict]) -> None:
    """The merged parcel's number is on both orders in the shop, the split order shows two
    numbers (one per part), the two-parcel order two numbers — each on the lines it carries."""
    shown = shop_numbers_per_line(rig)

    def numbers(order: Order) -> set[str]:
        oid = world_order_of(rig, order)
        lines = ["*"] if order.platform == "wechat" else [line.platform_line_id for line in order.lines.all()]
        return set().union(*(shown.get((oid, line), set()) for line in lines))

    for platform, shape in shapes.items():
        first, second = (Order.objects.get(pk=pk) for pk in shape["merged"])
        assert len(set(first.tracking_numbers)) == 1 and set(first.tracking_numbers) <= set(
            second.tracking_numbers
        )
        assert set(first.tracking_numbers) <= numbers(first) & numbers(second), platform
        for key in ("split", "two_parcels"):
            order = Order.objects.get(pk=shape[key])
            assert len(set(order.tracking_numbers)) == 2 and numbers(order) == set(order.tracking_numbers), (
                platform,
                key,
            )
        for order in (
            first,
            second,
            Order.objects.get(pk=shape["split"]),
            Order.objects.get(pk=shape["two_parcels"]),
        ):
            assert order.status == OrderStatus.SHIPPED, (platform, order.pk, order.status)


def check_stock(rig: Rig) -> None:
    """The ledger balances, nothing is reserved any more and on hand went down by what shipped."""
    assert stock_selectors.ledger_mismatches() == []
    assert not Reservation.objects.filter(status=Reservation.Status.ACTIVE).exists()
    assert StockLevel.objects.aggregate(r=Sum("reserved"))["r"] == 0
    shipped_units = OrderLine.objects.aggregate(n=Sum("quantity"))["n"]
    on_hand = StockLevel.objects.aggregate(n=Sum("on_hand"))["n"]
    assert on_hand == Sku.objects.count() * ON_HAND - shipped_units


def expected_ecbao_orders(rig: Rig) -> int:
    from tests.e2e.test_channel_sync import expected_orders

    return sum(len(expected_orders(rig.world, p, rig.shops[p])) for p in PLATFORMS)


def owner(rig: Rig):
    return get_user_model().objects.get(username=f"{rig.tenant.slug}-owner")


def print_all(rig: Rig, ids: list[int], user) -> int:
    """Print every parcel through its platform's sandbox print component, as the page does:
    hand the jobs over, wait for each task's result, report it. Returns the documents sent."""
    jobs = printing.print_jobs(ids, actor=user)
    refused = [j for j in jobs if "error" in j]
    assert not refused, refused[:5]
    for platform in PLATFORMS:
        mine = [j for j in jobs if j["platform"] == platform]
        with ComponentClient(rig.server.print_urls[platform], mine[0]["dialect"]) as client:
            answers = client.send(mine)
            assert all(a.get("status") == "success" or a.get("errcode") == 0 for a in answers), answers[:3]
            for job in mine:
                ok, error, printer = client.result(job["task_id"])
                printing.print_result(job["task_id"], ok, error, printer=printer)
    return len(jobs)


def verify_all(ids: list[int], user) -> int:
    """Scan-to-verify every parcel: its waybill, one wrong item (refused), then each unit."""
    refused = 0
    for parcel in Parcel.objects.filter(pk__in=ids).order_by("pk"):
        ticket = packing.verify_lookup(parcel.tracking_no)
        assert ticket.parcel.pk == parcel.pk
        wrong = packing.verify_scan(parcel, "NOT-IN-THIS-PARCEL")
        refused += not wrong.ok
        for line in ticket.lines:
            for _ in range(line.quantity):
                assert packing.verify_scan(parcel, sorted(line.codes())[0]).ok
        packing.verify_done(parcel, actor=user, weight_g=500)
    return refused


def test_300_orders_on_three_shops_are_numbered_printed_verified_shipped_and_tracked_back(
    tmp_path, settings, committed_tenant, tenant_worker
):
    rig = Rig(tmp_path, settings, committed_tenant, "ship-e2e", orders_per_shop=100)
    try:
        user, shapes = rig.orders_waiting_in_parcels()
        with rig.in_tenant():
            ids = sorted(Parcel.objects.filter(status=Parcel.Status.NEW).values_list("pk", flat=True))
            orders_in_parcels = Order.objects.filter(lines__parcel_lines__parcel__in=ids).distinct().count()
            assert orders_in_parcels >= 300
            batch = waybills.start_take(ids, actor=user)  # --- one batch: every parcel of the 待打单 tab
        connection.set_schema_to_public()
        assert rig.wait_batch(batch.pk, timeout=300)
        with rig.in_tenant():
            batch = ShipBatch.objects.get(pk=batch.pk)
            assert (batch.done, batch.failed) == (len(ids), 0), waybills.batch_progress(batch)["errors"][:5]
            check_one_number_per_parcel(rig, ids)
            documents = print_all(rig, ids, user)  # --- the print components
            not_printed = Parcel.objects.filter(pk__in=ids).exclude(status=Parcel.Status.PRINTED)
            assert not not_printed.exists(), [
                (p.pk, p.seq, p.count, p.status, list(p.prints.values_list("status", "error", "task_id")))
                for p in not_printed
            ]
            numbers = set(
                Waybill.objects.filter(parcel_id__in=ids, status="issued").values_list(
                    "tracking_no", flat=True
                )
            )
            printed = rig.world.print_counts()
            assert set(printed) == numbers and documents == len(numbers)
            pdf_batch = printing.start_pdf(ids, actor=user)  # --- one PDF of every label
        connection.set_schema_to_public()
        assert rig.wait_batch(pdf_batch.pk, timeout=300)
        with rig.in_tenant():
            pdf_batch = ShipBatch.objects.get(pk=pdf_batch.pk)
            assert pdf_batch.status == ShipBatch.Status.DONE, pdf_batch.error
            with pdf_batch.result_file.open("rb") as fh:
                pages = decode_pages(fh.read())
            expected_pages = [
                [t]
                for t in Parcel.objects.filter(pk__in=ids)
                .order_by("pk")
                .values_list("tracking_no", flat=True)
            ]
            assert len(pages) == len(ids) and sorted(pages) == sorted(expected_pages)
            refused = verify_all(ids, user)  # --- scan to verify
            assert refused == len(ids)
            assert Parcel.objects.filter(pk__in=ids, status=Parcel.Status.VERIFIED).count() == len(ids)
            result = shipping.ship_parcels(ids, actor=user)  # --- ship
            assert result.ok and sorted(result.shipped) == ids, list(result.errors.items())[:5]
        connection.set_schema_to_public()
        rig.drain_write_backs()
        with rig.in_tenant():
            check_shops_show_ecbao_tracking(rig, ids)
            check_shapes(rig, shapes)
            check_stock(rig)
            stats = {
                "parcels": len(ids),
                "orders": orders_in_parcels,
                "documents_printed": documents,
                "pdf_pages": len(pages),
                "write_backs": WriteBack.objects.count(),
            }
        print(stats)
    finally:
        rig.close()


# Half the calls fail: refusals, gateway errors, and replies lost after the platform acted
# (a timeout or a 502/504 although the number was issued / the shipment recorded).
HALF_FAILING = {
    "error_rate": 0.1,
    "http_5xx_rate": 0.1,
    "lost_reply_rate": 0.15,
    "lost_reply_5xx_rate": 0.15,
    "timeout_seconds": 0.8,
    "qps": 0,
}


def test_with_half_the_waybill_and_ship_calls_failing_every_parcel_has_one_number_and_each_write_back_lands_once(
    tmp_path, settings, committed_tenant, tenant_worker
):
    rig = Rig(tmp_path, settings, committed_tenant, "lossy-e2e", orders_per_shop=12)
    try:
        user, _shapes = rig.orders_waiting_in_parcels()
        with rig.in_tenant():
            ids = sorted(Parcel.objects.filter(status=Parcel.Status.NEW).values_list("pk", flat=True))
        connection.set_schema_to_public()
        paths = {p: (EWAYBILL_PATHS[p], *SHIP_PATHS[p]) for p in PLATFORMS}
        for platform, platform_paths in paths.items():
            for path in platform_paths:
                rig.server.faults.set(platform, path, **HALF_FAILING)
        # --- a while under faults: a batch, then retries of what failed, ship, send
        batches = 0
        for _ in range(3):
            with rig.in_tenant():
                left = list(
                    Parcel.objects.filter(pk__in=ids, status=Parcel.Status.NEW).values_list("pk", flat=True)
                )
                batch = waybills.start_take(left, actor=user) if left else None
            connection.set_schema_to_public()
            if batch is None:
                break
            batches += 1
            assert rig.wait_batch(batch.pk, timeout=300)
        with rig.in_tenant():
            numbered = list(
                Parcel.objects.filter(pk__in=ids, status=Parcel.Status.NUMBERED).values_list("pk", flat=True)
            )
            assert shipping.ship_parcels(numbered, actor=user).ok
            for _ in range(4):
                writeback.send_due(limit=500)
            under_faults = WriteBack.objects.exclude(status=WriteBack.Status.ACCEPTED).count()
        connection.set_schema_to_public()
        faults_seen = {
            kind: {
                "lost_replies": sum(
                    1 for p in PLATFORMS for path in kind_paths[p]
                    for c in rig.world.calls(platform=p, path=path, ok=True) if c.fault
                ),
                "failed": sum(len(rig.world.calls(platform=p, path=path, ok=False)) for p in PLATFORMS for path in kind_paths[p]),
            }
            for kind, kind_paths in (("waybill", {p: (EWAYBILL_PATHS[p],) for p in PLATFORMS}), ("ship", SHIP_PATHS))
        }  # fmt: skip
        # --- the platforms recover: finish what is left
        for platform in PLATFORMS:
            rig.server.faults.clear(platform)
            rig.server.faults.set(platform, "*", qps=0)
        with rig.in_tenant():
            left = list(
                Parcel.objects.filter(pk__in=ids, status=Parcel.Status.NEW).values_list("pk", flat=True)
            )
            batch = waybills.start_take(left, actor=user) if left else None
        connection.set_schema_to_public()
        if batch is not None:
            assert rig.wait_batch(batch.pk, timeout=300)
        with rig.in_tenant():
            rest = list(
                Parcel.objects.filter(pk__in=ids, status=Parcel.Status.NUMBERED).values_list("pk", flat=True)
            )
            assert shipping.ship_parcels(rest, actor=user).ok
        connection.set_schema_to_public()
        rig.drain_write_backs()
        with rig.in_tenant():
            check_one_number_per_parcel(rig, ids)
            check_shops_show_ecbao_tracking(rig, ids)  # each (order, number) shipped exactly once
            assert WriteBack.objects.filter(attempts__gt=1).exists()  # the faults did bite the write-backs
            check_stock(rig)
        # On both kinds of call, replies were lost after the platform acted, and calls failed.
        assert all(n > 0 for seen in faults_seen.values() for n in seen.values()), faults_seen
        print({"parcels": len(ids), "batches_under_faults": batches, "faults": faults_seen,
               "write_backs_open_under_faults": under_faults})  # fmt: skip
    finally:
        rig.close()

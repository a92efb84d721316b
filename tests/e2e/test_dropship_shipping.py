"""Issue 14's "must show": the lines of ONE order routed to two suppliers and the own warehouse
each ship on their own, through the same logistics services (the suppliers' calls scoped to
their warehouse), each write-back lands once in the sandbox, and the order becomes 部分发货 after
the first shipment and 已发货 after the last.

The platform is Douyin: its write-back ships per sku order (line) and quantity
(``/order/logisticsAddMultiPack``, one ``pack`` per parcel, ``request_id`` as the idempotency
key), so a partial shipment is a first-class state there (part_shipped). Kuaishou cannot show
this (one line per order; its split-deliver is per oid) and WeChat names no lines back to the
seller; tests/logistics/test_writeback.py covers their write-backs.

Routing is the merchant's real rule set (suppliers.rules / suppliers.router, registered at start-up):
one SKU to each supplier, the third line to the own warehouse. Sandbox over real HTTP (e-waybill,
write-back, order reads), the tenant's real schema; the three shippers:

- supplier A takes a waybill in a batch (``waybills.start_take(..., warehouse=A)``), prints
  it through the print-component path (``printing.print_jobs``/``print_result``, scoped) and
  ships (``shipping.ship_parcels(..., warehouse=A)``);
- supplier B ships outside ecbao and imports the number (``manual.import_xlsx(..., warehouse=B)``);
- the merchant takes the whole 待打单 tab first (its own parcel only, while the suppliers' still
  wait) and ships last.
"""

from __future__ import annotations

from collections import Counter

import pytest

from logistics import printing, shipping, waybills, writeback
from logistics import services as parcel_services
from logistics.models import CarrierRule, Parcel, SenderAddress, WriteBack
from orders.models import LineStatus, OrderStatus
from suppliers import routing, rules
from tests.logistics import test_waybills
from tests.logistics.test_manual import workbook
from tests.logistics.waybill_world import connect_shops, world_order_id
from tests.suppliers.factories import bind, make_supplier

pytestmark = pytest.mark.django_db
P = Parcel.Status

server = test_waybills.server  # the same fixture: the sandbox over real HTTP


def test_one_order_ships_from_two_suppliers_and_the_own_warehouse(server, in_alpha, settings):
    shops = connect_shops(server)
    world, store = shops.world, shops.stores["douyin"]
    codes = [s.code for s in world.skus(shops.shop_ids["douyin"])][:3]
    assert len(set(codes)) == 3
    from inventory.models import Sku

    a, b = make_supplier("A", name="杭州茶厂"), make_supplier("B", name="义乌袜厂")
    bind(a, Sku.objects.get(merchant_code=codes[1]), stock=40)
    bind(b, Sku.objects.get(merchant_code=codes[2]), stock=40)
    SenderAddress.objects.create(name="茶厂发货部", mobile="0571-80000001", province="浙江省", city="杭州市",
                                 detail="茶园路 8 号", warehouse=a.warehouse)  # fmt: skip
    CarrierRule.objects.create(name="抖店中通", priority=1, store_ids=[store.pk], carrier="zto")
    # the merchant's routing rules (分流, suppliers.rules): one SKU to each supplier, the rest own
    draft = rules.create_draft(note="dropship e2e")
    for sku_code, sup in ((codes[1], a), (codes[2], b)):
        rules.add_rule(rule_set=draft, name=f"{sku_code} → {sup.name}", action=routing.SUPPLIER,
                       conditions={"skus": [Sku.objects.get(merchant_code=sku_code).pk]}, supplier=sup)  # fmt: skip
    rules.activate(rule_set=draft)
    order = shops.order("douyin", 1, 1, 1)  # three lines: codes[0], codes[1], codes[2]
    routed = {ln.merchant_code: (ln.warehouse_id, ln.route_rule_id is not None) for ln in order.lines.all()}
    assert routed[codes[1]] == (a.warehouse_id, True) and routed[codes[2]] == (b.warehouse_id, True)
    assert order.status == OrderStatus.APPROVED
    parcel_services.ensure_parcels()
    parcels = {p.fulfilment.warehouse_id: p for p in Parcel.objects.select_related("fulfilment")}
    assert len(parcels) == 3
    own = next(p for wid, p in parcels.items() if wid not in (a.warehouse_id, b.warehouse_id))
    pa, pb = parcels[a.warehouse_id], parcels[b.warehouse_id]
    line_of = {p.pk: p.lines.get().order_line for p in (own, pa, pb)}
    assert [line_of[p.pk].merchant_code for p in (own, pa, pb)] == codes
    oid = world_order_id(shops, order)

    def shop_view() -> tuple[str, Counter, int]:
        """The shop's order status, its packages per line, and how many ship actions it accepted."""
        packages = world.shipped_packages(order_id=oid).get(oid, [])
        per_line = Counter(item.line_id for package in packages for item in package.items)
        return world.get_order(oid).status, per_line, len(world.ship_actions(order_id=oid))

    def drain() -> None:
        writeback.send_due(limit=50)
        assert set(WriteBack.objects.values_list("status", flat=True)) == {WriteBack.Status.ACCEPTED}

    # 0. the merchant takes numbers for the whole 待打单 tab: the own parcel only, never a supplier's
    batch = waybills.start_take_tab()
    assert batch.params["parcel_ids"] == [own.pk]
    waybills.run_take_batch(batch.pk)
    assert Parcel.objects.get(pk=own.pk).status == P.NUMBERED

    # 1. supplier A: a waybill batch, the print component's path, ship — all scoped to A
    batch = waybills.start_take([pa.pk], warehouse=a.warehouse)
    waybills.run_take_batch(batch.pk)
    pa.refresh_from_db()
    assert pa.status == P.NUMBERED and batch.params["warehouse_id"] == a.warehouse_id
    [job] = printing.print_jobs([pa.pk], warehouse=a.warehouse)
    assert job["tracking_no"] == pa.tracking_no and "document" in job
    printing.print_result(job["task_id"], True, printer="茶厂打印机", warehouse=a.warehouse)
    result = shipping.ship_parcels([pa.pk], warehouse=a.warehouse)
    assert result.shipped == [pa.pk] and len(result.write_backs) == 1
    drain()
    order.refresh_from_db()
    assert order.status == OrderStatus.PARTIALLY_SHIPPED
    a_line = line_of[pa.pk].platform_line_id
    assert shop_view() == ("part_shipped", Counter({a_line: 1}), 1)

    # 2. supplier B: shipped outside ecbao, the number imported (an own order row is refused)
    report = manual_import(b, order.platform_order_id)
    assert (report.entered, report.shipped, report.error_count) == (1, 1, 0)
    pb.refresh_from_db()
    assert pb.status == P.SHIPPED and pb.manual
    drain()
    order.refresh_from_db()
    assert order.status == OrderStatus.PARTIALLY_SHIPPED
    b_line = line_of[pb.pk].platform_line_id
    assert shop_view() == ("part_shipped", Counter({a_line: 1, b_line: 1}), 2)

    # 3. the merchant ships the own parcel (numbered at the start)
    result = shipping.ship_parcels([own.pk])
    assert result.shipped == [own.pk]
    drain()
    order.refresh_from_db()
    assert order.status == OrderStatus.SHIPPED
    assert set(order.lines.values_list("status", flat=True)) == {LineStatus.SHIPPED}
    own_line = line_of[own.pk].platform_line_id
    assert shop_view() == ("shipped", Counter({own_line: 1, a_line: 1, b_line: 1}), 3)

    # each parcel's number is on its own line only, and sending again changes nothing
    packages = world.shipped_packages(order_id=oid)[oid]
    numbers = {item.line_id: package.tracking_no for package in packages for item in package.items}
    for parcel in (own, pa, pb):
        parcel.refresh_from_db()
        assert numbers[line_of[parcel.pk].platform_line_id] == parcel.tracking_no
    assert WriteBack.objects.count() == 3
    writeback.send_due(limit=50)
    assert shop_view()[2] == 3


def manual_import(supplier, platform_order_id: str):
    from logistics import manual

    return manual.import_xlsx(
        workbook([(platform_order_id, "zto", "75312345678901")]), warehouse=supplier.warehouse
    )

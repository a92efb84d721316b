"""Pick lists (summed per item, walked by location) and scan-to-verify (wrong items and too many
refused, progress kept in the database, VERIFIED once complete, idempotent)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from inventory import services as stock
from inventory.models import ComboComponent, Goods, Sku, Warehouse
from logistics import packing, services
from logistics.models import Parcel, VerifyScan, Waybill
from orders import services as orders
from orders.models import Order, OrderEvent
from tests.orders.conftest import channel_order, line, receiver

P = Parcel.Status


def ship_ready(store, oid, *lines, tracking_no, status=P.PRINTED, phone=None) -> Parcel:
    """An approved order's default parcel with a waybill number (as waybills/print would leave it)."""
    order = orders.ingest_channel_order(
        store=store, co=channel_order(oid=oid, lines=lines, receiver=receiver(phone or f"idx-{oid}"))
    )
    services.ensure_parcels()
    parcel = (
        Parcel.objects.filter(lines__order_line__order=order).exclude(status=P.CANCELLED).distinct().get()
    )
    Parcel.objects.filter(pk=parcel.pk).update(tracking_no=tracking_no, carrier="zto", status=status)
    parcel.refresh_from_db()
    return parcel


@pytest.fixture
def packer(in_alpha):
    return get_user_model().objects.create_user(username="packer", password="x")


@pytest.fixture
def shelf(skus):
    """Locations in the default warehouse (another warehouse has its own for CAP-RED), a barcode,
    and a combination of 1 × TS-WHT-L + 2 × CAP-RED."""
    main = stock.default_warehouse()
    stock.set_location(sku=skus["TS-WHT-L"], location="A-10")
    stock.set_location(sku=skus["CAP-RED"], location="A-2")
    stock.set_location(
        sku=skus["CAP-RED"], warehouse=Warehouse.objects.create(name="二仓", code="W2"), location="Z-9"
    )
    Sku.objects.filter(pk=skus["CAP-RED"].pk).update(barcode="6901234567892")
    combo = Sku.objects.create(
        goods=Goods.objects.create(name="套装"), merchant_code="SET-1", name="T恤帽子套装", is_combo=True
    )
    ComboComponent.objects.create(combo=combo, component=skus["TS-WHT-L"], quantity=1)
    ComboComponent.objects.create(combo=combo, component=skus["CAP-RED"], quantity=2)
    return main


# --- pick list ------------------------------------------------------------------------------------------


def test_pick_list_sums_per_item_and_walks_the_locations(store, skus, shelf):
    p1 = ship_ready(store, "PK1", line(1, "TS-WHT-L", qty=2), line(2, "CAP-RED", qty=1), tracking_no="ZT1")
    p2 = ship_ready(store, "PK2", line(1, "TS-WHT-L", qty=1), tracking_no="ZT2")
    p3 = ship_ready(store, "PK3", line(1, "SET-1", qty=1), line(2, "TS-BLK-M", qty=1), tracking_no="ZT3")
    rows = packing.pick_list([p1.pk, p2.pk, p3.pk])
    got = [(r.location, r.merchant_code, r.quantity, r.parcels) for r in rows]
    assert got == [
        ("A-2", "CAP-RED", 3, ["ZT1", "ZT3"]),  # 1 + the combination's 2; "A-2" before "A-10"
        ("A-10", "TS-WHT-L", 4, ["ZT1", "ZT2", "ZT3"]),  # 2 + 1 + the combination's 1
        ("", "TS-BLK-M", 1, ["ZT3"]),  # no location: last
    ]
    assert rows[0].barcode == "6901234567892" and rows[0].warehouse == shelf.name
    assert sum(r.quantity for r in rows) == 8


def test_pick_list_leaves_off_shipped_and_cancelled_parcels_and_reads_a_batch(store, skus, shelf):
    from logistics.models import ShipBatch

    p1 = ship_ready(store, "PK4", line(1, "TS-WHT-L", qty=2), tracking_no="ZT4")
    p2 = ship_ready(store, "PK5", line(1, "CAP-RED", qty=1), tracking_no="ZT5")
    Parcel.objects.filter(pk=p2.pk).update(status=P.SHIPPED)
    result = packing.build_pick_list([p1.pk, p2.pk, 999999])
    assert [(r.merchant_code, r.quantity) for r in result.rows] == [("TS-WHT-L", 2)]
    assert result.parcels == 1 and [pk for pk, _why in result.skipped] == [p2.pk, 999999]
    batch = ShipBatch.objects.create(kind=ShipBatch.Kind.PRINT, params={"parcel_ids": [p1.pk]})
    Parcel.objects.filter(pk=p2.pk).update(batch=batch)
    assert packing.batch_parcel_ids(batch) == sorted([p1.pk, p2.pk])


def test_location_sort_is_natural_with_empty_last():
    locs = ["B-1", "", "A-10", "a-2", "A-2-10", "A-2-9"]
    assert sorted(locs, key=packing.location_sort_key) == ["a-2", "A-2-9", "A-2-10", "A-10", "B-1", ""]


# --- verify lookup --------------------------------------------------------------------------------------


def test_lookup_by_waybill_and_child_number(store, skus, shelf):
    parcel = ship_ready(store, "VL1", line(1, "TS-WHT-L", qty=2), tracking_no="ZT100", status=P.NUMBERED)
    tk = packing.verify_lookup(" zt100\n")  # scanner noise and case are forgiven
    assert tk.parcel.pk == parcel.pk and tk.orders == ["VL1"]
    assert [(x.merchant_code, x.location, x.quantity, x.scanned) for x in tk.lines] == [
        ("TS-WHT-L", "A-10", 2, 0)
    ]
    main = Waybill.objects.create(
        parcel=parcel, store=store, key="k-main", carrier="zto", tracking_no="ZT100", status="issued"
    )
    Waybill.objects.create(
        parcel=parcel,
        store=store,
        key="k-child",
        carrier="zto",
        tracking_no="ZT100-2",
        parent=main,
        status="issued",
    )
    assert packing.verify_lookup("ZT100-2").parcel.pk == parcel.pk


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"status": P.SHIPPED}, "已发货"),
        ({"status": P.CANCELLED}, "已取消"),
        ({"status": P.NEW}, "还没有运单号"),
    ],
)
def test_lookup_refuses_parcels_that_may_not_be_packed(store, skus, change, message):
    parcel = ship_ready(store, "VL2", line(1), tracking_no="ZT200")
    Parcel.objects.filter(pk=parcel.pk).update(**change)
    with pytest.raises(packing.VerifyRefused, match=message):
        packing.verify_lookup("ZT200")


def test_lookup_refuses_unknown_numbers_and_refunding_orders(store, skus):
    with pytest.raises(packing.VerifyRefused, match="没有运单号为 NOPE 的包裹"):
        packing.verify_lookup("NOPE")
    with pytest.raises(packing.VerifyRefused, match="请先扫描运单号"):
        packing.verify_lookup("  ")
    parcel = ship_ready(store, "VL3", line(1), tracking_no="ZT300")
    Order.objects.filter(platform_order_id="VL3").update(is_refunding=True)
    with pytest.raises(packing.VerifyRefused, match="订单 VL3 正在退款"):
        packing.verify_lookup("ZT300")
    with pytest.raises(packing.VerifyRefused, match="正在退款"):
        packing.verify_done(parcel, actor=None)


def test_a_number_taken_while_the_parcel_is_still_new_is_refused(store, skus):
    """Unshipped and not numbered: the waybill row exists (child or a number not yet on the parcel)."""
    parcel = ship_ready(store, "VL4", line(1), tracking_no="", status=P.NEW)
    Waybill.objects.create(
        parcel=parcel, store=store, key="k4", carrier="zto", tracking_no="ZT400", status="issued"
    )
    with pytest.raises(packing.VerifyRefused, match="还没有运单号"):
        packing.verify_lookup("ZT400")


# --- verify scans ---------------------------------------------------------------------------------------


def test_wrong_items_and_too_many_are_refused_and_nothing_counts(store, skus, shelf, packer):
    parcel = ship_ready(
        store, "VS1", line(1, "TS-WHT-L", qty=2), line(2, "CAP-RED", qty=1), tracking_no="ZT500"
    )
    ship_ready(store, "VS1b", line(1, "TS-BLK-M"), tracking_no="ZT501")
    wrong = packing.verify_scan(parcel, "TS-BLK-M", actor=packer)
    assert not wrong.ok and "商品错误" in wrong.message and "TS-BLK-M" in wrong.message
    unknown = packing.verify_scan(parcel, "123456", actor=packer)
    assert not unknown.ok and "未知条码 123456" in unknown.message
    other = packing.verify_scan(parcel, "ZT501", actor=packer)
    assert not other.ok and "另一个包裹的运单号" in other.message
    assert packing.verify_scan(parcel, "TS-WHT-L", actor=packer).ok
    assert packing.verify_scan(parcel, "ts-wht-l", actor=packer).ok  # case forgiven
    too_many = packing.verify_scan(parcel, "TS-WHT-L", actor=packer)
    assert not too_many.ok and "数量超出" in too_many.message
    tk = packing.verify_lookup("ZT500")  # a reload sees the same progress
    assert [(x.merchant_code, x.scanned, x.quantity) for x in tk.lines] == [
        ("CAP-RED", 0, 1),
        ("TS-WHT-L", 2, 2),
    ]
    assert not tk.complete
    with pytest.raises(packing.VerifyRefused, match="CAP-RED 0/1"):
        packing.verify_done(parcel, actor=packer)
    parcel.refresh_from_db()
    assert parcel.status == P.PRINTED and parcel.verified_at is None
    assert VerifyScan.objects.filter(parcel=parcel, accepted=False).count() == 4  # refusals are on record
    last = packing.verify_scan(parcel, "6901234567892", actor=packer)  # CAP-RED by its barcode
    assert last.ok and last.ticket.complete and "全部扫描" in last.message


def test_verify_done_marks_verified_once_with_weight(store, skus, shelf, packer):
    parcel = ship_ready(store, "VD1", line(1, "SET-1", qty=1), tracking_no="ZT600", status=P.NUMBERED)
    for code in ("TS-WHT-L", "CAP-RED", "CAP-RED"):  # a combination is verified by its components
        assert packing.verify_scan(parcel, code, actor=packer).ok
    with pytest.raises(packing.VerifyRefused, match="整数克"):
        packing.verify_done(parcel, actor=packer, weight_g="1.2kg")
    with pytest.raises(packing.VerifyRefused, match="1 到 100000"):
        packing.verify_done(parcel, actor=packer, weight_g=250_000)
    done = packing.verify_done(parcel, actor=packer, weight_g="480")
    assert (done.status, done.weight_g, done.verified_by) == (P.VERIFIED, 480, packer)
    first_at = done.verified_at
    again = packing.verify_done(parcel, actor=packer)
    assert (again.status, again.verified_at, again.weight_g) == (P.VERIFIED, first_at, 480)
    assert OrderEvent.objects.filter(kind="parcel_verified", order__platform_order_id="VD1").count() == 1
    late = packing.verify_scan(parcel, "CAP-RED", actor=packer)
    assert not late.ok and "已验货" in late.message
    tk = packing.verify_lookup("ZT600")  # a verified parcel is shown as it is, not refused
    assert tk.verified and tk.complete


def test_a_repeated_scan_request_counts_once_and_reset_starts_again(store, skus, shelf, packer):
    parcel = ship_ready(store, "VR1", line(1, "TS-WHT-L", qty=3), tracking_no="ZT700")
    first = packing.verify_scan(parcel, "TS-WHT-L", actor=packer, client_id="scan-1")
    repeat = packing.verify_scan(parcel, "TS-WHT-L", actor=packer, client_id="scan-1")
    assert first.ok and repeat.ok and repeat.ticket.scanned == 1
    assert packing.verify_scan(parcel, "TS-WHT-L", actor=packer, client_id="scan-2").ticket.scanned == 2
    assert packing.verify_reset(parcel).scanned == 0
    assert VerifyScan.objects.filter(parcel=parcel).count() == 2  # the record stays
    assert packing.verify_scan(parcel, "TS-WHT-L", client_id="scan-3").ticket.scanned == 1


def test_scans_into_a_parcel_that_left_the_bench_are_refused(store, skus, packer):
    parcel = ship_ready(store, "VX1", line(1), tracking_no="ZT800")
    Parcel.objects.filter(pk=parcel.pk).update(status=P.SHIPPED)
    result = packing.verify_scan(parcel, "TS-WHT-L", actor=packer)
    assert not result.ok and "已发货" in result.message
    assert not VerifyScan.objects.filter(parcel=parcel, accepted=True).exists()


def test_pick_list_queries_do_not_grow_with_parcels(store, skus, shelf):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for code in ("TS-WHT-L", "CAP-RED"):
        stock.receive_stock(sku=skus[code], quantity=20, reason="more")
    made = [
        ship_ready(store, f"Q{i}", line(1, "TS-WHT-L"), line(2, "SET-1"), tracking_no=f"ZQ{i}")
        for i in range(6)
    ]

    def queries(parcel_ids) -> int:
        with CaptureQueriesContext(connection) as ctx:
            rows = packing.pick_list(parcel_ids)
        assert rows
        return len(ctx.captured_queries)

    assert queries([p.pk for p in made[:2]]) == queries([p.pk for p in made])
    assert sum(r.quantity for r in packing.pick_list([p.pk for p in made])) == 6 * 4


def test_an_item_is_counted_by_hand_only_with_a_reason(store, skus, shelf, packer):
    parcel = ship_ready(
        store, "BH1", line(1, "TS-WHT-L", qty=1), line(2, "CAP-RED", qty=1), tracking_no="ZT900"
    )
    key = f"sku:{skus['CAP-RED'].pk}"
    silent = packing.verify_by_hand(parcel, key, reason=" ", actor=packer)
    assert not silent.ok and "需要填写原因" in silent.message
    stranger = packing.verify_by_hand(parcel, f"sku:{skus['TS-BLK-M'].pk}", reason="条码破损", actor=packer)
    assert not stranger.ok and "没有这个商品" in stranger.message
    counted = packing.verify_by_hand(parcel, key, reason="条码破损", actor=packer)
    assert counted.ok and "手动确认：条码破损" in counted.message
    again = packing.verify_by_hand(parcel, key, reason="条码破损", actor=packer)
    assert not again.ok and "数量超出" in again.message
    assert packing.verify_scan(parcel, "(by hand)").ok is False  # a scanner cannot claim it
    assert packing.verify_scan(parcel, "TS-WHT-L").ticket.complete
    assert packing.verify_done(parcel, actor=packer).status == P.VERIFIED
    record = VerifyScan.objects.get(parcel=parcel, accepted=True, code="(by hand)")
    assert record.actor == packer and "条码破损" in record.message

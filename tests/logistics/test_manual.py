"""Ship by hand: tracking numbers entered one at a time or imported from xlsx (row-level errors,
nothing lost, re-import idempotent), and the page with its template and error workbook."""

from __future__ import annotations

from io import BytesIO

import pytest
from django.core.exceptions import ValidationError
from openpyxl import Workbook, load_workbook

from inventory.models import StockLevel
from logistics import manual, services
from logistics.models import Parcel, ShipBatch, Waybill, WriteBack
from orders import services as orders
from orders.models import OrderEvent, OrderStatus
from tenants.accounts.models import Role
from tests.conftest import make_user
from tests.orders.conftest import channel_order, line, receiver

P = Parcel.Status
PASSWORD = "Staff-pass-2026"


def ingest(store, oid: str, **kw):
    order = orders.ingest_channel_order(
        store=store, co=channel_order(oid=oid, receiver=receiver(f"r-{oid}"), **kw)
    )
    services.ensure_parcels()
    return order


def parcels_of(order) -> list[Parcel]:
    return list(
        Parcel.objects.filter(lines__order_line__order=order)
        .exclude(status=P.CANCELLED)
        .distinct()
        .order_by("seq")
    )


def workbook(rows, header=("平台订单号", "快递公司", "运单号")) -> BytesIO:
    book = Workbook()
    sheet = book.active
    if header:
        sheet.append(list(header))
    for row in rows:
        sheet.append(list(row))
    buffer = BytesIO()
    book.save(buffer)
    buffer.seek(0)
    buffer.name = "tracking.xlsx"
    return buffer


# --- one entry -----------------------------------------------------------------------------------------


def test_enter_tracking_puts_the_number_on_the_order_parcel(store, skus):
    order = ingest(store, "M1")
    entry = manual.enter_tracking(order, "中通", " 7310 0000 0000 01 ", actor=None)
    assert entry.changed
    [parcel] = parcels_of(order)
    assert (parcel.carrier, parcel.tracking_no, parcel.manual) == ("zto", "73100000000001", True)
    assert parcel.carrier_reason == "手工录入"
    event = OrderEvent.objects.get(order=order, kind="tracking_entered")
    assert "中通快递 73100000000001" in event.message
    # shipped through the shipping service: stock out of the reservation, write-back queued
    assert entry.shipped and parcel.status == P.SHIPPED
    order.refresh_from_db()
    assert order.status == OrderStatus.SHIPPED
    [write_back] = WriteBack.objects.filter(order=order)
    assert (write_back.tracking_no, write_back.status) == ("73100000000001", WriteBack.Status.PENDING)
    level = StockLevel.objects.get(sku=skus["TS-WHT-L"])
    assert (level.on_hand, level.reserved) == (9, 0)

    again = manual.enter_tracking(order, "zto", "73100000000001", actor=None)  # idempotent
    assert not again.changed and again.parcel.pk == parcel.pk
    assert OrderEvent.objects.filter(order=order, kind="tracking_entered").count() == 1


def test_enter_tracking_accepts_carrier_names_and_platform_codes(store, skus):
    assert manual.resolve_carrier("顺丰速运") == "sf"
    assert manual.resolve_carrier("SF") == "sf"
    assert manual.resolve_carrier("zhongtong", platform="douyin") == "zto"
    assert manual.resolve_carrier("9", platform="kuaishou") == "zto"
    assert manual.resolve_carrier("韵达") == "yunda"
    assert manual.resolve_carrier("中通快运") == ""  # another company
    order = ingest(store, "M2")
    manual.enter_tracking(order, "顺丰", "sf1234567890123", actor=None)
    assert parcels_of(order)[0].tracking_no == "SF1234567890123"


def test_enter_tracking_refuses_what_cannot_be_shipped(store, skus):
    order = ingest(store, "R1")
    with pytest.raises(ValidationError, match="不是顺丰速运的运单号"):
        manual.enter_tracking(order, "sf", "73100000000001", actor=None)
    with pytest.raises(ValidationError, match="不是中通快递的运单号"):
        manual.enter_tracking(order, "zto", "ZT-12", actor=None)
    with pytest.raises(ValidationError, match="未知快递公司"):
        manual.enter_tracking(order, "飞鸽传书", "73100000000001", actor=None)

    other = ingest(store, "R2")
    manual.enter_tracking(other, "zto", "73100000000009", actor=None)
    with pytest.raises(ValidationError, match="73100000000009 已是订单 R2 的运单号"):
        manual.enter_tracking(order, "zto", "73100000000009", actor=None)

    held = orders.hold(order=ingest(store, "R3"), actor=None, reason="等等")
    with pytest.raises(ValidationError, match="只有待发货的订单才能发货"):
        manual.enter_tracking(held, "zto", "73100000000003", actor=None)

    # a parcel numbered in ecbao: its waybill is cancelled first, never silently replaced
    numbered = ingest(store, "R4")
    [parcel] = parcels_of(numbered)
    Waybill.objects.create(
        parcel=parcel, store=store, key="k-r4", carrier="zto", tracking_no="73999", status="issued"
    )
    Parcel.objects.filter(pk=parcel.pk).update(status=P.NUMBERED, carrier="zto", tracking_no="73999")
    with pytest.raises(ValidationError, match="请先取消该运单号"):
        manual.enter_tracking(numbered, "zto", "73100000000004", actor=None)
    assert [p.tracking_no for p in parcels_of(order)] == [""]  # nothing half-applied


def test_several_numbers_fill_a_multi_parcel_order_in_turn(store, skus):
    order = ingest(store, "MP1", lines=(line(1, qty=2),))
    [parcel] = parcels_of(order)
    l1 = order.lines.get().pk
    services.plan_parcels(fulfilment=parcel.fulfilment, parcels=[{l1: 1}, {l1: 1}])
    first = manual.enter_tracking(order, "zto", "73100000000101", actor=None)
    assert first.shipped
    order.refresh_from_db()
    assert order.status == OrderStatus.PARTIALLY_SHIPPED
    manual.enter_tracking(order, "zto", "73100000000102", actor=None)
    assert [(p.seq, p.tracking_no, p.status) for p in parcels_of(order)] == [
        (1, "73100000000101", P.SHIPPED),
        (2, "73100000000102", P.SHIPPED),
    ]
    order.refresh_from_db()
    assert order.status == OrderStatus.SHIPPED
    assert WriteBack.objects.filter(order=order).count() == 2  # one per parcel
    with pytest.raises(ValidationError, match="订单状态为“已发货”"):
        manual.enter_tracking(order, "zto", "73100000000103", actor=None)


# --- xlsx import ---------------------------------------------------------------------------------------


def test_import_reports_bad_rows_and_loses_nothing(store, skus):
    good = [ingest(store, f"G{i}") for i in range(3)]
    taken = ingest(store, "T1")
    manual.enter_tracking(taken, "zto", "73100000000500", actor=None)
    rows = [
        ("G0", "中通快递", "73100000000001"),  # row 2
        ("NOPE", "中通快递", "73100000000002"),  # 3: no such order
        ("G1", "飞鸽传书", "73100000000003"),  # 4: unknown carrier
        ("G1", "顺丰", "12345"),  # 5: not an SF number
        ("", "中通", "73100000000004"),  # 6: no order number
        ("G0", "中通", "73100000000001"),  # 7: the same as row 2: already there
        ("G2", "zto", "73100000000500"),  # 8: another order's number
        (6900000000000000000 + 1, "YTO", "YT1234567890123"),  # 9: a number cell (lost digits are no order)
        ("G1", "韵达", "4300000000000001"),  # 10: good
    ]
    report = manual.import_xlsx(workbook(rows), actor=None)

    assert (report.rows, report.entered, report.unchanged, report.error_count) == (9, 2, 1, 6)
    assert report.shipped == 2 and not report.not_shipped
    assert report.entered + report.unchanged + report.error_count == report.rows  # nothing lost
    problems = {e.row: (e.column, e.message) for e in report.errors}
    assert problems == {
        3: ("平台订单号", "没有这个单号的订单。"),
        4: ("快递公司", "未知快递公司“飞鸽传书”。"),
        5: ("运单号", "“12345”不是顺丰速运的运单号。"),
        6: ("平台订单号", "请填写平台订单号。"),
        8: ("", "73100000000500 已是订单 T1 的运单号。"),
        9: ("平台订单号", "没有这个单号的订单。"),
    }
    assert [e.values for e in report.errors][0] == ["NOPE", "中通快递", "73100000000002", ""]
    assert [parcels_of(o)[0].tracking_no for o in good] == ["73100000000001", "4300000000000001", ""]

    batch = ShipBatch.objects.get(pk=report.batch.pk)
    assert (batch.kind, batch.status, batch.total, batch.done, batch.failed) == (
        "import_tracking",
        "done",
        9,
        9,
        6,
    )
    again = manual.ImportReport.from_batch(batch)
    assert (again.entered, again.error_count, len(again.errors)) == (2, 6, 6)


def test_reimport_is_idempotent_and_enters_only_fixed_rows(store, skus):
    a, b = ingest(store, "I1"), ingest(store, "I2")
    rows = [("I1", "中通", "73100000000011"), ("I2", "中通", "bad")]
    first = manual.import_xlsx(workbook(rows), actor=None)
    assert (first.entered, first.unchanged, first.error_count) == (1, 0, 1)
    second = manual.import_xlsx(workbook(rows), actor=None)
    assert (second.entered, second.unchanged, second.error_count) == (0, 1, 1)
    fixed = manual.import_xlsx(workbook([rows[0], ("I2", "中通", "73100000000012")]), actor=None)
    assert (fixed.entered, fixed.unchanged, fixed.error_count) == (1, 1, 0)
    assert [parcels_of(o)[0].tracking_no for o in (a, b)] == ["73100000000011", "73100000000012"]
    assert OrderEvent.objects.filter(kind="tracking_entered").count() == 2


def test_import_refuses_a_file_it_cannot_read(in_alpha):
    report = manual.import_xlsx(BytesIO(b"not a workbook"), actor=None)
    assert [(e.row, e.message) for e in report.errors] == [(0, "文件不是可读取的 xlsx 工作簿。")]
    assert report.batch.status == ShipBatch.Status.FAILED
    report = manual.import_xlsx(
        workbook([("X", "中通", "1")], header=("订单", "快递公司", "备注")), actor=None
    )
    assert report.errors[0].message == "第 1 行缺少列：平台订单号、运单号。"


def test_a_large_file_runs_as_a_batch_with_progress(
    store, skus, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(manual, "INLINE_ROWS", 2)
    monkeypatch.setattr(manual, "CHUNK", 2)
    for i in range(5):
        ingest(store, f"B{i}")
    rows = [(f"B{i}", "中通", f"7310000000{i:04d}") for i in range(5)]
    progress = []
    save = manual._save_progress
    monkeypatch.setattr(
        manual,
        "_save_progress",
        lambda batch, report, **kw: (save(batch, report, **kw), progress.append(batch.done)),
    )
    with django_capture_on_commit_callbacks() as callbacks:
        batch = manual.start_import(workbook(rows), actor=None)
    assert (batch.status, batch.total, len(callbacks)) == ("queued", 5, 1)  # queued for a worker
    result = manual.run_import(batch.pk)  # what the worker's task runs
    assert result["entered"] == 5
    batch.refresh_from_db()
    assert (batch.status, batch.done) == ("done", 5)
    assert progress == [2, 4, 5, 5]  # per chunk
    assert manual.run_import(batch.pk)["skipped"]  # a task delivered twice does nothing


# --- the page -------------------------------------------------------------------------------------------


@pytest.fixture
def warehouse_client(alpha, alpha_client):
    make_user(alpha, "ship-wh", Role.WAREHOUSE, PASSWORD)
    assert (
        alpha_client.post("/accounts/login/", {"username": "ship-wh", "password": PASSWORD}).status_code
        == 302
    )
    return alpha_client


def test_page_enters_one_number_and_imports_a_file(store, skus, warehouse_client):
    client = warehouse_client
    workbench = client.get("/shipping/").content.decode()
    assert 'data-testid="action-import-tracking"' in workbench and "/shipping/manual/" in workbench
    page = client.get("/shipping/manual/")
    assert page.status_code == 200 and "导入运单号" in page.content.decode()

    template = client.get("/shipping/manual/template.xlsx")
    assert template.status_code == 200
    header = next(load_workbook(BytesIO(template.content)).active.iter_rows(values_only=True))
    assert header == ("平台订单号", "快递公司", "运单号", "店铺")

    one, two = ingest(store, "W1"), ingest(store, "W2")
    response = client.post(
        "/shipping/manual/", {"platform_order_id": "W1", "carrier": "zto", "tracking_no": "73100000000021"}
    )
    assert response.status_code == 302
    assert parcels_of(one)[0].tracking_no == "73100000000021"
    refused = client.post(
        "/shipping/manual/", {"platform_order_id": "NOPE", "carrier": "zto", "tracking_no": "73100000000022"}
    )
    assert refused.status_code == 400 and "没有这个单号的订单。" in refused.content.decode()

    upload = workbook([("W2", "中通", "73100000000022"), ("W9", "中通", "73100000000023")])
    response = client.post("/shipping/manual/import/", {"file": upload})
    assert response.status_code == 302
    report_page = client.get(response["Location"])
    html = report_page.content.decode()
    assert report_page.context["report"].entered == 1
    assert html.count('data-testid="import-error"') == 1 and "W9" in html
    assert parcels_of(two)[0].tracking_no == "73100000000022"

    errors = client.get(response["Location"] + "errors.xlsx")
    rows = list(load_workbook(BytesIO(errors.content)).active.iter_rows(values_only=True))
    assert rows[0][-2:] == ("行", "问题")
    assert rows[1][:5] == ("W9", "中通", "73100000000023", None, 3)


def test_viewers_cannot_ship_by_hand(in_alpha, alpha, alpha_client):
    make_user(alpha, "ship-viewer", Role.VIEWER, PASSWORD)
    alpha_client.post("/accounts/login/", {"username": "ship-viewer", "password": PASSWORD})
    assert alpha_client.get("/shipping/manual/").status_code == 403
    assert alpha_client.post("/shipping/manual/import/", {}).status_code == 403


# --- against the sandbox over HTTP -----------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    from tests.logistics.waybill_world import start_sandbox

    server = start_sandbox(tmp_path_factory.mktemp("manual") / "world.sqlite3", buyers=10)
    yield server
    server.stop()
    server.world.close()


def test_an_imported_number_reaches_the_shop(sandbox, in_alpha):
    """Imported → shipped in ecbao → written back: the sandbox's order shows the number."""
    from logistics import writeback
    from tests.logistics.waybill_world import connect_shops, world_order_id

    shops = connect_shops(sandbox)
    order = shops.order("douyin", 1)
    report = manual.import_xlsx(
        workbook([(order.platform_order_id, "中通快递", "73100000007777")]), actor=None
    )
    assert (report.entered, report.shipped, report.error_count) == (1, 1, 0)
    assert writeback.send_due(limit=10) == 1
    shipped = shops.world.get_order(world_order_id(shops, order))
    assert [(p.carrier, p.tracking_no) for p in shipped.packages] == [("ZTO", "73100000007777")]
    assert writeback.send_due(limit=10) == 0  # sent once


def test_the_shop_column_tells_orders_of_two_shops_apart(store, skus):
    from dataclasses import replace

    from channels.models import Store

    other = Store.objects.create(platform="douyin", platform_shop_id="2002", name="抖店二店", app_key="k2")
    mine = ingest(store, "DUP1")
    theirs = orders.ingest_channel_order(
        store=other,
        co=replace(channel_order(oid="DUP1", receiver=receiver("r-dup2")), platform_shop_id="2002"),
    )
    services.ensure_parcels()
    report = manual.import_xlsx(
        workbook(
            [
                ("DUP1", "中通", "73100000000061"),
                ("DUP1", "中通", "73100000000062", "别的店"),
                ("DUP1", "中通", "73100000000063", "抖店二店"),
            ],
            header=("平台订单号", "快递公司", "运单号", "店铺"),
        ),
        actor=None,
    )
    assert [(e.row, e.message) for e in report.errors] == [
        (2, "多个店铺有此单号的订单：请注明店铺。"),
        (3, "该店铺没有此单号的订单。"),
    ]
    assert report.entered == 1
    assert parcels_of(theirs)[0].tracking_no == "73100000000063" and parcels_of(mine)[0].tracking_no == ""

import io

import pytest
from django.core.exceptions import ValidationError
from openpyxl import Workbook

from inventory import services as stock
from inventory.models import Sku, StockLedgerEntry, StockLevel, Warehouse
from suppliers import services, stock_import
from suppliers.models import Supplier, SupplierSku
from tests.suppliers.factories import bind, make_supplier


def test_a_supplier_gets_a_supplier_warehouse_that_default_warehouse_never_picks(skus):
    own = stock.default_warehouse()
    supplier = make_supplier("S1", name="杭州茶厂", ship_from_province="浙江省")
    assert supplier.warehouse.kind == Warehouse.Kind.SUPPLIER
    assert supplier.warehouse.code == "SUP-S1"
    assert stock.default_warehouse() == own
    # reservations without a warehouse go to the own one, never to the supplier's
    bind(supplier, skus["CAP-RED"], stock=100)
    stock.reserve_stock(source_key="line-1", sku=skus["CAP-RED"], quantity=1)
    assert StockLevel.objects.get(sku=skus["CAP-RED"], warehouse=own).reserved == 1
    assert StockLevel.objects.get(sku=skus["CAP-RED"], warehouse=supplier.warehouse).reserved == 0


def test_reported_stock_goes_through_the_ledger_and_can_be_reserved(skus):
    sku = skus["CAP-RED"]
    supplier = make_supplier("S1")
    bind(supplier, sku, cost_fen=1200, stock=7)
    level = StockLevel.objects.get(sku=sku, warehouse=supplier.warehouse)
    assert level.on_hand == 7
    entry = StockLedgerEntry.objects.get(sku=sku, warehouse=supplier.warehouse)
    assert entry.on_hand_delta == 7 and entry.kind == "count"
    # a second identical report changes nothing (idempotent)
    assert services.report_stock(supplier=supplier, sku=sku, on_hand=7) is False
    assert StockLedgerEntry.objects.filter(warehouse=supplier.warehouse).count() == 1
    stock.reserve_stock(source_key="line-1", sku=sku, quantity=5, warehouse=supplier.warehouse)
    with pytest.raises(stock.InsufficientStock):
        stock.reserve_stock(source_key="line-2", sku=sku, quantity=3, warehouse=supplier.warehouse)
    # own stock untouched
    assert StockLevel.objects.get(sku=sku, warehouse=stock.default_warehouse()).on_hand == 5


def test_report_stock_refuses_unbound_and_negative(skus):
    supplier = make_supplier("S1")
    with pytest.raises(ValidationError):
        services.report_stock(supplier=supplier, sku=skus["CAP-RED"], on_hand=3)
    bind(supplier, skus["CAP-RED"])
    with pytest.raises(ValidationError):
        services.report_stock(supplier=supplier, sku=skus["CAP-RED"], on_hand=-1)
    assert SupplierSku.objects.count() == 1 and Supplier.objects.count() == 1


def _xlsx(rows) -> io.BytesIO:
    workbook = Workbook()
    for row in rows:
        workbook.active.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    buffer.seek(0)
    buffer.name = "list.xlsx"
    return buffer


SKU_HEADER = ["商家编码", "供应商编码", "成本价(元)", "运费规则", "运费(元)", "优先级"]


def test_sku_import_binds_good_rows_reports_bad_ones_and_is_idempotent(skus):
    supplier = make_supplier("S1")
    make_supplier("S2")
    Sku.objects.create(goods=skus["CAP-RED"].goods, merchant_code="MUG", name="杯子")
    rows = [
        SKU_HEADER,
        ["TS-WHT-L", "HZ-1", "12.50", "包邮", "", 5],
        ["TS-BLK-M", "HZ-2", 8, "按件", "1.2", None],
        ["NOPE", "HZ-3", "1", "", "", ""],  # unknown SKU
        ["CAP-RED", "HZ-4", "1.005", "", "", ""],  # three decimals
        ["TS-WHT-L", "HZ-5", "3", "", "", ""],  # twice in the file
        ["MUG", "HZ-6", "2", "空运", "", ""],  # unknown freight rule
    ]
    report = stock_import.import_skus(_xlsx(rows), supplier=supplier)
    assert (report.rows, report.created, report.changed, report.unchanged) == (6, 2, 0, 0)
    assert [(e.row, e.column) for e in report.errors] == [
        (4, "商家编码"),
        (5, "成本价(元)"),
        (6, "商家编码"),
        (7, "运费规则"),
    ]
    assert "NOPE" in report.errors[0].message and "两位小数" in report.errors[1].message
    white = SupplierSku.objects.get(supplier=supplier, sku=skus["TS-WHT-L"])
    assert (white.cost_fen, white.freight, white.freight_fen, white.priority) == (1250, "free", 0, 5)
    black = SupplierSku.objects.get(supplier=supplier, sku=skus["TS-BLK-M"])
    assert (black.cost_fen, black.freight, black.freight_fen, black.priority) == (800, "per_unit", 120, 100)
    # the same file again: nothing changes, the same errors
    again = stock_import.import_skus(_xlsx(rows), supplier=supplier)
    assert (again.created, again.changed, again.unchanged) == (0, 0, 2)
    assert again.errors == report.errors
    # an exported list imports back unchanged
    exported = io.BytesIO(stock_import.sku_workbook(supplier))
    assert stock_import.import_skus(exported, supplier=supplier).to_json()["unchanged"] == 2
    # a file without the cost column is refused as a whole
    bad = stock_import.import_skus(_xlsx([["商家编码"], ["TS-WHT-L"]]), supplier=supplier)
    assert bad.errors[0].row == 0 and "成本价(元)" in bad.errors[0].message
    assert SupplierSku.objects.count() == 2


def test_stock_import_reports_through_the_ledger_row_by_row(skus):
    supplier = make_supplier("S1")
    bind(supplier, skus["TS-WHT-L"], supplier_code="HZ-1")
    bind(supplier, skus["TS-BLK-M"], supplier_code="HZ-2")
    rows = [
        ["供应商编码", "商家编码", "库存"],
        ["HZ-1", "", 30],
        ["", "TS-BLK-M", "-2"],  # negative
        ["", "CAP-RED", 9],  # not supplied by S1
        ["HZ-9", "", 1],  # unknown supplier code
        ["HZ-1", "", 31],  # twice
    ]
    report = stock_import.import_stock(_xlsx(rows), supplier=supplier)
    assert (report.changed, report.unchanged) == (1, 0)
    assert [(e.row, e.column) for e in report.errors] == [
        (3, "库存"),
        (4, "商家编码"),
        (5, "供应商编码"),
        (6, "供应商编码"),
    ]
    level = StockLevel.objects.get(sku=skus["TS-WHT-L"], warehouse=supplier.warehouse)
    assert level.on_hand == 30
    entries = StockLedgerEntry.objects.filter(warehouse=supplier.warehouse).count()
    assert entries == 1
    again = stock_import.import_stock(_xlsx(rows), supplier=supplier)
    assert (again.changed, again.unchanged) == (0, 1)
    assert StockLedgerEntry.objects.filter(warehouse=supplier.warehouse).count() == entries
    # csv (GB18030, as Excel in China saves it) works the same
    stock.reserve_stock(source_key="l1", sku=skus["TS-WHT-L"], quantity=20, warehouse=supplier.warehouse)
    csv_file = io.BytesIO("商家编码,库存\nTS-WHT-L,25\nTS-BLK-M,x\nTS-BLK-M,3\n".encode("gb18030"))
    csv_file.name = "stock.csv"
    report = stock_import.import_stock(csv_file, supplier=supplier)
    assert [(e.row, e.column) for e in report.errors] == [(3, "库存")]
    assert report.changed == 2
    assert StockLevel.objects.get(sku=skus["TS-WHT-L"], warehouse=supplier.warehouse).on_hand == 25
    # below what orders reserved: refused for that row, in zh-Hans
    csv_file = io.BytesIO("商家编码,库存\nTS-WHT-L,10\n".encode())
    csv_file.name = "stock.csv"
    report = stock_import.import_stock(csv_file, supplier=supplier)
    assert report.errors[0].row == 2 and "已有 20 件被订单占用" in report.errors[0].message
    assert StockLevel.objects.get(sku=skus["TS-WHT-L"], warehouse=supplier.warehouse).on_hand == 25


def test_update_pause_and_remove(skus):
    supplier = make_supplier("S1")
    with pytest.raises(ValidationError) as exc:
        services.update_supplier(supplier=supplier, contact_email="not-an-email", name="杭州茶厂")
    assert "contact_email" in exc.value.error_dict
    supplier.refresh_from_db()
    assert supplier.name == "供应商 S1"
    services.update_supplier(supplier=supplier, name="杭州茶厂", daily_capacity=300)
    supplier.refresh_from_db()
    assert (supplier.name, supplier.daily_capacity, supplier.warehouse.name) == ("杭州茶厂", 300, "杭州茶厂")
    services.set_status(supplier=supplier, status="paused")
    assert Supplier.objects.get().status == "paused"
    # a binding with stock: removing it counts the stock out through the ledger
    bind(supplier, skus["CAP-RED"], stock=6)
    stock.reserve_stock(source_key="l1", sku=skus["CAP-RED"], quantity=1, warehouse=supplier.warehouse)
    with pytest.raises(ValidationError):
        services.remove_supplier_sku(supplier=supplier, sku=skus["CAP-RED"])
    stock.release_reservation(source_key="l1")
    services.remove_supplier_sku(supplier=supplier, sku=skus["CAP-RED"])
    assert not SupplierSku.objects.exists()
    assert StockLevel.objects.get(sku=skus["CAP-RED"], warehouse=supplier.warehouse).on_hand == 0
    # it had stock movements: "removing" the supplier pauses it; a fresh one is deleted
    assert services.remove_supplier(supplier=supplier) == "paused"
    fresh = make_supplier("S2")
    assert services.remove_supplier(supplier=fresh) == "deleted"
    assert not Warehouse.objects.filter(code="SUP-S2").exists()


def test_supplier_codes_are_unique_per_supplier(skus):
    supplier = make_supplier("S1")
    bind(supplier, skus["TS-WHT-L"], supplier_code="HZ-1")
    with pytest.raises(ValidationError) as exc:
        bind(supplier, skus["TS-BLK-M"], supplier_code="HZ-1")
    assert "HZ-1" in exc.value.message_dict["supplier_code"][0]
    bind(make_supplier("S2"), skus["TS-BLK-M"], supplier_code="HZ-1")  # another supplier may

import pytest
from django.core.exceptions import ValidationError

from inventory import services as stock
from inventory.models import StockLedgerEntry, StockLevel, Warehouse
from suppliers import services
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

"""Small defaults: a webhook is never signed with an empty key; orders always find an own
warehouse to reserve in, even when every own warehouse was switched off."""

from __future__ import annotations

import pytest

from inventory import services as stock
from inventory.models import Warehouse
from suppliers import services
from tests.suppliers.factories import make_supplier

pytestmark = pytest.mark.django_db


def test_a_supplier_with_a_webhook_gets_its_own_signing_key(in_alpha):
    quiet = make_supplier(code="Q1")
    assert quiet.webhook_secret == ""
    loud = make_supplier(code="W1", webhook_url="https://erp.example.com/hooks/ecbao")
    assert len(loud.webhook_secret) == 64 and int(loud.webhook_secret, 16)
    other = make_supplier(code="W2", webhook_url="https://erp.example.com/hooks/ecbao")
    assert other.webhook_secret != loud.webhook_secret
    later = services.update_supplier(supplier=quiet, webhook_url="https://erp.example.com/x")
    assert len(later.webhook_secret) == 64
    kept = services.update_supplier(supplier=loud, contact_name="王经理")
    assert kept.webhook_secret == loud.webhook_secret


def test_with_every_own_warehouse_off_orders_still_reserve_in_the_main_one(in_alpha):
    main = stock.default_warehouse()
    make_supplier(code="S9")  # a supplier's warehouse is never the default
    Warehouse.objects.filter(kind=Warehouse.Kind.OWN).update(is_active=False)
    again = stock.default_warehouse()
    assert again.pk == main.pk and again.is_active and again.kind == Warehouse.Kind.OWN


def test_a_paused_suppliers_stock_is_offered_to_no_shop_until_it_works_again(in_alpha, store, skus):
    from inventory import selectors
    from inventory.models import StockChange
    from inventory.sync import ensure_listing, listing_quantity
    from suppliers.models import Supplier
    from tests.suppliers.factories import bind

    tea = make_supplier(code="T1")
    sku = skus["CAP-RED"]  # 5 in the own warehouse
    bind(tea, sku, cost_fen=500, stock=40)
    listing = ensure_listing(
        store=store, platform_product_id="P-CAP", platform_sku_id="S-CAP", merchant_code="CAP-RED"
    )
    assert selectors.available(sku) == 45 and listing_quantity(listing) == 45
    StockChange.objects.all().delete()
    services.set_status(supplier=tea, status=Supplier.Status.PAUSED)
    assert selectors.available(sku) == 5 and listing_quantity(listing) == 5
    assert StockChange.objects.filter(sku=sku).exists()  # pushed again
    services.set_status(supplier=tea, status=Supplier.Status.ACTIVE)
    assert selectors.available(sku) == 45 and listing_quantity(listing) == 45

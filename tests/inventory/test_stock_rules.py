import pytest

from inventory.models import StockRule
from inventory.sync import publish_quantity


@pytest.mark.parametrize(
    ("available", "rule", "expected"),
    [
        (10, None, 10),
        (-3, None, 0),
        (10, StockRule(percent=50), 5),
        (9, StockRule(percent=50), 4),  # floor
        (10, StockRule(percent=100, safety=3), 7),
        (2, StockRule(percent=100, safety=3), 0),  # clamped at 0
        (100, StockRule(percent=100, cap=30), 30),
        (0, StockRule(percent=100, floor=1), 1),
        (10, StockRule(percent=80, add=2, safety=1), 9),
    ],
)
def test_publish_quantity_follows_the_rule(available, rule, expected):
    assert publish_quantity(available=available, rule=rule) == expected


@pytest.mark.django_db
def test_a_listing_created_and_matched_during_ingestion_is_published_through_the_outbox(in_alpha):
    """No Celery task per new listing: an outbox row for its SKU, drained by the stock-sync daemon."""
    from channels.models import Store
    from inventory.models import Goods, Listing, Sku, StockChange
    from inventory.sync import ensure_listing

    store = Store.objects.create(platform="douyin", platform_shop_id="4001", name="抖店", app_key="k")
    sku = Sku.objects.create(goods=Goods.objects.create(name="帽子"), merchant_code="HAT-1", name="帽子")
    before = StockChange.objects.filter(sku=sku).count()
    listing = ensure_listing(
        store=store, platform_product_id="P1", platform_sku_id="S1", merchant_code="HAT-1"
    )
    assert listing.match == Listing.Match.MATCHED and listing.sku_id == sku.pk
    assert StockChange.objects.filter(sku=sku).count() == before + 1
    ensure_listing(store=store, platform_product_id="P1", platform_sku_id="S1", merchant_code="HAT-1")
    assert StockChange.objects.filter(sku=sku).count() == before + 1  # known listing: nothing new

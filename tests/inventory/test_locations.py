"""Locations (库位) of SKUs per warehouse: the service, and the SKU page where they are set."""

from __future__ import annotations

import pytest

from inventory import services
from inventory.models import ComboComponent, StockLedgerEntry, StockLevel, Warehouse
from tenants.accounts.models import Role
from tests.inventory.test_pages import as_role, make_sku  # noqa: F401  (fixture)


def test_set_location_per_warehouse_without_touching_stock(in_alpha):
    sku = make_sku("LOC-1", on_hand=5)
    main = services.default_warehouse()
    other = Warehouse.objects.create(name="二号仓", code="W2")
    services.set_location(sku=sku, location="  A-03   2 ")
    services.set_location(sku=sku, warehouse=other, location="Z-1")  # a level is made for it
    levels = {lv.warehouse_id: lv for lv in StockLevel.objects.filter(sku=sku)}
    assert (levels[main.pk].location, levels[main.pk].on_hand) == ("A-03 2", 5)
    assert (levels[other.pk].location, levels[other.pk].on_hand) == ("Z-1", 0)
    services.set_location(sku=sku, warehouse=other, location="")
    assert StockLevel.objects.get(sku=sku, warehouse=other).location == ""
    assert StockLedgerEntry.objects.filter(sku=sku).count() == 1  # only the opening receipt


@pytest.mark.parametrize(("value", "message"), [("A" * 33, "32"), ("A\x00-1", "控制字符")])
def test_bad_locations_are_refused(in_alpha, value, message):
    sku = make_sku("LOC-2")
    with pytest.raises(ValueError, match=message):
        services.set_location(sku=sku, location=value)
    assert not StockLevel.objects.filter(sku=sku).exclude(location="").exists()


def test_a_combination_has_no_location(in_alpha):
    part = make_sku("LOC-3")
    combo = make_sku("LOC-4", is_combo=True)
    ComboComponent.objects.create(combo=combo, component=part, quantity=2)
    with pytest.raises(ValueError, match="组合"):
        services.set_location(sku=combo, location="A-1")
    assert not StockLevel.objects.filter(sku=combo).exists()


def test_sku_page_shows_and_sets_the_location(in_alpha, as_role):  # noqa: F811
    sku = make_sku("LOC-5", on_hand=3)
    main = services.default_warehouse()
    client = as_role(Role.WAREHOUSE)
    page = client.get(f"/inventory/skus/{sku.pk}/")
    assert b'data-testid="location-form"' in page.content
    response = client.post(
        f"/inventory/skus/{sku.pk}/location/", {"warehouse": main.pk, "location": "B-12"}, follow=True
    )
    assert StockLevel.objects.get(sku=sku, warehouse=main).location == "B-12"
    assert "B-12" in response.content.decode()
    assert [w.location for w in response.context["warehouses"]] == ["B-12"]
    bad = client.post(
        f"/inventory/skus/{sku.pk}/location/", {"warehouse": main.pk, "location": "x" * 40}, follow=True
    )
    assert "库位未保存" in bad.content.decode()
    assert StockLevel.objects.get(sku=sku, warehouse=main).location == "B-12"


def test_read_only_roles_cannot_set_locations(in_alpha, as_role):  # noqa: F811
    sku = make_sku("LOC-6", on_hand=3)
    main = services.default_warehouse()
    client = as_role(Role.VIEWER)
    assert b"location-form" not in client.get(f"/inventory/skus/{sku.pk}/").content
    assert (
        client.post(
            f"/inventory/skus/{sku.pk}/location/", {"warehouse": main.pk, "location": "A"}
        ).status_code
        == 403
    )
    assert StockLevel.objects.get(sku=sku, warehouse=main).location == ""

"""Suppliers API: suppliers, supplier SKUs and supplier stock — CRUD, validation in zh-Hans,
capabilities, repeat-safety."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from inventory import services as stock
from inventory.models import StockLedgerEntry, StockLevel
from suppliers.models import Supplier, SupplierSku
from tenants.accounts.models import Role
from tenants.accounts.services import create_user, issue_api_token
from tests.suppliers.factories import bind, make_supplier


@pytest.fixture
def api(in_alpha, alpha_client):
    def as_user(user):
        auth = {"HTTP_AUTHORIZATION": f"Token {issue_api_token(user=user)[1]}"}

        class Caller:
            def __getattr__(self, method):
                send = getattr(alpha_client, method)

                def call(path: str, data=None, **headers):
                    if method in ("post", "put", "patch"):
                        return send(path, data or {}, content_type="application/json", **auth, **headers)
                    return send(path, data or {}, **auth, **headers)

                return call

        return Caller()

    def as_role(role: str):
        if role == Role.OWNER:
            return as_user(get_user_model().objects.get(username="alpha-owner"))
        return as_user(create_user(username=f"api-{role}", password="Staff-pass-2026", role=role))

    as_role.user = as_user
    return as_role


def test_supplier_crud(api, in_alpha):
    owner = api(Role.OWNER)
    bad = owner.post(
        "/api/v1/suppliers/", {"name": "杭州茶厂", "code": "", "contact_email": "x", "settlement": "weekly"}
    )
    assert bad.status_code == 400
    details = bad.json()["error"]["details"]
    assert set(details) >= {"code", "contact_email", "settlement"}
    assert "有效" in str(details["contact_email"]) or "合法" in str(details["contact_email"])
    payload = {
        "name": "杭州茶厂",
        "code": "HZ01",
        "cutoff": "16:00",
        "daily_capacity": 300,
        "webhook_secret": "s3",
    }
    created = owner.post("/api/v1/suppliers/", payload, HTTP_IDEMPOTENCY_KEY="create-hz01")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["code"] == "HZ01" and body["sku_count"] == 0 and "webhook_secret" not in body
    assert body["cutoff"] == "16:00"
    # the same request again with its key: the first answer, no second supplier
    again = owner.post("/api/v1/suppliers/", payload, HTTP_IDEMPOTENCY_KEY="create-hz01")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    taken = owner.post("/api/v1/suppliers/", {"name": "别家", "code": "HZ01"})
    assert taken.status_code == 400 and "已被使用" in str(taken.json()["error"]["details"])
    supplier = Supplier.objects.get()
    assert supplier.warehouse.kind == "supplier" and supplier.webhook_secret == "s3"
    url = f"/api/v1/suppliers/{supplier.pk}/"
    changed = owner.patch(url, {"status": "paused", "contact_name": "王五"})
    assert changed.status_code == 200 and changed.json()["status"] == "paused"
    assert owner.patch(url, {"code": "ZZ"}).status_code == 400
    assert owner.patch(url, {"daily_capacity": 0}).status_code == 400
    assert [s["code"] for s in owner.get("/api/v1/suppliers/?status=paused").json()["results"]] == ["HZ01"]
    assert owner.get("/api/v1/suppliers/?status=active").json()["results"] == []
    # a supplier with history is paused on DELETE; one without is deleted
    fresh = owner.post("/api/v1/suppliers/", {"name": "义乌百货", "code": "YW02"}).json()
    assert owner.delete(f"/api/v1/suppliers/{fresh['id']}/").status_code == 204
    assert not Supplier.objects.filter(code="YW02").exists()


def test_supplier_sku_crud_and_filters(api, skus):
    owner = api(Role.OWNER)
    tea, other = make_supplier("HZ01"), make_supplier("YW02")
    bind(other, skus["TS-WHT-L"], cost_fen=999)
    bad = owner.post(
        "/api/v1/supplier-skus/",
        {"supplier": tea.pk, "sku": skus["TS-WHT-L"].pk, "cost_fen": "12.5", "freight": "air"},
    )
    assert bad.status_code == 400 and set(bad.json()["error"]["details"]) == {"cost_fen", "freight"}
    payload = {
        "supplier": tea.pk,
        "sku": skus["TS-WHT-L"].pk,
        "cost_fen": 1250,
        "supplier_code": "HZ-1",
        "priority": 5,
    }
    created = owner.post("/api/v1/supplier-skus/", payload)
    assert created.status_code == 201, created.json()
    assert created.json()["merchant_code"] == "TS-WHT-L" and created.json()["on_hand"] == 0
    repeat = owner.post("/api/v1/supplier-skus/", payload)
    assert repeat.status_code == 200 and repeat.json()["id"] == created.json()["id"]
    assert SupplierSku.objects.filter(supplier=tea).count() == 1
    item_url = f"/api/v1/supplier-skus/{created.json()['id']}/"
    patched = owner.patch(item_url, {"freight": "per_unit", "freight_fen": 80})
    assert patched.status_code == 200 and (patched.json()["freight_fen"], patched.json()["cost_fen"]) == (
        80,
        1250,
    )
    assert owner.patch(item_url, {"sku": skus["CAP-RED"].pk}).status_code == 400
    listed = owner.get(f"/api/v1/supplier-skus/?supplier={tea.pk}").json()["results"]
    assert [i["supplier"] for i in listed] == [tea.pk]
    by_sku = owner.get(f"/api/v1/supplier-skus/?sku={skus['TS-WHT-L'].pk}").json()["results"]
    assert {i["supplier"] for i in by_sku} == {tea.pk, other.pk}
    combo = owner.post("/api/v1/supplier-skus/", {**payload, "sku": 10**9})
    assert combo.status_code == 400
    assert owner.delete(item_url).status_code == 204
    assert not SupplierSku.objects.filter(supplier=tea).exists()


def test_supplier_stock_reports_through_the_ledger_all_or_nothing(api, skus):
    owner = api(Role.OWNER)
    tea = make_supplier("HZ01")
    bind(tea, skus["TS-WHT-L"], supplier_code="HZ-1")
    bind(tea, skus["TS-BLK-M"])
    body = {
        "supplier": tea.pk,
        "items": [{"supplier_code": "HZ-1", "on_hand": 30}, {"merchant_code": "TS-BLK-M", "on_hand": 4}],
    }
    ok = owner.post("/api/v1/supplier-stock/", body)
    assert ok.status_code == 200 and ok.json() == {"changed": 2, "unchanged": 0}
    assert StockLevel.objects.get(sku=skus["TS-WHT-L"], warehouse=tea.warehouse).on_hand == 30
    entries = StockLedgerEntry.objects.filter(warehouse=tea.warehouse).count()
    assert owner.post("/api/v1/supplier-stock/", body).json() == {"changed": 0, "unchanged": 2}
    assert StockLedgerEntry.objects.filter(warehouse=tea.warehouse).count() == entries
    bad = owner.post(
        "/api/v1/supplier-stock/",
        {
            "supplier": tea.pk,
            "items": [
                {"merchant_code": "TS-WHT-L", "on_hand": 1},
                {"merchant_code": "CAP-RED", "on_hand": 2},
                {"on_hand": -1},
            ],
        },
    )
    assert bad.status_code == 400
    assert StockLevel.objects.get(sku=skus["TS-WHT-L"], warehouse=tea.warehouse).on_hand == 30
    # below what orders reserved: refused by index, nothing written
    stock.reserve_stock(source_key="l1", sku=skus["TS-BLK-M"], quantity=3, warehouse=tea.warehouse)
    short = owner.post(
        "/api/v1/supplier-stock/",
        {
            "supplier": tea.pk,
            "items": [
                {"merchant_code": "TS-WHT-L", "on_hand": 10},
                {"merchant_code": "TS-BLK-M", "on_hand": 1},
            ],
        },
    )
    assert short.status_code == 400
    assert "被订单占用" in short.json()["error"]["details"]["items"]["1"][0]
    assert StockLevel.objects.get(sku=skus["TS-WHT-L"], warehouse=tea.warehouse).on_hand == 30
    levels = owner.get(f"/api/v1/supplier-stock/?supplier={tea.pk}").json()["results"]
    assert {(i["merchant_code"], i["on_hand"], i["reserved"]) for i in levels} == {
        ("TS-WHT-L", 30, 0),
        ("TS-BLK-M", 4, 3),
    }


def test_capabilities(api, skus):
    tea = make_supplier("HZ01")
    viewer, operator = api(Role.VIEWER), api(Role.OPERATOR)
    assert viewer.get("/api/v1/suppliers/").status_code == 200
    assert viewer.post("/api/v1/suppliers/", {"name": "x", "code": "X"}).status_code == 403
    assert viewer.post("/api/v1/supplier-stock/", {"supplier": tea.pk, "items": []}).status_code == 403
    assert operator.post("/api/v1/suppliers/", {"name": "x", "code": "X"}).status_code == 201
    user = create_user(username="hz-wang", password="Tea-pass-2026x", role=Role.SUPPLIER, supplier_id=tea.pk)
    supplier_user = api.user(user)
    for path in (
        "/api/v1/suppliers/",
        f"/api/v1/suppliers/{tea.pk}/",
        "/api/v1/supplier-skus/",
        "/api/v1/supplier-stock/",
    ):
        assert supplier_user.get(path).status_code == 403, path
    assert supplier_user.post("/api/v1/supplier-stock/", {"supplier": tea.pk, "items": []}).status_code == 403

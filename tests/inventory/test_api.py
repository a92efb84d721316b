"""Inventory API: SKUs, stock levels, ledger, adjustments, listings — CRUD, filters,
capabilities and the error envelope."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from channels.models import Store
from inventory import services, tasks
from inventory.models import Goods, Listing, Sku, StockLedgerEntry, StockLevel, Warehouse
from tenants.accounts.models import Role
from tenants.accounts.services import issue_api_token
from tests.conftest import OWNER_PASSWORD, make_user


@pytest.fixture
def api(in_alpha, alpha_client):
    """``api(role)`` → a function calling the API as a new user of that role (token auth)."""

    def as_role(role: str):
        user = make_user(in_alpha, f"api-{role}", role) if role != Role.OWNER else None
        user = user or get_user_model().objects.get(username="alpha-owner")
        auth = {"HTTP_AUTHORIZATION": f"Token {issue_api_token(user=user)[1]}"}

        def call(method: str, path: str, data=None):
            send = getattr(alpha_client, method)
            if method in ("post", "put", "patch"):
                return send(path, data or {}, content_type="application/json", **auth)
            return send(path, data or {}, **auth)

        return call

    return as_role


@pytest.fixture
def goods(in_alpha) -> Goods:
    return Goods.objects.create(name="纯棉T恤")


def make_sku(goods: Goods, code: str, *, on_hand: int = 0, **extra) -> Sku:
    sku = Sku.objects.create(goods=goods, merchant_code=code, name=extra.pop("name", "纯棉T恤"), **extra)
    if on_hand:
        services.receive_stock(sku=sku, quantity=on_hand, reason="opening stock")
    return sku


@pytest.fixture(autouse=True)
def _no_celery(monkeypatch):
    monkeypatch.setattr(tasks.push_listing_task, "delay", lambda *args, **kwargs: None)


def test_sku_list_filters_and_stock_fields(api, goods):
    white = make_sku(goods, "TS-W", on_hand=9, barcode="6901234567892")
    make_sku(goods, "TS-B", name="黑色卫衣")
    make_sku(goods, "OLD-1", is_active=False)
    services.reserve_stock(source_key="line:1", sku=white, quantity=2)
    call = api(Role.VIEWER)

    def codes(query):
        response = call("get", f"/api/v1/skus/?{query}")
        assert response.status_code == 200
        return sorted(row["merchant_code"] for row in response.json()["results"])

    assert codes("") == ["OLD-1", "TS-B", "TS-W"]
    assert codes("search=ts-") == ["TS-B", "TS-W"]
    assert codes("search=6901234567892") == ["TS-W"]
    assert codes("search=卫衣") == ["TS-B"]
    assert codes("merchant_code=TS-B") == ["TS-B"]
    assert codes("is_active=false") == ["OLD-1"]
    detail = call("get", f"/api/v1/skus/{white.pk}/").json()
    assert (detail["on_hand"], detail["reserved"], detail["available"]) == (9, 2, 7)
    assert detail["goods_name"] == "纯棉T恤" and detail["components"] == []


def test_sku_create_and_update_need_inventory_manage(api, goods):
    viewer = api(Role.VIEWER)
    denied = viewer("post", "/api/v1/skus/", {"goods": goods.pk, "merchant_code": "N-1", "name": "新品"})
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "permission_denied"
    assert not Sku.objects.filter(merchant_code="N-1").exists()

    warehouse = api(Role.WAREHOUSE)
    created = warehouse(
        "post", "/api/v1/skus/", {"goods": goods.pk, "merchant_code": "N-1", "name": "新品", "cost_fen": 1250}
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["merchant_code"], body["cost_fen"], body["available"], body["is_combo"]) == (
        "N-1",
        1250,
        0,
        False,
    )

    patched = warehouse("patch", f"/api/v1/skus/{body['id']}/", {"spec": "白 L", "is_combo": True})
    assert patched.status_code == 200 and patched.json()["spec"] == "白 L"
    assert Sku.objects.get(pk=body["id"]).is_combo is False  # read-only: combinations come from the import

    duplicate = warehouse(
        "post", "/api/v1/skus/", {"goods": goods.pk, "merchant_code": "N-1", "name": "x", "cost_fen": -1}
    )
    assert duplicate.status_code == 400
    error = duplicate.json()["error"]
    assert error["code"] == "invalid" and set(error["details"]) == {"merchant_code", "cost_fen"}
    assert viewer("delete", f"/api/v1/skus/{body['id']}/").status_code in (403, 405)
    assert Sku.objects.filter(pk=body["id"]).exists()


def test_stock_levels_and_ledger_are_filtered_and_keyset_paged(api, goods):
    shirt = make_sku(goods, "L-1", on_hand=5)
    cap = make_sku(goods, "L-2", on_hand=3)
    east = Warehouse.objects.create(name="华东仓", code="EAST")
    services.receive_stock(sku=shirt, quantity=4, warehouse=east)
    for i in range(3):
        services.adjust_stock(sku=shirt, delta=1, reason=f"found {i}")
    call = api(Role.FINANCE)

    levels = call("get", f"/api/v1/stock-levels/?sku={shirt.pk}").json()["results"]
    assert sorted((row["warehouse_code"], row["on_hand"], row["available"]) for row in levels) == [
        ("EAST", 4, 4),
        ("MAIN", 8, 8),
    ]
    only_east = call("get", f"/api/v1/stock-levels/?warehouse={east.pk}").json()["results"]
    assert [row["merchant_code"] for row in only_east] == ["L-1"]

    first = call("get", f"/api/v1/ledger/?sku={shirt.pk}&page_size=2").json()
    assert [row["reason"] for row in first["results"]] == ["found 2", "found 1"]  # newest first
    second = call("get", first["next"]).json()
    assert [row["kind"] for row in second["results"]] == ["adjustment", "receipt"]
    assert "page=" not in first["next"] and "cursor=" in first["next"]
    kinds = call("get", f"/api/v1/ledger/?kind=receipt&sku={cap.pk}").json()["results"]
    assert [(row["merchant_code"], row["on_hand_delta"]) for row in kinds] == [("L-2", 3)]


def test_adjustment_returns_the_ledger_row_and_errors_use_the_envelope(api, goods):
    sku = make_sku(goods, "A-1", on_hand=5)
    services.reserve_stock(source_key="line:a1", sku=sku, quantity=4)
    call = api(Role.WAREHOUSE)

    ok = call("post", "/api/v1/adjustments/", {"sku": sku.pk, "delta": -1, "reason": "破损"})
    assert ok.status_code == 201, ok.content
    row = ok.json()
    assert (row["kind"], row["on_hand_delta"], row["on_hand_after"], row["reserved_after"]) == (
        "adjustment",
        -1,
        4,
        4,
    )
    assert row["username"] == "api-warehouse" and row["id"] == StockLedgerEntry.objects.latest("id").pk

    short = call("post", "/api/v1/adjustments/", {"sku": sku.pk, "delta": -1, "reason": "破损"})
    assert short.status_code == 409 and short.json()["error"]["code"] == "insufficient_stock"
    zero = call("post", "/api/v1/adjustments/", {"sku": sku.pk, "delta": 0, "reason": "x"})
    assert zero.status_code == 400 and zero.json()["error"] == {
        "code": "invalid",
        "message": "调整数量不能为 0",
        "details": None,
    }
    bad = call("post", "/api/v1/adjustments/", {"sku": 999999, "delta": 1})
    assert bad.status_code == 400 and set(bad.json()["error"]["details"]) == {"sku", "reason"}
    assert StockLevel.objects.get(sku=sku).on_hand == 4

    viewer = api(Role.VIEWER)
    denied = viewer("post", "/api/v1/adjustments/", {"sku": sku.pk, "delta": 1, "reason": "x"})
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "permission_denied"
    assert StockLevel.objects.get(sku=sku).on_hand == 4


def test_listings_filter_and_manual_match(api, goods):
    sku = make_sku(goods, "M-1", on_hand=2)
    store = Store.objects.create(platform="douyin", platform_shop_id="1001", name="抖店旗舰店", app_key="k")
    other = Store.objects.create(platform="kuaishou", platform_shop_id="2002", name="快手小店", app_key="k")
    lost = Listing.objects.create(
        store=store, platform_product_id="P1", platform_sku_id="S1", merchant_code="m1"
    )
    Listing.objects.create(
        store=other,
        platform_product_id="P2",
        platform_sku_id="S2",
        merchant_code="M-1",
        sku=sku,
        match="matched",
    )
    junk = Listing.objects.create(store=other, platform_product_id="P3", platform_sku_id="S3")

    viewer = api(Role.VIEWER)
    unmatched = viewer("get", "/api/v1/listings/?match=unmatched").json()["results"]
    assert sorted(row["platform_sku_id"] for row in unmatched) == ["S1", "S3"]
    in_store = viewer("get", f"/api/v1/listings/?store={store.pk}").json()["results"]
    assert [row["platform_sku_id"] for row in in_store] == ["S1"]
    denied = viewer("post", f"/api/v1/listings/{lost.pk}/match/", {"sku": sku.pk})
    assert denied.status_code == 403

    operator = api(Role.OPERATOR)
    matched = operator("post", f"/api/v1/listings/{lost.pk}/match/", {"sku": sku.pk})
    assert matched.status_code == 200, matched.content
    assert (matched.json()["match"], matched.json()["merchant_code_of_sku"]) == ("matched", "M-1")
    ignored = operator("post", f"/api/v1/listings/{junk.pk}/match/", {"sku": None})
    assert ignored.json()["match"] == "ignored"
    missing = operator("post", f"/api/v1/listings/{junk.pk}/match/", {"sku": 999999})
    assert missing.status_code == 400 and "sku" in missing.json()["error"]["details"]
    assert (
        operator("post", "/api/v1/listings/999999/match/", {"sku": sku.pk}).json()["error"]["code"]
        == "not_found"
    )
    pushed = viewer("get", "/api/v1/listings/?push_state=pending&match=matched").json()["results"]
    assert sorted(row["platform_sku_id"] for row in pushed) == ["S1", "S2"]


def test_inventory_endpoints_are_in_the_openapi_schema(alpha_client):
    alpha_client.post("/accounts/login/", {"username": "alpha-owner", "password": OWNER_PASSWORD})
    paths = alpha_client.get("/api/schema/?format=json").json()["paths"]
    for path in (
        "/api/v1/skus/",
        "/api/v1/skus/{id}/",
        "/api/v1/stock-levels/",
        "/api/v1/ledger/",
        "/api/v1/adjustments/",
        "/api/v1/listings/",
        "/api/v1/listings/{id}/match/",
    ):
        assert path in paths, path
    adjust = paths["/api/v1/adjustments/"]["post"]
    assert {"201", "400", "409"} <= set(adjust["responses"])
    params = {p["name"] for p in paths["/api/v1/skus/"]["get"]["parameters"]}
    assert {"search", "merchant_code", "is_active"} <= params

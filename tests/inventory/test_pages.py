"""The inventory pages: SKU list and detail, adjustments and counts, listings, unmatched queue,
sync status — as the warehouse, finance and viewer roles see them."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from channels.models import Store
from inventory import services, tasks
from inventory.models import ComboComponent, Goods, Listing, Sku, StockLedgerEntry, StockLevel, Warehouse
from tenants.accounts.models import Role
from tests.conftest import make_user

PASSWORD = "Staff-pass-2026"


@pytest.fixture
def as_role(alpha, alpha_client):
    """Log the alpha client in as a new user of ``role``."""

    def login(role: str):
        make_user(alpha, f"inv-{role}", role, PASSWORD)
        response = alpha_client.post("/accounts/login/", {"username": f"inv-{role}", "password": PASSWORD})
        assert response.status_code == 302
        return alpha_client

    return login


def make_sku(code: str, *, on_hand: int = 0, goods: Goods | None = None, **extra) -> Sku:
    goods = goods or Goods.objects.create(name=f"货品 {code}", category=extra.pop("category", ""))
    sku = Sku.objects.create(goods=goods, merchant_code=code, name=extra.pop("name", f"T恤 {code}"), **extra)
    if on_hand:
        services.receive_stock(sku=sku, quantity=on_hand, reason="opening stock")
    return sku


def make_store(name: str = "抖店旗舰店", shop_id: str = "1001") -> Store:
    return Store.objects.create(platform="douyin", platform_shop_id=shop_id, name=name, app_key="k")


def make_listing(store: Store, sku_id: str, *, sku: Sku | None = None, code: str = "", **extra) -> Listing:
    return Listing.objects.create(
        store=store,
        platform_product_id="P" + sku_id,
        platform_sku_id=sku_id,
        merchant_code=code or (sku.merchant_code if sku else ""),
        title="夏季T恤",
        sku=sku,
        match=Listing.Match.MATCHED if sku else Listing.Match.UNMATCHED,
        **extra,
    )


@pytest.fixture
def queued(monkeypatch):
    """Celery sends made by the views (after commit), recorded instead of sent."""
    sent = []
    monkeypatch.setattr(tasks.push_listing_task, "delay", lambda *args, **kwargs: sent.append((args, kwargs)))
    return sent


# --- SKU list ------------------------------------------------------------------------------------


def test_sku_list_shows_balances_and_filters_by_stock_status(in_alpha, as_role):
    plenty = make_sku("A-100", on_hand=50)
    low = make_sku("A-200", on_hand=3)
    make_sku("A-300")
    services.reserve_stock(source_key="line:1", sku=plenty, quantity=8)
    client = as_role(Role.WAREHOUSE)

    response = client.get("/inventory/skus/")
    assert response.status_code == 200
    rows = {sku.merchant_code: sku for sku in response.context["page"].rows}
    assert (rows["A-100"].on_hand, rows["A-100"].reserved, rows["A-100"].available) == (50, 8, 42)
    assert [rows[c].stock_status for c in ("A-100", "A-200", "A-300")] == ["ok", "low", "out"]
    assert "可用" in response.content.decode()  # Chinese first

    def codes(query):
        return [sku.merchant_code for sku in client.get(f"/inventory/skus/?{query}").context["page"].rows]

    assert codes("stock=out") == ["A-300"]
    assert codes("stock=low") == ["A-200"]
    assert codes("stock=ok") == ["A-100"]
    assert codes("q=a-2") == ["A-200"]  # merchant code prefix, any case
    assert low.barcode == "" and codes("q=T恤 A-3") == ["A-300"]  # part of the name


def test_sku_list_filters_by_warehouse_category_combo_and_listing_state(in_alpha, as_role):
    main = services.default_warehouse()
    second = Warehouse.objects.create(name="二号仓", code="WH2")
    shirt = make_sku("B-1", on_hand=5, category="服装")
    services.receive_stock(sku=shirt, quantity=7, warehouse=second)
    cap = make_sku("B-2", on_hand=4, category="配饰")
    combo = make_sku("B-9", is_combo=True)
    ComboComponent.objects.create(combo=combo, component=shirt, quantity=2)
    ComboComponent.objects.create(combo=combo, component=cap, quantity=1)
    store = make_store()
    make_listing(store, "9001", sku=shirt, push_state=Listing.PushState.FAILED)
    make_listing(store, "9002", code="B-2")  # unmatched although the code exists now
    client = as_role(Role.VIEWER)

    def rows(query):
        return {s.merchant_code: s for s in client.get(f"/inventory/skus/?{query}").context["page"].rows}

    assert rows("")["B-1"].available == 12
    assert rows(f"warehouse={second.pk}")["B-1"].available == 7
    assert rows(f"warehouse={main.pk}")["B-9"].available == 2  # min(5 // 2, 4 // 1)
    assert rows("")["B-9"].available == 4  # min(12 // 2, 4 // 1)
    assert set(rows("category=服装")) == {"B-1"}
    assert set(rows("combo=1")) == {"B-9"}
    assert set(rows("combo=0")) == {"B-1", "B-2"}
    assert set(rows("listing=failed")) == {"B-1"}
    assert set(rows("listing=unmatched")) == {"B-2"}
    assert set(rows("listing=unlisted")) == {"B-2", "B-9"}
    assert rows("")["B-1"].sync_state == "failed"
    assert rows("warehouse=abc&stock=nonsense")  # invalid filter values are ignored, not fatal


def test_sku_list_pages_by_merchant_code(in_alpha, as_role):
    for i in range(57):
        make_sku(f"P-{i:03d}")
    client = as_role(Role.WAREHOUSE)
    first = client.get("/inventory/skus/?q=P-").context["page"]
    assert len(first.rows) == 50 and first.next_key == "P-049" and first.prev_key is None
    second = client.get(f"/inventory/skus/?q=P-&after={first.next_key}").context["page"]
    assert [s.merchant_code for s in second.rows] == [f"P-{i:03d}" for i in range(50, 57)]
    assert second.next_key is None and second.prev_key == "P-050"
    back = client.get(f"/inventory/skus/?q=P-&before={second.prev_key}").context["page"]
    assert [s.merchant_code for s in back.rows] == [f"P-{i:03d}" for i in range(50)]


def test_sku_list_query_count_does_not_grow_with_rows(in_alpha, as_role):
    client = as_role(Role.WAREHOUSE)
    store, other = make_store(), make_store("快手小店", "2002")

    def add(n, start):
        for i in range(start, start + n):
            sku = make_sku(f"Q-{i:03d}", on_hand=3)
            make_listing(store, f"a{i}", sku=sku)
            make_listing(other, f"b{i}", sku=sku)

    add(2, 0)
    with CaptureQueriesContext(connection) as few:
        assert client.get("/inventory/skus/").status_code == 200
    add(20, 2)
    with CaptureQueriesContext(connection) as many:
        response = client.get("/inventory/skus/")
    assert len(response.context["page"].rows) == 22
    assert len(many.captured_queries) == len(few.captured_queries)


def test_export_of_the_current_filter_is_an_xlsx_of_those_skus(in_alpha, as_role):
    from io import BytesIO

    from openpyxl import load_workbook

    make_sku("E-1", on_hand=2)
    make_sku("E-2")
    make_sku("F-1")
    viewer = as_role(Role.VIEWER)
    assert viewer.get("/inventory/skus/export/?q=E-").status_code == 403  # export: its own capability
    viewer.post("/accounts/logout/")
    response = as_role(Role.OPERATOR).get("/inventory/skus/export/?q=E-")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    sheet = load_workbook(BytesIO(response.content)).worksheets[0]
    assert [row[1] for row in sheet.iter_rows(min_row=2, values_only=True)] == ["E-1", "E-2"]


# --- SKU detail, adjustments and counts ----------------------------------------------------------


def test_detail_shows_warehouses_listings_and_ledger(in_alpha, as_role):
    sku = make_sku("D-1", on_hand=10)
    services.reserve_stock(source_key="line:7", sku=sku, quantity=4)
    store = make_store()
    make_listing(store, "7001", sku=sku, pushed_qty=6, computed_qty=6, push_state=Listing.PushState.IN_SYNC)
    response = as_role(Role.WAREHOUSE).get(f"/inventory/skus/{sku.pk}/")
    assert response.status_code == 200
    body = response.content.decode()
    assert [(w.on_hand, w.reserved, w.available) for w in response.context["warehouses"]] == [(10, 4, 6)]
    assert [e.kind for e in response.context["ledger"].rows] == ["reservation", "receipt"]  # newest first
    assert "7001" in body and 'data-testid="adjust-form"' in body and 'data-testid="push-now"' in body


def test_read_only_roles_see_no_forms_and_cannot_post(in_alpha, alpha, alpha_client):
    sku = make_sku("D-2", on_hand=5)
    listing = make_listing(make_store(), "7002", sku=sku)
    for role in (Role.FINANCE, Role.VIEWER):
        make_user(alpha, f"ro-{role}", role, PASSWORD)
        alpha_client.post("/accounts/login/", {"username": f"ro-{role}", "password": PASSWORD})
        page = alpha_client.get(f"/inventory/skus/{sku.pk}/")
        assert (
            page.status_code == 200 and b"adjust-form" not in page.content and b"push-now" not in page.content
        )
        assert (
            alpha_client.post(
                f"/inventory/skus/{sku.pk}/adjust/", {"adjust-delta": "1", "adjust-reason": "x"}
            ).status_code
            == 403
        )
        assert (
            alpha_client.post(f"/inventory/skus/{sku.pk}/count/", {"count-counted": "1"}).status_code == 403
        )
        assert (
            alpha_client.post(f"/inventory/listings/{listing.pk}/lock/", {"locked": "1"}).status_code == 403
        )
        assert alpha_client.post(f"/inventory/listings/{listing.pk}/push/").status_code == 403
        assert (
            alpha_client.post(f"/inventory/listings/{listing.pk}/match/", {"action": "ignore"}).status_code
            == 403
        )
        assert alpha_client.get("/inventory/skus/import/").status_code == 403
        assert alpha_client.post("/inventory/sync/retry-failed/").status_code == 403
    assert StockLedgerEntry.objects.filter(sku=sku).count() == 1
    listing.refresh_from_db()
    assert not listing.locked and listing.match == Listing.Match.MATCHED


def test_adjustment_writes_the_ledger_with_reason_and_user(in_alpha, as_role):
    sku = make_sku("D-3", on_hand=5)
    client = as_role(Role.WAREHOUSE)
    response = client.post(
        f"/inventory/skus/{sku.pk}/adjust/", {"adjust-delta": "-2", "adjust-reason": "破损"}
    )
    assert response.status_code == 302
    entry = StockLedgerEntry.objects.filter(sku=sku).first()
    assert (entry.kind, entry.on_hand_delta, entry.on_hand_after, entry.reason) == (
        "adjustment",
        -2,
        3,
        "破损",
    )
    assert entry.user.username == "inv-warehouse"
    assert "3" in client.get(response["Location"]).content.decode()


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"adjust-delta": "0", "adjust-reason": "盘亏"}, "delta", "零"),
        ({"adjust-delta": "1", "adjust-reason": "  "}, "reason", "必填"),
        ({"adjust-delta": "abc", "adjust-reason": "x"}, "delta", "整数"),
        ({"adjust-delta": "-4", "adjust-reason": "破损"}, "delta", "3"),  # 3 units are reserved
    ],
)
def test_adjustment_errors_are_form_errors_and_change_nothing(in_alpha, as_role, data, field, message):
    sku = make_sku("D-4", on_hand=5)
    services.reserve_stock(source_key="line:d4", sku=sku, quantity=3)
    response = as_role(Role.WAREHOUSE).post(f"/inventory/skus/{sku.pk}/adjust/", data)
    assert response.status_code == 400
    errors = response.context["adjust_form"].errors
    assert message in " ".join(errors[field])
    assert message in response.content.decode()
    assert StockLevel.objects.get(sku=sku).on_hand == 5
    assert StockLedgerEntry.objects.filter(sku=sku, kind="adjustment").count() == 0


def test_combination_refuses_adjustment_with_a_form_error(in_alpha, as_role):
    part = make_sku("D-5", on_hand=4)
    combo = make_sku("D-6", is_combo=True)
    ComboComponent.objects.create(combo=combo, component=part, quantity=2)
    client = as_role(Role.WAREHOUSE)
    page = client.get(f"/inventory/skus/{combo.pk}/")
    assert page.status_code == 200 and b"adjust-form" not in page.content
    assert [(p.component_id, p.sets) for p in page.context["parts"]] == [(part.pk, 2)]
    response = client.post(f"/inventory/skus/{combo.pk}/adjust/", {"adjust-delta": "1", "adjust-reason": "x"})
    assert response.status_code == 400
    assert "组合 SKU 没有自己的库存" in " ".join(response.context["adjust_form"].non_field_errors())
    assert not StockLevel.objects.filter(sku=combo).exists()


def test_count_sets_on_hand_and_a_matching_count_changes_nothing(in_alpha, as_role):
    sku = make_sku("D-7", on_hand=5)
    client = as_role(Role.WAREHOUSE)
    assert client.post(f"/inventory/skus/{sku.pk}/count/", {"count-counted": "8"}).status_code == 302
    entry = StockLedgerEntry.objects.filter(sku=sku).first()
    assert (entry.kind, entry.on_hand_delta, entry.on_hand_after) == ("count", 3, 8)
    response = client.post(f"/inventory/skus/{sku.pk}/count/", {"count-counted": "8"}, follow=True)
    assert StockLedgerEntry.objects.filter(sku=sku).count() == 2
    assert "一致" in response.content.decode() or "matches" in response.content.decode()
    bad = client.post(f"/inventory/skus/{sku.pk}/count/", {"count-counted": "-1"})
    assert bad.status_code == 400 and "counted" in bad.context["count_form"].errors


def test_count_below_reserved_is_a_form_error(in_alpha, as_role):
    sku = make_sku("D-8", on_hand=5)
    services.reserve_stock(source_key="line:d8", sku=sku, quantity=4)
    response = as_role(Role.WAREHOUSE).post(f"/inventory/skus/{sku.pk}/count/", {"count-counted": "2"})
    assert response.status_code == 400 and "4" in " ".join(response.context["count_form"].errors["counted"])
    assert StockLevel.objects.get(sku=sku).on_hand == 5


# --- listings --------------------------------------------------------------------------------------


def test_lock_unlock_and_push_now_return_the_row(
    in_alpha, as_role, queued, django_capture_on_commit_callbacks
):
    sku = make_sku("L-1", on_hand=5)
    listing = make_listing(make_store(), "8001", sku=sku, push_state=Listing.PushState.IN_SYNC)
    client = as_role(Role.WAREHOUSE)

    locked = client.post(f"/inventory/listings/{listing.pk}/lock/", {"locked": "1"}, HTTP_HX_REQUEST="true")
    assert locked.status_code == 200 and b'data-testid="unlock"' in locked.content
    listing.refresh_from_db()
    assert listing.locked and listing.push_state == Listing.PushState.LOCKED

    with django_capture_on_commit_callbacks(execute=True):
        unlocked = client.post(f"/inventory/listings/{listing.pk}/lock/", {"locked": "0"})
    assert b'data-testid="push-now"' in unlocked.content
    listing.refresh_from_db()
    assert not listing.locked and listing.push_state == Listing.PushState.PENDING

    queued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        pushed = client.post(f"/inventory/listings/{listing.pk}/push/", {"ctx": "sync"})
    assert pushed.status_code == 200 and b"push-queued" in pushed.content and b"L-1" in pushed.content
    assert queued == [((listing.pk,), {"force": True})]
    refreshed = client.get(f"/inventory/listings/{listing.pk}/row/")
    assert refreshed.status_code == 200 and b"push-queued" not in refreshed.content


def test_unmatched_queue_suggests_and_resolves(in_alpha, as_role, queued, django_capture_on_commit_callbacks):
    sku = make_sku("U-100", on_hand=5)
    other = make_sku("U-200")
    store = make_store()
    fuzzy = make_listing(store, "6001", code=" u-100 ")  # auto-matching missed it: case and spaces
    unknown = make_listing(store, "6002", code="NOPE")
    junk = make_listing(store, "6003", code="")
    make_listing(store, "6004", sku=other)  # matched: not in the queue
    client = as_role(Role.WAREHOUSE)

    page = client.get("/inventory/listings/unmatched/")
    assert page.status_code == 200
    rows = {listing.pk: listing for listing in page.context["page"].rows}
    assert set(rows) == {fuzzy.pk, unknown.pk, junk.pk}
    assert rows[fuzzy.pk].suggested == sku and rows[unknown.pk].suggested is None
    assert page.context["total"] == 3

    with django_capture_on_commit_callbacks() as callbacks:
        matched = client.post(f"/inventory/listings/{fuzzy.pk}/match/", {"sku": "U-100"})
    for callback in callbacks:  # the push only; the ListingMatched event is the orders app's business
        if "match_listing" in callback.__qualname__:
            callback()
    assert matched.status_code == 200 and b'data-testid="resolved"' in matched.content
    fuzzy.refresh_from_db()
    assert (fuzzy.sku_id, fuzzy.match) == (sku.pk, Listing.Match.MATCHED)
    assert queued == [((fuzzy.pk,), {})]

    missing = client.post(f"/inventory/listings/{unknown.pk}/match/", {"sku": "NOPE"})
    assert missing.status_code == 200 and b"match-errors" in missing.content
    unknown.refresh_from_db()
    assert unknown.match == Listing.Match.UNMATCHED and unknown.sku_id is None

    client.post(f"/inventory/listings/{junk.pk}/match/", {"action": "ignore"})
    junk.refresh_from_db()
    assert junk.match == Listing.Match.IGNORED

    remaining = client.get("/inventory/listings/unmatched/").context["page"].rows
    assert [listing.pk for listing in remaining] == [unknown.pk]


def test_sku_picker_searches_active_skus_by_code(in_alpha, as_role):
    make_sku("S-10", name="卫衣")
    make_sku("S-11", is_active=False)
    response = as_role(Role.WAREHOUSE).get("/inventory/skus/search/?sku=s-1")
    assert response.status_code == 200
    assert b'value="S-10"' in response.content and b"S-11" not in response.content


def test_sync_status_counts_per_shop_and_retries_failed(
    in_alpha, as_role, queued, django_capture_on_commit_callbacks
):
    sku = make_sku("Y-1", on_hand=5)
    first, second = make_store(), make_store("微信小店", "3003")
    make_listing(first, "1", sku=sku, push_state=Listing.PushState.IN_SYNC)
    failed = make_listing(
        first,
        "2",
        sku=sku,
        push_state=Listing.PushState.FAILED,
        push_error="库存不能超过 9999",
        push_attempts=2,
    )
    make_listing(first, "3", code="X")
    make_listing(second, "4", sku=sku, locked=True, push_state=Listing.PushState.LOCKED)
    client = as_role(Role.WAREHOUSE)

    page = client.get("/inventory/sync/")
    assert page.status_code == 200
    counts = {c.store.pk: c for c in page.context["counts"]}
    assert (counts[first.pk].in_sync, counts[first.pk].failed, counts[first.pk].unmatched) == (1, 1, 1)
    assert counts[second.pk].locked == 1
    assert [listing.pk for listing in page.context["failed"].rows] == [failed.pk]
    assert "库存不能超过 9999" in page.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        retry = client.post("/inventory/sync/retry-failed/", {"store": first.pk})
    assert retry.status_code == 302
    assert queued == [((failed.pk,), {})]

"""The order workbench pages: tabs and counts, filters, search, keyset pages, bulk actions,
the order detail (actions, shipments, timeline, snapshots) and who may do what."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from channels import services as channel_services
from channels.models import Store
from channels.types import CipherField, OrderStatus, Receiver
from orders import selectors, services, views
from orders.models import Fulfilment, Order
from orders.models import OrderStatus as S
from tenants.accounts.models import Role
from tests.conftest import OWNER_PASSWORD, make_user
from tests.orders.conftest import T0, channel_order, line

PASSWORD = "Staff-pass-2026"
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def login(alpha, alpha_client):
    """``login(role)`` → the alpha client logged in as a user of that role (owner: alpha-owner)."""

    def as_role(role: str = Role.OWNER):
        username, password = "alpha-owner", OWNER_PASSWORD
        if role != Role.OWNER:
            username, password = f"wb-{role}", PASSWORD
            make_user(alpha, username, role, password)
        response = alpha_client.post("/accounts/login/", {"username": username, "password": password})
        assert response.status_code == 302
        return alpha_client

    return as_role


def who(phone_mask: str = "138****8888", index: str | None = None) -> Receiver:
    return Receiver(
        CipherField("#name#", "张*", "idx-zhang"),
        CipherField("$tel$", phone_mask, index or f"idx-{phone_mask}"),
        CipherField("#addr#", "文***号", "idx-addr"),
        "浙江省",
        "杭州市",
        "西湖区",
    )


def ingest(store, oid: str, *, minutes: int = 0, **kw) -> Order:
    """An order placed ``minutes`` after T0 (each to its own receiver unless one is given)."""
    kw.setdefault("receiver", who(index=f"idx-{oid}"))
    co = channel_order(oid=oid, **kw)
    co = replace(co, created_at=T0 + timedelta(minutes=minutes))
    return services.ingest_channel_order(store=store, co=co)


def ids(response) -> list[str]:
    return [o.platform_order_id for o in response.context["page"].rows]


def tab_counts(response) -> dict[str, str]:
    return {value: count for value, _label, count, _query in response.context["tabs"]}


# --- tabs and counts -----------------------------------------------------------------------------


@pytest.fixture
def mixed(store, skus):
    """One order in each workbench state."""
    ingest(store, "P1", status=OrderStatus.UNPAID, minutes=1)
    ingest(store, "A1", minutes=2)  # auto-approved → to ship
    ingest(store, "A2", minutes=3)
    ingest(store, "H1", minutes=4, buyer_remark="请发顺丰")  # held by the remark rule
    ingest(store, "H2", minutes=5, lines=(line(1, "NOPE-1"),))  # unmatched SKU → held
    ingest(store, "S1", status=OrderStatus.SHIPPED, minutes=6)
    ingest(store, "C1", status=OrderStatus.COMPLETED, minutes=7)
    ingest(store, "R1", minutes=8, lines=(line(1, refund_state="refunding"),))
    services.cancel(order=ingest(store, "X1", minutes=9), actor=None, reason="duplicate")
    services.set_rule(kind="auto_approve", enabled=False)
    ingest(store, "T1", minutes=10)  # to review
    return store


def test_tabs_show_counts_per_state_from_one_query(in_alpha, mixed, login):
    client = login(Role.OPERATOR)
    response = client.get("/orders/")
    assert response.status_code == 200
    assert tab_counts(response) == {
        "": "10",
        "pending_payment": "1",
        "to_review": "1",
        "approved": "3",  # A1, A2 and R1 (refunding, but still to ship)
        "partially_shipped": "0",
        "shipped": "1",
        "completed": "1",
        "refunding": "1",
        "held": "2",
        "cancelled": "1",
    }
    html = response.content.decode()
    for label in ("待付款", "待审核", "待发货", "部分发货", "已发货", "已完成", "售后中", "异常"):
        assert label in html
    with CaptureQueriesContext(connection) as queries:
        selectors.tab_counts(selectors.OrderFilters())
    assert len(queries) == 1

    held = client.get("/orders/?status=held")
    assert ids(held) == ["H2", "H1"]
    reasons = {
        o.platform_order_id: [code for code, _label in o.hold_labels] for o in held.context["page"].rows
    }
    assert reasons == {"H1": ["buyer_remark"], "H2": ["unmatched"]}
    # the unmatched flag repeats the hold reason: shown once
    assert [o.flag_labels for o in held.context["page"].rows] == [[], []]
    assert "买家留言" in held.content.decode() and "未匹配" in held.content.decode()
    assert ids(client.get("/orders/?status=refunding")) == ["R1"]
    assert ids(client.get("/orders/?status=to_review")) == ["T1"]
    assert ids(client.get("/orders/?status=nonsense")) == ids(response)  # invalid tab: all


def test_tab_counts_are_capped_and_follow_only_the_cheap_filters(in_alpha, mixed, login, monkeypatch):
    monkeypatch.setattr(selectors, "COUNT_CAP", 2)
    client = login()
    counts = tab_counts(client.get("/orders/"))
    assert counts[""] == "2+" and counts["approved"] == "2+" and counts["held"] == "2"
    assert counts["shipped"] == "1"
    # a time range narrows the counts; a remark filter narrows only the table
    placed_to = (T0 + timedelta(minutes=3, seconds=30)).astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M:%S")
    monkeypatch.setattr(selectors, "COUNT_CAP", 10_000)
    narrowed = client.get(f"/orders/?placed_to={placed_to}")
    assert tab_counts(narrowed)[""] == "3" and ids(narrowed) == ["A2", "A1", "P1"]
    remark = client.get("/orders/?remark=buyer")
    assert ids(remark) == ["H1"] and tab_counts(remark)[""] == "10"


# --- filters and search --------------------------------------------------------------------------


def test_every_filter_narrows_the_list(in_alpha, store, skus, login):
    other = Store.objects.create(platform="kuaishou", platform_shop_id="9001", name="快手小店", app_key="k2")
    ingest(store, "F1", minutes=1, lines=(line(1, "TS-WHT-L", qty=2, price=5000),))  # ¥100.00
    ingest(store, "F2", minutes=2, lines=(line(1, "CAP-RED", price=1990),), seller_remark="加急")
    ingest(store, "F3", minutes=3, lines=(line(1, "TS-BLK-M", qty=3),))  # short of stock
    ingest(store, "F4", minutes=4, lines=(line(1, "GHOST"),), buyer_remark="不要葱")
    ks = channel_order(oid="K1", receiver=who(index="idx-K1"))
    ks = replace(ks, platform=ks.platform.__class__("kuaishou"), created_at=T0 + timedelta(minutes=5))
    services.ingest_channel_order(store=other, co=ks)
    order = Order.objects.get(platform_order_id="F1")
    order.address_changed = True
    order.save(update_fields=["address_changed"])
    client = login(Role.VIEWER)

    def q(query: str) -> list[str]:
        response = client.get(f"/orders/?{query}")
        assert response.status_code == 200
        return ids(response)

    assert q("") == ["K1", "F4", "F3", "F2", "F1"]
    assert q(f"store={other.pk}") == ["K1"]
    assert q("platform=douyin") == ["F4", "F3", "F2", "F1"]
    start = (T0 + timedelta(minutes=2)).astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M")
    end = (T0 + timedelta(minutes=4)).astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M")
    assert q(f"placed_from={start}&placed_to={end}") == ["F3", "F2"]
    assert q("code=CAP-RED") == ["F2"]
    assert q("min_yuan=100") == ["F3", "F1"]  # ¥297.00 and ¥100.00
    assert q("min_yuan=19.90&max_yuan=99.99") == ["K1", "F4", "F2"]
    assert q("max_yuan=19.90") == ["F2"]
    assert q("remark=buyer") == ["F4"]
    assert q("remark=seller") == ["F2"]
    assert q("remark=none") == ["K1", "F3", "F1"]
    assert q("flags=out_of_stock") == ["F3"]
    assert q("flags=unmatched") == ["F4"]
    assert q("flags=address_changed") == ["F1"]
    assert q("flags=address_changed&flags=unmatched") == []
    assert q("min_yuan=abc&store=999999&placed_from=yesterday") == q("")  # bad values are ignored


def test_search_by_order_ids_sku_code_and_phone_tail(in_alpha, store, skus, login):
    ingest(store, "6920000000000000101", minutes=1, receiver=who("139****1234"))
    ingest(store, "6920000000000000102", minutes=2, receiver=who("138****5678"))
    ingest(store, "6920000000000000103", minutes=3, lines=(line(1, "CAP-RED"),), receiver=who("137****0000"))
    client = login()

    def search(text: str) -> list[str]:
        return ids(client.get("/orders/", {"q": text}))

    assert search("6920000000000000102") == ["6920000000000000102"]
    assert search("6920000000000000101, 6920000000000000103") == [
        "6920000000000000103",
        "6920000000000000101",
    ]
    assert search("1234") == ["6920000000000000101"]  # last four digits of the phone
    assert search("CAP-RED") == ["6920000000000000103"]
    assert search("nothing-like-it") == []
    # a search inside a tab stays inside the tab
    assert ids(client.get("/orders/", {"q": "1234", "status": "held"})) == []


# --- keyset pages --------------------------------------------------------------------------------


def test_keyset_pages_have_no_duplicates_or_gaps_and_stay_stable(in_alpha, store, skus, login, monkeypatch):
    monkeypatch.setattr(views, "PAGE_SIZE", 3)
    # eight orders, three of them placed at the same instant (ties are broken by id)
    for n, minutes in enumerate([1, 2, 2, 2, 3, 4, 5, 6]):
        ingest(store, f"K{n}", minutes=minutes)
    expected = list(Order.objects.order_by("-placed_at", "-id").values_list("platform_order_id", flat=True))
    client = login()

    seen, url, pages, last = [], "/orders/", [], None
    while url:
        last = client.get(url)
        pages.append(ids(last))
        seen += ids(last)
        if len(pages) == 1:  # a new order arrives while the operator pages
            ingest(store, "NEW", minutes=60)
        page = last.context["page"]
        url = f"/orders/?after={page.next_key}" if page.next_key else None
    assert seen == expected and len(pages) == 3
    assert "NEW" not in seen
    # and back: the page before the last one is the middle page, unchanged
    back = client.get(f"/orders/?before={last.context['page'].prev_key}")
    assert ids(back) == pages[1]
    assert back.context["page"].prev_key and back.context["page"].next_key
    assert ids(client.get("/orders/"))[0] == "NEW"
    assert ids(client.get("/orders/?after=garbage")) == ids(client.get("/orders/"))


def test_a_page_costs_the_same_queries_however_many_orders(in_alpha, store, skus, login):
    client = login()
    for n in range(3):
        ingest(store, f"Q{n}", minutes=n, lines=(line(1), line(2, "CAP-RED")))
    client.get("/orders/")  # warm up (session, user)
    with CaptureQueriesContext(connection) as few:
        client.get("/orders/")
    for n in range(3, 12):
        ingest(store, f"Q{n}", minutes=n, lines=(line(1), line(2, "CAP-RED")))
    with CaptureQueriesContext(connection) as many:
        assert len(ids(client.get("/orders/"))) == 12
    assert len(many) == len(few)
    assert not [q["sql"] for q in many if "OFFSET" in q["sql"].upper()]


def _plan(qs, *, without: tuple[str, ...] = ()) -> str:
    """The plan of ``qs`` when sorting and table scans are priced out, and the indexes
    ``without`` are dropped (inside the test's transaction, so rolled back)."""
    sql, params = qs.query.sql_with_params()
    with connection.cursor() as cursor:
        for index in without:
            cursor.execute(f"DROP INDEX {index}")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("RESET enable_seqscan")
        cursor.execute("RESET enable_sort")
    return plan


@pytest.mark.parametrize(
    ("filters", "index", "without"),
    [
        ({}, "order_placed", ()),
        ({"status": "to_review"}, "order_status_placed", ()),
        ({"store_id": 1}, "order_store_placed", ()),
        (
            {"store_id": 1, "status": "approved"},
            "order_store_status_placed",
            ("order_store_placed", "order_status_placed"),
        ),
        ({"status": "refunding"}, "order_refunding_placed", ("order_placed",)),
        ({"flags": ("unmatched",)}, "order_flagged_placed", ("order_placed",)),
        ({"flags": ("address_changed", "out_of_stock")}, "order_flagged_placed", ("order_placed",)),
    ],
)
def test_list_pages_walk_an_index_in_list_order(in_alpha, filters, index, without):
    """Whatever the tab, shop or flag, a page can be read from an index in (placed_at, id)
    order: no sort, no table scan, also from a keyset position. (``without`` drops the
    general indexes the planner could also pick on an empty table, to show that the
    specific one serves the query.)"""
    qs = selectors.order_list(selectors.OrderFilters(**filters))
    for n, page_qs in enumerate((qs[:51], selectors.older_than(qs, T0, 42)[:51])):
        plan = _plan(page_qs, without=without if n == 0 else ())
        # On near-empty tables the planner may pick any index that yields list order; what must
        # hold is an index scan in (placed_at, id) order — no sort, no table scan.
        assert "Index Scan" in plan, plan
        assert "Sort" not in plan and "Seq Scan" not in plan, plan


# --- bulk actions --------------------------------------------------------------------------------


def test_bulk_approve_reports_each_order_and_rerenders_the_list(in_alpha, store, skus, login):
    services.set_rule(kind="auto_approve", enabled=False)
    a = ingest(store, "B1", minutes=1)
    b = ingest(store, "B2", minutes=2)
    gone = services.cancel(order=ingest(store, "B3", minutes=3), actor=None, reason="x")
    client = login(Role.OPERATOR)
    response = client.post(
        "/orders/bulk/",
        {"action": "approve", "ids": [a.pk, b.pk, gone.pk], "filter_query": "status=to_review"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert response.templates[0].name == "orders/_workbench.html"
    results = {o.platform_order_id: (ok, reason) for o, ok, reason in response.context["results"]}
    assert results["B1"] == (True, "") and results["B2"] == (True, "")
    assert results["B3"][0] is False and "已取消" in results["B3"][1]
    a.refresh_from_db()
    assert a.status == S.APPROVED and a.events.filter(source="user", actor__username="wb-operator").exists()
    assert ids(response) == []  # the to-review tab is now empty
    assert tab_counts(response)["approved"] == "2"
    html = response.content.decode()
    assert "2 order(s) done." in html or "已处理 2 单" in html


def test_bulk_hold_needs_a_reason_and_holds_with_it(in_alpha, store, skus, login):
    a = ingest(store, "H1", minutes=1)
    client = login()
    response = client.post("/orders/bulk/", {"action": "hold", "ids": [a.pk]}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    a.refresh_from_db()
    assert a.status == S.APPROVED
    response = client.post("/orders/bulk/", {"action": "hold", "ids": [a.pk], "reason": "等买家确认"})
    assert response.status_code == 302 and response["Location"] == "/orders/"
    a.refresh_from_db()
    assert a.status == S.HELD and a.hold_reasons == ["manual"]
    assert a.events.filter(message="等买家确认").exists()


def test_bulk_merge_and_its_refusal(in_alpha, store, skus, login, settings):
    settings.ORDERS_AUTO_MERGE = False
    same = who("138****8888", "idx-same")
    a = ingest(store, "M1", minutes=1, receiver=same)
    b = ingest(store, "M2", minutes=2, receiver=same)
    c = ingest(store, "M3", minutes=3)
    client = login()
    response = client.post("/orders/bulk/", {"action": "merge", "ids": [a.pk, c.pk]}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and not response.context["results"]
    assert "收货人" in response.content.decode() or "one receiver" in response.content.decode()
    response = client.post("/orders/bulk/", {"action": "merge", "ids": [a.pk, b.pk]}, HTTP_HX_REQUEST="true")
    merged = Fulfilment.objects.get(lines__order_line__order=a)
    assert merged.is_merged and set(
        merged.lines.values_list("order_line__order__platform_order_id", flat=True)
    ) == {
        "M1",
        "M2",
    }
    assert all(ok for _o, ok, _r in response.context["results"])


# --- order detail --------------------------------------------------------------------------------


def test_detail_shows_lines_shipments_timeline_and_every_snapshot(in_alpha, store, skus, login):
    first = channel_order(oid="D1", status=OrderStatus.UNPAID, receiver=who(index="idx-D1"))
    paid = replace(
        first,
        status=OrderStatus.PAID,
        platform_status="2",
        updated_at=first.updated_at + timedelta(minutes=5),
        buyer_remark="",
    )
    for version, raw in (
        (first, {"order_id": "D1", "order_status": 1}),
        (paid, {"order_id": "D1", "order_status": 2}),
    ):
        channel_services.store_order_version(store=store, order=version, payload=raw, source="pull")
    from channels.models import OrderSnapshot

    for snapshot in OrderSnapshot.objects.filter(platform_order_id="D1").order_by("platform_updated_at"):
        services.ingest_snapshots(snapshot_ids=[snapshot.pk])
    order = Order.objects.get(platform_order_id="D1")
    operator = login(Role.OPERATOR)
    assert operator.get(f"/orders/{order.pk}/").context["snapshots"]  # raw versions: owners and operators
    operator.post("/accounts/logout/")
    client = login(Role.VIEWER)
    response = client.get(f"/orders/{order.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert response.context["snapshots"] is None and "&quot;order_status&quot;" not in html
    client.post("/accounts/logout/")
    response = login(Role.OWNER).get(f"/orders/{order.pk}/")
    snapshots = response.context["snapshots"]
    assert [s.payload["order_status"] for s in snapshots] == [2, 1]  # newest first
    assert snapshots[0].applied and not snapshots[1].applied
    assert "&quot;order_status&quot;: 2" in response.content.decode() and "<details" in html
    kinds = [e.kind for e in response.context["events"]]
    assert kinds[-1] == "created" and "paid" in kinds and "status_changed" in kinds
    approved = next(e for e in response.context["events"] if e.kind == "status_changed")
    assert ("状态", "待付款", "待发货") in approved.changes
    created = next(e for e in response.context["events"] if e.kind == "created")
    assert ("实付", None, "¥99.00") in created.changes
    assert not [c for c in created.changes if c[0] == "买家留言"]  # nothing → nothing is no change
    assert "待发货" in html and "TS-WHT-L" in html and "¥99.00" in html
    assert len(response.context["fulfilments"]) == 1
    # the viewer sees no action and no decrypt
    assert 'data-testid="order-actions"' not in html and "split-form" not in html


def test_detail_actions_hold_release_cancel_and_refusals(in_alpha, store, skus, login):
    order = ingest(store, "D2")
    client = login(Role.OPERATOR)
    url = f"/orders/{order.pk}/"
    assert client.post(url + "hold/", {"hold-reason": ""}).status_code == 302
    order.refresh_from_db()
    assert order.status == S.APPROVED  # no reason, no hold
    client.post(url + "hold/", {"hold-reason": "核对地址"})
    order.refresh_from_db()
    assert order.status == S.HELD
    page = client.get(url).content.decode()
    assert "手工挂起" in page and "核对地址" in page
    client.post(url + "release/")
    order.refresh_from_db()
    assert order.status == S.APPROVED
    client.post(url + "cancel/", {"cancel-reason": "买家要求"})
    order.refresh_from_db()
    assert order.status == S.CANCELLED
    response = client.post(url + "approve/", follow=True)
    assert response.status_code == 200
    assert any("已取消" in str(m) and m.level_tag == "error" for m in response.context["messages"])
    assert client.post(url + "explode/").status_code == 404


def test_split_and_unmerge_from_the_detail_page(in_alpha, store, skus, login):
    order = ingest(store, "SP1", lines=(line(1, qty=3), line(2, "CAP-RED", qty=2)))
    client = login()
    page = client.get(f"/orders/{order.pk}/")
    first = order.lines.get(platform_line_id="L1")
    assert f'name="qty_{first.pk}"' in page.content.decode()
    client.post(f"/orders/{order.pk}/split/", {f"qty_{first.pk}": "1"})
    shipments = selectors.order_fulfilments(order)
    assert sorted(sum(fl.quantity for fl in f.own_lines) for f in shipments) == [1, 4]
    response = client.post(f"/orders/{order.pk}/split/", {f"qty_{first.pk}": "99"}, follow=True)
    assert any(m.level_tag == "error" for m in response.context["messages"])

    twin = ingest(store, "SP2", receiver=who(index="idx-SP1"))  # same receiver: merged automatically
    merged = Fulfilment.objects.get(lines__order_line__order=twin)
    assert merged.is_merged
    client.post(f"/orders/{twin.pk}/fulfilments/{merged.pk}/unmerge/")
    assert Fulfilment.objects.filter(lines__order_line__order=twin).distinct().count() == 1
    assert (
        not Fulfilment.objects.get(lines__order_line__order=twin)
        .lines.filter(order_line__order=order)
        .exists()
    )


def test_receiver_reveal_goes_through_the_audited_decrypt_only(in_alpha, store, skus, login, monkeypatch):
    order = ingest(store, "RV1")
    calls = []

    def fake_decrypt(**kwargs):
        calls.append(kwargs)
        return "张三"

    monkeypatch.setattr(channel_services, "decrypt_receiver_field", fake_decrypt, raising=False)
    client = login(Role.OPERATOR)
    page = client.get(f"/orders/{order.pk}/").content.decode()
    assert f'hx-post="/orders/{order.pk}/receiver/name/"' in page
    response = client.post(f"/orders/{order.pk}/receiver/name/")
    assert response.status_code == 200 and "张三" in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    assert calls[0]["field"] == "name" and calls[0]["cipher"] == "#name#"
    assert calls[0]["user"].username == "wb-operator" and calls[0]["platform_order_id"] == "RV1"

    monkeypatch.delattr(channel_services, "decrypt_receiver_field")
    page = client.get(f"/orders/{order.pk}/").content.decode()
    assert "disabled" in page and "平台解密" in page
    assert client.post(f"/orders/{order.pk}/receiver/name/").status_code == 404


# --- roles ---------------------------------------------------------------------------------------


def test_viewer_reads_but_cannot_act(in_alpha, store, skus, login):
    order = ingest(store, "V1")
    client = login(Role.VIEWER)
    listing = client.get("/orders/")
    assert listing.status_code == 200 and ids(listing) == ["V1"]
    assert 'data-testid="bulk-actions"' not in listing.content.decode()
    assert client.get(f"/orders/{order.pk}/").status_code == 200
    assert (
        client.post("/orders/bulk/", {"action": "hold", "ids": [order.pk], "reason": "x"}).status_code == 403
    )
    assert client.post(f"/orders/{order.pk}/hold/", {"hold-reason": "x"}).status_code == 403
    assert client.post(f"/orders/{order.pk}/receiver/name/").status_code == 403
    order.refresh_from_db()
    assert order.status == S.APPROVED


def test_orders_page_needs_a_login_and_appears_in_the_menu(in_alpha, alpha_client, login):
    assert alpha_client.get("/orders/").status_code == 302
    client = login()
    assert 'data-testid="nav-orders"' in client.get("/").content.decode()

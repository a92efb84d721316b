"""Shipping API: parcels by tab with their details, waybill batches and cancels, label PDFs,
shipments (ship; manual numbers; xlsx import), batches, write-backs, carrier rules — tenant
sealed, role-checked, and safe to repeat (Idempotency-Key)."""

from __future__ import annotations

from io import BytesIO

import pypdfium2
import pytest
from django.utils import timezone
from django_tenants.utils import schema_context
from openpyxl import Workbook

from channels.models import Store
from logistics import services
from logistics.models import CarrierRule, Parcel, ShipBatch, TrackingEvent, WaybillAccount, WriteBack
from orders import services as orders
from tenants.accounts.models import Role
from tests.conftest import api_key, make_user
from tests.orders.conftest import channel_order, receiver

P = Parcel.Status


@pytest.fixture
def api(alpha, alpha_client):
    """``api(method, path, role=owner, **kwargs)`` with a token of a user of that role."""
    keys = {}

    def call(method: str, path: str, data=None, *, role: str = Role.OWNER, headers=None, **kwargs):
        if role not in keys:
            username = "alpha-owner" if role == Role.OWNER else f"api-{role}"
            if role != Role.OWNER:
                make_user(alpha, username, role)
            keys[role] = api_key(alpha, username)
        extra = {"HTTP_AUTHORIZATION": f"Token {keys[role]}"}
        for name, value in (headers or {}).items():
            extra["HTTP_" + name.upper().replace("-", "_")] = value
        send = getattr(alpha_client, method)
        if data is not None and "format" not in kwargs and "content_type" not in kwargs:
            kwargs["content_type"] = "application/json"
        return send(path, data, **extra, **kwargs) if data is not None else send(path, **extra, **kwargs)

    return call


def ingest(store, oid: str, **kw):
    order = orders.ingest_channel_order(
        store=store, co=channel_order(oid=oid, receiver=receiver(f"r-{oid}"), **kw)
    )
    services.ensure_parcels()
    return order


def parcel_of(order) -> Parcel:
    return Parcel.objects.filter(lines__order_line__order=order).exclude(status=P.CANCELLED).distinct().get()


def numbered(order, tracking_no: str) -> Parcel:
    parcel = parcel_of(order)
    Parcel.objects.filter(pk=parcel.pk).update(status=P.NUMBERED, carrier="zto", tracking_no=tracking_no)
    parcel.refresh_from_db()
    return parcel


# --- parcels ---------------------------------------------------------------------------------------------


def test_parcels_by_tab_and_one_parcel_in_detail(store, skus, api):
    new = parcel_of(ingest(store, "A1"))
    printed = numbered(ingest(store, "A2"), "73100000000002")
    Parcel.objects.filter(pk=printed.pk).update(status=P.PRINTED)
    shipped_order = ingest(store, "A3")
    response = api(
        "post",
        "/api/v1/shipments/manual/",
        {"order": shipped_order.pk, "carrier": "中通", "tracking_no": "73100000000003"},
    )
    assert response.status_code == 200, response.content
    shipped = parcel_of(shipped_order)
    TrackingEvent.objects.create(
        parcel=shipped, occurred_at=timezone.now(), status="collected", description="已揽收", fingerprint="f1"
    )

    def ids(query):
        response = api("get", f"/api/v1/parcels/{query}")
        assert response.status_code == 200, response.content
        return [row["id"] for row in response.json()["results"]]

    assert ids("?tab=to_print") == [new.pk]
    assert ids("?tab=to_ship") == [printed.pk]
    assert ids("?tab=shipped") == [shipped.pk]
    assert ids(f"?order={shipped_order.pk}") == [shipped.pk]
    assert ids("?tracking_no=73100000000002") == [printed.pk]
    assert api("get", "/api/v1/parcels/?tab=nonsense").status_code == 400

    detail = api("get", f"/api/v1/parcels/{shipped.pk}/").json()
    assert (detail["status"], detail["tracking_no"], detail["manual"], detail["carrier_name"]) == (
        "shipped",
        "73100000000003",
        True,
        "中通快递",
    )
    assert detail["orders"] == ["A3"] and detail["lines"][0]["platform_line_id"] == "L1"
    assert [(w["tracking_no"], w["status"]) for w in detail["write_backs"]] == [("73100000000003", "pending")]
    assert [e["description"] for e in detail["events"]] == ["已揽收"]
    assert detail["waybills"] == []


def test_another_tenants_parcel_is_not_found(store, skus, api, beta):
    mine = parcel_of(ingest(store, "T1"))
    with schema_context(beta.schema_name):
        beta_store = Store.objects.create(
            platform="douyin", platform_shop_id="2001", name="别家", app_key="k"
        )
        from inventory.models import Goods, Sku
        from inventory.services import receive_stock

        sku = Sku.objects.create(
            goods=Goods.objects.create(name="别家货"), merchant_code="TS-WHT-L", name="x"
        )
        receive_stock(sku=sku, quantity=5, reason="opening")
        theirs = parcel_of(ingest(beta_store, "T2"))
        assert theirs.pk != mine.pk
        Parcel.objects.filter(pk=theirs.pk).update(
            tracking_no="73100000000999", status=P.NUMBERED, carrier="zto"
        )
    assert api("get", f"/api/v1/parcels/{theirs.pk}/").status_code == 404
    assert [r["id"] for r in api("get", "/api/v1/parcels/").json()["results"]] == [mine.pk]
    # acting on the other tenant's parcel id changes nothing there
    result = api("post", "/api/v1/shipments/", {"parcel_ids": [theirs.pk]}).json()
    assert result["shipped"] == [] and [e["parcel"] for e in result["errors"]] == [theirs.pk]
    assert "不存在" in result["errors"][0]["error"]
    with schema_context(beta.schema_name):
        assert Parcel.objects.get(pk=theirs.pk).status == P.NUMBERED


# --- shipments ---------------------------------------------------------------------------------------------


def test_ship_parcels_and_repeat_safely(store, skus, api):
    parcel = numbered(ingest(store, "S1"), "73100000000011")
    waiting = parcel_of(ingest(store, "S2"))  # no number: refused
    first = api("post", "/api/v1/shipments/", {"parcel_ids": [parcel.pk, waiting.pk]})
    assert first.status_code == 200
    body = first.json()
    assert body["shipped"] == [parcel.pk] and len(body["write_backs"]) == 1
    assert [e["parcel"] for e in body["errors"]] == [waiting.pk]
    again = api("post", "/api/v1/shipments/", {"parcel_ids": [parcel.pk]}).json()
    assert (again["shipped"], again["already"], again["write_backs"]) == ([], [parcel.pk], [])
    assert WriteBack.objects.filter(parcel=parcel).count() == 1
    # the schema's types hold: ids are JSON integers
    assert api("post", "/api/v1/shipments/", {"parcel_ids": [str(parcel.pk)]}).status_code == 400
    assert api("post", "/api/v1/shipments/", {"parcel_ids": []}).status_code == 400
    assert api("post", "/api/v1/shipments/", {"parcel_ids": [parcel.pk]}, role=Role.VIEWER).status_code == 403
    # many parcels: a batch with progress
    other = numbered(ingest(store, "S3"), "73100000000013")
    batch = api("post", "/api/v1/shipments/batch/", {"parcel_ids": [other.pk]})
    assert batch.status_code == 202 and (batch.json()["kind"], batch.json()["total"]) == ("ship", 1)


def test_manual_entry_with_an_idempotency_key(store, skus, api):
    order = ingest(store, "K1")
    body = {"order": order.pk, "carrier": "zto", "tracking_no": "73100000000021"}
    key = {"Idempotency-Key": "entry-k1"}
    first = api("post", "/api/v1/shipments/manual/", body, headers=key)
    assert first.status_code == 200 and first.json()["changed"] and first.json()["shipped"]
    replay = api("post", "/api/v1/shipments/manual/", body, headers=key)
    assert replay.status_code == 200 and replay["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    reused = api("post", "/api/v1/shipments/manual/", {**body, "tracking_no": "73100000000022"}, headers=key)
    assert reused.status_code == 422 and reused.json()["error"]["code"] == "idempotency_key_reused"
    # without a key, a repeat is still harmless: the number is there already
    plain = api("post", "/api/v1/shipments/manual/", body).json()
    assert plain["changed"] is False
    refused = api("post", "/api/v1/shipments/manual/", {**body, "order": order.pk, "tracking_no": "SF12"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid"
    both = api("post", "/api/v1/shipments/manual/", {**body, "parcel": 1})
    assert both.status_code == 400


def test_import_through_the_api_reports_bad_rows(store, skus, api):
    ingest(store, "X1")
    book = Workbook()
    book.active.append(["平台订单号", "快递公司", "运单号"])
    book.active.append(["X1", "中通", "73100000000031"])
    book.active.append(["X9", "中通", "73100000000032"])
    buffer = BytesIO()
    book.save(buffer)
    upload = BytesIO(buffer.getvalue())
    upload.name = "t.xlsx"
    response = api("post", "/api/v1/shipments/import/", {"file": upload}, format="multipart")
    assert response.status_code == 202, response.content
    batch = response.json()
    assert (batch["kind"], batch["status"], batch["total"], batch["failed"]) == (
        "import_tracking",
        "done",
        2,
        1,
    )
    assert batch["report"]["entered"] == 1
    assert [(e["row"], e["message"]) for e in batch["report"]["errors"]] == [(3, "没有这个单号的订单。")]
    listed = api("get", "/api/v1/shipping-batches/?kind=import_tracking").json()["results"]
    assert [b["id"] for b in listed] == [batch["id"]]


# --- waybills, labels, batches -----------------------------------------------------------------------------


def test_take_waybills_starts_one_batch_per_idempotency_key(store, skus, api):
    parcel = parcel_of(ingest(store, "W1"))
    key = {"Idempotency-Key": "take-w1"}
    first = api("post", "/api/v1/waybills/take/", {"parcel_ids": [parcel.pk]}, headers=key)
    assert first.status_code == 202
    batch = first.json()
    assert (batch["kind"], batch["total"]) == ("take_waybills", 1)
    again = api("post", "/api/v1/waybills/take/", {"parcel_ids": [parcel.pk]}, headers=key)
    assert again.status_code == 202 and again.json()["id"] == batch["id"]
    assert ShipBatch.objects.filter(kind="take_waybills").count() == 1
    progress = api("get", f"/api/v1/shipping-batches/{batch['id']}/").json()
    assert (progress["status"], progress["done"], progress["has_file"]) == ("queued", 0, False)
    assert api("get", f"/api/v1/shipping-batches/{batch['id']}/file/").status_code == 404

    cancel = api("post", "/api/v1/waybills/cancel/", {"parcel_ids": [parcel.pk, 999999], "reason": "换快递"})
    assert cancel.status_code == 200
    assert [(r["parcel"], r["ok"]) for r in cancel.json()] == [(parcel.pk, False), (999999, False)]
    assert "没有" in cancel.json()[0]["error"]


def test_labels_pdf_one_page_per_parcel(store, skus, api):
    parcels = [numbered(ingest(store, f"L{i}"), f"7310000000010{i}") for i in range(3)]
    blank = parcel_of(ingest(store, "L9"))
    response = api("post", "/api/v1/labels/", {"parcel_ids": [p.pk for p in parcels] + [blank.pk]})
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    pdf = pypdfium2.PdfDocument(response.content)
    assert len(pdf) == 3
    assert "73100000000100" in pdf[0].get_textpage().get_text_range().replace(" ", "")
    nothing = api("post", "/api/v1/labels/", {"parcel_ids": [blank.pk]})
    assert nothing.status_code == 400
    too_many = api("post", "/api/v1/labels/", {"parcel_ids": list(range(1, 102))})
    assert too_many.status_code == 400
    batch = api("post", "/api/v1/labels/batch/", {"parcel_ids": [p.pk for p in parcels], "size": "100x180"})
    assert batch.status_code == 202 and batch.json()["kind"] == "labels"


# --- write-backs and carrier rules ------------------------------------------------------------------------


def test_write_backs_listed_and_retried(store, skus, api):
    order = ingest(store, "B1")
    api(
        "post",
        "/api/v1/shipments/manual/",
        {"order": order.pk, "carrier": "zto", "tracking_no": "73100000000041"},
    )
    wb = WriteBack.objects.get(order=order)
    WriteBack.objects.filter(pk=wb.pk).update(status=WriteBack.Status.GIVEN_UP, attempts=9, last_error="超时")
    listed = api("get", "/api/v1/write-backs/?status=given_up").json()["results"]
    assert [(r["id"], r["platform_order_id"], r["last_error"]) for r in listed] == [(wb.pk, "B1", "超时")]
    retried = api("post", "/api/v1/write-backs/retry/", {"ids": [wb.pk]})
    assert retried.json() == {"retried": 1}
    wb.refresh_from_db()
    assert (wb.status, wb.attempts) == (WriteBack.Status.PENDING, 0)
    assert api("post", "/api/v1/write-backs/retry/", {"ids": [wb.pk]}).json() == {"retried": 0}


def test_carrier_rules_crud_with_the_pages_checks(store, skus, api):
    account = WaybillAccount.objects.create(
        store=store, carrier="zto", platform_carrier_code="ZTO", branch_code="B"
    )
    created = api(
        "post",
        "/api/v1/carrier-rules/",
        {
            "name": "江浙沪中通",
            "carrier": "zto",
            "store_ids": [store.pk],
            "account": account.pk,
            "provinces": ["浙江", "上海"],
        },
    )
    assert created.status_code == 201, created.content
    rule = created.json()
    assert rule["provinces"] == ["浙江省", "上海市"] and rule["priority"] == 100
    bad = api(
        "post",
        "/api/v1/carrier-rules/",
        {"name": "x", "carrier": "zto", "min_weight_g": 500, "max_weight_g": 100},
    )
    assert bad.status_code == 400 and "max_weight_g" in bad.json()["error"]["details"]
    wrong = api("patch", f"/api/v1/carrier-rules/{rule['id']}/", {"store_ids": []})
    assert wrong.status_code == 400 and "account" in wrong.json()["error"]["details"]
    moved = api("patch", f"/api/v1/carrier-rules/{rule['id']}/", {"priority": 5, "enabled": False})
    assert moved.status_code == 200 and (moved.json()["priority"], moved.json()["enabled"]) == (5, False)
    assert api("get", "/api/v1/carrier-rules/").json()[0]["name"] == "江浙沪中通"
    assert api("delete", f"/api/v1/carrier-rules/{rule['id']}/", role=Role.VIEWER).status_code == 403
    assert api("delete", f"/api/v1/carrier-rules/{rule['id']}/").status_code == 204
    assert not CarrierRule.objects.exists()


def test_take_the_whole_tab(store, skus, api):
    waiting = [parcel_of(ingest(store, f"TT{i}")) for i in range(3)]
    numbered(ingest(store, "TT9"), "73100000000051")  # has a number: not taken again
    response = api("post", "/api/v1/waybills/take-tab/", {"store": store.pk})
    assert response.status_code == 202, response.content
    batch = ShipBatch.objects.get(pk=response.json()["id"])
    assert sorted(batch.params["parcel_ids"]) == sorted(p.pk for p in waiting)
    assert api("post", f"/api/v1/parcels/{waiting[0].pk}/track/").status_code == 400  # no number yet


# --- against the sandbox over HTTP -----------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    from tests.logistics.waybill_world import start_sandbox

    server = start_sandbox(tmp_path_factory.mktemp("api") / "world.sqlite3", buyers=10)
    yield server
    server.stop()
    server.world.close()


def test_a_number_entered_through_the_api_reaches_the_shop_and_its_trace_comes_back(sandbox, in_alpha, api):
    from logistics import writeback
    from sandbox import traces
    from tests.logistics.waybill_world import connect_shops, world_order_id

    shops = connect_shops(sandbox)
    world = shops.world
    world.set_setting(traces.EXCEPTION_RATE_SETTING, 0.0)
    order = shops.order("douyin", 1)
    number = world.new_tracking_no("ZTO")
    entered = api(
        "post", "/api/v1/shipments/manual/", {"order": order.pk, "carrier": "中通", "tracking_no": number}
    )
    assert entered.status_code == 200 and entered.json()["shipped"], entered.content
    assert writeback.send_due(limit=10) == 1
    assert world.tracking_numbers()[world_order_id(shops, order)] == [number]

    parcel_id = entered.json()["parcel"]["id"]
    traces.fast_forward(world, 80 * 3600, [number])
    tracked = api("post", f"/api/v1/parcels/{parcel_id}/track/")
    assert tracked.status_code == 200, tracked.content
    body = tracked.json()
    assert body["tracking_status"] == "delivered" and body["events"][0]["status"] == "collected"
    assert [w["status"] for w in body["write_backs"]] == ["accepted"]

"""The shipping workbench page (/shipping/): tabs with counts, the shop filter, the parcel table,
bulk 取号 / 打印PDF / 发货 on ticked rows or a whole tab, batch progress through htmx polling, the
PDF download, print history per parcel, and the JSON endpoints print.js uses (print jobs, print
results — tenant-scoped, shipping rights only). The sandbox serves the platforms and their print
components over real HTTP and WebSocket."""

from __future__ import annotations

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from channels import carriers
from logistics import waybills
from logistics.models import Parcel, PrintRecord, ShipBatch, WriteBack
from logistics.tasks import render_pdf_task, take_waybills_task
from tenants.accounts.models import Role
from tests.conftest import OWNER_PASSWORD, make_user, tenant_client
from tests.logistics import test_printing
from tests.logistics.shipping_rig import parcel_of, place, prepare_shop
from tests.logistics.test_labels import decode_pages
from tests.logistics.test_printing import numbered, print_through_component

server, stores = test_printing.server, test_printing.stores  # the same fixtures: sandbox and shops

P = Parcel.Status
HX = {"HTTP_HX_REQUEST": "true"}


def login(client, username: str, password: str = OWNER_PASSWORD):
    assert client.post("/accounts/login/", {"username": username, "password": password}).status_code == 302
    return client


@pytest.fixture
def owner(alpha, alpha_client, stores):
    return login(alpha_client, "alpha-owner")


def counts(response) -> dict[str, int]:
    return {value: count for value, _label, count, _query in response.context["tabs"]}


def row_ids(response) -> list[int]:
    return [row["parcel"].pk for row in response.context["rows"]]


def test_workbench_tabs_counts_rows_and_shop_filter(server, stores, owner, settings):
    world = server.world
    numbered_one = numbered(server, stores["douyin"], 2, buyer=1)
    new_one = parcel_of(place(world, stores["kuaishou"], 1, buyer=1))
    printed = numbered(server, stores["wechat"], 1, buyer=1)
    Parcel.objects.filter(pk=printed.pk).update(status=P.PRINTED, print_count=1)

    response = owner.get("/shipping/")
    assert response.status_code == 200
    assert counts(response) == {"to_print": 2, "to_ship": 1, "shipped": 0}
    assert row_ids(response) == [new_one.pk, numbered_one.pk]  # newest first
    html = response.content.decode()
    assert "待打单" in html and "待发货" in html and "已发货" in html and "取号" in html
    order = numbered_one.lines.first().order_line.order
    assert (
        order.platform_order_id in html
        and order.receiver_name_mask in html
        and order.receiver_phone_mask in html
    )
    assert numbered_one.tracking_no in html and carriers.name_of("zto") in html
    assert numbered_one.carrier_reason and numbered_one.carrier_reason[:20] in html
    # the page's script may reach each platform's print component, and knows where they are
    policy = response.headers["Content-Security-Policy"]
    connect_src = next(part for part in policy.split(";") if part.strip().startswith("connect-src"))
    for url in settings.PRINT_COMPONENT_URLS.values():
        assert url in connect_src
        assert url in response.context["print_config"]

    only_kuaishou = owner.get(f"/shipping/?tab=to_print&store={stores['kuaishou'].pk}")
    assert row_ids(only_kuaishou) == [new_one.pk]
    assert counts(only_kuaishou) == {"to_print": 1, "to_ship": 0, "shipped": 0}
    to_ship = owner.get("/shipping/?tab=to_ship", **HX)
    assert row_ids(to_ship) == [printed.pk]
    assert [t.name for t in to_ship.templates][0] == "logistics/_workbench.html"  # the htmx partial


def test_print_endpoints_give_jobs_and_record_results_idempotently(server, stores, owner):
    parcel = numbered(server, stores["douyin"], 1)
    body = owner.post("/shipping/print/jobs/", {"ids": [parcel.pk]}).json()
    assert body["errors"] == []
    [job] = body["jobs"]
    assert job["tracking_no"] == parcel.tracking_no and job["dialect"] == "cainiao"
    custom = job["document"]["contents"][1]
    assert custom["templateURL"] == "http://alpha.localhost/static/logistics/custom-area-76x130.xml"
    [(ok, error, printer)] = print_through_component(server, body["jobs"]).values()
    assert ok, error
    for _ in range(2):  # the page may report twice (a retry): the same outcome
        answer = owner.post(
            "/shipping/print/result/", {"task_id": job["task_id"], "ok": "1", "printer": printer}
        ).json()
        assert (answer["status"], answer["parcel_status"], answer["print_count"]) == ("printed", "printed", 1)
    assert owner.post("/shipping/print/result/", {"task_id": "nope", "ok": "1"}).status_code == 404
    assert owner.post("/shipping/print/jobs/", {}).status_code == 400

    refused = owner.post("/shipping/print/jobs/", {"ids": [parcel.pk]}).json()
    assert refused["jobs"] == [] and refused["errors"][0]["error"] == "已打印过：补打需要填写原因。"
    again = owner.post("/shipping/print/jobs/", {"ids": [parcel.pk], "reason": "卡纸"}).json()
    assert len(again["jobs"]) == 1 and again["jobs"][0]["reprint"] is True
    history = owner.get(f"/shipping/parcels/{parcel.pk}/prints/", **HX).content.decode()
    assert history.count('data-testid="parcel-print-row"') == 2 and "补打: 卡纸" in history


def test_print_results_are_tenant_scoped_and_need_shipping_rights(server, stores, owner, alpha, beta):
    parcel = numbered(server, stores["douyin"], 1)
    [job] = owner.post("/shipping/print/jobs/", {"ids": [parcel.pk]}).json()["jobs"]
    make_user(alpha, "print-viewer", Role.VIEWER)
    viewer = login(tenant_client(alpha), "print-viewer", "Staff-pass-2026")
    assert viewer.post("/shipping/print/result/", {"task_id": job["task_id"], "ok": "1"}).status_code == 403
    assert viewer.post("/shipping/print/jobs/", {"ids": [parcel.pk]}).status_code == 403
    assert viewer.get("/shipping/").status_code == 200  # reading is allowed
    other = login(tenant_client(beta), "beta-owner")
    assert other.post("/shipping/print/result/", {"task_id": job["task_id"], "ok": "1"}).status_code == 404
    with schema_context(alpha.schema_name):
        assert PrintRecord.objects.get(task_id=job["task_id"]).status == PrintRecord.Status.SENT
        assert Parcel.objects.get(pk=parcel.pk).print_count == 0
    connection.set_tenant(alpha)


def test_take_numbers_in_a_batch_with_progress_then_the_table_refreshes(
    server, stores, owner, monkeypatch, django_capture_on_commit_callbacks
):
    store = stores["douyin"]
    prepare_shop(store)
    parcels = [parcel_of(place(server.world, store, 1, buyer=b)) for b in (1, 2)]
    queued = []
    monkeypatch.setattr(take_waybills_task, "delay", lambda batch_id: queued.append(batch_id))
    with django_capture_on_commit_callbacks(execute=True):
        response = owner.post(
            "/shipping/bulk/",
            {"action": "take", "ids": [p.pk for p in parcels], "filter_query": "tab=to_print"},
            **HX,
        )
    batch = response.context["batch"]
    assert queued == [batch.pk] and batch.kind == ShipBatch.Kind.TAKE_WAYBILLS
    assert 'hx-trigger="every 1s"' in response.content.decode()
    polling = owner.get(f"/shipping/batches/{batch.pk}/", **HX)
    assert 'hx-trigger="every 1s"' in polling.content.decode() and "HX-Trigger" not in polling.headers

    # What the worker does (run_take_batch closes its connection, which this test's transaction
    # cannot survive; the browser test runs it in a real Celery worker): each parcel, counted.
    for parcel in parcels:
        waybills.take_for_parcel(parcel)
    ShipBatch.objects.filter(pk=batch.pk).update(status=ShipBatch.Status.DONE, done=2)
    finished = owner.get(f"/shipping/batches/{batch.pk}/", **HX)
    html = finished.content.decode()
    assert "every 1s" not in html and "完成 2，失败 0" in html
    assert finished.headers["HX-Trigger"] == "shipping-refresh"  # the table reloads
    table = owner.get("/shipping/?tab=to_print", **HX).content.decode()
    for parcel in parcels:
        parcel.refresh_from_db()
        assert parcel.status == P.NUMBERED and parcel.tracking_no in table


def test_whole_tab_pdf_batch_and_download(
    server, stores, owner, monkeypatch, django_capture_on_commit_callbacks
):
    douyin = [numbered(server, stores["douyin"], 1, buyer=b) for b in (1, 2)]
    numbered(server, stores["kuaishou"], 1)  # another shop: not in the filtered tab
    monkeypatch.setattr(render_pdf_task, "delay", lambda batch_id: None)
    with django_capture_on_commit_callbacks(execute=True):
        response = owner.post(
            "/shipping/bulk/",
            {"action": "pdf", "all_tab": "1", "filter_query": f"tab=to_print&store={stores['douyin'].pk}"},
            **HX,
        )
    batch = response.context["batch"]
    assert sorted(batch.params["parcel_ids"]) == sorted(p.pk for p in douyin)
    render_pdf_task(batch.pk)
    status = owner.get(f"/shipping/batches/{batch.pk}/", **HX).content.decode()
    assert f"/shipping/batches/{batch.pk}/download/" in status
    download = owner.get(f"/shipping/batches/{batch.pk}/download/")
    assert download["Content-Type"] == "application/pdf"
    pdf = b"".join(download.streaming_content)
    assert sorted(code for page in decode_pages(pdf) for code in page) == sorted(
        p.tracking_no for p in douyin
    )


def test_ship_reports_each_parcel(server, stores, owner):
    store = stores["douyin"]
    printed = numbered(server, store, 1, buyer=1)
    Parcel.objects.filter(pk=printed.pk).update(status=P.PRINTED, print_count=1)
    unnumbered = parcel_of(place(server.world, store, 1, buyer=2))
    response = owner.post(
        "/shipping/bulk/",
        {"action": "ship", "ids": [printed.pk, unnumbered.pk], "filter_query": "tab=to_ship"},
        **HX,
    )
    results = {pk: (ok, reason) for pk, _no, ok, reason in response.context["results"]}
    assert results[printed.pk] == (True, "") and results[unnumbered.pk][0] is False
    assert results[unnumbered.pk][1]  # a reason is shown
    printed.refresh_from_db()
    assert printed.status == P.SHIPPED and WriteBack.objects.filter(parcel=printed).count() == 1
    assert counts(response)["shipped"] == 1


def test_parcels_printed_long_ago_and_not_shipped_raise_a_notice(server, stores, owner):
    from datetime import timedelta

    from django.utils import timezone

    fresh = numbered(server, stores["douyin"], 1, buyer=1)
    Parcel.objects.filter(pk=fresh.pk).update(status=P.PRINTED, print_count=1, printed_at=timezone.now())
    assert 'data-testid="printed-not-shipped"' not in owner.get("/shipping/").content.decode()
    old = numbered(server, stores["wechat"], 1, buyer=1)
    Parcel.objects.filter(pk=old.pk).update(
        status=P.PRINTED, print_count=1, printed_at=timezone.now() - timedelta(hours=30)
    )
    html = owner.get("/shipping/").content.decode()
    assert "1 个包裹打印已超过 24 小时仍未发货。" in html
    assert "printed-not-shipped" not in owner.get(f"/shipping/?store={stores['douyin'].pk}").content.decode()

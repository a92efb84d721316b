"""Printing (logistics/printing.py) against the sandbox over real HTTP and WebSocket: print jobs
in each platform component's own format that the sandbox's components accept and journal, print
results (idempotent, PRINTED final), reprints with a reason, print data fetched again when
missing, child numbers, WeChat's print notice, printed-not-shipped alerts, and the batch PDF
whose every page's barcode decodes to its parcel's tracking number."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.db import connection
from django.utils import timezone

from logistics import printing
from logistics import services as parcel_services
from logistics.models import Parcel, PrintRecord, SenderAddress, ShipBatch, Waybill
from logistics.tasks import render_pdf_task, report_printed_task
from sandbox.seed import seed_default_world
from sandbox.server import SandboxServer, ServerOptions
from sandbox.world import World
from tests.logistics.shipping_rig import PLATFORMS, ComponentClient, connect_stores, parcel_of, place, take
from tests.logistics.test_labels import decode_pages

P = Parcel.Status
S = PrintRecord.Status
WX_PRINT = "/channels/ec/logistics/ewaybill/biz/order/print"


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[SandboxServer]:
    world = World(tmp_path_factory.mktemp("printing") / "world.sqlite3", seed=1313)
    seed_default_world(world, shops_per_platform=1, buyers=10, product_count=4)
    server = SandboxServer(
        world, ServerOptions(ports={p: 0 for p in PLATFORMS}, simulate=False, push=False, threads=4)
    )
    for platform in PLATFORMS:
        server.faults.set(platform, "*", qps=0)
        for sku in world.skus(world.shops(platform)[0].shop_id):
            world.set_stock(sku.sku_id, 100_000)
    server.start()
    yield server
    server.stop()
    world.close()


@pytest.fixture
def stores(server, settings, in_alpha, monkeypatch):
    settings.CHANNEL_BASE_URLS = {p: server.urls[p] for p in PLATFORMS}
    monkeypatch.setattr(report_printed_task, "delay", lambda record_id: None)
    return connect_stores(server.world)


def numbered(server, store, *quantities, buyer: int = 1, **kw) -> Parcel:
    parcel = parcel_of(place(server.world, store, *quantities, buyer=buyer))
    take(parcel, **kw)
    parcel.refresh_from_db()
    return parcel


def print_through_component(server, jobs: list[dict]) -> dict[str, tuple[bool, str, str]]:
    """Hand the jobs to their platforms' sandbox components; {task id: (printed, error, printer)}."""
    results = {}
    for platform in {j["platform"] for j in jobs}:
        mine = [j for j in jobs if j["platform"] == platform]
        with ComponentClient(server.print_urls[platform], mine[0]["dialect"]) as client:
            answers = client.send(mine)
            assert all(a.get("status") == "success" or a.get("errcode") == 0 for a in answers), answers
            for job in mine:
                results[job["task_id"]] = client.result(job["task_id"])
    return results


def report(results: dict[str, tuple[bool, str, str]]) -> None:
    for task_id, (ok, error, printer) in results.items():
        printing.print_result(task_id, ok, error, printer=printer)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_print_jobs_are_accepted_by_the_platform_component_and_results_mark_parcels_printed(
    server, stores, platform, django_capture_on_commit_callbacks
):
    world = server.world
    store = stores[platform]
    parcels = [numbered(server, store, 2, buyer=1), numbered(server, store, 1, 1, buyer=2)]
    jobs = printing.print_jobs([p.pk for p in parcels], custom_template_url="https://erp.example/custom.xml")
    assert [j["tracking_no"] for j in jobs] == [p.tracking_no for p in parcels]
    assert all("error" not in j for j in jobs)
    assert {j["dialect"] for j in jobs} == {"wechat" if platform == "wechat" else "cainiao"}
    records = PrintRecord.objects.filter(parcel__in=parcels)
    assert sorted(records.values_list("task_id", "status")) == sorted((j["task_id"], S.SENT) for j in jobs)

    results = print_through_component(server, jobs)
    assert all(ok for ok, _error, _printer in results.values()), results
    # the sandbox component journaled every document once, with ecbao's custom area
    counts = world.print_counts(component=platform)
    assert [counts.get(p.tracking_no) for p in parcels] == [1, 1]
    [journal] = world.print_records(component=platform, task_id=jobs[0]["task_id"])
    assert journal.custom["templateURL"] == "https://erp.example/custom.xml"
    assert journal.custom["data"]["parcel"] == "1/1"
    assert "×2" in journal.custom["data"]["items"]
    assert journal.custom["data"]["orders"] == parcels[0].lines.first().order_line.order.platform_order_id

    with django_capture_on_commit_callbacks(execute=False) as queued:
        report(results)
    assert len(queued) == 2  # one print notice per printed label, after commit
    for parcel in parcels:
        parcel.refresh_from_db()
        assert (parcel.status, parcel.print_count) == (P.PRINTED, 1) and parcel.printed_at
    record = PrintRecord.objects.get(task_id=jobs[0]["task_id"])
    assert record.status == S.PRINTED and record.printer == "KM-202 热敏打印机" and record.finished_at

    before = world.call_counts(platform="wechat", path=WX_PRINT)
    assert printing.report_printed(record.pk) is True
    assert printing.report_printed(record.pk) is False  # once per record
    after = world.call_counts(platform="wechat", path=WX_PRINT)
    told = sum(after.values()) - sum(before.values())
    assert told == (1 if platform == "wechat" else 0)
    record.refresh_from_db()
    assert record.reported_at is not None


def test_print_result_is_idempotent_and_printed_is_final(server, stores):
    parcel = numbered(server, stores["douyin"], 1)
    [job] = printing.print_jobs([parcel.pk])
    assert printing.print_result("no-such-task", True) is None
    printing.print_result(job["task_id"], False, "打印机缺纸")
    record = PrintRecord.objects.get(task_id=job["task_id"])
    assert (record.status, record.error) == (S.FAILED, "打印机缺纸")
    parcel.refresh_from_db()
    assert (parcel.status, parcel.print_count) == (P.NUMBERED, 0)
    # the component's later word (getTaskStatus after a reconnect) says it printed after all
    printing.print_result(job["task_id"], True)
    printing.print_result(job["task_id"], True)
    printing.print_result(job["task_id"], False, "late failure")
    record.refresh_from_db()
    parcel.refresh_from_db()
    assert (record.status, record.error) == (S.PRINTED, "")
    assert (parcel.status, parcel.print_count) == (P.PRINTED, 1)


def test_a_reprint_needs_a_reason_and_is_a_new_task(server, stores):
    world = server.world
    parcel = numbered(server, stores["kuaishou"], 1)
    [first] = printing.print_jobs([parcel.pk])
    report(print_through_component(server, [first]))
    [refused] = printing.print_jobs([parcel.pk])
    assert refused["error"] == "已打印过：补打需要填写原因。" and "document" not in refused
    assert PrintRecord.objects.filter(parcel=parcel).count() == 1
    [again] = printing.print_jobs([parcel.pk], reprint_reason="面单被撕坏")
    assert again["task_id"] != first["task_id"] and again["reprint"] is True
    assert again["document"]["contents"][1]["data"]["reprint"] == "面单被撕坏"
    report(print_through_component(server, [again]))
    parcel.refresh_from_db()
    assert (parcel.status, parcel.print_count) == (P.PRINTED, 2)
    reprint = PrintRecord.objects.get(task_id=again["task_id"])
    assert (reprint.is_reprint, reprint.reason, reprint.status) == (True, "面单被撕坏", S.PRINTED)
    assert world.print_counts(component="kuaishou")[parcel.tracking_no] == 2
    assert [r.task_id for r in printing.print_history(parcel)] == [again["task_id"], first["task_id"]]


@pytest.mark.parametrize("platform", ["douyin", "wechat"])
def test_missing_or_stale_print_data_is_fetched_again(server, stores, platform):
    world = server.world
    missing, stale = (
        numbered(server, stores[platform], 1, buyer=3),
        numbered(server, stores[platform], 1, buyer=4),
    )
    Waybill.objects.filter(parcel=missing).update(print_data="", print_sign="")
    Waybill.objects.filter(parcel=stale).update(
        print_sign="stale", updated_at=timezone.now() - printing.PRINT_DATA_MAX_AGE - timedelta(minutes=1)
    )
    path = {"douyin": "/logistics/waybillApply", "wechat": "/channels/ec/logistics/ewaybill/biz/print/get"}[
        platform
    ]
    before = sum(world.call_counts(platform=platform, path=path).values())
    jobs = printing.print_jobs([missing.pk, stale.pk])
    assert sum(world.call_counts(platform=platform, path=path).values()) - before == 2
    assert all(Waybill.objects.get(parcel=p).print_data for p in (missing, stale))
    results = print_through_component(server, jobs)
    assert all(ok for ok, _e, _p in results.values()), results


def test_kuaishou_print_data_cannot_be_fetched_again_so_a_missing_one_is_refused(server, stores):
    parcel = numbered(server, stores["kuaishou"], 1)
    old = numbered(server, stores["kuaishou"], 1, buyer=2)
    Waybill.objects.filter(parcel=parcel).update(print_data="")
    Waybill.objects.filter(parcel=old).update(updated_at=timezone.now() - timedelta(days=2))
    refused, kept = printing.print_jobs([parcel.pk, old.pk])
    assert refused["parcel_id"] == parcel.pk and "打印数据" in refused["error"]
    assert kept["parcel_id"] == old.pk and "document" in kept  # the stored data is used
    assert all(ok for ok, _e, _p in print_through_component(server, [kept]).values())


def test_parcels_that_cannot_print_are_refused_each_with_a_reason(server, stores):
    store = stores["douyin"]
    new = parcel_of(place(server.world, store, 1))
    manual = parcel_of(place(server.world, store, 1, buyer=2))
    Parcel.objects.filter(pk=manual.pk).update(
        status=P.NUMBERED, manual=True, tracking_no="SF1234567890", carrier="sf"
    )
    good = numbered(server, store, 1, buyer=3)
    jobs = printing.print_jobs([new.pk, manual.pk, good.pk, 999999])
    assert [(j["parcel_id"], j.get("error", "")) for j in jobs] == [
        (new.pk, "请先取号。"),
        (manual.pk, "运单号为手工录入：请打印PDF面单。"),
        (good.pk, ""),
    ]
    assert PrintRecord.objects.filter(parcel__in=[new, manual]).count() == 0


def test_a_multi_piece_shipment_prints_each_child_number_on_its_parcel(server, stores):
    """WeChat SF: one fulfilment as three parcels; parcel 1 takes the number, parcels 2 and 3
    child numbers under it (logistics.waybills); each parcel prints its own label, n/m."""
    order = place(server.world, stores["wechat"], 3)
    parcel = parcel_of(order)
    [line] = parcel.lines.all()
    parcel_services.plan_parcels(
        fulfilment=parcel.fulfilment_id, parcels=[{line.order_line_id: 1} for _ in range(3)]
    )
    parcels = list(
        Parcel.objects.filter(fulfilment_id=parcel.fulfilment_id).exclude(status=P.CANCELLED).order_by("seq")
    )
    take(parcels[0], carrier="sf")
    for p in parcels:
        p.refresh_from_db()
    children = Waybill.objects.filter(parent__parcel=parcels[0])
    assert sorted(children.values_list("parcel_id", flat=True)) == [parcels[1].pk, parcels[2].pk]
    jobs = printing.print_jobs([p.pk for p in parcels])
    assert [j["tracking_no"] for j in jobs] == [p.tracking_no for p in parcels]
    assert [j["document"]["printNum"] for j in jobs] == [{"curNum": n, "sumNum": 3} for n in (1, 2, 3)]
    assert [j["document"]["customInfo"]["data"]["parcel"] for j in jobs] == ["1/3", "2/3", "3/3"]
    report(print_through_component(server, jobs))
    for p in parcels:
        p.refresh_from_db()
        assert (p.status, p.print_count) == (P.PRINTED, 1)
    assert all(server.world.print_counts(component="wechat").get(p.tracking_no) == 1 for p in parcels)


def test_printed_not_shipped_lists_old_prints_that_did_not_leave(server, stores):
    store = stores["douyin"]
    old, recent, shipped = (numbered(server, store, 1, buyer=b) for b in (1, 2, 3))
    now = timezone.now()
    Parcel.objects.filter(pk=old.pk).update(
        status=P.PRINTED, printed_at=now - timedelta(hours=30), print_count=1
    )
    Parcel.objects.filter(pk=recent.pk).update(
        status=P.VERIFIED, printed_at=now - timedelta(hours=2), print_count=1
    )
    Parcel.objects.filter(pk=shipped.pk).update(
        status=P.SHIPPED, printed_at=now - timedelta(hours=40), print_count=1
    )
    assert list(printing.printed_not_shipped(hours=24)) == [old]
    assert set(printing.printed_not_shipped(hours=1)) == {old, recent}


def test_items_are_cut_short_with_the_number_of_pieces(server, stores):
    parcel = parcel_of(place(server.world, stores["douyin"], 3, 2, 1, 4))
    text = printing.items_summary(parcel, limit=30)
    assert len(text) <= 30 and text.endswith("…等10件"), text
    assert printing.items_summary(parcel, limit=500).count("×") == 4


def test_start_pdf_renders_one_pdf_whose_every_barcode_is_its_tracking_number(
    server, stores, monkeypatch, django_capture_on_commit_callbacks
):
    SenderAddress.objects.create(name="鲸选仓库", mobile="0571-88886666", province="浙江省", city="杭州市",
                                 detail="文一西路1号", is_default=True)  # fmt: skip
    parcels = [numbered(server, stores[p], 1, buyer=b) for b in (5, 6) for p in PLATFORMS]
    douyin_marks = Waybill.objects.get(parcel=parcels[0])
    not_numbered = parcel_of(place(server.world, stores["douyin"], 1, buyer=7))
    sent = []
    monkeypatch.setattr(render_pdf_task, "delay", lambda batch_id: sent.append(batch_id))
    with django_capture_on_commit_callbacks(execute=True):
        batch = printing.start_pdf([p.pk for p in parcels] + [not_numbered.pk])
    assert sent == [batch.pk] and (batch.kind, batch.status, batch.total) == (
        ShipBatch.Kind.LABELS,
        "queued",
        7,
    )

    result = render_pdf_task(batch.pk)  # the task body, without a worker
    batch.refresh_from_db()
    assert result == {"batch": batch.pk, "status": "done", "done": 6, "failed": 1}
    assert batch.result_file.name.startswith("logistics/batches/labels-")
    assert default_storage.exists(batch.result_file.name)
    assert f"/{connection.schema_name}/" in default_storage.path(batch.result_file.name)  # tenant storage
    with batch.result_file.open("rb") as fh:
        pdf = fh.read()
    assert decode_pages(pdf) == [[p.tracking_no] for p in parcels]
    import pypdfium2 as pdfium

    first_page = pdfium.PdfDocument(pdf)[0].get_textpage().get_text_range()
    assert douyin_marks.sort_code and douyin_marks.sort_code in first_page
    assert "鲸选仓库" in first_page and "1/1" in first_page
    assert PrintRecord.objects.filter(batch=batch, kind=PrintRecord.Kind.PDF).count() == 6
    assert render_pdf_task(batch.pk)["status"] == "done"  # again: nothing more
    assert PrintRecord.objects.filter(batch=batch).count() == 6


def test_phone_numbers_buyers_write_into_remarks_are_masked_on_labels_and_print_tasks(server, stores):
    parcel = numbered(server, stores["douyin"], 1, buyer=9)
    order = parcel_services.orders_of_parcel(parcel)[0]
    order.buyer_remark, order.seller_remark = "到了打电话13812345678，或 0571-88886666", "备注 15900001111"
    order.save(update_fields=["buyer_remark", "seller_remark"])
    [job] = printing.print_jobs([parcel.pk])
    sent = str(job["document"])
    assert "138****5678" in sent and "0571-****6666" in sent  # (the seller's part is cut off here)
    assert "13812345678" not in sent and "88886666" not in sent
    label = printing.label_data(parcel)
    assert (
        label.buyer_remark.startswith("到了打电话138****5678") and label.seller_remark == "备注 159****1111"
    )

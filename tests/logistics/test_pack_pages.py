"""The pick-list page (and its xlsx/csv) and the verify bench's JSON endpoints, as the roles
see them."""

from __future__ import annotations

import csv
import io

import pytest
from openpyxl import load_workbook

from inventory.models import Sku
from logistics.models import Parcel, ShipBatch, VerifyScan
from tenants.accounts.models import Role
from tests.conftest import make_user, tenant_client
from tests.inventory.test_pages import as_role  # noqa: F401  (fixture)
from tests.logistics.test_packing import shelf, ship_ready  # noqa: F401  (fixture)
from tests.orders.conftest import line

P = Parcel.Status


EVIL = "=cmd|' /C calc'!A0"  # a name a spreadsheet would run as a formula


@pytest.fixture
def parcels(store, skus, shelf):  # noqa: F811
    Sku.objects.filter(merchant_code="TS-BLK-M").update(name=EVIL)
    return [
        ship_ready(store, "PG1", line(1, "TS-WHT-L", qty=2), line(2, "CAP-RED"), tracking_no="YT1"),
        ship_ready(store, "PG2", line(1, "TS-BLK-M", qty=1), tracking_no="YT2"),
    ]


def test_pick_page_lists_rows_by_location_and_exports(in_alpha, as_role, parcels):  # noqa: F811
    client = as_role(Role.WAREHOUSE)
    ids = ",".join(str(p.pk) for p in parcels)
    page = client.get(f"/shipping/pick/?ids={ids}")
    assert page.status_code == 200
    rows = page.context["result"].rows
    assert [(r.location, r.merchant_code, r.quantity) for r in rows] == [
        ("A-2", "CAP-RED", 1),
        ("A-10", "TS-WHT-L", 2),
        ("", "TS-BLK-M", 1),  # no location: last
    ]
    body = page.content.decode()
    assert "拣货单" in body and 'data-testid="pick-print"' in body and "共 4 件" in body

    xlsx = client.get(f"/shipping/pick/?ids={ids}&export=xlsx")
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert values[0][:3] == ["库位", "商家编码", "条码"]
    assert [(v[0], v[1], v[3], v[5]) for v in values[1:]] == [
        ("A-2", "CAP-RED", "CAP-RED", 1),
        ("A-10", "TS-WHT-L", "TS-WHT-L", 2),
        (None, "TS-BLK-M", EVIL, 1),
    ]
    assert sheet.cell(row=4, column=4).data_type == "s"  # stored as text, never a formula

    text = client.get(f"/shipping/pick/?ids={ids}&export=csv").content.decode("utf-8-sig")
    got = list(csv.reader(io.StringIO(text)))
    assert got[1][:2] == ["A-2", "CAP-RED"] and got[3][3] == "'" + EVIL


def test_pick_page_reads_a_batch_and_the_to_ship_tab(in_alpha, as_role, parcels):  # noqa: F811
    client = as_role(Role.VIEWER)  # reading a pick list needs no shipping rights
    batch = ShipBatch.objects.create(kind=ShipBatch.Kind.PRINT)
    Parcel.objects.filter(pk=parcels[0].pk).update(batch=batch)
    page = client.get(f"/shipping/pick/?batch={batch.pk}")
    assert [r.merchant_code for r in page.context["result"].rows] == ["CAP-RED", "TS-WHT-L"]
    assert "批次" in page.content.decode()
    assert client.get("/shipping/pick/?batch=99999").context["result"].rows == []
    tab = client.get("/shipping/pick/?tab=to_ship").context["result"]
    assert tab.parcels == 2
    empty = client.get("/shipping/pick/")
    assert empty.status_code == 200 and "请选择包裹" in empty.content.decode()


def test_the_bench_refuses_a_wrong_item_then_verifies(in_alpha, as_role, parcels):  # noqa: F811
    client = as_role(Role.WAREHOUSE)
    page = client.get("/shipping/verify/")
    assert page.status_code == 200 and 'data-testid="scan-input"' in page.content.decode()
    assert 'data-testid="nav-verify"' in page.content.decode()

    found = client.post("/shipping/verify/lookup/", {"code": "YT1"}).json()
    assert found["ok"] and found["ticket"]["units"] == 3
    pid = found["ticket"]["parcel_id"]
    wrong = client.post("/shipping/verify/scan/", {"parcel": pid, "code": "TS-BLK-M", "scan_id": "a"})
    assert wrong.status_code == 409 and "商品错误" in wrong.json()["message"]
    early = client.post("/shipping/verify/done/", {"parcel": pid})
    assert early.status_code == 409 and "商品未扫描完" in early.json()["message"]
    by_hand = client.post(
        "/shipping/verify/by-hand/", {"parcel": pid, "item": found["ticket"]["lines"][1]["key"], "reason": ""}
    )
    assert by_hand.status_code == 409 and "原因" in by_hand.json()["message"]
    by_hand = client.post(
        "/shipping/verify/by-hand/",
        {"parcel": pid, "item": found["ticket"]["lines"][1]["key"], "reason": "条码破损"},
    )
    assert by_hand.status_code == 200 and by_hand.json()["ticket"]["scanned"] == 1
    for n, code in enumerate(("6901234567892", "TS-WHT-L")):
        answer = client.post("/shipping/verify/scan/", {"parcel": pid, "code": code, "scan_id": f"s{n}"})
        assert answer.status_code == 200 and answer.json()["ok"]
    assert answer.json()["ticket"]["complete"]
    done = client.post("/shipping/verify/done/", {"parcel": pid, "weight_g": "350"})
    assert done.status_code == 200 and done.json()["ticket"]["verified"]
    parcel = Parcel.objects.get(pk=pid)
    assert (parcel.status, parcel.weight_g, parcel.verified_by.username) == (P.VERIFIED, 350, "inv-warehouse")
    assert VerifyScan.objects.filter(parcel=parcel, actor__username="inv-warehouse").count() == 5


def test_bench_input_errors_and_rights(in_alpha, as_role, alpha, parcels):  # noqa: F811
    client = as_role(Role.WAREHOUSE)
    unknown = client.post("/shipping/verify/lookup/", {"code": "NOPE"})
    assert unknown.status_code == 409 and "没有运单号为 NOPE 的包裹" in unknown.json()["message"]
    assert client.post("/shipping/verify/scan/", {"parcel": "x", "code": "A"}).status_code == 404
    assert client.post("/shipping/verify/done/", {}).status_code == 404
    assert client.get("/shipping/verify/scan/").status_code == 405
    bad_weight = client.post("/shipping/verify/done/", {"parcel": parcels[0].pk, "weight_g": "-3"})
    assert bad_weight.status_code == 409 and "重量" in bad_weight.json()["message"]
    make_user(alpha, "bench-viewer", Role.VIEWER, "Staff-pass-2026")
    viewer = tenant_client(alpha)
    assert (
        viewer.post(
            "/accounts/login/", {"username": "bench-viewer", "password": "Staff-pass-2026"}
        ).status_code
        == 302
    )
    assert viewer.get("/shipping/verify/").status_code == 403
    assert (
        viewer.post("/shipping/verify/scan/", {"parcel": parcels[0].pk, "code": "TS-WHT-L"}).status_code
        == 403
    )
    assert b"nav-verify" not in viewer.get("/shipping/pick/").content
    assert not VerifyScan.objects.filter(accepted=True).exists()

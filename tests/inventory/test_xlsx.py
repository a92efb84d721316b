"""xlsx export and import of the SKU catalogue: layout, money in fen, all-or-nothing import
with row-level errors, and export → import being a no-op."""

from __future__ import annotations

from decimal import Decimal
from io import BytesIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from openpyxl import Workbook, load_workbook

from inventory import services, xlsx
from inventory.models import ComboComponent, Goods, Sku, StockLevel, Warehouse
from tenants.accounts.models import Role
from tests.conftest import make_user

PASSWORD = "Staff-pass-2026"
HEADER_ZH = ["货品名称", "商家编码", "条码", "SKU名称", "规格", "成本价(元)", "重量(g)", "组合明细"]
HEADER_EN = ["Goods name", "Merchant code", "Barcode", "SKU name", "Spec", "Cost (yuan)", "Weight (g)"]


def workbook(*rows, header=HEADER_ZH) -> BytesIO:
    book = Workbook()
    sheet = book.active
    sheet.append(header)
    for row in rows:
        sheet.append(list(row))
    buffer = BytesIO()
    book.save(buffer)
    buffer.seek(0)
    return buffer


def read(data: bytes) -> list[tuple]:
    return list(load_workbook(BytesIO(data)).worksheets[0].iter_rows(values_only=True))


def catalogue() -> list[tuple]:
    skus = Sku.objects.order_by("merchant_code").values_list(
        "goods_id",
        "goods__name",
        "merchant_code",
        "barcode",
        "name",
        "spec",
        "cost_fen",
        "weight_g",
        "is_combo",
    )
    parts = ComboComponent.objects.order_by("combo_id", "component_id").values_list(
        "combo_id", "component_id", "quantity"
    )
    return list(skus) + list(parts) + [("goods", Goods.objects.count())]


@pytest.fixture
def seeded(in_alpha):
    tee = Goods.objects.create(name="纯棉T恤", category="服装")
    white = Sku.objects.create(
        goods=tee,
        merchant_code="TS-W-L",
        barcode="6901234567892",
        name="纯棉T恤",
        spec="白 L",
        cost_fen=1990,
        weight_g=250,
    )
    black = Sku.objects.create(goods=tee, merchant_code="TS-B-L", name="纯棉T恤", spec="黑 L", cost_fen=2005)
    bundle = Sku.objects.create(
        goods=Goods.objects.create(name="T恤两件套"), merchant_code="TS-SET", name="两件套", is_combo=True
    )
    ComboComponent.objects.create(combo=bundle, component=white, quantity=1)
    ComboComponent.objects.create(combo=bundle, component=black, quantity=2)
    services.receive_stock(sku=white, quantity=12, reason="opening stock")
    second = Warehouse.objects.create(name="华东仓", code="EAST")
    services.receive_stock(sku=black, quantity=3, warehouse=second, reason="opening stock")
    return {"white": white, "black": black, "bundle": bundle}


# --- cell parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "fen"),
    [
        (None, 0),
        ("", 0),
        (12, 1200),
        (12.5, 1250),
        (19.9, 1990),
        (0.1, 10),
        (Decimal("3.07"), 307),
        ("12.50", 1250),
        ("¥1,234.56", 123456),
        ("￥ 8", 800),
    ],
)
def test_yuan_become_integer_fen_without_float_error(value, fen):
    assert xlsx.fen_of(value) == fen
    assert isinstance(xlsx.fen_of(value), int)


@pytest.mark.parametrize("value", ["12.345", 0.001, "-1", -0.5, "abc", "NaN", "Infinity", True, "1e20"])
def test_bad_amounts_are_refused(value):
    with pytest.raises(xlsx.CellError):
        xlsx.fen_of(value)


def test_components_text_is_parsed_and_checked():
    assert xlsx.components_of("A*2;B*1") == [("A", 2), ("B", 1)]
    assert xlsx.components_of(" A * 2 ；B\nC×3 ") == [("A", 2), ("B", 1), ("C", 3)]
    assert xlsx.components_of(None) == []
    for bad in ("A*0", "A*x", "*2", "A*1;A*2", "A*1.5"):
        with pytest.raises(xlsx.CellError):
            xlsx.components_of(bad)


def test_numbers_typed_into_code_columns_keep_their_digits():
    assert xlsx.text_of(6901234567892.0) == "6901234567892"
    assert xlsx.text_of(10023) == "10023"
    assert xlsx.text_of("  A-1 ") == "A-1"


# --- export ---------------------------------------------------------------------------------------


def test_export_layout(seeded):
    rows = read(xlsx.export_skus(Sku.objects.all()))
    header = rows[0]
    assert list(header[:8]) == HEADER_ZH
    assert header[8:] == ("实物库存:主仓 (只读)", "实物库存:华东仓 (只读)")
    by_code = {row[1]: row for row in rows[1:]}
    assert [row[1] for row in rows[1:]] == ["TS-B-L", "TS-SET", "TS-W-L"]
    assert by_code["TS-W-L"] == (
        "纯棉T恤",
        "TS-W-L",
        "6901234567892",
        "纯棉T恤",
        "白 L",
        19.9,
        250,
        None,
        12,
        0,
    )
    assert by_code["TS-B-L"][5] == 20.05 and by_code["TS-B-L"][8:] == (0, 3)
    assert by_code["TS-SET"][7] == "TS-B-L*2;TS-W-L*1"


def test_template_has_only_the_header(in_alpha):
    rows = read(xlsx.export_skus(Sku.objects.none()))
    assert len(rows) == 1 and rows[0][1] == "商家编码"


# --- import ---------------------------------------------------------------------------------------


def test_export_then_import_changes_nothing(seeded):
    before = catalogue()
    data = xlsx.export_skus(Sku.objects.all())
    result = xlsx.import_skus(BytesIO(data))
    assert result.ok, result.errors
    assert (result.created, result.updated, result.unchanged) == (0, 0, 3)
    assert catalogue() == before


def test_import_creates_and_updates_by_merchant_code(seeded):
    result = xlsx.import_skus(
        workbook(
            ("纯棉T恤", "TS-W-L", "6901234567892", "纯棉T恤", "白 L", "21.00", 250, None),  # cost changed
            ("纯棉T恤", "TS-R-L", None, "纯棉T恤", "红 L", 19.9, "260", None),  # new, existing goods
            ("袜子", "SOCK-1", 6901234567000, "船袜", "", "5", None, ""),  # new goods
            (
                "T恤三件套",
                "TS-SET3",
                None,
                "三件套",
                "",
                None,
                None,
                "TS-W-L*1;TS-R-L*2",
            ),  # combo of a new SKU
        ),
        confirm=True,
    )
    assert result.ok, result.errors
    assert (result.created, result.updated, result.unchanged) == (3, 1, 0)
    white = Sku.objects.get(merchant_code="TS-W-L")
    assert white.cost_fen == 2100 and white.goods_id == seeded["white"].goods_id
    red = Sku.objects.get(merchant_code="TS-R-L")
    assert (red.goods_id, red.cost_fen, red.weight_g, red.spec) == (
        seeded["white"].goods_id,
        1990,
        260,
        "红 L",
    )
    sock = Sku.objects.get(merchant_code="SOCK-1")
    assert (sock.goods.name, sock.barcode, sock.cost_fen, sock.is_combo) == (
        "袜子",
        "6901234567000",
        500,
        False,
    )
    trio = Sku.objects.get(merchant_code="TS-SET3")
    assert trio.is_combo
    assert set(trio.components.values_list("component__merchant_code", "quantity")) == {
        ("TS-W-L", 1),
        ("TS-R-L", 2),
    }


def test_changing_components_rewrites_them_and_absent_columns_keep_values(seeded):
    result = xlsx.import_skus(
        workbook(
            ("T恤两件套", "TS-SET", "两件套", "TS-W-L*3"),
            header=["货品名称", "商家编码", "SKU名称", "组合明细"],
        ),
        confirm=True,
    )
    assert result.ok and (result.created, result.updated) == (0, 1)
    bundle = Sku.objects.get(merchant_code="TS-SET")
    assert list(bundle.components.values_list("component__merchant_code", "quantity")) == [("TS-W-L", 3)]
    # the English header works too; absent columns (spec, components) are left alone
    result = xlsx.import_skus(
        workbook(("纯棉T恤", "TS-B-L", "", "纯棉T恤", 20.05, 0), header=HEADER_EN[:4] + HEADER_EN[5:])
    )
    assert result.ok and result.unchanged == 1
    assert Sku.objects.get(merchant_code="TS-B-L").spec == "黑 L"


def test_a_bad_row_imports_nothing_and_every_problem_is_reported(seeded):
    before = catalogue()
    result = xlsx.import_skus(
        workbook(
            ("纯棉T恤", "TS-W-L", None, "纯棉T恤", "白 L", "9.99", 250, None),  # fine on its own
            ("新货品", "NEW-1", None, "新品", "", "12.345", None, None),  # row 3: three decimals
            ("新货品", "NEW-2", None, "", "", "1", "heavy", None),  # row 4: no name, bad weight
            ("新货品", "NEW-3", None, "新品3", "", "1", None, None),
            ("新货品", "NEW-3", None, "新品3", "", "1", None, None),  # row 6: duplicate of row 5
        )
    )
    assert not result.ok
    problems = {(e.row, e.column) for e in result.errors}
    assert problems == {(3, "成本价(元)"), (4, "SKU名称"), (4, "重量(g)"), (6, "商家编码")}
    assert "两位小数" in next(e.message for e in result.errors if e.row == 3)
    assert "第 5 行" in next(e.message for e in result.errors if e.row == 6)
    assert catalogue() == before
    assert not Goods.objects.filter(name="新货品").exists()


def test_combination_rules_are_checked_before_anything_is_written(seeded):
    before = catalogue()
    result = xlsx.import_skus(
        workbook(
            ("套装", "SET-A", None, "套装A", "", 1, 0, "TS-SET*1"),  # row 2: a combination in a combination
            ("套装", "SET-B", None, "套装B", "", 1, 0, "GHOST*1"),  # row 3: unknown component
            # row 4: holds stock, and is a component of TS-SET
            ("纯棉T恤", "TS-W-L", None, "纯棉T恤", "白 L", 19.9, 250, "TS-B-L*1"),
            ("套装", "SET-C", None, "套装C", "", 1, 0, "SET-C*1"),  # row 5: contains itself
        )
    )
    assert [e.row for e in result.errors] == [2, 3, 4, 4, 5]
    assert {e.column for e in result.errors} == {"组合明细"}
    row4 = " ".join(e.message for e in result.errors if e.row == 4)
    assert "仍有库存" in row4 and "TS-SET" in row4
    assert catalogue() == before


def test_unreadable_files_and_missing_columns_are_reported(in_alpha):
    garbage = xlsx.import_skus(BytesIO(b"not a workbook"))
    assert [(e.row, e.message) for e in garbage.errors] == [(0, "文件不是可读取的 xlsx 工作簿。")]
    missing = xlsx.import_skus(workbook(("x",), header=["商家编码"]))
    assert {e.column for e in missing.errors} == {"货品名称", "SKU名称"}
    assert xlsx.import_skus(workbook()).ok  # a header and no rows: nothing to do


# --- the import page ------------------------------------------------------------------------------


def _login(alpha, client, role):
    make_user(alpha, f"x-{role}", role, PASSWORD)
    client.post("/accounts/login/", {"username": f"x-{role}", "password": PASSWORD})
    return client


def test_import_page_reports_row_errors_and_imports_nothing(seeded, alpha, alpha_client):
    client = _login(alpha, alpha_client, Role.WAREHOUSE)
    assert client.get("/inventory/skus/import/").status_code == 200
    upload = SimpleUploadedFile(
        "skus.xlsx", workbook(("袜子", "SOCK-9", None, "船袜", "", "abc", 0, None)).getvalue()
    )
    response = client.post("/inventory/skus/import/", {"file": upload})
    assert response.status_code == 400
    body = response.content.decode()
    assert 'data-testid="import-error"' in body and "成本价(元)" in body and ">2<" in body
    assert not Sku.objects.filter(merchant_code="SOCK-9").exists()

    upload = SimpleUploadedFile(
        "skus.xlsx", workbook(("袜子", "SOCK-9", None, "船袜", "", "3.5", 0, None)).getvalue()
    )
    ok = client.post("/inventory/skus/import/", {"file": upload})
    assert ok.status_code == 200 and ok.context["result"].created == 1
    assert Sku.objects.get(merchant_code="SOCK-9").cost_fen == 350

    wrong_type = client.post("/inventory/skus/import/", {"file": SimpleUploadedFile("skus.csv", b"a,b")})
    assert wrong_type.status_code == 400 and "file" in wrong_type.context["form"].errors


def test_exported_file_uploaded_through_the_page_is_a_no_op(seeded, alpha, alpha_client):
    client = _login(alpha, alpha_client, Role.OPERATOR)
    before = catalogue()
    exported = client.get("/inventory/skus/export/")
    response = client.post(
        "/inventory/skus/import/", {"file": SimpleUploadedFile("skus.xlsx", exported.content)}
    )
    assert response.status_code == 200
    result = response.context["result"]
    assert (result.created, result.updated, result.unchanged) == (0, 0, 3)
    assert catalogue() == before
    assert StockLevel.objects.filter(sku=seeded["white"]).get().on_hand == 12  # stock columns are read-only


# --- issue 11, defect 18: a known merchant code is not overwritten without a confirmation ---------


def test_issue11_d18_known_code_shows_preview_and_updates_only_after_confirmation(seeded):
    before = catalogue()
    file = workbook(
        (
            "新货品",
            "TS-W-L",
            "6901234567892",
            "纯棉T恤 新款",
            "白 L",
            "21.00",
            250,
            None,
        ),  # goods, name, cost
        ("纯棉T恤", "TS-R-L", None, "纯棉T恤", "红 L", 19.9, 260, None),  # new
        ("纯棉T恤", "TS-B-L", None, "纯棉T恤", "黑 L", "20.05", 0, None),  # unchanged
    )
    preview = xlsx.import_skus(file)
    assert preview.ok and not preview.applied and preview.needs_confirmation
    assert catalogue() == before  # nothing written, not even the new SKU or goods
    assert (preview.created, preview.updated, preview.unchanged) == (0, 0, 1)
    assert [(n.merchant_code, n.goods_name, n.name) for n in preview.preview.new] == [
        ("TS-R-L", "纯棉T恤", "纯棉T恤")
    ]
    [change] = preview.preview.changes
    assert change.merchant_code == "TS-W-L"
    assert [(f.field, f.old, f.new) for f in change.fields] == [
        ("goods_name", "纯棉T恤", "新货品"),
        ("name", "纯棉T恤", "纯棉T恤 新款"),
        ("cost", "19.90", "21.00"),
    ]
    # a confirmation for another preview (the catalogue changed meanwhile) applies nothing
    file.seek(0)
    stale = xlsx.import_skus(file, confirm="0" * 16)
    assert not stale.applied and stale.needs_confirmation and catalogue() == before
    file.seek(0)
    done = xlsx.import_skus(file, confirm=preview.preview.fingerprint)
    assert done.ok and done.applied and not done.needs_confirmation
    assert (done.created, done.updated, done.unchanged) == (1, 1, 1)
    white = Sku.objects.get(merchant_code="TS-W-L")
    assert (white.goods.name, white.name, white.cost_fen) == ("新货品", "纯棉T恤 新款", 2100)
    # the flag form (API, scripts): confirm=True applies whatever the file changes
    again = xlsx.import_skus(
        workbook(("新货品", "TS-W-L", "6901234567892", "纯棉T恤", "白 L", "22", 250, None)), confirm=True
    )
    assert again.applied and again.updated == 1
    assert Sku.objects.get(merchant_code="TS-W-L").cost_fen == 2200


def test_issue11_d18_only_new_codes_import_without_confirmation(seeded):
    result = xlsx.import_skus(workbook(("袜子", "SOCK-1", None, "船袜", "", "5", None, "")))
    assert result.applied and result.created == 1 and not result.needs_confirmation
    assert Sku.objects.filter(merchant_code="SOCK-1").exists()


def test_issue11_d18_unknown_component_is_reported_beside_other_problems(seeded):
    before = catalogue()
    result = xlsx.import_skus(
        workbook(
            ("套装", "SET-B", None, "套装B", "", 1, 0, "GHOST*1"),  # row 2: unknown component
            ("新货品", "NEW-1", None, "新品", "", "abc", None, None),  # row 3: bad cost
            ("套装", "SET-C", None, "套装C", "", 1, 0, "NEW-1*1"),  # row 4: its component's row is bad
        )
    )
    assert [(e.row, e.column) for e in result.errors] == [(2, "组合明细"), (3, "成本价(元)")]
    assert "GHOST" in result.errors[0].message
    assert catalogue() == before


def test_issue11_d18_import_page_previews_changes_and_asks_before_updating(seeded, alpha, alpha_client):
    client = _login(alpha, alpha_client, Role.OPERATOR)
    before = catalogue()
    data = workbook(
        ("纯棉T恤", "TS-W-L", "6901234567892", "纯棉T恤", "白 L", "21.00", 250, None),
        ("袜子", "SOCK-1", None, "船袜", "", "5", None, ""),
    ).getvalue()
    response = client.post("/inventory/skus/import/", {"file": SimpleUploadedFile("skus.xlsx", data)})
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-testid="import-preview"' in body and 'data-testid="import-confirm"' in body
    assert "19.90" in body and "21.00" in body and "SOCK-1" in body
    assert catalogue() == before
    preview = response.context["result"].preview
    confirmed = client.post(
        "/inventory/skus/import/", {"upload": response.context["upload"], "confirm": preview.fingerprint}
    )
    assert confirmed.status_code == 200
    assert 'data-testid="import-result"' in confirmed.content.decode()
    assert Sku.objects.get(merchant_code="TS-W-L").cost_fen == 2100
    assert Sku.objects.filter(merchant_code="SOCK-1").exists()
    # the stored upload is gone after use
    gone = client.post(
        "/inventory/skus/import/", {"upload": response.context["upload"], "confirm": preview.fingerprint}
    )
    assert gone.status_code == 400


def test_issue11_d18_api_import_asks_for_confirmation(seeded, alpha, alpha_client):
    client = _login(alpha, alpha_client, Role.OPERATOR)
    data = workbook(("纯棉T恤", "TS-W-L", "6901234567892", "纯棉T恤", "白 L", "21.00", 250, None)).getvalue()
    first = client.post("/api/v1/skus/import/", {"file": SimpleUploadedFile("skus.xlsx", data)})
    assert first.status_code == 200, first.content
    body = first.json()
    assert body["applied"] is False and body["confirmation_required"] is True
    assert body["preview"]["changes"] == [
        {"merchant_code": "TS-W-L", "fields": [{"field": "cost", "old": "19.90", "new": "21.00"}]}
    ]
    assert Sku.objects.get(merchant_code="TS-W-L").cost_fen == 1990
    second = client.post(
        "/api/v1/skus/import/",
        {"file": SimpleUploadedFile("skus.xlsx", data), "confirm": body["preview"]["fingerprint"]},
    )
    assert second.status_code == 200 and second.json()["applied"] is True
    assert Sku.objects.get(merchant_code="TS-W-L").cost_fen == 2100
    bad = client.post(
        "/api/v1/skus/import/",
        {
            "file": SimpleUploadedFile(
                "skus.xlsx", workbook(("x", "Y", None, "", "", "1", 0, None)).getvalue()
            )
        },
    )
    assert bad.status_code == 400 and bad.json()["error"]["details"]["rows"][0]["row"] == 2

"""Order export: the current filter to xlsx in the background, progress in the cache, the
file in the tenant's storage, downloadable by the user who asked only."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from io import BytesIO

import pytest
from django.core.files.storage import default_storage, storages
from django.test import override_settings
from openpyxl import load_workbook

from orders import exports, services
from orders.export_tasks import export_orders_task
from tenants.accounts.models import Role
from tests.conftest import OWNER_PASSWORD, make_user
from tests.orders.conftest import T0, channel_order, line, receiver


def _forget_media_root() -> None:
    # TenantFileSystemStorage caches MEDIA_ROOT (and misses the setting_changed signal)
    storages["default"].__dict__.pop("relative_media_root", None)


@pytest.fixture(autouse=True)
def media(tmp_path):
    """Tenant storage under a temporary MEDIA_ROOT."""
    with override_settings(MEDIA_ROOT=str(tmp_path)):
        _forget_media_root()
        yield tmp_path
    _forget_media_root()


@pytest.fixture
def owner(alpha_client):
    response = alpha_client.post("/accounts/login/", {"username": "alpha-owner", "password": OWNER_PASSWORD})
    assert response.status_code == 302
    return alpha_client


@pytest.fixture
def orders(store, skus):
    """Three orders to ship and one held for its remark."""
    made = []
    for n, (code, qty) in enumerate((("TS-WHT-L", 2), ("CAP-RED", 1), ("TS-WHT-L", 1))):
        co = channel_order(
            oid=f"E{n}", lines=(line(1, code, qty=qty, price=1250),), receiver=receiver(f"i{n}")
        )
        made.append(
            services.ingest_channel_order(store=store, co=replace(co, created_at=T0 + timedelta(hours=n)))
        )
    co = channel_order(oid="E9", buyer_remark="发顺丰", receiver=receiver("i9"))
    made.append(
        services.ingest_channel_order(store=store, co=replace(co, created_at=T0 + timedelta(hours=9)))
    )
    return made


def start(client, query: str):
    response = client.post("/orders/export/", {"filter_query": query}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return response.context["export"]


def test_export_writes_the_filtered_orders_with_masks_only(
    in_alpha, orders, owner, django_capture_on_commit_callbacks, monkeypatch
):
    sent = []
    monkeypatch.setattr(export_orders_task, "delay", lambda export_id: sent.append(export_id))
    with django_capture_on_commit_callbacks(execute=True):
        export = start(owner, "status=approved&after=123.4")
    assert sent == [export["id"]]  # queued after commit, with the id only
    html = owner.get(f"/orders/export/{export['id']}/", HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-trigger="every 1s"' in html and "排队中" in html

    result = export_orders_task(export["id"])  # the task body, without a worker
    assert result == {"export": export["id"], "state": "done", "rows": 3}

    status = owner.get(f"/orders/export/{export['id']}/", HTTP_HX_REQUEST="true")
    html = status.content.decode()
    assert "every 1s" not in html and f"/orders/export/{export['id']}/download/" in html
    assert status.context["export"]["percent"] == 100

    download = owner.get(f"/orders/export/{export['id']}/download/")
    assert download.status_code == 200
    assert download["Content-Type"].startswith("application/vnd.openxmlformats")
    assert "attachment" in download["Content-Disposition"]
    sheet = load_workbook(BytesIO(b"".join(download.streaming_content))).active
    rows = list(sheet.iter_rows(values_only=True))
    header = rows[0]
    assert header[:4] == ("平台", "店铺", "订单号", "状态")
    body = [dict(zip(header, row, strict=True)) for row in rows[1:]]
    assert [r["订单号"] for r in body] == ["E2", "E1", "E0"]  # the filter (not the page), newest first
    first = body[2]
    assert first["商品"] == "TS-WHT-L × 2" and first["实付（元）"] == 25 and first["状态"] == "待发货"
    assert first["收货人（脱敏）"] == "张*" and first["手机（脱敏）"] == "138****8888"
    assert first["下单时间"] == datetime(2026, 11, 20, 10, 0)  # T0 (02:00 UTC) in Asia/Shanghai
    flat = str(rows)
    assert "#name#" not in flat and "$tel$" not in flat and "idx-" not in flat  # no ciphertext or index
    assert default_storage.exists(
        exports.storage_path(user_id=status.wsgi_request.user.pk, export_id=export["id"])
    )


def test_export_progress_is_recorded_per_chunk(in_alpha, orders, owner, monkeypatch):
    monkeypatch.setattr(export_orders_task, "delay", lambda export_id: None)
    monkeypatch.setattr(exports, "CHUNK", 1)
    progress = []
    real_update = exports._update

    def spy(export_id, meta, **changes):
        real_update(export_id, meta, **changes)
        progress.append((meta["state"], meta["done"], meta["total"]))

    monkeypatch.setattr(exports, "_update", spy)
    export = start(owner, "")
    export_orders_task(export["id"])
    assert progress == [
        ("running", 0, 4),
        ("running", 1, 4),
        ("running", 2, 4),
        ("running", 3, 4),
        ("running", 4, 4),
        ("done", 4, 4),
    ]


def test_download_is_refused_to_other_users_and_other_tenants(
    in_alpha, alpha, orders, owner, beta_client, alpha_client, monkeypatch
):
    monkeypatch.setattr(export_orders_task, "delay", lambda export_id: None)
    export = start(owner, "")
    export_orders_task(export["id"])
    url = f"/orders/export/{export['id']}/download/"
    assert owner.get(url).status_code == 200

    # another user of the same tenant
    make_user(alpha, "ex-operator", Role.OPERATOR, "Staff-pass-2026")
    other = alpha_client.__class__(HTTP_HOST=alpha_client.defaults["HTTP_HOST"])
    assert (
        other.post("/accounts/login/", {"username": "ex-operator", "password": "Staff-pass-2026"}).status_code
        == 302
    )
    assert other.get(url).status_code == 404
    assert other.get(f"/orders/export/{export['id']}/").status_code == 404

    # the owner of another tenant, same export id
    assert (
        beta_client.post(
            "/accounts/login/", {"username": "beta-owner", "password": OWNER_PASSWORD}
        ).status_code
        == 302
    )
    assert beta_client.get(url).status_code == 404
    assert beta_client.get(f"/orders/export/{export['id']}/").status_code == 404
    assert owner.get("/orders/export/not-an-id/download/").status_code == 404


def test_operator_may_export_but_not_the_viewer_or_anonymous(
    in_alpha, alpha, orders, alpha_client, monkeypatch
):
    monkeypatch.setattr(export_orders_task, "delay", lambda export_id: None)
    assert alpha_client.post("/orders/export/", {"filter_query": ""}).status_code == 302  # to the login page
    make_user(alpha, "ex-viewer", Role.VIEWER, "Staff-pass-2026")
    alpha_client.post("/accounts/login/", {"username": "ex-viewer", "password": "Staff-pass-2026"})
    assert alpha_client.post("/orders/export/", {"filter_query": "status=held"}).status_code == 403
    alpha_client.post("/accounts/logout/")
    make_user(alpha, "ex-operator", Role.OPERATOR, "Staff-pass-2026")
    alpha_client.post("/accounts/login/", {"username": "ex-operator", "password": "Staff-pass-2026"})
    response = alpha_client.post("/orders/export/", {"filter_query": "status=held"})
    assert response.status_code == 302
    export_id = response["Location"].rstrip("/").rsplit("/", 1)[-1]
    assert export_orders_task(export_id)["rows"] == 1
    assert alpha_client.get(f"/orders/export/{export_id}/").status_code == 200

"""Merchant supplier pages (list, form, detail tabs, imports) and the supplier invitation flow."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from django_tenants.utils import schema_context
from openpyxl import Workbook

from inventory.models import StockLevel
from suppliers import invites
from suppliers.models import Supplier, SupplierInvitation, SupplierSku
from tenants.accounts.models import Role
from tests.conftest import make_user, tenant_client
from tests.suppliers.factories import bind, make_supplier

PASSWORD = "Staff-pass-2026"


@pytest.fixture
def as_role(alpha, alpha_client):
    def login(role: str):
        make_user(alpha, f"sup-{role}", role, PASSWORD)
        response = alpha_client.post("/accounts/login/", {"username": f"sup-{role}", "password": PASSWORD})
        assert response.status_code == 302
        return alpha_client

    return login


def _xlsx(rows, name="list.xlsx"):
    workbook = Workbook()
    for row in rows:
        workbook.active.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    buffer.seek(0)
    buffer.name = name
    return buffer


def test_list_tabs_search_and_nav(as_role, skus):
    tea = make_supplier("HZ01", name="杭州茶厂", contact_name="王五", ship_from_province="浙江省")
    bind(tea, skus["TS-WHT-L"])
    make_supplier("YW02", name="义乌百货", status="paused")
    client = as_role(Role.VIEWER)
    page = client.get("/suppliers/")
    html = page.content.decode()
    assert page.status_code == 200
    assert 'data-testid="nav-suppliers"' in html and "供应商" in html
    assert re.search(r'tab-all">全部 <span class="count">2', html)
    assert re.search(r'tab-active">合作中 <span class="count">1', html)
    assert re.search(r'tab-paused">已暂停 <span class="count">1', html)
    assert "杭州茶厂" in html and "义乌百货" in html
    assert 'data-testid="supplier-new"' not in html  # a viewer reads, does not edit
    # the dropship pages reach each other: suppliers, dispatches, performance, rules, exceptions
    for url in ("/suppliers/", "/suppliers/dispatches/", "/suppliers/performance/"):
        nav = client.get(url).content.decode()
        nav = nav[nav.index('data-testid="dropship-nav"') :]
        for target in (
            "/suppliers/dispatches/",
            "/suppliers/performance/",
            "/suppliers/rules/",
            "/suppliers/exceptions/",
        ):
            assert f'href="{target}"' in nav[: nav.index("</nav>")], (url, target)
    paused = client.get("/suppliers/?tab=paused").content.decode()
    assert "义乌百货" in paused and "杭州茶厂" not in paused
    found = client.get("/suppliers/?q=王五").content.decode()
    assert "杭州茶厂" in found and "义乌百货" not in found
    detail = client.get(f"/suppliers/{tea.pk}/").content.decode()
    assert "TS-WHT-L" in detail and "¥10.00" in detail
    assert client.get("/suppliers/new/").status_code == 403
    assert client.post(f"/suppliers/{tea.pk}/status/", {"status": "paused"}).status_code == 403


def test_create_and_edit_validate_in_zh_hans(as_role, in_alpha):
    client = as_role(Role.OPERATOR)
    form = client.get("/suppliers/new/").content.decode()
    assert 'data-testid="reveal-warning"' in form
    bad = client.post(
        "/suppliers/new/",
        {
            "name": "",
            "code": "HZ01",
            "settlement": "monthly",
            "status": "active",
            "contact_email": "nope",
            "daily_capacity": "-3",
        },
    )
    assert bad.status_code == 200
    html = bad.content.decode()
    assert "该字段是必填项" in html and "请输入合法的邮件地址" in html and "确保该值大于或等于1" in html
    assert not Supplier.objects.exists()
    good = {
        "name": "杭州茶厂",
        "code": "HZ01",
        "settlement": "per_order",
        "status": "active",
        "ship_from_province": "浙江省",
        "ship_from_city": "杭州市",
        "cutoff": "16:00",
        "daily_capacity": "500",
        "may_reveal_receiver": "on",
        "wechat_supplier_appid": "wx-sup-1",
    }
    response = client.post("/suppliers/new/", good)
    supplier = Supplier.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/suppliers/{supplier.pk}/"
    assert (supplier.settlement, str(supplier.cutoff), supplier.may_reveal_receiver) == (
        "per_order",
        "16:00:00",
        True,
    )
    assert supplier.warehouse.kind == "supplier"
    taken = client.post("/suppliers/new/", good).content.decode()
    assert "供应商编码 HZ01 已被使用" in taken
    edit = client.post(
        f"/suppliers/{supplier.pk}/edit/",
        {**good, "code": "OTHER", "name": "杭州茶厂二厂", "daily_capacity": "0"},
    )
    assert edit.status_code == 200 and "确保该值大于或等于1" in edit.content.decode()
    client.post(f"/suppliers/{supplier.pk}/edit/", {**good, "code": "OTHER", "name": "杭州茶厂二厂"})
    supplier.refresh_from_db()
    assert (supplier.name, supplier.code) == ("杭州茶厂二厂", "HZ01")  # the code stays
    client.post(f"/suppliers/{supplier.pk}/status/", {"status": "paused"})
    assert Supplier.objects.get().status == "paused"


def test_sku_tab_add_remove_import_and_stock(as_role, skus):
    supplier = make_supplier("HZ01")
    client = as_role(Role.OWNER)
    url = f"/suppliers/{supplier.pk}/"
    bad = client.post(
        url + "skus/", {"merchant_code": "NOPE", "cost": "1.234", "freight": "per_unit", "priority": "1"}
    )
    assert bad.status_code == 400
    html = bad.content.decode()
    assert "没有商家编码为 NOPE 的 SKU" in html and "此运费规则需要填写运费" in html
    ok = client.post(
        url + "skus/",
        {
            "merchant_code": "TS-WHT-L",
            "supplier_code": "HZ-1",
            "cost": "12.5",
            "freight": "per_dispatch",
            "freight_yuan": "3",
            "priority": "5",
        },
    )
    assert ok.status_code == 302
    item = SupplierSku.objects.get()
    assert (item.cost_fen, item.freight_fen, item.priority) == (1250, 300, 5)
    # xlsx import with a row error, shown in the page
    rows = [["商家编码", "成本价(元)"], ["TS-BLK-M", "8"], ["NOPE", "1"]]
    response = client.post(url + "skus/import/", {"file": _xlsx(rows)})
    page = response.content.decode()
    assert response.status_code == 400 and 'data-testid="import-errors"' in page and "NOPE" in page
    assert SupplierSku.objects.count() == 2
    template = client.get("/suppliers/templates/skus.xlsx")
    assert template.status_code == 200 and template["Content-Type"].startswith(
        "application/vnd.openxmlformats"
    )
    # stock: the form and the import both go through report_stock
    client.post(
        url + "stock/", {f"on_hand-{skus['TS-WHT-L'].pk}": "40", f"on_hand-{skus['TS-BLK-M'].pk}": ""}
    )
    assert StockLevel.objects.get(sku=skus["TS-WHT-L"], warehouse=supplier.warehouse).on_hand == 40
    response = client.post(url + "stock/import/", {"file": _xlsx([["供应商编码", "库存"], ["HZ-1", 12]])})
    assert response.status_code == 200
    assert StockLevel.objects.get(sku=skus["TS-WHT-L"], warehouse=supplier.warehouse).on_hand == 12
    stock_page = client.get(url + "?tab=stock").content.decode()
    assert 'data-testid="supplier-stock"' in stock_page
    client.post(url + f"skus/{skus['TS-WHT-L'].pk}/remove/")
    assert list(SupplierSku.objects.values_list("sku__merchant_code", flat=True)) == ["TS-BLK-M"]


def _invite_link(client, supplier, email="a@hz.example") -> str:
    page = client.post(f"/suppliers/{supplier.pk}/invitations/", {"email": email}).content.decode()
    return re.search(r'data-testid="invite-link">https?://[^/]+(/suppliers/invite/[^/]+/)<', page)[1]


def test_invitation_makes_a_supplier_user_once(as_role, alpha, beta, skus):
    supplier = make_supplier("HZ01", name="杭州茶厂")
    other = make_supplier("YW02")
    owner = as_role(Role.OWNER)
    path = _invite_link(owner, supplier)
    invitation = SupplierInvitation.objects.get()
    token = path.split("/")[-2]
    assert token not in invitation.token_hash and len(invitation.token_hash) == 64
    # another tenant's domain does not know the token
    with schema_context(beta.schema_name):
        assert tenant_client(beta).get(path).status_code == 404
    visitor = tenant_client(alpha)
    page = visitor.get(path)
    assert page.status_code == 200 and "杭州茶厂" in page.content.decode()
    weak = visitor.post(path, {"username": "hz-wang", "password1": "123", "password2": "123"})
    assert weak.status_code == 200 and "密码" in weak.content.decode()
    response = visitor.post(
        path, {"username": "hz-wang", "password1": "Tea-pass-2026x", "password2": "Tea-pass-2026x"}
    )
    assert response.status_code == 302 and response["Location"] == "/supplier/"
    user = get_user_model().objects.get(username="hz-wang")
    assert (user.role, user.supplier_id, user.email) == (Role.SUPPLIER, supplier.pk, "a@hz.example")
    # the supplier user cannot open the merchant's supplier pages
    for url in (
        "/suppliers/",
        f"/suppliers/{supplier.pk}/",
        f"/suppliers/{other.pk}/?tab=users",
        "/suppliers/new/",
    ):
        assert visitor.get(url).status_code == 403, url
    assert visitor.post(f"/suppliers/{other.pk}/invitations/", {}).status_code == 403
    # the link worked once
    assert tenant_client(alpha).get(path).status_code == 404
    again = tenant_client(alpha).post(
        path, {"username": "hz-li", "password1": "Tea-pass-2026x", "password2": "Tea-pass-2026x"}
    )
    assert again.status_code == 404
    # a second invitation: a second user of the same supplier; an expired one is refused
    second = _invite_link(owner, supplier, email="")
    tenant_client(alpha).post(
        second, {"username": "hz-li", "password1": "Tea-pass-2026x", "password2": "Tea-pass-2026x"}
    )
    assert set(invites.users_of(supplier).values_list("username", flat=True)) == {"hz-wang", "hz-li"}
    cancelled = _invite_link(owner, supplier)
    pending = SupplierInvitation.objects.get(accepted_at__isnull=True)
    assert owner.post(f"/suppliers/{other.pk}/invitations/{pending.pk}/cancel/").status_code == 404
    assert owner.post(f"/suppliers/{supplier.pk}/invitations/{pending.pk}/cancel/").status_code == 302
    assert tenant_client(alpha).get(cancelled).status_code == 404
    expired = _invite_link(owner, supplier)
    SupplierInvitation.objects.filter(accepted_at__isnull=True).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert tenant_client(alpha).get(expired).status_code == 404
    # the merchant lists and deactivates one of them
    users_page = owner.get(f"/suppliers/{supplier.pk}/?tab=users").content.decode()
    assert "hz-wang" in users_page and "hz-li" in users_page
    owner.post(f"/suppliers/{supplier.pk}/users/{user.pk}/", {"action": "deactivate"})
    user.refresh_from_db()
    assert not user.is_active
    assert get_user_model().objects.get(username="hz-li").is_active
    # not through another supplier's page
    li = get_user_model().objects.get(username="hz-li")
    assert owner.post(f"/suppliers/{other.pk}/users/{li.pk}/", {"action": "deactivate"}).status_code == 404

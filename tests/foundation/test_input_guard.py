"""Input is checked once at the edge (issue 12, defect 3): no input gives HTTP 500; API errors
always come in the JSON envelope, pages show a Chinese error page."""

import json
from urllib.parse import quote

import pytest
from django.test import Client, RequestFactory
from django.urls import get_resolver

from tenants.accounts.models import Role
from tests.conftest import OWNER_PASSWORD, api_key, make_user

PASSWORD = "Staff-pass-2026"


def _envelope(response, status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    error = json.loads(response.content)["error"]
    assert set(error) == {"code", "message", "details"} and error["code"] and error["message"]
    return error


def _token(tenant, username) -> str:
    return api_key(tenant, username)


@pytest.mark.parametrize("offset", ["+16:00", "-16:00", "+23:59"])
def test_issue12_d3_offset_beyond_postgres_range_in_the_api_filter(alpha, alpha_client, offset):
    auth = {"HTTP_AUTHORIZATION": f"Token {_token(alpha, 'alpha-owner')}"}
    for name in ("placed_after", "placed_before"):
        response = alpha_client.get(f"/api/v1/orders/?{name}={quote('2026-03-01T10:00:00' + offset)}", **auth)
        assert response.status_code == 200, response.content[:300]
        assert response.json()["results"] == []  # no orders yet, but the filter ran


def test_issue12_d3_unrepresentable_datetimes_are_refused_in_the_envelope(alpha, alpha_client):
    auth = {"HTTP_AUTHORIZATION": f"Token {_token(alpha, 'alpha-owner')}"}
    for value in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"):
        response = alpha_client.get(f"/api/v1/orders/?placed_after={quote(value)}", **auth)
        error = _envelope(response, 400)
        assert "placed_after" in error["details"]


def test_issue12_d3_offset_beyond_postgres_range_in_the_workbench_filter(alpha, alpha_client):
    alpha_client.post("/accounts/login/", {"username": "alpha-owner", "password": OWNER_PASSWORD})
    for value in ("2026-03-01T10:00:00+16:00", "2026-03-01T10:00:00-23:00", "0001-01-01T00:00:00+05:00"):
        response = alpha_client.get(f"/orders/?placed_from={quote(value)}&placed_to={quote(value)}")
        assert response.status_code == 200


def test_issue12_d3_nul_without_logging_in_is_a_400(alpha_client, public_client):
    token = alpha_client.post(
        "/api/v1/auth/token/",
        {"username": "alpha-owner\x00", "password": "x"},
        content_type="application/json",
    )
    _envelope(token, 400)
    form = alpha_client.post(
        "/api/v1/auth/token/",
        "username=alpha-owner%00&password=x",
        content_type="application/x-www-form-urlencoded",
    )
    _envelope(form, 400)
    for path in ("/hooks/douyin%00/", "/hooks/douyin/app%00key/", "/hooks/wechat/component/wx%00/"):
        _envelope(public_client.post(path, b"{}", content_type="application/json"), 400)
        _envelope(public_client.get(path), 400)
    _envelope(public_client.get("/hooks/douyin/?msg=%00"), 400)


@pytest.mark.parametrize("role", [Role.OWNER, Role.VIEWER, Role.WAREHOUSE])
def test_issue12_d3_nul_in_staff_search_filters_is_a_400(alpha, alpha_client, role):
    make_user(alpha, f"nul-{role}", role)
    alpha_client.post("/accounts/login/", {"username": f"nul-{role}", "password": PASSWORD})
    for path in (
        "/shops/inbox/?status=%00",
        "/shops/inbox/?platform=douyin%00",
        "/inventory/listings/unmatched/?q=a%00b",
        "/inventory/skus/?q=%00",
        "/inventory/skus/search/?q=%00",
        "/orders/?q=%00",
    ):
        response = alpha_client.get(path)
        assert response.status_code == 400, path
        assert "请求无效" in response.content.decode()  # the Chinese error page
    auth = {"HTTP_AUTHORIZATION": f"Token {_token(alpha, f'nul-{role}')}"}
    for path in ("/api/v1/skus/?search=%00", "/api/v1/inbox/?status=%00", "/api/v1/orders/?q=x%00"):
        _envelope(alpha_client.get(path, **auth), 400)


def test_issue12_d3_nul_in_a_json_body_is_a_400(alpha, alpha_client):
    auth = {"HTTP_AUTHORIZATION": f"Token {_token(alpha, 'alpha-owner')}"}
    response = alpha_client.post(
        "/api/v1/invitations/",
        {"email": "a@b.example", "role": "viewer", "note": ["x\x00"]},
        content_type="application/json",
        **auth,
    )
    assert _envelope(response, 400)["code"] == "parse_error"


def test_issue12_d3_api_404_and_500_come_in_the_envelope(alpha_client, public_client):
    for path in ("/api/v1/no-such-thing/", "/api/", "/api/v2/orders/"):
        _envelope(alpha_client.get(path), 404)
    _envelope(public_client.get("/hooks/"), 404)
    request = RequestFactory().get("/api/v1/orders/")
    _envelope(get_resolver("ecbao.urls_tenant").resolve_error_handler(500)(request), 500)
    page = get_resolver("ecbao.urls_tenant").resolve_error_handler(500)(RequestFactory().get("/orders/"))
    assert page.status_code == 500 and "服务器错误" in page.content.decode()


def test_issue12_d3_pages_show_chinese_error_pages(alpha, alpha_client):
    missing = alpha_client.get("/no-such-page/")
    assert missing.status_code == 404 and "页面不存在" in missing.content.decode()
    make_user(alpha, "err-viewer", Role.VIEWER)
    alpha_client.post("/accounts/login/", {"username": "err-viewer", "password": PASSWORD})
    denied = alpha_client.get("/accounts/staff/")
    assert denied.status_code == 403 and "<h1>" in denied.content.decode()
    assert "Access denied" not in denied.content.decode()
    bad = Client(HTTP_HOST="alpha.localhost").get("/orders/%00/")
    assert bad.status_code == 400 and "请求无效" in bad.content.decode()

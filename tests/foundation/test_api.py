from django_tenants.utils import schema_context

from tenants.accounts.models import Role
from tests.conftest import OWNER_PASSWORD, make_user


def test_unauthenticated_api_call_gets_the_error_envelope(alpha_client):
    response = alpha_client.get("/api/v1/users/")
    assert response.status_code == 401
    body = response.json()
    assert body["error"]["code"] == "not_authenticated"
    assert body["error"]["message"]


def test_token_obtained_with_password_authenticates(alpha_client):
    response = alpha_client.post(
        "/api/v1/auth/token/",
        {"username": "alpha-owner", "password": OWNER_PASSWORD},
        content_type="application/json",
    )
    assert response.status_code == 200
    token = response.json()["token"]
    me = alpha_client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {token}")
    assert me.status_code == 200 and me.json()["username"] == "alpha-owner" and me.json()["role"] == "owner"


def test_wrong_password_gets_no_token(alpha_client):
    response = alpha_client.post(
        "/api/v1/auth/token/",
        {"username": "alpha-owner", "password": "nope"},
        content_type="application/json",
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "authentication_failed"
    assert response.json()["error"]["message"] == "用户名或密码错误。"  # Chinese first, like the dashboard
    english = alpha_client.post(
        "/api/v1/auth/token/",
        {"username": "alpha-owner", "password": "nope"},
        content_type="application/json",
        HTTP_ACCEPT_LANGUAGE="en",
        HTTP_COOKIE="django_language=en",
    )
    assert english.json()["error"]["message"] == "Invalid username or password."


def test_bad_token_is_rejected(alpha_client):
    response = alpha_client.get("/api/v1/me/", HTTP_AUTHORIZATION="Token 0123456789abcdef")
    assert response.status_code == 401 and response.json()["error"]["code"] == "authentication_failed"


def _token(tenant, username):
    with schema_context(tenant.schema_name):
        from django.contrib.auth import get_user_model

        from tenants.accounts.services import issue_api_token

        return issue_api_token(user=get_user_model().objects.get(username=username))[1]


def test_list_is_keyset_paginated(alpha, alpha_client):
    for i in range(5):
        make_user(alpha, f"pager-{i}", Role.VIEWER)
    token = _token(alpha, "alpha-owner")
    first = alpha_client.get("/api/v1/users/?page_size=4", HTTP_AUTHORIZATION=f"Token {token}").json()
    assert len(first["results"]) == 4 and first["next"]
    second = alpha_client.get(first["next"], HTTP_AUTHORIZATION=f"Token {token}").json()
    names = [u["username"] for u in first["results"] + second["results"]]
    assert len(names) == len(set(names)) == 6
    # the kernel's keyset pager: newest id first, back with `previous`, a bad cursor is a 404
    ids = [u["id"] for u in first["results"] + second["results"]]
    assert ids == sorted(ids, reverse=True) and not second["next"] and second["previous"]
    back = alpha_client.get(second["previous"], HTTP_AUTHORIZATION=f"Token {token}").json()
    assert [u["id"] for u in back["results"]] == ids[:4]
    bad = alpha_client.get("/api/v1/users/?cursor=n12x", HTTP_AUTHORIZATION=f"Token {token}")
    assert bad.status_code == 404 and bad.json()["error"] == {
        "code": "not_found",
        "message": "无效的游标",
        "details": None,
    }


def test_viewer_reads_but_cannot_write(alpha, alpha_client):
    make_user(alpha, "viewer", Role.VIEWER)
    token = _token(alpha, "viewer")
    assert alpha_client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {token}").status_code == 200
    denied = alpha_client.post(
        "/api/v1/invitations/",
        {"email": "x@y.example", "role": "operator"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {token}",
    )
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "permission_denied"


def test_owner_creates_invitation_and_bad_fields_are_explained(alpha, alpha_client):
    token = _token(alpha, "alpha-owner")
    ok = alpha_client.post(
        "/api/v1/invitations/",
        {"email": "ops@alpha.example", "role": "operator"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {token}",
    )
    assert ok.status_code == 201 and ok.json()["invite_token"]
    bad = alpha_client.post(
        "/api/v1/invitations/",
        {"email": "not-an-email", "role": "owner"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {token}",
    )
    assert bad.status_code == 400
    error = bad.json()["error"]
    assert error["code"] == "invalid" and set(error["details"]) == {"email", "role"}


def test_openapi_schema_and_docs_are_served(alpha_client):
    alpha_client.post("/accounts/login/", {"username": "alpha-owner", "password": OWNER_PASSWORD})
    schema = alpha_client.get("/api/schema/?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/users/" in paths and "/api/v1/auth/token/" in paths
    docs = alpha_client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()
    assert b"cdn" not in docs.content.lower()

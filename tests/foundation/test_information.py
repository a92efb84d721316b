"""What anyone may learn without signing in (issue 12, defect 9): nothing about a tenant."""

import pytest

from tenants.accounts.models import Role
from tests.conftest import api_key, make_user, tenant_client


def test_issue12_d9_signup_confirmation_is_only_for_the_browser_that_signed_up(public_client, db):
    from django.conf import settings
    from django.test import Client

    stranger = public_client.get("/signup/done/alpha/")
    assert stranger.status_code == 404 and "Alpha Trading" not in stranger.content.decode()
    response = public_client.post(
        "/",
        {
            "name": "Kappa 商贸",
            "slug": "kappa",
            "username": "boss",
            "email": "boss@kappa.example",
            "password": "Kappa-pass-2026",
        },
    )
    assert response.status_code == 302
    assert "Kappa 商贸" in public_client.get(response["Location"]).content.decode()
    # Another browser with the same link learns nothing; the signing-up browser cannot read others.
    other = Client(HTTP_HOST=settings.ECBAO_BASE_DOMAIN).get(response["Location"])
    assert other.status_code == 404 and "Kappa" not in other.content.decode()
    assert public_client.get("/signup/done/alpha/").status_code == 404


def test_issue12_d9_healthz_names_no_schema(alpha_client, public_client):
    for client in (alpha_client, public_client):
        response = client.get("/healthz")
        assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/api/schema/?format=json", "/api/docs/"])
def test_issue12_d9_api_schema_and_docs_are_for_the_tenants_staff(alpha, beta, path):
    make_user(alpha, "portal", Role.SUPPLIER)
    make_user(alpha, "viewer", Role.VIEWER)
    assert tenant_client(alpha).get(path).status_code == 401  # anonymous
    other_tenant = {"HTTP_AUTHORIZATION": f"Token {api_key(beta, 'beta-owner')}"}
    assert tenant_client(alpha).get(path, **other_tenant).status_code == 401
    supplier = tenant_client(alpha)
    assert (
        supplier.post("/accounts/login/", {"username": "portal", "password": "Staff-pass-2026"}).status_code
        == 302
    )
    assert supplier.get(path).status_code == 403
    viewer = tenant_client(alpha)
    assert (
        viewer.post("/accounts/login/", {"username": "viewer", "password": "Staff-pass-2026"}).status_code
        == 302
    )
    assert viewer.get(path).status_code == 200
    own_token = {"HTTP_AUTHORIZATION": f"Token {api_key(alpha, 'alpha-owner')}"}
    assert tenant_client(alpha).get(path, **own_token).status_code == 200

"""A tenant's users, sessions, tokens, data, cache entries, files and tasks never cross to another."""

import pytest
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django_tenants.utils import schema_context

from tenants.accounts.models import Role
from tests.conftest import OWNER_PASSWORD, make_user


def test_owner_of_one_tenant_cannot_log_in_to_another(alpha_client, beta_client):
    assert (
        alpha_client.post(
            "/accounts/login/", {"username": "alpha-owner", "password": OWNER_PASSWORD}
        ).status_code
        == 302
    )
    refused = beta_client.post("/accounts/login/", {"username": "alpha-owner", "password": OWNER_PASSWORD})
    assert refused.status_code == 200 and "errorlist" in refused.content.decode()


def test_session_cookie_of_one_tenant_is_not_valid_at_another(alpha_client, beta_client):
    alpha_client.post("/accounts/login/", {"username": "alpha-owner", "password": OWNER_PASSWORD})
    beta_client.cookies = alpha_client.cookies  # replay alpha's session at beta's host
    response = beta_client.get("/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_users_and_pages_of_one_tenant_are_invisible_from_another(alpha, beta, alpha_client, beta_client):
    make_user(alpha, "alpha-packer", Role.WAREHOUSE)
    alpha_client.post("/accounts/login/", {"username": "alpha-owner", "password": OWNER_PASSWORD})
    beta_client.post("/accounts/login/", {"username": "beta-owner", "password": OWNER_PASSWORD})
    assert "alpha-packer" in alpha_client.get("/accounts/staff/").content.decode()
    beta_page = beta_client.get("/accounts/staff/").content.decode()
    assert "alpha-packer" not in beta_page and "alpha-owner" not in beta_page


def test_api_token_of_one_tenant_is_rejected_by_another(alpha, beta, alpha_client, beta_client):
    with schema_context(alpha.schema_name):
        from django.contrib.auth import get_user_model

        from tenants.accounts.services import issue_api_token

        _token, key = issue_api_token(user=get_user_model().objects.get(username="alpha-owner"))
    ok = alpha_client.get("/api/v1/users/", HTTP_AUTHORIZATION=f"Token {key}")
    assert ok.status_code == 200
    assert [u["username"] for u in ok.json()["results"]] == ["alpha-owner"]
    refused = beta_client.get("/api/v1/users/", HTTP_AUTHORIZATION=f"Token {key}")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "authentication_failed"


def test_cache_entries_are_keyed_by_tenant(alpha, beta):
    with schema_context(alpha.schema_name):
        cache.set("shared-looking-key", "alpha-value", 60)
    with schema_context(beta.schema_name):
        assert cache.get("shared-looking-key") is None
        cache.set("shared-looking-key", "beta-value", 60)
    with schema_context(alpha.schema_name):
        assert cache.get("shared-looking-key") == "alpha-value"


def test_files_are_stored_per_tenant(alpha, beta, tmp_path, settings):
    with schema_context(alpha.schema_name):
        default_storage.path("warm")  # the storage was used before (its tenant root computed)
    settings.MEDIA_ROOT = str(tmp_path)
    with schema_context(alpha.schema_name):
        name = default_storage.save("exports/report.txt", ContentFile(b"alpha"))
        assert default_storage.path(name).startswith(str(tmp_path / "alpha"))
    with schema_context(beta.schema_name):
        assert not default_storage.exists(name)


@pytest.mark.django_db
def test_celery_task_runs_only_in_its_tenant(alpha, beta, tenant_worker):
    from tenants.accounts.tasks import tenant_census

    with schema_context(alpha.schema_name):
        alpha_result = tenant_census.delay()
    with schema_context(beta.schema_name):
        beta_result = tenant_census.delay()
    assert alpha_result.get(timeout=30) == {"schema": "alpha", "usernames": ["alpha-owner"]}
    assert beta_result.get(timeout=30) == {"schema": "beta", "usernames": ["beta-owner"]}

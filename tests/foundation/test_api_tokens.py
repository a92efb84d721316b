"""API tokens at rest and in the dashboard (issue 12, defects 4 and 5)."""

import hashlib
from datetime import timedelta

from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from tenants.accounts.models import Role
from tests.conftest import OWNER_PASSWORD, make_user

PASSWORD = "Staff-pass-2026"


def _obtain(client, username="alpha-owner", password=OWNER_PASSWORD, **extra) -> str:
    response = client.post(
        "/api/v1/auth/token/",
        {"username": username, "password": password, **extra},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return response.json()["token"]


def _schema_text(schema: str) -> str:
    """Every text value of every table in ``schema``, as one string (a database dump, in short)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_type = 'BASE TABLE'",
            [schema],
        )
        chunks = []
        for (table,) in cursor.fetchall():
            cursor.execute(f'SELECT t::text FROM "{schema}"."{table}" t')  # noqa: S608 - names from the catalogue
            chunks.extend(row[0] for row in cursor.fetchall())
    return "\n".join(chunks)


def test_issue12_d5_token_keys_are_stored_only_as_digests(alpha, alpha_client):
    key = _obtain(alpha_client, name="ERP bridge")
    me = alpha_client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {key}")
    assert me.status_code == 200 and me.json()["username"] == "alpha-owner"
    dump = _schema_text(alpha.schema_name) + _schema_text("public")
    assert key not in dump and key[15:] not in dump  # neither the key nor its secret part
    from tenants.accounts.models import ApiToken

    assert key.startswith("ecb_") and len(key) > 60
    with schema_context(alpha.schema_name):
        token = ApiToken.objects.get(name="ERP bridge")
        assert token.digest == hashlib.sha512(key.encode()).hexdigest()
        assert token.expiry - timezone.now() > timedelta(days=80)  # it expires (default 90 days)
        assert token.last_used_at is not None
    with connection.cursor() as cursor:  # the old plaintext table is gone
        cursor.execute("SELECT to_regclass(%s)", [f"{alpha.schema_name}.authtoken_token"])
        assert cursor.fetchone()[0] is None


def test_issue12_d5_expired_and_revoked_tokens_stop_working(alpha, alpha_client):
    from tenants.accounts.models import ApiToken

    first, second = _obtain(alpha_client, name="one"), _obtain(alpha_client, name="two")
    with schema_context(alpha.schema_name):
        ApiToken.objects.filter(name="one").update(expiry=timezone.now() - timedelta(seconds=1))
    expired = alpha_client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {first}")
    assert expired.status_code == 401 and expired.json()["error"]["code"] == "authentication_failed"
    # The owner revokes the second one in the dashboard.
    assert (
        alpha_client.post(
            "/accounts/login/", {"username": "alpha-owner", "password": OWNER_PASSWORD}
        ).status_code
        == 302
    )
    page = alpha_client.get("/accounts/tokens/")
    assert page.status_code == 200 and "two" in page.content.decode()
    with schema_context(alpha.schema_name):
        digest = ApiToken.objects.get(name="two").digest
    assert alpha_client.post(f"/accounts/tokens/{digest}/revoke/").status_code == 302
    assert alpha_client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {second}").status_code == 401


def test_issue12_d5_dashboard_makes_a_named_token_shown_once(alpha, alpha_client):
    from tenants.accounts.models import ApiToken

    make_user(alpha, "ops", Role.OPERATOR)
    assert alpha_client.post("/accounts/login/", {"username": "ops", "password": PASSWORD}).status_code == 302
    made = alpha_client.post("/accounts/tokens/", {"name": "打单机", "days": "30"})
    assert made.status_code == 200
    key = made.context["new_key"]
    assert key and key in made.content.decode()
    again = alpha_client.get("/accounts/tokens/").content.decode()
    assert "打单机" in again and key not in again  # listed by name and prefix, never shown again
    assert alpha_client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 200
    with schema_context(alpha.schema_name):
        token = ApiToken.objects.get(name="打单机")
        assert timedelta(days=29) < token.expiry - timezone.now() <= timedelta(days=30)


def test_issue12_d4_owner_revokes_another_persons_token_others_cannot(alpha, alpha_client):
    ops = make_user(alpha, "ops", Role.OPERATOR)
    make_user(alpha, "viewer", Role.VIEWER)
    from tenants.accounts.services import issue_api_token

    with schema_context(alpha.schema_name):
        ops_token, ops_key = issue_api_token(user=ops, name="ops laptop")
    # A viewer can neither see nor revoke it.
    assert (
        alpha_client.post("/accounts/login/", {"username": "viewer", "password": PASSWORD}).status_code == 302
    )
    assert "ops laptop" not in alpha_client.get("/accounts/tokens/").content.decode()
    assert alpha_client.post(f"/accounts/tokens/{ops_token.digest}/revoke/").status_code == 404
    assert alpha_client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {ops_key}").status_code == 200
    # The owner sees and revokes it.
    alpha_client.post("/accounts/logout/")
    assert (
        alpha_client.post(
            "/accounts/login/", {"username": "alpha-owner", "password": OWNER_PASSWORD}
        ).status_code
        == 302
    )
    assert "ops laptop" in alpha_client.get("/accounts/tokens/").content.decode()
    assert alpha_client.post(f"/accounts/tokens/{ops_token.digest}/revoke/").status_code == 302
    assert alpha_client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {ops_key}").status_code == 401


def test_expired_tokens_and_old_sign_in_records_are_purged_per_schema(alpha, beta):
    from axes.models import AccessLog

    from tenants.accounts.models import ApiToken
    from tenants.accounts.services import (
        SIGN_IN_LOG_RETENTION_DAYS,
        issue_api_token,
        purge_expired_credentials,
    )
    from tests.conftest import make_user

    make_user(alpha, "ops", Role.OPERATOR)
    with schema_context(alpha.schema_name):
        from django.contrib.auth import get_user_model

        ops = get_user_model().objects.get(username="ops")
        old, _key = issue_api_token(user=ops, name="old")
        issue_api_token(user=ops, name="current")
        ApiToken.objects.filter(pk=old.pk).update(expiry=timezone.now() - timedelta(days=1))
        recent = AccessLog.objects.create(username="ops", ip_address="198.51.100.1", user_agent="t")
        ancient = AccessLog.objects.create(username="ops", ip_address="198.51.100.1", user_agent="t")
        AccessLog.objects.filter(pk=ancient.pk).update(
            attempt_time=timezone.now() - timedelta(days=SIGN_IN_LOG_RETENTION_DAYS + 1)
        )
    with schema_context(beta.schema_name):
        beta_tokens = ApiToken.objects.count()
        purge_expired_credentials()  # beta's schema only
    with schema_context(alpha.schema_name):
        assert ApiToken.objects.filter(pk=old.pk).exists()  # untouched by beta's purge
        purged = purge_expired_credentials()
        assert purged["tokens"] >= 1 and purged["access_logs"] >= 1
        assert list(ApiToken.objects.filter(user=ops).values_list("name", flat=True)) == ["current"]
        assert AccessLog.objects.filter(pk=recent.pk).exists()
        assert not AccessLog.objects.filter(pk=ancient.pk).exists()
    with schema_context(beta.schema_name):
        assert ApiToken.objects.count() == beta_tokens

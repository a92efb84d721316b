"""Browser-facing security settings (issue 12, defect 10): a strict Content-Security-Policy that
the pages actually satisfy, and `check --deploy` clean under production settings."""

import re
import secrets

import pytest

from tests.conftest import OWNER_PASSWORD, tenant_client
from tests.foundation.test_settings import run_manage

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
INLINE_HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)
INLINE_STYLE = re.compile(r"\sstyle\s*=|<style", re.IGNORECASE)

TENANT_PAGES = [
    "/",
    "/orders/",
    "/inventory/skus/",
    "/inventory/skus/import/",
    "/inventory/listings/unmatched/",
    "/inventory/sync/",
    "/shops/",
    "/shops/inbox/",
    "/accounts/staff/",
    "/accounts/tokens/",
    "/accounts/password/",
    "/api/docs/",
]


def _assert_strict(response, where: str) -> None:
    policy = response.headers.get("Content-Security-Policy", "")
    assert "script-src 'self'" in policy and "style-src 'self'" in policy, where
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, where
    assert "frame-ancestors 'none'" in policy, where
    html = response.content.decode()
    for pattern in (INLINE_SCRIPT, INLINE_HANDLER, INLINE_STYLE):
        found = pattern.search(html)
        assert found is None, (
            f"{where}: inline code the policy would block: {html[found.start() : found.start() + 120]!r}"
        )


def test_issue12_d10_every_page_carries_a_strict_csp_and_no_inline_code(alpha, public_client):
    _assert_strict(public_client.get("/"), "sign-up")
    anonymous = tenant_client(alpha)
    _assert_strict(anonymous.get("/accounts/login/"), "login")
    owner = tenant_client(alpha)
    assert (
        owner.post("/accounts/login/", {"username": "alpha-owner", "password": OWNER_PASSWORD}).status_code
        == 302
    )
    for path in TENANT_PAGES:
        response = owner.get(path)
        assert response.status_code == 200, path
        _assert_strict(response, path)
    script = owner.get("/api/docs/?script=")  # the Swagger UI's start-up, as a file of our own
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()


@pytest.mark.parametrize("extra", [{}, {"ECBAO_TRUSTED_PROXY_COUNT": "1"}])
def test_issue12_d10_check_deploy_is_clean_under_production_settings(extra):
    result = run_manage(
        {
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "FIELD_ENCRYPTION_KEY": "c2VjcmV0LWtleS1mb3ItcHJvZHVjdGlvbi0xMjM0NTY=",
            "ECBAO_BASE_DOMAIN": "erp.example.com",
            "ALLOWED_HOSTS": "erp.example.com,.erp.example.com",
            **extra,
        },
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "System check identified no issues" in result.stdout

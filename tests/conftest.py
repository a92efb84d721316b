"""Test set-up: real PostgreSQL (embedded or DATABASE_URL), real Redis.

Two tenants, ``alpha`` and ``beta``, are created once per session (committed, so that live
servers and Celery workers in other threads see them); every test runs in a transaction
that is rolled back.
"""

from __future__ import annotations

import os
import shutil

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django_tenants.utils import schema_context

from tenants import services
from tenants.models import Tenant

OWNER_PASSWORD = "Owner-pass-2026"


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    from django.db import connections

    name = connections["default"].settings_dict["NAME"]
    if not name.startswith("test_"):
        # pytest-django creates the test database only when a collected test asks for `db`;
        # never let committed-data fixtures write into a real database instead.
        pytest.fail(
            f"refusing to set up test data in {name!r}: run these tests with the rest of their module "
            "or together with a test that uses the `db` fixture"
        )
    with django_db_blocker.unblock():
        call_command("bootstrap", verbosity=0)
        for slug in ("alpha", "beta"):
            services.create_tenant(
                slug=slug,
                name=f"{slug.title()} Trading",
                owner_username=f"{slug}-owner",
                owner_password=OWNER_PASSWORD,
                owner_email=f"owner@{slug}.example",
            )
        connection.set_schema_to_public()
    yield
    # Worker and live-server threads may still hold connections to the test database;
    # end them so that it can be dropped.
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(autouse=True)
def _back_to_public():
    """Requests through the tenant middleware switch the connection's schema; reset after each test."""
    yield
    connection.set_schema_to_public()


@pytest.fixture
def alpha(db) -> Tenant:
    return Tenant.objects.get(slug="alpha")


@pytest.fixture
def beta(db) -> Tenant:
    return Tenant.objects.get(slug="beta")


def tenant_client(tenant: Tenant, **kwargs) -> Client:
    return Client(HTTP_HOST=services.domain_for(tenant.slug), **kwargs)


@pytest.fixture
def alpha_client(alpha) -> Client:
    return tenant_client(alpha)


@pytest.fixture
def beta_client(beta) -> Client:
    return tenant_client(beta)


@pytest.fixture
def public_client(db) -> Client:
    from django.conf import settings

    return Client(HTTP_HOST=settings.ECBAO_BASE_DOMAIN)


@pytest.fixture
def in_alpha(alpha):
    with schema_context(alpha.schema_name):
        yield alpha


@pytest.fixture
def in_beta(beta):
    with schema_context(beta.schema_name):
        yield beta


def make_user(tenant: Tenant, username: str, role: str, password: str = "Staff-pass-2026"):
    from tenants.accounts.services import create_user

    with schema_context(tenant.schema_name):
        return create_user(username=username, password=password, role=role)


def api_key(tenant: Tenant, username: str) -> str:
    """A new API token key for ``username`` of ``tenant`` (keys are stored hashed: use it now)."""
    from django.contrib.auth import get_user_model

    from tenants.accounts.services import issue_api_token

    with schema_context(tenant.schema_name):
        return issue_api_token(user=get_user_model().objects.get(username=username), name="test")[1]


@pytest.fixture(autouse=True)
def _clear_cache():
    """Throttle counters and other cache entries live in Redis, outside the test transaction:
    delete this run's keys (the key prefix is unique per test run) after each test."""
    yield
    import redis
    from django.conf import settings

    client = redis.from_url(settings.REDIS_URL)
    prefix = settings.CACHES["default"]["KEY_PREFIX"]
    keys = list(client.scan_iter(match=f"*:{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        if os.environ.get("ECBAO_REQUIRE_BROWSER"):
            pytest.fail(
                "Chromium is required (ECBAO_REQUIRE_BROWSER) but not installed: apt-get install chromium"
            )
        pytest.skip("Chromium not installed (apt-get install chromium); browser tests skipped")
    return path


@pytest.fixture(scope="session")
def tenant_worker(django_db_setup, django_db_blocker):
    """A real Celery worker (solo pool, in a thread) consuming this run's queue on real Redis."""
    from celery.contrib.testing.worker import start_worker

    from ecbao.celery import app

    with django_db_blocker.unblock():
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10) as worker:
            yield worker


@pytest.fixture(scope="session")
def live_url(django_db_setup, django_db_blocker):
    """The whole app (tenant routing, static files) served over real HTTP from a thread.

    pytest-django's live_server would flush the public schema (tenants included) after each
    test, so the browser tests use this server and committed data instead.
    """
    import threading

    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
    from django.core.wsgi import get_wsgi_application

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    with django_db_blocker.unblock():
        server = ThreadedWSGIServer(("127.0.0.1", 0), QuietHandler, allow_reuse_address=False)
        server.set_app(StaticFilesHandler(get_wsgi_application()))
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield f"http://{{host}}:{server.server_address[1]}"
        server.shutdown()
        server.server_close()


class CspWatchingBrowser:
    """The Chromium browser, whose pages report every Content-Security-Policy violation (Chromium
    logs each one to the console: "Refused to … because it violates … Content Security Policy")."""

    def __init__(self, chromium) -> None:
        self._chromium = chromium
        self.violations: list[str] = []

    def new_page(self, **kwargs):
        page = self._chromium.new_page(**kwargs)
        page.on("console", self._console)
        return page

    def _console(self, message) -> None:
        if "Content Security Policy" in message.text:
            self.violations.append(message.text)

    def __getattr__(self, name):
        return getattr(self._chromium, name)


@pytest.fixture
def browser(chromium_path, django_db_blocker):
    """A real headless Chromium (Debian's package) driven by Playwright."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
    # around it are synchronous and safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with django_db_blocker.unblock(), sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=chromium_path,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        watched = CspWatchingBrowser(chromium)
        try:
            yield watched
        finally:
            chromium.close()
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        # Every page the test opened ran under the Content-Security-Policy without a violation.
        assert not watched.violations, watched.violations


@pytest.fixture
def alpha_schema_committed(django_db_setup):
    """For tests whose threads need committed data: no wrapping transaction (data stays)."""
    yield "alpha"
    connection.set_schema_to_public()

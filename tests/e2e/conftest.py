"""Helpers for the end-to-end channel tests: a committed tenant of their own, a sandbox world
whose history can be simulated on a fast-forward clock before it goes live, and waiting on
conditions (never on fixed sleeps)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from django.db import connection

from tenants import services as tenant_services
from tenants.models import Tenant

OWNER_PASSWORD = "Owner-pass-2026"


def wait_until(predicate: Callable[[], object], *, timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds passed; returns the last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def waiting_for_locks() -> int:
    """Sessions of this database now waiting for a lock (to line up a race without sleeping)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


class PhasedClock:
    """A sandbox clock that is a fake, advanceable clock while a shop's history is simulated
    (``BuyerSimulator.run_for`` jumps from event to event), then the wall clock (``go_live``).

    The history ends before "now", so time never runs backwards."""

    def __init__(self, start: float) -> None:
        self._fake = float(start)
        self._live = False
        self._lock = threading.Lock()

    @property
    def advanceable(self) -> bool:
        return not self._live

    def now(self) -> float:
        if self._live:
            return time.time()
        with self._lock:
            return self._fake

    def set(self, when: float) -> None:
        with self._lock:
            if self._live or when < self._fake:
                raise ValueError("a live or fake clock never goes backwards")
            self._fake = float(when)

    def advance(self, seconds: float) -> float:
        self.set(self._fake + seconds)
        return self._fake

    def go_live(self) -> None:
        if self._fake > time.time():
            raise ValueError("the simulated history ran past the wall clock")
        self._live = True


@pytest.fixture
def db(django_db_setup, django_db_blocker) -> Iterator[None]:
    """Here ``db`` is the test database *without* the per-test transaction: end-to-end tests
    commit, because the Celery worker and live-server threads must see their data; each test
    cleans up what it made.

    pytest-django creates the test database only for the aliases that some collected test asks
    for (a ``django_db`` mark, or a fixture named ``db``); without this, running only these
    tests would reach the development database."""
    with django_db_blocker.unblock():
        assert connection.settings_dict["NAME"].startswith("test_"), "not the test database"
        yield


@pytest.fixture(autouse=True)
def _e2e_test_database(db) -> None:
    """Every test in this directory uses the test database (see ``db``)."""


@pytest.fixture
def committed_tenant(db) -> Iterator[Callable[[str], Tenant]]:
    """``make(slug)`` creates a committed tenant (the worker and live-server threads see it);
    every tenant made is deleted afterwards, and so are the deployment-wide (tool) platform apps
    the test registered meanwhile — committed public rows that would otherwise change what later
    tests see (an app key registered twice, a sandbox world's apps from a finished test)."""
    from channels.routing.models import PlatformApp

    made: list[str] = []
    connection.set_schema_to_public()
    apps_before = PlatformApp.objects.order_by("-pk").values_list("pk", flat=True).first() or 0

    def make(slug: str) -> Tenant:
        connection.set_schema_to_public()
        new = tenant_services.create_tenant(
            slug=slug,
            name=f"{slug} trading",
            owner_username=f"{slug}-owner",
            owner_password=OWNER_PASSWORD,
        )
        made.append(slug)
        return new.tenant

    try:
        yield make
    finally:
        connection.set_schema_to_public()
        for slug in made:
            if Tenant.objects.filter(slug=slug).exists():
                tenant_services.delete_tenant(slug=slug)
        PlatformApp.objects.filter(pk__gt=apps_before, tenant__isnull=True).delete()
        connection.set_schema_to_public()

"""Two owners change each other at the same moment (issue 12, defect 4): the tenant never ends
up without an active owner. Real sessions in two threads, committed data."""

from __future__ import annotations

import threading
from functools import partial

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django_tenants.utils import schema_context

from tenants import services as tenant_services
from tenants.accounts import services
from tenants.accounts.models import Role
from tenants.models import Tenant

ROUNDS = 12


@pytest.fixture
def db(django_db_setup, django_db_blocker):
    """The test database without the per-test transaction (the threads must see the data)."""
    with django_db_blocker.unblock():
        assert connection.settings_dict["NAME"].startswith("test_"), "not the test database"
        yield


@pytest.fixture
def committed_owners(db):
    """A committed tenant of its own with two owners (deleted afterwards)."""
    connection.set_schema_to_public()
    tenant = tenant_services.create_tenant(
        slug="owner-race", name="Race", owner_username="first", owner_password="Owner-pass-2026"
    ).tenant
    try:
        with schema_context(tenant.schema_name):
            services.create_user(username="second", password="Owner-pass-2026", role=Role.OWNER)
        yield tenant
    finally:
        connection.set_schema_to_public()
        if Tenant.objects.filter(slug="owner-race").exists():
            tenant_services.delete_tenant(slug="owner-race")
        connection.set_schema_to_public()


def race(schema: str, moves) -> list[str]:
    """Run the moves at once, each in its own thread, session and transaction."""
    ready = threading.Barrier(len(moves))
    results: list[str] = []

    def run(move):
        try:
            with schema_context(schema):
                ready.wait(timeout=10)
                move()
            results.append("done")
        except (ValidationError, PermissionDenied):
            results.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(m,)) for m in moves]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


def test_issue12_d4_owners_demoting_and_deactivating_each_other_leave_one_owner(committed_owners):
    schema = committed_owners.schema_name
    User = get_user_model()
    outcomes: list[tuple[str, str]] = []
    for round_ in range(ROUNDS):
        with schema_context(schema):
            User.objects.filter(username__in=["first", "second"]).update(role=Role.OWNER, is_active=True)
            first, second = User.objects.get(username="first"), User.objects.get(username="second")
        # The realistic mix: one owner demotes the other while that one deactivates the first.
        moves = [
            partial(services.change_role, actor=first, user_id=second.pk, role=Role.VIEWER),
            partial(services.set_active, actor=second, user_id=first.pk, active=False),
        ]
        if round_ % 2:
            moves.reverse()
        results = race(schema, moves)
        outcomes.append(tuple(sorted(results)))
        with schema_context(schema):
            active_owners = User.objects.filter(role=Role.OWNER, is_active=True).count()
        assert active_owners == 1, (round_, results)
    assert set(outcomes) == {("done", "refused")}

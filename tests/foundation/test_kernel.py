import pytest
from celery.signals import before_task_publish
from django.db import connection

from ecbao import crypto, events
from ecbao.celery import app


def test_encrypted_field_roundtrip_and_rotation(settings):
    from cryptography.fernet import Fernet

    old = settings.FIELD_ENCRYPTION_KEYS[0]
    token = crypto.encrypt_text("app-secret-123")
    assert "app-secret-123" not in token
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key(), old]  # rotate: new key first
    assert crypto.decrypt_text(token) == "app-secret-123"
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key()]
    with pytest.raises(ValueError, match="FIELD_ENCRYPTION_KEY"):
        crypto.decrypt_text(token)


def test_events_are_delivered_after_commit_only(db, django_capture_on_commit_callbacks):
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Pinged(events.Event):
        value: int

    seen = []
    events.subscribe(Pinged, lambda e: seen.append(e.value))
    events.subscribe(Pinged, lambda e: 1 / 0)  # a failing subscriber does not stop the others
    try:
        with django_capture_on_commit_callbacks(execute=True):
            events.publish(Pinged(7))
            assert seen == []
        assert seen == [7]
    finally:
        events._handlers.pop(Pinged, None)


def test_beat_entries_fan_out_to_every_tenant_and_never_public(alpha, beta):
    from tenant_schemas_celery.scheduler import TenantAwareScheduler

    published = []

    def capture(headers=None, **kwargs):
        published.append((headers.get("task"), headers.get("_schema_name")))

    before_task_publish.connect(capture)
    try:
        scheduler = TenantAwareScheduler(app=app, lazy=True)
        scheduler.setup_schedule()
        entry = next(
            e
            for name, e in scheduler.schedule.items()
            if name.startswith("accounts.purge_expired_invitations@")
        )
        scheduler.apply_entry(entry)
    finally:
        before_task_publish.disconnect(capture)
        connection.set_schema_to_public()
    schemas = sorted(s for task, s in published if task == "tenants.accounts.tasks.purge_expired_invitations")
    from tenants.models import Tenant

    expected = sorted(Tenant.objects.exclude(schema_name="public").values_list("schema_name", flat=True))
    assert {"alpha", "beta"} <= set(expected)
    assert schemas == expected  # once per tenant, never the public schema

"""The Celery app. Tasks are tenant-aware (tenant-schemas-celery): a task sent while a tenant's
schema is active carries that schema in its headers and runs in that schema only.

Periodic tasks: entries in BEAT_SCHEDULE without ``tenant_schemas`` are sent once per tenant
(never to the public schema) by the tenant-aware beat scheduler; later apps add their own
entries through :func:`register_periodic`, called from their tasks modules (imported in
each AppConfig.ready).
"""

import os

from tenant_schemas_celery.app import CeleryApp as TenantAwareCeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ecbao.settings")

app = TenantAwareCeleryApp("ecbao")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Every task is acknowledged after it ran (a worker lost mid-task: the broker hands it out again);
# a task that retries itself (``self.retry`` / ``autoretry_for``) stops after 5 retries unless it
# says otherwise. A lost broker connection is retried with growing intervals: by workers (also at
# start-up), and when a task is sent (kombu's publish retry policy, spelled out here).
app.conf.task_annotations = {"*": {"acks_late": True, "max_retries": 5}}
app.conf.broker_connection_retry = True
app.conf.broker_connection_retry_on_startup = True
app.conf.task_publish_retry = True
app.conf.task_publish_retry_policy = {
    "max_retries": 5,
    "interval_start": 0.2,
    "interval_step": 0.5,
    "interval_max": 3,
}

BEAT_SCHEDULE: dict[str, dict] = {}


def register_periodic(name: str, task: str, schedule, **options) -> None:
    """Run ``task`` in every tenant's schema on ``schedule`` (seconds or a crontab)."""
    BEAT_SCHEDULE[name] = {"task": task, "schedule": schedule, **options}
    app.conf.beat_schedule = BEAT_SCHEDULE

from celery import shared_task
from celery.schedules import crontab
from django.contrib.auth import get_user_model
from django.db import connection

from ecbao.celery import register_periodic
from tenants.accounts import services


@shared_task(acks_late=True, autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=5)
def purge_expired_invitations() -> int:
    return services.purge_expired_invitations()


@shared_task(acks_late=True, autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=5)
def purge_expired_credentials() -> dict:
    return services.purge_expired_credentials()


@shared_task(acks_late=True)
def tenant_census() -> dict:
    """Report which schema the task ran in and the users it can see there.

    Used by operators to check a worker, and by the isolation tests: a task sent for one
    tenant sees only that tenant's users.
    """
    return {
        "schema": connection.schema_name,
        "usernames": sorted(get_user_model().objects.values_list("username", flat=True)),
    }


register_periodic(
    "accounts.purge_expired_invitations",
    "tenants.accounts.tasks.purge_expired_invitations",
    crontab(minute=17),
)

register_periodic(
    "accounts.purge_expired_credentials",
    "tenants.accounts.tasks.purge_expired_credentials",
    crontab(minute=47, hour=3),
)

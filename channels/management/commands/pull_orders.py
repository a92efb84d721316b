"""python manage.py pull_orders TENANT [--store STORE] — pull a tenant's orders now, in this process.

For operators: the same pull the periodic task runs (``channels.sync.pull_orders``), for every
active store of the tenant or for one store, with what it did and how fast::

    python manage.py pull_orders demo
    python manage.py pull_orders --tenant demo --store 3
    python manage.py pull_orders demo --store douyin:12345678

``TENANT`` is a tenant's slug or schema name. ``--store`` is a store id, a platform shop id,
or ``platform:shop id`` when a value names more than one store ([choice] an ambiguous value is
refused rather than guessed). The command exits non-zero when a pull fails (the line of that
store says why; the store's status and sync cursor show it too, as after any failed pull).
[choice] A skipped pull (the store is not active, or another pull of it is running) is
reported but is not a failure, as for the periodic task. ``channels_pull`` is the old name.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from django_tenants.utils import get_public_schema_name, schema_context

from channels import sync
from channels.models import Store
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Pull the orders of one tenant's stores (all active ones, or --store) now and report each pull."

    def add_arguments(self, parser):
        parser.add_argument("tenant", nargs="?", help="tenant slug or schema name")
        parser.add_argument(
            "--tenant", "--schema", dest="tenant_option", metavar="TENANT", help="the same, as an option"
        )
        parser.add_argument(
            "--store", help="store id, platform shop id, or platform:shop id (default: every active store)"
        )

    def handle(self, *args, tenant=None, tenant_option=None, store=None, **options):
        if tenant and tenant_option and tenant != tenant_option:
            raise CommandError(f"two tenants given: {tenant!r} and {tenant_option!r}")
        tenant_obj = find_tenant(tenant or tenant_option)
        failed = 0
        with schema_context(tenant_obj.schema_name):
            stores = [find_store(store, tenant_obj)] if store else list(pullable_stores())
            if not stores:
                self.stdout.write(f"tenant {tenant_obj.slug}: no active stores")
                return
            for target in stores:
                started = time.perf_counter()
                result = sync.pull_orders(store_id=target.pk)
                elapsed = time.perf_counter() - started
                line = f"store {target.pk} {target.platform} {target.platform_shop_id} ({target.name}): "
                if result.skipped:
                    target.refresh_from_db(fields=["status"])
                    reason = (
                        f"store is {target.status}"
                        if target.status not in (Store.Status.ACTIVE, Store.Status.ERROR)
                        else "another pull of this store is running"
                    )
                    self.stdout.write(line + f"skipped ({reason})")
                    continue
                rate = result.orders_seen / elapsed if elapsed > 0 else 0.0
                line += (
                    f"windows={result.windows} seen={result.orders_seen} changed={result.orders_changed} "
                    f"in {elapsed:.2f} s ({rate:.1f} orders/s)"
                )
                if result.error:
                    failed += 1
                    self.stdout.write(line + f" FAILED: {result.error}")
                else:
                    self.stdout.write(line)
        if failed:
            raise CommandError(f"{failed} of {len(stores)} pulls failed")


def find_tenant(value: str | None) -> Tenant:
    if not value:
        raise CommandError("which tenant? give its slug or schema name (pull_orders TENANT)")
    tenant = (
        Tenant.objects.exclude(schema_name=get_public_schema_name())
        .filter(Q(slug=value) | Q(schema_name=value))
        .first()
    )
    if tenant is None:
        raise CommandError(f"no tenant {value!r} (give a tenant slug or schema name)")
    return tenant


def pullable_stores():
    """The stores the periodic pull covers."""
    return Store.objects.filter(status__in=[Store.Status.ACTIVE, Store.Status.ERROR]).order_by("pk")


def find_store(value: str, tenant: Tenant) -> Store:
    """A store by id, platform shop id or ``platform:shop id``; one match or a CommandError."""
    platform, sep, shop_id = value.partition(":")
    if sep:
        matches = list(Store.objects.filter(platform=platform, platform_shop_id=shop_id))
    else:
        query = Q(platform_shop_id=value) | (Q(pk=int(value)) if value.isdigit() else Q(pk__in=[]))
        matches = list(Store.objects.filter(query).order_by("pk"))
    if not matches:
        raise CommandError(
            f"no store {value!r} in tenant {tenant.slug} (give a store id or platform shop id)"
        )
    if len(matches) > 1:
        names = ", ".join(f"id {s.pk} = {s.platform}:{s.platform_shop_id}" for s in matches)
        raise CommandError(f"--store {value!r} names {len(matches)} stores ({names}); give platform:shop id")
    return matches[0]

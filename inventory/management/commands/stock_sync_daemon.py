"""python manage.py stock_sync_daemon — push stock changes to the shops within moments.

Waits on the Redis signal queue (``inventory.sync.schedule_stock_sync``), then drains that
tenant's stock-change outbox. Run one or more (they share the queue; the outbox is consumed
with SKIP LOCKED). The periodic Celery task ``inventory.tasks.sync_stock_changes`` is the
safety net when no daemon runs.
"""

import logging
import signal

from django.core.management.base import BaseCommand
from django.db import close_old_connections
from django_tenants.utils import get_tenant_model, schema_context

from inventory import sync

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Push stock changes to every listing as they happen."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="handle one signal (or time out) and exit")
        parser.add_argument("--timeout", type=float, default=5.0)

    def handle(self, *args, once, timeout, **options):
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        tenants = get_tenant_model()
        while not stopping:
            schema = sync.take_signal(timeout)
            if schema and tenants.objects.filter(schema_name=schema).exclude(schema_name="public").exists():
                with schema_context(schema):
                    try:
                        result = sync.drain()
                    except Exception:
                        logger.exception("stock sync failed in %s", schema)
                    else:
                        pushed = sum(1 for o in result.outcomes if o.pushed)
                        logger.info(
                            "stock sync %s: %s changes, %s SKUs, %s pushes",
                            schema,
                            result.changes,
                            result.skus,
                            pushed,
                        )
            close_old_connections()
            if once:
                break

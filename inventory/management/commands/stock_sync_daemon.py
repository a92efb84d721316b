"""python manage.py stock_sync_daemon — push stock changes to the shops within moments.

Waits on the Redis signal queue (``inventory.sync.schedule_stock_sync``), then drains that
tenant's stock-change outbox, pushing the listings of different shops concurrently
(``--threads``); failed pushes are retried with backoff when due. Run one or more (they
share the queue; the outbox is consumed with SKIP LOCKED). The loop is
``inventory.sync.run_daemon``. The periodic Celery task ``inventory.tasks.sync_stock_changes``
is the safety net when no daemon runs.
"""

import signal
import threading

from django.core.management.base import BaseCommand

from inventory import sync


class Command(BaseCommand):
    help = "Push stock changes to every listing as they happen."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="handle one signal (or time out) and exit")
        parser.add_argument("--timeout", type=float, default=5.0)
        parser.add_argument(
            "--threads",
            type=int,
            default=None,
            help="shops pushed concurrently (default STOCK_SYNC_THREADS or 8)",
        )

    def handle(self, *args, once, timeout, threads, **options):
        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
        sync.run_daemon(stop=stop, timeout=timeout, once=once, threads=threads)

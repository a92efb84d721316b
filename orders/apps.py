from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"

    def ready(self):
        from channels.events import OrderChanged, OrdersChanged
        from ecbao import events
        from inventory.events import ListingMatched
        from orders import tasks

        # Upward news from lower layers (after their transaction commits) → our tasks.
        events.subscribe(OrderChanged, lambda e: tasks.enqueue_ingest(e.snapshot_id))
        events.subscribe(OrdersChanged, lambda e: tasks.ingest_snapshots_task.delay(list(e.snapshot_ids)))
        events.subscribe(ListingMatched, lambda e: tasks.rematch_listing_task.delay(e.listing_id))

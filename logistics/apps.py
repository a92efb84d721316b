from django.apps import AppConfig


class LogisticsConfig(AppConfig):
    name = "logistics"

    def ready(self) -> None:
        from channels.events import TrackingPushed
        from ecbao import events
        from logistics import services, tasks, tracking
        from orders import hooks
        from orders.events import ShippedOrderRefunded

        assert tasks  # registers the periodic tasks
        # Tracking: pushed carrier events; intercepts when a shipped order is refunded.
        events.subscribe(TrackingPushed, tracking.on_tracking_pushed)
        events.subscribe(ShippedOrderRefunded, tracking.on_shipped_order_refunded)

        # Parcels follow fulfilment changes inside the order action's transaction.
        hooks.register(
            hooks.FulfilmentHook(
                frozen=services.frozen_fulfilments,
                changing=services.fulfilments_changing,
                changed=services.fulfilments_changed,
            )
        )

from django.apps import AppConfig


class SuppliersConfig(AppConfig):
    name = "suppliers"

    def ready(self) -> None:
        # Registers the router (orders.hooks.register_router) and the fulfilment hook that keeps
        # dispatches in step with fulfilments (orders.hooks.register): see suppliers.routing and
        # suppliers.dispatches once they exist.
        from ecbao import events
        from logistics.events import ParcelsShipped
        from suppliers import dispatches, native, router, tasks  # noqa: F401  (tasks: the beat entry)

        dispatches.register()
        router.register()
        native.subscribe()  # platform-native dropship follows the platform's pushes
        # Dispatches follow their parcels as soon as they ship (not only by the 5-minute sweep).
        events.subscribe(ParcelsShipped, tasks.on_parcels_shipped)

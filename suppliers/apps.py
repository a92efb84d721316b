from django.apps import AppConfig


class SuppliersConfig(AppConfig):
    name = "suppliers"

    def ready(self) -> None:
        # Registers the router (orders.hooks.register_router) and the fulfilment hook that keeps
        # dispatches in step with fulfilments (orders.hooks.register): see suppliers.routing and
        # suppliers.dispatches once they exist.
        from suppliers import dispatches, native, router, tasks  # noqa: F401  (tasks: the beat entry)

        dispatches.register()
        router.register()
        native.subscribe()  # platform-native dropship follows the platform's pushes

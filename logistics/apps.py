from django.apps import AppConfig


class LogisticsConfig(AppConfig):
    name = "logistics"

    def ready(self) -> None:
        from logistics import services, tasks  # noqa: F401  (tasks: registers logistics' Celery tasks)
        from orders import hooks

        # Parcels follow fulfilment changes inside the order action's transaction.
        hooks.register(
            hooks.FulfilmentHook(
                frozen=services.frozen_fulfilments,
                changing=services.fulfilments_changing,
                changed=services.fulfilments_changed,
            )
        )

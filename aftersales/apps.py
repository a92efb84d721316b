from django.apps import AppConfig


class AftersalesConfig(AppConfig):
    name = "aftersales"

    def ready(self) -> None:
        # Subscribes to the channel layer's AfterSaleChanged (ingestion) and to logistics'
        # ParcelsShipped (an exchange's / reissue's replacement tracking goes to the platform).
        from aftersales import subscriptions, tasks, tasks_actions  # noqa: F401  (the beat entries)

        subscriptions.subscribe()

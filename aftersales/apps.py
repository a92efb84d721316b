from django.apps import AppConfig


class AftersalesConfig(AppConfig):
    name = "aftersales"

    def ready(self) -> None:
        # Subscribes to the channel layer's AfterSaleChanged (ingestion) and to logistics'
        # ParcelsShipped (an exchange's / reissue's replacement tracking goes to the platform).
        from aftersales import subscriptions, tasks  # noqa: F401  (tasks: the beat entries)

        subscriptions.subscribe()

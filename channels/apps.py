from django.apps import AppConfig


class ChannelsConfig(AppConfig):
    name = "channels"
    verbose_name = "Channels"

    def ready(self):
        # Registers this app's periodic tasks (beat reads the schedule after Django setup).
        from channels import tasks  # noqa: F401

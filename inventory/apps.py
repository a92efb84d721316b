from django.apps import AppConfig


class InventoryConfig(AppConfig):
    name = "inventory"

    def ready(self):
        from inventory import tasks  # noqa: F401 - registers periodic tasks

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "tenants.accounts"
    label = "accounts"
    verbose_name = "Accounts"

    def ready(self):
        from tenants.accounts import tasks  # noqa: F401

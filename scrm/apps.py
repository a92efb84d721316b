from django.apps import AppConfig


class ScrmConfig(AppConfig):
    name = "scrm"

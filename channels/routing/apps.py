from django.apps import AppConfig


class RoutingConfig(AppConfig):
    """Public-schema side of the channel layer: platform apps, shop → tenant routes, and
    the raw push receipts stored before they are acknowledged."""

    name = "channels.routing"
    label = "channel_routing"
    verbose_name = "Channel routing"

"""python manage.py channels_pull --schema demo [--store ID] — the former name of ``pull_orders``
(same command, same arguments)."""

from channels.management.commands.pull_orders import Command as PullOrders


class Command(PullOrders):
    help = "Alias of pull_orders (kept for existing scripts)."

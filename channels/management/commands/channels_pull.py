"""python manage.py channels_pull --schema demo [--store ID] — pull orders now, in this process."""

from django.core.management.base import BaseCommand
from django_tenants.utils import schema_context

from channels import sync
from channels.models import Store


class Command(BaseCommand):
    help = "Pull orders of one or all active stores of a tenant synchronously and print the result."

    def add_arguments(self, parser):
        parser.add_argument("--schema", required=True)
        parser.add_argument("--store", type=int)

    def handle(self, *args, schema, store, **options):
        with schema_context(schema):
            ids = (
                [store]
                if store
                else list(Store.objects.filter(status=Store.Status.ACTIVE).values_list("pk", flat=True))
            )
            for store_id in ids:
                result = sync.pull_orders(store_id=store_id)
                self.stdout.write(
                    f"store {store_id}: windows={result.windows} seen={result.orders_seen} "
                    f"changed={result.orders_changed} skipped={result.skipped} error={result.error}"
                )

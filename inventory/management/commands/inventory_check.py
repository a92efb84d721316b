"""python manage.py inventory_check [--schema S] — prove balances equal the ledger and reservations."""

from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import get_tenant_model, schema_context

from inventory.selectors import ledger_mismatches


class Command(BaseCommand):
    help = "Check that every stock level equals its ledger sums and its active reservations."

    def add_arguments(self, parser):
        parser.add_argument("--schema", help="one tenant schema; default: every tenant")

    def handle(self, *args, schema, **options):
        schemas = (
            [schema]
            if schema
            else list(
                get_tenant_model().objects.exclude(schema_name="public").values_list("schema_name", flat=True)
            )
        )
        bad = 0
        for name in schemas:
            with schema_context(name):
                rows = ledger_mismatches()
            for sku, wh, on_hand, ledger_on_hand, reserved, ledger_reserved in rows:
                self.stdout.write(
                    f"{name}: SKU {sku} warehouse {wh}: on_hand {on_hand} vs {ledger_on_hand}, "
                    f"reserved {reserved} vs {ledger_reserved}"
                )
            bad += len(rows)
            if not rows:
                self.stdout.write(f"{name}: ok")
        if bad:
            raise CommandError(f"{bad} stock level(s) disagree with the ledger")

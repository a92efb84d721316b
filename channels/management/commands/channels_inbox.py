"""python manage.py channels_inbox --schema demo [--retry-failed | --retry ID ...] — list or retry push messages."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django_tenants.utils import schema_context

from channels import intake
from channels.models import InboxMessage
from channels.routing.models import PushReceipt


class Command(BaseCommand):
    help = "List push inbox messages of a tenant, retry failed ones, or re-route unroutable receipts."

    def add_arguments(self, parser):
        parser.add_argument("--schema", help="tenant schema (omit with --reroute)")
        parser.add_argument("--retry-failed", action="store_true")
        parser.add_argument("--retry", type=int, nargs="*", default=[])
        parser.add_argument(
            "--reroute", action="store_true", help="re-route unroutable/failed public receipts"
        )

    def handle(self, *args, schema, retry_failed, retry, reroute, **options):
        if reroute:
            ids = list(
                PushReceipt.objects.exclude(status=PushReceipt.Status.ROUTED).values_list("pk", flat=True)
            )
            for receipt_id in ids:
                receipt = intake.route_receipt(receipt_id=receipt_id)
                self.stdout.write(f"receipt {receipt_id}: {receipt.status} {receipt.error}")
            return
        if not schema:
            raise CommandError("--schema is required")
        with schema_context(schema):
            if retry_failed:
                retry = list(
                    InboxMessage.objects.filter(status=InboxMessage.Status.FAILED).values_list(
                        "pk", flat=True
                    )
                )
            for message_id in retry:
                with transaction.atomic():
                    intake.retry_inbox_message(message_id=message_id)
                self.stdout.write(f"queued {message_id}")
            if not retry:
                for m in InboxMessage.objects.order_by("-received_at")[:50]:
                    self.stdout.write(
                        f"{m.pk:>8} {m.platform:<9} {m.topic:<32} {m.status:<10} {m.attempts} {m.last_error[:60]}"
                    )

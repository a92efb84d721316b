"""python manage.py tenants create|list|delete"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tenants import services
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Create, list and delete tenants (merchants)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a tenant with its schema and owner")
        create.add_argument("slug")
        create.add_argument("--name", required=True)
        create.add_argument("--owner", required=True, help="owner username")
        create.add_argument("--password", required=True)
        create.add_argument("--email", default="")
        sub.add_parser("list", help="list tenants")
        delete = sub.add_parser("delete", help="delete a tenant and drop its schema")
        delete.add_argument("slug")
        delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    def handle(self, *args, action, **options):
        getattr(self, f"handle_{action}")(**options)

    def handle_create(self, *, slug, name, owner, password, email, **_):
        try:
            created = services.create_tenant(
                slug=slug, name=name, owner_username=owner, owner_password=password, owner_email=email
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(
            f"created tenant {created.tenant.slug} at {services.tenant_url(created.tenant)} "
            f"(owner {created.owner_username})"
        )

    def handle_list(self, **_):
        rows = Tenant.objects.exclude(schema_name="public").prefetch_related("domains")
        self.stdout.write(f"{'slug':<24} {'schema':<24} {'plan':<10} {'active':<6} domains")
        for tenant in rows:
            domains = ",".join(d.domain for d in tenant.domains.all())
            self.stdout.write(
                f"{tenant.slug:<24} {tenant.schema_name:<24} {tenant.plan:<10} {tenant.is_active!s:<6} {domains}"
            )

    def handle_delete(self, *, slug, yes, **_):
        if not Tenant.objects.filter(slug=slug).exists():
            raise CommandError(f"no tenant {slug!r}")
        if not yes:
            answer = input(f"Delete tenant {slug} and ALL its data? Type the slug to confirm: ")
            if answer.strip() != slug:
                raise CommandError("not confirmed")
        services.delete_tenant(slug=slug)
        self.stdout.write(f"deleted tenant {slug}")

"""Idempotent set-up after migrations: the public tenant and, with --demo, the demo tenant."""

import os

from django.conf import settings
from django.core.management.base import BaseCommand
from django_tenants.utils import schema_context

from tenants import services
from tenants.accounts.models import Role
from tenants.models import Domain, Tenant

DEMO_SLUG = "demo"
DEMO_OWNER = "owner"


class Command(BaseCommand):
    help = "Create the public tenant for ECBAO_BASE_DOMAIN and, with --demo, the demo tenant."

    def add_arguments(self, parser):
        parser.add_argument("--demo", action="store_true")

    def handle(self, *args, demo, **options):
        public, _created = Tenant.objects.get_or_create(
            schema_name="public", defaults={"slug": "public", "name": "ecbao"}
        )
        Domain.objects.get_or_create(
            domain=settings.ECBAO_BASE_DOMAIN, defaults={"tenant": public, "is_primary": True}
        )
        self.stdout.write(
            f"public site: {settings.ECBAO_PUBLIC_SCHEME}://{settings.ECBAO_BASE_DOMAIN}"
            f"{':' + settings.ECBAO_PUBLIC_PORT if settings.ECBAO_PUBLIC_PORT else ''}/"
        )
        if not demo:
            return
        password = os.environ.get("ECBAO_DEMO_PASSWORD", "ecbao-demo-2026")
        tenant = Tenant.objects.filter(slug=DEMO_SLUG).first()
        if tenant is None:
            tenant = services.create_tenant(
                slug=DEMO_SLUG, name="演示商家 Demo", owner_username=DEMO_OWNER, owner_password=password
            ).tenant
        else:
            with schema_context(tenant.schema_name):
                from django.contrib.auth import get_user_model

                owner, _ = get_user_model().objects.get_or_create(
                    username=DEMO_OWNER, defaults={"role": Role.OWNER}
                )
                owner.role = Role.OWNER
                owner.is_active = True
                owner.set_password(password)
                owner.save()
        self.stdout.write(
            self.style.SUCCESS(
                f"demo tenant: {services.tenant_url(tenant, '/')}  login: {DEMO_OWNER} / {password}"
            )
        )

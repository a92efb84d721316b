"""Creating, listing and deleting merchants (tenants)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils.translation import gettext as _
from django_tenants.utils import get_public_schema_name, schema_context

from tenants.accounts.models import Role
from tenants.accounts.services import create_user
from tenants.models import Domain, Tenant

SLUG_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
SLUG_MIN, SLUG_MAX = 3, 30
RESERVED_SLUGS = frozenset(
    """
    admin api app apps assets auth billing blog cdn dashboard demo-template dev docs download
    email ftp help imap info login logout mail media my new news ns ns1 ns2 pop pop3 portal
    public root sandbox secure signup smtp sso static status support supplier suppliers
    system test-template www www1 www2 webhook webhooks information_schema postgres template
    """.split()
)


def validate_slug(slug: str) -> str:
    """Return the normalised slug or raise ValidationError with a message a person can act on."""
    slug = (slug or "").strip().lower()
    if not SLUG_MIN <= len(slug) <= SLUG_MAX:
        raise ValidationError(
            _("The address must be %(min)d to %(max)d characters long.") % {"min": SLUG_MIN, "max": SLUG_MAX},
            code="length",
        )
    if not SLUG_PATTERN.match(slug):
        raise ValidationError(
            _("Use lowercase letters, digits and single hyphens; start with a letter."), code="characters"
        )
    if slug in RESERVED_SLUGS or slug.startswith("pg-") or slug.startswith("pg_"):
        raise ValidationError(_("This address is reserved."), code="reserved")
    if Tenant.objects.filter(slug=slug).exists():
        raise ValidationError(_("This address is already taken."), code="taken")
    return slug


def schema_name_for(slug: str) -> str:
    return slug.replace("-", "_")


def domain_for(slug: str) -> str:
    return f"{slug}.{settings.ECBAO_BASE_DOMAIN}"


@dataclass(frozen=True)
class NewTenant:
    tenant: Tenant
    domain: str
    owner_username: str


def create_tenant(
    *, slug: str, name: str, owner_username: str, owner_password: str, owner_email: str = ""
) -> NewTenant:
    """Create the tenant row, its schema (migrated), its domain and its owner in one step.

    Everything happens in one transaction, so a failure at any point (a bad password, a
    migration error) leaves no tenant row, no domain and no schema behind.
    """
    if connection.schema_name != get_public_schema_name():
        raise RuntimeError("tenants are created from the public schema")
    slug = validate_slug(slug)
    if not name.strip():
        raise ValidationError({"name": _("Enter the shop or company name.")})
    try:
        with transaction.atomic():
            tenant = Tenant(schema_name=schema_name_for(slug), slug=slug, name=name.strip())
            tenant.full_clean()
            tenant.save(verbosity=0)
            domain = Domain.objects.create(domain=domain_for(slug), tenant=tenant, is_primary=True)
            with schema_context(tenant.schema_name):
                create_user(
                    username=owner_username,
                    password=owner_password,
                    email=owner_email,
                    role=Role.OWNER,
                    first_name=name.strip()[:150],
                )
    finally:
        connection.set_schema_to_public()
    return NewTenant(tenant=tenant, domain=domain.domain, owner_username=owner_username)


def delete_tenant(*, slug: str) -> None:
    """Delete a tenant with its schema and domains."""
    if connection.schema_name != get_public_schema_name():
        raise RuntimeError("tenants are deleted from the public schema")
    tenant = Tenant.objects.get(slug=slug)
    with transaction.atomic():
        Domain.objects.filter(tenant=tenant).delete()
        with connection.cursor() as cursor:
            # Deferred foreign-key checks from this transaction must run before DROP SCHEMA.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        tenant.delete(force_drop=True)


def tenant_url(tenant: Tenant, path: str = "/") -> str:
    """The browser URL of a tenant (scheme and port from the ECBAO_PUBLIC_* settings)."""
    port = f":{settings.ECBAO_PUBLIC_PORT}" if settings.ECBAO_PUBLIC_PORT else ""
    return f"{settings.ECBAO_PUBLIC_SCHEME}://{domain_for(tenant.slug)}{port}{path}"

"""Merchants (tenants) and the host names that reach them. Both live in the public schema."""

from django.db import models
from django.utils.translation import gettext_lazy as _
from django_tenants.models import DomainMixin, TenantMixin


class Plan(models.TextChoices):
    TRIAL = "trial", _("Trial")
    STANDARD = "standard", _("Standard")
    PRO = "pro", _("Pro")


class Tenant(TenantMixin):
    """One merchant: one PostgreSQL schema named after ``slug``."""

    slug = models.SlugField(max_length=30, unique=True)
    name = models.CharField(max_length=100)
    plan = models.CharField(max_length=20, choices=Plan.choices, default=Plan.TRIAL)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    auto_create_schema = True
    auto_drop_schema = True

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"


class Domain(DomainMixin):
    """A host name (``<slug>.<ECBAO_BASE_DOMAIN>``) routed to a tenant's schema."""

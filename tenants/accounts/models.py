"""Users and invitations. The table exists in every schema: a tenant's staff live only in
that tenant's schema, platform operators in the public schema."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from knox.models import AbstractAuthToken


class Role(models.TextChoices):
    OWNER = "owner", _("Owner")
    OPERATOR = "operator", _("Operator")
    WAREHOUSE = "warehouse", _("Warehouse")
    FINANCE = "finance", _("Finance")
    VIEWER = "viewer", _("Viewer")
    SUPPLIER = "supplier", _("Supplier")


class User(AbstractUser):
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.VIEWER)
    # Filled by the suppliers app once supplier records exist; kept as a plain id so that this
    # low layer does not depend on the suppliers app.
    supplier_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["username"]

    @property
    def is_supplier(self) -> bool:
        return self.role == Role.SUPPLIER


class Invitation(models.Model):
    """A pending invite of a staff member; accepted once, through a secret link."""

    email = models.EmailField()
    role = models.CharField(max_length=20, choices=Role.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} ({self.role})"

    @property
    def is_open(self) -> bool:
        return self.accepted_at is None and self.expires_at > timezone.now()


class ApiToken(AbstractAuthToken):
    """An API token of one user (django-rest-knox's token model, swapped in by KNOX_TOKEN_MODEL).

    Only a SHA-512 digest of the key is stored, with its first characters (``token_key``) to
    find it; the key itself is shown once, when it is made. Every token expires (``expiry``).
    """

    name = models.CharField(max_length=100, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.name or self.token_key} ({self.user_id})"

    @property
    def is_expired(self) -> bool:
        return self.expiry is not None and self.expiry <= timezone.now()

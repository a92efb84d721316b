"""Supplier users: the merchant invites a supplier's people by link; each accepted link is one
user (role SUPPLIER, ``supplier_id`` = the supplier); a supplier may have several.

The link's token is shown once: only its SHA-256 hash is stored (``SupplierInvitation.token_hash``),
as the staff invitations of ``tenants.accounts`` do. The link works on the tenant's own domain
only (the invitation lives in the tenant's schema), once, for 7 days.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from suppliers.models import Supplier, SupplierInvitation
from tenants.accounts.models import Role
from tenants.accounts.services import create_user

INVITATION_LIFETIME = timedelta(days=7)


def _hash(raw_token: str) -> str:
    return hashlib.sha256(raw_token.encode()).hexdigest()


@transaction.atomic
def invite(*, supplier: Supplier, invited_by, email: str = "") -> tuple[SupplierInvitation, str]:
    """A new invitation to ``supplier``; returns it with the raw token (for the link; not stored)."""
    raw_token = secrets.token_urlsafe(32)
    invitation = SupplierInvitation(
        supplier=supplier,
        email=(email or "").strip(),
        token_hash=_hash(raw_token),
        invited_by=invited_by,
        expires_at=timezone.now() + INVITATION_LIFETIME,
    )
    invitation.full_clean()
    invitation.save()
    return invitation, raw_token


def _is_open(invitation: SupplierInvitation | None) -> bool:
    return bool(
        invitation
        and invitation.accepted_at is None
        and invitation.expires_at > timezone.now()
        and invitation.supplier.status == Supplier.Status.ACTIVE
    )


def open_invitation(*, raw_token: str) -> SupplierInvitation | None:
    """The invitation of this token when it can still be accepted (else None)."""
    invitation = (
        SupplierInvitation.objects.select_related("supplier").filter(token_hash=_hash(raw_token)).first()
    )
    return invitation if _is_open(invitation) else None


@transaction.atomic
def accept(*, raw_token: str, username: str, password: str):
    """Turn an open invitation into a supplier user (the password passes Django's validators);
    an invitation works once."""
    invitation = (
        SupplierInvitation.objects.select_for_update()
        .select_related("supplier")
        .filter(token_hash=_hash(raw_token))
        .first()
    )
    if not _is_open(invitation):
        raise ValidationError(_("This invitation is invalid, used or expired."))
    user = create_user(
        username=username.strip(),
        password=password,
        role=Role.SUPPLIER,
        email=invitation.email,
        supplier_id=invitation.supplier_id,
    )
    invitation.accepted_at = timezone.now()
    invitation.accepted_user = user
    invitation.save(update_fields=["accepted_at", "accepted_user"])
    return user


def open_invitations(supplier: Supplier):
    return SupplierInvitation.objects.filter(
        supplier=supplier, accepted_at__isnull=True, expires_at__gt=timezone.now()
    ).order_by("-created_at")


@transaction.atomic
def cancel_invitation(*, supplier: Supplier, invitation_id: int) -> bool:
    """Withdraw an unused invitation of ``supplier``; False when there is none with this id."""
    deleted, _detail = SupplierInvitation.objects.filter(
        supplier=supplier, pk=invitation_id, accepted_at__isnull=True
    ).delete()
    return bool(deleted)


def users_of(supplier: Supplier):
    return get_user_model().objects.filter(role=Role.SUPPLIER, supplier_id=supplier.pk).order_by("username")


@transaction.atomic
def set_user_active(*, supplier: Supplier, user_id: int, active: bool):
    """Deactivate (or reactivate) one of ``supplier``'s users; other users are not touched."""
    user = users_of(supplier).select_for_update().filter(pk=user_id).first()
    if user is None:
        raise ValidationError(_("This user does not belong to this supplier."))
    if user.is_active != active:
        user.is_active = active
        user.save(update_fields=["is_active"])
    return user

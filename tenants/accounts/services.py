"""Account actions: staff invitations, roles and deactivation, API tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from tenants.accounts.models import ApiToken, Invitation, Role

INVITATION_LIFETIME = timedelta(days=7)


def _hash_token(raw_token: str) -> str:
    return hashlib.sha256(raw_token.encode()).hexdigest()


def create_user(*, username: str, password: str, role: str, email: str = "", **extra):
    """Create a user of the current schema after validating the password."""
    User = get_user_model()
    if role not in Role.values:
        raise ValidationError({"role": _("Unknown role.")})
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError({"username": _("This username is taken.")})
    user = User(username=username, email=email, role=role, **extra)
    validate_password(password, user)
    user.set_password(password)
    user.full_clean()
    user.save()
    return user


@transaction.atomic
def invite_staff(*, invited_by, email: str, role: str) -> tuple[Invitation, str]:
    """Create an invitation; returns it with the one-time raw token for the link (stored hashed)."""
    if role not in Role.values or role == Role.OWNER:
        raise ValidationError({"role": _("Choose a staff role other than owner.")})
    raw_token = secrets.token_urlsafe(32)
    invitation = Invitation(
        email=email,
        role=role,
        token_hash=_hash_token(raw_token),
        invited_by=invited_by,
        expires_at=timezone.now() + INVITATION_LIFETIME,
    )
    invitation.full_clean()
    invitation.save()
    return invitation, raw_token


def get_open_invitation(*, raw_token: str) -> Invitation | None:
    invitation = Invitation.objects.filter(token_hash=_hash_token(raw_token)).first()
    return invitation if invitation and invitation.is_open else None


@transaction.atomic
def accept_invitation(*, raw_token: str, username: str, password: str):
    """Turn an open invitation into a user; an invitation works once."""
    invitation = Invitation.objects.select_for_update().filter(token_hash=_hash_token(raw_token)).first()
    if invitation is None or not invitation.is_open:
        raise ValidationError(_("This invitation is invalid, used or expired."))
    user = create_user(username=username, password=password, role=invitation.role, email=invitation.email)
    invitation.accepted_at = timezone.now()
    invitation.accepted_user = user
    invitation.save(update_fields=["accepted_at", "accepted_user"])
    return user


def purge_expired_invitations() -> int:
    """Delete invitations that expired unaccepted more than a week ago."""
    cutoff = timezone.now() - INVITATION_LIFETIME
    deleted, _detail = Invitation.objects.filter(accepted_at__isnull=True, expires_at__lt=cutoff).delete()
    return deleted


# --- API tokens ------------------------------------------------------------------------------


def issue_api_token(*, user, name: str = "", days: int | None = None) -> tuple[ApiToken, str]:
    """Make a token for ``user``; returns it with the raw key, which is shown once and stored
    only as a digest. It expires after ``days`` (default API_TOKEN_LIFETIME_DAYS)."""
    lifetime = timedelta(days=days or settings.API_TOKEN_LIFETIME_DAYS)
    token, raw_key = ApiToken.objects.create(user=user, expiry=lifetime, name=name.strip()[:100])
    return token, raw_key


def revoke_api_token(*, actor, digest: str) -> ApiToken:
    """Revoke a token: its own user may, and so may anyone who manages staff (any user's)."""
    from tenants.accounts.permissions import has_capability

    token = ApiToken.objects.select_related("user").filter(digest=digest).first()
    if token is None or (token.user_id != actor.pk and not has_capability(actor, "staff.manage")):
        raise PermissionDenied(_("No such token."))
    token.delete()
    return token

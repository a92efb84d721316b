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
from tenants.accounts.permissions import STAFF_ROLES, has_capability

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


SIGN_IN_LOG_RETENTION_DAYS = 400  # sign-in records kept over a year (platform security rules: ≥ 6 months)


def purge_expired_credentials() -> dict:
    """Delete expired API tokens (digests that no longer work) and sign-in records (django-axes
    access logs and attempts) past their retention, in the current schema."""
    from axes.models import AccessAttempt, AccessLog

    now = timezone.now()
    tokens, _detail = ApiToken.objects.filter(expiry__lt=now).delete()
    cutoff = now - timedelta(days=SIGN_IN_LOG_RETENTION_DAYS)
    logs, _detail = AccessLog.objects.filter(attempt_time__lt=cutoff).delete()
    attempts, _detail = AccessAttempt.objects.filter(
        attempt_time__lt=now - settings.AXES_COOLOFF_TIME
    ).delete()
    return {"tokens": tokens, "access_logs": logs, "attempts": attempts}


def purge_expired_invitations() -> int:
    """Delete invitations that expired unaccepted more than a week ago."""
    cutoff = timezone.now() - INVITATION_LIFETIME
    deleted, _detail = Invitation.objects.filter(accepted_at__isnull=True, expires_at__lt=cutoff).delete()
    return deleted


# --- staff management (owners) -----------------------------------------------------------------


def _require_staff_manager(actor) -> None:
    if not has_capability(actor, "staff.manage"):
        raise PermissionDenied("staff.manage")


def _locked_staff_member(actor, user_id: int):
    """Lock every active owner (so two owners cannot demote each other at once and leave none),
    then the target; returns the target and the owners' ids, or raises ValidationError. The actor
    must still be an active owner once the lock is held (not demoted by a concurrent change)."""
    User = get_user_model()
    owners = list(
        User.objects.select_for_update()
        .filter(role=Role.OWNER, is_active=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if actor.pk not in owners:
        raise PermissionDenied("staff.manage")
    user = User.objects.select_for_update().filter(pk=user_id).first()
    if user is None or user.role == Role.SUPPLIER:
        raise ValidationError(_("No such staff member."), code="not_found")
    return user, owners


def _refuse_last_owner(user, owners: list[int]) -> None:
    if user.pk in owners and len(owners) <= 1:
        raise ValidationError(_("The last active owner cannot be demoted or deactivated."), code="last_owner")


@transaction.atomic
def change_role(*, actor, user_id: int, role: str):
    """Give a staff member another staff role (owner included); the last active owner stays one."""
    _require_staff_manager(actor)
    if role not in STAFF_ROLES:
        raise ValidationError({"role": _("Choose a staff role.")})
    user, owners = _locked_staff_member(actor, user_id)
    if user.role == role:
        return user
    if user.role == Role.OWNER:
        _refuse_last_owner(user, owners)
    user.role = role
    user.save(update_fields=["role"])
    return user


@transaction.atomic
def set_active(*, actor, user_id: int, active: bool):
    """Deactivate (or reactivate) a staff member. A deactivated user can no longer sign in, their
    sessions stop working and their API tokens are deleted; the last active owner stays active."""
    _require_staff_manager(actor)
    user, owners = _locked_staff_member(actor, user_id)
    if user.is_active == active:
        return user
    if not active:
        _refuse_last_owner(user, owners)
        ApiToken.objects.filter(user=user).delete()
    user.is_active = active
    user.save(update_fields=["is_active"])
    return user


# --- API tokens ------------------------------------------------------------------------------


def issue_api_token(*, user, name: str = "", days: int | None = None) -> tuple[ApiToken, str]:
    """Make a token for ``user``; returns it with the raw key, which is shown once and stored
    only as a digest. It expires after ``days`` (default API_TOKEN_LIFETIME_DAYS)."""
    lifetime = timedelta(days=days or settings.API_TOKEN_LIFETIME_DAYS)
    token, raw_key = ApiToken.objects.create(user=user, expiry=lifetime, name=name.strip()[:100])
    return token, raw_key


def revoke_api_token(*, actor, digest: str) -> ApiToken:
    """Revoke a token: its own user may, and so may anyone who manages staff (any user's)."""
    token = ApiToken.objects.select_related("user").filter(digest=digest).first()
    if token is None or (token.user_id != actor.pk and not has_capability(actor, "staff.manage")):
        raise PermissionDenied(_("No such token."))
    token.delete()
    return token

"""Account actions: staff invitations, password changes, failed-login throttling."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from tenants.accounts.models import Invitation, Role

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


# --- failed-login throttling ----------------------------------------------------------------
# Counters live in the (tenant-keyed) cache: per username and per client address.


def _failure_keys(username: str, ip: str | None) -> list[str]:
    keys = [f"login-fail:user:{username.strip().lower()}"]
    if ip:
        keys.append(f"login-fail:ip:{ip}")
    return keys


def login_is_locked(*, username: str, ip: str | None) -> bool:
    limit = settings.LOGIN_FAILURE_LIMIT
    return any((cache.get(key) or 0) >= limit for key in _failure_keys(username, ip))


def record_failed_login(*, username: str, ip: str | None) -> None:
    for key in _failure_keys(username, ip):
        cache.add(key, 0, timeout=settings.LOGIN_FAILURE_WINDOW_SECONDS)
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=settings.LOGIN_FAILURE_WINDOW_SECONDS)


def clear_failed_logins(*, username: str, ip: str | None) -> None:
    cache.delete_many(_failure_keys(username, ip))

"""Login throttling that an attacker cannot turn against the people it protects.

Two independent limits guard every password check (the login page, the API token endpoint
and the admin login all go through ``django.contrib.auth.authenticate``):

1. **Per (username, client address)** — django-axes (``AxesStandaloneBackend``) locks a pair
   after ``AXES_FAILURE_LIMIT`` failures for ``AXES_COOLOFF_TIME``. Someone guessing the
   owner's password locks only themselves out: the owner, from any other address, still signs
   in. A success resets only its own pair.
2. **Per client address** — :class:`AddressLimitBackend` refuses every attempt from an address
   that failed ``LOGIN_ADDRESS_FAILURE_LIMIT`` times (over all usernames) within
   ``LOGIN_ADDRESS_WINDOW_SECONDS``. A success does not reset it, so spreading guesses over
   many usernames and signing in between buys nothing.

The client address comes from :func:`ecbao.clientip.client_ip` (trusted proxies only). Both
limits are per tenant: axes keeps its attempts in the tenant's own schema (the app is a tenant
app, and a shared one for the platform admin in ``public``) and the address counter lives in the
tenant-keyed cache, so one tenant's attackers never lock another tenant's users.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from django.http import HttpResponse

from ecbao import ratelimit
from ecbao.clientip import client_ip


def _address_key(ip: str) -> str:
    return f"login-fail:address:{ip}"


def address_failures(ip: str | None) -> int:
    return ratelimit.count(_address_key(ip)) if ip else 0


def address_is_blocked(ip: str | None) -> bool:
    return address_failures(ip) >= settings.LOGIN_ADDRESS_FAILURE_LIMIT


def note_address_failure(ip: str | None) -> None:
    """Count one failure for ``ip`` in a fixed window that starts at its first failure."""
    if ip:
        ratelimit.hit(_address_key(ip), settings.LOGIN_ADDRESS_WINDOW_SECONDS)


class AddressLimitBackend:
    """First authentication backend: refuses any attempt from a blocked address (raising
    PermissionDenied stops ``authenticate`` before any password is checked)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is not None and address_is_blocked(client_ip(request)):
            request.login_address_blocked = True
            raise PermissionDenied("too many failed sign-ins from this address")
        return None

    def get_user(self, user_id):
        return None


@receiver(user_login_failed, dispatch_uid="ecbao-login-address-limit")
def _count_failure(sender, credentials, request=None, **kwargs):
    if request is not None:
        note_address_failure(client_ip(request))


def was_locked(request) -> bool:
    """True when the last ``authenticate`` on ``request`` was refused by a lock, not a password."""
    return bool(
        getattr(request, "axes_locked_out", False) or getattr(request, "login_address_blocked", False)
    )


def lockout_response(request, original_response=None, credentials=None):
    """AXES_LOCKOUT_CALLABLE: the views already answer a locked attempt themselves (the login
    form with its lock message, the API with a 429 error envelope), so keep their response."""
    if isinstance(original_response, HttpResponse):
        return original_response
    return HttpResponse(settings.AXES_COOLOFF_MESSAGE, status=429)

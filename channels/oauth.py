"""The "connect shop" authorisation flow.

The merchant starts on their tenant domain; the platform sends them back to one callback
URL on the public domain (the one registered with the platform), carrying ``code`` and
``state``. The state is signed and names the tenant, the user and a random nonce; the nonce
is also kept in the merchant's browser session (on the tenant domain).

1. ``start`` (tenant domain): sign a state, keep its nonce in the session, send the merchant to
   the platform.
2. The public callback only checks the signature and age (15 minutes) and sends the browser on
   to its tenant's domain (``finish_url``) — the session lives there.
3. ``finish`` (tenant domain, the same browser): the state must be one this session started,
   for this user and platform; it is used up here (taken out of the session, and claimed once in
   Redis so that two concurrent requests cannot both use it); only then is the code exchanged.

A refusal never says why a shop could not be connected to this account (that another account
owns it would tell an attacker which shops are connected).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.db import connection

from channels import services
from channels.models import Store
from tenants.models import Tenant
from tenants.services import tenant_url

STATE_SALT = "ecbao.channels.oauth"
STATE_MAX_AGE = 15 * 60
SESSION_KEY = "channels.oauth_states"  # nonce → platform of the flows this browser started
KEPT_STATES = 5


@dataclass(frozen=True)
class OAuthState:
    schema: str
    user_id: int
    platform: str
    app_key: str
    nonce: str


class StateRefused(signing.BadSignature):
    """The state is not one this browser session started (another session, used already,
    forged or expired)."""


class ShopNotConnected(Exception):
    """The shop cannot be connected to this account (the reason is not told)."""


def public_base_url() -> str:
    port = f":{settings.ECBAO_PUBLIC_PORT}" if settings.ECBAO_PUBLIC_PORT else ""
    return f"{settings.ECBAO_PUBLIC_SCHEME}://{settings.ECBAO_BASE_DOMAIN}{port}"


def callback_url(platform: str) -> str:
    return f"{public_base_url()}/oauth/callback/{platform}/"


def start(*, platform: str, request) -> str:
    """The platform URL the merchant is sent to; the state's nonce is kept in their session."""
    app = services.deployment_app(platform)
    if app is None:
        raise LookupError(f"no {platform} app is configured for this deployment")
    nonce = secrets.token_urlsafe(16)
    state = signing.dumps(
        {"s": connection.schema_name, "u": request.user.pk, "p": platform, "a": app.app_key, "n": nonce},
        salt=STATE_SALT,
    )
    started = dict(request.session.get(SESSION_KEY) or {})
    started[nonce] = platform
    request.session[SESSION_KEY] = dict(list(started.items())[-KEPT_STATES:])
    connector = services.unbound_connector(platform=platform, app_key=app.app_key)
    return connector.authorize_url(redirect_uri=callback_url(platform), state=state)


def read_state(raw: str) -> OAuthState:
    """The signed state (``signing.BadSignature`` / ``SignatureExpired`` when forged or old)."""
    data = signing.loads(raw, salt=STATE_SALT, max_age=STATE_MAX_AGE)
    return OAuthState(
        schema=data["s"], user_id=data["u"], platform=data["p"], app_key=data["a"], nonce=data["n"]
    )


def finish_url(*, platform: str, code: str, raw_state: str) -> str:
    """Where the public callback sends the browser: its tenant's domain, which holds the
    session. Raises ``signing.BadSignature`` for a forged, expired or misdirected state."""
    state = read_state(raw_state)
    if state.platform != platform:
        raise signing.BadSignature("state was issued for another platform")
    tenant = Tenant.objects.filter(schema_name=state.schema).first()
    if tenant is None:
        raise signing.BadSignature("state names no tenant")
    query = urlencode({"code": code, "state": raw_state})
    return tenant_url(tenant, f"/shops/connect/{platform}/done/?{query}")


def _use_state(request, *, platform: str, raw_state: str) -> OAuthState:
    state = read_state(raw_state)
    started = dict(request.session.get(SESSION_KEY) or {})
    if (
        state.platform != platform
        or state.schema != connection.schema_name
        or state.user_id != request.user.pk
        or started.get(state.nonce) != platform
    ):
        raise StateRefused("this authorisation was not started in this browser session")
    del started[state.nonce]
    request.session[SESSION_KEY] = started
    if not cache.add(f"channels:oauth-state:{state.nonce}", 1, timeout=STATE_MAX_AGE + 60):
        raise StateRefused("this authorisation was used already")
    return state


def finish(*, request, platform: str, code: str, raw_state: str) -> Store:
    """Use the state (single use, this session only), exchange the code and connect the shop.

    Raises ``signing.BadSignature`` (``StateRefused``) for a state this session may not use,
    ``ShopNotConnected`` when the shop cannot be connected to this account, ``ChannelError``
    when the platform refuses."""
    state = _use_state(request, platform=platform, raw_state=raw_state)
    connector = services.unbound_connector(platform=platform, app_key=state.app_key)
    grant = connector.exchange_code(code=code, redirect_uri=callback_url(platform))
    try:
        return services.connect_store(platform=platform, app_key=state.app_key, grant=grant)
    except PermissionError as exc:
        raise ShopNotConnected from exc

"""The "connect shop" authorisation flow.

The merchant starts on their tenant domain; the platform sends them back to one callback
URL on the public domain (the one registered with the platform), carrying ``state``. The
state is signed and says which tenant and user started the flow, so the public callback
can finish it in the right schema and send the merchant back to their own Shops page.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.db import connection
from django_tenants.utils import schema_context

from channels import services
from channels.models import Store
from tenants.models import Tenant

STATE_SALT = "ecbao.channels.oauth"
STATE_MAX_AGE = 15 * 60


@dataclass(frozen=True)
class OAuthState:
    schema: str
    user_id: int
    platform: str
    app_key: str
    nonce: str


def public_base_url() -> str:
    port = f":{settings.ECBAO_PUBLIC_PORT}" if settings.ECBAO_PUBLIC_PORT else ""
    return f"{settings.ECBAO_PUBLIC_SCHEME}://{settings.ECBAO_BASE_DOMAIN}{port}"


def callback_url(platform: str) -> str:
    return f"{public_base_url()}/oauth/callback/{platform}/"


def start(*, platform: str, user) -> str:
    """The platform URL the merchant is sent to."""
    app = services.deployment_app(platform)
    if app is None:
        raise LookupError(f"no {platform} app is configured for this deployment")
    state = signing.dumps(
        {
            "s": connection.schema_name,
            "u": user.pk,
            "p": platform,
            "a": app.app_key,
            "n": secrets.token_hex(8),
        },
        salt=STATE_SALT,
    )
    connector = services.unbound_connector(platform=platform, app_key=app.app_key)
    return connector.authorize_url(redirect_uri=callback_url(platform), state=state)


def read_state(raw: str) -> OAuthState:
    data = signing.loads(raw, salt=STATE_SALT, max_age=STATE_MAX_AGE)
    return OAuthState(
        schema=data["s"], user_id=data["u"], platform=data["p"], app_key=data["a"], nonce=data["n"]
    )


def finish(*, platform: str, code: str, raw_state: str) -> tuple[Tenant, Store]:
    """Exchange the code in the tenant that started the flow; returns the tenant and store.

    Raises ``signing.BadSignature`` for a forged or expired state."""
    state = read_state(raw_state)
    if state.platform != platform:
        raise signing.BadSignature("state was issued for another platform")
    tenant = Tenant.objects.get(schema_name=state.schema)
    with schema_context(tenant.schema_name):
        connector = services.unbound_connector(platform=platform, app_key=state.app_key)
        grant = connector.exchange_code(code=code, redirect_uri=callback_url(platform))
        store = services.connect_store(platform=platform, app_key=state.app_key, grant=grant)
    return tenant, store

"""WeChat third-party platform (第三方平台, "component"): the pushed ticket and the shared token.

Shops authorised to this deployment's WeChat app are reached with an ``authorizer_access_token``
that only a ``component_access_token`` (2 h) can renew, and that token needs the
``component_verify_ticket`` WeChat pushes every 10 minutes (valid 12 h) to the component's
authorisation-event URL (授权事件接收URL) — here ``/hooks/wechat/component/<component_appid>/``
(reference §3.1). Receiving and applying those events is push intake's job
(``channels.intake.receive_authorization_event``); this module keeps what they leave behind:

1. the newest ticket: ``store_verify_ticket`` replaces the stored one only when the pushed
   ``CreateTime`` is later (a duplicate or an older, retried push never overwrites a newer one);
2. ``verify_ticket_reader`` and ``ComponentTokenStore``, what ``services.connector_for`` /
   ``unbound_connector`` give WeChat connectors in component mode: the newest ticket (or a clear
   error), and one ``component_access_token`` per deployment, encrypted on the ``PlatformApp`` and
   reused until ~5 minutes before it expires (WeChat limits ``api_component_token`` calls).

The lowest of the channel modules: it reads and writes ``PlatformApp`` rows only
(``services`` → ``component``; nothing here imports ``services``, ``intake`` or ``tasks``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.db.models import Q
from django.utils import timezone

from channels.errors import TemporarilyUnavailable
from channels.routing.models import PlatformApp
from channels.types import Platform

logger = logging.getLogger(__name__)

PLATFORM = Platform.WECHAT.value
TICKET_TTL = timedelta(hours=12)  # §3.1: a ticket is valid 12 h
TICKET = "component_verify_ticket"
UNAUTHORIZED = "unauthorized"


class VerifyTicketUnavailable(TemporarilyUnavailable):
    """No ``component_verify_ticket`` has arrived, or the newest is older than 12 h. Not the
    merchant's doing: the next push (every 10 minutes) cures it, so callers retry later."""


def endpoint_path(component_appid: str) -> str:
    """Where WeChat must push this component's authorisation events (授权事件接收URL)."""
    return f"/hooks/wechat/component/{component_appid}/"


def component_app(app_key: str) -> PlatformApp | None:
    """The deployment's WeChat app ``app_key`` — every deployment WeChat app is a third-party
    platform (component) [choice]; merchants' self-use apps (with a tenant) are not."""
    return PlatformApp.objects.filter(platform=PLATFORM, app_key=app_key, tenant__isnull=True).first()


def ticket_is_fresh(app: PlatformApp, *, now: datetime | None = None) -> bool:
    """The app holds a ticket pushed less than 12 h ago."""
    return bool(
        app.verify_ticket
        and app.verify_ticket_at is not None
        and (now or timezone.now()) - app.verify_ticket_at < TICKET_TTL
    )


# --- what connectors are given ------------------------------------------------------------------


def read_verify_ticket(app_key: str, *, now: Callable[[], datetime] = timezone.now) -> str:
    """The newest ticket WeChat pushed for component ``app_key``; ``VerifyTicketUnavailable``
    (naming the problem and the URL to check) when there is none or it is older than 12 h."""
    app = PlatformApp.objects.filter(platform=PLATFORM, app_key=app_key).first()
    where = f"WeChat pushes one every 10 minutes to the authorisation-event URL {endpoint_path(app_key)}"
    if app is None or not app.verify_ticket or app.verify_ticket_at is None:
        raise VerifyTicketUnavailable(
            f"WeChat third-party platform {app_key}: no component_verify_ticket has been received yet; "
            f"{where} (check it is set on the WeChat Open Platform)"
        )
    if not ticket_is_fresh(app, now=now()):
        raise VerifyTicketUnavailable(
            f"WeChat third-party platform {app_key}: the newest component_verify_ticket is from "
            f"{app.verify_ticket_at.isoformat()} and tickets are valid 12 h; {where} and none has arrived since"
        )
    return app.verify_ticket


def verify_ticket_reader(app_key: str) -> Callable[[], str]:
    """A ``verify_ticket`` callable for ``WechatConnector`` (reads the database on each call)."""
    return partial(read_verify_ticket, app_key)


def connector_options(*, platform: str, app_key: str, self_use: bool = False) -> dict:
    """Constructor options for a connector of app ``app_key``: for the deployment's WeChat app
    (component mode) the ticket reader and the shared component-token store; else none."""
    if platform != PLATFORM or self_use or component_app(app_key) is None:
        return {}
    return {
        "verify_ticket": verify_ticket_reader(app_key),
        "component_token_cache": ComponentTokenStore(app_key),
    }


@dataclass(frozen=True)
class ComponentTokenStore:
    """``connectors.wechat.ComponentTokenCache`` on the ``PlatformApp`` row (token encrypted).

    Two workers that both find no usable token may both ask WeChat for one [choice: no lock].
    The sandbox answers both with the same token while more than 5 minutes are left; should
    WeChat refuse the older of two (the reference is silent), the connector forgets a refused
    token and asks once more (``WechatConnector._component_call``)."""

    app_key: str

    def _rows(self):
        return PlatformApp.objects.filter(platform=PLATFORM, app_key=self.app_key)

    def load(self) -> tuple[str, datetime] | None:
        app = self._rows().only("component_token", "component_token_expires_at").first()
        if app is None or not app.component_token or app.component_token_expires_at is None:
            return None
        return app.component_token, app.component_token_expires_at

    def save(self, token: str, expires_at: datetime) -> None:
        self._rows().update(component_token=token, component_token_expires_at=expires_at)

    def clear(self, token: str) -> None:
        stored = self.load()
        if stored is not None and stored[0] == token:  # ciphertexts differ: compare in Python
            self._rows().filter(component_token_expires_at=stored[1]).update(
                component_token="", component_token_expires_at=None
            )


def store_verify_ticket(*, app_key: str, ticket: str, at: datetime) -> bool:
    """Keep ``ticket`` (pushed at ``at``) unless the stored one is as new or newer; one
    conditional UPDATE, so concurrent pushes cannot put an older ticket back. True if stored."""
    updated = (
        PlatformApp.objects.filter(platform=PLATFORM, app_key=app_key)
        .filter(Q(verify_ticket_at__isnull=True) | Q(verify_ticket_at__lt=at))
        .update(verify_ticket=ticket, verify_ticket_at=at)
    )
    return bool(updated)

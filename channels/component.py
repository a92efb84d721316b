"""WeChat third-party platform (第三方平台, "component"): the pushed ticket and the shared token.

Shops authorised to this deployment's WeChat app are reached with an ``authorizer_access_token``
that only a ``component_access_token`` (2 h) can renew, and that token needs the
``component_verify_ticket`` WeChat pushes every 10 minutes (valid 12 h) to the component's
authorisation-event URL (授权事件接收URL) — here ``/hooks/wechat/component/<component_appid>/``
(reference §3.1).

1. ``receive_authorization_event`` (web request, public schema): verify ``msg_signature`` and
   decrypt with the component's Token / EncodingAESKey (``connectors.wechat.decode_component_event``,
   the same secure-mode code as message pushes). A bad signature or undecryptable body gets the
   failure reply and a log line, nothing else. The raw request is stored as a ``PushReceipt``
   (kind ``authorization``) before ``success`` is answered; a ticket is applied in that same
   transaction [choice: cheap, and keeps the task queue out of the token chain], other events
   are applied by the push-routing task (``intake.route_receipt`` → ``process_authorization_receipt``).
2. Applying is idempotent: a ticket replaces the stored one only when its ``CreateTime`` is later
   (a duplicate or an older, retried push never overwrites a newer ticket); ``unauthorized`` marks
   the store of that authorizer appid "authorisation expired" in its tenant (found via ``ShopRoute``).
3. ``verify_ticket_reader`` and ``ComponentTokenStore`` are what ``services.connector_for`` /
   ``unbound_connector`` give WeChat connectors in component mode: the newest ticket (or a clear
   error), and one ``component_access_token`` per deployment, encrypted on the ``PlatformApp`` and
   reused until ~5 minutes before it expires (WeChat limits ``api_component_token`` calls).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_tenants.utils import schema_context

from channels import intake, services
from channels.connectors import push_codec
from channels.connectors.base import PushReply
from channels.connectors.wechat import ComponentEvent, decode_component_event
from channels.errors import AuthExpired, BadPushMessage, TemporarilyUnavailable
from channels.models import Store
from channels.routing.models import PlatformApp, PushReceipt, ShopRoute
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


# --- receiving ----------------------------------------------------------------------------------


def receive_authorization_event(
    *, component_appid: str, method: str, headers: dict[str, str], query: dict[str, str], body: bytes
) -> PushReply:
    """Handle one request to the authorisation-event URL (see module docstring)."""
    codec = push_codec(PLATFORM)
    app = component_app(component_appid)
    if app is None:
        logger.warning("authorisation event for unknown WeChat component %r rejected", component_appid)
        return codec.reject()
    credentials = services.app_credentials(platform=PLATFORM, app_key=app.app_key)
    if method == "GET":  # a URL check like the message URL's [choice]
        return codec.verify_url(query=query, credentials=credentials) or codec.reject()
    try:
        event = decode_component_event(query=query, body=body, credentials=credentials)
    except BadPushMessage as exc:
        logger.warning("rejected WeChat authorisation event for component %s: %s", app.app_key, exc)
        return codec.reject()
    headers = {k.lower(): v for k, v in headers.items()}
    with transaction.atomic():
        receipt = PushReceipt.objects.create(
            platform=PLATFORM,
            kind=PushReceipt.Kind.AUTHORIZATION,
            app_key=app.app_key,
            query=query,
            headers={k: v for k, v in headers.items() if k in intake.KEPT_HEADERS},
            body=body.decode("utf-8", errors="replace"),
            messages=1,
        )
        if event.info_type == TICKET:
            receipt.attempts = 1
            _finish(receipt, event)
        else:
            transaction.on_commit(lambda: intake.enqueue_route(receipt.pk))
    return codec.ack()


def process_authorization_receipt(receipt: PushReceipt) -> PushReceipt:
    """Decode a stored authorisation event again and apply it (idempotent; the routing task,
    ``channels_inbox --reroute``)."""
    receipt.attempts += 1
    try:
        credentials = services.app_credentials(platform=receipt.platform, app_key=receipt.app_key)
        event = decode_component_event(
            query=receipt.query, body=receipt.body.encode("utf-8"), credentials=credentials
        )
    except (BadPushMessage, PlatformApp.DoesNotExist) as exc:
        receipt.status, receipt.error = PushReceipt.Status.FAILED, str(exc)[:2000]
        receipt.save(update_fields=["status", "error", "attempts"])
        return receipt
    _finish(receipt, event)
    return receipt


def _finish(receipt: PushReceipt, event: ComponentEvent) -> None:
    receipt.error = apply_event(event)
    receipt.status = PushReceipt.Status.ROUTED
    receipt.routed_at = timezone.now()
    receipt.save(update_fields=["status", "error", "attempts", "routed_at"])


def apply_event(event: ComponentEvent) -> str:
    """Act on one authorisation event; returns a note for the receipt ("" when all was done).
    ``authorized`` / ``updateauthorized`` need nothing: shops connect through the OAuth callback."""
    if event.info_type == TICKET:
        if not store_verify_ticket(app_key=event.component_appid, ticket=event.ticket, at=event.created_at):
            return "not newer than the stored ticket: kept the stored one"
        return ""
    if event.info_type == UNAUTHORIZED:
        marked = mark_unauthorized(
            component_appid=event.component_appid,
            authorizer_appid=event.authorizer_appid,
            at=event.created_at,
        )
        return "" if marked else f"no connected store for authorizer {event.authorizer_appid}"
    return ""


def store_verify_ticket(*, app_key: str, ticket: str, at: datetime) -> bool:
    """Keep ``ticket`` (pushed at ``at``) unless the stored one is as new or newer; one
    conditional UPDATE, so concurrent pushes cannot put an older ticket back. True if stored."""
    updated = (
        PlatformApp.objects.filter(platform=PLATFORM, app_key=app_key)
        .filter(Q(verify_ticket_at__isnull=True) | Q(verify_ticket_at__lt=at))
        .update(verify_ticket=ticket, verify_ticket_at=at)
    )
    return bool(updated)


def mark_unauthorized(*, component_appid: str, authorizer_appid: str, at: datetime) -> list[tuple[str, int]]:
    """The merchant cancelled the authorisation of shop ``authorizer_appid``: mark its store
    "authorisation expired" (through ``services.record_store_error``) in the tenant that
    connected it. Returns (schema, store id) pairs.

    A store keeps its authorizer appid only inside its encrypted refresh token
    (``"<authorizer_appid>:<refresh token>"``), so the component's routes are walked tenant by
    tenant [choice: the event is rare]. A store connected after the event is left alone (the
    merchant authorised again)."""
    if not authorizer_appid:
        return []
    shops: dict[str, list[str]] = defaultdict(list)
    for route in ShopRoute.objects.filter(platform=PLATFORM, app_key=component_appid).select_related(
        "tenant"
    ):
        shops[route.tenant.schema_name].append(route.platform_shop_id)
    marked: list[tuple[str, int]] = []
    error = AuthExpired(
        f"the merchant cancelled the authorisation of WeChat third-party platform {component_appid} "
        "(unauthorized); connect the shop again"
    )
    for schema, shop_ids in shops.items():
        with schema_context(schema), transaction.atomic():
            stores = Store.objects.filter(
                platform=PLATFORM,
                app_key=component_appid,
                auth_mode=Store.AuthMode.OAUTH,
                platform_shop_id__in=shop_ids,
            ).exclude(status=Store.Status.DISABLED)
            for store in stores:
                if store.refresh_token.partition(":")[0] != authorizer_appid:
                    continue
                if store.connected_at is not None and store.connected_at > at:
                    continue
                services.record_store_error(store=store, error=error)
                marked.append((schema, store.pk))
    return marked

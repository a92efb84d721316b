"""Push intake: verify, store raw, acknowledge; then route to the tenant and process.

1. ``receive_push`` (web request, public schema): pick the app's secrets, verify/decrypt
   with the platform's codec (a bad signature gets the platform's failure reply and a log
   line, nothing else), store the raw request as a ``PushReceipt`` and only then return
   the acknowledgement — well inside every platform's deadline (Kuaishou 3 s).
2. ``route_receipt`` (task, public schema): decode the stored receipt again, find each
   message's tenant through ``ShopRoute`` and insert it into that tenant's ``InboxMessage``
   table — de-duplicated on (platform, message id) — then enqueue its processing.
3. ``process_inbox_message`` (task, tenant schema): act on one message (an order message
   fetches the order's detail and stores the version). Failures stay in the inbox with
   their error and are retried by the periodic task, the dashboard or a command.

The WeChat third-party platform's authorisation events (``receive_authorization_event``, its
own URL ``/hooks/wechat/component/<component_appid>/``) take the same path: verified and
stored as a ``PushReceipt`` of kind ``authorization`` before ``success`` is answered. A
``component_verify_ticket`` is applied in that same transaction [choice: cheap, and keeps the
task queue out of the token chain]; other events are applied by the routing task
(``process_authorization_receipt``): ``unauthorized`` marks the store of that authorizer appid
"authorisation expired" in its tenant (found via ``ShopRoute``). What they leave behind (the
ticket, the shared component token) lives in ``channels.component``.

Dependencies, one way: ``tasks`` → ``intake`` → ``services`` → ``component``. The two tasks
this module enqueues itself are defined here (under their ``channels.tasks.*`` names).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from datetime import datetime, timedelta

from celery import shared_task
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django_tenants.utils import schema_context

from channels import component, services
from channels.component import PLATFORM as WECHAT
from channels.connectors import push_codec, scrub_payload
from channels.connectors.base import PushMessage, PushReply
from channels.connectors.wechat import ComponentEvent, decode_component_event
from channels.errors import AuthExpired, BadPushMessage, ChannelError, RateLimited, TemporarilyUnavailable
from channels.models import InboxMessage, Store
from channels.routing.models import PlatformApp, PushReceipt, ShopRoute
from channels.types import Platform

logger = logging.getLogger(__name__)

KEPT_HEADERS = {"content-type", "app-id", "event-sign", "sign-method", "user-agent", "x-forwarded-for"}


def _resolve_app(platform: str, app_key: str) -> PlatformApp | None:
    if app_key:
        return PlatformApp.objects.filter(platform=platform, app_key=app_key).first()
    return services.deployment_app(platform)


def receive_push(
    *, platform: str, app_key: str, method: str, headers: dict[str, str], query: dict[str, str], body: bytes
) -> PushReply:
    """Handle one push request on the public domain (see module docstring)."""
    Platform(platform)  # unknown platforms never get here (URL pattern), but be explicit
    codec = push_codec(platform)
    headers = {k.lower(): v for k, v in headers.items()}
    app = _resolve_app(platform, app_key or codec.app_key_of(headers=headers, query=query, body=body))
    if app is None:
        logger.warning("push for unknown %s app %r rejected", platform, app_key)
        return codec.reject()
    credentials = services.app_credentials(platform=platform, app_key=app.app_key)
    if method == "GET":
        reply = codec.verify_url(query=query, credentials=credentials)
        return reply or codec.reject()
    try:
        messages = codec.decode(headers=headers, query=query, body=body, credentials=credentials)
    except BadPushMessage as exc:
        logger.warning("rejected %s push for app %s: %s", platform, app.app_key, exc)
        return codec.reject()
    foreign = sorted({m.platform_shop_id for m in messages if _route_for(platform, app, m) is REFUSED})
    if foreign:
        logger.warning(
            "refused %s push signed by app %s for shop(s) of another app: %s", platform, app.app_key, foreign
        )
        return codec.reject()
    now = timezone.now()
    if not all(codec.is_fresh(query=query, message=m, now=now) for m in messages):
        logger.warning(
            "refused a %s push for app %s: its timestamp is outside the window", platform, app.app_key
        )
        return codec.reject()
    with transaction.atomic():
        receipt = _store_receipt(
            platform=platform,
            kind=PushReceipt.Kind.MESSAGES,
            app_key=app.app_key,
            headers=headers,
            query=query,
            body=body,
            messages=len(messages),
            key="\n".join(sorted(m.message_id for m in messages)),
        )
        if receipt is not None:
            transaction.on_commit(lambda: enqueue_route(receipt.pk))
    return codec.ack()


RECEIPT_RETENTION = timedelta(days=7)  # longer than every platform's freshness window (12 h at most)


def _store_receipt(
    *,
    platform: str,
    kind: str,
    app_key: str,
    headers: dict,
    query: dict,
    body: bytes,
    messages: int,
    key: str,
) -> PushReceipt | None:
    """Store a push as received; None when these same messages are stored already (the
    platform's redelivery after a lost acknowledgement, or a replay): one receipt per set of
    message ids and app (a unique constraint), kept ``RECEIPT_RETENTION``."""
    try:
        with transaction.atomic():
            return PushReceipt.objects.create(
                platform=platform,
                kind=kind,
                app_key=app_key,
                query=query,
                headers={k: v for k, v in headers.items() if k in KEPT_HEADERS},
                body=body.decode("utf-8", errors="replace"),
                messages=messages,
                dedupe_key=hashlib.sha256(key.encode()).hexdigest(),
            )
    except IntegrityError:
        return None


def prune_receipts(
    *, now: datetime | None = None, retention: timedelta = RECEIPT_RETENTION, batch: int = 5000
) -> int:
    """Public schema: delete receipts older than ``retention`` (whatever became of them)."""
    cutoff = (now or timezone.now()) - retention
    deleted = 0
    while True:
        ids = list(PushReceipt.objects.filter(received_at__lt=cutoff).values_list("pk", flat=True)[:batch])
        if not ids:
            return deleted
        deleted += PushReceipt.objects.filter(pk__in=ids).delete()[0]


def enqueue_route(receipt_id: int) -> None:
    route_push_receipt.delay(receipt_id)


CONSUMED_KINDS = (
    "order",
    "after_sale",
    "logistics",
    "dropship",
)  # what ``_act_on`` stores; other kinds are kept as ignored


class _Refused:
    """``_route_for``'s answer for a message naming a shop that another app's route owns."""


REFUSED = _Refused()


def _route_for(platform: str, app: PlatformApp, message: PushMessage) -> ShopRoute | _Refused | None:
    """Where a message signed by ``app`` may go: only to a shop routed to that same app (and,
    for a merchant's self-use app, to that merchant). A message naming a shop that is routed
    to another app is ``REFUSED``: an app's keys — a merchant can register their own — never
    reach another app's shops. None: no route (yet)."""
    if message.platform_shop_id:
        named = ShopRoute.objects.filter(platform=platform, platform_shop_id=message.platform_shop_id).first()
        if named is not None:
            if named.app_key != app.app_key or (
                app.tenant_id is not None and named.tenant_id != app.tenant_id
            ):
                return REFUSED
            return named
    # A self-use app's pushes may not name the shop, or name it differently (WeChat: the gh_ id):
    # its one shop. The deployment's app serves every merchant: a shop nobody connected stays
    # unroutable.
    if app.tenant_id is not None:
        routes = list(
            ShopRoute.objects.filter(platform=platform, app_key=app.app_key, tenant_id=app.tenant_id)[:2]
        )
        return routes[0] if len(routes) == 1 else None
    return None


def route_receipt(*, receipt_id: int) -> PushReceipt:
    """Deliver a stored receipt's messages to their tenants' inboxes (idempotent)."""
    receipt = PushReceipt.objects.get(pk=receipt_id)
    if receipt.kind == PushReceipt.Kind.AUTHORIZATION:  # WeChat third-party platform events
        return process_authorization_receipt(receipt)
    codec = push_codec(receipt.platform)
    app = PlatformApp.objects.get(platform=receipt.platform, app_key=receipt.app_key)
    credentials = services.app_credentials(platform=receipt.platform, app_key=receipt.app_key)
    receipt.attempts += 1
    try:
        messages = codec.decode(
            headers=receipt.headers,
            query=receipt.query,
            body=receipt.body.encode("utf-8"),
            credentials=credentials,
        )
    except BadPushMessage as exc:
        receipt.status, receipt.error = PushReceipt.Status.FAILED, str(exc)
        receipt.save(update_fields=["status", "error", "attempts"])
        return receipt
    unroutable, refused = [], []
    for message in messages:
        route = _route_for(receipt.platform, app, message)
        if route is REFUSED:
            refused.append(message.platform_shop_id)
            continue
        if route is None:
            if message.kind != "test":
                unroutable.append(message.platform_shop_id or "?")
            continue
        with schema_context(route.tenant.schema_name):
            _deliver_to_inbox(receipt=receipt, message=message, self_use=app.tenant_id is not None)
    errors = []
    if unroutable:
        errors.append(f"no tenant for shop(s) {', '.join(sorted(set(unroutable)))}")
    if refused:
        errors.append(f"refused: shop(s) {', '.join(sorted(set(refused)))} belong to another app")
    receipt.status = PushReceipt.Status.UNROUTABLE if errors else PushReceipt.Status.ROUTED
    receipt.error = "; ".join(errors)
    receipt.routed_at = timezone.now()
    fields = ["status", "error", "attempts", "routed_at"]
    if not errors and _scrub_body(receipt):  # delivered: the raw body is not needed again
        fields.append("body")
    receipt.save(update_fields=fields)
    return receipt


def _scrub_body(receipt: PushReceipt) -> bool:
    """A plain-JSON body (Douyin's) loses its plaintext receiver values once routed (its
    signature no longer verifies, and nothing reads it again); encrypted bodies stay as they
    are. Returns whether the body changed."""
    try:
        body = json.loads(receipt.body)
    except ValueError:
        return False
    scrubbed = json.dumps(scrub_payload(receipt.platform, body), ensure_ascii=False, separators=(",", ":"))
    if json.loads(scrubbed) == body:
        return False
    receipt.body = scrubbed
    return True


def _deliver_to_inbox(*, receipt: PushReceipt, message: PushMessage, self_use: bool) -> None:
    """Runs in the tenant's schema, for a route ``_route_for`` allowed: the store of this app
    that the message names, or — for a self-use app, or a message naming no shop — the app's
    only store here."""
    stores = Store.objects.filter(platform=receipt.platform, app_key=receipt.app_key)
    store = (
        stores.filter(platform_shop_id=message.platform_shop_id).first() if message.platform_shop_id else None
    )
    if store is None and (self_use or not message.platform_shop_id):
        store = stores.first() if len(stores[:2]) == 1 else None
    with transaction.atomic():
        inbox, created = InboxMessage.objects.get_or_create(
            platform=receipt.platform,
            message_id=message.message_id,
            defaults={
                "store": store,
                "topic": message.topic[:64],
                "payload": {
                    "kind": message.kind,
                    "object_id": message.object_id,
                    "platform_shop_id": message.platform_shop_id,
                    "data": scrub_payload(receipt.platform, message.payload),
                },
                "receipt_id": receipt.pk,
                "status": InboxMessage.Status.PENDING
                if message.kind in CONSUMED_KINDS
                else InboxMessage.Status.IGNORED,
            },
        )
        if created and inbox.status == InboxMessage.Status.PENDING:
            transaction.on_commit(lambda: _enqueue_process(inbox.pk))


def _enqueue_process(message_id: int) -> None:
    process_inbox_message_task.delay(message_id)


def process_inbox_message(*, message_id: int) -> InboxMessage:
    """Act on one inbox message; safe to run twice (a processed message is left alone)."""
    with transaction.atomic():
        message = InboxMessage.objects.select_for_update().get(pk=message_id)
        if message.status in (InboxMessage.Status.PROCESSED, InboxMessage.Status.IGNORED):
            return message
        if message.payload.get("kind") not in CONSUMED_KINDS:  # delivered before kinds were sorted
            message.status = InboxMessage.Status.IGNORED
            message.save(update_fields=["status"])
            return message
        message.attempts += 1
        message.attempted_at = timezone.now()
        message.save(update_fields=["attempts", "attempted_at"])
    try:
        _act_on(message)
    except ChannelError as exc:
        InboxMessage.objects.filter(pk=message.pk).update(
            status=InboxMessage.Status.FAILED, last_error=str(exc)[:2000]
        )
        if message.store_id:
            services.record_store_error(store=message.store, error=exc)
        raise
    except Exception as exc:
        InboxMessage.objects.filter(pk=message.pk).update(
            status=InboxMessage.Status.FAILED, last_error=f"{type(exc).__name__}: {exc}"[:2000]
        )
        raise
    InboxMessage.objects.filter(pk=message.pk).update(
        status=InboxMessage.Status.PROCESSED, last_error="", processed_at=timezone.now()
    )
    message.refresh_from_db()
    return message


def _act_on(message: InboxMessage) -> None:
    """Fetch what the message names from the platform and store it; only then is the message
    processed. A message nothing here consumes was marked ``ignored`` on delivery."""
    kind = message.payload.get("kind")
    object_id = str(message.payload.get("object_id") or "")
    if message.store is None:
        raise ChannelError(f"no connected store for shop {message.payload.get('platform_shop_id')!r}")
    if not object_id:
        raise ChannelError(f"the {kind} message names no {kind}")
    if kind == "order":
        order = services.connector_for(message.store).get_order(object_id)
        services.store_order_version(store=message.store, order=order, payload=order.raw, source="push")
    elif kind == "logistics":  # the events are in the message: handed up as they are
        services.publish_tracking(store=message.store, payload=message.payload.get("data") or {})
    elif kind == "dropship":  # an order's native dropship changed (WeChat ext_info_update 14/15)
        services.publish_dropship_change(
            store=message.store, platform_order_id=object_id, payload=message.payload.get("data") or {}
        )
    else:  # "after_sale" (CONSUMED_KINDS)
        after_sale = services.connector_for(message.store).get_after_sale(object_id)
        services.store_after_sale_version(store=message.store, after_sale=after_sale, source="push")


STUCK_AFTER = timedelta(
    minutes=5
)  # a receipt still "received" / a message still "pending" this long: its task was lost
RETRY_FAILED_AFTER = timedelta(
    minutes=5
)  # a failed message is retried no sooner than this after its last attempt


def resend_stuck_receipts(*, now: datetime | None = None, limit: int = 500) -> int:
    """Public schema: enqueue routing again for receipts still "received" ``STUCK_AFTER`` after
    they arrived (the enqueue after the commit was lost: a broker outage, a killed web process).
    Routing is idempotent, so a receipt whose task is merely late is routed once more, harmlessly.
    Receipts older than the retention period are pruned, which bounds a receipt that can never be
    routed."""
    cutoff = (now or timezone.now()) - STUCK_AFTER
    ids = list(
        PushReceipt.objects.filter(status=PushReceipt.Status.RECEIVED, received_at__lt=cutoff)
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
    for receipt_id in ids:
        enqueue_route(receipt_id)
    return len(ids)


def resend_stuck_messages(*, now: datetime | None = None, limit: int = 500) -> int:
    """Tenant schema: enqueue processing again for inbox messages still "pending" ``STUCK_AFTER``
    after they arrived (processing is idempotent: a processed message is left alone)."""
    cutoff = (now or timezone.now()) - STUCK_AFTER
    ids = list(
        InboxMessage.objects.filter(status=InboxMessage.Status.PENDING, received_at__lt=cutoff)
        .filter(Q(attempted_at__isnull=True) | Q(attempted_at__lt=cutoff))
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
    for message_id in ids:
        _enqueue_process(message_id)
    return len(ids)


def retry_failed_messages(*, now: datetime | None = None, limit: int = 200, max_attempts: int = 10) -> int:
    """Tenant schema: put failed messages back in the queue — those with fewer than
    ``max_attempts`` attempts whose last attempt is at least ``RETRY_FAILED_AFTER`` old."""
    cutoff = (now or timezone.now()) - RETRY_FAILED_AFTER
    ids = list(
        InboxMessage.objects.filter(status=InboxMessage.Status.FAILED, attempts__lt=max_attempts)
        .filter(Q(attempted_at__isnull=True) | Q(attempted_at__lt=cutoff))
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
    with transaction.atomic():
        for message_id in ids:
            retry_inbox_message(message_id=message_id)
    return len(ids)


def retry_inbox_message(*, message_id: int) -> None:
    """Put a failed message back in the queue (dashboard / command)."""
    updated = InboxMessage.objects.filter(pk=message_id, status=InboxMessage.Status.FAILED).update(
        status=InboxMessage.Status.PENDING
    )
    if updated:
        transaction.on_commit(lambda: _enqueue_process(message_id))


# --- WeChat third-party platform authorisation events ----------------------------------------------------------------------------------


def receive_authorization_event(
    *, component_appid: str, method: str, headers: dict[str, str], query: dict[str, str], body: bytes
) -> PushReply:
    """Handle one request to the WeChat component's authorisation-event URL (see module docstring)."""
    codec = push_codec(WECHAT)
    app = component.component_app(component_appid)
    if app is None:
        logger.warning("authorisation event for unknown WeChat component %r rejected", component_appid)
        return codec.reject()
    credentials = services.app_credentials(platform=WECHAT, app_key=app.app_key)
    if method == "GET":  # a URL check like the message URL's [choice]
        return codec.verify_url(query=query, credentials=credentials) or codec.reject()
    try:
        event = decode_component_event(query=query, body=body, credentials=credentials)
    except BadPushMessage as exc:
        logger.warning("rejected WeChat authorisation event for component %s: %s", app.app_key, exc)
        return codec.reject()
    now = timezone.now()
    if not now - codec.max_age <= event.created_at <= now + codec.max_skew:
        logger.warning(
            "refused a WeChat authorisation event for component %s: CreateTime outside the window",
            app.app_key,
        )
        return codec.reject()
    headers = {k.lower(): v for k, v in headers.items()}
    with transaction.atomic():
        receipt = _store_receipt(
            platform=WECHAT,
            kind=PushReceipt.Kind.AUTHORIZATION,
            app_key=app.app_key,
            headers=headers,
            query=query,
            body=body,
            messages=1,
            key="|".join(
                (event.info_type, event.created_at.isoformat(), event.authorizer_appid, event.ticket)
            ),
        )
        if receipt is None:
            pass  # applied (or being applied) already
        elif event.info_type == component.TICKET:
            receipt.attempts = 1
            _finish(receipt, event)
        else:
            transaction.on_commit(lambda: enqueue_route(receipt.pk))
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
    if event.info_type == component.TICKET:
        if not component.store_verify_ticket(
            app_key=event.component_appid, ticket=event.ticket, at=event.created_at
        ):
            return "not newer than the stored ticket: kept the stored one"
        return ""
    if event.info_type == component.UNAUTHORIZED:
        marked = mark_unauthorized(
            component_appid=event.component_appid,
            authorizer_appid=event.authorizer_appid,
            at=event.created_at,
        )
        return "" if marked else f"no connected store for authorizer {event.authorizer_appid}"
    return ""


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
    for route in ShopRoute.objects.filter(platform=WECHAT, app_key=component_appid).select_related("tenant"):
        shops[route.tenant.schema_name].append(route.platform_shop_id)
    marked: list[tuple[str, int]] = []
    error = AuthExpired(
        f"the merchant cancelled the authorisation of WeChat third-party platform {component_appid} "
        "(unauthorized); connect the shop again"
    )
    for schema, shop_ids in shops.items():
        with schema_context(schema), transaction.atomic():
            stores = Store.objects.filter(
                platform=WECHAT,
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


# --- the tasks this module enqueues ----------------------------------------------------------------

RETRYABLE = (TemporarilyUnavailable, RateLimited)


@shared_task(
    name="channels.tasks.route_push_receipt",
    acks_late=True,
    autoretry_for=(Exception,),
    retry_backoff=True,
    max_retries=8,
)
def route_push_receipt(receipt_id: int) -> str:
    """Runs in the public schema (enqueued from the public push endpoint)."""
    return route_receipt(receipt_id=receipt_id).status


@shared_task(name="channels.tasks.process_inbox_message_task", bind=True, acks_late=True, max_retries=6)
def process_inbox_message_task(self, message_id: int) -> str:
    try:
        return process_inbox_message(message_id=message_id).status
    except RETRYABLE as exc:
        countdown = getattr(exc, "retry_after", None) or min(300, 5 * 2**self.request.retries)
        raise self.retry(exc=exc, countdown=countdown) from exc

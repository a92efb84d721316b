"""Channel-layer actions: connecting shops, keeping their tokens, storing order versions.

Everything here runs inside a tenant's schema unless it says otherwise.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from channels import component
from channels import events as channel_events
from channels.connectors import connector_class, push_tracking, scrub_payload
from channels.connectors.base import AppCredentials, Connector, ShopSession, StoredTokens
from channels.errors import AuthExpired
from channels.models import AfterSaleSnapshot, DecryptAudit, OrderSnapshot, Store
from channels.routing.models import PlatformApp, ShopRoute
from channels.types import AfterSale, AfterSaleStatus, ChannelOrder, OrderStatus, TokenGrant
from ecbao import events
from ecbao.db import JSONText, insert_new
from tenants.models import Tenant

logger = logging.getLogger(__name__)


# --- apps and credentials ----------------------------------------------------------------------


def app_credentials(*, platform: str, app_key: str) -> AppCredentials:
    """Keys of a registered app (public schema table, readable from any tenant)."""
    app = PlatformApp.objects.get(platform=platform, app_key=app_key)
    secrets = json.loads(app.secrets_json or "{}")
    return AppCredentials(app_key=app.app_key, **secrets)


def register_app(*, platform: str, app_key: str, secrets: dict, tenant=None) -> PlatformApp:
    """Create or update a platform app (the deployment's own when ``tenant`` is None)."""
    allowed = {"app_secret", "sign_secret", "message_key", "token", "aes_key"}
    unknown = set(secrets) - allowed
    if unknown:
        raise ValueError(f"unknown app secret fields: {sorted(unknown)}")
    with schema_context("public"):
        if tenant is not None:
            # A merchant's self-use app never replaces this deployment's app or another
            # merchant's: the keys are theirs only if nobody else registered them.
            existing = PlatformApp.objects.filter(platform=platform, app_key=app_key).first()
            if existing is not None and existing.tenant_id != tenant.pk:
                raise PermissionError("this app key cannot be registered for this account")
        app, _ = PlatformApp.objects.update_or_create(
            platform=platform,
            app_key=app_key,
            defaults={"secrets_json": json.dumps(secrets), "tenant": tenant},
        )
    return app


def deployment_app(platform: str) -> PlatformApp | None:
    return PlatformApp.objects.filter(platform=platform, tenant__isnull=True).order_by("id").first()


def base_url(platform: str) -> str:
    return settings.CHANNEL_BASE_URLS[platform]


# --- connectors -----------------------------------------------------------------------------


def _options(cls, platform: str, **candidates) -> dict:
    """Platform-specific constructor options, passed only to connectors that take them."""
    accepted = inspect.signature(cls.__init__).parameters
    candidates.setdefault("authorize_base", settings.CHANNEL_AUTHORIZE_URLS.get(platform))
    return {k: v for k, v in candidates.items() if k in accepted and v is not None}


@contextmanager
def _in_schema(schema: str, owner: int) -> Iterator[None]:
    """Database work for a connector, on whichever thread it runs: a connector's own worker
    threads (WeChat's detail fetches, a pull's read-ahead) have their own connection, which
    starts in the public schema — switch it to the store's tenant, and close it when done."""
    if threading.get_ident() == owner:
        yield
        return
    try:
        with schema_context(schema):
            yield
    finally:
        if not connection.in_atomic_block:
            connection.close()


@contextmanager
def locked_tokens(store_id: int, *, schema: str, owner: int) -> Iterator[StoredTokens]:
    """``ShopSession.refresh_guard`` of a store: its row locked in a short transaction of its
    own (``SELECT … FOR UPDATE``), its tokens as stored now. A refresh (and the save of its
    tokens) happens inside, so refreshes of one shop run one at a time across processes."""
    with _in_schema(schema, owner), transaction.atomic():
        store = (
            Store.objects.select_for_update()
            .only(
                "access_token", "access_expires_at", "refresh_token", "refresh_expires_at", "token_issued_at"
            )
            .get(pk=store_id)
        )
        yield StoredTokens(
            access_token=store.access_token,
            access_expires_at=store.access_expires_at,
            refresh_token=store.refresh_token,
            refresh_expires_at=store.refresh_expires_at,
            issued_at=store.token_issued_at,
        )


def connector_for(store: Store, **kwargs) -> Connector:
    """A connector for ``store`` whose token refreshes are serialised among processes
    (``locked_tokens``) and saved back to the store, from any thread."""
    schema, owner = connection.schema_name, threading.get_ident()

    def on_new_tokens(grant: TokenGrant) -> None:
        with _in_schema(schema, owner):
            save_tokens(store_id=store.pk, grant=grant)

    session = ShopSession(
        platform_shop_id=store.platform_shop_id,
        access_token=store.access_token,
        access_expires_at=store.access_expires_at,
        refresh_token=store.refresh_token,
        refresh_expires_at=store.refresh_expires_at,
        issued_at=store.token_issued_at,
        on_new_tokens=on_new_tokens,
        refresh_guard=partial(locked_tokens, store.pk, schema=schema, owner=owner),
    )
    cls = connector_class(store.platform)
    options = _options(
        cls,
        store.platform,
        self_use=store.auth_mode == Store.AuthMode.SELF_USE,
        **component.connector_options(
            platform=store.platform,
            app_key=store.app_key,
            self_use=store.auth_mode == Store.AuthMode.SELF_USE,
        ),
    )
    try:
        credentials = app_credentials(platform=store.platform, app_key=store.app_key)
    except PlatformApp.DoesNotExist:  # the app was removed: the shop must be connected again
        raise AuthExpired(f"the {store.platform} app of this shop is not registered") from None
    return cls(
        credentials=credentials,
        base_url=base_url(store.platform),
        session=session,
        **{**options, **kwargs},
    )


def unbound_connector(*, platform: str, app_key: str, **kwargs) -> Connector:
    """A connector with no shop yet (authorisation flow)."""
    cls = connector_class(platform)
    options = component.connector_options(platform=platform, app_key=app_key)
    return cls(
        credentials=app_credentials(platform=platform, app_key=app_key),
        base_url=base_url(platform),
        **{**options, **kwargs},
    )


def save_tokens(*, store_id: int, grant: TokenGrant) -> None:
    fields = {
        "access_token": grant.access_token,
        "access_expires_at": grant.access_expires_at,
        "token_issued_at": timezone.now(),
        "status": Store.Status.ACTIVE,
    }
    if grant.refresh_token:
        fields["refresh_token"] = grant.refresh_token
        fields["refresh_expires_at"] = grant.refresh_expires_at
    store = Store.objects.get(pk=store_id)
    for name, value in fields.items():
        setattr(store, name, value)
    store.save(update_fields=[*fields])


def current_tenant() -> Tenant:
    return Tenant.objects.get(schema_name=connection.schema_name)


# --- connecting shops ----------------------------------------------------------------------------


@transaction.atomic
def connect_store(
    *, platform: str, app_key: str, grant: TokenGrant, auth_mode: str = Store.AuthMode.OAUTH, name: str = ""
) -> Store:
    """Create or re-activate the store for a freshly granted shop and route its pushes here.

    A shop can belong to one tenant only: connecting a shop that another tenant connected
    is refused."""
    if not grant.platform_shop_id:
        raise ValueError("the grant names no shop")
    tenant = current_tenant()
    route = ShopRoute.objects.filter(platform=platform, platform_shop_id=grant.platform_shop_id).first()
    if route is not None and route.tenant_id != tenant.pk:
        raise PermissionError("this shop cannot be connected to this account")
    store, _created = Store.objects.update_or_create(
        platform=platform,
        platform_shop_id=grant.platform_shop_id,
        defaults={
            "name": name or grant.shop_name or grant.platform_shop_id,
            "auth_mode": auth_mode,
            "app_key": app_key,
            "access_token": grant.access_token,
            "access_expires_at": grant.access_expires_at,
            "refresh_token": grant.refresh_token,
            "refresh_expires_at": grant.refresh_expires_at,
            "token_issued_at": timezone.now(),
            "status": Store.Status.ACTIVE,
            "last_error": "",
            "connected_at": timezone.now(),
        },
    )
    ShopRoute.objects.update_or_create(
        platform=platform,
        platform_shop_id=grant.platform_shop_id,
        defaults={"tenant": tenant, "app_key": app_key},
    )
    return store


@transaction.atomic
def disconnect_store(*, store: Store) -> None:
    """Stop syncing a shop and forget its tokens and push route."""
    store.access_token = ""
    store.refresh_token = ""
    store.access_expires_at = store.refresh_expires_at = None
    store.status = Store.Status.DISABLED
    store.save()
    ShopRoute.objects.filter(
        platform=store.platform, platform_shop_id=store.platform_shop_id, tenant=connection.tenant
    ).delete()


def record_store_error(*, store: Store, error: Exception) -> None:
    """Show the merchant what went wrong; an expired authorisation changes the store's status
    (applied here: ``Store.status`` is what every layer reads — pulls, stock pushes and the Shops
    page skip or flag a store that is not active)."""
    status = Store.Status.AUTH_EXPIRED if isinstance(error, AuthExpired) else store.status
    Store.objects.filter(pk=store.pk).update(
        status=status, last_error=str(error)[:2000], last_error_at=timezone.now()
    )


# --- order versions ---------------------------------------------------------------------------------


def _canonical(payload: dict) -> str:
    """Compact JSON with sorted keys: equal payloads give equal text (and digest)."""
    return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str).decode()


@dataclass(slots=True)
class _SnapshotRow:
    """An ``OrderSnapshot`` row for COPY."""

    store_id: int
    platform_order_id: str
    digest: str
    platform_updated_at: datetime
    platform_status: str
    status: str
    payload: str
    normalized: str
    source: str
    id: int | None = None


_UPSERT_STATES_SQL = """
INSERT INTO channels_channelorderstate
    (store_id, platform_order_id, platform_updated_at, platform_status, status, snapshot_id, changed_at)
SELECT %(store)s, v.pid, v.updated_at, v.platform_status, v.status, v.snapshot_id, now()
FROM unnest(%(pids)s::text[], %(updated)s::timestamptz[], %(pstatus)s::text[], %(status)s::text[],
            %(snapshots)s::bigint[]) AS v(pid, updated_at, platform_status, status, snapshot_id)
ON CONFLICT (store_id, platform_order_id) DO UPDATE SET
    platform_updated_at = EXCLUDED.platform_updated_at,
    platform_status = EXCLUDED.platform_status,
    status = EXCLUDED.status,
    snapshot_id = EXCLUDED.snapshot_id,
    changed_at = now()
WHERE EXCLUDED.platform_updated_at > channels_channelorderstate.platform_updated_at
   OR (EXCLUDED.platform_updated_at = channels_channelorderstate.platform_updated_at
       AND array_position(%(ranks)s::text[], EXCLUDED.status)
         > array_position(%(ranks)s::text[], channels_channelorderstate.status))
RETURNING platform_order_id, snapshot_id, status
"""
_RANKED_STATUSES = [s.value for s in sorted(OrderStatus, key=lambda s: s.rank)]


@transaction.atomic
def store_order_version(*, store: Store, order: ChannelOrder, payload: dict, source: str) -> bool:
    """Keep this version of a platform order (a push); returns True when it became the newest,
    and then publishes ``OrderChanged``. Idempotent (the same payload twice stores one
    snapshot) and order-preserving (an older version is kept but never replaces the newest)."""
    if payload is not order.raw:
        order = replace(order, raw=payload)
    changed = _store_versions(store=store, orders=[order], source=source)
    for pid, snapshot_id, status in changed:
        events.publish(
            channel_events.OrderChanged(
                store_id=store.pk, platform_order_id=pid, snapshot_id=snapshot_id, status=status
            )
        )
    return bool(changed)


@transaction.atomic
def store_order_versions(*, store: Store, orders: list[ChannelOrder], source: str) -> list[int]:
    """A pulled page of versions, set-based: one ``OrdersChanged`` event carries every order
    that changed. Returns the snapshot ids that became the newest version of their order."""
    ids_changed = [
        snapshot_id for _, snapshot_id, _ in _store_versions(store=store, orders=orders, source=source)
    ]
    if ids_changed:
        events.publish(channel_events.OrdersChanged(store_id=store.pk, snapshot_ids=tuple(ids_changed)))
    return ids_changed


def _store_versions(*, store: Store, orders: list[ChannelOrder], source: str) -> list[tuple[str, int, str]]:
    """Store versions set-based: one query finds those already stored, one COPY stores the new
    snapshots, one upsert moves the newest-version rows forward (its ``WHERE`` refuses a stale
    version: update time first, then the status progression). Returns (platform order id,
    snapshot id, status) of each order whose newest version changed."""
    if not orders:
        return []
    versions: dict[tuple[str, str], tuple[ChannelOrder, str]] = {}
    for order in orders:
        canonical = _canonical(scrub_payload(order.platform, order.raw))  # no plaintext receiver
        versions.setdefault(
            (order.platform_order_id, hashlib.sha256(canonical.encode()).hexdigest()), (order, canonical)
        )
    ids = {
        (pid, digest): pk
        for pk, pid, digest in OrderSnapshot.objects.filter(
            store=store, digest__in=[digest for _, digest in versions]
        ).values_list("id", "platform_order_id", "digest")
    }
    fresh = [
        _SnapshotRow(
            store_id=store.pk,
            platform_order_id=pid,
            digest=digest,
            platform_updated_at=order.updated_at,
            platform_status=order.platform_status,
            status=order.status.value,
            payload=JSONText(canonical),
            normalized=JSONText(order.to_json_text()),
            source=source,
        )
        for (pid, digest), (order, canonical) in versions.items()
        if (pid, digest) not in ids
    ]
    inserted = insert_new(
        OrderSnapshot,
        fresh,
        conflict=("store", "platform_order_id", "digest"),
        returning=("id", "platform_order_id", "digest"),
    )
    ids.update({(pid, digest): pk for pk, pid, digest in inserted})
    if len(inserted) < len(fresh):  # a push stored some of these meanwhile: find their rows
        known = OrderSnapshot.objects.filter(
            store=store, digest__in=[row.digest for row in fresh]
        ).values_list("id", "platform_order_id", "digest")
        ids.update({(pid, digest): pk for pk, pid, digest in known})
    newest: dict[str, tuple[ChannelOrder, int]] = {}
    for key, (order, _) in versions.items():
        current = newest.get(key[0])
        if current is None or (order.updated_at, order.status.rank) > (
            current[0].updated_at,
            current[0].status.rank,
        ):
            newest[key[0]] = (order, ids[key])
    with connection.cursor() as cursor:
        cursor.execute(
            _UPSERT_STATES_SQL,
            {
                "store": store.pk,
                "pids": list(newest),
                "updated": [o.updated_at for o, _ in newest.values()],
                "pstatus": [o.platform_status for o, _ in newest.values()],
                "status": [o.status.value for o, _ in newest.values()],
                "snapshots": [pk for _, pk in newest.values()],
                "ranks": _RANKED_STATUSES,
            },
        )
        return cursor.fetchall()


# --- after-sale versions ------------------------------------------------------------------------------

_UPSERT_AFTER_SALE_STATE_SQL = """
INSERT INTO channels_channelaftersalestate
    (store_id, platform_after_sale_id, platform_order_id, platform_updated_at, status, snapshot_id, changed_at)
VALUES (%(store)s, %(id)s, %(order)s, %(updated)s, %(status)s, %(snapshot)s, now())
ON CONFLICT (store_id, platform_after_sale_id) DO UPDATE SET
    platform_order_id = EXCLUDED.platform_order_id,
    platform_updated_at = EXCLUDED.platform_updated_at,
    status = EXCLUDED.status,
    snapshot_id = EXCLUDED.snapshot_id,
    changed_at = now()
WHERE EXCLUDED.platform_updated_at > channels_channelaftersalestate.platform_updated_at
   OR (EXCLUDED.platform_updated_at = channels_channelaftersalestate.platform_updated_at
       AND EXCLUDED.snapshot_id <> channels_channelaftersalestate.snapshot_id
       AND (array_position(%(ranks)s::text[], EXCLUDED.status)
              > array_position(%(ranks)s::text[], channels_channelaftersalestate.status)
            OR (EXCLUDED.status = channels_channelaftersalestate.status
                AND EXCLUDED.snapshot_id > channels_channelaftersalestate.snapshot_id)))
RETURNING snapshot_id
"""
# Equal update times: the later step of an after-sale wins [choice: the enum's order, the
# three ends last]; at an equal step a version first received later wins (a greater snapshot
# id: a re-delivered old version keeps its old snapshot and never comes back) — Douyin's
# update_time is in seconds, and an approval of a reissue (6 → 8, both "waiting for the
# merchant") inside the application's second would otherwise never be seen.
_AFTER_SALE_RANKS = [s.value for s in AfterSaleStatus]


def publish_dropship_change(*, store: Store, platform_order_id: str, payload: dict) -> None:
    """Hand a pushed dropship change up (``DropshipChanged``): the subscriber reads the order's
    assignments through the connector."""
    body = payload.get("order_info") or {}
    change = {"14": "assigned", "15": "cancelled"}.get(str(body.get("type") or ""), "")
    events.publish(
        channel_events.DropshipChanged(store_id=store.pk, platform_order_id=platform_order_id, change=change)
    )


def publish_tracking(*, store: Store, payload: dict) -> int:
    """Hand a pushed logistics message's events up (``TrackingPushed``); returns how many."""
    decoded = push_tracking(store.platform, payload)
    if decoded is None:
        return 0
    carrier_code, tracking_no, tracking_events = decoded
    if not tracking_no:
        return 0
    events.publish(
        channel_events.TrackingPushed(
            store_id=store.pk,
            carrier_code=carrier_code,
            tracking_no=tracking_no,
            events=tuple(
                (e.occurred_at.isoformat(), str(e.status), e.description, e.location, e.platform_status)
                for e in tracking_events
            ),
        )
    )
    return len(tracking_events)


@transaction.atomic
def store_after_sale_version(*, store: Store, after_sale: AfterSale, source: str) -> bool:
    """Keep this version of a platform after-sale; True when it became the newest (then
    ``AfterSaleChanged`` is published). Idempotent (one snapshot per distinct version) and
    order-preserving (an older version is kept but never replaces the newest: update time
    first, then the status progression)."""
    normalized = after_sale.to_json()
    digest = hashlib.sha256(_canonical(normalized).encode()).hexdigest()
    snapshot, _ = AfterSaleSnapshot.objects.get_or_create(
        store=store,
        platform_after_sale_id=after_sale.platform_after_sale_id,
        digest=digest,
        defaults={
            "platform_order_id": after_sale.platform_order_id,
            "platform_updated_at": after_sale.updated_at,
            "platform_status": after_sale.platform_status[:32],
            "status": after_sale.status.value,
            "normalized": normalized,
            "source": source,
        },
    )
    with connection.cursor() as cursor:
        cursor.execute(
            _UPSERT_AFTER_SALE_STATE_SQL,
            {
                "store": store.pk,
                "id": after_sale.platform_after_sale_id,
                "order": after_sale.platform_order_id,
                "updated": after_sale.updated_at,
                "status": after_sale.status.value,
                "snapshot": snapshot.pk,
                "ranks": _AFTER_SALE_RANKS,
            },
        )
        changed = cursor.fetchone() is not None
    if changed:
        events.publish(
            channel_events.AfterSaleChanged(
                store_id=store.pk,
                platform_after_sale_id=after_sale.platform_after_sale_id,
                platform_order_id=after_sale.platform_order_id,
            )
        )
    return changed


# --- buyer data ---------------------------------------------------------------------------------------

DECRYPT_FIELDS = ("name", "phone", "address")
DEFAULT_DAILY_DECRYPT_BUDGET = 500


class DecryptRefused(Exception):
    """The per-shop daily budget is used up, or the request is not allowed."""


def decrypt_budget(store: Store) -> tuple[int, int]:
    """(used today in Asia/Shanghai, daily budget) for a shop."""
    start = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    used = DecryptAudit.objects.filter(store=store, created_at__gte=start, succeeded=True).count()
    return used, int(store.settings.get("decrypt_daily_budget", DEFAULT_DAILY_DECRYPT_BUDGET))


def decrypt_receiver_field(
    *, store: Store, platform_order_id: str, field: str, cipher: str, user, ip: str | None, connector=None
) -> str:
    """Plain text of one receiver field, for the person asking, within the shop's daily budget.

    The platform's decrypt API is called with the user as ``account_id``; an audit row is
    written whether it succeeds or not. The plain text is returned to the caller only: it is
    never stored, logged, cached or sent to a task."""
    if field not in DECRYPT_FIELDS:
        raise ValueError(f"unknown field {field!r}")
    with transaction.atomic():
        Store.objects.select_for_update().filter(pk=store.pk).first()  # serialise budget checks per shop
        used, budget = decrypt_budget(store)
        refused = used >= budget
        # The refusal is audited too: the row is committed before the error is raised.
        audit = DecryptAudit.objects.create(
            store=store,
            platform_order_id=platform_order_id,
            field=field,
            user=user,
            username=user.get_username(),
            ip=ip,
            succeeded=not refused,
            error="daily decrypt budget used up" if refused else "",
        )
    if refused:
        raise DecryptRefused(f"daily decrypt budget of {budget} used up for this shop")
    try:
        # Platforms without per-field ciphertext (WeChat) decrypt by order and field name.
        return (connector or connector_for(store)).decrypt(
            platform_order_id=platform_order_id, cipher=cipher or field, account_id=str(user.pk)
        )
    except Exception as exc:
        DecryptAudit.objects.filter(pk=audit.pk).update(succeeded=False, error=str(exc)[:300])
        raise

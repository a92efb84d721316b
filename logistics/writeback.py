"""The write-back outbox sender (物流回传): tells each platform that its order shipped.

``shipping.ship_parcels`` puts one ``WriteBack`` per (parcel, order) into the outbox in the
shipping transaction; ``send_due`` (beat, and a kick after each shipping commit) sends what is
due: PENDING → SENDING → ACCEPTED, or FAILED (retried later, with exponential backoff and
jitter), or GIVEN_UP after ``MAX_ATTEMPTS`` (shown on the page, ``retry_write_backs`` sends
them again).

**Only platform orders.** An order ecbao made itself (``Order.origin`` exchange / reissue: an
after-sale's replacement) is unknown to the platform: no write-back is made of it, and one that
exists anyway is given up unsent (its tracking goes through the after-sale, ``aftersales.reship``).

**Never twice for one parcel.** A platform that takes an idempotency key gets the write-back's
``key`` as its request id. Where a platform takes none, a call whose outcome is unknown (a
timeout, a 5xx, an unreadable body — the platform may have acted and the reply was lost, or a
worker died while sending) is never simply repeated: before any further attempt, and right
after the unknown outcome, the platform's view of the order is read (``Connector.get_order``)
and the write-back is ACCEPTED when the platform already lists its tracking number. A
rejection is checked the same way (a repeat after a lost reply is answered "already shipped").

**Concurrency.** Rows are claimed with ``FOR UPDATE SKIP LOCKED`` and marked SENDING with a
lease (``next_attempt_at``) before the call, in their own short transaction; two senders never
claim one row, and a row whose sender died is claimed again once the lease ran out (and then
verified first). A sender writes its outcome only while its claim (the attempt number) holds.

The platform's view (its packages: tracking numbers, carriers, lines) is kept on the row
(``platform_packages``, ``platform_checked_at``) whenever it is read, for the page to show
beside ecbao's parcels.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import asdict
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from channels.errors import AuthExpired, ChannelError, PlatformRejected, RateLimited, TemporarilyUnavailable
from channels.types import ShipmentParcel
from logistics.models import WriteBack
from orders.models import OrderOrigin

logger = logging.getLogger(__name__)
W = WriteBack.Status

MAX_ATTEMPTS = 8
LEASE = timedelta(minutes=5)  # a SENDING row is claimed again after this (its sender died)


def _backoff(attempts: int) -> timedelta:
    """Exponential with jitter: base × 2^(attempts-1), capped, times a random 0.5–1.0."""
    base = float(getattr(settings, "WRITEBACK_RETRY_BASE_SECONDS", 30.0))
    cap = float(getattr(settings, "WRITEBACK_RETRY_MAX_SECONDS", 3600.0))
    delay = min(cap, base * 2 ** max(0, attempts - 1))
    return timedelta(seconds=delay * random.uniform(0.5, 1.0))  # noqa: S311 (jitter, not secrets)


def _default_connect(store):
    from channels.services import connector_for

    return connector_for(store)


def _claimable(now) -> Q:
    return (
        Q(status__in=[W.PENDING, W.FAILED], next_attempt_at__lte=now)
        | Q(status=W.PENDING, next_attempt_at__isnull=True)
        | Q(status=W.SENDING, next_attempt_at__lte=now)
    )


def _claim(*, ids: list[int] | None = None, limit: int = 100) -> list[WriteBack]:
    """Claim due rows (or the given ones, if due): SENDING, attempts + 1, lease set."""
    now = timezone.now()
    with transaction.atomic():
        rows = WriteBack.objects.select_for_update(skip_locked=True).filter(_claimable(now))
        if ids is not None:
            rows = rows.filter(pk__in=ids)
        claimed = list(rows.order_by("next_attempt_at", "id")[:limit])
        for wb in claimed:
            wb.status = W.SENDING
            wb.attempts += 1
            wb.next_attempt_at = now + LEASE
        WriteBack.objects.bulk_update(claimed, ["status", "attempts", "next_attempt_at"])
    return claimed


def send_due(limit: int = 100, connect: Callable | None = None) -> int:
    """Send up to ``limit`` due write-backs; returns how many the platforms accepted."""
    return send_round(limit=limit, connect=connect)[1]


def send_round(*, limit: int, connect: Callable | None = None) -> tuple[int, int]:
    """One round of ``send_due``: (claimed, accepted)."""
    claimed = _claim(limit=limit)
    connectors: dict[int, object] = {}
    accepted = 0
    try:
        for wb in claimed:
            accepted += _send_claimed(wb, connect=connect, connectors=connectors) == W.ACCEPTED
    finally:
        for connector in connectors.values():
            http = getattr(connector, "http", None)
            if http is not None:
                http.close()
    return len(claimed), accepted


def send(write_back: WriteBack | int, connect: Callable | None = None) -> str:
    """Send this one write-back now if it is due or failed (a retry by hand); returns its
    status afterwards (unchanged when another sender holds it or it was accepted)."""
    pk = write_back if isinstance(write_back, int) else write_back.pk
    WriteBack.objects.filter(pk=pk, status=W.FAILED).update(next_attempt_at=timezone.now())
    claimed = _claim(ids=[pk], limit=1)
    if not claimed:
        return WriteBack.objects.get(pk=pk).status
    return _send_claimed(claimed[0], connect=connect, connectors={})


def retry_write_backs(ids) -> int:
    """Given-up (or failed) write-backs go back to the queue, due now, with a fresh count of
    attempts; returns how many. The verify-first rule still holds for them (``sent_at``)."""
    count = WriteBack.objects.filter(pk__in=list(ids), status__in=[W.GIVEN_UP, W.FAILED]).update(
        status=W.PENDING, attempts=0, next_attempt_at=timezone.now()
    )
    if count:
        from logistics import tasks

        transaction.on_commit(lambda: tasks.send_write_backs_task.delay(), robust=True)
    return count


# --- one write-back ------------------------------------------------------------------------------


def _send_claimed(wb: WriteBack, *, connect, connectors: dict) -> str:
    wb = WriteBack.objects.select_related("order__store").get(pk=wb.pk)
    attempt = wb.attempts
    if wb.order.origin != OrderOrigin.PLATFORM:
        # An after-sale's replacement order: the platform has no such order (``ship_parcels``
        # makes no write-back of it; its tracking goes through the after-sale). Never sent.
        WriteBack.objects.filter(pk=wb.pk, attempts=attempt, status=W.SENDING).update(
            status=W.GIVEN_UP,
            last_error="not a platform order: sent through its after-sale",
            next_attempt_at=None,
        )
        return W.GIVEN_UP
    store = wb.order.store
    connector = None
    try:
        connector = connectors.get(store.pk)
        if connector is None:
            connector = connectors[store.pk] = (connect or _default_connect)(store)
        if wb.sent_at is not None:  # an earlier attempt may have reached the platform
            if _platform_shows(wb, connector, attempt):
                return _finish(wb, attempt, W.ACCEPTED)
        if wb.sent_at is None:
            WriteBack.objects.filter(pk=wb.pk, attempts=attempt).update(sent_at=timezone.now())
            wb.sent_at = timezone.now()
        connector.ship(
            platform_order_id=wb.order.platform_order_id,
            parcels=[
                ShipmentParcel(
                    carrier_code=wb.carrier_code,
                    tracking_no=wb.tracking_no,
                    lines=tuple((str(line_id), int(qty)) for line_id, qty in wb.lines),
                )
            ],
            request_id=wb.key,
        )
    except TemporarilyUnavailable as exc:
        # Unknown outcome: the platform may have acted. Look before anything else.
        logger.warning("write-back %s: unknown outcome (%s); reading the platform's order", wb.key, exc)
        try:
            if connector is not None and wb.sent_at is not None and _platform_shows(wb, connector, attempt):
                return _finish(wb, attempt, W.ACCEPTED)
        except ChannelError as read_exc:
            logger.warning("write-back %s: reading the order failed too (%s)", wb.key, read_exc)
        return _failed(wb, attempt, f"unknown outcome, will check first: {exc}")
    except PlatformRejected as exc:
        try:
            if connector is not None and wb.sent_at is not None and _platform_shows(wb, connector, attempt):
                return _finish(wb, attempt, W.ACCEPTED)
        except ChannelError:
            pass
        return _failed(wb, attempt, f"rejected: {exc}")
    except RateLimited as exc:
        return _failed(wb, attempt, f"rate limited: {exc}", delay=timedelta(seconds=exc.retry_after))
    except AuthExpired as exc:
        return _failed(wb, attempt, f"shop authorisation: {exc}")
    except Exception as exc:  # a bug or an unexpected answer: visible and retried
        logger.exception("write-back %s failed", wb.key)
        return _failed(wb, attempt, f"{type(exc).__name__}: {exc}")
    status = _finish(wb, attempt, W.ACCEPTED)
    try:  # the platform's view beside ecbao's; its failure changes nothing
        _platform_shows(wb, connector, attempt)
    except ChannelError as exc:
        logger.info("write-back %s accepted; reading the platform's view failed (%s)", wb.key, exc)
    return status


def _platform_shows(wb: WriteBack, connector, attempt: int) -> bool:
    """Read the platform's order, keep its packages on the row; whether they list this
    write-back's tracking number."""
    order = connector.get_order(wb.order.platform_order_id)
    packages = [asdict(p) for p in order.packages]
    for p in packages:
        p["lines"] = [list(x) for x in p.get("lines") or ()]
    WriteBack.objects.filter(pk=wb.pk).update(platform_packages=packages, platform_checked_at=timezone.now())
    wb.platform_packages = packages
    return any(p.get("tracking_no") == wb.tracking_no for p in packages)


def _finish(wb: WriteBack, attempt: int, status: str) -> str:
    now = timezone.now()
    updated = WriteBack.objects.filter(pk=wb.pk, attempts=attempt, status=W.SENDING).update(
        status=status, accepted_at=now, last_error="", next_attempt_at=None
    )
    if not updated:
        logger.warning("write-back %s: claim %s lost before its outcome was written", wb.key, attempt)
        return WriteBack.objects.get(pk=wb.pk).status
    return status


def _failed(wb: WriteBack, attempt: int, error: str, *, delay: timedelta | None = None) -> str:
    given_up = attempt >= MAX_ATTEMPTS
    status = W.GIVEN_UP if given_up else W.FAILED
    WriteBack.objects.filter(pk=wb.pk, attempts=attempt, status=W.SENDING).update(
        status=status,
        last_error=error[:300],
        next_attempt_at=None if given_up else timezone.now() + (delay or _backoff(attempt)),
    )
    if given_up:
        logger.error("write-back %s given up after %s attempts: %s", wb.key, attempt, error)
    return status

"""Telling a supplier about new and cancelled dispatches: email and/or webhook (both optional,
``Supplier.notify_email`` / ``Supplier.webhook_url``). Sent by ``suppliers.tasks.notify_task``
after the commit that created or cancelled the dispatch, retried with backoff; the outcome is
on the dispatch (``notified_at``, ``notify_error``).

Only what the portal shows goes out: the supplier's codes, titles, quantities, the SLA and the
receiver's masks and region — never a ciphertext or plaintext of buyer data.

Webhook: ``POST`` JSON (UTF-8) to ``Supplier.webhook_url`` with the headers

- ``X-Ecbao-Event``: ``dispatch.created`` | ``dispatch.cancelled``
- ``X-Ecbao-Delivery``: ``<dispatch id>:<event>`` — the idempotency key: a retry carries the
  same one (the receiver drops repeats)
- ``X-Ecbao-Timestamp``: Unix seconds when signed
- ``X-Ecbao-Signature``: ``sha256=`` + hex HMAC-SHA256 under ``Supplier.webhook_secret`` of
  ``<timestamp>.<body>`` (the timestamp is signed too, so an old body cannot be replayed
  under a new time)

A 2xx answer is success; anything else (or no answer in 10 s) is an error that is retried.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
import time
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail
from django.utils import timezone, translation
from django.utils.translation import gettext

from orders.models import Order
from suppliers.dispatches import CANCELLED, CREATED
from suppliers.models import Dispatch

TIMEOUT = 10.0
DONE_TTL = 14 * 24 * 3600  # how long a channel remembers it delivered (covers every retry)


class NotifyError(Exception):
    """A channel failed; the task retries."""


def delivery_id(dispatch_id: int, event: str) -> str:
    return f"{dispatch_id}:{event}"


def payload(dispatch: Dispatch, event: str) -> dict:
    """What the supplier is told (masks only)."""
    lines = list(dispatch.lines.select_related("order_line__order", "sku").order_by("id"))
    orders = {row.order_line.order_id: row.order_line.order for row in lines}
    first: Order | None = next(iter(orders.values()), None)
    return {
        "event": event,
        "delivery": delivery_id(dispatch.pk, event),
        "dispatch": {
            "id": dispatch.pk,
            "status": dispatch.status,
            "supplier_code": dispatch.supplier.code,
            "orders": [o.platform_order_id for o in orders.values()],
            "ship_by": dispatch.ship_by.isoformat() if dispatch.ship_by else None,
            "sent_at": dispatch.sent_at.isoformat() if dispatch.sent_at else None,
            "cancelled_at": dispatch.cancelled_at.isoformat() if dispatch.cancelled_at else None,
            "cancel_reason": dispatch.cancel_reason,
            "goods_cost_fen": dispatch.goods_cost_fen,
            "freight_fen": dispatch.freight_fen,
            "lines": [
                {
                    "line_id": row.pk,
                    "supplier_code": row.supplier_code,
                    "merchant_code": row.sku.merchant_code if row.sku else row.order_line.merchant_code,
                    "title": row.order_line.title,
                    "spec": row.order_line.spec,
                    "quantity": row.quantity,
                    "unit_cost_fen": row.unit_cost_fen,
                    "delivery_deadline": row.delivery_deadline.isoformat() if row.delivery_deadline else None,
                }
                for row in lines
            ],
            "receiver": {
                "name": first.receiver_name_mask,
                "phone": first.receiver_phone_mask,
                "province": first.province,
                "city": first.city,
                "district": first.district,
                "address": first.receiver_address_mask,
            }
            if first
            else None,
        },
    }


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def _check_url(url: str) -> None:
    """http(s) only; a host inside private, loopback or link-local networks is refused unless
    ``SUPPLIER_WEBHOOK_ALLOW_PRIVATE`` (a merchant's URL must not reach ecbao's own network)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NotifyError(gettext("webhook URL must be http(s)"))
    if getattr(settings, "SUPPLIER_WEBHOOK_ALLOW_PRIVATE", False):
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise NotifyError(gettext("webhook host not found: %(error)s") % {"error": exc}) from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise NotifyError(gettext("webhook URL points into a private network"))


def send_webhook(dispatch: Dispatch, event: str) -> None:
    supplier = dispatch.supplier
    if not supplier.webhook_secret:
        raise NotifyError(gettext("the webhook has no signing key"))
    _check_url(supplier.webhook_url)
    body = json.dumps(payload(dispatch, event), ensure_ascii=False, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "ecbao-dispatch-webhook/1",
        "X-Ecbao-Event": event,
        "X-Ecbao-Delivery": delivery_id(dispatch.pk, event),
        "X-Ecbao-Timestamp": timestamp,
        "X-Ecbao-Signature": sign(supplier.webhook_secret, timestamp, body),
    }
    try:
        response = httpx.post(supplier.webhook_url, content=body, headers=headers, timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        raise NotifyError(gettext("webhook: %(error)s") % {"error": exc.__class__.__name__}) from exc
    if not 200 <= response.status_code < 300:
        raise NotifyError(gettext("webhook answered HTTP %(code)s") % {"code": response.status_code})


def send_email(dispatch: Dispatch, event: str) -> None:
    data = payload(dispatch, event)["dispatch"]
    with translation.override("zh-hans"):
        if event == CANCELLED:
            subject = gettext("Dispatch %(id)s cancelled: please intercept it") % {"id": dispatch.pk}
            intro = gettext(
                "The order was cancelled before shipment (%(why)s). Stop the parcel and confirm in the portal."
            ) % {"why": dispatch.cancel_reason}
        else:
            subject = gettext("New dispatch %(id)s") % {"id": dispatch.pk}
            intro = gettext("A new dispatch is waiting for you in the supplier portal.")
        lines = "\n".join(
            f"  {row['supplier_code'] or row['merchant_code']}  {row['title']} {row['spec']} × {row['quantity']}"
            for row in data["lines"]
        )
        ship_by = timezone.localtime(dispatch.ship_by).strftime("%Y-%m-%d %H:%M") if dispatch.ship_by else "—"
        receiver = data["receiver"] or {}
        body = "\n".join(
            [
                intro,
                "",
                gettext("Orders: %(orders)s") % {"orders": ", ".join(data["orders"])},
                gettext("Ship by: %(at)s") % {"at": ship_by},
                gettext("Receiver: %(name)s %(phone)s %(region)s")
                % {
                    "name": receiver.get("name", ""),
                    "phone": receiver.get("phone", ""),
                    "region": " ".join(
                        filter(
                            None, [receiver.get("province"), receiver.get("city"), receiver.get("district")]
                        )
                    ),
                },
                "",
                lines,
            ]
        )
    try:
        send_mail(subject, body, None, [dispatch.supplier.notify_email])
    except Exception as exc:  # any transport error: retried
        raise NotifyError(gettext("email: %(error)s") % {"error": exc.__class__.__name__}) from exc


def _done_key(dispatch_id: int, event: str, channel: str) -> str:
    return f"suppliers:notified:{dispatch_id}:{event}:{channel}"


def notify(dispatch_id: int, event: str) -> bool:
    """Send ``event`` of one dispatch through the supplier's channels. Each channel that
    succeeded is remembered (a retry does not send it again); when all did, ``notified_at`` is
    set and ``notify_error`` cleared. A failure is written to ``notify_error`` and raised as
    ``NotifyError`` (the task retries). Returns False when there was nothing (more) to send:
    already notified, or a "created" notice overtaken by the cancellation."""
    if event not in (CREATED, CANCELLED):
        raise ValueError(event)
    dispatch = Dispatch.objects.select_related("supplier").filter(pk=dispatch_id).first()
    if dispatch is None or dispatch.notified_at is not None:
        return False
    cancelled = dispatch.status in (Dispatch.Status.CANCELLING, Dispatch.Status.CANCELLED)
    if cancelled != (event == CANCELLED):
        return False
    supplier = dispatch.supplier
    errors = []
    for channel, wanted, send in (
        ("webhook", bool(supplier.webhook_url), send_webhook),
        ("email", bool(supplier.notify_email), send_email),
    ):
        key = _done_key(dispatch.pk, event, channel)
        if not wanted or cache.get(key):
            continue
        try:
            send(dispatch, event)
        except NotifyError as exc:
            errors.append(str(exc))
        else:
            cache.set(key, 1, DONE_TTL)
    if errors:
        Dispatch.objects.filter(pk=dispatch.pk).update(notify_error="; ".join(errors)[:300])
        raise NotifyError("; ".join(errors))
    Dispatch.objects.filter(pk=dispatch.pk, notified_at__isnull=True).update(
        notified_at=timezone.now(), notify_error=""
    )
    return True

"""The merchant's answers to after-sales, sent through the platform's API (售后处理).

Every answer is one ``AfterSaleAction`` whose ``key`` names the after-sale, the kind of answer,
the version of the after-sale it was given on (``platform_version``, else the snapshot) and, for
a refusal, the reason code: a double click or an API retry finds the same row and sends nothing
again. The action is then sent by the connector (``channels.services.connector_for``):

- the platform took it → DONE, a timeline event, the queue moved optimistically (the platform's
  next version, read again at once with ``get_after_sale``, corrects it);
- the platform refused (``PlatformRejected``) → FAILED with the platform's message, shown on the
  after-sale (``last_error``) and retryable (``retry``);
- Douyin's version guard (code ``stale_version``): the after-sale changed on the platform since
  it was shown. It is read again and the merchant is told; nothing is resent blindly;
- WeChat's one refund call per order per minute (``RateLimited``) → PENDING with ``not_before``
  and a Celery task that sends it then (tenant-aware: it runs in the schema it was sent from);
- no answer (``TemporarilyUnavailable`` / other ``ChannelError``): the platform may have acted.
  PENDING, retried by the beat sweep (``send_due``) with backoff; before any further attempt
  the platform's after-sale is read, and an action whose step the platform already passed is
  DONE without a second call.

**Never twice.** An action is claimed before it is sent (row lock with SKIP LOCKED, attempt
number bumped, a lease in ``not_before``); its outcome is written only while that claim holds.
``params["sent"]`` marks that a request may have reached the platform.

Permissions are the views' and the API's business, not these services'.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from datetime import timedelta

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from aftersales.models import AfterSale, AfterSaleAction
from channels.errors import (
    AuthExpired,
    ChannelError,
    NotSupported,
    PlatformRejected,
    RateLimited,
)
from channels.types import AfterSaleStatus, RejectReason, ReturnAddress

logger = logging.getLogger(__name__)

Q_ = AfterSale.Queue
K = AfterSaleAction.Kind
S = AfterSaleAction.Status
T = AfterSale.Type

MAX_ATTEMPTS = 8
LEASE = timedelta(minutes=2)  # a claimed action is claimed again after this (its sender died)
CACHE_SECONDS = 3600
STALE_VERSION = "stale_version"

#: the queues in which each answer makes sense
ALLOWED = {
    K.APPROVE: {Q_.PENDING},
    K.REJECT: {Q_.PENDING, Q_.AWAITING_RECEIPT},
    K.CONFIRM_RECEIPT: {Q_.AWAITING_RECEIPT},
    K.INTERCEPT: {Q_.PENDING, Q_.AWAITING_RETURN, Q_.AWAITING_RECEIPT, Q_.AWAITING_REFUND, Q_.DONE},
    K.RESHIP: {Q_.PENDING, Q_.AWAITING_RETURN, Q_.AWAITING_RECEIPT, Q_.AWAITING_REFUND},
}

#: the platform's statuses that show an answer already took effect
_PAST = {
    K.APPROVE: {
        AfterSaleStatus.WAITING_BUYER_RETURN,
        AfterSaleStatus.WAITING_MERCHANT_RECEIPT,
        AfterSaleStatus.REFUNDING,
        AfterSaleStatus.SUCCEEDED,
    },
    K.REJECT: {AfterSaleStatus.REJECTED},  # closed by the buyer or a timer is not our refusal
    K.CONFIRM_RECEIPT: {AfterSaleStatus.REFUNDING, AfterSaleStatus.SUCCEEDED},
    K.RESHIP: {AfterSaleStatus.SUCCEEDED},
}

_RETURN_TYPES = {T.RETURN_REFUND, T.EXCHANGE}


def _kind_label(kind: str) -> str:
    return {
        K.APPROVE: _("approve"),
        K.REJECT: _("refuse"),
        K.CONFIRM_RECEIPT: _("confirm the return"),
        K.INTERCEPT: _("intercept"),
        K.RESHIP: _("send the replacement"),
    }.get(kind, kind)


# --- the answers ----------------------------------------------------------------------------------


def approve(
    after_sale, *, actor=None, return_address_id: str = "", source: str = "merchant"
) -> AfterSaleAction:
    """First approval: a refund is paid; a return or exchange waits for the buyer's parcel (with
    the return address: the one chosen, else the shop's default)."""
    after_sale = _fresh(after_sale)

    def params() -> dict:
        address = return_address_id
        if after_sale.type in _RETURN_TYPES and not address:
            address = _default_address(after_sale.store)
        return {"return_address_id": address}

    return _submit(after_sale, K.APPROVE, actor=actor, source=source, params=params)


def reject(after_sale, *, actor=None, reason_code: str, reason: str = "", evidence=()) -> AfterSaleAction:
    """Refuse (first, or after the goods came back) with a reason code the platform accepts."""
    after_sale = _fresh(after_sale)
    reason_code = (reason_code or "").strip()

    def params() -> dict:
        if not reason_code:
            raise ValidationError(_("Choose a reason for the refusal."))
        try:
            reasons = reject_reasons(after_sale.store)
        except ChannelError as exc:
            logger.info(
                "reject reasons of store %s unavailable (%s): code sent as chosen", after_sale.store_id, exc
            )
            reasons = []
        chosen = next((r for r in reasons if r.code == reason_code), None)
        if reasons and chosen is None:
            raise ValidationError(_("The platform does not accept this refusal reason."))
        proofs = [str(e) for e in evidence or () if e]
        if chosen is not None and chosen.needs_evidence and not proofs:
            raise ValidationError(_("This refusal reason needs evidence (images)."))
        return {
            "reason_code": reason_code,
            "reason": reason or (chosen.text if chosen else ""),
            "evidence": proofs,
        }

    return _submit(after_sale, K.REJECT, actor=actor, params=params, key_extra=reason_code)


def confirm_receipt(after_sale, *, actor=None) -> AfterSaleAction:
    """The returned goods arrived: second approval, the platform pays the refund."""
    return _submit(_fresh(after_sale), K.CONFIRM_RECEIPT, actor=actor)


def ship_replacement(after_sale, *, carrier_code: str, tracking_no: str) -> AfterSaleAction:
    """Send an exchange's (or reissue's) replacement tracking number to the platform."""
    after_sale = _fresh(after_sale)
    if after_sale.type not in (T.EXCHANGE, T.RESHIP):
        raise ValidationError(_("Only an exchange or a reissue has a replacement to send."))
    if not carrier_code or not tracking_no:
        raise ValidationError(_("A carrier and a tracking number are needed."))
    return _submit(
        after_sale,
        K.RESHIP,
        params=lambda: {"carrier_code": carrier_code, "tracking_no": tracking_no},
        key_extra=f"{carrier_code}:{tracking_no}",
        versioned=False,
    )


def intercept(after_sale, *, actor=None) -> list[AfterSaleAction]:
    """Stop every shipped parcel of the after-sale's lines still on its way: Douyin's intercept
    API (its cost kept in ``result``); elsewhere a logistics intercept request (the carrier or,
    for a supplier's dispatch, the supplier is asked)."""
    from logistics.models import Parcel
    from logistics.tracking import FINAL, carrier_code

    after_sale = _fresh(after_sale)
    _check(after_sale, K.INTERCEPT)
    line_ids = list(after_sale.lines.exclude(order_line=None).values_list("order_line_id", flat=True))
    if not line_ids and after_sale.order_id:
        line_ids = list(after_sale.order.lines.values_list("id", flat=True))
    parcels = list(
        Parcel.objects.filter(status=Parcel.Status.SHIPPED, lines__order_line_id__in=line_ids)
        .exclude(tracking_status__in=FINAL)
        .exclude(tracking_no="")
        .distinct()
        .order_by("id")
    )
    if not parcels:
        raise ValidationError(_("No shipped parcel of this after-sale is still on its way."))
    actions = []
    for parcel in parcels:
        params = {
            "parcel_id": parcel.pk,
            "tracking_no": parcel.tracking_no,
            "carrier_code": carrier_code(parcel),
        }
        actions.append(
            _submit(
                after_sale,
                K.INTERCEPT,
                actor=actor,
                params=lambda values=params: values,
                key_extra=str(parcel.pk),
                versioned=False,
            )
        )
    return actions


def retry(action, *, actor=None) -> AfterSaleAction:
    """Send a failed (or waiting) action again, on the after-sale as it is now. A DONE action is
    returned as it is."""
    action = AfterSaleAction.objects.select_related("after_sale").get(pk=action.pk)
    if action.status == S.DONE:
        return action
    after_sale = action.after_sale
    _check(after_sale, action.kind)
    params = {**action.params, "version": after_sale.platform_version}
    if action.status == S.FAILED:
        count = AfterSaleAction.objects.filter(pk=action.pk, status=S.FAILED).update(
            status=S.PENDING,
            not_before=None,
            error="",
            params=params,
            attempts=0,
            actor=actor or action.actor,
        )
    else:  # waiting after no answer or a rate limit (an action being sent right now has no error)
        count = (
            AfterSaleAction.objects.filter(pk=action.pk, status=S.PENDING)
            .exclude(error="")
            .update(not_before=None, params=params)
        )
    if count:
        _record(after_sale, "action_retry", _("Sent again: %(kind)s") % {"kind": _kind_label(action.kind)},
                source="merchant" if actor else "system", actor=actor, data={"action": action.pk})  # fmt: skip
    return send(action.pk)


def bulk_approve(ids: Iterable[int], *, actor) -> dict:
    """Approve the ticked after-sales one by one: {"approved": [action ids], "refused": [(id, why)]}.
    One that cannot be approved (wrong queue, platform refusal) is listed with the reason and
    does not stop the others."""
    approved: list[int] = []
    refused: list[tuple[int, str]] = []
    wanted = [int(i) for i in dict.fromkeys(ids)]
    found = {a.pk: a for a in AfterSale.objects.filter(pk__in=wanted).select_related("store")}
    for pk in wanted:
        after_sale = found.get(pk)
        if after_sale is None:
            refused.append((pk, _("No such after-sale.")))
            continue
        try:
            action = approve(after_sale, actor=actor)
        except ValidationError as exc:
            refused.append((pk, " ".join(exc.messages)))
            continue
        if action.status == S.FAILED:
            refused.append((pk, action.error))
        else:
            approved.append(action.pk)
    return {"approved": approved, "refused": refused}


# --- what a refusal / an approval may name -------------------------------------------------------


def _cache_key(kind: str, store) -> str:
    # django-tenants' KEY_FUNCTION puts the schema in front: one tenant never reads another's
    return f"aftersales:{kind}:{store.pk}"


def reject_reasons(store) -> list[RejectReason]:
    """The refusal reasons the platform accepts for ``store`` (cached an hour per shop). A
    platform without a list gives []."""
    cached = cache.get(_cache_key("reject_reasons", store))
    if cached is not None:
        return [RejectReason(**r) for r in cached]
    from channels.services import connector_for

    connector = connector_for(store)
    try:
        reasons = list(connector.after_sale_reject_reasons())
    except NotSupported:
        reasons = []
    finally:
        _close(connector)
    cache.set(
        _cache_key("reject_reasons", store),
        [{"code": r.code, "text": r.text, "needs_evidence": r.needs_evidence} for r in reasons],
        CACHE_SECONDS,
    )
    return reasons


def return_addresses(store) -> list[ReturnAddress]:
    """The shop's return addresses on the platform (cached an hour per shop)."""
    cached = cache.get(_cache_key("return_addresses", store))
    if cached is not None:
        return [ReturnAddress(**a) for a in cached]
    from channels.services import connector_for

    connector = connector_for(store)
    try:
        addresses = list(connector.return_addresses())
    except NotSupported:
        addresses = []
    finally:
        _close(connector)
    cache.set(
        _cache_key("return_addresses", store),
        [{"id": a.id, "text": a.text, "is_default": a.is_default} for a in addresses],
        CACHE_SECONDS,
    )
    return addresses


def _default_address(store) -> str:
    try:
        addresses = return_addresses(store)
    except ChannelError as exc:
        logger.info("return addresses of store %s unavailable (%s): the platform's default", store.pk, exc)
        return ""
    chosen = next((a for a in addresses if a.is_default), addresses[0] if addresses else None)
    return chosen.id if chosen else ""


# --- submitting and sending ----------------------------------------------------------------------


def _fresh(after_sale) -> AfterSale:
    pk = after_sale.pk if isinstance(after_sale, AfterSale) else int(after_sale)
    return AfterSale.objects.select_related("store").get(pk=pk)


def _check(after_sale: AfterSale, kind: str) -> None:
    if after_sale.queue not in ALLOWED[kind]:
        raise ValidationError(
            _("Cannot %(kind)s an after-sale in “%(queue)s”.")
            % {"kind": _kind_label(kind), "queue": after_sale.get_queue_display()}
        )


def action_key(after_sale: AfterSale, kind: str, *, key_extra: str = "", versioned: bool = True) -> str:
    version = (after_sale.platform_version or f"s{after_sale.snapshot_id or 0}") if versioned else ""
    return ":".join(p for p in (str(after_sale.pk), kind, version, key_extra) if p)[:120]


def _submit(
    after_sale: AfterSale,
    kind: str,
    *,
    actor=None,
    source: str = "merchant",
    params=None,
    key_extra: str = "",
    versioned: bool = True,
) -> AfterSaleAction:
    """The action of this key: the one given already (a repeat: returned as it is; a refused
    one is sent again), else a new one — allowed by the queue, ``params()`` validated — sent now."""
    key = action_key(after_sale, kind, key_extra=key_extra, versioned=versioned)
    existing = AfterSaleAction.objects.filter(key=key).first()
    if existing is not None:
        if existing.status == S.FAILED:  # asked again after a refusal: that is a retry
            return retry(existing, actor=actor)
        return existing
    _check(after_sale, kind)
    values = {**(params() if params else {}), "version": after_sale.platform_version, "source": source}
    try:
        with transaction.atomic():
            created = AfterSaleAction.objects.create(
                after_sale=after_sale, kind=kind, key=key, params=values, actor=actor
            )
    except IntegrityError:  # the same answer given at the same moment elsewhere
        return AfterSaleAction.objects.get(key=key)
    return send(created.pk)


def _claim(pk: int | None = None, *, limit: int = 1) -> list[AfterSaleAction]:
    """Claim due PENDING actions: attempt + 1, a lease in ``not_before``."""
    now = timezone.now()
    with transaction.atomic():
        rows = AfterSaleAction.objects.select_for_update(skip_locked=True).filter(
            Q(not_before__isnull=True) | Q(not_before__lte=now), status=S.PENDING
        )
        if pk is not None:
            rows = rows.filter(pk=pk)
        claimed = list(rows.order_by("not_before", "id")[:limit])
        for action in claimed:
            action.attempts += 1
            action.not_before = now + LEASE
            action.error = ""  # in flight: a PENDING action with an error is one waiting
        AfterSaleAction.objects.bulk_update(claimed, ["attempts", "not_before", "error"])
    return claimed


def send(pk: int, *, connect=None) -> AfterSaleAction:
    """Send one action now if it is due; returns it as it is afterwards (unchanged when another
    sender holds it, it waits for its time, or it is done)."""
    for action in _claim(pk):
        _send_claimed(action, connect=connect)
    return AfterSaleAction.objects.get(pk=pk)


def send_due(*, limit: int = 50, connect=None) -> int:
    """The sweep (beat): send the PENDING actions whose time came; returns how many were claimed."""
    total = 0
    while True:
        claimed = _claim(limit=limit)
        for action in claimed:
            try:
                _send_claimed(action, connect=connect)
            except Exception:  # one broken action must not stop the sweep; it stays PENDING
                logger.exception("after-sale action %s failed to send", action.pk)
        total += len(claimed)
        if len(claimed) < limit:
            return total


def _connector(store, connect):
    """The shop's connector; a rate limit is not slept out in the merchant's request (the action
    waits for its time instead: ``_later``)."""
    if connect is not None:
        return connect(store)
    from channels.connectors.base import RetryPolicy
    from channels.services import connector_for

    return connector_for(store, retry=RetryPolicy(rate_limit_attempts=1))


def _close(connector) -> None:
    http = getattr(connector, "http", None)
    if http is not None:
        http.close()


def _send_claimed(action: AfterSaleAction, *, connect=None) -> None:
    connectors: list = []
    try:
        _send_one(
            action, connect=lambda store: connectors.append(_connector(store, connect)) or connectors[-1]
        )
    finally:
        for connector in connectors:
            _close(connector)


def _send_one(action: AfterSaleAction, *, connect) -> None:
    action = AfterSaleAction.objects.select_related("after_sale__store").get(pk=action.pk)
    after_sale = action.after_sale
    attempt = action.attempts
    connector = None
    try:
        connector = connect(after_sale.store)
        if action.params.get("sent") and action.kind in _PAST:  # an earlier attempt may have acted
            platform = _read_back(after_sale, connector)
            if platform is not None and platform.status in _PAST[action.kind]:
                _done(action, attempt, {"seen_on_platform": platform.status.value}, read_back=False)
                return
        params = {**action.params, "sent": True}
        AfterSaleAction.objects.filter(pk=action.pk, attempts=attempt).update(params=params)
        action.params = params
        result = _call(connector, action, after_sale)
    except PlatformRejected as exc:
        if exc.code == STALE_VERSION:
            _stale(action, attempt, connector, exc)
            return
        if connector is not None:  # a refusal: show the platform's truth (an earlier attempt that
            _read_back(after_sale, connector)  # went through was seen before sending, above)
        _failed(action, attempt, exc.platform_message or str(exc), code=exc.code)
        return
    except RateLimited as exc:
        _later(action, attempt, timedelta(seconds=max(1.0, exc.retry_after)), str(exc), rate_limited=True)
        return
    except NotSupported as exc:
        if action.kind == K.INTERCEPT:
            _intercept_elsewhere(action, attempt)
            return
        _failed(action, attempt, _("The platform does not support this: %(e)s") % {"e": exc})
        return
    except AuthExpired as exc:
        _failed(
            action,
            attempt,
            _("The shop's authorisation expired; connect the shop again (%(e)s).") % {"e": exc},
        )
        return
    except ChannelError as exc:  # no answer: the platform may have acted
        logger.warning("after-sale action %s: unknown outcome (%s)", action.key, exc)
        if action.kind in _PAST and connector is not None:
            platform = _read_back(after_sale, connector)
            if platform is not None and platform.status in _PAST[action.kind]:
                _done(action, attempt, {"seen_on_platform": platform.status.value}, read_back=False)
                return
        if attempt >= MAX_ATTEMPTS:
            _failed(
                action,
                attempt,
                _("No answer from the platform after %(n)s tries: %(e)s") % {"n": attempt, "e": exc},
            )
        else:
            _later(action, attempt, _backoff(attempt), str(exc))
        return
    if action.kind == K.INTERCEPT and result is not None and not result.get("accepted", True):
        _failed(
            action,
            attempt,
            result.get("reason") or _("The platform refused to intercept the parcel."),
            result=result,
        )
        return
    _done(action, attempt, result or {}, connector=connector)


def _call(connector, action: AfterSaleAction, after_sale: AfterSale) -> dict | None:
    p = action.params
    ids = {"platform_after_sale_id": after_sale.platform_after_sale_id}
    order_ids = {**ids, "platform_order_id": after_sale.platform_order_id}
    version = after_sale.platform_version
    if action.kind == K.APPROVE:
        connector.approve_after_sale(
            **order_ids, version=version, return_address_id=p.get("return_address_id") or ""
        )
    elif action.kind == K.REJECT:
        connector.reject_after_sale(
            **order_ids,
            version=version,
            reason_code=p["reason_code"],
            reason=p.get("reason") or "",
            evidence=tuple(p.get("evidence") or ()),
        )
    elif action.kind == K.CONFIRM_RECEIPT:
        connector.confirm_return_received(**order_ids, version=version)
    elif action.kind == K.RESHIP:
        connector.ship_exchange(
            **order_ids, carrier_code=p["carrier_code"], tracking_no=p["tracking_no"], version=version
        )
    elif action.kind == K.INTERCEPT:
        res = connector.intercept_parcel(**ids, carrier_code=p["carrier_code"], tracking_no=p["tracking_no"])
        return {"accepted": res.accepted, "cost_fen": res.cost_fen, "reason": res.reason, "via": "platform"}
    return None


def _backoff(attempts: int) -> timedelta:
    delay = min(3600.0, 30.0 * 2 ** max(0, attempts - 1))
    return timedelta(seconds=delay * random.uniform(0.5, 1.0))  # noqa: S311 (jitter, not secrets)


# --- outcomes ------------------------------------------------------------------------------------


#: where an answer moves the queue until the platform's next version says
def _optimistic_queue(after_sale: AfterSale, kind: str) -> str | None:
    if kind == K.APPROVE:
        return Q_.AWAITING_RETURN if after_sale.type in _RETURN_TYPES else Q_.AWAITING_REFUND
    if kind == K.REJECT:
        return Q_.CLOSED
    if kind == K.CONFIRM_RECEIPT:
        return Q_.AWAITING_REFUND
    return None


def _done(
    action: AfterSaleAction, attempt: int, result: dict, *, connector=None, read_back: bool = True
) -> None:
    now = timezone.now()
    with transaction.atomic():
        updated = AfterSaleAction.objects.filter(pk=action.pk, attempts=attempt, status=S.PENDING).update(
            status=S.DONE, result={**result, "done_at": now.isoformat()}, error="", not_before=None
        )
        if not updated:
            logger.warning(
                "after-sale action %s: claim %s lost before its outcome was written", action.key, attempt
            )
            return
        after_sale = AfterSale.objects.select_for_update().get(pk=action.after_sale_id)
        fields = ["last_error"]
        after_sale.last_error = ""
        queue = _optimistic_queue(after_sale, action.kind)
        if queue and after_sale.queue in ALLOWED.get(action.kind, ()):
            after_sale.queue = queue
            fields.append("queue")
        after_sale.save(update_fields=[*fields, "updated_at"])
        message = _("Done on the platform: %(kind)s") % {"kind": _kind_label(action.kind)}
        if action.kind == K.INTERCEPT:
            message = _("Intercept of parcel %(no)s accepted by the platform (cost %(cost)s yuan)") % {
                "no": action.params.get("tracking_no", ""),
                "cost": f"{int(result.get('cost_fen') or 0) / 100:.2f}",
            }
        elif action.kind == K.REJECT:
            message = _("Refused on the platform: %(reason)s") % {
                "reason": action.params.get("reason") or action.params.get("reason_code")
            }
        _record(
            after_sale,
            f"action_{action.kind}",
            message,
            source=action.params.get("source") or ("merchant" if action.actor_id else "system"),
            actor=action.actor,
            data={"action": action.pk, **{k: v for k, v in result.items() if k != "done_at"}},
        )
    if read_back and connector is not None:
        _read_back(after_sale, connector)


def _failed(action: AfterSaleAction, attempt: int, error: str, *, code: str = "", result=None) -> None:
    with transaction.atomic():
        fields = {"status": S.FAILED, "error": error[:500], "not_before": None}
        if result is not None:
            fields["result"] = result
        updated = AfterSaleAction.objects.filter(pk=action.pk, attempts=attempt, status=S.PENDING).update(
            **fields
        )
        if not updated:
            return
        after_sale = AfterSale.objects.get(pk=action.after_sale_id)
        message = _("The platform refused to %(kind)s: %(error)s") % {
            "kind": _kind_label(action.kind),
            "error": error,
        }
        AfterSale.objects.filter(pk=after_sale.pk).update(last_error=message[:300], updated_at=timezone.now())
        _record(
            after_sale,
            "action_failed",
            message[:500],
            source="system",
            actor=action.actor,
            data={"action": action.pk, "code": code},
        )


def _later(
    action: AfterSaleAction, attempt: int, delay: timedelta, error: str, *, rate_limited: bool = False
) -> None:
    when = timezone.now() + delay
    updated = AfterSaleAction.objects.filter(pk=action.pk, attempts=attempt, status=S.PENDING).update(
        not_before=when, error=error[:500]
    )
    if not updated:
        return
    after_sale = AfterSale.objects.get(pk=action.after_sale_id)
    if rate_limited:
        message = _(
            "The platform allows one call per order per minute: %(kind)s will be sent at %(when)s"
        ) % {
            "kind": _kind_label(action.kind),
            "when": timezone.localtime(when).strftime("%H:%M:%S"),
        }
        from aftersales import tasks_actions

        seconds = max(1, int(delay.total_seconds() + 0.999))
        transaction.on_commit(
            lambda: tasks_actions.send_action_task.apply_async((action.pk,), countdown=seconds), robust=True
        )
    else:
        message = _("No answer from the platform; %(kind)s will be tried again") % {
            "kind": _kind_label(action.kind)
        }
    _record(after_sale, "action_waiting", message, source="system", data={"action": action.pk})


def _stale(action: AfterSaleAction, attempt: int, connector, exc: PlatformRejected) -> None:
    """Douyin refused because the after-sale changed since it was read: read it again (ecbao
    shows the platform's truth) and tell the merchant; the action is not resent."""
    after_sale = action.after_sale
    platform = _read_back(after_sale, connector) if connector is not None else None
    message = _("The after-sale changed on the platform since it was shown; check it again and answer anew.")
    if platform is not None:
        _apply_version(after_sale, platform)
    _failed(action, attempt, message, code=STALE_VERSION)


def _apply_version(after_sale: AfterSale, platform) -> None:
    """Keep the version just read on our row so the next answer carries it (ingestion
    — h-core — brings the rest)."""
    if platform.version and platform.version != after_sale.platform_version:
        AfterSale.objects.filter(pk=after_sale.pk).update(platform_version=platform.version[:32])


def _read_back(after_sale: AfterSale, connector):
    """Read the after-sale from the platform and store that version (source "pull"): its
    ingestion follows on commit. None when it cannot be read now."""
    from channels.services import store_after_sale_version

    try:
        platform = connector.get_after_sale(after_sale.platform_after_sale_id)
        store_after_sale_version(store=after_sale.store, after_sale=platform, source="pull")
    except (ChannelError, NotImplementedError) as exc:
        logger.info("after-sale %s: reading it back failed (%s)", after_sale.pk, exc)
        return None
    return platform


def _intercept_elsewhere(action: AfterSaleAction, attempt: int) -> None:
    """No intercept API on this platform: a logistics intercept request (the carrier is asked;
    for a supplier's dispatch the supplier, who sees it in the portal)."""
    from logistics.models import Parcel
    from logistics.tracking import request_intercept

    after_sale = action.after_sale
    parcel = Parcel.objects.select_related("fulfilment").get(pk=action.params["parcel_id"])
    order = after_sale.order
    result = {"via": "logistics", "accepted": True}
    try:
        if order is not None:
            result["intercept_id"] = request_intercept(
                parcel,
                order,
                actor=action.actor,
                reason=_("After-sale %(id)s") % {"id": after_sale.platform_after_sale_id},
            ).pk
    except ValueError as exc:
        _failed(action, attempt, str(exc))
        return
    dispatch = getattr(parcel.fulfilment, "dispatch", None) if parcel.fulfilment_id else None
    supplier_id = after_sale.supplier_id or (dispatch.supplier_id if dispatch is not None else None)
    if supplier_id:
        result["supplier_asked"] = supplier_id
    with transaction.atomic():
        updated = AfterSaleAction.objects.filter(pk=action.pk, attempts=attempt, status=S.PENDING).update(
            status=S.DONE, result=result, error="", not_before=None
        )
        if not updated:
            return
        if supplier_id:
            message = _("Intercept of parcel %(no)s requested; the supplier is asked to stop it") % {
                "no": parcel.tracking_no
            }
        else:
            message = _("Intercept of parcel %(no)s requested from the carrier (no platform API)") % {
                "no": parcel.tracking_no
            }
        _record(after_sale, "action_intercept", message, source="merchant" if action.actor_id else "system",
                actor=action.actor, data={"action": action.pk, **result})  # fmt: skip


def _record(after_sale, kind: str, message: str, *, source: str = "system", actor=None, data=None):
    from aftersales.services import record

    return record(after_sale, kind, message, source=source, actor=actor, data=data or {})

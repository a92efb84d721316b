"""The supplier's side of an after-sale on its dispatch ("straight to the shipper").

An after-sale whose lines a supplier shipped (``AfterSale.supplier`` / ``dispatch``, set at
ingestion) appears in that supplier's portal (``aftersales.portal``). The supplier answers:

- 已拦截 / 无法拦截 — a refund before shipment (or an intercept request): the parcel was
  stopped, or had already left. On a dispatch still waiting for its cancellation to be
  confirmed (CANCELLING) the answer confirms it (``suppliers.dispatches.confirm_cancel``).
- 已收到退货 — the return came back to the supplier (good / defective pieces per line are
  kept in the event's data); the merchant then confirms at the platform.
- 拒绝 — with a note and evidence (images or PDF, kept in the tenant's file storage).

The merchant sees the answer on the after-sale and decides. An answer given twice is one
event. Nothing here holds buyer data: the supplier sees masks only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mimetypes
import time
import uuid
from dataclasses import dataclass

import httpx
from celery import shared_task
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone, translation
from django.utils.translation import gettext, gettext_lazy

from aftersales.models import AfterSale, AfterSaleEvent
from suppliers import dispatches, notify
from suppliers.models import Dispatch, DispatchLine, Supplier

log = logging.getLogger(__name__)

A = AfterSale.SupplierAnswer
T = AfterSale.Type
Q_ = AfterSale.Queue

EVENT = "after_sale"  # the webhook's event name (X-Ecbao-Event) and the email's subject
MAX_EVIDENCE = 6
MAX_EVIDENCE_BYTES = 5 * 1024 * 1024
#: accepted evidence: content type → (file suffix, magic bytes at the start)
EVIDENCE_TYPES = {
    "image/jpeg": (".jpg", (b"\xff\xd8\xff",)),
    "image/png": (".png", (b"\x89PNG\r\n\x1a\n",)),
    "image/webp": (".webp", (b"RIFF",)),
    "image/gif": (".gif", (b"GIF87a", b"GIF89a")),
    "application/pdf": (".pdf", (b"%PDF-",)),
}
INTERCEPT_TYPES = (T.REFUND_UNSHIPPED, T.REFUND_SHIPPED)
RETURN_TYPES = (T.RETURN_REFUND, T.EXCHANGE)
#: timeline kinds a supplier sees besides its own answers and the platform's changes
SUPPLIER_KINDS = ("created", "supplier_answer", "supplier_notified", "return_shipped", "intercept")

TAB_WAITING, TAB_ANSWERED, TAB_ALL = "waiting", "answered", "all"
TABS = (
    (TAB_WAITING, gettext_lazy("To handle")),  # 待处理
    (TAB_ANSWERED, gettext_lazy("Handled")),  # 已处理
    (TAB_ALL, gettext_lazy("All")),  # 全部
)
TAB_VALUES = [value for value, _label in TABS]


# --- what waits for the supplier ----------------------------------------------------------------------------


def _intercept_q() -> Q:
    """A refund before shipment on a dispatch not yet confirmed cancelled, or any after-sale
    whose dispatch waits for the supplier's interception answer."""
    return Q(dispatch__status=Dispatch.Status.CANCELLING) | (
        Q(type=T.REFUND_UNSHIPPED) & ~Q(dispatch__status=Dispatch.Status.CANCELLED)
    )


def _return_q() -> Q:
    """A return on its way to the supplier (the buyer sent it back)."""
    return Q(type__in=RETURN_TYPES) & (
        Q(queue=Q_.AWAITING_RECEIPT) | (Q(queue=Q_.AWAITING_RETURN) & ~Q(return_tracking_no=""))
    )


def waiting_q() -> Q:
    """待处理: needs the supplier's answer (请确认拦截 or 待收货) and has none yet."""
    return Q(supplier_answer="") & ~Q(queue=Q_.CLOSED) & (_intercept_q() | _return_q())


def of_supplier(supplier: Supplier | int) -> QuerySet[AfterSale]:
    """Every after-sale on the supplier's dispatches (the only ones its portal may name)."""
    supplier_id = supplier if isinstance(supplier, int) else supplier.pk
    return AfterSale.objects.filter(supplier_id=supplier_id)


def tab(qs: QuerySet[AfterSale], value: str) -> QuerySet[AfterSale]:
    if value == TAB_WAITING:
        return qs.filter(waiting_q())
    if value == TAB_ANSWERED:
        return qs.exclude(supplier_answer="")
    return qs


def waiting_count(supplier: Supplier | int | None) -> int:
    """The portal's 售后 badge: after-sales waiting for this supplier's answer."""
    if supplier is None:
        return 0
    return of_supplier(supplier).filter(waiting_q()).count()


def tab_counts(supplier: Supplier) -> dict[str, int]:
    qs = of_supplier(supplier)
    return {value: tab(qs, value).count() for value in TAB_VALUES}


def needs(after_sale: AfterSale) -> str:
    """What the supplier is asked: "intercept" (请确认拦截), "receipt" (待收货) or ""."""
    if after_sale.supplier_answer or after_sale.queue == Q_.CLOSED:
        return ""
    dispatch_status = after_sale.dispatch.status if after_sale.dispatch_id else ""
    if dispatch_status == Dispatch.Status.CANCELLING or (
        after_sale.type == T.REFUND_UNSHIPPED and dispatch_status != Dispatch.Status.CANCELLED
    ):
        return "intercept"
    if after_sale.type in RETURN_TYPES and (
        after_sale.queue == Q_.AWAITING_RECEIPT
        or (after_sale.queue == Q_.AWAITING_RETURN and after_sale.return_tracking_no)
    ):
        return "receipt"
    return ""


def allowed_answers(after_sale: AfterSale) -> list[str]:
    """The answers the form offers for this after-sale (拒绝 always)."""
    answers = []
    cancelling = after_sale.dispatch_id and after_sale.dispatch.status == Dispatch.Status.CANCELLING
    if after_sale.type in INTERCEPT_TYPES or cancelling:
        answers += [A.INTERCEPTED, A.NOT_INTERCEPTED]
    if after_sale.type in RETURN_TYPES:
        answers.append(A.RECEIVED)
    answers.append(A.REFUSED)
    return answers


def timeline(after_sale: AfterSale) -> list[AfterSaleEvent]:
    """The merchant-visible timeline entries that concern the supplier: the platform's changes,
    the supplier's own answers and notices (not the merchant's internal notes and rules)."""
    return list(
        after_sale.events.filter(
            Q(source__in=(AfterSaleEvent.Source.PLATFORM, AfterSaleEvent.Source.SUPPLIER))
            | Q(kind__in=SUPPLIER_KINDS)
        ).order_by("created_at", "id")
    )


def lines(after_sale: AfterSale) -> list[dict]:
    """The after-sale's lines with the supplier's codes (from its dispatch lines)."""
    rows = list(after_sale.lines.select_related("order_line", "sku").order_by("id"))
    codes = {}
    if after_sale.dispatch_id:
        codes = {
            dl.order_line_id: dl
            for dl in DispatchLine.objects.filter(dispatch_id=after_sale.dispatch_id).select_related(
                "order_line"
            )
        }
    result = []
    for row in rows:
        dl = codes.get(row.order_line_id)
        ol = row.order_line
        result.append(
            {
                "id": row.pk,
                "order_line": row.order_line_id,
                "supplier_code": dl.supplier_code if dl else "",
                "merchant_code": (row.sku.merchant_code if row.sku else "")
                or (ol.merchant_code if ol else ""),
                "title": ol.title if ol else "",
                "spec": ol.spec if ol else "",
                "quantity": row.quantity or (dl.quantity if dl else 0),
                "refund_fen": row.refund_fen,
            }
        )
    if not rows:  # the platform named no lines: the dispatch's lines of this order
        for dl in codes.values():
            if after_sale.order_id and dl.order_line.order_id != after_sale.order_id:
                continue
            result.append(
                {
                    "id": None,
                    "order_line": dl.order_line_id,
                    "supplier_code": dl.supplier_code,
                    "merchant_code": dl.order_line.merchant_code,
                    "title": dl.order_line.title,
                    "spec": dl.order_line.spec,
                    "quantity": dl.quantity,
                    "refund_fen": 0,
                }
            )
    return result


# --- evidence files ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    """One evidence file, checked: bytes, what it is and its digest."""

    name: str
    content_type: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def read_evidence(files) -> list[Evidence]:
    """Check uploads (Django ``UploadedFile``s or ``Evidence``): at most ``MAX_EVIDENCE``, each
    an image (jpeg/png/webp/gif) or a PDF — by its content, not its name — of at most 5 MB."""
    files = list(files or ())
    if len(files) > MAX_EVIDENCE:
        raise ValidationError(gettext("At most %(n)d evidence files.") % {"n": MAX_EVIDENCE})
    checked = []
    for f in files:
        if isinstance(f, Evidence):
            checked.append(f)
            continue
        name = (getattr(f, "name", "") or "file")[-100:]
        size = getattr(f, "size", None)
        if size is not None and size > MAX_EVIDENCE_BYTES:
            raise ValidationError(gettext("%(name)s is too large (at most 5 MB).") % {"name": name})
        data = f.read(MAX_EVIDENCE_BYTES + 1)
        if len(data) > MAX_EVIDENCE_BYTES:
            raise ValidationError(gettext("%(name)s is too large (at most 5 MB).") % {"name": name})
        kind = next(
            (
                ct
                for ct, (_suffix, magics) in EVIDENCE_TYPES.items()
                if any(data.startswith(m) for m in magics)
            ),
            None,
        )
        if kind == "image/webp" and data[8:12] != b"WEBP":
            kind = None
        if kind is None:
            raise ValidationError(gettext("%(name)s is not an image or a PDF.") % {"name": name})
        checked.append(Evidence(name=name, content_type=kind, data=data))
    return checked


def _store(after_sale: AfterSale, item: Evidence) -> dict:
    """Save one file in the tenant's storage (MEDIA_ROOT/<schema>/…); its entry for
    ``supplier_evidence``."""
    suffix = EVIDENCE_TYPES[item.content_type][0]
    path = default_storage.save(
        f"aftersales/{after_sale.pk}/supplier/{uuid.uuid4().hex}{suffix}", ContentFile(item.data)
    )
    return {
        "path": path,
        "name": item.name,
        "content_type": item.content_type,
        "size": len(item.data),
        "sha256": item.sha256,
    }


def evidence_file(after_sale: AfterSale, index: int):
    """(opened file, entry) of the supplier's evidence ``index`` of ``after_sale``; the caller
    has already checked who may see it. LookupError when there is none."""
    entries = after_sale.supplier_evidence or []
    if not 0 <= index < len(entries):
        raise LookupError(index)
    entry = entries[index]
    path = entry.get("path", "")
    if not path.startswith(f"aftersales/{after_sale.pk}/supplier/") or ".." in path:
        raise LookupError(index)
    try:
        return default_storage.open(path, "rb"), entry
    except (FileNotFoundError, OSError):
        raise LookupError(index) from None


def content_type_of(entry: dict) -> str:
    kind = entry.get("content_type", "")
    if kind in EVIDENCE_TYPES:
        return kind
    return mimetypes.guess_type(entry.get("path", ""))[0] or "application/octet-stream"


# --- the answer ----------------------------------------------------------------------------------------------


def _record(after_sale: AfterSale, kind: str, message: str, *, actor=None, data=None):
    from aftersales import services  # lazily: services may call back into this module

    return services.record(after_sale, kind, message, source="supplier", actor=actor, data=data or {})


def _counts(counts, after_sale: AfterSale) -> dict[str, list[int]]:
    """{after-sale line id: [good, defective]} checked against the after-sale's lines."""
    if not counts:
        return {}
    own = {row.pk: row.quantity for row in after_sale.lines.all()}
    result = {}
    for key, pair in dict(counts).items():
        try:
            line_id, good, defective = int(key), int(pair[0]), int(pair[1])
        except (TypeError, ValueError, IndexError):
            raise ValidationError(gettext("Counts must be whole numbers.")) from None
        if line_id not in own:
            raise ValidationError(gettext("Line %(id)s is not part of this after-sale.") % {"id": key})
        if good < 0 or defective < 0 or (own[line_id] and good + defective > own[line_id]):
            raise ValidationError(
                gettext("Line %(id)s: good and defective together may not exceed %(n)d.")
                % {"id": line_id, "n": own[line_id]}
            )
        if good or defective:
            result[str(line_id)] = [good, defective]
    return result


MESSAGES = {
    A.INTERCEPTED: "supplier: parcel intercepted",
    A.NOT_INTERCEPTED: "supplier: could not intercept, the parcel has left",
    A.RECEIVED: "supplier: return received",
    A.REFUSED: "supplier: refused",
}


def answer(
    after_sale: AfterSale | int,
    *,
    supplier: Supplier | int,
    answer: str,
    note: str = "",
    evidence=(),
    actor=None,
    counts: dict | None = None,
) -> AfterSale:
    """The supplier's answer to an after-sale on its dispatch (see the module). Checks the
    after-sale belongs to ``supplier`` (else ``AfterSale.DoesNotExist``: the caller answers 404),
    that the answer fits the after-sale, that a refusal has a note; stores evidence files in the
    tenant's storage; writes one timeline event; for 已拦截 / 无法拦截 on a CANCELLING dispatch
    confirms its cancellation. The same answer again (same note, no new file, same counts)
    changes nothing. ``counts``: {after-sale line id: (good, defective)} for 已收到退货."""
    supplier_id = supplier if isinstance(supplier, int) else supplier.pk
    pk = after_sale if isinstance(after_sale, int) else after_sale.pk
    if answer not in (A.INTERCEPTED, A.NOT_INTERCEPTED, A.RECEIVED, A.REFUSED):
        raise ValidationError(gettext("Unknown answer."))
    note = (note or "").strip()[:1000]
    files = read_evidence(evidence)
    with transaction.atomic():
        dispatch_ids = list(
            AfterSale.objects.filter(pk=pk, supplier_id=supplier_id).values_list("dispatch_id", flat=True)
        )
        if not dispatch_ids:
            raise AfterSale.DoesNotExist
        if dispatch_ids[0]:
            dispatches._lock_orders_of(dispatch_ids)  # the order → dispatch lock order of every action
        found = (
            AfterSale.objects.select_for_update(of=("self",))
            .select_related("dispatch")
            .get(pk=pk, supplier_id=supplier_id)
        )
        if answer not in allowed_answers(found):
            raise ValidationError(
                gettext("“%(answer)s” does not fit this after-sale (%(type)s).")
                % {"answer": A(answer).label, "type": found.get_type_display()}
            )
        if answer == A.REFUSED and not note:
            raise ValidationError(gettext("Say why you refuse."))
        checked = _counts(counts, found) if answer == A.RECEIVED else {}
        known = {e.get("sha256") for e in found.supplier_evidence or []}
        new_files = [f for f in dict((f.sha256, f) for f in files).values() if f.sha256 not in known]
        last = found.events.filter(kind="supplier_answer").order_by("-id").first()
        same_counts = (last.data.get("counts", {}) if last else {}) == checked
        if found.supplier_answer == answer and found.supplier_note == note and not new_files and same_counts:
            return found  # the same answer again: one event
        stored = [_store(found, f) for f in new_files]
        found.supplier_answer = answer
        found.supplier_note = note
        found.supplier_evidence = [*(found.supplier_evidence or []), *stored]
        found.supplier_answered_at = timezone.now()
        found.save(
            update_fields=[
                "supplier_answer",
                "supplier_note",
                "supplier_evidence",
                "supplier_answered_at",
                "updated_at",
            ]
        )
        data = {"answer": answer, "note": note, "evidence": [e["path"] for e in stored]}
        if checked:
            data["counts"] = checked
        message = MESSAGES[answer] + (f": {note}" if note else "")
        _record(found, "supplier_answer", message, actor=actor, data=data)
        if (
            answer in (A.INTERCEPTED, A.NOT_INTERCEPTED)
            and found.dispatch_id
            and found.dispatch.status == Dispatch.Status.CANCELLING
        ):
            dispatches.confirm_cancel(
                dispatch=found.dispatch_id, intercepted=answer == A.INTERCEPTED, actor=actor
            )
            found.dispatch.refresh_from_db()
    return found


# --- telling the supplier ------------------------------------------------------------------------------------


def payload(after_sale: AfterSale) -> dict:
    """What the supplier is told of a new after-sale on its dispatch (codes, quantities,
    type, reason, the return waybill; no buyer data)."""
    return {
        "event": EVENT,
        "delivery": delivery_id(after_sale.pk),
        "after_sale": {
            "id": after_sale.pk,
            "dispatch": after_sale.dispatch_id,
            "supplier_code": after_sale.supplier.code if after_sale.supplier_id else "",
            "platform_order_id": after_sale.platform_order_id,
            "type": after_sale.type,
            "reason": after_sale.reason,
            "refund_fen": after_sale.refund_fen,
            "return_carrier": after_sale.return_carrier,
            "return_tracking_no": after_sale.return_tracking_no,
            "applied_at": after_sale.applied_at.isoformat() if after_sale.applied_at else None,
            "lines": [
                {k: row[k] for k in ("supplier_code", "merchant_code", "title", "spec", "quantity")}
                for row in lines(after_sale)
            ],
        },
    }


def delivery_id(after_sale_id: int) -> str:
    return f"{after_sale_id}:{EVENT}"


def send_webhook(after_sale: AfterSale) -> None:
    supplier = after_sale.supplier
    if not supplier.webhook_secret:
        raise notify.NotifyError(gettext("the webhook has no signing key"))
    notify._check_url(supplier.webhook_url)
    body = json.dumps(payload(after_sale), ensure_ascii=False, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "ecbao-dispatch-webhook/1",
        "X-Ecbao-Event": EVENT,
        "X-Ecbao-Delivery": delivery_id(after_sale.pk),
        "X-Ecbao-Timestamp": timestamp,
        "X-Ecbao-Signature": notify.sign(supplier.webhook_secret, timestamp, body),
    }
    try:
        response = httpx.post(supplier.webhook_url, content=body, headers=headers, timeout=notify.TIMEOUT)
    except httpx.HTTPError as exc:
        raise notify.NotifyError(gettext("webhook: %(error)s") % {"error": exc.__class__.__name__}) from exc
    if not 200 <= response.status_code < 300:
        raise notify.NotifyError(gettext("webhook answered HTTP %(code)s") % {"code": response.status_code})


def send_email(after_sale: AfterSale) -> None:
    with translation.override("zh-hans"):
        subject = gettext("After-sale on dispatch %(id)s: %(type)s") % {
            "id": after_sale.dispatch_id,
            "type": after_sale.get_type_display(),
        }
        rows = "\n".join(
            f"  {row['supplier_code'] or row['merchant_code']}  {row['title']} {row['spec']} × {row['quantity']}"
            for row in lines(after_sale)
        )
        body = "\n".join(
            [
                gettext(
                    "A buyer asked for an after-sale on an order you ship. Answer it in the supplier portal."
                ),
                "",
                gettext("Orders: %(orders)s") % {"orders": after_sale.platform_order_id},
                gettext("Reason: %(reason)s") % {"reason": after_sale.reason or "—"},
                gettext("Return waybill: %(no)s") % {"no": after_sale.return_tracking_no or "—"},
                "",
                rows,
            ]
        )
    try:
        send_mail(subject, body, None, [after_sale.supplier.notify_email])
    except Exception as exc:  # any transport error: retried
        raise notify.NotifyError(gettext("email: %(error)s") % {"error": exc.__class__.__name__}) from exc


def _done_key(after_sale_id: int, channel: str) -> str:
    return f"aftersales:notified:{after_sale_id}:{channel}"


def send(after_sale_id: int) -> bool:
    """Tell the supplier (webhook and/or email, each remembered once delivered); False when
    there is nothing (more) to send. A failure raises ``NotifyError`` (the task retries)."""
    after_sale = AfterSale.objects.select_related("supplier").filter(pk=after_sale_id).first()
    if after_sale is None or after_sale.supplier_id is None:
        return False
    supplier = after_sale.supplier
    errors, sent = [], False
    for channel, wanted, sender in (
        ("webhook", bool(supplier.webhook_url), send_webhook),
        ("email", bool(supplier.notify_email), send_email),
    ):
        key = _done_key(after_sale.pk, channel)
        if not wanted or cache.get(key):
            continue
        try:
            sender(after_sale)
        except notify.NotifyError as exc:
            errors.append(str(exc))
        else:
            cache.set(key, 1, notify.DONE_TTL)
            sent = True
    if errors:
        raise notify.NotifyError("; ".join(errors))
    if sent:
        AfterSaleEvent.objects.create(
            after_sale=after_sale, kind="supplier_notified", source="system", message="supplier notified"
        )
    return sent


@shared_task(bind=True, acks_late=True, max_retries=8)
def notify_task(self, after_sale_id: int) -> bool:
    try:
        return send(after_sale_id)
    except notify.NotifyError as exc:
        if self.request.retries >= self.max_retries:
            log.warning("after-sale %s: supplier not notified: %s", after_sale_id, exc)
            return False
        raise self.retry(exc=exc, countdown=min(1800, 15 * 2**self.request.retries)) from exc


def notify_new(after_sale: AfterSale) -> None:
    """Called by ingestion for a new after-sale: once the transaction commits, tell the supplier
    whose dispatch it is (if it wants notices)."""
    supplier = after_sale.supplier if after_sale.supplier_id else None
    if supplier is None or not (supplier.notify_email or supplier.webhook_url):
        return
    pk = after_sale.pk
    transaction.on_commit(lambda: notify_task.delay(pk))

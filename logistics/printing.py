"""Printing labels: print jobs for the platforms' local print components, their results, the
print journal, and ecbao's own batch PDF.

**The print component path.** A platform's privacy waybill (隐私面单) is printed by that
platform's component on the warehouse PC (Douyin and Kuaishou speak the Cainiao-family protocol,
WeChat its print v2.0 ``taskList``). The browser page (``static/logistics/print.js``) asks
:func:`print_jobs` for one document per waybill (a parcel's number, and each child number of a
multi-piece shipment) in its component's format: the platform's opaque print data as the take
returned it (fetched again through ``Connector.print_data`` when missing or older than
``PRINT_DATA_MAX_AGE``) and ecbao's custom area (items cut short, remarks, parcel n/m, order
ids). Each document is its own print task with a fresh task id, journaled as a
``PrintRecord(SENT)``; a repeated task id is refused by the components, so a reprint is always a
new task. The page hands the tasks over, follows each (``notifyPrintResult``, or
``getTaskStatus`` after a reconnect) and reports every result to :func:`print_result`, which is
idempotent: PRINTED is final, the parcel becomes PRINTED with its print count and time, and the
platform is told where it wants to be (``Connector.report_printed``, WeChat; a Celery task).

Once a parcel was printed, printing it again is a reprint (补打) and needs a reason.

**The PDF path.** :func:`start_pdf` queues one PDF of many labels (``logistics.labels``) as a
``ShipBatch`` with progress, stored in the tenant's file storage. The PDF is journaled per
parcel (``PrintRecord(kind=PDF)``, status SENT: ecbao cannot know whether paper came out) and
does not change a parcel's state.

**Alerts.** :func:`printed_not_shipped` lists parcels printed more than N hours ago that have not
left (labels lying around, or a parcel forgotten).

Buyer data: masks only; the platform's print data is encrypted by the platform.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Prefetch, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from channels import carriers
from channels import printing as channel_printing
from channels.errors import ChannelError
from channels.types import WaybillPrint
from logistics import scope
from logistics.labels import LabelData, LabelError, LabelItem, mask_numbers, render_labels
from logistics.models import Parcel, ParcelLine, PrintRecord, SenderAddress, ShipBatch, Waybill

logger = logging.getLogger(__name__)
P = Parcel.Status
W = Waybill.Status

#: parcels whose label can be printed (the later ones only as a reprint)
PRINTABLE = (P.NUMBERED, P.PRINTED, P.VERIFIED, P.SHIPPED)
#: print data older than this is fetched again before printing
PRINT_DATA_MAX_AGE = timedelta(hours=12)
#: ecbao's custom-area template (served from static files; the component fetches it)
CUSTOM_TEMPLATE_PATH = "logistics/custom-area-76x130.xml"
ITEMS_MAX_CHARS = 48
REMARK_MAX_CHARS = 40
MAX_PDF_LABELS = 2000

Connect = Callable[..., object]


class PrintRefused(Exception):
    """A parcel cannot be printed now; the message says why (translated)."""


# --- documents for the print components ---------------------------------------------------------


def _connector(store, connect: Connect | None):
    if connect is not None:
        return connect(store)
    from channels.services import connector_for

    return connector_for(store)


def _order_lines(parcel: Parcel) -> list[ParcelLine]:
    return list(parcel.lines.all())


def _orders(parcel: Parcel) -> list:
    seen = {}
    for pl in _order_lines(parcel):
        seen.setdefault(pl.order_line.order_id, pl.order_line.order)
    return [seen[k] for k in sorted(seen)]


def _item_text(pl: ParcelLine) -> str:
    line = pl.order_line
    name = " ".join(x for x in (line.title[:20], line.spec[:12]) if x) or line.merchant_code
    return f"{name}×{pl.quantity}"


def items_summary(parcel: Parcel, *, limit: int = ITEMS_MAX_CHARS) -> str:
    """The parcel's contents in one short line: "T恤 白 L×2，帽子×1", cut to "…等N件" (N = pieces)."""
    lines = _order_lines(parcel)
    pieces = sum(pl.quantity for pl in lines)
    parts = [_item_text(pl) for pl in lines]
    text = "，".join(parts)
    if len(text) <= limit:
        return text
    suffix = _("…%(n)d pieces") % {"n": pieces}
    kept = ""
    for part in parts:
        candidate = f"{kept}，{part}" if kept else part
        if len(candidate) + len(suffix) > limit:
            break
        kept = candidate
    if not kept:
        kept = parts[0][: max(1, limit - len(suffix))]
    return kept + suffix


def _remarks(parcel: Parcel) -> str:
    texts = []
    for order in _orders(parcel):
        for label, text in ((_("Buyer"), order.buyer_remark), (_("Seller"), order.seller_remark)):
            if text:
                texts.append(f"{label}: {mask_numbers(text)}")
    joined = "; ".join(texts)
    return joined if len(joined) <= REMARK_MAX_CHARS else joined[: REMARK_MAX_CHARS - 1] + "…"


def _live_waybills(parcel: Parcel) -> list[Waybill]:
    """The parcel's issued numbers: its own (its tracking number; on a parcel 2..n of a
    multi-piece shipment that is a child number) first, then further child numbers it carries."""
    issued = [w for w in parcel.waybills.all() if w.status == W.ISSUED]
    return sorted(issued, key=lambda w: (not _own(parcel, w), w.parent_id is not None, w.pk))


def _own(parcel: Parcel, waybill: Waybill | None) -> bool:
    """Whether ``waybill`` is the parcel's own label (the one that makes it count as printed)."""
    if waybill is None:
        return True
    if parcel.tracking_no:
        return waybill.tracking_no == parcel.tracking_no
    return waybill.parent_id is None


def _pieces(parcel: Parcel, waybills: list[Waybill]) -> list[tuple[int, int]]:
    """(n, m) for each of ``waybills``: one number per parcel → the parcel's seq/count; a parcel
    carrying child numbers → its pieces counted across the fulfilment."""
    if len(waybills) <= 1 and parcel.count >= 1:
        return [(parcel.seq, parcel.count)] * len(waybills)
    siblings = (
        Waybill.objects.filter(
            parcel__fulfilment_id=parcel.fulfilment_id, status=W.ISSUED, parcel__status__in=PRINTABLE
        )
        .order_by("parcel__seq", F("parent_id").asc(nulls_first=True), "id")
        .values_list("id", flat=True)
    )
    order = list(siblings)
    total = len(order)
    return [(order.index(w.pk) + 1 if w.pk in order else i + 1, total) for i, w in enumerate(waybills)]


def _stale(waybill: Waybill, now) -> bool:
    return not waybill.print_data or waybill.updated_at < now - PRINT_DATA_MAX_AGE


def _refresh_print_data(waybill: Waybill, *, store, connect: Connect | None, now) -> None:
    """Fetch the waybill's print data again when missing or stale; keep what we have when the
    platform cannot give it again (Kuaishou hands print data only with the take)."""
    if not _stale(waybill, now):
        return
    try:
        fresh: WaybillPrint = _connector(store, connect).print_data(
            carrier_code=waybill.platform_carrier_code,
            tracking_no=waybill.tracking_no,
            platform_waybill_id=waybill.platform_waybill_id,
            parent_tracking_no=waybill.parent.tracking_no if waybill.parent_id else "",
        )
    except ChannelError as exc:
        if waybill.print_data:
            logger.info("print data of %s not refreshed (%s); the stored one is used", waybill.pk, exc)
            return
        raise PrintRefused(
            _("The platform gave no print data for %(no)s: %(error)s")
            % {"no": waybill.tracking_no, "error": exc}
        ) from exc
    if not fresh.print_data:
        if waybill.print_data:
            return
        raise PrintRefused(_("The platform gave no print data for %(no)s.") % {"no": waybill.tracking_no})
    waybill.print_data, waybill.print_sign = fresh.print_data, fresh.sign
    waybill.print_key = fresh.key or waybill.print_key
    waybill.template_url = fresh.template_url or waybill.template_url
    waybill.save(update_fields=["print_data", "print_sign", "print_key", "template_url", "updated_at"])


def _is_printed(parcel: Parcel) -> bool:
    was_printed = getattr(parcel, "was_printed", None)
    if was_printed is None:
        was_printed = parcel.prints.filter(status=PrintRecord.Status.PRINTED).exists()
    return parcel.print_count > 0 or was_printed


def _parcels(ids: Iterable[int]) -> list[Parcel]:
    ids = [int(i) for i in ids]
    found = {
        p.pk: p
        for p in Parcel.objects.filter(pk__in=ids)
        .annotate(
            was_printed=Exists(
                PrintRecord.objects.filter(parcel=OuterRef("pk"), status=PrintRecord.Status.PRINTED)
            )
        )
        .select_related("store", "fulfilment")
        .prefetch_related(
            Prefetch("lines", queryset=ParcelLine.objects.select_related("order_line__order").order_by("id")),
            Prefetch("waybills", queryset=Waybill.objects.select_related("parent").order_by("id")),
        )
    }
    seen, out = set(), []
    for i in ids:
        if i in found and i not in seen:
            seen.add(i)
            out.append(found[i])
    return out


def _check_printable(parcel: Parcel, *, reprint_reason: str) -> bool:
    """Raise PrintRefused when ``parcel`` cannot be printed; returns whether it is a reprint."""
    if parcel.status not in PRINTABLE:
        if parcel.status == P.NEW:
            raise PrintRefused(_("Take a waybill number first."))
        raise PrintRefused(_("A cancelled parcel is not printed."))
    if parcel.manual:
        raise PrintRefused(_("The tracking number was entered by hand: print the PDF label instead."))
    reprint = _is_printed(parcel)
    if reprint and not reprint_reason:
        raise PrintRefused(_("Printed before: a reprint needs a reason."))
    return reprint


def print_jobs(
    parcel_ids: Iterable[int],
    *,
    actor=None,
    reprint_reason: str = "",
    custom_template_url: str = "",
    connect: Connect | None = None,
    warehouse=None,
) -> list[dict]:
    """One entry per document to print, in the order of ``parcel_ids``::

        {"task_id", "parcel_id", "waybill_id", "tracking_no", "platform", "dialect", "reprint",
         "document": <the component's own format: Cainiao-family ``{documentID, contents}``,
                      WeChat ``{taskID, printInfo, printNum, customInfo}``>}

    and one ``{"parcel_id", "tracking_no", "error"}`` per parcel that cannot be printed now (not
    numbered yet, cancelled, entered by hand, printed before without a reprint reason, no print
    data from the platform) — the others go ahead. Each document is journaled as
    ``PrintRecord(SENT)`` with its task id before it is returned. ``warehouse``: every parcel
    must ship from it, else nothing is returned (ValidationError; ``logistics.scope``)."""
    parcel_ids = scope.check_parcels(parcel_ids, warehouse)
    reason = (reprint_reason or "").strip()[:200]
    template = custom_template_url or _default_template_url()
    now = timezone.now()
    out: list[dict] = []
    for parcel in _parcels(parcel_ids):
        try:
            reprint = _check_printable(parcel, reprint_reason=reason)
            waybills = _live_waybills(parcel)
            if not waybills:
                raise PrintRefused(_("No waybill number to print."))
            for waybill in waybills:
                _refresh_print_data(waybill, store=parcel.store, connect=connect, now=now)
        except PrintRefused as exc:
            out.append({"parcel_id": parcel.pk, "tracking_no": parcel.tracking_no, "error": str(exc)})
            continue
        dialect = channel_printing.dialect(parcel.store.platform)
        orders = _orders(parcel)
        pieces = _pieces(parcel, waybills)
        base = {
            "items": items_summary(parcel),
            "remarks": _remarks(parcel),
            "orders": ", ".join(o.platform_order_id for o in orders),
            "reprint": reason if reprint else "",
        }
        with transaction.atomic():
            for waybill, piece in zip(waybills, pieces, strict=True):
                task_id = f"ecb-{uuid.uuid4().hex[:24]}"
                PrintRecord.objects.create(
                    parcel=parcel,
                    waybill=waybill,
                    kind=PrintRecord.Kind.COMPONENT,
                    task_id=task_id,
                    status=PrintRecord.Status.SENT,
                    is_reprint=reprint,
                    reason=reason if reprint else "",
                    actor=actor if getattr(actor, "pk", None) else None,
                )
                custom = {"templateURL": template, "data": {**base, "parcel": f"{piece[0]}/{piece[1]}"}}
                out.append(
                    {
                        "task_id": task_id,
                        "parcel_id": parcel.pk,
                        "waybill_id": waybill.pk,
                        "tracking_no": waybill.tracking_no,
                        "platform": parcel.store.platform,
                        "dialect": dialect,
                        "reprint": reprint,
                        "document": channel_printing.print_document(
                            platform=parcel.store.platform,
                            task_id=task_id,
                            print_info=WaybillPrint(
                                print_data=waybill.print_data,
                                sign=waybill.print_sign,
                                key=waybill.print_key,
                                template_url=waybill.template_url,
                            ),
                            custom=custom,
                            piece=piece,
                        ),
                    }
                )
    return out


def _default_template_url() -> str:
    from django.templatetags.static import static

    return static(CUSTOM_TEMPLATE_PATH)


# --- results ------------------------------------------------------------------------------------------


def print_result(
    task_id: str, ok: bool, error: str = "", *, printer: str = "", warehouse=None
) -> PrintRecord | None:
    """Record what the component said about task ``task_id`` (None: no such task here;
    ValidationError: ``warehouse`` given and the task's parcel does not ship from it).

    Idempotent and never undone: PRINTED is final (a late "failed" for a printed task is
    ignored); FAILED may still become PRINTED (the component's word after a reconnect). A
    printed parcel's own number → the parcel is PRINTED (if it was NUMBERED), its print count
    and time move, and the platform is told (``report_printed``, after commit)."""
    S = PrintRecord.Status
    if warehouse is not None:
        parcel_id = (
            PrintRecord.objects.filter(task_id=task_id, kind=PrintRecord.Kind.COMPONENT)
            .values_list("parcel_id", flat=True)
            .first()
        )
        if parcel_id is None:
            return None
        scope.check_parcels([parcel_id], warehouse)
    with transaction.atomic():
        record = (
            PrintRecord.objects.select_for_update(of=("self",))
            .filter(task_id=task_id, kind=PrintRecord.Kind.COMPONENT)
            .select_related("waybill")
            .first()
        )
        if record is None or record.status == S.PRINTED:
            return record
        now = timezone.now()
        if printer:
            record.printer = printer[:200]
        if not ok:
            if record.status == S.SENT:
                record.status, record.finished_at = S.FAILED, now
                record.error = (error or _("The printer reported a failure."))[:300]
                record.save(update_fields=["status", "finished_at", "error", "printer"])
            return record
        record.status, record.finished_at, record.error = S.PRINTED, now, ""
        record.save(update_fields=["status", "finished_at", "error", "printer"])
        parcel = Parcel.objects.select_for_update().get(pk=record.parcel_id)
        if _own(parcel, record.waybill):  # the parcel's own label, not a further child number
            parcel.print_count += 1
            parcel.printed_at = now
            fields = ["print_count", "printed_at", "updated_at"]
            if parcel.status == P.NUMBERED:
                parcel.status = P.PRINTED
                fields.append("status")
            parcel.save(update_fields=fields)
        if record.waybill_id:
            record_id = record.pk
            transaction.on_commit(lambda: _queue_report(record_id))
    return record


def _queue_report(record_id: int) -> None:
    from logistics.tasks import report_printed_task

    report_printed_task.delay(record_id)


def report_printed(record_id: int, *, connect: Connect | None = None) -> bool:
    """Tell the platform that a label was printed (WeChat's 打印成功通知; a no-op elsewhere).
    Once per record (``reported_at``); raises ChannelError for the task to retry."""
    with transaction.atomic():
        record = (
            PrintRecord.objects.select_for_update(of=("self",))
            .select_related("waybill", "parcel__store")
            .filter(pk=record_id, status=PrintRecord.Status.PRINTED, reported_at__isnull=True)
            .first()
        )
        if record is None or record.waybill is None:
            return False
        waybill = record.waybill
        _connector(record.parcel.store, connect).report_printed(
            carrier_code=waybill.platform_carrier_code,
            tracking_no=waybill.tracking_no,
            platform_waybill_id=waybill.platform_waybill_id,
            reprint=record.is_reprint,
        )
        record.reported_at = timezone.now()
        record.save(update_fields=["reported_at"])
    return True


def report_failed(record_id: int, error: str) -> None:
    """The platform could not be told (retries exhausted): keep it visible on the record."""
    PrintRecord.objects.filter(pk=record_id).update(
        error=(_("The platform was not told of this print: %(error)s") % {"error": error})[:300]
    )


# --- reads --------------------------------------------------------------------------------------------


def printed_not_shipped(hours: float = 24, *, warehouse=None) -> QuerySet[Parcel]:
    """Parcels printed more than ``hours`` ago that have not shipped (an alert) — of the own
    warehouses (``warehouse=None``) or of one warehouse (``logistics.scope``)."""
    since = timezone.now() - timedelta(hours=hours)
    return scope.scoped(
        Parcel.objects.filter(
            status__in=(P.PRINTED, P.VERIFIED), printed_at__isnull=False, printed_at__lt=since
        ),
        warehouse,
    ).order_by("printed_at", "id")


def print_history(parcel: Parcel | int) -> QuerySet[PrintRecord]:
    """Every print of a parcel, newest first."""
    parcel_id = parcel if isinstance(parcel, int) else parcel.pk
    return PrintRecord.objects.filter(parcel_id=parcel_id).select_related("actor", "waybill").order_by("-id")


# --- the PDF path -------------------------------------------------------------------------------------


def start_pdf(parcel_ids: Iterable[int], *, actor=None, size: str = "76x130", warehouse=None) -> ShipBatch:
    """Queue one PDF with a label per parcel (in the order given) as a batch with progress.
    Parcels without a tracking number are left out and counted as failed. ``warehouse``: every
    parcel must ship from it (``logistics.scope``)."""
    ids = scope.check_parcels(parcel_ids, warehouse)[:MAX_PDF_LABELS]
    batch = ShipBatch.objects.create(
        kind=ShipBatch.Kind.LABELS,
        total=len(ids),
        params={"parcel_ids": ids, "size": size, **scope.batch_params(warehouse)},
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    batch_id = batch.pk

    def queue() -> None:
        from logistics.tasks import render_pdf_task

        render_pdf_task.delay(batch_id)

    transaction.on_commit(queue)
    return batch


def _sender(parcel: Parcel, cache: dict) -> SenderAddress | None:
    """The ship-from address of the parcel's warehouse (none printed for a supplier without one:
    never the merchant's address on a supplier's label)."""
    wid = scope.parcel_warehouse_id(parcel)
    if wid not in cache:
        try:
            cache[wid] = scope.sender_for(wid)
        except scope.SenderMissing:
            cache[wid] = None
    return cache[wid]


def label_data(parcel: Parcel, *, sender: SenderAddress | None = None, at=None) -> LabelData:
    """What one label shows, from a parcel (with prefetched lines and waybills)."""
    waybill = next((w for w in _live_waybills(parcel) if _own(parcel, w)), None)
    orders = _orders(parcel)
    first = orders[0] if orders else None
    address = ""
    if first is not None:
        address = f"{first.province}{first.city}{first.district}{first.receiver_address_mask}"
    buyer = "; ".join(mask_numbers(o.buyer_remark) for o in orders if o.buyer_remark)
    seller = "; ".join(mask_numbers(o.seller_remark) for o in orders if o.seller_remark)
    items = tuple(
        LabelItem(
            " ".join(x for x in (pl.order_line.title, pl.order_line.spec) if x)
            or pl.order_line.merchant_code,
            pl.quantity,
        )
        for pl in _order_lines(parcel)
    )
    sender_text = ""
    if sender is not None:
        sender_text = f"{sender.province}{sender.city}{sender.district}{sender.street}{sender.detail}"
    return LabelData(
        tracking_no=parcel.tracking_no,
        carrier_name=carriers.name_of(parcel.carrier) if parcel.carrier else "",
        receiver_name_mask=first.receiver_name_mask if first else "",
        receiver_phone_mask=first.receiver_phone_mask if first else "",
        receiver_address_mask=address,
        sender_name=sender.name if sender else "",
        sender_phone=sender.mobile if sender else "",
        sender_address=sender_text,
        sort_code=waybill.sort_code if waybill else "",
        short_address=waybill.short_address if waybill else "",
        package_center=waybill.package_center if waybill else "",
        items=items,
        buyer_remark=buyer,
        seller_remark=seller,
        parcel_no=max(1, min(parcel.seq, parcel.count)),
        parcel_count=max(1, parcel.count),
        platform_order_ids=tuple(o.platform_order_id for o in orders),
        printed_at=at or timezone.now(),
    )


def render_pdf(batch_id: int) -> ShipBatch:
    """Render a LABELS batch (the Celery task's body; running it twice rewrites the file)."""
    batch = ShipBatch.objects.get(pk=batch_id, kind=ShipBatch.Kind.LABELS)
    if batch.status == ShipBatch.Status.DONE and batch.result_file:
        return batch
    ids = [int(i) for i in batch.params.get("parcel_ids", [])]
    size = batch.params.get("size", "76x130")
    batch.status, batch.done, batch.failed, batch.error = ShipBatch.Status.RUNNING, 0, 0, ""
    batch.save(update_fields=["status", "done", "failed", "error"])
    senders: dict = {}
    now = timezone.now()
    found = _parcels(ids)
    labels, included, failed = [], [], len(ids) - len(found)
    for parcel in found:
        if not parcel.tracking_no or parcel.status == P.CANCELLED:
            failed += 1
            continue
        try:
            labels.append(label_data(parcel, sender=_sender(parcel, senders), at=now))
        except LabelError as exc:
            logger.warning("label of parcel %s not rendered: %s", parcel.pk, exc)
            failed += 1
            continue
        included.append(parcel)

    def progress(done: int, total: int) -> None:
        ShipBatch.objects.filter(pk=batch.pk).update(done=done)

    if not labels:
        batch.status, batch.failed, batch.finished_at = ShipBatch.Status.FAILED, failed, timezone.now()
        batch.error = _("No parcel with a tracking number to render.")
        batch.save(update_fields=["status", "failed", "finished_at", "error"])
        return batch
    try:
        pdf = render_labels(labels, size=size, progress=progress)
    except LabelError as exc:
        batch.status, batch.error, batch.finished_at = ShipBatch.Status.FAILED, str(exc)[:300], timezone.now()
        batch.save(update_fields=["status", "error", "finished_at"])
        return batch
    with transaction.atomic():
        batch.refresh_from_db()
        if batch.result_file:
            batch.result_file.delete(save=False)
        batch.result_file.save(f"labels-{batch.pk}.pdf", ContentFile(pdf), save=False)
        batch.status, batch.done, batch.failed = ShipBatch.Status.DONE, len(labels), failed
        batch.finished_at = timezone.now()
        batch.save(update_fields=["result_file", "status", "done", "failed", "finished_at"])
        PrintRecord.objects.bulk_create(
            PrintRecord(
                parcel=parcel,
                waybill=next((w for w in _live_waybills(parcel) if _own(parcel, w)), None),
                batch=batch,
                kind=PrintRecord.Kind.PDF,
                status=PrintRecord.Status.SENT,
                actor_id=batch.created_by_id,
            )
            for parcel in included
        )
    return batch


def component_urls() -> dict[str, str]:
    """{platform: URL} of the print components a warehouse PC runs (settings.PRINT_COMPONENT_URLS)."""
    return dict(getattr(settings, "PRINT_COMPONENT_URLS", {}) or {})


def allow_components(response):
    """Let a page's script reach the print components (WebSocket on the PC: the CSP's connect-src)."""
    response._csp_update = {"connect-src": sorted(set(component_urls().values()))}
    return response

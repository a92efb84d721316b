"""The merchant's after-sales pages (售后): the work queue with tabs, filters, live countdowns
and bulk approval; one after-sale (facts, lines, evidence, timeline, answers sent, the platform
view, the supplier's answer, and the answer forms); the auto-approve rule with a dry run; the
reasons report. Thin: reads through ``aftersales.selectors``, answers through
``aftersales.actions``, the rule through ``aftersales.policy``. Everyone here holds
``aftersales.manage``."""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta
from decimal import Decimal

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import pgettext
from django.views.decorators.http import require_POST

from aftersales import actions, policy, selectors
from aftersales.forms import ApproveForm, PeriodForm, PolicyForm, QueueFilterForm, RejectForm
from aftersales.models import AfterSale, AfterSaleAction, AutoApprovePolicy
from channels.errors import ChannelError
from channels.models import AfterSaleSnapshot
from ecbao import sheets
from tenants.accounts.permissions import capability_required

CAP = "aftersales.manage"
PAGE_SIZE = 50
MAX_BULK = 200
MAX_PREVIEW = 200
POLL_SECONDS = 30
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
A = AfterSaleAction
T = AfterSale.Type
Q_ = AfterSale.Queue


def _without(params: QueryDict, *names: str) -> str:
    params = params.copy()
    for name in names:
        params.pop(name, None)
    return params.urlencode()


def _queue_of(params: QueryDict) -> str:
    """The tab asked for: a queue key, "all", or (none given) 待处理."""
    value = params.get("queue", "")
    if value == "all" or value in selectors.QUEUE_LABELS:
        return value
    return Q_.PENDING


def _explain(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(exc.messages)
    return str(exc)


# --- the queue -----------------------------------------------------------------------------------


def _tabs(params: QueryDict, queue: str, filters: dict) -> list[tuple[str, str, int, str, bool]]:
    counts = selectors.queue_counts(**filters)
    others = _without(params, "queue", "after", "before", "ids")
    tabs = []
    for key, label in selectors.TABS:
        key = key or "all"
        query = "&".join(filter(None, (f"queue={key}", others)))
        tabs.append((key, str(label), counts[key], query, key == queue))
    return tabs


def _queue_context(params: QueryDict, **extra) -> dict:
    form = QueueFilterForm(params)
    filters = form.filters()
    queue = _queue_of(params)
    qs = selectors.after_sales(queue=None if queue == "all" else queue, **filters)
    page = selectors.page(
        qs,
        queue=None if queue == "all" else queue,
        after=params.get("after", ""),
        before=params.get("before", ""),
        size=PAGE_SIZE,
    )
    selectors.decorate(page.rows)
    return {
        "form": form,
        "filtered": any(filters.values()),
        "queue": queue,
        "tabs": _tabs(params, queue, filters),
        "page": page,
        "page_query": params.urlencode(),
        "filter_query": _without(params, "after", "before"),
        "poll_query": _without(params, "after", "before"),
        "poll_ids": ",".join(str(row.pk) for row in page.rows if row.view.countdown[0]),
        "paged": bool(params.get("after") or params.get("before")),
        "poll_seconds": POLL_SECONDS,
        **extra,
    }


@capability_required(CAP)
def queue(request):
    context = _queue_context(request.GET)
    if request.htmx and not request.htmx.boosted:
        return render(request, "aftersales/_queue.html", context)
    return render(request, "aftersales/queue.html", context)


@capability_required(CAP)
def countdowns(request):
    """The live part of the queue, polled every 30 s: the countdowns of the rows shown (by id)
    and the tab counts, swapped in place (htmx out-of-band) so ticked boxes stay ticked."""
    ids = [int(v) for v in request.GET.get("ids", "").split(",") if v.isdigit() and len(v) < 19][:PAGE_SIZE]
    rows = selectors.decorate(
        list(AfterSale.objects.filter(pk__in=ids).select_related("supplier", "warehouse"))
    )
    form = QueueFilterForm(request.GET)
    return render(
        request,
        "aftersales/_countdowns.html",
        {"rows": rows, "tabs": _tabs(request.GET, _queue_of(request.GET), form.filters())},
    )


@require_POST
@capability_required(CAP)
def bulk_approve(request):
    """Approve the ticked after-sales (批量同意); each one's outcome is shown, a refusal of one
    does not stop the others. The refused can be sent again alone (只重试失败)."""
    ids = [int(v) for v in request.POST.getlist("ids") if v.isdigit() and len(v) < 19][:MAX_BULK]
    params = QueryDict(request.POST.get("filter_query", ""))
    results: list[tuple[AfterSale | None, int, bool, str]] = []
    if not ids:
        messages.error(request, _("Tick at least one after-sale first."))
    else:
        outcome = actions.bulk_approve(ids, actor=request.user)
        approved = set(
            AfterSaleAction.objects.filter(pk__in=outcome["approved"]).values_list("after_sale_id", flat=True)
        )
        refused = dict(outcome["refused"])
        found = AfterSale.objects.in_bulk(ids)
        for pk in ids:
            if pk in refused:
                results.append((found.get(pk), pk, False, refused[pk]))
            elif pk in approved:
                results.append((found.get(pk), pk, True, ""))
        done = sum(1 for r in results if r[2])
        if done:
            messages.success(request, _("%(n)d after-sale(s) approved.") % {"n": done})
        if done < len(results):
            messages.error(request, _("%(n)d refused; see why below.") % {"n": len(results) - done})
    context = _queue_context(
        params,
        results=results,
        failed_ids=[pk for _a, pk, ok, _why in results if not ok],
        partial=bool(request.htmx),
    )
    if request.htmx:
        return render(request, "aftersales/_queue.html", context)
    return render(request, "aftersales/queue.html", context)


# --- one after-sale ------------------------------------------------------------------------------


def _after_sale(after_sale_id: int) -> AfterSale:
    return get_object_or_404(
        AfterSale.objects.select_related(
            "store", "order", "supplier", "warehouse", "dispatch", "reship_order"
        ).prefetch_related("lines__sku", "lines__order_line"),
        pk=after_sale_id,
    )


def _platform_view(after_sale: AfterSale) -> dict | None:
    """The newest stored version of the platform's after-sale (its neutral reading)."""
    snapshots = AfterSaleSnapshot.objects.filter(
        store_id=after_sale.store_id, platform_after_sale_id=after_sale.platform_after_sale_id
    )
    snapshot = None
    if after_sale.snapshot_id:
        snapshot = snapshots.filter(pk=after_sale.snapshot_id).first()
    snapshot = snapshot or snapshots.order_by("-platform_updated_at", "-id").first()
    if snapshot is None:
        return None
    return {
        "snapshot": snapshot,
        "pretty": json.dumps(snapshot.normalized, ensure_ascii=False, indent=2, sort_keys=True),
        "status_label": selectors.channel_status_label(snapshot.status),
    }


def _chargeback_url(after_sale: AfterSale) -> str:
    """h-portal's charge-back form for this after-sale, once it exists."""
    for args in ((after_sale.pk,), ()):
        try:
            url = reverse("aftersales:chargeback_new", args=args)
        except NoReverseMatch:
            continue
        return url if args else f"{url}?after_sale={after_sale.pk}"
    return ""


def _supplier_evidence(after_sale: AfterSale) -> list[tuple[str, str]]:
    """(name, link) of each file the supplier sent with its answer; the link is h-portal's
    merchant-side view of the file (none until it exists)."""
    out = []
    for index, entry in enumerate(after_sale.supplier_evidence or []):
        if isinstance(entry, dict):
            name = entry.get("name") or entry.get("path", "").rsplit("/", 1)[-1]
        else:
            name = str(entry).rsplit("/", 1)[-1]
        try:
            url = reverse("aftersales:supplier_evidence", args=(after_sale.pk, index))
        except NoReverseMatch:
            url = ""
        out.append((name or str(index + 1), url))
    return out


def _choices(after_sale: AfterSale) -> dict:
    """What the answer forms offer: the platform's refusal reasons and return addresses."""
    out = {"reasons": [], "addresses": [], "reasons_error": "", "addresses_error": ""}
    try:
        out["reasons"] = actions.reject_reasons(after_sale.store)
    except ChannelError as exc:
        out["reasons_error"] = str(exc)
    if after_sale.type in (T.RETURN_REFUND, T.EXCHANGE):
        try:
            out["addresses"] = actions.return_addresses(after_sale.store)
        except ChannelError as exc:
            out["addresses_error"] = str(exc)
    return out


def _detail_context(after_sale: AfterSale, *, errors=None, approve_form=None, reject_form=None) -> dict:
    selectors.decorate([after_sale])
    choices = (
        _choices(after_sale)
        if after_sale.queue in actions.ALLOWED[A.Kind.REJECT] | actions.ALLOWED[A.Kind.APPROVE]
        else {"reasons": [], "addresses": [], "reasons_error": "", "addresses_error": ""}
    )
    action_rows = list(after_sale.actions.select_related("actor").order_by("-id"))
    for action in action_rows:
        action.kind_label = str(selectors.ACTION_KIND_LABELS.get(action.kind, action.kind))
        action.status_label = str(selectors.ACTION_STATUS_LABELS.get(action.status, action.status))
        action.cost_fen = action.result.get("cost_fen") if action.kind == A.Kind.INTERCEPT else None
    events = list(after_sale.events.select_related("actor").order_by("created_at", "id"))
    for event in events:
        event.source_label = str(selectors.EVENT_SOURCE_LABELS.get(event.source, event.source))
    queue = after_sale.queue
    return {
        "a": after_sale,
        "lines": list(after_sale.lines.all()),
        "events": events,
        "action_rows": action_rows,
        "platform_view": _platform_view(after_sale),
        "receipts": list(after_sale.receipts.select_related("warehouse").order_by("-id")),
        "can": {
            "approve": queue in actions.ALLOWED[A.Kind.APPROVE],
            "reject": queue in actions.ALLOWED[A.Kind.REJECT],
            "confirm": queue in actions.ALLOWED[A.Kind.CONFIRM_RECEIPT],
            "intercept": after_sale.shipped_before and queue in actions.ALLOWED[A.Kind.INTERCEPT],
        },
        "needs_address": after_sale.type in (T.RETURN_REFUND, T.EXCHANGE),
        "approve_form": approve_form or ApproveForm(addresses=choices["addresses"], prefix="approve"),
        "reject_form": reject_form or RejectForm(reasons=choices["reasons"], prefix="reject"),
        "choices": choices,
        "errors": errors or {},
        "chargeback_url": _chargeback_url(after_sale) if after_sale.supplier_id else "",
        "supplier_evidence": _supplier_evidence(after_sale),
    }


@capability_required(CAP)
def detail(request, after_sale_id: int):
    after_sale = _after_sale(after_sale_id)
    return render(request, "aftersales/detail.html", _detail_context(after_sale))


def _outcome(request, after_sale: AfterSale, done: list[AfterSaleAction], form_key: str, **forms):
    """After an answer: a platform refusal is shown inline on the page (with the platform's
    message); otherwise back to the page with a note."""
    failed = [a for a in done if a.status == A.Status.FAILED]
    if failed:
        return render(
            request,
            "aftersales/detail.html",
            _detail_context(_after_sale(after_sale.pk), errors={form_key: failed[0].error}, **forms),
        )
    waiting = [a for a in done if a.status == A.Status.PENDING]
    if waiting:
        messages.warning(
            request,
            _("Sent; the platform has not confirmed yet (it is retried): %(error)s")
            % {"error": waiting[0].error or _("waiting for its turn")},
        )
    else:
        messages.success(request, _("Done on the platform."))
    return redirect("aftersales:detail", after_sale.pk)


@require_POST
@capability_required(CAP)
def approve(request, after_sale_id: int):
    after_sale = _after_sale(after_sale_id)
    addresses = _choices(after_sale)["addresses"]
    form = ApproveForm(request.POST, addresses=addresses, prefix="approve")
    if not form.is_valid():
        return render(
            request,
            "aftersales/detail.html",
            _detail_context(after_sale, errors={"approve": _("Choose a return address.")}, approve_form=form),
        )
    try:
        action = actions.approve(
            after_sale, actor=request.user, return_address_id=form.cleaned_data["return_address"]
        )
    except (ValidationError, ChannelError) as exc:
        return render(
            request,
            "aftersales/detail.html",
            _detail_context(after_sale, errors={"approve": _explain(exc)}, approve_form=form),
        )
    return _outcome(request, after_sale, [action], "approve", approve_form=form)


@require_POST
@capability_required(CAP)
def reject(request, after_sale_id: int):
    after_sale = _after_sale(after_sale_id)
    form = RejectForm(request.POST, reasons=_choices(after_sale)["reasons"], prefix="reject")
    if not form.is_valid():
        return render(
            request,
            "aftersales/detail.html",
            _detail_context(after_sale, errors={"reject": _("Check the refusal below.")}, reject_form=form),
        )
    data = form.cleaned_data
    try:
        action = actions.reject(
            after_sale,
            actor=request.user,
            reason_code=data["reason_code"],
            reason=data["reason"],
            evidence=data["evidence"],
        )
    except (ValidationError, ChannelError) as exc:
        return render(
            request,
            "aftersales/detail.html",
            _detail_context(after_sale, errors={"reject": _explain(exc)}, reject_form=form),
        )
    return _outcome(request, after_sale, [action], "reject", reject_form=form)


@require_POST
@capability_required(CAP)
def confirm(request, after_sale_id: int):
    after_sale = _after_sale(after_sale_id)
    try:
        action = actions.confirm_receipt(after_sale, actor=request.user)
    except (ValidationError, ChannelError) as exc:
        return render(
            request, "aftersales/detail.html", _detail_context(after_sale, errors={"confirm": _explain(exc)})
        )
    return _outcome(request, after_sale, [action], "confirm")


@require_POST
@capability_required(CAP)
def intercept(request, after_sale_id: int):
    after_sale = _after_sale(after_sale_id)
    try:
        sent = actions.intercept(after_sale, actor=request.user)
    except (ValidationError, ChannelError) as exc:
        return render(
            request,
            "aftersales/detail.html",
            _detail_context(after_sale, errors={"intercept": _explain(exc)}),
        )
    return _outcome(request, after_sale, sent, "intercept")


@require_POST
@capability_required(CAP)
def retry(request, action_id: int):
    action = get_object_or_404(AfterSaleAction, pk=action_id)
    try:
        action = actions.retry(action, actor=request.user)
    except (ValidationError, ChannelError) as exc:
        return render(
            request,
            "aftersales/detail.html",
            _detail_context(_after_sale(action.after_sale_id), errors={"actions": _explain(exc)}),
        )
    return _outcome(request, action.after_sale, [action], "actions")


# --- the auto-approve rule -----------------------------------------------------------------------


def _preview(rule: AutoApprovePolicy) -> list[tuple[AfterSale, bool, str]]:
    """Which open after-sales (待处理) the rule would approve, each with its explanation."""
    rows = list(selectors.after_sales(queue=Q_.PENDING)[:MAX_PREVIEW])
    out = [(row, *policy.explain(row, rule)) for row in rows]
    out.sort(key=lambda item: not item[1])  # stable: the would-approve first, each in deadline order
    return out


@capability_required(CAP)
def policy_page(request):
    rule = policy.get_policy()
    preview = None
    if request.method == "POST":
        form = PolicyForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            if request.POST.get("action") == "preview":
                trial = AutoApprovePolicy(
                    enabled=True,
                    max_fen=form.max_fen,
                    unshipped_only=data["unshipped_only"],
                    store_ids=sorted(int(i) for i in data["stores"]),
                )
                preview = _preview(trial)
            else:
                try:
                    policy.set_policy(
                        enabled=data["enabled"],
                        max_fen=form.max_fen,
                        unshipped_only=data["unshipped_only"],
                        store_ids=data["stores"],
                        actor=request.user,
                    )
                except ValidationError as exc:
                    for field, errors in exc.message_dict.items():
                        form.add_error({"max_fen": "max_yuan", "store_ids": "stores"}.get(field), errors)
                else:
                    messages.success(request, _("Auto-approve rule saved."))
                    return redirect("aftersales:policy")
    else:
        form = PolicyForm(
            initial={
                "enabled": rule.enabled,
                "max_yuan": f"{rule.max_fen / 100:.2f}",
                "unshipped_only": rule.unshipped_only,
                "stores": [str(i) for i in rule.store_ids],
            }
        )
    return render(
        request,
        "aftersales/policy.html",
        {"form": form, "rule": rule, "preview": preview, "preview_limit": MAX_PREVIEW},
    )


# --- the reasons report --------------------------------------------------------------------------


def _period(form: PeriodForm, now: datetime) -> tuple[datetime, datetime, str]:
    """[since, until) from the form: dates (whole days, Asia/Shanghai) or the last N days."""
    zone = timezone.get_current_timezone()
    data = form.cleaned_data if form.is_valid() else {}
    since_day, until_day = data.get("since"), data.get("until")
    if since_day or until_day:
        until = datetime.combine(until_day + timedelta(days=1), time.min, tzinfo=zone) if until_day else now
        since = (
            datetime.combine(since_day, time.min, tzinfo=zone) if since_day else until - timedelta(days=30)
        )
        if since > until:
            since, until = until, since
        return since, until, ""
    days = data.get("days") or "30"
    return now - timedelta(days=int(days)), now, days


def _yuan(fen: int) -> Decimal:
    return (Decimal(fen) / 100).quantize(Decimal("0.01"))


def _reasons_xlsx(rows: list[dict], *, by: str, title: str, since: datetime, until: datetime):
    """The report as shown, one sheet: amounts in yuan, rates as fractions (formatted by Excel)."""
    first = {"sku": _("SKU"), "store": _("Shop"), "supplier": _("Shipper")}[by]
    header = [
        str(first),
        pgettext("count", "After-sales"),
        _("Pieces"),
        _("Asked"),
        _("Refunded"),
        _("Refunded amount"),
        _("Orders shipped"),
        _("Pieces shipped"),
        _("Refund rate"),
        _("Piece rate"),
        _("Top reasons"),
    ]
    body = [
        [
            str(r["label"]),
            r["after_sales"],
            r["pieces"],
            _yuan(r["refund_fen"]),
            r["refunded"],
            _yuan(r["refunded_fen"]),
            r["shipped_orders"],
            r["shipped_pieces"],
            round(r["rate"], 4) if r["rate"] is not None else None,
            round(r["piece_rate"], 4) if r["piece_rate"] is not None else None,
            "；".join(f"{reason} ×{n}" for reason, n in r["reasons"]),
        ]
        for r in rows
    ]
    data = sheets.workbook_bytes(
        title, header, body, widths=(28, 10, 8, 12, 8, 12, 10, 10, 10, 10, 40), text_columns=1
    )
    zone = timezone.get_current_timezone()
    name = f"refund-reasons-{by}-{since.astimezone(zone):%Y%m%d}-{until.astimezone(zone):%Y%m%d}.xlsx"
    response = HttpResponse(data, content_type=XLSX_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


@capability_required(CAP)
def reasons(request):
    by = request.GET.get("by", "sku")
    if by not in selectors.BY:
        by = "sku"
    form = PeriodForm(request.GET)
    since, until, days = _period(form, timezone.now())
    rows = selectors.reasons_report(since=since, until=until, by=by)
    for row in rows:
        row["rate_pct"] = _percent(row["rate"])
        row["piece_rate_pct"] = _percent(row["piece_rate"])
    others = _without(request.GET, "by", "export")
    tab_labels = {"sku": _("By SKU"), "store": _("By shop"), "supplier": _("By supplier")}
    if request.GET.get("export") == "xlsx":
        return _reasons_xlsx(rows, by=by, title=str(tab_labels[by]), since=since, until=until)
    return render(
        request,
        "aftersales/reasons.html",
        {
            "rows": rows,
            "by": by,
            "tabs": [
                (key, tab_labels[key], "&".join(filter(None, (f"by={key}", others)))) for key in selectors.BY
            ],
            "form": form,
            "days": days,
            "periods": ("7", "30", "90"),
            "since": since,
            "until": until,
            "until_shown": until - timedelta(seconds=1),
            "export_query": "&".join(filter(None, (_without(request.GET, "export"), "export=xlsx"))),
        },
    )


urlpatterns = [
    path("", queue, name="queue"),
    path("countdowns/", countdowns, name="countdowns"),
    path("bulk-approve/", bulk_approve, name="bulk_approve"),
    path("policy/", policy_page, name="policy"),
    path("reasons/", reasons, name="reasons"),
    path("actions/<int:action_id>/retry/", retry, name="retry"),
    path("<int:after_sale_id>/", detail, name="detail"),
    path("<int:after_sale_id>/approve/", approve, name="approve"),
    path("<int:after_sale_id>/reject/", reject, name="reject"),
    path("<int:after_sale_id>/confirm/", confirm, name="confirm"),
    path("<int:after_sale_id>/intercept/", intercept, name="intercept"),
]

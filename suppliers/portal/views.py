"""The supplier portal's pages (/supplier/): dispatches by tab with filters and bulk actions
(接单, 取号, 打印, 打印PDF, 发货, 导入运单号), one dispatch (lines, masked receiver with 查看 where
granted, parcels and tracking, by-hand tracking, confirming a cancellation), the statement
preview and the API tokens.

Thin: every view is a :func:`~suppliers.portal.scope.supplier_view` (``request.scope``), reads
through ``queries`` and acts through ``services`` or logistics' own services on parcel ids the
scope produced — never on ids from the request as they are.
"""

from __future__ import annotations

import json
from datetime import date

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from channels import carriers
from channels import services as channel_services
from channels.types import Platform
from ecbao.paging import query_string
from logistics import manual, printing, waybills
from logistics import scope as shipping_scope
from logistics.models import Parcel, PrintRecord, ShipBatch
from suppliers.portal import queries, services
from suppliers.portal.scope import supplier_view

PAGE_SIZE = 50
MAX_BULK = 500


def _explain(exc: Exception) -> str:
    return "；".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)


def _tab(params) -> str:
    tab = params.get("tab", "")
    return tab if tab in queries.TAB_VALUES else queries.NEW


def _own_batch(request, batch_id: int) -> ShipBatch:
    """A batch this supplier user started in the supplier's scope (take numbers / labels), or 404."""
    batch = ShipBatch.objects.filter(pk=batch_id, created_by=request.user).first()
    if batch is None:
        raise Http404
    try:
        shipping_scope.check_batch(batch, request.scope.warehouse_id)
    except ValidationError:
        raise Http404 from None
    return batch


# --- the dispatch list --------------------------------------------------------------------------------------


@supplier_view
def dispatch_list(request):
    scope, params = request.scope, request.GET
    tab, filters = _tab(params), queries.Filters.parse(params)
    page = queries.dispatch_page(
        scope, tab, filters, after=params.get("after", ""), before=params.get("before", ""), size=PAGE_SIZE
    )
    counts = queries.tab_counts(scope, filters)
    fq = filters.query()
    batch = None
    if params.get("batch", "").isdigit() and len(params["batch"]) < 19:
        try:
            batch = _own_batch(request, int(params["batch"]))
        except Http404:
            batch = None
    context = {
        "tab": tab,
        "filters": fq,
        "tabs": [
            (value, label, counts[value], query_string(tab=value, **fq)) for value, label, _s in queries.TABS
        ],
        "cancelling": counts["cancelling"],
        "awaiting": queries.rows(queries.awaiting_interception(scope, filters))
        if tab == queries.CANCELLED
        else [],
        "rows": queries.rows(page.rows),
        "page": page,
        "filter_query": query_string(tab=tab, **fq),
        "paged": bool(params.get("after") or params.get("before")),
        "stores": queries.stores(scope),
        "batch": batch,
        "print_config": json.dumps(printing.component_urls()),
        "platform_names": json.dumps({p.value: str(p.label) for p in Platform}, ensure_ascii=False),
    }
    return printing.allow_components(render(request, "suppliers/portal/list.html", context))


def _back_to_list(request, **extra):
    query = QueryDict(request.POST.get("filter_query", ""), mutable=True)
    for key, value in extra.items():
        query[key] = value
    return redirect(reverse("supplier_portal:list") + (f"?{query.urlencode()}" if query else ""))


def _ticked(request) -> list[int]:
    return request.scope.dispatch_ids(request.POST.getlist("ids")[:MAX_BULK])


@require_POST
@supplier_view
def bulk(request):
    """接单 / 取号 / 打印PDF / 发货 on the ticked dispatches (the supplier's own only)."""
    scope, action = request.scope, request.POST.get("action", "")
    ids = _ticked(request)
    if not ids:
        messages.error(request, _("Tick at least one dispatch first."))
        return _back_to_list(request)
    if action == "acknowledge":
        n = services.acknowledge(scope=scope, dispatch_ids=ids, actor=request.user)
        messages.success(request, _("%(n)d dispatch(es) acknowledged.") % {"n": n})
        return _back_to_list(request)
    parcel_ids = services.parcel_ids(scope, ids)
    if not parcel_ids:
        messages.error(request, _("The ticked dispatches have no parcel waiting to ship."))
        return _back_to_list(request)
    if action == "take":
        try:
            batch = waybills.start_take(parcel_ids, actor=request.user, warehouse=scope.warehouse_id)
        except ValidationError as exc:
            messages.error(request, _explain(exc))
            return _back_to_list(request)
        return _back_to_list(request, batch=batch.pk)
    if action == "pdf":
        numbered = list(
            scope.parcels().filter(pk__in=parcel_ids).exclude(tracking_no="").values_list("pk", flat=True)
        )
        if not numbered:
            messages.error(request, _("Take the waybill numbers first."))
            return _back_to_list(request)
        try:
            batch = printing.start_pdf(numbered, actor=request.user, warehouse=scope.warehouse_id)
        except ValidationError as exc:
            messages.error(request, _explain(exc))
            return _back_to_list(request)
        return _back_to_list(request, batch=batch.pk)
    if action == "ship":
        try:
            parcel_ids, result = services.ship(scope=scope, dispatch_ids=ids, actor=request.user)
        except ValidationError as exc:
            messages.error(request, _explain(exc))
            return _back_to_list(request)
        shipped = set(result.shipped) | set(result.already)
        if shipped:
            messages.success(request, _("%(n)d parcel(s) shipped.") % {"n": len(shipped)})
        numbers = dict(Parcel.objects.filter(pk__in=parcel_ids).values_list("pk", "tracking_no"))
        for pk, reason in sorted(result.errors.items()):
            messages.error(request, f"{numbers.get(pk) or pk}: {reason}")
        return _back_to_list(request)
    messages.error(request, _("Unknown action."))
    return _back_to_list(request)


@supplier_view
def batch_status(request, batch_id):
    batch = _own_batch(request, batch_id)
    failed = []
    if batch.kind == ShipBatch.Kind.TAKE_WAYBILLS and batch.status in (
        ShipBatch.Status.DONE,
        ShipBatch.Status.FAILED,
    ):
        failed = list(
            request.scope.parcels().filter(batch=batch, status=Parcel.Status.NEW).exclude(error="")[:50]
        )
    return render(request, "suppliers/portal/_batch.html", {"batch": batch, "failed": failed})


@supplier_view
def batch_download(request, batch_id):
    batch = _own_batch(request, batch_id)
    if batch.kind != ShipBatch.Kind.LABELS or batch.status != ShipBatch.Status.DONE or not batch.result_file:
        raise Http404
    return FileResponse(
        batch.result_file.open("rb"),
        as_attachment=True,
        filename=f"labels-{batch.pk}.pdf",
        content_type="application/pdf",
    )


# --- print components (static/logistics/print.js) ------------------------------------------------------------


@require_POST
@supplier_view
def print_jobs(request):
    parcel_ids = services.parcel_ids(request.scope, _ticked(request))
    if not parcel_ids:
        return JsonResponse(
            {"jobs": [], "errors": [], "message": _("Tick at least one dispatch first.")}, status=400
        )
    try:
        entries = _print_jobs(request, parcel_ids)
    except ValidationError as exc:
        return JsonResponse({"jobs": [], "errors": [], "message": _explain(exc)}, status=400)
    return JsonResponse(
        {"jobs": [e for e in entries if "error" not in e], "errors": [e for e in entries if "error" in e]}
    )


def _print_jobs(request, parcel_ids: list[int]) -> list[dict]:
    return printing.print_jobs(
        parcel_ids,
        actor=request.user,
        reprint_reason=request.POST.get("reason", ""),
        custom_template_url=request.build_absolute_uri(static(printing.CUSTOM_TEMPLATE_PATH)),
        warehouse=request.scope.warehouse_id,
    )


@require_POST
@supplier_view
def print_result(request):
    task_id = request.POST.get("task_id", "")[:64]
    if not PrintRecord.objects.filter(task_id=task_id, parcel__in=request.scope.parcels()).exists():
        return JsonResponse({"error": _("No such print task.")}, status=404)
    ok = request.POST.get("ok", "") in ("1", "true")
    try:
        record = _print_result(request, task_id, ok)
    except ValidationError:
        record = None
    if record is None:
        return JsonResponse({"error": _("No such print task.")}, status=404)
    return JsonResponse({"task_id": record.task_id, "status": record.status, "parcel": record.parcel_id})


def _print_result(request, task_id: str, ok: bool):
    return printing.print_result(
        task_id,
        ok,
        request.POST.get("error", "")[:300],
        printer=request.POST.get("printer", "")[:200],
        warehouse=request.scope.warehouse_id,
    )


# --- one dispatch ------------------------------------------------------------------------------------------------


def _detail_context(request, dispatch_id, **extra) -> dict:
    row = queries.dispatch_detail(request.scope, dispatch_id)
    parcels = list(request.scope.parcels().filter(fulfilment_id=row.dispatch.fulfilment_id).order_by("seq"))
    receiver = services.receiver_order(row.dispatch)
    lines = queries.parcel_lines(parcels)
    return {
        "row": row,
        "d": row.dispatch,
        "parcels": [
            (p, carriers.name_of(p.carrier) if p.carrier else "", lines.get(p.pk, [])) for p in parcels
        ],
        "receiver": receiver,
        "receiver_fields": [
            ("name", _("Receiver"), receiver.receiver_name_mask if receiver else ""),
            ("phone", _("Phone"), receiver.receiver_phone_mask if receiver else ""),
            ("address", _("Address"), receiver.receiver_address_mask if receiver else ""),
        ],
        "may_reveal": request.scope.supplier.may_reveal_receiver and not row.dispatch.native,
        "can_ship": row.dispatch.status in services.SHIPPABLE and not row.dispatch.native,
        "can_acknowledge": row.dispatch.status == queries.S.NEW,
        "can_confirm_cancel": row.dispatch.status == queries.S.CANCELLING,
        "carriers": [(key, c.name) for key, c in carriers.CARRIERS.items()],
        **extra,
    }


@supplier_view
def dispatch_detail(request, dispatch_id):
    return render(request, "suppliers/portal/detail.html", _detail_context(request, dispatch_id))


@require_POST
@supplier_view
def dispatch_tracking(request, dispatch_id):
    """By-hand tracking number (carrier + number) → logistics.manual.enter_tracking → shipped."""
    dispatch = request.scope.dispatch(dispatch_id)
    try:
        entry = services.enter_tracking(
            scope=request.scope,
            dispatch=dispatch,
            carrier=request.POST.get("carrier", "")[:40],
            tracking_no=request.POST.get("tracking_no", "")[:64],
            actor=request.user,
        )
    except ValidationError as exc:
        messages.error(request, _explain(exc))
    else:
        if entry.shipped:
            messages.success(
                request, _("Tracking number %(no)s entered; shipped.") % {"no": entry.parcel.tracking_no}
            )
        else:
            messages.error(
                request,
                _("Tracking number %(no)s entered, not shipped yet: %(why)s")
                % {"no": entry.parcel.tracking_no, "why": entry.ship_error},
            )
    return redirect("supplier_portal:detail", dispatch.pk)


@require_POST
@supplier_view
def dispatch_acknowledge(request, dispatch_id):
    dispatch = request.scope.dispatch(dispatch_id)
    if services.acknowledge(scope=request.scope, dispatch_ids=[dispatch.pk], actor=request.user):
        messages.success(request, _("Dispatch acknowledged."))
    return redirect("supplier_portal:detail", dispatch.pk)


@require_POST
@supplier_view
def dispatch_confirm_cancel(request, dispatch_id):
    """The supplier's answer to a cancellation: intercepted (not sent) yes / no."""
    dispatch = request.scope.dispatch(dispatch_id)
    answer = request.POST.get("intercepted", "")
    if answer not in ("1", "0"):
        messages.error(request, _("Say whether the parcel was intercepted."))
    else:
        try:
            services.confirm_cancel(
                scope=request.scope, dispatch=dispatch, intercepted=answer == "1", actor=request.user
            )
        except ValidationError as exc:
            messages.error(request, _explain(exc))
        else:
            messages.success(request, _("Cancellation confirmed."))
    return redirect("supplier_portal:detail", dispatch.pk)


@require_POST
@supplier_view
def receiver_reveal(request, dispatch_id, field):
    """One receiver field in plain text (granted suppliers only; audited decrypt + outflow row).
    The text goes to this response only: never stored, logged or cached."""
    if field not in services.RECEIVER_FIELDS:
        raise Http404
    dispatch = request.scope.dispatch(dispatch_id)
    if not request.scope.supplier.may_reveal_receiver or dispatch.native:
        raise PermissionDenied("receiver reveal not granted")
    context = {"field": field}
    try:
        context["text"] = services.reveal_receiver(
            scope=request.scope,
            dispatch=dispatch,
            field=field,
            user=request.user,
            ip=request.META.get("REMOTE_ADDR"),
        )
    except (channel_services.DecryptRefused, ValidationError) as exc:
        context["error"] = _explain(exc)
    except Exception:  # noqa: BLE001 - a platform failure: audited in channels; say so, keep nothing
        context["error"] = _("The platform could not decrypt it now; try again later.")
    response = render(request, "suppliers/portal/_receiver_field.html", context)
    response["Cache-Control"] = "no-store"
    return response


# --- import tracking numbers -----------------------------------------------------------------------------------


@supplier_view
def import_tracking(request):
    """导入运单号: upload (logistics.manual, scoped to the supplier's warehouse), then the batch's
    report — row errors with row, column and reason — polled while a worker runs a large file."""
    if request.method == "POST":
        upload = request.FILES.get("file")
        if upload is None:
            messages.error(request, _("Choose an xlsx file."))
        elif upload.size > 5 * 1024 * 1024:
            messages.error(request, _("The file is too large (at most 5 MB)."))
        else:
            batch = services.start_import(scope=request.scope, file=upload, actor=request.user)
            return redirect(reverse("supplier_portal:import") + f"?batch={batch.pk}")
        return redirect("supplier_portal:import")
    batch = report = None
    value = request.GET.get("batch", "")
    if value.isdigit() and len(value) < 19:
        batch = services.import_batch(scope=request.scope, batch_id=int(value), actor=request.user)
        if batch is None:
            raise Http404
        report = manual.ImportReport.from_batch(batch)
    return render(request, "suppliers/portal/import.html", {"batch": batch, "report": report})


@supplier_view
def import_template(request):
    response = HttpResponse(
        manual.template_workbook(),
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )
    response["Content-Disposition"] = 'attachment; filename="tracking-template.xlsx"'
    return response


# --- statement (对账单 preview) -------------------------------------------------------------------------------------


@supplier_view
def statement(request):
    text = request.GET.get("month", "")
    try:
        month = date.fromisoformat(f"{text[:7]}-01")
    except ValueError:
        month = timezone.localdate().replace(day=1)
    totals = queries.shipped_in_month(request.scope, month)
    return render(
        request, "suppliers/portal/statement.html", {"totals": totals, "month": month.strftime("%Y-%m")}
    )


# --- API tokens ---------------------------------------------------------------------------------------------------


@supplier_view
def api_tokens(request):
    new_key = None
    if request.method == "POST":
        name = request.POST.get("name", "").strip()[:100] or "API"
        days = request.POST.get("days", "90")
        _token, new_key = services.issue_token(
            user=request.user, name=name, days=int(days) if days in ("30", "90", "365") else 90
        )
        messages.success(request, _("A new API token was created. Copy it now: it is not shown again."))
    response = render(
        request,
        "suppliers/portal/api.html",
        {
            "tokens": services.tokens(user=request.user),
            "new_key": new_key,
            "api_base": request.build_absolute_uri("/api/v1/supplier/"),
        },
    )
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@supplier_view
def api_token_revoke(request, digest):
    try:
        token = services.revoke_token(user=request.user, digest=digest[:200])
    except PermissionDenied:
        raise Http404 from None
    messages.success(request, _("Token %(name)s was revoked.") % {"name": token.name or token.token_key})
    return redirect("supplier_portal:api")

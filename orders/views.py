"""The order workbench pages: the list (tabs, filters, search, bulk actions), one order's
detail (actions, fulfilments, timeline, raw snapshots) and the background xlsx export.

Thin: reads through ``selectors``, writes through ``services``, exports through ``exports``.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from channels import services as channel_services
from channels.errors import ChannelError
from orders import exports, retry, selectors, services
from orders.forms import CancelForm, HoldForm, OrderFilterForm
from orders.models import Fulfilment, Order, OrderStatus
from orders.status import OPEN_STATES, InvalidTransition
from tenants.accounts.permissions import capability_required, has_capability

S = OrderStatus
PAGE_SIZE = 50
MAX_BULK = 200
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
RECEIVER_FIELDS = ("name", "phone", "address")


def _explain(exc: Exception) -> str:
    """A refusal from the services, in the reader's language."""
    if isinstance(exc, InvalidTransition):
        return _("cannot go from %(before)s to %(after)s") % {
            "before": selectors.status_label(exc.from_status),
            "after": selectors.status_label(exc.to_status),
        }
    if isinstance(exc, ValidationError):  # the services' messages are translated where raised
        return "; ".join(exc.messages)
    return str(exc)


def _without(params: QueryDict, *names: str) -> str:
    params = params.copy()
    for name in names:
        params.pop(name, None)
    return params.urlencode()


# --- the list ------------------------------------------------------------------------------------


def _workbench(params: QueryDict, **extra) -> dict:
    """The list's context for ``params`` (the GET query): filters, one keyset page, tabs."""
    form = OrderFilterForm(params)
    filters = form.filters()
    page = selectors.order_page(
        selectors.order_list(filters),
        after=params.get("after", ""),
        before=params.get("before", ""),
        size=PAGE_SIZE,
    )
    selectors.decorate(page.rows)
    counts = selectors.tab_counts(filters)
    others = _without(params, "status", "after", "before")
    return {
        "form": form,
        "status": filters.status,
        "page": page,
        "tabs": [
            (
                value,
                label,
                selectors.count_display(counts[value]),
                "&".join(filter(None, (f"status={value}" if value else "", others))),
            )
            for value, label in selectors.TABS
        ],
        "tab_query": others,
        "page_query": params.urlencode(),
        "filter_query": _without(params, "after", "before"),
        "paged": bool(params.get("after") or params.get("before")),
        "count_cap": selectors.COUNT_CAP,
        **extra,
    }


@capability_required("dashboard.view")
def order_list(request):
    can_retry = has_capability(request.user, "orders.manage")
    context = _workbench(
        request.GET,
        ingestion_backlog=services.ingestion_backlog(),
        ingestion_retry=retry.current_retry() if can_retry else None,
        can_retry=can_retry,
    )
    if request.htmx and not request.htmx.boosted:
        return render(request, "orders/_workbench.html", {**context, "partial": True})
    return render(request, "orders/list.html", context)


def _per_order(request, orders: list[Order], act) -> list[tuple[Order, bool, str]]:
    results = []
    for order in orders:
        try:
            act(order)
        except (InvalidTransition, ValidationError) as exc:
            results.append((order, False, _explain(exc)))
        else:
            results.append((order, True, ""))
    done = sum(1 for _order, ok, _message in results if ok)
    if done:
        messages.success(request, _("%(n)d order(s) done.") % {"n": done})
    if done < len(results):
        messages.error(
            request, _("%(n)d order(s) refused; see the reasons below.") % {"n": len(results) - done}
        )
    return results


@require_POST
@capability_required("orders.manage")
def bulk_action(request):
    """Approve, hold (with a reason) or merge the ticked orders; each order's outcome is
    reported, a refusal of one does not stop the others."""
    action = request.POST.get("action", "")
    ids = [int(v) for v in request.POST.getlist("ids") if v.isdigit()][:MAX_BULK]
    orders = list(Order.objects.filter(pk__in=ids).order_by("-placed_at", "-id"))
    results: list[tuple[Order, bool, str]] = []
    reason = request.POST.get("reason", "").strip()
    if not orders:
        messages.error(request, _("Tick at least one order first."))
    elif action == "approve":
        results = _per_order(request, orders, lambda o: services.approve(order=o, actor=request.user))
    elif action == "hold":
        if not reason:
            messages.error(request, _("A hold needs a reason."))
        else:
            results = _per_order(
                request, orders, lambda o: services.hold(order=o, actor=request.user, reason=reason[:200])
            )
    elif action == "merge":
        try:
            fulfilment = services.merge(orders=orders, actor=request.user)
        except ValidationError as exc:
            messages.error(request, _("Not merged: %(reason)s") % {"reason": _explain(exc)})
        else:
            messages.success(
                request,
                _("%(n)d orders merged into one shipment (fulfilment %(id)s).")
                % {"n": len(orders), "id": fulfilment.pk},
            )
            results = [(order, True, "") for order in orders]
    else:
        messages.error(request, _("Unknown action."))
    params = QueryDict(request.POST.get("filter_query", ""))
    if request.htmx:
        context = _workbench(params, results=results, partial=True)
        return render(request, "orders/_workbench.html", context)
    query = params.urlencode()
    return redirect(reverse("orders:list") + (f"?{query}" if query else ""))


# --- one order -----------------------------------------------------------------------------------


def _decrypt_function():
    """The channel layer's audited one-field decrypt, when it exists."""
    return getattr(channel_services, "decrypt_receiver_field", None)


@capability_required("dashboard.view")
def order_detail(request, order_id):
    order = get_object_or_404(selectors.order_detail_queryset(), pk=order_id)
    selectors.decorate([order])
    return render(
        request,
        "orders/detail.html",
        {
            "order": order,
            "lines": list(order.lines.select_related("warehouse")),
            "events": selectors.order_events(order),
            # raw platform versions only for those who hold orders.snapshots
            "snapshots": selectors.order_snapshots(order)
            if has_capability(request.user, "orders.snapshots")
            else None,
            "fulfilments": selectors.order_fulfilments(order),
            "merge_candidates": selectors.merge_candidates(order),
            # which buttons to offer; the services decide (and explain any refusal)
            "can": {
                "approve": order.status in (S.TO_REVIEW, S.HELD),
                "hold": order.status in (S.PENDING_PAYMENT, S.TO_REVIEW, S.APPROVED, S.HELD),
                "release": order.status == S.HELD,
                "cancel": order.status in OPEN_STATES,
                "split": order.status == S.APPROVED,
            },
            "decrypt_available": _decrypt_function() is not None,
            "may_decrypt": has_capability(request.user, "buyer_data.decrypt"),
            "receiver_fields": [
                ("name", _("Receiver"), order.receiver_name_mask),
                ("phone", _("Phone"), order.receiver_phone_mask),
                ("address", _("Address"), order.receiver_address_mask),
            ],
            "hold_form": HoldForm(prefix="hold"),
            "cancel_form": CancelForm(prefix="cancel"),
        },
    )


def _back(order_id: int):
    return redirect("orders:detail", order_id)


@require_POST
@capability_required("orders.manage")
def order_action(request, order_id, action):
    """approve / hold {reason} / release / cancel {reason} one order."""
    order = get_object_or_404(Order, pk=order_id)
    if action not in ("approve", "hold", "release", "cancel"):
        raise Http404
    reason = ""
    if action in ("hold", "cancel"):
        form = (HoldForm if action == "hold" else CancelForm)(request.POST, prefix=action)
        if not form.is_valid():
            messages.error(request, _("Please give a reason."))
            return _back(order.pk)
        reason = form.cleaned_data["reason"]
    try:
        if action == "approve":
            services.approve(order=order, actor=request.user)
        elif action == "hold":
            services.hold(order=order, actor=request.user, reason=reason)
        elif action == "release":
            services.release(order=order, actor=request.user)
        else:
            services.cancel(order=order, actor=request.user, reason=reason)
    except (InvalidTransition, ValidationError) as exc:
        messages.error(
            request,
            _("Order %(order)s: %(reason)s") % {"order": order.platform_order_id, "reason": _explain(exc)},
        )
    else:
        order.refresh_from_db()
        messages.success(
            request,
            _("Order %(order)s is now: %(status)s")
            % {"order": order.platform_order_id, "status": selectors.status_label(order.status)},
        )
    return _back(order.pk)


@require_POST
@capability_required("orders.manage")
def order_split(request, order_id):
    """Move the posted quantities (``qty_<order line id>``) into a new fulfilment."""
    order = get_object_or_404(Order, pk=order_id)
    parts = {}
    for name, value in request.POST.items():
        if name.startswith("qty_") and name[4:].isdigit() and value.strip().isdigit() and int(value):
            parts[int(name[4:])] = int(value)
    try:
        fulfilment = services.split(order=order, parts=parts, actor=request.user)
    except ValidationError as exc:
        messages.error(request, _("Not split: %(reason)s") % {"reason": _explain(exc)})
    else:
        messages.success(request, _("Split off into shipment %(id)s.") % {"id": fulfilment.pk})
    return _back(order.pk)


@require_POST
@capability_required("orders.manage")
def order_merge(request, order_id):
    """Merge this order with the ticked ones (same shop and receiver, all waiting to ship)."""
    order = get_object_or_404(Order, pk=order_id)
    ids = {int(v) for v in request.POST.getlist("ids") if v.isdigit()}
    others = list(Order.objects.filter(pk__in=ids - {order.pk})[:MAX_BULK])
    try:
        fulfilment = services.merge(orders=[order, *others], actor=request.user)
    except ValidationError as exc:
        messages.error(request, _("Not merged: %(reason)s") % {"reason": _explain(exc)})
    else:
        messages.success(request, _("Merged into shipment %(id)s.") % {"id": fulfilment.pk})
    return _back(order.pk)


@require_POST
@capability_required("orders.manage")
def fulfilment_unmerge(request, order_id, fulfilment_id):
    order = get_object_or_404(Order, pk=order_id)
    fulfilment = get_object_or_404(
        Fulfilment.objects.filter(lines__order_line__order=order).distinct(), pk=fulfilment_id
    )
    try:
        parts = services.unmerge(fulfilment=fulfilment, actor=request.user)
    except ValidationError as exc:
        messages.error(request, _("Not unmerged: %(reason)s") % {"reason": _explain(exc)})
    else:
        messages.success(request, _("Unmerged into %(n)d shipments.") % {"n": len(parts)})
    return _back(order.pk)


@require_POST
@capability_required("buyer_data.decrypt")
def receiver_reveal(request, order_id, field):
    """One receiver field in plain text, for this person, through the channel layer's audited
    decrypt (budgeted per shop). The text goes to this response only: never stored or cached."""
    decrypt = _decrypt_function()
    if decrypt is None or field not in RECEIVER_FIELDS:
        raise Http404
    order = get_object_or_404(Order.objects.select_related("store"), pk=order_id)
    cipher = {
        "name": order.receiver_name_cipher,
        "phone": order.receiver_phone_cipher,
        "address": order.receiver_address_cipher,
    }[field]
    refused = tuple(
        cls
        for cls in (getattr(channel_services, "DecryptRefused", None), ChannelError, PermissionError)
        if cls
    )
    context = {"order": order, "field": field}
    try:
        context["text"] = decrypt(
            store=order.store,
            platform_order_id=order.platform_order_id,
            field=field,
            cipher=cipher,
            user=request.user,
            ip=request.META.get("REMOTE_ADDR"),
        )
    except refused as exc:
        context["error"] = str(exc)
    response = render(request, "orders/_receiver_field.html", context)
    response["Cache-Control"] = "no-store"
    return response


# --- export --------------------------------------------------------------------------------------


@require_POST
@capability_required("orders.export")
def export_start(request):
    """Export every order of the posted filter (all pages) to xlsx, in the background."""
    query = _without(QueryDict(request.POST.get("filter_query", "")), "after", "before")
    export_id = exports.start_export(user=request.user, query=query, language=get_language())
    if request.htmx:
        return render(
            request,
            "orders/_export_status.html",
            {"export": exports.export_for(export_id, user=request.user)},
        )
    return redirect("orders:export_status", export_id)


@capability_required("orders.export")
def export_status(request, export_id):
    export = exports.export_for(export_id, user=request.user)
    if export is None:
        raise Http404
    template = "orders/_export_status.html" if request.htmx else "orders/export.html"
    return render(request, template, {"export": export})


@capability_required("orders.export")
def export_download(request, export_id):
    """The workbook, for the user who asked, from the current tenant's storage only."""
    export = exports.export_for(export_id, user=request.user)
    handle = exports.open_download(export) if export else None
    if handle is None:
        raise Http404
    return FileResponse(handle, as_attachment=True, filename=export["filename"], content_type=XLSX_TYPE)


@require_POST
@capability_required("orders.manage")
def ingestion_retry(request):
    """Retry the versions that could not be imported now (they are also retried in the
    background, with growing pauses): a task, whose progress the workbench polls."""
    retry_id = retry.start_retry()
    if request.htmx:
        return render(request, "orders/_ingestion_retry.html", {"retry": retry.retry_for(retry_id)})
    return redirect("orders:list")


@capability_required("orders.manage")
def ingestion_retry_status(request, retry_id):
    state = retry.retry_for(retry_id)
    if state is None:
        raise Http404
    if not request.htmx:
        return redirect("orders:list")
    return render(request, "orders/_ingestion_retry.html", {"retry": state})

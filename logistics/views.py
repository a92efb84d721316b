"""The shipping workbench (打单发货): tabs 待打单 / 待发货 / 已发货 with counts, a shop filter, a
dense table of parcels, bulk actions 取号 / 打印 / 打印PDF / 发货 on the ticked rows or a whole
tab, batch progress through htmx polling, print history per parcel; and the two JSON endpoints
``static/logistics/print.js`` talks to (print jobs for the platforms' print components, their
results).

Thin: reads through ``selectors``, writes through ``printing``, ``waybills`` (取号) and
``shipping`` (发货). Reading needs dashboard.view; acting shipping.manage.

The workbench is the merchant's own warehouses' (``logistics.scope``): a dropship supplier's
parcels are not listed, counted or acted on by a whole-tab action here (the supplier works them
in the portal). With several own warehouses, a warehouse filter narrows the page to one.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, JsonResponse, QueryDict
from django.shortcuts import get_object_or_404, render
from django.templatetags.static import static
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from channels import carriers
from channels.models import Store
from channels.types import Platform
from ecbao.paging import query_string
from inventory.models import Warehouse
from logistics import printing, selectors, tracking
from logistics import services as parcel_services
from logistics.models import Parcel, ShipBatch
from tenants.accounts.permissions import capability_required, has_capability

PAGE_SIZE = 50
MAX_BULK = 1000  # a whole tab at most this many parcels per action
PRINTED_NOT_SHIPPED_HOURS = 24  # printed longer ago than this and not shipped: an alert
TAB_VALUES = [value for value, _label, _states in selectors.TABS]


def _store_id(params: QueryDict) -> int | None:
    value = params.get("store", "")
    return int(value) if value.isdigit() and len(value) < 19 else None


def _own_warehouses() -> list[Warehouse]:
    return list(
        Warehouse.objects.filter(kind=Warehouse.Kind.OWN, is_active=True).order_by("-is_default", "id")
    )


def _warehouse_id(params: QueryDict) -> int | None:
    """The filter's own warehouse (a supplier's warehouse is never taken from the query)."""
    value = params.get("warehouse", "")
    if not (value.isdigit() and len(value) < 19):
        return None
    return (
        Warehouse.objects.filter(pk=int(value), kind=Warehouse.Kind.OWN).values_list("pk", flat=True).first()
    )


def _tab(params: QueryDict) -> str:
    tab = params.get("tab", "")
    return tab if tab in TAB_VALUES else selectors.TO_PRINT


def _rows(parcels: list[Parcel]) -> list[dict]:
    rows = []
    for parcel in parcels:
        orders = selectors.parcel_orders(parcel)
        first = orders[0] if orders else None
        rows.append(
            {
                "parcel": parcel,
                "orders": orders,
                "receiver": first,
                "lines": list(parcel.lines.all()),
                "carrier_name": carriers.name_of(parcel.carrier) if parcel.carrier else "",
                # the countdown column (logistics.tracking): the earliest promised ship-by time
                "ship_by": min((o.ship_by for o in orders if o.ship_by), default=None),
            }
        )
    return rows


def _workbench(params: QueryDict, **extra) -> dict:
    """The page's context for ``params`` (the GET query): tab, shop, one keyset page, counts."""
    tab, store_id, warehouse_id = _tab(params), _store_id(params), _warehouse_id(params)
    page = selectors.parcel_page(
        tab,
        after=params.get("after", ""),
        before=params.get("before", ""),
        size=PAGE_SIZE,
        store_id=store_id,
        warehouse=warehouse_id,
    )
    counts = selectors.tab_counts(store_id=store_id, warehouse=warehouse_id)
    store, warehouse = str(store_id or ""), str(warehouse_id or "")
    lying = printing.printed_not_shipped(hours=PRINTED_NOT_SHIPPED_HOURS, warehouse=warehouse_id)
    if store_id:
        lying = lying.filter(store_id=store_id)
    warehouses = _own_warehouses()
    return {
        "tab": tab,
        "store_id": store,
        "stores": list(Store.objects.order_by("platform", "name")),
        "warehouse_id": warehouse,
        "warehouses": warehouses if len(warehouses) > 1 else [],
        "tabs": [
            (value, label, counts[value], query_string(tab=value, store=store, warehouse=warehouse))
            for value, label, _s in selectors.TABS
        ],
        "rows": _rows(page.rows),
        "page": page,
        "filter_query": query_string(tab=tab, store=store, warehouse=warehouse),
        "page_query": params.urlencode(),
        "paged": bool(params.get("after") or params.get("before")),
        "printed_not_shipped": lying.count(),
        "printed_not_shipped_hours": PRINTED_NOT_SHIPPED_HOURS,
        # tracking alerts (logistics.tracking): carrier exceptions, late orders, open intercepts
        "tracking_alerts": tracking.alert_counts(),
        **extra,
    }


@capability_required("dashboard.view")
def workbench(request):
    # Parcels follow fulfilments: every shippable fulfilment has its parcel before listing.
    parcel_services.ensure_parcels()
    context = _workbench(request.GET, can_act=has_capability(request.user, "shipping.manage"))
    if request.htmx and not request.htmx.boosted:
        return printing.allow_components(
            render(request, "logistics/_workbench.html", {**context, "partial": True})
        )
    context["print_config"] = json.dumps(printing.component_urls())
    context["platform_names"] = json.dumps({p.value: str(p.label) for p in Platform}, ensure_ascii=False)
    return printing.allow_components(render(request, "logistics/workbench.html", context))


def _selected(request) -> list[int]:
    """The ticked parcel ids, or every parcel of the posted tab and shop ("whole tab")."""
    post = request.POST
    if post.get("all_tab") == "1":
        params = QueryDict(post.get("filter_query", ""))
        qs = selectors.tab_parcels(
            _tab(params), store_id=_store_id(params), warehouse=_warehouse_id(params)
        ).order_by("-id")
        return list(qs.values_list("pk", flat=True)[:MAX_BULK])
    ids = [int(v) for v in post.getlist("ids") if v.isdigit() and len(v) < 19]
    return list(dict.fromkeys(ids))[:MAX_BULK]


def _explain(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(exc.messages)
    return str(exc)


@require_POST
@capability_required("shipping.manage")
def bulk_action(request):
    """取号 (a batch with progress), 打印PDF (a batch with progress and a download) or 发货
    (per-parcel outcome) for the ticked parcels or the whole tab."""
    action = request.POST.get("action", "")
    ids = _selected(request)
    batch, results = None, []
    if not ids:
        messages.error(request, _("Tick at least one parcel first."))
    elif action == "take":
        from logistics import waybills

        try:
            batch = waybills.start_take(ids, actor=request.user)
        except ValidationError as exc:
            messages.error(request, _explain(exc))
    elif action == "pdf":
        batch = printing.start_pdf(ids, actor=request.user)
    elif action == "ship":
        from logistics import shipping

        result = shipping.ship_parcels(ids, actor=request.user)
        shipped = set(result.shipped) | set(result.already)
        numbers = dict(Parcel.objects.filter(pk__in=ids).values_list("pk", "tracking_no"))
        results = [(pk, numbers.get(pk, ""), pk in shipped, result.errors.get(pk, "")) for pk in ids]
        if shipped:
            messages.success(request, _("%(n)d parcel(s) shipped.") % {"n": len(shipped)})
        if result.errors:
            messages.error(
                request, _("%(n)d parcel(s) not shipped; see the reasons below.") % {"n": len(result.errors)}
            )
    else:
        messages.error(request, _("Unknown action."))
    params = QueryDict(request.POST.get("filter_query", ""))
    context = _workbench(params, results=results, batch=batch, partial=True, can_act=True)
    return printing.allow_components(render(request, "logistics/_workbench.html", context))


@capability_required("shipping.manage")
def batch_status(request, batch_id):
    """A batch's progress (polled every second while it runs); when it ends, the page reloads
    its table (``HX-Trigger: shipping-refresh``)."""
    batch = get_object_or_404(
        ShipBatch, pk=batch_id, kind__in=[ShipBatch.Kind.TAKE_WAYBILLS, ShipBatch.Kind.LABELS]
    )
    response = render(request, "logistics/_batch.html", {"batch": batch, "errors": _batch_errors(batch)})
    if batch.status in (ShipBatch.Status.DONE, ShipBatch.Status.FAILED):
        response["HX-Trigger"] = "shipping-refresh"
    return response


def _batch_errors(batch: ShipBatch) -> list[dict]:
    if batch.kind != ShipBatch.Kind.TAKE_WAYBILLS or batch.status not in (
        ShipBatch.Status.DONE,
        ShipBatch.Status.FAILED,
    ):
        return []
    failed = (
        Parcel.objects.filter(batch=batch, status=Parcel.Status.NEW).exclude(error="").order_by("pk")[:200]
    )
    return [{"parcel": p.pk, "error": p.error} for p in failed]


@capability_required("shipping.manage")
def batch_download(request, batch_id):
    """The labels PDF of a batch, from the current tenant's storage."""
    batch = get_object_or_404(
        ShipBatch, pk=batch_id, kind=ShipBatch.Kind.LABELS, status=ShipBatch.Status.DONE
    )
    if not batch.result_file:
        raise Http404
    return FileResponse(
        batch.result_file.open("rb"),
        as_attachment=True,
        filename=f"labels-{batch.pk}.pdf",
        content_type="application/pdf",
    )


@capability_required("dashboard.view")
def parcel_prints(request, parcel_id):
    parcel = get_object_or_404(Parcel, pk=parcel_id)
    return render(
        request,
        "logistics/_prints.html",
        {"parcel": parcel, "prints": list(printing.print_history(parcel)[:50])},
    )


# --- the print component's endpoints (print.js) ------------------------------------------------------------


@require_POST
@capability_required("shipping.manage")
def print_jobs(request):
    """JSON ``{"jobs": [...], "errors": [...]}``: one document per waybill for the platforms'
    print components (``printing.print_jobs``), journaled as sent."""
    ids = _selected(request)
    if not ids:
        return JsonResponse(
            {"jobs": [], "errors": [], "message": _("Tick at least one parcel first.")}, status=400
        )
    entries = printing.print_jobs(
        ids,
        actor=request.user,
        reprint_reason=request.POST.get("reason", ""),
        custom_template_url=request.build_absolute_uri(static(printing.CUSTOM_TEMPLATE_PATH)),
    )
    jobs = [e for e in entries if "error" not in e]
    errors = [e for e in entries if "error" in e]
    return JsonResponse({"jobs": jobs, "errors": errors})


@require_POST
@capability_required("shipping.manage")
def print_result(request):
    """One task's outcome as the print component reported it (idempotent)."""
    task_id = request.POST.get("task_id", "")[:64]
    ok = request.POST.get("ok", "") in ("1", "true")
    record = printing.print_result(
        task_id, ok, request.POST.get("error", "")[:300], printer=request.POST.get("printer", "")[:200]
    )
    if record is None:
        return JsonResponse({"error": _("No such print task.")}, status=404)
    record.parcel.refresh_from_db(fields=["status", "print_count"])
    return JsonResponse(
        {
            "task_id": record.task_id,
            "status": record.status,
            "parcel": record.parcel_id,
            "parcel_status": record.parcel.status,
            "print_count": record.parcel.print_count,
        }
    )

"""Inventory pages: SKU list and detail, the unmatched-listing queue, sync status and the xlsx
import/export (thin: reads through ``selectors``, writes through services, sync and tasks)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from inventory import selectors, services, sync, tasks, xlsx
from inventory.forms import (
    AdjustmentForm,
    CountForm,
    ListingMatchForm,
    LocationForm,
    SkuFilterForm,
    SkuImportForm,
)
from inventory.models import Listing, Sku
from tenants.accounts.permissions import capability_required, has_capability

PAGE_SIZE = 50
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _query_without(request, *names: str) -> str:
    params = request.GET.copy()
    for name in names:
        params.pop(name, None)
    return params.urlencode()


# --- SKU list and export -------------------------------------------------------------------------


@capability_required("dashboard.view")
def sku_list(request):
    form = SkuFilterForm(request.GET, categories=selectors.categories())
    result = selectors.sku_list_page(
        form.filters(),
        after=request.GET.get("after", ""),
        before=request.GET.get("before", ""),
        size=PAGE_SIZE,
    )
    return render(
        request,
        "inventory/skus.html",
        {
            "form": form,
            "page": result.page,
            "stores": result.stores,
            "filter_query": _query_without(request, "after", "before"),
            "low_threshold": selectors.LOW_STOCK_THRESHOLD,
        },
    )


@capability_required("dashboard.view")
def sku_export(request):
    """The SKUs of the list's current filter (all pages) as xlsx (inventory.export); ``?template=1``:
    headers only (also for those who import, inventory.manage)."""
    template = bool(request.GET.get("template"))
    if not (
        has_capability(request.user, "inventory.export")
        or (template and has_capability(request.user, "inventory.manage"))
    ):
        raise PermissionDenied("inventory.export")
    if template:
        skus, name = Sku.objects.none(), "sku-template.xlsx"
    else:
        form = SkuFilterForm(request.GET, categories=selectors.categories())
        skus = selectors.sku_queryset(form.filters())
        name = f"skus-{timezone.localtime():%Y%m%d-%H%M}.xlsx"
    response = HttpResponse(xlsx.export_skus(skus), content_type=XLSX_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@capability_required("inventory.manage")
def sku_import(request):
    """Upload → import, or, when known SKUs would change, a preview of the changes with a
    confirm button (the file is kept in the tenant's storage until it is confirmed)."""
    form = SkuImportForm(request.POST or None, request.FILES or None)
    result, status, upload, gone = None, 200, "", False
    if request.method == "POST" and "upload" in request.POST:
        upload = request.POST.get("upload", "")
        result = xlsx.import_kept_upload(
            user_id=request.user.pk, token=upload, confirm=request.POST.get("confirm", "")
        )
        form, gone = SkuImportForm(), result is None
        status = 400 if gone or not result.ok else 200
    elif request.method == "POST":
        if form.is_valid():
            result = xlsx.import_skus(form.cleaned_data["file"])
            if result.needs_confirmation:
                upload = xlsx.keep_upload(user_id=request.user.pk, file=form.cleaned_data["file"])
        status = 200 if result is not None and result.ok else 400
    return render(
        request,
        "inventory/import.html",
        {"form": form, "result": result, "columns": xlsx.COLUMNS, "upload": upload, "upload_gone": gone},
        status=status,
    )


@capability_required("dashboard.view")
def sku_search(request):
    """``<option>``s for the SKU picker (a datalist filled by htmx)."""
    q = request.GET.get("q") or request.GET.get("sku") or ""
    return render(request, "inventory/_sku_options.html", {"skus": selectors.sku_choices(q)})


# --- SKU detail, adjustments and counts ----------------------------------------------------------


def _render_detail(request, sku_id: int, *, adjust_form=None, count_form=None, status: int = 200):
    sku = get_object_or_404(selectors.sku_queryset(), pk=sku_id)
    return render(
        request,
        "inventory/sku_detail.html",
        {
            "sku": sku,
            "warehouses": selectors.warehouse_stock(sku),
            "parts": selectors.combo_parts(sku) if sku.is_combo else [],
            "listings": selectors.sku_listings(sku),
            "ledger": selectors.newest_first_page(
                selectors.ledger(sku_id=sku.pk), before=_int(request.GET.get("before")), size=PAGE_SIZE
            ),
            "adjust_form": adjust_form or AdjustmentForm(prefix="adjust"),
            "count_form": count_form or CountForm(prefix="count"),
        },
        status=status,
    )


@capability_required("dashboard.view")
def sku_detail(request, sku_id):
    return _render_detail(request, sku_id)


def _insufficient(exc: services.InsufficientStock) -> str:
    reserved = selectors.reserved_in(sku_id=exc.sku_id, warehouse_id=exc.warehouse_id)
    return _(
        "Not enough stock: %(reserved)d units in this warehouse are reserved for orders, and on hand "
        "cannot drop below that."
    ) % {"reserved": reserved}


@require_POST
@capability_required("inventory.manage")
def sku_adjust(request, sku_id):
    sku = get_object_or_404(Sku, pk=sku_id)
    form = AdjustmentForm(request.POST, prefix="adjust")
    if form.is_valid():
        data = form.cleaned_data
        try:
            entry = services.adjust_stock(
                sku=sku,
                delta=data["delta"],
                reason=data["reason"],
                warehouse=data["warehouse"],
                user=request.user,
            )
        except services.InsufficientStock as exc:
            form.add_error("delta", _insufficient(exc))
        except ValueError as exc:
            form.add_error(None, _("The adjustment was refused: %(reason)s") % {"reason": exc})
        else:
            messages.success(
                request,
                _("On hand changed by %(delta)+d; now %(on_hand)d.")
                % {"delta": entry.on_hand_delta, "on_hand": entry.on_hand_after},
            )
            return redirect("inventory:sku_detail", sku.pk)
    return _render_detail(request, sku.pk, adjust_form=form, status=400)


@require_POST
@capability_required("inventory.manage")
def sku_count(request, sku_id):
    sku = get_object_or_404(Sku, pk=sku_id)
    form = CountForm(request.POST, prefix="count")
    if form.is_valid():
        data = form.cleaned_data
        try:
            entry = services.count_stock(
                sku=sku,
                counted=data["counted"],
                warehouse=data["warehouse"],
                reason=data["reason"],
                user=request.user,
            )
        except services.InsufficientStock as exc:
            form.add_error("counted", _insufficient(exc))
        except ValueError as exc:
            form.add_error(None, _("The count was refused: %(reason)s") % {"reason": exc})
        else:
            if entry is None:
                messages.success(request, _("The count matches the books; nothing changed."))
            else:
                messages.success(
                    request,
                    _("Stock counted: on hand changed by %(delta)+d to %(on_hand)d.")
                    % {"delta": entry.on_hand_delta, "on_hand": entry.on_hand_after},
                )
            return redirect("inventory:sku_detail", sku.pk)
    return _render_detail(request, sku.pk, count_form=form, status=400)


@require_POST
@capability_required("inventory.manage")
def sku_location(request, sku_id):
    """Set the SKU's location (库位) in one warehouse; pick lists are sorted by it."""
    sku = get_object_or_404(Sku, pk=sku_id)
    form = LocationForm(request.POST)
    if not form.is_valid():
        errors = "; ".join(e for field in form.errors.values() for e in field)
        messages.error(request, _("The location was not saved: %(reason)s") % {"reason": errors})
        return redirect("inventory:sku_detail", sku.pk)
    try:
        level = services.set_location(
            sku=sku, warehouse=form.cleaned_data["warehouse"], location=form.cleaned_data["location"]
        )
    except ValueError as exc:
        messages.error(request, _("The location was not saved: %(reason)s") % {"reason": exc})
    else:
        if level.location:
            messages.success(
                request,
                _("Location in %(warehouse)s set to %(location)s.")
                % {"warehouse": form.cleaned_data["warehouse"].name, "location": level.location},
            )
        else:
            messages.success(
                request,
                _("Location in %(warehouse)s cleared.") % {"warehouse": form.cleaned_data["warehouse"].name},
            )
    return redirect("inventory:sku_detail", sku.pk)


# --- listings: lock, push, match -----------------------------------------------------------------


def _listing_row(request, listing_id: int, **extra):
    context = request.POST if request.method == "POST" else request.GET
    return render(
        request,
        "inventory/_listing_row.html",
        {"l": selectors.listing_with_store(listing_id), "show_sku": context.get("ctx") == "sync", **extra},
    )


@capability_required("dashboard.view")
def listing_row(request, listing_id):
    get_object_or_404(Listing, pk=listing_id)
    return _listing_row(request, listing_id)


@require_POST
@capability_required("inventory.manage")
def listing_lock(request, listing_id):
    listing = get_object_or_404(Listing, pk=listing_id)
    sync.set_listing_lock(listing=listing, locked=request.POST.get("locked") == "1")
    return _listing_row(request, listing_id)


@require_POST
@capability_required("inventory.manage")
def listing_push(request, listing_id):
    """Push now / retry: a forced push of the current number, in the worker."""
    listing = get_object_or_404(Listing, pk=listing_id)
    transaction.on_commit(lambda: tasks.push_listing_task.delay(listing.pk, force=True))
    return _listing_row(request, listing_id, queued=True)


@capability_required("dashboard.view")
def unmatched(request):
    store_id = _int(request.GET.get("store"))
    q = request.GET.get("q", "")
    page = selectors.newest_first_page(
        selectors.unmatched_listings(store_id=store_id, q=q),
        before=_int(request.GET.get("before")),
        size=PAGE_SIZE,
    )
    selectors.attach_suggestions(page.rows)
    by_store = selectors.unmatched_by_store()
    return render(
        request,
        "inventory/unmatched.html",
        {
            "page": page,
            "q": q,
            "store_id": store_id,
            "by_store": by_store,
            "total": sum(n for _store, n in by_store),
            "filter_query": _query_without(request, "before"),
        },
    )


@require_POST
@capability_required("inventory.manage")
def listing_match(request, listing_id):
    """Resolve an unmatched listing: match it to the SKU with the posted merchant code, or ignore it."""
    listing = get_object_or_404(Listing.objects.select_related("store"), pk=listing_id)
    form = None
    if request.POST.get("action") == "ignore":
        sync.match_listing(listing=listing, sku=None)
    else:
        form = ListingMatchForm(request.POST)
        if form.is_valid():
            sync.match_listing(listing=listing, sku=form.cleaned_data["sku"])
    listing = selectors.listing_with_store(listing.pk)
    selectors.attach_suggestions([listing])
    return render(request, "inventory/_unmatched_row.html", {"l": listing, "form": form})


# --- sync status ---------------------------------------------------------------------------------


@capability_required("dashboard.view")
def sync_status(request):
    store_id = _int(request.GET.get("store"))
    return render(
        request,
        "inventory/sync.html",
        {
            "counts": selectors.sync_counts(),
            "store_id": store_id,
            "failed": selectors.newest_first_page(
                selectors.failed_listings(store_id=store_id),
                before=_int(request.GET.get("before")),
                size=PAGE_SIZE,
            ),
            "filter_query": _query_without(request, "before"),
        },
    )


@require_POST
@capability_required("inventory.manage")
def retry_failed(request):
    """Queue a retry of every failed push (of one shop, or all), at most 500 at a time."""
    ids = list(
        selectors.failed_listings(store_id=_int(request.POST.get("store"))).values_list("pk", flat=True)[:500]
    )
    transaction.on_commit(lambda: [tasks.push_listing_task.delay(pk) for pk in ids])
    messages.success(request, _("Queued %(n)d pushes for retry.") % {"n": len(ids)})
    return redirect("inventory:sync")

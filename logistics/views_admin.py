"""Shipping settings pages: carrier rules (快递策略), sender addresses, waybill accounts, the
write-back queue (回传队列) and the print history (thin: reads through ``selectors_admin``,
writes through ``configuration`` and the waybill / write-back services).

Reading needs dashboard.view; changing anything shipping.manage (owner, operator, warehouse).
"""

from __future__ import annotations

import logging

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from channels.errors import ChannelError
from channels.models import Store
from logistics import configuration, manual, selectors_admin, waybills, writeback
from logistics.forms_admin import (
    CarrierRuleForm,
    ManualEntryForm,
    PrintFilterForm,
    SenderForm,
    TrackingImportForm,
)
from logistics.models import CarrierRule, SenderAddress, WriteBack
from orders.models import Order
from tenants.accounts.permissions import capability_required

logger = logging.getLogger(__name__)

MAX_IDS = 500


def _put_errors(form, exc: ValidationError) -> None:
    """A service's per-field refusal onto the form (fields it does not have: the whole form)."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


def _ids(request) -> list[int]:
    return [int(v) for v in request.POST.getlist("ids") if v.isdigit() and len(v) < 19][:MAX_IDS]


# --- carrier rules --------------------------------------------------------------------------------


@capability_required("dashboard.view")
def carrier_rules(request):
    return render(request, "logistics/carrier_rules.html", {"rules": selectors_admin.carrier_rules()})


def _rule_form_page(request, rule: CarrierRule | None):
    if request.method == "POST":
        form = CarrierRuleForm(request.POST)
        if form.is_valid():
            try:
                saved = configuration.save_carrier_rule(rule=rule, **form.cleaned_data)
            except ValidationError as exc:
                _put_errors(form, exc)
            else:
                messages.success(request, _("Saved the carrier rule “%(name)s”.") % {"name": saved.name})
                return redirect("logistics:carrier_rules")
        status = 400
    else:
        form = CarrierRuleForm(initial=CarrierRuleForm.initial_for(rule) if rule else None)
        status = 200
    return render(request, "logistics/carrier_rule_form.html", {"form": form, "rule": rule}, status=status)


@capability_required("shipping.manage")
def carrier_rule_new(request):
    return _rule_form_page(request, None)


@capability_required("shipping.manage")
def carrier_rule_edit(request, rule_id):
    return _rule_form_page(request, get_object_or_404(CarrierRule, pk=rule_id))


@require_POST
@capability_required("shipping.manage")
def carrier_rule_toggle(request, rule_id):
    rule = get_object_or_404(CarrierRule, pk=rule_id)
    try:
        rule = configuration.set_carrier_rule_enabled(rule=rule, enabled=not rule.enabled)
    except ValidationError as exc:
        messages.error(
            request,
            _("The rule “%(name)s” cannot be enabled: %(errors)s")
            % {"name": rule.name, "errors": "；".join(exc.messages)},
        )
    else:
        if rule.enabled:
            messages.success(request, _("Enabled the rule “%(name)s”.") % {"name": rule.name})
        else:
            messages.success(request, _("Disabled the rule “%(name)s”.") % {"name": rule.name})
    return redirect("logistics:carrier_rules")


@require_POST
@capability_required("shipping.manage")
def carrier_rule_delete(request, rule_id):
    rule = get_object_or_404(CarrierRule, pk=rule_id)
    configuration.delete_carrier_rule(rule=rule)
    messages.success(request, _("Deleted the rule “%(name)s”.") % {"name": rule.name})
    return redirect("logistics:carrier_rules")


# --- sender addresses -----------------------------------------------------------------------------


@capability_required("dashboard.view")
def senders(request):
    return render(
        request,
        "logistics/senders.html",
        {"senders": SenderAddress.objects.select_related("warehouse").order_by("-is_default", "id")},
    )


def _sender_form_page(request, sender: SenderAddress | None):
    if request.method == "POST":
        form = SenderForm(request.POST, instance=sender or SenderAddress())
        if form.is_valid():
            values = {f: form.cleaned_data[f] for f in configuration.SENDER_FIELDS}
            try:
                saved = configuration.save_sender(
                    sender=sender, make_default=form.cleaned_data["make_default"], **values
                )
            except ValidationError as exc:
                _put_errors(form, exc)
            else:
                messages.success(request, _("Saved the sender address of %(name)s.") % {"name": saved.name})
                return redirect("logistics:senders")
        status = 400
    else:
        form, status = SenderForm(instance=sender), 200
    return render(request, "logistics/sender_form.html", {"form": form, "sender": sender}, status=status)


@capability_required("shipping.manage")
def sender_new(request):
    return _sender_form_page(request, None)


@capability_required("shipping.manage")
def sender_edit(request, sender_id):
    return _sender_form_page(request, get_object_or_404(SenderAddress, pk=sender_id))


@require_POST
@capability_required("shipping.manage")
def sender_default(request, sender_id):
    sender = configuration.set_default_sender(sender=get_object_or_404(SenderAddress, pk=sender_id))
    messages.success(request, _("%(name)s is now the default sender.") % {"name": sender.name})
    return redirect("logistics:senders")


@require_POST
@capability_required("shipping.manage")
def sender_delete(request, sender_id):
    sender = get_object_or_404(SenderAddress, pk=sender_id)
    configuration.delete_sender(sender=sender)
    messages.success(request, _("Deleted the sender address of %(name)s.") % {"name": sender.name})
    return redirect("logistics:senders")


# --- waybill accounts -----------------------------------------------------------------------------


@capability_required("dashboard.view")
def waybill_accounts(request):
    return render(
        request, "logistics/waybill_accounts.html", {"stores": selectors_admin.stores_with_accounts()}
    )


@require_POST
@capability_required("shipping.manage")
def waybill_accounts_sync(request, store_id):
    """Read the shop's e-waybill subscriptions from the platform now."""
    store = get_object_or_404(Store, pk=store_id)
    try:
        count = waybills.sync_accounts(store)
    except (ChannelError, NotImplementedError) as exc:
        logger.warning("waybill accounts of store %s not read: %s", store.pk, exc)
        messages.error(
            request,
            _("Could not read the waybill accounts of %(shop)s: %(error)s")
            % {"shop": store.name, "error": exc},
        )
    else:
        messages.success(
            request, _("Read %(n)d waybill accounts of %(shop)s.") % {"n": count or 0, "shop": store.name}
        )
    return redirect("logistics:waybill_accounts")


# --- write-back queue -----------------------------------------------------------------------------


@capability_required("dashboard.view")
def write_backs(request):
    tab = request.GET.get("tab", "attention")
    if tab not in selectors_admin.WRITE_BACK_TAB_STATES:
        tab = "attention"
    q = request.GET.get("q", "")[:64]
    page = selectors_admin.KEYSET.page(
        selectors_admin.write_backs(tab, q=q),
        after=request.GET.get("after", ""),
        before=request.GET.get("before", ""),
        size=100,
    )
    labels = {
        "attention": _("Needs attention"),
        "waiting": _("Waiting"),
        "accepted": _("Accepted"),
        "all": _("All"),
    }
    counts = selectors_admin.write_back_counts()
    return render(
        request,
        "logistics/write_backs.html",
        {
            "tab": tab,
            "q": q,
            "page": page,
            "tabs": [(value, labels[value], counts[value]) for value, _s in selectors_admin.WRITE_BACK_TABS],
            "retryable": {WriteBack.Status.FAILED, WriteBack.Status.GIVEN_UP},
        },
    )


@require_POST
@capability_required("shipping.manage")
def write_backs_retry(request):
    ids = _ids(request)
    if not ids:
        messages.error(request, _("Tick the write-backs to retry."))
        return redirect("logistics:write_backs")
    count = writeback.retry_write_backs(ids)
    messages.success(request, _("%(n)d write-backs will be sent again.") % {"n": count})
    return redirect(reverse("logistics:write_backs") + "?tab=waiting")


# --- print history --------------------------------------------------------------------------------


@capability_required("dashboard.view")
def print_history(request):
    form = PrintFilterForm(request.GET)
    data = form.cleaned_data if form.is_valid() else {}
    filters = selectors_admin.PrintFilters(
        q=data.get("q") or "",
        status=data.get("status") or "",
        kind=data.get("kind") or "",
        reprint={"1": True, "0": False}.get(data.get("reprint") or ""),
        since=data.get("since"),
        until=data.get("until"),
    )
    page = selectors_admin.KEYSET.page(
        selectors_admin.print_records(filters),
        after=request.GET.get("after", ""),
        before=request.GET.get("before", ""),
        size=100,
    )
    query = request.GET.copy()
    for key in ("after", "before"):
        query.pop(key, None)
    return render(
        request,
        "logistics/print_history.html",
        {"form": form, "page": page, "filter_query": query.urlencode()},
    )


# --- ship by hand: enter or import tracking numbers -------------------------------------------------

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _manual_page(request, *, entry_form=None, import_form=None, batch=None, status=200):
    from logistics.models import ShipBatch

    recent = ShipBatch.objects.filter(kind=ShipBatch.Kind.IMPORT_TRACKING).select_related("created_by")[:10]
    return render(
        request,
        "logistics/manual.html",
        {
            "entry_form": entry_form or ManualEntryForm(),
            "import_form": import_form or TrackingImportForm(),
            "batch": batch,
            "report": manual.ImportReport.from_batch(batch) if batch else None,
            "recent": recent,
            "columns": manual.COLUMNS,
        },
        status=status,
    )


@capability_required("shipping.manage")
def manual_entry(request):
    """The page: one order's tracking number, or a workbook of them."""
    if request.method != "POST":
        return _manual_page(request)
    form = ManualEntryForm(request.POST)
    if not form.is_valid():
        return _manual_page(request, entry_form=form, status=400)
    data = form.cleaned_data
    found = Order.objects.filter(platform_order_id=data["platform_order_id"]).select_related("store")
    if data["store"]:
        found = found.filter(store=data["store"])
    found = list(found[:2])
    if len(found) != 1:
        form.add_error(
            "platform_order_id",
            _("No order has this number.")
            if not found
            else _("Several shops have an order with this number: say which shop."),
        )
        return _manual_page(request, entry_form=form, status=400)
    try:
        entry = manual.enter_tracking(found[0], data["carrier"], data["tracking_no"], actor=request.user)
    except ValidationError as exc:
        _put_errors(form, exc)
        return _manual_page(request, entry_form=form, status=400)
    values = {"order": found[0].platform_order_id, "no": entry.parcel.tracking_no}
    if not entry.changed:
        messages.info(request, _("Order %(order)s already has tracking number %(no)s.") % values)
    elif entry.shipped:
        messages.success(request, _("Order %(order)s shipped with tracking number %(no)s.") % values)
    elif entry.ship_error:
        messages.warning(
            request,
            _("Tracking number %(no)s entered for order %(order)s, but it could not be shipped: %(error)s")
            % {**values, "error": entry.ship_error},
        )
    else:
        messages.success(request, _("Tracking number %(no)s entered for order %(order)s.") % values)
    return redirect("logistics:manual")


@require_POST
@capability_required("shipping.manage")
def manual_import(request):
    form = TrackingImportForm(request.POST, request.FILES)
    if not form.is_valid():
        return _manual_page(request, import_form=form, status=400)
    batch = manual.start_import(form.cleaned_data["file"], actor=request.user)
    return redirect("logistics:manual_batch", batch_id=batch.pk)


@capability_required("shipping.manage")
def manual_template(request):
    response = HttpResponse(manual.template_workbook(), content_type=XLSX_TYPE)
    response["Content-Disposition"] = 'attachment; filename="tracking-numbers-template.xlsx"'
    return response


def _import_batch(batch_id: int):
    from logistics.models import ShipBatch

    return get_object_or_404(ShipBatch, pk=batch_id, kind=ShipBatch.Kind.IMPORT_TRACKING)


@capability_required("shipping.manage")
def manual_batch(request, batch_id):
    """An import's progress and report (the progress part alone for htmx polling)."""
    batch = _import_batch(batch_id)
    if request.headers.get("HX-Request"):
        return render(
            request,
            "logistics/_import_batch.html",
            {"batch": batch, "report": manual.ImportReport.from_batch(batch)},
        )
    return _manual_page(request, batch=batch)


@capability_required("shipping.manage")
def manual_batch_errors(request, batch_id):
    """The failed rows of an import as a workbook, with the reason per row."""
    batch = _import_batch(batch_id)
    response = HttpResponse(
        manual.errors_workbook(manual.ImportReport.from_batch(batch)), content_type=XLSX_TYPE
    )
    response["Content-Disposition"] = f'attachment; filename="tracking-import-{batch.pk}-errors.xlsx"'
    return response

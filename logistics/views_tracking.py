"""Tracking pages: a parcel's carrier timeline (a fragment the workbench can include or load with
htmx) and the tracking page — intercept requests for after-sales, parcels with a carrier
exception, orders against their promised ship-by time. Each view calls ``logistics.tracking``."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from channels.errors import ChannelError
from logistics import tracking
from logistics.models import Intercept, Parcel
from tenants.accounts.permissions import capability_required

TABS = ("intercepts", "exceptions", "overdue")
INTERCEPT_STATES = {
    "open": [Intercept.Status.REQUESTED],
    "closed": [Intercept.Status.DONE, Intercept.Status.FAILED],
}
DUE_SOON_HOURS = 6


@capability_required("dashboard.view")
def timeline(request, parcel_id: int):
    """The parcel's events, newest first (fragment)."""
    parcel = get_object_or_404(Parcel.objects.select_related("store"), pk=parcel_id)
    return render(request, "logistics/_tracking_timeline.html", _timeline_context(parcel))


def _timeline_context(parcel: Parcel) -> dict:
    return {
        "parcel": parcel,
        "events": list(parcel.events.order_by("-occurred_at", "-id")[:200]),
        "intercepts": list(parcel.intercepts.select_related("order").order_by("-id")),
    }


@require_POST
@capability_required("shipping.manage")
def timeline_pull(request, parcel_id: int):
    """Pull the trace now and answer the refreshed fragment."""
    parcel = get_object_or_404(Parcel.objects.select_related("store"), pk=parcel_id)
    context = _timeline_context(parcel)
    if parcel.status == Parcel.Status.SHIPPED and parcel.tracking_no:
        try:
            tracking.pull(parcel)
        except ChannelError as exc:
            context["error"] = str(exc)
        context = {**_timeline_context(parcel), "error": context.get("error", "")}
    return render(request, "logistics/_tracking_timeline.html", context)


@capability_required("dashboard.view")
def page(request):
    tab = request.GET.get("tab", "intercepts")
    if tab not in TABS:
        tab = "intercepts"
    state = request.GET.get("state", "open")
    if state not in INTERCEPT_STATES:
        state = "open"
    counts = tracking.alert_counts(hours=DUE_SOON_HOURS)
    context = {"tab": tab, "state": state, "counts": counts, "due_soon_hours": DUE_SOON_HOURS}
    if tab == "intercepts":
        context["intercepts"] = (
            Intercept.objects.filter(status__in=INTERCEPT_STATES[state])
            .select_related("parcel", "order", "order__store", "actor")
            .order_by("-id")[:500]
        )
    elif tab == "exceptions":
        parcels = list(tracking.exception_parcels()[:500])
        last = {}
        for parcel in parcels:
            event = parcel.events.order_by("-occurred_at", "-id").first()
            last[parcel.pk] = event.description if event else ""
        context["parcels"] = [(p, last[p.pk]) for p in parcels]
    else:
        context["orders"] = tracking.overdue(hours=DUE_SOON_HOURS)[:500]
    context["tabs"] = [
        ("intercepts", _("Intercepts"), counts["intercepts"]),
        ("exceptions", _("Carrier exceptions"), counts["exceptions"]),
        ("overdue", _("Ship-by due"), counts["due_soon"]),
    ]
    return render(request, "logistics/tracking.html", context)


@require_POST
@capability_required("shipping.manage")
def intercepts_close(request):
    """After-sales reports the outcome of the selected open requests."""
    outcome = request.POST.get("outcome")
    ids = [int(i) for i in request.POST.getlist("ids") if i.isdigit() and len(i) < 19]
    if outcome not in ("done", "failed"):
        messages.error(request, _("Choose whether the parcels were intercepted or not."))
    elif not ids:
        messages.error(request, _("Tick the intercept requests to close."))
    elif closed := tracking.close_intercepts(ids, done=outcome == "done", actor=request.user):
        messages.success(request, _("%(n)s intercept request(s) closed.") % {"n": closed})
    else:
        messages.error(request, _("The ticked requests were already closed."))
    return redirect(reverse("logistics:tracking") + "?tab=intercepts")

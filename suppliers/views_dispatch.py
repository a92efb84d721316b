"""Merchant pages of dispatches (代发单): the list with status tabs and counts, filters
(supplier, shop, overdue, order id) and the SLA countdown; one dispatch (lines, amounts,
parcels and tracking, timeline); each supplier's performance over a period. Staff read them
(dashboard.view); the dispatches themselves are worked in the supplier portal. Reads through
``suppliers.selectors``."""

from __future__ import annotations

from django.http import Http404, QueryDict
from django.shortcuts import render

from channels.models import Store
from ecbao import paging
from suppliers import selectors
from suppliers.models import Dispatch, Supplier
from tenants.accounts.permissions import capability_required

KEYSET = paging.Keyset("-id")
PAGE_SIZE = 50


def _id(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) < 19 else None


def _without(params: QueryDict, *names: str) -> str:
    query = params.copy()
    for name in names:
        query.pop(name, None)
    return query.urlencode()


@capability_required("dashboard.view")
def dispatch_list(request):
    params = request.GET
    tab = params.get("tab", "")
    if tab not in selectors.TAB_STATUSES:
        tab = ""
    supplier, store = _id(params.get("supplier")), _id(params.get("store"))
    overdue = params.get("overdue") == "1"
    search = params.get("q", "").strip()[: selectors.MAX_SEARCH]
    qs = selectors.dispatches(supplier=supplier, tab=tab, store=store, overdue=overdue, search=search)
    after, before = params.get("after", ""), params.get("before", "")
    if (after and KEYSET.parse(Dispatch, after) is None) or (
        before and KEYSET.parse(Dispatch, before) is None
    ):
        after = before = ""
    page = KEYSET.page(qs, after=after, before=before, size=PAGE_SIZE)
    for dispatch in page.rows:
        dispatch.sla_state = selectors.sla(dispatch)
    counts = selectors.tab_counts(supplier=supplier, store=store)
    return render(
        request,
        "suppliers/dispatch_list.html",
        {
            "page": page,
            "tab": tab,
            "tabs": [(key, label, counts[key]) for key, label, _s in selectors.TABS],
            "counts": counts,
            "suppliers": Supplier.objects.order_by("code"),
            "stores": Store.objects.order_by("name"),
            "supplier": supplier,
            "store": store,
            "overdue": overdue,
            "q": search,
            "tab_query": _without(params, "tab", "after", "before"),
            "filter_query": _without(params, "after", "before"),
            "paged": bool(after or before),
        },
    )


@capability_required("dashboard.view")
def dispatch_detail(request, dispatch_id: int):
    dispatch = selectors.dispatches().filter(pk=dispatch_id).first()
    if dispatch is None:
        raise Http404
    return render(request, "suppliers/dispatch_detail.html", {"d": dispatch, **selectors.detail(dispatch)})


@capability_required("dashboard.view")
def performance(request):
    since, until, days = selectors.period(request.GET.get("days"))
    return render(
        request,
        "suppliers/performance.html",
        {
            "rows": selectors.performance(since=since, until=until),
            "days": days,
            "periods": list(selectors.PERIODS),
            "since": since,
            "until": until,
        },
    )

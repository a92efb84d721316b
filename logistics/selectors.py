"""Reads behind the shipping workbench: the tabs 待打单 / 待发货 / 已发货 with counts, a page of
parcels at a time (keyset, newest first, through ``ecbao.paging``; the ``parcel_status``
index (status, id desc) serves every tab).

Whose parcels (``logistics.scope``): ``warehouse=None`` is the merchant's workbench — parcels
of the own warehouses only (a supplier's parcels are worked in the supplier portal);
``warehouse=`` one warehouse (an own one as the workbench's filter, or a supplier's for the
portal)."""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Prefetch, QuerySet
from django.utils.translation import gettext_lazy as _

from ecbao import paging
from logistics import scope
from logistics.models import Parcel, ParcelLine, ShipBatch, WriteBack
from orders.models import Fulfilment, FulfilmentLine, OrderStatus

P = Parcel.Status
TO_PRINT, TO_SHIP, SHIPPED = "to_print", "to_ship", "shipped"

#: (query value, label, parcel states)
TABS = (
    (TO_PRINT, _("To print"), (P.NEW, P.NUMBERED)),  # 待打单
    (TO_SHIP, _("To ship"), (P.PRINTED, P.VERIFIED)),  # 待发货
    (SHIPPED, _("Shipped"), (P.SHIPPED,)),  # 已发货
)
TAB_STATES = {value: states for value, _label, states in TABS}
KEYSET = paging.Keyset("-id")


def tab_parcels(tab: str, *, store_id: int | None = None, warehouse=None) -> QuerySet[Parcel]:
    """The parcels of one tab, of the own warehouses (``warehouse=None``) or of one warehouse.
    Before shipping, only parcels of open fulfilments whose every order waits to ship
    (approved or partly shipped): a held or cancelled order's parcel is never offered for
    printing or shipping."""
    if tab not in TAB_STATES:
        raise ValueError(f"unknown tab {tab!r}")
    qs = scope.scoped(Parcel.objects.filter(status__in=TAB_STATES[tab]), warehouse)
    if tab != SHIPPED:
        not_ready = FulfilmentLine.objects.filter(fulfilment=OuterRef("fulfilment_id")).exclude(
            order_line__order__status__in=(OrderStatus.APPROVED, OrderStatus.PARTIALLY_SHIPPED)
        )
        qs = qs.filter(fulfilment__status=Fulfilment.Status.OPEN).filter(~Exists(not_ready))
    if store_id:
        qs = qs.filter(store_id=store_id)
    return qs


def tab_counts(*, store_id: int | None = None, warehouse=None) -> dict[str, int]:
    return {
        value: tab_parcels(value, store_id=store_id, warehouse=warehouse).count()
        for value, _label, _states in TABS
    }


def parcel_page(
    tab: str,
    *,
    after: str = "",
    before: str = "",
    size: int = 50,
    store_id: int | None = None,
    warehouse=None,
):
    """One page of a tab's parcels, newest first, with lines (and their orders) and write-backs."""
    qs = (
        tab_parcels(tab, store_id=store_id, warehouse=warehouse)
        .select_related("store", "fulfilment")
        .prefetch_related(
            Prefetch("lines", queryset=ParcelLine.objects.select_related("order_line__order")),
            Prefetch("write_backs", queryset=WriteBack.objects.order_by("id")),
        )
    )
    return KEYSET.page(qs, after=after, before=before, size=size)


def parcel_orders(parcel: Parcel) -> list:
    """The orders a parcel carries (a merged parcel: several), from prefetched lines."""
    seen = {}
    for line in parcel.lines.all():
        seen.setdefault(line.order_line.order_id, line.order_line.order)
    return [seen[k] for k in sorted(seen)]


def batch_progress(batch: ShipBatch, unfinished: QuerySet[Parcel]) -> dict:
    """A batch's counts and state, with the first 200 of ``unfinished`` parcels that carry an
    error (what the page's progress poll and the API show)."""
    failed = unfinished.exclude(error="").order_by("pk").values_list("pk", "error")[:200]
    return {
        "id": batch.pk,
        "status": batch.status,
        "total": batch.total,
        "done": batch.done,
        "failed": batch.failed,
        "errors": [{"parcel": pk, "error": error} for pk, error in failed],
    }

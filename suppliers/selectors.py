"""Reads of dispatches shared by the merchant pages, the API and the supplier portal: the list
with its status tabs and filters, the SLA clock, and each supplier's performance.

Scope first: the portal passes ``supplier=request.user.supplier_id`` (a supplier sees only its
own dispatches); the merchant pages pass none (every supplier).

SLA: a dispatch not shipped yet is *overdue* once its ship-by time (the platform's promise) is
past; one shipped after it was *late*. Performance over a period (dispatches sent in it):
ship time p50/p90 (sent → shipped, ``percentile_cont`` in SQL), overdue rate (late or overdue
among those due: shipped, or open past ship-by), cancellation interception rate (intercepted
among cancellations the supplier confirmed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.postgres.aggregates import ArrayAgg
from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from logistics.models import Parcel
from suppliers.dispatches import ACTIVE
from suppliers.models import Dispatch, Supplier

D = Dispatch.Status

#: status tabs of the dispatch lists: (key, label, statuses)
TABS: list[tuple[str, object, tuple[str, ...]]] = [
    ("new", _("New"), (D.NEW,)),
    ("to_ship", _("To ship"), (D.ACKNOWLEDGED,)),
    ("partial", _("Partly shipped"), (D.PARTIALLY_SHIPPED,)),
    ("shipped", _("Shipped"), (D.SHIPPED,)),
    ("cancelling", _("Cancelling"), (D.CANCELLING,)),
    ("cancelled", _("Cancelled"), (D.CANCELLED,)),
]
TAB_STATUSES = {key: statuses for key, _label, statuses in TABS}
MAX_SEARCH = 64


def overdue_q(now: datetime | None = None) -> Q:
    """Not shipped yet (new, acknowledged, partly shipped) and past its ship-by time."""
    return Q(status__in=ACTIVE, ship_by__lt=now or timezone.now())


def dispatches(
    *,
    supplier: Supplier | int | None = None,
    tab: str | None = None,
    store: int | None = None,
    overdue: bool = False,
    search: str = "",
    now: datetime | None = None,
) -> QuerySet[Dispatch]:
    """Dispatches, newest first, with ``order_ids`` (the platform order ids they ship) and their
    supplier and shop. ``tab`` one of ``TABS`` (unknown: all); ``search`` an order id (exact
    or its beginning) or a dispatch id."""
    qs = Dispatch.objects.select_related("supplier", "store").annotate(
        order_ids=ArrayAgg(
            "lines__order_line__order__platform_order_id",
            distinct=True,
            filter=Q(lines__isnull=False),
            default=[],
        )
    )
    qs = scoped(qs, supplier)
    if tab in TAB_STATUSES:
        qs = qs.filter(status__in=TAB_STATUSES[tab])
    if store:
        qs = qs.filter(store_id=store)
    if overdue:
        qs = qs.filter(overdue_q(now))
    search = (search or "").strip()[:MAX_SEARCH]
    if search:
        match = Dispatch.objects.filter(lines__order_line__order__platform_order_id__startswith=search)
        by_id = Q(pk=int(search)) if search.isdigit() and len(search) < 19 else Q(pk__in=[])
        qs = qs.filter(Q(pk__in=match.values("pk")) | by_id)
    return qs.order_by("-id")


def scoped(qs: QuerySet[Dispatch], supplier: Supplier | int | None) -> QuerySet[Dispatch]:
    if supplier is None:
        return qs
    return qs.filter(supplier_id=supplier if isinstance(supplier, int) else supplier.pk)


def tab_counts(
    *, supplier: Supplier | int | None = None, store: int | None = None, now=None
) -> dict[str, int]:
    """{tab key: count} plus ``overdue`` and ``all``, in one query."""
    qs = scoped(Dispatch.objects.all(), supplier)
    if store:
        qs = qs.filter(store_id=store)
    aggregates = {key: Count("pk", filter=Q(status__in=statuses)) for key, _label, statuses in TABS}
    counts = qs.aggregate(**aggregates, overdue=Count("pk", filter=overdue_q(now)), all=Count("pk"))
    return counts


@dataclass(frozen=True)
class Sla:
    seconds_left: int | None  # ship_by − now (negative: past); None without a ship-by
    overdue: bool  # not shipped and past ship_by
    late: bool  # shipped after ship_by


def sla(dispatch: Dispatch, *, now: datetime | None = None) -> Sla:
    """The SLA clock of one dispatch."""
    now = now or timezone.now()
    if dispatch.ship_by is None:
        return Sla(None, False, False)
    left = int((dispatch.ship_by - now).total_seconds())
    overdue = dispatch.status in ACTIVE and left < 0
    late = dispatch.shipped_at is not None and dispatch.shipped_at > dispatch.ship_by
    return Sla(left, overdue, late)


def detail(dispatch: Dispatch) -> dict:
    """Everything the detail page (and the portal's) shows of one dispatch: lines, parcels
    with tracking, and the timeline (oldest first)."""
    lines = list(dispatch.lines.select_related("order_line__order", "sku").order_by("id"))
    parcels = list(
        Parcel.objects.filter(fulfilment_id=dispatch.fulfilment_id)
        .prefetch_related("lines")
        .order_by("seq", "id")
    )
    orders = {row.order_line.order_id: row.order_line.order for row in lines}
    timeline = [
        (dispatch.sent_at, _("Sent to the supplier"), ""),
        (dispatch.notified_at, _("Supplier notified"), ""),
        (dispatch.acknowledged_at, _("Acknowledged by the supplier"), ""),
        *(
            (p.shipped_at, _("Parcel shipped"), f"{p.carrier} {p.tracking_no}")
            for p in parcels
            if p.shipped_at
        ),
        (dispatch.shipped_at, _("Shipped"), ""),
        (dispatch.cancelled_at, _("Cancelled"), dispatch.cancel_reason),
        (
            dispatch.cancel_confirmed_at,
            _("Interception confirmed") if dispatch.intercepted else _("Could not intercept (already sent)"),
            "",
        ),
    ]
    return {
        "lines": lines,
        "orders": list(orders.values()),
        "parcels": parcels,
        "timeline": sorted(((at, what, note) for at, what, note in timeline if at), key=lambda t: t[0]),
        "sla": sla(dispatch),
        "margin_fen": dispatch.amount_fen - dispatch.goods_cost_fen - dispatch.freight_fen,
    }


# --- performance -------------------------------------------------------------------------------------------

_PERFORMANCE_SQL = """
SELECT d.supplier_id,
       count(*) AS sent,
       count(*) FILTER (WHERE d.shipped_at IS NOT NULL) AS shipped,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM d.shipped_at - d.sent_at))
           FILTER (WHERE d.shipped_at IS NOT NULL) AS p50,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM d.shipped_at - d.sent_at))
           FILTER (WHERE d.shipped_at IS NOT NULL) AS p90,
       count(*) FILTER (WHERE d.ship_by IS NOT NULL AND (
           (d.shipped_at IS NOT NULL AND d.shipped_at > d.ship_by)
           OR (d.shipped_at IS NULL AND d.status = ANY(%(active)s) AND d.ship_by < %(now)s))) AS overdue,
       count(*) FILTER (WHERE d.ship_by IS NOT NULL AND (
           d.shipped_at IS NOT NULL
           OR (d.status = ANY(%(active)s) AND d.ship_by < %(now)s))) AS due,
       count(*) FILTER (WHERE d.status = 'cancelled' AND d.cancel_confirmed_at IS NOT NULL) AS confirmed,
       count(*) FILTER (WHERE d.status = 'cancelled' AND d.intercepted) AS intercepted,
       count(*) FILTER (WHERE d.status = 'cancelling') AS cancelling,
       count(*) FILTER (WHERE d.status = ANY(%(active)s)) AS open
FROM {table} d
WHERE d.sent_at >= %(since)s AND d.sent_at < %(until)s {supplier}
GROUP BY d.supplier_id
"""


@dataclass(frozen=True)
class Performance:
    supplier: Supplier
    sent: int
    shipped: int
    open: int
    p50_seconds: float | None
    p90_seconds: float | None
    overdue: int
    due: int
    cancellations_confirmed: int
    intercepted: int
    cancelling: int

    @property
    def overdue_rate(self) -> float | None:
        return self.overdue / self.due if self.due else None

    @property
    def interception_rate(self) -> float | None:
        return self.intercepted / self.cancellations_confirmed if self.cancellations_confirmed else None

    # for the page
    @property
    def p50_hours(self) -> float | None:
        return self.p50_seconds / 3600 if self.p50_seconds is not None else None

    @property
    def p90_hours(self) -> float | None:
        return self.p90_seconds / 3600 if self.p90_seconds is not None else None

    @property
    def overdue_percent(self) -> float | None:
        return self.overdue_rate * 100 if self.overdue_rate is not None else None

    @property
    def interception_percent(self) -> float | None:
        return self.interception_rate * 100 if self.interception_rate is not None else None


def performance(
    *,
    since: datetime,
    until: datetime | None = None,
    supplier: Supplier | int | None = None,
    now: datetime | None = None,
) -> list[Performance]:
    """Per supplier, over the dispatches sent in [since, until): counts, ship time p50/p90,
    overdue rate, interception rate (see the module docstring). Suppliers without dispatches in
    the period are listed with zeros (all of them, or the one asked for)."""
    now = now or timezone.now()
    until = until or now
    params = {"since": since, "until": until, "now": now, "active": list(ACTIVE)}
    only = ""
    if supplier is not None:
        params["supplier"] = supplier if isinstance(supplier, int) else supplier.pk
        only = "AND d.supplier_id = %(supplier)s"
    sql = _PERFORMANCE_SQL.format(table=connection.ops.quote_name(Dispatch._meta.db_table), supplier=only)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = {row[0]: row[1:] for row in cursor.fetchall()}
    suppliers = Supplier.objects.order_by("code")
    if supplier is not None:
        suppliers = suppliers.filter(pk=params["supplier"])
    result = []
    for s in suppliers:
        sent, shipped, p50, p90, overdue, due, confirmed, intercepted, cancelling, open_ = rows.get(
            s.pk, (0, 0, None, None, 0, 0, 0, 0, 0, 0)
        )
        result.append(
            Performance(
                supplier=s,
                sent=sent,
                shipped=shipped,
                open=open_,
                p50_seconds=float(p50) if p50 is not None else None,
                p90_seconds=float(p90) if p90 is not None else None,
                overdue=overdue,
                due=due,
                cancellations_confirmed=confirmed,
                intercepted=intercepted,
                cancelling=cancelling,
            )
        )
    return result


PERIODS = {"7": 7, "30": 30, "90": 90}


def period(days: str | None, *, now: datetime | None = None) -> tuple[datetime, datetime, str]:
    """(since, until, key) for a period key of ``PERIODS`` (default 30 days)."""
    key = days if days in PERIODS else "30"
    now = now or timezone.now()
    return now - timedelta(days=PERIODS[key]), now, key

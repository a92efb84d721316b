"""Reads of the supplier portal and the supplier API, always through a :class:`Scope`: the
dispatch tabs with counts, filters, one keyset page, a dispatch's lines / orders / parcels,
and the month's shipped totals (对账单 preview)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet, Sum
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ecbao import paging
from logistics.models import Parcel, ParcelLine
from orders.models import Order
from suppliers.models import Dispatch, DispatchLine
from suppliers.portal.scope import Scope

S = Dispatch.Status
NEW, TO_SHIP, SHIPPED, CANCELLED = "new", "to_ship", "shipped", "cancelled"
OPEN_STATES = (S.NEW, S.ACKNOWLEDGED, S.PARTIALLY_SHIPPED)
#: (query value, label, dispatch states). The 售后 tab links to the after-sales pages
#: (aftersales.portal, /supplier/aftersales/) with the count of those waiting for the supplier.
TABS = (
    (NEW, _("New"), (S.NEW,)),  # 新单
    (TO_SHIP, _("To ship"), (S.ACKNOWLEDGED, S.PARTIALLY_SHIPPED)),  # 待发货
    (SHIPPED, _("Shipped"), (S.SHIPPED,)),  # 已发货
    (CANCELLED, _("Cancelled"), (S.CANCELLING, S.CANCELLED)),  # 已取消
)
TAB_VALUES = [value for value, _label, _states in TABS]
KEYSET = paging.Keyset("-id")
SHANGHAI = "Asia/Shanghai"


@dataclass
class Filters:
    store_id: int | None = None
    day_from: date | None = None
    day_to: date | None = None
    order_id: str = ""
    overdue: bool = False

    @classmethod
    def parse(cls, params) -> Filters:
        def day(name: str) -> date | None:
            try:
                return date.fromisoformat(params.get(name, "")[:10])
            except ValueError:
                return None

        store = params.get("store", "")
        return cls(
            store_id=int(store) if store.isdigit() and len(store) < 19 else None,
            day_from=day("from"),
            day_to=day("to"),
            order_id=params.get("order", "").strip()[:64],
            overdue=params.get("overdue", "") == "1",
        )

    def query(self) -> dict[str, str]:
        return {
            "store": str(self.store_id or ""),
            "from": self.day_from.isoformat() if self.day_from else "",
            "to": self.day_to.isoformat() if self.day_to else "",
            "order": self.order_id,
            "overdue": "1" if self.overdue else "",
        }


def _local_midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_default_timezone())


def refunding() -> Exists:
    """A dispatch with an order line in a refund (or its order refunding): flagged on its row."""
    return Exists(
        DispatchLine.objects.filter(dispatch=OuterRef("pk")).filter(
            ~Q(order_line__refund_state="") | Q(order_line__order__is_refunding=True)
        )
    )


def overdue(now: datetime | None = None) -> Q:
    """Not shipped yet and past the promised ship-by (the dispatch's or a line's deadline)."""
    now = now or timezone.now()
    late_line = DispatchLine.objects.filter(dispatch=OuterRef("pk"), delivery_deadline__lt=now)
    return Q(status__in=OPEN_STATES) & (Q(ship_by__lt=now) | Q(Exists(late_line)))


def filtered(scope: Scope, filters: Filters) -> QuerySet[Dispatch]:
    qs = scope.dispatches()
    if filters.store_id:
        qs = qs.filter(store_id=filters.store_id)
    if filters.day_from:
        qs = qs.filter(sent_at__gte=_local_midnight(filters.day_from))
    if filters.day_to:
        qs = qs.filter(sent_at__lt=_local_midnight(filters.day_to + timedelta(days=1)))
    if filters.order_id:
        qs = qs.filter(
            Exists(
                DispatchLine.objects.filter(
                    dispatch=OuterRef("pk"), order_line__order__platform_order_id=filters.order_id
                )
            )
        )
    if filters.overdue:
        qs = qs.filter(overdue())
    return qs


def tab_dispatches(scope: Scope, tab: str, filters: Filters | None = None) -> QuerySet[Dispatch]:
    if tab not in TAB_VALUES:
        raise ValueError(f"unknown tab {tab!r}")
    qs = filtered(scope, filters or Filters())
    states = dict((v, s) for v, _label, s in TABS)[tab]
    return qs.filter(status__in=states)


def tab_counts(scope: Scope, filters: Filters | None = None) -> dict[str, int]:
    qs = filtered(scope, filters or Filters())
    by_status = dict(qs.values_list("status").annotate(n=Count("pk")).order_by())
    counts = {value: sum(by_status.get(s, 0) for s in states) for value, _label, states in TABS}
    counts["cancelling"] = by_status.get(S.CANCELLING, 0)
    return counts


def detail_queryset(qs: QuerySet[Dispatch]) -> QuerySet[Dispatch]:
    return qs.select_related("store", "fulfilment").prefetch_related(
        Prefetch(
            "lines",
            queryset=DispatchLine.objects.select_related("order_line__order", "sku").order_by("id"),
        ),
        Prefetch(
            "fulfilment__parcels",
            queryset=Parcel.objects.exclude(status=Parcel.Status.CANCELLED).order_by("seq"),
        ),
    )


def dispatch_page(
    scope: Scope, tab: str, filters: Filters, *, after: str = "", before: str = "", size: int = 50
):
    qs = tab_dispatches(scope, tab, filters)
    if tab == CANCELLED:
        qs = qs.filter(status=S.CANCELLED)  # the ones awaiting confirmation are listed apart, first
    return KEYSET.page(detail_queryset(qs), after=after, before=before, size=size)


def awaiting_interception(scope: Scope, filters: Filters) -> list[Dispatch]:
    """Cancelled dispatches the supplier must still confirm (请确认拦截), oldest first."""
    return list(
        detail_queryset(filtered(scope, filters).filter(status=S.CANCELLING)).order_by("cancelled_at", "id")[
            :200
        ]
    )


@dataclass
class Row:
    dispatch: Dispatch
    orders: list[Order]
    lines: list[DispatchLine]
    parcels: list[Parcel]
    deadline: datetime | None
    refunding: bool = False
    receiver: Order | None = None
    line_deadlines: list = field(default_factory=list)

    @property
    def overdue(self) -> bool:
        return bool(self.deadline and self.deadline < timezone.now() and self.dispatch.status in OPEN_STATES)


def rows(dispatches: list[Dispatch]) -> list[Row]:
    result = []
    for d in dispatches:
        lines = list(d.lines.all())
        orders: dict[int, Order] = {}
        for line in lines:
            orders.setdefault(line.order_line.order_id, line.order_line.order)
        ordered = [orders[k] for k in sorted(orders)]
        deadlines = [x.delivery_deadline for x in lines if x.delivery_deadline]
        deadline = min([t for t in (d.ship_by, *deadlines) if t], default=None)
        result.append(
            Row(
                dispatch=d,
                orders=ordered,
                lines=lines,
                parcels=list(d.fulfilment.parcels.all()),
                deadline=deadline,
                refunding=any(o.is_refunding for o in ordered)
                or any(x.order_line.refund_state for x in lines),
                receiver=ordered[0] if ordered else None,
            )
        )
    return result


def dispatch_detail(scope: Scope, pk) -> Row:
    dispatch = scope.dispatch(pk)
    return rows([detail_queryset(Dispatch.objects.filter(pk=dispatch.pk)).get()])[0]


def stores(scope: Scope) -> list:
    from channels.models import Store

    return list(
        Store.objects.filter(pk__in=scope.dispatches().values("store_id")).order_by("platform", "name")
    )


def parcel_lines(parcels: list[Parcel]) -> dict[int, list[ParcelLine]]:
    lines: dict[int, list[ParcelLine]] = {}
    for pl in ParcelLine.objects.filter(parcel__in=parcels).select_related("order_line").order_by("id"):
        lines.setdefault(pl.parcel_id, []).append(pl)
    return lines


# --- 对账单 (a preview until reconciliation fills it) -----------------------------------------------------


@dataclass
class MonthTotals:
    month: date
    dispatches: list[Dispatch]
    count: int
    goods_cost_fen: int
    freight_fen: int

    @property
    def total_fen(self) -> int:
        return self.goods_cost_fen + self.freight_fen


def month_bounds(month: date) -> tuple[datetime, datetime]:
    start = month.replace(day=1)
    end = (start + timedelta(days=32)).replace(day=1)
    return _local_midnight(start), _local_midnight(end)


def shipped_in_month(scope: Scope, month: date, *, limit: int = 500) -> MonthTotals:
    """The supplier's dispatches shipped (wholly or partly) in ``month`` (Asia/Shanghai), with
    goods cost and freight summed from the dispatches themselves."""
    start, end = month_bounds(month)
    qs = scope.dispatches().filter(
        status__in=(S.SHIPPED, S.PARTIALLY_SHIPPED), shipped_at__gte=start, shipped_at__lt=end
    )
    sums = qs.aggregate(n=Count("pk"), goods=Sum("goods_cost_fen"), freight=Sum("freight_fen"))
    return MonthTotals(
        month=month.replace(day=1),
        dispatches=list(qs.select_related("store").order_by("shipped_at", "id")[:limit]),
        count=sums["n"] or 0,
        goods_cost_fen=sums["goods"] or 0,
        freight_fen=sums["freight"] or 0,
    )

"""Reads of after-sales for the merchant's pages (and the API): the work queues with their
counts, the filtered list in deadline order, the countdown to the platform's auto-approval /
auto-close, and the reasons report (refund rate by SKU, shop or supplier).

Queues: 待处理 / 待退货 / 待收货 / 待退款 are worked against the platform's live deadline, so
they list the nearest deadline first (no deadline last, then by id); 已完成 / 已关闭 / 全部 list
the newest first. Words for statuses and types are here (``QUEUE_LABELS``, ``TYPE_LABELS``,
``CHANNEL_STATUS_LABELS`` …) with a message context of their own, so that "已关闭" never borrows
another page's "Closed".

Money in fen; the report's aggregates run in PostgreSQL (``GROUP BY``), never row by row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Count, F, Q, QuerySet, Sum
from django.utils import timezone
from django.utils.translation import gettext, pgettext_lazy

from aftersales.models import AfterSale, AfterSaleLine
from channels.models import Store
from ecbao import paging
from inventory.models import Sku
from orders.models import OrderLine
from suppliers.models import DispatchLine, Supplier

Q_ = AfterSale.Queue
T = AfterSale.Type

#: the queue tabs, in the operators' order (key, label); "" is 全部
QUEUE_LABELS = {
    Q_.PENDING: pgettext_lazy("after-sale queue", "To handle"),
    Q_.AWAITING_RETURN: pgettext_lazy("after-sale queue", "Awaiting return"),
    Q_.AWAITING_RECEIPT: pgettext_lazy("after-sale queue", "Awaiting receipt"),
    Q_.AWAITING_REFUND: pgettext_lazy("after-sale queue", "Awaiting refund"),
    Q_.DONE: pgettext_lazy("after-sale queue", "Completed"),
    Q_.CLOSED: pgettext_lazy("after-sale queue", "Closed"),
}
TABS: list[tuple[str, object]] = [*QUEUE_LABELS.items(), ("", pgettext_lazy("after-sale queue", "All"))]
#: the queues worked against a deadline (listed nearest deadline first)
DEADLINE_QUEUES = (Q_.PENDING, Q_.AWAITING_RETURN, Q_.AWAITING_RECEIPT, Q_.AWAITING_REFUND)
OPEN_QUEUES = DEADLINE_QUEUES

TYPE_LABELS = {
    T.REFUND_UNSHIPPED: pgettext_lazy("after-sale type", "Refund before shipment"),
    T.REFUND_SHIPPED: pgettext_lazy("after-sale type", "Refund after shipment"),
    T.RETURN_REFUND: pgettext_lazy("after-sale type", "Return and refund"),
    T.EXCHANGE: pgettext_lazy("after-sale type", "Exchange"),
    T.RESHIP: pgettext_lazy("after-sale type", "Reissue"),
    T.OTHER: pgettext_lazy("after-sale type", "Other"),
}
#: the neutral platform status (channels.types.AfterSaleStatus) in words
CHANNEL_STATUS_LABELS = {
    "waiting_merchant": pgettext_lazy("after-sale status", "Waiting for the merchant"),
    "waiting_buyer_return": pgettext_lazy("after-sale status", "Waiting for the buyer to return"),
    "waiting_merchant_receipt": pgettext_lazy("after-sale status", "Waiting for the merchant to receive"),
    "refunding": pgettext_lazy("after-sale status", "Refunding"),
    "succeeded": pgettext_lazy("after-sale status", "Succeeded"),
    "rejected": pgettext_lazy("after-sale status", "Refused by the merchant"),
    "closed": pgettext_lazy("after-sale status", "Closed"),
}
SUPPLIER_ANSWER_LABELS = {
    AfterSale.SupplierAnswer.NONE: pgettext_lazy("supplier answer", "No answer yet"),
    AfterSale.SupplierAnswer.INTERCEPTED: pgettext_lazy("supplier answer", "Intercepted"),
    AfterSale.SupplierAnswer.NOT_INTERCEPTED: pgettext_lazy("supplier answer", "Could not intercept"),
    AfterSale.SupplierAnswer.RECEIVED: pgettext_lazy("supplier answer", "Return received"),
    AfterSale.SupplierAnswer.REFUSED: pgettext_lazy("supplier answer", "Refused"),
}
EVENT_SOURCE_LABELS = {
    "platform": pgettext_lazy("after-sale event source", "Platform"),
    "merchant": pgettext_lazy("after-sale event source", "Merchant"),
    "supplier": pgettext_lazy("after-sale event source", "Supplier"),
    "rule": pgettext_lazy("after-sale event source", "Rule"),
    "system": pgettext_lazy("after-sale event source", "System"),
}
ACTION_KIND_LABELS = {
    "approve": pgettext_lazy("after-sale action", "Approve"),
    "reject": pgettext_lazy("after-sale action", "Refuse"),
    "confirm_receipt": pgettext_lazy("after-sale action", "Confirm the return and refund"),
    "intercept": pgettext_lazy("after-sale action", "Intercept the parcel"),
    "reship": pgettext_lazy("after-sale action", "Send the replacement"),
}
ACTION_STATUS_LABELS = {
    "pending": pgettext_lazy("after-sale action status", "Waiting"),
    "done": pgettext_lazy("after-sale action status", "Done"),
    "failed": pgettext_lazy("after-sale action status", "Failed"),
}
#: types whose success pays money back (an exchange or a reissue sends goods instead)
REFUND_TYPES = (T.REFUND_UNSHIPPED, T.REFUND_SHIPPED, T.RETURN_REFUND, T.OTHER)
MAX_SEARCH = 64
URGENT = timedelta(hours=6)


def queue_label(queue: str) -> str:
    return str(QUEUE_LABELS.get(queue, queue))


def type_label(value: str) -> str:
    return str(TYPE_LABELS.get(value, value))


def channel_status_label(value: str) -> str:
    return str(CHANNEL_STATUS_LABELS.get(value, value))


def supplier_answer_label(value: str) -> str:
    return str(SUPPLIER_ANSWER_LABELS.get(value or "", value))


# --- the queues ----------------------------------------------------------------------------------


def _filtered(
    qs: QuerySet[AfterSale],
    *,
    store_id: int | None = None,
    platform: str | None = None,
    type: str | None = None,  # noqa: A002 — the contract's name
    supplier_id: int | None = None,
    q: str = "",
) -> QuerySet[AfterSale]:
    if store_id:
        qs = qs.filter(store_id=store_id)
    if platform:
        qs = qs.filter(platform=platform)
    if type:
        qs = qs.filter(type=type)
    if supplier_id:
        qs = qs.filter(supplier_id=supplier_id)
    q = (q or "").strip()[:MAX_SEARCH]
    if q:
        qs = qs.filter(
            Q(platform_after_sale_id__startswith=q)
            | Q(platform_order_id__startswith=q)
            | Q(return_tracking_no__startswith=q)
        )
    return qs


def queue_counts(
    *,
    store_id: int | None = None,
    platform: str | None = None,
    type: str | None = None,  # noqa: A002
    supplier_id: int | None = None,
    q: str = "",
) -> dict[str, int]:
    """{queue: count} for every queue, plus ``all``, in one query (optionally under the same
    filters as the list, so that a tab's count is what the tab lists)."""
    qs = _filtered(
        AfterSale.objects.all(), store_id=store_id, platform=platform, type=type, supplier_id=supplier_id, q=q
    )
    aggregates = {str(queue): Count("pk", filter=Q(queue=queue)) for queue in QUEUE_LABELS}
    return qs.aggregate(**aggregates, all=Count("pk"))


def after_sales(
    *,
    queue: str | None = None,
    store_id: int | None = None,
    platform: str | None = None,
    type: str | None = None,  # noqa: A002
    supplier_id: int | None = None,
    q: str = "",
) -> QuerySet[AfterSale]:
    """After-sales of one queue (None/"": every queue) under the filters, with what a row
    shows (shop, order, supplier, warehouse, lines with their SKU). Ordered by the platform's
    live deadline (nearest first, none last), then id."""
    qs = AfterSale.objects.select_related("store", "order", "supplier", "warehouse").prefetch_related(
        "lines__sku", "lines__order_line"
    )
    if queue:
        qs = qs.filter(queue=queue)
    qs = _filtered(qs, store_id=store_id, platform=platform, type=type, supplier_id=supplier_id, q=q)
    return qs.order_by(F("deadline").asc(nulls_last=True), "id")


# --- pages of the list ---------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NEWEST = paging.Keyset("-id")


def _deadline_key(row: AfterSale) -> str:
    if row.deadline is None:
        return f"n.{row.pk}"
    return f"{(row.deadline - _EPOCH) // timedelta(microseconds=1)}.{row.pk}"


def _parse_deadline_key(key: str) -> tuple[datetime | None, int] | None:
    head, _dot, tail = (key or "").partition(".")
    if not tail.isdigit() or len(tail) > 18:
        return None
    if head == "n":
        return None, int(tail)
    try:
        return _EPOCH + timedelta(microseconds=int(head)), int(tail)
    except (ValueError, OverflowError):
        return None


def _after_deadline(deadline: datetime | None, pk: int) -> Q:
    """Rows after (deadline, pk) in "deadline ascending, nulls last, then id"."""
    if deadline is None:
        return Q(deadline__isnull=True, pk__gt=pk)
    return Q(deadline__gt=deadline) | Q(deadline=deadline, pk__gt=pk) | Q(deadline__isnull=True)


def _before_deadline(deadline: datetime | None, pk: int) -> Q:
    if deadline is None:
        return Q(deadline__isnull=False) | Q(deadline__isnull=True, pk__lt=pk)
    return Q(deadline__lt=deadline) | Q(deadline=deadline, pk__lt=pk)


def page(qs: QuerySet[AfterSale], *, queue: str | None, after: str = "", before: str = "", size: int = 50):
    """One page of ``qs`` (an ``after_sales`` query) as ``ecbao.paging.Page``: by deadline in
    the deadline queues, newest first otherwise. An unknown key counts as none."""
    if queue not in DEADLINE_QUEUES:
        return _NEWEST.page(qs.order_by("-id"), after=after, before=before, size=size)
    position = _parse_deadline_key(before) if before else None
    if position is not None:
        rows = list(
            qs.filter(_before_deadline(*position)).order_by(F("deadline").desc(nulls_first=True), "-id")[
                : size + 1
            ]
        )
        more = len(rows) > size
        rows = rows[:size][::-1]
        return paging.Page(
            rows=rows,
            next_key=_deadline_key(rows[-1]) if rows else None,
            prev_key=_deadline_key(rows[0]) if more and rows else None,
        )
    position = _parse_deadline_key(after) if after else None
    if position is not None:
        qs = qs.filter(_after_deadline(*position))
    rows = list(qs[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return paging.Page(
        rows=rows,
        next_key=_deadline_key(rows[-1]) if more else None,
        prev_key=_deadline_key(rows[0]) if position is not None and rows else None,
    )


# --- the countdown -------------------------------------------------------------------------------


def _span(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, minutes = rest // 3600, rest % 3600 // 60
    if days:
        return gettext("%(d)s d %(h)s h") % {"d": days, "h": hours}
    if hours:
        return gettext("%(h)s h %(m)s min") % {"h": hours, "m": minutes}
    return gettext("%(m)s min") % {"m": max(minutes, 1) if seconds else 0}


def countdown(deadline: datetime | None, *, now: datetime | None = None) -> tuple[str, str]:
    """(text, css class) until the platform's deadline: ("还剩 3 小时 12 分", "countdown-ok"),
    "countdown-urgent" under 6 hours, ("已超时 20 分", "countdown-overdue") once past;
    ("", "") without a deadline."""
    if deadline is None:
        return "", ""
    left = deadline - (now or timezone.now())
    seconds = int(abs(left.total_seconds()))
    if left.total_seconds() < 0:
        return gettext("Overdue by %(span)s") % {"span": _span(seconds)}, "countdown-overdue"
    text = gettext("%(span)s to go") % {"span": _span(seconds)}
    return text, "countdown-urgent" if left <= URGENT else "countdown-ok"


@dataclass(frozen=True)
class Row:
    """What the queue shows of one after-sale beyond its fields."""

    countdown: tuple[str, str]
    type_label: str
    status_label: str
    queue_label: str
    answer_label: str
    shipper: str


def decorate(rows: list[AfterSale], *, now: datetime | None = None) -> list[AfterSale]:
    """Sets ``row.view`` (a :class:`Row`) on each after-sale: words for its codes, the
    countdown (open queues only), who ships."""
    now = now or timezone.now()
    for row in rows:
        live = row.queue in OPEN_QUEUES
        if row.supplier_id:
            shipper = row.supplier.name
        elif row.warehouse_id:
            shipper = row.warehouse.name
        else:
            shipper = ""
        row.view = Row(
            countdown=countdown(row.deadline, now=now) if live else ("", ""),
            type_label=type_label(row.type),
            status_label=channel_status_label(row.channel_status),
            queue_label=queue_label(row.queue),
            answer_label=supplier_answer_label(row.supplier_answer) if row.supplier_id else "",
            shipper=shipper,
        )
    return rows


# --- the reasons report --------------------------------------------------------------------------

BY = ("sku", "store", "supplier")


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _top_reasons(rows, group: str) -> dict:
    """{group key: [(reason, count), …] three most frequent} from grouped (key, reason, n) rows."""
    out: dict = {}
    for row in rows:
        out.setdefault(row[group], []).append((row["reason"] or "—", row["n"]))
    return {key: sorted(items, key=lambda item: (-item[1], item[0]))[:3] for key, items in out.items()}


def reasons_report(*, since: datetime, until: datetime, by: str) -> list[dict]:
    """Refund rate over [since, until) per SKU, shop or supplier (``by``).

    After-sales are those the buyers applied for in the period (``applied_at``); shipped is what
    left in the period (orders by ``shipped_at``; for a supplier, its dispatches by
    ``shipped_at``). Each row: ``key``, ``label``, ``after_sales`` (count), ``pieces`` (asked
    back), ``refund_fen`` (asked), ``refunded`` / ``refunded_fen`` (money refunds that
    succeeded), ``shipped_orders``, ``shipped_pieces``, ``rate`` (after-sales ÷ shipped orders),
    ``piece_rate`` (pieces ÷ shipped pieces) — None without shipments — and ``reasons`` (the
    three most frequent, with counts). Most after-sales first."""
    if by not in BY:
        raise ValueError(f"by must be one of {BY}")
    in_period = Q(applied_at__gte=since, applied_at__lt=until)
    succeeded = Q(channel_status="succeeded", type__in=REFUND_TYPES)
    if by == "sku":
        lines = AfterSaleLine.objects.filter(
            after_sale__applied_at__gte=since, after_sale__applied_at__lt=until, sku__isnull=False
        )
        asked = {
            r["sku_id"]: r
            for r in lines.values("sku_id").annotate(
                after_sales=Count("after_sale_id", distinct=True),
                pieces=Sum("quantity"),
                asked_fen=Sum("refund_fen"),
                refunded=Count(
                    "after_sale_id",
                    distinct=True,
                    filter=Q(after_sale__channel_status="succeeded", after_sale__type__in=REFUND_TYPES),
                ),
                refunded_fen=Sum(
                    "refund_fen",
                    filter=Q(after_sale__channel_status="succeeded", after_sale__type__in=REFUND_TYPES),
                ),
            )
        }
        reasons = _top_reasons(
            lines.values("sku_id", reason=F("after_sale__reason")).annotate(
                n=Count("after_sale_id", distinct=True)
            ),
            "sku_id",
        )
        shipped = {
            r["sku_id"]: r
            for r in OrderLine.objects.filter(
                order__shipped_at__gte=since,
                order__shipped_at__lt=until,
                sku_id__in=list(asked),
                shipped_quantity__gt=0,
            )
            .values("sku_id")
            .annotate(shipped_orders=Count("order_id", distinct=True), shipped_pieces=Sum("shipped_quantity"))
        }
        labels = {
            s.pk: f"{s.merchant_code} {s.name}".strip()
            for s in Sku.objects.filter(pk__in=list(asked)).only("merchant_code", "name")
        }
        keys = set(asked)
    elif by == "store":
        sales = AfterSale.objects.filter(in_period)
        asked = {
            r["store_id"]: r
            for r in sales.values("store_id").annotate(
                after_sales=Count("pk"),
                pieces=Sum("quantity"),
                asked_fen=Sum("refund_fen"),
                refunded=Count("pk", filter=succeeded),
                refunded_fen=Sum("refund_fen", filter=succeeded),
            )
        }
        reasons = _top_reasons(sales.values("store_id", "reason").annotate(n=Count("pk")), "store_id")
        shipped = {
            r["order__store_id"]: r
            for r in OrderLine.objects.filter(
                order__shipped_at__gte=since, order__shipped_at__lt=until, shipped_quantity__gt=0
            )
            .values("order__store_id")
            .annotate(shipped_orders=Count("order_id", distinct=True), shipped_pieces=Sum("shipped_quantity"))
        }
        labels = {
            s.pk: f"{s.name} · {s.get_platform_display()}"
            for s in Store.objects.filter(pk__in=set(asked) | set(shipped))
        }
        keys = set(asked) | set(shipped)
    else:
        sales = AfterSale.objects.filter(in_period)
        asked = {
            r["supplier_id"]: r
            for r in sales.values("supplier_id").annotate(
                after_sales=Count("pk"),
                pieces=Sum("quantity"),
                asked_fen=Sum("refund_fen"),
                refunded=Count("pk", filter=succeeded),
                refunded_fen=Sum("refund_fen", filter=succeeded),
            )
        }
        reasons = _top_reasons(sales.values("supplier_id", "reason").annotate(n=Count("pk")), "supplier_id")
        shipped = {
            r["dispatch__supplier_id"]: r
            for r in DispatchLine.objects.filter(
                dispatch__shipped_at__gte=since, dispatch__shipped_at__lt=until, shipped_quantity__gt=0
            )
            .values("dispatch__supplier_id")
            .annotate(
                shipped_orders=Count("order_line__order_id", distinct=True),
                shipped_pieces=Sum("shipped_quantity"),
            )
        }
        own = OrderLine.objects.filter(
            order__shipped_at__gte=since,
            order__shipped_at__lt=until,
            dispatch_lines__isnull=True,
            shipped_quantity__gt=0,
        ).aggregate(shipped_orders=Count("order_id", distinct=True), shipped_pieces=Sum("shipped_quantity"))
        shipped[None] = own
        labels = {s.pk: s.name for s in Supplier.objects.filter(pk__in=set(asked) | set(shipped))}
        labels[None] = gettext("Own warehouses")
        keys = set(asked) | {k for k in shipped if k is not None}
        if asked.get(None) or own["shipped_orders"]:
            keys.add(None)
    rows = []
    for key in keys:
        a, s = asked.get(key, {}), shipped.get(key, {})
        count, pieces = a.get("after_sales") or 0, a.get("pieces") or 0
        orders_out, pieces_out = s.get("shipped_orders") or 0, s.get("shipped_pieces") or 0
        rows.append(
            {
                "key": key,
                "label": labels.get(key, str(key)),
                "after_sales": count,
                "pieces": pieces,
                "refund_fen": a.get("asked_fen") or 0,
                "refunded": a.get("refunded") or 0,
                "refunded_fen": a.get("refunded_fen") or 0,
                "shipped_orders": orders_out,
                "shipped_pieces": pieces_out,
                "rate": _rate(count, orders_out),
                "piece_rate": _rate(pieces, pieces_out),
                "reasons": reasons.get(key, []),
            }
        )
    rows.sort(key=lambda r: (-r["after_sales"], -r["refund_fen"], str(r["label"])))
    return rows

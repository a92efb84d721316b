"""Reads behind the order workbench, its export and the orders API.

The list is always ordered newest first by ``(placed_at, id)`` and read a page at a time with
a keyset (``placed_at``/``id`` of the last row seen): no OFFSET, so page 1 000 costs what page
1 costs. The query shapes are chosen so that PostgreSQL can walk an index in that order:

- no tab, no shop: ``order_placed`` (placed_at desc, id desc);
- a status tab: ``order_status_placed`` (status, placed_at desc, id desc);
- a shop: ``order_store_placed``, or ``order_store_status_placed`` with a status tab;
- the 售后中 tab: the partial index ``order_refunding_placed``; the exception flags: the
  partial index ``order_flagged_placed`` (the last three come with migration 0002);
- search and the SKU code filter resolve matching ids through their own indexes
  (``order_platform_id``, ``order_phone_tail``, the order line ``merchant_code`` index).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import Prefetch, QuerySet
from django.utils.translation import gettext_lazy as _

from channels.connectors import display_payload
from channels.models import OrderSnapshot
from ecbao import paging
from ecbao.templatetags.ecbao import fen
from orders.hooks import ROUTING_HOLD
from orders.models import Fulfilment, FulfilmentLine, Order, OrderEvent, OrderLine, OrderStatus, ReviewRule

S = OrderStatus
TAB_REFUNDING = "refunding"

#: the workbench tabs, in order: (query value, label); "" is every order
TABS = (
    ("", _("All")),
    (S.PENDING_PAYMENT.value, _("Pending payment")),
    (S.TO_REVIEW.value, _("To review")),
    (S.APPROVED.value, _("To ship")),
    (S.PARTIALLY_SHIPPED.value, _("Partly shipped")),
    (S.SHIPPED.value, _("Shipped")),
    (S.COMPLETED.value, _("Completed")),
    (TAB_REFUNDING, _("After-sales")),
    (S.HELD.value, _("Exceptions")),
    (S.CANCELLED.value, _("Cancelled")),
)
TAB_VALUES = frozenset(value for value, _label in TABS)

#: filterable order flags: query value → (model field, label)
FLAGS = {
    "out_of_stock": ("is_out_of_stock", _("Out of stock")),
    "unmatched": ("has_unmatched", _("Unmatched SKU")),
    "address_changed": ("address_changed", _("Address changed")),
    "refunding": ("is_refunding", _("Refunding")),
}

#: why an order is held: review rule codes and the manual hold, with short labels
HOLD_REASON_LABELS = {
    ReviewRule.Kind.BUYER_REMARK.value: _("Buyer remark"),
    ReviewRule.Kind.SELLER_REMARK.value: _("Seller remark"),
    ReviewRule.Kind.ADDRESS_CHANGED.value: _("Address changed"),
    ReviewRule.Kind.AMOUNT_OVER.value: _("Amount over threshold"),
    ReviewRule.Kind.PLATFORM_RISK.value: _("Platform forbids shipping"),
    ReviewRule.Kind.STOCK_SHORT.value: _("Out of stock"),
    ReviewRule.Kind.UNMATCHED.value: _("Unmatched SKU"),
    "manual": _("Held by hand"),
    ROUTING_HOLD: _("No shipper"),
}

#: timeline event kinds (as the services write them) → labels
EVENT_LABELS = {
    "created": _("Order received"),
    "platform_updated": _("Updated on the platform"),
    "address_changed": _("Address changed"),
    "paid": _("Payment received"),
    "status_changed": _("Status changed"),
    "hold_reasons": _("Hold reasons changed"),
    "merged": _("Merged"),
    "not_merged_no_identity": _(
        "Not merged automatically: the platform gives no receiver identity for this order "
        "(masks and regions are shared by many buyers)"
    ),
    "unmerged": _("Unmerged"),
    "split": _("Split"),
    "line_refunded": _("Line refunded"),
    "line_matched": _("SKU matched"),
    "refund_after_shipment": _("Refund after shipment"),
    "rerouted": _("Routed again"),
}

#: fields the timeline shows changes of → labels
CHANGE_LABELS = {
    "status": _("Status"),
    "channel_status": _("Channel status"),
    "platform_status": _("Platform status"),
    "paid_fen": _("Paid"),
    "buyer_remark": _("Buyer remark"),
    "seller_remark": _("Seller remark"),
    "hold_reasons": _("Hold reasons"),
}

#: a flag that repeats a hold reason is not shown twice
_FLAG_HOLD_REASON = {
    "out_of_stock": ReviewRule.Kind.STOCK_SHORT.value,
    "unmatched": ReviewRule.Kind.UNMATCHED.value,
    "address_changed": ReviewRule.Kind.ADDRESS_CHANGED.value,
}

MAX_SEARCH_TERMS = 50
#: tab counts are exact up to this many orders, then shown as "10000+"
COUNT_CAP = 10_000


@dataclass(frozen=True)
class OrderFilters:
    """Everything the workbench, the export and the API filter by (all optional)."""

    status: str = ""  # a tab: an order status, "refunding", or "" for all
    store_id: int | None = None
    platform: str = ""
    placed_from: datetime | None = None  # inclusive
    placed_to: datetime | None = None  # exclusive
    merchant_code: str = ""  # orders with a line of this SKU code
    paid_min_fen: int | None = None
    paid_max_fen: int | None = None
    has_buyer_remark: bool | None = None
    has_seller_remark: bool | None = None
    flags: tuple[str, ...] = ()  # keys of FLAGS; all of them must hold
    q: str = ""  # order ids, SKU codes or phone tails, separated by spaces or commas


def hold_reason_label(code: str) -> str:
    return str(HOLD_REASON_LABELS.get(code, code))


def status_label(value: str) -> str:
    try:
        return str(S(value).label)
    except ValueError:
        return value


# --- filtering ---------------------------------------------------------------------------------


def _scope(qs: QuerySet[Order], f: OrderFilters) -> QuerySet[Order]:
    """The filters that tab counts honour too: shop, platform, placed time."""
    if f.store_id:
        qs = qs.filter(store_id=f.store_id)
    if f.platform:
        qs = qs.filter(platform=f.platform)
    if f.placed_from:
        qs = qs.filter(placed_at__gte=f.placed_from)
    if f.placed_to:
        qs = qs.filter(placed_at__lt=f.placed_to)
    return qs


def search_terms(q: str) -> list[str]:
    return [t for t in re.split(r"[\s,，;；]+", q.strip()) if t][:MAX_SEARCH_TERMS]


def _search(qs: QuerySet[Order], q: str) -> QuerySet[Order]:
    """Platform order ids (exact; paste many), tracking numbers, SKU merchant codes, 4-digit phone tails.

    The matching ids are a UNION of three index lookups, so a rare match never makes
    PostgreSQL walk the whole order table."""
    terms = search_terms(q)
    if not terms:
        return qs
    ids = Order.objects.filter(platform_order_id__in=terms).values("pk").order_by()
    tails = [t for t in terms if len(t) == 4 and t.isdigit()]
    if tails:
        ids = ids.union(Order.objects.filter(phone_tail__in=tails).values("pk").order_by())
    ids = ids.union(
        OrderLine.objects.filter(merchant_code__in=terms).values("order_id").order_by(), all=False
    )
    ids = ids.union(Order.objects.filter(tracking_numbers__overlap=terms).values("pk").order_by(), all=False)
    return qs.filter(pk__in=ids)


def _tab(qs: QuerySet[Order], status: str) -> QuerySet[Order]:
    if status == TAB_REFUNDING:
        return qs.filter(is_refunding=True)
    if status in S.values:
        return qs.filter(status=status)
    return qs


def apply_filters(qs: QuerySet[Order], f: OrderFilters) -> QuerySet[Order]:
    qs = _tab(_scope(qs, f), f.status)
    if f.merchant_code:
        qs = qs.filter(pk__in=OrderLine.objects.filter(merchant_code=f.merchant_code).values("order_id"))
    if f.paid_min_fen is not None:
        qs = qs.filter(paid_fen__gte=f.paid_min_fen)
    if f.paid_max_fen is not None:
        qs = qs.filter(paid_fen__lte=f.paid_max_fen)
    if f.has_buyer_remark is not None:
        qs = qs.exclude(buyer_remark="") if f.has_buyer_remark else qs.filter(buyer_remark="")
    if f.has_seller_remark is not None:
        qs = qs.exclude(seller_remark="") if f.has_seller_remark else qs.filter(seller_remark="")
    for flag in f.flags:
        if flag in FLAGS:
            qs = qs.filter(**{FLAGS[flag][0]: True})
    return _search(qs, f.q)


def order_list(f: OrderFilters | None = None) -> QuerySet[Order]:
    """The filtered orders with what a list row shows (shop, lines), newest first."""
    return (
        apply_filters(Order.objects.select_related("store"), f or OrderFilters())
        .prefetch_related(Prefetch("lines", queryset=OrderLine.objects.order_by("id")))
        .order_by("-placed_at", "-id")
    )


# --- tab counts --------------------------------------------------------------------------------


def tab_counts(f: OrderFilters | None = None) -> dict[str, int]:
    """How many orders each tab holds: exact up to :data:`COUNT_CAP`, else ``COUNT_CAP + 1``
    (the page shows "10000+").

    Cheap however large the tenant:

    - one query: each tab's count is a scalar subquery of a single SELECT;
    - each subquery counts at most ``COUNT_CAP + 1`` rows (a LIMIT inside the COUNT), so a
      tab of two million shipped orders costs what a tab of ten thousand does, and the
      busy tabs (待审核, 待发货, 异常) are small and exact;
    - the counts honour only the shop, platform and placed-time filters, which the indexes
      that serve the tabs answer (``order_status_placed``, ``order_store_status_placed``,
      ``order_refunding_placed``). The other filters and the search narrow the table but not
      the counts: a count under them could need a scan of every order of the tab.
    """
    base = _scope(Order.objects.all(), f or OrderFilters()).order_by()
    parts, params = [], []
    for i, (value, _label) in enumerate(TABS):
        sql, sub_params = _tab(base, value).values("pk")[: COUNT_CAP + 1].query.sql_with_params()
        parts.append(f"(SELECT COUNT(*) FROM ({sql}) AS tab{i})")
        params.extend(sub_params)
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(parts), params)
        row = cursor.fetchone()
    return {value: n for (value, _label), n in zip(TABS, row, strict=True)}


def count_display(n: int) -> str:
    return f"{COUNT_CAP}+" if n > COUNT_CAP else str(n)


# --- keyset pages ------------------------------------------------------------------------------

#: newest first; a position is ``<placed_at in µs since the epoch>.<id>`` (see ``ecbao.paging``)
ORDER_KEYSET = paging.Keyset("-placed_at", "-id")
OrderPage = paging.Page


def page_key(order: Order) -> str:
    return ORDER_KEYSET.key(order)


def parse_page_key(key: str) -> tuple[datetime, int] | None:
    return ORDER_KEYSET.parse(Order, key)


def older_than(qs: QuerySet[Order], placed: datetime, pk: int) -> QuerySet[Order]:
    """Orders after position (placed, pk) in the newest-first list (see :func:`order_page`)."""
    return ORDER_KEYSET.beyond(qs, (placed, pk))


def order_page(qs: QuerySet[Order], *, after: str = "", before: str = "", size: int = 50) -> OrderPage:
    """One page of ``qs`` newest first by (placed_at, id), after or before a page key. Orders
    arriving meanwhile are newer than every position already handed out, so later pages
    never repeat or skip a row."""
    return ORDER_KEYSET.page(qs, after=after, before=before, size=size)


def decorate(orders: list[Order]) -> list[Order]:
    """Attach what the templates show beside the model fields (no queries)."""
    for order in orders:
        order.hold_labels = [(code, hold_reason_label(code)) for code in order.hold_reasons or ()]
        reasons = set(order.hold_reasons or ())
        order.flag_labels = [
            (key, label)
            for key, (field, label) in FLAGS.items()
            if getattr(order, field, False) and _FLAG_HOLD_REASON.get(key) not in reasons
        ]
    return orders


# --- one order ---------------------------------------------------------------------------------


def order_detail_queryset() -> QuerySet[Order]:
    return Order.objects.select_related("store").prefetch_related(
        Prefetch("lines", queryset=OrderLine.objects.select_related("sku").order_by("id"))
    )


def order_events(order: Order) -> list[OrderEvent]:
    """The order's timeline, newest first, each event with ``label`` and ``changes``
    ([(field, before, after)], status values as labels)."""
    events = list(order.events.select_related("actor").order_by("-id"))
    for event in events:
        event.label = str(EVENT_LABELS.get(event.kind, event.kind))
        before, after = event.before or {}, event.after or {}
        changes = []
        for key in dict.fromkeys([*before, *after]):
            old, new = before.get(key), after.get(key)
            if old == new or (old in (None, "", []) and new in (None, "", [])):
                continue
            changes.append(
                (str(CHANGE_LABELS.get(key, key)), _change_value(key, old), _change_value(key, new))
            )
        event.changes = changes
    return events


def _change_value(key: str, value):
    if value in (None, "", []):
        return None
    if key == "status":
        return status_label(value)
    if key == "hold_reasons":
        return ", ".join(hold_reason_label(code) for code in value)
    if key.endswith("_fen") and isinstance(value, int):
        return fen(value)
    return value


def shown_payload(platform: str, payload):
    """The one place through which snapshot payloads reach people (the API's snapshots action and
    the order page, both behind the orders.snapshots capability): without ciphertexts, buyer
    open ids and nicknames, or any plaintext receiver value (``channels.connectors.display_payload``)."""
    return display_payload(platform, payload)


def order_snapshots(order: Order) -> list[OrderSnapshot]:
    """Every stored version of the platform order, newest first, with the payload (through
    :func:`shown_payload`) as indented JSON (``pretty``) and whether it is the one applied last
    (``applied``)."""
    snapshots = list(
        OrderSnapshot.objects.filter(store_id=order.store_id, platform_order_id=order.platform_order_id)
        .order_by("-platform_updated_at", "-id")
        .defer("normalized")
    )
    for snapshot in snapshots:
        snapshot.payload = shown_payload(order.store.platform, snapshot.payload)
        snapshot.pretty = json.dumps(snapshot.payload, ensure_ascii=False, indent=2, sort_keys=True)
        snapshot.applied = snapshot.pk == order.snapshot_id
    return snapshots


def order_fulfilments(order: Order) -> list[Fulfilment]:
    """The fulfilments holding this order's lines (merged ones include other orders' lines)."""
    lines = FulfilmentLine.objects.select_related("order_line__order").order_by(
        "order_line__order_id", "order_line_id"
    )
    fulfilments = list(
        Fulfilment.objects.filter(
            pk__in=FulfilmentLine.objects.filter(order_line__order=order).values("fulfilment_id")
        )
        .select_related("warehouse")
        .prefetch_related(Prefetch("lines", queryset=lines))
        .order_by("id")
    )
    for fulfilment in fulfilments:
        fulfilment.own_lines = [fl for fl in fulfilment.lines.all() if fl.order_line.order_id == order.pk]
        fulfilment.other_orders = sorted(
            {fl.order_line.order for fl in fulfilment.lines.all() if fl.order_line.order_id != order.pk},
            key=lambda o: o.pk,
        )
    return fulfilments


def merge_candidates(order: Order, *, limit: int = 20) -> list[Order]:
    """Other orders of the same shop to the same receiver, waiting to ship, not yet in a
    fulfilment with this one (the merge service accepts exactly these)."""
    if order.status != S.APPROVED or not order.receiver_fingerprint:
        return []
    together = FulfilmentLine.objects.filter(
        fulfilment__in=FulfilmentLine.objects.filter(
            order_line__order=order, fulfilment__status=Fulfilment.Status.OPEN
        ).values("fulfilment_id")
    ).values("order_line__order_id")
    return list(
        Order.objects.filter(
            store_id=order.store_id, receiver_fingerprint=order.receiver_fingerprint, status=S.APPROVED
        )
        .exclude(pk=order.pk)
        .exclude(pk__in=together)
        .order_by("-placed_at", "-id")[:limit]
    )

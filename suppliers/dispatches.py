"""Dispatches (代发单) follow the fulfilments of suppliers' warehouses, and their lifecycle.

A fulfilment whose warehouse is a supplier's (``Warehouse.kind`` SUPPLIER) is that supplier's
dispatch. orders tells us through the ``FulfilmentHook`` registered in ``SuppliersConfig.ready``,
inside the order action's transaction:

- ``fulfilments_changed(ids)`` — every open supplier fulfilment without a dispatch gets one
  (lines, cost, freight, the buyer's paid share, SLA); one that has a dispatch keeps its lines
  in step while the supplier has not shipped (NEW / ACKNOWLEDGED); one that closed (cancelled,
  held, emptied by a merge) while the supplier had it turns the dispatch CANCELLING: the
  supplier sees it at once and confirms whether the parcel was intercepted
  (``confirm_cancel``); one shipped (on the platform) ships the dispatch (``refresh``).
- ``fulfilments_changing(ids, reason=…, by_platform=…)`` — remembers why, for the change that
  follows.
- ``frozen_fulfilments(ids)`` — a dispatch the supplier acknowledged or shipped refuses a
  change by hand (merge, split, hold, cancel in ecbao); the platform's changes cannot be
  refused.

Amounts are exact: an order's ``paid_fen`` is spread over its fulfilments (own warehouse and
suppliers alike) by ``order_shares`` — per order line its ``paid_fen`` plus its part of what
the order carries beyond its lines (freight, order-level discounts), both by largest remainder,
then per fulfilment line by quantity — so the parts always add up to the order's paid amount.

The supplier ships through logistics (the fulfilment's parcels); ``refresh`` derives the
dispatch's shipped quantities and status from the shipped parcels and the order lines shipped
on the platform. New and cancelled dispatches are announced after the commit
(``suppliers.tasks.notify_task``: email, webhook).
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max, Q, Sum
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy

from inventory.models import ComboComponent, Warehouse
from logistics.models import Parcel, ParcelLine
from orders.models import Fulfilment, FulfilmentLine, LineStatus, Order, OrderEvent, OrderLine
from suppliers.models import Dispatch, DispatchLine, Supplier, SupplierSku

logger = logging.getLogger(__name__)
D = Dispatch.Status

#: the supplier has it and has not finished it: a cancellation needs the supplier's confirmation
ACTIVE = (D.NEW, D.ACKNOWLEDGED, D.PARTIALLY_SHIPPED)
#: the supplier committed to it: a change by hand is refused
COMMITTED = (D.ACKNOWLEDGED, D.PARTIALLY_SHIPPED, D.SHIPPED)
#: its lines still follow the fulfilment's
FOLLOWING = (D.NEW, D.ACKNOWLEDGED)
_CLOSED_LINES = (LineStatus.CANCELLED, LineStatus.REFUNDED)

#: notification events
CREATED, CANCELLED = "dispatch.created", "dispatch.cancelled"


# --- exact amounts ----------------------------------------------------------------------------------------


def allocate(total: int, weights: list[int]) -> list[int]:
    """``total`` split in proportion to ``weights`` (≥ 0) by largest remainder: integer parts
    that add up to ``total`` exactly (negative totals too; all-zero weights: equal parts).
    Ties go to the earlier weight."""
    if not weights:
        return []
    if not any(weights):
        weights = [1] * len(weights)
    sign, amount = (-1, -total) if total < 0 else (1, total)
    whole = sum(weights)
    parts = [amount * w // whole for w in weights]
    left = amount - sum(parts)
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(amount * weights[i] % whole), i))
    for i in by_remainder[:left]:
        parts[i] += 1
    return [sign * p for p in parts]


def line_totals(order_ids: Iterable[int]) -> dict[int, tuple[int, int]]:
    """{order line id: (its paid_fen, its part of the order's remainder)} for the open lines of
    these orders. The remainder (``Order.paid_fen`` less its lines' ``paid_fen``: freight,
    order-level discounts) is spread over the open lines by their paid amounts (largest
    remainder), so the two add up to the order's paid amount (less cancelled/refunded lines)."""
    orders = dict(Order.objects.filter(pk__in=set(order_ids)).values_list("pk", "paid_fen"))
    lines: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    for pk, order_id, paid, qty, status in (
        OrderLine.objects.filter(order_id__in=orders)
        .order_by("order_id", "pk")
        .values_list("pk", "order_id", "paid_fen", "quantity", "status")
    ):
        lines[order_id].append((pk, paid, qty, status))
    result: dict[int, tuple[int, int]] = {}
    for order_id, paid_fen in orders.items():
        everything = lines.get(order_id, [])
        rest = paid_fen - sum(paid for _, paid, _, _ in everything)
        open_lines = [row for row in everything if row[3] not in _CLOSED_LINES]
        weights = [paid for _, paid, _, _ in open_lines]
        if not any(weights):
            weights = [qty for _, _, qty, _ in open_lines]
        for (pk, paid, _, _), extra in zip(open_lines, allocate(rest, weights), strict=True):
            result[pk] = (paid, extra)
    return result


def order_shares(order_ids: Iterable[int]) -> dict[tuple[int, int], tuple[int, int]]:
    """{(fulfilment id, order line id): (goods share, remainder share)} over every fulfilment
    line of these orders: each line's ``line_totals`` spread over its fulfilment lines by
    quantity (largest remainder, ties to the older fulfilment). Summed per order, the two
    shares give the order's paid amount exactly (see ``fulfilment_amounts``)."""
    totals = line_totals(order_ids)
    by_line: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for fid, line_id, qty in (
        FulfilmentLine.objects.filter(order_line_id__in=totals)
        .order_by("order_line_id", "fulfilment_id")
        .values_list("fulfilment_id", "order_line_id", "quantity")
    ):
        by_line[line_id].append((fid, qty))
    shares: dict[tuple[int, int], tuple[int, int]] = {}
    for line_id, parts in by_line.items():
        paid, extra = totals[line_id]
        qtys = [qty for _, qty in parts]
        for (fid, _), goods, more in zip(parts, allocate(paid, qtys), allocate(extra, qtys), strict=True):
            shares[(fid, line_id)] = (goods, more)
    return shares


def fulfilment_amounts(fulfilment_ids: Iterable[int]) -> dict[int, int]:
    """{fulfilment id: what the buyer paid for it} — for own warehouses' fulfilments as for
    suppliers' (``Dispatch.amount_fen``); the fulfilments of an order add up to its paid amount."""
    ids = set(fulfilment_ids)
    order_ids = set(
        FulfilmentLine.objects.filter(fulfilment_id__in=ids).values_list("order_line__order_id", flat=True)
    )
    amounts = dict.fromkeys(ids, 0)
    for (fid, _), (goods, extra) in order_shares(order_ids).items():
        if fid in amounts:
            amounts[fid] += goods + extra
    return amounts


# --- the fulfilment hook ----------------------------------------------------------------------------------

_why = threading.local()  # fulfilment id → why it is changing (set by ``changing``, read by ``changed``)


def _reasons() -> dict[int, str]:
    if not hasattr(_why, "reasons"):
        _why.reasons = {}
    return _why.reasons


def frozen_fulfilments(fulfilment_ids: set[int]) -> dict[int, str]:
    """{fulfilment id: why} for supplier fulfilments whose dispatch the supplier acknowledged
    or shipped: a change by hand must be agreed with the supplier first."""
    found: dict[int, str] = {}
    for fid, pk, status, name in Dispatch.objects.filter(
        fulfilment_id__in=fulfilment_ids, status__in=COMMITTED
    ).values_list("fulfilment_id", "pk", "status", "supplier__name"):
        why = (
            gettext(
                "supplier %(supplier)s acknowledged dispatch %(id)s: agree the change with the supplier first"
            )
            if status == D.ACKNOWLEDGED
            else gettext("supplier %(supplier)s has shipped dispatch %(id)s")
        )
        found[fid] = why % {"supplier": name, "id": pk}
    return found


def fulfilments_changing(fulfilment_ids: set[int], *, reason: str, by_platform: bool) -> None:
    """Before orders change these fulfilments: remember why (the dispatch follows in
    ``fulfilments_changed``, once the change is made)."""
    if not Dispatch.objects.filter(fulfilment_id__in=fulfilment_ids).exists():
        return
    label = str(_REASONS.get(reason, reason))
    if by_platform:
        label = gettext("%(reason)s (on the platform)") % {"reason": label}
    for fid in fulfilment_ids:
        _reasons()[fid] = label


_REASONS = {
    "cancel": gettext_lazy("order cancelled"),
    "hold": gettext_lazy("order held"),
    "merge": gettext_lazy("merged by hand"),
    "unmerge": gettext_lazy("unmerged"),
    "split": gettext_lazy("split by hand"),
    "platform_shipped": gettext_lazy("shipped on the platform"),
    "refund": gettext_lazy("refunded before shipment"),
}


def fulfilments_changed(fulfilment_ids: set[int]) -> None:
    """After orders changed, created or joined these fulfilments: dispatches follow (see the
    module docstring). Idempotent: a repeat with nothing changed writes nothing."""
    reasons = {fid: _reasons().pop(fid, "") for fid in fulfilment_ids}
    fulfilments = list(
        Fulfilment.objects.filter(pk__in=fulfilment_ids, warehouse__kind=Warehouse.Kind.SUPPLIER).order_by(
            "pk"
        )
    )
    if not fulfilments:
        return
    existing = {
        d.fulfilment_id: d
        for d in Dispatch.objects.select_for_update().filter(fulfilment_id__in=[f.pk for f in fulfilments])
    }
    lines_of: dict[int, list[FulfilmentLine]] = defaultdict(list)
    for fl in (
        FulfilmentLine.objects.filter(fulfilment_id__in=[f.pk for f in fulfilments])
        .select_related("order_line__order", "order_line__sku")
        .order_by("fulfilment_id", "order_line_id")
    ):
        lines_of[fl.fulfilment_id].append(fl)
    suppliers = {
        s.warehouse_id: s
        for s in Supplier.objects.filter(warehouse_id__in={f.warehouse_id for f in fulfilments})
    }
    create: list[Fulfilment] = []
    follow: list[Dispatch] = []
    cancelled: list[Dispatch] = []
    shipped: list[Dispatch] = []
    for f in fulfilments:
        dispatch = existing.get(f.pk)
        lines = lines_of.get(f.pk, [])
        if dispatch is None:
            if f.status == Fulfilment.Status.OPEN and lines and f.warehouse_id in suppliers:
                create.append(f)
            continue
        if dispatch.status not in ACTIVE:
            continue
        if f.status == Fulfilment.Status.CANCELLED or (f.status == Fulfilment.Status.OPEN and not lines):
            cancelled.append(_cancelling(dispatch, reasons.get(f.pk) or gettext("the order changed")))
        elif f.status == Fulfilment.Status.SHIPPED:
            shipped.append(dispatch)
        elif dispatch.status in FOLLOWING:
            follow.append(dispatch)
    created = _create(create, lines_of, suppliers) if create else []
    if follow:
        _follow(follow, lines_of)
    for dispatch in shipped:
        refresh(dispatch)
    if cancelled:
        _cancel_events(cancelled)
    _notify_on_commit([d.pk for d in created if _wants_notice(d.supplier)], CREATED)
    _notify_on_commit([d.pk for d in cancelled if _wants_notice(d.supplier)], CANCELLED)
    if created or cancelled:  # platform-native dropship (h-native): assign / withdraw on the platform
        from suppliers import native  # native imports this module

        native.on_dispatch_created([d.pk for d in created])
        native.on_dispatch_cancelling([d.pk for d in cancelled])


def _wants_notice(supplier: Supplier) -> bool:
    return bool(supplier.notify_email or supplier.webhook_url)


def _notify_on_commit(ids: list[int], event: str) -> None:
    if not ids:
        return
    from suppliers import tasks  # tasks import this module

    transaction.on_commit(lambda: [tasks.notify_task.delay(pk, event) for pk in ids])


def _cancelling(dispatch: Dispatch, why: str) -> Dispatch:
    dispatch.status = D.CANCELLING
    dispatch.cancelled_at = dispatch.cancelled_at or timezone.now()
    dispatch.cancel_reason = why[:200]
    dispatch.notified_at, dispatch.notify_error = None, ""
    dispatch.save(
        update_fields=["status", "cancelled_at", "cancel_reason", "notified_at", "notify_error", "updated_at"]
    )
    return dispatch


def _cancel_events(dispatches: list[Dispatch]) -> None:
    order_ids = defaultdict(set)
    for dispatch_id, order_id in DispatchLine.objects.filter(dispatch__in=dispatches).values_list(
        "dispatch_id", "order_line__order_id"
    ):
        order_ids[dispatch_id].add(order_id)
    OrderEvent.objects.bulk_create(
        OrderEvent(
            order_id=order_id,
            kind="dispatch_cancelling",
            source="system",
            message=f"dispatch {d.pk} to supplier {d.supplier_id}: {d.cancel_reason}; waiting for the supplier"[
                :500
            ],
        )
        for d in dispatches
        for order_id in sorted(order_ids[d.pk])
    )


def _costs(supplier_ids: set[int], sku_ids: set[int]) -> dict[tuple[int, int], tuple[str, int, str, int]]:
    """{(supplier id, SKU id): (supplier's code, unit cost, freight rule, freight fen)}; a combo
    SKU costs its components' costs (the supplier supplies the components)."""
    combos: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for combo_id, component_id, qty in ComboComponent.objects.filter(combo_id__in=sku_ids).values_list(
        "combo_id", "component_id", "quantity"
    ):
        combos[combo_id].append((component_id, qty))
    wanted = sku_ids | {c for parts in combos.values() for c, _ in parts}
    rows = {
        (s.supplier_id, s.sku_id): (s.supplier_code, s.cost_fen, s.freight, s.freight_fen)
        for s in SupplierSku.objects.filter(supplier_id__in=supplier_ids, sku_id__in=wanted)
    }
    for supplier_id in supplier_ids:
        for combo_id, parts in combos.items():
            known = [(rows.get((supplier_id, c)), q) for c, q in parts]
            if all(row for row, _ in known):
                rows[(supplier_id, combo_id)] = (
                    "+".join(f"{row[0]}×{q}" if q > 1 else row[0] for row, q in known if row[0]),
                    sum(row[1] * q for row, q in known),
                    known[0][0][2],
                    known[0][0][3],
                )
    return rows


def _line_deadline(line: OrderLine) -> datetime | None:
    """The line's SLA: the order's ship-by (orders keep no per-line deadline; native dropship,
    ``suppliers.native``, sets the platform's per-line ``delivery_deadline`` on its lines)."""
    return line.order.ship_by


def _line_rows(dispatch: Dispatch, lines: list[FulfilmentLine], costs, shares) -> dict[int, DispatchLine]:
    rows = {}
    for fl in lines:
        line = fl.order_line
        code, cost, _, _ = costs.get((dispatch.supplier_id, line.sku_id), ("", 0, "", 0))
        goods, _ = shares.get((fl.fulfilment_id, line.pk), (0, 0))
        rows[line.pk] = DispatchLine(
            dispatch=dispatch,
            order_line=line,
            sku_id=line.sku_id,
            supplier_code=code or line.merchant_code,
            quantity=fl.quantity,
            unit_cost_fen=cost,
            paid_fen=goods,
            delivery_deadline=_line_deadline(line),
        )
    return rows


def _totals(dispatch: Dispatch, lines: list[FulfilmentLine], costs, shares) -> None:
    """goods cost, freight owed to the supplier (its SKUs' freight rules: per unit, or once per
    dispatch — the highest — or none) and the buyer's paid amount for these lines."""
    goods_cost = per_unit = per_dispatch = amount = 0
    for fl in lines:
        _, cost, rule, freight = costs.get((dispatch.supplier_id, fl.order_line.sku_id), ("", 0, "", 0))
        goods_cost += cost * fl.quantity
        if rule == SupplierSku.Freight.PER_UNIT:
            per_unit += freight * fl.quantity
        elif rule == SupplierSku.Freight.PER_DISPATCH:
            per_dispatch = max(per_dispatch, freight)
        goods, extra = shares.get((fl.fulfilment_id, fl.order_line_id), (0, 0))
        amount += goods + extra
    dispatch.goods_cost_fen, dispatch.freight_fen, dispatch.amount_fen = (
        goods_cost,
        per_unit + per_dispatch,
        amount,
    )
    ship_bys = [fl.order_line.order.ship_by for fl in lines if fl.order_line.order.ship_by]
    dispatch.ship_by = min(ship_bys) if ship_bys else None


def _context(groups: list[tuple[int, list[FulfilmentLine]]]):
    supplier_ids = {s for s, _ in groups}
    lines = [fl for _, ls in groups for fl in ls]
    costs = _costs(supplier_ids, {fl.order_line.sku_id for fl in lines if fl.order_line.sku_id})
    shares = order_shares({fl.order_line.order_id for fl in lines})
    return costs, shares


def _create(
    fulfilments: list[Fulfilment], lines_of: dict[int, list[FulfilmentLine]], suppliers: dict[int, Supplier]
) -> list[Dispatch]:
    costs, shares = _context([(suppliers[f.warehouse_id].pk, lines_of[f.pk]) for f in fulfilments])
    dispatches = []
    for f in fulfilments:
        supplier = suppliers[f.warehouse_id]
        dispatch = Dispatch(supplier=supplier, fulfilment=f, store_id=f.store_id)
        _totals(dispatch, lines_of[f.pk], costs, shares)
        dispatches.append(dispatch)
    Dispatch.objects.bulk_create(dispatches)
    DispatchLine.objects.bulk_create(
        row
        for dispatch, f in zip(dispatches, fulfilments, strict=True)
        for row in _line_rows(dispatch, lines_of[f.pk], costs, shares).values()
    )
    logger.info("dispatches created: %s", [d.pk for d in dispatches])
    return dispatches


def _follow(dispatches: list[Dispatch], lines_of: dict[int, list[FulfilmentLine]]) -> None:
    """Dispatch lines (and amounts, SLA) again from their fulfilments' lines; unshipped lines
    that left the fulfilment go, new ones come. Writes only what changed."""
    costs, shares = _context([(d.supplier_id, lines_of.get(d.fulfilment_id, [])) for d in dispatches])
    current: dict[int, dict[int, DispatchLine]] = defaultdict(dict)
    for row in DispatchLine.objects.filter(dispatch__in=dispatches):
        current[row.dispatch_id][row.order_line_id] = row
    for dispatch in dispatches:
        lines = lines_of.get(dispatch.fulfilment_id, [])
        wanted = _line_rows(dispatch, lines, costs, shares)
        have = current[dispatch.pk]
        gone = [row.pk for pk, row in have.items() if pk not in wanted and row.shipped_quantity == 0]
        if gone:
            DispatchLine.objects.filter(pk__in=gone).delete()
        DispatchLine.objects.bulk_create(row for pk, row in wanted.items() if pk not in have)
        for pk, row in wanted.items():  # the deadline stays as set (native dropship gives the platform's)
            old = have.get(pk)
            if old is not None and (old.quantity, old.paid_fen, old.unit_cost_fen) != (
                row.quantity,
                row.paid_fen,
                row.unit_cost_fen,
            ):
                old.quantity, old.paid_fen, old.unit_cost_fen = row.quantity, row.paid_fen, row.unit_cost_fen
                old.save(update_fields=["quantity", "paid_fen", "unit_cost_fen"])
        before = (dispatch.goods_cost_fen, dispatch.freight_fen, dispatch.amount_fen, dispatch.ship_by)
        _totals(dispatch, lines, costs, shares)
        if before != (dispatch.goods_cost_fen, dispatch.freight_fen, dispatch.amount_fen, dispatch.ship_by):
            dispatch.save(
                update_fields=["goods_cost_fen", "freight_fen", "amount_fen", "ship_by", "updated_at"]
            )


# --- lifecycle ----------------------------------------------------------------------------------------------


def _scoped(dispatches, actor):
    """A supplier user acts only on their supplier's dispatches."""
    supplier_id = getattr(actor, "supplier_id", None) if getattr(actor, "is_supplier", False) else None
    ids = [d if isinstance(d, int) else d.pk for d in dispatches]
    qs = Dispatch.objects.filter(pk__in=ids)
    if supplier_id is not None:
        qs = qs.filter(supplier_id=supplier_id)
    return qs


def _lock_orders_of(dispatch_ids) -> None:
    """Lock the orders of these dispatches first, in id order: the lock order of every order
    action (ingestion, hold, ship: order, then what hangs on it — through the fulfilment hook,
    the dispatch). A dispatch action that locked its dispatch first and then touched the order
    (an order event) deadlocked with a buyer's cancellation arriving at the same moment."""
    order_ids = DispatchLine.objects.filter(dispatch_id__in=list(dispatch_ids)).values("order_line__order_id")
    list(
        Order.objects.select_for_update().filter(pk__in=order_ids).order_by("pk").values_list("pk", flat=True)
    )


def _order_events(dispatches: list[Dispatch], kind: str, message: str, actor) -> None:
    rows = DispatchLine.objects.filter(dispatch__in=dispatches).values_list(
        "dispatch_id", "order_line__order_id"
    )
    OrderEvent.objects.bulk_create(
        OrderEvent(
            order_id=order_id,
            kind=kind,
            source="user" if actor is not None else "system",
            actor=actor if getattr(actor, "pk", None) else None,
            message=message % {"id": dispatch_id},
        )
        for dispatch_id, order_id in sorted(set(rows))
    )


@transaction.atomic
def acknowledge(*, dispatches: Iterable[Dispatch | int], actor=None) -> int:
    """The supplier accepts these dispatches (新单 → 待发货). Only NEW ones change; others
    (already acknowledged, shipped, cancelled, another supplier's) are left as they are.
    Returns how many changed."""
    scoped = _scoped(list(dispatches), actor)
    _lock_orders_of(scoped.values_list("pk", flat=True))
    picked = list(scoped.select_for_update().filter(status=D.NEW).order_by("pk"))
    if not picked:
        return 0
    now = timezone.now()
    Dispatch.objects.filter(pk__in=[d.pk for d in picked]).update(
        status=D.ACKNOWLEDGED, acknowledged_at=now, updated_at=now
    )
    _order_events(picked, "dispatch_acknowledged", "dispatch %(id)s acknowledged by the supplier", actor)
    return len(picked)


@transaction.atomic
def confirm_cancel(*, dispatch: Dispatch | int, intercepted: bool, actor=None) -> Dispatch:
    """The supplier answers a cancellation: the parcel was stopped (``intercepted``) or had
    already left. CANCELLING → CANCELLED; a repeat with the same answer changes nothing."""
    scoped = _scoped([dispatch], actor)
    _lock_orders_of(scoped.values_list("pk", flat=True))
    found = scoped.select_for_update().first()
    if found is None:
        raise ValidationError(gettext("no such dispatch"))
    if found.status == D.CANCELLED and found.intercepted == intercepted:
        return found
    if found.status != D.CANCELLING:
        raise ValidationError(
            gettext("dispatch %(id)s is not waiting for a cancellation to be confirmed (%(status)s)")
            % {"id": found.pk, "status": found.get_status_display()}
        )
    found.status, found.intercepted, found.cancel_confirmed_at = (
        D.CANCELLED,
        bool(intercepted),
        timezone.now(),
    )
    found.save(update_fields=["status", "intercepted", "cancel_confirmed_at", "updated_at"])
    _order_events(
        [found],
        "dispatch_cancel_confirmed",
        "dispatch %(id)s: "
        + (
            "the supplier intercepted it"
            if intercepted
            else "the supplier could not intercept it (already sent)"
        ),
        actor,
    )
    return found


def refresh(dispatch: Dispatch | int) -> Dispatch:
    """Shipped quantities and status of a dispatch from its fulfilment's shipped parcels and
    the order lines the platform says shipped: PARTIALLY_SHIPPED, then SHIPPED (with
    ``shipped_at``: the last parcel's). Call it after the supplier's parcels ship; idempotent,
    writes only what changed. Dispatches cancelled (or being cancelled) are left alone."""
    pk = dispatch if isinstance(dispatch, int) else dispatch.pk
    with transaction.atomic():
        _lock_orders_of([pk])
        dispatch = Dispatch.objects.select_for_update().get(pk=pk)
        if dispatch.status not in (*ACTIVE, D.SHIPPED):
            return dispatch
        parcels = Parcel.objects.filter(fulfilment_id=dispatch.fulfilment_id, status=Parcel.Status.SHIPPED)
        by_parcel = dict(
            ParcelLine.objects.filter(parcel__in=parcels)
            .values("order_line_id")
            .annotate(n=Sum("quantity"))
            .values_list("order_line_id", "n")
        )
        lines = list(dispatch.lines.select_related("order_line"))
        changed = []
        for row in lines:
            line = row.order_line
            whole = line.status == LineStatus.SHIPPED or line.shipped_quantity >= line.quantity
            shipped = min(row.quantity, max(by_parcel.get(line.pk, 0), row.quantity if whole else 0))
            if shipped != row.shipped_quantity:
                row.shipped_quantity = shipped
                changed.append(row)
        if changed:
            DispatchLine.objects.bulk_update(changed, ["shipped_quantity"])
        if lines and all(row.shipped_quantity >= row.quantity for row in lines):
            status = D.SHIPPED
        elif any(row.shipped_quantity for row in lines):
            status = D.PARTIALLY_SHIPPED
        else:
            status = dispatch.status
        if status != dispatch.status:
            dispatch.status = status
            if status == D.SHIPPED:
                last = parcels.aggregate(at=Max("shipped_at"))["at"]
                dispatch.shipped_at = last or timezone.now()
            dispatch.save(update_fields=["status", "shipped_at", "updated_at"])
    return dispatch


def refresh_fulfilments(fulfilment_ids: Iterable[int]) -> int:
    """``refresh`` the dispatches of these fulfilments (e.g. after shipping their parcels).
    Returns how many changed status."""
    changed = 0
    for dispatch in Dispatch.objects.filter(fulfilment_id__in=set(fulfilment_ids), status__in=ACTIVE):
        if refresh(dispatch).status != dispatch.status:
            changed += 1
    return changed


def follow_shipped_parcels(parcel_ids: Iterable[int]) -> int:
    """``refresh_fulfilments`` for the fulfilments of these parcels (``ParcelsShipped``)."""
    fulfilment_ids = set(
        Parcel.objects.filter(
            pk__in=list(parcel_ids), fulfilment__warehouse__kind=Warehouse.Kind.SUPPLIER
        ).values_list("fulfilment_id", flat=True)
    )
    return refresh_fulfilments(fulfilment_ids) if fulfilment_ids else 0


def refresh_open(*, limit: int = 2000) -> int:
    """Sweep: open dispatches whose fulfilment has shipped parcels or has shipped (the merchant
    shipped them from the workbench, or the platform did) are refreshed."""
    shipped = Q(fulfilment__status=Fulfilment.Status.SHIPPED) | Q(
        fulfilment__parcels__status=Parcel.Status.SHIPPED
    )
    ids = list(
        Dispatch.objects.filter(status__in=ACTIVE)
        .filter(shipped)
        .order_by("fulfilment_id")
        .values_list("fulfilment_id", flat=True)
        .distinct()[:limit]
    )
    return refresh_fulfilments(ids)


def register() -> None:
    """Dispatches follow fulfilments (``SuppliersConfig.ready``)."""
    from orders import hooks

    hooks.register(
        hooks.FulfilmentHook(
            frozen=frozen_fulfilments, changing=fulfilments_changing, changed=fulfilments_changed
        )
    )

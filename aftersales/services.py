"""After-sales ingestion: the channel layer's newest version of each platform after-sale →
``AfterSale`` (with its lines, queue, handler and timeline), and the side effects of its type
and moment (``aftersales.effects``).

- ``ingest(store_id=…, platform_after_sale_id=…)`` applies the newest stored version
  (``channels.ChannelAfterSaleState`` → its snapshot's ``normalized``, the neutral
  ``channels.types.AfterSale``) under a row lock (the order first, as orders does, then the
  after-sale). Idempotent (the version already applied changes nothing and writes no event)
  and order-preserving (an older version never rewinds: ``snapshot_id`` records what was
  applied, platform update time then the status progression decide). An after-sale whose
  order is not in ecbao yet keeps ``order=None`` and is linked when ingested again (the
  sweep retries).
- ``sweep()`` ingests versions whose ``AfterSaleChanged`` was lost (or failed), and links
  after-sales whose order arrived since.
- ``record(...)`` writes the timeline (``AfterSaleEvent``) and the order's event.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, Subquery
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext

from aftersales.models import AfterSale, AfterSaleEvent, AfterSaleLine
from channels.models import ChannelAfterSaleState
from channels.types import AfterSaleStatus as CS
from channels.types import AfterSaleType as CT
from inventory.models import Warehouse
from orders import services as order_services
from orders.models import LineStatus, Order, OrderLine
from orders.status import SHIPPED_STATES
from suppliers.models import Dispatch, DispatchLine, Supplier

logger = logging.getLogger(__name__)
Q_ = AfterSale.Queue
T = AfterSale.Type

#: neutral channel status → the work queue (exchange / reissue nuance in ``queue_for``)
QUEUE_OF: dict[str, str] = {
    CS.WAITING_MERCHANT.value: Q_.PENDING,
    CS.WAITING_BUYER_RETURN.value: Q_.AWAITING_RETURN,
    CS.WAITING_MERCHANT_RECEIPT.value: Q_.AWAITING_RECEIPT,
    CS.REFUNDING.value: Q_.AWAITING_REFUND,
    CS.SUCCEEDED.value: Q_.DONE,
    CS.REJECTED.value: Q_.CLOSED,
    CS.CLOSED.value: Q_.CLOSED,
}
_RANK = {s.value: i for i, s in enumerate(CS)}
#: the platform's ends of an after-sale
ENDED = (CS.SUCCEEDED.value, CS.REJECTED.value, CS.CLOSED.value)
OPEN_QUEUES = (Q_.PENDING, Q_.AWAITING_RETURN, Q_.AWAITING_RECEIPT, Q_.AWAITING_REFUND)
REFUND_TYPES = (T.REFUND_UNSHIPPED, T.REFUND_SHIPPED)


def return_in(after_sale: AfterSale) -> bool:
    """An exchange's return is back with the merchant: the platform waits for the merchant
    again after the buyer's return step (Douyin 8 "ship the replacement"), or the merchant /
    a return receipt confirmed it (``effects["return_received"]``)."""
    if after_sale.type != T.EXCHANGE:
        return False
    if after_sale.effects.get("return_received"):
        return True
    seen = set(after_sale.effects.get("seen", ()))
    return after_sale.channel_status == CS.WAITING_MERCHANT.value and bool(
        seen & {CS.WAITING_BUYER_RETURN.value, CS.WAITING_MERCHANT_RECEIPT.value}
        or after_sale.return_tracking_no
    )


def reissue_approved(after_sale: AfterSale) -> bool:
    """A reissue (补寄) the merchant approved: the platform moved past "waiting for the merchant"
    and did not refuse or close it — or it still waits for the merchant, now for the parcel
    (Douyin 8 maps to "waiting for the merchant" like the application itself), after ecbao's
    approval went through. [limit] a reissue approved in the platform's back-office that stays
    at "waiting for the merchant" is not recognised: the merchant makes the order by hand."""
    if after_sale.type != T.RESHIP or after_sale.channel_status in (CS.REJECTED.value, CS.CLOSED.value):
        return False
    if after_sale.channel_status != CS.WAITING_MERCHANT.value:
        return True
    return after_sale.pk is not None and after_sale.actions.filter(kind="approve", status="done").exists()


def queue_for(after_sale: AfterSale) -> str:
    """The work queue of the after-sale's type and channel status (``QUEUE_OF``); an exchange
    whose return is in and whose replacement is due waits in 待退款/待补发 (AWAITING_REFUND),
    as does an approved reissue until the platform says it is done."""
    queue = QUEUE_OF.get(after_sale.channel_status, Q_.PENDING)
    if return_in(after_sale) and after_sale.channel_status in (
        CS.WAITING_MERCHANT.value,
        CS.WAITING_MERCHANT_RECEIPT.value,
    ):
        return Q_.AWAITING_REFUND
    if reissue_approved(after_sale) and queue in (Q_.PENDING, Q_.AWAITING_RETURN, Q_.AWAITING_RECEIPT):
        return Q_.AWAITING_REFUND
    return queue


# --- the timeline ----------------------------------------------------------------------------------------

_ORDER_SOURCE = {"merchant": "user", "supplier": "supplier", "rule": "rule", "platform": "platform"}


def record(
    after_sale: AfterSale,
    kind: str,
    message: str,
    *,
    source: str = "system",
    actor=None,
    data=None,
    order_event: bool = True,
) -> AfterSaleEvent:
    """One timeline entry of the after-sale and, when it has an order, the order's event
    (kind ``after_sale_<kind>``, the after-sale's platform id in the message)."""
    event = AfterSaleEvent.objects.create(
        after_sale=after_sale,
        kind=kind[:40],
        source=source,
        message=str(message)[:500],
        data=data or {},
        actor=actor,
    )
    if order_event and after_sale.order_id:
        order_services.add_event(
            after_sale.order,
            f"after_sale_{kind}"[:40],
            source=_ORDER_SOURCE.get(source, "system"),
            message=gettext("after-sale %(id)s: %(message)s")
            % {"id": after_sale.platform_after_sale_id, "message": message},
            actor=actor,
        )
    return event


# --- ingestion ---------------------------------------------------------------------------------------------


def _when(value) -> datetime | None:
    return parse_datetime(value) if isinstance(value, str) and value else None


def _items(data: dict) -> list[dict]:
    """The lines covered: ``items``, else ``platform_line_id`` with the after-sale's quantity."""
    items = [i for i in data.get("items") or () if i.get("platform_line_id")]
    if items:
        return items
    if data.get("platform_line_id"):
        return [
            {
                "platform_line_id": data["platform_line_id"],
                "quantity": data.get("quantity") or 0,
                "refund_fen": data.get("refund_fen") or 0,
            }
        ]
    return []


def _find_order(store_id: int, platform_order_id: str, items: list[dict]) -> Order | None:
    """The ecbao order: by platform order id; else (Kuaishou: one ecbao order per sub-order,
    whose id is the line id) by a line's platform id in the same shop."""
    order = Order.objects.filter(store_id=store_id, platform_order_id=platform_order_id).first()
    if order is not None or not items:
        return order
    line = (
        OrderLine.objects.filter(
            order__store_id=store_id, platform_line_id__in=[i["platform_line_id"] for i in items]
        )
        .select_related("order")
        .order_by("order_id")
        .first()
    )
    return line.order if line else None


def _is_newer(snapshot, after_sale: AfterSale) -> bool:
    if after_sale.snapshot_id == snapshot.pk:
        return False
    if snapshot.platform_updated_at != after_sale.platform_updated_at:
        return snapshot.platform_updated_at > after_sale.platform_updated_at
    new, old = _RANK.get(snapshot.status, -1), _RANK.get(after_sale.channel_status, -1)
    # an equal step: the version first received later (the channel layer's rule)
    return new > old or (new == old and snapshot.pk > (after_sale.snapshot_id or 0))


def ingest(*, store_id: int, platform_after_sale_id: str) -> AfterSale | None:
    """Apply the newest stored version of this platform after-sale (see the module
    docstring); returns the after-sale, or None when the channel layer has no version."""
    state = ChannelAfterSaleState.objects.filter(
        store_id=store_id, platform_after_sale_id=platform_after_sale_id
    ).first()
    if state is None:
        return None
    from aftersales import effects

    with transaction.atomic():
        data = state.snapshot.normalized
        order = _find_order(store_id, state.platform_order_id, _items(data))
        # orders' lock order: the order first. FOR NO KEY UPDATE: it serialises with every order
        # action (FOR UPDATE) but not with a writer that holds the after-sale and only inserts
        # rows pointing at the order (an order event takes KEY SHARE) — no deadlock with them.
        if order is not None:
            order = Order.objects.select_for_update(no_key=True).get(pk=order.pk)
        after_sale = (
            AfterSale.objects.select_for_update()
            .filter(store_id=store_id, platform_after_sale_id=platform_after_sale_id)
            .first()
        )
        # The newest version now that we hold the lock (another worker may have stored a newer one).
        state = ChannelAfterSaleState.objects.select_related("snapshot").get(pk=state.pk)
        snapshot = state.snapshot
        if after_sale is not None and not _is_newer(snapshot, after_sale):
            if after_sale.order_id is None and order is not None:
                _link(after_sale, order, _items(after_sale_data(after_sale)))
                effects.apply(after_sale, before=None)
                after_sale.save()
            return after_sale
        data = snapshot.normalized
        created = after_sale is None
        before = None if created else _state_of(after_sale)
        if created:
            after_sale = AfterSale(store_id=store_id, platform_after_sale_id=platform_after_sale_id)
        _copy(after_sale, data, snapshot)
        after_sale.save()
        if order is not None and after_sale.order_id is None:
            _link(after_sale, order, _items(data), announce=not created)
        else:
            _upsert_lines(after_sale, _items(data))
            _decide_moment(after_sale, data)
        after_sale.queue = queue_for(after_sale)
        after_sale.save()
        _timeline(after_sale, before, data)
        effects.apply(after_sale, before=before)
        after_sale.save()
    return after_sale


def after_sale_data(after_sale: AfterSale) -> dict:
    """The neutral version applied last (its snapshot's ``normalized``)."""
    from channels.models import AfterSaleSnapshot

    snap = AfterSaleSnapshot.objects.filter(pk=after_sale.snapshot_id).first()
    return snap.normalized if snap else {}


def _state_of(after_sale: AfterSale) -> dict:
    return {
        "channel_status": after_sale.channel_status,
        "queue": after_sale.queue,
        "platform_status": after_sale.platform_status,
        "return_tracking_no": after_sale.return_tracking_no,
        "refund_fen": after_sale.refund_fen,
    }


def _copy(after_sale: AfterSale, data: dict, snapshot) -> None:
    after_sale.platform = data.get("platform") or after_sale.platform
    after_sale.platform_order_id = str(data.get("platform_order_id") or "")[:64]
    after_sale.channel_status = snapshot.status
    after_sale.platform_status = str(data.get("platform_status") or "")[:32]
    after_sale.reason = str(data.get("reason") or "")[:300]
    after_sale.reason_code = str(data.get("reason_code") or "")[:32]
    after_sale.refund_fen = int(data.get("refund_fen") or 0)
    after_sale.quantity = int(data.get("quantity") or 0)
    after_sale.evidence = list(data.get("evidence") or [])
    after_sale.deadline = _when(data.get("deadline"))
    after_sale.platform_version = str(data.get("version") or "")[:32]
    after_sale.platform_updated_at = snapshot.platform_updated_at
    after_sale.applied_at = _when(data.get("created_at")) or snapshot.platform_updated_at
    after_sale.snapshot_id = snapshot.pk
    after_sale.return_carrier = str(data.get("return_carrier") or "")[:64]
    after_sale.return_tracking_no = str(data.get("return_tracking_no") or "")[:64]
    after_sale.exchange = {"sku_code": data["exchange_sku_code"]} if data.get("exchange_sku_code") else {}
    seen = list(after_sale.effects.get("seen", ()))
    if snapshot.status not in seen:
        after_sale.effects = {**after_sale.effects, "seen": [*seen, snapshot.status]}
    after_sale.type = _type(data, after_sale)


def _type(data: dict, after_sale: AfterSale) -> str:
    neutral = data.get("type") or CT.OTHER.value
    if neutral == CT.REFUND_ONLY.value:
        return T.REFUND_SHIPPED if after_sale.shipped_before else T.REFUND_UNSHIPPED
    return neutral if neutral in T.values else T.OTHER


def _upsert_lines(after_sale: AfterSale, items: list[dict]) -> None:
    """``AfterSaleLine`` per item, matched to the order's lines by platform line id (an order
    with one line takes an item that names the order: Kuaishou's sub-order is the order)."""
    lines = list(after_sale.order.lines.all()) if after_sale.order_id else []
    by_id = {line.platform_line_id: line for line in lines}
    existing = {row.platform_line_id: row for row in after_sale.lines.all()}
    wanted = set()
    for item in items:
        pid = str(item["platform_line_id"])[:64]
        wanted.add(pid)
        line = by_id.get(pid) or (lines[0] if len(lines) == 1 else None)
        row = existing.get(pid) or AfterSaleLine(after_sale=after_sale, platform_line_id=pid)
        values = (
            line.pk if line else None,
            line.sku_id if line else None,
            int(item.get("quantity") or 0),
            int(item.get("refund_fen") or 0),
        )
        if row.pk is None or values != (row.order_line_id, row.sku_id, row.quantity, row.refund_fen):
            row.order_line_id, row.sku_id, row.quantity, row.refund_fen = values
            row.save()
    gone = [row.pk for pid, row in existing.items() if pid not in wanted]
    if gone:
        AfterSaleLine.objects.filter(pk__in=gone).delete()


def _link(after_sale: AfterSale, order: Order, items: list[dict], *, announce: bool = True) -> None:
    """The order is in ecbao: link it, match the lines, decide the moment and the handler."""
    after_sale.order = order
    _upsert_lines(after_sale, items)
    _decide_moment(after_sale, after_sale_data(after_sale) if after_sale.snapshot_id else {})
    _assign_handler(after_sale)
    after_sale.queue = queue_for(after_sale)
    after_sale.save()
    if not announce:
        return
    record(
        after_sale,
        "linked",
        gettext("linked to order %(id)s") % {"id": order.platform_order_id},
        source="system",
    )


def order_lines(after_sale: AfterSale) -> list[OrderLine]:
    """The order lines the after-sale covers (all the order's lines when it names none)."""
    if not after_sale.order_id:
        return []
    ids = [pk for pk in after_sale.lines.values_list("order_line_id", flat=True) if pk]
    lines = OrderLine.objects.filter(order_id=after_sale.order_id)
    if ids:
        lines = lines.filter(pk__in=ids)
    return list(lines.order_by("pk"))


def _decide_moment(after_sale: AfterSale, data: dict) -> None:
    """``shipped_before`` once: the platform's ``shipped`` when given, else whether the lines
    had shipped in ecbao when first seen (undecided while the order is not in ecbao)."""
    if "moment" in after_sale.effects:
        return
    said = data.get("shipped")
    if said is not None:
        shipped = bool(said)
    elif after_sale.order_id:
        lines = order_lines(after_sale)
        shipped = any(line.shipped_quantity > 0 or line.status == LineStatus.SHIPPED for line in lines) or (
            not lines and after_sale.order.status in SHIPPED_STATES
        )
    else:
        return
    after_sale.shipped_before = shipped
    after_sale.effects = {**after_sale.effects, "moment": True}
    after_sale.type = _type(data, after_sale) if data else after_sale.type
    if after_sale.order_id:
        _assign_handler(after_sale)


def _assign_handler(after_sale: AfterSale) -> None:
    """Who handles it: the warehouse that ships the lines and, for a supplier's warehouse, the
    supplier and the live dispatch holding the lines."""
    lines = [line for line in order_lines(after_sale) if line.warehouse_id]
    if not lines:
        return
    warehouses = Warehouse.objects.in_bulk({line.warehouse_id for line in lines})
    # Lines shipped by a supplier go to that supplier (the first one, when several ship them).
    supplied = [line for line in lines if warehouses[line.warehouse_id].kind == Warehouse.Kind.SUPPLIER]
    warehouse = warehouses[(supplied or lines)[0].warehouse_id]
    after_sale.warehouse = warehouse
    if warehouse.kind != Warehouse.Kind.SUPPLIER:
        return
    lines = [line for line in supplied if line.warehouse_id == warehouse.pk]
    after_sale.supplier = Supplier.objects.filter(warehouse=warehouse).first()
    dispatch_id = (
        DispatchLine.objects.filter(order_line__in=lines)
        .exclude(dispatch__status=Dispatch.Status.CANCELLED)
        .order_by("-dispatch_id")
        .values_list("dispatch_id", flat=True)
        .first()
    )
    if dispatch_id is None:
        dispatch_id = (
            DispatchLine.objects.filter(order_line__in=lines)
            .order_by("-dispatch_id")
            .values_list("dispatch_id", flat=True)
            .first()
        )
    if dispatch_id is not None:
        after_sale.dispatch_id = dispatch_id


def _timeline(after_sale: AfterSale, before: dict | None, data: dict) -> None:
    if before is None:
        record(
            after_sale,
            "created",
            gettext("%(type)s applied for: %(reason)s, refund %(amount)s yuan")
            % {
                "type": after_sale.get_type_display(),
                "reason": after_sale.reason or "—",
                "amount": f"{after_sale.refund_fen / 100:.2f}",
            },
            source="platform",
            data={"status": after_sale.channel_status, "queue": after_sale.queue},
        )
        return
    if before["channel_status"] != after_sale.channel_status or before["queue"] != after_sale.queue:
        record(
            after_sale,
            "status",
            gettext("platform status %(platform)s; queue %(queue)s")
            % {
                "platform": after_sale.platform_status or after_sale.channel_status,
                "queue": after_sale.get_queue_display(),
            },
            source="platform",
            data={
                "from": {"status": before["channel_status"], "queue": before["queue"]},
                "to": {"status": after_sale.channel_status, "queue": after_sale.queue},
            },
        )
    elif (
        before["platform_status"] != after_sale.platform_status
        or before["refund_fen"] != after_sale.refund_fen
    ):
        record(
            after_sale,
            "updated",
            gettext("updated on the platform (%(platform)s)") % {"platform": after_sale.platform_status},
            source="platform",
            order_event=False,
        )


# --- the sweep ---------------------------------------------------------------------------------------------


def unapplied():
    """Channel after-sale versions never applied: no after-sale yet, or a newer version than
    the one applied (``snapshot_id``)."""
    mine = AfterSale.objects.filter(
        store_id=OuterRef("store_id"), platform_after_sale_id=OuterRef("platform_after_sale_id")
    )
    return (
        ChannelAfterSaleState.objects.annotate(
            applied=Subquery(mine.values("snapshot_id")[:1]),
            applied_at=Subquery(mine.values("platform_updated_at")[:1]),
        )
        .filter(
            Q(applied__isnull=True)
            | (~Q(applied=F("snapshot_id")) & Q(platform_updated_at__gte=F("applied_at")))
        )
        .order_by("platform_updated_at", "id")
    )


def sweep(*, limit: int = 1000) -> int:
    """Ingest versions never applied (a lost ``AfterSaleChanged``, a failed task) and link
    after-sales whose order arrived since; returns how many were ingested."""
    done = 0
    todo = list(unapplied().values_list("store_id", "platform_after_sale_id")[:limit])
    orphans = (
        AfterSale.objects.filter(order__isnull=True)
        .filter(
            Exists(
                Order.objects.filter(
                    store_id=OuterRef("store_id"), platform_order_id=OuterRef("platform_order_id")
                )
            )
            | Exists(
                OrderLine.objects.filter(
                    order__store_id=OuterRef("store_id"), platform_line_id=OuterRef("platform_order_id")
                )
            )
        )
        .order_by("id")
        .values_list("store_id", "platform_after_sale_id")
    )
    todo += [pair for pair in orphans[: max(0, limit - len(todo))] if pair not in todo]
    for store_id, platform_after_sale_id in todo:
        try:
            ingest(store_id=store_id, platform_after_sale_id=platform_after_sale_id)
        except Exception:  # one bad after-sale must not stop the sweep; the next sweep retries
            logger.exception("after-sale %s/%s not ingested", store_id, platform_after_sale_id)
            continue
        done += 1
    return done


def order_has_open_refund(order_id: int) -> bool:
    """An open refund after-sale on the order (``orders.hooks.refund_open``: keeps
    ``Order.is_refunding`` set while the platform's order version lags)."""
    return AfterSale.objects.filter(order_id=order_id, type__in=REFUND_TYPES, queue__in=OPEN_QUEUES).exists()

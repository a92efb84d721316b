"""Ship parcels (发货): parcels with a number leave, stock goes out, the platforms are told.

``ship_parcels(parcel_ids)`` takes parcels that carry a tracking number — NUMBERED, PRINTED,
VERIFIED, or entered by hand (``manual``) — to SHIPPED, in one transaction:

- per parcel and per order in it, ``orders.services.lines_shipped`` records the parcel's
  lines and quantities against the order lines, moves the reserved stock out through the
  ledger (``inventory.services.ship_reserved``, one shipment key per parcel line, so a retry
  never consumes twice) and moves the order to partially shipped / shipped;
- a fulfilment is SHIPPED once none of its parcels waits any more;
- one ``WriteBack`` per (parcel, order) goes into the outbox, in the same transaction: a
  merged parcel writes back to every order in it, a split order's parts and a multi-parcel
  order's parcels each write back their own lines; ``lines`` is ``[]`` when the parcel
  carries the whole order. ``logistics.writeback`` sends them after the commit. An order
  ecbao made itself (``Order.origin`` exchange / reissue: an after-sale's replacement) gets
  none — the platform has no such order; its tracking goes through the after-sale;
- ``logistics.events.ParcelsShipped`` (every parcel and order shipped) is published once per
  transaction, for the layers above (a supplier's dispatch, an after-sale's replacement).

Idempotent: a parcel already SHIPPED is reported as such and changes nothing. Parcels whose
order is held, cancelled, refunding or otherwise not waiting to ship are refused one by one
with a message (``Parcel.error`` and ``ShipResult.errors``); the others ship.

Locks, in the order order ingestion takes them (so the two never wait on each other in
opposite orders): the stock rows of every SKU the parcels carry (``inventory.services.
lock_stock``), then the orders (by id), then the parcels (by id), then their fulfilments.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field

import psycopg.errors
from django.core.exceptions import ValidationError
from django.db import OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext

from channels import carriers
from ecbao import events
from inventory import services as stock
from logistics import scope, selectors
from logistics.events import ParcelsShipped
from logistics.models import Parcel, ParcelLine, ShipBatch, Waybill, WriteBack
from logistics.services import NUMBERED_STATES, UNSHIPPED_STATES
from orders import services as order_services
from orders.models import Fulfilment, LineStatus, Order, OrderLine, OrderOrigin

logger = logging.getLogger(__name__)
P = Parcel.Status
DEADLOCK_RETRIES = 3
CHUNK = 50  # parcels per transaction (the stock rows stay locked for one chunk)


@dataclass
class ShipResult:
    shipped: list[int] = field(default_factory=list)  # parcel ids shipped by this call
    already: list[int] = field(default_factory=list)  # shipped before (an idempotent repeat)
    errors: dict[int, str] = field(default_factory=dict)  # parcel id → why it did not ship
    write_backs: list[int] = field(default_factory=list)  # WriteBack ids created

    @property
    def ok(self) -> bool:
        return not self.errors


def write_back_key(parcel_id: int, order_id: int) -> str:
    """The outbox key of one (parcel, order), also the platform request id where a platform
    takes one: unique per tenant (schema) too, since shops of two tenants share a platform."""
    tenant = hashlib.sha1(connection.schema_name.encode()).hexdigest()[:8]
    return f"ship-{tenant}-{parcel_id}-{order_id}"


def ship_parcels(parcel_ids, *, actor=None, warehouse=None) -> ShipResult:
    """Ship these parcels (see the module docstring). Returns what shipped, what had shipped
    before and, per refused parcel, why. ``warehouse``: every parcel must ship from it, else
    nothing ships (ValidationError; ``logistics.scope``). Parcels go in chunks of ``CHUNK`` (by id), one
    transaction each, so a large selection never holds the stock rows for long; a deadlock
    (another transaction took the same rows in an unusual order) is retried; nothing is
    applied twice."""
    ids = sorted(scope.check_parcels(parcel_ids, warehouse))
    result = ShipResult()
    for start in range(0, len(ids), CHUNK):
        part = _ship_chunk(ids[start : start + CHUNK], actor=actor)
        result.shipped += part.shipped
        result.already += part.already
        result.errors.update(part.errors)
        result.write_backs += part.write_backs
    return result


def _ship_chunk(ids: list[int], *, actor) -> ShipResult:
    for attempt in range(DEADLOCK_RETRIES):
        try:
            result = _ship(ids, actor=actor)
        except OperationalError as exc:
            if (
                not isinstance(exc.__cause__, psycopg.errors.DeadlockDetected)
                or attempt == DEADLOCK_RETRIES - 1
            ):
                raise
            logger.warning("ship_parcels deadlocked; again (%s)", attempt + 1)
            continue
        if result.write_backs:
            _kick_sender()
        return result
    raise AssertionError("unreachable")


def _kick_sender() -> None:
    from logistics import tasks

    transaction.on_commit(lambda: tasks.send_write_backs_task.delay(), robust=True)


@transaction.atomic
def _ship(ids: list[int], *, actor) -> ShipResult:
    result = ShipResult()
    if not ids:
        return result
    contents = list(
        ParcelLine.objects.filter(parcel_id__in=ids).values_list(
            "parcel_id", "order_line_id", "order_line__order_id", "order_line__sku_id"
        )
    )
    stock.lock_stock(sku_ids={sku for *_, sku in contents if sku})
    order_ids = sorted({order_id for _, _, order_id, _ in contents})
    orders = {o.pk: o for o in Order.objects.select_for_update().filter(pk__in=order_ids).order_by("pk")}
    parcels = list(
        Parcel.objects.select_for_update(of=("self",))
        .select_related("store")
        .filter(pk__in=ids)
        .order_by("pk")
    )
    missing = set(ids) - {p.pk for p in parcels}
    for pk in sorted(missing):
        result.errors[pk] = gettext("parcel %(id)s does not exist") % {"id": pk}
    fulfilment_ids = sorted({p.fulfilment_id for p in parcels})
    fulfilments = {
        f.pk: f for f in Fulfilment.objects.select_for_update().filter(pk__in=fulfilment_ids).order_by("pk")
    }
    # Re-read the contents under the locks (a platform-decided change may have moved them).
    lines_of: dict[int, list[ParcelLine]] = defaultdict(list)
    for pl in ParcelLine.objects.filter(parcel_id__in=ids).select_related("order_line").order_by("id"):
        lines_of[pl.parcel_id].append(pl)
    waybill_codes = dict(
        Waybill.objects.filter(parcel_id__in=ids, status=Waybill.Status.ISSUED, parent__isnull=True)
        .order_by("id")
        .values_list("parcel_id", "platform_carrier_code")
    )  # the newest per parcel wins
    touched_fulfilments: set[int] = set()
    now = timezone.now()
    for parcel in parcels:
        if parcel.status == P.SHIPPED:
            result.already.append(parcel.pk)
            continue
        why = _refusal(parcel, lines_of[parcel.pk], orders, fulfilments.get(parcel.fulfilment_id))
        if not why:
            try:
                with transaction.atomic():
                    result.write_backs += _ship_one(
                        parcel,
                        lines_of[parcel.pk],
                        orders,
                        actor=actor,
                        now=now,
                        code=waybill_codes.get(parcel.pk, ""),
                    )
            except ValidationError as exc:
                why = "; ".join(exc.messages)
        if why:
            result.errors[parcel.pk] = why
            if parcel.error != why[:300]:
                parcel.error = why[:300]
                parcel.save(update_fields=["error", "updated_at"])
            continue
        result.shipped.append(parcel.pk)
        touched_fulfilments.add(parcel.fulfilment_id)
    for fid in sorted(touched_fulfilments):
        if not Parcel.objects.filter(fulfilment_id=fid, status__in=UNSHIPPED_STATES).exists():
            Fulfilment.objects.filter(pk=fid, status=Fulfilment.Status.OPEN).update(
                status=Fulfilment.Status.SHIPPED
            )
    if result.shipped:
        shipped = set(result.shipped)
        publish_shipped(shipped, {pl.order_line.order_id for pk in shipped for pl in lines_of[pk]})
    return result


def publish_shipped(parcel_ids, order_ids) -> None:
    """Tell the layers above, after the commit, that these parcels (of these orders) shipped
    (``logistics.events.ParcelsShipped``); one call per transaction with every id."""
    if parcel_ids:
        events.publish(
            ParcelsShipped(parcel_ids=tuple(sorted(parcel_ids)), order_ids=tuple(sorted(order_ids)))
        )


def carrier_code(parcel: Parcel) -> str:
    """The platform's carrier code for a shipped parcel: the one its write-back sends (the
    e-waybill's carrier code when the number came from the platform's e-waybill service)."""
    code = (
        Waybill.objects.filter(parcel=parcel, status=Waybill.Status.ISSUED, parent__isnull=True)
        .order_by("-id")
        .values_list("platform_carrier_code", flat=True)
        .first()
    )
    return carriers.shipping_code(parcel.store.platform, parcel.carrier, ewaybill_code=code or "")


def _refusal(parcel: Parcel, lines: list[ParcelLine], orders: dict[int, Order], fulfilment) -> str:
    """Why this parcel cannot ship ("" when it can)."""
    if parcel.status == P.CANCELLED:
        return gettext("parcel %(seq)s/%(count)s was cancelled") % {"seq": parcel.seq, "count": parcel.count}
    if not parcel.tracking_no:
        return gettext("parcel %(seq)s/%(count)s has no tracking number yet") % {
            "seq": parcel.seq,
            "count": parcel.count,
        }
    if parcel.status not in NUMBERED_STATES and not (parcel.status == P.NEW and parcel.manual):
        return gettext("parcel %(seq)s/%(count)s has no waybill yet") % {
            "seq": parcel.seq,
            "count": parcel.count,
        }
    if fulfilment is None or fulfilment.status != Fulfilment.Status.OPEN:
        return gettext("its fulfilment is not open any more")
    if not lines:
        return gettext("the parcel holds nothing")
    for order_id in sorted({pl.order_line.order_id for pl in lines}):
        why = order_services.ship_refusal(orders[order_id])
        if why:
            return why
    return ""


def _ship_one(
    parcel: Parcel, lines: list[ParcelLine], orders: dict[int, Order], *, actor, now, code: str
) -> list[int]:
    by_order: dict[int, dict[int, int]] = defaultdict(dict)
    for pl in lines:
        by_order[pl.order_line.order_id][pl.order_line_id] = pl.quantity
    carrier_code = carriers.shipping_code(parcel.store.platform, parcel.carrier, ewaybill_code=code)
    write_backs = []
    for order_id in sorted(by_order):
        order = orders[order_id]
        quantities = by_order[order_id]
        order_lines = list(OrderLine.objects.filter(order_id=order_id).order_by("id"))
        whole = all(
            line.shipped_quantity == 0 and quantities.get(line.pk) == line.quantity
            for line in order_lines
            if line.status not in (LineStatus.CANCELLED, LineStatus.REFUNDED)
        )
        order_services.lines_shipped(
            order,
            quantities,
            key=f"parcel:{parcel.pk}",
            tracking_no=parcel.tracking_no,
            carrier=carriers.name_of(parcel.carrier),
            source="user" if actor else "system",
            actor=actor,
        )
        if order.origin != OrderOrigin.PLATFORM:
            continue  # an after-sale's replacement: no platform order to write back to
        platform_lines = {line.pk: line.platform_line_id for line in order_lines}
        # The parcel is locked and was not shipped: no write-back of it exists yet.
        write_back = WriteBack.objects.create(
            parcel=parcel,
            order_id=order_id,
            key=write_back_key(parcel.pk, order_id),
            lines=[] if whole else [[platform_lines[pk], qty] for pk, qty in sorted(quantities.items())],
            carrier_code=carrier_code,
            tracking_no=parcel.tracking_no,
            next_attempt_at=now,
        )
        write_backs.append(write_back.pk)
    parcel.status, parcel.shipped_at, parcel.error = P.SHIPPED, now, ""
    parcel.save(update_fields=["status", "shipped_at", "error", "updated_at"])
    return write_backs


# --- a batch with progress (the workbench's 发货 on many parcels) -------------------------------------------


def start_ship(parcel_ids, *, actor=None, warehouse=None) -> ShipBatch:
    """Queue shipping ``parcel_ids`` as a batch (a Celery task runs ``ship_parcels`` in chunks,
    counting progress on the batch; refusals stay on the parcels). A retry is a new batch of
    the refused ids; shipped ones count as done at once. ``warehouse``: every parcel must ship
    from it (``logistics.scope``)."""
    ids = sorted(scope.check_parcels(parcel_ids, warehouse))
    if not ids:
        raise ValidationError(gettext("choose at least one parcel"))
    with transaction.atomic():
        batch = ShipBatch.objects.create(
            kind=ShipBatch.Kind.SHIP,
            total=len(ids),
            params={
                "parcel_ids": ids,
                "actor_id": getattr(actor, "pk", None),
                **scope.batch_params(warehouse),
            },
            created_by=actor if getattr(actor, "pk", None) else None,
        )
        from logistics import tasks

        transaction.on_commit(lambda: tasks.ship_batch_task.delay(batch.pk))
    return batch


def run_ship_batch(batch_id: int) -> ShipBatch:
    """Run a ship batch (the task calls this; running it again is safe: shipped parcels count
    as done)."""
    from django.contrib.auth import get_user_model

    batch = ShipBatch.objects.get(pk=batch_id)
    if batch.status == ShipBatch.Status.DONE:
        return batch
    ids = [int(i) for i in batch.params.get("parcel_ids", [])]
    actor_id = batch.params.get("actor_id")
    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    ShipBatch.objects.filter(pk=batch_id).update(status=ShipBatch.Status.RUNNING, done=0, failed=0, error="")
    try:
        for start in range(0, len(ids), CHUNK):
            part = ship_parcels(ids[start : start + CHUNK], actor=actor)
            ShipBatch.objects.filter(pk=batch_id).update(
                done=F("done") + len(part.shipped) + len(part.already), failed=F("failed") + len(part.errors)
            )
            Parcel.objects.filter(pk__in=part.shipped).update(batch=batch_id)
    except Exception as exc:
        ShipBatch.objects.filter(pk=batch_id).update(
            status=ShipBatch.Status.FAILED, error=str(exc)[:300], finished_at=timezone.now()
        )
        raise
    ShipBatch.objects.filter(pk=batch_id).update(status=ShipBatch.Status.DONE, finished_at=timezone.now())
    return ShipBatch.objects.get(pk=batch_id)


def ship_progress(batch: ShipBatch | int) -> dict:
    """For the page's progress poll: counts, state and the refused parcels with their reasons."""
    batch = ShipBatch.objects.get(pk=batch.pk if isinstance(batch, ShipBatch) else batch)
    ids = [int(i) for i in batch.params.get("parcel_ids", [])]
    return selectors.batch_progress(batch, Parcel.objects.filter(pk__in=ids).exclude(status=P.SHIPPED))

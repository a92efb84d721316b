"""Stock actions. Every change writes a ledger row and a StockChange outbox row in the same
transaction as the balance it changes.

The hot path — reserving stock for an order line — is one SQL statement: the conditional
``UPDATE … SET reserved = reserved + q WHERE on_hand - reserved >= q`` comes first, and the
reservation, ledger and outbox rows are written from what it returned. PostgreSQL re-checks
that condition on the newest row version after the row lock is granted, so two orders can
never both take the last unit and a reservation never meets a balance older than the one it
changes (a ``SELECT … FOR UPDATE`` inside the same statement can hand back such an older
version, which is why the statement does not read the row before it updates it).

Lock order: every operation that touches several stock rows locks them first, in one
statement, in (SKU id, warehouse id) order (``lock_stock``); a transaction that spans many
operations (order ingestion) locks everything it will touch up front the same way. So two
transactions never wait for each other's rows in opposite orders.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
import psycopg.errors
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from inventory import sync
from inventory.models import LedgerKind, Reservation, Sku, StockLedgerEntry, StockLevel, Warehouse


class InsufficientStock(Exception):
    """Not enough available stock; nothing was reserved."""

    def __init__(self, *, sku_id: int, warehouse_id: int, requested: int) -> None:
        super().__init__(
            f"insufficient stock for SKU {sku_id} in warehouse {warehouse_id}: {requested} requested"
        )
        self.sku_id = sku_id
        self.warehouse_id = warehouse_id
        self.requested = requested


@dataclass(frozen=True)
class ReservationResult:
    source_key: str
    created: bool  # False: this source was already reserved (idempotent repeat)


_RESERVE_SQL = """
WITH upd AS (
    UPDATE inventory_stocklevel SET reserved = reserved + %(q)s, updated_at = now()
    WHERE sku_id = %(sku)s AND warehouse_id = %(wh)s AND on_hand - reserved >= %(q)s
        AND NOT EXISTS (SELECT 1 FROM inventory_reservation
            WHERE source_key = %(key)s AND sku_id = %(sku)s AND status <> 'released')
    RETURNING on_hand, reserved
), ins AS (
    -- A released reservation of this key is taken up again. A live one cannot meet this
    -- insert unless it committed while the UPDATE waited for the row lock (a concurrent
    -- duplicate, invisible to this statement's NOT EXISTS): then the NULL status fails the
    -- whole statement, so nothing is counted twice, and the caller retries it.
    INSERT INTO inventory_reservation (source_key, sku_id, warehouse_id, quantity, status, created_at)
    SELECT %(key)s, %(sku)s, %(wh)s, %(q)s, 'active', now() FROM upd
    ON CONFLICT (source_key, sku_id) DO UPDATE
    SET status = CASE WHEN inventory_reservation.status = 'released' THEN 'active' END,
        warehouse_id = EXCLUDED.warehouse_id, quantity = EXCLUDED.quantity,
        created_at = EXCLUDED.created_at, closed_at = NULL
    RETURNING id
), led AS (
    INSERT INTO inventory_stockledgerentry (sku_id, warehouse_id, kind, on_hand_delta, reserved_delta,
        on_hand_after, reserved_after, reason, source_type, source_id, user_id, created_at)
    SELECT %(sku)s, %(wh)s, 'reservation', 0, %(q)s, upd.on_hand, upd.reserved, '', 'reservation', %(key)s,
        NULL, now()
    FROM upd
), chg AS (
    INSERT INTO inventory_stockchange (sku_id, created_at) SELECT %(sku)s, now() FROM upd
)
SELECT (SELECT id FROM ins),
       EXISTS (SELECT 1 FROM inventory_reservation
               WHERE source_key = %(key)s AND sku_id = %(sku)s AND status <> 'released')
"""

# Lock the stock rows of these SKUs (and of the components of those that are combinations), in
# every warehouse, in one global order.
_LOCK_SQL = """
SELECT 1 FROM inventory_stocklevel
WHERE sku_id IN (
    SELECT unnest(%(skus)s::bigint[])
    UNION SELECT component_id FROM inventory_combocomponent WHERE combo_id = ANY(%(skus)s::bigint[])
)
ORDER BY sku_id, warehouse_id
FOR UPDATE
"""

_CLOSE_SQL = """
WITH locked AS (
    -- The key's stock rows first, in the global lock order (a combination has several).
    SELECT s.id FROM inventory_stocklevel s
    JOIN inventory_reservation r ON r.sku_id = s.sku_id AND r.warehouse_id = s.warehouse_id
    WHERE r.source_key = %(key)s AND r.status = 'active'
    ORDER BY s.sku_id, s.warehouse_id
    FOR UPDATE OF s
), closed AS (
    UPDATE inventory_reservation SET status = %(to_status)s, closed_at = now()
    WHERE source_key = %(key)s AND status = 'active' AND (SELECT count(*) FROM locked) >= 0
    RETURNING sku_id, warehouse_id, quantity
), upd AS (
    UPDATE inventory_stocklevel s
    SET reserved = s.reserved - closed.quantity, on_hand = s.on_hand - %(consume)s * closed.quantity,
        updated_at = now()
    FROM closed WHERE s.sku_id = closed.sku_id AND s.warehouse_id = closed.warehouse_id
    RETURNING s.sku_id, s.warehouse_id, s.on_hand, s.reserved, closed.quantity
), led AS (
    INSERT INTO inventory_stockledgerentry (sku_id, warehouse_id, kind, on_hand_delta, reserved_delta,
        on_hand_after, reserved_after, reason, source_type, source_id, user_id, created_at)
    SELECT upd.sku_id, upd.warehouse_id, %(kind)s, -%(consume)s * upd.quantity, -upd.quantity, upd.on_hand,
        upd.reserved, %(reason)s, 'reservation', %(key)s, NULL, now()
    FROM upd
), chg AS (
    INSERT INTO inventory_stockchange (sku_id, created_at) SELECT upd.sku_id, now() FROM upd
)
SELECT count(*) FROM upd
"""


def lock_stock(*, sku_ids) -> None:
    """Lock the stock rows of ``sku_ids`` (combinations: their components), all warehouses, in
    (SKU id, warehouse id) order, in one statement; they stay locked until the transaction
    ends. A transaction that will touch several stock rows calls this first, with every SKU
    it will touch, so that its later statements (in whatever order) wait for no one."""
    if not connection.in_atomic_block:
        raise RuntimeError("lock_stock outside a transaction would lock nothing")
    ids = sorted(set(sku_ids))
    if ids:
        _execute_prepared(_LOCK_SQL, {"skus": ids}, fetch=False)


def default_warehouse() -> Warehouse:
    own = Warehouse.objects.filter(kind=Warehouse.Kind.OWN, is_active=True)
    warehouse = own.filter(is_default=True).first()
    if warehouse is None:
        warehouse = own.order_by("id").first()
    if warehouse is None:  # none yet, or every own one switched off: the main one, active again
        warehouse = Warehouse.objects.filter(code="MAIN", kind=Warehouse.Kind.OWN).first()
        if warehouse is None:
            default = not Warehouse.objects.filter(is_default=True).exists()
            warehouse = Warehouse.objects.create(name=_("Main warehouse"), code="MAIN", is_default=default)
        else:
            warehouse.is_active = True
            warehouse.save(update_fields=["is_active"])
    return warehouse


@transaction.atomic
def set_warehouse_active(*, warehouse: Warehouse, active: bool) -> bool:
    """Open or close a warehouse for selling: a closed one's stock is offered to no shop (see
    ``selectors.available_by_sku``); every SKU it holds is pushed again. Returns True on a change."""
    from inventory.models import StockChange

    changed = Warehouse.objects.filter(pk=warehouse.pk).exclude(is_active=active).update(is_active=active)
    warehouse.is_active = active
    if changed:
        sku_ids = StockLevel.objects.filter(warehouse=warehouse).values_list("sku_id", flat=True)
        StockChange.objects.bulk_create(StockChange(sku_id=pk) for pk in sku_ids)
        transaction.on_commit(sync.schedule_stock_sync)
    return bool(changed)


LOCATION_MAX = 32


def clean_location(value: str) -> str:
    """A location (库位) as stored: inner whitespace collapsed, at most ``LOCATION_MAX``
    characters, no control characters; ``ValueError`` otherwise."""
    location = " ".join(str(value or "").split())
    if len(location) > LOCATION_MAX:
        raise ValueError(_("a location has at most %(n)d characters") % {"n": LOCATION_MAX})
    if any(not ch.isprintable() for ch in location):
        raise ValueError(_("a location cannot contain control characters"))
    return location


@transaction.atomic
def set_location(*, sku: Sku, warehouse: Warehouse | None = None, location: str) -> StockLevel:
    """Where ``sku`` sits in ``warehouse`` (default warehouse when None); "" clears it. Not a
    stock movement: no ledger row. A combination has no place of its own (its components do)."""
    if sku.is_combo:
        raise ValueError(_("a combination has no location of its own: set its components' locations"))
    location = clean_location(location)
    warehouse = warehouse or default_warehouse()
    level, _created = StockLevel.objects.get_or_create(sku=sku, warehouse=warehouse)
    if level.location != location:
        StockLevel.objects.filter(pk=level.pk).update(location=location)
        level.location = location
    return level


def _sellable(warehouse: Warehouse) -> None:
    """Nothing is reserved in a defective location (it never sells)."""
    if warehouse.kind == Warehouse.Kind.DEFECTIVE:
        raise ValueError(f"warehouse {warehouse.code} is a defective location: nothing is reserved there")


def _stock_components(sku: Sku, quantity: int) -> list[tuple[int, int]]:
    """(stock SKU id, quantity) pairs: a combination SKU reserves its components."""
    if not sku.is_combo:
        return [(sku.pk, quantity)]
    parts = list(sku.components.values_list("component_id", "quantity"))
    if not parts:
        raise ValueError(f"combination SKU {sku.merchant_code} has no components")
    return sorted((component_id, per * quantity) for component_id, per in parts)


def reserve_stock(
    *, source_key: str, sku: Sku, quantity: int, warehouse: Warehouse | None = None
) -> ReservationResult:
    """Reserve ``quantity`` of ``sku`` for ``source_key`` (all components of a combination, or
    nothing). Idempotent per source key while its reservation is live (active or shipped); a
    released key can be reserved again. Raises InsufficientStock when any part is short.

    A plain SKU outside a transaction is one statement (one round trip; see ``_RESERVE_SQL``).
    Inside a transaction, or for a combination, the stock rows are locked first in their own
    statement (``lock_stock``), so the reservation then sees every change committed before it,
    including a concurrent reservation of the same key."""
    if quantity <= 0:
        raise ValueError("quantity must be positive")
    warehouse = warehouse or default_warehouse()
    _sellable(warehouse)
    parts = _stock_components(sku, quantity)
    if len(parts) == 1:
        if connection.in_atomic_block:
            lock_stock(sku_ids=[parts[0][0]])
        created = _reserve_one(source_key, parts[0][0], warehouse.pk, parts[0][1])
    else:
        with transaction.atomic():  # all parts or none
            lock_stock(sku_ids=[sku_id for sku_id, _ in parts])
            created = False
            for sku_id, qty in parts:
                created = _reserve_one(source_key, sku_id, warehouse.pk, qty) or created
    if created:
        transaction.on_commit(sync.schedule_stock_sync)
    return ReservationResult(source_key=source_key, created=created)


def _execute_prepared(sql: str, params: dict, *, fetch: bool = True) -> tuple | None:
    """Run a hot statement as a server-side prepared statement on this connection.

    Django's psycopg cursors bind parameters client-side, so PostgreSQL plans the reservation
    CTE on every call (about as long as executing it). psycopg prepares it once per connection
    instead; PostgreSQL re-plans a prepared statement by itself when ``search_path`` (the
    tenant) changes, so one tenant's plan never reads another's tables."""
    with connection.cursor() as cursor:  # sets this tenant's search_path on the connection
        with connection.wrap_database_errors, psycopg.Cursor(cursor.cursor.connection) as raw:
            raw.execute(sql, params, prepare=True)
            return raw.fetchone() if fetch else None


def _reserve_one(source_key: str, sku_id: int, warehouse_id: int, qty: int) -> bool:
    params = {"key": source_key, "sku": sku_id, "wh": warehouse_id, "q": qty}
    try:
        inserted_id, live = _execute_prepared(_RESERVE_SQL, params)
    except IntegrityError as exc:
        # A concurrent duplicate of this key committed while the statement waited for the row
        # (see _RESERVE_SQL); outside a transaction nothing happened, and a retry answers.
        if connection.in_atomic_block or not isinstance(exc.__cause__, psycopg.errors.NotNullViolation):
            raise
        inserted_id, live = _execute_prepared(_RESERVE_SQL, params)
    if inserted_id is not None:
        return True
    if live or (
        not connection.in_atomic_block
        and Reservation.objects.filter(source_key=source_key, sku_id=sku_id)
        .exclude(status=Reservation.Status.RELEASED)
        .exists()
    ):
        # Already reserved for this source (outside a transaction, the second check catches a
        # concurrent duplicate that committed while the statement waited for the row lock;
        # inside one, the row was locked before the statement began, so it saw every commit).
        return False
    raise InsufficientStock(sku_id=sku_id, warehouse_id=warehouse_id, requested=qty)


_RESERVE_MANY_SQL = """
WITH req AS (
    SELECT r.source_key, r.sku_id, r.qty, r.ord
    FROM unnest(%(keys)s::text[], %(skus)s::bigint[], %(qtys)s::int[]) WITH ORDINALITY
        AS r(source_key, sku_id, qty, ord)
), locked AS (  -- locked by lock_stock before this statement began, so these are current
    SELECT id, sku_id, on_hand, reserved FROM inventory_stocklevel
    WHERE warehouse_id = %(wh)s AND sku_id = ANY(%(skus)s::bigint[])
), fresh AS (  -- lines whose key holds no live reservation (a released one is taken up again)
    SELECT req.* FROM req WHERE NOT EXISTS (
        SELECT 1 FROM inventory_reservation x
        WHERE x.source_key = req.source_key AND x.sku_id = req.sku_id AND x.status <> 'released')
), ranked AS (
    SELECT f.source_key, f.sku_id, f.qty, l.on_hand - l.reserved AS available,
        sum(f.qty) OVER (PARTITION BY f.sku_id ORDER BY f.ord) AS wanted
    FROM fresh f JOIN locked l USING (sku_id)
), ins AS (
    INSERT INTO inventory_reservation (source_key, sku_id, warehouse_id, quantity, status, created_at)
    SELECT source_key, sku_id, %(wh)s, qty, 'active', now() FROM ranked WHERE available >= wanted
    ON CONFLICT (source_key, sku_id) DO UPDATE
    SET status = 'active', warehouse_id = EXCLUDED.warehouse_id, quantity = EXCLUDED.quantity,
        created_at = EXCLUDED.created_at, closed_at = NULL
    WHERE inventory_reservation.status = 'released'
    RETURNING source_key, sku_id, quantity
), taken AS (
    SELECT ins.source_key, ins.sku_id, ins.quantity,
        sum(ins.quantity) OVER (PARTITION BY ins.sku_id ORDER BY req.ord) AS running
    FROM ins JOIN req USING (source_key, sku_id)
), upd AS (
    UPDATE inventory_stocklevel s SET reserved = s.reserved + t.total, updated_at = now()
    FROM (SELECT sku_id, sum(quantity) AS total FROM ins GROUP BY sku_id) t
    WHERE s.warehouse_id = %(wh)s AND s.sku_id = t.sku_id
    RETURNING s.sku_id, s.on_hand, s.reserved - t.total AS reserved_before
), led AS (
    INSERT INTO inventory_stockledgerentry (sku_id, warehouse_id, kind, on_hand_delta, reserved_delta,
        on_hand_after, reserved_after, reason, source_type, source_id, user_id, created_at)
    SELECT t.sku_id, %(wh)s, 'reservation', 0, t.quantity, u.on_hand, u.reserved_before + t.running, '',
        'reservation', t.source_key, NULL, now()
    FROM taken t JOIN upd u USING (sku_id)
), chg AS (
    INSERT INTO inventory_stockchange (sku_id, created_at) SELECT sku_id, now() FROM upd
)
SELECT source_key, sku_id, true FROM ins
UNION ALL
SELECT req.source_key, req.sku_id, false FROM req WHERE NOT EXISTS (
    SELECT 1 FROM fresh WHERE fresh.source_key = req.source_key AND fresh.sku_id = req.sku_id)
"""


def reserve_many(items: list[tuple[str, int, int]], *, warehouse: Warehouse | None = None) -> dict[str, bool]:
    """Reserve many lines at once, with the outcome of reserving them one by one in the given
    order: ``items`` are (source key, SKU id, quantity), earliest order first. Returns
    {source key: reserved} — True when the key holds its reservation (new, or from an earlier
    run: idempotent), False when stock was short.

    Every stock row the lines touch is locked first, in one statement in the global order
    (``lock_stock``); then a run of plain SKUs takes one statement (each line served while the
    running total fits); only when a line did not fit, a second statement serves the later
    lines that still fit. Combination SKUs go through ``reserve_stock`` in their place in the
    order (all components or nothing)."""
    warehouse = warehouse or default_warehouse()
    _sellable(warehouse)
    wanted: dict[tuple[str, int], int] = {}
    for key, sku_id, qty in items:
        if qty <= 0:
            raise ValueError("quantity must be positive")
        wanted.setdefault((key, sku_id), qty)
    if not wanted:
        return {}
    combos = set(
        Sku.objects.filter(pk__in={s for _, s in wanted}, is_combo=True).values_list("pk", flat=True)
    )
    result: dict[str, bool] = {}
    with transaction.atomic(savepoint=False):  # the locks hold until the caller's transaction ends
        lock_stock(sku_ids={s for _, s in wanted})
        run: list[tuple[str, int, int]] = []
        for (key, sku_id), qty in wanted.items():
            if sku_id not in combos:
                run.append((key, sku_id, qty))
                continue
            result.update(_reserve_run(run, warehouse.pk))
            run = []
            try:
                reserve_stock(
                    source_key=key, sku=Sku.objects.get(pk=sku_id), quantity=qty, warehouse=warehouse
                )
            except InsufficientStock:
                result[key] = False
            else:
                result[key] = True
        result.update(_reserve_run(run, warehouse.pk))
    return result


def _reserve_run(run: list[tuple[str, int, int]], warehouse_id: int) -> dict[str, bool]:
    if not run:
        return {}
    result = _reserve_statement(run, warehouse_id)
    short = [item for item in run if not result.get(item[0])]
    if short:
        # The statement served each SKU's lines up to the first that did not fit; one by one,
        # later smaller lines would still have fitted. The rows stay locked by this
        # transaction, so the remaining availability is exact.
        available = dict(
            StockLevel.objects.filter(
                warehouse_id=warehouse_id, sku_id__in={s for _, s, _ in short}
            ).values_list("sku_id", F("on_hand") - F("reserved"))
        )
        fits = []
        for key, sku_id, qty in short:
            if available.get(sku_id, 0) >= qty:
                available[sku_id] -= qty
                fits.append((key, sku_id, qty))
        if fits:
            result.update(_reserve_statement(fits, warehouse_id))
    return {key: result.get(key, False) for key, _, _ in run}


def _reserve_statement(run: list[tuple[str, int, int]], warehouse_id: int) -> dict[str, bool]:
    with connection.cursor() as cursor:
        cursor.execute(
            _RESERVE_MANY_SQL,
            {
                "keys": [k for k, _, _ in run],
                "skus": [s for _, s, _ in run],
                "qtys": [q for _, _, q in run],
                "wh": warehouse_id,
            },
        )
        rows = cursor.fetchall()
    if any(new for _, _, new in rows):
        transaction.on_commit(sync.schedule_stock_sync)
    return {key: True for key, _, _ in rows}


def _close(*, source_key: str, to_status: str, kind: str, consume: int, reason: str) -> int:
    reason = reason[: StockLedgerEntry._meta.get_field("reason").max_length]  # raw SQL: no model check
    with connection.cursor() as cursor:
        cursor.execute(
            _CLOSE_SQL,
            {"key": source_key, "to_status": to_status, "kind": kind, "consume": consume, "reason": reason},
        )
        closed = cursor.fetchone()[0]
    if closed:
        transaction.on_commit(sync.schedule_stock_sync)
    return closed


@transaction.atomic
def release_reservation(*, source_key: str, reason: str = "") -> int:
    """Give reserved stock back (cancel, refund before shipment, routed elsewhere).
    Idempotent: returns the number of SKU rows released, 0 when nothing was active."""
    return _close(
        source_key=source_key,
        to_status=Reservation.Status.RELEASED,
        kind=LedgerKind.RELEASE,
        consume=0,
        reason=reason,
    )


@transaction.atomic
def ship_reservation(*, source_key: str, reason: str = "") -> int:
    """The reserved goods left the warehouse: on hand and reserved both go down. Idempotent."""
    return _close(
        source_key=source_key,
        to_status=Reservation.Status.CONSUMED,
        kind=LedgerKind.SHIPMENT,
        consume=1,
        reason=reason,
    )


SHIPMENT_SOURCE = "shipment"


@transaction.atomic
def ship_reserved(
    *, source_key: str, quantity: int, key: str, sku: Sku | None = None, reason: str = ""
) -> int:
    """Part of a reservation left the warehouse: ``quantity`` units (of the reserved line's
    SKU; a combination ships its components) go out of on hand and out of reserved, with a
    SHIPMENT ledger row per stock SKU (``source_type`` "shipment", ``source_id`` ``key``) and a
    StockChange outbox row. The reservation keeps what is left; it is CONSUMED when nothing is.

    Idempotent by ``key`` (the caller's shipment key, e.g. one per parcel line): a repeat
    finds the ledger rows of the first and returns 0; otherwise returns the number of stock
    rows changed. ``sku`` is needed only for a combination (it says how many of each component
    one unit is). Raises ValueError when the reservation does not hold ``quantity`` any more
    (released, already consumed, or less left)."""
    if quantity <= 0:
        raise ValueError("quantity must be positive")
    if not key or len(key) > StockLedgerEntry._meta.get_field("source_id").max_length:
        raise ValueError("a shipment key of at most 128 characters is needed")
    rows = list(Reservation.objects.filter(source_key=source_key).values_list("sku_id", flat=True))
    lock_stock(sku_ids=rows)  # the rows of this key, in the global order, before anything is read
    if StockLedgerEntry.objects.filter(source_type=SHIPMENT_SOURCE, source_id=key).exists():
        return 0
    reservations = list(
        Reservation.objects.select_for_update()
        .filter(source_key=source_key, status=Reservation.Status.ACTIVE)
        .order_by("sku_id")
    )
    if not reservations:
        raise ValueError(f"no active reservation for {source_key}")
    if sku is not None and sku.is_combo:
        per_unit = dict(sku.components.values_list("component_id", "quantity"))
    elif len(reservations) == 1:
        per_unit = {reservations[0].sku_id: 1}
    else:
        raise ValueError(f"{source_key} reserves several SKUs: say which combination ships")
    if set(per_unit) != {r.sku_id for r in reservations}:
        raise ValueError(f"the reservation of {source_key} does not match the SKU shipped")
    for reservation in reservations:
        if reservation.quantity < per_unit[reservation.sku_id] * quantity:
            raise ValueError(
                f"{source_key}: {per_unit[reservation.sku_id] * quantity} to ship, "
                f"{reservation.quantity} still reserved"
            )
    reason = reason[: StockLedgerEntry._meta.get_field("reason").max_length]
    from inventory.models import StockChange

    for reservation in reservations:
        qty = per_unit[reservation.sku_id] * quantity
        level = StockLevel.objects.get(sku_id=reservation.sku_id, warehouse_id=reservation.warehouse_id)
        level.on_hand -= qty
        level.reserved -= qty
        level.save(update_fields=["on_hand", "reserved", "updated_at"])
        if reservation.quantity == qty:  # the last of it: consumed (its quantity says the last part)
            reservation.status, reservation.closed_at = Reservation.Status.CONSUMED, timezone.now()
        else:
            reservation.quantity -= qty
        reservation.save(update_fields=["quantity", "status", "closed_at"])
        StockLedgerEntry.objects.create(
            sku_id=level.sku_id,
            warehouse_id=level.warehouse_id,
            kind=LedgerKind.SHIPMENT,
            on_hand_delta=-qty,
            reserved_delta=-qty,
            on_hand_after=level.on_hand,
            reserved_after=level.reserved,
            reason=reason or source_key,
            source_type=SHIPMENT_SOURCE,
            source_id=key,
        )
        StockChange.objects.create(sku_id=level.sku_id)
    transaction.on_commit(sync.schedule_stock_sync)
    return len(reservations)


def _level_for_update(sku: Sku, warehouse: Warehouse) -> StockLevel:
    level, _created = StockLevel.objects.get_or_create(sku=sku, warehouse=warehouse)
    return StockLevel.objects.select_for_update().get(pk=level.pk)


def _write(
    level: StockLevel,
    *,
    kind: str,
    on_hand_delta: int,
    reason: str,
    source_type: str,
    source_id: str,
    user=None,
) -> StockLedgerEntry:
    from inventory.models import StockChange

    level.on_hand += on_hand_delta
    if level.on_hand < level.reserved:
        raise InsufficientStock(
            sku_id=level.sku_id, warehouse_id=level.warehouse_id, requested=-on_hand_delta
        )
    level.save(update_fields=["on_hand", "updated_at"])
    entry = StockLedgerEntry.objects.create(
        sku_id=level.sku_id,
        warehouse_id=level.warehouse_id,
        kind=kind,
        on_hand_delta=on_hand_delta,
        reserved_delta=0,
        on_hand_after=level.on_hand,
        reserved_after=level.reserved,
        reason=reason,
        source_type=source_type,
        source_id=source_id,
        user=user,
    )
    StockChange.objects.create(sku_id=level.sku_id)
    transaction.on_commit(sync.schedule_stock_sync)
    return entry


@transaction.atomic
def receive_stock(
    *,
    sku: Sku,
    quantity: int,
    warehouse: Warehouse | None = None,
    reason: str = "",
    source_type: str = "",
    source_id: str = "",
    user=None,
) -> StockLedgerEntry:
    """Goods arrived (purchase receipt, return to stock)."""
    if quantity <= 0:
        raise ValueError(_("quantity must be positive"))
    if sku.is_combo:
        raise ValueError(_("combination SKUs have no stock of their own; receive their components"))
    level = _level_for_update(sku, warehouse or default_warehouse())
    return _write(
        level,
        kind=LedgerKind.RECEIPT if source_type != "return" else LedgerKind.RETURN,
        on_hand_delta=quantity,
        reason=reason,
        source_type=source_type,
        source_id=source_id,
        user=user,
    )


@transaction.atomic
def adjust_stock(
    *, sku: Sku, delta: int, reason: str, warehouse: Warehouse | None = None, user=None
) -> StockLedgerEntry:
    """Correct on-hand by ``delta`` (damage, found stock). Cannot go below what is reserved."""
    if delta == 0:
        raise ValueError(_("delta must not be zero"))
    if not reason.strip():
        raise ValueError(_("an adjustment needs a reason"))
    if sku.is_combo:
        raise ValueError(_("combination SKUs have no stock of their own; adjust their components"))
    level = _level_for_update(sku, warehouse or default_warehouse())
    return _write(
        level,
        kind=LedgerKind.ADJUSTMENT,
        on_hand_delta=delta,
        reason=reason,
        source_type="adjustment",
        source_id="",
        user=user,
    )


@transaction.atomic
def count_stock(
    *, sku: Sku, counted: int, warehouse: Warehouse | None = None, user=None, reason: str = ""
) -> StockLedgerEntry | None:
    """Set on-hand to a physical count (盘点); returns None when the count matches."""
    if counted < 0:
        raise ValueError(_("a count cannot be negative"))
    if sku.is_combo:
        raise ValueError(_("combination SKUs have no stock of their own; count their components"))
    level = _level_for_update(sku, warehouse or default_warehouse())
    delta = counted - level.on_hand
    if delta == 0:
        return None
    return _write(
        level,
        kind=LedgerKind.COUNT,
        on_hand_delta=delta,
        reason=reason or "stock count",
        source_type="count",
        source_id="",
        user=user,
    )


# --- returns: good pieces back to sellable stock, defective ones to the defective location ------

RETURN_SOURCE = "return"


def defective_location(warehouse: Warehouse) -> Warehouse:
    """The defective location (次品仓) of an own warehouse, created on first need: a warehouse of
    kind DEFECTIVE whose ``parent`` is ``warehouse``. Its stock is counted (ledger, stock pages)
    but never offered to a shop nor reserved."""
    if warehouse.kind == Warehouse.Kind.DEFECTIVE:
        return warehouse
    if warehouse.kind != Warehouse.Kind.OWN:
        raise ValueError(_("only an own warehouse has a defective location"))
    found = Warehouse.objects.filter(kind=Warehouse.Kind.DEFECTIVE, parent=warehouse).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return Warehouse.objects.create(
                kind=Warehouse.Kind.DEFECTIVE,
                parent=warehouse,
                code=f"DEF-{warehouse.pk}",
                name=(_("%(name)s · defective") % {"name": warehouse.name})[:100],
            )
    except IntegrityError:  # made at the same moment by another request
        return Warehouse.objects.get(kind=Warehouse.Kind.DEFECTIVE, parent=warehouse)


@dataclass(frozen=True)
class ReturnBooking:
    source_key: str
    created: bool  # False: this key was booked before (a retry books nothing)
    entries: tuple[StockLedgerEntry, ...] = ()


@transaction.atomic
def receive_return(
    *,
    sku: Sku,
    warehouse: Warehouse,
    good: int,
    defective: int,
    source_key: str,
    reason: str = "",
    user=None,
) -> ReturnBooking:
    """Returned goods inspected at ``warehouse`` (an own one): ``good`` units back into its
    sellable stock, ``defective`` units into its defective location (``defective_location``),
    each a RETURN ledger row with ``source_type`` "return" and ``source_id`` ``source_key``
    (a combination books its components). Good stock raises what every shop is offered (the
    stock push follows the ledger write, as for ``receive_stock``); defective stock does not.

    Idempotent by ``source_key`` (e.g. ``return:<receipt id>:<sku id>``): a retry finds the
    first booking's ledger rows and books nothing (``created`` False). Concurrent retries are
    serialised on the key (a transaction-scoped advisory lock)."""
    if good < 0 or defective < 0:
        raise ValueError(_("quantity must not be negative"))
    if good + defective == 0:
        raise ValueError(_("quantity must be positive"))
    if not source_key or len(source_key) > StockLedgerEntry._meta.get_field("source_id").max_length:
        raise ValueError("a source key of at most 128 characters is needed")
    if warehouse.kind != Warehouse.Kind.OWN:
        raise ValueError(_("returns are received at an own warehouse"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"{RETURN_SOURCE}:{source_key}"])
    if StockLedgerEntry.objects.filter(source_type=RETURN_SOURCE, source_id=source_key).exists():
        return ReturnBooking(source_key=source_key, created=False)
    bad = defective_location(warehouse) if defective else None
    parts = {}
    for units, place in ((good, warehouse), (defective, bad)):
        if units:
            for sku_id, qty in _stock_components(sku, units):
                parts[(sku_id, place.pk)] = (place, qty)
    sku_ids = {sku_id for sku_id, _place in parts}
    lock_stock(sku_ids=sku_ids)
    reason = (reason or _("Return"))[: StockLedgerEntry._meta.get_field("reason").max_length]
    entries = []
    skus = Sku.objects.in_bulk(sku_ids)
    for (sku_id, _wid), (place, qty) in sorted(parts.items()):
        level = _level_for_update(skus[sku_id], place)
        entries.append(
            _write(
                level,
                kind=LedgerKind.RETURN,
                on_hand_delta=qty,
                reason=reason,
                source_type=RETURN_SOURCE,
                source_id=source_key,
                user=user,
            )
        )
    return ReturnBooking(source_key=source_key, created=True, entries=tuple(entries))

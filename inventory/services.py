"""Stock actions. Every change writes a ledger row and a StockChange outbox row in the same
transaction as the balance it changes.

The hot path — reserving stock for an order line — is one SQL statement (a CTE that inserts
the reservation, conditionally increments ``reserved``, writes the ledger and outbox rows),
so the row lock on the stock level is held for one round trip, and two orders can never both
take the last unit: the conditional UPDATE re-checks availability after the lock is granted.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from django.db import connection, transaction
from django.db.models import F
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
WITH locked AS (
    SELECT id, on_hand, reserved FROM inventory_stocklevel
    WHERE sku_id = %(sku)s AND warehouse_id = %(wh)s
    FOR UPDATE
), ins AS (
    INSERT INTO inventory_reservation (source_key, sku_id, warehouse_id, quantity, status, created_at)
    SELECT %(key)s, %(sku)s, %(wh)s, %(q)s, 'active', now() FROM locked
    WHERE locked.on_hand - locked.reserved >= %(q)s
    ON CONFLICT (source_key, sku_id) DO NOTHING
    RETURNING id
), upd AS (
    UPDATE inventory_stocklevel SET reserved = reserved + %(q)s, updated_at = now()
    WHERE id = (SELECT id FROM locked) AND EXISTS (SELECT 1 FROM ins)
    RETURNING on_hand, reserved
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
       CASE WHEN EXISTS (SELECT 1 FROM ins) THEN false
            ELSE EXISTS (SELECT 1 FROM inventory_reservation WHERE source_key = %(key)s AND sku_id = %(sku)s)
       END
"""

_CLOSE_SQL = """
WITH closed AS (
    UPDATE inventory_reservation SET status = %(to_status)s, closed_at = now()
    WHERE source_key = %(key)s AND status = 'active'
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


def default_warehouse() -> Warehouse:
    warehouse = Warehouse.objects.filter(is_default=True, is_active=True).first()
    if warehouse is None:
        warehouse = Warehouse.objects.filter(is_active=True).order_by("id").first()
    if warehouse is None:
        warehouse = Warehouse.objects.create(name=_("Main warehouse"), code="MAIN", is_default=True)
    return warehouse


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
    nothing). Idempotent per source key; raises InsufficientStock when any part is short.

    A plain SKU is one statement: the stock row is locked and re-read (FOR UPDATE), the
    reservation is inserted only if enough is available, and only an inserted reservation
    moves the balance. Outside a transaction it commits on its own (one round trip), so
    the hot row's lock is held no longer than a bare UPDATE would hold it."""
    if quantity <= 0:
        raise ValueError("quantity must be positive")
    warehouse = warehouse or default_warehouse()
    parts = _stock_components(sku, quantity)
    if len(parts) == 1:
        created = _reserve_one(source_key, parts[0][0], warehouse.pk, parts[0][1])
    else:
        # Lock rows in SKU-id order (components are sorted) so concurrent multi-SKU
        # reservations cannot deadlock; all parts or none.
        with transaction.atomic():
            created = False
            for sku_id, qty in parts:
                created = _reserve_one(source_key, sku_id, warehouse.pk, qty) or created
    if created:
        transaction.on_commit(sync.schedule_stock_sync)
    return ReservationResult(source_key=source_key, created=created)


def _execute_prepared(sql: str, params: dict) -> tuple:
    """Run a hot statement as a server-side prepared statement on this connection.

    Django's psycopg cursors bind parameters client-side, so PostgreSQL plans the reservation
    CTE on every call (about as long as executing it). psycopg prepares it once per connection
    instead; PostgreSQL re-plans a prepared statement by itself when ``search_path`` (the
    tenant) changes, so one tenant's plan never reads another's tables."""
    with connection.cursor() as cursor:  # sets this tenant's search_path on the connection
        with connection.wrap_database_errors, psycopg.Cursor(cursor.cursor.connection) as raw:
            raw.execute(sql, params, prepare=True)
            return raw.fetchone()


def _reserve_one(source_key: str, sku_id: int, warehouse_id: int, qty: int) -> bool:
    inserted_id, exists = _execute_prepared(
        _RESERVE_SQL, {"key": source_key, "sku": sku_id, "wh": warehouse_id, "q": qty}
    )
    if inserted_id is not None:
        return True
    if exists or Reservation.objects.filter(source_key=source_key, sku_id=sku_id).exists():
        # Already reserved for this source (the second check catches a concurrent duplicate
        # that committed while this statement waited for the row lock).
        return False
    raise InsufficientStock(sku_id=sku_id, warehouse_id=warehouse_id, requested=qty)


_RESERVE_MANY_SQL = """
WITH req AS (
    SELECT r.source_key, r.sku_id, r.qty, r.ord
    FROM unnest(%(keys)s::text[], %(skus)s::bigint[], %(qtys)s::int[]) WITH ORDINALITY
        AS r(source_key, sku_id, qty, ord)
), locked AS (
    SELECT id, sku_id, on_hand, reserved FROM inventory_stocklevel
    WHERE warehouse_id = %(wh)s AND sku_id = ANY(%(skus)s::bigint[])
    ORDER BY sku_id
    FOR UPDATE
), fresh AS (
    SELECT req.* FROM req WHERE NOT EXISTS (
        SELECT 1 FROM inventory_reservation x WHERE x.source_key = req.source_key AND x.sku_id = req.sku_id)
), ranked AS (
    SELECT f.source_key, f.sku_id, f.qty, l.on_hand - l.reserved AS available,
        sum(f.qty) OVER (PARTITION BY f.sku_id ORDER BY f.ord) AS wanted
    FROM fresh f JOIN locked l USING (sku_id)
), ins AS (
    INSERT INTO inventory_reservation (source_key, sku_id, warehouse_id, quantity, status, created_at)
    SELECT source_key, sku_id, %(wh)s, qty, 'active', now() FROM ranked WHERE available >= wanted
    ON CONFLICT (source_key, sku_id) DO NOTHING
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

    A run of plain SKUs takes one statement (stock rows locked in SKU order, each line served
    while the running total fits); only when a line did not fit, a second statement serves
    the later lines that still fit. Combination SKUs go through ``reserve_stock`` in their
    place in the order (all components or nothing)."""
    warehouse = warehouse or default_warehouse()
    wanted: dict[tuple[str, int], int] = {}
    for key, sku_id, qty in items:
        if qty <= 0:
            raise ValueError("quantity must be positive")
        wanted.setdefault((key, sku_id), qty)
    combos = set(
        Sku.objects.filter(pk__in={s for _, s in wanted}, is_combo=True).values_list("pk", flat=True)
    )
    result: dict[str, bool] = {}
    run: list[tuple[str, int, int]] = []
    for (key, sku_id), qty in wanted.items():
        if sku_id not in combos:
            run.append((key, sku_id, qty))
            continue
        result.update(_reserve_run(run, warehouse.pk))
        run = []
        try:
            reserve_stock(source_key=key, sku=Sku.objects.get(pk=sku_id), quantity=qty, warehouse=warehouse)
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
    result = {key: True for key, _, _ in rows}
    missing = [k for k, _, _ in run if k not in result]
    if missing:  # a concurrent duplicate may have committed while this statement waited
        result.update(
            dict.fromkeys(
                Reservation.objects.filter(source_key__in=missing).values_list("source_key", flat=True), True
            )
        )
    if any(new for _, _, new in rows):
        transaction.on_commit(sync.schedule_stock_sync)
    return result


def _close(*, source_key: str, to_status: str, kind: str, consume: int, reason: str) -> int:
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
        raise ValueError("quantity must be positive")
    if sku.is_combo:
        raise ValueError("combination SKUs have no stock of their own; receive their components")
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
        raise ValueError("delta must not be zero")
    if not reason.strip():
        raise ValueError("an adjustment needs a reason")
    if sku.is_combo:
        raise ValueError("combination SKUs have no stock of their own; adjust their components")
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
        raise ValueError("a count cannot be negative")
    if sku.is_combo:
        raise ValueError("combination SKUs have no stock of their own; count their components")
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

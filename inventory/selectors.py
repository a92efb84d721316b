"""Reads of stock shared by pages, API, channel sync and the consistency check."""

from __future__ import annotations

from django.db import connection
from django.db.models import Sum

from inventory.models import ComboComponent, Sku, StockLevel


def available(sku: Sku, *, warehouse_ids: list[int] | None = None) -> int:
    """Available units of a SKU (a combination: how many complete sets its components allow)."""
    if sku.is_combo:
        parts = list(ComboComponent.objects.filter(combo=sku).values_list("component_id", "quantity"))
        if not parts:
            return 0
        sets = []
        for component_id, per in parts:
            sets.append(_available_ids([component_id], warehouse_ids).get(component_id, 0) // per)
        return min(sets)
    return _available_ids([sku.pk], warehouse_ids).get(sku.pk, 0)


def _available_ids(sku_ids: list[int], warehouse_ids: list[int] | None) -> dict[int, int]:
    qs = StockLevel.objects.filter(sku_id__in=sku_ids)
    if warehouse_ids is not None:
        qs = qs.filter(warehouse_id__in=warehouse_ids)
    rows = qs.values("sku_id").annotate(on_hand=Sum("on_hand"), reserved=Sum("reserved"))
    return {row["sku_id"]: row["on_hand"] - row["reserved"] for row in rows}


def ledger_mismatches() -> list[tuple[int, int, int, int, int, int]]:
    """Stock levels whose balances differ from their ledger sums:
    (sku_id, warehouse_id, on_hand, ledger on_hand, reserved, ledger reserved)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT s.sku_id, s.warehouse_id, s.on_hand, COALESCE(l.on_hand, 0), s.reserved, COALESCE(l.reserved, 0)
            FROM inventory_stocklevel s
            LEFT JOIN (
                SELECT sku_id, warehouse_id, SUM(on_hand_delta) AS on_hand, SUM(reserved_delta) AS reserved
                FROM inventory_stockledgerentry GROUP BY sku_id, warehouse_id
            ) l ON l.sku_id = s.sku_id AND l.warehouse_id = s.warehouse_id
            WHERE s.on_hand <> COALESCE(l.on_hand, 0) OR s.reserved <> COALESCE(l.reserved, 0)
            """
        )
        mismatched = cursor.fetchall()
        cursor.execute(
            """
            SELECT s.sku_id, s.warehouse_id, s.reserved, COALESCE(SUM(r.quantity), 0)
            FROM inventory_stocklevel s
            LEFT JOIN inventory_reservation r
              ON r.sku_id = s.sku_id AND r.warehouse_id = s.warehouse_id AND r.status = 'active'
            GROUP BY s.sku_id, s.warehouse_id, s.reserved
            HAVING s.reserved <> COALESCE(SUM(r.quantity), 0)
            """
        )
        mismatched += [
            (sku, wh, reserved, reserved, reserved, active) for sku, wh, reserved, active in cursor.fetchall()
        ]
    return mismatched

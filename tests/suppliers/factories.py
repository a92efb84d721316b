"""Small helpers for supplier tests (shared by every part of the suppliers app).

    supplier = make_supplier("S1")
    bind(supplier, sku, cost_fen=1200, stock=50)

Run them inside a tenant schema (the ``tenant``/``in_alpha`` fixtures)."""

from __future__ import annotations

from inventory.models import Sku
from suppliers import services
from suppliers.models import Supplier, SupplierSku


def make_supplier(code: str = "S1", name: str | None = None, **fields) -> Supplier:
    """A supplier (with its SUPPLIER warehouse); ``fields`` are any ``Supplier`` fields."""
    return services.create_supplier(name=name or f"供应商 {code}", code=code, **fields)


def bind(
    supplier: Supplier,
    sku: Sku,
    cost_fen: int = 1000,
    stock: int | None = None,
    **fields,
) -> SupplierSku:
    """``supplier`` supplies ``sku`` at ``cost_fen`` (``fields``: supplier_code, freight,
    freight_fen, priority, is_active); with ``stock``, the supplier reports that on-hand."""
    item = services.set_supplier_sku(supplier=supplier, sku=sku, cost_fen=cost_fen, **fields)
    if stock is not None:
        services.report_stock(supplier=supplier, sku=sku, on_hand=stock)
    return item

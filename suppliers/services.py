"""Supplier actions: create and change suppliers, the SKUs they supply, the stock they report.

Each supplier owns an inventory warehouse of kind SUPPLIER (made with it): its stock is what the
supplier reports, written through the ledger like any count, so reservations and the stock push
see it like any other warehouse.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext

from inventory import services as stock
from inventory.models import Sku, StockLevel, Warehouse
from suppliers.models import Supplier, SupplierSku

_SUPPLIER_FIELDS = {
    "contact_name",
    "contact_phone",
    "contact_email",
    "settlement",
    "ship_from_province",
    "ship_from_city",
    "cutoff",
    "daily_capacity",
    "status",
    "notify_email",
    "webhook_url",
    "webhook_secret",
    "may_reveal_receiver",
    "wechat_supplier_appid",
    "kuaishou_factory_code",
}


@transaction.atomic
def create_supplier(*, name: str, code: str, **fields) -> Supplier:
    """A supplier with its own stock warehouse (``Warehouse.kind`` SUPPLIER, code ``SUP-<code>``)."""
    unknown = set(fields) - _SUPPLIER_FIELDS
    if unknown:
        raise TypeError(f"unknown supplier fields: {sorted(unknown)}")
    code = code.strip()
    if not name.strip() or not code:
        raise ValidationError(gettext("a supplier needs a name and a code"))
    if Supplier.objects.filter(code=code).exists():
        raise ValidationError({"code": gettext("supplier code %(code)s is taken") % {"code": code}})
    warehouse = Warehouse.objects.create(
        name=name.strip()[:100], code=f"SUP-{code}"[:32], kind=Warehouse.Kind.SUPPLIER, is_default=False
    )
    supplier = Supplier(name=name.strip(), code=code, warehouse=warehouse, **fields)
    supplier.full_clean()
    supplier.save()
    return supplier


@transaction.atomic
def set_supplier_sku(
    *,
    supplier: Supplier,
    sku: Sku,
    cost_fen: int,
    supplier_code: str = "",
    freight: str = SupplierSku.Freight.FREE,
    freight_fen: int = 0,
    priority: int = 100,
    is_active: bool = True,
) -> SupplierSku:
    """Create or change what ``supplier`` charges for ``sku`` (idempotent)."""
    if sku.is_combo:
        raise ValidationError(
            gettext("combination SKU %(code)s: bind its components to the supplier")
            % {"code": sku.merchant_code}
        )
    if cost_fen < 0 or freight_fen < 0:
        raise ValidationError(gettext("cost and freight cannot be negative"))
    item, _ = SupplierSku.objects.update_or_create(
        supplier=supplier,
        sku=sku,
        defaults={
            "cost_fen": cost_fen,
            "supplier_code": supplier_code,
            "freight": freight,
            "freight_fen": freight_fen,
            "priority": priority,
            "is_active": is_active,
        },
    )
    return item


@transaction.atomic
def report_stock(*, supplier: Supplier, sku: Sku, on_hand: int, user=None, reason: str = "") -> bool:
    """The supplier says it holds ``on_hand`` of ``sku`` (counted into its warehouse through the
    ledger; a count equal to the last changes nothing). Returns True when the stock changed."""
    if not SupplierSku.objects.filter(supplier=supplier, sku=sku).exists():
        raise ValidationError(
            gettext("%(supplier)s does not supply %(code)s")
            % {"supplier": supplier.name, "code": sku.merchant_code}
        )
    if isinstance(on_hand, bool) or not isinstance(on_hand, int) or on_hand < 0:
        raise ValidationError(gettext("stock must be a whole number, 0 or more"))
    try:
        entry = stock.count_stock(
            sku=sku,
            counted=on_hand,
            warehouse=supplier.warehouse,
            user=user,
            reason=reason or f"reported by supplier {supplier.code}",
        )
    except stock.InsufficientStock as exc:
        raise ValidationError(
            gettext("%(code)s: %(reserved)s are already reserved for orders; stock cannot go below that")
            % {"code": sku.merchant_code, "reserved": _reserved(supplier, sku)}
        ) from exc
    return entry is not None


def _reserved(supplier: Supplier, sku: Sku) -> int:
    level = StockLevel.objects.filter(sku=sku, warehouse=supplier.warehouse).first()
    return level.reserved if level else 0

"""Supplier actions: create and change suppliers, the SKUs they supply, the stock they report.

Each supplier owns an inventory warehouse of kind SUPPLIER (made with it): its stock is what the
supplier reports, written through the ledger like any count, so reservations and the stock push
see it like any other warehouse.
"""

from __future__ import annotations

import secrets

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext

from inventory import services as stock
from inventory.models import Sku, StockLevel, Warehouse
from suppliers.models import Supplier, SupplierSku

SUPPLIER_FIELDS = (  # what create_supplier / update_supplier take besides name (and code)
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
)
_SUPPLIER_FIELDS = set(SUPPLIER_FIELDS)


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
    _webhook_secret(supplier)
    supplier.full_clean()
    supplier.save()
    return supplier


def _webhook_secret(supplier: Supplier) -> None:
    """A supplier with a webhook gets a signing key of its own (shown to the merchant on the
    supplier's page, to hand to the supplier): webhooks are never signed with an empty key."""
    if supplier.webhook_url and not supplier.webhook_secret:
        supplier.webhook_secret = secrets.token_hex(32)


_EDITABLE = _SUPPLIER_FIELDS | {"name"}


@transaction.atomic
def update_supplier(*, supplier: Supplier, **fields) -> Supplier:
    """Change a supplier's fields (the code stays: it names the supplier's warehouse).
    Validated as a whole; a ``ValidationError`` (by field, zh-Hans) leaves it unchanged."""
    unknown = set(fields) - _EDITABLE
    if unknown:
        raise TypeError(f"unknown supplier fields: {sorted(unknown)}")
    supplier = Supplier.objects.select_for_update().get(pk=supplier.pk)
    for name, value in fields.items():
        setattr(supplier, name, value.strip() if isinstance(value, str) else value)
    if not supplier.name:
        raise ValidationError({"name": gettext("a supplier needs a name and a code")})
    _webhook_secret(supplier)
    supplier.full_clean()
    supplier.save()
    if "name" in fields and supplier.warehouse.name != supplier.name[:100]:
        supplier.warehouse.name = supplier.name[:100]
        supplier.warehouse.save(update_fields=["name"])
    return supplier


@transaction.atomic
def set_status(*, supplier: Supplier, status: str) -> Supplier:
    """Pause (no new lines are routed to it, its stock is offered to no shop any more; its open
    dispatches go on) or activate."""
    if status not in Supplier.Status.values:
        raise ValidationError({"status": gettext("Unknown status.")})
    Supplier.objects.filter(pk=supplier.pk).update(status=status)
    supplier.status = status
    stock.set_warehouse_active(warehouse=supplier.warehouse, active=status == Supplier.Status.ACTIVE)
    return supplier


@transaction.atomic
def remove_supplier(*, supplier: Supplier) -> str:
    """Delete a supplier that never shipped and no rule names; otherwise pause it (its history
    stays). Returns ``"deleted"`` or ``"paused"``. Its users are deactivated on deletion."""
    from django.contrib.auth import get_user_model

    from inventory.models import StockLedgerEntry
    from suppliers.models import Dispatch, RouteRule

    supplier = Supplier.objects.select_for_update().get(pk=supplier.pk)
    used = (
        Dispatch.objects.filter(supplier=supplier).exists()
        or RouteRule.objects.filter(supplier=supplier).exists()
        or StockLedgerEntry.objects.filter(warehouse=supplier.warehouse).exists()
    )
    if used:
        set_status(supplier=supplier, status=Supplier.Status.PAUSED)
        return "paused"
    warehouse = supplier.warehouse
    get_user_model().objects.filter(supplier_id=supplier.pk).update(is_active=False)
    supplier.delete()
    StockLevel.objects.filter(warehouse=warehouse).delete()
    warehouse.delete()
    return "deleted"


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
    if freight not in SupplierSku.Freight.values:
        raise ValidationError({"freight": gettext("Unknown freight rule.")})
    if freight == SupplierSku.Freight.FREE:
        freight_fen = 0
    supplier_code = (supplier_code or "").strip()
    if len(supplier_code) > 64:
        raise ValidationError({"supplier_code": gettext("The supplier's code is at most 64 characters.")})
    if priority < 0:
        raise ValidationError({"priority": gettext("The priority is a whole number, 0 or more.")})
    if (
        supplier_code
        and SupplierSku.objects.filter(supplier=supplier, supplier_code=supplier_code)
        .exclude(sku=sku)
        .exists()
    ):
        raise ValidationError(
            {
                "supplier_code": gettext("%(supplier)s already uses code %(code)s for another SKU")
                % {"supplier": supplier.name, "code": supplier_code}
            }
        )
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
def remove_supplier_sku(*, supplier: Supplier, sku: Sku, user=None) -> None:
    """The supplier no longer supplies ``sku``: the binding goes and its stock in the supplier's
    warehouse is counted to 0 through the ledger. Refused while orders hold stock there."""
    item = SupplierSku.objects.select_for_update().filter(supplier=supplier, sku=sku).first()
    if item is None:
        return
    level = StockLevel.objects.filter(sku=sku, warehouse=supplier.warehouse).first()
    if level and level.reserved:
        raise ValidationError(
            gettext("%(code)s: %(reserved)s are reserved for orders at this supplier; pause the SKU instead")
            % {"code": sku.merchant_code, "reserved": level.reserved}
        )
    if level and level.on_hand:
        stock.count_stock(
            sku=sku,
            counted=0,
            warehouse=supplier.warehouse,
            user=user,
            reason=f"supplier {supplier.code} no longer supplies it",
        )
    item.delete()


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

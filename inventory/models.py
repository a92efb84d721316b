"""Catalog, warehouses, stock levels, reservations and the append-only stock ledger.

Invariants (checked by the database and by ``manage.py inventory_check``):
- per SKU and warehouse: 0 ≤ reserved ≤ on_hand (so available = on_hand − reserved ≥ 0);
- on_hand and reserved always equal the sums of the ledger's deltas;
- ledger rows are never updated or deleted (a trigger refuses it);
- a reservation is keyed by its source line: reserving the same line twice reserves once.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _


class Goods(models.Model):
    """A product (货品) grouping SKUs."""

    name = models.CharField(_("name"), max_length=200)
    code = models.CharField(_("goods code"), max_length=64, blank=True)
    brand = models.CharField(_("brand"), max_length=100, blank=True)
    category = models.CharField(_("category"), max_length=100, blank=True)
    images = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "goods"

    def __str__(self) -> str:
        return self.name


class Sku(models.Model):
    """A merchant SKU, identified by its merchant code (商家编码), unique in the tenant."""

    goods = models.ForeignKey(Goods, on_delete=models.PROTECT, related_name="skus")
    merchant_code = models.CharField(_("merchant code"), max_length=64, unique=True)
    barcode = models.CharField(_("barcode"), max_length=64, blank=True, db_index=True)
    name = models.CharField(_("name"), max_length=200)
    spec = models.CharField(_("spec"), max_length=200, blank=True)
    cost_fen = models.BigIntegerField(_("cost price (fen)"), default=0)
    weight_g = models.PositiveIntegerField(_("weight (g)"), default=0)
    image = models.CharField(max_length=500, blank=True)
    is_combo = models.BooleanField(_("combination SKU"), default=False)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["merchant_code"]
        constraints = [models.CheckConstraint(condition=Q(cost_fen__gte=0), name="sku_cost_non_negative")]

    def __str__(self) -> str:
        return f"{self.merchant_code} {self.name}"


class ComboComponent(models.Model):
    """One component of a combination SKU (组合装): ``quantity`` units of ``component``."""

    combo = models.ForeignKey(Sku, on_delete=models.CASCADE, related_name="components")
    component = models.ForeignKey(Sku, on_delete=models.PROTECT, related_name="used_in_combos")
    quantity = models.PositiveIntegerField(default=1)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["combo", "component"], name="uniq_combo_component"),
            models.CheckConstraint(condition=Q(quantity__gte=1), name="combo_quantity_positive"),
            models.CheckConstraint(condition=~Q(combo=F("component")), name="combo_not_self"),
        ]

    def __str__(self) -> str:
        return f"{self.combo_id} ⊃ {self.quantity} × {self.component_id}"


class Warehouse(models.Model):
    """A place stock is kept and shipped from: one of the merchant's own warehouses, or a
    dropship supplier's stock (``kind`` SUPPLIER: created by the suppliers app, one per supplier,
    its on-hand is what the supplier reports; reservations and the stock push treat it like any
    other warehouse).

    ``kind`` DEFECTIVE is an own warehouse's defective location (次品仓, ``parent`` = that
    warehouse; created on first need by ``services.defective_location``): returned goods found
    defective are booked there through the ledger, so they stay counted, but it never sells —
    no shop is offered its stock (``selectors.available_by_sku``) and nothing is reserved in it
    (``services.reserve_stock`` / ``reserve_many`` refuse it)."""

    class Kind(models.TextChoices):
        OWN = "own", _("Own warehouse")
        SUPPLIER = "supplier", _("Supplier (dropship)")
        DEFECTIVE = "defective", _("Defective location")

    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.OWN)
    code = models.CharField(_("code"), max_length=32, unique=True)
    is_default = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    address = models.JSONField(default=dict, blank=True)  # sender address for waybills
    # A DEFECTIVE location's own warehouse (null for every other kind).
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="defective_locations"
    )

    class Meta:
        ordering = ["-is_default", "code"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="one_default_warehouse"
            ),
            models.UniqueConstraint(
                fields=["parent"], condition=Q(kind="defective"), name="one_defective_location"
            ),
            models.CheckConstraint(
                condition=Q(kind="defective", parent__isnull=False, is_default=False)
                | (~Q(kind="defective") & Q(parent__isnull=True)),
                name="defective_location_has_parent",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class StockLevel(models.Model):
    """Balances of one SKU in one warehouse, kept equal to the ledger's sums."""

    sku = models.ForeignKey(Sku, on_delete=models.PROTECT, related_name="stock_levels")
    warehouse = models.ForeignKey(Warehouse, on_delete=models.PROTECT, related_name="stock_levels")
    on_hand = models.IntegerField(default=0)
    reserved = models.IntegerField(default=0)
    # Where the SKU sits in this warehouse (库位, e.g. "A-03-2"): pick lists are walked in its order.
    location = models.CharField(_("location"), max_length=32, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["sku", "warehouse"], name="uniq_stock_level"),
            models.CheckConstraint(condition=Q(on_hand__gte=0), name="on_hand_non_negative"),
            models.CheckConstraint(condition=Q(reserved__gte=0), name="reserved_non_negative"),
            models.CheckConstraint(condition=Q(reserved__lte=F("on_hand")), name="reserved_within_on_hand"),
        ]

    def __str__(self) -> str:
        return f"{self.sku_id}@{self.warehouse_id}: {self.on_hand}/{self.reserved}"

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class LedgerKind(models.TextChoices):
    RECEIPT = "receipt", _("Receipt")
    RESERVATION = "reservation", _("Reservation")
    RELEASE = "release", _("Release")
    PICK = "pick", _("Pick")
    SHIPMENT = "shipment", _("Shipment")
    RETURN = "return", _("Return")
    ADJUSTMENT = "adjustment", _("Adjustment")
    COUNT = "count", _("Stock count")


class StockLedgerEntry(models.Model):
    """One change of a stock level. Append-only."""

    sku = models.ForeignKey(
        Sku, on_delete=models.PROTECT, related_name="ledger", db_index=False
    )  # (sku, -id) serves
    # [choice] No index of its own on warehouse/user: nothing reads the ledger by them, and every
    # stock change writes a row here (a warehouse or user delete scans instead).
    warehouse = models.ForeignKey(Warehouse, on_delete=models.PROTECT, related_name="ledger", db_index=False)
    kind = models.CharField(max_length=16, choices=LedgerKind.choices)
    on_hand_delta = models.IntegerField(default=0)
    reserved_delta = models.IntegerField(default=0)
    on_hand_after = models.IntegerField()
    reserved_after = models.IntegerField()
    reason = models.CharField(max_length=200, blank=True)
    source_type = models.CharField(max_length=32, blank=True)
    source_id = models.CharField(max_length=128, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["sku", "-id"]), models.Index(fields=["source_type", "source_id"])]
        verbose_name_plural = "stock ledger entries"

    def __str__(self) -> str:
        return f"{self.kind} {self.sku_id}@{self.warehouse_id} {self.on_hand_delta:+}/{self.reserved_delta:+}"


class Reservation(models.Model):
    """Stock held for one source line (e.g. an order line), at most once per line."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        RELEASED = "released", _("Released")
        CONSUMED = "consumed", _("Shipped")

    source_key = models.CharField(max_length=128)  # e.g. "order-line:123"
    sku = models.ForeignKey(
        Sku, on_delete=models.PROTECT, related_name="reservations", db_index=False
    )  # (sku, status) serves
    warehouse = models.ForeignKey(
        Warehouse, on_delete=models.PROTECT, related_name="reservations", db_index=False
    )  # hot insert path; nothing reads reservations by warehouse alone
    quantity = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source_key", "sku"], name="uniq_reservation_source_sku")
        ]
        indexes = [models.Index(fields=["sku", "status"])]

    def __str__(self) -> str:
        return f"{self.source_key}: {self.quantity} × {self.sku_id} ({self.status})"


class StockChange(models.Model):
    """Outbox of "available changed" for channel stock sync: one row per change, consumed
    (and coalesced per SKU) by the sync worker."""

    sku = models.ForeignKey(
        Sku, on_delete=models.CASCADE, related_name="+", db_index=False
    )  # (sku, id) serves
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["sku", "id"])]

    def __str__(self) -> str:
        return f"change {self.pk} of SKU {self.sku_id}"


class StockRule(models.Model):
    """How much of a SKU's available stock a shop publishes (shop default, or one SKU's
    exception on that shop). quantity = floor(available × percent / 100) + add − safety,
    then clamped to [floor, cap]."""

    store = models.ForeignKey("channels.Store", on_delete=models.CASCADE, related_name="stock_rules")
    sku = models.ForeignKey(Sku, null=True, blank=True, on_delete=models.CASCADE, related_name="stock_rules")
    percent = models.PositiveIntegerField(default=100)
    add = models.IntegerField(default=0)
    safety = models.PositiveIntegerField(default=0)
    floor = models.PositiveIntegerField(default=0)
    cap = models.PositiveIntegerField(null=True, blank=True)
    warehouses = models.ManyToManyField(Warehouse, blank=True, related_name="+")  # empty = all

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["store"], condition=Q(sku__isnull=True), name="one_default_rule_per_store"
            ),
            models.UniqueConstraint(fields=["store", "sku"], name="one_rule_per_store_sku"),
        ]

    def __str__(self) -> str:
        return f"rule store={self.store_id} sku={self.sku_id or '*'} {self.percent}%"


class Listing(models.Model):
    """A platform SKU on one shop, mapped to a merchant SKU (auto-matched by merchant code).

    Shows the sync formula's inputs and output, what the platform last accepted, and the
    platform's own number as last read."""

    class Match(models.TextChoices):
        MATCHED = "matched", _("Matched")
        UNMATCHED = "unmatched", _("Unmatched")
        IGNORED = "ignored", _("Ignored")

    class PushState(models.TextChoices):
        IN_SYNC = "in_sync", _("In sync")
        PENDING = "pending", _("Pending")
        FAILED = "failed", _("Failed")
        LOCKED = "locked", _("Locked")

    store = models.ForeignKey("channels.Store", on_delete=models.CASCADE, related_name="listings")
    platform_product_id = models.CharField(max_length=64)
    platform_sku_id = models.CharField(max_length=64)
    merchant_code = models.CharField(max_length=64, blank=True, db_index=True)
    title = models.CharField(max_length=300, blank=True)
    spec = models.CharField(max_length=200, blank=True)
    sku = models.ForeignKey(Sku, null=True, blank=True, on_delete=models.SET_NULL, related_name="listings")
    match = models.CharField(max_length=16, choices=Match.choices, default=Match.UNMATCHED)
    locked = models.BooleanField(default=False, help_text="do not sync this listing's stock")
    platform_stock = models.IntegerField(null=True, blank=True)  # as last read from the platform
    computed_qty = models.IntegerField(null=True, blank=True)
    pushed_qty = models.IntegerField(null=True, blank=True)  # last number the platform accepted
    pushed_at = models.DateTimeField(null=True, blank=True)
    push_state = models.CharField(max_length=16, choices=PushState.choices, default=PushState.PENDING)
    push_error = models.TextField(blank=True)
    push_attempts = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["store_id", "merchant_code"]
        constraints = [
            models.UniqueConstraint(
                fields=["store", "platform_product_id", "platform_sku_id"], name="uniq_listing"
            )
        ]
        indexes = [models.Index(fields=["sku", "store"]), models.Index(fields=["match"])]

    def __str__(self) -> str:
        return f"{self.store_id}:{self.platform_sku_id} → {self.sku_id}"

"""One order model for all platforms, its lines, events, review rules and fulfilments.

A *fulfilment* is one shipment unit: normally one per order; merging (合单) puts several
orders' lines into one fulfilment, splitting (拆单) spreads one order's lines (by quantity)
over several. Per order line, the fulfilment line quantities always add up to the line's
quantity.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class OrderStatus(models.TextChoices):
    PENDING_PAYMENT = "pending_payment", _("Pending payment")
    TO_REVIEW = "to_review", _("To review")
    HELD = "held", _("Held")
    APPROVED = "approved", _("To ship")
    PARTIALLY_SHIPPED = "partially_shipped", _("Partly shipped")
    SHIPPED = "shipped", _("Shipped")
    COMPLETED = "completed", _("Completed")
    CANCELLED = "cancelled", _("Cancelled")


class OrderOrigin(models.TextChoices):
    PLATFORM = "platform", _("Platform order")
    EXCHANGE = "exchange", _("Exchange replacement")  # 换货: ships the replacement of an after-sale
    REISSUE = "reissue", _("Reissue")  # 补寄: zero-price order for a missing / broken piece


class Order(models.Model):
    store = models.ForeignKey("channels.Store", on_delete=models.PROTECT, related_name="orders")
    platform = models.CharField(max_length=16)
    platform_order_id = models.CharField(max_length=64)
    status = models.CharField(max_length=24, choices=OrderStatus.choices, default=OrderStatus.PENDING_PAYMENT)
    channel_status = models.CharField(max_length=24)  # neutral status from the channel layer
    platform_status = models.CharField(max_length=32)
    hold_reasons = models.JSONField(default=list, blank=True)  # review rule codes that held the order
    is_refunding = models.BooleanField(default=False)
    has_unmatched = models.BooleanField(default=False)
    is_out_of_stock = models.BooleanField(default=False)
    address_changed = models.BooleanField(default=False)
    ship_blocked_reason = models.CharField(max_length=200, blank=True)

    buyer_id = models.CharField(max_length=128, blank=True)
    # Receiver: ciphertexts, masks and search indexes only (never plaintext).
    receiver_name_cipher = models.TextField(blank=True)
    receiver_name_mask = models.CharField(max_length=100, blank=True)
    receiver_phone_cipher = models.TextField(blank=True)
    receiver_phone_mask = models.CharField(max_length=40, blank=True)
    receiver_phone_index = models.CharField(max_length=200, blank=True)
    receiver_address_cipher = models.TextField(blank=True)
    receiver_address_mask = models.CharField(max_length=300, blank=True)
    province = models.CharField(max_length=40, blank=True)
    city = models.CharField(max_length=40, blank=True)
    district = models.CharField(max_length=40, blank=True)
    receiver_fingerprint = models.CharField(max_length=64, blank=True, db_index=True)
    phone_tail = models.CharField(max_length=4, blank=True)  # last digits as the mask shows them
    # Tracking numbers of the parcels the platform knows (shipped in or outside ecbao).
    tracking_numbers = ArrayField(models.CharField(max_length=64), default=list, blank=True)

    buyer_remark = models.TextField(blank=True)
    seller_remark = models.TextField(blank=True)
    goods_fen = models.BigIntegerField(default=0)
    freight_fen = models.BigIntegerField(default=0)
    discount_fen = models.BigIntegerField(default=0)
    paid_fen = models.BigIntegerField(default=0)

    placed_at = models.DateTimeField()
    paid_at = models.DateTimeField(null=True, blank=True)
    ship_by = models.DateTimeField(null=True, blank=True)
    shipped_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    platform_updated_at = models.DateTimeField()
    snapshot_id = models.BigIntegerField(null=True, blank=True)  # channels.OrderSnapshot applied last
    # Where the order comes from: the platform, or ecbao itself for an after-sale's replacement
    # (exchange) or reissue. Such an order is never pulled or written back as a platform order:
    # its tracking goes to the platform through the after-sale (aftersales).
    origin = models.CharField(max_length=12, choices=OrderOrigin.choices, default=OrderOrigin.PLATFORM)
    source_order = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="replacements"
    )
    after_sale_ref = models.CharField(max_length=64, blank=True)  # the platform after-sale id
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["store", "platform_order_id"], name="uniq_order_store_platform_id"
            )
        ]
        indexes = [
            models.Index(fields=["status", "-placed_at", "-id"], name="order_status_placed"),
            models.Index(fields=["-placed_at", "-id"], name="order_placed"),
            models.Index(fields=["store", "-placed_at", "-id"], name="order_store_placed"),
            models.Index(fields=["platform_order_id"], name="order_platform_id"),
            models.Index(fields=["phone_tail"], name="order_phone_tail"),
            GinIndex(fields=["tracking_numbers"], name="order_tracking_numbers"),
        ]

    def __str__(self) -> str:
        return f"{self.platform}:{self.platform_order_id}"


class LineStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    UNMATCHED = "unmatched", _("Unmatched SKU")
    OUT_OF_STOCK = "out_of_stock", _("Out of stock")
    UNROUTED = "unrouted", _("No shipper")  # routing found no one to ship it (or a rule holds it)
    RESERVED = "reserved", _("Reserved")
    SHIPPED = "shipped", _("Shipped")
    CANCELLED = "cancelled", _("Cancelled")
    REFUNDED = "refunded", _("Refunded")


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    platform_line_id = models.CharField(max_length=64)
    platform_product_id = models.CharField(max_length=64, blank=True)
    platform_sku_id = models.CharField(max_length=64, blank=True)
    listing = models.ForeignKey(
        "inventory.Listing", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    sku = models.ForeignKey(
        "inventory.Sku", null=True, blank=True, on_delete=models.PROTECT, related_name="order_lines"
    )
    merchant_code = models.CharField(max_length=64, blank=True, db_index=True)
    title = models.CharField(max_length=300, blank=True)
    spec = models.CharField(max_length=200, blank=True)
    quantity = models.PositiveIntegerField()
    unit_price_fen = models.BigIntegerField(default=0)
    paid_fen = models.BigIntegerField(default=0)
    is_gift = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=LineStatus.choices, default=LineStatus.PENDING)
    refund_state = models.CharField(max_length=32, blank=True)
    # Routing (分流): the warehouse (own, or a supplier's) that reserves and ships this line —
    # null until routed, then the default own warehouse when no rule says otherwise — and why.
    warehouse = models.ForeignKey(
        "inventory.Warehouse", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    route_note = models.CharField(max_length=300, blank=True)  # e.g. "规则 3：SKU 在「茶」→ 供应商 …"
    route_version = models.PositiveIntegerField(null=True, blank=True)  # rule set version that routed it
    route_rule_id = models.BigIntegerField(null=True, blank=True)  # the rule (suppliers.RouteRule), if any
    # Units that left in parcels ecbao shipped (``services.lines_shipped``), or all of them once
    # the platform says the whole order shipped; the line is SHIPPED when it reaches quantity.
    shipped_quantity = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["order", "platform_line_id"], name="uniq_order_line")]

    def __str__(self) -> str:
        return f"{self.order_id}/{self.platform_line_id} {self.merchant_code} × {self.quantity}"

    @property
    def reservation_key(self) -> str:
        return f"order-line:{self.pk}"


class OrderEvent(models.Model):
    """Who/what changed an order, when, from what to what. Append-only by convention."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=40)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=16, default="system")  # system / platform / user / rule
    message = models.CharField(max_length=500, blank=True)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["order", "id"])]

    def __str__(self) -> str:
        return f"{self.order_id} {self.kind}"


class ReviewRule(models.Model):
    """A merchant-editable review (审单) rule, evaluated when a paid order arrives."""

    class Kind(models.TextChoices):
        AUTO_APPROVE = "auto_approve", _("Approve automatically when nothing holds the order")
        BUYER_REMARK = "buyer_remark", _("Hold when the buyer left a remark")
        SELLER_REMARK = "seller_remark", _("Hold when the seller left a remark")
        ADDRESS_CHANGED = "address_changed", _("Hold when the address changed")
        AMOUNT_OVER = "amount_over", _("Hold when the paid amount exceeds a threshold")
        PLATFORM_RISK = "platform_risk", _("Hold when the platform flags risk or forbids shipping")
        STOCK_SHORT = "stock_short", _("Hold when stock is short")
        UNMATCHED = "unmatched", _("Hold when a line matches no SKU")
        AUTO_MERGE = "auto_merge", _("Merge approved orders of one shop to the same receiver (48 h)")

    kind = models.CharField(max_length=24, choices=Kind.choices, unique=True)
    enabled = models.BooleanField(default=True)
    threshold_fen = models.BigIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind"]

    def __str__(self) -> str:
        return f"{self.kind} ({'on' if self.enabled else 'off'})"


class Fulfilment(models.Model):
    """One shipment unit (see module docstring)."""

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        SHIPPED = "shipped", _("Shipped")
        CANCELLED = "cancelled", _("Cancelled")

    store = models.ForeignKey("channels.Store", on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    # Who ships it: an own warehouse or a supplier's (``Warehouse.kind``); null = the default
    # own warehouse. All lines of a fulfilment ship from one place.
    warehouse = models.ForeignKey(
        "inventory.Warehouse", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    receiver_fingerprint = models.CharField(max_length=64, blank=True)
    is_merged = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["store", "receiver_fingerprint", "status"])]

    def __str__(self) -> str:
        return f"fulfilment {self.pk} ({self.status})"


class FulfilmentLine(models.Model):
    fulfilment = models.ForeignKey(Fulfilment, on_delete=models.CASCADE, related_name="lines")
    order_line = models.ForeignKey(OrderLine, on_delete=models.CASCADE, related_name="fulfilment_lines")
    quantity = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["fulfilment", "order_line"], name="uniq_fulfilment_line"),
            models.CheckConstraint(condition=Q(quantity__gte=1), name="fulfilment_line_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.fulfilment_id}: line {self.order_line_id} × {self.quantity}"


class IngestionFailure(models.Model):
    """A stored platform version that could not be applied to its order: retried by the
    5-minute sweep with growing pauses (``next_attempt_at``), shown on the workbench, gone once
    the order reflects that version (or a newer one replaced it)."""

    store = models.ForeignKey("channels.Store", on_delete=models.CASCADE, related_name="+")
    platform_order_id = models.CharField(max_length=64)
    snapshot_id = models.BigIntegerField()  # the channels.OrderSnapshot that failed
    attempts = models.PositiveIntegerField(default=1)
    last_error = models.CharField(max_length=300, blank=True)
    first_failed_at = models.DateTimeField()
    last_failed_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField()

    class Meta:
        ordering = ["-last_failed_at"]
        constraints = [
            models.UniqueConstraint(fields=["store", "platform_order_id"], name="uniq_ingestion_failure")
        ]

    def __str__(self) -> str:
        return f"{self.platform_order_id} × {self.attempts}: {self.last_error}"

"""Dropship suppliers (一件代发): who they are, what they supply at what cost, the routing (分流)
rules that send order lines to them, and the dispatches (代发单) they ship.

A supplier's stock lives in inventory as a warehouse of its own (``Warehouse.kind`` SUPPLIER,
``Supplier.warehouse``): what the supplier reports is that warehouse's on-hand, so reservations,
the ledger and the stock push treat it like any other warehouse. An order line routed to a
supplier is reserved there (``OrderLine.warehouse``), its fulfilment ships from there
(``Fulfilment.warehouse``), and that fulfilment is the supplier's dispatch: one ``Dispatch`` per
fulfilment. The supplier ships it through logistics (parcels, waybills, write-back outbox) like
the merchant's own warehouse does.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class Supplier(models.Model):
    class Settlement(models.TextChoices):
        MONTHLY = "monthly", _("Monthly")
        PER_ORDER = "per_order", _("Per order")

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        PAUSED = "paused", _("Paused")

    name = models.CharField(_("company"), max_length=100)
    code = models.CharField(_("supplier code"), max_length=32, unique=True)
    contact_name = models.CharField(_("contact"), max_length=50, blank=True)
    contact_phone = models.CharField(_("contact phone"), max_length=30, blank=True)
    contact_email = models.EmailField(_("contact email"), blank=True)
    settlement = models.CharField(
        _("settlement terms"), max_length=12, choices=Settlement.choices, default=Settlement.MONTHLY
    )
    ship_from_province = models.CharField(_("ships from (province)"), max_length=40, blank=True)
    ship_from_city = models.CharField(_("ships from (city)"), max_length=40, blank=True)
    cutoff = models.TimeField(_("cut-off time"), null=True, blank=True)  # Asia/Shanghai wall time
    daily_capacity = models.PositiveIntegerField(_("capacity per day (lines)"), null=True, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.ACTIVE)
    warehouse = models.OneToOneField(
        "inventory.Warehouse", on_delete=models.PROTECT, related_name="supplier"
    )  # the supplier's stock (Warehouse.kind SUPPLIER)
    # Notifications of new and cancelled dispatches (optional).
    notify_email = models.EmailField(_("notify by email"), blank=True)
    webhook_url = models.URLField(_("webhook URL"), blank=True)
    webhook_secret = models.CharField(max_length=64, blank=True)  # HMAC-SHA256 key of the webhook
    # Buyer data: may this supplier reveal a receiver's full address (one decrypt per view,
    # audited, recorded as an outflow)? Off by default: suppliers see masks.
    may_reveal_receiver = models.BooleanField(_("may reveal the receiver"), default=False)
    # Platform-native dropship (see suppliers.native): the supplier's identity on the platform.
    wechat_supplier_appid = models.CharField(max_length=64, blank=True)
    kuaishou_factory_code = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class SupplierSku(models.Model):
    """One SKU a supplier supplies, under the supplier's own code, at its cost."""

    class Freight(models.TextChoices):
        FREE = "free", _("Freight included")
        PER_DISPATCH = "per_dispatch", _("Per dispatch")
        PER_UNIT = "per_unit", _("Per unit")

    supplier = models.ForeignKey(Supplier, on_delete=models.CASCADE, related_name="skus")
    sku = models.ForeignKey("inventory.Sku", on_delete=models.PROTECT, related_name="supplier_skus")
    supplier_code = models.CharField(_("supplier's code"), max_length=64, blank=True)
    cost_fen = models.BigIntegerField(_("cost price (fen)"))
    freight = models.CharField(max_length=16, choices=Freight.choices, default=Freight.FREE)
    freight_fen = models.BigIntegerField(_("freight (fen)"), default=0)
    priority = models.PositiveIntegerField(default=100)  # lower first, when several supply a SKU
    is_active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["supplier_id", "sku_id"]
        constraints = [
            models.UniqueConstraint(fields=["supplier", "sku"], name="uniq_supplier_sku"),
            models.CheckConstraint(
                condition=Q(cost_fen__gte=0) & Q(freight_fen__gte=0), name="supplier_sku_money"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.supplier_id}:{self.sku_id} {self.cost_fen}"


class RuleSet(models.Model):
    """A version of the routing rules. One is ACTIVE; a DRAFT is edited and dry-run, then
    activated (the active one is RETIRED). Lines remember the version that routed them."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        ACTIVE = "active", _("Active")
        RETIRED = "retired", _("Retired")

    version = models.PositiveIntegerField(unique=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.DRAFT)
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="active"), name="one_active_rule_set"
            )
        ]

    def __str__(self) -> str:
        return f"v{self.version} ({self.status})"


class RouteRule(models.Model):
    """One routing rule: when every condition holds for an order line, the action decides.

    ``conditions`` (all optional, all must hold): ``stores`` [store ids], ``platforms``
    [douyin|kuaishou|wechat], ``skus`` [SKU ids], ``goods`` [goods ids], ``brands`` [names],
    ``categories`` [names], ``provinces`` / ``cities`` [names], ``amount_min_fen`` /
    ``amount_max_fen`` (the order's paid amount), ``tags`` [any of], ``hours`` [from, to)
    (Asia/Shanghai, paid time), ``weekdays`` [1..7]."""

    class Action(models.TextChoices):
        SUPPLIER = "supplier", _("Send to supplier")
        WAREHOUSE = "warehouse", _("Send to own warehouse")
        CHEAPEST = "cheapest", _("Cheapest supplier with stock")
        SPLIT = "split", _("Split the order by supplier")
        HOLD = "hold", _("Hold")

    rule_set = models.ForeignKey(RuleSet, on_delete=models.CASCADE, related_name="rules")
    priority = models.PositiveIntegerField()
    name = models.CharField(max_length=60)
    enabled = models.BooleanField(default=True)
    conditions = models.JSONField(default=dict, blank=True)
    action = models.CharField(max_length=12, choices=Action.choices)
    supplier = models.ForeignKey(Supplier, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    warehouse = models.ForeignKey(
        "inventory.Warehouse", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["rule_set_id", "priority", "id"]
        constraints = [
            models.UniqueConstraint(fields=["rule_set", "priority"], name="uniq_rule_priority"),
        ]

    def __str__(self) -> str:
        return f"{self.priority}: {self.name} → {self.action}"


class Dispatch(models.Model):
    """代发单: the lines of one fulfilment routed to one supplier (see the module docstring)."""

    class Status(models.TextChoices):
        NEW = "new", _("New")  # 新单: sent, not acknowledged
        ACKNOWLEDGED = "acknowledged", _("To ship")  # 待发货
        PARTIALLY_SHIPPED = "partially_shipped", _("Partly shipped")
        SHIPPED = "shipped", _("Shipped")  # 已发货
        CANCELLING = "cancelling", _("Cancelled, awaiting interception")  # the supplier must confirm
        CANCELLED = "cancelled", _("Cancelled")  # 已取消

    class Native(models.TextChoices):
        NONE = "", _("ecbao portal")
        WECHAT = "wechat", _("WeChat 代发管理")
        KUAISHOU = "kuaishou", _("Kuaishou dropshipping")

    supplier = models.ForeignKey(Supplier, on_delete=models.PROTECT, related_name="dispatches")
    fulfilment = models.OneToOneField("orders.Fulfilment", on_delete=models.PROTECT, related_name="dispatch")
    store = models.ForeignKey("channels.Store", on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NEW)
    ship_by = models.DateTimeField(null=True, blank=True)  # SLA: the platform's promise
    goods_cost_fen = models.BigIntegerField(default=0)  # at the supplier's cost
    freight_fen = models.BigIntegerField(default=0)  # owed to the supplier by its freight rule
    amount_fen = models.BigIntegerField(default=0)  # what the buyer paid for these lines (+ freight share)
    sent_at = models.DateTimeField(auto_now_add=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    shipped_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancel_reason = models.CharField(max_length=200, blank=True)
    cancel_confirmed_at = models.DateTimeField(null=True, blank=True)
    intercepted = models.BooleanField(null=True, blank=True)  # the supplier's answer to a cancellation
    native = models.CharField(max_length=12, choices=Native.choices, default=Native.NONE, blank=True)
    native_id = models.CharField(max_length=64, blank=True)  # WeChat ds_order_id / Kuaishou allocation id
    native_state = models.CharField(max_length=32, blank=True)
    native_error = models.CharField(max_length=300, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True)
    notify_error = models.CharField(max_length=300, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["supplier", "status", "-id"], name="dispatch_supplier_status"),
            models.Index(fields=["status", "ship_by"], name="dispatch_sla"),
        ]

    def __str__(self) -> str:
        return f"dispatch {self.pk} → {self.supplier_id} ({self.status})"


class DispatchLine(models.Model):
    dispatch = models.ForeignKey(Dispatch, on_delete=models.CASCADE, related_name="lines")
    order_line = models.ForeignKey(
        "orders.OrderLine", on_delete=models.PROTECT, related_name="dispatch_lines"
    )
    sku = models.ForeignKey("inventory.Sku", null=True, on_delete=models.PROTECT, related_name="+")
    supplier_code = models.CharField(max_length=64, blank=True)
    quantity = models.PositiveIntegerField()
    unit_cost_fen = models.BigIntegerField(default=0)
    paid_fen = models.BigIntegerField(default=0)  # the buyer's payment for these units (exact share)
    # per-line SLA where the platform gives one
    delivery_deadline = models.DateTimeField(null=True, blank=True)
    shipped_quantity = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["dispatch", "order_line"], name="uniq_dispatch_line"),
        ]

    def __str__(self) -> str:
        return f"{self.dispatch_id}: line {self.order_line_id} × {self.quantity}"


class SupplierInvitation(models.Model):
    """A link that makes its holder a user of one supplier (several users per supplier)."""

    supplier = models.ForeignKey(Supplier, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(blank=True)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.supplier_id} {self.email}"


class ReceiverReveal(models.Model):
    """Append-only: a supplier user revealed a receiver field of a dispatch (a decrypt through
    the platform, counted against the shop's budget) — the outflow record of plaintext leaving
    the merchant to a supplier. The decrypt's own audit row lives in channels."""

    supplier = models.ForeignKey(Supplier, on_delete=models.PROTECT, related_name="+")
    dispatch = models.ForeignKey(Dispatch, on_delete=models.PROTECT, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    field = models.CharField(max_length=16)  # name / phone / address
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.user_id} {self.field} of dispatch {self.dispatch_id}"

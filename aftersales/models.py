"""After-sales (售后): refunds, returns, exchanges and reissues from every shop, in one model.

One ``AfterSale`` per platform after-sale (Douyin ``aftersale_id``, Kuaishou ``refundId``,
WeChat ``after_sale_order_id``), kept in step with the newest version the channel layer stored
(``channels.ChannelAfterSaleState`` → ``snapshot_id``): never a stale one. Beside the platform's
own status it carries ecbao's work queue (``queue``: 待处理 / 待退货 / 待收货 / 待退款 / 已完成 /
已关闭), the platform's live deadline, and who has to act: the warehouse that shipped the lines
or the supplier whose dispatch they were (``warehouse`` / ``supplier`` / ``dispatch``).

Returns come in as ``ReturnReceipt`` rows (scanned by return waybill; a parcel that matches
nothing is 无主件 until matched). A refund the supplier caused becomes a ``ChargeBack`` that
finance puts on the supplier's statement. Every change writes an ``AfterSaleEvent`` (the
timeline) and, for the order, an order event.

Buyer data: an after-sale holds no receiver data of its own; ``phone_tail`` of a receipt is
what the return parcel's label shows (a mask), never a full number.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class AfterSale(models.Model):
    class Type(models.TextChoices):
        REFUND_UNSHIPPED = "refund_unshipped", _("Refund before shipment")  # 未发货仅退款
        REFUND_SHIPPED = "refund_shipped", _("Refund after shipment")  # 已发货仅退款
        RETURN_REFUND = "return_refund", _("Return and refund")  # 退货退款
        EXCHANGE = "exchange", _("Exchange")  # 换货
        RESHIP = "reship", _("Reissue")  # 补寄
        OTHER = "other", _("Other")

    class Queue(models.TextChoices):
        PENDING = (
            "pending",
            pgettext_lazy("after-sale queue", "To handle"),
        )  # 待处理: the merchant must approve or refuse
        AWAITING_RETURN = (
            "awaiting_return",
            pgettext_lazy("after-sale queue", "Awaiting return"),
        )  # 待退货: the buyer sends it back
        AWAITING_RECEIPT = (
            "awaiting_receipt",
            pgettext_lazy("after-sale queue", "Awaiting receipt"),
        )  # 待收货: on its way / arrived
        AWAITING_REFUND = (
            "awaiting_refund",
            pgettext_lazy("after-sale queue", "Awaiting refund"),
        )  # 待退款: money or replacement due
        DONE = "done", pgettext_lazy("after-sale queue", "Completed")  # 已完成
        CLOSED = "closed", pgettext_lazy("after-sale queue", "Closed")  # 已关闭: refused, withdrawn, closed

    class SupplierAnswer(models.TextChoices):
        NONE = "", _("No answer yet")
        INTERCEPTED = "intercepted", _("Intercepted")  # stopped before it left / recalled
        NOT_INTERCEPTED = "not_intercepted", _("Could not intercept")
        RECEIVED = "received", _("Return received")
        REFUSED = "refused", _("Refused")  # with evidence

    store = models.ForeignKey("channels.Store", on_delete=models.PROTECT, related_name="+")
    platform = models.CharField(max_length=16)
    platform_after_sale_id = models.CharField(max_length=64)
    platform_order_id = models.CharField(max_length=64, db_index=True)
    order = models.ForeignKey(
        "orders.Order", null=True, blank=True, on_delete=models.PROTECT, related_name="after_sales"
    )
    type = models.CharField(max_length=20, choices=Type.choices)
    queue = models.CharField(max_length=20, choices=Queue.choices, default=Queue.PENDING)
    channel_status = models.CharField(max_length=32)  # neutral (channels.types.AfterSaleStatus)
    platform_status = models.CharField(max_length=32)  # the platform's own code / word
    reason = models.CharField(max_length=300, blank=True)
    reason_code = models.CharField(max_length=32, blank=True)
    refund_fen = models.BigIntegerField(default=0)  # what the buyer asks back (goods + freight)
    quantity = models.PositiveIntegerField(default=0)  # 0 = the platform does not say
    evidence = models.JSONField(default=list, blank=True)  # the buyer's images, as links
    deadline = models.DateTimeField(null=True, blank=True)  # the platform's live auto-approve/close time
    platform_version = models.CharField(max_length=32, blank=True)  # Douyin update_time guard
    platform_updated_at = models.DateTimeField()
    applied_at = models.DateTimeField()  # when the buyer applied
    snapshot_id = models.BigIntegerField(null=True, blank=True)  # channels.AfterSaleSnapshot applied last
    return_carrier = models.CharField(max_length=64, blank=True)
    return_tracking_no = models.CharField(max_length=64, blank=True, db_index=True)
    exchange = models.JSONField(default=dict, blank=True)  # the replacement asked for (sku code, spec)
    # The moment: had the lines shipped when the after-sale arrived? (decides the side effects)
    shipped_before = models.BooleanField(default=False)
    # Who ships these lines and so handles the after-sale: the own warehouse or a supplier.
    warehouse = models.ForeignKey(
        "inventory.Warehouse", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    supplier = models.ForeignKey(
        "suppliers.Supplier", null=True, blank=True, on_delete=models.PROTECT, related_name="after_sales"
    )
    dispatch = models.ForeignKey(
        "suppliers.Dispatch", null=True, blank=True, on_delete=models.PROTECT, related_name="after_sales"
    )
    supplier_answer = models.CharField(
        max_length=20, choices=SupplierAnswer.choices, default=SupplierAnswer.NONE, blank=True
    )
    supplier_note = models.TextField(blank=True)
    supplier_evidence = models.JSONField(default=list, blank=True)  # tenant-storage paths
    supplier_answered_at = models.DateTimeField(null=True, blank=True)
    # The replacement order of an exchange or a reissue (orders.Order, origin exchange/reissue).
    reship_order = models.ForeignKey(
        "orders.Order", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    effects = models.JSONField(default=dict, blank=True)  # side effects done (idempotence marks)
    auto_note = models.CharField(max_length=300, blank=True)  # why the auto-approve rule did (not) act
    last_error = models.CharField(max_length=300, blank=True)  # the last platform action's refusal
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["store", "platform_after_sale_id"], name="uniq_after_sale_store_platform_id"
            )
        ]
        indexes = [
            models.Index(fields=["queue", "deadline", "id"], name="after_sale_queue_deadline"),
            models.Index(fields=["supplier", "queue", "-id"], name="after_sale_supplier_queue"),
            models.Index(fields=["-applied_at", "-id"], name="after_sale_applied"),
        ]

    def __str__(self) -> str:
        return f"{self.platform}:{self.platform_after_sale_id} ({self.queue})"


class AfterSaleLine(models.Model):
    """The order lines an after-sale covers, with quantities and money (fen)."""

    after_sale = models.ForeignKey(AfterSale, on_delete=models.CASCADE, related_name="lines")
    order_line = models.ForeignKey(
        "orders.OrderLine", null=True, blank=True, on_delete=models.PROTECT, related_name="after_sale_lines"
    )
    platform_line_id = models.CharField(max_length=64, blank=True)
    sku = models.ForeignKey(
        "inventory.Sku", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    quantity = models.PositiveIntegerField(default=0)
    refund_fen = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["after_sale", "platform_line_id"], name="uniq_after_sale_line")
        ]

    def __str__(self) -> str:
        return f"{self.after_sale_id}/{self.platform_line_id} x{self.quantity}"


class AfterSaleEvent(models.Model):
    """The after-sale's timeline: what the platform, the merchant, the supplier, a rule or the
    system did, in words (zh-Hans at display)."""

    class Source(models.TextChoices):
        PLATFORM = "platform", _("Platform")
        MERCHANT = "merchant", _("Merchant")
        SUPPLIER = "supplier", _("Supplier")
        RULE = "rule", _("Rule")
        SYSTEM = "system", _("System")

    after_sale = models.ForeignKey(AfterSale, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=40)
    source = models.CharField(max_length=12, choices=Source.choices, default=Source.SYSTEM)
    message = models.CharField(max_length=500, blank=True)
    data = models.JSONField(default=dict, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.after_sale_id} {self.kind}"


class AfterSaleAction(models.Model):
    """One answer sent (or to be sent) to the platform: approve, refuse, confirm the return,
    intercept a parcel, send an exchange's replacement. Kept with the platform's reply; a
    refused or unanswered one stays visible and retryable. ``key`` makes a retried request
    (same after-sale, action and version) one action."""

    class Kind(models.TextChoices):
        APPROVE = "approve", _("Approve")
        REJECT = "reject", _("Refuse")
        CONFIRM_RECEIPT = "confirm_receipt", _("Confirm the return and refund")
        INTERCEPT = "intercept", _("Intercept the parcel")
        RESHIP = "reship", _("Send the replacement")

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting")  # e.g. WeChat's one refund call per order per minute
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    after_sale = models.ForeignKey(AfterSale, on_delete=models.CASCADE, related_name="actions")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    key = models.CharField(max_length=120)
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)  # the platform's reply (e.g. intercept cost)
    error = models.CharField(max_length=500, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    not_before = models.DateTimeField(null=True, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["key"], name="uniq_after_sale_action_key")]

    def __str__(self) -> str:
        return f"{self.after_sale_id} {self.kind} ({self.status})"


class AutoApprovePolicy(models.Model):
    """The bulk-approve rule for small refunds (one per tenant): approve a refund asked before
    shipment (and, optionally, other types) when its amount is at most ``max_fen``. Each
    decision is explained on the after-sale (``auto_note``)."""

    enabled = models.BooleanField(default=False)
    max_fen = models.BigIntegerField(default=5000)
    unshipped_only = models.BooleanField(default=True)
    store_ids = models.JSONField(default=list, blank=True)  # empty = every shop
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"auto-approve ≤ {self.max_fen} fen ({'on' if self.enabled else 'off'})"


class ReturnReceipt(models.Model):
    """A return parcel received at a warehouse (scanned by its waybill number): matched to an
    after-sale, or 无主件 (unclaimed) until matched by waybill, phone tail or SKU."""

    class Status(models.TextChoices):
        UNCLAIMED = "unclaimed", _("Unclaimed")  # 无主件
        MATCHED = "matched", _("Matched")  # waiting for inspection
        INSPECTED = "inspected", _("Inspected")  # stock booked

    warehouse = models.ForeignKey("inventory.Warehouse", on_delete=models.PROTECT, related_name="+")
    tracking_no = models.CharField(max_length=64, db_index=True)
    carrier = models.CharField(max_length=64, blank=True)
    after_sale = models.ForeignKey(
        AfterSale, null=True, blank=True, on_delete=models.PROTECT, related_name="receipts"
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.UNCLAIMED)
    phone_tail = models.CharField(max_length=4, blank=True)  # from the parcel's label
    note = models.CharField(max_length=300, blank=True)
    received_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    received_at = models.DateTimeField(auto_now_add=True)
    matched_at = models.DateTimeField(null=True, blank=True)
    inspected_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["warehouse", "tracking_no"], condition=~Q(tracking_no=""), name="uniq_return_receipt"
            )
        ]

    def __str__(self) -> str:
        return f"return {self.tracking_no} ({self.status})"


class ReturnReceiptLine(models.Model):
    """What came back in a receipt, inspected: good pieces go back to sellable stock through the
    ledger, defective ones to the warehouse's defective location."""

    receipt = models.ForeignKey(ReturnReceipt, on_delete=models.CASCADE, related_name="lines")
    sku = models.ForeignKey("inventory.Sku", on_delete=models.PROTECT, related_name="+")
    good = models.PositiveIntegerField(default=0)
    defective = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["receipt", "sku"], name="uniq_return_receipt_line")]

    def __str__(self) -> str:
        return f"{self.receipt_id} sku {self.sku_id}: {self.good} good, {self.defective} defective"


class ChargeBack(models.Model):
    """A refund the supplier caused (wrong item, damage, late) charged back to the supplier:
    a deduction line on the supplier's statement (finance)."""

    class Reason(models.TextChoices):
        WRONG_ITEM = "wrong_item", _("Wrong item sent")
        DAMAGED = "damaged", _("Damaged")
        LATE = "late", _("Shipped late")
        QUALITY = "quality", _("Quality problem")
        OTHER = "other", _("Other")

    class Status(models.TextChoices):
        OPEN = "open", _("Open")  # not yet on a statement
        BILLED = "billed", _("On a statement")
        CANCELLED = "cancelled", _("Cancelled")

    supplier = models.ForeignKey("suppliers.Supplier", on_delete=models.PROTECT, related_name="charge_backs")
    after_sale = models.ForeignKey(AfterSale, on_delete=models.PROTECT, related_name="charge_backs")
    dispatch = models.ForeignKey(
        "suppliers.Dispatch", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    amount_fen = models.BigIntegerField()
    reason = models.CharField(max_length=16, choices=Reason.choices)
    note = models.CharField(max_length=300, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OPEN)
    statement_ref = models.CharField(max_length=64, blank=True)  # set by finance
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["after_sale"], condition=~Q(status="cancelled"), name="one_live_charge_back"
            )
        ]

    def __str__(self) -> str:
        return f"charge-back {self.amount_fen} fen → supplier {self.supplier_id} ({self.status})"

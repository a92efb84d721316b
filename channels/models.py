"""Tenant-schema tables of the channel layer: the merchant's shops, sync cursors, the
order snapshots pulled or pushed from the platforms, and the push inbox."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from channels.types import AfterSaleStatus, OrderStatus, Platform
from ecbao.crypto import EncryptedTextField

PLATFORM_CHOICES = [(p.value, p.label) for p in Platform]


class Store(models.Model):
    """One shop on one platform, connected by the merchant."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        AUTH_EXPIRED = "auth_expired", _("Authorisation expired")
        DISABLED = "disabled", _("Disabled")
        ERROR = "error", _("Error")

    class AuthMode(models.TextChoices):
        OAUTH = "oauth", _("Authorised through the platform")
        SELF_USE = "self_use", _("Self-use app")

    platform = models.CharField(max_length=16, choices=PLATFORM_CHOICES)
    platform_shop_id = models.CharField(max_length=64)
    name = models.CharField(max_length=200)
    auth_mode = models.CharField(max_length=16, choices=AuthMode.choices, default=AuthMode.OAUTH)
    app_key = models.CharField(max_length=128)
    access_token = EncryptedTextField(blank=True, default="")
    access_expires_at = models.DateTimeField(null=True, blank=True)
    refresh_token = EncryptedTextField(blank=True, default="")
    refresh_expires_at = models.DateTimeField(null=True, blank=True)
    token_issued_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    settings = models.JSONField(default=dict, blank=True)
    connected_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["platform", "name"]
        constraints = [
            models.UniqueConstraint(fields=["platform", "platform_shop_id"], name="uniq_store_platform_shop")
        ]

    def __str__(self) -> str:
        return f"{self.get_platform_display()} · {self.name}"


class SyncCursor(models.Model):
    """How far a periodic pull has safely got: everything updated before ``watermark`` is stored."""

    class Kind(models.TextChoices):
        ORDERS = "orders"
        AFTER_SALES = "after_sales"
        SETTLEMENTS = "settlements"

    class State(models.TextChoices):
        IDLE = "idle"
        RUNNING = "running"
        FAILED = "failed"

    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="cursors")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    watermark = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.IDLE)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    windows_total = models.PositiveIntegerField(default=0)
    windows_done = models.PositiveIntegerField(default=0)
    items_seen = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["store", "kind"], name="uniq_cursor_store_kind")]

    def __str__(self) -> str:
        return f"{self.store_id}/{self.kind} @ {self.watermark}"


class OrderSnapshot(models.Model):
    """One version of a platform order as received (raw payload plus the neutral reading).
    Identical versions are stored once."""

    class Source(models.TextChoices):
        PULL = "pull"
        PUSH = "push"
        MANUAL = "manual"

    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="order_snapshots")
    platform_order_id = models.CharField(max_length=64)
    platform_updated_at = models.DateTimeField()
    platform_status = models.CharField(max_length=32)
    status = models.CharField(max_length=24, choices=[(s.value, s.value) for s in OrderStatus])
    digest = models.CharField(max_length=64)
    payload = models.JSONField()
    normalized = models.JSONField()
    source = models.CharField(max_length=8, choices=Source.choices)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["store", "platform_order_id", "digest"], name="uniq_order_snapshot"
            )
        ]
        indexes = [models.Index(fields=["store", "platform_order_id", "-platform_updated_at"])]

    def __str__(self) -> str:
        return f"{self.platform_order_id}@{self.platform_updated_at:%Y-%m-%d %H:%M:%S}"


class ChannelOrderState(models.Model):
    """The newest known version of each platform order: a stale version never replaces it."""

    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="order_states")
    platform_order_id = models.CharField(max_length=64)
    platform_updated_at = models.DateTimeField()
    platform_status = models.CharField(max_length=32)
    status = models.CharField(max_length=24, choices=[(s.value, s.value) for s in OrderStatus])
    snapshot = models.ForeignKey(OrderSnapshot, on_delete=models.PROTECT, related_name="+")
    changed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["store", "platform_order_id"], name="uniq_order_state")
        ]
        indexes = [models.Index(fields=["store", "-platform_updated_at"])]

    def __str__(self) -> str:
        return f"{self.platform_order_id}: {self.status}"


class AfterSaleSnapshot(models.Model):
    """One version of a platform after-sale as received (its neutral reading; the platform's raw
    payload is not kept). Identical versions are stored once."""

    class Source(models.TextChoices):
        PULL = "pull"
        PUSH = "push"

    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="after_sale_snapshots")
    platform_after_sale_id = models.CharField(max_length=64)
    platform_order_id = models.CharField(max_length=64)
    platform_updated_at = models.DateTimeField()
    platform_status = models.CharField(max_length=32)
    status = models.CharField(max_length=32, choices=[(s.value, s.value) for s in AfterSaleStatus])
    digest = models.CharField(max_length=64)
    normalized = models.JSONField()
    source = models.CharField(max_length=8, choices=Source.choices)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["store", "platform_after_sale_id", "digest"], name="uniq_after_sale_snapshot"
            )
        ]

    def __str__(self) -> str:
        return f"{self.platform_after_sale_id}@{self.platform_updated_at:%Y-%m-%d %H:%M:%S}"


class ChannelAfterSaleState(models.Model):
    """The newest known version of each platform after-sale: a stale version never replaces it.
    Kept for the after-sales work that reads them (nothing consumes them yet)."""

    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="after_sale_states")
    platform_after_sale_id = models.CharField(max_length=64)
    platform_order_id = models.CharField(max_length=64, db_index=True)
    platform_updated_at = models.DateTimeField()
    status = models.CharField(max_length=32, choices=[(s.value, s.value) for s in AfterSaleStatus])
    snapshot = models.ForeignKey(AfterSaleSnapshot, on_delete=models.PROTECT, related_name="+")
    changed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["store", "platform_after_sale_id"], name="uniq_after_sale_state")
        ]

    def __str__(self) -> str:
        return f"{self.platform_after_sale_id}: {self.status}"


class InboxMessage(models.Model):
    """A verified, decoded push message for this tenant. Processed asynchronously, at most
    once per (platform, message id); failures stay here with their error and can be retried."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        PROCESSED = "processed", _("Processed")
        FAILED = "failed", _("Failed")
        IGNORED = "ignored", _("Ignored")

    platform = models.CharField(max_length=16, choices=PLATFORM_CHOICES)
    message_id = models.CharField(max_length=128)
    store = models.ForeignKey(Store, null=True, blank=True, on_delete=models.SET_NULL, related_name="inbox")
    topic = models.CharField(max_length=64)
    payload = models.JSONField()
    receipt_id = models.BigIntegerField(null=True, blank=True)  # channel_routing.PushReceipt in public
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    attempted_at = models.DateTimeField(null=True, blank=True)  # the last attempt's start
    last_error = models.TextField(blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [models.UniqueConstraint(fields=["platform", "message_id"], name="uniq_inbox_message")]
        indexes = [models.Index(fields=["status", "received_at"])]

    def __str__(self) -> str:
        return f"{self.platform}:{self.message_id} {self.topic} ({self.status})"


class DecryptAudit(models.Model):
    """One buyer-data field decrypted for one person. Append-only; kept at least a year.
    Also the per-shop daily decrypt budget is counted from these rows."""

    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="decrypt_audits")
    platform_order_id = models.CharField(max_length=64)
    field = models.CharField(max_length=16)  # name / phone / address
    user = models.ForeignKey("accounts.User", null=True, on_delete=models.SET_NULL, related_name="+")
    username = models.CharField(max_length=150)  # kept if the user is deleted
    ip = models.GenericIPAddressField(null=True, blank=True)
    succeeded = models.BooleanField(default=True)
    error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["store", "created_at"])]

    def __str__(self) -> str:
        return f"{self.username} decrypted {self.field} of {self.platform_order_id}"

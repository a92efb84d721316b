"""Public-schema tables of the channel layer.

Pushes arrive at one URL per platform on the public domain; these tables tell which
tenant a message belongs to, and keep every raw push before it is acknowledged.
"""

from django.db import models

from ecbao.crypto import EncryptedTextField


class PlatformApp(models.Model):
    """A platform developer app. ``tenant`` empty = this deployment's own (ISV) app, shared
    by every merchant; set = a merchant's self-use app whose keys the merchant entered.

    The deployment's WeChat app is a third-party platform (component): it keeps the newest
    ``component_verify_ticket`` WeChat pushed (``verify_ticket_at`` = the push's CreateTime)
    and the ``component_access_token`` every connector shares (see ``channels/component.py``)."""

    platform = models.CharField(max_length=16)
    app_key = models.CharField(max_length=128)
    secrets_json = EncryptedTextField(default="{}")  # app_secret, sign_secret, message_key, token, aes_key
    tenant = models.ForeignKey("tenants.Tenant", null=True, blank=True, on_delete=models.CASCADE)
    verify_ticket = EncryptedTextField(blank=True, default="")
    verify_ticket_at = models.DateTimeField(null=True, blank=True)
    component_token = EncryptedTextField(blank=True, default="")
    component_token_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["platform", "app_key"], name="uniq_platform_app")]

    def __str__(self) -> str:
        return f"{self.platform}:{self.app_key}"


class ShopRoute(models.Model):
    """(platform, platform shop id) → the tenant that connected that shop."""

    platform = models.CharField(max_length=16)
    platform_shop_id = models.CharField(max_length=64)
    app_key = models.CharField(max_length=128)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="shop_routes")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["platform", "platform_shop_id"], name="uniq_shop_route")
        ]

    def __str__(self) -> str:
        return f"{self.platform}:{self.platform_shop_id} → {self.tenant_id}"


class PushReceipt(models.Model):
    """One push request exactly as received (body still encrypted where the platform
    encrypts), stored before the platform gets its acknowledgement; once per set of messages."""

    class Status(models.TextChoices):
        RECEIVED = "received"
        ROUTED = "routed"
        UNROUTABLE = "unroutable"
        FAILED = "failed"

    class Kind(models.TextChoices):
        MESSAGES = "messages"  # shop messages (orders, after-sales …) for the tenants' inboxes
        AUTHORIZATION = "authorization"  # WeChat third-party platform authorisation events

    platform = models.CharField(max_length=16)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.MESSAGES)
    app_key = models.CharField(max_length=128, blank=True)
    query = models.JSONField(default=dict)
    headers = models.JSONField(default=dict)
    body = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    messages = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    routed_at = models.DateTimeField(null=True, blank=True)
    # sha256 of the push's message ids: a redelivery or a replay of the same messages is not
    # stored again (kept for ``intake.RECEIPT_RETENTION``, longer than any freshness window)
    dedupe_key = models.CharField(max_length=64, blank=True)  # "" on receipts stored before

    class Meta:
        indexes = [models.Index(fields=["status", "received_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["platform", "app_key", "dedupe_key"],
                condition=~models.Q(dedupe_key=""),
                name="uniq_push_receipt_messages",
            )
        ]

    def __str__(self) -> str:
        return f"{self.platform} push {self.pk} ({self.status})"

"""Shipping: waybill accounts and carrier rules, parcels and their waybills, the print journal,
the write-back outbox and tracking.

How the pieces meet an order (orders.Fulfilment is the shipment unit — merged orders share
one, a split order has several):

- a **Parcel** is one physical box of one fulfilment (a fulfilment ships as 1..n parcels,
  ``seq``/``count`` = parcel n/m); **ParcelLine** says which order lines, how many, are in it.
  Per fulfilment line, the parcel line quantities add up to the fulfilment line's quantity;
- a **Waybill** is one number taken from a platform's e-waybill service for a parcel (or a
  child number of a multi-piece shipment); ``key`` is ecbao's idempotency key for the platform
  call, stored *before* the call, so a retry can never take a second number for one parcel.
  Numbers entered by hand (shipped outside ecbao) have no Waybill row: only the parcel's
  ``tracking_no``;
- a **WriteBack** is one "tell the platform this order shipped in this parcel" in an outbox:
  one per (parcel, order) — a merged parcel writes back to every order in it;
- **PrintRecord** is the print journal; **TrackingEvent** the carrier's events per parcel;
- **ShipBatch** is a long job (take waybills, render labels, ship, import) with progress and
  per-parcel errors kept on the parcels (``Parcel.error``), retryable.

Buyer data never appears here in plaintext: waybills are taken with the platform's
ciphertext (隐私面单) and the platform's print data is opaque, encrypted by the platform.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class WaybillAccount(models.Model):
    """One e-waybill subscription of a shop (carrier × branch × account), read from the platform."""

    store = models.ForeignKey("channels.Store", on_delete=models.CASCADE, related_name="+")
    carrier = models.CharField(_("carrier"), max_length=32)  # neutral carrier key (channels carrier table)
    platform_carrier_code = models.CharField(max_length=32)  # the code the platform's waybill API wants
    branch_code = models.CharField(max_length=64, blank=True)
    branch_name = models.CharField(max_length=200, blank=True)
    account_id = models.CharField(max_length=64, blank=True)
    available = models.IntegerField(null=True, blank=True)  # remaining numbers where reported
    allocated = models.IntegerField(null=True, blank=True)
    recycled = models.IntegerField(null=True, blank=True)
    cancelled = models.IntegerField(null=True, blank=True)
    is_active = models.BooleanField(default=True)  # false once the platform stops listing it
    synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["store_id", "carrier", "branch_code"]
        constraints = [
            models.UniqueConstraint(
                fields=["store", "carrier", "branch_code", "account_id"], name="uniq_waybill_account"
            )
        ]

    def __str__(self) -> str:
        return f"{self.carrier} {self.branch_name or self.branch_code} ({self.available})"


class SenderAddress(models.Model):
    """The merchant's own ship-from address printed on labels and sent when taking waybills."""

    name = models.CharField(_("name"), max_length=60)
    mobile = models.CharField(_("phone"), max_length=30)
    province = models.CharField(_("province"), max_length=40)
    city = models.CharField(_("city"), max_length=40)
    district = models.CharField(_("district"), max_length=40, blank=True)
    street = models.CharField(_("street"), max_length=60, blank=True)
    detail = models.CharField(_("address"), max_length=200)
    warehouse = models.ForeignKey(
        "inventory.Warehouse", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    is_default = models.BooleanField(default=False)

    class Meta:
        ordering = ["-is_default", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="one_default_sender"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.province}{self.city}"


class CarrierRule(models.Model):
    """Default carrier choice (快递策略): the first enabled rule by ``priority`` whose every set
    condition matches a parcel chooses its carrier (and account); the parcel records which."""

    name = models.CharField(_("name"), max_length=100)
    priority = models.PositiveIntegerField(_("priority"), default=100)
    enabled = models.BooleanField(_("enabled"), default=True)
    store_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)  # empty: any shop
    warehouse = models.ForeignKey(
        "inventory.Warehouse", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    provinces = ArrayField(models.CharField(max_length=40), default=list, blank=True)  # receiver region
    min_weight_g = models.PositiveIntegerField(null=True, blank=True)
    max_weight_g = models.PositiveIntegerField(null=True, blank=True)
    merchant_codes = ArrayField(models.CharField(max_length=64), default=list, blank=True)  # any line's SKU
    carrier = models.CharField(_("carrier"), max_length=32)
    account = models.ForeignKey(
        WaybillAccount, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["priority", "id"]

    def __str__(self) -> str:
        return f"{self.priority}. {self.name} → {self.carrier}"


class ShipBatch(models.Model):
    """A long shipping job with progress; per-parcel errors stay on the parcels."""

    class Kind(models.TextChoices):
        TAKE_WAYBILLS = "take_waybills", _("Take waybill numbers")
        LABELS = "labels", _("Render labels")
        PRINT = "print", _("Print")
        SHIP = "ship", _("Ship")
        IMPORT_TRACKING = "import_tracking", _("Import tracking numbers")

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    params = models.JSONField(default=dict, blank=True)
    result_file = models.FileField(upload_to="logistics/batches/", blank=True)
    error = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} {self.done}/{self.total}"


class Parcel(models.Model):
    """One physical box of one fulfilment (see the module docstring)."""

    class Status(models.TextChoices):
        NEW = "new", _("No waybill")  # 待取号
        NUMBERED = "numbered", _("Waybill taken")  # 待打印
        PRINTED = "printed", _("Printed")  # 待发货
        VERIFIED = "verified", _("Verified")  # scanned, ready to hand over
        SHIPPED = "shipped", _("Shipped")
        CANCELLED = "cancelled", _("Cancelled")

    class Tracking(models.TextChoices):
        NONE = "", _("No tracking yet")
        COLLECTED = "collected", _("Collected")
        IN_TRANSIT = "in_transit", _("In transit")
        DELIVERING = "delivering", _("Out for delivery")
        DELIVERED = "delivered", _("Delivered")
        EXCEPTION = "exception", _("Exception")
        RETURNED = "returned", _("Returned to sender")

    fulfilment = models.ForeignKey("orders.Fulfilment", on_delete=models.PROTECT, related_name="parcels")
    store = models.ForeignKey("channels.Store", on_delete=models.PROTECT, related_name="+")
    seq = models.PositiveSmallIntegerField(default=1)  # parcel n …
    count = models.PositiveSmallIntegerField(default=1)  # … of m
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.NEW)
    carrier = models.CharField(_("carrier"), max_length=32, blank=True)  # neutral carrier key
    carrier_reason = models.CharField(max_length=200, blank=True)  # which rule chose it, or "by hand"
    account = models.ForeignKey(
        WaybillAccount, null=True, blank=True, on_delete=models.SET_NULL, related_name="parcels"
    )
    tracking_no = models.CharField(_("tracking number"), max_length=64, blank=True)
    manual = models.BooleanField(default=False)  # tracking number entered/imported, not taken here
    weight_g = models.PositiveIntegerField(null=True, blank=True)
    batch = models.ForeignKey(
        ShipBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="parcels"
    )
    error = models.CharField(max_length=300, blank=True)  # last failure of a batch step, retryable
    print_count = models.PositiveIntegerField(default=0)
    printed_at = models.DateTimeField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    verified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    shipped_at = models.DateTimeField(null=True, blank=True)
    tracking_status = models.CharField(max_length=12, choices=Tracking.choices, default="", blank=True)
    last_event_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    tracking_pulled_at = models.DateTimeField(null=True, blank=True)  # last trace pull (logistics.tracking)
    tracking_error = models.CharField(max_length=300, blank=True)  # the last pull's failure, retried
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["fulfilment", "seq"], name="uniq_parcel_seq"),
            models.UniqueConstraint(
                fields=["carrier", "tracking_no"],
                condition=~Q(tracking_no="") & ~Q(status="cancelled"),
                name="uniq_live_parcel_tracking_no",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "-id"], name="parcel_status"),
            models.Index(fields=["tracking_no"], name="parcel_tracking_no"),
            models.Index(
                fields=["tracking_pulled_at", "id"],
                condition=Q(status="shipped") & ~Q(tracking_status__in=["delivered", "returned"]),
                name="parcel_tracking_due",
            ),
        ]

    def __str__(self) -> str:
        return f"parcel {self.pk} ({self.seq}/{self.count}) {self.tracking_no or '—'}"


class ParcelLine(models.Model):
    parcel = models.ForeignKey(Parcel, on_delete=models.CASCADE, related_name="lines")
    order_line = models.ForeignKey("orders.OrderLine", on_delete=models.PROTECT, related_name="parcel_lines")
    quantity = models.PositiveIntegerField()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["parcel", "order_line"], name="uniq_parcel_line"),
            models.CheckConstraint(condition=Q(quantity__gte=1), name="parcel_line_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.parcel_id}: line {self.order_line_id} × {self.quantity}"


class Waybill(models.Model):
    """One number from a platform e-waybill service (see the module docstring)."""

    class Status(models.TextChoices):
        REQUESTED = "requested", _("Requested")  # key stored, platform answer not (yet) known
        ISSUED = "issued", _("Issued")
        FAILED = "failed", _("Failed")  # the platform refused: a retry may use a new key
        CANCELLED = "cancelled", _("Cancelled")  # recycled at the platform

    parcel = models.ForeignKey(Parcel, on_delete=models.PROTECT, related_name="waybills")
    store = models.ForeignKey("channels.Store", on_delete=models.PROTECT, related_name="+")
    account = models.ForeignKey(
        WaybillAccount, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    key = models.CharField(max_length=64, unique=True)  # idempotency key sent to the platform
    carrier = models.CharField(max_length=32)
    platform_carrier_code = models.CharField(max_length=32, blank=True)
    tracking_no = models.CharField(max_length=64, blank=True)
    platform_waybill_id = models.CharField(max_length=64, blank=True)  # WeChat ewaybill_order_id
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )  # child waybill (子单) of a multi-piece shipment
    sort_code = models.CharField(max_length=64, blank=True)  # 三段码
    short_address = models.CharField(max_length=100, blank=True)  # 大头笔
    package_center = models.CharField(max_length=100, blank=True)  # 集包地
    print_data = models.TextField(blank=True)  # the platform's (encrypted) print payload
    print_sign = models.TextField(blank=True)
    print_key = models.TextField(blank=True)
    template_url = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.REQUESTED)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["parcel"],
                condition=Q(status__in=["requested", "issued"]) & Q(parent__isnull=True),
                name="one_live_waybill_per_parcel",
            )
        ]
        indexes = [models.Index(fields=["tracking_no"], name="waybill_tracking_no")]

    def __str__(self) -> str:
        return f"{self.carrier} {self.tracking_no or self.key} ({self.status})"


class PrintRecord(models.Model):
    """The print journal: every print of a parcel's label, by the platform's print component
    or as ecbao's own PDF; reprints carry a reason."""

    class Kind(models.TextChoices):
        COMPONENT = "component", _("Print component")
        PDF = "pdf", _("PDF")

    class Status(models.TextChoices):
        SENT = "sent", _("Sent")
        PRINTED = "printed", _("Printed")
        FAILED = "failed", _("Failed")

    parcel = models.ForeignKey(Parcel, on_delete=models.CASCADE, related_name="prints")
    waybill = models.ForeignKey(Waybill, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    batch = models.ForeignKey(ShipBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    printer = models.CharField(max_length=200, blank=True)
    task_id = models.CharField(max_length=64, blank=True, db_index=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.SENT)
    is_reprint = models.BooleanField(default=False)
    reason = models.CharField(max_length=200, blank=True)
    error = models.CharField(max_length=300, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    reported_at = models.DateTimeField(null=True, blank=True)  # the platform was told (WeChat)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"print {self.parcel_id} {self.kind} {self.status}"


class WriteBack(models.Model):
    """Outbox: tell the platform that an order shipped in a parcel (see the module docstring)."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting")
        SENDING = "sending", _("Sending")
        ACCEPTED = "accepted", _("Accepted")
        FAILED = "failed", _("Failed, retrying")
        GIVEN_UP = "given_up", _("Needs attention")

    parcel = models.ForeignKey(Parcel, on_delete=models.PROTECT, related_name="write_backs")
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="write_backs")
    key = models.CharField(max_length=64, unique=True)  # idempotency key per (parcel, order)
    lines = models.JSONField(default=list)  # [[platform_line_id, quantity], …]; [] = whole order
    carrier_code = models.CharField(max_length=32)  # the platform's shipping carrier code
    tracking_no = models.CharField(max_length=64)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    # First time a request left for the platform: from then on, every attempt first reads the
    # platform's order (an earlier reply may have been lost after the platform acted).
    sent_at = models.DateTimeField(null=True, blank=True)
    # The platform's view of the order's shipment as last read: [{tracking_no, carrier_code,
    # platform_package_id, lines: [[platform_line_id, quantity], …]}, …]
    platform_packages = models.JSONField(default=list, blank=True)
    platform_checked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["parcel", "order"], name="uniq_write_back")]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="write_back_due")]

    def __str__(self) -> str:
        return f"write-back {self.order_id}/{self.parcel_id} ({self.status})"

    @property
    def platform_numbers(self) -> list[str]:
        """The tracking numbers the platform listed for the order when last read."""
        return [p.get("tracking_no", "") for p in self.platform_packages or () if isinstance(p, dict)]

    @property
    def platform_agrees(self) -> bool | None:
        """Whether the platform's view lists this write-back's number (None: not read yet)."""
        if self.platform_checked_at is None:
            return None
        return self.tracking_no in self.platform_numbers


class TrackingEvent(models.Model):
    """One carrier event of a parcel (pulled or pushed); ``fingerprint`` makes repeats no-ops."""

    parcel = models.ForeignKey(Parcel, on_delete=models.CASCADE, related_name="events")
    occurred_at = models.DateTimeField()
    status = models.CharField(max_length=12, choices=Parcel.Tracking.choices)
    description = models.CharField(max_length=500, blank=True)
    location = models.CharField(max_length=100, blank=True)
    source = models.CharField(max_length=8, default="pull")  # pull / push
    fingerprint = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["occurred_at", "id"]
        constraints = [models.UniqueConstraint(fields=["parcel", "fingerprint"], name="uniq_tracking_event")]

    def __str__(self) -> str:
        return f"{self.parcel_id} {self.status} @ {self.occurred_at:%Y-%m-%d %H:%M}"


class Intercept(models.Model):
    """A request to stop a parcel whose order was refunded after it left (拦截); after-sales
    handles it from here."""

    class Status(models.TextChoices):
        REQUESTED = "requested", _("Requested")
        DONE = "done", _("Intercepted")
        FAILED = "failed", _("Failed")

    parcel = models.ForeignKey(Parcel, on_delete=models.PROTECT, related_name="intercepts")
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.REQUESTED)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["parcel", "order"], condition=Q(status="requested"), name="one_open_intercept"
            )
        ]

    def __str__(self) -> str:
        return f"intercept {self.parcel_id} ({self.status})"


class VerifyScan(models.Model):
    """One scan at the verify bench (验货): an item code scanned into a parcel, accepted or
    refused (wrong item, too many) — progress is the sum of the accepted scans not cleared;
    refused scans stay as the bench's record. ``client_id`` (one per physical scan, from the
    page) makes a repeated request count once."""

    parcel = models.ForeignKey(Parcel, on_delete=models.CASCADE, related_name="verify_scans")
    code = models.CharField(max_length=64)
    item = models.CharField(max_length=80, blank=True)  # the parcel item it counted for ("sku:12")
    accepted = models.BooleanField(default=False)
    message = models.CharField(max_length=300, blank=True)
    client_id = models.CharField(max_length=64, blank=True)
    cleared = models.BooleanField(default=False)  # a restart of the parcel's verification
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["parcel", "client_id"], condition=~Q(client_id=""), name="uniq_verify_scan_client_id"
            )
        ]

    def __str__(self) -> str:
        return f"scan {self.parcel_id} {self.code} ({'ok' if self.accepted else 'refused'})"

"""The connector interface and the HTTP mechanics every platform shares.

A connector speaks exactly one platform's API (signing, envelopes, paging, units) and
returns neutral dataclasses from ``channels.types``; it raises only ``channels.errors``.

Retry policy (``Connector._send``):
- timeouts, connection errors, HTTP 5xx and malformed bodies → ``TemporarilyUnavailable``;
  retried with exponential backoff and full jitter **only** when the call is idempotent
  (reads, absolute stock sets, writes carrying the platform's idempotency key);
- rate limits → ``RateLimited`` (the platform did not execute the call), retried after the
  advertised delay a bounded number of times, then raised;
- expired access token → one refresh and one retry; if the refresh fails, ``AuthExpired``.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx

from channels.errors import AuthExpired, ChannelError, NotSupported, RateLimited, TemporarilyUnavailable
from channels.types import (
    AfterSale,
    Carrier,
    ChannelOrder,
    DropshipAssignment,
    InterceptResult,
    Listing,
    Platform,
    PublishedProduct,
    PublishSku,
    RejectReason,
    ReturnAddress,
    SettlementLine,
    ShipmentParcel,
    TokenGrant,
    TrackingEvent,
    Waybill,
    WaybillAccount,
    WaybillPrint,
    WaybillRequest,
)

logger = logging.getLogger("channels.connectors")


class TokenExpiredSignal(Exception):
    """Raised inside a platform's response parser when the platform says the token expired."""


@dataclass
class AppCredentials:
    """An app's keys. Which fields a platform uses: Douyin app_key/app_secret; Kuaishou
    app_key/app_secret/sign_secret/message_key; WeChat app_key (appid)/app_secret/token/aes_key."""

    app_key: str
    app_secret: str
    sign_secret: str = ""
    message_key: str = ""
    token: str = ""
    aes_key: str = ""


@dataclass(frozen=True)
class StoredTokens:
    """A shop's tokens as stored right now (read under ``ShopSession.refresh_guard``)."""

    access_token: str
    access_expires_at: datetime | None
    refresh_token: str
    refresh_expires_at: datetime | None
    issued_at: datetime | None


@dataclass
class ShopSession:
    """A shop's tokens, and where to persist new ones.

    ``refresh_guard``, when set, serialises token refreshes of this shop among every process:
    entering it locks the stored tokens (the store's row) and yields them as they are now;
    ``on_new_tokens`` called inside it saves under that lock."""

    platform_shop_id: str
    access_token: str = ""
    access_expires_at: datetime | None = None
    refresh_token: str = ""
    refresh_expires_at: datetime | None = None
    issued_at: datetime | None = None
    on_new_tokens: Callable[[TokenGrant], None] = field(default=lambda grant: None)
    refresh_guard: Callable[[], AbstractContextManager[StoredTokens]] | None = None


@dataclass
class RetryPolicy:
    attempts: int = 4
    base_delay: float = 0.2
    max_delay: float = 5.0
    rate_limit_attempts: int = 5
    sleep: Callable[[float], None] = time.sleep

    def backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))  # noqa: S311 - jitter


class Pacer:
    """Spaces calls at most ``rate`` per second, across every thread of this process."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self, sleep: Callable[[float], None] = time.sleep) -> None:
        with self._lock:
            now = time.monotonic()
            at = max(now, self._next)
            self._next = at + self.interval
        if at > now:
            sleep(at - now)


_pacers: dict[tuple, Pacer] = {}
_pacers_lock = threading.Lock()


def pacer_for(key: tuple, rate: float) -> Pacer:
    with _pacers_lock:
        pacer = _pacers.get(key)
        if pacer is None or pacer.interval != 1.0 / rate:
            pacer = _pacers[key] = Pacer(rate)
        return pacer


class Connector(ABC):
    """One platform's API. Subclasses implement the abstract methods below."""

    platform: ClassVar[Platform]
    #: longest update-time window one order list call may span
    max_order_window: ClassVar[timedelta] = timedelta(days=1)
    #: how far back the order list can reach
    max_lookback: ClassVar[timedelta] = timedelta(days=90)
    #: refresh proactively once this share of the access token's life has passed
    refresh_at_share: ClassVar[float] = 0.8
    #: calls per second this process allows itself per (app, path) — paths the platform limits
    #: and ecbao calls in bulk (e.g. one detail call per order); others are not paced
    call_rates: ClassVar[dict[str, float]] = {}

    #: paths that share one pace (one quota), by a group name; the group's rate is ``call_rates[group]``
    pace_groups: ClassVar[dict[str, str]] = {}

    def pace(self, path: str) -> None:
        """Wait for this call's turn under ``call_rates``, so bulk work stays below the
        platform's limit instead of running into it and sleeping out the penalty."""
        key = self.pace_groups.get(path, path)
        rate = self.call_rates.get(key)
        if rate:
            pacer_for((self.platform, self.credentials.app_key, key), rate).wait(self.retry.sleep)

    def __init__(
        self,
        *,
        credentials: AppCredentials,
        base_url: str,
        session: ShopSession | None = None,
        http: httpx.Client | None = None,
        retry: RetryPolicy | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        timeout: float = 10.0,
    ) -> None:
        self.credentials = credentials
        self.base_url = base_url.rstrip("/")
        self.session = session or ShopSession(platform_shop_id="")
        self.http = http or httpx.Client(timeout=timeout)
        self.retry = retry or RetryPolicy()
        self.now = now

    # --- authorisation -------------------------------------------------------------------
    @abstractmethod
    def authorize_url(self, *, redirect_uri: str, state: str) -> str:
        """Where to send the merchant to grant this app access to a shop."""

    @abstractmethod
    def exchange_code(self, *, code: str, redirect_uri: str = "") -> TokenGrant:
        """Turn an authorisation code into tokens (and the shop's id and name)."""

    def self_use_token(self, *, platform_shop_id: str) -> TokenGrant:
        """Tokens for a self-use app (the merchant's own app keys). Not every platform has them."""
        raise NotImplementedError(f"{self.platform} has no self-use app tokens")

    @abstractmethod
    def refresh_tokens(self) -> TokenGrant:
        """Refresh the session's access token; raise AuthExpired if that is impossible."""

    # --- orders --------------------------------------------------------------------------
    @abstractmethod
    def iter_orders(self, *, updated_from: datetime, updated_to: datetime) -> Iterator[ChannelOrder]:
        """Every order whose update time is in [updated_from, updated_to] (≤ max_order_window)."""

    @abstractmethod
    def get_order(self, platform_order_id: str) -> ChannelOrder:
        """One order, fresh from the platform."""

    @abstractmethod
    def ship(self, *, platform_order_id: str, parcels: list[ShipmentParcel], request_id: str) -> None:
        """Ship parcels; one parcel with no lines = the whole order."""

    @abstractmethod
    def list_carriers(self) -> list[Carrier]:
        """Carrier codes the platform accepts when shipping."""

    # --- stock and listings ------------------------------------------------------------
    @abstractmethod
    def iter_listings(self) -> Iterator[Listing]:
        """Every SKU on the shop."""

    @abstractmethod
    def set_stock(
        self, *, listing: Listing, quantity: int, current: int | None, idempotency_key: str
    ) -> None:
        """Make the platform's stock for ``listing`` equal ``quantity``.

        ``current`` is the platform's number as last read; platforms with delta-only stock
        APIs send ``quantity - current``."""

    # --- after-sales, money, waybills, buyer data --------------------------------------
    @abstractmethod
    def iter_after_sales(self, *, updated_from: datetime, updated_to: datetime) -> Iterator[AfterSale]:
        """After-sale requests changed in the window."""

    def get_after_sale(self, platform_after_sale_id: str) -> AfterSale:
        """One after-sale, fresh from the platform (a push names it)."""
        raise NotImplementedError(f"{self.platform} connector cannot fetch one after-sale")

    # answers to after-sales (售后处理), through the platform's API. ``version`` is the
    # after-sale's ``AfterSale.version`` as last read (Douyin refuses a stale one: the caller
    # reads the after-sale again). Refusals raise PlatformRejected with the platform's code.
    def approve_after_sale(
        self, *, platform_after_sale_id: str, platform_order_id: str, version: str = "",
        return_address_id: str = "",
    ) -> None:  # fmt: skip
        """First approval: a refund is paid; a return / exchange waits for the buyer's parcel
        (``return_address_id``: where it goes, from ``return_addresses``)."""
        raise NotSupported(f"{self.platform} connector cannot approve after-sales")

    def reject_after_sale(
        self, *, platform_after_sale_id: str, platform_order_id: str, version: str = "",
        reason_code: str, reason: str = "", evidence: tuple[str, ...] = (),
    ) -> None:  # fmt: skip
        """Refuse (first or, after the goods came back, second refusal) with one of the
        platform's reason codes (``after_sale_reject_reasons``)."""
        raise NotSupported(f"{self.platform} connector cannot refuse after-sales")

    def confirm_return_received(
        self, *, platform_after_sale_id: str, platform_order_id: str, version: str = ""
    ) -> None:
        """The returned goods arrived: second approval, the refund is paid."""
        raise NotSupported(f"{self.platform} connector cannot confirm returns")

    def ship_exchange(
        self, *, platform_after_sale_id: str, platform_order_id: str, carrier_code: str, tracking_no: str,
        version: str = "",
    ) -> None:  # fmt: skip
        """Send an exchange's (or reissue's) replacement parcel's tracking number."""
        raise NotSupported(f"{self.platform} connector cannot ship exchanges")

    def intercept_parcel(
        self, *, platform_after_sale_id: str, carrier_code: str, tracking_no: str
    ) -> InterceptResult:
        """Ask the platform to stop a parcel that left (Douyin ``/afterSale/applyLogisticsIntercept``,
        with its cost). Platforms without it raise NotSupported (the merchant asks the
        carrier / supplier)."""
        raise NotSupported(f"{self.platform} has no parcel intercept API")

    def after_sale_reject_reasons(self) -> list[RejectReason]:
        """The reason codes a refusal may carry."""
        raise NotSupported(f"{self.platform} connector has no refusal reasons")

    def return_addresses(self) -> list[ReturnAddress]:
        """The shop's return addresses (the id an approval of a return names)."""
        return []

    @abstractmethod
    def iter_settlements(self, *, start: datetime, end: datetime) -> Iterator[SettlementLine]:
        """Settlement / bill lines booked in the window."""

    # e-waybills (电子面单): numbers taken per parcel with the platform's ciphertext receiver
    @abstractmethod
    def list_waybill_accounts(self) -> list[WaybillAccount]:
        """The shop's e-waybill subscriptions (carrier, branch, account, balances where reported)."""

    @abstractmethod
    def take_waybill(self, request: WaybillRequest) -> Waybill:
        """One number (plus ``request.child_count`` child numbers) for one parcel, with its
        print data. Idempotent by ``request.key``: the same key returns the same number, so
        a caller may repeat it after any failure, a timeout included. Raises PlatformRejected
        when the platform refuses (no balance, unknown account, order not shippable)."""

    @abstractmethod
    def cancel_waybill(self, *, carrier_code: str, tracking_no: str, platform_waybill_id: str = "") -> None:
        """Cancel an unused number (the platform recycles it). Cancelling one already
        cancelled is not an error."""

    @abstractmethod
    def print_data(
        self,
        *,
        carrier_code: str,
        tracking_no: str,
        platform_waybill_id: str = "",
        request: WaybillRequest | None = None,
        parent_tracking_no: str = "",
    ) -> WaybillPrint:
        """Fresh print data for a taken number (a reprint; a child piece names its parent).
        Kuaishou hands print data only with the take: there ``request`` (the original one,
        same key) is taken again, which returns the same number."""

    def report_printed(
        self, *, carrier_code: str, tracking_no: str, platform_waybill_id: str = "", reprint: bool = False
    ) -> None:
        """Tell the platform a label was printed (WeChat ``/order/print``); nothing elsewhere."""
        return None  # Douyin and Kuaishou have no print notice

    # logistics traces (物流轨迹)
    def track(
        self, *, carrier_code: str, tracking_no: str, platform_order_id: str = ""
    ) -> list[TrackingEvent]:
        """The carrier trace of one parcel, oldest event first (empty when the carrier has no scan
        yet). ``carrier_code`` is the code this platform's ship call takes (the write-back's)."""
        raise NotImplementedError(f"{self.platform} connector cannot read logistics traces")

    @abstractmethod
    def decrypt(self, *, platform_order_id: str, cipher: str, account_id: str) -> str:
        """Plain text of one ciphertext field, for one person who asked (never in bulk)."""

    # --- publishing (商品铺货) ----------------------------------------------------------------
    def publish_product(
        self, *, title: str, skus: list[PublishSku], images: list[str], category: str, request_id: str
    ) -> PublishedProduct:
        """Create a product with ``skus`` on the shop (each SKU's platform code = its merchant
        code) and return the platform's product id and one listing per platform SKU.

        ``category`` is the platform's leaf category id ("" = none given). Creating a product
        is not idempotent: a create whose answer was lost is never re-sent (``request_id`` is
        passed where the platform takes an idempotency key)."""
        raise NotImplementedError(f"{self.platform} cannot publish products")

    # --- platform-native dropship (代发) ---------------------------------------------------------
    # WeChat 代发管理 (by line and quantity to a ``supplier_appid``) and Kuaishou's merchant↔factory
    # dropshipping (a whole oid to a ``factoryCode``). Douyin has none: these raise NotSupported.

    def assign_dropship(
        self,
        *,
        platform_order_id: str,
        supplier_id: str,
        lines: list[tuple[str, str, int]],
        known_ids: tuple[str, ...] = (),
    ) -> DropshipAssignment:
        """Assign ``lines`` ((platform_product_id, platform_sku_id, quantity) in platform-SKU units)
        of an order to the supplier. Idempotent: the order's assignments are read first, and a live
        one to this supplier with exactly these lines (whose id is not in ``known_ids``, the ids
        the caller already holds for other work) is returned instead of assigning again — a
        repeat after a lost reply never assigns twice. Raises PlatformRejected when refused."""
        raise NotSupported(f"{self.platform} has no dropship-assignment API")

    def cancel_dropship(self, *, platform_order_id: str, native_id: str) -> DropshipAssignment:
        """Withdraw an assignment the supplier has not shipped; cancelling a cancelled one is not
        an error. Raises PlatformRejected when the supplier has shipped."""
        raise NotSupported(f"{self.platform} has no dropship-assignment API")

    def get_dropship(self, *, platform_order_id: str, native_id: str) -> DropshipAssignment:
        """One assignment, fresh from the platform (state, per-line deadlines, parcels)."""
        raise NotSupported(f"{self.platform} has no dropship-assignment API")

    def list_dropships(self, *, platform_order_id: str) -> list[DropshipAssignment]:
        """Every assignment of one order (live and cancelled)."""
        raise NotSupported(f"{self.platform} has no dropship-assignment API")

    def bind_dropship_supplier(self, *, supplier_id: str, request_id: str) -> None:
        """Ask for the dropship relation with a supplier / factory where the platform has an API
        for it (Kuaishou); WeChat's invitation is accepted in the supplier's own back-office."""
        raise NotSupported(f"{self.platform} has no dropship-relation API")

    # --- mechanics -----------------------------------------------------------------------
    def ensure_fresh_token(self) -> None:
        s = self.session
        if not s.access_token:
            raise AuthExpired("shop has no access token; connect it again")
        if s.access_expires_at is None:
            return
        now = self.now()
        issued = s.issued_at or (s.access_expires_at - timedelta(hours=2))
        refresh_at = issued + (s.access_expires_at - issued) * self.refresh_at_share
        if now >= refresh_at:
            self._refresh_and_store()

    def refresh_now(self) -> None:
        """Refresh the access token now (the periodic refresh ahead of expiry)."""
        self._refresh_and_store()

    def _refresh_and_store(self) -> None:
        """Refresh and store the tokens. Under the session's ``refresh_guard`` (the store's row
        lock) the stored tokens are read again first: when another process refreshed since
        this session read them, its tokens are adopted instead of refreshing again — a
        rotated refresh token (Kuaishou) is never used twice, and a healthy shop is never
        flagged for reconnection because two processes refreshed from the same tokens."""
        guard = self.session.refresh_guard
        if guard is None:
            self.apply_grant(self.refresh_tokens())
            return
        judged = self.session.access_token  # the token this session found due or refused
        with guard() as stored:
            if not stored.access_token:
                raise AuthExpired("shop has no access token; connect it again")
            self._adopt(stored)
            if stored.access_token != judged:
                return  # another process refreshed meanwhile
            self.apply_grant(self.refresh_tokens())

    def _adopt(self, stored: StoredTokens) -> None:
        s = self.session
        s.access_token, s.access_expires_at = stored.access_token, stored.access_expires_at
        s.refresh_token, s.refresh_expires_at = stored.refresh_token, stored.refresh_expires_at
        s.issued_at = stored.issued_at

    def apply_grant(self, grant: TokenGrant) -> None:
        s = self.session
        s.access_token = grant.access_token
        s.access_expires_at = grant.access_expires_at
        s.issued_at = self.now()
        if grant.refresh_token:
            s.refresh_token = grant.refresh_token
            s.refresh_expires_at = grant.refresh_expires_at
        s.on_new_tokens(grant)

    def call(
        self,
        send: Callable[[], httpx.Response],
        parse: Callable[[httpx.Response], Any],
        *,
        idempotent: bool,
        authenticated: bool = True,
    ) -> Any:
        """Send with the retry policy. ``send`` builds and sends one signed request (it is
        called again for each attempt, so fresh timestamps and tokens are used); ``parse``
        maps the response to data or raises a ChannelError / TokenExpiredSignal."""
        if authenticated:
            self.ensure_fresh_token()
        refreshed = False
        attempt = rate_limited = 0
        while True:
            try:
                try:
                    response = send()
                except httpx.TimeoutException as exc:
                    raise TemporarilyUnavailable(f"timeout: {exc}") from exc
                except httpx.TransportError as exc:
                    raise TemporarilyUnavailable(f"connection error: {exc}") from exc
                if response.status_code >= 500:
                    raise TemporarilyUnavailable(f"HTTP {response.status_code}")
                return parse(response)
            except TokenExpiredSignal as exc:
                if not authenticated or refreshed:
                    raise AuthExpired(str(exc) or "access token expired") from exc
                refreshed = True
                self._refresh_and_store()
            except RateLimited as exc:
                rate_limited += 1
                if rate_limited >= self.retry.rate_limit_attempts:
                    raise
                self.retry.sleep(min(exc.retry_after, self.retry.max_delay))
            except TemporarilyUnavailable:
                attempt += 1
                if not idempotent or attempt >= self.retry.attempts:
                    raise
                self.retry.sleep(self.retry.backoff(attempt))
            except ChannelError:
                raise

    def json_body(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise TemporarilyUnavailable(f"malformed body (HTTP {response.status_code})") from exc


def publish_dimensions(skus: list[PublishSku], *, max_dimensions: int) -> tuple[list[str], list[list[str]]]:
    """Spec dimension names shared by all ``skus`` and each SKU's values, in order. When the
    SKUs do not share the same names (or have more than ``max_dimensions``), one dimension
    规格 whose value is the SKU's whole spec."""
    pairs = [sku.spec_pairs() for sku in skus]
    names = [n for n, _ in pairs[0]] if pairs else []
    if pairs and len(names) <= max_dimensions and all([n for n, _ in p] == names for p in pairs):
        return names, [[v for _, v in p] for p in pairs]
    return ["规格"], [["/".join(v for _, v in p)] for p in pairs]


# --- reading platform payloads (shared by the platform modules) -----------------------------------


def as_int(value: Any, default: int = 0) -> int:
    """A number from a payload field that may be missing, empty, a string or junk."""
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def as_id(value: Any) -> str:
    """Platform ids arrive as numbers or strings; ours are strings ("" for none)."""
    return "" if value in (None, "", 0) else str(value)


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def key_digest(key: str, length: int = 16) -> str:
    """A short, stable hex digest of an idempotency key (for platform fields that limit length)."""
    return hashlib.sha256(key.encode()).hexdigest()[:length]


def key_uint64(key: str) -> str:
    """A stable non-zero uint64 (as a string) from an idempotency key (WeChat's self-defined
    ``ewaybill_order_id``). 63 bits: collisions are negligible within one shop."""
    return str(int(key_digest(key), 16) >> 1 or 1)


def time_spans(start: datetime, end: datetime, length: timedelta) -> Iterator[tuple[datetime, datetime]]:
    """Consecutive [lower, upper] spans covering [start, end], none longer than ``length``
    (one empty span when start == end)."""
    lower = start
    while lower < end:
        upper = min(end, lower + length)
        yield lower, upper
        lower = upper
    if start == end:
        yield start, end


def epoch_seconds(value: datetime) -> int:
    return int(value.timestamp())


def from_epoch(value: int | str | None, *, millis: bool = False) -> datetime | None:
    if value in (None, "", 0, "0"):
        return None
    number = int(value)
    return datetime.fromtimestamp(number / 1000 if millis else number, tz=UTC)


# --- pushes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushMessage:
    """One decoded push message in neutral terms.

    ``kind``: "order", "after_sale", "product", "test" (platform heartbeat / URL check) or
    "other"; ``object_id`` is the order id or after-sale id the message is about.
    """

    message_id: str
    topic: str
    kind: str
    platform_shop_id: str
    object_id: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class PushReply:
    status: int
    content_type: str
    body: str


class PushCodec(ABC):
    """Verifies and decodes one platform's push requests, and says how to answer them."""

    platform: ClassVar[Platform]

    @abstractmethod
    def app_key_of(self, *, headers: dict[str, str], query: dict[str, str], body: bytes) -> str:
        """Which app the push is addressed to (to pick its secrets); "" when the request
        does not say (then the deployment's only app of this platform is used)."""

    @abstractmethod
    def decode(
        self, *, headers: dict[str, str], query: dict[str, str], body: bytes, credentials: AppCredentials
    ) -> list[PushMessage]:
        """Verify the signature / decrypt, then decode. Raises BadPushMessage."""

    @abstractmethod
    def ack(self) -> PushReply:
        """The reply that tells the platform the push was received."""

    @abstractmethod
    def reject(self) -> PushReply:
        """The reply for a push that failed verification (the platform may retry)."""

    def verify_url(self, *, query: dict[str, str], credentials: AppCredentials) -> PushReply | None:
        """Answer a URL-verification GET (WeChat); None when the platform has none."""
        return None

    #: how old the timestamp a push carries (``sent_at``) may be: a few minutes when the platform
    #: stamps every delivery, longer than the platform's retry schedule when the stamp is the
    #: event's own (a retry re-sends it)
    max_age: ClassVar[timedelta] = timedelta(minutes=5)
    #: how far ahead of our clock a timestamp may be (clock skew) [choice]
    max_skew: ClassVar[timedelta] = timedelta(minutes=15)

    def sent_at(self, *, query: dict[str, str], message: PushMessage) -> datetime | None:
        """The timestamp the platform put on this push or message; None when it carries none."""
        return None

    def is_fresh(self, *, query: dict[str, str], message: PushMessage, now: datetime) -> bool:
        """The push's timestamp is within [now - ``max_age``, now + ``max_skew``] (a replay of an
        old push is refused; one without a timestamp is judged by its message id alone)."""
        sent = self.sent_at(query=query, message=message)
        return sent is None or now - self.max_age <= sent <= now + self.max_skew


def ordered_events(events: list[TrackingEvent]) -> list[TrackingEvent]:
    """Trace events oldest first (platforms list them either way), exact repeats dropped."""
    seen: set[tuple[Any, ...]] = set()
    out = []
    for e in sorted(events, key=lambda e: e.occurred_at):
        key = (e.occurred_at, e.status, e.description, e.location)
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def epoch_any(value: Any) -> datetime | None:
    """A push timestamp in seconds or milliseconds (number or digits), None if unreadable."""
    number = as_int(value, -1)
    if number <= 0:
        return None
    return datetime.fromtimestamp(number / 1000 if number >= 10**11 else number, tz=UTC)

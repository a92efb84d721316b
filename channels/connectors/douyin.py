"""Douyin shop (抖店开放平台) connector and push codec.

Follows shared/reference/platform-apis.md §1. Every call is ``POST {base}/{path}`` with
the system parameters in the query string (``app_key, method, timestamp, v=2, sign,
sign_method=hmac-sha256[, access_token]``) and the business parameters as the canonical
``param_json`` body (§1.2); answers use the envelope of §1.3.

Choices where the reference is silent (each marked ``[choice]`` or ``[GUESS]`` below):

* Proactive refresh happens in the access token's last ``REFRESH_MARGIN`` (50 min, what the
  Python SDK uses), not at 80 % of its life: Douyin hands back the *same* pair until the
  last hour before expiry (SDK comment on ``token.create``), so an earlier refresh is a
  wasted call. A failed proactive refresh is not fatal while the old token still works.
* ``refresh_expires_at`` is not in the token answer; a newly issued pair is given the SDK
  comment's 14 days, an unchanged pair keeps what the session knew.
* Order windows are walked by *update-time keyset*, not by deep page numbers (see
  ``DouyinConnector.iter_orders``); ``update_time_start`` is taken to be inclusive [GUESS,
  as the sandbox does].
* The receiver's search index is read from the ciphertext's first segment
  (``#index#payload#v##`` / ``$index$payload$v$$``) [GUESS on the format, §1.4].
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar
from urllib.parse import urlencode

import httpx

from channels.connectors.base import (
    AppCredentials,
    Connector,
    PushCodec,
    PushMessage,
    PushReply,
    RetryPolicy,
    ShopSession,
    TokenExpiredSignal,
    as_dict,
    as_id,
    as_int,
    epoch_seconds,
    from_epoch,
    publish_dimensions,
    time_spans,
)
from channels.errors import AuthExpired, BadPushMessage, PlatformRejected, RateLimited, TemporarilyUnavailable
from channels.types import (
    AfterSale,
    AfterSaleStatus,
    AfterSaleType,
    Carrier,
    ChannelOrder,
    ChannelOrderLine,
    CipherField,
    Listing,
    OrderStatus,
    Package,
    Platform,
    PublishedProduct,
    PublishSku,
    Receiver,
    SettlementLine,
    ShipmentParcel,
    TokenGrant,
    Waybill,
)

logger = logging.getLogger("channels.connectors.douyin")

SUCCESS = 10000
TOKEN_EXPIRED_SUB_CODES = frozenset({"isv.access-token-expired", "isv.access-token-no-existed"})
AUTH_LOST_SUB_CODES = frozenset({"dop.authorization-no-existed", "dop.authorization-closed"})
UNAVAILABLE_CODES = frozenset({20000, 20001, 50000})
TOKEN_FAILED_PREFIX = "dop.token-generate-failed"  # noqa: S105 - an error sub_code, not a secret

PAGE_SIZE = 100  # searchList / afterSale/List / listV2 maximum (§1.4)
MAX_PAGING_DEPTH = 10_000  # [GUESS §1.4] keep (page + 1) * size within 10 000
RATE_LIMIT_RETRY_AFTER = 1.0  # Douyin sends no delay with code 60000 [choice]
REFRESH_TOKEN_TTL = timedelta(days=14)  # SDK comment (§1.1)
REFRESH_MARGIN = timedelta(seconds=3000)  # DD-PY refreshes when fewer than ~3000 s remain (§1.1)
SETTLEMENT_SPAN = timedelta(days=7)  # "span ≤7 days recommended" (§1.9)
SETTLEMENT_OK = "100000"
SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")
BILL_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
MAX_REWALKS = 5  # a one-second slice that keeps changing is walked again at most this often

STATUS_MAP = {
    1: OrderStatus.UNPAID,
    105: OrderStatus.PAID,
    2: OrderStatus.PAID,
    101: OrderStatus.PARTIALLY_SHIPPED,
    3: OrderStatus.SHIPPED,
    5: OrderStatus.COMPLETED,
    4: OrderStatus.CANCELLED,
}
RISK_REVIEW_REASON = "platform risk review (order_status 105)"

AFTER_SALE_TYPE_MAP = {
    0: AfterSaleType.RETURN_REFUND,
    1: AfterSaleType.REFUND_ONLY,
    2: AfterSaleType.REFUND_ONLY,
    3: AfterSaleType.EXCHANGE,
    7: AfterSaleType.RESHIP,
}
AFTER_SALE_STATUS_MAP = {
    6: AfterSaleStatus.WAITING_MERCHANT,
    7: AfterSaleStatus.WAITING_BUYER_RETURN,
    8: AfterSaleStatus.WAITING_MERCHANT,  # exchange: merchant must ship the replacement
    11: AfterSaleStatus.WAITING_MERCHANT_RECEIPT,  # goods back, second approval due
    12: AfterSaleStatus.SUCCEEDED,
    # [choice] 3/13: the replacement is on its way to the buyer; nothing is left for the
    # merchant to do and no money moves, so it counts as done on our side.
    3: AfterSaleStatus.SUCCEEDED,
    13: AfterSaleStatus.SUCCEEDED,
    14: AfterSaleStatus.SUCCEEDED,
    27: AfterSaleStatus.REJECTED,
    29: AfterSaleStatus.REJECTED,
    28: AfterSaleStatus.CLOSED,
}
REFUND_IN_PROGRESS = 2  # refund_status 2 = 退款中
SETTLEMENT_KIND = {0: "settle", 1: "refund_after_settle", 2: "deposit_refund", 3: "refund_after_settle"}


# --------------------------------------------------------------------------- signing


def canonical_param_json(params: Any) -> str:
    """``param_json`` as signed and sent: keys sorted at every level, compact, not escaped (§1.2)."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sign_request(*, app_key: str, app_secret: str, method: str, param_json: str, timestamp: str) -> str:
    """``sign`` of a v2 call: hex HMAC-SHA256 keyed by the secret over
    ``secret + "app_key"… "v2" + secret`` (§1.2)."""
    text = (
        f"{app_secret}app_key{app_key}method{method}param_json{param_json}timestamp{timestamp}v2{app_secret}"
    )
    return hmac.new(app_secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def method_name(path: str) -> str:
    """``/order/searchList`` → ``order.searchList``."""
    return path.strip("/").replace("/", ".")


def check_envelope(body: Any, *, token_call: bool = False) -> Any:
    """Return ``data`` of a successful envelope or raise the matching neutral error (§1.3).

    ``token_call``: a ``dop.token-generate-failed:*`` answer to a refresh means the merchant
    must authorise again (AuthExpired) rather than a rejected call.
    """
    if not isinstance(body, dict) or "code" not in body:
        raise TemporarilyUnavailable("answer without a Douyin envelope")
    try:
        code = int(body["code"])
    except (TypeError, ValueError):
        raise TemporarilyUnavailable(f"unreadable envelope code {body['code']!r}") from None
    if code == SUCCESS:
        return body.get("data")
    sub_code = str(body.get("sub_code") or "")
    message = str(body.get("sub_msg") or body.get("msg") or "")
    if code == 40003 and sub_code in TOKEN_EXPIRED_SUB_CODES:
        raise TokenExpiredSignal(f"{sub_code}: {message}")
    if code == 30001 and sub_code in AUTH_LOST_SUB_CODES:
        raise AuthExpired(f"shop authorisation lost ({sub_code}): {message}")
    if code == 60000:
        raise RateLimited(f"rate limited ({sub_code or code}): {message}", retry_after=RATE_LIMIT_RETRY_AFTER)
    if code in UNAVAILABLE_CODES:
        raise TemporarilyUnavailable(f"{code}/{sub_code}: {message}")
    if token_call and sub_code.startswith(TOKEN_FAILED_PREFIX):
        raise AuthExpired(f"token cannot be renewed ({sub_code}): {message}")
    raise PlatformRejected(message, code=str(code), sub_code=sub_code)


# --------------------------------------------------------------------------- small helpers


def _num_id(value: str) -> int | str:
    """Send an id the way the SDK types it (int64) when it is numeric."""
    return int(value) if value.isdigit() else value


def search_index_of(cipher: str) -> str:
    """The search-index segment of a Douyin ciphertext, or "" when it is not in that shape [GUESS §1.4]."""
    if len(cipher) < 6 or cipher[0] not in "#$" or not cipher.endswith(cipher[0] * 2):
        return ""
    parts = cipher[1:-2].split(cipher[0])
    return parts[0] if len(parts) == 3 else ""


def _cipher_field(cipher: Any, mask: Any) -> CipherField:
    text = str(cipher or "")
    return CipherField(cipher=text, mask=str(mask or ""), index=search_index_of(text))


def _region(addr: dict[str, Any], level: str) -> str:
    return str(as_dict(addr.get(level)).get("name") or "")


def bill_time(value: datetime) -> str:
    """A bill query time: ``yyyy-MM-dd HH:mm:ss`` in Beijing time (§1.9)."""
    return value.astimezone(SHANGHAI).strftime(BILL_TIME_FORMAT)


def parse_bill_time(text: str) -> datetime:
    return datetime.strptime(text, BILL_TIME_FORMAT).replace(tzinfo=SHANGHAI).astimezone(UTC)


# --------------------------------------------------------------------------- the connector


class DouyinConnector(Connector):
    """Douyin shop open-platform API (抖店开放平台, §1)."""

    platform = Platform.DOUYIN
    max_order_window: ClassVar[timedelta] = timedelta(days=1)  # [GUESS §1.4]

    def __init__(
        self,
        *,
        credentials: AppCredentials,
        base_url: str,
        session: ShopSession | None = None,
        http: httpx.Client | None = None,
        retry: RetryPolicy | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        timeout: float = 12.0,  # the official SDK's default (§1.11)
        authorize_base: str | None = None,
        service_id: str = "",
        self_use: bool = False,
    ) -> None:
        """``authorize_base``: the merchant-facing authorisation page (production:
        ``https://fuwu.jinritemai.com/authorize``; default ``{base_url}/authorize``).
        ``service_id``: the app's service-market id for that page (else ``app_key`` is sent).
        ``self_use``: a self-use (自用型) app, which can always mint a new token for an
        authorised shop when the refresh token is gone."""
        super().__init__(
            credentials=credentials,
            base_url=base_url,
            session=session,
            http=http,
            retry=retry,
            now=now,
            timeout=timeout,
        )
        self.authorize_base = (authorize_base or f"{self.base_url}/authorize").rstrip("?")
        self.service_id = service_id
        self.self_use = self_use

    # ------------------------------------------------------------------ transport

    def _send(self, path: str, params: dict[str, Any], *, with_token: bool) -> httpx.Response:
        """Build, sign and send one call (fresh timestamp and token on every attempt)."""
        body = canonical_param_json(params)
        method = method_name(path)
        timestamp = str(epoch_seconds(self.now()))
        query = {
            "app_key": self.credentials.app_key,
            "method": method,
            "timestamp": timestamp,
            "v": "2",
            "sign": sign_request(
                app_key=self.credentials.app_key,
                app_secret=self.credentials.app_secret,
                method=method,
                param_json=body,
                timestamp=timestamp,
            ),
            "sign_method": "hmac-sha256",
        }
        if with_token:
            query["access_token"] = self.session.access_token
        return self.http.post(
            f"{self.base_url}/{path.lstrip('/')}",
            params=query,
            content=body.encode("utf-8"),
            headers={"Content-Type": "application/json", "x-open-no-old-err-code": "1"},
        )

    def _parse(self, response: httpx.Response, *, token_call: bool = False) -> Any:
        try:
            body = response.json()
        except ValueError:
            if response.status_code >= 400:
                raise PlatformRejected(
                    f"HTTP {response.status_code}", code=f"http_{response.status_code}"
                ) from None
            raise TemporarilyUnavailable(f"malformed body (HTTP {response.status_code})") from None
        return check_envelope(body, token_call=token_call)

    def _api(self, path: str, params: dict[str, Any], *, idempotent: bool) -> Any:
        """One authenticated call with the retry policy; returns the envelope's ``data``."""
        return self.call(
            lambda: self._send(path, params, with_token=True),
            self._parse,
            idempotent=idempotent,
        )

    def _token_api(self, path: str, params: dict[str, Any], *, renewal: bool) -> Any:
        return self.call(
            lambda: self._send(path, params, with_token=False),
            lambda response: self._parse(response, token_call=renewal),
            idempotent=True,  # harmless to repeat: a used code is refused, a refresh returns a valid pair
            authenticated=False,
        )

    # ------------------------------------------------------------------ authorisation

    def authorize_url(self, *, redirect_uri: str, state: str) -> str:
        """The service-market authorisation page (§1.1): ``?service_id=…&state=…``.

        ``redirect_uri`` is added for pages that accept it (the sandbox uses it when the app
        has no callback configured; the real page redirects to the console-configured one).
        """
        query = {"service_id": self.service_id} if self.service_id else {"app_key": self.credentials.app_key}
        query["state"] = state
        if redirect_uri:
            query["redirect_uri"] = redirect_uri
        return f"{self.authorize_base}?{urlencode(query)}"

    def exchange_code(self, *, code: str, redirect_uri: str = "") -> TokenGrant:
        """``/token/create`` with ``grant_type=authorization_code`` (tool apps)."""
        data = self._token_api(
            "/token/create", {"code": code, "grant_type": "authorization_code"}, renewal=False
        )
        return self._grant(data)

    def self_use_token(self, platform_shop_id: str) -> TokenGrant:
        """``/token/create`` with ``grant_type=authorization_self`` and ``shop_id`` (self-use apps)."""
        params = {"code": "", "grant_type": "authorization_self", "shop_id": _num_id(platform_shop_id)}
        try:
            data = self._token_api("/token/create", params, renewal=False)
        except PlatformRejected as exc:
            if exc.sub_code == f"{TOKEN_FAILED_PREFIX}:no-authorization":
                raise AuthExpired(f"shop {platform_shop_id} has not authorised this app") from exc
            raise
        return self._grant(data)

    def refresh_tokens(self) -> TokenGrant:
        """``/token/refresh``; a self-use app falls back to a fresh self-use token."""
        s = self.session
        try:
            if not s.refresh_token:
                raise AuthExpired("no refresh token; connect the shop again")
            data = self._token_api(
                "/token/refresh",
                {"grant_type": "refresh_token", "refresh_token": s.refresh_token},
                renewal=True,
            )
        except AuthExpired:
            if self.self_use and s.platform_shop_id:
                logger.info("refresh failed for self-use shop %s; minting a new token", s.platform_shop_id)
                return self.self_use_token(s.platform_shop_id)
            raise
        return self._grant(data)

    def _grant(self, data: Any) -> TokenGrant:
        data = as_dict(data)
        if not data.get("access_token"):
            raise TemporarilyUnavailable("token answer without access_token")
        now = self.now()
        access_token = str(data["access_token"])
        refresh_token = str(data.get("refresh_token") or "")
        s = self.session
        unchanged = access_token == s.access_token and refresh_token == s.refresh_token
        refresh_expires = (
            s.refresh_expires_at if unchanged and s.refresh_expires_at else now + REFRESH_TOKEN_TTL
        )
        return TokenGrant(
            access_token=access_token,
            access_expires_at=now + timedelta(seconds=as_int(data.get("expires_in"))),
            refresh_token=refresh_token,
            refresh_expires_at=refresh_expires if refresh_token else None,
            platform_shop_id=as_id(data.get("shop_id")),
            shop_name=str(data.get("shop_name") or ""),
        )

    def ensure_fresh_token(self) -> None:
        """Refresh in the access token's last ``REFRESH_MARGIN`` (see module docstring)."""
        s = self.session
        if not s.access_token:
            raise AuthExpired("shop has no access token; connect it again")
        if s.access_expires_at is None:
            return
        now = self.now()
        issued = s.issued_at or (s.access_expires_at - timedelta(days=7))
        margin = min(REFRESH_MARGIN, (s.access_expires_at - issued) * (1 - self.refresh_at_share))
        if now < s.access_expires_at - margin:
            return
        try:
            self._refresh_and_store()
        except (TemporarilyUnavailable, RateLimited) as exc:
            if now >= s.access_expires_at:
                raise
            logger.warning(
                "proactive token refresh for shop %s failed, old token still valid: %s",
                s.platform_shop_id,
                exc,
            )

    # ------------------------------------------------------------------ orders

    def iter_orders(self, *, updated_from: datetime, updated_to: datetime) -> Iterator[ChannelOrder]:
        """Every order whose ``update_time`` is in [updated_from, updated_to] (both inclusive).

        ``/order/searchList`` with ``order_by=update_time``, ``order_asc=true``, ``size=100``.
        Offset paging skips an order whenever an order earlier in the list changes during the
        walk (it leaves the window and everything behind it moves up a page), so the window
        is walked by keyset instead: each request starts again at page 0 with
        ``update_time_start`` = the update time of the last order received (orders of that
        boundary second come back once more and are not yielded again). A page that ends in
        a busy second (more than a quarter page of its orders) has that second paged by
        number instead: a one-second slice whose ``total`` is compared on every page and
        which is walked again when it changed (an order that changes leaves a past second
        for good). Windows longer than ``max_order_window`` are split; no request goes
        deeper than page*size = 10 000.

        Guarantee: every order whose update time lies in the window when the walk ends is
        yielded. An order is yielded more than once when it changed during the walk and is
        met again with a newer ``update_time`` (the repeat is the newer version), or when it
        sits on the boundary second of two spans of a split window; storage is idempotent.
        Residual case: a one-second slice with more than 25 orders that is *the current
        second* while orders leave and enter it in equal numbers.
        """
        for lower, upper in time_spans(updated_from, updated_to, self.max_order_window):
            start, end = epoch_seconds(lower), epoch_seconds(upper)

            def fetch(first: int, last: int, page: int) -> tuple[int, list[dict[str, Any]]]:
                data = as_dict(
                    self._api(
                        "/order/searchList",
                        {
                            "update_time_start": first,
                            "update_time_end": last,
                            "order_by": "update_time",
                            "order_asc": True,
                            "size": PAGE_SIZE,
                            "page": page,
                        },
                        idempotent=True,
                    )
                )
                return as_int(data.get("total")), [
                    o for o in data.get("shop_order_list") or [] if isinstance(o, dict)
                ]

            for raw in _walk_by_update_time(fetch, _order_key, start, end):
                yield self.order_from_payload(raw)

    def get_order(self, platform_order_id: str) -> ChannelOrder:
        """``/order/orderDetail`` by shop order id."""
        data = as_dict(self._api("/order/orderDetail", {"shop_order_id": platform_order_id}, idempotent=True))
        detail = data.get("shop_order_detail")
        if not isinstance(detail, dict):
            raise TemporarilyUnavailable("orderDetail answer without shop_order_detail")
        return self.order_from_payload(detail)

    def order_from_payload(self, o: dict[str, Any]) -> ChannelOrder:
        """Map one Douyin shop order (list item or detail) to a neutral ``ChannelOrder``.

        Money (fen): ``goods_fen`` = Σ line ``sum_amount`` (list price × quantity, before
        promotions); ``discount_fen`` = ``promotion_amount`` (every party's promotions);
        ``freight_fen`` = ``post_amount``; ``paid_fen`` = ``pay_amount`` (0 until paid), so
        that goods − discount + freight = paid. Merchant price changes (``modify_amount``)
        and tax are not modelled. Times are epoch seconds → aware UTC; ``ship_by`` is
        ``exp_ship_time``. Region names come from ``post_addr`` (Douyin's ``town`` is the
        district level, ``street`` the town level); name, phone and address detail stay
        ciphertext + mask. ``ship_blocked_reason`` is set while ``order_status`` is 105
        (paid, under the platform's risk review).
        """
        order_id = as_id(o.get("order_id"))
        if not order_id:
            raise TemporarilyUnavailable("shop order without order_id")
        status_code = as_int(o.get("order_status"))
        main_status = as_int(o.get("main_status"))
        lines = tuple(self._line(s) for s in o.get("sku_order_list") or [] if isinstance(s, dict))
        packages = tuple(self._package(p) for p in o.get("logistics_info") or [] if isinstance(p, dict))
        status = STATUS_MAP.get(status_code) or STATUS_MAP.get(main_status)
        if status is None:
            logger.warning("order %s has unknown order_status %s/%s", order_id, status_code, main_status)
            status = OrderStatus.PAID if as_int(o.get("pay_time")) else OrderStatus.UNPAID
        if status == OrderStatus.PAID and (main_status == 101 or packages):
            status = OrderStatus.PARTIALLY_SHIPPED  # the sandbox keeps order_status 2 with main_status 101
        addr = as_dict(o.get("post_addr"))
        mask_addr = o.get("mask_post_addr")
        mask_detail = as_dict(mask_addr).get("detail") if isinstance(mask_addr, dict) else mask_addr
        created = from_epoch(o.get("create_time"))
        if created is None:
            raise TemporarilyUnavailable(f"order {order_id} without create_time")
        goods = sum(
            as_int(s.get("sum_amount"), as_int(s.get("origin_amount")) * as_int(s.get("item_num")))
            for s in o.get("sku_order_list") or []
            if isinstance(s, dict)
        )
        return ChannelOrder(
            platform=Platform.DOUYIN,
            platform_shop_id=as_id(o.get("shop_id")) or self.session.platform_shop_id,
            platform_order_id=order_id,
            platform_status=str(status_code),
            status=status,
            created_at=created,
            updated_at=from_epoch(o.get("update_time")) or created,
            lines=lines,
            receiver=Receiver(
                name=_cipher_field(o.get("encrypt_post_receiver"), o.get("mask_post_receiver")),
                phone=_cipher_field(o.get("encrypt_post_tel"), o.get("mask_post_tel")),
                address=_cipher_field(addr.get("encrypt_detail"), mask_detail),
                province=_region(addr, "province"),
                city=_region(addr, "city"),
                district=_region(addr, "town"),
                town=_region(addr, "street"),
            ),
            buyer_id=str(o.get("doudian_open_id") or ""),
            paid_at=from_epoch(o.get("pay_time")),
            ship_by=from_epoch(o.get("exp_ship_time")),
            shipped_at=from_epoch(o.get("ship_time")),
            finished_at=from_epoch(o.get("finish_time")),
            goods_fen=goods,
            freight_fen=as_int(o.get("post_amount")),
            discount_fen=as_int(o.get("promotion_amount"), as_int(o.get("total_promotion_amount"))),
            paid_fen=as_int(o.get("pay_amount")),
            buyer_remark=str(o.get("buyer_words") or ""),
            seller_remark=str(o.get("seller_words") or ""),
            ship_blocked_reason=RISK_REVIEW_REASON if status_code == 105 else "",
            packages=packages,
            raw=o,
        )

    @staticmethod
    def _line(s: dict[str, Any]) -> ChannelOrderLine:
        specs = [x for x in s.get("spec") or [] if isinstance(x, dict)]
        info = as_dict(s.get("after_sale_info"))
        after_sale, refund = as_int(info.get("after_sale_status")), as_int(info.get("refund_status"))
        # Neutral line refund state: "refunded" (money returned), "refunding" (in progress), "".
        if refund == 3 or after_sale in (12, 14):
            refund_state = "refunded"
        elif refund in (1, 2) or after_sale in (6, 7, 8, 11, 13):
            refund_state = "refunding"
        else:
            refund_state = ""
        return ChannelOrderLine(
            platform_line_id=as_id(s.get("order_id")),
            platform_product_id=str(s.get("product_id_str") or as_id(s.get("product_id"))),
            platform_sku_id=as_id(s.get("sku_id")),
            merchant_code=str(s.get("code") or ""),
            title=str(s.get("product_name") or ""),
            spec=";".join(f"{x.get('name', '')}:{x.get('value', '')}" for x in specs),
            quantity=as_int(s.get("item_num")),
            unit_price_fen=as_int(s.get("origin_amount")),
            paid_fen=as_int(s.get("pay_amount")),
            is_gift=s.get("given_product_type") == "FREE",
            refund_state=refund_state,
        )

    @staticmethod
    def _package(p: dict[str, Any]) -> Package:
        items = [x for x in p.get("product_info") or [] if isinstance(x, dict)]
        return Package(
            tracking_no=str(p.get("tracking_no") or ""),
            carrier_code=str(p.get("company") or ""),
            platform_package_id=as_id(p.get("delivery_id")),
            lines=tuple((as_id(x.get("sku_order_id")), as_int(x.get("product_count"))) for x in items),
        )

    # ------------------------------------------------------------------ shipping

    def ship(self, *, platform_order_id: str, parcels: list[ShipmentParcel], request_id: str) -> None:
        """One parcel without lines → ``/order/logisticsAdd`` (whole order; has no idempotency
        key, so it is never re-sent); otherwise ``/order/logisticsAddMultiPack`` with
        ``request_id`` as the platform's idempotency key (a repeat returns the first result,
        so it is retried). Every parcel of a multi-package shipment must name its lines."""
        if not parcels:
            raise ValueError("nothing to ship")
        if len(parcels) == 1 and not parcels[0].lines:
            parcel = parcels[0]
            params = {
                "order_id": platform_order_id,
                "company_code": parcel.carrier_code,
                "logistics_code": parcel.tracking_no,
            }
            self._api("/order/logisticsAdd", params, idempotent=False)
            return
        if any(not p.lines for p in parcels):
            raise ValueError("a multi-package shipment needs the lines of every parcel")
        if not request_id:
            raise ValueError("a multi-package shipment needs a request_id (its idempotency key)")
        pack_list = [
            {
                "shipped_order_info": [
                    {"shipped_order_id": line_id, "shipped_num": qty} for line_id, qty in p.lines
                ],
                "logistics_code": p.tracking_no,
                "company_code": p.carrier_code,
            }
            for p in parcels
        ]
        self._api(
            "/order/logisticsAddMultiPack",
            {"order_id": platform_order_id, "pack_list": pack_list, "request_id": request_id},
            idempotent=True,
        )

    def list_carriers(self) -> list[Carrier]:
        """``/order/logisticsCompanyList`` (its ``data`` is an array of {id, name, code})."""
        data = self._api("/order/logisticsCompanyList", {}, idempotent=True)
        return [
            Carrier(code=str(c.get("code") or ""), name=str(c.get("name") or ""))
            for c in data or []
            if isinstance(c, dict)
        ]

    # ------------------------------------------------------------------ listings and stock

    def iter_listings(self) -> Iterator[Listing]:
        """Every SKU of every product not deleted: ``/product/listV2`` (page from 1), then
        ``/sku/list`` per product. The product walk is repeated when its ``total`` changed
        underneath it; products already listed are not listed twice."""
        done: set[str] = set()
        for _ in range(MAX_REWALKS):
            first_total: int | None = None
            stable = True
            page = 1
            while True:
                if page * PAGE_SIZE > MAX_PAGING_DEPTH:
                    logger.warning(
                        "shop %s has more than %s products; the rest is not listed",
                        self.session.platform_shop_id,
                        MAX_PAGING_DEPTH,
                    )
                    return
                data = as_dict(
                    self._api("/product/listV2", {"page": page, "size": PAGE_SIZE}, idempotent=True)
                )
                total = as_int(data.get("total"))
                first_total = total if first_total is None else first_total
                stable = stable and total == first_total
                products = [p for p in data.get("data") or [] if isinstance(p, dict)]
                for product in products:
                    product_id = as_id(product.get("product_id"))
                    if (
                        not product_id or product_id in done or as_int(product.get("status")) == 2
                    ):  # 2 = deleted
                        continue
                    done.add(product_id)
                    yield from self._listings_of(product_id, str(product.get("name") or ""))
                if not products or page * PAGE_SIZE >= total:
                    break
                page += 1
            if stable:
                return

    def _listings_of(self, product_id: str, title: str) -> Iterator[Listing]:
        skus = self._api("/sku/list", {"product_id": _num_id(product_id)}, idempotent=True)
        for sku in skus or []:
            if not isinstance(sku, dict):
                continue
            values = [str(sku.get(f"spec_detail_name{i}") or "") for i in (1, 2, 3)]
            yield Listing(
                platform_product_id=product_id,
                platform_sku_id=as_id(sku.get("id")),
                merchant_code=str(sku.get("code") or ""),
                title=title,
                spec=";".join(v for v in values if v),
                stock=as_int(sku.get("stock_num")),
                price_fen=as_int(sku.get("price")),
            )

    def set_stock(
        self, *, listing: Listing, quantity: int, current: int | None, idempotency_key: str
    ) -> None:
        """``/sku/syncStock`` absolute set (``incremental=false``): idempotent, so retried.
        ``current`` and ``idempotency_key`` are not needed by an absolute set."""
        if quantity < 0:
            raise ValueError("stock cannot be negative")
        params = {
            "sku_id": _num_id(listing.platform_sku_id),
            "product_id": _num_id(listing.platform_product_id),
            "stock_num": quantity,
            "incremental": False,
        }
        self._api("/sku/syncStock", params, idempotent=True)

    # ------------------------------------------------------------------ publishing (商品铺货)

    def publish_product(
        self, *, title: str, skus: list[PublishSku], images: list[str], category: str, request_id: str
    ) -> PublishedProduct:
        """``/product/addV2``: ``specs`` ("颜色|白色,黑色^尺码|M,L"), ``spec_prices`` (a JSON
        string: per SKU ``code`` = merchant code, ``price`` fen, ``stock_num``,
        ``spec_detail_name1..3``), ``pic`` ("url|url"), ``commit`` true (submit for sale).
        addV2 has no idempotency key (``request_id`` unused), so it is never re-sent after a
        lost answer. The answer's ``sku[]`` maps SKU ids to codes; ``/sku/list`` fills any gap."""
        if not skus or not images:
            raise ValueError("a product needs SKUs and images")
        names, rows = publish_dimensions(skus, max_dimensions=3)
        specs = "^".join(
            f"{name}|{','.join(dict.fromkeys(row[i] for row in rows))}" for i, name in enumerate(names)
        )
        spec_prices = [
            {"code": sku.merchant_code, "price": sku.price_fen, "stock_num": sku.stock,
             **{f"spec_detail_name{i + 1}": value for i, value in enumerate(row)}}
            for sku, row in zip(skus, rows, strict=True)
        ]  # fmt: skip
        params: dict[str, Any] = {
            "product_type": 0,
            "name": title,
            "pic": "|".join(images),
            "description": "".join(f'<img src="{url}">' for url in images),
            "specs": specs,
            "spec_prices": json.dumps(spec_prices, ensure_ascii=False, separators=(",", ":")),
            "commit": True,
        }
        if category.isdigit():
            params["category_leaf_id"] = int(category)
        data = as_dict(self._api("/product/addV2", params, idempotent=False))
        product_id = as_id(data.get("product_id"))
        if not product_id:
            raise PlatformRejected("addV2 returned no product_id", code="product_id")
        ids = {
            str(s.get("code") or ""): as_id(s.get("sku_id"))
            for s in data.get("sku") or []
            if isinstance(s, dict)
        }
        if any(sku.merchant_code not in ids for sku in skus):
            for listing in self._listings_of(product_id, title):
                ids.setdefault(listing.merchant_code, listing.platform_sku_id)
        return PublishedProduct(
            platform_product_id=product_id,
            skus=tuple(
                Listing(
                    platform_product_id=product_id,
                    platform_sku_id=ids[sku.merchant_code],
                    merchant_code=sku.merchant_code,
                    title=title,
                    spec=";".join(row),
                    stock=sku.stock,
                    price_fen=sku.price_fen,
                )
                for sku, row in zip(skus, rows, strict=True)
                if ids.get(sku.merchant_code)
            ),
        )

    # ------------------------------------------------------------------ after-sales

    def iter_after_sales(self, *, updated_from: datetime, updated_to: datetime) -> Iterator[AfterSale]:
        """``/afterSale/List`` by ``update_start_time``/``update_end_time``, oldest update
        first, walked like ``iter_orders`` (never skips; may repeat)."""
        for lower, upper in time_spans(updated_from, updated_to, self.max_order_window):

            def fetch(first: int, last: int, page: int) -> tuple[int, list[dict[str, Any]]]:
                data = as_dict(
                    self._api(
                        "/afterSale/List",
                        {
                            "update_start_time": first,
                            "update_end_time": last,
                            "order_by": ["update_time asc"],
                            "page": page,
                            "size": PAGE_SIZE,
                        },
                        idempotent=True,
                    )
                )
                return as_int(data.get("total")), [i for i in data.get("items") or [] if isinstance(i, dict)]

            for item in _walk_by_update_time(
                fetch, _after_sale_key, epoch_seconds(lower), epoch_seconds(upper)
            ):
                yield self.after_sale_from_payload(item)

    def after_sale_from_payload(self, item: dict[str, Any]) -> AfterSale:
        """Map one ``/afterSale/List`` item. ``refund_fen`` = ``refund_amount`` +
        ``refund_post_amount`` (the SDK lists them as separate amounts)."""
        info = as_dict(item.get("aftersale_info"))
        order = as_dict(item.get("order_info"))
        text = as_dict(item.get("text_part"))
        kind = as_int(info.get("aftersale_type"), -1)
        status_code = as_int(info.get("aftersale_status"))
        status = AFTER_SALE_STATUS_MAP.get(status_code, AfterSaleStatus.WAITING_MERCHANT)
        if (
            status in (AfterSaleStatus.WAITING_MERCHANT, AfterSaleStatus.WAITING_MERCHANT_RECEIPT)
            and as_int(info.get("refund_status")) == REFUND_IN_PROGRESS
        ):
            status = AfterSaleStatus.REFUNDING
        applied = from_epoch(info.get("apply_time")) or from_epoch(info.get("create_time"))
        if applied is None:
            raise TemporarilyUnavailable("after-sale without apply_time")
        return AfterSale(
            platform=Platform.DOUYIN,
            platform_shop_id=self.session.platform_shop_id,
            platform_after_sale_id=as_id(info.get("aftersale_id")),
            platform_order_id=as_id(order.get("shop_order_id")),
            platform_line_id=as_id(info.get("related_id")),
            type=AFTER_SALE_TYPE_MAP.get(kind, AfterSaleType.OTHER),
            status=status,
            platform_status=str(status_code),
            refund_fen=as_int(info.get("refund_amount")) + as_int(info.get("refund_post_amount")),
            quantity=as_int(info.get("aftersale_num")),
            reason=str(text.get("reason_text") or ""),
            created_at=applied,
            updated_at=from_epoch(info.get("update_time")) or applied,
            return_tracking_no=str(info.get("return_logistics_code") or ""),
        )

    # ------------------------------------------------------------------ settlements

    def iter_settlements(self, *, start: datetime, end: datetime) -> Iterator[SettlementLine]:
        """``/order/getSettleBillDetailV3`` by settle time, in spans of at most 7 days; pages
        by sending back ``next_start_index``/``next_start_time`` until ``is_end``.

        ``platform_line_id`` = ``request_no:order_id`` (settle request and sku order) so it
        is unique whether ``request_no`` names one bill line or one settlement batch."""
        seen: set[str] = set()
        for lower, upper in time_spans(start, end, SETTLEMENT_SPAN):
            start_time, start_index = bill_time(lower), ""
            while True:
                params: dict[str, Any] = {
                    "size": PAGE_SIZE,
                    "start_time": start_time,
                    "end_time": bill_time(upper),
                    "time_type": "0",
                }
                if start_index:
                    params["start_index"] = start_index
                data = as_dict(self._api("/order/getSettleBillDetailV3", params, idempotent=True))
                if str(data.get("code") or SETTLEMENT_OK) != SETTLEMENT_OK:
                    raise PlatformRejected(str(data.get("code_msg") or ""), code=str(data.get("code")))
                for row in data.get("data") or []:
                    if isinstance(row, dict):
                        line = self.settlement_from_payload(row)
                        if line.platform_line_id not in seen:
                            seen.add(line.platform_line_id)
                            yield line
                if as_int(data.get("is_end"), 1) == 1:
                    break
                next_index, next_time = (
                    str(data.get("next_start_index") or ""),
                    str(data.get("next_start_time") or ""),
                )
                if not next_index or (next_index == start_index and (next_time or start_time) == start_time):
                    raise TemporarilyUnavailable("settlement cursor did not advance")
                start_index, start_time = next_index, next_time or start_time

    def settlement_from_payload(self, row: dict[str, Any]) -> SettlementLine:
        """Map one bill line (amounts in fen)."""
        settled = str(row.get("settle_time") or "")
        try:
            settled_at = parse_bill_time(settled)
        except ValueError:
            raise TemporarilyUnavailable(f"bill line with unreadable settle_time {settled!r}") from None
        return SettlementLine(
            platform=Platform.DOUYIN,
            platform_shop_id=self.session.platform_shop_id,
            platform_line_id=f"{row.get('request_no') or ''}:{as_id(row.get('order_id'))}",
            platform_order_id=as_id(row.get("shop_order_id")),
            settled_at=settled_at,
            amount_fen=as_int(row.get("settle_amount")),
            commission_fen=as_int(row.get("commission")),
            service_fee_fen=as_int(row.get("platform_service_fee")),
            kind=SETTLEMENT_KIND.get(as_int(row.get("trade_type")), str(row.get("trade_type"))),
            raw=row,
        )

    # ------------------------------------------------------------------ e-waybills

    def create_waybills(
        self, *, carrier_code: str, platform_order_ids: list[str], sender: dict
    ) -> list[Waybill]:
        """Take waybills with ``/logistics/newCreateOrder`` (receiver as the order's
        ciphertexts — 隐私面单), then their print data with ``/logistics/waybillApply``.

        Each order's detail is read first for its receiver ciphertexts. ``sender``: ``name``,
        ``mobile`` (or ``phone``), ``province``, ``city``, ``district``, ``street``,
        ``detail``. ``Waybill.print_data`` is JSON ``{"print_data", "sign"}``, both handed
        as they are to Douyin's print component. Orders the platform refuses are logged and
        left out of the result; when every order is refused, PlatformRejected is raised.
        Taking a number is not idempotent (a repeat takes another), so it is never re-sent.
        """
        if not platform_order_ids:
            return []
        order_infos = [self._waybill_order_info(self.get_order(order_id)) for order_id in platform_order_ids]
        contact = {"name": sender.get("name", "")}
        if sender.get("mobile"):
            contact["mobile"] = sender["mobile"]
        if sender.get("phone"):
            contact["phone"] = sender["phone"]
        params = {
            "logistics_code": carrier_code,
            "sender_info": {
                "address": {
                    "country_code": "CHN",
                    "province_name": sender.get("province", ""),
                    "city_name": sender.get("city", ""),
                    "district_name": sender.get("district", ""),
                    "street_name": sender.get("street", ""),
                    "detail_address": sender.get("detail", ""),
                },
                "contact": contact,
            },
            "order_infos": order_infos,
        }
        data = as_dict(self._api("/logistics/newCreateOrder", params, idempotent=False))
        taken = [e for e in data.get("ebill_infos") or [] if isinstance(e, dict) and e.get("track_no")]
        errors = [e for e in data.get("err_infos") or [] if isinstance(e, dict)]
        for err in errors:
            logger.warning(
                "waybill refused for order %s: %s %s",
                err.get("order_id"),
                err.get("err_code"),
                err.get("err_msg"),
            )
        if not taken:
            first = errors[0] if errors else {}
            raise PlatformRejected(
                str(first.get("err_msg") or "no waybill taken"), code=str(first.get("err_code") or "")
            )
        applies = [{"logistics_code": carrier_code, "track_no": str(e["track_no"])} for e in taken]
        printed = as_dict(self._api("/logistics/waybillApply", {"waybill_applies": applies}, idempotent=True))
        print_data = {
            str(i.get("track_no")): i for i in printed.get("waybill_infos") or [] if isinstance(i, dict)
        }
        waybills = []
        for e in taken:
            track_no = str(e["track_no"])
            info = print_data.get(track_no, {})
            waybills.append(
                Waybill(
                    platform_order_id=as_id(e.get("order_id")),
                    tracking_no=track_no,
                    carrier_code=carrier_code,
                    sort_code=str(e.get("sort_code") or ""),
                    print_data=json.dumps({"print_data": info["print_data"], "sign": info.get("sign", "")})
                    if info.get("print_data")
                    else "",
                )
            )
        return waybills

    @staticmethod
    def _waybill_order_info(order: ChannelOrder) -> dict[str, Any]:
        r = order.receiver
        street = str(as_dict(as_dict(order.raw.get("post_addr")).get("street")).get("name") or r.town)
        return {
            "order_id": order.platform_order_id,
            "receiver_info": {
                "address": {
                    "country_code": "CHN",
                    "province_name": r.province,
                    "city_name": r.city,
                    "district_name": r.district,
                    "street_name": street,
                    "detail_address": r.address.cipher,
                },
                "contact": {"name": r.name.cipher, "mobile": r.phone.cipher},
            },
            "items": [
                {"item_name": line.title, "item_specs": line.spec, "item_count": line.quantity}
                for line in order.lines
            ],
        }

    # ------------------------------------------------------------------ buyer data

    def decrypt(self, *, platform_order_id: str, cipher: str, account_id: str) -> str:
        """``/order/batchDecrypt`` for one ciphertext, ``auth_id`` = the shop order id and
        ``account_id`` = the person asking (the official SDK's field for the ISV's user).
        Not retried on transport errors: every attempt may count against the shop's quota."""
        params: dict[str, Any] = {"cipher_infos": [{"auth_id": platform_order_id, "cipher_text": cipher}]}
        if account_id:
            params["account_id"] = account_id
        data = as_dict(self._api("/order/batchDecrypt", params, idempotent=False))
        infos = [i for i in data.get("decrypt_infos") or [] if isinstance(i, dict)]
        info = next((i for i in infos if i.get("cipher_text") == cipher), infos[0] if infos else None)
        custom = as_dict(data.get("custom_err"))
        if info is None:
            raise PlatformRejected(
                str(custom.get("err_msg") or "nothing decrypted"), code=str(custom.get("err_code") or "")
            )
        if as_int(info.get("err_no")) != 0:
            raise PlatformRejected(str(info.get("err_msg") or ""), code=str(info.get("err_no")))
        if not info.get("decrypt_text"):
            raise PlatformRejected(
                str(custom.get("err_msg") or "empty decrypt result"), code=str(custom.get("err_code") or "")
            )
        return str(info["decrypt_text"])


# --------------------------------------------------------------------------- the window walk


def _order_key(o: dict[str, Any]) -> tuple[str, int]:
    return as_id(o.get("order_id")), as_int(o.get("update_time"))


def _after_sale_key(item: dict[str, Any]) -> tuple[str, int]:
    info = as_dict(item.get("aftersale_info"))
    return as_id(info.get("aftersale_id")), as_int(info.get("update_time"))


Fetch = Callable[[int, int, int], tuple[int, list[dict[str, Any]]]]


def _walk_by_update_time(
    fetch: Fetch, key: Callable[[dict[str, Any]], tuple[str, int]], start: int, end: int
) -> Iterator[dict[str, Any]]:
    """Yield every record updated in [start, end] (epoch seconds, inclusive), each at least once.

    ``fetch(first, last, page)`` returns ``(total, records)`` of one page of the records with
    update time in [first, last], oldest first. See ``DouyinConnector.iter_orders``.
    """
    yielded: dict[str, int] = {}

    def fresh(records: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for record in records:
            record_id, updated = key(record)
            if yielded.get(record_id, -1) < updated:
                yielded[record_id] = updated
                yield record

    cursor = start
    while cursor <= end:
        total, records = fetch(cursor, end, 0)
        yield from fresh(records)
        if len(records) < PAGE_SIZE or total <= len(records):
            return
        last = key(records[-1])[1]
        in_last_second = sum(1 for r in records if key(r)[1] == last)
        if last > cursor and in_last_second <= PAGE_SIZE // 4:
            cursor = last  # restart at the boundary second; its few records come back once more
            continue
        # The page ends in (or is all of) a busy second: page through that second by number.
        yield from _walk_one_second(fetch, fresh, last)
        cursor = last + 1


def _walk_one_second(
    fetch: Fetch, fresh: Callable[[list[dict[str, Any]]], Iterator[dict[str, Any]]], second: int
) -> Iterator[dict[str, Any]]:
    """Page number walk of the records updated in one second, again when ``total`` moved.

    A record that changes leaves a past second for good, so a stable ``total`` from the
    first page to the last means no record moved up past the pages already read."""
    for _ in range(MAX_REWALKS):
        first_total: int | None = None
        stable = True
        page = 0
        while True:
            if (page + 1) * PAGE_SIZE > MAX_PAGING_DEPTH:
                raise TemporarilyUnavailable(
                    f"more than {MAX_PAGING_DEPTH} records updated in second {second}"
                )
            total, records = fetch(second, second, page)
            first_total = total if first_total is None else first_total
            stable = stable and total == first_total
            yield from fresh(records)
            page += 1
            if not records or page * PAGE_SIZE >= total:
                break
        if stable:
            return
    raise TemporarilyUnavailable(f"records updated in second {second} kept changing while being paged")


# --------------------------------------------------------------------------- pushes


def _header(headers: dict[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return ""


def push_kind(tag: str) -> str:
    """Neutral kind of a push tag (§1.8): 100–126 order, 2xx after-sale, 400 product."""
    try:
        number = int(tag)
    except ValueError:
        return "other"
    if 100 <= number <= 126:
        return "order"
    if 200 <= number <= 299:
        return "after_sale"
    if number == 400:
        return "product"
    return "other"


class DouyinPushCodec(PushCodec):
    """Douyin message push (§1.8): a JSON array of ``{tag, msg_id, data}`` (``data`` a JSON
    string), signed by header ``event-sign`` = lower-hex MD5(app_key + raw body + app_secret)."""

    platform = Platform.DOUYIN

    def app_key_of(self, *, headers: dict[str, str], query: dict[str, str], body: bytes) -> str:
        """The ``app-id`` header."""
        return _header(headers, "app-id").strip()

    def decode(
        self, *, headers: dict[str, str], query: dict[str, str], body: bytes, credentials: AppCredentials
    ) -> list[PushMessage]:
        """Verify ``event-sign`` (constant-time) and decode every message; BadPushMessage otherwise."""
        given = _header(headers, "event-sign").strip().lower()
        if not given:
            raise BadPushMessage("push without event-sign")
        app_id = self.app_key_of(headers=headers, query=query, body=body)
        if app_id and app_id != credentials.app_key:
            raise BadPushMessage("push addressed to another app")
        expected = hashlib.md5(  # noqa: S324 - the platform's own signature algorithm
            credentials.app_key.encode() + body + credentials.app_secret.encode()
        ).hexdigest()
        if not hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace")):
            raise BadPushMessage("event-sign does not match")
        try:
            items = json.loads(body)
        except ValueError as exc:
            raise BadPushMessage("push body is not JSON") from exc
        if not isinstance(items, list):
            raise BadPushMessage("push body is not a JSON array")
        return [self._message(item) for item in items]

    @staticmethod
    def _message(item: Any) -> PushMessage:
        if not isinstance(item, dict) or not item.get("msg_id") or item.get("tag") in (None, ""):
            raise BadPushMessage("push message without tag or msg_id")
        data = item.get("data")
        if isinstance(data, str):
            try:
                data = json.loads(data) if data else {}
            except ValueError as exc:
                raise BadPushMessage("push message data is not JSON") from exc
        if not isinstance(data, dict):
            raise BadPushMessage("push message data is not an object")
        tag = str(item["tag"])
        kind = push_kind(tag)
        object_field = {"order": "p_id", "after_sale": "aftersale_id", "product": "product_id"}.get(kind, "")
        return PushMessage(
            message_id=str(item["msg_id"]),
            topic=tag,
            kind=kind,
            platform_shop_id=as_id(data.get("shop_id")),
            object_id=as_id(data.get(object_field)) if object_field else "",
            payload=data,
        )

    def ack(self) -> PushReply:
        """``{"code":0,"msg":"success"}``."""
        return PushReply(status=200, content_type="application/json", body='{"code":0,"msg":"success"}')

    def reject(self) -> PushReply:
        """``{"code":1,"msg":"fail"}`` (the platform delivers again)."""
        return PushReply(status=200, content_type="application/json", body='{"code":1,"msg":"fail"}')


CONNECTOR = DouyinConnector
PUSH_CODEC = DouyinPushCodec

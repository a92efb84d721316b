"""Kuaishou shop (快手电商开放平台) connector and push codec.

Follows shared/reference/platform-apis.md §2. A call goes to ``{base}/open/...`` (the method
name with ``.`` → ``/``): reads are GETs with every parameter in the query string, writes
are POSTs with an ``application/x-www-form-urlencoded`` body. System parameters
``appkey, method, version=1, param`` (the business parameters as compact JSON),
``access_token, timestamp`` (ms), ``signMethod`` and ``sign``, where ``sign`` is the Base64
HMAC-SHA256 (or lower-hex MD5) keyed by the app's signSecret over the sorted ``k=v&…``
string of those parameters followed by ``&signSecret=…`` (§2.2).

A Kuaishou order holds one SKU (§2.4): each becomes one ``ChannelOrder`` with one line whose
``platform_line_id`` is the order id; gift sub-orders (``subOrderInfo``) become gift lines.

Choices where the reference is silent (``[choice]`` / ``[GUESS]`` below):

* Error ``result`` numbers: 24 is a token problem (``AUTHORIZATION_REVOKED`` = the merchant
  withdrew; anything else = refresh and retry once), 25/26 mean the token cannot serve the
  shop (reconnect), 15/16/17/1016/1017/802000 or an ``Exceed qps/quota limit`` message are
  rate limits, 10 is a busy service; everything else is a business refusal (KS-PHP mapping).
* The carrier list comes from ``open.logistics.company.list``; when the platform does not
  answer it, the official table of §2.5 is used.
* E-waybill company codes are strings (``ZTO``, ``YUNDA`` …) mapped from the shipping codes
  [GUESS]; one waybill per order (``packageCode`` "1"), so asking again returns the same one.
* Settlement amounts are strings in fen [GUESS §2.9]; bill times are ``yyyy-MM-dd HH:mm:ss``
  in Beijing time or epoch milliseconds, whichever arrives.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar
from urllib.parse import urlencode

import httpx
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

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
    as_list,
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

logger = logging.getLogger("channels.connectors.kuaishou")

SUCCESS = 1
TOKEN_RESULT = 24
AUTH_REVOKED = "AUTHORIZATION_REVOKED"
NO_GRANT_RESULTS = frozenset({25, 26})  # no scope in the token / token of no shop
RATE_LIMIT_RESULTS = frozenset({15, 16, 17, 1016, 1017, 802000})
BUSY_RESULTS = frozenset({10})  # [choice]
OAUTH_ACCESS_DENIED = 100200102
OAUTH_SERVER_ERROR = 100200500

SCOPES = "user_info,merchant_user,merchant_item,merchant_order,merchant_refund,merchant_logistics"
ORDER_PAGE_SIZE = 50  # §2.4 maximum
REFUND_PAGE_SIZE = 100  # §2.7 maximum
ITEM_PAGE_SIZE = 100
BILL_PAGE_SIZE = 100
EBILL_BATCH = 10
REFUND_SPAN = timedelta(days=1)  # §2.7: refund windows span at most one day
BILL_SPAN = timedelta(days=7)  # [choice] the bill API states no limit; stay modest
QPS_RETRY_AFTER = 1.0
QUOTA_RETRY_AFTER = 60.0
SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")
BILL_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
NOMORE = "nomore"

# §2.5 (KS-DOC 物流公司编号): expressCode → name; the fallback when the list API is missing.
EXPRESS_CODES: dict[int, str] = {
    2: "EMS", 3: "申通快递", 4: "顺丰速运", 6: "圆通速递", 8: "邮政快递包裹", 9: "中通快递", 11: "韵达快递",
    12: "中通快运", 14: "京东", 17: "德邦", 53: "德邦快递", 97: "邮政标准快递", 109: "极兔速递", 113: "菜鸟速递",
}  # fmt: skip
# Shipping expressCode → e-waybill expressCompanyCode [GUESS §2.10].
EBILL_COMPANY: dict[int, str] = {
    9: "ZTO", 6: "YTO", 3: "STO", 11: "YUNDA", 4: "SF", 109: "JT", 2: "EMS", 14: "JD", 8: "POSTB", 53: "DBKD",
}  # fmt: skip
HOLD_REASONS = {1: "多人拼团活动进行中", 2: "支付后风控审核中"}
RISK_FRAUD = 10001

AFTER_SALE_TYPES = {1: AfterSaleType.RETURN_REFUND, 10: AfterSaleType.REFUND_ONLY, 3: AfterSaleType.EXCHANGE,
                    4: AfterSaleType.RESHIP}  # fmt: skip
AFTER_SALE_STATUSES = {
    10: AfterSaleStatus.WAITING_MERCHANT,
    11: AfterSaleStatus.WAITING_MERCHANT,
    20: AfterSaleStatus.WAITING_MERCHANT,  # platform intervened
    21: AfterSaleStatus.WAITING_MERCHANT,
    22: AfterSaleStatus.WAITING_BUYER_RETURN,  # platform confirmed the return
    30: AfterSaleStatus.WAITING_BUYER_RETURN,
    40: AfterSaleStatus.WAITING_MERCHANT_RECEIPT,
    # [choice] 45: the exchange parcel is with the buyer; nothing is left for the merchant
    45: AfterSaleStatus.SUCCEEDED,
    50: AfterSaleStatus.REFUNDING,
    60: AfterSaleStatus.SUCCEEDED,
}


# --------------------------------------------------------------------------- signing and envelopes

SIGNED_KEYS = ("access_token", "appkey", "method", "param", "signMethod", "timestamp", "version")


def sign_params(params: dict[str, str], sign_secret: str, sign_method: str = "HMAC_SHA256") -> str:
    """``sign`` of a call (§2.2): sorted ``k=v`` of the present system parameters joined by
    ``&``, then ``&signSecret=…``; Base64 HMAC-SHA256 keyed by signSecret, or lower-hex MD5."""
    text = "&".join(f"{k}={params[k]}" for k in sorted(SIGNED_KEYS) if params.get(k) is not None)
    text += f"&signSecret={sign_secret}"
    if sign_method == "MD5":
        return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - the platform's algorithm
    return base64.b64encode(hmac.new(sign_secret.encode(), text.encode(), hashlib.sha256).digest()).decode()


def api_path(method: str) -> str:
    """``open.order.cursor.list`` → ``/open/order/cursor/list``."""
    return "/" + method.replace(".", "/")


def param_json(params: dict[str, Any]) -> str:
    return json.dumps(params, ensure_ascii=False, separators=(",", ":"))


def is_rate_limit(result: int, message: str) -> bool:
    lowered = message.lower()
    return result in RATE_LIMIT_RESULTS or "exceed qps limit" in lowered or "exceed quota limit" in lowered


def check_result(body: Any) -> dict[str, Any]:
    """Return a successful envelope or raise the matching neutral error (§2.3)."""
    if not isinstance(body, dict) or "result" not in body:
        raise TemporarilyUnavailable("answer without a Kuaishou envelope")
    try:
        result = int(body["result"])
    except (TypeError, ValueError):
        raise TemporarilyUnavailable(f"unreadable result {body['result']!r}") from None
    if result == SUCCESS:
        return body
    message = str(body.get("error_msg") or body.get("msg") or body.get("errorMsg") or "")
    if is_rate_limit(result, message):
        quota = "quota" in message.lower()
        raise RateLimited(
            f"rate limited ({result}): {message}", retry_after=QUOTA_RETRY_AFTER if quota else QPS_RETRY_AFTER
        )
    if result == TOKEN_RESULT:
        if AUTH_REVOKED in message:
            raise AuthExpired(f"the merchant withdrew the authorisation ({message})")
        raise TokenExpiredSignal(f"{result}: {message}")
    if result in NO_GRANT_RESULTS:
        raise AuthExpired(f"the token cannot serve this shop ({result}: {message}); authorise again")
    if result in BUSY_RESULTS:
        raise TemporarilyUnavailable(f"{result}: {message}")
    raise PlatformRejected(message, code=str(result), sub_code=str(body.get("sub_code") or ""))


def check_oauth(body: Any) -> dict[str, Any]:
    """Token endpoints answer ``{"result":1,…}`` or ``{"result":code,"error":…,"error_msg":…}`` (§2.1)."""
    if not isinstance(body, dict) or "result" not in body:
        raise TemporarilyUnavailable("token answer without a result")
    result = body.get("result")
    if result == SUCCESS:
        return body
    error, message = str(body.get("error") or ""), str(body.get("error_msg") or "")
    if is_rate_limit(as_int(result), message):  # the gateway's QPS answer (e.g. a storm on the refresh)
        raise RateLimited(f"rate limited ({result}): {message}", retry_after=QPS_RETRY_AFTER)
    if result == OAUTH_ACCESS_DENIED:
        raise AuthExpired(f"access denied ({message or error}); the merchant must authorise again")
    if result == OAUTH_SERVER_ERROR:
        raise TemporarilyUnavailable(f"{result} {error}: {message}")
    raise PlatformRejected(message or error, code=str(result), sub_code=error)


# --------------------------------------------------------------------------- small helpers


def ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _at(value: Any) -> datetime | None:
    return from_epoch(as_int(value), millis=True)


def fen(value: Any) -> int:
    """A bill amount (string or number) in fen; a decimal string is read as yuan [GUESS §2.9]."""
    text = str(value if value is not None else "").strip()
    if not text:
        return 0
    try:
        if "." in text:
            return int((Decimal(text) * 100).to_integral_value())
        return int(text)
    except (InvalidOperation, ValueError):
        return 0


def parse_bill_time(value: Any) -> datetime | None:
    text = str(value or "").strip()
    if not text:
        return None
    if text.isdigit():
        return from_epoch(int(text), millis=len(text) > 10)
    try:
        return datetime.strptime(text, BILL_TIME_FORMAT).replace(tzinfo=SHANGHAI).astimezone(UTC)
    except ValueError:
        return None


def ship_blocked_reason(base: dict[str, Any], address: dict[str, Any]) -> str:
    """Why the platform forbids (or advises against) shipping this order now; "" when it may ship."""
    reasons = []
    for code in as_list(base.get("disableDeliveryReasonCode")):
        reasons.append(f"disableDeliveryReasonCode={code} {HOLD_REASONS.get(as_int(code), '履约拦截')}")
    if as_int(base.get("riskCode")) == RISK_FRAUD:
        reasons.append("riskCode=10001 风险订单，不建议发货")
    if as_int(base.get("status")) == 30:
        if not as_int(base.get("validPromiseShipmentTimeStamp")) and not reasons:
            reasons.append("validPromiseShipmentTimeStamp=0 订单暂不能发货")
        if not (
            address.get("encryptedConsignee")
            and address.get("encryptedMobile")
            and address.get("encryptedAddress")
        ):
            reasons.append("收货信息密文为空，请勿发货")
    return "; ".join(reasons)


def order_from_kuaishou(raw: dict[str, Any], *, shop_id: str) -> ChannelOrder:
    """One Kuaishou order (list item or detail) in neutral terms; ``raw`` is kept verbatim."""
    base, item = as_dict(raw.get("orderBaseInfo")), as_dict(raw.get("orderItemInfo"))
    address, delivery = as_dict(raw.get("orderAddress")), as_dict(raw.get("orderDeliveryInfo"))
    status_code = as_int(base.get("status"))
    refunds = as_list(raw.get("orderRefundList"))
    main = ChannelOrderLine(
        platform_line_id=as_id(base.get("oid")),
        platform_product_id=as_id(item.get("itemId")),
        platform_sku_id=as_id(item.get("skuId")),
        merchant_code=str(item.get("skuNick") or ""),
        title=str(item.get("itemTitle") or ""),
        spec=str(item.get("skuDesc") or ""),
        quantity=as_int(item.get("num")),
        unit_price_fen=as_int(item.get("price")),
        paid_fen=as_int(base.get("totalFee")),
        refund_state=_refund_state(as_int(as_dict(refunds[0]).get("refundStatus"))) if refunds else "",
    )
    lines = [main]
    partially = status_code == 40 and as_int(delivery.get("deliveryNum")) < main.quantity
    packages: dict[str, Package] = {}
    for info in as_list(raw.get("orderLogisticsInfo")):
        _add_package(packages, as_dict(info))
    for sub in as_list(raw.get("subOrderInfo")):
        sub = as_dict(sub)
        sub_base, sub_item = as_dict(sub.get("subOrderBaseInfo")), as_dict(sub.get("subOrderItemInfo"))
        quantity, price = as_int(sub_item.get("num")), as_int(sub_item.get("price"))
        lines.append(
            ChannelOrderLine(
                platform_line_id=as_id(sub_base.get("oid")),
                platform_product_id=as_id(sub_item.get("itemId")),
                platform_sku_id=as_id(sub_item.get("skuId")),
                merchant_code=str(sub_item.get("skuNick") or ""),
                title=str(sub_item.get("itemTitle") or ""),
                spec=str(sub_item.get("skuDesc") or ""),
                quantity=quantity,
                unit_price_fen=price,
                paid_fen=max(0, price * quantity - as_int(sub_item.get("discountFee"))),
                is_gift=True,
            )
        )
        shipped = as_int(as_dict(sub.get("subOrderDeliveryInfo")).get("deliveryNum"))
        if status_code == 40 and as_int(sub_base.get("status")) != 80 and shipped < quantity:
            partially = True
        for info in as_list(sub.get("subOrderLogisticsInfo")):
            _add_package(packages, as_dict(info))
    status = {
        10: OrderStatus.UNPAID,
        30: OrderStatus.PAID,
        40: OrderStatus.PARTIALLY_SHIPPED if partially else OrderStatus.SHIPPED,
        50: OrderStatus.COMPLETED,
        70: OrderStatus.COMPLETED,
        80: OrderStatus.CANCELLED,
    }.get(status_code)
    if status is None:
        logger.warning(
            "Kuaishou order %s has unknown status %s; treated as unpaid", base.get("oid"), status_code
        )
        status = OrderStatus.UNPAID
    notes = as_list(as_dict(raw.get("orderNote")).get("orderNoteInfo"))
    seller_remark = str(as_dict(notes[0]).get("note") or "") if notes else ""
    if not seller_remark and as_list(as_dict(raw.get("orderNote")).get("sellerNote")):
        seller_remark = str(as_dict(raw.get("orderNote"))["sellerNote"][0])
    goods, discount, freight = (
        main.unit_price_fen * main.quantity,
        as_int(base.get("discountFee")),
        as_int(base.get("expressFee")),
    )
    return ChannelOrder(
        platform=Platform.KUAISHOU,
        platform_shop_id=shop_id,
        platform_order_id=main.platform_line_id,
        platform_status=str(status_code),
        status=status,
        created_at=_at(base.get("createTime")) or datetime.fromtimestamp(0, UTC),
        updated_at=_at(base.get("updateTime"))
        or _at(base.get("createTime"))
        or datetime.fromtimestamp(0, UTC),
        lines=tuple(lines),
        receiver=Receiver(
            name=CipherField(
                cipher=str(address.get("encryptedConsignee") or ""),
                mask=str(address.get("desensitiseConsignee") or ""),
            ),
            phone=CipherField(
                cipher=str(address.get("encryptedMobile") or ""),
                mask=str(address.get("desensitiseMobile") or ""),
            ),
            address=CipherField(
                cipher=str(address.get("encryptedAddress") or ""),
                mask=str(address.get("desensitiseAddress") or ""),
            ),
            province=str(address.get("province") or ""),
            city=str(address.get("city") or ""),
            district=str(address.get("district") or ""),
            town=str(address.get("town") or ""),
        ),
        buyer_id=str(base.get("buyerOpenId") or ""),
        paid_at=_at(base.get("payTime")),
        ship_by=_at(base.get("validPromiseShipmentTimeStamp")),
        shipped_at=_at(base.get("sendTime")),
        finished_at=_at(base.get("recvTime")),
        goods_fen=goods,
        freight_fen=freight,
        discount_fen=discount,
        paid_fen=as_int(base.get("totalFee")) + freight,
        buyer_remark=str(base.get("remark") or ""),
        seller_remark=seller_remark,
        ship_blocked_reason=ship_blocked_reason(base, address),
        packages=tuple(packages.values()),
        raw=raw,
    )


def _add_package(packages: dict[str, Package], info: dict[str, Any]) -> None:
    key = as_id(info.get("logisticsId")) or str(info.get("expressNo") or "")
    if key and key not in packages:
        packages[key] = Package(
            tracking_no=str(info.get("expressNo") or ""),
            carrier_code=as_id(info.get("expressCode")),
            platform_package_id=as_id(info.get("logisticsId")),
        )


def after_sale_from_kuaishou(raw: dict[str, Any], *, shop_id: str) -> AfterSale:
    """One refund (list item or detail) in neutral terms.

    Kuaishou does not say how many pieces a refund covers (``productNum`` is for vouchers
    only), so ``quantity`` is 0 = unknown."""
    status = as_int(raw.get("status"))
    neutral = AFTER_SALE_STATUSES.get(status)
    if neutral is None:
        neutral = (
            AfterSaleStatus.REJECTED if as_int(raw.get("negotiateStatus")) == 3 else AfterSaleStatus.CLOSED
        )
    oid = as_id(raw.get("oid"))
    logistics = as_dict(raw.get("logisticsInfo"))
    return AfterSale(
        platform=Platform.KUAISHOU,
        platform_shop_id=shop_id,
        platform_after_sale_id=as_id(raw.get("refundId")),
        platform_order_id=oid,
        platform_line_id=oid,
        type=AFTER_SALE_TYPES.get(as_int(raw.get("handlingWay")), AfterSaleType.OTHER),
        status=neutral,
        platform_status=str(status),
        refund_fen=as_int(raw.get("refundFee")),
        quantity=as_int(raw.get("productNum")),
        reason=str(raw.get("refundReasonDesc") or raw.get("refundDesc") or ""),
        created_at=_at(raw.get("createTime")) or _at(raw.get("submitTime")) or datetime.fromtimestamp(0, UTC),
        updated_at=_at(raw.get("updateTime")) or _at(raw.get("createTime")) or datetime.fromtimestamp(0, UTC),
        return_tracking_no=str(logistics.get("expressNo") or ""),
    )


def settlement_from_kuaishou(raw: dict[str, Any], *, shop_id: str) -> SettlementLine:
    """One settled bill; its line id is ``orderNo:settlementTime:kind`` (the bill has no id of its own)."""
    amount = fen(raw.get("settlementAmount"))
    kind = "refund_after_settle" if amount < 0 else "settle"
    commission = sum(
        fen(raw.get(name))
        for name in (
            "distributorCommissionAmount",
            "activityUserCommissionAmount",
            "kzkCommissionAmount",
            "serviceAmount",
        )
    )
    settled_at = parse_bill_time(raw.get("settlementTime")) or datetime.fromtimestamp(0, UTC)
    order_no = as_id(raw.get("orderNo"))
    return SettlementLine(
        platform=Platform.KUAISHOU,
        platform_shop_id=shop_id,
        platform_line_id=f"{order_no}:{int(settled_at.timestamp())}:{kind}",
        platform_order_id=order_no,
        settled_at=settled_at,
        amount_fen=amount,
        commission_fen=commission,
        service_fee_fen=fen(raw.get("platformCommissionAmount")),
        kind=kind,
        raw=raw,
    )


# --------------------------------------------------------------------------- the connector


class KuaishouConnector(Connector):
    """Kuaishou shop open-platform API (快手电商开放平台, §2)."""

    platform = Platform.KUAISHOU
    max_order_window: ClassVar[timedelta] = timedelta(days=7) - timedelta(minutes=5)  # §2.4, minus a margin
    max_lookback: ClassVar[timedelta] = timedelta(days=90)

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
        authorize_base: str | None = None,
        sign_method: str = "HMAC_SHA256",
    ) -> None:
        """``authorize_base``: the merchant-facing authorisation page (production:
        ``https://open.kwaixiaodian.com/oauth/authorize``; default ``{base_url}/oauth/authorize``).
        ``sign_method``: ``HMAC_SHA256`` (recommended by the platform) or ``MD5``."""
        super().__init__(
            credentials=credentials,
            base_url=base_url,
            session=session,
            http=http,
            retry=retry,
            now=now,
            timeout=timeout,
        )
        self.authorize_base = (authorize_base or f"{self.base_url}/oauth/authorize").rstrip("?")
        if sign_method not in ("HMAC_SHA256", "MD5"):
            raise ValueError("sign_method must be HMAC_SHA256 or MD5")
        self.sign_method = sign_method

    # ------------------------------------------------------------------ transport

    def _send(
        self, method: str, params: dict[str, Any], *, write: bool, access_token: str | None = None
    ) -> httpx.Response:
        """Build, sign and send one call (fresh timestamp and token on every attempt)."""
        wire = {
            "appkey": self.credentials.app_key,
            "method": method,
            "version": "1",
            "param": param_json(params),
            "access_token": access_token if access_token is not None else self.session.access_token,
            "timestamp": str(ms(self.now())),
            "signMethod": self.sign_method,
        }
        wire["sign"] = sign_params(wire, self.credentials.sign_secret, self.sign_method)
        url = f"{self.base_url}{api_path(method)}"
        if write:
            return self.http.post(url, data=wire)
        return self.http.get(url, params=wire)

    def _parse(self, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            if 400 <= response.status_code < 500:
                raise PlatformRejected(
                    f"HTTP {response.status_code}", code=f"http_{response.status_code}"
                ) from None
            raise TemporarilyUnavailable(f"malformed body (HTTP {response.status_code})") from None
        return check_result(body)

    def _api(
        self, method: str, params: dict[str, Any], *, write: bool = False, idempotent: bool | None = None
    ) -> dict[str, Any]:
        """One authenticated call with the retry policy; returns the whole envelope.

        Reads are retried on transient failures; writes only when ``idempotent`` says so."""
        return self.call(
            lambda: self._send(method, params, write=write),
            self._parse,
            idempotent=not write if idempotent is None else idempotent,
        )

    def _oauth(self, send: Callable[[], httpx.Response], *, idempotent: bool) -> dict[str, Any]:
        def parse(response: httpx.Response) -> dict[str, Any]:
            return check_oauth(self.json_body(response))

        return self.call(send, parse, idempotent=idempotent, authenticated=False)

    # ------------------------------------------------------------------ authorisation

    def ensure_fresh_token(self) -> None:
        """Refresh ahead of expiry (base rule: after 80 % of the 48 h). A proactive refresh that
        fails for a passing reason is not fatal while the current token still works."""
        try:
            super().ensure_fresh_token()
        except (TemporarilyUnavailable, RateLimited) as exc:
            expires = self.session.access_expires_at
            if expires is None or self.now() >= expires:
                raise
            logger.warning("proactive token refresh failed (%s); the current token is still valid", exc)

    def authorize_url(self, *, redirect_uri: str, state: str) -> str:
        """The merchant authorisation page with this app's key, scopes and callback (§2.1)."""
        query = {"app_id": self.credentials.app_key, "redirect_uri": redirect_uri, "scope": SCOPES,
                 "response_type": "code", "state": state}  # fmt: skip
        return f"{self.authorize_base}?{urlencode(query)}"

    def _grant(self, body: dict[str, Any], *, shop_id: str, shop_name: str = "") -> TokenGrant:
        now = self.now()
        refresh_in = body.get("refresh_token_expires_in")
        return TokenGrant(
            access_token=str(body["access_token"]),
            access_expires_at=now + timedelta(seconds=as_int(body.get("expires_in"), 48 * 3600)),
            refresh_token=str(body.get("refresh_token") or ""),
            refresh_expires_at=now + timedelta(seconds=as_int(refresh_in))
            if refresh_in is not None
            else self.session.refresh_expires_at,
            platform_shop_id=shop_id,
            shop_name=shop_name,
        )

    def exchange_code(self, *, code: str, redirect_uri: str = "") -> TokenGrant:
        """``GET /oauth2/access_token`` with ``grant_type=code``, then ``open.user.seller.get`` for the
        seller id (the shop id) and name. A code is single-use, so the exchange is never re-sent."""
        query = {
            "app_id": self.credentials.app_key,
            "grant_type": "code",
            "code": code,
            "app_secret": self.credentials.app_secret,
        }
        body = self._oauth(
            lambda: self.http.get(f"{self.base_url}/oauth2/access_token", params=query), idempotent=False
        )
        token = str(body["access_token"])
        seller = self.call(
            lambda: self._send("open.user.seller.get", {}, write=False, access_token=token),
            self._parse,
            idempotent=True,
            authenticated=False,
        )
        data = as_dict(seller.get("data"))
        return self._grant(body, shop_id=as_id(data.get("sellerId")), shop_name=str(data.get("name") or ""))

    def refresh_tokens(self) -> TokenGrant:
        """``POST /oauth2/refresh_token``. Refresh tokens rotate: the answer's new refresh token
        (which keeps the old expiry) must replace the old one, which dies 5 minutes later.
        Retrying within those minutes is safe (the platform answers with the same new pair)."""
        if not self.session.refresh_token:
            raise AuthExpired("no refresh token; the merchant must authorise again")
        form = {"grant_type": "refresh_token", "refresh_token": self.session.refresh_token,
                "app_id": self.credentials.app_key, "app_secret": self.credentials.app_secret}  # fmt: skip
        body = self._oauth(
            lambda: self.http.post(f"{self.base_url}/oauth2/refresh_token", data=form), idempotent=True
        )
        return self._grant(body, shop_id=self.session.platform_shop_id)

    # ------------------------------------------------------------------ orders

    def _order(self, raw: dict[str, Any]) -> ChannelOrder:
        return order_from_kuaishou(raw, shop_id=self.session.platform_shop_id)

    def iter_orders(self, *, updated_from: datetime, updated_to: datetime) -> Iterator[ChannelOrder]:
        """Walk ``open.order.cursor.list`` by update time (``queryType=2``), 50 a page, from
        cursor ``""`` until ``"nomore"``; windows longer than 7 days are split."""
        for lower, upper in time_spans(updated_from, updated_to, self.max_order_window):
            cursor = ""
            while True:
                params = {"orderViewStatus": 1, "pageSize": ORDER_PAGE_SIZE, "sort": 2, "queryType": 2,
                          "beginTime": ms(lower), "endTime": ms(upper), "cursor": cursor}  # fmt: skip
                data = as_dict(self._api("open.order.cursor.list", params).get("data"))
                for raw in as_list(data.get("orderList")):
                    yield self._order(as_dict(raw))
                following = str(data.get("cursor") or NOMORE)
                if following == NOMORE:
                    break
                if following == cursor:
                    raise PlatformRejected("the order cursor did not advance", code="cursor")
                cursor = following

    def _detail(self, platform_order_id: str) -> dict[str, Any]:
        envelope = self._api("open.order.detail", {"oid": int(platform_order_id)})
        return as_dict(envelope.get("data"))

    def get_order(self, platform_order_id: str) -> ChannelOrder:
        """``open.order.detail`` of one order id."""
        return self._order(self._detail(platform_order_id))

    # ------------------------------------------------------------------ shipping

    @staticmethod
    def _express_code(parcel: ShipmentParcel) -> int:
        if not parcel.carrier_code.isdigit():
            raise PlatformRejected(
                f"Kuaishou needs an integer expressCode, got {parcel.carrier_code!r}", code="carrier"
            )
        return int(parcel.carrier_code)

    def ship(self, *, platform_order_id: str, parcels: list[ShipmentParcel], request_id: str) -> None:
        """Ship parcels of one Kuaishou order (§2.5).

        One parcel without lines on an order with nothing shipped and no gifts →
        ``open.seller.order.goods.deliver``. Parcels with lines, or a whole order with gifts or
        already partly shipped → ``open.order.goods.split.deliver`` (one package per parcel;
        a whole-order parcel takes everything left of the order and its gifts). More parcels
        without lines are added with ``open.seller.order.goods.logistics.append``.
        Kuaishou has no idempotency key for shipping (``request_id`` is not sent), so these
        writes are never re-sent on a timeout; a repeat answers "already shipped"."""
        if not parcels:
            raise ValueError("nothing to ship")
        oid = int(platform_order_id)
        with_lines = [p for p in parcels if p.lines]
        whole = [p for p in parcels if not p.lines]
        packages: list[dict[str, Any]] = [
            {"expressCode": self._express_code(p), "expressNo": p.tracking_no,
             "deliveryGoodsInfoList": [{"oid": int(line_id), "deliveryNum": qty} for line_id, qty in p.lines]}
            for p in with_lines
        ]  # fmt: skip
        appended = whole
        if whole and not with_lines:
            first, appended = whole[0], whole[1:]
            raw = self._detail(platform_order_id)
            item, delivery = as_dict(raw.get("orderItemInfo")), as_dict(raw.get("orderDeliveryInfo"))
            left = [(oid, as_int(item.get("num")) - as_int(delivery.get("deliveryNum")))]
            for sub in as_list(raw.get("subOrderInfo")):
                sub = as_dict(sub)
                sub_base = as_dict(sub.get("subOrderBaseInfo"))
                if as_int(sub_base.get("status")) == 80:
                    continue
                num = as_int(as_dict(sub.get("subOrderItemInfo")).get("num"))
                left.append(
                    (
                        as_int(sub_base.get("oid")),
                        num - as_int(as_dict(sub.get("subOrderDeliveryInfo")).get("deliveryNum")),
                    )
                )
            left = [(line, qty) for line, qty in left if qty > 0]
            if len(left) == 1 and left[0][1] == as_int(item.get("num")):
                self._api("open.seller.order.goods.deliver",
                          {"orderId": oid, "expressCode": self._express_code(first), "expressNo": first.tracking_no}, write=True)  # fmt: skip
            elif left:
                packages.append({"expressCode": self._express_code(first), "expressNo": first.tracking_no,
                                 "deliveryGoodsInfoList": [{"oid": line, "deliveryNum": qty} for line, qty in left]})  # fmt: skip
            else:
                appended = whole  # everything shipped already: the parcels are extra boxes
        if packages:
            self._api(
                "open.order.goods.split.deliver",
                {"mainOrderId": oid, "deliveryItemInfoList": packages},
                write=True,
            )
        for parcel in appended:
            self._api("open.seller.order.goods.logistics.append",
                      {"oid": oid, "expressCode": self._express_code(parcel), "expressNo": parcel.tracking_no}, write=True)  # fmt: skip

    def list_carriers(self) -> list[Carrier]:
        """Shipping carriers with their integer ``expressCode`` (as strings).

        Read from ``open.logistics.company.list``; the official table of §2.5 when the
        platform does not answer that method."""
        try:
            data = self._api("open.logistics.company.list", {}).get("data")
        except PlatformRejected as exc:
            logger.info("carrier list unavailable (%s); using the published table", exc)
            return [Carrier(code=str(code), name=name) for code, name in EXPRESS_CODES.items()]
        return [
            Carrier(code=str(as_int(c.get("expressCode"))), name=str(c.get("expressName") or ""))
            for c in as_list(data)
            if isinstance(c, dict)
        ]

    # ------------------------------------------------------------------ stock and listings

    def iter_listings(self) -> Iterator[Listing]:
        """Every SKU of the shop's items, from ``open.item.list.get`` (which carries the SKUs)."""
        page = 1
        while True:
            data = as_dict(
                self._api("open.item.list.get", {"pageNumber": page, "pageSize": ITEM_PAGE_SIZE}).get("data")
            )
            items = as_list(data.get("items"))
            for item in items:
                item = as_dict(item)
                for sku in as_list(item.get("skuList")):
                    sku = as_dict(sku)
                    yield Listing(
                        platform_product_id=as_id(item.get("kwaiItemId")),
                        platform_sku_id=as_id(sku.get("kwaiSkuId")),
                        merchant_code=str(sku.get("skuNick") or ""),
                        title=str(item.get("title") or ""),
                        spec=str(sku.get("specification") or ""),
                        stock=as_int(sku.get("skuStock")),
                        price_fen=as_int(sku.get("skuSalePrice")),
                    )
            if not items or page >= as_int(data.get("totalPage"), 1):
                return
            page += 1

    def current_stock(self, listing: Listing) -> int:
        """The platform's stock of one SKU now (``open.item.sku.list.get``)."""
        data = as_dict(
            self._api("open.item.sku.list.get", {"kwaiItemId": int(listing.platform_product_id)}).get("data")
        )
        for sku in as_list(data.get("skuList")):
            if as_id(as_dict(sku).get("kwaiSkuId")) == listing.platform_sku_id:
                return as_int(as_dict(sku).get("skuStock"))
        raise PlatformRejected(
            f"sku {listing.platform_sku_id} not found on item {listing.platform_product_id}", code="sku"
        )

    def set_stock(
        self, *, listing: Listing, quantity: int, current: int | None, idempotency_key: str
    ) -> None:
        """Bring the SKU to ``quantity`` with ``open.item.sku.stock.update``, which only adds
        (``changeType`` 1) or removes (2) a delta: the delta is ``quantity - current``
        (``current`` read first when unknown); nothing is sent when they are equal.

        The API takes no idempotency key (``idempotency_key`` is unused), so a delta that
        timed out is **not** re-sent: the caller re-reads the stock and sets again."""
        if quantity < 0:
            raise ValueError("stock cannot be negative")
        if current is None:
            current = self.current_stock(listing)
        delta = quantity - current
        if delta == 0:
            return
        params = {"kwaiItemId": int(listing.platform_product_id), "skuId": int(listing.platform_sku_id),
                  "skuChangeStock": abs(delta), "changeType": 1 if delta > 0 else 2}  # fmt: skip
        self._api("open.item.sku.stock.update", params, write=True)

    # ------------------------------------------------------------------ publishing (商品铺货)

    def publish_product(
        self, *, title: str, skus: list[PublishSku], images: list[str], category: str, request_id: str
    ) -> PublishedProduct:
        """``open.item.new`` (POST form): ``title``, ``categoryId``, ``imageUrls``, ``details``,
        ``skuList[]{skuNick (merchant code), skuSalePrice (fen), skuStock, skuProps[]{propName,
        propValueName, isMainProp}}``. No idempotency key (``request_id`` unused): never re-sent
        after a lost answer. The answer carries ``itemId``; the SKU ids are read back with
        ``open.item.sku.list.get`` and matched by ``skuNick``."""
        if not skus or not images:
            raise ValueError("a product needs SKUs and images")
        names, rows = publish_dimensions(skus, max_dimensions=3)
        params: dict[str, Any] = {
            "title": title,
            "imageUrls": list(images),
            "details": title,
            "skuList": [
                {
                    "skuNick": sku.merchant_code,
                    "skuSalePrice": sku.price_fen,
                    "skuStock": sku.stock,
                    "skuProps": [
                        {"propName": n, "propValueName": v, "isMainProp": i == 0}
                        for i, (n, v) in enumerate(zip(names, row, strict=True))
                    ],
                }
                for sku, row in zip(skus, rows, strict=True)
            ],
        }
        if category.isdigit():
            params["categoryId"] = int(category)
        data = as_dict(self._api("open.item.new", params, write=True).get("data"))
        item_id = as_id(data.get("itemId"))
        if not item_id:
            raise PlatformRejected("open.item.new returned no itemId", code="itemId")
        listed = as_dict(self._api("open.item.sku.list.get", {"kwaiItemId": int(item_id)}).get("data"))
        listings = tuple(
            Listing(
                platform_product_id=item_id,
                platform_sku_id=as_id(as_dict(sku).get("kwaiSkuId")),
                merchant_code=str(as_dict(sku).get("skuNick") or ""),
                title=title,
                spec=str(as_dict(sku).get("specification") or ""),
                stock=as_int(as_dict(sku).get("skuStock")),
                price_fen=as_int(as_dict(sku).get("skuSalePrice")),
            )
            for sku in as_list(listed.get("skuList"))
        )
        return PublishedProduct(platform_product_id=item_id, skus=listings)

    # ------------------------------------------------------------------ after-sales and money

    def iter_after_sales(self, *, updated_from: datetime, updated_to: datetime) -> Iterator[AfterSale]:
        """``open.seller.order.refund.pcursor.list`` by update time, in one-day windows (§2.7)."""
        for lower, upper in time_spans(updated_from, updated_to, REFUND_SPAN):
            cursor = ""
            while True:
                params = {"beginTime": ms(lower), "endTime": ms(upper), "type": 9, "pageSize": REFUND_PAGE_SIZE,
                          "currentPage": 1, "sort": 2, "queryType": 2, "pcursor": cursor}  # fmt: skip
                data = as_dict(self._api("open.seller.order.refund.pcursor.list", params).get("data"))
                for raw in as_list(data.get("refundOrderInfoList")):
                    yield after_sale_from_kuaishou(as_dict(raw), shop_id=self.session.platform_shop_id)
                following = str(data.get("pcursor") or NOMORE)
                if following == NOMORE:
                    break
                if following == cursor:
                    raise PlatformRejected("the refund cursor did not advance", code="cursor")
                cursor = following

    def iter_settlements(self, *, start: datetime, end: datetime) -> Iterator[SettlementLine]:
        """Settled bills from ``open.funds.financial.settled.bill.detail`` by settlement time."""
        for lower, upper in time_spans(start, end, BILL_SPAN):
            cursor = ""
            while True:
                params = {
                    "settlementStartTime": ms(lower),
                    "settlementEndTime": ms(upper),
                    "size": BILL_PAGE_SIZE,
                    "cursor": cursor,
                }
                data = as_dict(self._api("open.funds.financial.settled.bill.detail", params).get("data"))
                bills = as_list(data.get("orders"))
                for raw in bills:
                    yield settlement_from_kuaishou(as_dict(raw), shop_id=self.session.platform_shop_id)
                following = str(data.get("cursor") or "")
                if not bills or following in ("", NOMORE):
                    break
                if following == cursor:
                    raise PlatformRejected("the bill cursor did not advance", code="cursor")
                cursor = following

    # ------------------------------------------------------------------ e-waybills and buyer data

    def create_waybills(
        self, *, carrier_code: str, platform_order_ids: list[str], sender: dict
    ) -> list[Waybill]:
        """Take e-waybills with ``open.express.ebill.get`` (§2.10), receiver as the order's ciphertexts.

        ``carrier_code``: the shipping ``expressCode`` (mapped to the e-waybill company code)
        or an e-waybill company code itself. ``sender``: ``name``, ``mobile``, ``province``,
        ``city``, ``district``, ``street``, ``detail``. One waybill per order (``packageCode``
        "1", ``requestId`` = order id), so asking again returns the same number; the call is
        nevertheless not re-sent on a timeout. ``Waybill.print_data`` is JSON ``{printData,
        signature, key, version}`` for Kuaishou's print component; ``Waybill.carrier_code`` is the
        shipping code to ship with. Refused orders are logged and left out; when every order
        is refused, PlatformRejected is raised."""
        if not platform_order_ids:
            return []
        company = EBILL_COMPANY.get(int(carrier_code)) if carrier_code.isdigit() else carrier_code
        if not company:
            raise PlatformRejected(f"no e-waybill company for carrier {carrier_code}", code="carrier")
        shipping_code = (
            carrier_code
            if carrier_code.isdigit()
            else next(
                (str(code) for code, name in EBILL_COMPANY.items() if name == carrier_code), carrier_code
            )
        )
        waybills: list[Waybill] = []
        errors: list[tuple[str, str]] = []
        for start in range(0, len(platform_order_ids), EBILL_BATCH):
            chunk = platform_order_ids[start : start + EBILL_BATCH]
            requests = [self._ebill_request(self._detail(oid), oid, company, sender) for oid in chunk]
            answers = as_list(
                self._api("open.express.ebill.get", {"getEbillOrderRequest": requests}, write=True).get(
                    "data"
                )
            )
            for answer in answers:
                answer = as_dict(answer)
                oid = str(answer.get("requestId") or "")
                outcome = as_dict(answer.get("baseResponse"))
                taken = [as_dict(x) for x in as_list(answer.get("data")) if as_dict(x).get("waybillCode")]
                if not outcome.get("success") or not taken:
                    errors.append((oid, str(outcome.get("message") or "no waybill")))
                    logger.warning("waybill refused for order %s: %s", oid, outcome.get("message"))
                    continue
                for info in taken:
                    print_data = json.dumps(
                        {k: info.get(k, "") for k in ("printData", "signature", "key", "version")},
                        ensure_ascii=False,
                    )
                    waybills.append(Waybill(platform_order_id=oid, tracking_no=str(info["waybillCode"]), carrier_code=shipping_code,
                                            print_data=print_data))  # fmt: skip
        if not waybills and errors:
            raise PlatformRejected(errors[0][1], code="ebill")
        return waybills

    def _ebill_request(self, raw: dict[str, Any], oid: str, company: str, sender: dict) -> dict[str, Any]:
        base, item, address = (
            as_dict(raw.get("orderBaseInfo")),
            as_dict(raw.get("orderItemInfo")),
            as_dict(raw.get("orderAddress")),
        )
        items = [{"itemTitle": str(item.get("itemTitle") or ""), "itemQuantity": as_int(item.get("num"))}]
        for sub in as_list(raw.get("subOrderInfo")):
            sub_item = as_dict(as_dict(sub).get("subOrderItemInfo"))
            items.append(
                {
                    "itemTitle": str(sub_item.get("itemTitle") or ""),
                    "itemQuantity": as_int(sub_item.get("num")),
                }
            )
        return {
            "merchantCode": str(base.get("sellerOpenId") or ""),
            "merchantName": str(base.get("sellerNick") or ""),
            "packageCode": "1",
            "itemList": items,
            "receiverContract": {"name": str(address.get("encryptedConsignee") or ""), "mobile": str(address.get("encryptedMobile") or "")},
            "senderContract": {"name": str(sender.get("name") or ""), "mobile": str(sender.get("mobile") or sender.get("phone") or "")},
            "expressCompanyCode": company,
            "orderChannel": "KUAISHOU",
            "tradeOrderCode": oid,
            "senderAddress": {"provinceName": str(sender.get("province") or ""), "cityName": str(sender.get("city") or ""),
                              "districtName": str(sender.get("district") or ""), "streetName": str(sender.get("street") or ""),
                              "detailAddress": str(sender.get("detail") or "")},
            "receiverAddress": {"provinceName": str(address.get("province") or ""), "cityName": str(address.get("city") or ""),
                                "districtName": str(address.get("district") or ""), "streetName": str(address.get("town") or ""),
                                "detailAddress": str(address.get("encryptedAddress") or "")},
            "requestId": oid,
            "totalPackageQuantity": 1,
        }  # fmt: skip

    def decrypt(self, *, platform_order_id: str, cipher: str, account_id: str) -> str:
        """One field through ``open.order.decrypt.batch`` with ``bizId`` = the order id. Kuaishou
        takes no operator id (``account_id`` is for ecbao's own audit row)."""
        envelope = self._api(
            "open.order.decrypt.batch",
            {"batchDecryptList": [{"bizId": platform_order_id, "encryptedData": cipher}]},
            write=True,
            idempotent=True,  # a read: repeating it only reads again
        )
        results = as_list(envelope.get("batchDecryptResultList")) or as_list(
            as_dict(envelope.get("data")).get("batchDecryptResultList")
        )
        if not results:
            raise PlatformRejected("no decrypt result", code="decrypt")
        first = as_dict(results[0])
        if as_int(first.get("errorCode")) != SUCCESS:
            raise PlatformRejected(
                str(first.get("errorMsg") or "decrypt refused"), code=str(first.get("errorCode"))
            )
        return str(first.get("decryptedData") or "")


# --------------------------------------------------------------------------- pushes


def decrypt_message(message_key: str, body: bytes) -> str:
    """Base64 → AES-CBC (zero IV, PKCS5) with the Base64-decoded message key → UTF-8 (§2.8)."""
    key = base64.b64decode(message_key)
    decryptor = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).decryptor()
    data = decryptor.update(base64.b64decode(body.strip(), validate=True)) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return (unpadder.update(data) + unpadder.finalize()).decode("utf-8")


class KuaishouPushCodec(PushCodec):
    """Kuaishou pushes (§2.8): one AES-encrypted JSON message per POST; ``{"result":1}`` acks it."""

    platform = Platform.KUAISHOU

    def app_key_of(self, *, headers: dict[str, str], query: dict[str, str], body: bytes) -> str:
        """The app is only named inside the encrypted body, so the deployment's app is used."""
        return ""

    def decode(
        self, *, headers: dict[str, str], query: dict[str, str], body: bytes, credentials: AppCredentials
    ) -> list[PushMessage]:
        """Decrypt with the app's message key and map the message; the ``{"test":true}``
        heartbeat is a "test" message. Raises BadPushMessage for anything undecryptable."""
        plaintext = None
        if credentials.message_key:
            try:
                plaintext = decrypt_message(credentials.message_key, body)
            except (ValueError, UnicodeDecodeError):
                plaintext = None
        if plaintext is None:
            try:  # the console's URL check may send the bare test message
                if json.loads(body) == {"test": True}:
                    plaintext = body.decode()
            except ValueError:
                pass
        if plaintext is None:
            raise BadPushMessage("push body does not decrypt with the app's message key")
        try:
            message = json.loads(plaintext)
        except ValueError:
            raise BadPushMessage("decrypted push is not JSON") from None
        if not isinstance(message, dict):
            raise BadPushMessage("decrypted push is not a JSON object")
        digest = hashlib.sha256(plaintext.encode()).hexdigest()
        message_id = str(message.get("eventId") or message.get("msgId") or digest)
        shop_id = as_id(message.get("userId"))
        event = str(message.get("event") or "")
        if message.get("test") is True:
            return [PushMessage(message_id=message_id, topic=event or "test", kind="test", platform_shop_id=shop_id,
                                object_id="", payload=message)]  # fmt: skip
        if message.get("appKey") and message["appKey"] != credentials.app_key:
            raise BadPushMessage("push addressed to another app")
        info_raw = message.get("info")
        try:
            info = json.loads(info_raw) if isinstance(info_raw, str) and info_raw else as_dict(info_raw)
        except ValueError:
            info = {}
        info = as_dict(info)
        if event.startswith("kwaishop_order_"):
            kind, object_id = "order", as_id(info.get("oid")) or as_id(message.get("bizId"))
        elif event.startswith("kwaishop_aftersales_"):
            kind, object_id = "after_sale", as_id(info.get("refundId")) or as_id(message.get("bizId"))
        else:
            kind, object_id = "other", as_id(message.get("bizId"))
        return [PushMessage(message_id=message_id, topic=event, kind=kind, platform_shop_id=shop_id or as_id(info.get("sellerId")),
                            object_id=object_id, payload=message)]  # fmt: skip

    def ack(self) -> PushReply:
        """``{"result":1}`` tells Kuaishou the message arrived."""
        return PushReply(200, "application/json", '{"result":1}')

    def reject(self) -> PushReply:
        """Any other result makes Kuaishou retry (after 5, 10, 20, 30, 60 minutes)."""
        return PushReply(200, "application/json", '{"result":0}')


CONNECTOR = KuaishouConnector
PUSH_CODEC = KuaishouPushCodec


def _refund_state(status: int) -> str:
    """Neutral line refund state from a Kuaishou refund status (§2.7): 60 succeeded →
    "refunded", 70 failed → "", anything else in progress → "refunding"."""
    if status == 60:
        return "refunded"
    if status in (0, 70):
        return ""
    return "refunding"

"""WeChat Channels shop (微信小店) connector and push codec (shared/reference/platform-apis.md §3).

Requests: ``POST {base_url}/channels/ec/…?access_token=TOKEN`` with a JSON body; no signature;
64-bit ids travel as strings. Replies: ``{"errcode":0,"errmsg":"ok", …fields}``.

Tokens (7200 s):

* **self-use shop** (``session.refresh_token`` empty): ``credentials`` are the shop's own
  appid/secret; ``refresh_tokens`` calls ``/cgi-bin/stable_token`` (normal mode: the same token
  comes back until ~5 min before expiry, so proactive refreshes are cheap and never kill a token
  another worker still uses).
* **shop authorised to our third-party platform**: ``credentials`` are the component appid/secret;
  ``session.refresh_token`` holds ``"<authorizer_appid>:<authorizer_refresh_token>"`` and
  ``refresh_tokens`` calls ``/cgi-bin/component/api_authorizer_token`` with a
  ``component_access_token``. That token needs the ``component_verify_ticket`` WeChat pushes every
  10 minutes to the authorisation-event URL (``decode_component_event`` reads those pushes); pass a
  ``verify_ticket`` callable that returns the latest one, and a ``component_token_cache`` so that
  connectors share one component token (2 h) instead of each asking for its own.

Error mapping: 40001/42001 → ``TokenExpiredSignal`` (the base class refreshes once and retries;
on token endpoints → ``TokenRejected``, an ``AuthExpired``: a refused component token is dropped
from the shared cache and fetched again once);
45009 (daily quota) and 45011 (minute quota, "retry next minute") and 10020112 (per-SKU stock
update frequency) → ``RateLimited``; -1 → ``TemporarilyUnavailable``; anything else →
``PlatformRejected``.

Receiver data: WeChat gives only masks plus ``hash_code`` in orders; ``CipherField.cipher`` stays
empty, ``mask`` holds the mask and ``index`` the ``hash_code``. Plain text comes from
``/channels/ec/order/sensitiveinfo/decode`` **by order id** (see ``decrypt``).

Shops are identified by their original id (``gh_…``), which ``/channels/ec/basics/info/get``
reports and every push carries as ``ToUserName``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import struct
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar, Protocol
from urllib.parse import urlencode
from xml.etree import ElementTree

import httpx
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
    epoch_seconds,
    from_epoch,
    publish_dimensions,
)
from channels.errors import (
    AuthExpired,
    BadPushMessage,
    PlatformRejected,
    RateLimited,
    TemporarilyUnavailable,
)
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

logger = logging.getLogger("channels.connectors.wechat")

SHANGHAI = timezone(timedelta(hours=8))
TOKEN_ERRORS = {40001, 42001}  # invalid / not latest, expired
AUTH_ERRORS = {40001, 40013, 40125, 40164, 41002, 41004, 42001, 61003, 61023, 48001}
ORDER_PAGE_SIZE = 100
PRODUCT_PAGE_SIZE = 30
AFTERSALE_WINDOW = timedelta(days=7)

STATUS_MAP: dict[int, OrderStatus] = {
    10: OrderStatus.UNPAID,
    20: OrderStatus.PAID,
    21: OrderStatus.PARTIALLY_SHIPPED,
    30: OrderStatus.SHIPPED,
    100: OrderStatus.COMPLETED,
    200: OrderStatus.CANCELLED,  # cancelled after every item was refunded
    250: OrderStatus.CANCELLED,  # unpaid cancel / payment timeout
}
# Paid but not shippable yet (statuses seen in community answers, reference §3.4 [GUESS]).
BLOCKED = {12: "礼物待收下", 13: "凑单买凑团中"}
AFTERSALE_TYPES = {
    "REFUND": AfterSaleType.REFUND_ONLY,
    "RETURN": AfterSaleType.RETURN_REFUND,
    "EXCHANGE": AfterSaleType.EXCHANGE,
}
AFTERSALE_STATUSES: dict[str, AfterSaleStatus] = {
    "MERCHANT_PROCESSING": AfterSaleStatus.WAITING_MERCHANT,
    "USER_WAIT_RETURN": AfterSaleStatus.WAITING_BUYER_RETURN,
    "USER_WAIT_CONFIRM": AfterSaleStatus.WAITING_BUYER_RETURN,  # the buyer's turn
    "MERCHANT_WAIT_RECEIPT": AfterSaleStatus.WAITING_MERCHANT_RECEIPT,
    "PLATFORM_REFUNDING": AfterSaleStatus.REFUNDING,
    "PLATFORM_REFUND_FAIL": AfterSaleStatus.REFUNDING,
    "MERCHANT_REFUND_RETRY_FAIL": AfterSaleStatus.REFUNDING,
    "MERCHANT_OVERDUE_REFUND": AfterSaleStatus.REFUNDING,
    "MERCHANT_REFUND_SUCCESS": AfterSaleStatus.SUCCEEDED,
    "MERCHANT_RETURN_SUCCESS": AfterSaleStatus.SUCCEEDED,
    "MERCHANT_EXCHANGE_SUCCESS": AfterSaleStatus.SUCCEEDED,
    "MERCHANT_REJECT_REFUND": AfterSaleStatus.REJECTED,
    "MERCHANT_REJECT_RETURN": AfterSaleStatus.REJECTED,
    "MERCHANT_REJECT_RESHIP": AfterSaleStatus.REJECTED,
    "USER_CANCELD": AfterSaleStatus.CLOSED,  # sic
    "RETURN_CLOSED": AfterSaleStatus.CLOSED,
    "MERCHANT_FAIL": AfterSaleStatus.CLOSED,
}
# Fields of the decoded ``address_info`` by neutral name (``decrypt``'s ``cipher`` argument).
DECODE_FIELDS = {"name": "user_name", "phone": "tel_number", "address": "detail_info"}
# Shipping and e-waybill carrier codes differ for Yunda (samples: "YD" vs "YUNDA").
EWAYBILL_ALIASES = {"YD": "YUNDA"}


def _str_id(value: Any) -> str:
    """WeChat ids as strings (pushes sometimes carry them as numbers)."""
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, float):
        return str(int(value))
    return str(value).strip()


def _seconds(value: Any) -> datetime | None:
    return from_epoch(value) if value not in (None, "") else None


def _shanghai_text(value: Any) -> datetime | None:
    """``yyyy-MM-dd HH:mm:ss`` in Asia/Shanghai (funds ``bookkeeping_time``) or epoch seconds."""
    if value in (None, "", 0):
        return None
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return from_epoch(int(value))
    return datetime.strptime(str(value), "%Y-%m-%d %H:%M:%S").replace(tzinfo=SHANGHAI).astimezone(UTC)


def line_id(product_id: Any, sku_id: Any) -> str:
    """WeChat order lines have no id of their own: a line is ``product_id:sku_id``."""
    return f"{_str_id(product_id)}:{_str_id(sku_id)}"


class TokenRejected(AuthExpired):
    """40001/42001 on a token call: the access token in the query (e.g. the component token) was
    refused."""


class ComponentTokenCache(Protocol):
    """Where connectors share the ``component_access_token`` (ecbao: encrypted on the PlatformApp)."""

    def load(self) -> tuple[str, datetime] | None:
        """The stored token and its expiry, if any."""
        ...

    def save(self, token: str, expires_at: datetime) -> None: ...

    def clear(self, token: str) -> None:
        """Forget ``token`` (WeChat refused it) unless another one was stored meanwhile."""
        ...


COMPONENT_TOKEN_MARGIN = timedelta(minutes=5)  # renew this long before expiry (§3.1: ~5 min overlap)


def split_line_id(platform_line_id: str) -> tuple[str, str]:
    """``product_id:sku_id`` (a repeated pair in one order carries a ``#n`` suffix)."""
    product_id, sep, sku_id = platform_line_id.split("#", 1)[0].partition(":")
    if not sep or not product_id or not sku_id:
        raise ValueError(f"not a WeChat line id (product_id:sku_id): {platform_line_id!r}")
    return product_id, sku_id


class WechatConnector(Connector):
    """微信小店 over ``api.weixin.qq.com`` (only ``base_url`` differs for the sandbox)."""

    platform: ClassVar[Platform] = Platform.WECHAT
    max_order_window: ClassVar[timedelta] = timedelta(days=7) - timedelta(minutes=1)
    refresh_at_share: ClassVar[float] = 0.8
    # [choice] The ids-only order list means one /order/get per order. WeChat publishes no
    # per-second figure for it (only the 45011 minute quota, whose penalty is "retry next
    # minute"); 80/s keeps a bulk pull below the sandbox's 100 per app and path.
    call_rates: ClassVar[dict[str, float]] = {"/channels/ec/order/get": 80.0}

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
        detail_workers: int = 16,
        verify_ticket: Callable[[], str] | None = None,
        component_token_cache: ComponentTokenCache | None = None,
        authorize_base: str | None = None,
    ) -> None:
        super().__init__(
            credentials=credentials,
            base_url=base_url,
            session=session,
            http=http,
            retry=retry,
            now=now,
            timeout=timeout,
        )
        self.timeout = timeout
        self.detail_workers = max(1, detail_workers)
        self.verify_ticket = verify_ticket
        self.component_token_cache = component_token_cache
        self.authorize_base = authorize_base or f"{self.base_url}/authorize"
        self._refresh_lock = threading.Lock()
        self._component: tuple[str, datetime] | None = None

    # --- wire ---------------------------------------------------------------------------------
    def _check(self, body: Any, *, token_call: bool = False) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise TemporarilyUnavailable("reply is not a JSON object")
        code = body.get("errcode", 0)
        try:
            code = int(code)
        except (TypeError, ValueError):
            raise TemporarilyUnavailable(f"odd errcode {code!r}") from None
        if code == 0:
            return body
        message = str(body.get("errmsg", ""))
        if code == -1:
            raise TemporarilyUnavailable(f"-1: {message}")
        if code == 45011:
            now = self.now()
            raise RateLimited(f"45011: {message}", retry_after=60 - now.second - now.microsecond / 1e6 + 0.5)
        if code == 45009:
            local = self.now().astimezone(SHANGHAI)
            midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
            raise RateLimited(f"45009: {message}", retry_after=(midnight - local).total_seconds())
        if code == 10020112:
            raise RateLimited(f"10020112: {message}", retry_after=10.0)
        if token_call and code in TOKEN_ERRORS:
            raise TokenRejected(f"{code}: {message}")
        if token_call and code in AUTH_ERRORS:
            raise AuthExpired(f"{code}: {message}")
        if code in TOKEN_ERRORS:
            raise TokenExpiredSignal(f"{code}: {message}")
        raise PlatformRejected(message, code=str(code))

    def _parse(self, response: httpx.Response) -> dict[str, Any]:
        return self._check(self.json_body(response))

    def api(
        self, path: str, body: dict[str, Any] | None = None, *, idempotent: bool = True
    ) -> dict[str, Any]:
        """One business call with the retry policy; returns the reply (errcode 0)."""
        payload = json.dumps(body or {}, ensure_ascii=False, separators=(",", ":")).encode()

        def send() -> httpx.Response:
            self.pace(path)
            return self.http.post(
                f"{self.base_url}{path}",
                params={"access_token": self.session.access_token},
                content=payload,
                headers={"Content-Type": "application/json"},
                timeout=self.timeout,
            )

        return self.call(send, self._parse, idempotent=idempotent)

    def _token_call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        def send() -> httpx.Response:
            return self.http.request(
                method, f"{self.base_url}{path}", params=params, json=body, timeout=self.timeout
            )

        return self.call(
            send,
            lambda r: self._check(self.json_body(r), token_call=True),
            idempotent=True,
            authenticated=False,
        )

    # --- authorisation ------------------------------------------------------------------------------
    def authorize_url(self, *, redirect_uri: str, state: str) -> str:
        """The consent page for our third-party platform (the real one is the service-market link)."""
        return f"{self.authorize_base}?{urlencode({'component_appid': self.credentials.app_key, 'redirect_uri': redirect_uri, 'state': state})}"

    def _component_token(self) -> str:
        """The ``component_access_token``: this connector's, else the shared cache's, while more
        than 5 minutes are left; else a new one (which needs the pushed ticket), then shared."""
        cached = self._component
        if not self._component_fresh(cached) and self.component_token_cache is not None:
            cached = self.component_token_cache.load()
        if cached and self._component_fresh(cached):
            self._component = cached
            return cached[0]
        if self.verify_ticket is None:
            raise AuthExpired(
                "third-party platform calls need the component_verify_ticket WeChat pushes; none is configured"
            )
        body = self._token_call(
            "POST",
            "/cgi-bin/component/api_component_token",
            body={
                "component_appid": self.credentials.app_key,
                "component_appsecret": self.credentials.app_secret,
                "component_verify_ticket": self.verify_ticket(),
            },
        )
        token = str(body["component_access_token"])
        self._component = (token, self.now() + timedelta(seconds=int(body.get("expires_in", 7200))))
        if self.component_token_cache is not None:
            self.component_token_cache.save(*self._component)
        return token

    def _component_fresh(self, cached: tuple[str, datetime] | None) -> bool:
        return bool(cached and cached[0] and cached[1] - self.now() > COMPONENT_TOKEN_MARGIN)

    def _component_call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """A ``/cgi-bin/component/…`` call with the component token; a token WeChat refuses
        (40001/42001 – e.g. a shared one that was replaced) is forgotten and the call made once more."""
        token = self._component_token()
        try:
            return self._token_call("POST", path, params={"access_token": token}, body=body)
        except TokenRejected:
            self._component = None
            if self.component_token_cache is not None:
                self.component_token_cache.clear(token)
            return self._token_call("POST", path, params={"access_token": self._component_token()}, body=body)

    def _shop_info(self, access_token: str) -> dict[str, Any]:
        def send() -> httpx.Response:
            return self.http.post(
                f"{self.base_url}/channels/ec/basics/info/get",
                params={"access_token": access_token},
                json={},
                timeout=self.timeout,
            )

        body = self.call(
            send,
            lambda r: self._check(self.json_body(r), token_call=True),
            idempotent=True,
            authenticated=False,
        )
        return body.get("info") or {}

    def exchange_code(self, *, code: str, redirect_uri: str = "") -> TokenGrant:
        """``auth_code`` from the consent redirect → authorizer tokens (+ the shop's ``gh_`` id and name)."""
        body = self._component_call(
            "/cgi-bin/component/api_query_auth",
            {"component_appid": self.credentials.app_key, "authorization_code": code},
        )
        info = body.get("authorization_info") or {}
        access = str(info["authorizer_access_token"])
        shop = self._shop_info(access)
        return TokenGrant(
            access_token=access,
            access_expires_at=self.now() + timedelta(seconds=int(info.get("expires_in", 7200))),
            refresh_token=f"{info['authorizer_appid']}:{info['authorizer_refresh_token']}",
            refresh_expires_at=None,
            platform_shop_id=str(shop.get("username", "")),
            shop_name=str(shop.get("nickname", "")),
        )

    def self_use_token(self, *, platform_shop_id: str = "") -> TokenGrant:
        """A self-use shop (its own appid/secret): a stable token, plus the shop's ``gh_`` id and
        name when ``platform_shop_id`` is not given."""
        self.session.refresh_token = ""
        self.session.platform_shop_id = platform_shop_id
        return self.refresh_tokens()

    def refresh_tokens(self) -> TokenGrant:
        """A fresh access token: ``stable_token`` for self-use shops, ``api_authorizer_token`` for
        authorised ones. Raises AuthExpired when WeChat refuses the credentials or authorisation."""
        refresh = self.session.refresh_token
        if refresh:
            appid, sep, authorizer_refresh = refresh.partition(":")
            if not sep:
                raise AuthExpired("stored WeChat refresh token has no authorizer appid")
            body = self._component_call(
                "/cgi-bin/component/api_authorizer_token",
                {
                    "component_appid": self.credentials.app_key,
                    "authorizer_appid": appid,
                    "authorizer_refresh_token": authorizer_refresh,
                },
            )
            access = str(body["authorizer_access_token"])
            new_refresh = f"{appid}:{body.get('authorizer_refresh_token') or authorizer_refresh}"
        else:
            body = self._token_call(
                "POST",
                "/cgi-bin/stable_token",
                body={
                    "grant_type": "client_credential",
                    "appid": self.credentials.app_key,
                    "secret": self.credentials.app_secret,
                    "force_refresh": False,
                },
            )
            access = str(body["access_token"])
            new_refresh = ""
        expires = self.now() + timedelta(seconds=int(body.get("expires_in", 7200)))
        shop_id, shop_name = self.session.platform_shop_id, ""
        if not shop_id:
            info = self._shop_info(access)
            shop_id, shop_name = str(info.get("username", "")), str(info.get("nickname", ""))
        return TokenGrant(
            access_token=access,
            access_expires_at=expires,
            refresh_token=new_refresh,
            refresh_expires_at=None,
            platform_shop_id=shop_id,
            shop_name=shop_name,
        )

    def apply_grant(self, grant: TokenGrant) -> None:
        """Store new tokens; a session that did not know its shop yet learns the ``gh_`` id."""
        if grant.platform_shop_id and not self.session.platform_shop_id:
            self.session.platform_shop_id = grant.platform_shop_id
        super().apply_grant(grant)

    def _refresh_and_store(self) -> None:
        # Detail fetches run in threads: one refresh at a time.
        with self._refresh_lock:
            super()._refresh_and_store()

    # --- orders ------------------------------------------------------------------------------------
    def _order_ids(self, start: int, end: int) -> Iterator[list[str]]:
        next_key = ""
        while True:
            body: dict[str, Any] = {
                "update_time_range": {"start_time": start, "end_time": end},
                "page_size": ORDER_PAGE_SIZE,
            }
            if next_key:
                body["next_key"] = next_key
            page = self.api("/channels/ec/order/list/get", body)
            ids = [_str_id(x) for x in page.get("order_id_list") or []]
            if ids:
                yield ids
            next_key = str(page.get("next_key") or "")
            if not page.get("has_more") or not next_key:
                return

    def _fetch_all(
        self, fetch: Callable[[str], Any], ids: list[str], pool: ThreadPoolExecutor | None
    ) -> Iterator[Any]:
        if pool is None or len(ids) == 1:
            yield from (fetch(i) for i in ids)
        else:
            yield from pool.map(fetch, ids)

    def iter_orders(self, *, updated_from: datetime, updated_to: datetime) -> Iterator[ChannelOrder]:
        """Every order updated in [updated_from, updated_to]. The ids-only list is paged to the end
        first (``next_key``; quick, so orders have little time to move between pages), then the
        details are fetched with at most ``detail_workers`` requests in flight."""
        if updated_to - updated_from > self.max_order_window:
            raise ValueError(f"window longer than {self.max_order_window}")
        start, end = epoch_seconds(updated_from), epoch_seconds(updated_to) + 1  # WeChat's end is exclusive
        ids = list(dict.fromkeys(i for page in self._order_ids(start, end) for i in page))
        pool = (
            ThreadPoolExecutor(self.detail_workers, thread_name_prefix="wechat-order")
            if self.detail_workers > 1
            else None
        )
        try:
            for offset in range(0, len(ids), ORDER_PAGE_SIZE):  # bounded look-ahead: one page of futures
                yield from self._fetch_all(self.get_order, ids[offset : offset + ORDER_PAGE_SIZE], pool)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def get_order(self, platform_order_id: str) -> ChannelOrder:
        """One order from ``/channels/ec/order/get``."""
        reply = self.api("/channels/ec/order/get", {"order_id": _str_id(platform_order_id)})
        return self.to_channel_order(reply["order"])

    def to_channel_order(self, order: dict[str, Any]) -> ChannelOrder:
        """Map a WeChat ``order`` object (§3.4) to the neutral order; ``raw`` keeps it verbatim."""
        detail = order.get("order_detail") or {}
        status = int(order.get("status") or 0)
        lines = []
        seen: dict[str, int] = {}
        for p in detail.get("product_infos") or []:
            on, done = int(p.get("on_aftersale_sku_cnt") or 0), int(p.get("finish_aftersale_sku_cnt") or 0)
            pair = line_id(p.get("product_id"), p.get("sku_id"))
            seen[pair] = seen.get(pair, 0) + 1  # the same SKU twice (e.g. bought + gift): keep ids unique
            lines.append(
                ChannelOrderLine(
                    platform_line_id=pair if seen[pair] == 1 else f"{pair}#{seen[pair]}",
                    platform_product_id=_str_id(p.get("product_id")),
                    platform_sku_id=_str_id(p.get("sku_id")),
                    merchant_code=str(p.get("sku_code") or ""),
                    title=str(p.get("title") or ""),
                    spec=";".join(
                        f"{a.get('attr_key', '')}:{a.get('attr_value', '')}" for a in p.get("sku_attrs") or []
                    ),
                    quantity=int(p.get("sku_cnt") or 0),
                    unit_price_fen=int(p.get("sale_price") or 0),
                    paid_fen=int(p.get("real_price") or 0),
                    is_gift=bool(p.get("is_free_gift")),
                    refund_state="refunding" if on else ("refunded" if done else ""),
                )
            )
        delivery = detail.get("delivery_info") or {}
        address = delivery.get("address_info") or {}
        index = str(address.get("hash_code") or "")
        receiver = Receiver(
            name=CipherField(mask=str(address.get("user_name") or ""), index=index),
            phone=CipherField(mask=str(address.get("tel_number") or ""), index=index),
            address=CipherField(mask=str(address.get("detail_info") or ""), index=index),
            province=str(address.get("province_name") or ""),
            city=str(address.get("city_name") or ""),
            district=str(address.get("county_name") or ""),
        )
        packages = tuple(
            Package(
                tracking_no=str(d.get("waybill_id") or ""),
                carrier_code=str(d.get("delivery_id") or ""),
                lines=tuple(
                    (line_id(x.get("product_id"), x.get("sku_id")), int(x.get("product_cnt") or 0))
                    for x in d.get("product_infos") or []
                ),
            )
            for d in delivery.get("delivery_product_info") or []
        )
        price = detail.get("price_info") or {}
        pay = detail.get("pay_info") or {}
        ext = detail.get("ext_info") or {}
        deadlines = [
            int(p.get("delivery_deadline") or 0)
            for p in detail.get("product_infos") or []
            if p.get("delivery_deadline")
        ]
        ship_times = [
            int(d.get("delivery_time") or 0)
            for d in delivery.get("delivery_product_info") or []
            if d.get("delivery_time")
        ]
        return ChannelOrder(
            platform=Platform.WECHAT,
            platform_shop_id=self.session.platform_shop_id,
            platform_order_id=_str_id(order.get("order_id")),
            platform_status=str(status),
            status=STATUS_MAP.get(status, OrderStatus.PAID if status in (12, 13) else OrderStatus.UNPAID),
            created_at=_seconds(order.get("create_time")) or self.now(),
            updated_at=_seconds(order.get("update_time")) or _seconds(order.get("create_time")) or self.now(),
            lines=tuple(lines),
            receiver=receiver,
            buyer_id=str(order.get("openid") or ""),
            paid_at=_seconds(pay.get("pay_time")),
            ship_by=_seconds(min(deadlines)) if deadlines else None,
            shipped_at=_seconds(min(ship_times)) if ship_times else None,
            finished_at=_seconds(ext.get("confirm_receipt_time")),
            goods_fen=int(price.get("product_price") or 0),
            freight_fen=int(price.get("freight") or 0),
            discount_fen=int(price.get("discounted_price") or 0),
            paid_fen=int(price.get("order_price") or 0),
            buyer_remark=str(ext.get("customer_notes") or ""),
            seller_remark=str(ext.get("merchant_notes") or ""),
            ship_blocked_reason=BLOCKED.get(
                status, "收货地址审核中" if delivery.get("address_under_review") else ""
            ),
            packages=packages,
            raw=order,
        )

    # --- shipping ----------------------------------------------------------------------------------
    @staticmethod
    def _remaining(order: ChannelOrder) -> dict[str, int]:
        """Quantity still to ship per line: ordered − refunded − shipped."""
        raw_lines = (order.raw.get("order_detail") or {}).get("product_infos") or []
        left: dict[str, int] = {}
        for p in raw_lines:
            key = line_id(p.get("product_id"), p.get("sku_id"))
            left[key] = (
                left.get(key, 0) + int(p.get("sku_cnt") or 0) - int(p.get("finish_aftersale_sku_cnt") or 0)
            )
        for package in order.packages:
            for key, qty in package.lines:
                left[key] = left.get(key, 0) - qty
        return {k: v for k, v in left.items() if v > 0}

    @staticmethod
    def _product_infos(lines: dict[str, int]) -> list[dict[str, Any]]:
        infos = []
        for key, qty in lines.items():
            product_id, sku_id = split_line_id(key)
            infos.append({"product_id": product_id, "sku_id": sku_id, "product_cnt": qty})
        return infos

    def ship(self, *, platform_order_id: str, parcels: list[ShipmentParcel], request_id: str) -> None:
        """Ship in one ``/order/delivery/send`` call: one ``delivery_list`` entry per parcel; a single
        parcel without lines ships everything still unshipped. WeChat has no idempotency key, so
        this write is never re-sent after a timeout (``request_id`` is only logged)."""
        if not parcels:
            raise ValueError("nothing to ship")
        if len(parcels) == 1 and not parcels[0].lines:
            remaining = self._remaining(self.get_order(platform_order_id))
            if not remaining:
                raise PlatformRejected("nothing left to ship", code="local")
            groups = [(parcels[0], remaining)]
        else:
            groups = []
            for parcel in parcels:
                if not parcel.lines:
                    raise ValueError("with several parcels every parcel must list its lines")
                grouped: dict[str, int] = {}
                for key, qty in parcel.lines:
                    grouped[key] = grouped.get(key, 0) + qty
                groups.append((parcel, grouped))
        deliveries = [
            {
                "delivery_id": parcel.carrier_code,
                "waybill_id": parcel.tracking_no,
                "deliver_type": 1,
                "product_infos": self._product_infos(lines),
            }
            for parcel, lines in groups
        ]
        logger.info(
            "wechat ship order %s in %d parcel(s), request %s", platform_order_id, len(deliveries), request_id
        )
        self.api(
            "/channels/ec/order/delivery/send",
            {"order_id": _str_id(platform_order_id), "delivery_list": deliveries},
            idempotent=False,
        )

    def list_carriers(self) -> list[Carrier]:
        """``delivery_id``s accepted by ``/order/delivery/send``."""
        reply = self.api("/channels/ec/order/deliverycompanylist/get")
        return [
            Carrier(code=str(c["delivery_id"]), name=str(c.get("delivery_name", "")))
            for c in reply.get("company_list") or []
        ]

    # --- stock and listings --------------------------------------------------------------------------
    def _product_ids(self) -> Iterator[list[str]]:
        next_key, seen = "", 0
        while True:
            body: dict[str, Any] = {"page_size": PRODUCT_PAGE_SIZE}
            if next_key:
                body["next_key"] = next_key
            page = self.api("/channels/ec/product/list/get", body)
            ids = [_str_id(x) for x in page.get("product_ids") or []]
            if not ids:
                return
            yield ids
            seen += len(ids)
            next_key = str(page.get("next_key") or "")
            if not next_key or ("total_num" in page and seen >= int(page["total_num"])):
                return

    def _product(self, product_id: str) -> dict[str, Any]:
        return (
            self.api("/channels/ec/product/get", {"product_id": product_id, "data_type": 1}).get("product")
            or {}
        )

    def iter_listings(self) -> Iterator[Listing]:
        """Every SKU of every product (ids via ``/product/list/get``, then ``/product/get``)."""
        pool = (
            ThreadPoolExecutor(self.detail_workers, thread_name_prefix="wechat-product")
            if self.detail_workers > 1
            else None
        )
        try:
            for ids in self._product_ids():
                for product in self._fetch_all(self._product, ids, pool):
                    for sku in product.get("skus") or []:
                        yield Listing(
                            platform_product_id=_str_id(product.get("product_id")),
                            platform_sku_id=_str_id(sku.get("sku_id")),
                            merchant_code=str(sku.get("sku_code") or ""),
                            title=str(product.get("title") or ""),
                            spec=";".join(
                                f"{a.get('attr_key', '')}:{a.get('attr_value', '')}"
                                for a in sku.get("sku_attrs") or []
                            ),
                            stock=int(sku.get("stock_num") or 0),
                            price_fen=int(sku.get("sale_price") or 0),
                        )
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def get_stock(self, listing: Listing) -> int:
        """The platform's current normal stock of a SKU."""
        reply = self.api(
            "/channels/ec/product/stock/get",
            {"product_id": listing.platform_product_id, "sku_id": listing.platform_sku_id},
        )
        return int((reply.get("data") or {}).get("normal_stock_num") or 0)

    def set_stock(
        self, *, listing: Listing, quantity: int, current: int | None, idempotency_key: str
    ) -> None:
        """Make the SKU's stock ``quantity``. With ``current`` known, send the difference
        (diff_type 1/2, which WeChat recommends because diff_type 3 misbehaves under concurrency);
        such a delta is not re-sent after a timeout. Without ``current``, set it absolutely
        (diff_type 3, safe to retry). WeChat has no idempotency key."""
        if quantity < 0:
            raise ValueError("stock cannot be negative")
        ids = {"product_id": listing.platform_product_id, "sku_id": listing.platform_sku_id}
        if current is None:
            self.api(
                "/channels/ec/product/stock/update", {**ids, "diff_type": 3, "num": quantity}, idempotent=True
            )
            return
        delta = quantity - current
        if delta == 0:
            return
        body = {**ids, "diff_type": 1 if delta > 0 else 2, "num": abs(delta)}
        self.api("/channels/ec/product/stock/update", body, idempotent=False)

    # --- publishing (商品铺货) -----------------------------------------------------------------------
    def publish_product(
        self, *, title: str, skus: list[PublishSku], images: list[str], category: str, request_id: str
    ) -> PublishedProduct:
        """``/channels/ec/product/add``: ``title``, ``head_imgs``, ``desc_info``, ``cats_v2``,
        ``skus[]{sku_code (merchant code), sale_price (fen), stock_num, sku_attrs[]}``,
        ``listing`` 1 (list right away). The API has no idempotency key (``request_id``
        unused): never re-sent after a lost answer. The answer carries only ``product_id``;
        the SKU ids are read back with ``/channels/ec/product/get`` and matched by ``sku_code``."""
        if not skus or not images:
            raise ValueError("a product needs SKUs and images")
        names, rows = publish_dimensions(skus, max_dimensions=3)
        body: dict[str, Any] = {
            "title": title,
            "head_imgs": list(images),
            "desc_info": {"imgs": list(images), "desc": title},
            "skus": [
                {
                    "sku_code": sku.merchant_code,
                    "sale_price": sku.price_fen,
                    "stock_num": sku.stock,
                    "thumb_img": images[0],
                    "sku_attrs": [{"attr_key": n, "attr_value": v} for n, v in zip(names, row, strict=True)],
                }
                for sku, row in zip(skus, rows, strict=True)
            ],
            "listing": 1,
        }
        if category:
            body["cats_v2"] = [{"cat_id": category}]
        reply = self.api("/channels/ec/product/add", body, idempotent=False)
        product_id = _str_id((reply.get("data") or {}).get("product_id"))
        if not product_id:
            raise PlatformRejected("product/add returned no product_id", code="product_id")
        listings = []
        for sku in self._product(product_id).get("skus") or []:
            listings.append(
                Listing(
                    platform_product_id=product_id,
                    platform_sku_id=_str_id(sku.get("sku_id")),
                    merchant_code=str(sku.get("sku_code") or ""),
                    title=title,
                    spec=";".join(
                        f"{a.get('attr_key', '')}:{a.get('attr_value', '')}"
                        for a in sku.get("sku_attrs") or []
                    ),
                    stock=int(sku.get("stock_num") or 0),
                    price_fen=int(sku.get("sale_price") or 0),
                )
            )
        return PublishedProduct(platform_product_id=product_id, skus=tuple(listings))

    # --- after-sales ---------------------------------------------------------------------------------
    def iter_after_sales(self, *, updated_from: datetime, updated_to: datetime) -> Iterator[AfterSale]:
        """After-sales updated in the window: ids (≤ 7-day slices, ``next_key``), then details."""
        lower = updated_from
        while lower <= updated_to:
            upper = min(lower + AFTERSALE_WINDOW - timedelta(seconds=1), updated_to)
            next_key = ""
            while True:
                body: dict[str, Any] = {
                    "begin_update_time": epoch_seconds(lower),
                    "end_update_time": epoch_seconds(upper) + 1,
                }
                if next_key:
                    body["next_key"] = next_key
                page = self.api("/channels/ec/aftersale/getaftersalelist", body)
                for aftersale_id in page.get("after_sale_order_id_list") or []:
                    yield self.get_after_sale(_str_id(aftersale_id))
                next_key = str(page.get("next_key") or "")
                if not page.get("has_more") or not next_key:
                    break
            lower = upper + timedelta(seconds=1)

    def get_after_sale(self, platform_after_sale_id: str) -> AfterSale:
        """One after-sale from ``/aftersale/getaftersaleorder``."""
        a = self.api(
            "/channels/ec/aftersale/getaftersaleorder", {"after_sale_order_id": platform_after_sale_id}
        )["after_sale_order"]
        product = a.get("product_info") or {}
        status = str(a.get("status") or "")
        return AfterSale(
            platform=Platform.WECHAT,
            platform_shop_id=self.session.platform_shop_id,
            platform_after_sale_id=_str_id(a.get("after_sale_order_id")),
            platform_order_id=_str_id(a.get("order_id")),
            platform_line_id=line_id(product.get("product_id"), product.get("sku_id")),
            type=AFTERSALE_TYPES.get(str(a.get("type") or ""), AfterSaleType.OTHER),
            status=AFTERSALE_STATUSES.get(status, AfterSaleStatus.WAITING_MERCHANT),
            platform_status=status,
            refund_fen=int((a.get("refund_info") or {}).get("amount") or 0),
            quantity=int(product.get("count") or 0),
            reason=str(a.get("reason_text") or a.get("reason") or ""),
            created_at=_seconds(a.get("create_time")) or self.now(),
            updated_at=_seconds(a.get("update_time")) or _seconds(a.get("create_time")) or self.now(),
            return_tracking_no=str((a.get("return_info") or {}).get("waybill_id") or ""),
        )

    # --- money ------------------------------------------------------------------------------------
    def iter_settlements(self, *, start: datetime, end: datetime) -> Iterator[SettlementLine]:
        """Funds flows booked in [start, end]: flow ids (``next_key``), then each flow's detail."""
        next_key = ""
        while True:
            body: dict[str, Any] = {
                "page": 1,
                "page_size": 100,
                "start_time": epoch_seconds(start),
                "end_time": epoch_seconds(end),
            }
            if next_key:
                body["next_key"] = next_key
            page = self.api("/channels/ec/funds/getfundsflowlist", body)
            for flow_id in page.get("flow_ids") or []:
                yield self._settlement(_str_id(flow_id))
            next_key = str(page.get("next_key") or "")
            if not page.get("has_more") or not next_key:
                return

    def _settlement(self, flow_id: str) -> SettlementLine:
        flow = self.api("/channels/ec/funds/getfundsflowdetail", {"flow_id": flow_id})["funds_flow"]
        amount = int(flow.get("amount") or 0)
        signed = amount if int(flow.get("flow_type") or 1) == 1 else -amount
        related = flow.get("related_info_list") or []
        order_id = next((_str_id(r.get("order_id")) for r in related if r.get("order_id")), "")
        kind = str(flow.get("funds_type_desc") or flow.get("funds_type") or "")
        return SettlementLine(
            platform=Platform.WECHAT,
            platform_shop_id=self.session.platform_shop_id,
            platform_line_id=_str_id(flow.get("flow_id")) or flow_id,
            platform_order_id=order_id,
            settled_at=_shanghai_text(flow.get("bookkeeping_time")) or self.now(),
            amount_fen=signed,
            service_fee_fen=-signed if "服务费" in kind else 0,
            kind=kind,
            raw=flow,
        )

    # --- e-waybills -----------------------------------------------------------------------------------
    def create_waybills(
        self, *, carrier_code: str, platform_order_ids: list[str], sender: dict
    ) -> list[Waybill]:
        """For each order: precreate → create (idempotent by ``ewaybill_order_id``) → print data.
        The receiver is left for WeChat to fill from the shop order (nothing decrypted here)."""
        opened = {
            str(d["delivery_id"])
            for d in self.api("/channels/ec/logistics/ewaybill/biz/delivery/get").get("list") or []
        }
        delivery_id = (
            carrier_code if carrier_code in opened else EWAYBILL_ALIASES.get(carrier_code, carrier_code)
        )
        accounts = (
            self.api("/channels/ec/logistics/ewaybill/biz/account/get", {"delivery_id": delivery_id}).get(
                "account_list"
            )
            or []
        )
        account = next((a for a in accounts if int(a.get("available") or 0) > 0), None)
        if account is None:
            raise PlatformRejected(f"no e-waybill account with balance for {carrier_code}", code="local")
        templates = (
            self.api("/channels/ec/logistics/ewaybill/biz/template/get", {"delivery_id": delivery_id}).get(
                "total_template"
            )
            or []
        )
        template_id = next(
            (str(t.get("default_template_id")) for t in templates if t.get("delivery_id") == delivery_id),
            "single",
        )
        site = {
            "delivery_id": delivery_id,
            "site_code": str((account.get("site_info") or {}).get("site_code") or ""),
            "ewaybill_acct_id": str(account["acct_id"]),
        }
        sender_info = {
            "name": str(sender.get("name", "")),
            "mobile": str(sender.get("mobile", "")),
            "province": str(sender.get("province", "")),
            "city": str(sender.get("city", "")),
            "county": str(sender.get("county") or sender.get("district", "")),
            "street": str(sender.get("street", "")),
            "address": str(sender.get("address") or sender.get("detail", "")),
        }
        waybills = []
        for order_id in platform_order_ids:
            order = self.get_order(order_id)
            goods = [
                {
                    "good_name": ln.title,
                    "good_count": ln.quantity,
                    "product_id": ln.platform_product_id,
                    "sku_id": ln.platform_sku_id,
                }
                for ln in order.lines
            ]
            request = {
                **site,
                "sender": sender_info,
                "ec_order_list": [{"ec_order_id": _str_id(order_id), "goods_list": goods}],
            }
            ewaybill_order_id = str(
                self.api("/channels/ec/logistics/ewaybill/biz/order/precreate", request)["ewaybill_order_id"]
            )
            created = self.api(
                "/channels/ec/logistics/ewaybill/biz/order/create",
                {**request, "ewaybill_order_id": ewaybill_order_id, "template_id": template_id},
            )
            printed = self.api(
                "/channels/ec/logistics/ewaybill/biz/print/get",
                {"ewaybill_order_id": ewaybill_order_id, "template_id": template_id},
            )
            waybills.append(
                Waybill(
                    platform_order_id=_str_id(order_id),
                    tracking_no=str(created["waybill_id"]),
                    carrier_code=carrier_code,
                    print_data=str(printed.get("print_info") or ""),
                )
            )
        return waybills

    # --- buyer data ------------------------------------------------------------------------------------
    def decrypt(self, *, platform_order_id: str, cipher: str, account_id: str) -> str:
        """Plain text of one receiver field. WeChat has no per-field ciphertext: the whole
        ``address_info`` comes from ``/order/sensitiveinfo/decode`` by order id, so ``cipher`` names
        the field ("name", "phone", "address" or a WeChat field such as ``tel_number``); only that
        field is returned. WeChat does not tag decodes with a user (``account_id`` is unused);
        each call counts against the shop's daily quota, so it is never retried."""
        field_name = DECODE_FIELDS.get(cipher, cipher)
        if field_name not in (
            *DECODE_FIELDS.values(),
            "postal_code",
            "house_number",
            "virtual_order_tel_number",
        ):
            raise ValueError(
                "WeChat decodes by order id: pass the field to read ('name', 'phone' or 'address')"
            )
        reply = self.api(
            "/channels/ec/order/sensitiveinfo/decode",
            {"order_id": _str_id(platform_order_id)},
            idempotent=False,
        )
        return str((reply.get("address_info") or {}).get(field_name) or "")


# --- pushes ---------------------------------------------------------------------------------------------


def _sha1(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()  # noqa: S324 - WeChat's signature algorithm


def decrypt_push(encoding_aes_key: str, encrypted: str) -> tuple[bytes, str]:
    """AES-256-CBC (key = b64decode(EncodingAESKey + "="), IV = key[:16], PKCS#7 over 32 bytes) →
    (message bytes – JSON for shop messages, XML for authorisation events –, trailing appid)."""
    try:
        key = base64.b64decode(encoding_aes_key + "=")
        raw = base64.b64decode(encrypted, validate=True)
    except ValueError as exc:
        raise BadPushMessage("Encrypt is not base64") from exc
    if len(key) != 32 or not raw or len(raw) % 16:
        raise BadPushMessage("bad key or ciphertext length")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(raw) + decryptor.finalize()
    pad = plain[-1]
    if not 1 <= pad <= 32 or len(plain) < 20 + pad:
        raise BadPushMessage("bad padding")
    plain = plain[:-pad]
    (length,) = struct.unpack(">I", plain[16:20])
    if 20 + length > len(plain):
        raise BadPushMessage("bad message length")
    try:
        return plain[20 : 20 + length], plain[20 + length :].decode()
    except UnicodeDecodeError as exc:
        raise BadPushMessage("bad appid") from exc


def open_secure_message(*, query: dict[str, str], encrypted: str, credentials: AppCredentials) -> bytes:
    """Secure mode, shared by message pushes and third-party platform authorisation events: check
    ``msg_signature`` = sha1(sorted [Token, timestamp, nonce, Encrypt]), decrypt, and check that the
    trailing appid is ``credentials.app_key``. Returns the plaintext message; raises BadPushMessage."""
    expected = _sha1(credentials.token, query.get("timestamp", ""), query.get("nonce", ""), encrypted)
    if not credentials.token or query.get("msg_signature") != expected:
        raise BadPushMessage("msg_signature mismatch")
    message, appid = decrypt_push(credentials.aes_key, encrypted)
    if appid != credentials.app_key:
        raise BadPushMessage(f"message is for appid {appid!r}")
    return message


MAX_XML_BYTES = 64 * 1024  # [choice] authorisation events are a few hundred bytes


def _xml_fields(data: bytes, what: str) -> dict[str, str]:
    """The child elements of a flat ``<xml>…</xml>`` message as text. Documents with a DTD are
    refused before parsing (WeChat never sends one; no entity expansion)."""
    if len(data) > MAX_XML_BYTES or b"<!" in data.replace(b"<![CDATA[", b""):
        raise BadPushMessage(f"{what} is not a plain WeChat XML message")
    try:
        root = ElementTree.fromstring(data)  # noqa: S314 - size-capped, DTD-free (checked above)
    except ElementTree.ParseError as exc:
        raise BadPushMessage(f"{what} is not XML") from exc
    if root.tag != "xml":
        raise BadPushMessage(f"{what} is not a WeChat <xml> message")
    return {child.tag: (child.text or "").strip() for child in root}


@dataclass(frozen=True)
class ComponentEvent:
    """One decrypted push to a third-party platform's authorisation-event URL (授权事件接收URL).

    ``info_type``: ``component_verify_ticket`` (every 10 minutes; ``ticket`` set), ``authorized``,
    ``updateauthorized`` or ``unauthorized`` (``authorizer_appid`` = the shop's appid)."""

    component_appid: str
    info_type: str
    created_at: datetime
    ticket: str = ""
    authorizer_appid: str = ""
    fields: dict[str, str] = field(default_factory=dict)


def decode_component_event(
    *, query: dict[str, str], body: bytes, credentials: AppCredentials
) -> ComponentEvent:
    """Verify and decrypt an authorisation event: body ``<xml><AppId>…</AppId><Encrypt>…</Encrypt></xml>``,
    query ``timestamp, nonce, encrypt_type=aes, msg_signature``; the plaintext is XML with
    ``AppId, CreateTime, InfoType`` and ``ComponentVerifyTicket`` / ``AuthorizerAppid``."""
    envelope = _xml_fields(body, "body")
    if not envelope.get("Encrypt"):
        raise BadPushMessage("not a secure-mode envelope (Encrypt missing)")
    plain = _xml_fields(
        open_secure_message(query=query, encrypted=envelope["Encrypt"], credentials=credentials),
        "decrypted message",
    )
    if plain.get("AppId") != credentials.app_key:
        raise BadPushMessage(f"event is for component {plain.get('AppId')!r}")
    info_type = plain.get("InfoType", "")
    created = _seconds(plain.get("CreateTime")) if plain.get("CreateTime", "").isdigit() else None
    if not info_type or created is None:
        raise BadPushMessage("event without InfoType or CreateTime")
    event = ComponentEvent(
        component_appid=credentials.app_key,
        info_type=info_type,
        created_at=created,
        ticket=plain.get("ComponentVerifyTicket", ""),
        authorizer_appid=plain.get("AuthorizerAppid", ""),
        fields=plain,
    )
    if info_type == "component_verify_ticket" and not event.ticket:
        raise BadPushMessage("component_verify_ticket event without a ticket")
    return event


class WechatPushCodec(PushCodec):
    """WeChat secure-mode pushes (§3.8): verify ``msg_signature``, decrypt, map to PushMessage."""

    platform: ClassVar[Platform] = Platform.WECHAT

    def app_key_of(self, *, headers: dict[str, str], query: dict[str, str], body: bytes) -> str:
        """WeChat names the app only inside the ciphertext: use the deployment's (or the URL's) app."""
        return ""

    def verify_url(self, *, query: dict[str, str], credentials: AppCredentials) -> PushReply | None:
        """The URL-verification GET: echo ``echostr`` when ``signature`` matches our Token."""
        timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
        if (
            not credentials.token
            or not query.get("echostr")
            or query.get("signature") != _sha1(credentials.token, timestamp, nonce)
        ):
            return None
        return PushReply(200, "text/plain", query["echostr"])

    def decode(
        self, *, headers: dict[str, str], query: dict[str, str], body: bytes, credentials: AppCredentials
    ) -> list[PushMessage]:
        """Check ``msg_signature``, decrypt ``Encrypt``, check the trailing appid, then map the event."""
        try:
            envelope = json.loads(body)
        except ValueError as exc:
            raise BadPushMessage("body is not JSON") from exc
        if not isinstance(envelope, dict) or not envelope.get("Encrypt"):
            raise BadPushMessage("not a secure-mode envelope (Encrypt missing)")
        message_bytes = open_secure_message(
            query=query, encrypted=str(envelope["Encrypt"]), credentials=credentials
        )
        try:
            message = json.loads(message_bytes)
        except ValueError as exc:
            raise BadPushMessage("decrypted message is not JSON") from exc
        if not isinstance(message, dict):
            raise BadPushMessage("decrypted message is not an object")
        return [self.to_message(message)]

    @staticmethod
    def to_message(message: dict[str, Any]) -> PushMessage:
        """Neutral view of one decrypted event (ids parsed leniently: number or string)."""
        event = str(message.get("Event") or message.get("MsgType") or "")
        payload = dict(message)
        if event == "channels_ec_aftersale_update":
            body = message.get("finder_shop_aftersale_status_update") or {}
            kind, object_id = "after_sale", _str_id(body.get("after_sale_order_id"))
            payload.setdefault("order_id", _str_id(body.get("order_id")))
        elif event.startswith("channels_ec_order_"):
            body = message.get("order_info") or {}
            kind, object_id = "order", _str_id(body.get("order_id") or message.get("order_id"))
            payload.setdefault("order_id", object_id)
        else:
            body, kind, object_id = {}, "other", ""
        own_id = message.get("MsgId") or message.get("msg_id")
        if own_id:
            message_id = str(own_id)
        else:
            # A retried push is the same message (same digest). The event body (status,
            # finish_delivery …) is included so that two changes within one second stay distinct.
            details = (
                json.dumps(body, sort_keys=True, ensure_ascii=False, default=str) if kind != "other" else ""
            )
            digest = hashlib.sha256(
                f"{event}|{object_id}|{message.get('CreateTime', '')}|{details}".encode()
            ).hexdigest()
            message_id = f"wx-{digest[:40]}"
        return PushMessage(
            message_id=message_id,
            topic=event,
            kind=kind,
            platform_shop_id=str(message.get("ToUserName") or ""),
            object_id=object_id,
            payload=payload,
        )

    def ack(self) -> PushReply:
        """Plain text ``success`` (within 5 s)."""
        return PushReply(200, "text/plain", "success")

    def reject(self) -> PushReply:
        """Anything but ``success`` makes WeChat retry later."""
        return PushReply(400, "text/plain", "invalid signature")


CONNECTOR = WechatConnector
PUSH_CODEC = WechatPushCodec

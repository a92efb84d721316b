"""WeChat Channels shop (微信小店 / 视频号小店) imitation: tokens, endpoints, pushes.

Follows shared/reference/platform-apis.md §3. Every business API is
``POST /channels/ec/...?access_token=TOKEN`` with a JSON body; there is no request
signature. Success is ``{"errcode":0,"errmsg":"ok", …fields at top level}``; errors
are ``{"errcode":N,"errmsg":"… rid: …"}`` with HTTP 200.

How a shop is connected (both modelled, see ``sandbox/README.md``):

* **Self-use (自研)**: the shop's own appid/secret. ``create_self_use_app(world, shop_id)``
  registers one per shop (``app_type="self"``); ``GET /cgi-bin/token`` and
  ``POST /cgi-bin/stable_token`` issue its 7200 s access token.
* **Third-party platform (第三方平台)**: the seeded app plays the component. The merchant
  consents on ``/authorize`` (→ ``redirect_uri?auth_code=…&expires_in=600&state=…``);
  the ERP takes a ``component_access_token`` (``/cgi-bin/component/api_component_token``,
  needs the ``component_verify_ticket`` – pushed every 10 min to the app's ``auth_event_url``
  (授权事件接收URL) as encrypted XML, see ``WechatPushCodec.schedule``; the sandbox-only
  ``GET /sandbox/component_verify_ticket`` also hands out the current one) and exchanges the
  code at ``/cgi-bin/component/api_query_auth`` for an ``authorizer_access_token`` +
  ``authorizer_refresh_token`` (refresh: ``/cgi-bin/component/api_authorizer_token``).
  A merchant revoking the authorisation (``World.revoke_authorization``) pushes ``unauthorized``.

A shop is identified towards the ERP by its original id (``gh_…``, ``shop_username``),
which is what ``/channels/ec/basics/info/get`` reports and pushes carry in ``ToUserName``.

Choices where the reference is silent are listed in the README and marked ``[choice]``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import itertools
import json
import struct
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from . import dropship, pushes, traces, untidy
from .gateway import ApiError, CallContext, PlatformGateway, Route
from .http import Request, Response, html_response, json_response, redirect
from .model import (
    APP_EVENT_KINDS,
    AfterSale,
    AfterSaleStatus,
    AfterSaleType,
    App,
    EventKind,
    Order,
    OrderLine,
    OrderStatus,
    Product,
    SettlementLine,
    Shop,
    Sku,
    Token,
    from_dict,
)
from .pii import mask_detail, mask_name, mask_phone
from .world import (
    CARRIERS,
    SERVICE_FEE_PERMILLE,
    SHANGHAI_OFFSET,
    Conflict,
    InvalidArgument,
    NotFound,
    NoWaybillAccount,
    OutOfStock,
    ShipmentSpec,
    World,
    WorldError,
)

PLATFORM = "wechat"

ACCESS_TOKEN_TTL = 7200  # §3.1: expires_in 7200
STABLE_RENEW_WINDOW = 300  # §3.1: stable_token renews ~5 min before expiry; old and new both work
PLAIN_TOKEN_GRACE = 300  # /cgi-bin/token: the previous token keeps working 5 more minutes [WeChat MP docs]
FORCE_REFRESH_PER_DAY = 20  # §3.1
FORCE_REFRESH_MIN_INTERVAL = 30  # §3.1: force refreshes ≥30 s apart
AUTH_CODE_TTL = 600  # authorisation code: expires_in 600 [choice, WeChat oplatform docs]
VERIFY_TICKET_SLOT = 600  # §3.1: the ticket is pushed every 10 minutes …
VERIFY_TICKET_TTL = 12 * 3600  # … and is valid 12 h
MAX_WINDOW = 7 * 86400  # §3.4: each time range ≤ 7 days
MAX_PAGE_SIZE = 100  # §3.4
DEFAULT_PAGE_SIZE = 10  # [choice]
DECRYPT_REFUSE_AFTER = 30 * 24 * 3600  # [choice] no decode 30 days after an order finished
SNAPSHOT_TTL = 3600.0  # [choice] a next_key paging session lives one hour (real time)
SNAPSHOT_CAPACITY = 2000
FUNC_SCOPES = (129, 130, 131, 138, 141)  # §3.1 permission sets

# --------------------------------------------------------------------------- error catalogue (§3.3)

ERRMSG: dict[int, str] = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40013: "invalid appid",
    40097: "invalid args",
    40125: "invalid appsecret",
    40164: "invalid ip, not in whitelist",
    41001: "access_token missing",
    41002: "appid missing",
    41004: "appsecret missing",
    42001: "access_token expired",
    43002: "require POST method",
    44002: "empty post data",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit  mustslower  retry next minute",
    47001: "data format error",
    48001: "api unauthorized",
    40066: "invalid url",
    61003: "component is not authorized by this account",
    61004: "access clientip is not registered",
    61006: "component ticket is invalid",
    61009: "code is invalid",
    61010: "code is expired",
    61023: "refresh_token is invalid",
    # stock update (§3.3)
    10020050: "无商品权限",
    10020052: "商品不存在",
    10020054: "库存更新失败",
    10020112: "sku库存修改频率超过限制",
    10020219: "库存不足，无法扣减",
    # after-sale (§3.3)
    10020000: "售后单不存在",
    10020001: "售后单状态不合法",
    # [choice] after-sale answers (the reference names none): one refund call per order per minute
    # (WX-ACC), an address the shop does not have, a reason type it does not know
    10020003: "同一订单1分钟内只能调用一次退款，请稍后重试",
    10020004: "退货地址不存在",
    10020005: "拒绝原因类型不合法",
    # [choice] order, decode and e-waybill business codes (the reference names none)
    10021001: "订单不存在",
    10021002: "订单状态不允许发货",
    10021003: "发货商品信息与订单不符",
    10021004: "快递公司不存在",
    10021005: "订单存在进行中的售后，不允许发货",
    10021006: "订单不支持该发货方式",
    10021101: "当前订单状态不允许解密",
    10021102: "店铺今日解密次数已达上限",
    10025001: "电子面单账号不存在",
    10025002: "电子面单余额不足",
    10025003: "电子面单订单不存在",
    10025004: "电子面单模板不存在",
    10025005: "该快递公司不支持子母件",
    10025006: "电子面单已取消",
    10025007: "电子面单已发货，不能取消",
    10025019: "电子面单已存在",
    10025020: "uint64字段必须以字符串传入",
}
# The real text reads "api minute-quota reach limit  mustslower  retry next minute"; the reference
# quotes it with normal spacing, which is what we send.
ERRMSG[45011] = "api minute-quota reach limit must slower retry next minute"

ERR_ORDER_NOT_FOUND = 10021001
ERR_ORDER_STATE = 10021002
ERR_SHIP_ITEMS = 10021003
ERR_CARRIER = 10021004
ERR_REFUND_PENDING = 10021005
ERR_DELIVER_TYPE = 10021006
ERR_DECODE_REFUSED = 10021101
ERR_DECODE_QUOTA = 10021102
# [GUESS] dropship (代发) business codes: the reference and the SDKs name none
ERRMSG.update(
    {
        10021201: "供货商未绑定",
        10021202: "分配数量超过可分配数量",
        10021203: "代发单不存在",
        10021204: "代发单已发货，不能取消",
        10021205: "订单状态不允许分配代发",
    }
)
ERR_DS_NOT_BOUND, ERR_DS_OVER, ERR_DS_NOT_FOUND, ERR_DS_SHIPPED, ERR_DS_ORDER_STATE = (
    10021201, 10021202, 10021203, 10021204, 10021205)  # fmt: skip
DS_STATUS = {"assigned": 1, "shipped": 2, "cancelled": 3}  # [GUESS] dropship status numbers
DS_LIST_MAX = 100  # SKIT: page_info.limit defaults to 100

_RID = itertools.count(1)


def wx_error(errcode: int, errmsg: str = "") -> ApiError:
    """A WeChat error envelope; ``errmsg`` defaults to the catalogue text."""
    return ApiError(200, errcode=errcode, errmsg=errmsg or ERRMSG.get(errcode, "error"))


def invalid_args(hint: str) -> ApiError:
    return wx_error(40097, f"invalid args hint: [{hint}]")


# --------------------------------------------------------------------------- identities


def _h(world: World, *parts: Any) -> str:
    return hashlib.sha256(":".join([str(world.seed), *map(str, parts)]).encode()).hexdigest()


def shop_appid(world: World, shop_id: str) -> str:
    """The shop's own appid (a 微信小店 is itself an appid): ``wx`` + 16 hex."""
    return "wx" + _h(world, "wechat-shop-appid", shop_id)[:16]


def shop_username(world: World, shop_id: str) -> str:
    """The shop's original id (原始ID, ``gh_…``), carried as ``ToUserName`` in pushes."""
    return "gh_" + _h(world, "wechat-shop-username", shop_id)[:12]


def shop_of_username(world: World, username: str) -> Shop | None:
    return next((s for s in world.shops(PLATFORM) if shop_username(world, s.shop_id) == username), None)


def shop_of_appid(world: World, appid: str) -> Shop | None:
    return next((s for s in world.shops(PLATFORM) if shop_appid(world, s.shop_id) == appid), None)


def openid(world: World, buyer_id: int) -> str:
    return "o" + world.buyer_open_id(PLATFORM, buyer_id)[:27]


def create_self_use_app(world: World, shop_id: str, *, webhook_url: str = "") -> App:
    """Register (once) the shop's own self-use app – appid/secret, push Token and EncodingAESKey –
    and authorise it on the shop. Returns the app (existing or new)."""
    appid = shop_appid(world, shop_id)
    existing = world.get_app(appid)
    if existing is not None:
        return existing
    shop = world.get_shop(shop_id)
    if shop is None or shop.platform != PLATFORM:
        raise NotFound("wechat shop not found", shop_id=shop_id)
    h = _h(world, "wechat-self-use", shop_id)
    app = App(
        app_key=appid,
        platform=PLATFORM,
        name=f"{shop.name}（自研）",
        app_secret=h[:32],
        app_type="self",
        push_token=h[32:48],
        encoding_aes_key=base64.b64encode(bytes.fromhex(h)).decode().rstrip("="),
        webhook_url=webhook_url,
    )
    world.create_app(app)
    world.authorize(appid, shop_id)
    return app


# --------------------------------------------------------------------------- push crypto (§3.8)


def secure_push_query(app: App, timestamp: str, nonce: str, encrypted: str) -> dict[str, str]:
    """The query string of a secure-mode push (message or authorisation event)."""
    return {
        "signature": signature(app.push_token, timestamp, nonce),
        "timestamp": timestamp,
        "nonce": nonce,
        "encrypt_type": "aes",
        "msg_signature": signature(app.push_token, timestamp, nonce, encrypted),
    }


def signature(token: str, timestamp: str, nonce: str, *extra: str) -> str:
    """``sha1(concat(sorted([token, timestamp, nonce, …])))`` – URL check and ``msg_signature``."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, *extra])).encode()).hexdigest()  # noqa: S324


def aes_key(encoding_aes_key: str) -> bytes:
    """``base64decode(EncodingAESKey + "=")`` – 32 bytes."""
    return base64.b64decode(encoding_aes_key + "=")


def encrypt_message(encoding_aes_key: str, appid: str, message: bytes, random16: bytes) -> str:
    """AES-256-CBC(IV = key[:16]) of ``random16 ‖ len(message) BE32 ‖ message ‖ appid``, PKCS#7 (32)."""
    key = aes_key(encoding_aes_key)
    plain = random16 + struct.pack(">I", len(message)) + message + appid.encode()
    pad = 32 - len(plain) % 32
    plain += bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def decrypt_message(encoding_aes_key: str, encrypted: str) -> tuple[bytes, str]:
    """Inverse of ``encrypt_message``: ``(message, appid)``; raises ``ValueError`` on garbage."""
    key = aes_key(encoding_aes_key)
    raw = base64.b64decode(encrypted)
    if not raw or len(raw) % 16:
        raise ValueError("ciphertext length")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(raw) + decryptor.finalize()
    pad = plain[-1]
    if not 1 <= pad <= 32:
        raise ValueError("padding")
    plain = plain[:-pad]
    (length,) = struct.unpack(">I", plain[16:20])
    return plain[20 : 20 + length], plain[20 + length :].decode()


def verify_ticket_for(app: App, slot: int) -> str:
    """The ``component_verify_ticket`` of a 10-minute slot (``world.now() // VERIFY_TICKET_SLOT``):
    deterministic, so every process serving the world agrees on it."""
    digest = hmac.new(app.app_secret.encode(), f"ticket:{slot}".encode(), hashlib.sha256).digest()
    return "ticket@@@" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def is_component(app: App) -> bool:
    """The third-party platform (component) app, as opposed to a shop's self-use app."""
    return app.platform == PLATFORM and app.app_type != "self"


def push_verify_ticket(world: World, app: App) -> int:
    """Queue the current ticket for the component's ``auth_event_url`` (what WeChat does every
    10 minutes). ``CreateTime`` is the start of the ticket's slot [choice]. Returns the event id."""
    slot = world.now() // VERIFY_TICKET_SLOT
    return world.emit_app_event(
        EventKind.APP_VERIFY_TICKET,
        app.app_key,
        data={"ticket": verify_ticket_for(app, slot), "create_time": slot * VERIFY_TICKET_SLOT},
    )


def verify_webhook_url(world: World, app: App, client: httpx.Client | None = None) -> bool:
    """Do what WeChat does when a push URL is saved: GET it with ``signature, timestamp, nonce,
    echostr`` and expect ``echostr`` back verbatim."""
    if not app.webhook_url:
        return False
    timestamp = str(world.now())
    nonce = str(int(_h(world, "verify-nonce", app.app_key, timestamp)[:8], 16))
    echostr = _h(world, "echostr", app.app_key, timestamp)[:20]
    params = {
        "signature": signature(app.push_token, timestamp, nonce),
        "timestamp": timestamp,
        "nonce": nonce,
        "echostr": echostr,
    }
    own = client is None
    client = client or httpx.Client(trust_env=False)
    try:
        reply = client.get(app.webhook_url, params=params, timeout=5.0)
        return reply.status_code == 200 and reply.text == echostr
    except httpx.HTTPError:
        return False
    finally:
        if own:
            client.close()


# --------------------------------------------------------------------------- time and parameter helpers


def fmt_time(ts: int) -> str:
    """Asia/Shanghai ``yyyy-MM-dd HH:mm:ss`` (funds ``bookkeeping_time``, product ``create_time``)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts + SHANGHAI_OFFSET))


def _int(params: dict[str, Any], key: str, default: int | None = None) -> int | None:
    value = params.get(key, default)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise invalid_args(f"{key} must be a number")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid_args(f"{key} must be a number") from None


def _id(params: dict[str, Any], key: str) -> str:
    """A 64-bit id: sent as a string (numbers are accepted leniently outside the e-waybill APIs)."""
    value = params.get(key)
    if value is None or value == "":
        raise invalid_args(f"{key} is required")
    return str(value)


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64(text: str) -> str:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()


# --------------------------------------------------------------------------- mappings

# Neutral carrier key -> WeChat ``delivery_id`` for /order/delivery/send (§3.5 samples:
# SF, YTO, ZTO, STO, YD, EMS, JD). JTSD/YZPY/DBKD are [GUESS] from e-waybill samples.
DELIVERY_IDS: dict[str, str] = {
    "ZTO": "ZTO", "YTO": "YTO", "STO": "STO", "YD": "YD", "SF": "SF",
    "JT": "JTSD", "EMS": "EMS", "JD": "JD", "POST": "YZPY", "DBL": "DBKD",
}  # fmt: skip
CARRIER_OF_DELIVERY_ID = {v: k for k, v in DELIVERY_IDS.items()}
# E-waybill ``delivery_id``s differ for Yunda (SDK sample lists "YUNDA").
EWAYBILL_DELIVERY_IDS = {**DELIVERY_IDS, "YD": "YUNDA"}
CARRIER_OF_EWAYBILL_ID = {v: k for k, v in EWAYBILL_DELIVERY_IDS.items()}
# Carriers with child pieces (子母件) through /order/addsuborder (§3.10: SF, DBKD, JD, SXJD, 韵达快运).
SUB_ORDER_CARRIERS = {"SF", "DBL", "JD"}
MAX_SUB_ORDERS = 50  # [choice]

STATUS_UNPAID, STATUS_PAID, STATUS_PART_SHIPPED, STATUS_SHIPPED = 10, 20, 21, 30
STATUS_COMPLETED, STATUS_CANCELLED_REFUND, STATUS_CANCELLED = 100, 200, 250
ORDER_STATUSES = (10, 20, 21, 30, 100, 200, 250)


def order_status(order: Order) -> int:
    """WeChat order status (§3.4): 10/20/21/30/100/200/250."""
    status = OrderStatus(order.status)
    if status == OrderStatus.UNPAID:
        return STATUS_UNPAID
    if status == OrderStatus.PAID:
        return STATUS_PAID
    if status == OrderStatus.PART_SHIPPED:
        return STATUS_PART_SHIPPED
    if status == OrderStatus.SHIPPED:
        return STATUS_SHIPPED
    if status in (OrderStatus.RECEIVED, OrderStatus.COMPLETED):
        return STATUS_COMPLETED
    return STATUS_CANCELLED_REFUND if order.cancel_kind == "refund" else STATUS_CANCELLED


AFTERSALE_TYPE = {
    AfterSaleType.REFUND_UNSHIPPED: "REFUND",
    AfterSaleType.REFUND_SHIPPED: "REFUND",
    AfterSaleType.RETURN_REFUND: "RETURN",
    AfterSaleType.EXCHANGE: "EXCHANGE",
}


def aftersale_status(a: AfterSale) -> str:
    """§3.7 status strings. Exchange success and reshipment are [choice] (not in the reference list)."""
    status, kind = AfterSaleStatus(a.status), AfterSaleType(a.type)
    if status == AfterSaleStatus.WAIT_SELLER_AGREE:
        return "MERCHANT_PROCESSING"
    if status == AfterSaleStatus.WAIT_BUYER_RETURN:
        return "USER_WAIT_RETURN"
    if status == AfterSaleStatus.WAIT_SELLER_CONFIRM:
        return "MERCHANT_WAIT_RECEIPT"
    if status == AfterSaleStatus.WAIT_BUYER_RECEIVE:
        return "USER_WAIT_CONFIRM"
    if status == AfterSaleStatus.SUCCESS:
        return "MERCHANT_RETURN_SUCCESS" if kind == AfterSaleType.RETURN_REFUND else "MERCHANT_REFUND_SUCCESS"
    if status == AfterSaleStatus.EXCHANGE_SUCCESS:
        return "MERCHANT_EXCHANGE_SUCCESS"
    if status == AfterSaleStatus.SELLER_REJECTED:
        return (
            "MERCHANT_REJECT_RETURN"
            if kind in (AfterSaleType.RETURN_REFUND, AfterSaleType.EXCHANGE)
            else "MERCHANT_REJECT_REFUND"
        )
    if status == AfterSaleStatus.SELLER_REJECTED_SECOND:
        return "MERCHANT_REJECT_RESHIP" if kind == AfterSaleType.EXCHANGE else "MERCHANT_REJECT_REFUND"
    return "RETURN_CLOSED" if "退货" in a.reject_reason and "超时" in a.reject_reason else "USER_CANCELD"


REFUND_CALL_INTERVAL = 60  # seconds between two refund calls on one order (WX-ACC)
# [choice] refusal reason types (the reference names ``reject_reason_type`` only)
REJECT_REASONS: tuple[dict[str, Any], ...] = (
    {"reject_reason_type": 1, "reject_reason_type_text": "商品已影响二次销售", "require_image": True},
    {"reject_reason_type": 2, "reject_reason_type_text": "已与买家协商一致", "require_image": False},
    {"reject_reason_type": 3, "reject_reason_type_text": "买家未退回商品", "require_image": False},
)

PRODUCT_STATUS = {
    "online": 5,
    "offline": 11,
    "deleted": 6,
}  # 5 on sale, 11 delisted by merchant, 6 recycle bin

# [choice] funds types (the reference names the fields, not the enum).
FUNDS_ORDER_INCOME, FUNDS_SERVICE_FEE, FUNDS_AFTERSALE_REFUND = 1, 2, 3
FUNDS_TYPE_DESC = {1: "订单结算", 2: "技术服务费", 3: "售后退款"}


# --------------------------------------------------------------------------- limits


@dataclass
class WechatLimits:
    """Configurable quotas (stored in the world's settings, so the CLI can change them).

    ``minute_quota``/``daily_quota``: calls per (appid, API) per minute / per Shanghai day,
    0 = unlimited (→ 45011 / 45009); ``path_minute_quota`` overrides per API path.
    ``stock_updates_per_sku_per_minute``: the per-SKU stock update cap (→ 10020112).
    """

    minute_quota: int = 0
    daily_quota: int = 0
    path_minute_quota: dict[str, int] = field(default_factory=dict)
    stock_updates_per_sku_per_minute: int = 60  # [choice] the real number is not published

    SETTING = "wechat:limits"

    @classmethod
    def load(cls, world: World) -> WechatLimits:
        stored = world.get_setting(cls.SETTING, {}) or {}
        return cls(
            **{
                k: v
                for k, v in stored.items()
                if k
                in {"minute_quota", "daily_quota", "path_minute_quota", "stock_updates_per_sku_per_minute"}
            }
        )

    @classmethod
    def save(cls, world: World, **changes: Any) -> WechatLimits:
        current = asdict(cls.load(world))
        unknown = set(changes) - set(current)
        if unknown:
            raise ValueError(f"unknown wechat limits: {sorted(unknown)}")
        current.update(changes)
        world.set_setting(cls.SETTING, current)
        return cls(**current)


class _Snapshots:
    """Id lists frozen when a next_key paging session starts (see ``WechatApp.order_list``)."""

    def __init__(self, capacity: int = SNAPSHOT_CAPACITY, ttl: float = SNAPSHOT_TTL) -> None:
        self._items: OrderedDict[str, tuple[float, str, list[str]]] = OrderedDict()
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self.capacity, self.ttl = capacity, ttl

    def create(self, scope: str, ids: list[str]) -> str:
        with self._lock:
            sid = (
                f"{next(self._seq):x}{hashlib.sha256(f'{scope}:{time.monotonic()}'.encode()).hexdigest()[:8]}"
            )
            self._items[sid] = (time.monotonic(), scope, ids)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
            return sid

    def get(self, sid: str, scope: str) -> list[str] | None:
        with self._lock:
            item = self._items.get(sid)
            if item is None or item[1] != scope or time.monotonic() - item[0] > self.ttl:
                return None
            self._items.move_to_end(sid)
            return item[2]


def encode_next_key(sid: str, offset: int) -> str:
    """``next_key`` = URL-safe base64 (unpadded) of ``"v1:<snapshot id>:<offset>"``."""
    return _b64(f"v1:{sid}:{offset}")


def decode_next_key(key: str) -> tuple[str, int]:
    try:
        version, sid, offset = _unb64(key).split(":")
        if version != "v1":
            raise ValueError(version)
        return sid, int(offset)
    except (ValueError, UnicodeDecodeError):
        raise invalid_args("next_key is invalid") from None


# --------------------------------------------------------------------------- renderers


class Renderer:
    """Neutral records → WeChat JSON shapes. Receiver data only masked (+ ``hash_code``)."""

    def __init__(self, world: World) -> None:
        self.world = world

    def hash_code(self, order: Order) -> str:
        """A stable keyed hash of the normalised receiver (same person + address → same value)."""
        r = order.receiver
        text = "|".join(
            "".join(x.split()) for x in (r.name, r.phone, r.province, r.city, r.district, r.street, r.detail)
        )
        return self.world.vault.mac("wechat-receiver:" + text)[:32]

    def address_info(self, order: Order, *, plain: bool = False) -> dict[str, Any]:
        r = order.receiver
        detail = f"{r.street}{r.detail}"
        phone = r.phone if plain else mask_phone(r.phone)
        out = {
            "user_name": r.name if plain else mask_name(r.name),
            "postal_code": r.district_code[:4] + "00",
            "province_name": r.province,
            "city_name": r.city,
            "county_name": r.district,
            "detail_info": detail if plain else mask_detail(detail),
            "national_code": r.district_code,
            "tel_number": phone,
            "house_number": "",
            "virtual_order_tel_number": "",
            "tel_number_ext_info": {
                "real_tel_number": phone,
                "virtual_tel_number": "",
                "virtual_tel_expire_time": 0,
            },
            "use_tel_number": 0,
            "hash_code": self.hash_code(order),
        }
        if not plain and untidy.hit(self.world, "wechat.plaintext_address", order.order_id):
            return self.address_info(order, plain=True)  # older orders, like the doc samples
        if untidy.hit(self.world, "wechat.no_hash_code", order.order_id):
            del out["hash_code"]  # the published samples have none
        return out

    def product_info(self, order: Order, line: OrderLine, aftersales: list[AfterSale]) -> dict[str, Any]:
        on_aftersale = sum(
            a.qty for a in aftersales if a.line_id == line.line_id and AfterSaleStatus(a.status).is_open
        )
        real = 0 if line.is_gift else line.sum_fen - line.discount_fen
        out = {
            "product_id": line.product_id,
            "sku_id": line.sku_id,
            "sku_cnt": line.qty,
            "title": line.title,
            "thumb_img": line.pic,
            "sku_attrs": [{"attr_key": n, "attr_value": v} for n, v in line.spec],
            "sale_price": line.unit_price_fen,
            "market_price": line.unit_price_fen,
            "real_price": real,
            "estimate_price": real,
            "change_price": real,
            "is_change_price": False,
            "on_aftersale_sku_cnt": on_aftersale,
            "finish_aftersale_sku_cnt": line.refunded_qty,
            "out_product_id": "",
            "out_sku_id": "",
            "sku_code": line.code,
            "out_warehouse_id": "",
            "merchant_discounted_price": line.discount_fen,
            "finder_discounted_price": 0,
            "sku_deliver_info": {"stock_type": 0, "predict_delivery_time": 0},
            "delivery_deadline": order.promise_ship_time,
            "is_free_gift": line.is_gift,
            "extra_service": {"seven_day_return": 1, "freight_insurance": 0},
        }
        if untidy.hit(self.world, "wechat.no_real_price", line.line_id):
            del out["real_price"]
        return out

    def delivery_product_info(self, order: Order) -> list[dict[str, Any]]:
        out = []
        for package in order.packages:
            out.append(
                {
                    "waybill_id": package.tracking_no,
                    "delivery_id": DELIVERY_IDS.get(package.carrier, package.carrier),
                    "delivery_name": CARRIERS.get(package.carrier, ("",))[0],
                    "delivery_time": package.ship_time,
                    "deliver_type": 1,
                    "product_infos": [
                        {
                            "product_id": order.line(it.line_id).product_id,
                            "sku_id": order.line(it.line_id).sku_id,
                            "product_cnt": it.qty,
                        }
                        for it in package.items
                    ],
                }
            )
        return out

    def order(self, order: Order) -> dict[str, Any]:
        """The ``order`` object of ``/channels/ec/order/get`` (§3.4)."""
        aftersales = self.world.aftersales_of_order(order.order_id)
        status = order_status(order)
        fee = order.pay_fen * SERVICE_FEE_PERMILLE // 1000
        done = status in (STATUS_SHIPPED, STATUS_COMPLETED)
        out: dict[str, Any] = {
            "order_id": order.order_id,
            "status": status,
            "create_time": order.create_time,
            "update_time": order.update_time,
            "openid": openid(self.world, order.buyer_id),
            "unionid": "",
            "is_present": False,
            "order_detail": {
                "product_infos": [self.product_info(order, line, aftersales) for line in order.lines],
                "pay_info": {
                    "prepay_id": ("wx" + hashlib.sha256(order.order_id.encode()).hexdigest()[:28])
                    if order.pay_time
                    else "",
                    "prepay_time": order.create_time,
                    "transaction_id": order.payment_no,
                    "pay_time": order.pay_time,
                    "payment_method": 1,
                },
                "price_info": {
                    "product_price": order.goods_fen,
                    "order_price": order.pay_fen,
                    "freight": order.post_fen,
                    "discounted_price": order.discount_fen,
                    "is_discounted": order.discount_fen > 0,
                    "original_order_price": order.goods_fen + order.post_fen,
                    "estimate_product_price": order.goods_fen - order.discount_fen,
                    "change_down_price": 0,
                    "change_freight": 0,
                    "is_change_freight": False,
                    "merchant_receieve_price": order.pay_fen,
                    "merchant_discounted_price": order.discount_fen,
                    "finder_discounted_price": 0,
                },
                "delivery_info": {
                    "address_info": self.address_info(order),
                    "delivery_product_info": self.delivery_product_info(order),
                    "ship_done_time": max((p.ship_time for p in order.packages), default=0) if done else 0,
                    "deliver_method": 0,
                    "address_under_review": False,
                    "ewaybill_order_code": "",
                },
                "ext_info": {
                    "customer_notes": order.buyer_words,
                    "merchant_notes": order.seller_words,
                    "confirm_receipt_time": order.receive_time,
                    "finder_id": "",
                    "live_id": "",
                    "order_scene": 1,
                },
                "settle_info": {
                    "predict_commission_fee": fee,
                    "commission_fee": fee if order.complete_time else 0,
                    "settle_time": order.complete_time,
                },
                "refund_info": {"refund_freight": 0},
            },
            "aftersale_detail": {
                "aftersale_order_list": [
                    {"aftersale_order_id": a.aftersale_id, "status": aftersale_status(a)} for a in aftersales
                ],
                "on_aftersale_order_cnt": sum(1 for a in aftersales if AfterSaleStatus(a.status).is_open),
            },
        }
        if untidy.hit(self.world, "wechat.string_ids", order.order_id):
            out["order_id"] = int(order.order_id)  # a number here, a string elsewhere
            pay_info = out["order_detail"]["pay_info"]
            pay_info["pay_time"] = str(pay_info["pay_time"])
        if untidy.hit(self.world, "wechat.missing_optional", order.order_id):
            for name in ("ext_info", "settle_info", "refund_info"):
                del out["order_detail"][name]
        return out

    def aftersale(self, a: AfterSale, order: Order) -> dict[str, Any]:
        """The ``after_sale_order`` object of ``/channels/ec/aftersale/getaftersaleorder`` (§3.7)."""
        line = order.line(a.line_id)
        kind = AFTERSALE_TYPE[AfterSaleType(a.type)]
        exchange = None
        if a.exchange_sku_id:
            sku = self.world.get_sku(a.exchange_sku_id)
            exchange = {"product_id": line.product_id, "old_sku_id": line.sku_id, "new_sku_id": a.exchange_sku_id,
                        "product_cnt": a.qty, "sku_code": sku.code if sku else ""}  # fmt: skip
        out = {
            "after_sale_order_id": a.aftersale_id,
            "order_id": a.order_id,
            "status": aftersale_status(a),
            "type": kind,
            "sub_type": ""
            if kind != "REFUND"
            else ("REFUND_BEFORE_SHIP" if a.type == AfterSaleType.REFUND_UNSHIPPED else "REFUND_AFTER_SHIP"),
            "reason": a.reason,
            "reason_text": a.reason,
            "openid": openid(self.world, order.buyer_id),
            "unionid": "",
            "product_info": {
                "product_id": line.product_id,
                "sku_id": line.sku_id,
                "sku_code": line.code,
                "count": a.qty,
            },
            "details": {
                "desc": a.reason,
                "receive_product": bool(a.got_pkg),
                "cancel_time": a.close_time,
                # [GUESS] media ids served as links by the sandbox, so ecbao can show them
                "media_id_list": list(a.evidence),
                "prove_imgs": [],
            },
            "refund_info": {"amount": a.refund_fen + a.refund_post_fen, "refund_reason": a.reason},
            "return_info": {
                "waybill_id": a.return_tracking_no,
                "delivery_id": DELIVERY_IDS.get(a.return_carrier, "") if a.return_carrier else "",
                "delivery_name": CARRIERS.get(a.return_carrier, ("",))[0] if a.return_carrier else "",
            },
            "merchant_upload_info": {"reject_reason": a.reject_reason, "refund_certificates": []},
            "refund_resp": {"ret": 0 if a.refund_time else -1, "code": "", "message": ""},
            "exchange_product_info": exchange,
            "exchange_delivery_info": {
                "waybill_id": a.exchange_tracking_no,
                "delivery_id": DELIVERY_IDS.get(a.exchange_carrier, "") if a.exchange_carrier else "",
                "delivery_name": CARRIERS.get(a.exchange_carrier, ("",))[0] if a.exchange_carrier else "",
            },
            "create_time": a.apply_time,
            "update_time": a.update_time,
            "complete_time": a.refund_time or a.close_time,
            "deadline": a.deadline,
        }
        if untidy.hit(self.world, "wechat.aftersale_sparse", a.aftersale_id):
            out.update(after_sale_order_id=int(a.aftersale_id), order_id=int(a.order_id))
            if not a.evidence:
                del out["details"]
        return out

    def product(self, p: Product) -> dict[str, Any]:
        """The ``product`` object of ``/channels/ec/product/get`` (shape from the SDK sample)."""
        return {
            "product_id": p.product_id,
            "out_product_id": p.out_product_id,
            "title": p.title,
            "short_title": "",
            "head_imgs": [p.pic],
            "desc_info": {"imgs": [p.pic], "desc": ""},
            "cats": [],
            "cats_v2": [
                {"cat_id": str(int(hashlib.sha256(part.encode()).hexdigest()[:6], 16))}
                for part in p.category.split("/")
                if part
            ],
            "attrs": [],
            "express_info": {"template_id": ""},
            "status": PRODUCT_STATUS.get(p.status, 0),
            "edit_status": 0,
            "skus": [self.sku(s) for s in p.skus],
            "min_price": min((s.price_fen for s in p.skus), default=0),
            "spu_code": "",
        }

    @staticmethod
    def sku(s: Sku) -> dict[str, Any]:
        return {
            "sku_id": s.sku_id,
            "out_sku_id": s.out_sku_id,
            "thumb_img": "",
            "sale_price": s.price_fen,
            "stock_num": s.stock,
            "sku_code": s.code,
            "sku_attrs": [{"attr_key": n, "attr_value": v} for n, v in s.spec],
            "status": 0,
        }


# --------------------------------------------------------------------------- funds flows (§3.9)


def flow_id(row_id: int, part: int) -> str:
    """A settlement row becomes one or two flows: part 1 (goods) and part 2 (service fee)."""
    return f"1000{row_id:012d}{part}"


def parse_flow_id(text: str) -> tuple[int, int] | None:
    if len(text) != 17 or not text.isdigit() or not text.startswith("1000") or text[-1] not in "12":
        return None
    return int(text[4:16]), int(text[-1])


def flows_of(row_id: int, s: SettlementLine) -> list[tuple[str, int, int, int]]:
    """``[(flow_id, funds_type, flow_type, signed amount)]`` for one settlement row (income > 0)."""
    out = []
    if s.trade_type == "settle":
        goods = s.real_pay_fen - s.refund_before_settle_fen
        out.append((flow_id(row_id, 1), FUNDS_ORDER_INCOME, 1, goods))
        if s.service_fee_fen:
            out.append((flow_id(row_id, 2), FUNDS_SERVICE_FEE, 2, -s.service_fee_fen))
    else:
        out.append((flow_id(row_id, 1), FUNDS_AFTERSALE_REFUND, 2, s.total_fen))  # total_fen < 0
        if s.service_fee_fen:
            out.append((flow_id(row_id, 2), FUNDS_SERVICE_FEE, 1, -s.service_fee_fen))  # the fee comes back
    return out


# --------------------------------------------------------------------------- the app


class WechatApp(PlatformGateway):
    """WSGI app imitating ``api.weixin.qq.com`` for 微信小店 (plus the authorize page)."""

    platform = PLATFORM

    def __init__(self, world: World, **kwargs: Any) -> None:
        super().__init__(world, **kwargs)
        self.render = Renderer(world)
        self.snapshots = _Snapshots()
        self._token_lock = threading.Lock()
        self._quota_lock = threading.Lock()
        self._refund_lock = threading.Lock()
        self._refund_calls: dict[str, int] = {}  # order id → time of its last refund call
        self._minute_calls: dict[tuple[str, str, int], int] = {}
        self._daily_calls: dict[tuple[str, str, str], int] = {}
        self._force_refreshes: dict[tuple[str, str], list[int]] = {}
        self._sku_updates: dict[str, deque[float]] = {}
        self._limits_cache: tuple[Any, WechatLimits] | None = None
        self._balances: dict[str, tuple[int, dict[str, int]]] = {}
        r = self.route
        both = ("GET", "POST")
        r("/authorize", self.authorize_page, methods=both, auth="none", faults=False)
        r(
            "/sandbox/component_verify_ticket",
            self.verify_ticket_helper,
            methods=("GET",),
            auth="none",
            faults=False,
        )
        r("/cgi-bin/token", self.cgi_token, methods=both, auth="credential")
        r("/cgi-bin/stable_token", self.stable_token, methods=both, auth="credential")
        r("/cgi-bin/component/api_component_token", self.component_token, methods=both, auth="credential")
        r("/cgi-bin/component/api_query_auth", self.query_auth, methods=both, auth="component")
        r("/cgi-bin/component/api_authorizer_token", self.authorizer_token, methods=both, auth="component")
        business = {
            "/channels/ec/basics/info/get": self.basics_info,
            "/channels/ec/order/list/get": self.order_list,
            "/channels/ec/order/get": self.order_get,
            "/channels/ec/order/delivery/send": self.delivery_send,
            "/channels/ec/order/deliverycompanylist/get": self.delivery_companies,
            "/channels/ec/order/deliverycompanylist/new/get": self.delivery_companies,
            "/channels/ec/order/sensitiveinfo/decode": self.sensitive_decode,
            "/channels/ec/product/list/get": self.product_list,
            "/channels/ec/product/get": self.product_get,
            "/channels/ec/product/add": self.product_add,
            "/channels/ec/product/stock/get": self.stock_get,
            "/channels/ec/product/stock/update": self.stock_update,
            "/channels/ec/aftersale/getaftersalelist": self.aftersale_list,
            "/channels/ec/aftersale/getaftersaleorder": self.aftersale_get,
            "/channels/ec/aftersale/acceptapply": self.aftersale_accept,
            "/channels/ec/aftersale/rejectapply": self.aftersale_reject,
            "/channels/ec/aftersale/acceptexchangereship": self.aftersale_accept_exchange_reship,
            "/channels/ec/aftersale/getrejectreason": self.aftersale_reject_reasons,
            "/channels/ec/merchant/address/list": self.merchant_address_list,
            "/channels/ec/funds/getfundsflowlist": self.funds_flow_list,
            "/channels/ec/funds/getfundsflowdetail": self.funds_flow_detail,
            "/channels/ec/funds/getbalance": self.funds_balance,
            "/channels/ec/logistics/ewaybill/biz/delivery/get": self.ewaybill_delivery_get,
            "/channels/ec/logistics/ewaybill/biz/account/get": self.ewaybill_account_get,
            "/channels/ec/logistics/ewaybill/biz/template/get": self.ewaybill_template_get,
            "/channels/ec/logistics/ewaybill/biz/order/precreate": self.ewaybill_precreate,
            "/channels/ec/logistics/ewaybill/biz/order/create": self.ewaybill_create,
            "/channels/ec/logistics/ewaybill/biz/order/addsuborder": self.ewaybill_add_sub_order,
            "/channels/ec/logistics/ewaybill/biz/order/cancel": self.ewaybill_cancel,
            "/channels/ec/logistics/ewaybill/biz/order/get": self.ewaybill_order_get,
            "/channels/ec/logistics/ewaybill/biz/print/get": self.ewaybill_print_get,
            "/channels/ec/logistics/ewaybill/biz/order/print": self.ewaybill_order_print,
            "/channels/ec/logistics/path/get": self.logistics_path_get,
            "/channels/ec/order/dropship/assign": self.dropship_assign,
            "/channels/ec/order/dropship/cancel": self.dropship_cancel,
            "/channels/ec/order/dropship/get": self.dropship_get,
            "/channels/ec/order/dropship/list": self.dropship_list,
        }
        for path, handler in business.items():
            # GET reaches the handler pipeline so that it can answer 43002 like WeChat does.
            r(path, handler, methods=both, auth="token")

    # ------------------------------------------------------------------ envelope

    def ok(self, data: dict[str, Any] | None = None) -> Response:
        return json_response({"errcode": 0, "errmsg": "ok", **(data or {})})

    def error_response(self, error: ApiError, request: Request) -> Response:
        f = error.fields
        rid = f"{int(self.world.clock.now()) & 0xFFFFFFFF:08x}-{next(_RID) & 0xFFFFFFFF:08x}"
        return json_response(
            {"errcode": f.get("errcode", -1), "errmsg": f"{f.get('errmsg', '')} rid: {rid}"},
            status=error.http_status,
        )

    def service_error(self) -> ApiError:
        return wx_error(-1, "system error")

    def rate_limit_error(self) -> ApiError:
        return wx_error(45011)

    def unknown_path_error(self, path: str) -> ApiError:
        return wx_error(40066, f"invalid url {path[:80]}")

    def result_code(self, response: Response) -> str:
        if "json" not in (response.header("content-type") or ""):
            return str(response.status)
        try:
            body = json.loads(response.body)
        except ValueError:
            return "malformed"
        return str(body.get("errcode", 0)) if isinstance(body, dict) else "?"

    # ------------------------------------------------------------------ tokens

    @staticmethod
    def token_kind(token: Token) -> str:
        """Which endpoint issued a token: cgi | stable | component | authorizer (kept in ``refresh_token``)."""
        return token.refresh_token.split(":", 1)[0]

    def token_error(self, token: Token | None) -> int:
        """0 when usable; 40001 unknown / revoked / superseded ("not latest"); 42001 expired."""
        now = self.world.now()
        if token is None:
            return 40001
        if token.revoked_at and now >= token.revoked_at and token.revoked_at < token.access_expires_at:
            return 40001  # revoked, force-refreshed, or a superseded token past its grace period
        if now >= token.access_expires_at:
            return 42001
        return 0

    def _issue(self, app_key: str, shop_id: str, kind: str) -> Token:
        now = self.world.now()
        secret = self.world.new_secret(f"wechat-{kind}:{app_key}", 64)
        token = Token(
            access_token=f"86_{base64.urlsafe_b64encode(bytes.fromhex(secret)).decode().rstrip('=')}",
            refresh_token=f"{kind}:{secret[:24]}",
            app_key=app_key,
            shop_id=shop_id,
            created_at=now,
            access_expires_at=now + ACCESS_TOKEN_TTL,
            refresh_expires_at=now + ACCESS_TOKEN_TTL,
        )
        self.world.save_token(token)
        return token

    def _tokens_of(self, app_key: str, shop_id: str, kind: str) -> list[Token]:
        return [
            t
            for t in self.world.tokens(app_key=app_key, shop_id=shop_id)
            if self.token_kind(t) == kind and t.shop_id == shop_id
        ]

    def _supersede(self, tokens: list[Token], successor: Token, grace: int) -> None:
        """Older tokens keep working ``grace`` seconds more (0: dead now → 40001 "not latest")."""
        now = self.world.now()
        for old in tokens:
            if old.access_token == successor.access_token or self.token_error(old):
                continue
            old.revoked_at = min(old.access_expires_at, now + grace) if grace else now
            old.successor = successor.access_token
            self.world.save_token(old)

    def _app_by_credentials(self, appid: str, secret: str) -> App:
        if not appid:
            raise wx_error(41002)
        if not secret:
            raise wx_error(41004)
        app = self.world.get_app(appid)
        if app is None or app.platform != PLATFORM:
            raise wx_error(40013)
        if not hmac.compare_digest(app.app_secret, secret):
            raise wx_error(40125)
        return app

    def _self_use_shop(self, app: App) -> Shop:
        """A self-use app is one shop; a third-party platform's appid cannot take shop tokens directly."""
        if app.app_type != "self":
            raise wx_error(
                40013, "invalid appid hint: [third-party platform appid, use /cgi-bin/component/*]"
            )
        shops = [
            s
            for s in self.world.shops(PLATFORM)
            if (a := self.world.authorization(app.app_key, s.shop_id)) and a.status == "active"
        ]
        if len(shops) != 1:
            raise wx_error(48001, "api unauthorized hint: [app is not bound to exactly one shop]")
        return shops[0]

    def _check_ip(self, app: App, request: Request, errcode: int = 40164) -> None:
        if app.ip_whitelist and request.remote_addr not in app.ip_whitelist:
            raise wx_error(errcode, f"{ERRMSG[errcode]} ipv4 : {request.remote_addr}")

    def cgi_token(self, request: Request, ctx: CallContext) -> Response:
        """``GET /cgi-bin/token``: a new token each call; the previous one lives 5 more minutes."""
        q = request.query if request.method == "GET" else {**request.query, **request.form()}
        if q.get("grant_type") != "client_credential":
            raise wx_error(40002)
        app = self._app_by_credentials(q.get("appid", ""), q.get("secret", ""))
        ctx.app = app
        self._check_ip(app, request)
        shop = self._self_use_shop(app)
        ctx.shop = shop
        with self._token_lock:
            previous = self._tokens_of(app.app_key, shop.shop_id, "cgi")
            token = self._issue(app.app_key, shop.shop_id, "cgi")
            self._supersede(previous, token, PLAIN_TOKEN_GRACE)
        return json_response({"access_token": token.access_token, "expires_in": ACCESS_TOKEN_TTL})

    def stable_token(self, request: Request, ctx: CallContext) -> Response:
        """``POST /cgi-bin/stable_token`` (§3.1): the same token while > 5 min are left, then a new
        one (the old one still works until it expires); ``force_refresh`` kills the old one now,
        at most 20 times a day and 30 s apart. Isolated from ``/cgi-bin/token``."""
        if request.method != "POST":
            raise wx_error(43002)
        p = self._json_body(request)
        if p.get("grant_type") != "client_credential":
            raise wx_error(40002)
        app = self._app_by_credentials(str(p.get("appid") or ""), str(p.get("secret") or ""))
        ctx.app = app
        self._check_ip(app, request)
        shop = self._self_use_shop(app)
        ctx.shop = shop
        force = p.get("force_refresh") in (True, "true", 1, "1")
        now = self.world.now()
        with self._token_lock:
            live = [
                t for t in self._tokens_of(app.app_key, shop.shop_id, "stable") if not self.token_error(t)
            ]
            current = max(live, key=lambda t: (t.created_at, t.access_expires_at), default=None)
            if force:
                key = (app.app_key, shop.shop_id)
                day_start = now - (now + SHANGHAI_OFFSET) % 86400
                history = [t for t in self._force_refreshes.get(key, []) if t >= day_start]
                if history and now - history[-1] < FORCE_REFRESH_MIN_INTERVAL:
                    raise wx_error(45011)
                if len(history) >= FORCE_REFRESH_PER_DAY:
                    raise wx_error(45009)
                history.append(now)
                self._force_refreshes[key] = history
                token = self._issue(app.app_key, shop.shop_id, "stable")
                self._supersede(live, token, 0)
            elif current is not None and current.access_expires_at - now > STABLE_RENEW_WINDOW:
                token = current
            else:
                token = self._issue(app.app_key, shop.shop_id, "stable")
                self._supersede(live, token, STABLE_RENEW_WINDOW)
        return json_response(
            {"access_token": token.access_token, "expires_in": max(0, token.access_expires_at - now)}
        )

    # ------------------------------------------------------------------ third-party platform flow

    def verify_ticket(self, app: App, slot: int) -> str:
        return verify_ticket_for(app, slot)

    def current_verify_ticket(self, app: App) -> tuple[str, int]:
        """The ticket WeChat would have pushed most recently, and when."""
        slot = self.world.now() // VERIFY_TICKET_SLOT
        return self.verify_ticket(app, slot), slot * VERIFY_TICKET_SLOT

    def _ticket_ok(self, app: App, ticket: str) -> bool:
        slot = self.world.now() // VERIFY_TICKET_SLOT
        return any(
            hmac.compare_digest(self.verify_ticket(app, slot - back), ticket)
            for back in range(VERIFY_TICKET_TTL // VERIFY_TICKET_SLOT)
        )

    def verify_ticket_helper(self, request: Request, ctx: CallContext) -> Response:
        """Sandbox-only: the current ``component_verify_ticket`` (what the 10-minute push carries)."""
        app = self.world.get_app(request.query.get("component_appid", ""))
        if app is None or app.platform != PLATFORM:
            return json_response({"errcode": 40013, "errmsg": ERRMSG[40013]}, 404)
        ticket, created = self.current_verify_ticket(app)
        return json_response(
            {"component_verify_ticket": ticket, "create_time": created, "expires_in": VERIFY_TICKET_TTL}
        )

    def component_token(self, request: Request, ctx: CallContext) -> Response:
        """``POST /cgi-bin/component/api_component_token`` → ``component_access_token`` (2 h)."""
        if request.method != "POST":
            raise wx_error(43002)
        p = self._json_body(request)
        app = self._app_by_credentials(
            str(p.get("component_appid") or ""), str(p.get("component_appsecret") or "")
        )
        ctx.app = app
        if app.app_type == "self":
            raise wx_error(40013, "invalid appid hint: [not a third-party platform]")
        if not self._ticket_ok(app, str(p.get("component_verify_ticket") or "")):
            raise wx_error(61006)
        with self._token_lock:
            now = self.world.now()
            live = [t for t in self._tokens_of(app.app_key, "", "component") if not self.token_error(t)]
            current = max(live, key=lambda t: (t.created_at, t.access_expires_at), default=None)
            if current is not None and current.access_expires_at - now > STABLE_RENEW_WINDOW:
                token = current
            else:
                token = self._issue(app.app_key, "", "component")
        return json_response(
            {
                "component_access_token": token.access_token,
                "expires_in": max(0, token.access_expires_at - now),
            }
        )

    def _authorizer_refresh_key(self, app_key: str, shop_id: str) -> str:
        return f"wechat:authorizer_refresh:{app_key}:{shop_id}"

    def _authorizer_grant(self, app: App, shop_id: str, refresh: str) -> dict[str, Any]:
        with self._token_lock:
            previous = self._tokens_of(app.app_key, shop_id, "authorizer")
            token = self._issue(app.app_key, shop_id, "authorizer")
            self._supersede(previous, token, PLAIN_TOKEN_GRACE)
        return {
            "authorizer_appid": shop_appid(self.world, shop_id),
            "authorizer_access_token": token.access_token,
            "expires_in": ACCESS_TOKEN_TTL,
            "authorizer_refresh_token": refresh,
        }

    def query_auth(self, request: Request, ctx: CallContext) -> Response:
        """``POST /cgi-bin/component/api_query_auth`` – exchange the merchant's ``authorization_code``."""
        p, app = ctx.params, ctx.app
        assert app is not None
        if str(p.get("component_appid") or "") != app.app_key:
            raise wx_error(40013)
        code = str(p.get("authorization_code") or "")
        if not code:
            raise invalid_args("authorization_code is required")
        try:
            grant = self.world.consume_oauth_code(code, app.app_key)
        except NotFound:
            raise wx_error(61009) from None
        except Conflict:
            raise wx_error(61010) from None
        ctx.shop = self.world.get_shop(grant.shop_id)
        refresh = "refreshtoken@@@" + self.world.new_secret(f"wechat-authorizer-refresh:{app.app_key}", 43)
        self.world.meta_set(self._authorizer_refresh_key(app.app_key, grant.shop_id), refresh)
        info = self._authorizer_grant(app, grant.shop_id, refresh)
        info["func_info"] = [{"funcscope_category": {"id": scope}} for scope in FUNC_SCOPES]
        return json_response({"authorization_info": info})

    def authorizer_token(self, request: Request, ctx: CallContext) -> Response:
        """``POST /cgi-bin/component/api_authorizer_token`` – a new ``authorizer_access_token``."""
        p, app = ctx.params, ctx.app
        assert app is not None
        if str(p.get("component_appid") or "") != app.app_key:
            raise wx_error(40013)
        shop = shop_of_appid(self.world, str(p.get("authorizer_appid") or ""))
        if shop is None:
            raise wx_error(40013, "invalid appid hint: [authorizer_appid]")
        ctx.shop = shop
        auth = self.world.authorization(app.app_key, shop.shop_id)
        if auth is None or auth.status != "active":
            raise wx_error(61003)
        refresh = str(p.get("authorizer_refresh_token") or "")
        stored = self.world.meta_get(self._authorizer_refresh_key(app.app_key, shop.shop_id))
        if not refresh or not stored or not hmac.compare_digest(stored, refresh):
            raise wx_error(61023)
        info = self._authorizer_grant(app, shop.shop_id, refresh)
        info.pop("authorizer_appid")
        return json_response(info)

    def authorize_page(self, request: Request, ctx: CallContext) -> Response:
        """The merchant's consent page (stands in for the service market / componentloginpage)."""
        params = request.query if request.method == "GET" else request.form()
        appid = params.get("component_appid") or params.get("appid") or ""
        app = self.world.get_app(appid)
        if app is None or app.platform != PLATFORM or app.app_type == "self":
            return html_response("<h1>第三方平台不存在</h1><p>缺少有效的 appid / component_appid</p>", 404)
        state = params.get("state", "")
        target = params.get("redirect_uri", "") or app.redirect_uri
        if request.method == "POST":
            shop = self.world.get_shop(params.get("shop_id", ""))
            if shop is None or shop.platform != PLATFORM:
                return html_response("<h1>店铺不存在</h1>", 400)
            code = self.world.create_oauth_code(app.app_key, shop.shop_id, state, ttl=AUTH_CODE_TTL)
            if target:
                return redirect(
                    target, {"auth_code": code.code, "expires_in": str(AUTH_CODE_TTL), "state": state}
                )
            return html_response(
                f"<h1>授权成功</h1><p>auth_code: <code id='auth_code'>{html.escape(code.code)}</code></p>"
            )
        shops = "".join(
            f"<li><label><input type='radio' name='shop_id' value='{html.escape(s.shop_id)}'{' checked' if i == 0 else ''}> "
            f"{html.escape(s.name)}（{html.escape(shop_username(self.world, s.shop_id))}）</label></li>"
            for i, s in enumerate(self.world.shops(PLATFORM))
        )
        hidden = "".join(
            f"<input type='hidden' name='{k}' value='{html.escape(v)}'>"
            for k, v in (
                ("component_appid", app.app_key),
                ("state", state),
                ("redirect_uri", params.get("redirect_uri", "")),
            )
        )
        page = f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>微信小店授权（沙箱）</title>
<style>body{{font-family:sans-serif;max-width:560px;margin:40px auto;color:#222}}li{{list-style:none;margin:6px 0}}
button{{background:#07c160;color:#fff;border:0;padding:10px 28px;border-radius:4px;font-size:16px}}</style></head>
<body><h2>第三方平台「{html.escape(app.name)}」申请获得以下权限</h2>
<p>商品与库存（129）、物流与电子面单（130）、订单与售后（131）、资金（138/141）。请选择要授权的小店：</p>
<form method="post" action="/authorize">{hidden}<ul>{shops}</ul><button type="submit">确认授权</button></form>
<p style="color:#888">这是 ecbao 平台沙箱，不是真实的微信小店。回调地址：{html.escape(target or "（未配置，将在本页显示 auth_code）")}</p></body></html>"""
        return html_response(page)

    # ------------------------------------------------------------------ authentication

    @staticmethod
    def _json_body(request: Request) -> dict[str, Any]:
        if not request.body.strip():
            raise wx_error(44002)
        try:
            params = json.loads(request.body)
        except ValueError:
            raise wx_error(47001) from None
        if not isinstance(params, dict):
            raise wx_error(47001)
        return params

    def limits(self) -> WechatLimits:
        version = self.world.settings_version()[0]
        if self._limits_cache is None or self._limits_cache[0] != version:
            self._limits_cache = (version, WechatLimits.load(self.world))
        return self._limits_cache[1]

    def _count_quota(self, app_key: str, path: str) -> None:
        limits = self.limits()
        minute_cap = limits.path_minute_quota.get(path, limits.minute_quota)
        now = self.world.now()
        minute = now // 60
        day = time.strftime("%Y-%m-%d", time.gmtime(now + SHANGHAI_OFFSET))
        with self._quota_lock:
            if limits.daily_quota and self._daily_calls.get((app_key, path, day), 0) >= limits.daily_quota:
                raise wx_error(45009)
            if minute_cap and self._minute_calls.get((app_key, path, minute), 0) >= minute_cap:
                raise wx_error(45011)
            self._minute_calls[(app_key, path, minute)] = (
                self._minute_calls.get((app_key, path, minute), 0) + 1
            )
            self._daily_calls[(app_key, path, day)] = self._daily_calls.get((app_key, path, day), 0) + 1
            if len(self._minute_calls) > 10_000:
                self._minute_calls = {k: v for k, v in self._minute_calls.items() if k[2] >= minute - 1}

    def authenticate(self, request: Request, route: Route) -> CallContext:
        ctx = CallContext()
        if route.auth in ("none", "credential"):
            return ctx
        if request.method != "POST":
            raise wx_error(43002)
        value = request.query.get("access_token") or request.query.get("component_access_token") or ""
        if not value:
            raise wx_error(41001)
        token = self.world.get_token(value)
        wanted = ("component",) if route.auth == "component" else ("cgi", "stable", "authorizer")
        if token is not None and self.token_kind(token) not in wanted:
            token = None
        error = self.token_error(token)
        if error:
            raise wx_error(error)
        assert token is not None
        app = self.world.get_app(token.app_key)
        if app is None:
            raise wx_error(40001)
        ctx.app, ctx.token = app, token
        if route.auth == "token":
            auth = self.world.authorization(app.app_key, token.shop_id)
            if auth is None or auth.status != "active":
                raise wx_error(40001)
            self._check_ip(app, request, 61004)
            if not app.may_call(request.path):
                raise wx_error(48001)
            ctx.shop = self.world.get_shop(token.shop_id)
        self._count_quota(app.app_key, request.path)
        ctx.params = self._json_body(request)
        return ctx

    # ------------------------------------------------------------------ shop info

    def basics_info(self, request: Request, ctx: CallContext) -> Response:
        """``/channels/ec/basics/info/get`` – the shop's nickname and original id (``username``)."""
        shop = ctx.shop
        assert shop is not None
        return self.ok(
            {
                "info": {
                    "nickname": shop.name,
                    "headimg_url": f"https://sandbox.invalid/wx/{shop.shop_id}.png",
                    "subject_type": "企业",
                    "status": "opening",
                    "username": shop_username(self.world, shop.shop_id),
                }
            }
        )

    # ------------------------------------------------------------------ orders

    def _shop_order(self, ctx: CallContext, order_id: str) -> Order:
        order = self.world.get_order(order_id)
        if order is None or order.shop_id != ctx.shop_id:
            raise wx_error(ERR_ORDER_NOT_FOUND)
        return order

    @staticmethod
    def _range(p: dict[str, Any], name: str) -> tuple[int, int] | None:
        value = p.get(name)
        if value in (None, {}):
            return None
        if not isinstance(value, dict):
            raise invalid_args(f"{name} must be an object")
        start, end = _int(value, "start_time"), _int(value, "end_time")
        if start is None or end is None:
            raise invalid_args(f"{name}.start_time and end_time are required")
        if end < start:
            raise invalid_args(f"{name}.end_time is before start_time")
        if end - start > MAX_WINDOW:
            raise invalid_args(f"{name} must not exceed 7 days")
        return start, end

    @staticmethod
    def _page_size(p: dict[str, Any], default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE) -> int:
        size = _int(p, "page_size", default)
        assert size is not None
        if size < 1 or size > maximum:
            raise invalid_args(f"page_size must be 1..{maximum}")
        return size

    def _page(
        self, p: dict[str, Any], scope: str, load: Callable[[], list[str]], size: int
    ) -> tuple[list[str], str, bool]:
        """Serve one page of a frozen id list (see ``order_list``)."""
        key = str(p.get("next_key") or "")
        if key:
            sid, offset = decode_next_key(key)
            ids = self.snapshots.get(sid, scope)
            if ids is None:
                raise invalid_args("next_key is invalid or expired, start again without next_key")
        else:
            ids, offset = load(), 0
            sid = self.snapshots.create(scope, ids)
        page = ids[offset : offset + size]
        end = offset + len(page)
        return page, encode_next_key(sid, end), end < len(ids)

    def order_list(self, request: Request, ctx: CallContext) -> Response:
        """``/channels/ec/order/list/get`` (§3.4): ids only, ``next_key`` + ``has_more``.

        Paging is over a snapshot: the first call (no ``next_key``) freezes the ids matching
        the filter at that moment, sorted by (update_time, order_id); each ``next_key`` is an
        offset into that list. So an order that was in the window when paging began is
        returned exactly once even if it changes (or leaves the window) meanwhile, and orders
        that enter the window later belong to the next window's walk. Ranges are
        ``start_time ≤ t < end_time`` [GUESS on the exclusive end].
        """
        p = ctx.params
        created = self._range(p, "create_time_range")
        updated = self._range(p, "update_time_range")
        if created is None and updated is None:
            raise invalid_args("create_time_range or update_time_range is required")
        status = _int(p, "status")
        if status is not None and status not in ORDER_STATUSES:
            raise invalid_args("status is invalid")
        size = self._page_size(p)
        scope = json.dumps(["orders", ctx.shop_id, created, updated, status])

        def load() -> list[str]:
            _, orders = self.world.query_orders(
                ctx.shop_id,
                update_start=updated[0] if updated else None,
                update_end=updated[1] - 1 if updated else None,
                create_start=created[0] if created else None,
                create_end=created[1] - 1 if created else None,
                order_by="update_time" if updated else "create_time",
                limit=10**9,
            )
            return [o.order_id for o in orders if status is None or order_status(o) == status]

        ids, next_key, has_more = self._page(p, scope, load, size)
        return self.ok({"order_id_list": ids, "next_key": next_key, "has_more": has_more})

    def order_get(self, request: Request, ctx: CallContext) -> Response:
        order = self._shop_order(ctx, _id(ctx.params, "order_id"))
        return self.ok({"order": self.render.order(order)})

    def delivery_companies(self, request: Request, ctx: CallContext) -> Response:
        return self.ok(
            {
                "company_list": [
                    {"delivery_id": DELIVERY_IDS[k], "delivery_name": CARRIERS[k][0]} for k in DELIVERY_IDS
                ]
            }
        )

    def _allocate(
        self, order: Order, product_infos: list[Any], planned: dict[str, int]
    ) -> list[tuple[str, int]]:
        """(product_id, sku_id, product_cnt) → (line_id, qty), filling lines in order."""
        items: list[tuple[str, int]] = []
        for info in product_infos:
            if not isinstance(info, dict):
                raise invalid_args("product_infos")
            pid, sid, cnt = (
                str(info.get("product_id") or ""),
                str(info.get("sku_id") or ""),
                _int(info, "product_cnt", 0) or 0,
            )
            if cnt <= 0:
                raise wx_error(ERR_SHIP_ITEMS, f"{ERRMSG[ERR_SHIP_ITEMS]}: product_cnt must be positive")
            lines = [ln for ln in order.lines if ln.product_id == pid and ln.sku_id == sid]
            if not lines:
                raise wx_error(ERR_SHIP_ITEMS, f"{ERRMSG[ERR_SHIP_ITEMS]}: {pid}/{sid} is not in the order")
            for line in lines:
                left = line.qty - line.refunded_qty - line.shipped_qty - planned.get(line.line_id, 0)
                take = min(left, cnt)
                if take > 0:
                    items.append((line.line_id, take))
                    planned[line.line_id] = planned.get(line.line_id, 0) + take
                    cnt -= take
            if cnt:
                raise wx_error(
                    ERR_SHIP_ITEMS, f"{ERRMSG[ERR_SHIP_ITEMS]}: {pid}/{sid} ships more than is left"
                )
        return items

    def delivery_send(self, request: Request, ctx: CallContext) -> Response:
        """``/channels/ec/order/delivery/send`` (§3.5): each ``delivery_list`` element is one
        package; listing only part of the order is a partial shipment (20 → 21 → 30)."""
        p = ctx.params
        order = self._shop_order(ctx, _id(p, "order_id"))
        deliveries = p.get("delivery_list") or []
        if not isinstance(deliveries, list) or not deliveries:
            raise invalid_args("delivery_list is required")
        if order_status(order) not in (STATUS_PAID, STATUS_PART_SHIPPED):
            raise wx_error(ERR_ORDER_STATE)
        # [GUESS] lines a live dropship holds are the supplier's to ship, not the merchant's
        planned: dict[str, int] = {}
        for ds in dropship.of_order(self.world, order.order_id):
            if ds.status == dropship.ASSIGNED:
                for line in ds.lines:
                    planned[line.line_id] = planned.get(line.line_id, 0) + line.qty - line.shipped_qty
        parcels = []
        for delivery in deliveries:
            if not isinstance(delivery, dict):
                raise invalid_args("delivery_list")
            if _int(delivery, "deliver_type", 1) != 1:
                raise wx_error(ERR_DELIVER_TYPE)  # sandbox goods are all physical
            carrier = CARRIER_OF_DELIVERY_ID.get(str(delivery.get("delivery_id") or ""))
            if carrier is None:
                raise wx_error(ERR_CARRIER)
            waybill = str(delivery.get("waybill_id") or "")
            if not waybill:
                raise invalid_args("waybill_id is required")
            infos = delivery.get("product_infos") or []
            if not isinstance(infos, list) or not infos:
                raise invalid_args("product_infos is required")
            parcels.append(ShipmentSpec(carrier, waybill, self._allocate(order, infos, planned)))
        try:
            self.world.ship_order(order.order_id, parcels)
        except Conflict as exc:
            raise wx_error(ERR_REFUND_PENDING if "refund" in str(exc) else ERR_ORDER_STATE) from None
        except InvalidArgument as exc:
            raise wx_error(ERR_SHIP_ITEMS, f"{ERRMSG[ERR_SHIP_ITEMS]}: {exc}") from None
        return self.ok()

    # ------------------------------------------------------------------ 代发管理 (dropship, sandbox/dropship.py)

    def _ds_id(self, value: Any, key: str) -> int | str:
        """ids in dropship replies: numbers for some records, strings for others (as WeChat's samples)."""
        return (
            int(value)
            if untidy.hit(self.world, "wechat.dropship_numbers", key) and str(value).isdigit()
            else str(value)
        )

    def render_dropship(self, ds: dropship.Dropship) -> dict[str, Any]:
        """``dropship_order`` as ``/dropship/get`` answers it. Fields beyond the SKIT model
        (ds_order_id, order_id, supplier_appid, supplier_name, status, create/update_time) are
        [GUESS]: the lines (``product_infos`` with ``delivery_deadline``, operations §1) and the
        supplier's parcels (``delivery_info.delivery_product_info``, the order's own shape)."""
        sparse = untidy.hit(self.world, "wechat.dropship_sparse", ds.ds_id)
        lines = []
        for line in ds.lines:
            info: dict[str, Any] = {
                "product_id": self._ds_id(line.product_id, ds.ds_id),
                "sku_id": self._ds_id(line.sku_id, ds.ds_id),
                "product_cnt": line.qty,
                "shipped_cnt": line.shipped_qty,
            }
            if not sparse:
                info["delivery_deadline"] = line.delivery_deadline
            lines.append(info)
        by_line = {line.line_id: line for line in ds.lines}
        parcels = [
            {"waybill_id": w.tracking_no, "delivery_id": DELIVERY_IDS.get(w.carrier, w.carrier),
             "delivery_time": w.ship_time, "ewaybill_order_code": w.ewaybill_order_code,
             "product_infos": [{"product_id": str(by_line[i["line_id"]].product_id), "sku_id": str(by_line[i["line_id"]].sku_id),
                                "product_cnt": i["qty"]} for i in w.items]}
            for w in ds.waybills
        ]  # fmt: skip
        out: dict[str, Any] = {
            "ds_order_id": self._ds_id(ds.ds_id, ds.ds_id),
            "order_id": self._ds_id(ds.order_id, ds.ds_id),
            "supplier_appid": ds.supplier,
            "status": DS_STATUS[ds.status],
            "create_time": ds.create_time,
            "update_time": ds.update_time,
            "product_infos": lines,
            "delivery_info": {"delivery_product_info": parcels},
        }
        if not sparse:
            out["supplier_name"] = dropship.supplier_name(self.world, ds.shop_id, ds.supplier) or ""
        return out

    def _shop_dropship(self, ctx: CallContext, ds_id: str) -> dropship.Dropship:
        ds = dropship.get(self.world, ds_id) if ds_id else None
        if ds is None or ds.shop_id != ctx.shop_id:
            raise wx_error(ERR_DS_NOT_FOUND)
        return ds

    def dropship_assign(self, request: Request, ctx: CallContext) -> Response:
        """``/channels/ec/order/dropship/assign`` ``{order_id, supplier_appid,
        dropship_product_list[]{spu_id, sku_id, product_cnt}}`` (operations §1, WX-SKIT): by line
        and quantity; the reply carries no ds_order_id (read it back with ``/dropship/list``)."""
        p = ctx.params
        order = self._shop_order(ctx, _id(p, "order_id"))
        supplier = str(p.get("supplier_appid") or "")
        wanted = p.get("dropship_product_list") or []
        if not supplier or not isinstance(wanted, list) or not wanted:
            raise invalid_args("supplier_appid and dropship_product_list are required")
        held = dropship.assigned_quantities(self.world, order.order_id)
        items: list[tuple[str, int]] = []
        for entry in wanted:
            if not isinstance(entry, dict):
                raise invalid_args("dropship_product_list")
            pid, sid = (
                str(entry.get("spu_id") or entry.get("product_id") or ""),
                str(entry.get("sku_id") or ""),
            )
            cnt = _int(entry, "product_cnt", 0) or 0
            if cnt <= 0:
                raise wx_error(ERR_DS_OVER, f"{ERRMSG[ERR_DS_OVER]}: product_cnt must be positive")
            lines = [ln for ln in order.lines if ln.product_id == pid and ln.sku_id == sid]
            if not lines:
                raise wx_error(ERR_SHIP_ITEMS, f"{ERRMSG[ERR_SHIP_ITEMS]}: {pid}/{sid} is not in the order")
            for line in lines:  # several lines of one SKU: fill them in order
                planned = sum(q for lid, q in items if lid == line.line_id)
                left = line.qty - line.refunded_qty - line.shipped_qty - held.get(line.line_id, 0) - planned
                take = min(left, cnt)
                if take > 0:
                    items.append((line.line_id, take))
                    cnt -= take
            if cnt:
                raise wx_error(ERR_DS_OVER, f"{ERRMSG[ERR_DS_OVER]}: {pid}/{sid}")
        try:
            dropship.assign(
                self.world, shop_id=ctx.shop_id, order_id=order.order_id, supplier=supplier, items=items
            )
        except dropship.NotBound:
            raise wx_error(ERR_DS_NOT_BOUND) from None
        except dropship.OverAssigned:
            raise wx_error(ERR_DS_OVER) from None
        except Conflict:
            raise wx_error(ERR_DS_ORDER_STATE) from None
        return self.ok()

    def dropship_cancel(self, request: Request, ctx: CallContext) -> Response:
        """``/channels/ec/order/dropship/cancel`` ``{ds_order_id, order_id}``: the whole dropship
        [choice: the SDK's optional ``dropship_product_list`` (partial cancel) is refused]."""
        p = ctx.params
        ds = self._shop_dropship(ctx, _id(p, "ds_order_id"))
        if p.get("order_id") not in (None, "") and _id(p, "order_id") != ds.order_id:
            raise wx_error(ERR_DS_NOT_FOUND)
        if p.get("dropship_product_list"):
            raise invalid_args("partial cancellation is not supported; cancel the whole ds_order_id")
        try:
            dropship.cancel(self.world, ds.ds_id, reason="商家取消分配")
        except Conflict:
            raise wx_error(ERR_DS_SHIPPED) from None
        return self.ok()

    def dropship_get(self, request: Request, ctx: CallContext) -> Response:
        ds = self._shop_dropship(ctx, _id(ctx.params, "ds_order_id"))
        return self.ok({"dropship_order": self.render_dropship(ds)})

    def dropship_list(self, request: Request, ctx: CallContext) -> Response:
        """``/channels/ec/order/dropship/list``: ids only (``ds_order_id_list``), ``total``,
        ``has_more``, ``next_page{offset, limit, next_key}``; filters ``order_id``,
        ``supplier_appid``, ``status``, ``create_time_range`` / ``update_time_range`` (≤ 7 days)."""
        p = ctx.params
        page = p.get("page_info") or {}
        if not isinstance(page, dict):
            raise invalid_args("page_info")
        limit = _int(page, "limit", DS_LIST_MAX) or DS_LIST_MAX
        offset = _int(page, "offset", 0) or 0
        if limit < 1 or limit > DS_LIST_MAX or offset < 0:
            raise invalid_args(f"page_info.limit must be 1..{DS_LIST_MAX}")
        status = _int(p, "status", 0) or 0
        names = {v: k for k, v in DS_STATUS.items()}
        if status and status not in names:
            raise invalid_args("status")
        order_id = _id(p, "order_id") if p.get("order_id") not in (None, "") else ""
        found = dropship.query(
            self.world, ctx.shop_id, supplier=str(p.get("supplier_appid") or ""), status=names.get(status, ""),
            order_id=order_id, updated=self._range(p, "update_time_range"), created=self._range(p, "create_time_range"),
        )  # fmt: skip
        ids = [ds.ds_id for ds in found[offset : offset + limit]]
        more = offset + len(ids) < len(found)
        return self.ok({"ds_order_id_list": ids, "total": len(found), "has_more": more,
                        "next_page": {"offset": offset + len(ids), "limit": limit, "next_key": str(offset + len(ids))}})  # fmt: skip

    def sensitive_decode(self, request: Request, ctx: CallContext) -> Response:
        """``/channels/ec/order/sensitiveinfo/decode``: the whole ``address_info`` in plain text,
        counted against the shop's daily decrypt quota; refused for unpaid and long-finished orders."""
        order = self._shop_order(ctx, _id(ctx.params, "order_id"))
        now = self.world.now()
        status = order_status(order)
        finished = order.complete_time or order.receive_time or order.cancel_time
        if status in (STATUS_UNPAID, STATUS_CANCELLED) or (
            finished and now - finished > DECRYPT_REFUSE_AFTER
        ):
            raise wx_error(ERR_DECODE_REFUSED)
        if self.world.consume_decrypt_quota(ctx.shop_id, 1) < 1:
            raise wx_error(ERR_DECODE_QUOTA)
        return self.ok({"address_info": self.render.address_info(order, plain=True)})

    # ------------------------------------------------------------------ products and stock

    def _shop_product(self, ctx: CallContext, product_id: str) -> Product:
        product = self.world.get_product(product_id)
        if product is None or product.platform != PLATFORM:
            raise wx_error(10020052)
        if product.shop_id != ctx.shop_id:
            raise wx_error(10020050)
        return product

    def product_list(self, request: Request, ctx: CallContext) -> Response:
        """``/channels/ec/product/list/get``: product ids (``next_key`` paging, ``total_num``)."""
        p = ctx.params
        status = _int(p, "status")
        size = self._page_size(p, default=10, maximum=30)  # [choice] 30 per page
        scope = json.dumps(["products", ctx.shop_id, status])

        def load() -> list[str]:
            _, products = self.world.products(ctx.shop_id, limit=10**9)
            wanted = [
                x
                for x in products
                if (PRODUCT_STATUS.get(x.status) == status if status is not None else x.status != "deleted")
            ]
            return [x.product_id for x in sorted(wanted, key=lambda x: x.product_id)]

        ids, next_key, _ = self._page(p, scope, load, size)
        sid, _offset = decode_next_key(next_key)
        total = len(self.snapshots.get(sid, scope) or [])
        return self.ok({"product_ids": ids, "next_key": next_key, "total_num": total})

    def product_get(self, request: Request, ctx: CallContext) -> Response:
        product = self._shop_product(ctx, _id(ctx.params, "product_id"))
        rendered = self.render.product(product)
        data_type = _int(ctx.params, "data_type", 1)
        if data_type == 2:
            return self.ok({"edit_product": rendered})
        if data_type == 3:
            return self.ok({"product": rendered, "edit_product": rendered})
        return self.ok({"product": rendered})

    def product_add(self, request: Request, ctx: CallContext) -> Response:
        """``/channels/ec/product/add`` (subset): title, head_imgs, cats_v2, skus[], listing."""
        p = ctx.params
        if not p.get("title"):
            raise invalid_args("title is required")
        imgs = p.get("head_imgs") or []
        if not isinstance(imgs, list) or not imgs:
            raise invalid_args("head_imgs is required")
        skus_in = p.get("skus") or []
        if not isinstance(skus_in, list) or not skus_in:
            raise invalid_args("skus is required")
        skus = []
        for sku in skus_in:
            price, stock = _int(sku, "sale_price"), _int(sku, "stock_num", 0)
            if price is None or price <= 0:
                raise invalid_args("skus.sale_price must be a positive number of fen")
            attrs = [
                [str(a.get("attr_key", "")), str(a.get("attr_value", ""))] for a in sku.get("sku_attrs") or []
            ]
            skus.append({"code": str(sku.get("sku_code") or ""), "spec": attrs, "price_fen": price, "stock": stock or 0,
                         "out_sku_id": str(sku.get("out_sku_id") or "")})  # fmt: skip
        category = "/".join(str(c.get("cat_id", "")) for c in p.get("cats_v2") or [] if isinstance(c, dict))
        try:
            product = self.world.create_product(
                shop_id=ctx.shop_id, title=str(p["title"]), skus=skus, category=category, pic=str(imgs[0]),
                status="online" if p.get("listing") in (True, 1, "1", "true") else "offline",
                out_product_id=str(p.get("out_product_id") or ""),
            )  # fmt: skip
        except InvalidArgument as exc:
            raise invalid_args(str(exc)) from None
        return self.ok(
            {"data": {"product_id": product.product_id, "create_time": fmt_time(product.create_time)}}
        )

    def _shop_sku(self, ctx: CallContext, p: dict[str, Any]) -> tuple[Product, Sku]:
        product = self._shop_product(ctx, _id(p, "product_id"))
        sku_id = _id(p, "sku_id")
        sku = next((s for s in product.skus if s.sku_id == sku_id), None)
        if sku is None:
            raise wx_error(10020052, "sku不存在")
        return product, sku

    def stock_get(self, request: Request, ctx: CallContext) -> Response:
        _, sku = self._shop_sku(ctx, ctx.params)
        return self.ok(
            {
                "data": {
                    "normal_stock_num": sku.stock,
                    "limited_discount_stock_num": 0,
                    "warehouse_stocks": [],
                    "total_stock_num": sku.stock,
                }
            }
        )

    def stock_update(self, request: Request, ctx: CallContext) -> Response:
        """``/channels/ec/product/stock/update`` (§3.6): diff_type 1 increase, 2 decrease, 3 set."""
        p = ctx.params
        product, sku = self._shop_sku(ctx, p)
        diff_type, num = _int(p, "diff_type"), _int(p, "num")
        if diff_type not in (1, 2, 3):
            raise invalid_args("diff_type must be 1, 2 or 3")
        if num is None or num < 0 or (num == 0 and diff_type != 3):
            raise invalid_args("num must be positive (or ≥ 0 with diff_type 3)")
        if product.status == "deleted":
            raise wx_error(10020054)
        cap = self.limits().stock_updates_per_sku_per_minute
        if cap:
            now = self.world.clock.now()
            with self._quota_lock:
                recent = self._sku_updates.setdefault(sku.sku_id, deque())
                while recent and now - recent[0] >= 60:
                    recent.popleft()
                if len(recent) >= cap:
                    raise wx_error(10020112)
                recent.append(now)
        try:
            if diff_type == 1:
                self.world.adjust_stock(sku.sku_id, num)
            elif diff_type == 2:
                self.world.adjust_stock(sku.sku_id, -num)
            else:
                self.world.set_stock(sku.sku_id, num)
        except OutOfStock:
            raise wx_error(10020219) from None
        except (NotFound, InvalidArgument):
            raise wx_error(10020054) from None
        return self.ok()

    # ------------------------------------------------------------------ after-sales

    def aftersale_list(self, request: Request, ctx: CallContext) -> Response:
        """``/channels/ec/aftersale/getaftersalelist`` (§3.7): ids, ``next_key``, ``has_more``.

        ``begin_create_time``/``end_create_time`` as documented; ``begin_update_time``/
        ``end_update_time`` as well [GUESS: the reference could not confirm them]. Same
        snapshot paging as the order list; ranges ≤ 7 days, end exclusive."""
        p = ctx.params
        ranges = {}
        for kind in ("create", "update"):
            begin, end = _int(p, f"begin_{kind}_time"), _int(p, f"end_{kind}_time")
            if begin is None and end is None:
                continue
            if begin is None or end is None or end < begin:
                raise invalid_args(f"begin_{kind}_time/end_{kind}_time")
            if end - begin > MAX_WINDOW:
                raise invalid_args(f"{kind} time range must not exceed 7 days")
            ranges[kind] = (begin, end)
        if not ranges:
            raise invalid_args("begin_create_time/end_create_time is required")
        size = self._page_size(p, default=MAX_PAGE_SIZE)  # [choice] page_size optional, ≤ 100
        scope = json.dumps(["aftersales", ctx.shop_id, sorted(ranges.items())])

        def load() -> list[str]:
            update, create = ranges.get("update"), ranges.get("create")
            _, items = self.world.query_aftersales(
                ctx.shop_id,
                update_start=update[0] if update else None,
                update_end=update[1] - 1 if update else None,
                apply_start=create[0] if create else None,
                apply_end=create[1] - 1 if create else None,
                limit=10**9,
            )
            return [a.aftersale_id for a in items]

        ids, next_key, has_more = self._page(p, scope, load, size)
        return self.ok({"after_sale_order_id_list": ids, "next_key": next_key, "has_more": has_more})

    # ---- answers (§3.7 / operations §3). Each moves the world, which pushes channels_ec_aftersale_update.
    def _my_aftersale(self, ctx: CallContext) -> AfterSale:
        a = self.world.get_aftersale(_id(ctx.params, "after_sale_order_id"))
        if a is None or a.shop_id != ctx.shop_id:
            raise wx_error(10020000)
        return a

    def _refund_call(self, a: AfterSale) -> None:
        """One refund call per order per minute (WX-ACC): a second within 60 s is refused with
        10020003, the seconds left in ``errmsg`` ("retry after N s")."""
        now = self.world.now()
        with self._refund_lock:
            last = self._refund_calls.get(a.order_id)
            if last is not None and now - last < REFUND_CALL_INTERVAL:
                left = REFUND_CALL_INTERVAL - (now - last)
                raise wx_error(10020003, f"{ERRMSG[10020003]} retry after {left} s")
            self._refund_calls[a.order_id] = now

    def _step(self, step: Callable[[], Any]) -> Response:
        try:
            step()
        except WorldError:
            raise wx_error(10020001) from None
        return self.ok()

    def aftersale_accept(self, request: Request, ctx: CallContext) -> Response:
        """``/channels/ec/aftersale/acceptapply`` {after_sale_order_id, address_id?}: REFUND → the
        refund is paid; RETURN/EXCHANGE first call → the buyer sends the goods back to
        ``address_id`` (required); RETURN second call (goods received) → the refund is paid."""
        a = self._my_aftersale(ctx)
        status, kind = AfterSaleStatus(a.status), AfterSaleType(a.type)
        address = str(ctx.params.get("address_id") or "")
        if status == AfterSaleStatus.WAIT_SELLER_AGREE and kind in (
            AfterSaleType.RETURN_REFUND,
            AfterSaleType.EXCHANGE,
        ):
            if not address:
                raise invalid_args("address_id is required to accept a return")
            if address not in {x["address_id"] for x in self.world.return_addresses(ctx.shop_id)}:
                raise wx_error(10020004)
            return self._step(lambda: self.world.agree_aftersale(a.aftersale_id, return_address_id=address))
        refunds = (status == AfterSaleStatus.WAIT_SELLER_AGREE and kind in (AfterSaleType.REFUND_SHIPPED, AfterSaleType.REFUND_UNSHIPPED)) or (
            status == AfterSaleStatus.WAIT_SELLER_CONFIRM and kind == AfterSaleType.RETURN_REFUND)  # fmt: skip
        if not refunds:
            raise wx_error(10020001)
        self._refund_call(a)
        return self._step(lambda: self.world.agree_aftersale(a.aftersale_id))

    def aftersale_reject(self, request: Request, ctx: CallContext) -> Response:
        """``/channels/ec/aftersale/rejectapply`` {after_sale_order_id, reject_reason_type (required),
        reject_reason}."""
        a = self._my_aftersale(ctx)
        kind = _int(ctx.params, "reject_reason_type")
        if kind is None:
            raise invalid_args("reject_reason_type is required")
        reason = next((r for r in REJECT_REASONS if r["reject_reason_type"] == kind), None)
        if reason is None:
            raise wx_error(10020005)
        text = str(ctx.params.get("reject_reason") or reason["reject_reason_type_text"])
        return self._step(lambda: self.world.reject_aftersale(a.aftersale_id, text, reason_code=str(kind)))

    def aftersale_accept_exchange_reship(self, request: Request, ctx: CallContext) -> Response:
        """``/channels/ec/aftersale/acceptexchangereship`` {after_sale_order_id, waybill_id, delivery_id}:
        the returned goods are in, the replacement leaves."""
        a = self._my_aftersale(ctx)
        waybill, delivery = str(ctx.params.get("waybill_id") or ""), str(ctx.params.get("delivery_id") or "")
        if not waybill or not delivery:
            raise invalid_args("waybill_id and delivery_id are required")
        carrier = CARRIER_OF_DELIVERY_ID.get(delivery)
        if carrier is None:
            raise wx_error(10021004)
        return self._step(
            lambda: self.world.reship_exchange(a.aftersale_id, carrier=carrier, tracking_no=waybill)
        )

    def aftersale_reject_reasons(self, request: Request, ctx: CallContext) -> Response:
        """``/channels/ec/aftersale/getrejectreason`` [GUESS: name and shape; the reference names
        ``reject_reason_type`` as required by rejectapply only]: ``reject_reason_list[]``."""
        return self.ok({"reject_reason_list": [dict(r) for r in REJECT_REASONS]})

    def merchant_address_list(self, request: Request, ctx: CallContext) -> Response:
        """``/channels/ec/merchant/address/list`` {offset, limit} → ``address_id_list`` [GUESS: with
        an ``address_list`` of details beside it, so one call gives the shop's return addresses]."""
        rows = self.world.return_addresses(ctx.shop_id)
        details = [{"address_id": x["address_id"], "name": x["name"], "address_info": {
            "user_name": x["name"], "province_name": x["province"], "city_name": x["city"], "county_name": x["district"],
            "detail_info": f"{x['street']}{x['detail']}", "tel_number": x["phone"]},
            "address_type": {"same_city": 0, "pickup": 0}, "send_addr": False, "default_recv": x["is_default"],
            "default_send": False} for x in rows]  # fmt: skip
        return self.ok({"address_id_list": [x["address_id"] for x in rows], "address_list": details})

    def aftersale_get(self, request: Request, ctx: CallContext) -> Response:
        a = self.world.get_aftersale(_id(ctx.params, "after_sale_order_id"))
        if a is None or a.shop_id != ctx.shop_id:
            raise wx_error(10020000)
        order = self.world.get_order(a.order_id)
        assert order is not None
        return self.ok({"after_sale_order": self.render.aftersale(a, order)})

    # ------------------------------------------------------------------ funds

    def _flows(
        self, shop_id: str, start: int, end: int
    ) -> list[tuple[int, SettlementLine, tuple[str, int, int, int]]]:
        rows = self.world.settlements(shop_id, start=start, end=end, limit=10**9)
        return [(row_id, s, f) for row_id, s in rows for f in flows_of(row_id, s)]

    def funds_flow_list(self, request: Request, ctx: CallContext) -> Response:
        """``/channels/ec/funds/getfundsflowlist`` (§3.9): flow ids by bookkeeping time.

        Settlement rows never change, so ``next_key`` is simply the last flow id returned
        (base64); ``page`` × ``page_size`` ≥ 10 000 without ``next_key`` is refused."""
        p = ctx.params
        page = _int(p, "page", 1) or 1
        size = self._page_size(p, default=10)
        start, end = _int(p, "start_time", 0) or 0, _int(p, "end_time")
        if end is None:
            end = self.world.now()
        transaction = str(p.get("transaction_id") or "")
        flows = self._flows(ctx.shop_id, start, end)
        if transaction:
            orders = {}
            for _, s, _f in flows:
                if s.order_id not in orders:
                    orders[s.order_id] = self.world.get_order(s.order_id)
            flows = [
                x
                for x in flows
                if orders[x[1].order_id] is not None and orders[x[1].order_id].payment_no == transaction
            ]
        key = str(p.get("next_key") or "")
        if key:
            try:
                last = _unb64(key)
            except (ValueError, UnicodeDecodeError):
                raise invalid_args("next_key is invalid") from None
            ids = [f[0] for _, _, f in flows]
            offset = ids.index(last) + 1 if last in ids else len([i for i in ids if i <= last])
        else:
            if page < 1 or page * size > 10_000:
                raise invalid_args("page*page_size must stay below 10000, use next_key")
            offset = (page - 1) * size
        chunk = flows[offset : offset + size]
        more = offset + len(chunk) < len(flows)
        next_key = _b64(chunk[-1][2][0]) if chunk else key
        return self.ok({"flow_ids": [f[0] for _, _, f in chunk], "has_more": more, "next_key": next_key})

    def _balance_after(self, shop_id: str, wanted: str) -> int:
        """Running balance after flow ``wanted`` (settlement rows are append-only: cache prefix sums)."""
        last_row, sums = self._balances.get(shop_id, (0, {}))
        total = sums.get("__total__", 0)
        for row_id, s in self.world.settlements(shop_id, start=0, end=2**31, after_id=last_row, limit=10**9):
            for fid, _, _, amount in flows_of(row_id, s):
                total += amount
                sums[fid] = total
            last_row = row_id
        sums["__total__"] = total
        self._balances[shop_id] = (last_row, sums)
        return sums.get(wanted, 0)

    def funds_flow_detail(self, request: Request, ctx: CallContext) -> Response:
        fid = _id(ctx.params, "flow_id")
        parsed = parse_flow_id(fid)
        rows = (
            self.world.settlements(ctx.shop_id, start=0, end=2**31, after_id=parsed[0] - 1, limit=1)
            if parsed
            else []
        )
        if not parsed or not rows or rows[0][0] != parsed[0]:
            raise invalid_args("flow_id does not exist")
        row_id, s = rows[0]
        flow = next((f for f in flows_of(row_id, s) if f[0] == fid), None)
        if flow is None:
            raise invalid_args("flow_id does not exist")
        _, funds_type, flow_type, amount = flow
        order = self.world.get_order(s.order_id)
        transaction = order.payment_no if order else ""
        related = [{"related_type": 1, "order_id": s.order_id, "transaction_id": transaction}]
        if funds_type == FUNDS_AFTERSALE_REFUND and order is not None:
            line = order.line(s.line_id)
            if line.aftersale_id:
                related.insert(
                    0, {"related_type": 2, "aftersale_id": line.aftersale_id, "transaction_id": transaction}
                )
        return self.ok(
            {
                "funds_flow": {
                    "flow_id": fid,
                    "funds_type": funds_type,
                    "funds_type_desc": FUNDS_TYPE_DESC[funds_type],
                    "flow_type": flow_type,
                    "amount": abs(amount),
                    "balance": self._balance_after(ctx.shop_id, fid),
                    "bookkeeping_time": fmt_time(s.settle_time),
                    "remark": s.remark or FUNDS_TYPE_DESC[funds_type],
                    "related_info_list": related,
                }
            }
        )

    def funds_balance(self, request: Request, ctx: CallContext) -> Response:
        self._balance_after(ctx.shop_id, "")
        total = self._balances[ctx.shop_id][1].get("__total__", 0)
        return self.ok({"available_amount": total, "pending_amount": 0, "sub_mchid": ""})

    # ------------------------------------------------------------------ e-waybill (§3.10)

    @staticmethod
    def acct_id(account_id: str) -> str:
        return str(10**10 + int(hashlib.sha256(account_id.encode()).hexdigest()[:12], 16) % (9 * 10**10))

    def _account(self, ctx: CallContext, p: dict[str, Any]) -> Any:
        delivery_id = str(p.get("delivery_id") or "")
        carrier = CARRIER_OF_EWAYBILL_ID.get(delivery_id)
        if carrier is None:
            raise wx_error(10025001, f"{ERRMSG[10025001]}: delivery_id {delivery_id}")
        acct, site = str(p.get("ewaybill_acct_id") or ""), str(p.get("site_code") or "")
        for account in self.world.waybill_accounts(ctx.shop_id, carrier):
            if self.acct_id(account.account_id) == acct and (not site or account.netsite_code == site):
                return account
        raise wx_error(10025001)

    @staticmethod
    def _reject_numeric_ids(p: dict[str, Any]) -> None:
        """The e-waybill APIs refuse uint64 ids that are not strings (10025020, §3.2)."""
        if "ewaybill_order_id" in p and not isinstance(p["ewaybill_order_id"], str):
            raise wx_error(10025020)
        for order in p.get("ec_order_list") or []:
            if not isinstance(order, dict) or not isinstance(order.get("ec_order_id", ""), str):
                raise wx_error(10025020)
            for goods in order.get("goods_list") or []:
                if any(k in goods and not isinstance(goods[k], str) for k in ("product_id", "sku_id")):
                    raise wx_error(10025020)

    def ewaybill_delivery_get(self, request: Request, ctx: CallContext) -> Response:
        carriers = sorted({a.carrier for a in self.world.waybill_accounts(ctx.shop_id)})
        return self.ok(
            {
                "shop_id": ctx.shop_id,
                "list": [
                    {"delivery_id": EWAYBILL_DELIVERY_IDS[c], "delivery_name": CARRIERS[c][0]}
                    for c in carriers
                ],
            }
        )

    def ewaybill_account_get(self, request: Request, ctx: CallContext) -> Response:
        p = ctx.params
        wanted = CARRIER_OF_EWAYBILL_ID.get(str(p.get("delivery_id") or "")) if p.get("delivery_id") else None
        accounts = []
        for a in self.world.waybill_accounts(ctx.shop_id, wanted):
            s = a.sender
            accounts.append(
                {
                    "delivery_id": EWAYBILL_DELIVERY_IDS[a.carrier],
                    "shop_id": ctx.shop_id,
                    "acct_id": self.acct_id(a.account_id),
                    "acct_type": 0,
                    "status": 3,
                    "available": a.available,
                    "allocated": a.allocated,
                    "recycled": a.recycled,
                    "cancel": a.cancelled,
                    "site_info": {
                        "delivery_id": EWAYBILL_DELIVERY_IDS[a.carrier],
                        "site_status": 1,
                        "site_code": a.netsite_code,
                        "site_name": a.netsite_name,
                        "site_fullname": a.netsite_name,
                        "address": {
                            "province_name": s.get("province", ""),
                            "city_name": s.get("city", ""),
                            "district_name": s.get("district", ""),
                            "street_name": s.get("street", ""),
                            "detail_address": s.get("detail", ""),
                        },
                        "contact": {"name": s.get("name", ""), "mobile": s.get("mobile", ""), "phone": ""},
                    },
                }
            )
        return self.ok({"total_num": len(accounts), "account_list": accounts})

    def template_id(self, shop_id: str, carrier: str) -> str:
        return str(6 * 10**10 + int(_h(self.world, "ewaybill-template", shop_id, carrier)[:12], 16) % 10**10)

    def ewaybill_template_get(self, request: Request, ctx: CallContext) -> Response:
        """Each opened carrier has one default 一联单 template [choice: templates are not editable]."""
        wanted = (
            CARRIER_OF_EWAYBILL_ID.get(str(ctx.params.get("delivery_id") or ""))
            if ctx.params.get("delivery_id")
            else None
        )
        out = []
        for carrier in sorted({a.carrier for a in self.world.waybill_accounts(ctx.shop_id, wanted)}):
            tid = self.template_id(ctx.shop_id, carrier)
            out.append(
                {
                    "default_template_id": tid,
                    "delivery_id": EWAYBILL_DELIVERY_IDS[carrier],
                    "template_list": [
                        {
                            "is_default": True,
                            "template_desc": "一联单标准模板",
                            "template_id": tid,
                            "template_name": "一联单",
                            "template_type": "single",
                            "options": [],
                        }
                    ],
                }
            )
        return self.ok({"total_template": out})

    def _ewaybill(self, ctx: CallContext, ewaybill_order_id: str) -> dict[str, Any]:
        record = self.world.idempotent_get(f"wechat:ewaybill:{ctx.shop_id}", ewaybill_order_id)
        if record is None:
            raise wx_error(10025003)
        return record

    @staticmethod
    def _ewaybill_order_id(p: dict[str, Any]) -> str:
        """A self-defined ``ewaybill_order_id``: a uint64, sent as a string."""
        value = _id(p, "ewaybill_order_id")
        if not value.isdigit() or not 0 < int(value) < 2**64:
            raise invalid_args("ewaybill_order_id must be a uint64")
        return value

    def _validated_ewaybill(self, ctx: CallContext, p: dict[str, Any]) -> dict[str, Any]:
        """Check a precreate/create body; the record kept for its ``ewaybill_order_id``."""
        account = self._account(ctx, p)
        sender = p.get("sender") or {}
        if (
            not isinstance(sender, dict)
            or not sender.get("name")
            or not sender.get("mobile")
            or not sender.get("address")
        ):
            raise invalid_args("sender.name/mobile/address are required")
        orders = p.get("ec_order_list") or []
        if not isinstance(orders, list) or not orders:
            raise invalid_args("ec_order_list is required")
        for item in orders:
            self._shop_order(ctx, str(item.get("ec_order_id") or ""))
        # several orders of one receiver (合单) may be taken together: WeChat fills the receiver
        # from the first one [choice: the sandbox does not compare the receivers]
        return {"account_id": account.account_id, "carrier": account.carrier, "order_id": str(orders[0]["ec_order_id"]),
                "order_ids": [str(o["ec_order_id"]) for o in orders],
                "goods": [g for o in orders for g in o.get("goods_list") or []], "sender": sender,
                "create_time": self.world.now()}  # fmt: skip

    def ewaybill_precreate(self, request: Request, ctx: CallContext) -> Response:
        """Validate an e-waybill request and hand out a global ``ewaybill_order_id`` — or keep the
        caller's own (a uint64 string); an id already used is 10025019 电子面单已存在."""
        p = ctx.params
        self._reject_numeric_ids(p)
        record = self._validated_ewaybill(ctx, p)
        scope = f"wechat:ewaybill:{ctx.shop_id}"
        with self.world.write():
            if p.get("ewaybill_order_id") not in (None, ""):
                ewaybill_order_id = self._ewaybill_order_id(p)
            else:
                (ewaybill_order_id,) = self.world.new_id(PLATFORM, "ewaybill")
            if not self.world.idempotent_put(scope, ewaybill_order_id, record):
                raise wx_error(10025019)
        return self.ok({"ewaybill_order_id": ewaybill_order_id})

    def ewaybill_create(self, request: Request, ctx: CallContext) -> Response:
        """Take the number for an ``ewaybill_order_id`` — precreated, or self-defined here (then
        the body is validated as by precreate). A second create for an id that has its number
        is refused with 10025019 电子面单已存在: the caller reads it back with ``/order/get``."""
        p = ctx.params
        self._reject_numeric_ids(p)
        ewaybill_order_id = self._ewaybill_order_id(p)
        scope = f"wechat:ewaybill:{ctx.shop_id}"
        with self.world.write():
            record = self.world.idempotent_get(scope, ewaybill_order_id)
            if record is None:
                record = self._validated_ewaybill(ctx, p)
                self.world.idempotent_put(scope, ewaybill_order_id, record)
            account = self._account(ctx, p)
            if account.account_id != record["account_id"]:
                raise invalid_args("account differs from precreate")
            if str(p.get("template_id") or "") not in (
                self.template_id(ctx.shop_id, account.carrier),
                "single",
            ):
                raise wx_error(10025004)
            created = f"wechat:ewaybill-created:{ctx.shop_id}"
            if self.world.idempotent_get(created, ewaybill_order_id) is not None:
                raise wx_error(10025019)
            try:
                waybill = self.world.issue_waybill(
                    shop_id=ctx.shop_id, carrier=account.carrier, order_id=record["order_id"],
                    package_id=ewaybill_order_id, items=record["goods"], account_id=account.account_id,
                )  # fmt: skip
            except NoWaybillAccount:
                raise wx_error(10025002) from None
            done = {"waybill_id": waybill.tracking_no, "create_time": waybill.create_time}
            self.world.idempotent_put(created, ewaybill_order_id, done)
        return self.ok(
            {"ewaybill_order_id": ewaybill_order_id, "waybill_id": done["waybill_id"], "delivery_error_msg": "",
             "waybill_id_list": self._waybill_id_list(waybill)}
        )  # fmt: skip

    def _waybill_id_list(self, waybill: Any) -> list[dict[str, Any]]:
        """The parent (``waybill_type`` 1) and its children (2) [choice: type numbers]."""
        out = [{"waybill_id": waybill.tracking_no, "waybill_type": 1, "create_time": waybill.create_time}]
        for child in filter(None, map(self.world.get_waybill, waybill.children)):
            out.append({"waybill_id": child.tracking_no, "waybill_type": 2, "create_time": child.create_time})
        return out

    def _created_waybill(self, ctx: CallContext, ewaybill_order_id: str) -> Any:
        done = self.world.idempotent_get(f"wechat:ewaybill-created:{ctx.shop_id}", ewaybill_order_id)
        waybill = self.world.get_waybill(done["waybill_id"]) if done else None
        if waybill is None or waybill.shop_id != ctx.shop_id:
            raise wx_error(10025003)
        return waybill

    def ewaybill_add_sub_order(self, request: Request, ctx: CallContext) -> Response:
        """Child pieces (子件) for a taken waybill; only carriers with 子母件 (SF, DBKD, JD)."""
        p = ctx.params
        self._reject_numeric_ids(p)
        waybill = self._created_waybill(ctx, _id(p, "ewaybill_order_id"))
        if str(p.get("waybill_id") or "") != waybill.tracking_no:
            raise wx_error(10025003)
        if EWAYBILL_DELIVERY_IDS[waybill.carrier] != str(p.get("delivery_id") or ""):
            raise invalid_args("delivery_id differs from the waybill's")
        if waybill.carrier not in SUB_ORDER_CARRIERS:
            raise wx_error(10025005)
        quantity = _int(p, "add_package_quantity", 0)
        if not 1 <= quantity <= MAX_SUB_ORDERS:
            raise invalid_args(f"add_package_quantity must be 1..{MAX_SUB_ORDERS}")
        if waybill.status != "issued":
            raise wx_error(10025006)
        try:
            self.world.append_child_waybills(waybill.tracking_no, quantity)
        except NoWaybillAccount:
            raise wx_error(10025002) from None
        waybill = self.world.get_waybill(waybill.tracking_no)
        return self.ok(
            {
                "ewaybill_order_id": _id(p, "ewaybill_order_id"),
                "waybill_id_list": self._waybill_id_list(waybill),
            }
        )

    def ewaybill_cancel(self, request: Request, ctx: CallContext) -> Response:
        p = ctx.params
        self._reject_numeric_ids(p)
        waybill = self._created_waybill(ctx, _id(p, "ewaybill_order_id"))
        if p.get("waybill_id") and str(p["waybill_id"]) != waybill.tracking_no:
            raise wx_error(10025003)
        if waybill.status == "cancelled":
            raise wx_error(10025006)
        try:
            self.world.cancel_waybill(waybill.tracking_no)
        except Conflict:
            raise wx_error(10025007) from None
        return self.ok()

    def ewaybill_order_get(self, request: Request, ctx: CallContext) -> Response:
        p = ctx.params
        self._reject_numeric_ids(p)
        ewaybill_order_id = _id(p, "ewaybill_order_id")
        record = self._ewaybill(ctx, ewaybill_order_id)
        done = self.world.idempotent_get(f"wechat:ewaybill-created:{ctx.shop_id}", ewaybill_order_id)
        waybill = self.world.get_waybill(done["waybill_id"]) if done else None
        status = (
            0 if waybill is None else (2 if waybill.status == "cancelled" else 1)
        )  # [choice] 0 precreated, 1 taken, 2 cancelled
        goods = record["goods"]
        return self.ok(
            {"order_info": {"ewaybill_order_id": ewaybill_order_id, "delivery_id": EWAYBILL_DELIVERY_IDS[record["carrier"]],
                            "waybill_id": waybill.tracking_no if waybill else "", "status": status,
                            "waybill_id_list": self._waybill_id_list(waybill) if waybill else [],
                            "ec_order_list": [{"ec_order_id": oid, "goods_list": goods if i == 0 else []}
                                              for i, oid in enumerate(record.get("order_ids") or [record["order_id"]])]}}
        )  # fmt: skip

    def ewaybill_print_get(self, request: Request, ctx: CallContext) -> Response:
        """``print_info``: an opaque blob for the WeChat print component (masked receiver only)."""
        p = ctx.params
        self._reject_numeric_ids(p)
        waybill = self._created_waybill(ctx, _id(p, "ewaybill_order_id"))
        if waybill.status != "issued":
            raise wx_error(10025006)
        if p.get("sub_waybill_id"):
            if str(p["sub_waybill_id"]) not in waybill.children:
                raise wx_error(10025003)
            waybill = self.world.get_waybill(str(p["sub_waybill_id"]))
        order = self.world.get_order(waybill.order_id)
        receiver = order.receiver if order else None
        content = json.dumps(
            {"waybill_id": waybill.tracking_no, "delivery_id": EWAYBILL_DELIVERY_IDS[waybill.carrier], "sort_code": waybill.sort_code,
             "package_center": waybill.package_center_name, "template_id": str(p.get("template_id") or ""),
             "receiver": {"name": mask_name(receiver.name), "mobile": mask_phone(receiver.phone),
                          "address": f"{receiver.province}{receiver.city}{receiver.district}{mask_detail(receiver.street + receiver.detail)}"}
             if receiver else {}, "goods": waybill.items},
            ensure_ascii=False,
        )  # fmt: skip
        return self.ok({"print_info": self.world.vault.seal(shop_id=ctx.shop_id, text=content)})

    def ewaybill_order_print(self, request: Request, ctx: CallContext) -> Response:
        """Print success notice: counted per waybill (``re_print`` 1 for a reprint)."""
        p = ctx.params
        self._reject_numeric_ids(p)
        waybill = self._created_waybill(ctx, _id(p, "ewaybill_order_id"))
        if p.get("waybill_id") and str(p["waybill_id"]) not in (waybill.tracking_no, *waybill.children):
            raise wx_error(10025003)
        if waybill.status != "issued":
            raise wx_error(10025006)
        with self.world.write():
            scope = f"wechat:ewaybill-printed:{ctx.shop_id}"
            key = str(p.get("waybill_id") or waybill.tracking_no)
            self.world.idempotent_put(scope, f"{key}:{self.world.now()}:{_int(p, 're_print', 0)}", 1)
        return self.ok()

    # ------------------------------------------------------------------ logistics traces

    def logistics_path_get(self, request: Request, ctx: CallContext) -> Response:
        """[GUESS] ``/channels/ec/logistics/path/get`` {order_id?, delivery_id, waybill_id}: our
        sources name no trace read for Channels shops; path and shape follow WeChat's documented
        logistics helper (物流助手 ``/cgi-bin/express/business/path/get``): ``path_item_num``,
        ``path_item_list[]{action_time (seconds), action_type, action_msg}``, oldest first, with
        its action types (100001 揽件成功, 200001 运输中, 300002 开始派送, 300003 签收成功,
        300004 签收失败, 400002 订单滞留). A returned parcel ends with 300004 "…退回…" [choice]."""
        p = ctx.params
        delivery_id, waybill_id = str(p.get("delivery_id") or ""), str(p.get("waybill_id") or "")
        if not delivery_id or not waybill_id:
            raise invalid_args("delivery_id and waybill_id are required")
        carrier = CARRIER_OF_DELIVERY_ID.get(delivery_id) or CARRIER_OF_EWAYBILL_ID.get(delivery_id)
        if carrier is None:
            raise invalid_args("delivery_id is invalid")
        trace = traces.get(self.world, waybill_id)
        nodes: list[traces.TraceNode] = []
        if trace is not None and trace.shop_id == ctx.shop_id:
            if trace.carrier != carrier:
                raise invalid_args("delivery_id does not match waybill_id")
            nodes = trace.nodes(self.world)
        items = path_items(self.world, waybill_id, nodes)
        return self.ok({"delivery_id": delivery_id, "waybill_id": waybill_id, "path_item_num": len(items),
                        "path_item_list": items})  # fmt: skip


def trace_action_type(node: traces.TraceNode) -> int:
    if node.status == traces.EXCEPTION:
        return 300004 if "拒收" in node.text else 400002
    return {traces.COLLECTED: 100001, traces.IN_TRANSIT: 200001, traces.DELIVERING: 300002,
            traces.DELIVERED: 300003, traces.RETURNED: 300004}[node.status]  # fmt: skip


def path_items(world: World, waybill_id: str, nodes: list[traces.TraceNode]) -> list[dict[str, Any]]:
    as_text = untidy.hit(world, "wechat.trace_string_times", waybill_id)
    return [
        {
            "action_time": str(n.time) if as_text else n.time,
            "action_type": trace_action_type(n),
            "action_msg": n.text,
        }
        for n in nodes
    ]


# --------------------------------------------------------------------------- pushes (§3.8)

# [GUESS] cancel_type: 1 buyer cancelled, 2 payment timed out, 3 every item refunded.
CANCEL_TYPE = {"buyer": 1, "unpaid_timeout": 2, "refund": 3}
# [GUESS] channels_ec_order_ext_info_update type: 1 address changed, 2 merchant notes changed.
EXT_INFO_TYPE = {
    EventKind.ORDER_ADDRESS_CHANGED: 1,
    EventKind.ORDER_REMARK: 2,
    EventKind.DROPSHIP_ASSIGNED: 14,  # operations §1: type 14/15 = dropship assigned/cancelled
    EventKind.DROPSHIP_CANCELLED: 15,
}


def push_message(world: World, event: Any) -> dict[str, Any] | None:
    """The decrypted JSON message WeChat pushes for a neutral event, or None if it has none."""
    order = from_dict(Order, event.data["order"]) if "order" in event.data else None
    if order is None:
        return None
    head = {
        "ToUserName": shop_username(world, event.shop_id),
        "FromUserName": openid(world, order.buyer_id),
        "CreateTime": event.time,
        "MsgType": "event",
    }
    # The samples send order_id as a number here; some events carry it (and pay_time) as a string.
    as_text = untidy.hit(world, "wechat.string_ids", event.event_id)
    oid: int | str = order.order_id if as_text else int(order.order_id)
    kind = event.kind
    if kind == EventKind.LOGISTICS_UPDATED:
        # [GUESS] Channels pushes trace updates as the logistics helper's documented
        # ``add_express_path`` event: every node so far (``Actions``), ``Version`` counting pushes.
        trace = event.data["trace"]
        nodes = [traces.TraceNode(**n) for n in trace["nodes"]]
        items = path_items(world, trace["tracking_no"], nodes)
        return {**head, "Event": "add_express_path", "DeliveryID": DELIVERY_IDS.get(trace["carrier"], trace["carrier"]),
                "WayBillId": trace["tracking_no"], "OrderId": oid, "Version": len(nodes) - trace["new"],
                "Count": len(items),
                "Actions": [{"ActionTime": i["action_time"], "ActionType": i["action_type"], "ActionMsg": i["action_msg"]}
                            for i in items]}  # fmt: skip
    if event.aftersale_id:
        a = from_dict(AfterSale, event.data["aftersale"])
        body = {"finder_shop_aftersale_status_update": {"status": aftersale_status(a), "after_sale_order_id": a.aftersale_id,
                                                         "order_id": order.order_id}}  # fmt: skip
        return {**head, "Event": "channels_ec_aftersale_update", **body}
    if kind == EventKind.ORDER_CREATED:
        return {**head, "Event": "channels_ec_order_new", "order_info": {"order_id": oid}}
    if kind == EventKind.ORDER_PAID:
        return {
            **head,
            "Event": "channels_ec_order_pay",
            "order_info": {"order_id": oid, "pay_time": str(order.pay_time) if as_text else order.pay_time},
        }
    if kind == EventKind.ORDER_CANCELLED:
        return {
            **head,
            "Event": "channels_ec_order_cancel",
            "order_info": {"order_id": oid, "cancel_type": CANCEL_TYPE.get(order.cancel_kind, 1)},
        }
    if kind in (EventKind.ORDER_PART_SHIPPED, EventKind.ORDER_SHIPPED):
        finish = 1 if kind == EventKind.ORDER_SHIPPED else 0
        return {
            **head,
            "Event": "channels_ec_order_deliver",
            "order_info": {"order_id": oid, "finish_delivery": finish},
        }
    if kind == EventKind.ORDER_RECEIVED:
        return {
            **head,
            "Event": "channels_ec_order_confirm",
            "order_info": {"order_id": oid, "confirm_type": 1},
        }
    if kind == EventKind.ORDER_COMPLETED:
        return {
            **head,
            "Event": "channels_ec_order_settle",
            "order_info": {"order_id": oid, "settle_time": order.complete_time},
        }
    if kind in EXT_INFO_TYPE:
        return {
            **head,
            "Event": "channels_ec_order_ext_info_update",
            "order_info": {"order_id": oid, "type": EXT_INFO_TYPE[kind]},
        }
    return None


class WechatPushCodec:
    """WeChat secure-mode pushes (§3.8): POST ``?signature&timestamp&nonce&encrypt_type=aes&msg_signature``
    with ``{"ToUserName":…,"Encrypt":…}``; acknowledged by the plain text ``success`` within 5 s."""

    platform = PLATFORM
    # §3.8: after the first attempt, retries at 0 s, 0 s, 10 s, 1, 5, 30, 60, 60, 60 min (10 pushes).
    retry_schedule: tuple[float, ...] = (0, 0, 10, 60, 300, 1800, 3600, 3600, 3600)
    ack_timeout = 5.0

    def encode(self, world: World, app: App, message: pushes.OutboxMessage) -> pushes.EncodedPush | None:
        seed = hashlib.sha256(
            f"{world.seed}:{message.msg_id}:{message.id}:{message.attempts}".encode()
        ).digest()
        if message.event.kind in APP_EVENT_KINDS:
            return self.encode_auth_event(world, app, message, seed)
        decrypted = push_message(world, message.event)
        if decrypted is None:
            return None
        body_json = json.dumps(decrypted, ensure_ascii=False, separators=(",", ":")).encode()
        encrypted = encrypt_message(app.encoding_aes_key, app.app_key, body_json, seed[:16])
        query = secure_push_query(
            app, str(int(world.clock.now())), str(int.from_bytes(seed[16:20], "big")), encrypted
        )
        url = app.webhook_url + ("&" if "?" in app.webhook_url else "?") + urlencode(query)
        body = json.dumps(
            {"ToUserName": decrypted["ToUserName"], "Encrypt": encrypted}, separators=(",", ":")
        ).encode()
        return pushes.EncodedPush(url, body, {"Content-Type": "application/json"})

    def encode_auth_event(
        self, world: World, app: App, message: pushes.OutboxMessage, seed: bytes
    ) -> pushes.EncodedPush | None:
        """A third-party platform's authorisation event, as WeChat posts it to the 授权事件接收URL:
        ``POST ?signature&timestamp&nonce&encrypt_type=aes&msg_signature`` with the XML body
        ``<xml><AppId>…</AppId><Encrypt>…</Encrypt></xml>``; the plaintext is XML too."""
        if not is_component(app):
            return None
        event = message.event
        fields: dict[str, str | int] = {"AppId": app.app_key, "CreateTime": event.time}
        if event.kind == EventKind.APP_VERIFY_TICKET:
            fields["CreateTime"] = int(event.data["create_time"])
            fields["InfoType"] = "component_verify_ticket"
            fields["ComponentVerifyTicket"] = str(event.data["ticket"])
        elif event.kind == EventKind.APP_UNAUTHORIZED:
            fields["InfoType"] = "unauthorized"
            fields["AuthorizerAppid"] = shop_appid(world, event.shop_id)
        else:
            return None
        encrypted = encrypt_message(
            app.encoding_aes_key, app.app_key, xml_message(fields).encode(), seed[:16]
        )
        query = secure_push_query(
            app, str(int(world.clock.now())), str(int.from_bytes(seed[16:20], "big")), encrypted
        )
        url = app.auth_event_url + ("&" if "?" in app.auth_event_url else "?") + urlencode(query)
        body = xml_message({"AppId": app.app_key, "Encrypt": encrypted}).encode()
        return pushes.EncodedPush(url, body, {"Content-Type": "text/xml"})

    def is_ack(self, status: int, body: bytes) -> bool:
        return status == 200 and body.strip() == b"success"

    def schedule(self, world: World, state: dict[str, Any]) -> None:
        """Push the component's current ticket every 10 minutes of world time (per ticket slot,
        not divided by the time compression – like token lifetimes [choice]), and at once when a
        dispatcher starts or the ``auth_event_url`` changes."""
        slot = world.now() // VERIFY_TICKET_SLOT
        for app in world.apps(PLATFORM):
            if not is_component(app) or not app.auth_event_url:
                continue
            mark = (slot, app.auth_event_url)
            if state.get(app.app_key) != mark:
                state[app.app_key] = mark
                push_verify_ticket(world, app)


def xml_message(fields: dict[str, str | int]) -> str:
    """``<xml><Name><![CDATA[text]]></Name><Time>123</Time></xml>`` (WeChat's XML message style)."""
    parts = [
        f"<{k}>{v}</{k}>" if isinstance(v, int) else f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items()
    ]
    return "<xml>" + "".join(parts) + "</xml>"


pushes.register_codec(WechatPushCodec())


def create_app(world: World, **kwargs: Any) -> WechatApp:
    """Factory used by ``server.py`` (every platform module exposes one). Also makes sure every
    WeChat shop has its self-use app, so the status page lists each shop's appid/secret."""
    for shop in world.shops(PLATFORM):
        create_self_use_app(world, shop.shop_id)
    return WechatApp(world, **kwargs)


def ensure_token(world: World, shop_id: str) -> str:
    """A valid access token of the shop's self-use app (CLI/demo helper)."""
    app = create_self_use_app(world, shop_id)
    now = world.now()
    for token in reversed(world.tokens(app_key=app.app_key, shop_id=shop_id)):
        if (
            WechatApp.token_kind(token) == "stable"
            and not token.revoked_at
            and token.access_expires_at - now > STABLE_RENEW_WINDOW
        ):
            return token.access_token
    return WechatApp(world)._issue(app.app_key, shop_id, "stable").access_token

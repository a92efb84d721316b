"""Kuaishou shop (快手电商开放平台) imitation: gateway, signing, OAuth, endpoints, pushes.

Follows shared/reference/platform-apis.md §2. Paths come from the method names
(``open.order.cursor.list`` → ``/open/order/cursor/list``); a call is a GET with every
parameter in the query string or a POST whose ``application/x-www-form-urlencoded`` body
carries them (system parameters may also stay in the query). System parameters:
``appkey, method, version=1, param`` (business parameters as a JSON string),
``access_token, timestamp`` (ms), ``signMethod`` (``MD5`` | ``HMAC_SHA256``) and ``sign``.
The signature is checked over the *raw* received ``param`` string.

Responses use ``{"result":1,"error_msg":"","code","msg","sub_code","sub_msg",
"requestId", "data":…}``; OAuth endpoints answer ``{"result":1,"access_token":…}`` or
``{"result":<code>,"error":…,"error_msg":…}``.

The world is neutral; Kuaishou orders carry **one SKU each**, so every non-gift line of a
world order is rendered as its own Kuaishou order (``oid`` = the line id) and gift lines
hang under the line that earned them as ``subOrderInfo`` (their own oid, shipped through
``open.order.goods.split.deliver``).

**Order cursor.** ``open.order.cursor.list`` pages over the window *as it was when paging
started*: the first page records the world's last event id (the snapshot) and each cursor
carries it plus the sort key of the last order returned. Orders unchanged since the
snapshot are read from the orders table; orders changed since are placed at the update
time they had at the snapshot (read from the event log). Hence paging returns every order
that was in the window when paging started exactly once, and never an order twice, however
many orders change meanwhile; orders that entered the window later belong to the next pull.
The refund list (``pcursor``) uses the same machinery.

Choices where the reference is silent are listed in ``sandbox/README.md``
(section "Kuaishou") and marked ``[choice]`` here.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import html
import json
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from . import dropship, pushes, traces, untidy
from .faults import DEFAULT_QPS
from .gateway import ApiError, CallContext, PlatformGateway, Route
from .http import Request, Response, html_response, json_response, redirect
from .model import (
    AfterSale,
    AfterSaleStatus,
    AfterSaleType,
    App,
    EventKind,
    Order,
    OrderLine,
    OrderStatus,
    Package,
    Product,
    SettlementLine,
    Sku,
    Token,
    WorldEvent,
    from_dict,
)
from .pii import KIND_ADDRESS, KIND_NAME, KIND_PHONE, CipherFormat, DecryptError, mask_name, mask_phone
from .world import (
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

PLATFORM = "kuaishou"

ACCESS_TOKEN_TTL = 48 * 3600  # "expires_in … 172800，即48小时"
REFRESH_TOKEN_TTL = 180 * 86400  # "长时访问令牌，默认为180天"
REFRESH_TOKEN_GRACE = 300  # "旧的refresh_token 随即在5分钟内失效"
OAUTH_CODE_TTL = 120  # "有效期为 2 分钟且只能使用一次"
TIMESTAMP_TOLERANCE_MS = 10 * 60 * 1000  # [choice] ±10 minutes of clock skew
ORDER_PAGE_MAX = 50
ORDER_SPAN_MAX_MS = 7 * 86400 * 1000
LOOKBACK_MAX_MS = 90 * 86400 * 1000
REFUND_SPAN_MAX_MS = 86400 * 1000
REFUND_PAGE_MAX = 100
BILL_PAGE_MAX = 100  # [choice]
BILL_SPAN_MAX = 31 * 86400  # [choice]
EBILL_BATCH_MAX = 10  # [choice]; dropshipping ebill.batch.get: "最多10个" (KS-PHP)
DS_BATCH_MAX = 50  # [GUESS] dropshippingOrderCodeList per allocate / cancel call
DS_PAGE_MAX = 100  # [GUESS]
DS_STATUS = {"assigned": 1, "shipped": 2, "cancelled": 3}  # [GUESS] dropshippingStatus / allocateStatus
DS_NOT_BOUND, DS_ALREADY, DS_STATE, DS_NOT_ALLOCATED, DS_SHIPPED = (
    800101, 800102, 800103, 800104, 800105)  # [GUESS] per-code error numbers  # fmt: skip
DECRYPT_BATCH_LIMIT = 100
DECRYPT_REFUSE_AFTER = 14 * 86400  # KS-DOC K5005: no decrypt 14 days after completion
STOCK_LIMIT = 9_999_999
PACKAGE_LIMIT = 50  # "totalPackageNum … 上限值50"
PAGER_CHUNK = 64

SCOPES = (
    "user_base", "user_info", "merchant_user", "merchant_item", "merchant_order", "merchant_refund",
    "merchant_logistics", "merchant_distribution", "merchant_promotion", "merchant_cs", "merchant_comment",
    "merchant_servicemarket",
)  # fmt: skip

# Scope an API path needs (longest prefix wins). [choice] funds APIs need merchant_order.
PATH_SCOPES: tuple[tuple[str, str], ...] = (
    ("/open/seller/order/refund/", "merchant_refund"),
    ("/open/refund/", "merchant_refund"),
    ("/open/order/", "merchant_order"),
    ("/open/seller/order/", "merchant_order"),
    ("/open/funds/", "merchant_order"),
    ("/open/item/", "merchant_item"),
    ("/open/express/", "merchant_logistics"),
    ("/open/logistics/", "merchant_logistics"),
)

# Neutral carrier key → (expressCode for shipping APIs, official name) – KS-DOC 物流公司编号 (§2.5).
CARRIER_CODES: dict[str, tuple[int, str]] = {
    "EMS": (2, "EMS"),
    "STO": (3, "申通快递"),
    "SF": (4, "顺丰速运"),
    "YTO": (6, "圆通速递"),
    "POST": (8, "邮政快递包裹"),
    "ZTO": (9, "中通快递"),
    "YD": (11, "韵达快递"),
    "JD": (14, "京东"),
    "DBL": (53, "德邦快递"),
    "JT": (109, "极兔速递"),
}
CODE_TO_CARRIER = {code: key for key, (code, _) in CARRIER_CODES.items()}
# Codes in the official list that are offline ("划线") – delivering with them is refused.
OFFLINE_EXPRESS_CODES = {1, 5, 7, 10, 13, 22, 48}
# [choice] e-waybill expressCompanyCode strings (the reference could not capture them).
EBILL_CODES: dict[str, str] = {
    "ZTO": "ZTO", "YTO": "YTO", "STO": "STO", "YD": "YUNDA", "SF": "SF", "JT": "JT", "EMS": "EMS",
    "JD": "JD", "POST": "POSTB", "DBL": "DBKD",
}  # fmt: skip
EBILL_TO_CARRIER = {code: key for key, code in EBILL_CODES.items()}
APPEND_CARRIERS = {"SF"}  # child waybills (open.express.ebill.append): SF only (operations §2)
EBILL_TEMPLATE_URL = "https://sandbox.invalid/ks/template/standard76x130.xml"
KUAISHOU_ORDER_CHANNEL = "KUAISHOU"  # [choice] orderChannel of Kuaishou orders in e-waybill requests

# Kuaishou-style ciphertexts [choice]: "~index~payload~1~~"; each is bound to one order id.
CIPHER = CipherFormat({KIND_NAME: "~", KIND_ADDRESS: "~", KIND_PHONE: "~"})
# Per-field markers (issue 11; ``kuaishou.field_markers``): "#idx#payload#1##" (name),
# "$idx$payload$1$" (mobile), "~idx~payload~1~~" (address). Reads both forms.
CIPHER_FIELDS = CipherFormat({KIND_NAME: "#", KIND_ADDRESS: "~", KIND_PHONE: "$"}, tails={KIND_PHONE: 1})
# [choice] open.order.search.index.batch ``type`` numbers: Douyin's sensitive_type numbering.
SEARCH_INDEX_TYPES = {1: KIND_ADDRESS, 2: KIND_NAME, 3: KIND_PHONE}
SEARCH_INDEX_BATCH_LIMIT = 100  # [choice] as the decrypt batch
FLAG_TAGS = {0: "grey_flag_tag_order", 1: "red_flag_tag_order", 2: "yellow_flag_tag_order", 3: "green_flag_tag_order",
             4: "blue_flag_tag_order", 5: "purple_flag_tag_order"}  # fmt: skip
HOLD_REASONS = {1: "多人拼团活动进行中", 2: "支付后风控审核中"}
RISK_FRAUD = 10001

# --------------------------------------------------------------------------- error catalogue
# Documented: 11 (deliver-rule interception, K1009), 21 (business refusal, K1001/K1006),
# 24 (AUTHORIZATION_REVOKED, K0006), 26 (主账号不存在, K0005), refund codes 3000xx (返回码说明),
# OAuth codes 1002001xx (APP授权说明). [choice] for the rest, after the KS-PHP mapping.

R_OK = 1
R_SERVICE_BUSY = 10  # [choice]
R_DELIVER_RULE = 11
R_PARAM = 13  # [choice]
R_NO_API = 14  # [choice]
R_REJECT = 21
ITEM_TITLE_MAX = 30  # [choice] open.item.new title length
ITEM_SKUS_MAX = 300  # [choice] SKUs per item
R_APP = 22  # [choice] appkey unknown / not allowed
R_TOKEN = 24
R_SCOPE = 25  # [choice]
R_NO_MAIN_ACCOUNT = 26
R_SIGN_MISSING = 27  # [choice]
R_SIGN_INVALID = 28  # [choice]
R_QPS = 1016  # [choice, reference §2.3 recommendation]
R_END_BEFORE_BEGIN = 300003
R_RANGE_7_DAYS = 300004
R_BEFORE_90_DAYS = 300005
R_REFUND_NOT_FOUND = 300011
R_REFUND_NOT_YOURS = 300012
R_RANGE_LIMIT = 300019
R_REFUND_STATE = 300020  # [choice] the refund's state does not allow the answer
R_REFUND_AMOUNT = 300021  # [choice] refundAmount differs from the refund's amount
# [choice] open.refund.reject.reason entries (codes and texts invented; flags per KS-PY's reject schema)
REJECT_REASONS: tuple[dict[str, Any], ...] = (
    {
        "reasonCode": 11,
        "reasonDesc": "商品已影响二次销售",
        "requiredRejectDesc": False,
        "requiredRejectImage": True,
    },
    {
        "reasonCode": 12,
        "reasonDesc": "已与买家协商一致",
        "requiredRejectDesc": True,
        "requiredRejectImage": False,
    },
    {
        "reasonCode": 13,
        "reasonDesc": "买家未退回商品",
        "requiredRejectDesc": False,
        "requiredRejectImage": False,
    },
)

OAUTH_INVALID_REQUEST = (100200100, "invalid_request")
OAUTH_UNAUTHORIZED_CLIENT = (100200101, "unauthorized_client")
OAUTH_ACCESS_DENIED = (100200102, "access_denied")
OAUTH_UNSUPPORTED_RESPONSE_TYPE = (100200103, "unsupported_response_type")
OAUTH_UNSUPPORTED_GRANT_TYPE = (100200104, "unsupported_grant_type")
OAUTH_INVALID_GRANT = (100200105, "invalid_grant")
OAUTH_INVALID_SCOPE = (100200106, "invalid_scope")
OAUTH_SERVER_ERROR = (100200500, "server_error")

# [choice] per-item errorCode of open.order.decrypt.batch (1 = ok is documented).
DECRYPT_OK = 1
DECRYPT_BAD_CIPHER = 2
DECRYPT_NOT_YOUR_ORDER = 3
DECRYPT_CIPHER_MISMATCH = 4
DECRYPT_REFUSED = 5
DECRYPT_QUOTA = 6


def ks_error(result: int, error_msg: str, sub_code: str = "") -> ApiError:
    """A Kuaishou API error envelope (HTTP 200)."""
    return ApiError(200, result=result, error_msg=error_msg, sub_code=sub_code)


def oauth_error(kind: tuple[int, str], error_msg: str) -> ApiError:
    """An OAuth endpoint error: ``{"result": code, "error": type, "error_msg": …}``."""
    return ApiError(200, result=kind[0], error=kind[1], error_msg=error_msg)


def param_error(message: str) -> ApiError:
    return ks_error(R_PARAM, message, "PARAM_INVALID")


# --------------------------------------------------------------------------- signing (sandbox side)

SIGNED_KEYS = ("access_token", "appkey", "method", "param", "signMethod", "timestamp", "version")


def sign_text(params: Mapping[str, str], sign_secret: str) -> str:
    """Sorted ``k=v`` of the present system parameters joined by ``&``, plus ``&signSecret=…``."""
    pairs = sorted((k, params[k]) for k in SIGNED_KEYS if params.get(k) is not None)
    return "&".join(f"{k}={v}" for k, v in pairs) + f"&signSecret={sign_secret}"


def compute_sign(sign_secret: str, text: str, sign_method: str) -> str:
    """``MD5`` → lower-hex MD5 of ``text``; ``HMAC_SHA256`` → Base64 HMAC-SHA256 keyed by signSecret."""
    if sign_method == "HMAC_SHA256":
        return base64.b64encode(
            hmac.new(sign_secret.encode(), text.encode(), hashlib.sha256).digest()
        ).decode()
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - the platform's own algorithm


def method_of(path: str) -> str:
    return path.strip("/").replace("/", ".")


def path_of(method: str) -> str:
    return "/" + method.replace(".", "/")


def signed_params(
    app: App,
    method: str,
    params: dict[str, Any],
    *,
    access_token: str,
    timestamp_ms: int,
    sign_method: str = "HMAC_SHA256",
) -> dict[str, str]:
    """All parameters of a signed call (CLI ``sign`` helper and demos)."""
    out = {
        "appkey": app.app_key,
        "method": method,
        "version": "1",
        "param": json.dumps(params, ensure_ascii=False, separators=(",", ":")),
        "access_token": access_token,
        "timestamp": str(timestamp_ms),
        "signMethod": sign_method,
    }
    out["sign"] = compute_sign(app.sign_secret, sign_text(out, app.sign_secret), sign_method)
    return out


# --------------------------------------------------------------------------- push encryption


def encrypt_push(message_key: str, plaintext: str) -> str:
    """Base64(AES-CBC, PKCS5 padding, zero IV, key = Base64-decoded message key) – reference §2.8."""
    key = base64.b64decode(message_key)
    padder = padding.PKCS7(128).padder()
    data = padder.update(plaintext.encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(b"\0" * 16)).encryptor()
    return base64.b64encode(encryptor.update(data) + encryptor.finalize()).decode()


def decrypt_push(message_key: str, body: str) -> str:
    """Inverse of ``encrypt_push`` (raises ``ValueError`` on anything malformed)."""
    key = base64.b64decode(message_key)
    decryptor = Cipher(algorithms.AES(key), modes.CBC(b"\0" * 16)).decryptor()
    data = decryptor.update(base64.b64decode(body)) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return (unpadder.update(data) + unpadder.finalize()).decode()


# --------------------------------------------------------------------------- small helpers


def ms(ts: int | float) -> int:
    """World seconds → Kuaishou milliseconds (0 stays 0)."""
    return int(ts * 1000) if ts else 0


def ms_jitter(world: World, second: int) -> int:
    """The milliseconds a world second shows (``kuaishou.ms_times``): 1–999 for a seeded share of
    seconds, else 0. A function of the second only, so equal times stay equal and a record shows
    the same time in every answer and push."""
    if not second or not untidy.hit(world, "kuaishou.ms_times", second):
        return 0
    return 1 + int(untidy.fraction(world, "kuaishou.ms_value", second) * 999)


def wms(world: World, ts: int | float) -> int:
    """World seconds → the milliseconds Kuaishou shows for them (``second*1000 + ms_jitter``)."""
    return ms(ts) + ms_jitter(world, int(ts)) if ts else 0


def ms_window(world: World, begin: int, end: int) -> tuple[int, int]:
    """World seconds [lo, hi] for a ``beginTime``/``endTime`` window in ms: from the first second
    whose shown time is at or after ``begin``; [choice] up to ``end``'s whole second, so a record
    of the clock's current second (shown a few ms ahead of a clock at a whole second) is listed."""
    lo = begin // 1000
    if lo * 1000 + ms_jitter(world, lo) < begin:
        lo += 1
    return lo, end // 1000


def fmt_time(ts: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts + SHANGHAI_OFFSET))


def _int(
    params: Mapping[str, Any], key: str, default: int | None = None, *, required: bool = False
) -> int | None:
    value = params.get(key)
    if value is None or value == "":
        if required:
            raise param_error(f"缺少参数{key}")
        return default
    if isinstance(value, bool):
        raise param_error(f"{key}格式不正确")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise param_error(f"{key}格式不正确") from None


def _stable_int(*parts: Any, digits: int = 12) -> int:
    h = int(hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest(), 16)
    return 10 ** (digits - 1) + h % (9 * 10 ** (digits - 1))


def _carrier_of(code: Any) -> str:
    try:
        number = int(code)
    except (TypeError, ValueError):
        raise ks_error(R_DELIVER_RULE, "快递公司不存在") from None
    carrier = CODE_TO_CARRIER.get(number)
    if carrier is None:
        raise ks_error(
            R_DELIVER_RULE, "快递公司已下线" if number in OFFLINE_EXPRESS_CODES else "快递公司不存在"
        )
    return carrier


def _mask_address(detail: str) -> str:
    """First and last character around three stars (the reference sample shows 文***号)."""
    if not detail:
        return ""
    return detail[0] + "***" + (detail[-1] if len(detail) > 1 else "")


def _valid_tracking_no(no: str) -> bool:
    return 6 <= len(no) <= 32 and no.isascii() and no.isalnum()


# --------------------------------------------------------------------------- status mapping


def line_status(order: Order, line: OrderLine) -> int:
    """Kuaishou status of the order that renders ``line``: 10/30/40/50/70/80."""
    status = OrderStatus(order.status)
    if status == OrderStatus.UNPAID:
        return 10
    if status == OrderStatus.CANCELLED or (line.qty and line.refunded_qty >= line.qty):
        return 80
    if status in (OrderStatus.PAID, OrderStatus.PART_SHIPPED, OrderStatus.SHIPPED):
        return 40 if line.shipped_qty else 30
    if status == OrderStatus.RECEIVED:
        return 50
    return 70


VIEW_STATUS = {2: {10}, 3: {30}, 4: {40}, 5: {50}, 6: {70}, 7: {80}}  # orderViewStatus → statuses
HANDLING_WAY = {AfterSaleType.RETURN_REFUND: 1, AfterSaleType.REFUND_SHIPPED: 10, AfterSaleType.REFUND_UNSHIPPED: 10,
                AfterSaleType.EXCHANGE: 3, AfterSaleType.RESHIP: 4}  # fmt: skip


def refund_status(a: AfterSale) -> int:
    """Kuaishou refund ``status`` of an after-sale."""
    status = AfterSaleStatus(a.status)
    if status == AfterSaleStatus.WAIT_SELLER_AGREE:
        return 10 if a.type in (AfterSaleType.REFUND_SHIPPED, AfterSaleType.REFUND_UNSHIPPED) else 11
    return {
        AfterSaleStatus.WAIT_BUYER_RETURN: 30,
        AfterSaleStatus.WAIT_SELLER_CONFIRM: 40,
        AfterSaleStatus.WAIT_SELLER_SHIP: 40,  # [choice] a reissue approved: the merchant's turn (no own code)
        AfterSaleStatus.WAIT_BUYER_RECEIVE: 45,
        AfterSaleStatus.SUCCESS: 60,
        AfterSaleStatus.EXCHANGE_SUCCESS: 60,  # [choice] no exchange-done code exists
    }.get(status, 70)


def negotiate_status(a: AfterSale) -> int:
    """1 waiting for the merchant, 2 agreed, 3 rejected (waiting for the buyer to modify)."""
    status = AfterSaleStatus(a.status)
    if status in (AfterSaleStatus.WAIT_SELLER_AGREE, AfterSaleStatus.WAIT_SELLER_CONFIRM):
        return 1
    if status in (AfterSaleStatus.SELLER_REJECTED, AfterSaleStatus.SELLER_REJECTED_SECOND):
        return 3
    if status == AfterSaleStatus.CLOSED:
        return 0
    return 2


REFUND_OPEN_STATUSES = {10, 11, 20, 21, 22, 30, 40, 45, 50}  # type 8 "等待退款"


# --------------------------------------------------------------------------- snapshot paging


@dataclass(frozen=True)
class PageCursor:
    """Where a list stopped: the snapshot (last event id when paging started) and the sort
    key of the last item returned (time in seconds, world record id, index inside the record)."""

    snapshot: int
    ts: int
    record_id: str
    index: int
    fingerprint: str

    def encode(self) -> str:
        raw = json.dumps(
            [1, self.snapshot, self.ts, self.record_id, self.index, self.fingerprint], separators=(",", ":")
        )
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> PageCursor:
        try:
            raw = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            version, snapshot, ts, record_id, index, fingerprint = raw
            if version != 1:
                raise ValueError(version)
            return cls(int(snapshot), int(ts), str(record_id), int(index), str(fingerprint))
        except (ValueError, TypeError, json.JSONDecodeError):
            raise param_error("cursor不合法") from None


class SnapshotPager:
    """Keyset paging over one shop's orders or after-sales as they were at a snapshot.

    ``by_update`` sorts by update time; records changed after the snapshot are placed at
    the update time they had at the snapshot (from the event log's last snapshot before
    it). Create/apply times never change, so create-time paging needs no history.
    """

    def __init__(
        self, world: World, *, table: str, id_col: str, create_col: str, json_path: str, created_kind: str
    ) -> None:
        self.world = world
        self.table, self.id_col, self.create_col = table, id_col, create_col
        self.json_path, self.created_kind = json_path, created_kind

    def changed_since(self, shop_id: str, snapshot: int) -> dict[str, int | None]:
        """Records of the shop changed after ``snapshot`` → their update time at the snapshot
        (None when they did not exist yet)."""
        rows = self.world.read(
            f"SELECT DISTINCT {self.id_col}, kind FROM events WHERE event_id>? AND shop_id=? AND {self.id_col}!=''",
            (snapshot, shop_id),
        )
        out: dict[str, int | None] = {rid: None for rid, kind in rows if kind == self.created_kind}
        known = sorted({rid for rid, _ in rows} - set(out))
        for start in range(0, len(known), 400):
            chunk = known[start : start + 400]
            marks = ",".join("?" * len(chunk))
            # the last snapshot of each record taken at or before the paging snapshot
            found = self.world.read(
                f"SELECT e.{self.id_col}, json_extract(e.data, ?) FROM events e JOIN ("
                f"SELECT {self.id_col} AS rid, MAX(event_id) AS last FROM events "
                f"WHERE {self.id_col} IN ({marks}) AND event_id<=? GROUP BY {self.id_col}) m ON e.event_id=m.last",
                (self.json_path, *chunk, snapshot),
            )
            for rid, ts in found:
                if ts is not None:
                    out[rid] = int(ts)
            for rid in chunk:
                if rid not in out:  # history pruned (older than the prune horizon): use the creation time
                    row = self.world.read(
                        f"SELECT {self.create_col} FROM {self.table} WHERE {self.id_col}=?", (rid,)
                    )
                    out[rid] = int(row[0][0]) if row else None
        return out

    def iterate(
        self, shop_id: str, *, by_update: bool, lo: int, hi: int, ascending: bool, snapshot: int,
        after: tuple[int, str] | None,
    ) -> Iterator[tuple[int, str, str | None]]:  # fmt: skip
        """``(sort time, record id, doc JSON or None)`` in key order, from ``after`` (inclusive)."""
        col = "update_time" if by_update else self.create_col
        changed = self.changed_since(shop_id, snapshot) if by_update else {}

        def at_or_after(ts: int, rid: str) -> bool:
            if after is None:
                return True
            return (ts, rid) >= after if ascending else (ts, rid) <= after

        moved = sorted(
            (
                (ts, rid, None)
                for rid, ts in changed.items()
                if ts is not None and lo <= ts <= hi and at_or_after(ts, rid)
            ),
            key=lambda item: (item[0], item[1]),
            reverse=not ascending,
        )

        def unchanged() -> Iterator[tuple[int, str, str | None]]:
            position, inclusive = after, True
            direction, op = ("ASC", ">") if ascending else ("DESC", "<")
            while True:
                sql = f"SELECT {col}, {self.id_col}, doc FROM {self.table} WHERE shop_id=? AND {col}>=? AND {col}<=?"
                params: list[Any] = [shop_id, lo, hi]
                if position is not None:
                    sql += f" AND ({col}, {self.id_col}) {op}{'=' if inclusive else ''} (?, ?)"
                    params += [position[0], position[1]]
                sql += f" ORDER BY {col} {direction}, {self.id_col} {direction} LIMIT ?"
                params.append(PAGER_CHUNK)
                rows = self.world.read(sql, params)
                for ts, rid, doc in rows:
                    if rid not in changed:
                        yield int(ts), rid, doc
                if len(rows) < PAGER_CHUNK:
                    return
                position, inclusive = (rows[-1][0], rows[-1][1]), False

        yield from heapq.merge(unchanged(), moved, key=lambda item: (item[0], item[1]), reverse=not ascending)


# --------------------------------------------------------------------------- renderers


class Renderer:
    """Neutral records → Kuaishou JSON shapes for one calling app (PII only masked/encrypted)."""

    def __init__(self, world: World, app_key: str) -> None:
        self.world = world
        self.app_key = app_key
        self._shops: dict[str, str] = {}
        self._buyers: dict[int, str] = {}
        self._risk: dict[str, Any] | None = None
        self._skus: dict[str, Sku | None] = {}

    def ms(self, ts: int | float) -> int:
        return wms(self.world, ts)

    # ---- identities
    def seller_open_id(self, shop_id: str) -> str:
        return hashlib.sha256(
            f"{self.world.seed}:kuaishou:seller:{self.app_key}:{shop_id}".encode()
        ).hexdigest()[:32]

    def buyer_open_id(self, buyer_id: int) -> str:
        return hashlib.sha256(
            f"{self.world.seed}:kuaishou:buyer:{self.app_key}:{buyer_id}".encode()
        ).hexdigest()[:32]

    def shop_name(self, shop_id: str) -> str:
        if shop_id not in self._shops:
            shop = self.world.get_shop(shop_id)
            self._shops[shop_id] = shop.name if shop else ""
        return self._shops[shop_id]

    def buyer_nick(self, buyer_id: int) -> str:
        if buyer_id not in self._buyers:
            buyer = self.world.get_buyer(buyer_id)
            self._buyers[buyer_id] = buyer.nickname if buyer else ""
        return self._buyers[buyer_id]

    def cipher(self, shop_id: str, oid: str, kind: str, text: str) -> str:
        # Bound to the order id: the same receiver encrypts differently in every order (§2.4).
        fmt = CIPHER_FIELDS if untidy.hit(self.world, "kuaishou.field_markers", oid) else CIPHER
        return self.world.vault.encrypt(shop_id=f"{shop_id}:{oid}", kind=kind, plaintext=text, fmt=fmt)

    # ---- holds (履约拦截)
    def holds(self, order: Order, line: OrderLine) -> tuple[list[int], int]:
        """(disableDeliveryReasonCode, riskCode) of a line's order."""
        codes: list[int] = []
        risk = 0
        stored = self.world.meta_get(f"ks:hold:{line.line_id}")
        if stored:
            data = json.loads(stored)
            codes, risk = list(data.get("codes", [])), int(data.get("risk_code", 0))
        if self._risk is None:
            self._risk = self.world.get_setting("kuaishou:risk", {}) or {}
        if order.pay_time and line_status(order, line) == 30:
            h = (
                int(hashlib.sha256(f"{self.world.seed}:risk:{line.line_id}".encode()).hexdigest()[:8], 16)
                / 0xFFFFFFFF
            )
            window = float(self._risk.get("review_seconds", 1800)) / self.world.time_compression
            if (
                h < float(self._risk.get("review_rate", 0.0))
                and self.world.now() < order.pay_time + window
                and 2 not in codes
            ):
                codes.append(2)
            if h < float(self._risk.get("fraud_rate", 0.0)) and not risk:
                risk = RISK_FRAUD
        return codes, risk

    # ---- pieces
    def item_info(self, line: OrderLine) -> dict[str, Any]:
        if line.sku_id not in self._skus:
            self._skus[line.sku_id] = self.world.get_sku(line.sku_id)
        sku = self._skus[line.sku_id]
        return {
            "skuId": int(line.sku_id),
            "relSkuId": int(sku.out_sku_id) if sku and sku.out_sku_id.isdigit() else 0,
            "skuDesc": ";".join(f"{n}:{v}" for n, v in line.spec),
            "skuNick": line.code,
            "itemId": int(line.product_id),
            "relItemId": 0,
            "itemTitle": line.title,
            "itemLinkUrl": f"https://app.kwaixiaodian.com/merchant/shop/detail?id={line.product_id}",
            "itemPicUrl": line.pic,
            "num": line.qty,
            "originalPrice": line.unit_price_fen,
            "discountFee": line.discount_fen,
            "price": line.unit_price_fen,
            "itemType": 1,
            "goodsCode": "",
            "warehouseCode": "",
            "orderItemId": _stable_int(line.line_id, "item", digits=16),
            "itemPrevInfo": None,
            "serviceInfo": None,
            "itemExtra": None,
        }

    @staticmethod
    def packages_of(order: Order, line_ids: set[str]) -> list[Package]:
        """Packages holding any of ``line_ids`` (appended packages record their line with quantity 0)."""
        return [p for p in order.packages if any(it.line_id in line_ids for it in p.items)]

    def logistics(self, order: Order, line: OrderLine) -> list[dict[str, Any]]:
        as_text = untidy.hit(self.world, "kuaishou.express_code_string", line.line_id)
        return [
            {
                "expressNo": p.tracking_no,
                "expressCode": str(code) if as_text else code,
                "logisticsId": int(p.package_id),
            }
            for p in self.packages_of(order, {line.line_id})
            for code in (CARRIER_CODES.get(p.carrier, (0, ""))[0],)
        ]

    def send_time(self, order: Order, line: OrderLine) -> int:
        times = [
            p.ship_time for p in self.packages_of(order, {line.line_id}) if any(it.qty for it in p.items)
        ]
        return self.ms(min(times)) if times else 0

    def refunds(self, order: Order, line: OrderLine, aftersales: list[AfterSale]) -> list[dict[str, Any]]:
        mine = sorted(
            (a for a in aftersales if a.line_id == line.line_id),
            key=lambda a: (a.apply_time, a.aftersale_id),
            reverse=True,
        )
        return [{"refundId": int(a.aftersale_id), "refundStatus": refund_status(a)} for a in mine]

    def address(self, order: Order, line: OrderLine, *, hidden: bool) -> dict[str, Any]:
        r = order.receiver
        out: dict[str, Any] = {
            "encryptedConsignee": "", "desensitiseConsignee": "", "encryptedMobile": "", "desensitiseMobile": "",
            "provinceCode": int(r.province_code or 0), "province": r.province, "cityCode": int(r.city_code or 0), "city": r.city,
            "districtCode": int(r.district_code or 0), "district": r.district, "townCode": int(r.street_code or 0),
            "town": r.street, "encryptedAddress": "", "desensitiseAddress": "", "rechargeAccount": None,
        }  # fmt: skip
        if untidy.hit(self.world, "kuaishou.city_code_4digit", line.line_id):
            out["cityCode"] = int(r.city_code[:4] or 0)
        if untidy.hit(self.world, "kuaishou.empty_plain_address", line.line_id):
            out.update(consignee="", mobile="", address="")
        if not hidden:  # "disableDeliveryReasonCode有值时表示履约拦截，不返回值"
            shop = order.shop_id
            out.update(
                encryptedConsignee=self.cipher(shop, line.line_id, KIND_NAME, r.name),
                desensitiseConsignee=mask_name(r.name),
                encryptedMobile=self.cipher(shop, line.line_id, KIND_PHONE, r.phone),
                desensitiseMobile=mask_phone(r.phone),
                encryptedAddress=self.cipher(shop, line.line_id, KIND_ADDRESS, r.detail),
                desensitiseAddress=_mask_address(r.detail),
            )
        return out

    def base_info(
        self, order: Order, line: OrderLine, *, gift: bool, has_gifts: bool, aftersales: list[AfterSale]
    ) -> dict[str, Any]:
        status = line_status(order, line)
        codes, risk = self.holds(order, line) if not gift else ([], 0)
        refund_times = [a.apply_time for a in aftersales if a.line_id == line.line_id]
        promise = self.ms(order.promise_ship_time) if order.pay_time and status == 30 and not codes else 0
        return {
            "oid": int(line.line_id),
            "status": status,
            "payTime": self.ms(order.pay_time),
            "createTime": self.ms(order.create_time),
            "updateTime": self.ms(order.update_time),
            "sendTime": self.send_time(order, line),
            "recvTime": self.ms(order.receive_time) if status in (50, 70) else 0,
            "refundTime": self.ms(max(refund_times)) if refund_times else 0,
            "buyerOpenId": self.buyer_open_id(order.buyer_id),
            "buyerNick": self.buyer_nick(order.buyer_id),
            "buyerImage": f"https://sandbox.invalid/avatar/{order.buyer_id}.jpg",
            "sellerOpenId": self.seller_open_id(order.shop_id),
            "sellerNick": self.shop_name(order.shop_id),
            "totalFee": line.sum_fen - line.discount_fen,
            "expressFee": line.post_fen,
            "discountFee": line.discount_fen,
            "remark": order.buyer_words,
            "payType": order.pay_type if order.pay_time else 0,
            "payChannel": "微信" if order.pay_time else "",
            "theDayOfDeliverGoodsTime": 2,
            "promiseTimeStampOfDelivery": self.ms(order.promise_ship_time) if order.pay_time else 0,
            "validPromiseShipmentTimeStamp": promise,
            "preSale": 0,
            "cpsType": 1,
            "coType": 0,
            "commentStatus": 0,
            "riskCode": risk,
            "disableDeliveryReasonCode": codes,
            "allActivityType": [19] if gift else ([18] if has_gifts else []),
            "orderLabels": [],
            "priorityDelivery": False,
            "remindShipmentSign": 0,
            "remindShipmentTime": 0,
            "privacyInfoAuthStatus": 0,
        }

    def note(self, order: Order) -> dict[str, Any]:
        if not order.seller_words:
            return {"sellerNote": [], "orderNoteInfo": []}
        return {
            "sellerNote": [order.seller_words],
            "orderNoteInfo": [{"createTime": self.ms(order.update_time), "note": order.seller_words,
                               "flagTagCode": FLAG_TAGS.get(order.seller_flag, FLAG_TAGS[0]), "operatorName": "商家"}],
        }  # fmt: skip

    def sub_order(self, order: Order, gift: OrderLine) -> dict[str, Any]:
        status = line_status(order, gift)
        return {
            "subOrderBaseInfo": {"oid": int(gift.line_id), "status": status, "sendTime": self.send_time(order, gift),
                                 "updateTime": self.ms(order.update_time), "recvTime": self.ms(order.receive_time) if status in (50, 70) else 0},
            "subOrderItemInfo": {k: v for k, v in self.item_info(gift).items() if k != "orderItemId"},
            "subOrderLogisticsInfo": self.logistics(order, gift),
            "subOrderDeliveryInfo": {"deliveryNum": gift.shipped_qty, "packageNum": len(self.packages_of(order, {gift.line_id}))},
            "subOrderType": 2,
        }  # fmt: skip

    def order(
        self, order: Order, line: OrderLine, *, aftersales: list[AfterSale] | None = None
    ) -> dict[str, Any]:
        """One Kuaishou order (list item and detail share the shape)."""
        if aftersales is None:
            aftersales = (
                self.world.aftersales_of_order(order.order_id)
                if any(ln.aftersale_id for ln in order.lines)
                else []
            )
        gifts = [g for g in order.lines if g.is_gift and g.master_line_id == line.line_id]
        base = self.base_info(order, line, gift=line.is_gift, has_gifts=bool(gifts), aftersales=aftersales)
        ids = {line.line_id, *(g.line_id for g in gifts)}
        all_packages = self.packages_of(order, ids)
        appended = [p for p in self.packages_of(order, {line.line_id}) if not any(it.qty for it in p.items)]
        total_packages = len(all_packages)
        out = {
            "orderBaseInfo": base,
            "orderItemInfo": self.item_info(line),
            "orderRefundList": self.refunds(order, line, aftersales),
            "orderLogisticsInfo": self.logistics(order, line),
            "orderNote": self.note(order),
            "orderAddress": self.address(order, line, hidden=bool(base["disableDeliveryReasonCode"])),
            "orderStepInfo": None,
            "orderCpsInfo": {"distributorId": 0, "distributorName": ""},
            "orderDeliveryInfo": {
                "deliveryNum": line.shipped_qty,
                "packageNum": len(self.packages_of(order, {line.line_id})),
                "totalPackageNum": total_packages,
                "maxPackageNum": len(appended),
                "enableAppendPackage": bool(line.shipped_qty)
                and total_packages < PACKAGE_LIMIT
                and base["status"] == 40,
            },
            "subOrderInfo": [self.sub_order(order, g) for g in gifts],
        }
        key = line.line_id
        if line.fully_shipped and untidy.hit(self.world, "kuaishou.no_delivery_info", key):
            del out["orderDeliveryInfo"]
        if untidy.hit(self.world, "kuaishou.missing_optional", key):
            del out["orderStepInfo"], out["orderCpsInfo"]
            if not order.seller_words:
                del out["orderNote"]
        return out

    # ---- after-sales
    def refund_item(self, a: AfterSale, order: Order) -> dict[str, Any]:
        line = order.line(a.line_id)
        status = refund_status(a)
        ended = a.refund_time or a.close_time or (a.update_time if status == 70 else 0)
        return {
            "oid": int(a.line_id),
            "refundId": int(a.aftersale_id),
            "handlingWay": HANDLING_WAY[AfterSaleType(a.type)],
            "negotiateStatus": negotiate_status(a),
            "refundFee": a.refund_fen + a.refund_post_fen,
            "skuId": int(line.sku_id),
            "refundReason": a.reason_code,
            "status": status,
            "buyerId": 0,
            "refundType": 1,
            "sellerId": int(order.shop_id),
            "refundDesc": a.reason,
            "submitTime": self.ms(a.apply_time),
            "relItemId": 0,
            "negotiateUpdateTime": self.ms(a.update_time),
            "updateTime": self.ms(a.update_time),
            "createTime": self.ms(a.apply_time),
            "relSkuId": 0,
            "skuNick": line.code,
            "logisticsId": _stable_int(a.return_tracking_no, digits=16) if a.return_tracking_no else 0,
            "endTime": self.ms(ended) if status in (60, 70) else 0,
            "itemId": int(line.product_id),
            "receiptStatus": 2 if a.got_pkg else 1,
            "refundReasonDesc": a.reason,
            "expireTime": self.ms(a.deadline),
        } | (
            {"refundId": a.aftersale_id, "oid": a.line_id}
            if untidy.hit(self.world, "kuaishou.aftersale_sparse", a.aftersale_id)
            else {}
        )

    def _exchange_sku(self, a: AfterSale) -> dict[str, Any] | None:
        sku = self.world.get_sku(a.exchange_sku_id) if a.exchange_sku_id else None
        return {"skuId": int(sku.sku_id), "skuNick": sku.code, "skuDesc": sku.spec_text} if sku else None

    def refund_detail(self, a: AfterSale, order: Order) -> dict[str, Any]:
        item = self.refund_item(a, order)
        for key in ("skuNick",):
            item.pop(key, None)
        sparse = untidy.hit(self.world, "kuaishou.aftersale_sparse", a.aftersale_id)
        if sparse:
            item.pop("refundReason", None)
        item.update(
            # [GUESS] the buyer's pictures, comma-separated links (§2.7 names no picture field)
            pictures=None if sparse and not a.evidence else ",".join(a.evidence),
            validNegotiateBuyerModifyTimeStamp=0,
            sellerDisagreeImages="",
            logisticsInfo={"expressNo": a.return_tracking_no, "expressCode": CARRIER_CODES.get(a.return_carrier, (0, ""))[0]}
            if a.return_tracking_no else None,
            sellerDisagreeDesc=a.reject_reason if negotiate_status(a) == 3 else "",
            sellerDisagreeReason=0,
            timeLimitNegotiateChange=0,
            negotiateReason="",
            productNum=0,
            buyerOpenId=self.buyer_open_id(order.buyer_id),
            address="",
            buyerExchangeAddress=None,
            exchangeInfo={"expressNo": a.exchange_tracking_no, "expressCode": CARRIER_CODES.get(a.exchange_carrier, (0, ""))[0]}
            if a.exchange_tracking_no else None,
            # [GUESS] the replacement asked for (exchange): the SKU and its merchant code
            exchangeSkuInfo=self._exchange_sku(a),
            specialRefundType=0,
            logisticsRiskInfos=[],
            returnFreightInfo=None,
        )  # fmt: skip
        return item

    # ---- items
    def sku(self, sku: Sku, product: Product) -> dict[str, Any]:
        return {
            "kwaiSkuId": int(sku.sku_id),
            "relSkuId": int(sku.out_sku_id) if sku.out_sku_id.isdigit() else 0,
            "skuStock": sku.stock,
            "imageUrl": product.pic,
            "skuSalePrice": sku.price_fen,
            "volume": 0,
            "isValid": 1,
            "createTime": self.ms(sku.create_time),
            "updateTime": self.ms(sku.update_time),
            "specification": sku.spec_text,
            "appkey": "",
            "skuNick": sku.code,
            "skuProp": [
                {
                    "propName": n,
                    "propValueName": v,
                    "propId": _stable_int(product.product_id, n, digits=9),
                    "propValueId": _stable_int(product.product_id, n, v, digits=9),
                    "skuId": int(sku.sku_id),
                    "itemId": int(product.product_id),
                    "isValid": 1,
                    "isMainProp": 1 if i == 0 else 0,
                }
                for i, (n, v) in enumerate(sku.spec)
            ],  # fmt: skip
            "kwaiItemId": int(product.product_id),
            "gtinCode": "",
            "reserveStock": reserved_stock(self.world, sku.sku_id),
            "goodsId": "",
            "goodsCode": [],
        }

    def item(self, product: Product) -> dict[str, Any]:
        item_status = 2 if product.status == "deleted" else 1
        return {
            "kwaiItemId": int(product.product_id),
            "skuList": [self.sku(s, product) for s in product.skus],
            "userId": int(product.shop_id),
            "relItemId": int(product.out_product_id) if product.out_product_id.isdigit() else 0,
            "title": product.title,
            "details": "",
            "mainImageUrl": product.pic,
            "linkUrl": f"https://app.kwaixiaodian.com/merchant/shop/detail?id={product.product_id}",
            "categoryId": _stable_int(product.category, digits=5),
            "price": min((s.price_fen for s in product.skus), default=0),
            "volume": 0,
            "categoryName": product.category.split("/")[-1],
            "status": item_status,
            "createTime": self.ms(product.create_time),
            "updateTime": self.ms(product.update_time),
            "serviceRule": {},
            "auditStatus": 2,
            "auditReason": "",
            "shelfStatus": 1 if product.status == "online" else 0,
            "shelfStatusUpdateReason": "",
            "imageUrls": [product.pic],
            "fromType": 0,
            "appkey": "",
            "itemStatus": item_status,
            "expressTemplateId": _stable_int(product.shop_id, "tpl", digits=8),
            "itemType": 1,
            "multipleStock": False,
        }

    # ---- settlement
    def bill(self, s: SettlementLine, order: Order | None) -> dict[str, Any]:
        refund = s.trade_type != "settle"
        line = order.line(s.line_id) if order else None
        refunded = -s.total_fen if refund else s.refund_before_settle_fen
        refunds = [] if not order else [a for a in self.world.aftersales_of_order(order.order_id)
                                        if a.line_id == s.line_id and a.refund_status == "success"]  # fmt: skip
        return {
            "orderNo": int(s.line_id),
            "productId": s.product_id,
            "productName": line.title if line else "",
            "productNum": s.goods_count,
            "orderCreateTime": fmt_time(s.order_time),
            "actualPayAmount": str(0 if refund else s.real_pay_fen),
            "platformAllowanceAmount": str(s.platform_coupon_fen),
            "anchorHongBaoAmount": "0",
            "hongbaoDetail": "",
            "totalIncome": str(0 if refund else s.real_pay_fen + s.platform_coupon_fen),
            "totalRefundAmount": str(refunded),
            "platformCommissionAmount": str(s.service_fee_fen),
            "distributorId": "",
            "distributorCommissionAmount": "0",
            "activityUserId": "",
            "activityUserCommissionAmount": "0",
            "collectMode": "1",
            "kzkId": "",
            "kzkCommissionAmount": "0",
            "serviceUserId": "",
            "serviceAmount": str(s.commission_fen),
            "serviceCommissionRole": "",
            "huabeiAmount": "0",
            "totalOutgoingAmount": str(
                s.service_fee_fen + s.commission_fen + (refunded if not refund else 0)
            ),
            "settlementStatus": "已结算",
            "settlementAmount": str(s.settle_fen),
            "settlementTime": fmt_time(s.settle_time),
            "settlementRule": "结算后退款" if refund else "确认收货后结算",
            "accountChannel": "微信",
            "accountName": self.shop_name(s.shop_id),
            "merchantId": s.shop_id,
            "orderRemark": s.remark,
            "czjAmount": "0",
            "refundInfo": [
                {
                    "platformAllowanceRefund": 0,
                    "actualPayRefund": a.refund_fen,
                    "refundId": int(a.aftersale_id),
                }
                for a in refunds
            ],
            "otherAmount": 0,
            "otherAmountDetail": "",
            "mcnId": "",
            "otherAmountDesc": "0.00",
        }


def reserved_stock(world: World, sku_id: str) -> int:
    """Stock reserved for promotions (cannot be reduced by the stock API)."""
    return int(world.meta_get(f"ks:reserve:{sku_id}", "0") or 0)


def set_reserved_stock(world: World, sku_id: str, quantity: int) -> None:
    """Reserve part of a SKU's stock for an activity (test/demo helper)."""
    world.meta_set(f"ks:reserve:{sku_id}", str(int(quantity)))


def hold_order(world: World, oid: str, *, codes: list[int] | None = None, risk_code: int = 0) -> None:
    """Put a Kuaishou order on hold (``disableDeliveryReasonCode``) and/or flag it (``riskCode``);
    ``codes=[]`` and ``risk_code=0`` lift it. Applies from the next read (the order's update
    time does not change, as when the platform's risk review starts at payment)."""
    world.meta_set(f"ks:hold:{oid}", json.dumps({"codes": list(codes or []), "risk_code": int(risk_code)}))


# --------------------------------------------------------------------------- the app


class KuaishouApp(PlatformGateway):
    """WSGI app imitating ``openapi.kwaixiaodian.com`` (plus the OAuth authorize page)."""

    platform = PLATFORM

    def __init__(self, world: World, **kwargs: Any) -> None:
        super().__init__(world, **kwargs)
        self._local = threading.local()
        self._refresh_lock = threading.Lock()
        self.order_pager = SnapshotPager(world, table="orders", id_col="order_id", create_col="create_time",
                                         json_path="$.order.update_time", created_kind=str(EventKind.ORDER_CREATED))  # fmt: skip
        self.refund_pager = SnapshotPager(world, table="aftersales", id_col="aftersale_id", create_col="apply_time",
                                          json_path="$.aftersale.update_time", created_kind=str(EventKind.AFTERSALE_CREATED))  # fmt: skip
        r = self.route
        both = ("GET", "POST")
        r("/oauth/authorize", self.authorize_page, methods=both, auth="none", faults=False)
        r("/oauth2/access_token", self.oauth_access_token, methods=both, auth="oauth")
        r("/oauth2/refresh_token", self.oauth_refresh_token, methods=both, auth="oauth")
        for method, handler in (
            ("open.user.seller.get", self.user_seller_get),
            ("open.order.cursor.list", self.order_cursor_list),
            ("open.order.detail", self.order_detail),
            ("open.seller.order.goods.deliver", self.goods_deliver),
            ("open.order.goods.split.deliver", self.split_deliver),
            ("open.seller.order.goods.logistics.append", self.logistics_append),
            ("open.seller.order.logistics.update", self.logistics_update),
            ("open.logistics.company.list", self.logistics_company_list),
            ("open.order.decrypt.batch", self.decrypt_batch),
            ("open.order.search.index.batch", self.search_index_batch),
            ("open.item.sku.stock.update", self.sku_stock_update),
            ("open.item.sku.list.get", self.sku_list_get),
            ("open.item.list.get", self.item_list_get),
            ("open.item.new", self.item_new),
            ("open.seller.order.refund.pcursor.list", self.refund_pcursor_list),
            ("open.seller.order.refund.detail", self.refund_detail),
            ("open.seller.order.refund.approve", self.refund_approve),
            ("open.seller.order.refund.returngoods.approve", self.refund_returngoods_approve),
            ("open.seller.order.refund.confirm.receipt", self.refund_confirm_receipt),
            ("open.refund.reject", self.refund_reject),
            ("open.refund.reject.reason", self.refund_reject_reason),
            ("open.refund.confirm.and.send", self.refund_confirm_and_send),
            ("open.address.seller.list", self.address_seller_list),
            ("open.funds.financial.settled.bill.detail", self.settled_bill_detail),
            ("open.express.ebill.get", self.ebill_get),
            ("open.express.ebill.cancel", self.ebill_cancel),
            ("open.express.ebill.append", self.ebill_append),
            ("open.express.subscribe.query", self.express_subscribe_query),
            ("open.logistics.trace.query", self.logistics_trace_query),
            ("open.dropshipping.relation.merchant.batch.apply", self.ds_relation_apply),
            ("open.dropshipping.order.batch.allocate", self.ds_allocate),
            ("open.dropshipping.order.batch.allocate.cancel", self.ds_allocate_cancel),
            ("open.dropshipping.order.merchant.list", self.ds_merchant_list),
            ("open.dropshipping.order.merchant.detail", self.ds_merchant_detail),
            ("open.dropshipping.order.list", self.ds_factory_list),
            ("open.dropshipping.ebill.batch.get", self.ds_ebill_batch_get),
            ("open.dropshipping.order.deliver", self.ds_deliver),
            ("open.dropshipping.order.logistics.update", self.ds_logistics_update),
        ):
            r(path_of(method), handler, methods=both, auth="token")

    # ------------------------------------------------------------------ envelope

    def request_id(self) -> str:
        return uuid.uuid4().hex

    def ok(self, data: Any = None, **top_level: Any) -> Response:
        body: dict[str, Any] = {"result": R_OK, "error_msg": "", "code": "1", "msg": "success", "sub_code": "", "sub_msg": "",
                                "requestId": self.request_id()}  # fmt: skip
        if data is not None:
            body["data"] = data
        body.update(top_level)
        return json_response(body)

    def error_response(self, error: ApiError, request: Request) -> Response:
        f = error.fields
        if "error" in f:  # OAuth endpoints
            return json_response(
                {"result": f["result"], "error": f["error"], "error_msg": f.get("error_msg", "")},
                error.http_status,
            )
        result = int(f.get("result", R_SERVICE_BUSY))
        message = str(f.get("error_msg", ""))
        return json_response(
            {
                "result": result,
                "error_msg": message,
                "code": str(result),
                "msg": message,
                "sub_code": f.get("sub_code", ""),
                "sub_msg": message,
                "requestId": self.request_id(),
            },
            error.http_status,
        )

    def service_error(self) -> ApiError:
        request: Request | None = getattr(self._local, "request", None)
        if request is not None and request.path.startswith("/oauth2/"):
            return oauth_error(OAUTH_SERVER_ERROR, "服务器内部错误")
        return ks_error(R_SERVICE_BUSY, "服务繁忙，请稍后重试", "SERVICE_BUSY")

    def rate_limit_error(self) -> ApiError:
        request: Request | None = getattr(self._local, "request", None)
        params = self._params_lenient(request) if request is not None else {}
        method = params.get("method") or (method_of(request.path) if request is not None else "")
        appkey = params.get("appkey", "")
        rule = self.faults.rule(PLATFORM, request.path if request is not None else "*")
        qps = rule.qps if rule.qps is not None else DEFAULT_QPS.get(PLATFORM, 300.0)
        return ks_error(
            R_QPS,
            f"Exceed qps limit, KEY [apiId:{method};appkey:{appkey}], MAX_QPS [{float(qps):.1f}]",
            "QPS_LIMIT",
        )

    def unknown_path_error(self, path: str) -> ApiError:
        return ks_error(R_NO_API, f"API不存在: {method_of(path)}", "API_NOT_FOUND")

    def result_code(self, response: Response) -> str:
        if "json" not in (response.header("content-type") or ""):
            return str(response.status)
        try:
            return str(json.loads(response.body).get("result", ""))
        except ValueError:
            return "malformed"

    def handle(self, request: Request) -> Response:
        self._local.request = request
        try:
            return super().handle(request)
        finally:
            self._local.request = None

    # ------------------------------------------------------------------ authentication

    @staticmethod
    def _params_lenient(request: Request) -> dict[str, str]:
        params = dict(request.query)
        if (
            request.method == "POST"
            and request.body
            and "x-www-form-urlencoded" in request.headers.get("content-type", "")
        ):
            params.update(request.form())
        return params

    @staticmethod
    def call_params(request: Request) -> dict[str, str]:
        """Query parameters, overridden by the form body of a POST (only form bodies are accepted)."""
        params = dict(request.query)
        if request.method == "POST" and request.body:
            if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
                raise param_error("Content-Type仅支持application/x-www-form-urlencoded")
            params.update(request.form())
        return params

    def authenticate(self, request: Request, route: Route) -> CallContext:
        ctx = CallContext()
        if route.auth == "none":
            return ctx
        params = self.call_params(request)
        ctx.params = params
        if route.auth == "oauth":
            return ctx
        for name in ("appkey", "method", "timestamp"):
            if not params.get(name):
                raise param_error(f"缺少参数{name}")
        if not params.get("sign"):
            raise ks_error(R_SIGN_MISSING, "缺少签名参数sign", "SIGN_MISSING")
        app = self.world.get_app(params["appkey"])
        if app is None or app.platform != PLATFORM:
            raise ks_error(R_APP, "appkey不存在", "APPKEY_INVALID")
        ctx.app = app
        sign_method = params.get("signMethod", "MD5")  # the official SDK defaults to MD5
        if sign_method not in ("MD5", "HMAC_SHA256"):
            raise ks_error(R_SIGN_INVALID, "签名校验失败: 不支持的signMethod", "SIGN_INVALID")
        expected = compute_sign(app.sign_secret, sign_text(params, app.sign_secret), sign_method)
        given = params["sign"]
        if sign_method == "MD5":
            expected, given = expected.lower(), given.lower()
        if not hmac.compare_digest(expected.encode(), given.encode()):
            raise ks_error(R_SIGN_INVALID, "签名校验失败", "SIGN_INVALID")
        if params.get("version", "1") != "1":
            raise param_error("version只支持1")
        if (
            not params["timestamp"].isdigit()
            or abs(int(params["timestamp"]) - self.world.clock.now() * 1000) > TIMESTAMP_TOLERANCE_MS
        ):
            raise param_error("timestamp不合法，请使用当前时间的毫秒时间戳")
        if path_of(params["method"]) != request.path:
            raise param_error("method与请求路径不一致")
        if app.ip_whitelist and request.remote_addr not in app.ip_whitelist:
            raise ks_error(R_APP, "IP不在白名单内", "IP_NOT_ALLOWED")
        ctx.extra["method"] = params["method"]
        token = self.world.get_token(params.get("access_token", ""))
        if token is None or token.revoked_at or token.app_key != app.app_key:
            raise ks_error(R_TOKEN, "鉴权失败", "TOKEN_INVALID")
        if self.world.now() >= token.access_expires_at:
            raise ks_error(R_TOKEN, "TOKEN过期", "TOKEN_EXPIRED")
        if not token.shop_id:
            raise ks_error(R_NO_MAIN_ACCOUNT, "主账号不存在", "NO_MAIN_ACCOUNT")
        auth = self.world.authorization(app.app_key, token.shop_id)
        if auth is None or auth.status != "active":
            raise ks_error(R_TOKEN, "AUTHORIZATION_REVOKED", "AUTHORIZATION_REVOKED")
        if not app.may_call(request.path):
            raise ks_error(R_SCOPE, "应用无该API权限", "API_PERMISSION_DENIED")
        needed = next((scope for prefix, scope in PATH_SCOPES if request.path.startswith(prefix)), None)
        if needed and needed not in token_scopes(self.world, token.access_token):
            raise ks_error(R_SCOPE, "token中无scope权限", "SCOPE_DENIED")
        try:
            raw = params.get("param", "")
            business = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise param_error("param不是合法的JSON") from None
        if not isinstance(business, dict):
            raise param_error("param必须是JSON对象")
        ctx.params = business
        ctx.token = token
        ctx.shop = self.world.get_shop(token.shop_id)
        return ctx

    def renderer(self, ctx: CallContext) -> Renderer:
        return Renderer(self.world, ctx.app.app_key if ctx.app else "")

    # ------------------------------------------------------------------ OAuth

    def _authorize_problem(self, params: Mapping[str, str]) -> tuple[App | None, str]:
        app = self.world.get_app(params.get("app_id", ""))
        if app is None or app.platform != PLATFORM:
            return None, "unauthorized_client: 应用不存在"
        if params.get("response_type", "") != "code":
            return app, "unsupported_response_type: response_type必须为code"
        scopes = [s for s in params.get("scope", "").split(",") if s]
        if not scopes or any(s not in SCOPES for s in scopes):
            return app, "invalid_scope: scope不合法"
        redirect_uri = params.get("redirect_uri", "")
        if not redirect_uri or (app.redirect_uri and redirect_uri != app.redirect_uri):
            return app, "Invalid url: redirect_uri与应用填写的回调地址不一致"
        return app, ""

    def authorize_page(self, request: Request, ctx: CallContext) -> Response:
        """The merchant-facing authorisation page (imitates open.kwaixiaodian.com/oauth/authorize)."""
        params = request.query if request.method == "GET" else request.form()
        app, problem = self._authorize_problem(params)
        if problem or app is None:
            return html_response(f"<h1>授权失败</h1><p>{html.escape(problem)}</p>", 400)
        state = params.get("state", "")
        scopes = [s for s in params["scope"].split(",") if s]
        if request.method == "POST":
            shop = self.world.get_shop(params.get("shop_id", ""))
            if shop is None or shop.platform != PLATFORM:
                return html_response("<h1>授权失败</h1><p>商家不存在</p>", 400)
            code = self.world.create_oauth_code(app.app_key, shop.shop_id, state, ttl=OAUTH_CODE_TTL)
            self.world.meta_set(f"ks:code:{code.code}", ",".join(scopes))
            return redirect(params["redirect_uri"], {"code": code.code, "state": state})
        shops = "".join(
            f"<li><label><input type='radio' name='shop_id' value='{html.escape(s.shop_id)}'{' checked' if i == 0 else ''}> "
            f"{html.escape(s.name)}（商家ID {html.escape(s.shop_id)}）</label></li>"
            for i, s in enumerate(self.world.shops(PLATFORM))
        )
        hidden = "".join(
            f"<input type='hidden' name='{k}' value='{html.escape(params.get(k, ''))}'>"
            for k in ("app_id", "redirect_uri", "scope", "response_type", "state")
        )
        scope_items = "".join(f"<li>{html.escape(s)}</li>" for s in scopes)
        page = f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>快手电商开放平台授权（沙箱）</title>
<style>body{{font-family:sans-serif;max-width:560px;margin:40px auto;color:#222}}li{{list-style:none;margin:6px 0}}
button{{background:#ff4906;color:#fff;border:0;padding:10px 28px;border-radius:4px;font-size:16px}}</style></head>
<body><h2>应用「{html.escape(app.name)}」申请获取以下权限</h2><ul>{scope_items}</ul>
<p>请选择授权的商家账号：</p>
<form method="post" action="/oauth/authorize">{hidden}<ul>{shops}</ul><button type="submit">授权并登录</button></form>
<p style="color:#888">这是 ecbao 平台沙箱，不是真实的快手小店。回调地址：{html.escape(params["redirect_uri"])}</p></body></html>"""
        return html_response(page)

    def _oauth_app(self, params: Mapping[str, str]) -> App:
        for name in ("app_id", "app_secret", "grant_type"):
            if not params.get(name):
                raise oauth_error(OAUTH_INVALID_REQUEST, f"缺少必要的请求参数{name}")
        app = self.world.get_app(params["app_id"])
        if (
            app is None
            or app.platform != PLATFORM
            or not hmac.compare_digest(app.app_secret.encode(), params["app_secret"].encode())
        ):
            raise oauth_error(OAUTH_UNAUTHORIZED_CLIENT, "app非法")
        return app

    def _token_body(self, token: Token, *, with_open_id: bool) -> dict[str, Any]:
        now = self.world.now()
        body: dict[str, Any] = {
            "result": R_OK,
            "access_token": token.access_token,
            "expires_in": max(0, token.access_expires_at - now),
            "refresh_token": token.refresh_token,
            "refresh_token_expires_in": max(0, token.refresh_expires_at - now),
            "scopes": token_scopes(self.world, token.access_token),
        }
        if with_open_id:
            body["open_id"] = Renderer(self.world, token.app_key).seller_open_id(token.shop_id)
        return body

    def oauth_access_token(self, request: Request, ctx: CallContext) -> Response:
        """``/oauth2/access_token``: ``grant_type=code`` (authorisation code) or ``client_credentials``."""
        params = ctx.params
        app = self._oauth_app(params)
        ctx.app = app
        grant_type = params["grant_type"]
        if grant_type == "client_credentials":
            token = self.world.issue_token(app.app_key, "", access_ttl=ACCESS_TOKEN_TTL, refresh_ttl=0)
            return json_response(
                {
                    "result": R_OK,
                    "access_token": token.access_token,
                    "token_type": "bearer",
                    "expires_in": ACCESS_TOKEN_TTL,
                }
            )
        if grant_type != "code":
            raise oauth_error(OAUTH_UNSUPPORTED_GRANT_TYPE, "grant_type错误")
        if not params.get("code"):
            raise oauth_error(OAUTH_INVALID_REQUEST, "缺少必要的请求参数code")
        try:
            code = self.world.consume_oauth_code(params["code"], app.app_key)
        except NotFound:
            raise oauth_error(OAUTH_INVALID_GRANT, "code无效或已使用") from None
        except Conflict:
            raise oauth_error(OAUTH_INVALID_GRANT, "code已过期") from None
        auth = self.world.authorization(app.app_key, code.shop_id)
        if auth is None or auth.status != "active":
            raise oauth_error(OAUTH_ACCESS_DENIED, "refreshToken.revokedAuthorization")
        token = self.world.issue_token(
            app.app_key, code.shop_id, access_ttl=ACCESS_TOKEN_TTL, refresh_ttl=REFRESH_TOKEN_TTL
        )
        scopes = self.world.meta_get(f"ks:code:{code.code}") or ",".join(SCOPES)
        self.world.meta_set(f"ks:scopes:{token.access_token}", scopes)
        ctx.shop = self.world.get_shop(code.shop_id)
        return json_response(self._token_body(token, with_open_id=True))

    def oauth_refresh_token(self, request: Request, ctx: CallContext) -> Response:
        """``/oauth2/refresh_token`` with rotating refresh tokens:

        a new pair is issued whose refresh token inherits the old one's expiry; the old refresh
        token keeps answering with that same new pair for 5 minutes, then is discarded
        (``100200102 refreshToken.discarded``). Old access tokens live until their own expiry.
        """
        params = ctx.params
        app = self._oauth_app(params)
        ctx.app = app
        if params["grant_type"] != "refresh_token":
            raise oauth_error(OAUTH_UNSUPPORTED_GRANT_TYPE, "grant_type必须是refresh_token")
        if not params.get("refresh_token"):
            raise oauth_error(OAUTH_INVALID_REQUEST, "缺少必要的请求参数refresh_token")
        with self._refresh_lock:
            token = self.world.get_token_by_refresh(params["refresh_token"])
            now = self.world.now()
            if token is None or token.app_key != app.app_key or token.revoked_at or not token.shop_id:
                raise oauth_error(OAUTH_ACCESS_DENIED, "invalid refresh_token")
            ctx.shop = self.world.get_shop(token.shop_id)
            auth = self.world.authorization(app.app_key, token.shop_id)
            if auth is None or auth.status != "active":
                raise oauth_error(OAUTH_ACCESS_DENIED, "refreshToken.revokedAuthorization")
            if token.successor:
                if now >= token.refresh_expires_at:
                    raise oauth_error(OAUTH_ACCESS_DENIED, "refreshToken.discarded")
                successor = self.world.get_token(token.successor)
                while successor is not None and successor.successor:
                    successor = self.world.get_token(successor.successor)
                if successor is None or successor.revoked_at:
                    raise oauth_error(OAUTH_ACCESS_DENIED, "invalid refresh_token")
                return json_response(self._token_body(successor, with_open_id=False))
            if now >= token.refresh_expires_at:
                raise oauth_error(OAUTH_ACCESS_DENIED, "invalid refresh_token")
            fresh = self.world.issue_token(app.app_key, token.shop_id, access_ttl=ACCESS_TOKEN_TTL,
                                           refresh_ttl=token.refresh_expires_at - now)  # fmt: skip
            self.world.meta_set(
                f"ks:scopes:{fresh.access_token}", ",".join(token_scopes(self.world, token.access_token))
            )
            token.successor = fresh.access_token
            token.refresh_expires_at = min(token.refresh_expires_at, now + REFRESH_TOKEN_GRACE)
            self.world.save_token(token)
            return json_response(self._token_body(fresh, with_open_id=False))

    # ------------------------------------------------------------------ seller

    def user_seller_get(self, request: Request, ctx: CallContext) -> Response:
        shop = ctx.shop
        assert shop is not None
        render = self.renderer(ctx)
        return self.ok({"name": shop.name, "sex": "", "head": f"https://sandbox.invalid/shop/{shop.shop_id}.jpg", "bigHead": "",
                        "sellerId": int(shop.shop_id), "openId": render.seller_open_id(shop.shop_id)})  # fmt: skip

    # ------------------------------------------------------------------ orders

    def _resolve(self, ctx: CallContext, oid: Any) -> tuple[Order, OrderLine]:
        """(world order, line) of a Kuaishou oid; someone else's order → 21 order operation reject."""
        oid = str(oid or "")
        order_id = self.world.order_id_of_line(oid) if oid.isdigit() else None
        order = self.world.get_order(order_id) if order_id else None
        if order is None:
            raise ks_error(R_REJECT, "订单不存在", "ORDER_NOT_FOUND")
        if order.shop_id != ctx.shop_id:
            raise ks_error(R_REJECT, "order operation reject", "ORDER_OPERATION_REJECT")
        return order, order.line(oid)

    def _window(self, begin: int, end: int, span_max: int, *, span_code: int, span_msg: str) -> None:
        now_ms = int(self.world.clock.now() * 1000)
        if end <= begin:
            raise ks_error(R_END_BEFORE_BEGIN, "结束时间要晚于开始时间", "ENDTIME MUST AFTER BEGINTIME")
        if end - begin > span_max:
            raise ks_error(
                span_code,
                span_msg,
                "SEARCH TIME RANGE EXPAND LIMIT"
                if span_code == R_RANGE_LIMIT
                else "SEARCH TIME RANGE EXPAND 7 DAYS",
            )
        if begin < now_ms - LOOKBACK_MAX_MS:
            raise ks_error(R_BEFORE_90_DAYS, "只能查询最近90天内的订单", "CAN NOT SEARCH BEFORE 90 DAYS")

    def order_cursor_list(self, request: Request, ctx: CallContext) -> Response:
        p = ctx.params
        page_size = _int(p, "pageSize", required=True)
        begin = _int(p, "beginTime", required=True)
        end = _int(p, "endTime", required=True)
        assert page_size is not None and begin is not None and end is not None
        if not 1 <= page_size <= ORDER_PAGE_MAX:
            raise param_error("pageSize取值范围为1~50")
        query_type = _int(p, "queryType", 1)
        sort = _int(p, "sort", 1)
        view = _int(p, "orderViewStatus", 1)
        cps = _int(p, "cpsType", 0)
        if query_type not in (1, 2) or sort not in (1, 2) or view not in range(0, 8) or cps not in (0, 1, 2):
            raise param_error("queryType/sort/orderViewStatus/cpsType取值不合法")
        if "cursor" not in p:
            raise param_error("缺少参数cursor")
        self._window(begin, end, ORDER_SPAN_MAX_MS, span_code=R_RANGE_7_DAYS, span_msg="查询范围不能大于7天")
        data = {
            "pageSize": page_size,
            "beginTime": begin,
            "endTime": end,
            "cursor": "nomore",
            "orderList": [],
        }
        cursor_text = str(p.get("cursor") or "")
        if cursor_text == "nomore" or cps == 2:  # the sandbox has no distribution orders
            return self.ok(data)
        fingerprint = hashlib.sha256(
            f"{ctx.shop_id}|{query_type}|{sort}|{begin}|{end}|{view}|{cps}".encode()
        ).hexdigest()[:10]
        if cursor_text:
            cursor = PageCursor.decode(cursor_text)
            if cursor.fingerprint != fingerprint:
                raise param_error("cursor与查询条件不一致")
            snapshot, after, after_index = cursor.snapshot, (cursor.ts, cursor.record_id), cursor.index
        else:
            snapshot, after, after_index = self.world.last_event_id(), None, -1
        wanted = VIEW_STATUS.get(view or 1)
        render = self.renderer(ctx)
        items: list[tuple[tuple[int, str, int], dict[str, Any]]] = []
        more = False
        lo, hi = ms_window(self.world, begin, end)
        stream = self.order_pager.iterate(
            ctx.shop_id, by_update=query_type == 2, lo=lo, hi=hi, ascending=sort == 2, snapshot=snapshot, after=after,
        )  # fmt: skip
        for ts, order_id, doc in stream:
            order = from_dict(Order, json.loads(doc)) if doc else self.world.get_order(order_id)
            if order is None:
                continue
            for index, line in enumerate(order.lines):
                if line.is_gift or (after is not None and (ts, order_id) == after and index <= after_index):
                    continue
                if wanted is not None and line_status(order, line) not in wanted:
                    continue
                if len(items) == page_size:
                    more = True
                    break
                items.append(((ts, order_id, index), render.order(order, line)))
            if more:
                break
        data["orderList"] = [rendered for _, rendered in items]
        if more:
            ts, order_id, index = items[-1][0]
            data["cursor"] = PageCursor(snapshot, ts, order_id, index, fingerprint).encode()
        return self.ok(data)

    def order_detail(self, request: Request, ctx: CallContext) -> Response:
        if not ctx.params.get("oid"):
            raise param_error("缺少参数oid")
        order, line = self._resolve(ctx, ctx.params["oid"])
        return self.ok(self.renderer(ctx).order(order, line))

    # ------------------------------------------------------------------ shipping

    def logistics_company_list(self, request: Request, ctx: CallContext) -> Response:
        """[choice] ``open.logistics.company.list``: the §2.5 codes the sandbox's carriers use."""
        return self.ok(
            [{"expressCode": code, "expressName": name} for code, name in sorted(CARRIER_CODES.values())]
        )

    def _check_shippable(self, render: Renderer, order: Order, line: OrderLine) -> None:
        held = [d for d in dropship.of_order(self.world, order.order_id) if d.status == dropship.ASSIGNED
                and any(x.line_id == line.line_id for x in d.lines)]  # fmt: skip
        if held:  # [GUESS] an oid allocated to a factory is the factory's to ship
            raise ks_error(R_REJECT, "订单已分配给厂家代发，不允许商家发货", "DROPSHIPPING_ALLOCATED")
        codes, _ = render.holds(order, line)
        if codes:
            raise ks_error(
                R_DELIVER_RULE,
                f"订单履约拦截中，不允许发货: {','.join(HOLD_REASONS.get(c, str(c)) for c in codes)}",
                "DELIVERY_DISABLED",
            )

    def _check_waybill(self, carrier: str, tracking_no: str) -> None:
        if not _valid_tracking_no(tracking_no):
            raise ks_error(R_DELIVER_RULE, "运单号和物流公司不匹配", "EXPRESS_NO_INVALID")
        waybill = self.world.get_waybill(tracking_no)
        if waybill is not None and waybill.status == "issued" and waybill.carrier != carrier:
            raise ks_error(R_DELIVER_RULE, "电子面单取号与发货快递公司不一致", "EBILL_COMPANY_MISMATCH")

    def _ship(self, order: Order, parcels: list[ShipmentSpec]) -> list[Package]:
        try:
            return self.world.ship_order(order.order_id, parcels)
        except Conflict as exc:
            if "refund" in str(exc):
                raise ks_error(R_REJECT, "订单存在进行中的退款，暂不能发货", "REFUND_IN_PROGRESS") from None
            raise ks_error(R_REJECT, "订单状态不允许发货", "ORDER_STATUS_INVALID") from None
        except InvalidArgument as exc:
            raise param_error(f"发货参数不正确: {exc}") from None

    def goods_deliver(self, request: Request, ctx: CallContext) -> Response:
        p = ctx.params
        for key in ("orderId", "expressCode", "expressNo"):
            if p.get(key) in (None, ""):
                raise param_error(f"缺少参数{key}")
        if not isinstance(p["expressCode"], int) and not str(p["expressCode"]).isdigit():
            raise param_error("expressCode必须为数字")
        order, line = self._resolve(ctx, p["orderId"])
        if line.is_gift:
            raise ks_error(R_DELIVER_RULE, "赠品订单请使用拆单发货API发货", "GIFT_ORDER")
        carrier = _carrier_of(p["expressCode"])
        tracking_no = str(p["expressNo"])
        self._check_waybill(carrier, tracking_no)
        if line_status(order, line) != 30:
            raise ks_error(R_REJECT, "订单状态不允许发货", "ORDER_STATUS_INVALID")
        self._check_shippable(self.renderer(ctx), order, line)
        remaining = line.qty - line.refunded_qty - line.shipped_qty
        self._ship(order, [ShipmentSpec(carrier, tracking_no, [(line.line_id, remaining)])])
        return self.ok()

    def split_deliver(self, request: Request, ctx: CallContext) -> Response:
        p = ctx.params
        if not p.get("mainOrderId"):
            raise param_error("缺少参数mainOrderId")
        packages = p.get("deliveryItemInfoList") or []
        if not isinstance(packages, list) or not packages:
            raise param_error("缺少参数deliveryItemInfoList")
        order, main = self._resolve(ctx, p["mainOrderId"])
        if main.is_gift:
            raise param_error("mainOrderId必须是主品订单id")
        allowed = {
            main.line_id,
            *(g.line_id for g in order.lines if g.is_gift and g.master_line_id == main.line_id),
        }
        if line_status(order, main) not in (30, 40):
            raise ks_error(R_REJECT, "订单状态不允许发货", "ORDER_STATUS_INVALID")
        render = self.renderer(ctx)
        self._check_shippable(render, order, main)
        existing = len(render.packages_of(order, allowed))
        if existing + len(packages) > PACKAGE_LIMIT:
            raise ks_error(R_DELIVER_RULE, "包裹数量超过上限50", "PACKAGE_LIMIT")
        parcels = []
        for package in packages:
            if (
                not isinstance(package, dict)
                or package.get("expressCode") in (None, "")
                or not package.get("expressNo")
            ):
                raise param_error("deliveryItemInfoList缺少expressCode/expressNo")
            carrier = _carrier_of(package["expressCode"])
            self._check_waybill(carrier, str(package["expressNo"]))
            goods = package.get("deliveryGoodsInfoList") or []
            if not goods:
                raise param_error("缺少参数deliveryGoodsInfoList")
            items = []
            for good in goods:
                oid = str(good.get("oid", ""))
                if oid not in allowed:
                    raise param_error(f"订单{oid}不属于主订单{main.line_id}")
                num = _int(good, "deliveryNum", required=True)
                assert num is not None
                if num < 1:
                    raise param_error("deliveryNum必须大于等于1")
                items.append((oid, num))
            parcels.append(ShipmentSpec(carrier, str(package["expressNo"]), items))
        self._ship(order, parcels)
        return self.ok()

    def logistics_append(self, request: Request, ctx: CallContext) -> Response:
        p = ctx.params
        for key in ("oid", "expressCode", "expressNo"):
            if p.get(key) in (None, ""):
                raise param_error(f"缺少参数{key}")
        order, line = self._resolve(ctx, p["oid"])
        if line.is_gift:
            raise param_error("只允许传主品订单id")
        carrier = _carrier_of(p["expressCode"])
        self._check_waybill(carrier, str(p["expressNo"]))
        render = self.renderer(ctx)
        gifts = {g.line_id for g in order.lines if g.is_gift and g.master_line_id == line.line_id}
        if line_status(order, line) != 40:
            raise ks_error(R_REJECT, "订单未发货或已签收，不能追加包裹", "ORDER_STATUS_INVALID")
        if len(render.packages_of(order, {line.line_id} | gifts)) >= PACKAGE_LIMIT:
            raise ks_error(R_DELIVER_RULE, "包裹数量超过上限50", "PACKAGE_LIMIT")
        try:
            self.world.append_package(
                order.order_id, line.line_id, carrier=carrier, tracking_no=str(p["expressNo"])
            )
        except WorldError as exc:
            raise ks_error(R_REJECT, f"追加包裹失败: {exc}", "APPEND_FAILED") from None
        return self.ok()

    def logistics_update(self, request: Request, ctx: CallContext) -> Response:
        p = ctx.params
        for key in ("orderId", "expressCode", "expressNo"):
            if p.get(key) in (None, ""):
                raise param_error(f"缺少参数{key}")
        order, line = self._resolve(ctx, p["orderId"])
        if line.is_gift:
            raise param_error("只允许传入主品订单id")
        carrier = _carrier_of(p["expressCode"])
        self._check_waybill(carrier, str(p["expressNo"]))
        if line_status(order, line) != 40:
            raise ks_error(R_REJECT, "订单当前状态不能修改物流信息", "ORDER_STATUS_INVALID")
        ids = {
            line.line_id,
            *(g.line_id for g in order.lines if g.is_gift and g.master_line_id == line.line_id),
        }
        candidates = Renderer.packages_of(order, ids)
        logistics_id = str(p.get("logisticsId") or "")
        package = (
            next((x for x in candidates if x.package_id == logistics_id), None)
            if logistics_id
            else (candidates[0] if candidates else None)
        )
        if package is None:
            raise param_error("logisticsId不存在")
        self.world.edit_shipping(
            order.order_id, carrier=carrier, tracking_no=str(p["expressNo"]), package_id=package.package_id
        )
        return self.ok()

    # ------------------------------------------------------------------ PII

    def decrypt_batch(self, request: Request, ctx: CallContext) -> Response:
        items = ctx.params.get("batchDecryptList") or []
        if not isinstance(items, list) or not items:
            raise param_error("缺少参数batchDecryptList")
        if len(items) > DECRYPT_BATCH_LIMIT:
            raise param_error("batchDecryptList每次不超过100条")
        now = self.world.now()
        results: list[dict[str, Any]] = []
        valid: list[tuple[dict[str, Any], str]] = []
        for item in items:
            biz_id, cipher_text = str(item.get("bizId", "")), str(item.get("encryptedData", ""))
            out = {
                "bizId": biz_id,
                "encryptedData": cipher_text,
                "decryptedData": "",
                "errorCode": DECRYPT_OK,
                "errorMsg": "",
            }
            results.append(out)
            order_id = self.world.order_id_of_line(biz_id) if biz_id.isdigit() else None
            order = self.world.get_order(order_id) if order_id else None
            if order is None or order.shop_id != ctx.shop_id:
                out.update(errorCode=DECRYPT_NOT_YOUR_ORDER, errorMsg="订单不存在或不属于当前商家")
                continue
            try:
                bound, _kind, plaintext = self.world.vault.decrypt(cipher_text, CIPHER_FIELDS)
            except DecryptError:
                out.update(errorCode=DECRYPT_BAD_CIPHER, errorMsg="密文格式错误")
                continue
            if bound != f"{ctx.shop_id}:{biz_id}":
                out.update(errorCode=DECRYPT_CIPHER_MISMATCH, errorMsg="密文与订单不匹配")
                continue
            finished = order.complete_time or order.cancel_time
            if order.status == OrderStatus.UNPAID or (finished and now - finished > DECRYPT_REFUSE_AFTER):
                out.update(errorCode=DECRYPT_REFUSED, errorMsg="当前订单状态不允许解密")
                continue
            valid.append((out, plaintext))
        granted = self.world.consume_decrypt_quota(ctx.shop_id, len(valid)) if valid else 0
        for index, (out, plaintext) in enumerate(valid):
            if index < granted:
                out["decryptedData"] = plaintext
            else:
                out.update(errorCode=DECRYPT_QUOTA, errorMsg="今日解密额度已用完")
        return self.ok(None, batchDecryptResultList=results)

    def search_index_batch(self, request: Request, ctx: CallContext) -> Response:
        """``open.order.search.index.batch`` (reference §"Merging by receiver"): plaintexts → the
        index strings the orders' ciphertexts carry (their first segment), for merging.
        [choice] ``type`` 1 address (street detail), 2 name, 3 mobile; answer
        ``data.indexResultList[]{plainText, type, searchIndex}``."""
        items = ctx.params.get("indexParamList") or []
        if not isinstance(items, list) or not items:
            raise param_error("缺少参数indexParamList")
        if len(items) > SEARCH_INDEX_BATCH_LIMIT:
            raise param_error("indexParamList每次不超过100条")
        results = []
        for item in items:
            kind = SEARCH_INDEX_TYPES.get(_int(item, "type", 0) or 0) if isinstance(item, dict) else None
            text = str(item.get("plainText") or "") if isinstance(item, dict) else ""
            if kind is None or not text:
                raise param_error("indexParamList的plainText不能为空，type取值为1、2、3")
            results.append(
                {
                    "plainText": text,
                    "type": int(item["type"]),
                    "searchIndex": self.world.vault.search_index(kind, text),
                }
            )
        return self.ok({"indexResultList": results})

    # ------------------------------------------------------------------ stock and items

    def _product(self, ctx: CallContext, item_id: Any) -> Product:
        product = self.world.get_product(str(item_id or ""))
        if product is None or product.shop_id != ctx.shop_id or product.status == "deleted":
            raise ks_error(R_REJECT, "商品不存在", "ITEM_NOT_FOUND")
        return product

    def sku_stock_update(self, request: Request, ctx: CallContext) -> Response:
        p = ctx.params
        item_id = _int(p, "kwaiItemId", required=True)
        sku_id = _int(p, "skuId", required=True)
        change = _int(p, "skuChangeStock", required=True)
        change_type = _int(p, "changeType", required=True)
        assert change is not None
        if change_type not in (1, 2):
            raise param_error("changeType取值为1（增加）或2（减少）")
        if not 0 < change < STOCK_LIMIT:
            raise param_error("skuChangeStock取值范围：大于0小于9999999")
        product = self._product(ctx, item_id)
        sku = next((s for s in product.skus if s.sku_id == str(sku_id)), None)
        if sku is None:
            raise ks_error(R_REJECT, "sku不存在", "SKU_NOT_FOUND")
        try:
            with self.world.write():
                current = self.world.get_sku(sku.sku_id)
                assert current is not None
                if change_type == 1:
                    if current.stock + change > STOCK_LIMIT:
                        raise param_error("当前库存+skuChangeStock不能大于9999999")
                    self.world.adjust_stock(sku.sku_id, change)
                else:
                    if current.stock - change < reserved_stock(self.world, sku.sku_id):
                        raise ks_error(R_REJECT, "当前库存不足，请减少预留数量", "STOCK_NOT_ENOUGH")
                    self.world.adjust_stock(sku.sku_id, -change)
        except OutOfStock:
            raise ks_error(R_REJECT, "当前库存不足，请减少预留数量", "STOCK_NOT_ENOUGH") from None
        return self.ok()

    def sku_list_get(self, request: Request, ctx: CallContext) -> Response:
        p = ctx.params
        product = self._product(ctx, _int(p, "kwaiItemId", required=True))
        rel = _int(p, "relSkuId")
        render = self.renderer(ctx)
        skus = [render.sku(s, product) for s in product.skus if rel is None or s.out_sku_id == str(rel)]
        return self.ok({"skuCount": len(skus), "skuList": skus})

    def item_list_get(self, request: Request, ctx: CallContext) -> Response:
        p = ctx.params
        render = self.renderer(ctx)
        if p.get("kwaiItemId") or p.get("relItemId"):
            _, every = self.world.products(ctx.shop_id, limit=10**9)
            found = [x for x in every if x.status != "deleted" and (
                x.product_id == str(p.get("kwaiItemId") or "") or (p.get("relItemId") and x.out_product_id == str(p["relItemId"])))]  # fmt: skip
            return self.ok({"totalItemCount": len(found), "currentPageItemCount": len(found), "currentPageNumber": 1,
                            "totalPage": 1, "items": [render.item(x) for x in found]})  # fmt: skip
        page_number = _int(p, "pageNumber", 1) or 1
        page_size = _int(p, "pageSize", 100) or 100
        if page_size > 100:
            page_size = 100
        if page_size < 1 or page_number < 1:
            raise param_error("pageNumber从1开始，pageSize取值10~100")
        _, every = self.world.products(ctx.shop_id, limit=10**9)
        shelf = _int(p, "onOfflineStatus")
        products = sorted(
            (
                x
                for x in every
                if x.status != "deleted" and (shelf is None or (x.status == "online") == (shelf == 1))
            ),
            key=lambda x: (x.create_time, x.product_id),
        )
        chunk = products[(page_number - 1) * page_size : page_number * page_size]
        total_pages = max(1, math.ceil(len(products) / page_size))
        return self.ok({"totalItemCount": len(products), "currentPageItemCount": len(chunk), "currentPageNumber": page_number,
                        "totalPage": total_pages, "items": [render.item(x) for x in chunk]})  # fmt: skip

    def item_new(self, request: Request, ctx: CallContext) -> Response:
        """``open.item.new`` subset (商品铺货): ``title``, ``categoryId``, ``imageUrls``, ``relItemId``,
        ``skuList[]{relSkuId, skuNick, skuSalePrice, skuStock, skuProps[]{propName, propValueName}}``
        → ``data{itemId, relItemId}``. [choice] field names follow the SDK's item DTOs where
        known; the rules (title ≤ 30 characters, 1–300 SKUs, unique ``skuNick``) are plausible."""
        p = ctx.params
        title = str(p.get("title") or "").strip()
        if not title:
            raise param_error("缺少参数title")
        if len(title) > ITEM_TITLE_MAX:
            raise ks_error(R_REJECT, f"商品标题不能超过{ITEM_TITLE_MAX}个字", "ITEM_TITLE_TOO_LONG")
        images = p.get("imageUrls")
        if not isinstance(images, list) or not images or not all(isinstance(x, str) and x for x in images):
            raise param_error("缺少参数imageUrls")
        sku_list = p.get("skuList")
        if not isinstance(sku_list, list) or not 1 <= len(sku_list) <= ITEM_SKUS_MAX:
            raise param_error(f"skuList数量为1~{ITEM_SKUS_MAX}")
        skus, nicks = [], set()
        for raw in sku_list:
            if not isinstance(raw, dict):
                raise param_error("skuList格式不正确")
            price = _int(raw, "skuSalePrice", required=True)
            stock = _int(raw, "skuStock", 0)
            assert price is not None and stock is not None
            if price <= 0:
                raise param_error("skuSalePrice必须大于0（分）")
            if not 0 <= stock < STOCK_LIMIT:
                raise param_error("skuStock取值范围：0~9999999")
            nick = str(raw.get("skuNick") or "")
            if nick and nick in nicks:
                raise param_error(f"skuNick重复: {nick}")
            nicks.add(nick)
            props = [
                [str(x.get("propName") or ""), str(x.get("propValueName") or "")]
                for x in raw.get("skuProps") or []
                if isinstance(x, dict)
            ]
            rel = _int(raw, "relSkuId", 0)
            skus.append({"code": nick, "spec": props, "price_fen": price, "stock": stock,
                         "out_sku_id": str(rel) if rel else ""})  # fmt: skip
        rel_item = _int(p, "relItemId", 0)
        try:
            product = self.world.create_product(
                shop_id=ctx.shop_id, title=title, skus=skus, category=str(_int(p, "categoryId", 0) or ""),
                pic=images[0], status="online", out_product_id=str(rel_item) if rel_item else "",
            )  # fmt: skip
        except InvalidArgument as exc:
            raise param_error(str(exc)) from None
        return self.ok({"itemId": int(product.product_id), "relItemId": rel_item or 0})

    # ------------------------------------------------------------------ after-sales

    def refund_pcursor_list(self, request: Request, ctx: CallContext) -> Response:
        p = ctx.params
        begin = _int(p, "beginTime", required=True)
        end = _int(p, "endTime", required=True)
        refund_type = _int(p, "type", required=True)
        page_size = _int(p, "pageSize", required=True)
        assert begin is not None and end is not None and page_size is not None
        if refund_type not in (8, 9):
            raise param_error("type取值为8或9")
        if not 1 <= page_size <= REFUND_PAGE_MAX:
            raise param_error("pageSize取值范围为1~100")
        if "pcursor" not in p:
            raise param_error("缺少参数pcursor")
        query_type, sort = _int(p, "queryType", 1), _int(p, "sort", 1)
        negotiate, status_filter = _int(p, "negotiateStatus"), _int(p, "status")
        if query_type not in (1, 2) or sort not in (1, 2):
            raise param_error("queryType/sort取值不合法")
        self._window(begin, end, REFUND_SPAN_MAX_MS, span_code=R_RANGE_LIMIT, span_msg="时间范围超限")
        data: dict[str, Any] = {"currentPage": _int(p, "currentPage", 1), "pageSize": page_size, "totalPage": 0, "totalSize": 0,
                                "beginTime": begin, "endTime": end, "pcursor": "nomore", "refundOrderInfoList": []}  # fmt: skip
        cursor_text = str(p.get("pcursor") or "")
        if cursor_text == "nomore":
            return self.ok(data)
        fingerprint = hashlib.sha256(
            f"{ctx.shop_id}|{query_type}|{sort}|{begin}|{end}|{refund_type}|{negotiate}|{status_filter}".encode()
        ).hexdigest()[:10]
        if cursor_text:
            cursor = PageCursor.decode(cursor_text)
            if cursor.fingerprint != fingerprint:
                raise param_error("pcursor与查询条件不一致")
            snapshot, after = cursor.snapshot, (cursor.ts, cursor.record_id)
        else:
            snapshot, after = self.world.last_event_id(), None
        render = self.renderer(ctx)
        orders: dict[str, Order | None] = {}

        def matches(a: AfterSale) -> bool:
            status = refund_status(a)
            return ((refund_type == 9 or status in REFUND_OPEN_STATUSES) and (negotiate is None or negotiate_status(a) == negotiate)
                    and (status_filter is None or status == status_filter))  # fmt: skip

        lo, hi = ms_window(self.world, begin, end)
        stream = self.refund_pager.iterate(
            ctx.shop_id, by_update=query_type == 2, lo=lo, hi=hi, ascending=sort == 2, snapshot=snapshot, after=after,
        )  # fmt: skip
        picked: list[tuple[int, str, AfterSale]] = []
        total = 0
        more = False
        for ts, rid, doc in stream:
            if after is not None and (ts, rid) == after:
                continue
            a = from_dict(AfterSale, json.loads(doc)) if doc else self.world.get_aftersale(rid)
            if a is None or not matches(a):
                continue
            if len(picked) == page_size:
                more = True
                if cursor_text:
                    break
            if len(picked) < page_size:
                picked.append((ts, rid, a))
            total += 1
        if not cursor_text:  # "仅第一次返回值有效"
            data["totalSize"] = total
            data["totalPage"] = math.ceil(total / page_size) if total else 0
        rendered = []
        for _, _, a in picked:
            if a.order_id not in orders:
                orders[a.order_id] = self.world.get_order(a.order_id)
            order = orders[a.order_id]
            if order is not None:
                rendered.append(render.refund_item(a, order))
        data["refundOrderInfoList"] = rendered
        if more:
            ts, rid, _ = picked[-1]
            data["pcursor"] = PageCursor(snapshot, ts, rid, 0, fingerprint).encode()
        return self.ok(data)

    def refund_detail(self, request: Request, ctx: CallContext) -> Response:
        refund_id = str(ctx.params.get("refundId") or "")
        if not refund_id:
            raise ks_error(300006, "退款单id为空", "REFUND ID IS BLANK")
        a = self.world.get_aftersale(refund_id) if refund_id.isdigit() else None
        if a is None or a.platform != PLATFORM:
            raise ks_error(R_REFUND_NOT_FOUND, "退款单不存在", "REFUND ORDER NOT FOUND")
        if a.shop_id != ctx.shop_id:
            raise ks_error(R_REFUND_NOT_YOURS, "不能操作他人退款单", "REFUND ORDER OPERATION REJECT")
        order = self.world.get_order(a.order_id)
        assert order is not None
        return self.ok(self.renderer(ctx).refund_detail(a, order))

    # ---- answers (KS-PY schemas: refundId, refundAmount, status, addressId, reasonCode, rejectDesc,
    # rejectImages, expressNo, expressCode). Every one moves the world, which pushes
    # kwaishop_aftersales_updateRefund.
    def _my_refund(self, ctx: CallContext) -> AfterSale:
        refund_id = str(ctx.params.get("refundId") or "")
        if not refund_id:
            raise ks_error(300006, "退款单id为空", "REFUND ID IS BLANK")
        a = self.world.get_aftersale(refund_id) if refund_id.isdigit() else None
        if a is None or a.platform != PLATFORM:
            raise ks_error(R_REFUND_NOT_FOUND, "退款单不存在", "REFUND ORDER NOT FOUND")
        if a.shop_id != ctx.shop_id:
            raise ks_error(R_REFUND_NOT_YOURS, "不能操作他人退款单", "REFUND ORDER OPERATION REJECT")
        status = _int(ctx.params, "status")
        if status is not None and status != refund_status(a):
            raise ks_error(R_REFUND_STATE, "退款单状态已变更，请刷新后重试", "REFUND STATUS CHANGED")
        amount = ctx.params.get("refundAmount")
        expected = (
            0
            if a.type in (AfterSaleType.EXCHANGE, AfterSaleType.RESHIP)
            else a.refund_fen + a.refund_post_fen
        )
        if amount not in (None, "") and int(float(amount)) != expected:
            raise ks_error(R_REFUND_AMOUNT, "退款金额与退款单不一致", "REFUND AMOUNT MISMATCH")
        return a

    def _world_step(self, step: Callable[[], Any]) -> Response:
        try:
            step()
        except WorldError as exc:
            raise ks_error(
                R_REFUND_STATE, f"当前退款单状态不支持该操作: {exc}", "REFUND STATUS INVALID"
            ) from None
        return self.ok(True)

    def refund_approve(self, request: Request, ctx: CallContext) -> Response:
        """``open.seller.order.refund.approve``: refund only (and, [choice], a reissue's approval)."""
        a = self._my_refund(ctx)
        if a.type not in (
            AfterSaleType.REFUND_SHIPPED,
            AfterSaleType.REFUND_UNSHIPPED,
            AfterSaleType.RESHIP,
        ) or (a.status != AfterSaleStatus.WAIT_SELLER_AGREE):
            raise ks_error(R_REFUND_STATE, "仅退款待商家处理的退款单可同意退款", "REFUND STATUS INVALID")
        return self._world_step(lambda: self.world.agree_aftersale(a.aftersale_id))

    def refund_returngoods_approve(self, request: Request, ctx: CallContext) -> Response:
        """``open.seller.order.refund.returngoods.approve``: return or exchange, first approval;
        ``addressId`` from ``open.address.seller.list`` (else the default)."""
        a = self._my_refund(ctx)
        if a.type not in (AfterSaleType.RETURN_REFUND, AfterSaleType.EXCHANGE):
            raise ks_error(R_REFUND_STATE, "仅退货退款或换货可同意退货", "REFUND STATUS INVALID")
        address = str(ctx.params.get("addressId") or "")
        known = self.world.return_addresses(ctx.shop_id)
        if address and address not in {x["address_id"] for x in known}:
            raise param_error(f"addressId无效: {address}")
        address = address or next(x["address_id"] for x in known if x["is_default"])
        return self._world_step(lambda: self.world.agree_aftersale(a.aftersale_id, return_address_id=address))

    def refund_confirm_receipt(self, request: Request, ctx: CallContext) -> Response:
        """``open.seller.order.refund.confirm.receipt``: the return arrived, the refund is paid."""
        a = self._my_refund(ctx)
        if a.type != AfterSaleType.RETURN_REFUND or a.status != AfterSaleStatus.WAIT_SELLER_CONFIRM:
            raise ks_error(R_REFUND_STATE, "仅退货待卖家确认收货时可确认收货", "REFUND STATUS INVALID")
        return self._world_step(lambda: self.world.agree_aftersale(a.aftersale_id))

    def refund_reject(self, request: Request, ctx: CallContext) -> Response:
        """``open.refund.reject``: ``reasonCode`` from ``open.refund.reject.reason``; ``rejectDesc`` /
        ``rejectImages`` when the reason requires them."""
        a = self._my_refund(ctx)
        code = _int(ctx.params, "reasonCode", required=True)
        reason = next((r for r in REJECT_REASONS if r["reasonCode"] == code), None)
        if reason is None:
            raise param_error(f"reasonCode无效: {code}")
        desc = str(ctx.params.get("rejectDesc") or "")
        images = ctx.params.get("rejectImages") or []
        if reason["requiredRejectDesc"] and not desc:
            raise param_error("该拒绝原因需填写rejectDesc")
        if reason["requiredRejectImage"] and not images:
            raise param_error("该拒绝原因需上传rejectImages")
        return self._world_step(
            lambda: self.world.reject_aftersale(
                a.aftersale_id, desc or reason["reasonDesc"], reason_code=str(code)
            )
        )

    def refund_reject_reason(self, request: Request, ctx: CallContext) -> Response:
        """``open.refund.reject.reason`` (``refundId``): the reasons a refusal may carry [GUESS shape]."""
        self._my_refund(ctx)
        return self.ok({"rejectReasonList": [dict(r) for r in REJECT_REASONS]})

    def refund_confirm_and_send(self, request: Request, ctx: CallContext) -> Response:
        """``open.refund.confirm.and.send``: exchange — confirm the returned goods and send the
        replacement (``expressNo``, integer ``expressCode``); [choice] a reissue's parcel too."""
        a = self._my_refund(ctx)
        express_no = str(ctx.params.get("expressNo") or "")
        if not express_no or ctx.params.get("expressCode") in (None, ""):
            raise param_error("缺少参数expressNo/expressCode")
        carrier = _carrier_of(ctx.params["expressCode"])
        return self._world_step(
            lambda: self.world.reship_exchange(a.aftersale_id, carrier=carrier, tracking_no=express_no)
        )

    def address_seller_list(self, request: Request, ctx: CallContext) -> Response:
        """``open.address.seller.list``: the merchant's addresses [GUESS shape: addressId,
        consignee, mobile, provinceName, cityName, districtName, townName, address, defaultAddress]."""
        rows = self.world.return_addresses(ctx.shop_id)
        return self.ok({"addressList": [
            {"addressId": int(x["address_id"]), "consignee": x["name"], "mobile": x["phone"], "provinceName": x["province"],
             "cityName": x["city"], "districtName": x["district"], "townName": x["street"], "address": x["detail"],
             "defaultAddress": x["is_default"], "addressType": 2} for x in rows]})  # fmt: skip

    # ------------------------------------------------------------------ settlement

    def settled_bill_detail(self, request: Request, ctx: CallContext) -> Response:
        """``open.funds.financial.settled.bill.detail``: settled bills by settlement window or order.

        Bills are sorted by (order create time, order number); the cursor is
        ``"<order create time ms>,<order number>"`` and a page never splits one order's bills.
        """
        p = ctx.params
        size = _int(p, "size", 10) or 10
        if not 1 <= size <= BILL_PAGE_MAX:
            raise param_error("size取值范围为1~100")
        oid = str(p.get("orderId") or "")
        if oid:
            start, end = 0, 2**40
        else:
            start_ms, end_ms = _int(p, "settlementStartTime"), _int(p, "settlementEndTime")
            if start_ms is None or end_ms is None:
                raise param_error("按时间范围查询时settlementStartTime和settlementEndTime必填")
            if end_ms <= start_ms:
                raise ks_error(R_END_BEFORE_BEGIN, "结束时间要晚于开始时间", "ENDTIME MUST AFTER BEGINTIME")
            if end_ms - start_ms > BILL_SPAN_MAX * 1000:
                raise ks_error(R_RANGE_LIMIT, "时间范围超限", "SEARCH TIME RANGE EXPAND LIMIT")
            start, end = math.ceil(start_ms / 1000), end_ms // 1000
        after: tuple[int, int] | None = None
        cursor_text = str(p.get("cursor") or "")
        if cursor_text == "nomore":
            return self.ok({"orders": [], "cursor": "nomore"})
        if cursor_text:
            try:
                first, second = cursor_text.split(",")
                after = (int(first), int(second))
            except ValueError:
                raise param_error("cursor不合法") from None
        rows = self.world.settlements(
            ctx.shop_id, start=start, end=end, limit=10**9, line_ids=[oid] if oid else None
        )
        records = sorted(
            ((ms(s.order_time), int(s.line_id), rid, s) for rid, s in rows if s.platform == PLATFORM),
            key=lambda r: (r[0], r[1], r[2]),
        )
        if after is not None:
            records = [r for r in records if (r[0], r[1]) > after]
        page: list[tuple[int, int, int, SettlementLine]] = []
        for record in records:
            if len(page) >= size and (record[0], record[1]) != (page[-1][0], page[-1][1]):
                break
            page.append(record)
        more = len(page) < len(records)
        render = self.renderer(ctx)
        orders: dict[str, Order | None] = {}
        bills = []
        for _, _, _, s in page:
            if s.order_id not in orders:
                orders[s.order_id] = self.world.get_order(s.order_id)
            bills.append(render.bill(s, orders[s.order_id]))
        cursor = f"{page[-1][0]},{page[-1][1]}" if more and page else "nomore"
        return self.ok({"orders": bills, "cursor": cursor})

    # ------------------------------------------------------------------ e-waybill

    def express_subscribe_query(self, request: Request, ctx: CallContext) -> Response:
        code = str(ctx.params.get("expressCompanyCode") or "")
        carrier = EBILL_TO_CARRIER.get(code) if code else None
        if code and carrier is None:
            raise param_error("expressCompanyCode不存在")
        out = []
        for acct in self.world.waybill_accounts(ctx.shop_id, carrier):
            s = acct.sender
            out.append(
                {"netSiteCode": acct.netsite_code, "netSiteName": acct.netsite_name, "availableQuantity": acct.available,
                 "expressCompanyType": 1 if acct.carrier in ("SF", "JD", "EMS") else 2,
                 "senderAddress": [{"provinceName": s.get("province", ""), "cityName": s.get("city", ""),
                                    "districtName": s.get("district", ""), "streetName": s.get("street", ""),
                                    "detailAddress": s.get("detail", "")}],
                 "cancelQuantity": acct.cancelled, "usedQuantity": acct.allocated - acct.cancelled,
                 "expressCompanyCode": EBILL_CODES[acct.carrier], "recycledQuantity": acct.recycled,
                 "allocatedQuantity": acct.allocated, "settleAccount": ""}
            )  # fmt: skip
        return self.ok(out)

    def _ebill_one(self, ctx: CallContext, req: dict[str, Any]) -> dict[str, Any]:
        request_id = str(req.get("requestId") or "")

        def failure(message: str, result: int = R_PARAM) -> dict[str, Any]:
            return {
                "requestId": request_id,
                "baseResponse": {"result": result, "success": False, "message": message},
                "data": [],
            }

        required = ("merchantCode", "merchantName", "packageCode", "itemList", "receiverContract", "senderContract",
                    "expressCompanyCode", "orderChannel", "tradeOrderCode", "senderAddress", "receiverAddress", "requestId")  # fmt: skip
        missing = [k for k in required if not req.get(k)]
        if missing:
            return failure(f"缺少参数{','.join(missing)}")
        carrier = EBILL_TO_CARRIER.get(str(req["expressCompanyCode"]))
        if carrier is None:
            return failure("快递公司编码不存在")
        trade_code = str(req["tradeOrderCode"])
        total = int(req.get("totalPackageQuantity") or 1)
        if total > 1 and carrier not in APPEND_CARRIERS:
            return failure("该快递公司不支持子母件")
        # idempotent by requestId, and by tradeOrderCode + packageCode (+ company): a repeat
        # while the number is live gives it again; after a cancel a new one is taken
        key = f"{trade_code}|{req['packageCode']}|{req['expressCompanyCode']}"
        scope = f"kuaishou:ebill:{ctx.shop_id}"
        by_request = f"kuaishou:ebill-request:{ctx.shop_id}"
        with self.world.write():
            earlier = self.world.idempotent_get(by_request, request_id)  # [tracking_no, tradeOrderCode]
            if earlier and earlier[1] != trade_code:
                return failure("requestId已用于其他订单")
            for previous in (earlier[0] if earlier else None, self.world.idempotent_get(scope, key)):
                waybill = self.world.get_waybill(previous) if previous else None
                if waybill is not None and waybill.status == "issued":
                    return self._ebill_answer(ctx, request_id, waybill.tracking_no)
            return self._ebill_take(
                ctx, req, request_id, carrier, trade_code, total, scope, key, by_request, failure
            )

    def _ebill_take(self, ctx: CallContext, req: dict[str, Any], request_id: str, carrier: str, trade_code: str,
                    total: int, scope: str, key: str, by_request: str, failure: Any) -> dict[str, Any]:  # fmt: skip
        render = self.renderer(ctx)
        order_id = ""
        if str(req["orderChannel"]) == KUAISHOU_ORDER_CHANNEL:
            try:
                order, line = self._resolve(ctx, trade_code)
            except ApiError as exc:
                return failure(str(exc.fields.get("error_msg")), R_REJECT)
            if line.is_gift:
                return failure("tradeOrderCode仅支持快手主品订单id")
            if str(req["merchantCode"]) != render.seller_open_id(ctx.shop_id):
                return failure("merchantCode与订单的sellerOpenId不一致")
            contract, address = req["receiverContract"], req["receiverAddress"]
            for field_name, value in (
                ("name", contract.get("name")),
                ("mobile", contract.get("mobile")),
                ("detailAddress", address.get("detailAddress")),
            ):
                try:
                    bound, _, _ = self.world.vault.decrypt(str(value or ""), CIPHER_FIELDS)
                except DecryptError:
                    return failure(f"快手订单的收件人{field_name}必须传订单密文")
                if bound != f"{ctx.shop_id}:{trade_code}":
                    return failure(f"收件人{field_name}密文与订单不匹配")
            order_id = order.order_id
        items = [
            {"item_name": str(it.get("itemTitle", "")), "item_count": int(it.get("itemQuantity") or 0)}
            for it in req.get("itemList") or []
        ]
        try:
            waybill = self.world.issue_waybill(shop_id=ctx.shop_id, carrier=carrier, order_id=order_id or trade_code,
                                               package_id=str(req["packageCode"]), items=items, children=total - 1)  # fmt: skip
        except NoWaybillAccount:
            return failure("电子面单余额不足或未订购该快递公司", R_REJECT)
        self.world.idempotent_set(scope, key, waybill.tracking_no)
        self.world.idempotent_set(by_request, request_id, [waybill.tracking_no, trade_code])
        return self._ebill_answer(ctx, request_id, waybill.tracking_no)

    def _ebill_answer(self, ctx: CallContext, request_id: str, tracking_no: str) -> dict[str, Any]:
        waybill = self.world.get_waybill(tracking_no)
        assert waybill is not None
        return {
            "requestId": request_id,
            "baseResponse": {"result": R_OK, "success": True, "message": "成功"},
            "data": [self._ebill_data(ctx, waybill), *(self._ebill_data(ctx, self.world.get_waybill(c)) for c in waybill.children)],
        }  # fmt: skip

    def _ebill_data(self, ctx: CallContext, waybill: Any) -> dict[str, Any]:
        tracking_no = waybill.tracking_no
        content = json.dumps({"waybillCode": tracking_no, "sortCode": waybill.sort_code, "packageCenterCode": waybill.package_center_code,
                              "packageCenterName": waybill.package_center_name, "items": waybill.items}, ensure_ascii=False)  # fmt: skip
        print_data = json.dumps({"encryptedData": self.world.vault.seal(shop_id=ctx.shop_id, text=content),
                                 "templateURL": EBILL_TEMPLATE_URL, "ver": "1.0"})  # fmt: skip
        return {"waybillCode": tracking_no, "printData": print_data, "parentWaybillCode": waybill.parent, "version": "1.0",
                "signature": self.world.vault.mac(print_data), "key": hashlib.sha256(tracking_no.encode()).hexdigest()[:16],
                "waybillPackageCode": waybill.package_id}  # fmt: skip

    def ebill_append(self, request: Request, ctx: CallContext) -> Response:
        """Child pieces (子母件) under a taken waybill; SF only (§2.10 / operations §2)."""
        p = ctx.params
        parent_code, company = str(p.get("parentWaybillCode") or ""), str(p.get("expressCompanyCode") or "")
        if not parent_code or not company:
            raise param_error("缺少参数parentWaybillCode/expressCompanyCode")
        waybill = self.world.get_waybill(parent_code)
        if (
            waybill is None
            or waybill.shop_id != ctx.shop_id
            or waybill.parent
            or EBILL_CODES.get(waybill.carrier) != company
        ):
            raise ks_error(R_REJECT, "运单号不存在", "WAYBILL_NOT_FOUND")
        if waybill.carrier not in APPEND_CARRIERS:
            raise ks_error(R_REJECT, "该快递公司不支持子母件", "APPEND_NOT_SUPPORTED")
        quantity = int(p.get("addPackageQuantity") or 0)
        if not 1 <= quantity <= 50:
            raise param_error("addPackageQuantity须为1-50")
        try:
            added = self.world.append_child_waybills(parent_code, quantity)
        except NoWaybillAccount:
            raise ks_error(R_REJECT, "电子面单余额不足", "NO_BALANCE") from None
        except Conflict:
            raise ks_error(R_REJECT, "运单号已取消", "WAYBILL_CANCELLED") from None
        return self.ok([self._ebill_data(ctx, self.world.get_waybill(code)) for code in added])

    def ebill_get(self, request: Request, ctx: CallContext) -> Response:
        requests = ctx.params.get("getEbillOrderRequest") or []
        if not isinstance(requests, list) or not requests:
            raise param_error("缺少参数getEbillOrderRequest")
        if len(requests) > EBILL_BATCH_MAX:
            raise param_error("getEbillOrderRequest每次最多10条")
        ids = [str(r.get("requestId") or "") for r in requests if isinstance(r, dict)]
        if len(set(ids)) != len(ids):
            raise param_error("批量取号时requestId不能重复")
        return self.ok([self._ebill_one(ctx, r) for r in requests])

    # ------------------------------------------------------------------ dropshipping (sandbox/dropship.py)
    # Merchant side: relation, allocate (whole oid, as Kuaishou orders are one SKU each), cancel,
    # list/detail. Factory side (the factory's own token; its shop id is its ``factoryCode``
    # [choice]): order list with a masked receiver, e-waybills (≤ 10 a call), deliver, update.
    # Parameter names from the SDKs (KS-PY models); replies and status numbers are [GUESS].

    def _ds_record(self, ds: dropship.Dropship, *, factory: bool = False) -> dict[str, Any]:
        sparse = untidy.hit(self.world, "kuaishou.dropship_sparse", ds.ds_id)
        line = ds.lines[0]
        out: dict[str, Any] = {
            "dropshippingOrderCode": int(line.line_id) if not sparse else line.line_id,
            "allocateOrderCode": ds.ds_id,
            "factoryCode": ds.supplier,
            "dropshippingStatus": DS_STATUS[ds.status],
            "allocateTime": self.renderer_ms(ds.create_time),
            "updateTime": self.renderer_ms(ds.update_time),
            "promiseDeliveryTime": self.renderer_ms(line.delivery_deadline),
        }
        if not sparse:
            out["itemList"] = [{"itemId": int(x.product_id), "skuId": int(x.sku_id), "num": x.qty,
                                "deliveredNum": x.shipped_qty} for x in ds.lines]  # fmt: skip
        if ds.waybills or not sparse:
            out["logisticsList"] = [{"waybillCode": w.tracking_no, "expressCompanyCode": EBILL_CODES.get(w.carrier, w.carrier),
                                     "deliverTime": self.renderer_ms(w.ship_time)} for w in ds.waybills]  # fmt: skip
        if factory:
            view = dropship.supplier_view(self.world, ds)
            out["receiverInfo"] = view["receiver"]  # masked: the factory never sees plaintext
            out["ewaybillOrderCode"] = view["ewaybill_order_code"]
        return out

    def renderer_ms(self, ts: int) -> int:
        return ms(ts) if ts else 0

    @staticmethod
    def _codes(p: dict[str, Any], name: str) -> list[str]:
        codes = p.get(name)
        if not isinstance(codes, list) or not codes:
            raise param_error(f"缺少参数{name}")
        if len(codes) > DS_BATCH_MAX:
            raise param_error(f"{name}每次最多{DS_BATCH_MAX}条")
        return [str(c) for c in codes]

    def ds_relation_apply(self, request: Request, ctx: CallContext) -> Response:
        """``relation.merchant.batch.apply`` ``{applyRequestList[{requestId, factoryCode, applyContent}]}``;
        the simulated factory accepts at once [choice]."""
        wanted = ctx.params.get("applyRequestList")
        if not isinstance(wanted, list) or not wanted:
            raise param_error("缺少参数applyRequestList")
        results = []
        for entry in wanted:
            code = str((entry or {}).get("factoryCode") or "")
            ok = bool(code) and code != ctx.shop_id
            if ok:
                dropship.bind_supplier(self.world, ctx.shop_id, code, f"厂家{code}")
            results.append({"requestId": str((entry or {}).get("requestId") or ""), "factoryCode": code,
                            "success": ok, "errorMsg": "" if ok else "厂家不存在"})  # fmt: skip
        return self.ok({"applyResultList": results})

    def ds_allocate(self, request: Request, ctx: CallContext) -> Response:
        """``order.batch.allocate`` ``{dropshippingOrderCodeList, factoryCode}``: each oid wholly,
        one result per code (a failing code does not fail the others)."""
        p = ctx.params
        factory = str(p.get("factoryCode") or "")
        if not factory:
            raise param_error("缺少参数factoryCode")
        results = []
        for code in self._codes(p, "dropshippingOrderCodeList"):
            result: dict[str, Any] = {"dropshippingOrderCode": code, "success": False}
            try:
                order, line = self._resolve(ctx, code)
                items = [(line.line_id, line.qty - line.refunded_qty - line.shipped_qty)]
                items += [(g.line_id, g.qty - g.refunded_qty - g.shipped_qty) for g in order.lines
                          if g.is_gift and g.master_line_id == line.line_id]  # fmt: skip
                ds = dropship.assign(self.world, shop_id=ctx.shop_id, order_id=order.order_id, supplier=factory,
                                     items=[i for i in items if i[1] > 0] or items)  # fmt: skip
                result.update(success=True, allocateOrderCode=ds.ds_id)
            except ApiError as exc:
                result.update(errorCode=exc.fields.get("result"), errorMsg=exc.fields.get("error_msg", ""))
            except dropship.NotBound:
                result.update(errorCode=DS_NOT_BOUND, errorMsg="未与该厂家建立代发关系")
            except dropship.OverAssigned:
                result.update(errorCode=DS_ALREADY, errorMsg="订单已分配")
            except (Conflict, InvalidArgument):
                result.update(errorCode=DS_STATE, errorMsg="订单状态不允许分配")
            results.append(result)
        return self.ok({"allocateResultList": results})

    def _live_ds(self, ctx: CallContext, code: str) -> dropship.Dropship | None:
        order, line = self._resolve(ctx, code)
        live = [d for d in dropship.of_order(self.world, order.order_id)
                if d.status in dropship.LIVE and any(x.line_id == line.line_id for x in d.lines)]  # fmt: skip
        return live[-1] if live else None

    def ds_allocate_cancel(self, request: Request, ctx: CallContext) -> Response:
        p = ctx.params
        results = []
        for code in self._codes(p, "dropshippingOrderCodeList"):
            result: dict[str, Any] = {"dropshippingOrderCode": code, "success": False}
            try:
                ds = self._live_ds(ctx, code)
                if ds is None:
                    result.update(errorCode=DS_NOT_ALLOCATED, errorMsg="订单未分配")
                else:
                    dropship.cancel(self.world, ds.ds_id, reason=str(p.get("cancelAllocateReason") or ""))
                    result["success"] = True
            except ApiError as exc:
                result.update(errorCode=exc.fields.get("result"), errorMsg=exc.fields.get("error_msg", ""))
            except Conflict:
                result.update(errorCode=DS_SHIPPED, errorMsg="厂家已发货，不能取消")
            results.append(result)
        return self.ok({"cancelResultList": results})

    def _ds_page(self, found: list[dropship.Dropship], p: dict[str, Any], *, factory: bool) -> Response:
        size = _int(p, "pageSize", 20) or 20
        if size < 1 or size > DS_PAGE_MAX:
            raise param_error(f"pageSize不能超过{DS_PAGE_MAX}")
        cursor = str(p.get("cursor") or "")
        if cursor == "nomore":
            return self.ok({"cursor": "nomore", "dropshippingOrderList": []})
        offset = int(cursor) if cursor.isdigit() else 0
        page = found[offset : offset + size]
        end = offset + len(page)
        return self.ok({"cursor": str(end) if end < len(found) else "nomore",
                        "dropshippingOrderList": [self._ds_record(d, factory=factory) for d in page]})  # fmt: skip

    def ds_merchant_list(self, request: Request, ctx: CallContext) -> Response:
        p = ctx.params
        status = _int(p, "dropshippingStatus", 0) or 0
        names = {v: k for k, v in DS_STATUS.items()}
        begin, end = _int(p, "beginTime", 0) or 0, _int(p, "endTime", 0) or 0
        span = (begin // 1000, end // 1000) if begin and end else None
        found = dropship.query(self.world, ctx.shop_id, supplier=str(p.get("factoryCode") or ""),
                               status=names.get(status, ""), updated=span)  # fmt: skip
        return self._ds_page(found, p, factory=False)

    def ds_merchant_detail(self, request: Request, ctx: CallContext) -> Response:
        code = str(ctx.params.get("dropshippingOrderCode") or "")
        if not code:
            raise param_error("缺少参数dropshippingOrderCode")
        order, line = self._resolve(ctx, code)
        mine = [
            d
            for d in dropship.of_order(self.world, order.order_id)
            if any(x.line_id == line.line_id for x in d.lines)
        ]
        if not mine:
            raise ks_error(DS_NOT_ALLOCATED, "订单未分配", "DROPSHIPPING_ORDER_NOT_FOUND")
        return self.ok(self._ds_record(mine[-1]))

    def _factory_ds(self, ctx: CallContext, code: Any) -> dropship.Dropship:
        ds = dropship.get(self.world, str(code or ""))
        if ds is None or ds.supplier != ctx.shop_id or ds.platform != PLATFORM:
            raise ks_error(R_REJECT, "代发订单不存在", "ALLOCATE_ORDER_NOT_FOUND")
        return ds

    def ds_factory_list(self, request: Request, ctx: CallContext) -> Response:
        p = ctx.params
        status = _int(p, "allocateStatus", 0) or 0
        names = {v: k for k, v in DS_STATUS.items()}
        rows = self.world.read(
            "SELECT shop_id FROM dropships WHERE supplier=? GROUP BY shop_id", (ctx.shop_id,)
        )
        found = [d for (shop,) in rows for d in dropship.query(self.world, shop, supplier=ctx.shop_id,
                                                              status=names.get(status, ""))]  # fmt: skip
        return self._ds_page(found, p, factory=True)

    def ds_ebill_batch_get(self, request: Request, ctx: CallContext) -> Response:
        """``ebill.batch.get`` ``{dsOrderGetReq[{allocateOrderCode, expressCompanyCode, requestId, …}]}``:
        at most 10 a call (KS-PHP: "最多10个"); a number per request, idempotent by requestId."""
        wanted = ctx.params.get("dsOrderGetReq")
        if not isinstance(wanted, list) or not wanted:
            raise param_error("缺少参数dsOrderGetReq")
        if len(wanted) > EBILL_BATCH_MAX:
            raise param_error("dsOrderGetReq每次最多10条")
        out = []
        for req in wanted:
            req = req if isinstance(req, dict) else {}
            request_id = str(req.get("requestId") or "")
            entry: dict[str, Any] = {"requestId": request_id}
            carrier = EBILL_TO_CARRIER.get(str(req.get("expressCompanyCode") or ""))
            try:
                ds = self._factory_ds(ctx, req.get("allocateOrderCode"))
                if not request_id or carrier is None:
                    raise param_error("缺少参数requestId或快递公司编码不存在")
                scope = f"kuaishou:ds-ebill:{ctx.shop_id}"
                with self.world.write():
                    number = self.world.idempotent_get(scope, request_id)
                    if number is None:
                        number = self.world.new_tracking_no(carrier)
                        self.world.idempotent_put(scope, request_id, number)
                entry.update(baseResponse={"result": R_OK, "success": True, "message": ""},
                             data=[{"waybillCode": number, "allocateOrderCode": ds.ds_id,
                                    "printData": json.dumps({"ewaybillOrderCode": dropship.ewaybill_order_code(self.world, ds)}),
                                    "signature": _stable_int(number, digits=16), "key": "sandbox", "version": "1"}])  # fmt: skip
            except ApiError as exc:
                entry.update(baseResponse={"result": exc.fields.get("result"), "success": False,
                                           "message": exc.fields.get("error_msg", "")}, data=[])  # fmt: skip
            out.append(entry)
        return self.ok(out)

    def ds_deliver(self, request: Request, ctx: CallContext) -> Response:
        p = ctx.params
        ds = self._factory_ds(ctx, p.get("allocateOrderCode"))
        carrier = EBILL_TO_CARRIER.get(str(p.get("expressCompanyCode") or ""))
        number = str(p.get("waybillCode") or "")
        if carrier is None or not number:
            raise param_error("缺少参数waybillCode或expressCompanyCode")
        if ds.status == dropship.SHIPPED and any(w.tracking_no == number for w in ds.waybills):
            return self.ok()  # the same delivery again
        if ds.status != dropship.ASSIGNED:
            raise ks_error(R_REJECT, "代发订单状态不允许发货", "ALLOCATE_ORDER_STATUS_INVALID")
        if dropship.supplier_ship(self.world, ds.ds_id, carrier=carrier, tracking_no=number) is None:
            raise ks_error(R_REJECT, "代发订单状态不允许发货", "ALLOCATE_ORDER_STATUS_INVALID")
        return self.ok()

    def ds_logistics_update(self, request: Request, ctx: CallContext) -> Response:
        p = ctx.params
        ds = self._factory_ds(ctx, p.get("allocateOrderCode"))
        carrier = EBILL_TO_CARRIER.get(str(p.get("expressCompanyCode") or ""))
        number = str(p.get("waybillCode") or "")
        if ds.status != dropship.SHIPPED or not ds.waybills or carrier is None or not number:
            raise ks_error(R_REJECT, "代发订单未发货", "ALLOCATE_ORDER_STATUS_INVALID")
        order = self.world.get_order(ds.order_id)
        old = ds.waybills[-1].tracking_no
        package = next((pk for pk in (order.packages if order else []) if pk.tracking_no == old), None)
        self.world.edit_shipping(ds.order_id, carrier=carrier, tracking_no=number,
                                 package_id=package.package_id if package else "")  # fmt: skip
        dropship.replace_waybill(self.world, ds.ds_id, carrier=carrier, tracking_no=number)
        return self.ok()

    # ------------------------------------------------------------------ logistics traces

    def logistics_trace_query(self, request: Request, ctx: CallContext) -> Response:
        """[GUESS] ``open.logistics.trace.query`` {expressCode, expressNo}: our sources name no
        trace read for Kuaishou; this is the read side of the documented
        ``open.logistics.trace.notify`` and serves its node shape (``TraceInfoDTO``:
        ``operateTime``, ``desc``, ``city``, ``netSiteName``) plus ``logisticsStatus`` in the
        Cainiao-family action codes (ACCEPT, TRANSPORT, DELIVERING, SIGN, FAILED, REJECT,
        TMS_RETURN) [GUESS]. ``operateTime`` is epoch milliseconds, on some parcels Beijing-time
        text. Oldest node first. A number this shop did not ship has no nodes."""
        p = ctx.params
        if not p.get("expressNo") or p.get("expressCode") in (None, ""):
            raise param_error("缺少参数expressCode/expressNo")
        carrier = _carrier_of(p["expressCode"])
        express_no = str(p["expressNo"])
        trace = traces.get(self.world, express_no)
        nodes: list[traces.TraceNode] = []
        if trace is not None and trace.shop_id == ctx.shop_id:
            if trace.carrier != carrier:
                raise ks_error(R_REJECT, "快递公司与运单号不匹配", "EXPRESS_NOT_MATCH")
            nodes = trace.nodes(self.world)
        as_text = untidy.hit(self.world, "kuaishou.trace_text_times", express_no)
        out = []
        for node in nodes:
            code = TRACE_ACTIONS[node.status]
            if node.status == traces.EXCEPTION and "拒收" in node.text:
                code = "REJECT"
            item: dict[str, Any] = {"operateTime": fmt_time(node.time) if as_text else node.time * 1000,
                                    "desc": node.text, "logisticsStatus": code, "logisticsStatusDesc": TRACE_ACTION_DESC[code],
                                    "city": node.city, "netSiteName": node.site}  # fmt: skip
            if untidy.hit(self.world, "kuaishou.trace_no_city", f"{express_no}:{node.time}"):
                del item["city"]
            out.append(item)
        return self.ok({"expressCode": int(p["expressCode"]), "expressNo": express_no, "traces": out})

    def ebill_cancel(self, request: Request, ctx: CallContext) -> Response:
        p = ctx.params
        if not p.get("waybillCode") or not p.get("expressCompanyCode"):
            raise param_error("缺少参数waybillCode/expressCompanyCode")
        waybill = self.world.get_waybill(str(p["waybillCode"]))
        if (
            waybill is None
            or waybill.shop_id != ctx.shop_id
            or EBILL_CODES.get(waybill.carrier) != str(p["expressCompanyCode"])
        ):
            raise ks_error(R_REJECT, "运单号不存在", "WAYBILL_NOT_FOUND")
        if waybill.status == "cancelled":
            raise ks_error(R_REJECT, "运单号已取消", "WAYBILL_CANCELLED")
        try:
            self.world.cancel_waybill(waybill.tracking_no)
        except Conflict:
            raise ks_error(R_REJECT, "运单已发货，不能取消", "WAYBILL_SHIPPED") from None
        return self.ok()


# Neutral trace status → Kuaishou ``logisticsStatus`` [GUESS, Cainiao-family action codes].
TRACE_ACTIONS = {
    traces.COLLECTED: "ACCEPT",
    traces.IN_TRANSIT: "TRANSPORT",
    traces.DELIVERING: "DELIVERING",
    traces.DELIVERED: "SIGN",
    traces.EXCEPTION: "FAILED",
    traces.RETURNED: "TMS_RETURN",
}
TRACE_ACTION_DESC = {"ACCEPT": "已揽收", "TRANSPORT": "运输中", "DELIVERING": "派送中", "SIGN": "已签收",
                     "FAILED": "异常", "REJECT": "拒收", "TMS_RETURN": "已退回"}  # fmt: skip


def token_scopes(world: World, access_token: str) -> list[str]:
    """Scopes granted with an access token."""
    stored = world.meta_get(f"ks:scopes:{access_token}")
    return [s for s in stored.split(",") if s]


def create_app(world: World, **kwargs: Any) -> KuaishouApp:
    """Factory used by ``server.py`` (every platform module exposes one)."""
    return KuaishouApp(world, **kwargs)


def grant_token(world: World, app: App, shop_id: str, scopes: tuple[str, ...] = SCOPES) -> Token:
    """Authorise ``app`` on ``shop_id`` and issue a fresh token pair with ``scopes`` (tests, CLI, demo)."""
    world.authorize(app.app_key, shop_id)
    token = world.issue_token(
        app.app_key, shop_id, access_ttl=ACCESS_TOKEN_TTL, refresh_ttl=REFRESH_TOKEN_TTL
    )
    world.meta_set(f"ks:scopes:{token.access_token}", ",".join(scopes))
    return token


def ensure_token(world: World, app: App, shop_id: str) -> str:
    """A valid access token for (app, shop), issuing one if needed (CLI/demo helper)."""
    now = world.now()
    for token in reversed(world.tokens(app_key=app.app_key, shop_id=shop_id)):
        if not token.revoked_at and token.access_expires_at > now and token_scopes(world, token.access_token):
            return token.access_token
    return grant_token(world, app, shop_id).access_token


# --------------------------------------------------------------------------- pushes

ORDER_TOPICS: dict[str, str] = {
    EventKind.ORDER_CREATED: "kwaishop_order_addOrder",
    EventKind.ORDER_PAID: "kwaishop_order_paySuccess",
    EventKind.ORDER_SHIPPED: "kwaishop_order_delivering",
    EventKind.ORDER_PART_SHIPPED: "kwaishop_order_delivering",
    EventKind.ORDER_RECEIVED: "kwaishop_order_deliverySuccess",
    EventKind.ORDER_COMPLETED: "kwaishop_order_orderSuccess",
    EventKind.ORDER_CANCELLED: "kwaishop_order_orderFail",
    EventKind.ORDER_REMARK: "kwaishop_order_addNote",
    EventKind.ORDER_ADDRESS_CHANGED: "kwaishop_order_addressUpdateAudit",  # [choice] closest documented topic
}
AFTERSALE_TOPIC_ADD = "kwaishop_aftersales_addRefund"
AFTERSALE_TOPIC_UPDATE = "kwaishop_aftersales_updateRefund"
PUSH_RETRY_SCHEDULE: tuple[float, ...] = (5 * 60, 10 * 60, 20 * 60, 30 * 60, 60 * 60)
HEARTBEAT = '{"test":true}'


def push_messages(world: World, app: App, event: WorldEvent, msg_id: str) -> list[dict[str, Any]]:
    """The Kuaishou messages (§2.8 fields) one neutral event produces – one per order id."""
    order = from_dict(Order, event.data["order"]) if "order" in event.data else None
    if order is None:
        return []
    render = Renderer(world, app.app_key)
    seller_open_id = render.seller_open_id(order.shop_id)
    as_text = untidy.hit(world, "kuaishou.string_ids", event.event_id)  # ids as strings in some messages

    def message(index: int, topic: str, biz_id: str, info: dict[str, Any]) -> dict[str, Any]:
        if as_text:
            info = {k: str(v) if k in ("oid", "orderId", "refundId") else v for k, v in info.items()}
        return {
            "eventId": f"{event.event_id}_{index}_{msg_id}",
            "msgId": f"{index}_{msg_id}",
            "bizId": biz_id if as_text else int(biz_id),
            "userId": int(order.shop_id),
            "openId": seller_open_id,
            "appKey": app.app_key,
            "event": topic,
            "info": json.dumps(info, ensure_ascii=False, separators=(",", ":")),
            "status": 2,
            "createTime": render.ms(event.time),
            "updateTime": render.ms(event.time),  # a retry re-sends the very same message
            "operator": order.shop_id,
            "test": False,
        }

    if event.aftersale_id:
        a = from_dict(AfterSale, event.data["aftersale"])
        topic = AFTERSALE_TOPIC_ADD if event.kind == EventKind.AFTERSALE_CREATED else AFTERSALE_TOPIC_UPDATE
        info = {"orderId": int(a.line_id), "refundId": int(a.aftersale_id), "handlingWay": HANDLING_WAY[AfterSaleType(a.type)],
                "specialRefundType": 0, "status": refund_status(a), "eventType": str(event.kind).upper(),
                "updateTime": render.ms(a.update_time), "sellerId": int(order.shop_id)}  # fmt: skip
        out = [message(0, topic, a.aftersale_id, info)]
        line = order.line(a.line_id)
        if (
            event.kind == EventKind.AFTERSALE_REFUNDED
            and line_status(order, line) == 80
            and not line.is_gift
            and order.status != OrderStatus.CANCELLED
        ):
            out.append(message(1, ORDER_TOPICS[EventKind.ORDER_CANCELLED], line.line_id,
                               {"oid": int(line.line_id), "sellerId": int(order.shop_id), "status": 80, "updateTime": render.ms(order.update_time)}))  # fmt: skip
        return out
    topic = ORDER_TOPICS.get(event.kind)
    if topic is None:
        return []
    if event.kind in (EventKind.ORDER_SHIPPED, EventKind.ORDER_PART_SHIPPED):
        package = event.data.get("package") or {}
        touched = []
        for item in package.get("items", []):
            line = order.line(item["line_id"])
            main = line.master_line_id if line.is_gift else line.line_id
            if main not in touched:
                touched.append(main)
        lines = [order.line(x) for x in touched]
    else:
        lines = [ln for ln in order.lines if not ln.is_gift]
    out = []
    for index, line in enumerate(lines):
        if event.kind == EventKind.ORDER_CREATED:
            info = {"oid": int(line.line_id), "sellerId": int(order.shop_id), "openId": seller_open_id,
                    "buyerOpenId": render.buyer_open_id(order.buyer_id), "createTime": render.ms(order.create_time),
                    "customizedInfo": {"customizedItemType": 0, "customizedUrl": "", "customizedCode": ""}}  # fmt: skip
        elif event.kind == EventKind.ORDER_REMARK:
            info = {
                "oid": int(line.line_id),
                "sellerId": int(order.shop_id),
                "note": order.seller_words,
                "updateTime": render.ms(order.update_time),
            }
        elif event.kind == EventKind.ORDER_ADDRESS_CHANGED:
            info = {"oid": int(line.line_id), "sellerId": int(order.shop_id), "openId": seller_open_id, "auditStatus": 2,
                    "updateTime": render.ms(order.update_time)}  # fmt: skip
        else:
            info = {"oid": int(line.line_id), "sellerId": int(order.shop_id), "status": line_status(order, line),
                    "updateTime": render.ms(order.update_time)}  # fmt: skip
        out.append(message(index, topic, line.line_id, info))
    return out


def push_ack(status: int, body: bytes) -> bool:
    """HTTP 200 with JSON ``{"result": 1}`` is the only acknowledgement."""
    if status != 200:
        return False
    try:
        reply = json.loads(body)
    except ValueError:
        return False
    return isinstance(reply, dict) and reply.get("result") == 1


class KuaishouPushCodec:
    """Kuaishou pushes (§2.8): one JSON message per POST, AES-128-CBC encrypted, Base64, text/plain;
    acknowledged by ``{"result":1}`` within 3 s; retried after 5, 10, 20, 30 and 60 minutes."""

    platform = PLATFORM
    retry_schedule: tuple[float, ...] = PUSH_RETRY_SCHEDULE
    ack_timeout = 3.0

    def encode(self, world: World, app: App, message: pushes.OutboxMessage) -> list[pushes.EncodedPush]:
        headers = {"Content-Type": "text/plain;charset=utf-8"}
        return [
            pushes.EncodedPush(
                app.webhook_url,
                encrypt_push(app.message_key, pushes.dumps_compact(m)).encode(),
                dict(headers),
            )
            for m in push_messages(world, app, message.event, message.msg_id)
        ]

    def is_ack(self, status: int, body: bytes) -> bool:
        return push_ack(status, body)


def send_heartbeat(world: World, app_key: str, client: Any = None) -> bool:
    """POST the encrypted ``{"test":true}`` heartbeat to the app's URL (as on saving the URL and
    periodically); True when the receiver acknowledged it."""
    import httpx

    app = world.get_app(app_key)
    if app is None or not app.webhook_url:
        return False
    own = client is None
    http: httpx.Client = client or httpx.Client(trust_env=False)
    try:
        response = http.post(app.webhook_url, content=encrypt_push(app.message_key, HEARTBEAT).encode(),
                             headers={"Content-Type": "text/plain;charset=utf-8"}, timeout=KuaishouPushCodec.ack_timeout)  # fmt: skip
        return push_ack(response.status_code, response.content)
    except httpx.HTTPError:
        return False
    finally:
        if own:
            http.close()


pushes.register_codec(KuaishouPushCodec())

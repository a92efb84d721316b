"""Kuaishou shop (快手电商) connector — wire: constants, request signing, envelope checks, shared helpers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from channels.connectors.base import (
    TokenExpiredSignal,
    as_int,
    from_epoch,
)
from channels.errors import AuthExpired, PlatformRejected, RateLimited, TemporarilyUnavailable
from ecbao import money

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
        if "." in text:  # yuan: the kernel's one rule (half up to the fen)
            return money.to_fen(text, negative=True)
        return int(text)
    except ValueError:  # MoneyError is one
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

"""Douyin shop (抖店) connector — wire: constants, request signing, envelope checks, shared helpers."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from channels.connectors.base import (
    TokenExpiredSignal,
)
from channels.errors import AuthExpired, PlatformRejected, RateLimited, TemporarilyUnavailable

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


def epoch_time(value: Any) -> datetime | None:
    """A Douyin time: epoch seconds as a number or digit string. Milliseconds (13 digits, met in
    some payloads) are read as such; an unreadable value is logged and read as no time."""
    if value in (None, "", 0, "0"):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        logger.warning("unreadable Douyin time %r", value)
        return None
    if number >= 1e11:  # epoch seconds stay below 1e11 until the year 5138
        number /= 1000
    try:
        return datetime.fromtimestamp(number, tz=UTC)
    except (OverflowError, OSError, ValueError):
        logger.warning("Douyin time out of range %r", value)
        return None


def _num_id(value: str) -> int | str:
    """Send an id the way the SDK types it (int64) when it is numeric."""
    return int(value) if value.isdigit() else value


# --------------------------------------------------------------------------- the window walk


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

"""WeChat Channels shop (微信小店) connector — wire: constants, request signing, envelope checks, shared helpers."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from channels.connectors.base import (
    from_epoch,
)

logger = logging.getLogger("channels.connectors.wechat")

SHANGHAI = timezone(timedelta(hours=8))
TOKEN_ERRORS = {40001, 42001}  # invalid / not latest, expired
AUTH_ERRORS = {40001, 40013, 40125, 40164, 41002, 41004, 42001, 61003, 61023, 48001}
ORDER_PAGE_SIZE = 100
PRODUCT_PAGE_SIZE = 30
AFTERSALE_WINDOW = timedelta(days=7)


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

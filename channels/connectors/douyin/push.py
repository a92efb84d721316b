"""Douyin shop (抖店) connector — push codec (message push decoding and replies)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timedelta
from typing import Any

from channels.connectors.base import (
    AppCredentials,
    PushCodec,
    PushMessage,
    PushReply,
    as_id,
    epoch_any,
)
from channels.errors import BadPushMessage
from channels.types import (
    Platform,
)

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

    # No timestamp of its own: the newest event time in the message (§1.8: ``create_time``,
    # ``pay_time``, ``update_time`` …; not deadlines such as a promised ship time), which a retry
    # re-sends; Douyin's retry schedule is not published (the sandbox retries over 10 h)
    # [choice: 12 h].
    max_age = timedelta(hours=12)
    EVENT_TIMES = ("update_time", "modify_time", "create_time", "pay_time", "complete_time", "cancel_time",
                   "apply_time", "agree_time", "refuse_time", "success_time", "close_time")  # fmt: skip

    def sent_at(self, *, query: dict[str, str], message: PushMessage) -> datetime | None:
        times = [epoch_any(message.payload.get(key)) for key in self.EVENT_TIMES]
        return max((t for t in times if t is not None), default=None)

    def ack(self) -> PushReply:
        """``{"code":0,"msg":"success"}``."""
        return PushReply(status=200, content_type="application/json", body='{"code":0,"msg":"success"}')

    def reject(self) -> PushReply:
        """``{"code":1,"msg":"fail"}`` (the platform delivers again)."""
        return PushReply(status=200, content_type="application/json", body='{"code":1,"msg":"fail"}')

"""Kuaishou shop (快手电商) connector — push codec (message push decoding and replies)."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timedelta

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from channels.connectors.base import (
    AppCredentials,
    PushCodec,
    PushMessage,
    PushReply,
    as_dict,
    as_id,
    epoch_any,
)
from channels.errors import BadPushMessage
from channels.types import (
    Platform,
)

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

    # ``updateTime`` / ``createTime`` (ms) are the event's, re-sent by every retry (5, 10, 20,
    # 30, 60 minutes: the last one 125 minutes after the first) [choice: 3 h].
    max_age = timedelta(hours=3)

    def sent_at(self, *, query: dict[str, str], message: PushMessage) -> datetime | None:
        return epoch_any(message.payload.get("updateTime")) or epoch_any(message.payload.get("createTime"))

    def ack(self) -> PushReply:
        """``{"result":1}`` tells Kuaishou the message arrived."""
        return PushReply(200, "application/json", '{"result":1}')

    def reject(self) -> PushReply:
        """Any other result makes Kuaishou retry (after 5, 10, 20, 30, 60 minutes)."""
        return PushReply(200, "application/json", '{"result":0}')

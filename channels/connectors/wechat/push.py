"""WeChat Channels shop (微信小店) connector — push codec (message push decoding and replies)."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar
from xml.etree import ElementTree

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from channels.connectors.base import (
    AppCredentials,
    PushCodec,
    PushMessage,
    PushReply,
    epoch_any,
)
from channels.connectors.wechat.api import _seconds, _str_id
from channels.errors import (
    BadPushMessage,
)
from channels.types import (
    Platform,
)

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


DROPSHIP_TYPES = ("14", "15")  # channels_ec_order_ext_info_update types: dropship assigned / cancelled


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

    # The query ``timestamp`` (covered by ``msg_signature``). Whether a retry is stamped anew is
    # not documented: the window spans the retry schedule (10 pushes over ~3.6 h) [choice: 4 h].
    max_age = timedelta(hours=4)

    def sent_at(self, *, query: dict[str, str], message: PushMessage) -> datetime | None:
        return epoch_any(query.get("timestamp"))

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
        elif event == "add_express_path":  # a parcel's trace moved (logistics helper event)
            body = {k: message.get(k) for k in ("DeliveryID", "WayBillId", "Version", "Count")}
            kind, object_id = "logistics", _str_id(message.get("WayBillId"))
        elif event.startswith("channels_ec_order_"):
            body = message.get("order_info") or {}
            kind, object_id = "order", _str_id(body.get("order_id") or message.get("order_id"))
            payload.setdefault("order_id", object_id)
            if event == "channels_ec_order_ext_info_update" and str(body.get("type")) in DROPSHIP_TYPES:
                kind = "dropship"  # 代发: assigned (14) / cancelled (15), operations §1
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

"""A WeChat Channels shop (微信小店) client written from platform-apis.md §3 only.

Tokens (§3.1): ``GET /cgi-bin/token?grant_type=client_credential&appid&secret`` and
``POST /cgi-bin/stable_token {grant_type, appid, secret, force_refresh}`` → ``access_token``,
``expires_in`` (7200). Calls (§3.2): ``POST /channels/ec/…?access_token=TOKEN`` with a JSON
body, no signature; 64-bit ids as strings. Envelope (§3.3): ``errcode`` 0 = success, payload
fields at the top level.

Pushes (§3.8), secure mode: ``signature = sha1(sorted([token, timestamp, nonce]) joined)``,
``msg_signature = sha1(sorted([token, timestamp, nonce, Encrypt]) joined)``;
``AESKey = b64decode(EncodingAESKey + "=")``, AES-256-CBC with IV = AESKey[:16], PKCS#7 over
32-byte blocks; plaintext = 16 random bytes ‖ 4-byte big-endian length ‖ JSON ‖ appid.
Nothing here imports the sandbox.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

import httpx
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def sha1_signature(*parts: str) -> str:
    """§3.8: sha1 over the lexicographically sorted parts concatenated."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()  # noqa: S324 - the platform's algorithm


def _key(encoding_aes_key: str) -> bytes:
    key = base64.b64decode(encoding_aes_key + "=")
    assert len(key) == 32, "EncodingAESKey must decode to 32 bytes"
    return key


def decrypt(encoding_aes_key: str, encrypted_b64: str) -> tuple[dict[str, Any], str]:
    """Decrypt one ``Encrypt`` value: returns (the JSON message, the trailing appid)."""
    key = _key(encoding_aes_key)
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    padded = decryptor.update(base64.b64decode(encrypted_b64)) + decryptor.finalize()
    pad = padded[-1]
    assert 1 <= pad <= 32 and padded.endswith(bytes([pad]) * pad), "PKCS#7 padding (32-byte block) is broken"
    plain = padded[:-pad]
    length = int.from_bytes(plain[16:20], "big")
    message = plain[20 : 20 + length]
    return json.loads(message.decode("utf-8")), plain[20 + length :].decode("utf-8")


def encrypt(encoding_aes_key: str, appid: str, message: dict[str, Any]) -> str:
    """The sender side of §3.8 (used to feed a receiver in tests)."""
    key = _key(encoding_aes_key)
    body = json.dumps(message, ensure_ascii=False).encode("utf-8")
    plain = os.urandom(16) + len(body).to_bytes(4, "big") + body + appid.encode("utf-8")
    pad = 32 - len(plain) % 32
    plain += bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode("ascii")


class WechatError(Exception):
    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(f"{body.get('errcode')}: {body.get('errmsg')}")
        self.errcode = body.get("errcode")
        self.errmsg = body.get("errmsg", "")
        self.body = body


class WechatRefClient:
    """Self-use (自研) client of one shop's appid/secret."""

    def __init__(self, appid: str, secret: str, *, http: httpx.Client) -> None:
        self.appid = appid
        self.secret = secret
        self.http = http
        self.access_token = ""

    # --- tokens (§3.1) ---------------------------------------------------------------
    def token(self) -> dict[str, Any]:
        reply = self.http.get(
            "/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
        )
        return reply.json()

    def stable_token(self, *, force_refresh: bool = False) -> dict[str, Any]:
        reply = self.http.post(
            "/cgi-bin/stable_token",
            json={
                "grant_type": "client_credential",
                "appid": self.appid,
                "secret": self.secret,
                "force_refresh": force_refresh,
            },
        )
        return reply.json()

    def login(self) -> str:
        body = self.stable_token()
        assert "access_token" in body, body
        self.access_token = body["access_token"]
        return self.access_token

    # --- calls (§3.2 / §3.3) -----------------------------------------------------------
    def raw(
        self, path: str, body: dict[str, Any] | None = None, *, access_token: str | None = None
    ) -> dict[str, Any]:
        token = self.access_token if access_token is None else access_token
        reply = self.http.post(path, params={"access_token": token}, json=body or {})
        assert reply.status_code == 200
        return reply.json()

    def call(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        result = self.raw(path, body)
        if result.get("errcode", 0) != 0:
            raise WechatError(result)
        return result

    # --- orders (§3.4) -------------------------------------------------------------------
    def order_ids(
        self, start: int, end: int, *, page_size: int = 100, between_pages: Any = None
    ) -> list[str]:
        """Walk ``/order/list/get`` by update time until ``has_more`` is false."""
        ids: list[str] = []
        next_key = ""
        while True:
            body: dict[str, Any] = {
                "update_time_range": {"start_time": start, "end_time": end},
                "page_size": page_size,
            }
            if next_key:
                body["next_key"] = next_key
            page = self.call("/channels/ec/order/list/get", body)
            ids.extend(page["order_id_list"])
            if between_pages:
                between_pages()
            if not page["has_more"]:
                return ids
            next_key = page["next_key"]

    def order(self, order_id: str) -> dict[str, Any]:
        return self.call("/channels/ec/order/get", {"order_id": order_id})["order"]

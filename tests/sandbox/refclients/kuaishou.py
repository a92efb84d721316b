"""A Kuaishou open-platform client written from platform-apis.md §2.1, §2.2, §2.3 and §2.8.

Signing (§2.2): take ``access_token, appkey, method, param, signMethod, timestamp, version``
(those present), sort the keys, join ``k=v`` with ``&`` using the raw values (before URL
encoding), append ``&signSecret=<signSecret>``; ``MD5`` → lower-hex MD5 of that string,
``HMAC_SHA256`` → Base64 of HMAC-SHA256 keyed by signSecret over the same string.
Path = ``/`` + method with ``.`` → ``/``. GET puts everything in the query; POST sends an
``application/x-www-form-urlencoded`` body. Timestamps are milliseconds.

OAuth (§2.1): ``GET /oauth2/access_token?app_id&grant_type=code&code&app_secret``,
``POST /oauth2/refresh_token`` (form) ``grant_type=refresh_token&refresh_token&app_id&app_secret``.

Pushes (§2.8): body = Base64(AES/CBC/PKCS5Padding), IV = 16 zero bytes, key = Base64-decode of
the app's message key; the plaintext is one JSON message whose ``info`` is a JSON string.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

SIGNED = ("access_token", "appkey", "method", "param", "signMethod", "timestamp", "version")


def sign_string(params: dict[str, str], sign_secret: str) -> str:
    present = sorted((k, v) for k, v in params.items() if k in SIGNED and v is not None)
    return "&".join(f"{k}={v}" for k, v in present) + "&signSecret=" + sign_secret


def signature(params: dict[str, str], sign_secret: str, sign_method: str) -> str:
    text = sign_string(params, sign_secret)
    if sign_method == "HMAC_SHA256":
        digest = hmac.new(sign_secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).digest()
        return base64.b64encode(digest).decode("ascii")
    return hashlib.md5(text.encode("utf-8")).hexdigest()  # noqa: S324 - the platform's algorithm


def decrypt_push_body(message_key: str, body: bytes) -> dict[str, Any]:
    """AES-128-CBC (zero IV, PKCS5) decrypt of a push body; returns the JSON message."""
    cipher = Cipher(algorithms.AES(base64.b64decode(message_key)), modes.CBC(bytes(16)))
    decryptor = cipher.decryptor()
    padded = decryptor.update(base64.b64decode(body)) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return json.loads(unpadder.update(padded) + unpadder.finalize())


def encrypt_push_body(message_key: str, message: dict[str, Any]) -> bytes:
    """The inverse of ``decrypt_push_body`` (to build pushes in tests)."""
    padder = padding.PKCS7(128).padder()
    data = padder.update(json.dumps(message, separators=(",", ":")).encode("utf-8")) + padder.finalize()
    encryptor = Cipher(algorithms.AES(base64.b64decode(message_key)), modes.CBC(bytes(16))).encryptor()
    return base64.b64encode(encryptor.update(data) + encryptor.finalize())


@dataclass
class PreparedCall:
    """What goes on the wire; tests may tamper with ``params`` before sending."""

    http_method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)


class KuaishouRefClient:
    def __init__(
        self,
        app_key: str,
        app_secret: str,
        sign_secret: str,
        *,
        http: httpx.Client,
        clock: Callable[[], float] = time.time,
        sign_method: str = "HMAC_SHA256",
    ) -> None:
        self.app_key = app_key
        self.app_secret = app_secret
        self.sign_secret = sign_secret
        self.http = http
        self.clock = clock
        self.sign_method = sign_method

    def prepare(
        self, method: str, params: dict[str, Any] | None, access_token: str, *, http_method: str = "GET"
    ) -> PreparedCall:
        wire = {
            "appkey": self.app_key,
            "method": method,
            "version": "1",
            "param": json.dumps(params or {}, ensure_ascii=False, separators=(",", ":")),
            "access_token": access_token,
            "timestamp": str(int(self.clock() * 1000)),
            "signMethod": self.sign_method,
        }
        wire["sign"] = signature(wire, self.sign_secret, self.sign_method)
        return PreparedCall(http_method, "/" + method.replace(".", "/"), wire)

    def send(self, call: PreparedCall) -> httpx.Response:
        if call.http_method == "GET":
            return self.http.get(call.path, params=call.params)
        return self.http.post(call.path, data=call.params)

    def call(
        self, method: str, params: dict[str, Any] | None, access_token: str, *, http_method: str = "GET"
    ) -> dict[str, Any]:
        """Signed call; returns the decoded envelope (``result == 1`` is success)."""
        response = self.send(self.prepare(method, params, access_token, http_method=http_method))
        assert response.status_code == 200, response.text
        return response.json()

    def data(
        self, method: str, params: dict[str, Any] | None, access_token: str, *, http_method: str = "GET"
    ) -> Any:
        envelope = self.call(method, params, access_token, http_method=http_method)
        assert envelope["result"] == 1, envelope
        return envelope.get("data")

    # --- OAuth
    def token_by_code(self, code: str) -> dict[str, Any]:
        query = {"app_id": self.app_key, "grant_type": "code", "code": code, "app_secret": self.app_secret}
        return self.http.get("/oauth2/access_token", params=query).json()

    def token_client_credentials(self) -> dict[str, Any]:
        query = {"app_id": self.app_key, "grant_type": "client_credentials", "app_secret": self.app_secret}
        return self.http.get("/oauth2/access_token", params=query).json()

    def refresh(self, refresh_token: str) -> dict[str, Any]:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "app_id": self.app_key,
            "app_secret": self.app_secret,
        }
        return self.http.post("/oauth2/refresh_token", data=form).json()

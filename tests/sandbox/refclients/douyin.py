"""A Douyin open-platform client written from platform-apis.md §1.2, §1.3 and §1.8.

Signing (§1.2): query ``app_key, method, timestamp, v=2, sign, sign_method=hmac-sha256``
(+ ``access_token``); body = param_json, the business parameters serialised with keys
sorted at every level, no whitespace, no HTML/ASCII escaping;
``sign = hex(HMAC-SHA256(app_secret, app_secret + "app_key" + app_key + "method" + method
+ "param_json" + param_json + "timestamp" + timestamp + "v2" + app_secret))``.
Push verification (§1.8): ``event-sign == md5(app_key + raw_body + app_secret)``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx


def param_json(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def signature(
    app_key: str,
    app_secret: str,
    method: str,
    body: str,
    timestamp: str,
    v: str = "2",
    sign_method: str = "hmac-sha256",
) -> str:
    text = (
        app_secret
        + "app_key"
        + app_key
        + "method"
        + method
        + "param_json"
        + body
        + "timestamp"
        + timestamp
        + "v"
        + v
        + app_secret
    )
    if sign_method == "md5":
        return hashlib.md5(text.encode("utf-8")).hexdigest()  # noqa: S324 - the platform's algorithm
    return hmac.new(app_secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass
class PreparedCall:
    """Everything that goes on the wire; tests may tamper with it before sending."""

    path: str
    query: dict[str, str]
    body: str
    headers: dict[str, str] = field(
        default_factory=lambda: {"Content-Type": "application/json", "x-open-no-old-err-code": "1"}
    )


class DouyinRefClient:
    def __init__(self, app_key: str, app_secret: str, *, http: httpx.Client, clock: Callable[[], float] = time.time,
                 sign_method: str = "hmac-sha256") -> None:  # fmt: skip
        self.app_key = app_key
        self.app_secret = app_secret
        self.http = http
        self.clock = clock
        self.sign_method = sign_method

    def prepare(
        self, path: str, params: dict[str, Any] | None = None, access_token: str | None = None
    ) -> PreparedCall:
        body = param_json(params or {})
        method = path.lstrip("/").replace("/", ".")
        timestamp = str(int(self.clock()))
        query = {
            "app_key": self.app_key,
            "method": method,
            "timestamp": timestamp,
            "v": "2",
            "sign_method": self.sign_method,
        }
        if access_token:
            query["access_token"] = access_token
        query["sign"] = signature(
            self.app_key, self.app_secret, method, body, timestamp, "2", self.sign_method
        )
        return PreparedCall(path, query, body)

    def send(self, call: PreparedCall) -> httpx.Response:
        return self.http.post(
            call.path, params=call.query, content=call.body.encode("utf-8"), headers=call.headers
        )

    def call(
        self, path: str, params: dict[str, Any] | None = None, access_token: str | None = None
    ) -> dict[str, Any]:
        """Signed call; returns the decoded envelope (``code == 10000`` is success)."""
        response = self.send(self.prepare(path, params, access_token))
        response.raise_for_status()
        return response.json()

    def data(self, path: str, params: dict[str, Any] | None = None, access_token: str | None = None) -> Any:
        """Signed call that must succeed; returns ``data``."""
        envelope = self.call(path, params, access_token)
        assert envelope["code"] == 10000, envelope
        return envelope["data"]

    def token_create_by_code(self, code: str) -> dict[str, Any]:
        return self.call("/token/create", {"code": code, "grant_type": "authorization_code"})

    def token_create_self(self, shop_id: str) -> dict[str, Any]:
        return self.call(
            "/token/create", {"code": "", "grant_type": "authorization_self", "shop_id": shop_id}
        )

    def token_refresh(self, refresh_token: str) -> dict[str, Any]:
        return self.call("/token/refresh", {"grant_type": "refresh_token", "refresh_token": refresh_token})

    def verify_push(self, headers: dict[str, str], body: bytes) -> list[dict[str, Any]]:
        """Check ``event-sign`` and return the messages with ``data`` decoded; raise on a bad signature."""
        lowered = {k.lower(): v for k, v in headers.items()}
        expected = hashlib.md5(self.app_key.encode() + body + self.app_secret.encode()).hexdigest()  # noqa: S324
        if lowered.get("app-id") != self.app_key or not hmac.compare_digest(
            lowered.get("event-sign", ""), expected
        ):
            raise ValueError("bad push signature")
        messages = json.loads(body)
        for message in messages:
            message["data"] = json.loads(message["data"])
        return messages

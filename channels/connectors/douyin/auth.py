"""Douyin shop (抖店) connector — authorisation: authorise URL, code exchange, token refresh."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from channels.connectors.base import (
    as_dict,
    as_id,
    as_int,
)
from channels.connectors.douyin.api import (
    REFRESH_MARGIN,
    REFRESH_TOKEN_TTL,
    TOKEN_FAILED_PREFIX,
    _num_id,
    logger,
)
from channels.errors import AuthExpired, PlatformRejected, RateLimited, TemporarilyUnavailable
from channels.types import (
    TokenGrant,
)


class AuthMixin:
    """DouyinConnector: authorisation."""

    # ------------------------------------------------------------------ authorisation

    def authorize_url(self, *, redirect_uri: str, state: str) -> str:
        """The service-market authorisation page (§1.1): ``?service_id=…&state=…``.

        ``redirect_uri`` is added for pages that accept it (the sandbox uses it when the app
        has no callback configured; the real page redirects to the console-configured one).
        """
        query = {"service_id": self.service_id} if self.service_id else {"app_key": self.credentials.app_key}
        query["state"] = state
        if redirect_uri:
            query["redirect_uri"] = redirect_uri
        return f"{self.authorize_base}?{urlencode(query)}"

    def exchange_code(self, *, code: str, redirect_uri: str = "") -> TokenGrant:
        """``/token/create`` with ``grant_type=authorization_code`` (tool apps)."""
        data = self._token_api(
            "/token/create", {"code": code, "grant_type": "authorization_code"}, renewal=False
        )
        return self._grant(data)

    def self_use_token(self, platform_shop_id: str) -> TokenGrant:
        """``/token/create`` with ``grant_type=authorization_self`` and ``shop_id`` (self-use apps)."""
        params = {"code": "", "grant_type": "authorization_self", "shop_id": _num_id(platform_shop_id)}
        try:
            data = self._token_api("/token/create", params, renewal=False)
        except PlatformRejected as exc:
            if exc.sub_code == f"{TOKEN_FAILED_PREFIX}:no-authorization":
                raise AuthExpired(f"shop {platform_shop_id} has not authorised this app") from exc
            raise
        return self._grant(data)

    def refresh_tokens(self) -> TokenGrant:
        """``/token/refresh``; a self-use app falls back to a fresh self-use token."""
        s = self.session
        try:
            if not s.refresh_token:
                raise AuthExpired("no refresh token; connect the shop again")
            data = self._token_api(
                "/token/refresh",
                {"grant_type": "refresh_token", "refresh_token": s.refresh_token},
                renewal=True,
            )
        except AuthExpired:
            if self.self_use and s.platform_shop_id:
                logger.info("refresh failed for self-use shop %s; minting a new token", s.platform_shop_id)
                return self.self_use_token(s.platform_shop_id)
            raise
        return self._grant(data)

    def _grant(self, data: Any) -> TokenGrant:
        data = as_dict(data)
        if not data.get("access_token"):
            raise TemporarilyUnavailable("token answer without access_token")
        now = self.now()
        access_token = str(data["access_token"])
        refresh_token = str(data.get("refresh_token") or "")
        s = self.session
        unchanged = access_token == s.access_token and refresh_token == s.refresh_token
        refresh_expires = (
            s.refresh_expires_at if unchanged and s.refresh_expires_at else now + REFRESH_TOKEN_TTL
        )
        return TokenGrant(
            access_token=access_token,
            access_expires_at=now + timedelta(seconds=as_int(data.get("expires_in"))),
            refresh_token=refresh_token,
            refresh_expires_at=refresh_expires if refresh_token else None,
            platform_shop_id=as_id(data.get("shop_id")),
            shop_name=str(data.get("shop_name") or ""),
        )

    def ensure_fresh_token(self) -> None:
        """Refresh in the access token's last ``REFRESH_MARGIN`` (see module docstring)."""
        s = self.session
        if not s.access_token:
            raise AuthExpired("shop has no access token; connect it again")
        if s.access_expires_at is None:
            return
        now = self.now()
        issued = s.issued_at or (s.access_expires_at - timedelta(days=7))
        margin = min(REFRESH_MARGIN, (s.access_expires_at - issued) * (1 - self.refresh_at_share))
        if now < s.access_expires_at - margin:
            return
        try:
            self._refresh_and_store()
        except (TemporarilyUnavailable, RateLimited) as exc:
            if now >= s.access_expires_at:
                raise
            logger.warning(
                "proactive token refresh for shop %s failed, old token still valid: %s",
                s.platform_shop_id,
                exc,
            )

"""Kuaishou shop (快手电商) connector — authorisation: authorise URL, code exchange, token refresh."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from channels.connectors.base import (
    as_dict,
    as_id,
    as_int,
)
from channels.connectors.kuaishou.api import SCOPES, logger
from channels.errors import AuthExpired, RateLimited, TemporarilyUnavailable
from channels.types import (
    TokenGrant,
)


class AuthMixin:
    """KuaishouConnector: authorisation."""

    # ------------------------------------------------------------------ authorisation

    def ensure_fresh_token(self) -> None:
        """Refresh ahead of expiry (base rule: after 80 % of the 48 h). A proactive refresh that
        fails for a passing reason is not fatal while the current token still works."""
        try:
            super().ensure_fresh_token()
        except (TemporarilyUnavailable, RateLimited) as exc:
            expires = self.session.access_expires_at
            if expires is None or self.now() >= expires:
                raise
            logger.warning("proactive token refresh failed (%s); the current token is still valid", exc)

    def authorize_url(self, *, redirect_uri: str, state: str) -> str:
        """The merchant authorisation page with this app's key, scopes and callback (§2.1)."""
        query = {"app_id": self.credentials.app_key, "redirect_uri": redirect_uri, "scope": SCOPES,
                 "response_type": "code", "state": state}  # fmt: skip
        return f"{self.authorize_base}?{urlencode(query)}"

    def _grant(self, body: dict[str, Any], *, shop_id: str, shop_name: str = "") -> TokenGrant:
        now = self.now()
        refresh_in = body.get("refresh_token_expires_in")
        return TokenGrant(
            access_token=str(body["access_token"]),
            access_expires_at=now + timedelta(seconds=as_int(body.get("expires_in"), 48 * 3600)),
            refresh_token=str(body.get("refresh_token") or ""),
            refresh_expires_at=now + timedelta(seconds=as_int(refresh_in))
            if refresh_in is not None
            else self.session.refresh_expires_at,
            platform_shop_id=shop_id,
            shop_name=shop_name,
        )

    def exchange_code(self, *, code: str, redirect_uri: str = "") -> TokenGrant:
        """``GET /oauth2/access_token`` with ``grant_type=code``, then ``open.user.seller.get`` for the
        seller id (the shop id) and name. A code is single-use, so the exchange is never re-sent."""
        query = {
            "app_id": self.credentials.app_key,
            "grant_type": "code",
            "code": code,
            "app_secret": self.credentials.app_secret,
        }
        body = self._oauth(
            lambda: self.http.get(f"{self.base_url}/oauth2/access_token", params=query), idempotent=False
        )
        token = str(body["access_token"])
        seller = self.call(
            lambda: self._send("open.user.seller.get", {}, write=False, access_token=token),
            self._parse,
            idempotent=True,
            authenticated=False,
        )
        data = as_dict(seller.get("data"))
        return self._grant(body, shop_id=as_id(data.get("sellerId")), shop_name=str(data.get("name") or ""))

    def refresh_tokens(self) -> TokenGrant:
        """``POST /oauth2/refresh_token``. Refresh tokens rotate: the answer's new refresh token
        (which keeps the old expiry) must replace the old one, which dies 5 minutes later.
        Retrying within those minutes is safe (the platform answers with the same new pair)."""
        if not self.session.refresh_token:
            raise AuthExpired("no refresh token; the merchant must authorise again")
        form = {"grant_type": "refresh_token", "refresh_token": self.session.refresh_token,
                "app_id": self.credentials.app_key, "app_secret": self.credentials.app_secret}  # fmt: skip
        body = self._oauth(
            lambda: self.http.post(f"{self.base_url}/oauth2/refresh_token", data=form), idempotent=True
        )
        return self._grant(body, shop_id=self.session.platform_shop_id)

"""WeChat Channels shop (微信小店) connector — authorisation: authorise URL, code exchange, token refresh."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlencode

import httpx

from channels.errors import (
    AuthExpired,
)
from channels.types import (
    TokenGrant,
)


class TokenRejected(AuthExpired):
    """40001/42001 on a token call: the access token in the query (e.g. the component token) was
    refused."""


class ComponentTokenCache(Protocol):
    """Where connectors share the ``component_access_token`` (ecbao: encrypted on the PlatformApp)."""

    def load(self) -> tuple[str, datetime] | None:
        """The stored token and its expiry, if any."""
        ...

    def save(self, token: str, expires_at: datetime) -> None: ...

    def clear(self, token: str) -> None:
        """Forget ``token`` (WeChat refused it) unless another one was stored meanwhile."""
        ...


COMPONENT_TOKEN_MARGIN = timedelta(minutes=5)  # renew this long before expiry (§3.1: ~5 min overlap)


class AuthMixin:
    """WechatConnector: authorisation."""

    # --- authorisation ------------------------------------------------------------------------------
    def authorize_url(self, *, redirect_uri: str, state: str) -> str:
        """The consent page for our third-party platform (the real one is the service-market link)."""
        return f"{self.authorize_base}?{urlencode({'component_appid': self.credentials.app_key, 'redirect_uri': redirect_uri, 'state': state})}"

    def _component_token(self) -> str:
        """The ``component_access_token``: this connector's, else the shared cache's, while more
        than 5 minutes are left; else a new one (which needs the pushed ticket), then shared."""
        cached = self._component
        if not self._component_fresh(cached) and self.component_token_cache is not None:
            cached = self.component_token_cache.load()
        if cached and self._component_fresh(cached):
            self._component = cached
            return cached[0]
        if self.verify_ticket is None:
            raise AuthExpired(
                "third-party platform calls need the component_verify_ticket WeChat pushes; none is configured"
            )
        body = self._token_call(
            "POST",
            "/cgi-bin/component/api_component_token",
            body={
                "component_appid": self.credentials.app_key,
                "component_appsecret": self.credentials.app_secret,
                "component_verify_ticket": self.verify_ticket(),
            },
        )
        token = str(body["component_access_token"])
        self._component = (token, self.now() + timedelta(seconds=int(body.get("expires_in", 7200))))
        if self.component_token_cache is not None:
            self.component_token_cache.save(*self._component)
        return token

    def _component_fresh(self, cached: tuple[str, datetime] | None) -> bool:
        return bool(cached and cached[0] and cached[1] - self.now() > COMPONENT_TOKEN_MARGIN)

    def _component_call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """A ``/cgi-bin/component/…`` call with the component token; a token WeChat refuses
        (40001/42001 – e.g. a shared one that was replaced) is forgotten and the call made once more."""
        token = self._component_token()
        try:
            return self._token_call("POST", path, params={"access_token": token}, body=body)
        except TokenRejected:
            self._component = None
            if self.component_token_cache is not None:
                self.component_token_cache.clear(token)
            return self._token_call("POST", path, params={"access_token": self._component_token()}, body=body)

    def _shop_info(self, access_token: str) -> dict[str, Any]:
        def send() -> httpx.Response:
            return self.http.post(
                f"{self.base_url}/channels/ec/basics/info/get",
                params={"access_token": access_token},
                json={},
                timeout=self.timeout,
            )

        body = self.call(
            send,
            lambda r: self._check(self.json_body(r), token_call=True),
            idempotent=True,
            authenticated=False,
        )
        return body.get("info") or {}

    def exchange_code(self, *, code: str, redirect_uri: str = "") -> TokenGrant:
        """``auth_code`` from the consent redirect → authorizer tokens (+ the shop's ``gh_`` id and name)."""
        body = self._component_call(
            "/cgi-bin/component/api_query_auth",
            {"component_appid": self.credentials.app_key, "authorization_code": code},
        )
        info = body.get("authorization_info") or {}
        access = str(info["authorizer_access_token"])
        shop = self._shop_info(access)
        return TokenGrant(
            access_token=access,
            access_expires_at=self.now() + timedelta(seconds=int(info.get("expires_in", 7200))),
            refresh_token=f"{info['authorizer_appid']}:{info['authorizer_refresh_token']}",
            refresh_expires_at=None,
            platform_shop_id=str(shop.get("username", "")),
            shop_name=str(shop.get("nickname", "")),
        )

    def self_use_token(self, *, platform_shop_id: str = "") -> TokenGrant:
        """A self-use shop (its own appid/secret): a stable token, plus the shop's ``gh_`` id and
        name when ``platform_shop_id`` is not given."""
        self.session.refresh_token = ""
        self.session.platform_shop_id = platform_shop_id
        return self.refresh_tokens()

    def refresh_tokens(self) -> TokenGrant:
        """A fresh access token: ``stable_token`` for self-use shops, ``api_authorizer_token`` for
        authorised ones. Raises AuthExpired when WeChat refuses the credentials or authorisation."""
        refresh = self.session.refresh_token
        if refresh:
            appid, sep, authorizer_refresh = refresh.partition(":")
            if not sep:
                raise AuthExpired("stored WeChat refresh token has no authorizer appid")
            body = self._component_call(
                "/cgi-bin/component/api_authorizer_token",
                {
                    "component_appid": self.credentials.app_key,
                    "authorizer_appid": appid,
                    "authorizer_refresh_token": authorizer_refresh,
                },
            )
            access = str(body["authorizer_access_token"])
            new_refresh = f"{appid}:{body.get('authorizer_refresh_token') or authorizer_refresh}"
        else:
            body = self._token_call(
                "POST",
                "/cgi-bin/stable_token",
                body={
                    "grant_type": "client_credential",
                    "appid": self.credentials.app_key,
                    "secret": self.credentials.app_secret,
                    "force_refresh": False,
                },
            )
            access = str(body["access_token"])
            new_refresh = ""
        expires = self.now() + timedelta(seconds=int(body.get("expires_in", 7200)))
        shop_id, shop_name = self.session.platform_shop_id, ""
        if not shop_id:
            info = self._shop_info(access)
            shop_id, shop_name = str(info.get("username", "")), str(info.get("nickname", ""))
        return TokenGrant(
            access_token=access,
            access_expires_at=expires,
            refresh_token=new_refresh,
            refresh_expires_at=None,
            platform_shop_id=shop_id,
            shop_name=shop_name,
        )

    def apply_grant(self, grant: TokenGrant) -> None:
        """Store new tokens; a session that did not know its shop yet learns the ``gh_`` id."""
        if grant.platform_shop_id and not self.session.platform_shop_id:
            self.session.platform_shop_id = grant.platform_shop_id
        super().apply_grant(grant)

    def _refresh_and_store(self) -> None:
        # Detail fetches run in threads: one refresh at a time.
        with self._refresh_lock:
            super()._refresh_and_store()

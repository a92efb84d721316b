"""Douyin shop (抖店) connector — the connector class: transport, composed of the per-area mixins."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx

from channels.connectors.base import (
    AppCredentials,
    Connector,
    RetryPolicy,
    ShopSession,
    epoch_seconds,
)
from channels.connectors.douyin.aftersales import AfterSalesMixin
from channels.connectors.douyin.api import canonical_param_json, check_envelope, method_name, sign_request
from channels.connectors.douyin.auth import AuthMixin
from channels.connectors.douyin.buyer import BuyerDataMixin
from channels.connectors.douyin.orders import OrdersMixin
from channels.connectors.douyin.shipping import ShippingMixin
from channels.connectors.douyin.stock import StockMixin
from channels.connectors.douyin.tracking import TrackingMixin
from channels.errors import PlatformRejected, TemporarilyUnavailable
from channels.types import (
    Platform,
)

# --------------------------------------------------------------------------- the connector


class DouyinConnector(
    AuthMixin,
    OrdersMixin,
    ShippingMixin,
    TrackingMixin,
    StockMixin,
    AfterSalesMixin,
    BuyerDataMixin,
    Connector,
):
    """Douyin shop open-platform API (抖店开放平台, §1)."""

    platform = Platform.DOUYIN
    max_order_window: ClassVar[timedelta] = timedelta(days=1)  # [GUESS §1.4]

    def __init__(
        self,
        *,
        credentials: AppCredentials,
        base_url: str,
        session: ShopSession | None = None,
        http: httpx.Client | None = None,
        retry: RetryPolicy | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        timeout: float = 12.0,  # the official SDK's default (§1.11)
        authorize_base: str | None = None,
        service_id: str = "",
        self_use: bool = False,
    ) -> None:
        """``authorize_base``: the merchant-facing authorisation page (production:
        ``https://fuwu.jinritemai.com/authorize``; default ``{base_url}/authorize``).
        ``service_id``: the app's service-market id for that page (else ``app_key`` is sent).
        ``self_use``: a self-use (自用型) app, which can always mint a new token for an
        authorised shop when the refresh token is gone."""
        super().__init__(
            credentials=credentials,
            base_url=base_url,
            session=session,
            http=http,
            retry=retry,
            now=now,
            timeout=timeout,
        )
        self.authorize_base = (authorize_base or f"{self.base_url}/authorize").rstrip("?")
        self.service_id = service_id
        self.self_use = self_use

    # ------------------------------------------------------------------ transport

    def _send(self, path: str, params: dict[str, Any], *, with_token: bool) -> httpx.Response:
        """Build, sign and send one call (fresh timestamp and token on every attempt)."""
        body = canonical_param_json(params)
        method = method_name(path)
        timestamp = str(epoch_seconds(self.now()))
        query = {
            "app_key": self.credentials.app_key,
            "method": method,
            "timestamp": timestamp,
            "v": "2",
            "sign": sign_request(
                app_key=self.credentials.app_key,
                app_secret=self.credentials.app_secret,
                method=method,
                param_json=body,
                timestamp=timestamp,
            ),
            "sign_method": "hmac-sha256",
        }
        if with_token:
            query["access_token"] = self.session.access_token
        return self.http.post(
            f"{self.base_url}/{path.lstrip('/')}",
            params=query,
            content=body.encode("utf-8"),
            headers={"Content-Type": "application/json", "x-open-no-old-err-code": "1"},
        )

    def _parse(self, response: httpx.Response, *, token_call: bool = False) -> Any:
        try:
            body = response.json()
        except ValueError:
            if response.status_code >= 400:
                raise PlatformRejected(
                    f"HTTP {response.status_code}", code=f"http_{response.status_code}"
                ) from None
            raise TemporarilyUnavailable(f"malformed body (HTTP {response.status_code})") from None
        return check_envelope(body, token_call=token_call)

    def _api(self, path: str, params: dict[str, Any], *, idempotent: bool) -> Any:
        """One authenticated call with the retry policy; returns the envelope's ``data``."""
        return self.call(
            lambda: self._send(path, params, with_token=True),
            self._parse,
            idempotent=idempotent,
        )

    def _token_api(self, path: str, params: dict[str, Any], *, renewal: bool) -> Any:
        return self.call(
            lambda: self._send(path, params, with_token=False),
            lambda response: self._parse(response, token_call=renewal),
            idempotent=True,  # harmless to repeat: a used code is refused, a refresh returns a valid pair
            authenticated=False,
        )

"""Kuaishou shop (快手电商) connector — the connector class: transport, composed of the per-area mixins."""

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
)
from channels.connectors.kuaishou.aftersales import AfterSalesMixin
from channels.connectors.kuaishou.api import api_path, check_oauth, check_result, ms, param_json, sign_params
from channels.connectors.kuaishou.auth import AuthMixin
from channels.connectors.kuaishou.buyer import BuyerDataMixin
from channels.connectors.kuaishou.dropship import DropshipMixin
from channels.connectors.kuaishou.orders import OrdersMixin
from channels.connectors.kuaishou.shipping import ShippingMixin
from channels.connectors.kuaishou.stock import StockMixin
from channels.connectors.kuaishou.tracking import TrackingMixin
from channels.errors import PlatformRejected, TemporarilyUnavailable
from channels.types import (
    Platform,
)

# --------------------------------------------------------------------------- the connector


class KuaishouConnector(
    AuthMixin,
    OrdersMixin,
    ShippingMixin,
    TrackingMixin,
    StockMixin,
    AfterSalesMixin,
    BuyerDataMixin,
    DropshipMixin,
    Connector,
):
    """Kuaishou shop open-platform API (快手电商开放平台, §2)."""

    platform = Platform.KUAISHOU
    max_order_window: ClassVar[timedelta] = timedelta(days=7) - timedelta(minutes=5)  # §2.4, minus a margin
    max_lookback: ClassVar[timedelta] = timedelta(days=90)

    def __init__(
        self,
        *,
        credentials: AppCredentials,
        base_url: str,
        session: ShopSession | None = None,
        http: httpx.Client | None = None,
        retry: RetryPolicy | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        timeout: float = 10.0,
        authorize_base: str | None = None,
        sign_method: str = "HMAC_SHA256",
    ) -> None:
        """``authorize_base``: the merchant-facing authorisation page (production:
        ``https://open.kwaixiaodian.com/oauth/authorize``; default ``{base_url}/oauth/authorize``).
        ``sign_method``: ``HMAC_SHA256`` (recommended by the platform) or ``MD5``."""
        super().__init__(
            credentials=credentials,
            base_url=base_url,
            session=session,
            http=http,
            retry=retry,
            now=now,
            timeout=timeout,
        )
        self.authorize_base = (authorize_base or f"{self.base_url}/oauth/authorize").rstrip("?")
        if sign_method not in ("HMAC_SHA256", "MD5"):
            raise ValueError("sign_method must be HMAC_SHA256 or MD5")
        self.sign_method = sign_method

    # ------------------------------------------------------------------ transport

    def _send(
        self, method: str, params: dict[str, Any], *, write: bool, access_token: str | None = None
    ) -> httpx.Response:
        """Build, sign and send one call (fresh timestamp and token on every attempt)."""
        wire = {
            "appkey": self.credentials.app_key,
            "method": method,
            "version": "1",
            "param": param_json(params),
            "access_token": access_token if access_token is not None else self.session.access_token,
            "timestamp": str(ms(self.now())),
            "signMethod": self.sign_method,
        }
        wire["sign"] = sign_params(wire, self.credentials.sign_secret, self.sign_method)
        url = f"{self.base_url}{api_path(method)}"
        if write:
            return self.http.post(url, data=wire)
        return self.http.get(url, params=wire)

    def _parse(self, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            if 400 <= response.status_code < 500:
                raise PlatformRejected(
                    f"HTTP {response.status_code}", code=f"http_{response.status_code}"
                ) from None
            raise TemporarilyUnavailable(f"malformed body (HTTP {response.status_code})") from None
        return check_result(body)

    def _api(
        self, method: str, params: dict[str, Any], *, write: bool = False, idempotent: bool | None = None
    ) -> dict[str, Any]:
        """One authenticated call with the retry policy; returns the whole envelope.

        Reads are retried on transient failures; writes only when ``idempotent`` says so."""
        return self.call(
            lambda: self._send(method, params, write=write),
            self._parse,
            idempotent=not write if idempotent is None else idempotent,
        )

    def _oauth(self, send: Callable[[], httpx.Response], *, idempotent: bool) -> dict[str, Any]:
        def parse(response: httpx.Response) -> dict[str, Any]:
            return check_oauth(self.json_body(response))

        return self.call(send, parse, idempotent=idempotent, authenticated=False)

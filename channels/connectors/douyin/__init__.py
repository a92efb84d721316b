"""Douyin shop (抖店开放平台) connector and push codec.

Follows shared/reference/platform-apis.md §1. Every call is ``POST {base}/{path}`` with
the system parameters in the query string (``app_key, method, timestamp, v=2, sign,
sign_method=hmac-sha256[, access_token]``) and the business parameters as the canonical
``param_json`` body (§1.2); answers use the envelope of §1.3.

Choices where the reference is silent (each marked ``[choice]`` or ``[GUESS]`` below):

* Proactive refresh happens in the access token's last ``REFRESH_MARGIN`` (50 min, what the
  Python SDK uses), not at 80 % of its life: Douyin hands back the *same* pair until the
  last hour before expiry (SDK comment on ``token.create``), so an earlier refresh is a
  wasted call. A failed proactive refresh is not fatal while the old token still works.
* ``refresh_expires_at`` is not in the token answer; a newly issued pair is given the SDK
  comment's 14 days, an unchanged pair keeps what the session knew.
* Order windows are walked by *update-time keyset*, not by deep page numbers (see
  ``DouyinConnector.iter_orders``); ``update_time_start`` is taken to be inclusive [GUESS,
  as the sandbox does].
* The receiver's search index is read from the ciphertext's first segment
  (``#index#payload#v##`` / ``$index$payload$v$$``) [GUESS on the format, §1.4].

The package splits the connector by area (``api``: constants, signing and envelopes; ``auth``,
``orders``, ``shipping``, ``stock``, ``aftersales``, ``buyer``: one mixin each; ``connector``:
the class with its transport; ``push``: the codec); this module re-exports the public names.
"""

from __future__ import annotations

from channels.connectors.douyin.aftersales import (
    AFTER_SALE_STATUS_MAP,
    AFTER_SALE_TYPE_MAP,
    REFUND_IN_PROGRESS,
    SETTLEMENT_KIND,
    bill_time,
    parse_bill_time,
)
from channels.connectors.douyin.api import (
    AUTH_LOST_SUB_CODES,
    BILL_TIME_FORMAT,
    MAX_PAGING_DEPTH,
    MAX_REWALKS,
    PAGE_SIZE,
    RATE_LIMIT_RETRY_AFTER,
    REFRESH_MARGIN,
    REFRESH_TOKEN_TTL,
    SETTLEMENT_OK,
    SETTLEMENT_SPAN,
    SHANGHAI,
    SUCCESS,
    TOKEN_EXPIRED_SUB_CODES,
    TOKEN_FAILED_PREFIX,
    UNAVAILABLE_CODES,
    Fetch,
    canonical_param_json,
    check_envelope,
    epoch_time,
    method_name,
    sign_request,
)
from channels.connectors.douyin.buyer import RECEIVER_RULES
from channels.connectors.douyin.connector import DouyinConnector
from channels.connectors.douyin.orders import RISK_REVIEW_REASON, STATUS_MAP
from channels.connectors.douyin.push import DouyinPushCodec, push_kind

CONNECTOR = DouyinConnector
PUSH_CODEC = DouyinPushCodec

__all__ = [
    "RECEIVER_RULES",
    "AFTER_SALE_STATUS_MAP",
    "AFTER_SALE_TYPE_MAP",
    "AUTH_LOST_SUB_CODES",
    "BILL_TIME_FORMAT",
    "DouyinConnector",
    "DouyinPushCodec",
    "Fetch",
    "MAX_PAGING_DEPTH",
    "MAX_REWALKS",
    "PAGE_SIZE",
    "RATE_LIMIT_RETRY_AFTER",
    "REFRESH_MARGIN",
    "REFRESH_TOKEN_TTL",
    "REFUND_IN_PROGRESS",
    "RISK_REVIEW_REASON",
    "SETTLEMENT_KIND",
    "SETTLEMENT_OK",
    "SETTLEMENT_SPAN",
    "SHANGHAI",
    "STATUS_MAP",
    "SUCCESS",
    "TOKEN_EXPIRED_SUB_CODES",
    "TOKEN_FAILED_PREFIX",
    "UNAVAILABLE_CODES",
    "bill_time",
    "canonical_param_json",
    "check_envelope",
    "method_name",
    "parse_bill_time",
    "epoch_time",
    "push_kind",
    "sign_request",
    "CONNECTOR",
    "PUSH_CODEC",
]

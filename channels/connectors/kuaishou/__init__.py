"""Kuaishou shop (快手电商开放平台) connector and push codec.

Follows shared/reference/platform-apis.md §2. A call goes to ``{base}/open/...`` (the method
name with ``.`` → ``/``): reads are GETs with every parameter in the query string, writes
are POSTs with an ``application/x-www-form-urlencoded`` body. System parameters
``appkey, method, version=1, param`` (the business parameters as compact JSON),
``access_token, timestamp`` (ms), ``signMethod`` and ``sign``, where ``sign`` is the Base64
HMAC-SHA256 (or lower-hex MD5) keyed by the app's signSecret over the sorted ``k=v&…``
string of those parameters followed by ``&signSecret=…`` (§2.2).

A Kuaishou order holds one SKU (§2.4): each becomes one ``ChannelOrder`` with one line whose
``platform_line_id`` is the order id; gift sub-orders (``subOrderInfo``) become gift lines.

Choices where the reference is silent (``[choice]`` / ``[GUESS]`` below):

* Error ``result`` numbers: 24 is a token problem (``AUTHORIZATION_REVOKED`` = the merchant
  withdrew; anything else = refresh and retry once), 25/26 mean the token cannot serve the
  shop (reconnect), 15/16/17/1016/1017/802000 or an ``Exceed qps/quota limit`` message are
  rate limits, 10 is a busy service; everything else is a business refusal (KS-PHP mapping).
* The carrier list comes from ``open.logistics.company.list``; when the platform does not
  answer it, the official table of §2.5 is used.
* E-waybill company codes are strings (``ZTO``, ``YUNDA`` …) mapped from the shipping codes
  [GUESS]; one waybill per order (``packageCode`` "1"), so asking again returns the same one.
* Settlement amounts are strings in fen [GUESS §2.9]; bill times are ``yyyy-MM-dd HH:mm:ss``
  in Beijing time or epoch milliseconds, whichever arrives.

The package splits the connector by area (``api``: constants, signing and envelopes; ``auth``,
``orders``, ``shipping``, ``stock``, ``aftersales``, ``buyer``: one mixin each; ``connector``:
the class with its transport; ``push``: the codec); this module re-exports the public names.
"""

from __future__ import annotations

from channels.connectors.kuaishou.aftersales import (
    AFTER_SALE_STATUSES,
    AFTER_SALE_TYPES,
    after_sale_from_kuaishou,
    settlement_from_kuaishou,
)
from channels.connectors.kuaishou.api import (
    AUTH_REVOKED,
    BILL_PAGE_SIZE,
    BILL_SPAN,
    BILL_TIME_FORMAT,
    BUSY_RESULTS,
    EBILL_BATCH,
    ITEM_PAGE_SIZE,
    NO_GRANT_RESULTS,
    NOMORE,
    OAUTH_ACCESS_DENIED,
    OAUTH_SERVER_ERROR,
    ORDER_PAGE_SIZE,
    QPS_RETRY_AFTER,
    QUOTA_RETRY_AFTER,
    RATE_LIMIT_RESULTS,
    REFUND_PAGE_SIZE,
    REFUND_SPAN,
    SCOPES,
    SHANGHAI,
    SIGNED_KEYS,
    SUCCESS,
    TOKEN_RESULT,
    api_path,
    check_oauth,
    check_result,
    fen,
    is_rate_limit,
    ms,
    param_json,
    parse_bill_time,
    sign_params,
)
from channels.connectors.kuaishou.buyer import RECEIVER_RULES
from channels.connectors.kuaishou.connector import KuaishouConnector
from channels.connectors.kuaishou.orders import (
    HOLD_REASONS,
    RISK_FRAUD,
    order_from_kuaishou,
    ship_blocked_reason,
)
from channels.connectors.kuaishou.push import KuaishouPushCodec, decrypt_message
from channels.connectors.kuaishou.shipping import EXPRESS_CODES

CONNECTOR = KuaishouConnector
PUSH_CODEC = KuaishouPushCodec

__all__ = [
    "RECEIVER_RULES",
    "AFTER_SALE_STATUSES",
    "AFTER_SALE_TYPES",
    "AUTH_REVOKED",
    "BILL_PAGE_SIZE",
    "BILL_SPAN",
    "BILL_TIME_FORMAT",
    "BUSY_RESULTS",
    "EBILL_BATCH",
    "EXPRESS_CODES",
    "HOLD_REASONS",
    "ITEM_PAGE_SIZE",
    "KuaishouConnector",
    "KuaishouPushCodec",
    "NOMORE",
    "NO_GRANT_RESULTS",
    "OAUTH_ACCESS_DENIED",
    "OAUTH_SERVER_ERROR",
    "ORDER_PAGE_SIZE",
    "QPS_RETRY_AFTER",
    "QUOTA_RETRY_AFTER",
    "RATE_LIMIT_RESULTS",
    "REFUND_PAGE_SIZE",
    "REFUND_SPAN",
    "RISK_FRAUD",
    "SCOPES",
    "SHANGHAI",
    "SIGNED_KEYS",
    "SUCCESS",
    "TOKEN_RESULT",
    "after_sale_from_kuaishou",
    "api_path",
    "check_oauth",
    "check_result",
    "decrypt_message",
    "fen",
    "is_rate_limit",
    "ms",
    "order_from_kuaishou",
    "param_json",
    "parse_bill_time",
    "settlement_from_kuaishou",
    "ship_blocked_reason",
    "sign_params",
    "CONNECTOR",
    "PUSH_CODEC",
]

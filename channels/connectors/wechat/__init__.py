"""WeChat Channels shop (微信小店) connector and push codec (shared/reference/platform-apis.md §3).

Requests: ``POST {base_url}/channels/ec/…?access_token=TOKEN`` with a JSON body; no signature;
64-bit ids travel as strings. Replies: ``{"errcode":0,"errmsg":"ok", …fields}``.

Tokens (7200 s):

* **self-use shop** (``session.refresh_token`` empty): ``credentials`` are the shop's own
  appid/secret; ``refresh_tokens`` calls ``/cgi-bin/stable_token`` (normal mode: the same token
  comes back until ~5 min before expiry, so proactive refreshes are cheap and never kill a token
  another worker still uses).
* **shop authorised to our third-party platform**: ``credentials`` are the component appid/secret;
  ``session.refresh_token`` holds ``"<authorizer_appid>:<authorizer_refresh_token>"`` and
  ``refresh_tokens`` calls ``/cgi-bin/component/api_authorizer_token`` with a
  ``component_access_token``. That token needs the ``component_verify_ticket`` WeChat pushes every
  10 minutes to the authorisation-event URL (``decode_component_event`` reads those pushes); pass a
  ``verify_ticket`` callable that returns the latest one, and a ``component_token_cache`` so that
  connectors share one component token (2 h) instead of each asking for its own.

Error mapping: 40001/42001 → ``TokenExpiredSignal`` (the base class refreshes once and retries;
on token endpoints → ``TokenRejected``, an ``AuthExpired``: a refused component token is dropped
from the shared cache and fetched again once);
45009 (daily quota) and 45011 (minute quota, "retry next minute") and 10020112 (per-SKU stock
update frequency) → ``RateLimited``; -1 → ``TemporarilyUnavailable``; anything else →
``PlatformRejected``.

Receiver data: WeChat gives only masks plus ``hash_code`` in orders; ``CipherField.cipher`` stays
empty, ``mask`` holds the mask and ``index`` the ``hash_code``. Plain text comes from
``/channels/ec/order/sensitiveinfo/decode`` **by order id** (see ``decrypt``).

Shops are identified by their original id (``gh_…``), which ``/channels/ec/basics/info/get``
reports and every push carries as ``ToUserName``.

The package splits the connector by area (``api``: constants, signing and envelopes; ``auth``,
``orders``, ``shipping``, ``stock``, ``aftersales``, ``buyer``: one mixin each; ``connector``:
the class with its transport; ``push``: the codec); this module re-exports the public names.
"""

from __future__ import annotations

from channels.connectors.wechat.aftersales import AFTERSALE_STATUSES, AFTERSALE_TYPES
from channels.connectors.wechat.api import (
    AFTERSALE_WINDOW,
    AUTH_ERRORS,
    ORDER_PAGE_SIZE,
    PRODUCT_PAGE_SIZE,
    SHANGHAI,
    TOKEN_ERRORS,
)
from channels.connectors.wechat.auth import COMPONENT_TOKEN_MARGIN, ComponentTokenCache, TokenRejected
from channels.connectors.wechat.buyer import DECODE_FIELDS, RECEIVER_RULES
from channels.connectors.wechat.connector import WechatConnector
from channels.connectors.wechat.orders import BLOCKED, STATUS_MAP, line_id, split_line_id
from channels.connectors.wechat.push import (
    MAX_XML_BYTES,
    ComponentEvent,
    WechatPushCodec,
    decode_component_event,
    decrypt_push,
    open_secure_message,
)
from channels.connectors.wechat.tracking import push_tracking

CONNECTOR = WechatConnector
PUSH_CODEC = WechatPushCodec
PUSH_TRACKING = push_tracking  # logistics pushes (add_express_path) → (carrier code, tracking no, events)

__all__ = [
    "RECEIVER_RULES",
    "AFTERSALE_STATUSES",
    "AFTERSALE_TYPES",
    "AFTERSALE_WINDOW",
    "AUTH_ERRORS",
    "BLOCKED",
    "COMPONENT_TOKEN_MARGIN",
    "ComponentEvent",
    "ComponentTokenCache",
    "DECODE_FIELDS",
    "MAX_XML_BYTES",
    "ORDER_PAGE_SIZE",
    "PRODUCT_PAGE_SIZE",
    "SHANGHAI",
    "STATUS_MAP",
    "TOKEN_ERRORS",
    "TokenRejected",
    "WechatConnector",
    "WechatPushCodec",
    "decode_component_event",
    "decrypt_push",
    "line_id",
    "open_secure_message",
    "split_line_id",
    "CONNECTOR",
    "PUSH_CODEC",
    "PUSH_TRACKING",
]

"""One connector interface (``base.Connector``), one implementation per platform.

Platform modules register their connector and push codec here; the rest of the channel
layer asks ``connector_class`` / ``push_codec`` by platform.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from channels.connectors.scrub import for_display, scrub
from channels.types import Platform, TrackingEvent

_MODULES = {
    Platform.DOUYIN: "channels.connectors.douyin",
    Platform.KUAISHOU: "channels.connectors.kuaishou",
    Platform.WECHAT: "channels.connectors.wechat",
}


def connector_class(platform: str):
    module = import_module(_MODULES[Platform(platform)])
    return module.CONNECTOR


def push_codec(platform: str):
    module = import_module(_MODULES[Platform(platform)])
    return module.PUSH_CODEC()


def push_tracking(platform: str, payload: dict[str, Any]) -> tuple[str, str, list[TrackingEvent]] | None:
    """(carrier code, tracking number, events) of a decoded logistics push (``PushMessage`` of
    kind ``logistics``), or None where the platform pushes no logistics changes."""
    module = import_module(_MODULES[Platform(platform)])
    decode = getattr(module, "PUSH_TRACKING", None)
    return decode(payload) if decode else None


def scrub_payload(platform: str, payload: Any) -> Any:
    """``payload`` (an order, after-sale or push message of ``platform``) without plaintext
    receiver values: see ``channels.connectors.scrub``."""
    module = import_module(_MODULES[Platform(platform)])
    return scrub(payload, module.RECEIVER_RULES)


def display_payload(platform: str, payload: Any) -> Any:
    """A stored payload of ``platform`` as shown to people: no plaintext receiver values, no
    ciphertexts, no buyer open ids or nicknames (``channels.connectors.scrub.for_display``)."""
    module = import_module(_MODULES[Platform(platform)])
    return for_display(payload, module.RECEIVER_RULES)

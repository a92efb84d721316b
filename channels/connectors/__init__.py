"""One connector interface (``base.Connector``), one implementation per platform.

Platform modules register their connector and push codec here; the rest of the channel
layer asks ``connector_class`` / ``push_codec`` by platform.
"""

from __future__ import annotations

from importlib import import_module

from channels.types import Platform

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

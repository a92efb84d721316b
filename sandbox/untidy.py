"""Seeded untidiness: the irregular shapes real platform payloads show.

The platforms' answers are not as tidy as their documentation: ids arrive as numbers in
one place and strings in another, optional fields are missing, enums are strings, old
orders carry fields new ones do not, ciphertexts come in more than one format. The
sandbox serves such shapes on purpose, so a connector meets them in CI.

Each variation has a name (``<platform>.<what>``) and a **rate**: the share of the
records (orders, lines, events…) that show it. Whether a given record shows it is a
deterministic function of the world seed, the variation and the record's key
(``hit(world, name, key)``), so the same seed serves the same payloads every time, and a
record keeps its shape from one call to the next.

Everything is on by default (``DEFAULT_RATES`` = ``FULL_RATES``). The knob is the world setting
``untidy`` — a dict of overrides, ``"*"`` for all: ``set_rates(world, {"*": 0})`` makes
the sandbox tidy again, ``set_rates(world, {"douyin.cipher_2024": 0})`` turns one
variation off (CLI: ``python -m sandbox untidy --off`` / ``--set name=rate``). A running
server sees a change within a second. Seed-time variations (``wechat.chinese_sku_code``)
are read when the world is seeded.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from .world import World

SETTING = "untidy"

# name -> (default rate, what it does). Rates are shares of the keyed records.
VARIATIONS: dict[str, tuple[float, str]] = {
    # Buyers (key: order id)
    "world.same_address_change": (0.3, "address changes that re-save the same receiver (re-encrypted)"),
    # Douyin (keys: order id, line id, event id)
    "douyin.cipher_2024": (0.5, "orders whose ciphertexts use the 2024 format ##…*…#1## / $$…*…$1$$"),
    "douyin.line_receiver": (1.0, "sku orders carry the receiver fields (encrypt_*, mask_*, post_addr)"),
    "douyin.open_address_id": (1.0, "orders carry open_address_id (receiver + address identity)"),
    "douyin.string_enums": (1.0, 'enums as strings: sku orders carry theme_type "1" (and content_id "0")'),
    "douyin.plaintext_receiver": (
        0.05,
        "older orders with plaintext post_receiver / post_tel / post_addr.detail",
    ),
    "douyin.string_ids": (0.3, "pushes with p_id / s_ids / shop_id as strings instead of numbers"),
    "douyin.missing_optional": (
        0.3,
        "orders without the optional order_phase_list / shop_order_tag_ui / ...",
    ),
    "douyin.trace_int_times": (0.3, "trace nodes with timestamp as a number (the SDK types it as a string)"),
    "douyin.trace_no_site": (0.3, "trace nodes without site_name"),
    "douyin.aftersale_sparse": (
        0.3,
        "after-sales (key: after-sale id) with aftersale_id / related_id as numbers, no evidence / reason_code",
    ),
    # Kuaishou (keys: oid, event id)
    "kuaishou.field_markers": (0.8, "orders whose ciphertexts use #name#…#1##, $mobile$…$1$, ~address~…~1~~"),
    "kuaishou.express_code_string": (0.5, "orderLogisticsInfo.expressCode as a string"),
    "kuaishou.city_code_4digit": (0.5, "orders whose cityCode has 4 digits (3301, not 330100)"),
    "kuaishou.ms_times": (1.0, "millisecond times with non-zero milliseconds"),
    "kuaishou.empty_plain_address": (1.0, "orders with empty plain consignee / mobile / address fields"),
    "kuaishou.no_delivery_info": (0.5, "fully shipped orders (status >= 40) without orderDeliveryInfo"),
    "kuaishou.string_ids": (0.3, "pushes with oid / bizId as strings"),
    "kuaishou.missing_optional": (
        0.3,
        "orders without the optional orderNote / orderCpsInfo / orderStepInfo",
    ),
    "kuaishou.trace_text_times": (
        0.5,
        "trace nodes with operateTime as Beijing-time text 'yyyy-MM-dd HH:mm:ss' instead of epoch ms",
    ),
    "kuaishou.trace_no_city": (0.3, "trace nodes without city"),
    "kuaishou.aftersale_sparse": (
        0.3,
        "refunds (key: refund id) with refundId / oid as strings, without pictures / refundReason",
    ),
    "kuaishou.dropship_sparse": (
        0.5,
        "dropship orders without the optional logistics list / itemList fields",
    ),
    # WeChat (keys: order id, event id, line id)
    "wechat.string_ids": (0.5, "order_id and pay_time as strings (else numbers) in events and order/get"),
    "wechat.no_hash_code": (0.5, "orders without address_info.hash_code (as in the published samples)"),
    "wechat.chinese_sku_code": (1.0, "seed time: a product with Chinese merchant codes on every WeChat shop"),
    "wechat.no_real_price": (0.2, "product_infos lines without real_price"),
    "wechat.plaintext_address": (0.05, "older orders with doc-sample style plaintext address_info"),
    "wechat.missing_optional": (0.3, "orders without the optional ext_info / settle_info / refund_info"),
    "wechat.trace_string_times": (0.5, "logistics path items (and pushes) with action_time as a string"),
    "wechat.dropship_numbers": (0.5, "dropship orders with ds_order_id / order_id / sku ids as numbers"),
    "wechat.aftersale_sparse": (
        0.5,
        "after-sales (key: after-sale id) with after_sale_order_id / order_id as numbers, no details",
    ),
    "wechat.dropship_sparse": (0.3, "dropship orders without the optional supplier_name / delivery_deadline"),
}
# Variations a test can switch off for a tidy world (none: every variation is served by default;
# the connectors and their tests meet each one).
OFF_BY_DEFAULT: frozenset[str] = frozenset()
FULL_RATES: dict[str, float] = {name: rate for name, (rate, _) in VARIATIONS.items()}
DEFAULT_RATES: dict[str, float] = {
    name: 0.0 if name in OFF_BY_DEFAULT else r for name, r in FULL_RATES.items()
}

_CACHE_SECONDS = 1.0


def set_rates(world: World, overrides: dict[str, float] | None) -> None:
    """Store overrides (``{"*": 0}`` = all off; ``None`` = back to the defaults)."""
    if not overrides:
        world.delete_settings(SETTING)
        return
    unknown = [name for name in overrides if name != "*" and name not in VARIATIONS]
    if unknown:
        raise ValueError(f"unknown variation(s): {', '.join(unknown)}")
    current = dict(world.get_setting(SETTING, {}) or {})
    if "*" in overrides:
        current = {}
    current.update({k: float(v) for k, v in overrides.items()})
    world.set_setting(SETTING, current)


def rates(world: World) -> dict[str, float]:
    """Effective rate of every variation (defaults, then ``*``, then per-name overrides)."""
    cache: tuple[float, tuple[int, str], dict[str, float]] | None = getattr(world, "_untidy_cache", None)
    now = time.monotonic()
    if cache is not None:
        checked, version, cached = cache
        if now - checked < _CACHE_SECONDS and version[0] == world._settings_version:
            return cached
        current = world.settings_version()
        if current == version:
            world._untidy_cache = (now, version, cached)  # type: ignore[attr-defined]
            return cached
    version = world.settings_version()
    overrides: dict[str, Any] = world.get_setting(SETTING, {}) or {}
    effective = dict(DEFAULT_RATES)
    if "*" in overrides:
        effective = dict.fromkeys(effective, float(overrides["*"]))
    for name, value in overrides.items():
        if name in effective:
            effective[name] = float(value)
    world._untidy_cache = (now, version, effective)  # type: ignore[attr-defined]
    return effective


def fraction(world: World, name: str, key: Any) -> float:
    """A deterministic number in [0, 1) for (seed, variation, key)."""
    digest = hashlib.sha256(f"{world.seed}:{name}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def hit(world: World, name: str, key: Any) -> bool:
    """Whether the record ``key`` shows variation ``name`` (deterministic per seed)."""
    rate = rates(world)[name]
    return rate > 0 and (rate >= 1 or fraction(world, name, key) < rate)

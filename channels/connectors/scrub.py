"""Receiver data in the platform payloads ecbao keeps: ciphertexts and masks only.

PRODUCT.md "Buyer data": no plaintext name, phone or address in the database, logs or tasks.
The platforms normally send receivers as ciphertext + mask, but not always: older Douyin orders
carry plaintext ``post_tel`` / ``post_receiver`` / ``post_addr.detail``, the WeChat doc samples a
plaintext ``address_info``. Every payload that is stored (order versions, after-sales, push
messages) goes through ``scrub`` with its platform's ``ReceiverRules`` first.

The rules are an allow-list per receiver object (``containers``: e.g. Douyin ``post_addr``,
Kuaishou ``orderAddress``, WeChat ``address_info``): inside one, only the ``allowed`` keys
(regions, region codes, ciphertext and mask fields, the platform's identity) are kept as
they are. Every other value there, and the ``plain`` receiver keys wherever they appear,
stays only when it is empty, a mask or a ciphertext; otherwise it is replaced by its mask
(``masks``: the sibling mask field) or dropped. JSON held as text (Douyin's push ``data``) is
scrubbed inside. ``scrub`` returns a new payload and is idempotent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MASK_CHARS = ("*", "＊")
# ``#…#…#1##``, ``$…$…$1$$``, ``~…~…~1~~``, Kuaishou's ``$mobile$…$1$`` — a marker, segments, a
# version, the marker closing; the payload segment is long and has no spaces.
_CIPHER = re.compile(r"^([#$~])[^\s]*\1[^\s]{8,}\1[^\s]*\1$")


def masked(value: Any) -> str:
    """``value`` when it is a mask (holds ``*``), else "" (plaintext never passes)."""
    text = value if isinstance(value, str) else ""
    return text if any(ch in text for ch in MASK_CHARS) else ""


def mask_of(kind: str, plaintext: Any) -> str:
    """A mask of ``plaintext`` as the platforms make them: a phone keeps its first 3 and last 4
    digits (183****0293), a name its first character (张**), an address its first 3 characters
    (文三路****); "" for any other kind or a value too short to mask."""
    text = plaintext.strip() if isinstance(plaintext, str) else str(plaintext or "")
    if kind == "phone":
        digits = "".join(ch for ch in text if ch.isdigit())
        return digits[:3] + "****" + digits[-4:] if len(digits) >= 8 else ""
    if kind == "name" and len(text) >= 2:
        return text[0] + "*" * (len(text) - 1)
    if kind == "address" and len(text) >= 4:
        return text[:3] + "****"
    return ""


def looks_like_cipher(value: str) -> bool:
    return bool(_CIPHER.match(value))


@dataclass(frozen=True)
class ReceiverRules:
    """Where one platform's payloads carry receiver data (see the module docstring)."""

    containers: frozenset[str]
    allowed: frozenset[str]
    plain: frozenset[str] = frozenset()
    masks: Mapping[str, str] = field(default_factory=dict)
    # Plaintext fields that have no mask beside them (WeChat keeps its masks in the plaintext
    # fields' own names): the plaintext becomes a mask made the platforms' way ("name", "phone",
    # "address"; ``mask_of``) instead of being dropped, so the order still shows whom it is for.
    derive: Mapping[str, str] = field(default_factory=dict)


def scrub(payload: Any, rules: ReceiverRules) -> Any:
    """A copy of ``payload`` without plaintext receiver values (dicts and lists walked)."""
    return _walk(payload, rules, container=False)


def _walk(value: Any, rules: ReceiverRules, *, container: bool) -> Any:
    if isinstance(value, list):
        return [_walk(item, rules, container=container) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[Any, Any] = {}
    for key, item in value.items():
        if isinstance(item, (dict, list)):
            inside = (container and key not in rules.allowed) or key in rules.containers
            out[key] = _walk(item, rules, container=inside)
            continue
        sensitive = key in rules.plain or (container and key not in rules.allowed)
        if not sensitive and isinstance(item, str) and item[:1] in ("{", "["):  # JSON text (Douyin push data)
            out[key] = _walk_json_text(item, rules, container=container)
            continue
        if not sensitive or _harmless(item):
            out[key] = item
            continue
        mask = masked(value.get(rules.masks.get(key, ""))) or mask_of(rules.derive.get(key, ""), item)
        if mask:
            out[key] = mask
    return out


def _walk_json_text(text: str, rules: ReceiverRules, *, container: bool) -> str:
    """A JSON object or array held as text, scrubbed (the same text when nothing changed)."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return text
    scrubbed = _walk(parsed, rules, container=container)
    return text if scrubbed == parsed else json.dumps(scrubbed, ensure_ascii=False, separators=(",", ":"))


def _harmless(item: Any) -> bool:
    """Empty, a flag, a mask or a ciphertext (a number in a receiver field is a phone number or
    a code nobody allowed: not harmless)."""
    if item is None or isinstance(item, bool) or item == "":
        return True
    return isinstance(item, str) and (bool(masked(item)) or looks_like_cipher(item))


# Buyer identities a person reading a stored payload has no need of (platform open ids, union
# ids, nicknames), whatever the platform calls them; a SKU's "nick" is the product's, not a buyer's.
_IDENTITY_KEY = re.compile(r"(open_?u?id|union_?id|nick_?name|nick|buyer_?id)$", re.IGNORECASE)
CIPHERTEXT_SHOWN = "«密文»"
IDENTITY_SHOWN = "«已隐藏»"


def for_display(payload: Any, rules: ReceiverRules) -> Any:
    """``payload`` as a person may read it: scrubbed (``scrub``), every ciphertext replaced by
    ``CIPHERTEXT_SHOWN`` (plaintext comes only from the audited decrypt, one field at a time) and
    buyer open ids and nicknames by ``IDENTITY_SHOWN``. Masks, regions and everything else stay."""
    return _hide(scrub(payload, rules))


def _hide(value: Any, key: str = "") -> Any:
    if isinstance(value, list):
        return [_hide(item, key) for item in value]
    if isinstance(value, dict):
        return {k: _hide(item, k if isinstance(k, str) else "") for k, item in value.items()}
    if value in (None, "") or isinstance(value, bool):
        return value
    if key and not key.lower().startswith(("sku", "seller", "shop")) and _IDENTITY_KEY.search(key):
        return IDENTITY_SHOWN
    if isinstance(value, str):
        if looks_like_cipher(value):
            return CIPHERTEXT_SHOWN
        if value[:1] in ("{", "["):  # JSON held as text (Douyin push data)
            try:
                parsed = json.loads(value)
            except ValueError:
                return value
            return json.dumps(_hide(parsed), ensure_ascii=False, separators=(",", ":"))
    return value

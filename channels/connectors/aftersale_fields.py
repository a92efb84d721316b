"""Lenient readers shared by the three connectors' after-sale mappings.

Platform after-sale payloads are untidy: ids come as numbers or strings, optional blocks are
missing or ``null``, times are epoch seconds or milliseconds, image lists are plain links,
``{"url": …}`` objects or one comma-separated string. These helpers read such fields without
raising; ``require`` turns a missing mandatory field into a clear ``TemporarilyUnavailable``
("malformed") instead of a ``KeyError`` deep in a mapping.

Carrier codes: answers (exchange shipping, intercept) take ``carrier_code`` as either the
platform's own code or ecbao's neutral carrier key (``zto``, ``sf`` …); ``platform_carrier``
turns a neutral key into the platform's code and passes anything else through.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from channels import carriers
from channels.connectors.base import as_id, epoch_any
from channels.errors import TemporarilyUnavailable
from channels.types import Platform


def require(payload: Any, *names: str, what: str = "after-sale") -> str:
    """The first of ``names`` present (as an id string) in ``payload``; raises
    TemporarilyUnavailable naming the payload when it is not a mapping or has none of them."""
    if not isinstance(payload, dict):
        raise TemporarilyUnavailable(f"malformed {what}: {type(payload).__name__} instead of an object")
    for name in names:
        value = as_id(payload.get(name))
        if value:
            return value
    raise TemporarilyUnavailable(f"malformed {what}: no {'/'.join(names)}")


def deadline_of(value: Any) -> datetime | None:
    """A platform deadline in epoch seconds or milliseconds (number or digits); 0, missing or
    unreadable → None."""
    return epoch_any(value)


def image_links(*values: Any) -> tuple[str, ...]:
    """Image links from any of ``values``: lists of links or of ``{"url"|"pic_url"|"image": …}``
    objects, or comma-separated strings; http(s) links only, in order, without repeats."""
    out: list[str] = []

    def add(text: Any) -> None:
        link = str(text or "").strip()
        if link.startswith(("http://", "https://")) and link not in out:
            out.append(link)

    for value in values:
        if isinstance(value, str):
            for part in value.split(","):
                add(part)
        elif isinstance(value, list | tuple):
            for entry in value:
                if isinstance(entry, dict):
                    add(entry.get("url") or entry.get("pic_url") or entry.get("image") or entry.get("link"))
                else:
                    add(entry)
    return tuple(out)


def platform_carrier(platform: Platform | str, carrier_code: str) -> str:
    """The platform's code for a neutral carrier key; any other code is passed through."""
    if carrier_code in carriers.CARRIERS:
        return carriers.code_for(platform, carrier_code) or carrier_code
    return carrier_code


def neutral_carrier(platform: Platform | str, *, code: Any = "", name: Any = "") -> str:
    """ecbao's carrier key for a platform code or carrier name ("" when unknown)."""
    text = str(code or "").strip()
    key = carriers.key_of(platform, text) if text else ""
    if not key and text and text in carriers.CARRIERS:
        key = text
    return key or (carriers.key_by_name(str(name)) if name else "")

"""The one carrier-code table: ecbao's neutral carrier keys and what each platform calls them.

A neutral key (``zto``, ``yunda``, ``sf`` …) is what the rest of ecbao stores. The platforms
name carriers differently, and their shipping and e-waybill APIs differ too:

- WeChat: upper-case letters; the e-waybill ``delivery_id`` differs from the shipping one for
  Yunda (shipping ``YD``, e-waybill ``YUNDA``) [platform-apis §3.5, §3.10];
- Kuaishou: shipping takes an **integer** ``expressCode`` (official list, §2.5); the e-waybill
  API takes a **string** ``expressCompanyCode`` (``ZTO``, ``YUNDA`` … [GUESS §2.10]);
- Douyin: lower-case slugs (``zhongtong`` …) that must be **read from the platform**
  (``/order/logisticsCompanyList``): the slugs below are only what we expect, used when a
  shop's list has not been read yet; ``resolve_listed`` maps the platform's list to neutral
  keys by the carrier's Chinese name, and callers keep that per store.

Child waybills (子母件: one parent number, more pieces under it) exist only for some carriers
on some platforms (WeChat ``addsuborder``: SF, DBKD, JD …; Kuaishou ``ebill.append``: SF only;
Douyin ``appendSubOrder``) — ``child_waybills`` says where.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from channels.types import Carrier, Platform


@dataclass(frozen=True)
class CarrierInfo:
    key: str  # neutral key stored by ecbao
    name: str  # Chinese name shown to people
    wechat: str = ""  # WeChat shipping delivery_id
    wechat_ewaybill: str = ""  # WeChat e-waybill delivery_id
    kuaishou: int = 0  # Kuaishou shipping expressCode
    kuaishou_ebill: str = ""  # Kuaishou e-waybill expressCompanyCode
    douyin: str = ""  # expected Douyin slug; the platform's own list wins
    aliases: tuple[str, ...] = ()  # other names platforms use for this carrier
    child_waybills: frozenset[Platform] = field(default_factory=frozenset)

    def code(self, platform: Platform | str, *, ewaybill: bool = False) -> str:
        """This carrier's code on ``platform`` (shipping or e-waybill); "" when it has none."""
        platform = Platform(platform)
        if platform is Platform.WECHAT:
            return self.wechat_ewaybill if ewaybill else self.wechat
        if platform is Platform.KUAISHOU:
            if ewaybill:
                return self.kuaishou_ebill
            return str(self.kuaishou) if self.kuaishou else ""
        return self.douyin


CARRIERS: dict[str, CarrierInfo] = {
    c.key: c
    for c in (
        CarrierInfo("zto", "中通快递", "ZTO", "ZTO", 9, "ZTO", "zhongtong"),
        CarrierInfo("yto", "圆通速递", "YTO", "YTO", 6, "YTO", "yuantong", ("圆通快递",)),
        CarrierInfo("yunda", "韵达快递", "YD", "YUNDA", 11, "YUNDA", "yunda", ("韵达速递",)),
        CarrierInfo("sto", "申通快递", "STO", "STO", 3, "STO", "shentong"),
        CarrierInfo("jtexpress", "极兔速递", "JTSD", "JTSD", 109, "JT", "jtexpress", ("极兔快递", "百世快递")),
        CarrierInfo("sf", "顺丰速运", "SF", "SF", 4, "SF", "shunfeng", ("顺丰快递", "顺丰"),
                    frozenset({Platform.WECHAT, Platform.KUAISHOU, Platform.DOUYIN})),
        CarrierInfo("ems", "EMS", "EMS", "EMS", 2, "EMS", "ems", ("中国邮政EMS", "邮政EMS")),
        CarrierInfo("post", "邮政快递包裹", "YZPY", "YZPY", 8, "POSTB", "youzhengguonei", ("邮政包裹", "中国邮政")),
        CarrierInfo("jd", "京东物流", "JD", "JD", 14, "JD", "jd", ("京东快递", "京东"),
                    frozenset({Platform.WECHAT, Platform.DOUYIN})),
        CarrierInfo("deppon", "德邦快递", "DBKD", "DBKD", 53, "DBKD", "debangwuliu", ("德邦物流", "德邦"),
                    frozenset({Platform.WECHAT, Platform.DOUYIN})),
        CarrierInfo("cainiao", "菜鸟速递", "", "", 113, "", "cainiao", ("丹鸟",)),
    )
}  # fmt: skip

_SUFFIX = re.compile(r"(快递|速递|速运|物流|股份有限公司|有限公司)$")


def _norm(name: str) -> str:
    name = name.strip().replace(" ", "")
    for _ in range(2):
        name = _SUFFIX.sub("", name)
    return name.upper()


_BY_NAME = {_norm(n): c.key for c in CARRIERS.values() for n in (c.name, *c.aliases)}


def get(key: str) -> CarrierInfo:
    """The carrier with neutral ``key``; KeyError for an unknown key."""
    return CARRIERS[key]


def name_of(key: str) -> str:
    info = CARRIERS.get(key)
    return info.name if info else key


def key_by_name(name: str) -> str:
    """The neutral key of a carrier a platform names ``name`` ("" when unknown). Only
    exact names after dropping 快递/速递/物流 suffixes count: 中通快运 is not 中通快递."""
    return _BY_NAME.get(_norm(name), "")


def key_of(platform: Platform | str, code: str, *, ewaybill: bool = False) -> str:
    """The neutral key of a platform carrier code from the table ("" when unknown)."""
    code = str(code)
    for info in CARRIERS.values():
        if code and info.code(platform, ewaybill=ewaybill) == code:
            return info.key
        # WeChat and Kuaishou take the other kind of code leniently: try both
        if code and info.code(platform, ewaybill=not ewaybill) == code:
            return info.key
    return ""


def code_for(
    platform: Platform | str, key: str, *, ewaybill: bool = False, listed: dict[str, str] | None = None
) -> str:
    """The code ``platform`` wants for carrier ``key``. ``listed`` is the store's own
    key → code map read from the platform (Douyin's slugs), which wins over the table."""
    if listed and listed.get(key):
        return listed[key]
    info = CARRIERS.get(key)
    return info.code(platform, ewaybill=ewaybill) if info else ""


def shipping_code(platform: Platform | str, key: str, *, ewaybill_code: str = "") -> str:
    """The code ``ship()`` wants for a parcel of carrier ``key`` whose waybill was taken with
    ``ewaybill_code``: on Douyin the e-waybill and shipping APIs share the platform's slugs
    (read from the shop's own list), so the waybill's code wins; elsewhere the table's shipping
    code (WeChat Yunda ships as ``YD`` though its e-waybill is ``YUNDA``; Kuaishou ships with an
    integer)."""
    if Platform(platform) is Platform.DOUYIN and ewaybill_code:
        return ewaybill_code
    return code_for(platform, key) or ewaybill_code


def child_waybills(platform: Platform | str, key: str) -> bool:
    """Whether ``platform`` hands out child waybills (子母件) for carrier ``key``."""
    info = CARRIERS.get(key)
    return bool(info and Platform(platform) in info.child_waybills)


def resolve_listed(carriers: list[Carrier]) -> dict[str, str]:
    """Neutral key → platform code for a platform's carrier list (``Connector.list_carriers``),
    matched by name; carriers whose name is not in the table are left out."""
    out: dict[str, str] = {}
    for c in carriers:
        key = key_by_name(c.name)
        if key and key not in out and c.code:
            out[key] = c.code
    return out


def choices() -> list[tuple[str, str]]:
    """(key, Chinese name) pairs for forms."""
    return [(c.key, c.name) for c in CARRIERS.values()]


__all__ = [
    "CARRIERS",
    "CarrierInfo",
    "child_waybills",
    "choices",
    "code_for",
    "get",
    "key_by_name",
    "key_of",
    "name_of",
    "resolve_listed",
    "shipping_code",
]

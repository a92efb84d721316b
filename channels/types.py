"""Neutral data the channel layer hands to the rest of ecbao.

Nothing here names a platform field. Money is integer fen, times are aware UTC datetimes,
platform ids are strings. Receiver data is only ever the platform's ciphertext, its mask
and (where the platform gives one) its search index — never plaintext.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from datetime import datetime
from typing import Any

import orjson


class Platform(enum.StrEnum):
    DOUYIN = "douyin"
    KUAISHOU = "kuaishou"
    WECHAT = "wechat"

    @property
    def label(self) -> str:
        return {"douyin": "抖店", "kuaishou": "快手小店", "wechat": "微信小店"}[self.value]


class OrderStatus(enum.StrEnum):
    """The platform's order status mapped to one neutral progression."""

    UNPAID = "unpaid"
    PAID = "paid"  # paid, waiting to ship (incl. under platform risk review: see flags)
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"
    COMPLETED = "completed"  # received / finished
    CANCELLED = "cancelled"  # cancelled before payment, timed out, or fully refunded

    @property
    def rank(self) -> int:
        """Progression used to refuse stale updates with equal timestamps."""
        return _STATUS_RANK[self]


_STATUS_RANK = {
    OrderStatus.UNPAID: 0,
    OrderStatus.PAID: 1,
    OrderStatus.PARTIALLY_SHIPPED: 2,
    OrderStatus.SHIPPED: 3,
    OrderStatus.COMPLETED: 4,
    OrderStatus.CANCELLED: 5,
}


class AfterSaleType(enum.StrEnum):
    REFUND_ONLY = "refund_only"
    RETURN_REFUND = "return_refund"
    EXCHANGE = "exchange"
    RESHIP = "reship"
    OTHER = "other"


class AfterSaleStatus(enum.StrEnum):
    WAITING_MERCHANT = "waiting_merchant"
    WAITING_BUYER_RETURN = "waiting_buyer_return"
    WAITING_MERCHANT_RECEIPT = "waiting_merchant_receipt"
    REFUNDING = "refunding"
    SUCCEEDED = "succeeded"
    REJECTED = "rejected"
    CLOSED = "closed"


@dataclass(frozen=True)
class CipherField:
    """One receiver field as the platform gives it: ciphertext, mask and search index."""

    cipher: str = ""
    mask: str = ""
    index: str = ""


@dataclass(frozen=True)
class Receiver:
    name: CipherField
    phone: CipherField
    address: CipherField  # the detail line; region names below are not personal data
    province: str = ""
    city: str = ""
    district: str = ""
    town: str = ""
    #: the receiver identity the platform gives for merging (Douyin ``open_address_id``,
    #: WeChat ``hash_code``); "" when it gives none
    identity: str = ""

    def fingerprint(self) -> str:
        """Key for "same receiver" (auto-merge), only from what the platform provides: its
        receiver identity, else the three fields' platform search indexes; "" (never merge
        automatically) without either. Masks and regions are shared by many buyers, and a
        ciphertext changes from order to order (and between versions of one order)."""
        if self.identity:
            return f"id:{self.identity}"
        indexes = [f.index for f in (self.name, self.phone, self.address)]
        if not all(indexes):
            return ""
        return "|".join([*indexes, self.province, self.city, self.district])


@dataclass(frozen=True)
class ChannelOrderLine:
    platform_line_id: str  # Douyin sku order id; Kuaishou oid; WeChat product_id:sku_id
    platform_product_id: str
    platform_sku_id: str
    merchant_code: str  # 商家编码 as the platform carries it (Douyin code, Kuaishou skuNick, WeChat sku_code)
    title: str
    spec: str
    quantity: int
    unit_price_fen: int
    paid_fen: int
    is_gift: bool = False
    refund_state: str = ""  # neutral: "" | "refunding" (after-sale in progress) | "refunded" (money returned)


@dataclass(frozen=True)
class Package:
    """A shipped parcel as the platform records it."""

    tracking_no: str
    carrier_code: str
    platform_package_id: str = ""
    lines: tuple[tuple[str, int], ...] = ()  # (platform_line_id, quantity)


@dataclass(frozen=True)
class ChannelOrder:
    platform: Platform
    platform_shop_id: str
    platform_order_id: str
    platform_status: str
    status: OrderStatus
    created_at: datetime
    updated_at: datetime
    lines: tuple[ChannelOrderLine, ...]
    receiver: Receiver
    buyer_id: str = ""
    paid_at: datetime | None = None
    ship_by: datetime | None = None
    shipped_at: datetime | None = None
    finished_at: datetime | None = None
    goods_fen: int = 0
    freight_fen: int = 0
    discount_fen: int = 0
    paid_fen: int = 0
    buyer_remark: str = ""
    seller_remark: str = ""
    ship_blocked_reason: str = ""  # platform forbids shipping now (risk review, group buy …)
    packages: tuple[Package, ...] = ()
    #: the platform's own payload, kept verbatim as a snapshot (ciphertexts and masks only)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def to_json_text(self) -> str:
        """The normalised order as JSON text (``raw`` left empty: the payload is stored beside
        it), serialised by orjson — dataclasses, enums and aware datetimes natively."""
        return orjson.dumps(replace(self, raw={})).decode()

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values of ``to_json_text``, without ``raw``."""
        data = orjson.loads(self.to_json_text())
        data.pop("raw", None)
        return data


@dataclass(frozen=True)
class AfterSaleItem:
    """One order line an after-sale covers (Douyin ``related_order_info``; Kuaishou and WeChat
    name one line)."""

    platform_line_id: str
    quantity: int = 0  # 0 = the platform does not say
    refund_fen: int = 0
    merchant_code: str = ""
    platform_sku_id: str = ""


@dataclass(frozen=True)
class AfterSale:
    platform: Platform
    platform_shop_id: str
    platform_after_sale_id: str
    platform_order_id: str
    platform_line_id: str
    type: AfterSaleType
    status: AfterSaleStatus
    platform_status: str
    refund_fen: int
    quantity: int
    reason: str
    created_at: datetime
    updated_at: datetime
    return_tracking_no: str = ""
    return_carrier: str = ""
    #: the platform's live deadline of the current step (Douyin ``status_deadline``, Kuaishou
    #: ``expireTime``, WeChat ``deadline``): auto-approval / auto-close when the merchant is silent
    deadline: datetime | None = None
    #: the version to send back with an answer (Douyin ``update_time`` guard); "" elsewhere
    version: str = ""
    platform_type: str = ""  # the platform's own type code / word
    reason_code: str = ""
    refund_status: str = ""  # the platform's refund state, as given
    #: did the goods ship before the buyer applied, as the platform says (Douyin types 1/2); None: unsaid
    shipped: bool | None = None
    evidence: tuple[str, ...] = ()  # the buyer's images, as links
    items: tuple[AfterSaleItem, ...] = ()  # the lines covered (empty: ``platform_line_id`` alone)
    exchange_sku_code: str = ""  # the replacement asked for (exchange)

    def to_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass(frozen=True)
class InterceptResult:
    """The platform's answer to a parcel intercept request."""

    accepted: bool
    cost_fen: int = 0  # what the carrier charges for it
    reason: str = ""  # why not, when refused


@dataclass(frozen=True)
class RejectReason:
    code: str
    text: str
    needs_evidence: bool = False


@dataclass(frozen=True)
class ReturnAddress:
    id: str
    text: str  # as the platform shows it (the merchant's own address, not buyer data)
    is_default: bool = False


@dataclass(frozen=True)
class SettlementLine:
    platform: Platform
    platform_shop_id: str
    platform_line_id: str  # the platform's flow / bill line id
    platform_order_id: str
    settled_at: datetime
    amount_fen: int  # what the merchant receives (negative for expenses)
    commission_fen: int = 0
    service_fee_fen: int = 0
    kind: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Listing:
    """A platform SKU on a shop, to be matched with a merchant SKU by code."""

    platform_product_id: str
    platform_sku_id: str
    merchant_code: str
    title: str
    spec: str
    stock: int
    price_fen: int = 0


@dataclass(frozen=True)
class PublishSku:
    """One SKU of a product being published (商品铺货): the merchant code travels to the
    platform as its SKU code, so orders and listings match back to the merchant SKU.

    ``spec`` is ``"颜色:白色;尺码:M"`` (name:value pairs) or plain values (``"白色;M"``)."""

    merchant_code: str
    spec: str
    price_fen: int
    stock: int

    def spec_pairs(self) -> list[tuple[str, str]]:
        """``spec`` as (name, value) pairs; a value without a name is named 规格/规格2/…;
        an empty spec is one value, 默认."""
        pairs: list[tuple[str, str]] = []
        for index, part in enumerate(p for p in self.spec.replace("；", ";").split(";") if p.strip()):
            name, sep, value = part.replace("：", ":").partition(":")
            if not sep:
                name, value = ("规格" if index == 0 else f"规格{index + 1}"), name
            pairs.append((name.strip(), value.strip()))
        return pairs or [("规格", "默认")]


@dataclass(frozen=True)
class PublishedProduct:
    """A product the platform created: its id and one listing per platform SKU, each
    carrying the merchant code it was published with."""

    platform_product_id: str
    skus: tuple[Listing, ...]


@dataclass(frozen=True)
class Carrier:
    code: str
    name: str


@dataclass(frozen=True)
class ShipFrom:
    """The merchant's sender address for a waybill (the merchant's own data, not a buyer's)."""

    name: str
    mobile: str
    province: str
    city: str
    district: str = ""
    street: str = ""
    detail: str = ""


@dataclass(frozen=True)
class WaybillAccount:
    """One e-waybill subscription of a shop (carrier × branch × account) as the platform lists it.

    ``carrier`` is the neutral key (``channels.carriers``; "" for a carrier outside the table),
    ``carrier_code`` the code the platform's e-waybill API wants. Counts are None where the
    platform does not report them."""

    carrier: str
    carrier_code: str
    carrier_name: str
    branch_code: str = ""
    branch_name: str = ""
    account_id: str = ""
    available: int | None = None
    allocated: int | None = None
    recycled: int | None = None
    cancelled: int | None = None
    sender: ShipFrom | None = None  # the branch's registered ship-from address, where given


@dataclass(frozen=True)
class WaybillItem:
    title: str
    quantity: int


@dataclass(frozen=True)
class WaybillRequest:
    """Take one waybill number for one parcel (``Connector.take_waybill``).

    ``key`` is ecbao's idempotency key, stable per parcel: taking again with the same key
    returns the same number and never takes a second one. ``platform_order_ids``: the orders
    packed in the parcel (several for a merged parcel, all of one shop; the receiver is the
    first order's, as platform ciphertext). ``child_count`` more numbers (子母件) under this
    one, only where ``channels.carriers.child_waybills`` says the carrier has them; otherwise
    a multi-parcel order takes one request per parcel (``parcel_index`` of ``parcel_count``)."""

    key: str
    carrier_code: str  # the platform's e-waybill code (``WaybillAccount.carrier_code``)
    platform_order_ids: tuple[str, ...]
    sender: ShipFrom
    items: tuple[WaybillItem, ...] = ()
    account_id: str = ""
    branch_code: str = ""
    parcel_index: int = 1
    parcel_count: int = 1
    child_count: int = 0
    weight_g: int = 0
    remark: str = ""


@dataclass(frozen=True)
class WaybillPrint:
    """What the platform's print component needs for one waybill (opaque, platform-encrypted)."""

    print_data: str = ""
    sign: str = ""  # Douyin ``sign`` / Kuaishou ``signature``
    key: str = ""  # Kuaishou ``key``
    template_url: str = ""


@dataclass(frozen=True)
class Waybill:
    """A waybill number taken for a parcel."""

    key: str
    tracking_no: str
    carrier: str  # neutral key
    carrier_code: str  # the platform's e-waybill carrier code
    shipping_code: str  # the carrier code ``ship()`` wants on this platform
    platform_order_ids: tuple[str, ...] = ()
    platform_waybill_id: str = ""  # WeChat ``ewaybill_order_id``
    sort_code: str = ""  # 三段码
    short_address: str = ""  # 大头笔
    package_center: str = ""  # 集包地
    print_info: WaybillPrint = field(default_factory=WaybillPrint)
    #: child numbers (子母件) taken with this one, each with its own print data
    children: tuple[Waybill, ...] = ()

    @property
    def child_tracking_nos(self) -> tuple[str, ...]:
        return tuple(c.tracking_no for c in self.children)


@dataclass(frozen=True)
class ShipmentParcel:
    """One parcel to ship: which lines, how many of each."""

    carrier_code: str
    tracking_no: str
    lines: tuple[tuple[str, int], ...] = ()  # (platform_line_id, quantity); empty = whole order


class TrackingStatus(enum.StrEnum):
    """A carrier event in neutral terms (each platform's trace states map onto these)."""

    COLLECTED = "collected"  # 揽收
    IN_TRANSIT = "in_transit"  # 运输中
    DELIVERING = "delivering"  # 派送中
    DELIVERED = "delivered"  # 签收
    EXCEPTION = "exception"  # 问题件 / 滞留 / 拒收
    RETURNED = "returned"  # 退回寄件人


@dataclass(frozen=True)
class TrackingEvent:
    """One node of a parcel's carrier trace (物流轨迹), from a pull or a push."""

    occurred_at: datetime  # aware, UTC
    status: TrackingStatus
    description: str = ""
    location: str = ""
    platform_status: str = ""  # the platform's own state code, as given


@dataclass(frozen=True)
class TokenGrant:
    access_token: str
    access_expires_at: datetime
    refresh_token: str = ""
    refresh_expires_at: datetime | None = None
    platform_shop_id: str = ""
    shop_name: str = ""


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value.value if isinstance(value, enum.Enum) else value
    if is_dataclass(value):
        return {f.name: _jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def channel_order_from_json(data: dict[str, Any]) -> ChannelOrder:
    """Rebuild a ChannelOrder from ``ChannelOrder.to_json()`` (as stored in snapshots)."""

    def cipher(d: dict[str, Any]) -> CipherField:
        return CipherField(cipher=d.get("cipher", ""), mask=d.get("mask", ""), index=d.get("index", ""))

    r = data["receiver"]
    return ChannelOrder(
        platform=Platform(data["platform"]),
        platform_shop_id=data["platform_shop_id"],
        platform_order_id=data["platform_order_id"],
        platform_status=data["platform_status"],
        status=OrderStatus(data["status"]),
        created_at=_dt(data["created_at"]),
        updated_at=_dt(data["updated_at"]),
        lines=tuple(ChannelOrderLine(**line) for line in data["lines"]),
        receiver=Receiver(
            name=cipher(r["name"]),
            phone=cipher(r["phone"]),
            address=cipher(r["address"]),
            province=r.get("province", ""),
            city=r.get("city", ""),
            district=r.get("district", ""),
            town=r.get("town", ""),
            identity=r.get("identity", ""),
        ),
        buyer_id=data.get("buyer_id", ""),
        paid_at=_dt(data.get("paid_at")),
        ship_by=_dt(data.get("ship_by")),
        shipped_at=_dt(data.get("shipped_at")),
        finished_at=_dt(data.get("finished_at")),
        goods_fen=data.get("goods_fen", 0),
        freight_fen=data.get("freight_fen", 0),
        discount_fen=data.get("discount_fen", 0),
        paid_fen=data.get("paid_fen", 0),
        buyer_remark=data.get("buyer_remark", ""),
        seller_remark=data.get("seller_remark", ""),
        ship_blocked_reason=data.get("ship_blocked_reason", ""),
        packages=tuple(
            Package(
                tracking_no=p["tracking_no"],
                carrier_code=p["carrier_code"],
                platform_package_id=p.get("platform_package_id", ""),
                lines=tuple((lid, qty) for lid, qty in p.get("lines", [])),
            )
            for p in data.get("packages", [])
        ),
    )


# --- platform-native dropship (代发: WeChat 代发管理, Kuaishou open.dropshipping) ---------------


class DropshipState(enum.StrEnum):
    """An assignment of order lines to a supplier on the platform, in neutral terms."""

    ASSIGNED = "assigned"  # the supplier has it and has not shipped
    SHIPPED = "shipped"  # the supplier shipped (the order's lines are shipped on the platform)
    CANCELLED = "cancelled"  # withdrawn by the merchant before the supplier shipped
    UNKNOWN = "unknown"  # a platform state this connector does not know


@dataclass(frozen=True)
class DropshipLine:
    """Platform-SKU units: what the listing sells (a combo SKU counts as one)."""

    platform_product_id: str
    platform_sku_id: str
    quantity: int
    shipped_quantity: int = 0
    delivery_deadline: datetime | None = None  # the platform's per-line ship-by


@dataclass(frozen=True)
class DropshipParcel:
    carrier_code: str  # the platform's code
    tracking_no: str
    shipped_at: datetime | None = None
    lines: tuple[tuple[str, str, int], ...] = ()  # (platform_product_id, platform_sku_id, quantity)


@dataclass(frozen=True)
class DropshipAssignment:
    platform: Platform
    native_id: str  # WeChat ds_order_id; Kuaishou allocateOrderCode
    platform_order_id: str
    supplier_id: str  # WeChat supplier_appid; Kuaishou factoryCode
    state: DropshipState
    platform_state: str
    lines: tuple[DropshipLine, ...] = ()
    parcels: tuple[DropshipParcel, ...] = ()
    created_at: datetime | None = None
    updated_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def same_lines(self, lines: list[tuple[str, str, int]] | tuple[tuple[str, str, int], ...]) -> bool:
        """Whether this assignment holds exactly ``lines`` ((product, sku, quantity), any order)."""
        mine: dict[tuple[str, str], int] = {}
        for line in self.lines:
            key = (line.platform_product_id, line.platform_sku_id)
            mine[key] = mine.get(key, 0) + line.quantity
        wanted: dict[tuple[str, str], int] = {}
        for product_id, sku_id, quantity in lines:
            wanted[(str(product_id), str(sku_id))] = wanted.get((str(product_id), str(sku_id)), 0) + quantity
        return mine == wanted

"""Platform-neutral records of the sandbox world.

These dataclasses are what ``world.World`` stores and returns. They know nothing
about any platform's field names or status codes: ``douyin.py`` (and later
``kuaishou.py`` / ``wechat.py``) translate them into each platform's shapes.

Conventions: ids are strings; times are integer Unix seconds; money is integer
fen (``*_fen``); receiver PII is stored in plaintext here and only leaves the
sandbox masked or encrypted (see ``pii.py``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

PLATFORMS = ("douyin", "kuaishou", "wechat")

T = TypeVar("T")


class OrderStatus(StrEnum):
    """Neutral order life cycle: unpaid → paid → (part_)shipped → received → completed; or cancelled."""

    UNPAID = "unpaid"
    PAID = "paid"
    PART_SHIPPED = "part_shipped"
    SHIPPED = "shipped"
    RECEIVED = "received"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class AfterSaleType(StrEnum):
    REFUND_UNSHIPPED = "refund_unshipped"  # refund only, before shipment
    REFUND_SHIPPED = "refund_shipped"  # refund only, after shipment (no goods back)
    RETURN_REFUND = "return_refund"  # goods back, then refund
    EXCHANGE = "exchange"  # goods back, replacement shipped
    RESHIP = "reship"  # 补寄: the merchant sends what was missing (Douyin 7, Kuaishou 4; WeChat has none)


class AfterSaleStatus(StrEnum):
    WAIT_SELLER_AGREE = "wait_seller_agree"  # applied, merchant must approve
    WAIT_BUYER_RETURN = "wait_buyer_return"  # approved, buyer must send goods back
    WAIT_SELLER_CONFIRM = "wait_seller_confirm"  # goods on their way back / arrived: second approval
    WAIT_BUYER_RECEIVE = "wait_buyer_receive"  # exchange: replacement shipped
    WAIT_SELLER_SHIP = "wait_seller_ship"  # reissue approved: the merchant must send the parcel
    SUCCESS = "success"  # refund paid
    EXCHANGE_SUCCESS = "exchange_success"
    SELLER_REJECTED = "seller_rejected"  # first approval rejected
    SELLER_REJECTED_SECOND = "seller_rejected_second"  # rejected after the goods came back
    CLOSED = "closed"  # buyer cancelled or timed out

    @property
    def is_open(self) -> bool:
        return self in (
            AfterSaleStatus.WAIT_SELLER_AGREE,
            AfterSaleStatus.WAIT_BUYER_RETURN,
            AfterSaleStatus.WAIT_SELLER_CONFIRM,
            AfterSaleStatus.WAIT_BUYER_RECEIVE,
            AfterSaleStatus.WAIT_SELLER_SHIP,
        )


class RefundStatus(StrEnum):
    NONE = "none"
    PENDING = "pending"
    REFUNDING = "refunding"
    SUCCESS = "success"
    FAILED = "failed"


class EventKind(StrEnum):
    """Neutral change events. Each becomes one push message per subscribed app."""

    ORDER_CREATED = "order_created"
    ORDER_PAID = "order_paid"
    ORDER_PART_SHIPPED = "order_part_shipped"
    ORDER_SHIPPED = "order_shipped"
    ORDER_SHIPPING_CHANGED = "order_shipping_changed"
    ORDER_ADDRESS_CHANGED = "order_address_changed"
    ORDER_CANCELLED = "order_cancelled"
    ORDER_RECEIVED = "order_received"
    ORDER_COMPLETED = "order_completed"
    ORDER_REMARK = "order_remark"
    AFTERSALE_CREATED = "aftersale_created"
    AFTERSALE_AGREED = "aftersale_agreed"  # refund agreed (refund-only)
    AFTERSALE_RETURN_AGREED = "aftersale_return_agreed"  # return/exchange approved, buyer to send back
    AFTERSALE_BUYER_RETURNED = "aftersale_buyer_returned"
    AFTERSALE_REJECTED = "aftersale_rejected"
    AFTERSALE_REFUNDED = "aftersale_refunded"
    AFTERSALE_EXCHANGE_SHIPPED = "aftersale_exchange_shipped"
    AFTERSALE_CLOSED = "aftersale_closed"
    AFTERSALE_EXCHANGE_DONE = "aftersale_exchange_done"
    PRODUCT_CHANGED = "product_changed"
    LOGISTICS_UPDATED = "logistics_updated"  # a parcel's carrier trace has new nodes (traces.py)
    DROPSHIP_ASSIGNED = "dropship_assigned"  # lines assigned to a dropship supplier (dropship.py)
    DROPSHIP_CANCELLED = "dropship_cancelled"  # an assignment withdrawn before the supplier shipped
    # App-level events (no order): pushed to the app's ``auth_event_url``, not its ``webhook_url``.
    APP_VERIFY_TICKET = "app_verify_ticket"  # WeChat third-party platform: component_verify_ticket
    APP_UNAUTHORIZED = "app_unauthorized"  # a merchant withdrew the app's authorisation


APP_EVENT_KINDS = frozenset({EventKind.APP_VERIFY_TICKET, EventKind.APP_UNAUTHORIZED})


@dataclass
class Receiver:
    """A delivery address with the person. Codes follow GB/T 2260 (province/city/district)."""

    name: str
    phone: str
    province: str
    province_code: str
    city: str
    city_code: str
    district: str
    district_code: str
    street: str
    street_code: str
    detail: str

    @property
    def full_address(self) -> str:
        return f"{self.province}{self.city}{self.district}{self.street}{self.detail}"


@dataclass
class App:
    """A developer application registered on one platform.

    Credentials by platform: Douyin ``app_key``/``app_secret``; Kuaishou ``app_key``
    (appKey), ``app_secret``, ``sign_secret``, ``message_key``; WeChat ``app_key``
    (appid), ``app_secret`` (secret), ``push_token`` (Token), ``encoding_aes_key``.
    ``permissions`` lists API paths the app may call (``["*"]`` = all). ``webhook_url``
    receives order/after-sale pushes; ``auth_event_url`` receives app-level events (WeChat
    third-party platform: 授权事件接收URL – ``component_verify_ticket``, ``unauthorized``).
    """

    app_key: str
    platform: str
    name: str
    app_secret: str
    app_type: str = "tool"  # "tool" (ISV, OAuth code) or "self" (self-use)
    sign_secret: str = ""
    message_key: str = ""
    push_token: str = ""
    encoding_aes_key: str = ""
    service_id: str = ""
    redirect_uri: str = ""
    webhook_url: str = ""
    auth_event_url: str = ""
    permissions: list[str] = field(default_factory=lambda: ["*"])
    ip_whitelist: list[str] = field(default_factory=list)
    created_at: int = 0

    def may_call(self, path: str) -> bool:
        return "*" in self.permissions or path in self.permissions


@dataclass
class Shop:
    shop_id: str
    platform: str
    name: str
    created_at: int = 0
    decrypt_quota_per_day: int = 1000


@dataclass
class Authorization:
    app_key: str
    shop_id: str
    status: str  # "active" | "revoked"
    created_at: int
    revoked_at: int = 0


@dataclass
class OAuthCode:
    code: str
    app_key: str
    shop_id: str
    state: str
    created_at: int
    expires_at: int
    used_at: int = 0


@dataclass
class Token:
    access_token: str
    refresh_token: str
    app_key: str
    shop_id: str
    created_at: int
    access_expires_at: int
    refresh_expires_at: int
    revoked_at: int = 0
    successor: str = ""  # access_token of the pair that replaced this one


@dataclass
class Sku:
    sku_id: str
    product_id: str
    shop_id: str
    code: str  # merchant code (商家编码); the ERP matches listings by it
    spec: list[list[str]]  # [[name, value], ...]
    price_fen: int
    stock: int
    out_sku_id: str = ""
    create_time: int = 0
    update_time: int = 0

    @property
    def spec_text(self) -> str:
        return ";".join(f"{n}:{v}" for n, v in self.spec)


@dataclass
class Product:
    product_id: str
    shop_id: str
    platform: str
    title: str
    category: str
    pic: str
    status: str = "online"  # online | offline | deleted
    out_product_id: str = ""
    create_time: int = 0
    update_time: int = 0
    skus: list[Sku] = field(default_factory=list)


@dataclass
class Buyer:
    buyer_id: int
    nickname: str
    receiver: Receiver


@dataclass
class OrderLine:
    """One SKU line of an order (Douyin: a sku order with its own id)."""

    line_id: str
    product_id: str
    sku_id: str
    code: str
    title: str
    spec: list[list[str]]
    pic: str
    qty: int
    unit_price_fen: int
    discount_fen: int = 0  # shop promotion on this line
    post_fen: int = 0  # freight allocated to this line
    is_gift: bool = False
    master_line_id: str = ""  # for gifts: the line that earned the gift
    shipped_qty: int = 0
    aftersale_id: str = ""
    aftersale_type: str = ""
    aftersale_status: str = ""
    refund_status: str = RefundStatus.NONE
    refunded_qty: int = 0
    refunded_fen: int = 0

    @property
    def sum_fen(self) -> int:
        return self.unit_price_fen * self.qty

    @property
    def pay_fen(self) -> int:
        return self.sum_fen - self.discount_fen + self.post_fen

    @property
    def fully_shipped(self) -> bool:
        return self.shipped_qty >= self.qty

    @property
    def fully_refunded(self) -> bool:
        return self.refund_status == RefundStatus.SUCCESS and self.refunded_qty >= self.qty


@dataclass
class PackageItem:
    line_id: str
    qty: int


@dataclass
class Package:
    package_id: str
    carrier: str  # neutral carrier key, see world.CARRIERS
    tracking_no: str
    ship_time: int
    items: list[PackageItem] = field(default_factory=list)


@dataclass
class Order:
    order_id: str
    platform: str
    shop_id: str
    buyer_id: int
    status: str
    create_time: int
    update_time: int
    receiver: Receiver
    lines: list[OrderLine]
    pay_time: int = 0
    ship_time: int = 0
    receive_time: int = 0
    complete_time: int = 0
    cancel_time: int = 0
    cancel_reason: str = ""
    cancel_kind: str = ""  # "unpaid_timeout" | "buyer" | "refund" (all lines refunded before shipment)
    expire_time: int = 0  # payment deadline for unpaid orders
    promise_ship_time: int = 0
    buyer_words: str = ""
    seller_words: str = ""
    seller_flag: int = 0  # 0-5 colour flag
    post_fen: int = 0
    pay_type: int = 1
    payment_no: str = ""
    stock_reduce: str = "order"  # "order" (at creation) or "pay"
    stock_reduced: bool = False
    address_changes: int = 0
    packages: list[Package] = field(default_factory=list)

    @property
    def goods_fen(self) -> int:
        return sum(line.sum_fen for line in self.lines)

    @property
    def discount_fen(self) -> int:
        return sum(line.discount_fen for line in self.lines)

    @property
    def pay_fen(self) -> int:
        return self.goods_fen - self.discount_fen + self.post_fen

    def line(self, line_id: str) -> OrderLine:
        for line in self.lines:
            if line.line_id == line_id:
                return line
        raise KeyError(line_id)


@dataclass
class AfterSale:
    aftersale_id: str
    platform: str
    shop_id: str
    order_id: str
    line_id: str
    type: str
    status: str
    apply_time: int
    update_time: int
    qty: int
    refund_fen: int
    refund_post_fen: int = 0
    refund_status: str = RefundStatus.PENDING
    reason: str = ""
    reason_code: int = 0
    deadline: int = 0
    got_pkg: bool = False
    return_carrier: str = ""
    return_tracking_no: str = ""
    return_time: int = 0
    exchange_sku_id: str = ""
    exchange_carrier: str = ""
    exchange_tracking_no: str = ""
    exchange_time: int = 0
    refund_time: int = 0
    close_time: int = 0
    reject_reason: str = ""
    reject_reason_code: str = ""
    evidence: list[str] = field(default_factory=list)  # the buyer's images (links)
    return_address_id: str = ""  # where the merchant asked the goods back to
    intercepts: list[dict[str, Any]] = field(default_factory=list)  # parcel intercepts asked for


@dataclass
class SettlementLine:
    """One settled order line (platform bill line). All amounts in fen."""

    settle_id: str
    platform: str
    shop_id: str
    order_id: str
    line_id: str
    product_id: str
    settle_time: int
    order_time: int
    goods_count: int
    total_fen: int  # order total for the line (goods + freight - shop coupon)
    goods_fen: int
    post_fen: int
    shop_coupon_fen: int
    platform_coupon_fen: int
    refund_before_settle_fen: int
    real_pay_fen: int
    commission_fen: int
    service_fee_fen: int
    settle_fen: int  # what the merchant receives
    trade_type: str = "settle"  # "settle" | "refund_after_settle"
    remark: str = ""


@dataclass
class WaybillAccount:
    """An e-waybill (电子面单) account: one carrier branch (网点) opened by a shop."""

    account_id: str
    shop_id: str
    carrier: str
    netsite_code: str
    netsite_name: str
    available: int
    allocated: int = 0
    cancelled: int = 0
    recycled: int = 0
    sender: dict[str, str] = field(default_factory=dict)


@dataclass
class Waybill:
    tracking_no: str
    shop_id: str
    carrier: str
    account_id: str
    order_id: str
    package_id: str
    create_time: int
    status: str = "issued"  # issued | cancelled
    shipped: bool = False  # an order shipped with it: it can no longer be cancelled
    parent: str = ""  # the parent number of a child waybill (子单)
    children: list[str] = field(default_factory=list)  # child numbers (子母件)
    sort_code: str = ""
    package_center_code: str = ""
    package_center_name: str = ""
    short_address_code: str = ""
    items: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class WorldEvent:
    """A neutral change event. ``data`` holds a snapshot taken when it happened."""

    event_id: int
    time: int
    platform: str
    shop_id: str
    kind: str
    order_id: str = ""
    aftersale_id: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class CallRecord:
    """One API call, for the status page and ``python -m sandbox status``."""

    time: float
    platform: str
    path: str
    http_status: int
    code: str
    app_key: str = ""
    shop_id: str = ""
    duration_ms: float = 0.0
    fault: str = ""
    ok: bool = False  # the platform succeeded (also when the reply was then lost)


# --------------------------------------------------------------------------- serialisation


def to_dict(obj: Any) -> Any:
    """Dataclass → plain JSON-able structure (recursively)."""
    if hasattr(obj, "__dataclass_fields__"):
        return {k: to_dict(v) for k, v in obj.__dict__.items()}
    if isinstance(obj, list | tuple):
        return [to_dict(x) for x in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


_PLANS: dict[type, list[tuple[str, Any]]] = {}


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Plain dict → dataclass ``cls`` (nested dataclasses and lists of them included).

    Unknown keys are ignored so that older stored documents keep loading. The
    per-class conversion plan is computed once.
    """
    plan = _PLANS.get(cls)
    if plan is None:
        hints = typing.get_type_hints(cls)
        plan = [(f.name, _converter(hints[f.name])) for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        _PLANS[cls] = plan
    kwargs = {}
    for name, convert in plan:
        if name in data:
            value = data[name]
            kwargs[name] = value if convert is None or value is None else convert(value)
    return cls(**kwargs)


def _converter(tp: Any) -> Any:
    """A function turning stored JSON into ``tp``, or None when the value is used as is."""
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return lambda value: from_dict(tp, value)
    origin = typing.get_origin(tp)
    if origin is list:
        args = typing.get_args(tp)
        inner = _converter(args[0]) if args else None
        return None if inner is None else (lambda value: [inner(v) for v in value])
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if arg is not type(None):
                return _converter(arg)
    return None

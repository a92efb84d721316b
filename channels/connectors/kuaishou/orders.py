"""Kuaishou shop (快手电商) connector — orders: order listing and detail, payload → ChannelOrder."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from channels.connectors.base import (
    as_dict,
    as_id,
    as_int,
    as_list,
    time_spans,
)
from channels.connectors.kuaishou.api import NOMORE, ORDER_PAGE_SIZE, _at, logger, ms
from channels.connectors.kuaishou.buyer import RECEIVER_RULES
from channels.connectors.scrub import scrub
from channels.errors import PlatformRejected
from channels.types import (
    ChannelOrder,
    ChannelOrderLine,
    CipherField,
    OrderStatus,
    Package,
    Platform,
    Receiver,
)

HOLD_REASONS = {1: "多人拼团活动进行中", 2: "支付后风控审核中"}
RISK_FRAUD = 10001


def ship_blocked_reason(base: dict[str, Any], address: dict[str, Any]) -> str:
    """Why the platform forbids (or advises against) shipping this order now; "" when it may ship."""
    reasons = []
    for code in as_list(base.get("disableDeliveryReasonCode")):
        reasons.append(f"disableDeliveryReasonCode={code} {HOLD_REASONS.get(as_int(code), '履约拦截')}")
    if as_int(base.get("riskCode")) == RISK_FRAUD:
        reasons.append("riskCode=10001 风险订单，不建议发货")
    if as_int(base.get("status")) == 30:
        if not as_int(base.get("validPromiseShipmentTimeStamp")) and not reasons:
            reasons.append("validPromiseShipmentTimeStamp=0 订单暂不能发货")
        if not (
            address.get("encryptedConsignee")
            and address.get("encryptedMobile")
            and address.get("encryptedAddress")
        ):
            reasons.append("收货信息密文为空，请勿发货")
    return "; ".join(reasons)


SHIPPED_STATUSES = frozenset({40, 50, 70})  # shipped, received, success


def shipped_quantity(status: int, quantity: int, delivery: Any) -> int:
    """How many of an order's (or gift sub-order's) ``quantity`` are shipped: ``deliveryNum`` of
    its delivery info when present; without one, all of it once the status says shipped (40
    and later — orders shipped whole carry no ``orderDeliveryInfo``), else none."""
    delivery = as_dict(delivery)
    if delivery.get("deliveryNum") not in (None, ""):
        return as_int(delivery.get("deliveryNum"))
    return quantity if status in SHIPPED_STATUSES else 0


def order_from_kuaishou(raw: dict[str, Any], *, shop_id: str) -> ChannelOrder:
    """One Kuaishou order (list item or detail) in neutral terms; ``raw`` is kept without
    plaintext receiver values (``scrub``)."""
    base, item = as_dict(raw.get("orderBaseInfo")), as_dict(raw.get("orderItemInfo"))
    address, delivery = as_dict(raw.get("orderAddress")), as_dict(raw.get("orderDeliveryInfo"))
    status_code = as_int(base.get("status"))
    refunds = as_list(raw.get("orderRefundList"))
    main = ChannelOrderLine(
        platform_line_id=as_id(base.get("oid")),
        platform_product_id=as_id(item.get("itemId")),
        platform_sku_id=as_id(item.get("skuId")),
        merchant_code=str(item.get("skuNick") or ""),
        title=str(item.get("itemTitle") or ""),
        spec=str(item.get("skuDesc") or ""),
        quantity=as_int(item.get("num")),
        unit_price_fen=as_int(item.get("price")),
        paid_fen=as_int(base.get("totalFee")),
        refund_state=_refund_state(as_int(as_dict(refunds[0]).get("refundStatus"))) if refunds else "",
    )
    lines = [main]
    partially = status_code == 40 and shipped_quantity(status_code, main.quantity, delivery) < main.quantity
    packages: dict[str, Package] = {}
    for info in as_list(raw.get("orderLogisticsInfo")):
        _add_package(packages, as_dict(info))
    for sub in as_list(raw.get("subOrderInfo")):
        sub = as_dict(sub)
        sub_base, sub_item = as_dict(sub.get("subOrderBaseInfo")), as_dict(sub.get("subOrderItemInfo"))
        quantity, price = as_int(sub_item.get("num")), as_int(sub_item.get("price"))
        lines.append(
            ChannelOrderLine(
                platform_line_id=as_id(sub_base.get("oid")),
                platform_product_id=as_id(sub_item.get("itemId")),
                platform_sku_id=as_id(sub_item.get("skuId")),
                merchant_code=str(sub_item.get("skuNick") or ""),
                title=str(sub_item.get("itemTitle") or ""),
                spec=str(sub_item.get("skuDesc") or ""),
                quantity=quantity,
                unit_price_fen=price,
                paid_fen=max(0, price * quantity - as_int(sub_item.get("discountFee"))),
                is_gift=True,
            )
        )
        sub_status = as_int(sub_base.get("status"))
        shipped = shipped_quantity(sub_status, quantity, sub.get("subOrderDeliveryInfo"))
        if status_code == 40 and sub_status != 80 and shipped < quantity:
            partially = True
        for info in as_list(sub.get("subOrderLogisticsInfo")):
            _add_package(packages, as_dict(info))
    status = {
        10: OrderStatus.UNPAID,
        30: OrderStatus.PAID,
        40: OrderStatus.PARTIALLY_SHIPPED if partially else OrderStatus.SHIPPED,
        50: OrderStatus.COMPLETED,
        70: OrderStatus.COMPLETED,
        80: OrderStatus.CANCELLED,
    }.get(status_code)
    if status is None:
        logger.warning(
            "Kuaishou order %s has unknown status %s; treated as unpaid", base.get("oid"), status_code
        )
        status = OrderStatus.UNPAID
    notes = as_list(as_dict(raw.get("orderNote")).get("orderNoteInfo"))
    seller_remark = str(as_dict(notes[0]).get("note") or "") if notes else ""
    if not seller_remark and as_list(as_dict(raw.get("orderNote")).get("sellerNote")):
        seller_remark = str(as_dict(raw.get("orderNote"))["sellerNote"][0])
    goods, discount, freight = (
        main.unit_price_fen * main.quantity,
        as_int(base.get("discountFee")),
        as_int(base.get("expressFee")),
    )
    return ChannelOrder(
        platform=Platform.KUAISHOU,
        platform_shop_id=shop_id,
        platform_order_id=main.platform_line_id,
        platform_status=str(status_code),
        status=status,
        created_at=_at(base.get("createTime")) or datetime.fromtimestamp(0, UTC),
        updated_at=_at(base.get("updateTime"))
        or _at(base.get("createTime"))
        or datetime.fromtimestamp(0, UTC),
        lines=tuple(lines),
        receiver=Receiver(
            name=CipherField(
                cipher=str(address.get("encryptedConsignee") or ""),
                mask=str(address.get("desensitiseConsignee") or ""),
            ),
            phone=CipherField(
                cipher=str(address.get("encryptedMobile") or ""),
                mask=str(address.get("desensitiseMobile") or ""),
            ),
            address=CipherField(
                cipher=str(address.get("encryptedAddress") or ""),
                mask=str(address.get("desensitiseAddress") or ""),
            ),
            province=str(address.get("province") or ""),
            city=str(address.get("city") or ""),
            district=str(address.get("district") or ""),
            town=str(address.get("town") or ""),
        ),
        buyer_id=str(base.get("buyerOpenId") or ""),
        paid_at=_at(base.get("payTime")),
        ship_by=_at(base.get("validPromiseShipmentTimeStamp")),
        shipped_at=_at(base.get("sendTime")),
        finished_at=_at(base.get("recvTime")),
        goods_fen=goods,
        freight_fen=freight,
        discount_fen=discount,
        paid_fen=as_int(base.get("totalFee")) + freight,
        buyer_remark=str(base.get("remark") or ""),
        seller_remark=seller_remark,
        ship_blocked_reason=ship_blocked_reason(base, address),
        packages=tuple(packages.values()),
        raw=scrub(raw, RECEIVER_RULES),
    )


def _add_package(packages: dict[str, Package], info: dict[str, Any]) -> None:
    key = as_id(info.get("logisticsId")) or str(info.get("expressNo") or "")
    if key and key not in packages:
        packages[key] = Package(
            tracking_no=str(info.get("expressNo") or ""),
            carrier_code=as_id(info.get("expressCode")),
            platform_package_id=as_id(info.get("logisticsId")),
        )


def _refund_state(status: int) -> str:
    """Neutral line refund state from a Kuaishou refund status (§2.7): 60 succeeded →
    "refunded", 70 failed → "", anything else in progress → "refunding"."""
    if status == 60:
        return "refunded"
    if status in (0, 70):
        return ""
    return "refunding"


class OrdersMixin:
    """KuaishouConnector: orders."""

    # ------------------------------------------------------------------ orders

    def _order(self, raw: dict[str, Any]) -> ChannelOrder:
        return order_from_kuaishou(raw, shop_id=self.session.platform_shop_id)

    def iter_orders(self, *, updated_from: datetime, updated_to: datetime) -> Iterator[ChannelOrder]:
        """Walk ``open.order.cursor.list`` by update time (``queryType=2``), 50 a page, from
        cursor ``""`` until ``"nomore"``; windows longer than 7 days are split."""
        for lower, upper in time_spans(updated_from, updated_to, self.max_order_window):
            cursor = ""
            while True:
                params = {"orderViewStatus": 1, "pageSize": ORDER_PAGE_SIZE, "sort": 2, "queryType": 2,
                          "beginTime": ms(lower), "endTime": ms(upper), "cursor": cursor}  # fmt: skip
                data = as_dict(self._api("open.order.cursor.list", params).get("data"))
                for raw in as_list(data.get("orderList")):
                    yield self._order(as_dict(raw))
                following = str(data.get("cursor") or NOMORE)
                if following == NOMORE:
                    break
                if following == cursor:
                    raise PlatformRejected("the order cursor did not advance", code="cursor")
                cursor = following

    def _detail(self, platform_order_id: str) -> dict[str, Any]:
        envelope = self._api("open.order.detail", {"oid": int(platform_order_id)})
        return as_dict(envelope.get("data"))

    def get_order(self, platform_order_id: str) -> ChannelOrder:
        """``open.order.detail`` of one order id."""
        return self._order(self._detail(platform_order_id))

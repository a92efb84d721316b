"""WeChat Channels shop (微信小店) connector — orders: order listing and detail, payload → ChannelOrder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from channels.connectors.base import (
    epoch_seconds,
)
from channels.connectors.wechat.api import ORDER_PAGE_SIZE, _seconds, _str_id
from channels.types import (
    ChannelOrder,
    ChannelOrderLine,
    CipherField,
    OrderStatus,
    Package,
    Platform,
    Receiver,
)

STATUS_MAP: dict[int, OrderStatus] = {
    10: OrderStatus.UNPAID,
    20: OrderStatus.PAID,
    21: OrderStatus.PARTIALLY_SHIPPED,
    30: OrderStatus.SHIPPED,
    100: OrderStatus.COMPLETED,
    200: OrderStatus.CANCELLED,  # cancelled after every item was refunded
    250: OrderStatus.CANCELLED,  # unpaid cancel / payment timeout
}
# Paid but not shippable yet (statuses seen in community answers, reference §3.4 [GUESS]).
BLOCKED = {12: "礼物待收下", 13: "凑单买凑团中"}


def line_id(product_id: Any, sku_id: Any) -> str:
    """WeChat order lines have no id of their own: a line is ``product_id:sku_id``."""
    return f"{_str_id(product_id)}:{_str_id(sku_id)}"


def split_line_id(platform_line_id: str) -> tuple[str, str]:
    """``product_id:sku_id`` (a repeated pair in one order carries a ``#n`` suffix)."""
    product_id, sep, sku_id = platform_line_id.split("#", 1)[0].partition(":")
    if not sep or not product_id or not sku_id:
        raise ValueError(f"not a WeChat line id (product_id:sku_id): {platform_line_id!r}")
    return product_id, sku_id


class OrdersMixin:
    """WechatConnector: orders."""

    # --- orders ------------------------------------------------------------------------------------
    def _order_ids(self, start: int, end: int) -> Iterator[list[str]]:
        next_key = ""
        while True:
            body: dict[str, Any] = {
                "update_time_range": {"start_time": start, "end_time": end},
                "page_size": ORDER_PAGE_SIZE,
            }
            if next_key:
                body["next_key"] = next_key
            page = self.api("/channels/ec/order/list/get", body)
            ids = [_str_id(x) for x in page.get("order_id_list") or []]
            if ids:
                yield ids
            next_key = str(page.get("next_key") or "")
            if not page.get("has_more") or not next_key:
                return

    def _fetch_all(
        self, fetch: Callable[[str], Any], ids: list[str], pool: ThreadPoolExecutor | None
    ) -> Iterator[Any]:
        if pool is None or len(ids) == 1:
            yield from (fetch(i) for i in ids)
        else:
            yield from pool.map(fetch, ids)

    def iter_orders(self, *, updated_from: datetime, updated_to: datetime) -> Iterator[ChannelOrder]:
        """Every order updated in [updated_from, updated_to]. The ids-only list is paged to the end
        first (``next_key``; quick, so orders have little time to move between pages), then the
        details are fetched with at most ``detail_workers`` requests in flight."""
        if updated_to - updated_from > self.max_order_window:
            raise ValueError(f"window longer than {self.max_order_window}")
        start, end = epoch_seconds(updated_from), epoch_seconds(updated_to) + 1  # WeChat's end is exclusive
        ids = list(dict.fromkeys(i for page in self._order_ids(start, end) for i in page))
        pool = (
            ThreadPoolExecutor(self.detail_workers, thread_name_prefix="wechat-order")
            if self.detail_workers > 1
            else None
        )
        try:
            for offset in range(0, len(ids), ORDER_PAGE_SIZE):  # bounded look-ahead: one page of futures
                yield from self._fetch_all(self.get_order, ids[offset : offset + ORDER_PAGE_SIZE], pool)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def get_order(self, platform_order_id: str) -> ChannelOrder:
        """One order from ``/channels/ec/order/get``."""
        reply = self.api("/channels/ec/order/get", {"order_id": _str_id(platform_order_id)})
        return self.to_channel_order(reply["order"])

    def to_channel_order(self, order: dict[str, Any]) -> ChannelOrder:
        """Map a WeChat ``order`` object (§3.4) to the neutral order; ``raw`` keeps it verbatim."""
        detail = order.get("order_detail") or {}
        status = int(order.get("status") or 0)
        lines = []
        seen: dict[str, int] = {}
        for p in detail.get("product_infos") or []:
            on, done = int(p.get("on_aftersale_sku_cnt") or 0), int(p.get("finish_aftersale_sku_cnt") or 0)
            pair = line_id(p.get("product_id"), p.get("sku_id"))
            seen[pair] = seen.get(pair, 0) + 1  # the same SKU twice (e.g. bought + gift): keep ids unique
            lines.append(
                ChannelOrderLine(
                    platform_line_id=pair if seen[pair] == 1 else f"{pair}#{seen[pair]}",
                    platform_product_id=_str_id(p.get("product_id")),
                    platform_sku_id=_str_id(p.get("sku_id")),
                    merchant_code=str(p.get("sku_code") or ""),
                    title=str(p.get("title") or ""),
                    spec=";".join(
                        f"{a.get('attr_key', '')}:{a.get('attr_value', '')}" for a in p.get("sku_attrs") or []
                    ),
                    quantity=int(p.get("sku_cnt") or 0),
                    unit_price_fen=int(p.get("sale_price") or 0),
                    paid_fen=int(p.get("real_price") or 0),
                    is_gift=bool(p.get("is_free_gift")),
                    refund_state="refunding" if on else ("refunded" if done else ""),
                )
            )
        delivery = detail.get("delivery_info") or {}
        address = delivery.get("address_info") or {}
        index = str(address.get("hash_code") or "")
        receiver = Receiver(
            name=CipherField(mask=str(address.get("user_name") or ""), index=index),
            phone=CipherField(mask=str(address.get("tel_number") or ""), index=index),
            address=CipherField(mask=str(address.get("detail_info") or ""), index=index),
            province=str(address.get("province_name") or ""),
            city=str(address.get("city_name") or ""),
            district=str(address.get("county_name") or ""),
        )
        packages = tuple(
            Package(
                tracking_no=str(d.get("waybill_id") or ""),
                carrier_code=str(d.get("delivery_id") or ""),
                lines=tuple(
                    (line_id(x.get("product_id"), x.get("sku_id")), int(x.get("product_cnt") or 0))
                    for x in d.get("product_infos") or []
                ),
            )
            for d in delivery.get("delivery_product_info") or []
        )
        price = detail.get("price_info") or {}
        pay = detail.get("pay_info") or {}
        ext = detail.get("ext_info") or {}
        deadlines = [
            int(p.get("delivery_deadline") or 0)
            for p in detail.get("product_infos") or []
            if p.get("delivery_deadline")
        ]
        ship_times = [
            int(d.get("delivery_time") or 0)
            for d in delivery.get("delivery_product_info") or []
            if d.get("delivery_time")
        ]
        return ChannelOrder(
            platform=Platform.WECHAT,
            platform_shop_id=self.session.platform_shop_id,
            platform_order_id=_str_id(order.get("order_id")),
            platform_status=str(status),
            status=STATUS_MAP.get(status, OrderStatus.PAID if status in (12, 13) else OrderStatus.UNPAID),
            created_at=_seconds(order.get("create_time")) or self.now(),
            updated_at=_seconds(order.get("update_time")) or _seconds(order.get("create_time")) or self.now(),
            lines=tuple(lines),
            receiver=receiver,
            buyer_id=str(order.get("openid") or ""),
            paid_at=_seconds(pay.get("pay_time")),
            ship_by=_seconds(min(deadlines)) if deadlines else None,
            shipped_at=_seconds(min(ship_times)) if ship_times else None,
            finished_at=_seconds(ext.get("confirm_receipt_time")),
            goods_fen=int(price.get("product_price") or 0),
            freight_fen=int(price.get("freight") or 0),
            discount_fen=int(price.get("discounted_price") or 0),
            paid_fen=int(price.get("order_price") or 0),
            buyer_remark=str(ext.get("customer_notes") or ""),
            seller_remark=str(ext.get("merchant_notes") or ""),
            ship_blocked_reason=BLOCKED.get(
                status, "收货地址审核中" if delivery.get("address_under_review") else ""
            ),
            packages=packages,
            raw=order,
        )

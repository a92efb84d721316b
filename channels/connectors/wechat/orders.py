"""WeChat Channels shop (微信小店) connector — orders: order listing and detail, payload → ChannelOrder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from channels.connectors.base import as_dict, as_int, as_list, epoch_seconds
from channels.connectors.scrub import mask_of, masked, scrub
from channels.connectors.wechat.api import ORDER_PAGE_SIZE, _seconds, _str_id
from channels.connectors.wechat.buyer import RECEIVER_RULES
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


def lines_paid(products: list[dict[str, Any]], price_info: dict[str, Any]) -> list[int]:
    """What the buyer paid per line (fen): ``real_price`` where the line has it. Lines without
    it share what the order's goods cost after discounts (``order_price`` − ``freight``, less
    the lines that have one) in proportion to ``sale_price`` × ``sku_cnt`` (free gifts: 0),
    largest remainder first; without ``order_price`` they get ``sale_price`` × ``sku_cnt``."""
    known = [as_int(p["real_price"]) if p.get("real_price") not in (None, "") else None for p in products]
    weights = [
        0 if p.get("is_free_gift") else as_int(p.get("sale_price")) * as_int(p.get("sku_cnt"))
        for p in products
    ]
    missing = [i for i, value in enumerate(known) if value is None]
    if not missing:
        return [value or 0 for value in known]
    out = [value or 0 for value in known]
    pool = sum(weights[i] for i in missing)
    if price_info.get("order_price") in (None, "") or not pool:
        for i in missing:
            out[i] = weights[i]
        return out
    left = max(0, as_int(price_info.get("order_price")) - as_int(price_info.get("freight")) - sum(out))
    shares = {i: divmod(left * weights[i], pool) for i in missing}
    for i in missing:
        out[i] = shares[i][0]
    rest = left - sum(out[i] for i in missing)
    for i in sorted(missing, key=lambda i: -shares[i][1])[:rest]:
        out[i] += 1
    return out


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
        """Map a WeChat ``order`` object (§3.4) to the neutral order; ``raw`` keeps it without
        plaintext receiver values (``scrub``)."""
        detail = as_dict(order.get("order_detail"))
        status = as_int(order.get("status"))
        price = as_dict(detail.get("price_info"))
        products = [p for p in as_list(detail.get("product_infos")) if isinstance(p, dict)]
        lines = []
        seen: dict[str, int] = {}
        for p, paid in zip(products, lines_paid(products, price), strict=True):
            on, done = as_int(p.get("on_aftersale_sku_cnt")), as_int(p.get("finish_aftersale_sku_cnt"))
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
                    quantity=as_int(p.get("sku_cnt")),
                    unit_price_fen=as_int(p.get("sale_price")),
                    paid_fen=paid,
                    is_gift=bool(p.get("is_free_gift")),
                    refund_state="refunding" if on else ("refunded" if done else ""),
                )
            )
        delivery = as_dict(detail.get("delivery_info"))
        address = as_dict(delivery.get("address_info"))
        # Masks only: where an old payload holds plaintext (the doc samples), its mask is made the
        # platform's way and the plaintext goes no further (``raw`` is scrubbed the same way).
        receiver = Receiver(
            name=CipherField(
                mask=masked(address.get("user_name")) or mask_of("name", address.get("user_name"))
            ),
            phone=CipherField(
                mask=masked(address.get("tel_number")) or mask_of("phone", address.get("tel_number"))
            ),
            address=CipherField(
                mask=masked(address.get("detail_info")) or mask_of("address", address.get("detail_info"))
            ),
            province=str(address.get("province_name") or ""),
            city=str(address.get("city_name") or ""),
            district=str(address.get("county_name") or ""),
            identity=str(address.get("hash_code") or ""),  # the samples have none: never merged then
        )
        packages = tuple(
            Package(
                tracking_no=str(d.get("waybill_id") or ""),
                carrier_code=str(d.get("delivery_id") or ""),
                lines=tuple(
                    (line_id(x.get("product_id"), x.get("sku_id")), as_int(x.get("product_cnt")))
                    for x in d.get("product_infos") or []
                ),
            )
            for d in delivery.get("delivery_product_info") or []
        )
        pay = as_dict(detail.get("pay_info"))
        ext = as_dict(detail.get("ext_info"))
        deadlines = [as_int(p.get("delivery_deadline")) for p in products if p.get("delivery_deadline")]
        ship_times = [
            as_int(d.get("delivery_time"))
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
            goods_fen=as_int(price.get("product_price")),
            freight_fen=as_int(price.get("freight")),
            discount_fen=as_int(price.get("discounted_price")),
            paid_fen=as_int(price.get("order_price")),
            buyer_remark=str(ext.get("customer_notes") or ""),
            seller_remark=str(ext.get("merchant_notes") or ""),
            ship_blocked_reason=BLOCKED.get(
                status, "收货地址审核中" if delivery.get("address_under_review") else ""
            ),
            packages=packages,
            raw=scrub(order, RECEIVER_RULES),
        )

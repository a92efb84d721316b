"""Douyin shop (抖店) connector — orders: order listing and detail, payload → ChannelOrder."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from channels.connectors.base import (
    as_dict,
    as_id,
    as_int,
    epoch_seconds,
    time_spans,
)
from channels.connectors.douyin.api import PAGE_SIZE, _walk_by_update_time, epoch_time, logger
from channels.connectors.douyin.buyer import RECEIVER_RULES
from channels.connectors.scrub import scrub
from channels.errors import TemporarilyUnavailable
from channels.types import (
    ChannelOrder,
    ChannelOrderLine,
    CipherField,
    OrderStatus,
    Package,
    Platform,
    Receiver,
)

STATUS_MAP = {
    1: OrderStatus.UNPAID,
    105: OrderStatus.PAID,
    2: OrderStatus.PAID,
    101: OrderStatus.PARTIALLY_SHIPPED,
    3: OrderStatus.SHIPPED,
    5: OrderStatus.COMPLETED,
    4: OrderStatus.CANCELLED,
}
RISK_REVIEW_REASON = "platform risk review (order_status 105)"


def _cipher_field(cipher: Any, mask: Any) -> CipherField:
    """Ciphertext and mask. No search index: the order carries none (the ciphertext's first
    segment is not one — empty in the 2024 formats, and it changes with every encryption);
    the receiver identity for merging is ``open_address_id``."""
    return CipherField(cipher=str(cipher or ""), mask=str(mask or ""))


def _open_address_id(o: dict[str, Any]) -> str:
    """The order's ``open_address_id`` (receiver + address identity), on the order or its lines."""
    found = as_id(o.get("open_address_id"))
    for s in o.get("sku_order_list") or []:
        found = found or (as_id(s.get("open_address_id")) if isinstance(s, dict) else "")
    return found


def _region(addr: dict[str, Any], level: str) -> str:
    return str(as_dict(addr.get(level)).get("name") or "")


def _order_key(o: dict[str, Any]) -> tuple[str, int]:
    return as_id(o.get("order_id")), as_int(o.get("update_time"))


class OrdersMixin:
    """DouyinConnector: orders."""

    # ------------------------------------------------------------------ orders

    def iter_orders(self, *, updated_from: datetime, updated_to: datetime) -> Iterator[ChannelOrder]:
        """Every order whose ``update_time`` is in [updated_from, updated_to] (both inclusive).

        ``/order/searchList`` with ``order_by=update_time``, ``order_asc=true``, ``size=100``.
        Offset paging skips an order whenever an order earlier in the list changes during the
        walk (it leaves the window and everything behind it moves up a page), so the window
        is walked by keyset instead: each request starts again at page 0 with
        ``update_time_start`` = the update time of the last order received (orders of that
        boundary second come back once more and are not yielded again). A page that ends in
        a busy second (more than a quarter page of its orders) has that second paged by
        number instead: a one-second slice whose ``total`` is compared on every page and
        which is walked again when it changed (an order that changes leaves a past second
        for good). Windows longer than ``max_order_window`` are split; no request goes
        deeper than page*size = 10 000.

        Guarantee: every order whose update time lies in the window when the walk ends is
        yielded. An order is yielded more than once when it changed during the walk and is
        met again with a newer ``update_time`` (the repeat is the newer version), or when it
        sits on the boundary second of two spans of a split window; storage is idempotent.
        Residual case: a one-second slice with more than 25 orders that is *the current
        second* while orders leave and enter it in equal numbers.
        """
        for lower, upper in time_spans(updated_from, updated_to, self.max_order_window):
            start, end = epoch_seconds(lower), epoch_seconds(upper)

            def fetch(first: int, last: int, page: int) -> tuple[int, list[dict[str, Any]]]:
                data = as_dict(
                    self._api(
                        "/order/searchList",
                        {
                            "update_time_start": first,
                            "update_time_end": last,
                            "order_by": "update_time",
                            "order_asc": True,
                            "size": PAGE_SIZE,
                            "page": page,
                        },
                        idempotent=True,
                    )
                )
                return as_int(data.get("total")), [
                    o for o in data.get("shop_order_list") or [] if isinstance(o, dict)
                ]

            for raw in _walk_by_update_time(fetch, _order_key, start, end):
                yield self.order_from_payload(raw)

    def get_order(self, platform_order_id: str) -> ChannelOrder:
        """``/order/orderDetail`` by shop order id."""
        data = as_dict(self._api("/order/orderDetail", {"shop_order_id": platform_order_id}, idempotent=True))
        detail = data.get("shop_order_detail")
        if not isinstance(detail, dict):
            raise TemporarilyUnavailable("orderDetail answer without shop_order_detail")
        return self.order_from_payload(detail)

    def order_from_payload(self, o: dict[str, Any]) -> ChannelOrder:
        """Map one Douyin shop order (list item or detail) to a neutral ``ChannelOrder``.

        Money (fen): ``goods_fen`` = Σ line ``sum_amount`` (list price × quantity, before
        promotions); ``discount_fen`` = ``promotion_amount`` (every party's promotions);
        ``freight_fen`` = ``post_amount``; ``paid_fen`` = ``pay_amount`` (0 until paid), so
        that goods − discount + freight = paid. Merchant price changes (``modify_amount``)
        and tax are not modelled. Times are epoch seconds → aware UTC; ``ship_by`` is
        ``exp_ship_time``. Region names come from ``post_addr`` (Douyin's ``town`` is the
        district level, ``street`` the town level); name, phone and address detail stay
        ciphertext + mask. ``ship_blocked_reason`` is set while ``order_status`` is 105
        (paid, under the platform's risk review).
        """
        order_id = as_id(o.get("order_id"))
        if not order_id:
            raise TemporarilyUnavailable("shop order without order_id")
        status_code = as_int(o.get("order_status"))
        main_status = as_int(o.get("main_status"))
        lines = tuple(self._line(s) for s in o.get("sku_order_list") or [] if isinstance(s, dict))
        packages = tuple(self._package(p) for p in o.get("logistics_info") or [] if isinstance(p, dict))
        status = STATUS_MAP.get(status_code) or STATUS_MAP.get(main_status)
        if status is None:
            logger.warning("order %s has unknown order_status %s/%s", order_id, status_code, main_status)
            status = OrderStatus.PAID if as_int(o.get("pay_time")) else OrderStatus.UNPAID
        if status == OrderStatus.PAID and (main_status == 101 or packages):
            status = OrderStatus.PARTIALLY_SHIPPED  # the sandbox keeps order_status 2 with main_status 101
        addr = as_dict(o.get("post_addr"))
        mask_addr = o.get("mask_post_addr")
        mask_detail = as_dict(mask_addr).get("detail") if isinstance(mask_addr, dict) else mask_addr
        created = epoch_time(o.get("create_time"))
        if created is None:
            raise TemporarilyUnavailable(f"order {order_id} without create_time")
        goods = sum(
            as_int(s.get("sum_amount"), as_int(s.get("origin_amount")) * as_int(s.get("item_num")))
            for s in o.get("sku_order_list") or []
            if isinstance(s, dict)
        )
        return ChannelOrder(
            platform=Platform.DOUYIN,
            platform_shop_id=as_id(o.get("shop_id")) or self.session.platform_shop_id,
            platform_order_id=order_id,
            platform_status=str(status_code),
            status=status,
            created_at=created,
            updated_at=epoch_time(o.get("update_time")) or created,
            lines=lines,
            receiver=Receiver(
                name=_cipher_field(o.get("encrypt_post_receiver"), o.get("mask_post_receiver")),
                phone=_cipher_field(o.get("encrypt_post_tel"), o.get("mask_post_tel")),
                address=_cipher_field(addr.get("encrypt_detail"), mask_detail),
                province=_region(addr, "province"),
                city=_region(addr, "city"),
                district=_region(addr, "town"),
                town=_region(addr, "street"),
                identity=_open_address_id(o),
            ),
            buyer_id=str(o.get("doudian_open_id") or ""),
            paid_at=epoch_time(o.get("pay_time")),
            ship_by=epoch_time(o.get("exp_ship_time")),
            shipped_at=epoch_time(o.get("ship_time")),
            finished_at=epoch_time(o.get("finish_time")),
            goods_fen=goods,
            freight_fen=as_int(o.get("post_amount")),
            discount_fen=as_int(o.get("promotion_amount"), as_int(o.get("total_promotion_amount"))),
            paid_fen=as_int(o.get("pay_amount")),
            buyer_remark=str(o.get("buyer_words") or ""),
            seller_remark=str(o.get("seller_words") or ""),
            ship_blocked_reason=RISK_REVIEW_REASON if status_code == 105 else "",
            packages=packages,
            raw=scrub(o, RECEIVER_RULES),
        )

    @staticmethod
    def _line(s: dict[str, Any]) -> ChannelOrderLine:
        specs = [x for x in s.get("spec") or [] if isinstance(x, dict)]
        info = as_dict(s.get("after_sale_info"))
        after_sale, refund = as_int(info.get("after_sale_status")), as_int(info.get("refund_status"))
        # Neutral line refund state: "refunded" (money returned), "refunding" (in progress), "".
        if refund == 3 or after_sale in (12, 14):
            refund_state = "refunded"
        elif refund in (1, 2) or after_sale in (6, 7, 8, 11, 13):
            refund_state = "refunding"
        else:
            refund_state = ""
        return ChannelOrderLine(
            platform_line_id=as_id(s.get("order_id")),
            platform_product_id=str(s.get("product_id_str") or as_id(s.get("product_id"))),
            platform_sku_id=as_id(s.get("sku_id")),
            merchant_code=str(s.get("code") or ""),
            title=str(s.get("product_name") or ""),
            spec=";".join(f"{x.get('name', '')}:{x.get('value', '')}" for x in specs),
            quantity=as_int(s.get("item_num")),
            unit_price_fen=as_int(s.get("origin_amount")),
            paid_fen=as_int(s.get("pay_amount")),
            is_gift=s.get("given_product_type") == "FREE",
            refund_state=refund_state,
        )

    @staticmethod
    def _package(p: dict[str, Any]) -> Package:
        items = [x for x in p.get("product_info") or [] if isinstance(x, dict)]
        return Package(
            tracking_no=str(p.get("tracking_no") or ""),
            carrier_code=str(p.get("company") or ""),
            platform_package_id=as_id(p.get("delivery_id")),
            lines=tuple((as_id(x.get("sku_order_id")), as_int(x.get("product_count"))) for x in items),
        )

"""Douyin shop (抖店) connector — after-sales and settlements."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from channels.connectors.aftersale_fields import deadline_of, image_links, neutral_carrier, require
from channels.connectors.base import (
    as_dict,
    as_id,
    as_int,
    as_list,
    epoch_seconds,
    time_spans,
)
from channels.connectors.douyin.api import (
    BILL_TIME_FORMAT,
    PAGE_SIZE,
    SETTLEMENT_OK,
    SETTLEMENT_SPAN,
    SHANGHAI,
    _walk_by_update_time,
    epoch_time,
)
from channels.errors import PlatformRejected, TemporarilyUnavailable
from channels.types import (
    AfterSale,
    AfterSaleItem,
    AfterSaleStatus,
    AfterSaleType,
    Platform,
    SettlementLine,
)

AFTER_SALE_TYPE_MAP = {
    0: AfterSaleType.RETURN_REFUND,
    1: AfterSaleType.REFUND_ONLY,
    2: AfterSaleType.REFUND_ONLY,
    3: AfterSaleType.EXCHANGE,
    7: AfterSaleType.RESHIP,
}
AFTER_SALE_STATUS_MAP = {
    6: AfterSaleStatus.WAITING_MERCHANT,
    7: AfterSaleStatus.WAITING_BUYER_RETURN,
    8: AfterSaleStatus.WAITING_MERCHANT,  # exchange: merchant must ship the replacement
    11: AfterSaleStatus.WAITING_MERCHANT_RECEIPT,  # goods back, second approval due
    12: AfterSaleStatus.SUCCEEDED,
    # [choice] 3/13: the replacement is on its way to the buyer; nothing is left for the
    # merchant to do and no money moves, so it counts as done on our side.
    3: AfterSaleStatus.SUCCEEDED,
    13: AfterSaleStatus.SUCCEEDED,
    14: AfterSaleStatus.SUCCEEDED,
    27: AfterSaleStatus.REJECTED,
    29: AfterSaleStatus.REJECTED,
    28: AfterSaleStatus.CLOSED,
}
#: Douyin types 1 (已发货仅退款) / 2 (未发货仅退款) say whether the goods had shipped
SHIPPED_BY_TYPE = {1: True, 2: False}
REFUND_IN_PROGRESS = 2  # refund_status 2 = 退款中
SETTLEMENT_KIND = {0: "settle", 1: "refund_after_settle", 2: "deposit_refund", 3: "refund_after_settle"}


def bill_time(value: datetime) -> str:
    """A bill query time: ``yyyy-MM-dd HH:mm:ss`` in Beijing time (§1.9)."""
    return value.astimezone(SHANGHAI).strftime(BILL_TIME_FORMAT)


def parse_bill_time(text: str) -> datetime:
    return datetime.strptime(text, BILL_TIME_FORMAT).replace(tzinfo=SHANGHAI).astimezone(UTC)


def _after_sale_key(item: dict[str, Any]) -> tuple[str, int]:
    info = as_dict(item.get("aftersale_info"))
    return as_id(info.get("aftersale_id")), as_int(info.get("update_time"))


class AfterSalesMixin:
    """DouyinConnector: after-sales and settlements."""

    # ------------------------------------------------------------------ after-sales

    def iter_after_sales(self, *, updated_from: datetime, updated_to: datetime) -> Iterator[AfterSale]:
        """``/afterSale/List`` by ``update_start_time``/``update_end_time``, oldest update
        first, walked like ``iter_orders`` (never skips; may repeat)."""
        for lower, upper in time_spans(updated_from, updated_to, self.max_order_window):

            def fetch(first: int, last: int, page: int) -> tuple[int, list[dict[str, Any]]]:
                data = as_dict(
                    self._api(
                        "/afterSale/List",
                        {
                            "update_start_time": first,
                            "update_end_time": last,
                            "order_by": ["update_time asc"],
                            "page": page,
                            "size": PAGE_SIZE,
                        },
                        idempotent=True,
                    )
                )
                return as_int(data.get("total")), [i for i in data.get("items") or [] if isinstance(i, dict)]

            for item in _walk_by_update_time(
                fetch, _after_sale_key, epoch_seconds(lower), epoch_seconds(upper)
            ):
                yield self.after_sale_from_payload(item)

    def get_after_sale(self, platform_after_sale_id: str) -> AfterSale:
        """One after-sale: ``/afterSale/List`` filtered by ``aftersale_id`` (the list item's
        shape, mapped like the walk's)."""
        data = as_dict(
            self._api(
                "/afterSale/List",
                {"aftersale_id": platform_after_sale_id, "page": 0, "size": 1},
                idempotent=True,
            )
        )
        items = [i for i in data.get("items") or [] if isinstance(i, dict)]
        if not items:
            raise PlatformRejected(f"after-sale {platform_after_sale_id} not found", code="not_found")
        return self.after_sale_from_payload(items[0])

    def after_sale_from_payload(self, item: dict[str, Any]) -> AfterSale:
        """Map one ``/afterSale/List`` item. ``refund_fen`` = ``refund_amount`` +
        ``refund_post_amount`` (the SDK lists them as separate amounts).

        ``version`` is ``update_time`` as given (the ``/afterSale/operate`` guard); ``items``
        come from ``order_info.related_order_info[]``; ``evidence`` from ``evidence`` (in
        ``aftersale_info``, on the item or in ``text_part``) and ``text_part`` pictures.
        A payload without ``aftersale_info.aftersale_id`` or apply time raises
        TemporarilyUnavailable ("malformed")."""
        if not isinstance(item, dict):
            raise TemporarilyUnavailable(f"malformed after-sale: {type(item).__name__} instead of an object")
        info = as_dict(item.get("aftersale_info"))
        aftersale_id = require(info, "aftersale_id", "after_sale_id", what="Douyin after-sale")
        order = as_dict(item.get("order_info"))
        text = as_dict(item.get("text_part"))
        kind = as_int(info.get("aftersale_type"), -1)
        status_code = as_int(info.get("aftersale_status"))
        status = AFTER_SALE_STATUS_MAP.get(status_code, AfterSaleStatus.WAITING_MERCHANT)
        if (
            status in (AfterSaleStatus.WAITING_MERCHANT, AfterSaleStatus.WAITING_MERCHANT_RECEIPT)
            and as_int(info.get("refund_status")) == REFUND_IN_PROGRESS
        ):
            status = AfterSaleStatus.REFUNDING
        applied = epoch_time(info.get("apply_time")) or epoch_time(info.get("create_time"))
        if applied is None:
            raise TemporarilyUnavailable(f"malformed Douyin after-sale {aftersale_id}: no apply_time")
        items = tuple(
            AfterSaleItem(
                platform_line_id=as_id(r.get("sku_order_id")),
                quantity=as_int(r.get("aftersale_item_num")) or as_int(r.get("item_num")),
                refund_fen=as_int(r.get("aftersale_pay_amount")),
                merchant_code=str(r.get("shop_sku_code") or ""),
                platform_sku_id=as_id(r.get("sku_id")),
            )
            for r in as_list(order.get("related_order_info"))
            if isinstance(r, dict) and as_id(r.get("sku_order_id"))
        )
        exchange = as_dict(info.get("exchange_sku_info"))
        raw_version = info.get("update_time")
        return AfterSale(
            platform=Platform.DOUYIN,
            platform_shop_id=self.session.platform_shop_id,
            platform_after_sale_id=aftersale_id,
            platform_order_id=as_id(order.get("shop_order_id")),
            platform_line_id=as_id(info.get("related_id")) or (items[0].platform_line_id if items else ""),
            type=AFTER_SALE_TYPE_MAP.get(kind, AfterSaleType.OTHER),
            status=status,
            platform_status=str(status_code),
            refund_fen=as_int(info.get("refund_amount")) + as_int(info.get("refund_post_amount")),
            quantity=as_int(info.get("aftersale_num")),
            reason=str(text.get("reason_text") or info.get("reason") or ""),
            created_at=applied,
            updated_at=epoch_time(info.get("update_time")) or applied,
            return_tracking_no=str(info.get("return_logistics_code") or ""),
            return_carrier=neutral_carrier(
                Platform.DOUYIN,
                code=info.get("return_logistics_company_code"),
                name=info.get("return_logistics_company_name"),
            ),
            deadline=deadline_of(info.get("status_deadline")),
            version="" if raw_version in (None, "") else str(raw_version),
            platform_type="" if kind < 0 else str(kind),
            reason_code=as_id(info.get("reason_code")),
            refund_status=as_id(info.get("refund_status")),
            shipped=SHIPPED_BY_TYPE.get(kind),
            evidence=image_links(
                info.get("evidence"),
                item.get("evidence"),
                text.get("evidence"),
                text.get("pictures"),
                text.get("evidence_pictures"),
            ),
            items=items,
            exchange_sku_code=str(exchange.get("code") or ""),
        )

    # ------------------------------------------------------------------ settlements

    def iter_settlements(self, *, start: datetime, end: datetime) -> Iterator[SettlementLine]:
        """``/order/getSettleBillDetailV3`` by settle time, in spans of at most 7 days; pages
        by sending back ``next_start_index``/``next_start_time`` until ``is_end``.

        ``platform_line_id`` = ``request_no:order_id`` (settle request and sku order) so it
        is unique whether ``request_no`` names one bill line or one settlement batch."""
        seen: set[str] = set()
        for lower, upper in time_spans(start, end, SETTLEMENT_SPAN):
            start_time, start_index = bill_time(lower), ""
            while True:
                params: dict[str, Any] = {
                    "size": PAGE_SIZE,
                    "start_time": start_time,
                    "end_time": bill_time(upper),
                    "time_type": "0",
                }
                if start_index:
                    params["start_index"] = start_index
                data = as_dict(self._api("/order/getSettleBillDetailV3", params, idempotent=True))
                if str(data.get("code") or SETTLEMENT_OK) != SETTLEMENT_OK:
                    raise PlatformRejected(str(data.get("code_msg") or ""), code=str(data.get("code")))
                for row in data.get("data") or []:
                    if isinstance(row, dict):
                        line = self.settlement_from_payload(row)
                        if line.platform_line_id not in seen:
                            seen.add(line.platform_line_id)
                            yield line
                if as_int(data.get("is_end"), 1) == 1:
                    break
                next_index, next_time = (
                    str(data.get("next_start_index") or ""),
                    str(data.get("next_start_time") or ""),
                )
                if not next_index or (next_index == start_index and (next_time or start_time) == start_time):
                    raise TemporarilyUnavailable("settlement cursor did not advance")
                start_index, start_time = next_index, next_time or start_time

    def settlement_from_payload(self, row: dict[str, Any]) -> SettlementLine:
        """Map one bill line (amounts in fen)."""
        settled = str(row.get("settle_time") or "")
        try:
            settled_at = parse_bill_time(settled)
        except ValueError:
            raise TemporarilyUnavailable(f"bill line with unreadable settle_time {settled!r}") from None
        return SettlementLine(
            platform=Platform.DOUYIN,
            platform_shop_id=self.session.platform_shop_id,
            platform_line_id=f"{row.get('request_no') or ''}:{as_id(row.get('order_id'))}",
            platform_order_id=as_id(row.get("shop_order_id")),
            settled_at=settled_at,
            amount_fen=as_int(row.get("settle_amount")),
            commission_fen=as_int(row.get("commission")),
            service_fee_fen=as_int(row.get("platform_service_fee")),
            kind=SETTLEMENT_KIND.get(as_int(row.get("trade_type")), str(row.get("trade_type"))),
            raw=row,
        )

"""WeChat Channels shop (微信小店) connector — after-sales and settlements."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from channels.connectors.base import as_dict, as_int, epoch_seconds
from channels.connectors.wechat.api import AFTERSALE_WINDOW, _seconds, _shanghai_text, _str_id, logger
from channels.connectors.wechat.orders import line_id
from channels.errors import PlatformRejected
from channels.types import (
    AfterSale,
    AfterSaleStatus,
    AfterSaleType,
    Platform,
    SettlementLine,
)

AFTERSALE_TYPES = {
    "REFUND": AfterSaleType.REFUND_ONLY,
    "RETURN": AfterSaleType.RETURN_REFUND,
    "EXCHANGE": AfterSaleType.EXCHANGE,
}
AFTERSALE_STATUSES: dict[str, AfterSaleStatus] = {
    "MERCHANT_PROCESSING": AfterSaleStatus.WAITING_MERCHANT,
    "USER_WAIT_RETURN": AfterSaleStatus.WAITING_BUYER_RETURN,
    "USER_WAIT_CONFIRM": AfterSaleStatus.WAITING_BUYER_RETURN,  # the buyer's turn
    "MERCHANT_WAIT_RECEIPT": AfterSaleStatus.WAITING_MERCHANT_RECEIPT,
    "PLATFORM_REFUNDING": AfterSaleStatus.REFUNDING,
    "PLATFORM_REFUND_FAIL": AfterSaleStatus.REFUNDING,
    "MERCHANT_REFUND_RETRY_FAIL": AfterSaleStatus.REFUNDING,
    "MERCHANT_OVERDUE_REFUND": AfterSaleStatus.REFUNDING,
    "MERCHANT_REFUND_SUCCESS": AfterSaleStatus.SUCCEEDED,
    "MERCHANT_RETURN_SUCCESS": AfterSaleStatus.SUCCEEDED,
    "MERCHANT_EXCHANGE_SUCCESS": AfterSaleStatus.SUCCEEDED,
    "MERCHANT_REJECT_REFUND": AfterSaleStatus.REJECTED,
    "MERCHANT_REJECT_RETURN": AfterSaleStatus.REJECTED,
    "MERCHANT_REJECT_RESHIP": AfterSaleStatus.REJECTED,
    "USER_CANCELD": AfterSaleStatus.CLOSED,  # sic
    "RETURN_CLOSED": AfterSaleStatus.CLOSED,
    "MERCHANT_FAIL": AfterSaleStatus.CLOSED,
}


class AfterSalesMixin:
    """WechatConnector: after-sales and settlements."""

    # --- after-sales ---------------------------------------------------------------------------------
    def iter_after_sales(self, *, updated_from: datetime, updated_to: datetime) -> Iterator[AfterSale]:
        """After-sales updated in the window: ids (≤ 7-day slices, ``next_key``), then details.
        One after-sale whose detail the platform refuses (``PlatformRejected``) is logged and
        skipped, not the end of the walk; transient errors still end it (the pull retries)."""
        lower = updated_from
        while lower <= updated_to:
            upper = min(lower + AFTERSALE_WINDOW - timedelta(seconds=1), updated_to)
            next_key = ""
            while True:
                body: dict[str, Any] = {
                    "begin_update_time": epoch_seconds(lower),
                    "end_update_time": epoch_seconds(upper) + 1,
                }
                if next_key:
                    body["next_key"] = next_key
                page = self.api("/channels/ec/aftersale/getaftersalelist", body)
                for aftersale_id in page.get("after_sale_order_id_list") or []:
                    try:
                        after_sale = self.get_after_sale(_str_id(aftersale_id))
                    except PlatformRejected as exc:
                        logger.warning("WeChat after-sale %s skipped: detail refused (%s)", aftersale_id, exc)
                        continue
                    yield after_sale
                next_key = str(page.get("next_key") or "")
                if not page.get("has_more") or not next_key:
                    break
            lower = upper + timedelta(seconds=1)

    def get_after_sale(self, platform_after_sale_id: str) -> AfterSale:
        """One after-sale from ``/aftersale/getaftersaleorder``."""
        a = as_dict(
            self.api(
                "/channels/ec/aftersale/getaftersaleorder", {"after_sale_order_id": platform_after_sale_id}
            ).get("after_sale_order")
        )
        if not a:
            raise PlatformRejected("answer without after_sale_order", code="aftersale")
        product = as_dict(a.get("product_info"))
        status = str(a.get("status") or "")
        return AfterSale(
            platform=Platform.WECHAT,
            platform_shop_id=self.session.platform_shop_id,
            platform_after_sale_id=_str_id(a.get("after_sale_order_id")),
            platform_order_id=_str_id(a.get("order_id")),
            platform_line_id=line_id(product.get("product_id"), product.get("sku_id")),
            type=AFTERSALE_TYPES.get(str(a.get("type") or ""), AfterSaleType.OTHER),
            status=AFTERSALE_STATUSES.get(status, AfterSaleStatus.WAITING_MERCHANT),
            platform_status=status,
            refund_fen=as_int(as_dict(a.get("refund_info")).get("amount")),
            quantity=as_int(product.get("count")),
            reason=str(a.get("reason_text") or a.get("reason") or ""),
            created_at=_seconds(a.get("create_time")) or self.now(),
            updated_at=_seconds(a.get("update_time")) or _seconds(a.get("create_time")) or self.now(),
            return_tracking_no=str((a.get("return_info") or {}).get("waybill_id") or ""),
        )

    # --- money ------------------------------------------------------------------------------------
    def iter_settlements(self, *, start: datetime, end: datetime) -> Iterator[SettlementLine]:
        """Funds flows booked in [start, end]: flow ids (``next_key``), then each flow's detail."""
        next_key = ""
        while True:
            body: dict[str, Any] = {
                "page": 1,
                "page_size": 100,
                "start_time": epoch_seconds(start),
                "end_time": epoch_seconds(end),
            }
            if next_key:
                body["next_key"] = next_key
            page = self.api("/channels/ec/funds/getfundsflowlist", body)
            for flow_id in page.get("flow_ids") or []:
                yield self._settlement(_str_id(flow_id))
            next_key = str(page.get("next_key") or "")
            if not page.get("has_more") or not next_key:
                return

    def _settlement(self, flow_id: str) -> SettlementLine:
        flow = self.api("/channels/ec/funds/getfundsflowdetail", {"flow_id": flow_id})["funds_flow"]
        amount = int(flow.get("amount") or 0)
        signed = amount if int(flow.get("flow_type") or 1) == 1 else -amount
        related = flow.get("related_info_list") or []
        order_id = next((_str_id(r.get("order_id")) for r in related if r.get("order_id")), "")
        kind = str(flow.get("funds_type_desc") or flow.get("funds_type") or "")
        return SettlementLine(
            platform=Platform.WECHAT,
            platform_shop_id=self.session.platform_shop_id,
            platform_line_id=_str_id(flow.get("flow_id")) or flow_id,
            platform_order_id=order_id,
            settled_at=_shanghai_text(flow.get("bookkeeping_time")) or self.now(),
            amount_fen=signed,
            service_fee_fen=-signed if "服务费" in kind else 0,
            kind=kind,
            raw=flow,
        )

"""WeChat Channels shop (微信小店) connector — after-sales and settlements."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from channels.connectors.aftersale_fields import (
    deadline_of,
    image_links,
    neutral_carrier,
    platform_carrier,
    require,
)
from channels.connectors.base import as_dict, as_int, epoch_seconds
from channels.connectors.wechat.api import AFTERSALE_WINDOW, _seconds, _shanghai_text, _str_id, logger
from channels.connectors.wechat.orders import line_id
from channels.errors import PlatformRejected, RateLimited
from channels.types import (
    AfterSale,
    AfterSaleItem,
    AfterSaleStatus,
    AfterSaleType,
    Platform,
    RejectReason,
    ReturnAddress,
    SettlementLine,
)

REFUND_CALL_LIMITED = "10020003"  # [choice] the sandbox's code for a second refund call within a minute
REFUND_CALL_INTERVAL = 60  # seconds (WX-ACC: one refund call per order per minute)
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

#: ``sub_type`` of a REFUND [GUESS: the sandbox's words; the reference names the field only]
SHIPPED_BY_SUB_TYPE = {"REFUND_BEFORE_SHIP": False, "REFUND_AFTER_SHIP": True}


def after_sale_from_wechat(a: Any, *, shop_id: str, now: datetime) -> AfterSale:
    """One ``after_sale_order`` in neutral terms (§3.7).

    The line is ``product_id:sku_id`` — how the order mapping names WeChat lines
    (``orders.line_id``), so ``items[0].platform_line_id`` equals ecbao's
    ``OrderLine.platform_line_id``. ``deadline`` = ``deadline`` (s); ``evidence`` =
    ``details.media_id_list`` / ``prove_imgs`` as links (the platform serves media ids as URLs in
    the sandbox; a bare media id that is no link is dropped); ``shipped`` from ``sub_type``
    (``REFUND_BEFORE_SHIP``/``REFUND_AFTER_SHIP`` [GUESS]) and otherwise True for returns and
    exchanges. WeChat has no reissue (补寄) type. A payload without ``after_sale_order_id``
    raises TemporarilyUnavailable ("malformed")."""
    aftersale_id = require(a, "after_sale_order_id", what="WeChat after-sale")
    product = as_dict(a.get("product_info"))
    details = as_dict(a.get("details"))
    status = str(a.get("status") or "")
    kind_text = str(a.get("type") or "")
    kind = AFTERSALE_TYPES.get(kind_text, AfterSaleType.OTHER)
    sub_type = str(a.get("sub_type") or "")
    shipped = SHIPPED_BY_SUB_TYPE.get(sub_type)
    if shipped is None and kind in (AfterSaleType.RETURN_REFUND, AfterSaleType.EXCHANGE):
        shipped = True
    line = line_id(product.get("product_id"), product.get("sku_id")) if product.get("product_id") else ""
    refund = as_dict(a.get("refund_info"))
    returned = as_dict(a.get("return_info"))
    exchange = as_dict(a.get("exchange_product_info"))
    count = as_int(product.get("count"))
    return AfterSale(
        platform=Platform.WECHAT,
        platform_shop_id=shop_id,
        platform_after_sale_id=aftersale_id,
        platform_order_id=_str_id(a.get("order_id")),
        platform_line_id=line,
        type=kind,
        status=AFTERSALE_STATUSES.get(status, AfterSaleStatus.WAITING_MERCHANT),
        platform_status=status,
        refund_fen=as_int(refund.get("amount")),
        quantity=count,
        reason=str(a.get("reason_text") or a.get("reason") or ""),
        created_at=_seconds(a.get("create_time")) or now,
        updated_at=_seconds(a.get("update_time")) or _seconds(a.get("create_time")) or now,
        return_tracking_no=str(returned.get("waybill_id") or ""),
        return_carrier=neutral_carrier(
            Platform.WECHAT, code=returned.get("delivery_id"), name=returned.get("delivery_name")
        ),
        deadline=deadline_of(a.get("deadline")),
        platform_type="/".join(p for p in (kind_text, sub_type) if p),
        reason_code=str(a.get("reason") or "") if str(a.get("reason") or "").isupper() else "",
        refund_status=str(as_dict(a.get("refund_resp")).get("ret", "")) if a.get("refund_resp") else "",
        shipped=shipped,
        evidence=image_links(details.get("media_id_list"), details.get("prove_imgs")),
        items=(
            (
                AfterSaleItem(
                    platform_line_id=line,
                    quantity=count,
                    refund_fen=as_int(refund.get("amount")),
                    merchant_code=str(product.get("sku_code") or ""),
                    platform_sku_id=_str_id(product.get("sku_id")),
                ),
            )  # fmt: skip
            if line
            else ()
        ),
        exchange_sku_code=str(exchange.get("sku_code") or ""),
    )


class AfterSalesMixin:
    """WechatConnector: after-sales and settlements."""

    # --- after-sales ---------------------------------------------------------------------------------
    #: the list's documented filter is the creation time (§3.7); the periodic pull lists new
    #: after-sales by it and re-reads the open ones (``channels.sync.pull_after_sales``)
    after_sales_listed_by_creation = True

    def iter_after_sales(self, *, updated_from: datetime, updated_to: datetime) -> Iterator[AfterSale]:
        """After-sales updated in the window: ids (≤ 7-day slices, ``next_key``), then details.
        ``begin_update_time``/``end_update_time`` are [GUESS] (the reference could not confirm an
        update-time filter; the periodic pull uses ``iter_after_sales_created``). One after-sale
        whose detail the platform refuses (``PlatformRejected``) is logged and skipped, not the end
        of the walk; transient errors still end it (the pull retries)."""
        yield from self._walk_after_sales("update", updated_from, updated_to)

    def iter_after_sales_created(
        self, *, created_from: datetime, created_to: datetime
    ) -> Iterator[AfterSale]:
        """After-sales created in the window (``begin_create_time``/``end_create_time``, §3.7)."""
        yield from self._walk_after_sales("create", created_from, created_to)

    def _walk_after_sales(self, field: str, start: datetime, end: datetime) -> Iterator[AfterSale]:
        lower = start
        while lower <= end:
            upper = min(lower + AFTERSALE_WINDOW - timedelta(seconds=1), end)
            next_key = ""
            while True:
                body: dict[str, Any] = {
                    f"begin_{field}_time": epoch_seconds(lower),
                    f"end_{field}_time": epoch_seconds(upper) + 1,
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
        a = self.api(
            "/channels/ec/aftersale/getaftersaleorder", {"after_sale_order_id": platform_after_sale_id}
        ).get("after_sale_order")
        if not a:
            raise PlatformRejected("answer without after_sale_order", code="aftersale")
        return after_sale_from_wechat(a, shop_id=self.session.platform_shop_id, now=self.now())

    # --- answers (售后处理) ----------------------------------------------------------------------
    #
    # acceptapply {after_sale_order_id, address_id}: a REFUND is paid; a RETURN/EXCHANGE's first
    # call needs ``address_id`` and waits for the buyer's parcel; a RETURN's second call (goods
    # received) pays the refund. rejectapply {after_sale_order_id, reject_reason_type (required),
    # reject_reason}. acceptexchangereship {after_sale_order_id, waybill_id, delivery_id}.
    # One refund call per order per minute (WX-ACC): the platform's refusal becomes
    # ``RateLimited`` with the seconds left. No version guard (``AfterSale.version`` is "").
    # WeChat has no reissue (补寄) type and no parcel intercept API.

    def _answer(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.api(path, body, idempotent=False)
        except PlatformRejected as exc:
            if exc.code == REFUND_CALL_LIMITED:
                found = re.search(r"(\d+(?:\.\d+)?)\s*s\b", exc.platform_message)
                raise RateLimited(
                    f"{exc.code}: {exc.platform_message}",
                    retry_after=float(found.group(1)) if found else float(REFUND_CALL_INTERVAL),
                ) from exc
            raise

    def approve_after_sale(
        self, *, platform_after_sale_id: str, platform_order_id: str, version: str = "",
        return_address_id: str = "",
    ) -> None:  # fmt: skip
        """``acceptapply``; ``address_id`` = ``return_address_id`` or the shop's default return
        address (a return's first approval requires one; a refund ignores it)."""
        body: dict[str, Any] = {"after_sale_order_id": platform_after_sale_id}
        address = return_address_id or next((a.id for a in self.return_addresses() if a.is_default), "")
        if address:
            body["address_id"] = address
        self._answer("/channels/ec/aftersale/acceptapply", body)

    def reject_after_sale(
        self, *, platform_after_sale_id: str, platform_order_id: str, version: str = "",
        reason_code: str, reason: str = "", evidence: tuple[str, ...] = (),
    ) -> None:  # fmt: skip
        """``rejectapply`` with ``reject_reason_type`` (a code of ``after_sale_reject_reasons``);
        evidence images are not sent (the API takes media ids uploaded beforehand)."""
        if not str(reason_code).isdigit():
            raise PlatformRejected(f"reject_reason_type must be a number, not {reason_code!r}", code="reason")
        body: dict[str, Any] = {
            "after_sale_order_id": platform_after_sale_id,
            "reject_reason_type": int(reason_code),
        }
        if reason:
            body["reject_reason"] = reason
        self._answer("/channels/ec/aftersale/rejectapply", body)

    def confirm_return_received(
        self, *, platform_after_sale_id: str, platform_order_id: str, version: str = ""
    ) -> None:
        """A return's goods arrived: ``acceptapply`` again (the second call refunds)."""
        self._answer("/channels/ec/aftersale/acceptapply", {"after_sale_order_id": platform_after_sale_id})

    def ship_exchange(
        self, *, platform_after_sale_id: str, platform_order_id: str, carrier_code: str, tracking_no: str,
        version: str = "",
    ) -> None:  # fmt: skip
        """``acceptexchangereship`` {waybill_id, delivery_id}; ``carrier_code`` is WeChat's
        ``delivery_id`` or ecbao's carrier key."""
        self._answer(
            "/channels/ec/aftersale/acceptexchangereship",
            {"after_sale_order_id": platform_after_sale_id, "waybill_id": tracking_no,
             "delivery_id": platform_carrier(Platform.WECHAT, carrier_code)},
        )  # fmt: skip

    def after_sale_reject_reasons(self) -> list[RejectReason]:
        """``/channels/ec/aftersale/getrejectreason`` [GUESS: name and shape; the reference names
        only ``reject_reason_type``]: ``reject_reason_list[]{reject_reason_type,
        reject_reason_type_text, require_image}``."""
        page = self.api("/channels/ec/aftersale/getrejectreason", {})
        return [
            RejectReason(
                code=_str_id(r.get("reject_reason_type")),
                text=str(r.get("reject_reason_type_text") or ""),
                needs_evidence=bool(r.get("require_image")),
            )  # fmt: skip
            for r in page.get("reject_reason_list") or []
            if isinstance(r, dict) and _str_id(r.get("reject_reason_type"))
        ]

    def return_addresses(self) -> list[ReturnAddress]:
        """``/channels/ec/merchant/address/list`` {offset, limit}: ``address_id_list`` (and, where
        served, ``address_list`` details: ``address_info``, ``default_recv``)."""
        page = self.api("/channels/ec/merchant/address/list", {"offset": 0, "limit": 100})
        details = {
            _str_id(d.get("address_id")): d for d in page.get("address_list") or [] if isinstance(d, dict)
        }
        ids = [_str_id(i) for i in page.get("address_id_list") or []] or list(details)
        out = []
        for address_id in ids:
            d = details.get(address_id, {})
            info = as_dict(d.get("address_info"))
            place = "".join(
                str(info.get(k) or "") for k in ("province_name", "city_name", "county_name", "detail_info")
            )
            out.append(ReturnAddress(id=address_id, text=f"{place} {info.get('user_name') or ''}".strip(),
                                     is_default=bool(d.get("default_recv"))))  # fmt: skip
        return out

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

"""Kuaishou shop (快手电商) connector — after-sales and settlements."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from channels.connectors.aftersale_fields import (
    deadline_of,
    image_links,
    neutral_carrier,
    platform_carrier,
    require,
)
from channels.connectors.base import (
    as_dict,
    as_id,
    as_int,
    as_list,
    time_spans,
)
from channels.connectors.kuaishou.api import (
    BILL_PAGE_SIZE,
    BILL_SPAN,
    NOMORE,
    REFUND_PAGE_SIZE,
    REFUND_SPAN,
    _at,
    fen,
    ms,
    parse_bill_time,
)
from channels.errors import PlatformRejected
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

AFTER_SALE_TYPES = {1: AfterSaleType.RETURN_REFUND, 10: AfterSaleType.REFUND_ONLY, 3: AfterSaleType.EXCHANGE,
                    4: AfterSaleType.RESHIP}  # fmt: skip
AFTER_SALE_STATUSES = {
    10: AfterSaleStatus.WAITING_MERCHANT,
    11: AfterSaleStatus.WAITING_MERCHANT,
    20: AfterSaleStatus.WAITING_MERCHANT,  # platform intervened
    21: AfterSaleStatus.WAITING_MERCHANT,
    22: AfterSaleStatus.WAITING_BUYER_RETURN,  # platform confirmed the return
    30: AfterSaleStatus.WAITING_BUYER_RETURN,
    40: AfterSaleStatus.WAITING_MERCHANT_RECEIPT,
    # [choice] 45: the exchange parcel is with the buyer; nothing is left for the merchant
    45: AfterSaleStatus.SUCCEEDED,
    50: AfterSaleStatus.REFUNDING,
    60: AfterSaleStatus.SUCCEEDED,
}

APPLIED_STATUSES = frozenset({10, 11, 20, 21})  # the buyer applied, the merchant's first answer is due
RECEIPT_STATUSES = frozenset({22, 30, 40})  # confirm.receipt is allowed (schema)
# [choice] used when no refund is named (the sandbox's codes; ``open.refund.reject.reason`` per refund wins)
DEFAULT_REJECT_REASONS = (
    RejectReason(code="11", text="商品已影响二次销售", needs_evidence=True),
    RejectReason(code="12", text="已与买家协商一致"),
    RejectReason(code="13", text="买家未退回商品"),
)


def _num(value: str) -> int | str:
    """Ids go out as the schema types them (int64) when numeric."""
    return int(value) if str(value).isdigit() else value


def after_sale_from_kuaishou(raw: dict[str, Any], *, shop_id: str) -> AfterSale:
    """One refund (list item or detail) in neutral terms.

    Kuaishou does not say how many pieces a refund covers (``productNum`` is for vouchers
    only), so ``quantity`` is 0 = unknown unless a count is given. One order = one line (``oid``),
    so ``items`` holds that one line (``relSkuId``/``skuId``, ``skuNick`` = merchant code).
    ``evidence``: ``pictures`` / ``refundPictures`` / ``picUrls`` / ``images`` (lists or
    comma-separated links) [GUESS: §2.7 names no picture field]. ``deadline`` = ``expireTime``
    (ms). ``shipped``: ``receiptStatus``/type do not say it reliably, so None unless the
    refund is a return or exchange (goods necessarily shipped). A payload without ``refundId``
    raises TemporarilyUnavailable ("malformed")."""
    refund_id = require(raw, "refundId", what="Kuaishou refund")
    status = as_int(raw.get("status"))
    neutral = AFTER_SALE_STATUSES.get(status)
    if neutral is None:
        neutral = (
            AfterSaleStatus.REJECTED if as_int(raw.get("negotiateStatus")) == 3 else AfterSaleStatus.CLOSED
        )
    handling = as_int(raw.get("handlingWay"), -1)
    kind = AFTER_SALE_TYPES.get(handling, AfterSaleType.OTHER)
    if kind == AfterSaleType.RESHIP and neutral == AfterSaleStatus.WAITING_MERCHANT_RECEIPT:
        neutral = AfterSaleStatus.WAITING_MERCHANT  # [choice] a reissue at 40: the merchant must send it
    oid = as_id(raw.get("oid"))
    logistics = as_dict(raw.get("logisticsInfo"))
    quantity = as_int(raw.get("refundNum")) or as_int(raw.get("productNum"))
    fee = as_int(raw.get("refundFee"))
    sku = as_id(raw.get("relSkuId")) or as_id(raw.get("skuId"))
    exchange = as_dict(raw.get("exchangeSkuInfo"))
    return AfterSale(
        platform=Platform.KUAISHOU,
        platform_shop_id=shop_id,
        platform_after_sale_id=refund_id,
        platform_order_id=oid,
        platform_line_id=oid,
        type=kind,
        status=neutral,
        platform_status=str(status),
        refund_fen=fee,
        quantity=quantity,
        reason=str(raw.get("refundReasonDesc") or raw.get("refundDesc") or ""),
        created_at=_at(raw.get("createTime")) or _at(raw.get("submitTime")) or datetime.fromtimestamp(0, UTC),
        updated_at=_at(raw.get("updateTime")) or _at(raw.get("createTime")) or datetime.fromtimestamp(0, UTC),
        return_tracking_no=str(logistics.get("expressNo") or ""),
        return_carrier=neutral_carrier(Platform.KUAISHOU, code=logistics.get("expressCode")),
        deadline=deadline_of(raw.get("expireTime")),
        platform_type="" if handling < 0 else str(handling),
        reason_code=as_id(raw.get("refundReason")),
        refund_status=as_id(raw.get("negotiateStatus")),
        shipped=True if kind in (AfterSaleType.RETURN_REFUND, AfterSaleType.EXCHANGE) else None,
        evidence=image_links(
            raw.get("pictures"),
            raw.get("refundPictures"),
            raw.get("refundPicture"),
            raw.get("picUrls"),
            raw.get("images"),
        ),
        items=(
            (
                AfterSaleItem(
                    platform_line_id=oid,
                    quantity=quantity,
                    refund_fen=fee,
                    merchant_code=str(raw.get("skuNick") or ""),
                    platform_sku_id=sku,
                ),
            )  # fmt: skip
            if oid
            else ()
        ),
        exchange_sku_code=str(exchange.get("skuNick") or exchange.get("skuCode") or ""),
    )


def settlement_from_kuaishou(raw: dict[str, Any], *, shop_id: str) -> SettlementLine:
    """One settled bill; its line id is ``orderNo:settlementTime:kind`` (the bill has no id of its own)."""
    amount = fen(raw.get("settlementAmount"))
    kind = "refund_after_settle" if amount < 0 else "settle"
    commission = sum(
        fen(raw.get(name))
        for name in (
            "distributorCommissionAmount",
            "activityUserCommissionAmount",
            "kzkCommissionAmount",
            "serviceAmount",
        )
    )
    settled_at = parse_bill_time(raw.get("settlementTime")) or datetime.fromtimestamp(0, UTC)
    order_no = as_id(raw.get("orderNo"))
    return SettlementLine(
        platform=Platform.KUAISHOU,
        platform_shop_id=shop_id,
        platform_line_id=f"{order_no}:{int(settled_at.timestamp())}:{kind}",
        platform_order_id=order_no,
        settled_at=settled_at,
        amount_fen=amount,
        commission_fen=commission,
        service_fee_fen=fen(raw.get("platformCommissionAmount")),
        kind=kind,
        raw=raw,
    )


class AfterSalesMixin:
    """KuaishouConnector: after-sales and settlements."""

    # ------------------------------------------------------------------ after-sales and money

    def iter_after_sales(self, *, updated_from: datetime, updated_to: datetime) -> Iterator[AfterSale]:
        """``open.seller.order.refund.pcursor.list`` by update time, in one-day windows (§2.7);
        each refund is then read in full (``open.seller.order.refund.detail``: the list carries no
        pictures, exchange SKU or return waybill), so a pulled version equals a pushed one (the
        push path reads the detail too). A refund whose detail is refused is mapped from its list
        item."""
        for lower, upper in time_spans(updated_from, updated_to, REFUND_SPAN):
            cursor = ""
            while True:
                params = {"beginTime": ms(lower), "endTime": ms(upper), "type": 9, "pageSize": REFUND_PAGE_SIZE,
                          "currentPage": 1, "sort": 2, "queryType": 2, "pcursor": cursor}  # fmt: skip
                data = as_dict(self._api("open.seller.order.refund.pcursor.list", params).get("data"))
                for raw in as_list(data.get("refundOrderInfoList")):
                    refund_id = as_id(raw.get("refundId")) if isinstance(raw, dict) else ""
                    if refund_id:
                        try:
                            yield self.get_after_sale(refund_id)
                            continue
                        except PlatformRejected:
                            pass
                    yield after_sale_from_kuaishou(raw, shop_id=self.session.platform_shop_id)
                following = str(data.get("pcursor") or NOMORE)
                if following == NOMORE:
                    break
                if following == cursor:
                    raise PlatformRejected("the refund cursor did not advance", code="cursor")
                cursor = following

    def get_after_sale(self, platform_after_sale_id: str) -> AfterSale:
        """One refund: ``open.seller.order.refund.detail`` (§2.7)."""
        data = as_dict(
            self._api("open.seller.order.refund.detail", {"refundId": platform_after_sale_id}).get("data")
        )
        return after_sale_from_kuaishou(data, shop_id=self.session.platform_shop_id)

    # ------------------------------------------------------------------ answers (售后处理)
    #
    # Parameter names from the official schemas (KS-PY ``OpenSellerOrderRefund*Schema``,
    # ``OpenRefund*Schema``): refundId, refundAmount (fen; 0 for an exchange), status (the
    # refund's current status, checked by the platform), addressId, reasonCode, rejectDesc,
    # rejectImages, expressNo, expressCode (integer). Which method applies depends on the
    # refund's handlingWay and status, so each answer reads the refund first. Kuaishou has no
    # version guard in ``AfterSale.version`` (""); its ``status`` plays that part.

    def _write(self, method: str, params: dict[str, Any]) -> None:
        self._api(method, params, write=True)

    def _refund_now(self, platform_after_sale_id: str) -> AfterSale:
        return self.get_after_sale(platform_after_sale_id)

    def approve_after_sale(
        self, *, platform_after_sale_id: str, platform_order_id: str, version: str = "",
        return_address_id: str = "",
    ) -> None:  # fmt: skip
        """Refund only → ``open.seller.order.refund.approve``; return / exchange first approval →
        ``open.seller.order.refund.returngoods.approve`` (``addressId``; the platform's default
        when ""); a return whose goods came back → ``open.seller.order.refund.confirm.receipt``;
        reissue [choice] → ``open.seller.order.refund.approve`` with amount 0."""
        a = self._refund_now(platform_after_sale_id)
        status = as_int(a.platform_status)
        refund_id = _num(platform_after_sale_id)
        if a.type == AfterSaleType.RETURN_REFUND and status in RECEIPT_STATUSES:
            self._write("open.seller.order.refund.confirm.receipt", {"refundId": refund_id, "status": status})
        elif a.type in (AfterSaleType.REFUND_ONLY, AfterSaleType.RESHIP) and status in APPLIED_STATUSES:
            params: dict[str, Any] = {"refundId": refund_id, "refundAmount": a.refund_fen, "status": status,
                                      "negotiateStatus": as_int(a.refund_status) or 1}  # fmt: skip
            if a.type == AfterSaleType.REFUND_ONLY:
                params["refundHandingWay"] = 10  # sic (the schema spells it so)
            self._write("open.seller.order.refund.approve", params)
        elif a.type in (AfterSaleType.RETURN_REFUND, AfterSaleType.EXCHANGE) and status in APPLIED_STATUSES:
            params = {
                "refundId": refund_id,
                "refundAmount": 0 if a.type == AfterSaleType.EXCHANGE else a.refund_fen,
            }
            if return_address_id:
                params["addressId"] = _num(return_address_id)
            self._write("open.seller.order.refund.returngoods.approve", params)
        else:
            raise PlatformRejected(
                f"cannot approve handlingWay {a.platform_type} in status {status}", code="state"
            )

    def reject_after_sale(
        self, *, platform_after_sale_id: str, platform_order_id: str, version: str = "",
        reason_code: str, reason: str = "", evidence: tuple[str, ...] = (),
    ) -> None:  # fmt: skip
        """``open.refund.reject`` with a ``reasonCode`` from ``open.refund.reject.reason``."""
        params: dict[str, Any] = {"refundId": _num(platform_after_sale_id), "reasonCode": as_int(reason_code)}
        if reason:
            params["rejectDesc"] = reason
        if evidence:
            params["rejectImages"] = list(evidence)[:6]  # at most 6 (schema)
        self._write("open.refund.reject", params)

    def confirm_return_received(
        self, *, platform_after_sale_id: str, platform_order_id: str, version: str = ""
    ) -> None:
        """``open.seller.order.refund.confirm.receipt`` (the goods are back, the refund is paid)."""
        a = self._refund_now(platform_after_sale_id)
        status = as_int(a.platform_status)
        if a.type != AfterSaleType.RETURN_REFUND or status not in RECEIPT_STATUSES:
            raise PlatformRejected(f"no return to confirm (status {status})", code="state")
        self._write(
            "open.seller.order.refund.confirm.receipt",
            {"refundId": _num(platform_after_sale_id), "status": status},
        )

    def ship_exchange(
        self, *, platform_after_sale_id: str, platform_order_id: str, carrier_code: str, tracking_no: str,
        version: str = "",
    ) -> None:  # fmt: skip
        """``open.refund.confirm.and.send``: the exchange's goods are back and the replacement
        leaves (a reissue's parcel too [choice]); ``expressCode`` is Kuaishou's integer code (or
        ecbao's carrier key)."""
        code = platform_carrier(Platform.KUAISHOU, carrier_code)
        if not str(code).isdigit():
            raise PlatformRejected(f"no Kuaishou express code for carrier {carrier_code!r}", code="carrier")
        self._write("open.refund.confirm.and.send", {"refundId": _num(platform_after_sale_id),
                                                     "expressNo": tracking_no, "expressCode": int(code)})  # fmt: skip

    def after_sale_reject_reasons(self, *, platform_after_sale_id: str = "") -> list[RejectReason]:
        """``open.refund.reject.reason`` names the reasons for one refund (``refundId``); without
        one, the documented list below [choice: the sandbox's codes]."""
        if not platform_after_sale_id:
            return list(DEFAULT_REJECT_REASONS)
        data = as_dict(
            self._api("open.refund.reject.reason", {"refundId": _num(platform_after_sale_id)}).get("data")
        )
        return [
            RejectReason(
                code=as_id(r.get("reasonCode")),
                text=str(r.get("reasonDesc") or ""),
                needs_evidence=bool(r.get("requiredRejectImage")),
            )  # fmt: skip
            for r in as_list(data.get("rejectReasonList"))
            if isinstance(r, dict) and as_id(r.get("reasonCode"))
        ]

    def return_addresses(self) -> list[ReturnAddress]:
        """``open.address.seller.list`` [GUESS shape: addressList[]{addressId, consignee,
        provinceName, cityName, districtName, townName, address, defaultAddress}]."""
        data = as_dict(self._api("open.address.seller.list", {}).get("data"))
        out = []
        for r in as_list(data.get("addressList")):
            if not isinstance(r, dict) or not as_id(r.get("addressId")):
                continue
            place = "".join(
                str(r.get(k) or "")
                for k in ("provinceName", "cityName", "districtName", "townName", "address")
            )
            out.append(ReturnAddress(id=as_id(r.get("addressId")), text=f"{place} {r.get('consignee') or ''}".strip(),
                                     is_default=bool(r.get("defaultAddress"))))  # fmt: skip
        return out

    def iter_settlements(self, *, start: datetime, end: datetime) -> Iterator[SettlementLine]:
        """Settled bills from ``open.funds.financial.settled.bill.detail`` by settlement time."""
        for lower, upper in time_spans(start, end, BILL_SPAN):
            cursor = ""
            while True:
                params = {
                    "settlementStartTime": ms(lower),
                    "settlementEndTime": ms(upper),
                    "size": BILL_PAGE_SIZE,
                    "cursor": cursor,
                }
                data = as_dict(self._api("open.funds.financial.settled.bill.detail", params).get("data"))
                bills = as_list(data.get("orders"))
                for raw in bills:
                    yield settlement_from_kuaishou(as_dict(raw), shop_id=self.session.platform_shop_id)
                following = str(data.get("cursor") or "")
                if not bills or following in ("", NOMORE):
                    break
                if following == cursor:
                    raise PlatformRejected("the bill cursor did not advance", code="cursor")
                cursor = following

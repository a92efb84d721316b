"""Douyin shop (抖店) connector — after-sales and settlements."""

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
    epoch_seconds,
    time_spans,
)
from channels.connectors.douyin.api import (
    BILL_TIME_FORMAT,
    PAGE_SIZE,
    SETTLEMENT_OK,
    SETTLEMENT_SPAN,
    SHANGHAI,
    _num_id,
    _walk_by_update_time,
    epoch_time,
)
from channels.errors import PlatformRejected, TemporarilyUnavailable
from channels.types import (
    AfterSale,
    AfterSaleItem,
    AfterSaleStatus,
    AfterSaleType,
    InterceptResult,
    Platform,
    RejectReason,
    ReturnAddress,
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
REFUND_IN_PROGRESS = 2
TYPE_RETURN, TYPE_REFUND_SHIPPED, TYPE_REFUND_UNSHIPPED, TYPE_EXCHANGE, TYPE_RESHIP = 0, 1, 2, 3, 7
WAITING_APPROVAL, WAITING_SECOND_APPROVAL = 6, 11
# /afterSale/operate type codes by after-sale type [choice: see the answers section]
APPROVE_CODES = {TYPE_RETURN: 101, TYPE_REFUND_SHIPPED: 201, TYPE_REFUND_UNSHIPPED: 201, TYPE_EXCHANGE: 301,
                 TYPE_RESHIP: 401}  # fmt: skip
REJECT_CODES = {TYPE_RETURN: 102, TYPE_REFUND_SHIPPED: 202, TYPE_REFUND_UNSHIPPED: 202, TYPE_EXCHANGE: 302,
                TYPE_RESHIP: 402}  # fmt: skip
REJECT_SECOND_CODES = {TYPE_RETURN: 112, TYPE_EXCHANGE: 312}
#: the business-failure number of a stale ``update_time`` (``isv.business-failed:40003``) [choice: the
#: sandbox's; the reference names the guard, not its code]
STALE_VERSION_BIZ_CODE = 40003  # refund_status 2 = 退款中
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

    # ------------------------------------------------------------------ answers (售后处理)
    #
    # ``/afterSale/operate`` {type, items[]{aftersale_id, reason, remark, reject_reason_code,
    # evidence[]{type,url,desc}, logistics{company_code, logistics_code, receiver_address_id},
    # update_time}} (DD-GO ``afterSale_operate``). The SDK leaves the ``type`` enum to the API
    # page; the codes below are the sandbox's [choice] (101/102 return first approval/refusal,
    # 111/112 second, 201/202 refund only, 301/302 exchange, 311/312 exchange received + reship /
    # refused, 401/402/411 reissue 补寄 approve / refuse / send). Which code applies depends on the
    # after-sale's type and status, so each answer reads the after-sale first; ``version`` (the
    # caller's ``AfterSale.version``) is sent as ``update_time``: a stale one is refused →
    # ``PlatformRejected(code="stale_version")``.

    def _operate(self, op_type: int, item: dict[str, Any]) -> None:
        try:
            data = as_dict(
                self._api("/afterSale/operate", {"type": op_type, "items": [item]}, idempotent=False)
            )
        except PlatformRejected as exc:
            if exc.sub_code.endswith(f":{STALE_VERSION_BIZ_CODE}"):
                raise PlatformRejected(
                    exc.platform_message, code="stale_version", sub_code=exc.sub_code
                ) from exc
            raise
        for result in as_list(data.get("items")):
            if isinstance(result, dict) and as_int(result.get("status_code")) != 0:
                raise PlatformRejected(
                    str(result.get("status_msg") or ""), code=str(result.get("status_code"))
                )

    def _answer_item(self, platform_after_sale_id: str, version: str) -> dict[str, Any]:
        item: dict[str, Any] = {"aftersale_id": platform_after_sale_id}
        if version:
            item["update_time"] = as_int(version)
        return item

    def _current(self, platform_after_sale_id: str) -> tuple[int, int]:
        """(type, status) codes of the after-sale as the platform has it now."""
        current = self.get_after_sale(platform_after_sale_id)
        return as_int(current.platform_type, -1), as_int(current.platform_status)

    def approve_after_sale(
        self, *, platform_after_sale_id: str, platform_order_id: str, version: str = "",
        return_address_id: str = "",
    ) -> None:  # fmt: skip
        """First approval (101 return / 201 refund only / 301 exchange / 401 reissue), or the second
        approval of a return whose goods came back (111); a return or exchange names
        ``receiver_address_id`` (``return_addresses``)."""
        kind, status = self._current(platform_after_sale_id)
        item = self._answer_item(platform_after_sale_id, version)
        if status == WAITING_SECOND_APPROVAL and kind == TYPE_RETURN:
            return self._operate(111, item)
        if status != WAITING_APPROVAL or kind not in APPROVE_CODES:
            raise PlatformRejected(f"cannot approve type {kind} in status {status}", code="state")
        if kind in (TYPE_RETURN, TYPE_EXCHANGE):
            # the SDK: 101/301 carry the return address; the shop's default when none is named
            address = return_address_id or next((a.id for a in self.return_addresses() if a.is_default), "")
            if address:
                item["logistics"] = {"receiver_address_id": _num_id(address)}
        self._operate(APPROVE_CODES[kind], item)

    def reject_after_sale(
        self, *, platform_after_sale_id: str, platform_order_id: str, version: str = "",
        reason_code: str, reason: str = "", evidence: tuple[str, ...] = (),
    ) -> None:  # fmt: skip
        """First refusal (102/202/302/402) or, after the goods came back, second (112/312), with a
        ``reject_reason_code`` from ``/afterSale/rejectReasonCodeList`` and image evidence."""
        kind, status = self._current(platform_after_sale_id)
        codes = REJECT_SECOND_CODES if status == WAITING_SECOND_APPROVAL else REJECT_CODES
        if status not in (WAITING_APPROVAL, WAITING_SECOND_APPROVAL) or kind not in codes:
            raise PlatformRejected(f"cannot refuse type {kind} in status {status}", code="state")
        item = self._answer_item(platform_after_sale_id, version)
        item.update(reason=reason or reason_code, remark=reason or reason_code)
        if reason_code:
            item["reject_reason_code"] = as_int(reason_code) or reason_code
        if evidence:
            item["evidence"] = [{"type": 1, "url": url, "desc": ""} for url in evidence]
        self._operate(codes[kind], item)

    def confirm_return_received(
        self, *, platform_after_sale_id: str, platform_order_id: str, version: str = ""
    ) -> None:
        """A return's goods arrived: 111 (second approval, the refund is paid). An exchange is
        confirmed by sending its replacement (``ship_exchange``)."""
        kind, status = self._current(platform_after_sale_id)
        if kind != TYPE_RETURN or status != WAITING_SECOND_APPROVAL:
            raise PlatformRejected(f"no return to confirm (type {kind}, status {status})", code="state")
        self._operate(111, self._answer_item(platform_after_sale_id, version))

    def ship_exchange(
        self, *, platform_after_sale_id: str, platform_order_id: str, carrier_code: str, tracking_no: str,
        version: str = "",
    ) -> None:  # fmt: skip
        """The replacement's parcel: 311 for an exchange whose goods came back, 411 [choice] for
        an approved reissue; ``carrier_code`` is Douyin's slug or ecbao's carrier key."""
        kind, _ = self._current(platform_after_sale_id)
        op = {TYPE_EXCHANGE: 311, TYPE_RESHIP: 411}.get(kind)
        if op is None:
            raise PlatformRejected(f"type {kind} has no replacement parcel", code="state")
        item = self._answer_item(platform_after_sale_id, version)
        item["logistics"] = {
            "company_code": platform_carrier(Platform.DOUYIN, carrier_code),
            "logistics_code": tracking_no,
        }
        self._operate(op, item)

    def intercept_parcel(
        self, *, platform_after_sale_id: str, carrier_code: str, tracking_no: str
    ) -> InterceptResult:
        """``/afterSale/applyLogisticsIntercept`` {after_sale_id, op_from 1 (merchant),
        intercept_targets[]{company_code, tracking_no}} → the parcel's ``is_success`` /
        ``can_intercept``, ``intercept_cost`` (fen) and ``unavailable_reason``."""
        data = as_dict(
            self._api(
                "/afterSale/applyLogisticsIntercept",
                {
                    "after_sale_id": _num_id(platform_after_sale_id),
                    "op_from": 1,
                    "intercept_targets": [
                        {
                            "company_code": platform_carrier(Platform.DOUYIN, carrier_code),
                            "tracking_no": tracking_no,
                        }
                    ],
                },
                idempotent=False,
            )
        )
        results = [r for r in as_list(data.get("intercept_results")) if isinstance(r, dict)]
        mine = next((r for r in results if str(r.get("tracking_no") or "") == tracking_no), None)
        if mine is None:
            accepted = as_int(data.get("success_count")) > 0
            return InterceptResult(accepted=accepted, reason=str(data.get("unavailable_reason") or ""))
        accepted = bool(mine.get("is_success") or mine.get("can_intercept"))
        return InterceptResult(
            accepted=accepted,
            cost_fen=as_int(mine.get("intercept_cost")) if accepted else 0,
            reason=""
            if accepted
            else str(mine.get("unavailable_reason") or data.get("unavailable_reason") or ""),
        )

    def after_sale_reject_reasons(self) -> list[RejectReason]:
        """``/afterSale/rejectReasonCodeList``: ``reject_reason_code``, ``reason``, ``evidence_need`` Y/N."""
        data = as_dict(self._api("/afterSale/rejectReasonCodeList", {}, idempotent=True))
        return [
            RejectReason(
                code=as_id(r.get("reject_reason_code")),
                text=str(r.get("reason") or ""),
                needs_evidence=str(r.get("evidence_need") or "").upper() == "Y",
            )
            for r in as_list(data.get("items"))
            if isinstance(r, dict) and as_id(r.get("reject_reason_code"))
        ]

    def return_addresses(self) -> list[ReturnAddress]:
        """``/address/list``: the shop's address book (``address_id``, ``is_default`` = default
        return address; the SDK spells ``reciever_name`` and ``receiver_provinc``)."""
        data = as_dict(self._api("/address/list", {"page_no": 1, "page_size": 100}, idempotent=True))
        out = []
        for r in as_list(data.get("address_list")):
            if not isinstance(r, dict) or not as_id(r.get("address_id")):
                continue
            place = "".join(
                str(r.get(k) or "")
                for k in (
                    "receiver_provinc",
                    "receiver_city",
                    "receiver_district",
                    "receiver_street",
                    "receiver_detail",
                )
            )
            name = str(r.get("reciever_name") or "")
            out.append(
                ReturnAddress(
                    id=as_id(r.get("address_id")),
                    text=f"{place} {name}".strip(),
                    is_default=as_int(r.get("is_default")) == 1,
                )
            )
        return out

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

"""Kuaishou shop (快手电商) connector — shipping: ship, carriers, e-waybills."""

from __future__ import annotations

import json
from typing import Any

from channels import carriers
from channels.connectors.base import (
    as_dict,
    as_int,
    as_list,
    key_digest,
)
from channels.connectors.kuaishou.api import logger
from channels.connectors.kuaishou.orders import shipped_quantity
from channels.errors import PlatformRejected
from channels.types import (
    Carrier,
    Platform,
    ShipFrom,
    ShipmentParcel,
    Waybill,
    WaybillAccount,
    WaybillPrint,
    WaybillRequest,
)

# §2.5 (KS-DOC 物流公司编号): expressCode → name; the fallback when the list API is missing.
EXPRESS_CODES: dict[int, str] = {
    2: "EMS", 3: "申通快递", 4: "顺丰速运", 6: "圆通速递", 8: "邮政快递包裹", 9: "中通快递", 11: "韵达快递",
    12: "中通快运", 14: "京东", 17: "德邦", 53: "德邦快递", 97: "邮政标准快递", 109: "极兔速递", 113: "菜鸟速递",
}  # fmt: skip


class ShippingMixin:
    """KuaishouConnector: shipping."""

    # ------------------------------------------------------------------ shipping

    @staticmethod
    def _express_code(parcel: ShipmentParcel) -> int:
        if not parcel.carrier_code.isdigit():
            raise PlatformRejected(
                f"Kuaishou needs an integer expressCode, got {parcel.carrier_code!r}", code="carrier"
            )
        return int(parcel.carrier_code)

    def ship(self, *, platform_order_id: str, parcels: list[ShipmentParcel], request_id: str) -> None:
        """Ship parcels of one Kuaishou order (§2.5).

        One parcel without lines on an order with nothing shipped and no gifts →
        ``open.seller.order.goods.deliver``. Parcels with lines, or a whole order with gifts or
        already partly shipped → ``open.order.goods.split.deliver`` (one package per parcel;
        a whole-order parcel takes everything left of the order and its gifts). More parcels
        without lines are added with ``open.seller.order.goods.logistics.append``.
        Kuaishou has no idempotency key for shipping (``request_id`` is not sent), so these
        writes are never re-sent on a timeout; a repeat answers "already shipped"."""
        if not parcels:
            raise ValueError("nothing to ship")
        oid = int(platform_order_id)
        with_lines = [p for p in parcels if p.lines]
        whole = [p for p in parcels if not p.lines]
        packages: list[dict[str, Any]] = [
            {"expressCode": self._express_code(p), "expressNo": p.tracking_no,
             "deliveryGoodsInfoList": [{"oid": int(line_id), "deliveryNum": qty} for line_id, qty in p.lines]}
            for p in with_lines
        ]  # fmt: skip
        appended = whole
        if whole and not with_lines:
            first, appended = whole[0], whole[1:]
            raw = self._detail(platform_order_id)
            num = as_int(as_dict(raw.get("orderItemInfo")).get("num"))
            status = as_int(as_dict(raw.get("orderBaseInfo")).get("status"))
            left = [(oid, num - shipped_quantity(status, num, raw.get("orderDeliveryInfo")))]
            for sub in as_list(raw.get("subOrderInfo")):
                sub = as_dict(sub)
                sub_base = as_dict(sub.get("subOrderBaseInfo"))
                if as_int(sub_base.get("status")) == 80:
                    continue
                sub_num = as_int(as_dict(sub.get("subOrderItemInfo")).get("num"))
                sub_shipped = shipped_quantity(
                    as_int(sub_base.get("status")), sub_num, sub.get("subOrderDeliveryInfo")
                )
                left.append((as_int(sub_base.get("oid")), sub_num - sub_shipped))
            left = [(line, qty) for line, qty in left if qty > 0]
            if left == [(oid, num)]:
                self._api("open.seller.order.goods.deliver",
                          {"orderId": oid, "expressCode": self._express_code(first), "expressNo": first.tracking_no}, write=True)  # fmt: skip
            elif left:
                packages.append({"expressCode": self._express_code(first), "expressNo": first.tracking_no,
                                 "deliveryGoodsInfoList": [{"oid": line, "deliveryNum": qty} for line, qty in left]})  # fmt: skip
            else:
                appended = whole  # everything shipped already: the parcels are extra boxes
        if packages:
            self._api(
                "open.order.goods.split.deliver",
                {"mainOrderId": oid, "deliveryItemInfoList": packages},
                write=True,
            )
        for parcel in appended:
            self._api("open.seller.order.goods.logistics.append",
                      {"oid": oid, "expressCode": self._express_code(parcel), "expressNo": parcel.tracking_no}, write=True)  # fmt: skip

    def list_carriers(self) -> list[Carrier]:
        """Shipping carriers with their integer ``expressCode`` (as strings).

        Read from ``open.logistics.company.list``; the official table of §2.5 when the
        platform does not answer that method."""
        try:
            data = self._api("open.logistics.company.list", {}).get("data")
        except PlatformRejected as exc:
            logger.info("carrier list unavailable (%s); using the published table", exc)
            return [Carrier(code=str(code), name=name) for code, name in EXPRESS_CODES.items()]
        return [
            Carrier(code=str(as_int(c.get("expressCode"))), name=str(c.get("expressName") or ""))
            for c in as_list(data)
            if isinstance(c, dict)
        ]

    # ------------------------------------------------------------------ e-waybills
    # Idempotency: ``requestId`` = ecbao's key and ``packageCode`` derived from it (same code ⇒
    # same waybill), so a repeat returns the number already taken. Child numbers (SF only) come
    # with the take (``totalPackageQuantity``); print data comes only with the take.

    def list_waybill_accounts(self) -> list[WaybillAccount]:
        """``open.express.subscribe.query``: every subscribed carrier branch with its balance."""
        accounts = []
        for s in as_list(self._api("open.express.subscribe.query", {}).get("data")):
            s = as_dict(s)
            code = str(s.get("expressCompanyCode") or "")
            key = carriers.key_of(Platform.KUAISHOU, code, ewaybill=True)
            address = as_dict(next(iter(as_list(s.get("senderAddress"))), {}))
            accounts.append(
                WaybillAccount(
                    carrier=key, carrier_code=code, carrier_name=carriers.name_of(key) if key else code,
                    branch_code=str(s.get("netSiteCode") or ""), branch_name=str(s.get("netSiteName") or ""),
                    account_id=str(s.get("settleAccount") or ""), available=as_int(s.get("availableQuantity")),
                    allocated=as_int(s.get("allocatedQuantity")), recycled=as_int(s.get("recycledQuantity")),
                    cancelled=as_int(s.get("cancelQuantity")),
                    sender=ShipFrom(name="", mobile="", province=str(address.get("provinceName") or ""),
                                    city=str(address.get("cityName") or ""), district=str(address.get("districtName") or ""),
                                    street=str(address.get("streetName") or ""), detail=str(address.get("detailAddress") or ""))
                    if address else None,
                )
            )  # fmt: skip
        return accounts

    def take_waybill(self, request: WaybillRequest) -> Waybill:
        """``open.express.ebill.get`` with one request (receiver as the first order's ciphertexts)."""
        if not request.platform_order_ids:
            raise ValueError("a waybill needs at least one order")
        company = request.carrier_code
        carrier = carriers.key_of(Platform.KUAISHOU, company, ewaybill=True)
        if request.child_count and not carriers.child_waybills(Platform.KUAISHOU, carrier):
            raise ValueError(f"Kuaishou has no child waybills for {company}")
        oid = request.platform_order_ids[0]
        body = self._ebill_request(self._detail(oid), oid, company, request)
        answers = as_list(
            self._api(
                "open.express.ebill.get", {"getEbillOrderRequest": [body]}, write=True, idempotent=True
            ).get("data")
        )
        answer = as_dict(next((a for a in answers if as_dict(a).get("requestId") == request.key), {}))
        outcome = as_dict(answer.get("baseResponse"))
        taken = [as_dict(x) for x in as_list(answer.get("data")) if as_dict(x).get("waybillCode")]
        if not outcome.get("success") or not taken:
            raise PlatformRejected(
                str(outcome.get("message") or "no waybill"), code=str(outcome.get("result") or "ebill")
            )
        shipping = carriers.code_for(Platform.KUAISHOU, carrier)

        def number(info: dict[str, Any], children: tuple[Waybill, ...] = ()) -> Waybill:
            # the answer carries no sort marks outside the encrypted print data (§2.10)
            return Waybill(
                key=request.key, tracking_no=str(info["waybillCode"]), carrier=carrier, carrier_code=company,
                shipping_code=shipping, platform_order_ids=tuple(request.platform_order_ids),
                print_info=self._ebill_print(info), children=children,
            )  # fmt: skip

        parent = next((x for x in taken if not x.get("parentWaybillCode")), taken[0])
        children = tuple(number(x) for x in taken if x is not parent)
        return number(parent, children)

    @staticmethod
    def _ebill_print(info: dict[str, Any]) -> WaybillPrint:
        print_data = str(info.get("printData") or "")
        return WaybillPrint(
            print_data=print_data, sign=str(info.get("signature") or ""), key=str(info.get("key") or ""),
            template_url=str(_json(print_data).get("templateURL") or ""),
        )  # fmt: skip

    def cancel_waybill(self, *, carrier_code: str, tracking_no: str, platform_waybill_id: str = "") -> None:
        """``open.express.ebill.cancel``; 运单号已取消 counts as done."""
        try:
            self._api("open.express.ebill.cancel", {"waybillCode": tracking_no, "expressCompanyCode": carrier_code},
                      write=True, idempotent=True)  # fmt: skip
        except PlatformRejected as exc:
            if "已取消" not in exc.platform_message:
                raise

    def print_data(
        self,
        *,
        carrier_code: str,
        tracking_no: str,
        platform_waybill_id: str = "",
        request: WaybillRequest | None = None,
        parent_tracking_no: str = "",
    ) -> WaybillPrint:
        """Kuaishou has no print-data API: the original ``request`` is taken again (same key,
        same number) and its print data returned."""
        if request is None:
            raise PlatformRejected("Kuaishou gives print data only with the take: keep it", code="print")
        taken = self.take_waybill(request)
        for w in (taken, *taken.children):
            if w.tracking_no == tracking_no:
                return w.print_info
        raise PlatformRejected(f"{tracking_no} is not the number of this request", code="print")

    def _ebill_request(
        self, raw: dict[str, Any], oid: str, company: str, request: WaybillRequest
    ) -> dict[str, Any]:
        base, address = as_dict(raw.get("orderBaseInfo")), as_dict(raw.get("orderAddress"))
        s = request.sender
        items = [{"itemTitle": i.title, "itemQuantity": i.quantity} for i in request.items]
        if not items:  # the order's own lines, its gifts included (they travel in the parcel)
            lines = [as_dict(raw.get("orderItemInfo"))]
            lines += [
                as_dict(as_dict(sub).get("subOrderItemInfo")) for sub in as_list(raw.get("subOrderInfo"))
            ]
            items = [
                {"itemTitle": str(i.get("itemTitle") or ""), "itemQuantity": as_int(i.get("num"))}
                for i in lines
            ]
        body = {
            "merchantCode": str(base.get("sellerOpenId") or ""),
            "merchantName": str(base.get("sellerNick") or ""),
            "packageCode": key_digest(request.key),
            "itemList": items,
            "receiverContract": {"name": str(address.get("encryptedConsignee") or ""), "mobile": str(address.get("encryptedMobile") or "")},
            "senderContract": {"name": s.name, "mobile": s.mobile},
            "expressCompanyCode": company,
            "orderChannel": "KUAISHOU",
            "tradeOrderCode": oid,
            "senderAddress": {"provinceName": s.province, "cityName": s.city, "districtName": s.district,
                              "streetName": s.street, "detailAddress": s.detail},
            "receiverAddress": {"provinceName": str(address.get("province") or ""), "cityName": str(address.get("city") or ""),
                                "districtName": str(address.get("district") or ""), "streetName": str(address.get("town") or ""),
                                "detailAddress": str(address.get("encryptedAddress") or "")},
            "requestId": request.key,
            "totalPackageQuantity": 1 + request.child_count,
        }  # fmt: skip
        if request.branch_code:
            body["netSiteCode"] = request.branch_code
        if request.account_id:
            body["settleAccount"] = request.account_id
        if request.weight_g:
            body["totalPackageWeight"] = request.weight_g
        if request.remark:
            body["tradeOrderRemark"] = request.remark
        return body


def _json(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) and text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}

"""Kuaishou shop (快手电商) connector — shipping: ship, carriers, e-waybills."""

from __future__ import annotations

import json
from typing import Any

from channels.connectors.base import (
    as_dict,
    as_int,
    as_list,
)
from channels.connectors.kuaishou.api import EBILL_BATCH, logger
from channels.connectors.kuaishou.orders import shipped_quantity
from channels.errors import PlatformRejected
from channels.types import (
    Carrier,
    ShipmentParcel,
    Waybill,
)

# §2.5 (KS-DOC 物流公司编号): expressCode → name; the fallback when the list API is missing.
EXPRESS_CODES: dict[int, str] = {
    2: "EMS", 3: "申通快递", 4: "顺丰速运", 6: "圆通速递", 8: "邮政快递包裹", 9: "中通快递", 11: "韵达快递",
    12: "中通快运", 14: "京东", 17: "德邦", 53: "德邦快递", 97: "邮政标准快递", 109: "极兔速递", 113: "菜鸟速递",
}  # fmt: skip
# Shipping expressCode → e-waybill expressCompanyCode [GUESS §2.10].
EBILL_COMPANY: dict[int, str] = {
    9: "ZTO", 6: "YTO", 3: "STO", 11: "YUNDA", 4: "SF", 109: "JT", 2: "EMS", 14: "JD", 8: "POSTB", 53: "DBKD",
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

    # ------------------------------------------------------------------ e-waybills and buyer data

    def create_waybills(
        self, *, carrier_code: str, platform_order_ids: list[str], sender: dict
    ) -> list[Waybill]:
        """Take e-waybills with ``open.express.ebill.get`` (§2.10), receiver as the order's ciphertexts.

        ``carrier_code``: the shipping ``expressCode`` (mapped to the e-waybill company code)
        or an e-waybill company code itself. ``sender``: ``name``, ``mobile``, ``province``,
        ``city``, ``district``, ``street``, ``detail``. One waybill per order (``packageCode``
        "1", ``requestId`` = order id), so asking again returns the same number; the call is
        nevertheless not re-sent on a timeout. ``Waybill.print_data`` is JSON ``{printData,
        signature, key, version}`` for Kuaishou's print component; ``Waybill.carrier_code`` is the
        shipping code to ship with. Refused orders are logged and left out; when every order
        is refused, PlatformRejected is raised."""
        if not platform_order_ids:
            return []
        company = EBILL_COMPANY.get(int(carrier_code)) if carrier_code.isdigit() else carrier_code
        if not company:
            raise PlatformRejected(f"no e-waybill company for carrier {carrier_code}", code="carrier")
        shipping_code = (
            carrier_code
            if carrier_code.isdigit()
            else next(
                (str(code) for code, name in EBILL_COMPANY.items() if name == carrier_code), carrier_code
            )
        )
        waybills: list[Waybill] = []
        errors: list[tuple[str, str]] = []
        for start in range(0, len(platform_order_ids), EBILL_BATCH):
            chunk = platform_order_ids[start : start + EBILL_BATCH]
            requests = [self._ebill_request(self._detail(oid), oid, company, sender) for oid in chunk]
            answers = as_list(
                self._api("open.express.ebill.get", {"getEbillOrderRequest": requests}, write=True).get(
                    "data"
                )
            )
            for answer in answers:
                answer = as_dict(answer)
                oid = str(answer.get("requestId") or "")
                outcome = as_dict(answer.get("baseResponse"))
                taken = [as_dict(x) for x in as_list(answer.get("data")) if as_dict(x).get("waybillCode")]
                if not outcome.get("success") or not taken:
                    errors.append((oid, str(outcome.get("message") or "no waybill")))
                    logger.warning("waybill refused for order %s: %s", oid, outcome.get("message"))
                    continue
                for info in taken:
                    print_data = json.dumps(
                        {k: info.get(k, "") for k in ("printData", "signature", "key", "version")},
                        ensure_ascii=False,
                    )
                    waybills.append(Waybill(platform_order_id=oid, tracking_no=str(info["waybillCode"]), carrier_code=shipping_code,
                                            print_data=print_data))  # fmt: skip
        if not waybills and errors:
            raise PlatformRejected(errors[0][1], code="ebill")
        return waybills

    def _ebill_request(self, raw: dict[str, Any], oid: str, company: str, sender: dict) -> dict[str, Any]:
        base, item, address = (
            as_dict(raw.get("orderBaseInfo")),
            as_dict(raw.get("orderItemInfo")),
            as_dict(raw.get("orderAddress")),
        )
        items = [{"itemTitle": str(item.get("itemTitle") or ""), "itemQuantity": as_int(item.get("num"))}]
        for sub in as_list(raw.get("subOrderInfo")):
            sub_item = as_dict(as_dict(sub).get("subOrderItemInfo"))
            items.append(
                {
                    "itemTitle": str(sub_item.get("itemTitle") or ""),
                    "itemQuantity": as_int(sub_item.get("num")),
                }
            )
        return {
            "merchantCode": str(base.get("sellerOpenId") or ""),
            "merchantName": str(base.get("sellerNick") or ""),
            "packageCode": "1",
            "itemList": items,
            "receiverContract": {"name": str(address.get("encryptedConsignee") or ""), "mobile": str(address.get("encryptedMobile") or "")},
            "senderContract": {"name": str(sender.get("name") or ""), "mobile": str(sender.get("mobile") or sender.get("phone") or "")},
            "expressCompanyCode": company,
            "orderChannel": "KUAISHOU",
            "tradeOrderCode": oid,
            "senderAddress": {"provinceName": str(sender.get("province") or ""), "cityName": str(sender.get("city") or ""),
                              "districtName": str(sender.get("district") or ""), "streetName": str(sender.get("street") or ""),
                              "detailAddress": str(sender.get("detail") or "")},
            "receiverAddress": {"provinceName": str(address.get("province") or ""), "cityName": str(address.get("city") or ""),
                                "districtName": str(address.get("district") or ""), "streetName": str(address.get("town") or ""),
                                "detailAddress": str(address.get("encryptedAddress") or "")},
            "requestId": oid,
            "totalPackageQuantity": 1,
        }  # fmt: skip

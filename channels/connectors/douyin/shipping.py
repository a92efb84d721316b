"""Douyin shop (抖店) connector — shipping: ship, carriers, e-waybills."""

from __future__ import annotations

import json
from typing import Any

from channels.connectors.base import (
    as_dict,
    as_id,
)
from channels.connectors.douyin.api import logger
from channels.errors import PlatformRejected
from channels.types import (
    Carrier,
    ChannelOrder,
    ShipmentParcel,
    Waybill,
)


class ShippingMixin:
    """DouyinConnector: shipping."""

    # ------------------------------------------------------------------ shipping

    def ship(self, *, platform_order_id: str, parcels: list[ShipmentParcel], request_id: str) -> None:
        """One parcel without lines → ``/order/logisticsAdd`` (whole order; has no idempotency
        key, so it is never re-sent); otherwise ``/order/logisticsAddMultiPack`` with
        ``request_id`` as the platform's idempotency key (a repeat returns the first result,
        so it is retried). Every parcel of a multi-package shipment must name its lines."""
        if not parcels:
            raise ValueError("nothing to ship")
        if len(parcels) == 1 and not parcels[0].lines:
            parcel = parcels[0]
            params = {
                "order_id": platform_order_id,
                "company_code": parcel.carrier_code,
                "logistics_code": parcel.tracking_no,
            }
            self._api("/order/logisticsAdd", params, idempotent=False)
            return
        if any(not p.lines for p in parcels):
            raise ValueError("a multi-package shipment needs the lines of every parcel")
        if not request_id:
            raise ValueError("a multi-package shipment needs a request_id (its idempotency key)")
        pack_list = [
            {
                "shipped_order_info": [
                    {"shipped_order_id": line_id, "shipped_num": qty} for line_id, qty in p.lines
                ],
                "logistics_code": p.tracking_no,
                "company_code": p.carrier_code,
            }
            for p in parcels
        ]
        self._api(
            "/order/logisticsAddMultiPack",
            {"order_id": platform_order_id, "pack_list": pack_list, "request_id": request_id},
            idempotent=True,
        )

    def list_carriers(self) -> list[Carrier]:
        """``/order/logisticsCompanyList`` (its ``data`` is an array of {id, name, code})."""
        data = self._api("/order/logisticsCompanyList", {}, idempotent=True)
        return [
            Carrier(code=str(c.get("code") or ""), name=str(c.get("name") or ""))
            for c in data or []
            if isinstance(c, dict)
        ]

    # ------------------------------------------------------------------ e-waybills

    def create_waybills(
        self, *, carrier_code: str, platform_order_ids: list[str], sender: dict
    ) -> list[Waybill]:
        """Take waybills with ``/logistics/newCreateOrder`` (receiver as the order's
        ciphertexts — 隐私面单), then their print data with ``/logistics/waybillApply``.

        Each order's detail is read first for its receiver ciphertexts. ``sender``: ``name``,
        ``mobile`` (or ``phone``), ``province``, ``city``, ``district``, ``street``,
        ``detail``. ``Waybill.print_data`` is JSON ``{"print_data", "sign"}``, both handed
        as they are to Douyin's print component. Orders the platform refuses are logged and
        left out of the result; when every order is refused, PlatformRejected is raised.
        Taking a number is not idempotent (a repeat takes another), so it is never re-sent.
        """
        if not platform_order_ids:
            return []
        order_infos = [self._waybill_order_info(self.get_order(order_id)) for order_id in platform_order_ids]
        contact = {"name": sender.get("name", "")}
        if sender.get("mobile"):
            contact["mobile"] = sender["mobile"]
        if sender.get("phone"):
            contact["phone"] = sender["phone"]
        params = {
            "logistics_code": carrier_code,
            "sender_info": {
                "address": {
                    "country_code": "CHN",
                    "province_name": sender.get("province", ""),
                    "city_name": sender.get("city", ""),
                    "district_name": sender.get("district", ""),
                    "street_name": sender.get("street", ""),
                    "detail_address": sender.get("detail", ""),
                },
                "contact": contact,
            },
            "order_infos": order_infos,
        }
        data = as_dict(self._api("/logistics/newCreateOrder", params, idempotent=False))
        taken = [e for e in data.get("ebill_infos") or [] if isinstance(e, dict) and e.get("track_no")]
        errors = [e for e in data.get("err_infos") or [] if isinstance(e, dict)]
        for err in errors:
            logger.warning(
                "waybill refused for order %s: %s %s",
                err.get("order_id"),
                err.get("err_code"),
                err.get("err_msg"),
            )
        if not taken:
            first = errors[0] if errors else {}
            raise PlatformRejected(
                str(first.get("err_msg") or "no waybill taken"), code=str(first.get("err_code") or "")
            )
        applies = [{"logistics_code": carrier_code, "track_no": str(e["track_no"])} for e in taken]
        printed = as_dict(self._api("/logistics/waybillApply", {"waybill_applies": applies}, idempotent=True))
        print_data = {
            str(i.get("track_no")): i for i in printed.get("waybill_infos") or [] if isinstance(i, dict)
        }
        waybills = []
        for e in taken:
            track_no = str(e["track_no"])
            info = print_data.get(track_no, {})
            waybills.append(
                Waybill(
                    platform_order_id=as_id(e.get("order_id")),
                    tracking_no=track_no,
                    carrier_code=carrier_code,
                    sort_code=str(e.get("sort_code") or ""),
                    print_data=json.dumps({"print_data": info["print_data"], "sign": info.get("sign", "")})
                    if info.get("print_data")
                    else "",
                )
            )
        return waybills

    @staticmethod
    def _waybill_order_info(order: ChannelOrder) -> dict[str, Any]:
        r = order.receiver
        street = str(as_dict(as_dict(order.raw.get("post_addr")).get("street")).get("name") or r.town)
        return {
            "order_id": order.platform_order_id,
            "receiver_info": {
                "address": {
                    "country_code": "CHN",
                    "province_name": r.province,
                    "city_name": r.city,
                    "district_name": r.district,
                    "street_name": street,
                    "detail_address": r.address.cipher,
                },
                "contact": {"name": r.name.cipher, "mobile": r.phone.cipher},
            },
            "items": [
                {"item_name": line.title, "item_specs": line.spec, "item_count": line.quantity}
                for line in order.lines
            ],
        }

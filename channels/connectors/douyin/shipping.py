"""Douyin shop (抖店) connector — shipping: ship, carriers, e-waybills."""

from __future__ import annotations

from typing import Any

from channels import carriers
from channels.connectors.base import (
    as_dict,
    as_int,
    key_digest,
)
from channels.connectors.douyin.api import logger
from channels.errors import PlatformRejected
from channels.types import (
    Carrier,
    ChannelOrder,
    Platform,
    ShipFrom,
    ShipmentParcel,
    Waybill,
    WaybillAccount,
    WaybillPrint,
    WaybillRequest,
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
    # Idempotency: ``/logistics/newCreateOrder`` with the same ``order_id`` + ``pack_id`` returns
    # the number already taken for them, so ``pack_id`` is derived from ecbao's key and a take
    # is safe to repeat. Child numbers (子母件) come with the take (``total_pack_count``).

    def _carrier_keys(self) -> dict[str, str]:
        """Douyin slug → neutral key, from the platform's own list (read once per connector)."""
        cache = self.__dict__.get("_dy_carrier_keys")
        if cache is None:
            cache = {code: key for key, code in carriers.resolve_listed(self.list_carriers()).items()}
            self.__dict__["_dy_carrier_keys"] = cache
        return cache

    def _carrier_key(self, slug: str) -> str:
        return self._carrier_keys().get(slug) or carriers.key_of(Platform.DOUYIN, slug)

    def list_waybill_accounts(self) -> list[WaybillAccount]:
        """``/logistics/listShopNetsite`` (every subscribed carrier's branches and balances)."""
        data = as_dict(self._api("/logistics/listShopNetsite", {}, idempotent=True))
        accounts = []
        for n in data.get("netsites") or []:
            if not isinstance(n, dict):
                continue
            slug = str(n.get("company") or data.get("logistics_code") or "")
            key = self._carrier_key(slug)
            addresses = [a for a in n.get("sender_address") or [] if isinstance(a, dict)]
            address = addresses[0] if addresses else {}
            accounts.append(
                WaybillAccount(
                    carrier=key, carrier_code=slug, carrier_name=carriers.name_of(key) if key else slug,
                    branch_code=str(n.get("netsite_code") or ""), branch_name=str(n.get("netsite_name") or ""),
                    available=as_int(n.get("amount"), -1) if n.get("amount") not in (None, "") else None,
                    allocated=as_int(n.get("allocated_quantity")), recycled=as_int(n.get("recycled_quantity")),
                    cancelled=as_int(n.get("cancelled_quantity")),
                    sender=ShipFrom(name="", mobile="", province=str(address.get("province_name") or ""),
                                    city=str(address.get("city_name") or ""), district=str(address.get("district_name") or ""),
                                    street=str(address.get("street_name") or ""), detail=str(address.get("detail_address") or ""))
                    if address else None,
                )
            )  # fmt: skip
        return accounts

    def take_waybill(self, request: WaybillRequest) -> Waybill:
        """``/logistics/newCreateOrder`` (receiver as the first order's ciphertexts — 隐私面单 —
        read from its detail), then ``/logistics/waybillApply`` for the print data."""
        if not request.platform_order_ids:
            raise ValueError("a waybill needs at least one order")
        slug = request.carrier_code
        carrier = self._carrier_key(slug)
        if request.child_count and not carriers.child_waybills(Platform.DOUYIN, carrier):
            raise ValueError(f"Douyin has no child waybills for {slug}")
        order = self.get_order(request.platform_order_ids[0])
        s = request.sender
        info = self._waybill_order_info(order)
        info["pack_id"] = key_digest(request.key)
        info["items"] = [{"item_name": i.title, "item_count": i.quantity} for i in request.items] or info[
            "items"
        ]
        info["total_pack_count"] = 1 + request.child_count
        if request.weight_g:
            info["items"][0]["item_weight"] = request.weight_g
        if request.branch_code:
            info["net_info"] = {"net_code": request.branch_code}
        if request.remark:
            info["remark"] = request.remark
        contact = {"name": s.name, "mobile": s.mobile}
        params = {
            "logistics_code": slug,
            "sender_info": {
                "address": {"country_code": "CHN", "province_name": s.province, "city_name": s.city,
                            "district_name": s.district, "street_name": s.street, "detail_address": s.detail},
                "contact": contact,
            },
            "order_infos": [info],
        }  # fmt: skip
        data = as_dict(self._api("/logistics/newCreateOrder", params, idempotent=True))
        taken = [e for e in data.get("ebill_infos") or [] if isinstance(e, dict) and e.get("track_no")]
        if not taken:
            err = next((e for e in data.get("err_infos") or [] if isinstance(e, dict)), {})
            raise PlatformRejected(
                str(err.get("err_msg") or "no waybill taken"), code=str(err.get("err_code") or "")
            )
        e = taken[0]
        track_no = str(e["track_no"])
        subs = tuple(c for c in str(e.get("sub_waybill_codes") or "").split(",") if c)
        prints = self._print_infos(slug, [track_no, *subs])
        marks = {
            "sort_code": str(e.get("sort_code") or ""),
            "short_address": str(e.get("short_address_name") or e.get("short_address_code") or ""),
            "package_center": str(e.get("package_center_name") or e.get("package_center_code") or ""),
        }

        def number(no: str, children: tuple[Waybill, ...] = ()) -> Waybill:
            return Waybill(
                key=request.key, tracking_no=no, carrier=carrier, carrier_code=slug, shipping_code=slug,
                platform_order_ids=tuple(request.platform_order_ids), print_info=prints.get(no, WaybillPrint()),
                children=children, **marks,
            )  # fmt: skip

        return number(track_no, tuple(number(c) for c in subs))

    def _print_infos(self, slug: str, track_nos: list[str]) -> dict[str, WaybillPrint]:
        applies = [{"logistics_code": slug, "track_no": no} for no in track_nos]
        printed = as_dict(self._api("/logistics/waybillApply", {"waybill_applies": applies}, idempotent=True))
        out = {}
        for i in printed.get("waybill_infos") or []:
            if isinstance(i, dict) and i.get("print_data"):
                out[str(i.get("track_no"))] = WaybillPrint(
                    print_data=str(i["print_data"]), sign=str(i.get("sign") or "")
                )
        errors = [e for e in printed.get("err_infos") or [] if isinstance(e, dict)]
        if errors and not out:
            raise PlatformRejected(
                str(errors[0].get("err_msg") or "no print data"), code=str(errors[0].get("err_code") or "")
            )
        return out

    def cancel_waybill(self, *, carrier_code: str, tracking_no: str, platform_waybill_id: str = "") -> None:
        """``/logistics/cancelOrder``; a number already cancelled (success false) counts as done."""
        data = as_dict(
            self._api(
                "/logistics/cancelOrder",
                {"logistics_code": carrier_code, "track_no": tracking_no},
                idempotent=True,
            )
        )
        if not as_dict(data.get("cancel_result")).get("success"):
            logger.info("waybill %s was cancelled already", tracking_no)

    def print_data(
        self,
        *,
        carrier_code: str,
        tracking_no: str,
        platform_waybill_id: str = "",
        request: WaybillRequest | None = None,
        parent_tracking_no: str = "",
    ) -> WaybillPrint:
        """``/logistics/waybillApply`` again."""
        found = self._print_infos(carrier_code, [tracking_no]).get(tracking_no)
        if found is None:
            raise PlatformRejected("no print data", code="print")
        return found

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

"""WeChat Channels shop (微信小店) connector — shipping: ship, carriers, e-waybills."""

from __future__ import annotations

from typing import Any

from channels.connectors.wechat.api import _str_id, logger
from channels.connectors.wechat.orders import line_id, split_line_id
from channels.errors import (
    PlatformRejected,
)
from channels.types import (
    Carrier,
    ChannelOrder,
    ShipmentParcel,
    Waybill,
)

# Shipping and e-waybill carrier codes differ for Yunda (samples: "YD" vs "YUNDA").
EWAYBILL_ALIASES = {"YD": "YUNDA"}


class ShippingMixin:
    """WechatConnector: shipping."""

    # --- shipping ----------------------------------------------------------------------------------
    @staticmethod
    def _remaining(order: ChannelOrder) -> dict[str, int]:
        """Quantity still to ship per line: ordered − refunded − shipped."""
        raw_lines = (order.raw.get("order_detail") or {}).get("product_infos") or []
        left: dict[str, int] = {}
        for p in raw_lines:
            key = line_id(p.get("product_id"), p.get("sku_id"))
            left[key] = (
                left.get(key, 0) + int(p.get("sku_cnt") or 0) - int(p.get("finish_aftersale_sku_cnt") or 0)
            )
        for package in order.packages:
            for key, qty in package.lines:
                left[key] = left.get(key, 0) - qty
        return {k: v for k, v in left.items() if v > 0}

    @staticmethod
    def _product_infos(lines: dict[str, int]) -> list[dict[str, Any]]:
        infos = []
        for key, qty in lines.items():
            product_id, sku_id = split_line_id(key)
            infos.append({"product_id": product_id, "sku_id": sku_id, "product_cnt": qty})
        return infos

    def ship(self, *, platform_order_id: str, parcels: list[ShipmentParcel], request_id: str) -> None:
        """Ship in one ``/order/delivery/send`` call: one ``delivery_list`` entry per parcel; a single
        parcel without lines ships everything still unshipped. WeChat has no idempotency key, so
        this write is never re-sent after a timeout (``request_id`` is only logged)."""
        if not parcels:
            raise ValueError("nothing to ship")
        if len(parcels) == 1 and not parcels[0].lines:
            remaining = self._remaining(self.get_order(platform_order_id))
            if not remaining:
                raise PlatformRejected("nothing left to ship", code="local")
            groups = [(parcels[0], remaining)]
        else:
            groups = []
            for parcel in parcels:
                if not parcel.lines:
                    raise ValueError("with several parcels every parcel must list its lines")
                grouped: dict[str, int] = {}
                for key, qty in parcel.lines:
                    grouped[key] = grouped.get(key, 0) + qty
                groups.append((parcel, grouped))
        deliveries = [
            {
                "delivery_id": parcel.carrier_code,
                "waybill_id": parcel.tracking_no,
                "deliver_type": 1,
                "product_infos": self._product_infos(lines),
            }
            for parcel, lines in groups
        ]
        logger.info(
            "wechat ship order %s in %d parcel(s), request %s", platform_order_id, len(deliveries), request_id
        )
        self.api(
            "/channels/ec/order/delivery/send",
            {"order_id": _str_id(platform_order_id), "delivery_list": deliveries},
            idempotent=False,
        )

    def list_carriers(self) -> list[Carrier]:
        """``delivery_id``s accepted by ``/order/delivery/send``."""
        reply = self.api("/channels/ec/order/deliverycompanylist/get")
        return [
            Carrier(code=str(c["delivery_id"]), name=str(c.get("delivery_name", "")))
            for c in reply.get("company_list") or []
        ]

    # --- e-waybills -----------------------------------------------------------------------------------
    def create_waybills(
        self, *, carrier_code: str, platform_order_ids: list[str], sender: dict
    ) -> list[Waybill]:
        """For each order: precreate → create (idempotent by ``ewaybill_order_id``) → print data.
        The receiver is left for WeChat to fill from the shop order (nothing decrypted here)."""
        opened = {
            str(d["delivery_id"])
            for d in self.api("/channels/ec/logistics/ewaybill/biz/delivery/get").get("list") or []
        }
        delivery_id = (
            carrier_code if carrier_code in opened else EWAYBILL_ALIASES.get(carrier_code, carrier_code)
        )
        accounts = (
            self.api("/channels/ec/logistics/ewaybill/biz/account/get", {"delivery_id": delivery_id}).get(
                "account_list"
            )
            or []
        )
        account = next((a for a in accounts if int(a.get("available") or 0) > 0), None)
        if account is None:
            raise PlatformRejected(f"no e-waybill account with balance for {carrier_code}", code="local")
        templates = (
            self.api("/channels/ec/logistics/ewaybill/biz/template/get", {"delivery_id": delivery_id}).get(
                "total_template"
            )
            or []
        )
        template_id = next(
            (str(t.get("default_template_id")) for t in templates if t.get("delivery_id") == delivery_id),
            "single",
        )
        site = {
            "delivery_id": delivery_id,
            "site_code": str((account.get("site_info") or {}).get("site_code") or ""),
            "ewaybill_acct_id": str(account["acct_id"]),
        }
        sender_info = {
            "name": str(sender.get("name", "")),
            "mobile": str(sender.get("mobile", "")),
            "province": str(sender.get("province", "")),
            "city": str(sender.get("city", "")),
            "county": str(sender.get("county") or sender.get("district", "")),
            "street": str(sender.get("street", "")),
            "address": str(sender.get("address") or sender.get("detail", "")),
        }
        waybills = []
        for order_id in platform_order_ids:
            order = self.get_order(order_id)
            goods = [
                {
                    "good_name": ln.title,
                    "good_count": ln.quantity,
                    "product_id": ln.platform_product_id,
                    "sku_id": ln.platform_sku_id,
                }
                for ln in order.lines
            ]
            request = {
                **site,
                "sender": sender_info,
                "ec_order_list": [{"ec_order_id": _str_id(order_id), "goods_list": goods}],
            }
            ewaybill_order_id = str(
                self.api("/channels/ec/logistics/ewaybill/biz/order/precreate", request)["ewaybill_order_id"]
            )
            created = self.api(
                "/channels/ec/logistics/ewaybill/biz/order/create",
                {**request, "ewaybill_order_id": ewaybill_order_id, "template_id": template_id},
            )
            printed = self.api(
                "/channels/ec/logistics/ewaybill/biz/print/get",
                {"ewaybill_order_id": ewaybill_order_id, "template_id": template_id},
            )
            waybills.append(
                Waybill(
                    platform_order_id=_str_id(order_id),
                    tracking_no=str(created["waybill_id"]),
                    carrier_code=carrier_code,
                    print_data=str(printed.get("print_info") or ""),
                )
            )
        return waybills

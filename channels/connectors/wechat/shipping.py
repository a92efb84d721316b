"""WeChat Channels shop (微信小店) connector — shipping: ship, carriers, e-waybills."""

from __future__ import annotations

from typing import Any

from channels import carriers
from channels.connectors.base import as_int, key_uint64
from channels.connectors.wechat.api import _str_id, logger
from channels.connectors.wechat.orders import line_id, split_line_id
from channels.errors import (
    PlatformRejected,
)
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

EWAYBILL = "/channels/ec/logistics/ewaybill/biz"
EXISTS = "10025019"  # 电子面单已存在: this ewaybill_order_id has its number
CANCELLED = "10025006"  # 电子面单已取消
STATUS_CANCELLED = 2  # /order/get status [sandbox choice: 0 precreated, 1 taken, 2 cancelled]


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
    # WeChat's ``ewaybill_order_id`` is the idempotency key: a uint64 the caller may define (sent
    # as a string); a create with an id that already has its number answers 10025019 电子面单已存在,
    # and the number is read back with ``/order/get``. So a take is safe to repeat, timeouts included.

    def list_waybill_accounts(self) -> list[WaybillAccount]:
        """Every opened carrier's accounts (``/delivery/get`` then ``/account/get`` per carrier),
        with WeChat's available / allocated / recycled / cancel counts."""
        accounts = []
        for delivery in self.api(f"{EWAYBILL}/delivery/get").get("list") or []:
            delivery_id = str(delivery.get("delivery_id") or "")
            listed = (
                self.api(f"{EWAYBILL}/account/get", {"delivery_id": delivery_id}).get("account_list") or []
            )
            for a in listed:
                site = a.get("site_info") or {}
                address, contact = site.get("address") or {}, site.get("contact") or {}
                accounts.append(
                    WaybillAccount(
                        carrier=carriers.key_of(Platform.WECHAT, delivery_id, ewaybill=True),
                        carrier_code=delivery_id,
                        carrier_name=str(delivery.get("delivery_name") or ""),
                        branch_code=str(site.get("site_code") or ""),
                        branch_name=str(site.get("site_name") or ""),
                        account_id=_str_id(a.get("acct_id")),
                        available=as_int(a.get("available")),
                        allocated=as_int(a.get("allocated")),
                        recycled=as_int(a.get("recycled")),
                        cancelled=as_int(a.get("cancel")),
                        sender=ShipFrom(
                            name=str(contact.get("name") or ""),
                            mobile=str(contact.get("mobile") or ""),
                            province=str(address.get("province_name") or ""),
                            city=str(address.get("city_name") or ""),
                            district=str(address.get("district_name") or ""),
                            street=str(address.get("street_name") or ""),
                            detail=str(address.get("detail_address") or ""),
                        ),  # fmt: skip
                    )
                )
        return accounts

    def _template_id(self, delivery_id: str) -> str:
        """The carrier's default template (read once per connector), else the standard 一联单."""
        cache = self.__dict__.setdefault("_ewaybill_templates", {})
        if delivery_id not in cache:
            groups = (
                self.api(f"{EWAYBILL}/template/get", {"delivery_id": delivery_id}).get("total_template") or []
            )
            cache[delivery_id] = next(
                (str(t.get("default_template_id")) for t in groups if t.get("delivery_id") == delivery_id and t.get("default_template_id")),
                "single",
            )  # fmt: skip
        return cache[delivery_id]

    def take_waybill(self, request: WaybillRequest) -> Waybill:
        """``/order/create`` with ``ewaybill_order_id`` derived from the key (no precreate
        needed: the id is ours); 10025019 → ``/order/get``; ``/order/addsuborder`` for missing
        child pieces; ``/print/get`` for each number. The receiver is left for WeChat to fill
        from the first shop order (nothing decrypted here)."""
        if not request.platform_order_ids:
            raise ValueError("a waybill needs at least one order")
        delivery_id = request.carrier_code
        carrier = carriers.key_of(Platform.WECHAT, delivery_id, ewaybill=True)
        if request.child_count and not carriers.child_waybills(Platform.WECHAT, carrier):
            raise ValueError(f"WeChat has no child waybills for {delivery_id}")
        ewaybill_order_id = key_uint64(request.key)
        template_id = self._template_id(delivery_id)
        s = request.sender
        goods = [{"good_name": i.title[:50], "good_count": i.quantity} for i in request.items]
        body = {
            "ewaybill_order_id": ewaybill_order_id,
            "delivery_id": delivery_id,
            "site_code": request.branch_code,
            "ewaybill_acct_id": request.account_id,
            "sender": {"name": s.name, "mobile": s.mobile, "province": s.province, "city": s.city,
                       "county": s.district, "street": s.street, "address": s.detail},
            "ec_order_list": [
                {"ec_order_id": _str_id(order_id), "goods_list": goods if n == 0 else []}
                for n, order_id in enumerate(request.platform_order_ids)
            ],
            "template_id": template_id,
            "remark": request.remark,
        }  # fmt: skip
        try:
            created = self.api(f"{EWAYBILL}/order/create", body)
            tracking_no = str(created["waybill_id"])
            listed = created.get("waybill_id_list") or []
        except PlatformRejected as exc:
            if exc.code != EXISTS:
                raise
            info = (
                self.api(f"{EWAYBILL}/order/get", {"ewaybill_order_id": ewaybill_order_id}).get("order_info")
                or {}
            )
            first = next(iter(info.get("ec_order_list") or []), {})
            if _str_id(first.get("ec_order_id")) != _str_id(request.platform_order_ids[0]):
                raise PlatformRejected(
                    "ewaybill_order_id already used for another order", code=EXISTS
                ) from exc
            if as_int(info.get("status")) == STATUS_CANCELLED or not info.get("waybill_id"):
                raise PlatformRejected(
                    "the waybill of this key was cancelled: take with a new key", code="cancelled"
                ) from exc
            tracking_no, listed = str(info["waybill_id"]), info.get("waybill_id_list") or []
        children = [str(w["waybill_id"]) for w in listed if as_int(w.get("waybill_type")) == 2]
        if request.child_count > len(children):
            added = self.api(
                f"{EWAYBILL}/order/addsuborder",
                {"ewaybill_order_id": ewaybill_order_id, "waybill_id": tracking_no, "delivery_id": delivery_id,
                 "add_package_quantity": request.child_count - len(children), "ewaybill_acct_id": request.account_id},
                idempotent=False,  # a repeat adds more pieces; a retry of the whole take reads them back
            )  # fmt: skip
            children = [
                str(w["waybill_id"])
                for w in added.get("waybill_id_list") or []
                if as_int(w.get("waybill_type")) == 2
            ]

        def number(no: str, parent: str = "", child_nos: tuple[Waybill, ...] = ()) -> Waybill:
            return Waybill(
                key=request.key, tracking_no=no, carrier=carrier, carrier_code=delivery_id,
                shipping_code=carriers.code_for(Platform.WECHAT, carrier) or delivery_id,
                platform_order_ids=tuple(request.platform_order_ids), platform_waybill_id=ewaybill_order_id,
                print_info=self._print_info(ewaybill_order_id, template_id, sub_waybill_id=no if parent else ""),
                children=child_nos,
            )  # fmt: skip

        return number(tracking_no, child_nos=tuple(number(c, tracking_no) for c in children))

    def _print_info(
        self, ewaybill_order_id: str, template_id: str, *, sub_waybill_id: str = ""
    ) -> WaybillPrint:
        body = {"ewaybill_order_id": ewaybill_order_id, "template_id": template_id}
        if sub_waybill_id:
            body["sub_waybill_id"] = sub_waybill_id
        return WaybillPrint(print_data=str(self.api(f"{EWAYBILL}/print/get", body).get("print_info") or ""))

    def cancel_waybill(self, *, carrier_code: str, tracking_no: str, platform_waybill_id: str = "") -> None:
        """``/order/cancel`` (children go with their parent); 电子面单已取消 counts as done."""
        if not platform_waybill_id:
            raise ValueError("WeChat cancels by ewaybill_order_id")
        try:
            self.api(
                f"{EWAYBILL}/order/cancel",
                {
                    "ewaybill_order_id": platform_waybill_id,
                    "delivery_id": carrier_code,
                    "waybill_id": tracking_no,
                },
            )
        except PlatformRejected as exc:
            if exc.code != CANCELLED:
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
        """``/print/get`` again (a child piece by ``sub_waybill_id``)."""
        if not platform_waybill_id:
            raise ValueError("WeChat prints by ewaybill_order_id")
        sub = tracking_no if parent_tracking_no and parent_tracking_no != tracking_no else ""
        return self._print_info(platform_waybill_id, self._template_id(carrier_code), sub_waybill_id=sub)

    def report_printed(
        self, *, carrier_code: str, tracking_no: str, platform_waybill_id: str = "", reprint: bool = False
    ) -> None:
        """``/order/print`` (打印成功通知) with ``re_print`` 1 for a reprint."""
        self.api(
            f"{EWAYBILL}/order/print",
            {"ewaybill_order_id": platform_waybill_id, "delivery_id": carrier_code, "waybill_id": tracking_no,
             "re_print": 1 if reprint else 0},
        )  # fmt: skip

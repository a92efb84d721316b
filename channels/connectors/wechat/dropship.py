"""WeChat Channels shop (微信小店) connector — 代发管理 (platform-native dropship).

Paths (WX-SKIT, WxJava): ``/channels/ec/order/dropship/assign`` ``{order_id, supplier_appid,
dropship_product_list[]{spu_id, sku_id, product_cnt}}`` (by line and quantity; the reply carries
no ``ds_order_id``), ``/dropship/cancel`` ``{ds_order_id, order_id}``, ``/dropship/get``
``{ds_order_id}`` → ``dropship_order``, ``/dropship/list`` ``{order_id, page_info{offset, limit}}``
→ ``ds_order_id_list``. Events: ``channels_ec_order_ext_info_update`` type 14 / 15 (see push.py).

[GUESS] (no source we could read): the ``status`` numbers (1 assigned, 2 shipped, 3 cancelled),
the lines of ``dropship_order`` (``product_infos[]{product_id, sku_id, product_cnt, shipped_cnt,
delivery_deadline}``) and the supplier's parcels (``delivery_info.delivery_product_info[]``).
"""

from __future__ import annotations

from typing import Any

from channels.connectors.base import as_dict, as_int, as_list
from channels.connectors.wechat.api import _seconds, _str_id, logger
from channels.errors import PlatformRejected, TemporarilyUnavailable
from channels.types import DropshipAssignment, DropshipLine, DropshipParcel, DropshipState, Platform

DS = "/channels/ec/order/dropship"
DS_STATES = {1: DropshipState.ASSIGNED, 2: DropshipState.SHIPPED, 3: DropshipState.CANCELLED}  # [GUESS]
DS_LIST_LIMIT = 100


class DropshipMixin:
    """WechatConnector: 代发管理."""

    def _dropship(self, body: dict[str, Any]) -> DropshipAssignment:
        d = as_dict(body)
        lines = tuple(
            DropshipLine(
                platform_product_id=_str_id(p.get("product_id") or p.get("spu_id")),
                platform_sku_id=_str_id(p.get("sku_id")),
                quantity=as_int(p.get("product_cnt")),
                shipped_quantity=as_int(p.get("shipped_cnt")),
                delivery_deadline=_seconds(p.get("delivery_deadline")),
            )
            for p in as_list(d.get("product_infos"))
            if isinstance(p, dict)
        )
        parcels = tuple(
            DropshipParcel(
                carrier_code=_str_id(w.get("delivery_id")),
                tracking_no=_str_id(w.get("waybill_id")),
                shipped_at=_seconds(w.get("delivery_time")),
                lines=tuple(
                    (_str_id(i.get("product_id")), _str_id(i.get("sku_id")), as_int(i.get("product_cnt")))
                    for i in as_list(w.get("product_infos"))
                    if isinstance(i, dict)
                ),
            )
            for w in as_list(as_dict(d.get("delivery_info")).get("delivery_product_info"))
            if isinstance(w, dict)
        )
        status = as_int(d.get("status"), -1)
        return DropshipAssignment(
            platform=Platform.WECHAT,
            native_id=_str_id(d.get("ds_order_id")),
            platform_order_id=_str_id(d.get("order_id")),
            supplier_id=str(d.get("supplier_appid") or ""),
            state=DS_STATES.get(status, DropshipState.UNKNOWN),
            platform_state=str(status),
            lines=lines,
            parcels=parcels,
            created_at=_seconds(d.get("create_time")),
            updated_at=_seconds(d.get("update_time")),
            raw=d,
        )

    def get_dropship(self, *, platform_order_id: str = "", native_id: str) -> DropshipAssignment:
        reply = self.api(f"{DS}/get", {"ds_order_id": _str_id(native_id)})  # type: ignore[attr-defined]
        return self._dropship(reply.get("dropship_order") or {})

    def list_dropships(self, *, platform_order_id: str) -> list[DropshipAssignment]:
        ids: list[str] = []
        offset = 0
        while True:
            reply = self.api(  # type: ignore[attr-defined]
                f"{DS}/list",
                {
                    "order_id": _str_id(platform_order_id),
                    "page_info": {"offset": offset, "limit": DS_LIST_LIMIT},
                },
            )
            page = [_str_id(x) for x in as_list(reply.get("ds_order_id_list"))]
            ids += page
            if not reply.get("has_more") or not page:
                break
            offset += len(page)
        return [self.get_dropship(native_id=i) for i in dict.fromkeys(ids)]

    def _matching(
        self, platform_order_id: str, supplier_id: str, lines: list[tuple[str, str, int]], known: set[str]
    ) -> DropshipAssignment | None:
        for a in self.list_dropships(platform_order_id=platform_order_id):
            if (
                a.native_id not in known
                and a.supplier_id == supplier_id
                and a.state in (DropshipState.ASSIGNED, DropshipState.SHIPPED)
                and a.same_lines(lines)
            ):
                return a
        return None

    def assign_dropship(
        self,
        *,
        platform_order_id: str,
        supplier_id: str,
        lines: list[tuple[str, str, int]],
        known_ids: tuple[str, ...] = (),
    ) -> DropshipAssignment:
        """Read the order's assignments, assign if none matches, read back the new one (the
        assign reply names no ``ds_order_id``). A lost reply is resolved by that read: WeChat
        has no idempotency key, so the assign itself is never re-sent blindly."""
        if not lines or any(q <= 0 for _, _, q in lines):
            raise ValueError("assign at least one unit of each line")
        known = set(known_ids)
        found = self._matching(platform_order_id, supplier_id, lines, known)
        if found is not None:
            logger.info(
                "wechat dropship of %s to %s already assigned: %s",
                platform_order_id,
                supplier_id,
                found.native_id,
            )
            return found
        body = {
            "order_id": _str_id(platform_order_id),
            "supplier_appid": supplier_id,
            "dropship_product_list": [
                {"spu_id": _str_id(p), "sku_id": _str_id(s), "product_cnt": int(q)} for p, s, q in lines
            ],
        }
        try:
            self.api(f"{DS}/assign", body, idempotent=False)  # type: ignore[attr-defined]
        except TemporarilyUnavailable:
            found = self._matching(platform_order_id, supplier_id, lines, known)
            if found is not None:  # the platform acted; only its reply was lost
                return found
            raise
        found = self._matching(platform_order_id, supplier_id, lines, known)
        if found is None:
            raise TemporarilyUnavailable("assigned, but the assignment is not listed yet")
        return found

    def cancel_dropship(self, *, platform_order_id: str, native_id: str) -> DropshipAssignment:
        current = self.get_dropship(native_id=native_id)
        if current.state == DropshipState.CANCELLED:
            return current
        if current.state == DropshipState.SHIPPED:
            raise PlatformRejected("the supplier has shipped", code="shipped")
        try:
            self.api(  # type: ignore[attr-defined]
                f"{DS}/cancel",
                {
                    "ds_order_id": _str_id(native_id),
                    "order_id": _str_id(platform_order_id or current.platform_order_id),
                },
                idempotent=False,
            )
        except TemporarilyUnavailable:
            if self.get_dropship(native_id=native_id).state != DropshipState.CANCELLED:
                raise
        return self.get_dropship(native_id=native_id)

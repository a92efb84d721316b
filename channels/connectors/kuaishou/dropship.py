"""Kuaishou shop (快手电商) connector — ``open.dropshipping.*`` (merchant↔factory dropship).

Merchant side (what ecbao needs): ``relation.merchant.batch.apply`` ``{applyRequestList[{requestId,
factoryCode, applyContent}]}``, ``order.batch.allocate`` ``{dropshippingOrderCodeList, factoryCode}``,
``order.batch.allocate.cancel`` ``{dropshippingOrderCodeList, cancelAllocateReason}``,
``order.merchant.detail`` ``{dropshippingOrderCode}`` and ``order.merchant.list``. Factory side (a
factory's own token): ``ebill.batch.get`` ``{dsOrderGetReq[]}`` (**≤ 10 a call**, batched here),
``order.deliver`` and ``order.logistics.update`` ``{allocateOrderCode, waybillCode,
expressCompanyCode}``. Parameter names from the SDKs (KS-PY models, KS-PHP methods).

Kuaishou orders are one SKU each (``oid``), so an allocation is the whole oid: a request for
part of its quantity is refused here (``PlatformRejected`` code ``local``).

[GUESS] (no source we could read): every reply shape (``allocateResultList[]{dropshippingOrderCode,
allocateOrderCode, success, errorCode, errorMsg}``, the detail's ``dropshippingStatus`` 1 allocated /
2 shipped / 3 cancelled, ``itemList``, ``logisticsList``, ``promiseDeliveryTime``).
"""

from __future__ import annotations

from typing import Any

from channels.connectors.base import as_dict, as_id, as_int, as_list, from_epoch
from channels.connectors.kuaishou.api import EBILL_BATCH, logger
from channels.errors import PlatformRejected, TemporarilyUnavailable
from channels.types import DropshipAssignment, DropshipLine, DropshipParcel, DropshipState, Platform

DS_STATES = {1: DropshipState.ASSIGNED, 2: DropshipState.SHIPPED, 3: DropshipState.CANCELLED}  # [GUESS]
NOT_ALLOCATED = "800104"  # [GUESS] the detail of an oid never allocated


def _ms(value: Any) -> Any:
    return from_epoch(as_int(value), millis=True) if as_int(value) else None


class DropshipMixin:
    """KuaishouConnector: open.dropshipping."""

    def _ds(self, record: dict[str, Any], oid: str = "") -> DropshipAssignment:
        d = as_dict(record)
        deadline = _ms(d.get("promiseDeliveryTime"))
        lines = tuple(
            DropshipLine(
                platform_product_id=as_id(i.get("itemId")),
                platform_sku_id=as_id(i.get("skuId")),
                quantity=as_int(i.get("num")),
                shipped_quantity=as_int(i.get("deliveredNum")),
                delivery_deadline=deadline,
            )
            for i in as_list(d.get("itemList"))
            if isinstance(i, dict)
        ) or (DropshipLine("", "", 0, delivery_deadline=deadline),)  # itemList is optional
        parcels = tuple(
            DropshipParcel(
                carrier_code=str(w.get("expressCompanyCode") or ""),
                tracking_no=str(w.get("waybillCode") or ""),
                shipped_at=_ms(w.get("deliverTime")),
            )
            for w in as_list(d.get("logisticsList"))
            if isinstance(w, dict)
        )
        status = as_int(d.get("dropshippingStatus"), -1)
        return DropshipAssignment(
            platform=Platform.KUAISHOU,
            native_id=as_id(d.get("allocateOrderCode")),
            platform_order_id=as_id(d.get("dropshippingOrderCode")) or oid,
            supplier_id=str(d.get("factoryCode") or ""),
            state=DS_STATES.get(status, DropshipState.UNKNOWN),
            platform_state=str(status),
            lines=lines,
            parcels=parcels,
            created_at=_ms(d.get("allocateTime")),
            updated_at=_ms(d.get("updateTime")),
            raw=d,
        )

    def _ds_detail(self, oid: str) -> DropshipAssignment | None:
        try:
            env = self._api("open.dropshipping.order.merchant.detail", {"dropshippingOrderCode": int(oid)})  # type: ignore[attr-defined]
        except PlatformRejected as exc:
            if exc.code == NOT_ALLOCATED:
                return None
            raise
        return self._ds(env.get("data") or {}, oid)

    def list_dropships(self, *, platform_order_id: str) -> list[DropshipAssignment]:
        """The oid's latest allocation (Kuaishou's detail names one)."""
        found = self._ds_detail(platform_order_id)
        return [found] if found else []

    def get_dropship(self, *, platform_order_id: str, native_id: str) -> DropshipAssignment:
        found = self._ds_detail(platform_order_id)
        if found is None or (native_id and found.native_id != native_id):
            raise PlatformRejected("allocation not found", code="not_found")
        return found

    def _live(self, oid: str, factory: str, known: set[str]) -> DropshipAssignment | None:
        found = self._ds_detail(oid)
        if (
            found is not None
            and found.native_id not in known
            and found.supplier_id == factory
            and found.state in (DropshipState.ASSIGNED, DropshipState.SHIPPED)
        ):
            return found
        return None

    def assign_dropship(
        self,
        *,
        platform_order_id: str,
        supplier_id: str,
        lines: list[tuple[str, str, int]],
        known_ids: tuple[str, ...] = (),
    ) -> DropshipAssignment:
        if not lines or any(q <= 0 for _, _, q in lines):
            raise ValueError("assign at least one unit of each line")
        order = self.get_order(platform_order_id)  # type: ignore[attr-defined]
        main = [ln for ln in order.lines if not ln.is_gift]
        wanted = sum(q for _, _, q in lines)
        if not main or wanted != sum(ln.quantity for ln in main):
            raise PlatformRejected("快手代发按整单分配：不能只分配订单的部分数量", code="local")
        known = set(known_ids)
        found = self._live(platform_order_id, supplier_id, known)
        if found is not None:
            logger.info(
                "kuaishou dropship of %s to %s already allocated: %s",
                platform_order_id,
                supplier_id,
                found.native_id,
            )
            return found
        params = {"dropshippingOrderCodeList": [int(platform_order_id)], "factoryCode": supplier_id}
        try:
            env = self._api("open.dropshipping.order.batch.allocate", params, write=True, idempotent=False)  # type: ignore[attr-defined]
        except TemporarilyUnavailable:
            found = self._live(platform_order_id, supplier_id, known)
            if found is not None:
                return found
            raise
        results = as_list(as_dict(env.get("data")).get("allocateResultList"))
        mine = next(
            (r for r in results if as_id(as_dict(r).get("dropshippingOrderCode")) == str(platform_order_id)),
            {},
        )
        if not as_dict(mine).get("success"):
            raise PlatformRejected(
                str(mine.get("errorMsg") or "allocation refused"), code=as_id(mine.get("errorCode"))
            )
        found = self._live(platform_order_id, supplier_id, known)
        if found is None:
            raise TemporarilyUnavailable("allocated, but the allocation is not readable yet")
        return found

    def cancel_dropship(self, *, platform_order_id: str, native_id: str) -> DropshipAssignment:
        current = self.get_dropship(platform_order_id=platform_order_id, native_id=native_id)
        if current.state == DropshipState.CANCELLED:
            return current
        if current.state == DropshipState.SHIPPED:
            raise PlatformRejected("the factory has shipped", code="shipped")
        params = {
            "dropshippingOrderCodeList": [int(platform_order_id)],
            "cancelAllocateReason": "商家取消分配",
        }
        try:
            env = self._api(
                "open.dropshipping.order.batch.allocate.cancel", params, write=True, idempotent=False
            )  # type: ignore[attr-defined]
        except TemporarilyUnavailable:
            env = {}
        results = as_list(as_dict(env.get("data")).get("cancelResultList"))
        after = self.get_dropship(platform_order_id=platform_order_id, native_id=native_id)
        if after.state != DropshipState.CANCELLED:
            failed = as_dict(results[0]) if results else {}
            if not env:
                raise TemporarilyUnavailable("cancel reply lost and the allocation is still live")
            raise PlatformRejected(
                str(failed.get("errorMsg") or "cancel refused"), code=as_id(failed.get("errorCode"))
            )
        return after

    def bind_dropship_supplier(self, *, supplier_id: str, request_id: str) -> None:
        env = self._api(  # type: ignore[attr-defined]
            "open.dropshipping.relation.merchant.batch.apply",
            {
                "applyRequestList": [
                    {"requestId": request_id, "factoryCode": supplier_id, "applyContent": "ecbao"}
                ]
            },
            write=True,
            idempotent=True,  # the same requestId
        )
        result = as_dict((as_list(as_dict(env.get("data")).get("applyResultList")) or [{}])[0])
        if not result.get("success"):
            raise PlatformRejected(str(result.get("errorMsg") or "relation refused"), code="relation")

    # --- factory side (the sandbox's factory; a factory's own session) ---------------------------

    def dropship_take_waybills(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``open.dropshipping.ebill.batch.get`` for any number of requests, ``EBILL_BATCH`` (10) a
        call; each request carries its ``requestId`` (the platform's idempotency key), so a
        batch is safe to repeat. Returns one answer per request, in order."""
        answers: list[dict[str, Any]] = []
        for start in range(0, len(requests), EBILL_BATCH):
            chunk = requests[start : start + EBILL_BATCH]
            env = self._api(
                "open.dropshipping.ebill.batch.get", {"dsOrderGetReq": chunk}, write=True, idempotent=True
            )  # type: ignore[attr-defined]
            answers += [as_dict(a) for a in as_list(env.get("data"))]
        return answers

    def dropship_deliver(
        self, *, allocate_order_code: str, express_company_code: str, waybill_code: str
    ) -> None:
        self._api(  # type: ignore[attr-defined]
            "open.dropshipping.order.deliver",
            {
                "allocateOrderCode": allocate_order_code,
                "expressCompanyCode": express_company_code,
                "waybillCode": waybill_code,
            },
            write=True,
            idempotent=True,  # delivering the same number again is answered as done
        )

    def dropship_update_logistics(
        self, *, allocate_order_code: str, express_company_code: str, waybill_code: str
    ) -> None:
        self._api(  # type: ignore[attr-defined]
            "open.dropshipping.order.logistics.update",
            {
                "allocateOrderCode": allocate_order_code,
                "expressCompanyCode": express_company_code,
                "waybillCode": waybill_code,
            },
            write=True,
        )

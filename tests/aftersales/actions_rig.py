"""Set-up of the answer tests (``aftersales.actions``, the policy, the API): the sandbox over real
HTTP with its three shops connected to the tenant (``tests.logistics.waybill_world``), buyers'
after-sales applied in the world, read through the connector, stored as channel versions and
ingested (``aftersales.services.ingest``) — the way a pull brings them in."""

from __future__ import annotations

from typing import Any

from channels import services as channel_services
from channels.connectors.base import RetryPolicy
from orders.models import Order
from sandbox.world import ShipmentSpec
from tests.logistics.waybill_world import Shops, world_order_id

OPERATE = {"douyin": "/afterSale/operate"}


def connect(store):
    """Short pauses between a connector's own retries (the sandbox's faults are deliberate)."""
    return channel_services.connector_for(store, retry=RetryPolicy(base_delay=0.01, rate_limit_attempts=1))


def pull(store, platform_after_sale_id: str):
    """Read one after-sale from the platform, store the version, ingest it (as a pull does)."""
    from aftersales import services

    connector = channel_services.connector_for(store)
    try:
        version = connector.get_after_sale(platform_after_sale_id)
    finally:
        connector.http.close()
    channel_services.store_after_sale_version(store=store, after_sale=version, source="pull")
    return services.ingest(store_id=store.pk, platform_after_sale_id=platform_after_sale_id)


def world_line_id(shops: Shops, order: Order) -> str:
    line = order.lines.order_by("id").first()
    return line.platform_line_id


def ship_in_world(shops: Shops, order: Order, *, tracking_no: str = "") -> str:
    """The merchant shipped the whole order on the platform (the buyer can then ask a return)."""
    oid = world_order_id(shops, order)
    tracking_no = tracking_no or f"YT{order.pk:010d}"
    shops.world.ship_order(oid, [ShipmentSpec(carrier="YTO", tracking_no=tracking_no)])
    return tracking_no


def apply(shops: Shops, platform: str, kind: str, *, order: Order | None = None, **kwargs: Any):
    """The buyer applies for ``kind`` on the first line of an order (a new one, shipped first
    for every kind but a refund before shipment); returns the ingested ``AfterSale``."""
    order = order or shops.order(platform, 1)
    if kind != "refund_unshipped" and not shops.world.get_order(world_order_id(shops, order)).packages:
        ship_in_world(shops, order)
    applied = shops.world.apply_aftersale(
        world_order_id(shops, order), world_line_id(shops, order), kind=kind, reason="不想要了", **kwargs
    )
    after_sale = pull(shops.stores[platform], applied.aftersale_id)
    assert after_sale is not None
    return after_sale


def operate_calls(shops: Shops, platform: str, *, ok: bool | None = True, after_id: int = 0) -> int:
    """How many answer calls the platform logged (accepted by default)."""
    return sum(
        shops.world.call_counts(platform=platform, path=OPERATE[platform], ok=ok, after_id=after_id).values()
    )


def world_status(shops: Shops, after_sale) -> str:
    return str(shops.world.get_aftersale(after_sale.platform_after_sale_id).status)


# --- until the channel layer's Douyin answers land (h-conn): the same calls, made here -----------


def install_interim_douyin_answers(monkeypatch) -> None:
    """Douyin ``/afterSale/operate`` through the connector's own signed client, if the connector
    does not answer after-sales itself yet (removed once it does)."""
    from channels.connectors.base import Connector
    from channels.connectors.douyin.connector import DouyinConnector
    from channels.errors import PlatformRejected
    from channels.types import AfterSaleStatus, AfterSaleType

    if DouyinConnector.approve_after_sale is not Connector.approve_after_sale:
        return

    def operate(self, op: int, platform_after_sale_id: str, version: str, **extra) -> None:
        item = {"aftersale_id": int(platform_after_sale_id), **extra}
        if version:
            item["update_time"] = int(version)
        try:
            self._api("/afterSale/operate", {"type": op, "items": [item]}, idempotent=False)
        except PlatformRejected as exc:
            if exc.sub_code.endswith(":40003"):
                raise PlatformRejected(exc.platform_message, code="stale_version") from exc
            raise

    def kind_of(self, platform_after_sale_id):
        current = self.get_after_sale(platform_after_sale_id)
        return current.type, current.status

    def approve(self, *, platform_after_sale_id, platform_order_id, version="", return_address_id=""):
        kind, _status = kind_of(self, platform_after_sale_id)
        op = {AfterSaleType.RETURN_REFUND: 101, AfterSaleType.EXCHANGE: 301}.get(kind, 201)
        operate(self, op, platform_after_sale_id, version)

    def reject(
        self, *, platform_after_sale_id, platform_order_id, version="", reason_code, reason="", evidence=()
    ):
        kind, status = kind_of(self, platform_after_sale_id)
        second = status == AfterSaleStatus.WAITING_MERCHANT_RECEIPT
        op = {
            AfterSaleType.RETURN_REFUND: 112 if second else 102,
            AfterSaleType.EXCHANGE: 312 if second else 302,
        }
        operate(self, op.get(kind, 202), platform_after_sale_id, version,
                reject_reason_code=int(reason_code) if reason_code.isdigit() else 0, reason=reason or reason_code)  # fmt: skip

    def confirm(self, *, platform_after_sale_id, platform_order_id, version=""):
        operate(self, 111, platform_after_sale_id, version)

    monkeypatch.setattr(DouyinConnector, "approve_after_sale", approve)
    monkeypatch.setattr(DouyinConnector, "reject_after_sale", reject)
    monkeypatch.setattr(DouyinConnector, "confirm_return_received", confirm)

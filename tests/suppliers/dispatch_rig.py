"""A small world for dispatch tests (h-dispatch): two suppliers and the own warehouse, SKUs
each supplies, and a test router (``orders.hooks.register_router``) that sends a line to the
supplier of its SKU until the real routing engine decides."""

from __future__ import annotations

from dataclasses import dataclass, replace

from inventory import services as stock
from inventory.models import Goods, Sku
from orders import hooks
from orders import services as orders
from suppliers import services
from suppliers.models import Supplier, SupplierSku
from tests.orders.conftest import channel_order, line


@dataclass
class World:
    store: object
    tea: Supplier  # supplies TEA-1 (per-unit freight) and TEA-2 (per-dispatch freight)
    cup: Supplier  # supplies CUP-1 (freight included)
    skus: dict[str, Sku]
    route: dict[int, int]  # SKU id → warehouse id (the test router's table)

    def order(self, oid: str, *lines, freight_fen: int = 0, discount_fen: int = 0, **kw):
        """A paid order ingested (and approved: routed, reserved, fulfilments opened)."""
        co = channel_order(oid=oid, lines=tuple(lines), **kw)
        co = replace(
            co,
            freight_fen=freight_fen,
            discount_fen=discount_fen,
            paid_fen=co.paid_fen + freight_fen - discount_fen,
        )
        return orders.ingest_channel_order(store=self.store, co=co)


def _router(table: dict[int, int]) -> hooks.RouteHook:
    def route(pairs):
        return {
            ln.id: hooks.LineRoute(table[ln.sku_id], note="test router")
            for _, lines in pairs
            for ln in lines
            if ln.sku_id in table
        }

    return hooks.RouteHook(route=route, version=lambda: None)


def make_world(store, skus):
    """Generator for a ``world`` fixture: ``yield from make_world(store, skus)``."""
    goods = Goods.objects.create(name="茶具")
    made = dict(skus)
    for code in ("TEA-1", "TEA-2", "CUP-1"):
        made[code] = Sku.objects.create(goods=goods, merchant_code=code, name=code)
    tea = services.create_supplier(name="杭州茶厂", code="HZT", webhook_url="", notify_email="")
    cup = services.create_supplier(name="景德镇瓷器", code="JDZ")
    services.set_supplier_sku(
        supplier=tea, sku=made["TEA-1"], cost_fen=1200, supplier_code="T1",
        freight=SupplierSku.Freight.PER_UNIT, freight_fen=100,
    )  # fmt: skip
    services.set_supplier_sku(
        supplier=tea, sku=made["TEA-2"], cost_fen=800, supplier_code="T2",
        freight=SupplierSku.Freight.PER_DISPATCH, freight_fen=600,
    )  # fmt: skip
    services.set_supplier_sku(supplier=cup, sku=made["CUP-1"], cost_fen=2500, supplier_code="C1")
    for supplier, code in ((tea, "TEA-1"), (tea, "TEA-2"), (cup, "CUP-1")):
        services.report_stock(supplier=supplier, sku=made[code], on_hand=50)
    table = {
        made["TEA-1"].pk: tea.warehouse_id,
        made["TEA-2"].pk: tea.warehouse_id,
        made["CUP-1"].pk: cup.warehouse_id,
    }
    router = _router(table)
    hooks.register_router(router)
    try:
        yield World(store=store, tea=tea, cup=cup, skus=made, route=table)
    finally:
        hooks._routers.remove(router)


__all__ = ["World", "line", "make_world", "stock"]

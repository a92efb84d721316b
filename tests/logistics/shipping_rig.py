"""A sandbox over real HTTP (platform APIs and print components) and ecbao shops connected to
it, for the printing tests: orders placed on the sandbox shops, pulled into ecbao, parcels,
waybill numbers taken through the connectors, and a WebSocket client that prints through the
sandbox's print components the way ``static/logistics/print.js`` does."""

from __future__ import annotations

import json
import uuid
from contextlib import ExitStack
from typing import Any

from websockets.sync.client import ClientConnection, connect

from channels import services as channel_services
from channels.models import Store
from channels.types import ShipFrom
from inventory.models import Goods, Sku
from inventory.services import receive_stock
from logistics import services as parcels
from logistics.models import CarrierRule, Parcel, SenderAddress, Waybill, WaybillAccount
from orders import services as orders
from orders.models import Order
from sandbox.world import OrderItemSpec, World
from tests.e2e.test_channel_sync import connect as connect_shop
from tests.e2e.test_channel_sync import register_tool_apps

PLATFORMS = ("douyin", "kuaishou", "wechat")
SENDER = ShipFrom(name="鲸选仓库", mobile="13800005678", province="浙江省", city="杭州市", district="余杭区",
                  street="仓前街道", detail="文一西路1号")  # fmt: skip


def connect_stores(world: World) -> dict[str, Store]:
    """The first sandbox shop of each platform connected to the current tenant, with a SKU per
    merchant code the shops sell (plenty of stock, so orders are approved on arrival)."""
    register_tool_apps(world)
    stores = {p: connect_shop(world, p, world.shops(p)[0].shop_id)[0] for p in PLATFORMS}
    goods = Goods.objects.create(name="演示货品")
    codes = {sku.code for p in PLATFORMS for sku in world.skus(world.shops(p)[0].shop_id)}
    for code in sorted(codes):
        receive_stock(
            sku=Sku.objects.create(goods=goods, merchant_code=code, name=code), quantity=500, reason="opening"
        )
    return stores


def place(world: World, store: Store, *quantities: int, buyer: int = 1, sku: int = 0) -> Order:
    """A paid order on the sandbox shop, read through the connector and ingested into ecbao."""
    shop_id = world.shops(store.platform)[
        0
    ].shop_id  # the shop connect_stores connected (WeChat names it gh_…)
    skus = [s for s in world.skus(shop_id) if s.stock >= 10]
    items = [OrderItemSpec(skus[sku + i].sku_id, q) for i, q in enumerate(quantities or (1,))]
    placed = world.create_order(shop_id=shop_id, buyer_id=buyer, items=items, pay=True)
    oid = placed.lines[0].line_id if store.platform == "kuaishou" else placed.order_id
    connector = channel_services.connector_for(store)
    order = orders.ingest_channel_order(store=store, co=connector.get_order(oid))
    parcels.ensure_parcels()
    return order


def parcel_of(order: Order) -> Parcel:
    return Parcel.objects.filter(lines__order_line__order=order).exclude(status="cancelled").distinct().get()


def take(parcel: Parcel, *, carrier: str = "zto") -> Waybill:
    """Take the parcel's number through ``logistics.waybills`` (its shop's accounts synced, a
    carrier rule for ``carrier``, a sender address); a multi-piece carrier gives parcels 2..n
    of the fulfilment child numbers."""
    from logistics import waybills

    prepare_shop(parcel.store, carrier=carrier)
    return waybills.take_for_parcel(parcel)


def prepare_shop(store: Store, *, carrier: str = "zto") -> None:
    """What taking numbers needs: a sender address, the shop's e-waybill accounts, a rule that
    chooses ``carrier`` for the shop."""
    from logistics import waybills

    if not SenderAddress.objects.exists():
        SenderAddress.objects.create(
            name=SENDER.name, mobile=SENDER.mobile, province=SENDER.province, city=SENDER.city,
            district=SENDER.district, street=SENDER.street, detail=SENDER.detail, is_default=True,
        )  # fmt: skip
    if not WaybillAccount.objects.filter(store=store).exists():
        waybills.sync_accounts(store)
    CarrierRule.objects.filter(store_ids__contains=[store.pk]).exclude(carrier=carrier).delete()
    CarrierRule.objects.get_or_create(
        name=f"{store.platform}-{carrier}",
        defaults={"priority": 1, "store_ids": [store.pk], "carrier": carrier},
    )


class ComponentClient:
    """What print.js does with one component: send print requests, match answers by requestID,
    collect ``notifyPrintResult`` pushes per task."""

    def __init__(self, url: str, dialect: str) -> None:
        self._stack = ExitStack()
        self.ws: ClientConnection = self._stack.enter_context(connect(url, open_timeout=5, max_size=None))
        self.dialect = dialect
        self.pushes: list[dict[str, Any]] = []

    def __enter__(self) -> ComponentClient:
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def _request(self, body: dict[str, Any]) -> dict[str, Any]:
        request_id = uuid.uuid4().hex
        self.ws.send(json.dumps({**body, "requestID": request_id}))
        while True:
            message = json.loads(self.ws.recv(timeout=10))
            if message.get("requestID") == request_id:
                return message
            self.pushes.append(message)

    def send(self, jobs: list[dict]) -> list[dict[str, Any]]:
        """Hand ``jobs`` (print_jobs entries of this component) over; the answers."""
        if self.dialect == "wechat":
            return [self._request({"command": "print", "version": "2.0", "printType": 1,
                                   "taskList": [j["document"] for j in jobs]})]  # fmt: skip
        return [
            self._request(
                {
                    "cmd": "print",
                    "version": "1.0",
                    "task": {
                        "taskID": j["task_id"],
                        "preview": False,
                        "printer": "",
                        "firstDocumentNumber": 1,
                        "totalDocumentCount": 1,
                        "documents": [j["document"]],
                    },
                }
            )  # fmt: skip
            for j in jobs
        ]

    def result(self, task_id: str) -> tuple[bool, str, str]:
        """(printed, error, printer) of ``task_id`` from its notifyPrintResult."""
        while True:
            for message in self.pushes:
                if message.get("taskID") == task_id:
                    self.pushes.remove(message)
                    if self.dialect == "wechat":
                        return (
                            message["status"] == "printed",
                            message.get("errmsg", ""),
                            message.get("printer", ""),
                        )
                    ok = message["taskStatus"] == "printed"
                    error = "; ".join(
                        d.get("msg", "") for d in message.get("printStatus", []) if d.get("msg")
                    )
                    return ok, error, message.get("printer", "")
            self.pushes.append(json.loads(self.ws.recv(timeout=10)))

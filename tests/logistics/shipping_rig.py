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
from channels.types import ShipFrom, WaybillItem, WaybillRequest
from inventory.models import Goods, Sku
from inventory.services import receive_stock
from logistics import services as parcels
from logistics.models import Parcel, Waybill
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


def take(parcel: Parcel, *, carrier: str = "zto", child_count: int = 0) -> Waybill:
    """Take a number for ``parcel`` through its shop's connector and record it as the waybills
    service does (key stored, issued, print data, parcel NUMBERED)."""
    store = parcel.store
    connector = channel_services.connector_for(store)
    account = next(a for a in connector.list_waybill_accounts() if a.carrier == carrier)
    order_ids = sorted(
        {pl.order_line.order.platform_order_id for pl in parcel.lines.select_related("order_line__order")}
    )
    request = WaybillRequest(
        key=f"t-{parcel.pk}-{uuid.uuid4().hex[:12]}", carrier_code=account.carrier_code,
        platform_order_ids=tuple(order_ids), sender=SENDER, items=(WaybillItem("纯棉T恤", 1),),
        account_id=account.account_id, branch_code=account.branch_code, child_count=child_count,
    )  # fmt: skip
    taken = connector.take_waybill(request)

    def record(w, parent=None) -> Waybill:
        return Waybill.objects.create(
            parcel=parcel, store=store, key=request.key if parent is None else f"{request.key}-{w.tracking_no}",
            carrier=w.carrier, platform_carrier_code=w.carrier_code, tracking_no=w.tracking_no,
            platform_waybill_id=w.platform_waybill_id, parent=parent, sort_code=w.sort_code,
            short_address=w.short_address, package_center=w.package_center,
            print_data=w.print_info.print_data, print_sign=w.print_info.sign, print_key=w.print_info.key,
            template_url=w.print_info.template_url, status=Waybill.Status.ISSUED, attempts=1,
        )  # fmt: skip

    main = record(taken)
    for child in taken.children:
        record(child, parent=main)
    parcel.status, parcel.tracking_no, parcel.carrier = (
        Parcel.Status.NUMBERED,
        taken.tracking_no,
        taken.carrier,
    )
    parcel.save(update_fields=["status", "tracking_no", "carrier", "updated_at"])
    return main


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

"""Platform-native dropship (代发) in the sandbox world: a merchant assigns order lines to a
supplier (WeChat 小店 代发管理, ``supplier_appid``) or a factory (Kuaishou ``open.dropshipping``,
``factoryCode``); a simulated supplier ships them some time later with a privacy waybill.

Follows shared/reference/operations.md §1 and the SDK models named there (field names only).
The state lives in the world's ``dropships`` table; the platform modules (``wechat.py``,
``kuaishou.py``) translate it into their own envelopes and error codes.

* **Assignment** by line and quantity: partial lines and partial quantities are allowed; the
  quantity must not exceed what the line still has (ordered − refunded − shipped − already
  assigned to a live dropship) → ``OverAssigned``. A supplier must be bound to the shop first
  (``bind_supplier``: WeChat's invitation accepted / Kuaishou's relation applied for) → ``NotBound``.
* **Cancellation** before the supplier shipped; a shipped dropship cannot be cancelled
  (``Conflict``); cancelling a cancelled one changes nothing [choice].
* **The simulated supplier** (``supplier_ship``, scheduled by the buyer simulator at
  ``ship_due``, or called by tests / ``run_due``) sees only what a supplier sees
  (``supplier_view``: the receiver masked, the encrypted order code ``ewaybill_order_code``),
  takes a privacy waybill number with that code (never with plaintext) and ships: the order's
  lines become shipped in platform-SKU units (the listing's unit, whatever the merchant's
  picking units are), and the order moves to part-shipped / shipped with the usual events.
* Events: ``DROPSHIP_ASSIGNED`` / ``DROPSHIP_CANCELLED`` (WeChat pushes them as
  ``channels_ec_order_ext_info_update`` type 14 / 15); shipping emits the order's own events.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from .model import EventKind, OrderStatus, from_dict, to_dict
from .pii import mask_detail, mask_name, mask_phone
from .world import CARRIERS, Conflict, InvalidArgument, NotFound, ShipmentSpec, World, WorldError

ASSIGNED, SHIPPED, CANCELLED = "assigned", "shipped", "cancelled"
LIVE = (ASSIGNED, SHIPPED)
DEFAULT_CARRIER = "ZTO"  # the simulated supplier's carrier [choice]


class NotBound(WorldError):
    """The supplier / factory has no dropship relation with the shop."""


class OverAssigned(InvalidArgument):
    """More than the line still has to assign."""


@dataclass
class DropshipLine:
    line_id: str
    product_id: str
    sku_id: str
    qty: int
    shipped_qty: int = 0
    delivery_deadline: int = 0  # seconds; the platform's per-line ship-by


@dataclass
class DropshipWaybill:
    carrier: str
    tracking_no: str
    ewaybill_order_code: str
    ship_time: int
    items: list[dict[str, Any]] = field(default_factory=list)  # [{"line_id", "qty"}]


@dataclass
class Dropship:
    ds_id: str
    platform: str
    shop_id: str
    order_id: str
    supplier: str  # WeChat supplier_appid / Kuaishou factoryCode
    status: str
    create_time: int
    update_time: int
    lines: list[DropshipLine]
    waybills: list[DropshipWaybill] = field(default_factory=list)
    ship_due: int = 0
    cancel_time: int = 0
    cancel_reason: str = ""


# ---------------------------------------------------------------------------- relations


def _relation_key(shop_id: str, supplier: str) -> str:
    return f"dropship:relation:{shop_id}:{supplier}"


def bind_supplier(world: World, shop_id: str, supplier: str, name: str = "") -> None:
    """The supplier accepted the shop's invitation (WeChat) / the factory relation exists (Kuaishou)."""
    world.set_setting(_relation_key(shop_id, supplier), name or supplier)


def supplier_name(world: World, shop_id: str, supplier: str) -> str | None:
    return world.get_setting(_relation_key(shop_id, supplier))


def unbind_supplier(world: World, shop_id: str, supplier: str) -> None:
    world.delete_settings(_relation_key(shop_id, supplier))


# ---------------------------------------------------------------------------- storage


def _save(c: Any, ds: Dropship) -> None:
    c.execute(
        "INSERT OR REPLACE INTO dropships VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (ds.ds_id, ds.platform, ds.shop_id, ds.order_id, ds.supplier, ds.status, ds.create_time,
         ds.update_time, json.dumps(to_dict(ds), ensure_ascii=False)),
    )  # fmt: skip


def _load(rows: list[tuple[Any, ...]]) -> list[Dropship]:
    return [from_dict(Dropship, json.loads(r[0])) for r in rows]


def get(world: World, ds_id: str) -> Dropship | None:
    found = _load(world.read("SELECT doc FROM dropships WHERE ds_id=?", (str(ds_id),)))
    return found[0] if found else None


def of_order(world: World, order_id: str) -> list[Dropship]:
    return _load(
        world.read("SELECT doc FROM dropships WHERE order_id=? ORDER BY create_time, ds_id", (order_id,))
    )


def query(
    world: World,
    shop_id: str,
    *,
    supplier: str = "",
    status: str = "",
    order_id: str = "",
    updated: tuple[int, int] | None = None,
    created: tuple[int, int] | None = None,
) -> list[Dropship]:
    """A shop's dropships (oldest update first), filtered."""
    sql, args = "SELECT doc FROM dropships WHERE shop_id=?", [shop_id]
    for column, value in (("supplier", supplier), ("status", status), ("order_id", order_id)):
        if value:
            sql += f" AND {column}=?"
            args.append(value)
    for column, span in (("update_time", updated), ("create_time", created)):
        if span:
            sql += f" AND {column}>=? AND {column}<=?"
            args += list(span)
    return _load(world.read(sql + " ORDER BY update_time, ds_id", args))


def assigned_quantities(world: World, order_id: str) -> dict[str, int]:
    """Per line: quantity held by live dropships."""
    out: dict[str, int] = {}
    for ds in of_order(world, order_id):
        if ds.status in LIVE:
            for line in ds.lines:
                out[line.line_id] = out.get(line.line_id, 0) + line.qty
    return out


# ---------------------------------------------------------------------------- the merchant's actions


def assign(
    world: World, *, shop_id: str, order_id: str, supplier: str, items: list[tuple[str, int]]
) -> Dropship:
    """Assign ``items`` ([(line_id, qty)]) of an order to ``supplier``; one new dropship."""
    if not items:
        raise InvalidArgument("nothing to assign")
    with world.write() as c:
        order = world._load_order(c, order_id)
        if order.shop_id != shop_id:
            raise NotFound("order not found", order_id=order_id)
        if supplier_name(world, shop_id, supplier) is None:
            raise NotBound("supplier not bound to the shop", supplier=supplier)
        if order.status not in (OrderStatus.PAID, OrderStatus.PART_SHIPPED):
            raise Conflict("order is not waiting for shipment", status=order.status)
        held = assigned_quantities(world, order_id)
        wanted: dict[str, int] = {}
        for line_id, qty in items:
            if qty <= 0:
                raise InvalidArgument("qty must be positive", line_id=line_id)
            wanted[line_id] = wanted.get(line_id, 0) + qty
        lines = []
        for line_id, qty in wanted.items():
            try:
                line = order.line(line_id)
            except KeyError:
                raise InvalidArgument("line not in order", line_id=line_id) from None
            left = line.qty - line.refunded_qty - line.shipped_qty - held.get(line_id, 0)
            if qty > left:
                raise OverAssigned("more than the line has left to assign", line_id=line_id, left=left)
            deadline = order.promise_ship_time or (order.pay_time + world.timer("promise_ship"))
            lines.append(DropshipLine(line_id, line.product_id, line.sku_id, qty, delivery_deadline=deadline))
        now = world.now()
        (ds_id,) = world.new_id(order.platform, "dropship")
        ds = Dropship(ds_id, order.platform, shop_id, order_id, supplier, ASSIGNED, now, now, lines,
                      ship_due=now + world.timer("dropship_ship"))  # fmt: skip
        _save(c, ds)
        world._save_order(c, order)  # the order's update time moves (its dropship info changed)
        world._emit(
            c, EventKind.DROPSHIP_ASSIGNED, world._shop(shop_id), order=order, data={"dropship": to_dict(ds)}
        )
    return ds


def cancel(world: World, ds_id: str, *, reason: str = "") -> Dropship:
    """Withdraw an assignment the supplier has not shipped."""
    with world.write() as c:
        ds = get(world, ds_id)
        if ds is None:
            raise NotFound("dropship not found", ds_id=ds_id)
        if ds.status == CANCELLED:
            return ds
        if ds.status == SHIPPED or any(line.shipped_qty for line in ds.lines):
            raise Conflict("the supplier has shipped", ds_id=ds_id)
        now = world.now()
        ds.status, ds.cancel_time, ds.cancel_reason, ds.update_time = CANCELLED, now, reason, now
        _save(c, ds)
        order = world._load_order(c, ds.order_id)
        world._save_order(c, order)
        world._emit(
            c,
            EventKind.DROPSHIP_CANCELLED,
            world._shop(ds.shop_id),
            order=order,
            data={"dropship": to_dict(ds)},
        )
    return ds


# ---------------------------------------------------------------------------- the simulated supplier


def ewaybill_order_code(world: World, ds: Dropship) -> str:
    """The encrypted order code a supplier takes the privacy waybill with ("电子面单代发时的订单密文"):
    opaque, bound to the dropship; the receiver behind it is resolved by the platform only."""
    mac = hmac.new(f"ecbao-sandbox-dropship:{world.seed}".encode(), f"{ds.shop_id}:{ds.order_id}:{ds.ds_id}".encode(),
                   hashlib.sha256).digest()  # fmt: skip
    return "EWO" + base64.urlsafe_b64encode(mac[:24]).decode().rstrip("=")


def supplier_view(world: World, ds: Dropship) -> dict[str, Any]:
    """What the supplier sees of a dropship: lines, deadlines, a masked receiver, the order code."""
    order = world.get_order(ds.order_id)
    if order is None:
        raise NotFound("order not found", order_id=ds.order_id)
    r = order.receiver
    return {
        "ds_order_id": ds.ds_id,
        "status": ds.status,
        "lines": [to_dict(line) for line in ds.lines],
        "receiver": {
            "name": mask_name(r.name),
            "mobile": mask_phone(r.phone),
            "province": r.province,
            "city": r.city,
            "district": r.district,
            "detail": mask_detail(r.detail),
        },  # fmt: skip
        "ewaybill_order_code": ewaybill_order_code(world, ds),
    }


def supplier_ship(
    world: World, ds_id: str, *, carrier: str = DEFAULT_CARRIER, tracking_no: str = ""
) -> Dropship | None:
    """The supplier takes a privacy waybill with the dropship's order code (or ships with the
    number it took, ``tracking_no``) and ships every line it still has (less what was refunded
    meanwhile). None when there is nothing to do."""
    if carrier not in CARRIERS:
        raise InvalidArgument("unknown carrier", carrier=carrier)
    with world.write() as c:
        ds = get(world, ds_id)
        if ds is None or ds.status != ASSIGNED:
            return None
        view = supplier_view(world, ds)  # all the supplier has: no plaintext receiver
        order = world._load_order(c, ds.order_id)
        if order.status not in (OrderStatus.PAID, OrderStatus.PART_SHIPPED):
            return None
        items = []
        for line in ds.lines:
            o = order.line(line.line_id)
            qty = min(line.qty - line.shipped_qty, o.qty - o.refunded_qty - o.shipped_qty)
            if qty > 0:
                items.append((line.line_id, qty))
        if not items:
            return None
        tracking_no = tracking_no or world.new_tracking_no(carrier)
        world.ship_order(ds.order_id, [ShipmentSpec(carrier, tracking_no, items)])
        now = world.now()
        shipped = dict(items)
        for line in ds.lines:
            line.shipped_qty += shipped.get(line.line_id, 0)
        ds.waybills.append(DropshipWaybill(carrier, tracking_no, view["ewaybill_order_code"], now,
                                           [{"line_id": k, "qty": v} for k, v in items]))  # fmt: skip
        ds.status, ds.update_time = SHIPPED, now
        _save(c, ds)
    return ds


def replace_waybill(world: World, ds_id: str, *, carrier: str, tracking_no: str) -> None:
    """The supplier corrected its last parcel's number (the order's package is edited by the caller)."""
    with world.write() as c:
        ds = get(world, ds_id)
        if ds is None or not ds.waybills:
            raise NotFound("dropship has no parcel", ds_id=ds_id)
        ds.waybills[-1].carrier, ds.waybills[-1].tracking_no, ds.update_time = (
            carrier,
            tracking_no,
            world.now(),
        )
        _save(c, ds)


def run_due(world: World, *, until: int | None = None, carrier: str = DEFAULT_CARRIER) -> int:
    """Every assigned dropship whose ``ship_due`` has come ships now (tests and a server without
    the simulator). Returns how many shipped."""
    until = world.now() if until is None else until
    rows = world.read("SELECT doc FROM dropships WHERE status=? ORDER BY create_time, ds_id", (ASSIGNED,))
    done = 0
    for ds in _load(rows):
        if ds.ship_due <= until and supplier_ship(world, ds.ds_id, carrier=carrier) is not None:
            done += 1
    return done

"""The router orders calls (``orders.hooks.RouteHook``): it reads the rules and a snapshot of
the world, then hands neutral facts to the pure engine (``suppliers.routing``). Reads only.

One ``route(pairs)`` call costs a fixed number of queries, whatever the number of lines:

1. the active rule set's id, version and rule count (its compiled rules are cached per
   process: an activated set never changes; the enabled rules are read once per version);
2. the supplier SKUs (bindings) of the SKUs involved, with their suppliers — plus the suppliers
   that rules name (for their refusals), when not among them;
3. the active own warehouses (the default one: ``is_default``, else the first by id — as
   ``inventory.services.default_warehouse``, which is called only when there is none);
4. the stock levels of those SKUs in every warehouse (available = on hand − reserved) — skipped
   when no rule is active and no SKU has a supplier (every line then goes to the default);
5. capacity (only when a supplier involved has ``daily_capacity``): today's lines per supplier
   = order lines routed to the supplier's warehouse (reserved, shipped or waiting for stock)
   of orders paid since 00:00 Asia/Shanghai.
   Order lines are the count, not ``DispatchLine``: a line counts against the supplier from
   the moment it is routed there, before its order is approved and dispatched;
6. the SKUs' goods (goods id, brand, category, combination flag) — only when a rule names
   goods, brands or categories or a SKU has a supplier (combinations never go to a supplier);
A line already reserved (rerouting at approval, dry runs) holds its quantity in its own
warehouse (``OrderLine.warehouse``): the engine gives it back to the line when its order comes
up (``LineFacts.held_at``), and likewise its line of today's capacity (``counted_by``).

With NO active rule set the same engine runs with an empty rule book (version None): a SKU with
supplier bindings but no own stock for the line goes to its first bound supplier that can take
it (binding priority, like SPLIT); one no supplier can take holds the order (exception queue);
everything else goes to the default own warehouse. Lines routed without a rule set carry
``route_version`` None, so activating a first rule set routes them again at approval.

Order tags (the ``tags`` condition): orders carry no tags of their own yet, so they are derived:
``buyer_remark`` (买家留言), ``seller_remark`` (卖家备注), ``refunding`` (退款中), and every
``#word`` the merchant writes in the seller remark (e.g. ``#代发`` → tag ``代发``). An order object
with a ``tags`` attribute of its own uses that instead.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, time

from django.db import connection
from django.db.models import Count, F, Max
from django.utils import timezone

from inventory import services as stock
from inventory.models import Sku, StockLevel, Warehouse
from orders import hooks
from orders.models import LineStatus, OrderLine
from suppliers import routing
from suppliers.models import RouteRule, RuleSet, Supplier, SupplierSku

_HASHTAG = re.compile(r"#([^\s#，,；;]{1,20})")
#: order line states that count against a supplier's capacity today
_CAPACITY_STATES = (LineStatus.RESERVED, LineStatus.SHIPPED, LineStatus.OUT_OF_STOCK)


def order_tags(order) -> frozenset[str]:
    own = getattr(order, "tags", None)
    if own is not None:
        return frozenset(own)
    tags = set()
    if getattr(order, "buyer_remark", ""):
        tags.add("buyer_remark")
    seller = getattr(order, "seller_remark", "") or ""
    if seller:
        tags.add("seller_remark")
        tags.update(_HASHTAG.findall(seller))
    if getattr(order, "is_refunding", False):
        tags.add("refunding")
    return frozenset(tags)


# --- rules ------------------------------------------------------------------------------------------------

_RULE_FIELDS = ("id", "priority", "name", "enabled", "action", "conditions", "supplier_id", "warehouse_id")


#: compiled rule books of activated sets: (schema, rule set id, version, rules, last rule id) →
#: RuleBook. An activated set never changes (``suppliers.rules`` refuses it), so its compiled
#: rules are kept per process; the rule count and last id in the key notice a set whose rows
#: were written around the services (fixtures, data repairs).
_BOOKS: dict[tuple, routing.RuleBook] = {}
_BOOKS_MAX = 64


def _compile(rule_set_id: int, version: int) -> routing.RuleBook:
    rows = list(RouteRule.objects.filter(rule_set_id=rule_set_id, enabled=True).values(*_RULE_FIELDS))
    return routing.compile_rules(version, rows)


def load_book(rule_set: RuleSet | None = None) -> routing.RuleBook:
    """The compiled rules of ``rule_set`` (a draft, for a dry run: read afresh), or of the active
    set (one small query while its compiled rules are cached)."""
    if rule_set is not None:
        return _compile(rule_set.pk, rule_set.version)
    row = (
        RuleSet.objects.filter(status=RuleSet.Status.ACTIVE)
        .annotate(n=Count("rules"), last=Max("rules__id"))
        .values_list("pk", "version", "n", "last")
        .first()
    )
    if row is None:
        return routing.RuleBook(version=None)
    key = (connection.schema_name, *row)
    book = _BOOKS.get(key)
    if book is None:
        book = _compile(row[0], row[1])
        if len(_BOOKS) >= _BOOKS_MAX:
            _BOOKS.clear()
        _BOOKS[key] = book
    return book


def active_version() -> int | None:
    return RuleSet.objects.filter(status=RuleSet.Status.ACTIVE).values_list("version", flat=True).first()


# --- the world --------------------------------------------------------------------------------------------


def _shanghai_midnight() -> datetime:
    now = timezone.now().astimezone(routing.SHANGHAI)
    return datetime.combine(now.date(), time(0), tzinfo=routing.SHANGHAI)


def _own_warehouses() -> tuple[dict[int, str], int]:
    rows = list(
        Warehouse.objects.filter(kind=Warehouse.Kind.OWN, is_active=True)
        .order_by("id")
        .values_list("id", "name", "is_default")
    )
    if not rows:
        wh = stock.default_warehouse()  # creates the main warehouse of a new tenant
        return {wh.pk: wh.name}, wh.pk
    default = next((pk for pk, _, is_default in rows if is_default), rows[0][0])
    return {pk: name for pk, name, _ in rows}, default


def _supplier_info(row: dict, prefix: str = "") -> routing.SupplierInfo:
    return routing.SupplierInfo(
        id=row["supplier_id"],
        name=row[prefix + "name"],
        warehouse_id=row[prefix + "warehouse_id"],
        active=row[prefix + "status"] == Supplier.Status.ACTIVE,
        daily_capacity=row[prefix + "daily_capacity"],
    )


def build_world(book: routing.RuleBook, lines: list) -> tuple[routing.World, dict[int, tuple], int]:
    """The world for routing ``lines`` (order lines or rows: ``id``, ``sku_id``, ``quantity``,
    ``status``, ``warehouse_id``) and the SKUs' goods facts {SKU id: (goods id, brand,
    category, is combo)} (empty when nothing needs them), and today's midnight (capacity)."""
    sku_ids = {ln.sku_id for ln in lines}
    suppliers: dict[int, routing.SupplierInfo] = {}
    bindings: dict[int, list[routing.Binding]] = defaultdict(list)
    for b in SupplierSku.objects.filter(sku_id__in=sku_ids).values(
        "supplier_id",
        "sku_id",
        "cost_fen",
        "freight",
        "freight_fen",
        "priority",
        "is_active",
        "supplier__name",
        "supplier__status",
        "supplier__warehouse_id",
        "supplier__daily_capacity",
    ):
        bindings[b["sku_id"]].append(
            routing.Binding(
                supplier_id=b["supplier_id"],
                sku_id=b["sku_id"],
                cost_fen=b["cost_fen"],
                freight=b["freight"],
                freight_fen=b["freight_fen"],
                priority=b["priority"],
                active=b["is_active"],
            )
        )
        suppliers[b["supplier_id"]] = _supplier_info(b, "supplier__")
    named = {r.supplier_id for r in book.rules if r.supplier_id is not None} - set(suppliers)
    if named:
        for s in Supplier.objects.filter(pk__in=named).values(
            "id", "name", "status", "warehouse_id", "daily_capacity"
        ):
            suppliers[s["id"]] = _supplier_info({"supplier_id": s["id"], **s})
    own, default_id = _own_warehouses()
    available: dict[tuple[int, int], int] = {}
    if book.rules or bindings:
        for wid, sid, qty in StockLevel.objects.filter(sku_id__in=sku_ids).values_list(
            "warehouse_id", "sku_id", F("on_hand") - F("reserved")
        ):
            available[(wid, sid)] = qty
    capacity: dict[int, int] = {}
    midnight = _shanghai_midnight()
    capped = {s.warehouse_id: s for s in suppliers.values() if s.daily_capacity is not None}
    if capped:
        used = dict(
            OrderLine.objects.filter(
                warehouse_id__in=list(capped),
                status__in=_CAPACITY_STATES,
                order__paid_at__gte=midnight,
            )
            .values("warehouse_id")
            .annotate(n=Count("id"))
            .values_list("warehouse_id", "n")
        )
        capacity = {s.id: s.daily_capacity - used.get(wid, 0) for wid, s in capped.items()}
    goods: dict[int, tuple] = {}
    if book.needs_goods or bindings:
        goods = {
            pk: (gid, brand or "", category or "", combo)
            for pk, gid, brand, category, combo in Sku.objects.filter(pk__in=sku_ids).values_list(
                "pk", "goods_id", "goods__brand", "goods__category", "is_combo"
            )
        }
    world = routing.World(
        suppliers=suppliers,
        bindings=dict(bindings),
        stock=available,
        own_warehouses=own,
        default_warehouse_id=default_id,
        capacity_left=capacity,
    )
    return world, goods, midnight


def facts(pairs: Iterable[tuple[object, list]], world: routing.World, goods: dict[int, tuple], midnight):
    """(OrderFacts, [LineFacts]) per order of ``pairs``."""
    capped = {s.warehouse_id: s.id for s in world.suppliers.values() if s.id in world.capacity_left}
    for order, lines in pairs:
        today = order.paid_at is not None and order.paid_at >= midnight
        o = routing.order_facts(
            store_id=order.store_id,
            platform=order.platform,
            province=order.province,
            city=order.city,
            paid_fen=order.paid_fen,
            at=order.paid_at or order.placed_at,
            tags=order_tags(order),
        )
        out = []
        for ln in lines:
            g = goods.get(ln.sku_id)
            out.append(
                routing.LineFacts(
                    id=ln.id,
                    sku_id=ln.sku_id,
                    quantity=ln.quantity,
                    paid_fen=ln.paid_fen,
                    goods_id=g[0] if g else None,
                    brand=g[1] if g else "",
                    category=g[2] if g else "",
                    is_combo=g[3] if g else False,
                    held_at=ln.warehouse_id
                    if ln.status == LineStatus.RESERVED and not (g and g[3])
                    else None,
                    counted_by=capped.get(ln.warehouse_id)
                    if today and ln.status in _CAPACITY_STATES
                    else None,
                )
            )
        yield o, out


def route_with(book: routing.RuleBook, pairs: list[tuple[object, list]]) -> dict[int, hooks.LineRoute]:
    """Route ``pairs`` under ``book``: what the router does, and what a dry run shows."""
    pairs = [(order, [ln for ln in lines if ln.sku_id is not None]) for order, lines in pairs]
    lines = [ln for _, lines in pairs for ln in lines]
    if not lines:
        return {}
    world, goods, midnight = build_world(book, lines)
    return routing.route(book, world, facts(pairs, world, goods, midnight))


def route(pairs: list[tuple[object, list]]) -> dict[int, hooks.LineRoute]:
    return route_with(load_book(), pairs)


HOOK = hooks.RouteHook(route=route, version=active_version)


def register() -> None:
    """Called by ``SuppliersConfig.ready``: orders routes every paid line through this router."""
    hooks.register_router(HOOK)

"""The routing (分流) engine: pure — no database, no Django models inside.

Input: neutral facts per order and line (``OrderFacts``, ``LineFacts``), a compiled rule set
(``RuleBook``, from ``compile_rules``) and a snapshot of the world (``World``: suppliers, the
SKUs they supply, available stock per (warehouse, SKU), capacity left today, own warehouses).
Output: one ``orders.hooks.LineRoute`` per line, with a zh-Hans note that says why.

How a line is decided:

1. The enabled rules in priority order (lowest first). A rule *matches* when every condition it
   has holds (``RouteRule`` docstring: stores, platforms, skus, goods, brands, categories,
   provinces, cities, amount_min_fen/amount_max_fen on the order's paid amount — both bounds
   inclusive —, tags (any of), hours [from, to) in Asia/Shanghai on the paid time (placed time
   when unpaid; from > to wraps midnight), weekdays 1 = Monday … 7 = Sunday).
   The first matching rule whose action *can be carried out* wins:

   - SUPPLIER X: X supplies the SKU (an active binding), X is active, X's stock ≥ quantity and X
     has capacity left today; otherwise the line falls through to the next rule.
   - WAREHOUSE W: W is an active own warehouse (always carried out: a short own stock makes the
     line wait for stock there, as lines of the own warehouse always did).
   - CHEAPEST: among the suppliers that can take the line, the lowest cost + freight for the
     line (per-unit freight × quantity, per-dispatch freight once, free 0), ties by the
     binding's priority then the supplier id; none can take it → falls through.
   - SPLIT: the line goes to its own bound supplier, by binding priority, the first that can take
     it; a SKU no supplier supplies goes to the default own warehouse (so an order's lines end at
     different suppliers and the own warehouse); bound but no one can take it → falls through.
   - HOLD: the line is held (``LineRoute(warehouse_id=None, hold=…)``): the order waits in the
     exception queue.

2. No rule carried out (also: no active rule set — the implicit default): a SKU no supplier
   supplies (or a combination) goes to the default own warehouse; so does a SKU whose own stock
   there covers the line; otherwise the bound suppliers by binding priority (as SPLIT); if none
   can take it the line is held with "无供应商可接单：…" naming why each candidate was refused.

Stock within one batch: ``World`` is consumed as lines are decided, in the order given (orders
arrive earliest payment first, lines in their order — the order ``inventory.reserve_many``
serves them). A line routed to a warehouse takes its quantity from that warehouse's available
count (own warehouses too, which may go below zero: that line then waits for stock), and a
line routed to a supplier takes one line of its capacity left today. So two lines in one batch
never both go to a supplier that has stock for one. A held line takes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from orders.hooks import LineRoute

SHANGHAI = ZoneInfo("Asia/Shanghai")

SUPPLIER, WAREHOUSE, CHEAPEST, SPLIT, HOLD = "supplier", "warehouse", "cheapest", "split", "hold"
ACTIONS = (SUPPLIER, WAREHOUSE, CHEAPEST, SPLIT, HOLD)

#: condition keys a rule may carry (``RouteRule.conditions``)
LIST_KEYS = ("stores", "platforms", "skus", "goods", "brands", "categories", "provinces", "cities", "tags")
CONDITION_KEYS = (*LIST_KEYS, "amount_min_fen", "amount_max_fen", "hours", "weekdays")
#: conditions that need the line's SKU → goods facts (goods id, brand, category)
GOODS_KEYS = ("goods", "brands", "categories")

PLATFORM_NAMES = {"douyin": "抖音", "kuaishou": "快手", "wechat": "微信小店"}
WEEKDAY_NAMES = {1: "周一", 2: "周二", 3: "周三", 4: "周四", 5: "周五", 6: "周六", 7: "周日"}
NOTE_MAX = 300

_REGION_SUFFIXES = (
    "维吾尔自治区",
    "壮族自治区",
    "回族自治区",
    "特别行政区",
    "自治区",
    "自治州",
    "地区",
    "省",
    "市",
)


def region_key(name: str) -> str:
    """A province or city as compared: "浙江省" and "浙江", "杭州市" and "杭州" are the same."""
    name = (name or "").strip()
    for suffix in _REGION_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    fen = abs(int(fen))
    return f"{sign}¥{fen // 100}.{fen % 100:02d}"


# --- facts ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderFacts:
    store_id: int | None
    platform: str
    province: str  # region_key'd
    city: str  # region_key'd
    paid_fen: int
    hour: int  # Asia/Shanghai, of the paid time (placed time when unpaid)
    weekday: int  # 1 = Monday … 7 = Sunday
    tags: frozenset[str] = frozenset()


def order_facts(
    *,
    store_id: int | None,
    platform: str,
    province: str = "",
    city: str = "",
    paid_fen: int = 0,
    at: datetime | None = None,
    tags: Iterable[str] = (),
) -> OrderFacts:
    local = (at or datetime.now(SHANGHAI)).astimezone(SHANGHAI)
    return OrderFacts(
        store_id=store_id,
        platform=platform or "",
        province=region_key(province),
        city=region_key(city),
        paid_fen=int(paid_fen or 0),
        hour=local.hour,
        weekday=local.isoweekday(),
        tags=frozenset(t for t in tags if t),
    )


@dataclass(frozen=True, slots=True)
class LineFacts:
    id: int
    sku_id: int
    quantity: int
    paid_fen: int = 0
    goods_id: int | None = None
    brand: str = ""
    category: str = ""
    is_combo: bool = False
    #: the warehouse already holding this line's reservation (rerouting, dry runs): given back
    #: to it when its order comes up, as releasing it would
    held_at: int | None = None
    #: the supplier whose capacity today already counts this line: given back likewise
    counted_by: int | None = None


# --- the world --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SupplierInfo:
    id: int
    name: str
    warehouse_id: int
    active: bool
    daily_capacity: int | None = None


@dataclass(frozen=True, slots=True)
class Binding:
    """One SupplierSku: ``supplier_id`` supplies ``sku_id`` at ``cost_fen`` (+ freight)."""

    supplier_id: int
    sku_id: int
    cost_fen: int
    freight: str = "free"  # free / per_dispatch / per_unit
    freight_fen: int = 0
    priority: int = 100
    active: bool = True

    def line_cost(self, quantity: int) -> tuple[int, int]:
        """(goods cost, freight) of ``quantity`` units at this supplier."""
        freight = {"per_unit": self.freight_fen * quantity, "per_dispatch": self.freight_fen}.get(
            self.freight, 0
        )
        return self.cost_fen * quantity, freight


@dataclass
class World:
    """What routing may use, consumed as lines are routed (see the module docstring)."""

    suppliers: dict[int, SupplierInfo]
    bindings: dict[int, list[Binding]]  # SKU id → bindings, by (priority, supplier id)
    stock: dict[tuple[int, int], int]  # (warehouse id, SKU id) → available
    own_warehouses: dict[int, str]  # active own warehouses: id → name
    default_warehouse_id: int
    capacity_left: dict[int, int] = field(default_factory=dict)  # supplier id → lines left today

    def __post_init__(self) -> None:
        for sku_id in self.bindings:
            self.bindings[sku_id].sort(key=lambda b: (b.priority, b.supplier_id))

    def available(self, warehouse_id: int, sku_id: int) -> int:
        return self.stock.get((warehouse_id, sku_id), 0)

    def take(self, warehouse_id: int, line: LineFacts, supplier_id: int | None = None) -> None:
        key = (warehouse_id, line.sku_id)
        if key in self.stock:  # unknown stock (not read: no rule and no supplier) stays unknown
            self.stock[key] -= line.quantity
        if supplier_id is not None and supplier_id in self.capacity_left:
            self.capacity_left[supplier_id] -= 1

    def give_back(self, line: LineFacts) -> None:
        """The line's own reservation and capacity are its own again (before it is routed)."""
        if line.held_at is not None:
            key = (line.held_at, line.sku_id)
            if key in self.stock:
                self.stock[key] += line.quantity
        if line.counted_by is not None and line.counted_by in self.capacity_left:
            self.capacity_left[line.counted_by] += 1

    def refusal(self, supplier_id: int, line: LineFacts) -> str:
        """Why ``supplier_id`` cannot take ``line`` ("" when it can)."""
        sup = self.suppliers.get(supplier_id)
        if sup is None:
            return f"供应商 #{supplier_id} 不存在"
        binding = next((b for b in self.bindings.get(line.sku_id, ()) if b.supplier_id == supplier_id), None)
        if binding is None:
            return f"{sup.name} 不供应此 SKU"
        if not binding.active:
            return f"{sup.name} 已停供此 SKU"
        if not sup.active:
            return f"{sup.name} 已暂停"
        have = self.available(sup.warehouse_id, line.sku_id)
        if have < line.quantity:
            return f"{sup.name} 库存 {max(have, 0)} < {line.quantity}"
        left = self.capacity_left.get(supplier_id)
        if left is not None and left <= 0:
            return f"{sup.name} 今日产能已满（{sup.daily_capacity}）"
        return ""


# --- rules ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompiledRule:
    id: int | None
    priority: int
    name: str
    action: str
    supplier_id: int | None = None
    warehouse_id: int | None = None
    stores: frozenset | None = None
    platforms: frozenset | None = None
    skus: frozenset | None = None
    goods: frozenset | None = None
    brands: frozenset | None = None
    categories: frozenset | None = None
    provinces: frozenset | None = None
    cities: frozenset | None = None
    tags: frozenset | None = None
    amount_min_fen: int | None = None
    amount_max_fen: int | None = None
    hours: tuple[int, int] | None = None
    weekdays: frozenset | None = None
    label: str = ""  # the conditions in words, for notes

    def matches_order(self, o: OrderFacts) -> bool:
        if self.stores is not None and o.store_id not in self.stores:
            return False
        if self.platforms is not None and o.platform not in self.platforms:
            return False
        if self.provinces is not None and o.province not in self.provinces:
            return False
        if self.cities is not None and o.city not in self.cities:
            return False
        if self.amount_min_fen is not None and o.paid_fen < self.amount_min_fen:
            return False
        if self.amount_max_fen is not None and o.paid_fen > self.amount_max_fen:
            return False
        if self.tags is not None and not (self.tags & o.tags):
            return False
        if self.hours is not None:
            start, end = self.hours
            inside = start <= o.hour < end if start < end else (o.hour >= start or o.hour < end)
            if not inside:
                return False
        return self.weekdays is None or o.weekday in self.weekdays

    def matches_line(self, ln: LineFacts) -> bool:
        if self.skus is not None and ln.sku_id not in self.skus:
            return False
        if self.goods is not None and ln.goods_id not in self.goods:
            return False
        if self.brands is not None and ln.brand not in self.brands:
            return False
        return self.categories is None or ln.category in self.categories

    def matches(self, o: OrderFacts, ln: LineFacts) -> bool:
        return self.matches_order(o) and self.matches_line(ln)


@dataclass(frozen=True, slots=True)
class RuleBook:
    version: int | None
    rules: tuple[CompiledRule, ...] = ()

    @property
    def needs_goods(self) -> bool:
        return any(
            r.goods is not None or r.brands is not None or r.categories is not None for r in self.rules
        )


def _set(values, cast=None) -> frozenset | None:
    if values is None:
        return None
    items = values if isinstance(values, list | tuple | set | frozenset) else [values]
    return frozenset(cast(v) if cast else v for v in items)


def describe_conditions(c: Mapping) -> str:
    """The conditions of a rule in words (zh-Hans), e.g. "SKU 在清单、省份 浙江"."""
    parts = []
    if c.get("skus"):
        parts.append("SKU 在清单")
    if c.get("goods"):
        parts.append("商品在清单")
    if c.get("brands"):
        parts.append("品牌 " + "/".join(map(str, c["brands"])))
    if c.get("categories"):
        parts.append("类目 " + "/".join(map(str, c["categories"])))
    if c.get("stores"):
        parts.append("店铺在清单")
    if c.get("platforms"):
        parts.append("平台 " + "/".join(PLATFORM_NAMES.get(p, p) for p in c["platforms"]))
    if c.get("provinces"):
        parts.append("省份 " + "/".join(map(str, c["provinces"])))
    if c.get("cities"):
        parts.append("城市 " + "/".join(map(str, c["cities"])))
    lo, hi = c.get("amount_min_fen"), c.get("amount_max_fen")
    if lo is not None or hi is not None:
        if hi is None:
            parts.append(f"金额 ≥ {yuan(lo)}")
        elif lo is None:
            parts.append(f"金额 ≤ {yuan(hi)}")
        else:
            parts.append(f"金额 {yuan(lo)}–{yuan(hi)}")
    if c.get("tags"):
        parts.append("标签 " + "/".join(map(str, c["tags"])))
    if c.get("hours"):
        parts.append(f"时段 {c['hours'][0]}–{c['hours'][1]} 时")
    if c.get("weekdays"):
        parts.append("、".join(WEEKDAY_NAMES.get(int(d), str(d)) for d in sorted(c["weekdays"])))
    return "、".join(parts) or "所有订单"


def compile_rule(
    *,
    id: int | None,
    priority: int,
    name: str,
    action: str,
    conditions: Mapping | None = None,
    supplier_id: int | None = None,
    warehouse_id: int | None = None,
) -> CompiledRule:
    """A rule as the engine evaluates it. The conditions are assumed valid (``suppliers.rules``
    validates them on save); an empty list is no condition."""
    c = {k: v for k, v in (conditions or {}).items() if v not in (None, [], "")}
    hours = c.get("hours")
    return CompiledRule(
        id=id,
        priority=priority,
        name=name,
        action=action,
        supplier_id=supplier_id,
        warehouse_id=warehouse_id,
        stores=_set(c.get("stores"), int),
        platforms=_set(c.get("platforms"), str),
        skus=_set(c.get("skus"), int),
        goods=_set(c.get("goods"), int),
        brands=_set(c.get("brands"), str),
        categories=_set(c.get("categories"), str),
        provinces=_set(c.get("provinces"), region_key),
        cities=_set(c.get("cities"), region_key),
        tags=_set(c.get("tags"), str),
        amount_min_fen=int(c["amount_min_fen"]) if "amount_min_fen" in c else None,
        amount_max_fen=int(c["amount_max_fen"]) if "amount_max_fen" in c else None,
        hours=(int(hours[0]), int(hours[1])) if hours else None,
        weekdays=_set(c.get("weekdays"), int),
        label=describe_conditions(c),
    )


def compile_rules(version: int | None, rules: Iterable[Mapping]) -> RuleBook:
    """``rules``: mappings with the ``compile_rule`` keywords (and ``enabled``), any order."""
    compiled = [
        compile_rule(
            id=r.get("id"),
            priority=r["priority"],
            name=r.get("name", ""),
            action=r["action"],
            conditions=r.get("conditions"),
            supplier_id=r.get("supplier_id"),
            warehouse_id=r.get("warehouse_id"),
        )
        for r in rules
        if r.get("enabled", True)
    ]
    compiled.sort(key=lambda r: (r.priority, r.id or 0))
    return RuleBook(version=version, rules=tuple(compiled))


# --- deciding ---------------------------------------------------------------------------------------------


def _clip(note: str) -> str:
    return note if len(note) <= NOTE_MAX else note[: NOTE_MAX - 1] + "…"


class Engine:
    """Routes lines against one ``RuleBook`` and one ``World`` (consumed as it goes)."""

    def __init__(self, book: RuleBook, world: World):
        self.book, self.world = book, world

    # the action of one rule → (warehouse id, supplier id, what) or (None, None, why not)
    def _supplier_part(self, supplier_id: int, line: LineFacts, head: str) -> str:
        w = self.world
        sup = w.suppliers[supplier_id]
        binding = next(b for b in w.bindings[line.sku_id] if b.supplier_id == supplier_id)
        cost, freight = binding.line_cost(line.quantity)
        unit = f"成本 {yuan(binding.cost_fen)}"
        if freight:
            unit += f" + 运费 {yuan(freight)}"
        return f"{head}供应商 {sup.name}，{unit}，库存 {w.available(sup.warehouse_id, line.sku_id)}"

    def _own_part(self, warehouse_id: int, line: LineFacts, head: str = "") -> str:
        w = self.world
        text = f"{head}自有仓 {w.own_warehouses.get(warehouse_id, warehouse_id)}"
        if not line.is_combo and (warehouse_id, line.sku_id) in w.stock:
            text += f"，库存 {max(w.available(warehouse_id, line.sku_id), 0)}"
        return text

    def _bound_first(self, line: LineFacts) -> tuple[int | None, list[str]]:
        """The first bound supplier (binding priority) that can take the line, and the refusals."""
        refused = []
        for b in self.world.bindings.get(line.sku_id, ()):
            why = self.world.refusal(b.supplier_id, line)
            if not why:
                return b.supplier_id, refused
            refused.append(why)
        return None, refused

    def _cheapest(self, line: LineFacts) -> tuple[int | None, list[str]]:
        best, best_key, refused = None, None, []
        for b in self.world.bindings.get(line.sku_id, ()):
            why = self.world.refusal(b.supplier_id, line)
            if why:
                refused.append(why)
                continue
            key = (sum(b.line_cost(line.quantity)), b.priority, b.supplier_id)
            if best_key is None or key < best_key:
                best, best_key = b.supplier_id, key
        return best, refused

    def _to_supplier(self, supplier_id: int, line: LineFacts, note: str, rule_id: int | None) -> LineRoute:
        sup = self.world.suppliers[supplier_id]
        route = LineRoute(
            warehouse_id=sup.warehouse_id, note=_clip(note), version=self.book.version, rule_id=rule_id
        )
        self.world.take(sup.warehouse_id, line, supplier_id)
        return route

    def _to_own(self, warehouse_id: int, line: LineFacts, note: str, rule_id: int | None) -> LineRoute:
        route = LineRoute(
            warehouse_id=warehouse_id, note=_clip(note), version=self.book.version, rule_id=rule_id
        )
        if not line.is_combo:
            self.world.take(warehouse_id, line)
        return route

    def _try(self, rule: CompiledRule, line: LineFacts) -> tuple[LineRoute | None, str]:
        """Carry out ``rule`` for ``line``: the route, or None and why not."""
        w = self.world
        head = f"规则 {rule.priority}「{rule.name}」：{rule.label} → "
        if rule.action == SUPPLIER:
            why = w.refusal(rule.supplier_id, line) if rule.supplier_id is not None else "未指定供应商"
            if why:
                return None, why
            return self._to_supplier(
                rule.supplier_id, line, self._supplier_part(rule.supplier_id, line, head), rule.id
            ), ""
        if rule.action == WAREHOUSE:
            if rule.warehouse_id not in w.own_warehouses:
                return None, f"仓库 #{rule.warehouse_id} 不是启用的自有仓"
            return self._to_own(
                rule.warehouse_id, line, self._own_part(rule.warehouse_id, line, head), rule.id
            ), ""
        if rule.action == CHEAPEST:
            best, refused = self._cheapest(line)
            if best is None:
                return None, "；".join(refused) or "无供应商供应此 SKU"
            return self._to_supplier(
                best, line, self._supplier_part(best, line, head + "最便宜："), rule.id
            ), ""
        if rule.action == SPLIT:
            if not w.bindings.get(line.sku_id):
                wid = w.default_warehouse_id
                return self._to_own(
                    wid, line, self._own_part(wid, line, head + "按供应商拆单：无供应商 → "), rule.id
                ), ""
            first, refused = self._bound_first(line)
            if first is None:
                return None, "；".join(refused)
            return self._to_supplier(
                first, line, self._supplier_part(first, line, head + "按供应商拆单："), rule.id
            ), ""
        if rule.action == HOLD:
            note = _clip(f"{head}暂停，待人工处理")
            return LineRoute(
                warehouse_id=None, note=note, version=self.book.version, rule_id=rule.id, hold=note
            ), ""
        return None, f"未知动作 {rule.action}"

    def _fallback(self, line: LineFacts, skipped: list[str]) -> LineRoute:
        w = self.world
        wid = w.default_warehouse_id
        tail = ("；跳过 " + "；".join(skipped)) if skipped else ""
        bound = [b for b in w.bindings.get(line.sku_id, ()) if b.active]
        if line.is_combo or not bound:
            return self._to_own(wid, line, self._own_part(wid, line, "未命中规则：") + tail, None)
        if w.available(wid, line.sku_id) >= line.quantity:
            return self._to_own(wid, line, self._own_part(wid, line, "未命中规则：") + tail, None)
        first, refused = self._bound_first(line)
        if first is not None:
            return self._to_supplier(
                first, line, self._supplier_part(first, line, "未命中规则：自有仓缺货 → ") + tail, None
            )
        own = f"自有仓 {w.own_warehouses.get(wid, wid)} 库存 {max(w.available(wid, line.sku_id), 0)} < {line.quantity}"
        note = _clip("无供应商可接单：" + "；".join([*refused, own]) + tail)
        return LineRoute(warehouse_id=None, note=note, version=self.book.version, rule_id=None, hold=note)

    def route_line(
        self, order: OrderFacts, line: LineFacts, rules: Iterable[CompiledRule] | None = None
    ) -> LineRoute:
        """``rules``: those of the book whose order conditions hold for ``order`` (all by default)."""
        skipped: list[str] = []
        for rule in self.book.rules if rules is None else rules:
            if not (rule.matches_line(line) if rules is not None else rule.matches(order, line)):
                continue
            route, why = self._try(rule, line)
            if route is not None:
                if skipped:
                    route = LineRoute(
                        warehouse_id=route.warehouse_id,
                        note=_clip(route.note + "；跳过 " + "；".join(skipped)),
                        version=route.version,
                        rule_id=route.rule_id,
                        hold=route.hold and _clip(route.hold + "；跳过 " + "；".join(skipped)),
                    )
                return route
            skipped.append(f"规则 {rule.priority}：{why}")
        return self._fallback(line, skipped)

    def route(self, batch: Iterable[tuple[OrderFacts, Iterable[LineFacts]]]) -> dict[int, LineRoute]:
        result: dict[int, LineRoute] = {}
        for order, lines in batch:
            lines = list(lines)
            for line in lines:
                self.world.give_back(line)
            rules = [r for r in self.book.rules if r.matches_order(order)]  # once per order
            for line in lines:
                result[line.id] = self.route_line(order, line, rules)
        return result


def route(
    book: RuleBook, world: World, batch: Iterable[tuple[OrderFacts, Iterable[LineFacts]]]
) -> dict[int, LineRoute]:
    """{line id: LineRoute} for every line of ``batch`` (consumes ``world``)."""
    return Engine(book, world).route(batch)

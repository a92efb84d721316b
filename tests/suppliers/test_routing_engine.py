"""The pure routing engine (suppliers.routing): every condition and every action, fall-through,
the default without rules, stock consumed within one batch, explainable notes. No database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from suppliers import routing as r

OWN, OWN2 = 1, 2  # own warehouses
TEA, NINGBO, YIWU = 10, 11, 12  # supplier ids; their warehouses are 100 + id
TEA_SKU, CAP_SKU, SHIRT_SKU = 501, 502, 503


def world(**over) -> r.World:
    suppliers = {
        TEA: r.SupplierInfo(TEA, "杭州茶厂", 110, True),
        NINGBO: r.SupplierInfo(NINGBO, "宁波仓", 111, True),
        YIWU: r.SupplierInfo(YIWU, "义乌工厂", 112, True, daily_capacity=5),
    }
    bindings = {
        TEA_SKU: [
            r.Binding(TEA, TEA_SKU, 1200, priority=10),
            r.Binding(NINGBO, TEA_SKU, 1100, "per_unit", 200, priority=20),  # 13.00 a unit with freight
            r.Binding(YIWU, TEA_SKU, 1150, "per_dispatch", 300, priority=30),
        ],
        CAP_SKU: [r.Binding(NINGBO, CAP_SKU, 500, priority=5)],
    }
    stock = {
        (110, TEA_SKU): 480,
        (111, TEA_SKU): 50,
        (112, TEA_SKU): 50,
        (111, CAP_SKU): 1,
        (OWN, TEA_SKU): 0,
        (OWN, CAP_SKU): 0,
        (OWN, SHIRT_SKU): 7,
    }
    kw = {
        "suppliers": suppliers,
        "bindings": bindings,
        "stock": stock,
        "own_warehouses": {OWN: "主仓", OWN2: "北京仓"},
        "default_warehouse_id": OWN,
        "capacity_left": {YIWU: 5},
    }
    kw.update(over)
    return r.World(**kw)


def order(**kw) -> r.OrderFacts:
    base = {
        "store_id": 7,
        "platform": "douyin",
        "province": "浙江省",
        "city": "杭州市",
        "paid_fen": 5000,
        "at": datetime(2026, 12, 7, 2, 0, tzinfo=UTC),  # 10:00 Monday in Shanghai
        "tags": (),
    }
    base.update(kw)
    return r.order_facts(**base)


def ln(sku=TEA_SKU, qty=1, id=1, **kw) -> r.LineFacts:
    return r.LineFacts(id=id, sku_id=sku, quantity=qty, **kw)


def rule(action=r.SUPPLIER, priority=1, name="茶叶", supplier_id=TEA, warehouse_id=None, **conditions):
    return {
        "id": priority * 100,
        "priority": priority,
        "name": name,
        "action": action,
        "supplier_id": supplier_id if action == r.SUPPLIER else None,
        "warehouse_id": warehouse_id,
        "conditions": conditions,
    }


def one(rules, o=None, line=None, w=None, version=3):
    book = r.compile_rules(version, rules)
    line = line or ln()
    return r.route(book, w or world(), [(o or order(), [line])])[line.id]


def to_tea(route) -> bool:
    return route.warehouse_id == 110


# --- conditions: each one matching and not matching ---------------------------------------------------

CONDITIONS = [
    ("stores", {"stores": [7]}, {"stores": [8]}, {}),
    ("platforms", {"platforms": ["douyin"]}, {"platforms": ["wechat", "kuaishou"]}, {}),
    ("skus", {"skus": [TEA_SKU]}, {"skus": [CAP_SKU]}, {}),
    ("goods", {"goods": [40]}, {"goods": [41]}, {}),
    ("brands", {"brands": ["西湖"]}, {"brands": ["狮峰"]}, {}),
    ("categories", {"categories": ["茶"]}, {"categories": ["酒"]}, {}),
    ("provinces", {"provinces": ["浙江"]}, {"provinces": ["江苏省"]}, {}),
    ("cities", {"cities": ["杭州"]}, {"cities": ["宁波市"]}, {}),
    ("amount_min", {"amount_min_fen": 5000}, {"amount_min_fen": 5001}, {}),
    ("amount_max", {"amount_max_fen": 5000}, {"amount_max_fen": 4999}, {}),
    (
        "amount_range",
        {"amount_min_fen": 1000, "amount_max_fen": 9000},
        {"amount_min_fen": 6000, "amount_max_fen": 9000},
        {},
    ),
    ("tags", {"tags": ["代发", "vip"]}, {"tags": ["急"]}, {"tags": ("vip",)}),
    ("hours", {"hours": [10, 11]}, {"hours": [9, 10]}, {}),  # [from, to): 10:00 is in [10, 11), not [9, 10)
    ("hours_overnight", {"hours": [22, 11]}, {"hours": [22, 10]}, {}),
    ("weekdays", {"weekdays": [1, 2]}, {"weekdays": [6, 7]}, {}),
]


@pytest.mark.parametrize("name,hit,miss,order_kw", CONDITIONS, ids=[c[0] for c in CONDITIONS])
def test_every_condition_matches_and_misses(name, hit, miss, order_kw):
    line = ln(goods_id=40, brand="西湖", category="茶")
    o = order(**order_kw)
    routed = one([rule(supplier_id=NINGBO, **hit)], o=o, line=line)
    assert routed.warehouse_id == 111 and routed.rule_id == 100 and routed.version == 3
    assert routed.note.startswith("规则 1「茶叶」：")
    missed = one([rule(supplier_id=NINGBO, **miss)], o=o, line=line)
    # the default instead: no own stock → the first bound supplier by binding priority
    assert to_tea(missed) and missed.rule_id is None and missed.note.startswith("未命中规则")


def test_all_conditions_of_a_rule_must_hold():
    both = rule(supplier_id=NINGBO, skus=[TEA_SKU], provinces=["江苏"])
    assert one([both]).rule_id is None
    assert one([both], o=order(province="江苏省")).rule_id == 100


# --- actions -----------------------------------------------------------------------------------------


def test_supplier_action_with_the_note_that_explains_it():
    routed = one([rule(priority=3, skus=[TEA_SKU])])
    assert routed == r.LineRoute(
        warehouse_id=110,
        note="规则 3「茶叶」：SKU 在清单 → 供应商 杭州茶厂，成本 ¥12.00，库存 480",
        version=3,
        rule_id=300,
    )


@pytest.mark.parametrize(
    "change,why",
    [
        ({"suppliers": {TEA: r.SupplierInfo(TEA, "杭州茶厂", 110, False)}}, "杭州茶厂 已暂停"),
        ({"stock": {(110, TEA_SKU): 1}}, "杭州茶厂 库存 1 < 2"),
        ({"capacity_left": {TEA: 0}}, "杭州茶厂 今日产能已满"),
        ({"bindings": {TEA_SKU: [r.Binding(TEA, TEA_SKU, 1200, active=False)]}}, "杭州茶厂 已停供此 SKU"),
        ({"bindings": {}}, "杭州茶厂 不供应此 SKU"),
    ],
    ids=["paused", "no-stock", "capacity", "binding-off", "not-bound"],
)
def test_supplier_action_falls_through_when_it_cannot_be_carried_out(change, why):
    w = world()
    for key, value in change.items():
        if key == "suppliers":
            w.suppliers.update(value)
        elif key == "stock":
            w.stock.update(value)
        elif key == "capacity_left":
            w.capacity_left.update(value)
            w.suppliers[TEA] = r.SupplierInfo(TEA, "杭州茶厂", 110, True, daily_capacity=30)
        else:
            w.bindings.pop(TEA_SKU)
            w.bindings.update(value)
    rules = [rule(priority=1), rule(r.WAREHOUSE, priority=2, name="北京", warehouse_id=OWN2)]
    routed = one(rules, line=ln(qty=2), w=w)
    assert routed.warehouse_id == OWN2 and routed.rule_id == 200
    assert why in routed.note and "跳过 规则 1" in routed.note


def test_warehouse_action_sends_to_an_own_warehouse_even_short_of_stock():
    routed = one([rule(r.WAREHOUSE, name="自营", warehouse_id=OWN2, provinces=["浙江"])])
    assert routed.warehouse_id == OWN2 and routed.note == "规则 1「自营」：省份 浙江 → 自有仓 北京仓"
    # a supplier's warehouse is no own warehouse: the rule cannot be carried out
    assert one([rule(r.WAREHOUSE, warehouse_id=110)]).rule_id is None


def test_cheapest_supplier_with_stock_counts_cost_and_freight():
    # 2 units: 杭州茶厂 24.00; 宁波仓 22.00 + 4.00 freight = 26.00; 义乌 23.00 + 3.00 = 26.00
    routed = one([rule(r.CHEAPEST, name="最省")], line=ln(qty=2))
    assert routed.warehouse_id == 110 and "最便宜：供应商 杭州茶厂" in routed.note
    # 1 unit: 杭州 12.00, 宁波 11.00 + 2.00 = 13.00, 义乌 11.50 + 3.00 = 14.50
    w = world(stock={(110, TEA_SKU): 0, (111, TEA_SKU): 5, (112, TEA_SKU): 5})
    routed = one([rule(r.CHEAPEST, name="最省")], w=w)
    assert routed.note == "规则 1「最省」：所有订单 → 最便宜：供应商 宁波仓，成本 ¥11.00 + 运费 ¥2.00，库存 5"


def test_cheapest_ties_go_by_binding_priority_then_supplier_id():
    w = world(
        bindings={
            TEA_SKU: [r.Binding(NINGBO, TEA_SKU, 1000, priority=9), r.Binding(TEA, TEA_SKU, 1000, priority=9)]
        }
    )
    assert one([rule(r.CHEAPEST)], w=w).warehouse_id == 110  # same cost, same priority: lower id
    w = world(
        bindings={
            TEA_SKU: [r.Binding(NINGBO, TEA_SKU, 1000, priority=1), r.Binding(TEA, TEA_SKU, 1000, priority=9)]
        }
    )
    assert one([rule(r.CHEAPEST)], w=w).warehouse_id == 111


def test_cheapest_with_no_supplier_able_falls_through():
    w = world(stock={})
    routed = one([rule(r.CHEAPEST), rule(r.HOLD, priority=2, name="人工")], w=w)
    assert routed.warehouse_id is None and routed.rule_id == 200 and routed.hold
    assert "跳过 规则 1：杭州茶厂 库存 0 < 1；宁波仓 库存 0 < 1；义乌工厂 库存 0 < 1" in routed.note


def test_split_sends_each_line_to_its_own_supplier_and_the_rest_home():
    book = r.compile_rules(4, [rule(r.SPLIT, name="拆单")])
    lines = [ln(TEA_SKU, id=1), ln(CAP_SKU, id=2), ln(SHIRT_SKU, id=3)]
    routes = r.route(book, world(), [(order(), lines)])
    assert [routes[i].warehouse_id for i in (1, 2, 3)] == [110, 111, OWN]
    assert routes[3].note == "规则 1「拆单」：所有订单 → 按供应商拆单：无供应商 → 自有仓 主仓，库存 7"
    assert "按供应商拆单：供应商 宁波仓" in routes[2].note


def test_hold_action_holds_the_line_with_the_reason():
    routed = one([rule(r.HOLD, name="大单人工", amount_min_fen=1000)])
    assert routed.warehouse_id is None and routed.rule_id == 100
    assert routed.hold == routed.note == "规则 1「大单人工」：金额 ≥ ¥10.00 → 暂停，待人工处理"


def test_rules_go_by_priority_and_disabled_rules_do_nothing():
    rules = [
        rule(r.WAREHOUSE, priority=20, name="b", warehouse_id=OWN2),
        rule(r.SUPPLIER, priority=10, name="a", supplier_id=NINGBO),
        {**rule(r.HOLD, priority=5, name="off"), "enabled": False},
    ]
    assert one(rules).warehouse_id == 111


# --- the default (no rule applies / no rule set) ------------------------------------------------------


def test_default_own_stock_first_then_bound_suppliers_by_priority():
    w = world(stock={(OWN, TEA_SKU): 3, (110, TEA_SKU): 9})
    routed = one([], w=w, version=None)
    assert routed == r.LineRoute(OWN, "未命中规则：自有仓 主仓，库存 3", None, None)
    routed = one([], w=w, line=ln(qty=4), version=None)
    assert routed.warehouse_id == 110 and routed.note == (
        "未命中规则：自有仓缺货 → 供应商 杭州茶厂，成本 ¥12.00，库存 9"
    )
    # a SKU no supplier supplies goes home, stock or not; so does a combination
    assert one([], line=ln(SHIRT_SKU, qty=99)).warehouse_id == OWN
    assert one([], line=ln(TEA_SKU, is_combo=True)).warehouse_id == OWN


def test_no_one_can_take_it_holds_with_each_refusal():
    w = world(
        stock={(110, TEA_SKU): 10, (111, TEA_SKU): 0, (112, TEA_SKU): 10},
        capacity_left={YIWU: 0},
    )
    w.suppliers[TEA] = r.SupplierInfo(TEA, "杭州茶厂", 110, False)
    routed = one([], w=w)
    assert routed.warehouse_id is None and routed.version == 3
    assert routed.hold == (
        "无供应商可接单：杭州茶厂 已暂停；宁波仓 库存 0 < 1；义乌工厂 今日产能已满（5）；自有仓 主仓 库存 0 < 1"
    )


def test_stock_and_capacity_are_consumed_within_one_batch():
    w = world(stock={(111, CAP_SKU): 1}, bindings={CAP_SKU: [r.Binding(NINGBO, CAP_SKU, 500)]})
    book = r.compile_rules(1, [rule(r.SUPPLIER, supplier_id=NINGBO)])
    routes = r.route(book, w, [(order(), [ln(CAP_SKU, id=1)]), (order(), [ln(CAP_SKU, id=2)])])
    assert routes[1].warehouse_id == 111 and routes[2].warehouse_id is None  # only one in stock
    assert "宁波仓 库存 0 < 1" in routes[2].hold
    w = world(stock={(112, TEA_SKU): 100}, capacity_left={YIWU: 2})
    book = r.compile_rules(1, [rule(r.SUPPLIER, supplier_id=YIWU)])
    routes = r.route(book, w, [(order(), [ln(id=i) for i in range(1, 4)])])
    assert [routes[i].warehouse_id for i in (1, 2, 3)] == [112, 112, None]
    assert "义乌工厂 今日产能已满（5）" in routes[3].hold


def test_regions_compare_without_their_suffix():
    assert r.region_key("浙江省") == r.region_key("浙江") == "浙江"
    assert r.region_key("新疆维吾尔自治区") == "新疆" and r.region_key("上海市") == "上海"
    assert r.region_key("北京") == "北京"

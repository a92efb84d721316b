"""Rule sets (suppliers.rules): validation in zh-Hans, drafts and versions, the API (write, dry
run, activate, idempotency, capabilities) and the pages (editor, dry run, exception queue)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from orders import services as orders
from orders.models import Order, OrderStatus, ReviewRule
from suppliers import rules
from suppliers import services as suppliers
from suppliers.models import RouteRule, RuleSet
from tenants.accounts.models import Role
from tests.conftest import OWNER_PASSWORD
from tests.logistics.test_api import api  # noqa: F401  (token calls of any role, with headers)
from tests.orders.conftest import channel_order, line

pytestmark = pytest.mark.django_db


@pytest.fixture
def tea(in_alpha, skus):
    supplier = suppliers.create_supplier(name="杭州茶厂", code="TEA")
    suppliers.set_supplier_sku(supplier=supplier, sku=skus["CAP-RED"], cost_fen=1200)
    suppliers.report_stock(supplier=supplier, sku=skus["CAP-RED"], on_hand=50)
    return supplier


def errors_of(call) -> dict:
    with translation.override("zh-hans"), pytest.raises(ValidationError) as exc:
        call()
    return exc.value.message_dict if hasattr(exc.value, "error_dict") else {"__all__": exc.value.messages}


@pytest.mark.parametrize(
    "fields,key,message",
    [
        ({"conditions": {"colour": ["red"]}}, "conditions", "未知条件"),
        ({"conditions": {"skus": [999999]}}, "skus", "未知"),
        ({"conditions": {"skus": ["x"]}}, "skus", ""),
        ({"conditions": {"skus": [{"a": 1}]}}, "skus", ""),
        ({"conditions": {"stores": "1"}}, "stores", ""),
        ({"conditions": {"platforms": ["taobao"]}}, "platforms", "taobao"),
        ({"conditions": {"hours": [25, 3]}}, "hours", ""),
        ({"conditions": {"hours": [3, 3]}}, "hours", ""),
        ({"conditions": {"weekdays": [0, 8]}}, "weekdays", ""),
        ({"conditions": {"amount_min_fen": 500, "amount_max_fen": 100}}, "amount_max_fen", ""),
        ({"conditions": {"amount_min_fen": -1}}, "amount_min_fen", ""),
        ({"conditions": {"brands": [""]}}, "brands", ""),
        ({"action": "supplier", "supplier": None}, "supplier", "供应商"),
        ({"action": "warehouse", "warehouse": None}, "warehouse", "仓"),
        ({"action": "teleport"}, "action", ""),
        ({"name": ""}, "name", ""),
    ],
)
def test_rules_are_validated_with_reasons_in_chinese(skus, fields, key, message):
    draft = rules.create_draft()
    kw = {"rule_set": draft, "name": "规则", "action": "hold", "conditions": {}} | fields
    errors = errors_of(lambda: rules.add_rule(**kw))
    assert key in errors, errors
    assert message in errors[key][0]
    assert any("\u4e00" <= ch <= "\u9fff" for ch in errors[key][0]), errors[key][0]  # zh-Hans
    assert not RouteRule.objects.exists()


def test_a_warehouse_rule_needs_an_own_warehouse_and_only_drafts_change(skus, tea):
    draft = rules.create_draft()
    errors = errors_of(
        lambda: rules.add_rule(rule_set=draft, name="仓", action="warehouse", warehouse=tea.warehouse)
    )
    assert "warehouse" in errors and "自有仓" in errors["warehouse"][0]
    rule = rules.add_rule(
        rule_set=draft, name="茶", action="supplier", supplier=tea, conditions={"provinces": ["浙江"]}
    )
    assert rule.priority == 10 and rules.add_rule(rule_set=draft, name="余下", action="split").priority == 20
    rules.activate(rule_set=draft)
    assert "草稿" in errors_of(lambda: rules.update_rule(rule=rule, name="改"))["__all__"][0]
    with pytest.raises(ValidationError):
        rules.delete_rule(rule=rule)
    # a new draft copies the active rules; activating it retires the old version, unchanged
    second = rules.create_draft()
    assert second.version == draft.version + 1
    assert list(second.rules.values_list("name", "priority")) == [("茶", 10), ("余下", 20)]
    rules.reorder(
        rule_set=second, rule_ids=list(second.rules.order_by("-priority").values_list("pk", flat=True))
    )
    assert list(second.rules.order_by("priority").values_list("name", flat=True)) == ["余下", "茶"]
    rules.activate(rule_set=second)
    draft.refresh_from_db()
    assert draft.status == RuleSet.Status.RETIRED and list(draft.rules.values_list("name", "priority")) == [
        ("茶", 10),
        ("余下", 20),
    ]
    assert rules.activate(rule_set=second).status == RuleSet.Status.ACTIVE  # again: nothing changes
    with pytest.raises(ValidationError):
        rules.activate(rule_set=draft)  # retired stays retired


# --- API ------------------------------------------------------------------------------------------------


def test_api_writes_a_draft_dry_runs_and_activates_it(api, in_alpha, store, skus, tea):  # noqa: F811
    orders.set_rule(kind=ReviewRule.Kind.AUTO_APPROVE, enabled=False)
    orders.ingest_channel_order(store=store, co=channel_order("D1", lines=(line(1, "CAP-RED", 2),)))

    def owner(method, path, data=None, **headers):
        return api(method, path, {} if data is None and method == "post" else data, headers=headers)

    made = owner("post", "/api/v1/rule-sets/", {"note": "茶叶走茶厂"}, **{"Idempotency-Key": "draft-1"})
    assert made.status_code == 201, made.content
    again = owner("post", "/api/v1/rule-sets/", {"note": "茶叶走茶厂"}, **{"Idempotency-Key": "draft-1"})
    assert again.json() == made.json() and RuleSet.objects.count() == 1  # the repeat made nothing
    draft = made.json()["id"]
    bad = owner(
        "post",
        "/api/v1/route-rules/",
        {"rule_set": draft, "name": "茶", "action": "supplier", "conditions": {"skus": ["CAP-RED"]}},
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid"
    rule = owner(
        "post",
        "/api/v1/route-rules/",
        {
            "rule_set": draft,
            "name": "茶",
            "action": "supplier",
            "supplier": tea.pk,
            "conditions": {"skus": [skus["CAP-RED"].pk]},
        },
    )
    assert rule.status_code == 201, rule.content
    assert rule.json()["description"] == "SKU 在清单" and rule.json()["priority"] == 10
    patched = owner("patch", f"/api/v1/route-rules/{rule.json()['id']}/", {"enabled": True, "name": "茶叶"})
    assert patched.status_code == 200 and patched.json()["name"] == "茶叶"
    preview = owner("post", f"/api/v1/rule-sets/{draft}/dry-run/", {"days": 30})
    assert preview.status_code == 200, preview.content
    body = preview.json()
    assert body["evaluated"] == 1 and body["moving"] == 1
    assert body["summary"][0]["to_warehouse"] == tea.warehouse_id and body["summary"][0]["lines"] == 1
    assert body["lines"][0]["note"] == "规则 10「茶叶」：SKU 在清单 → 供应商 杭州茶厂，成本 ¥12.00，库存 50"
    assert owner("post", f"/api/v1/rule-sets/{draft}/dry-run/", {"days": 0}).status_code == 400
    assert api("post", f"/api/v1/rule-sets/{draft}/activate/", {}, role=Role.VIEWER).status_code == 403
    assert api("get", f"/api/v1/rule-sets/{draft}/", role=Role.VIEWER).status_code == 200
    activated = owner("post", f"/api/v1/rule-sets/{draft}/activate/", **{"Idempotency-Key": "act-1"})
    assert activated.status_code == 200 and activated.json()["status"] == "active"
    assert [r["name"] for r in activated.json()["rules"]] == ["茶叶"]
    refused = owner("patch", f"/api/v1/route-rules/{rule.json()['id']}/", {"name": "x"})
    assert (
        refused.status_code == 409 and refused.json()["error"]["code"] == "not_draft"
    )  # active: never changes
    order = Order.objects.get()
    orders.approve(order=order, actor=None)
    assert order.lines.get().warehouse_id == tea.warehouse_id  # where the dry run said


# --- pages ----------------------------------------------------------------------------------------------


@pytest.fixture
def owner_client(in_alpha, alpha_client):
    login = alpha_client.post("/accounts/login/", {"username": "alpha-owner", "password": OWNER_PASSWORD})
    assert login.status_code == 302
    return alpha_client


def test_pages_edit_a_draft_dry_run_activate_and_reroute_exceptions(owner_client, store, skus, tea):
    suppliers.report_stock(supplier=tea, sku=skus["CAP-RED"], on_hand=0)
    held = orders.ingest_channel_order(store=store, co=channel_order("E1", lines=(line(1, "CAP-RED", 9),)))
    assert held.status == OrderStatus.HELD
    page = owner_client.get("/suppliers/exceptions/")
    assert (
        page.status_code == 200
        and "E1" in page.content.decode()
        and "无供应商可接单" in page.content.decode()
    )
    assert 'data-testid="exception-tab-count">1<' in owner_client.get("/suppliers/rules/").content.decode()
    assert owner_client.post("/suppliers/rules/new/").status_code == 302
    draft = RuleSet.objects.get()
    form = {
        "name": "大单人工",
        "action": "supplier",
        "sku_codes": "CAP-RED NOPE",
        "amount_min": "10.00",
        "weekdays": ["1", "2"],
        "enabled": "on",
    }
    refused = owner_client.post(f"/suppliers/rules/{draft.pk}/rules/new/", form)
    assert refused.status_code == 400 and "NOPE" in refused.content.decode()
    form["sku_codes"] = "CAP-RED"
    refused = owner_client.post(f"/suppliers/rules/{draft.pk}/rules/new/", form)
    assert refused.status_code == 400  # no supplier chosen for "send to supplier"
    form["supplier"] = str(tea.pk)
    assert owner_client.post(f"/suppliers/rules/{draft.pk}/rules/new/", form).status_code == 302
    rule = draft.rules.get()
    assert rule.conditions == {"skus": [skus["CAP-RED"].pk], "amount_min_fen": 1000, "weekdays": [1, 2]}
    assert owner_client.get(f"/suppliers/rules/{draft.pk}/rules/{rule.pk}/").status_code == 200
    detail = owner_client.get(f"/suppliers/rules/{draft.pk}/").content.decode()
    assert "大单人工" in detail and "金额 ≥ ¥10.00" in detail
    dry = owner_client.get(f"/suppliers/rules/{draft.pk}/dry-run/?days=30&all=1")
    assert dry.status_code == 200 and "E1" in dry.content.decode()
    assert owner_client.post(f"/suppliers/rules/{draft.pk}/activate/").status_code == 302
    assert owner_client.get("/suppliers/rules/").status_code == 200
    suppliers.report_stock(supplier=tea, sku=skus["CAP-RED"], on_hand=20)
    assert owner_client.post("/suppliers/exceptions/reroute/", {"one": str(held.pk)}).status_code == 302
    held.refresh_from_db()
    assert held.status == OrderStatus.APPROVED and held.lines.get().warehouse_id == tea.warehouse_id

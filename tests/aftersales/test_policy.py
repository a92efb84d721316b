"""The auto-approve rule for small refunds (``aftersales.policy``): its explanation names every
condition and says which failed; editing it is validated; it approves through the platform
(the sandbox over real HTTP) with source "rule" and writes its note either way."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from aftersales import policy
from aftersales.models import AfterSale, AfterSaleAction, AfterSaleEvent, AutoApprovePolicy
from channels.models import Store
from tests.aftersales.actions_rig import apply, operate_calls, world_status
from tests.logistics.waybill_world import connect_shops, start_sandbox

T = AfterSale.Type
Q_ = AfterSale.Queue


@pytest.fixture
def store(in_alpha):
    return Store.objects.create(platform="douyin", platform_shop_id="3101", name="抖店旗舰店", app_key="k")


def make(store, **fields) -> AfterSale:
    now = timezone.now()
    values = {
        "platform": store.platform,
        "platform_after_sale_id": f"AS{AfterSale.objects.count() + 1}",
        "platform_order_id": "O1",
        "type": T.REFUND_UNSHIPPED,
        "queue": Q_.PENDING,
        "channel_status": "waiting_merchant",
        "platform_status": "6",
        "refund_fen": 3000,
        "platform_updated_at": now,
        "applied_at": now,
        **fields,
    }
    return AfterSale.objects.create(store=store, **values)


def rule(**fields) -> AutoApprovePolicy:
    values = {"enabled": True, "max_fen": 5000, "unshipped_only": True, "store_ids": [], **fields}
    return policy.set_policy(**values)


def test_a_small_unshipped_refund_is_approved_and_every_condition_is_named(store):
    ok, why = policy.explain(make(store), rule())
    assert ok
    assert why.startswith("自动同意：")
    for words in (
        "规则已开启",
        "金额 30.00 元 ≤ 上限 50.00 元",
        "未发货",
        "类型 未发货仅退款",
        "店铺不限",
        "待处理",
    ):
        assert f"✓ {words}" in why, why
    assert "✗" not in why


@pytest.mark.parametrize(
    ("fields", "rule_fields", "failed"),
    [
        ({}, {"enabled": False}, "✗ 规则未开启"),
        ({"refund_fen": 5001}, {}, "✗ 金额 50.01 元 > 上限 50.00 元"),
        ({"shipped_before": True}, {}, "✗ 已发货（规则只管未发货）"),
        ({"type": T.RETURN_REFUND}, {"unshipped_only": False}, "✗ 类型 退货退款（规则只管仅退款）"),
        ({}, {"store_ids": "other"}, "✗ 店铺 抖店旗舰店 不在规则范围内"),
        ({"queue": Q_.AWAITING_RETURN}, {}, "✗ 当前为"),
    ],
)
def test_each_condition_that_fails_is_said_first(store, fields, rule_fields, failed):
    if rule_fields.get("store_ids") == "other":
        other = Store.objects.create(platform="wechat", platform_shop_id="wx1", name="微信小店", app_key="k")
        rule_fields = {"store_ids": [other.pk]}
    ok, why = policy.explain(make(store, **fields), rule(**rule_fields))
    assert not ok
    assert why.startswith("不自动同意：" + failed), why
    assert why.count("✗") == 1  # the others are said to hold
    assert why.count("✓") >= 4


def test_a_refund_after_shipment_passes_when_the_rule_is_not_for_unshipped_only(store):
    ok, why = policy.explain(
        make(store, type=T.REFUND_SHIPPED, shipped_before=True), rule(unshipped_only=False)
    )
    assert ok, why
    assert "未发货" not in why and "✓ 类型 已发货仅退款" in why


def test_the_rule_is_validated_when_edited(store):
    with pytest.raises(ValidationError) as bad:
        policy.set_policy(enabled=True, max_fen=-1, store_ids=[999999])
    assert set(bad.value.message_dict) == {"max_fen", "store_ids"}
    with pytest.raises(ValidationError):
        policy.set_policy(enabled=True, max_fen=policy.MAX_LIMIT_FEN + 1)
    saved = policy.set_policy(
        enabled=True, max_fen=8000, unshipped_only=False, store_ids=[store.pk, store.pk]
    )
    assert (saved.max_fen, saved.store_ids, saved.unshipped_only) == (8000, [store.pk], False)
    assert AutoApprovePolicy.objects.count() == 1


# --- through the platform ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = start_sandbox(tmp_path_factory.mktemp("policy") / "world.sqlite3", seed=1616)
    yield server
    server.stop()
    server.world.close()


@pytest.fixture
def shops(server, in_alpha, settings, monkeypatch):
    server.faults.clear()
    for platform in ("douyin", "kuaishou", "wechat"):
        server.faults.set(platform, "*", qps=0)
    return connect_shops(server)


def test_auto_approve_answers_the_platform_as_the_rule_and_notes_why(shops):
    small = apply(shops, "douyin", "refund_unshipped")
    rule(max_fen=small.refund_fen)
    before = shops.world.last_call_id()

    action = policy.auto_approve(small)
    assert policy.auto_approve(small).pk == action.pk  # twice: one answer

    assert action.status == AfterSaleAction.Status.DONE and action.params["source"] == "rule"
    assert operate_calls(shops, "douyin", after_id=before) == 1
    assert world_status(shops, small) != "wait_seller_agree"
    small.refresh_from_db()
    assert small.auto_note.startswith("自动同意：")
    assert AfterSaleEvent.objects.filter(after_sale=small, kind="action_approve", source="rule").exists()


def test_auto_approve_leaves_a_larger_refund_to_the_merchant_with_the_reason(shops):
    large = apply(shops, "douyin", "refund_unshipped")
    rule(max_fen=large.refund_fen - 1)
    before = shops.world.last_call_id()

    assert policy.auto_approve(large) is None
    large.refresh_from_db()
    assert large.auto_note.startswith("不自动同意：✗ 金额")
    assert large.queue == Q_.PENDING and world_status(shops, large) == "wait_seller_agree"
    assert operate_calls(shops, "douyin", after_id=before) == 0

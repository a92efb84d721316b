"""The merchant's answers to after-sales through the platform (``aftersales.actions``), against
the sandbox over real HTTP: approve / refuse / confirm the return, counted in the sandbox's own
call log (a double click is one call), Douyin's version guard (stale data is never sent: the
after-sale is read again and the merchant told), no answer from the platform (read first, never
sent twice), the queue refusing what it does not allow, intercepts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from aftersales import actions
from aftersales.models import AfterSale, AfterSaleAction, AfterSaleEvent
from channels.models import AfterSaleSnapshot
from tests.aftersales.actions_rig import apply, operate_calls, pull, world_status
from tests.logistics.waybill_world import connect_shops, start_sandbox

S = AfterSaleAction.Status
Q_ = AfterSale.Queue


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = start_sandbox(tmp_path_factory.mktemp("answers") / "world.sqlite3", seed=1515)
    yield server
    server.stop()
    server.world.close()


@pytest.fixture
def shops(server, in_alpha, settings, monkeypatch):
    for platform in ("douyin", "kuaishou", "wechat"):
        server.faults.clear(platform)
        server.faults.set(platform, "*", qps=0)
    return connect_shops(server)


def test_douyin_approve_refund_is_one_call_and_shows_the_platforms_truth(shops):
    after_sale = apply(shops, "douyin", "refund_unshipped")
    assert after_sale.queue == Q_.PENDING and after_sale.platform_version
    before = shops.world.last_call_id()

    first = actions.approve(after_sale, actor=None)
    again = actions.approve(after_sale, actor=None)  # a double click: the same action

    assert first.pk == again.pk and first.status == S.DONE
    assert operate_calls(shops, "douyin", after_id=before) == 1
    assert world_status(shops, after_sale) == "success"
    after_sale.refresh_from_db()
    assert after_sale.queue in (Q_.AWAITING_REFUND, Q_.DONE)  # optimistic, then the platform's word
    # read back from the platform at once: a pulled version newer than the one answered
    assert (
        AfterSaleSnapshot.objects.filter(
            store=after_sale.store, platform_after_sale_id=after_sale.platform_after_sale_id, source="pull"
        ).count()
        >= 2
    )
    assert AfterSaleEvent.objects.filter(after_sale=after_sale, kind="action_approve").count() == 1


def test_stale_version_is_not_sent_the_after_sale_is_read_again_and_the_merchant_told(shops):
    after_sale = apply(shops, "douyin", "refund_unshipped")
    current = after_sale.platform_version
    AfterSale.objects.filter(pk=after_sale.pk).update(platform_version=str(int(current) - 5))
    before = shops.world.last_call_id()

    action = actions.approve(after_sale)

    assert action.status == S.FAILED
    assert "变化" in action.error or "changed" in action.error
    assert world_status(shops, after_sale) == "wait_seller_agree"  # the platform did nothing
    assert operate_calls(shops, "douyin", after_id=before) == 0
    after_sale.refresh_from_db()
    assert after_sale.platform_version == current  # the platform's version, read again
    assert after_sale.last_error
    # the merchant looks again and answers anew: a new action, with the current version
    fresh = actions.approve(after_sale)
    assert fresh.pk != action.pk and fresh.status == S.DONE
    assert operate_calls(shops, "douyin", after_id=before) == 1


def test_lost_reply_after_the_platform_acted_is_done_without_a_second_call(shops, server):
    after_sale = apply(shops, "douyin", "refund_unshipped")
    server.faults.set("douyin", "/afterSale/operate", lost_reply_5xx_rate=1.0)
    before = shops.world.last_call_id()

    action = actions.approve(after_sale)
    actions.send_due()
    actions.retry(action)

    action.refresh_from_db()
    assert action.status == S.DONE and action.result.get("seen_on_platform")
    assert operate_calls(shops, "douyin", after_id=before) == 1


def test_no_answer_waits_then_the_sweep_sends_it_exactly_once(shops, server):
    after_sale = apply(shops, "douyin", "refund_unshipped")
    server.faults.set("douyin", "/afterSale/operate", http_5xx_rate=1.0)
    before = shops.world.last_call_id()

    action = actions.approve(after_sale)
    assert action.status == S.PENDING and action.not_before > timezone.now() and action.error
    assert actions.send_due() == 0  # not due yet

    server.faults.clear("douyin", "/afterSale/operate")
    AfterSaleAction.objects.filter(pk=action.pk).update(not_before=timezone.now() - timedelta(seconds=1))
    assert actions.send_due() == 1
    assert actions.send_due() == 0
    action.refresh_from_db()
    assert action.status == S.DONE
    assert operate_calls(shops, "douyin", after_id=before) == 1
    assert world_status(shops, after_sale) != "wait_seller_agree"


def test_refusal_needs_a_reason_and_the_platform_refusal_stays_visible_and_retryable(shops):
    after_sale = apply(shops, "douyin", "refund_unshipped")
    with pytest.raises(ValidationError):
        actions.reject(after_sale, reason_code="")
    with pytest.raises(ValidationError):  # not one of the platform's codes
        actions.reject(after_sale, reason_code="1")
    with pytest.raises(ValidationError):  # this reason needs images
        actions.reject(after_sale, reason_code="1001")
    assert not AfterSaleAction.objects.filter(after_sale=after_sale).exists()

    action = actions.reject(after_sale, reason_code="1003", reason="已与买家协商")
    assert action.status == S.DONE
    assert world_status(shops, after_sale) == "seller_rejected"
    after_sale.refresh_from_db()
    assert after_sale.queue == Q_.CLOSED
    with pytest.raises(ValidationError):  # closed: nothing to approve any more
        actions.approve(after_sale)


def test_platform_refusal_is_failed_with_its_message_visible_and_retryable(shops, server):
    after_sale = apply(shops, "douyin", "refund_unshipped")
    shops.world.close_aftersale(after_sale.platform_after_sale_id)  # the buyer withdrew meanwhile
    before = shops.world.last_call_id()

    action = actions.approve(after_sale)

    assert action.status == S.FAILED and action.error
    after_sale.refresh_from_db()
    assert action.error in after_sale.last_error
    assert AfterSaleEvent.objects.filter(after_sale=after_sale, kind="action_failed").count() == 1
    # read back at once: the platform's truth is stored (ingested after the commit)
    assert AfterSaleSnapshot.objects.filter(
        store=after_sale.store, platform_after_sale_id=after_sale.platform_after_sale_id, status="closed"
    ).exists()
    # the row still says 待处理 here (ingestion runs after the commit): a retry is sent and
    # refused again, still visible
    again = actions.retry(action)
    assert again.pk == action.pk and again.status == S.FAILED and again.attempts == 1
    assert operate_calls(shops, "douyin", ok=True, after_id=before) == 0


def test_a_stale_refusal_retried_goes_out_with_the_version_read_again(shops):
    after_sale = apply(shops, "douyin", "refund_unshipped")
    AfterSale.objects.filter(pk=after_sale.pk).update(platform_version="1")
    before = shops.world.last_call_id()
    action = actions.approve(after_sale)
    assert action.status == S.FAILED

    again = actions.retry(action)

    assert again.pk == action.pk and again.status == S.DONE and again.attempts == 1
    assert operate_calls(shops, "douyin", after_id=before) == 1
    assert world_status(shops, after_sale) == "success"


def test_return_approved_then_confirmed_when_the_goods_are_back(shops):
    after_sale = apply(shops, "douyin", "return_refund")
    assert actions.approve(after_sale).status == S.DONE
    assert world_status(shops, after_sale) == "wait_buyer_return"
    with pytest.raises(ValidationError):  # nothing came back yet
        actions.confirm_receipt(after_sale)
    shops.world.buyer_return_goods(after_sale.platform_after_sale_id, carrier="YTO", tracking_no="YT900001")
    after_sale = pull(after_sale.store, after_sale.platform_after_sale_id)
    assert after_sale.queue == Q_.AWAITING_RECEIPT
    action = actions.confirm_receipt(after_sale)
    assert action.status == S.DONE
    assert world_status(shops, after_sale) == "success"
    after_sale.refresh_from_db()
    assert after_sale.queue in (Q_.AWAITING_REFUND, Q_.DONE)


def test_actions_refused_by_the_queue_in_chinese(shops):
    after_sale = apply(shops, "douyin", "refund_unshipped")
    AfterSale.objects.filter(pk=after_sale.pk).update(queue=Q_.CLOSED)
    from django.utils import translation

    with translation.override("zh-hans"), pytest.raises(ValidationError) as refused:
        actions.approve(after_sale)
    message = " ".join(refused.value.messages)
    assert "不能" in message and "同意" in message, message
    assert not AfterSaleAction.objects.filter(after_sale=after_sale).exists()


def test_bulk_approve_approves_the_ticked_and_lists_each_refused_with_why(shops):
    first = apply(shops, "douyin", "refund_unshipped")
    second = apply(shops, "douyin", "refund_unshipped")
    refused = apply(shops, "douyin", "refund_unshipped")
    assert actions.reject(refused, reason_code="1003").status == S.DONE
    before = shops.world.last_call_id()

    result = actions.bulk_approve([first.pk, refused.pk, second.pk, first.pk, 987654321], actor=None)

    done = AfterSaleAction.objects.filter(pk__in=result["approved"])
    assert sorted(a.after_sale_id for a in done) == sorted([first.pk, second.pk])
    assert all(a.status == S.DONE for a in done)
    assert [i for i, _why in result["refused"]] == [refused.pk, 987654321]
    assert "Cannot approve" in result["refused"][0][1] or "不能" in result["refused"][0][1]
    assert operate_calls(shops, "douyin", after_id=before) == 2


# --- each platform --------------------------------------------------------------------------------


@pytest.fixture
def frozen_world(server):
    """The world's clock held still (advanced by hand): WeChat's per-minute limit without waiting."""
    import time

    from sandbox.clock import FakeClock

    real = server.world.clock
    server.world.clock = FakeClock(start=time.time())
    yield server.world.clock
    server.world.clock = real


@pytest.mark.parametrize("platform", ["douyin", "kuaishou", "wechat"])
def test_approve_refuse_and_confirm_on_each_platform(platform, shops, frozen_world):
    before = shops.world.last_call_id()
    refund = apply(shops, platform, "refund_unshipped")
    assert actions.approve(refund).status == S.DONE
    assert world_status(shops, refund) == "success"

    refused = apply(shops, platform, "refund_unshipped")
    reason = next(r for r in actions.reject_reasons(refused.store) if not r.needs_evidence)
    assert actions.reject(refused, reason_code=reason.code).status == S.DONE
    assert world_status(shops, refused) == "seller_rejected"

    back = apply(shops, platform, "return_refund")
    assert actions.approve(back).status == S.DONE  # the shop's default return address
    assert world_status(shops, back) == "wait_buyer_return"
    shops.world.buyer_return_goods(
        back.platform_after_sale_id, carrier="YTO", tracking_no=f"YT77{back.pk:08d}"
    )
    back = pull(back.store, back.platform_after_sale_id)
    assert back.queue == Q_.AWAITING_RECEIPT
    frozen_world.advance(61)  # WeChat: one refund call per order per minute
    assert actions.confirm_receipt(back).status == S.DONE
    assert world_status(shops, back) == "success"
    assert operate_calls(shops, platform, after_id=before) == 4


def test_wechat_per_minute_limit_queues_the_answer_and_sends_it_later_once(
    shops, frozen_world, django_capture_on_commit_callbacks
):
    from aftersales import tasks_actions

    order = shops.order("wechat", 1, 1)
    first = apply(shops, "wechat", "refund_unshipped", order=order, line=0)
    second = apply(shops, "wechat", "refund_unshipped", order=order, line=1)
    assert actions.approve(first).status == S.DONE
    before = shops.world.last_call_id()

    with django_capture_on_commit_callbacks(execute=False) as scheduled:
        waiting = actions.approve(second)

    assert waiting.status == S.PENDING and waiting.error
    assert timezone.now() < waiting.not_before <= timezone.now() + timedelta(seconds=61)
    assert len(scheduled) == 1  # the Celery task, with a countdown to that moment
    assert world_status(shops, second) == "wait_seller_agree"
    assert AfterSaleEvent.objects.filter(after_sale=second, kind="action_waiting").count() == 1
    assert tasks_actions.send_action_task(waiting.pk) == S.PENDING  # too early: nothing sent
    assert actions.approve(second).pk == waiting.pk  # a second click: the same waiting answer

    frozen_world.advance(61)
    AfterSaleAction.objects.filter(pk=waiting.pk).update(not_before=timezone.now() - timedelta(seconds=1))
    assert tasks_actions.send_action_task(waiting.pk) == S.DONE
    assert tasks_actions.send_action_task(waiting.pk) == S.DONE  # delivered twice: sent once
    assert actions.send_due() == 0
    assert world_status(shops, second) == "success"
    assert operate_calls(shops, "wechat", after_id=before) == 1


def test_reject_reasons_are_cached_per_shop_and_tenant(shops, beta):
    from django.core.cache import cache
    from django_tenants.utils import schema_context

    store = shops.stores["douyin"]
    before = shops.world.last_call_id()
    first = actions.reject_reasons(store)
    assert first == actions.reject_reasons(store) and {r.code for r in first} >= {"1001", "1003"}
    assert sum(shops.world.call_counts(path="/afterSale/rejectReasonCodeList", after_id=before).values()) == 1
    key = actions._cache_key("reject_reasons", store)
    assert cache.get(key) is not None
    with schema_context(beta.schema_name):  # another tenant's shop with the same id sees nothing
        assert cache.get(key) is None


# --- intercepts -----------------------------------------------------------------------------------


def shipped_through_ecbao(shops, platform):
    """An order shipped by ecbao (waybill taken, shipped, written back to the platform)."""
    from logistics import waybills, writeback
    from logistics.shipping import ship_parcels
    from tests.logistics.waybill_world import parcels_of

    order = shops.order(platform, 1)
    (parcel,) = parcels_of(order)
    waybills.take_for_parcel(parcel)
    assert ship_parcels([parcel.pk]).ok
    assert writeback.send_due() == 1
    parcel.refresh_from_db()
    return order, parcel


def test_douyin_intercept_goes_to_the_platform_with_its_cost(shops):
    order, parcel = shipped_through_ecbao(shops, "douyin")
    after_sale = apply(shops, "douyin", "refund_shipped", order=order)
    before = shops.world.last_call_id()

    (action,) = actions.intercept(after_sale)
    assert actions.intercept(after_sale)[0].pk == action.pk  # asked twice: one request

    assert action.status == S.DONE and action.result["via"] == "platform"
    assert action.result["accepted"] is True and action.result["cost_fen"] > 0
    assert action.params["tracking_no"] == parcel.tracking_no
    cost = f"{action.result['cost_fen'] / 100:.2f}"
    assert AfterSaleEvent.objects.get(after_sale=after_sale, kind="action_intercept").message.count(cost) == 1
    calls = shops.world.call_counts(path="/afterSale/applyLogisticsIntercept", after_id=before)
    assert sum(calls.values()) == 1


def test_intercept_elsewhere_is_a_logistics_intercept_request(shops):
    from logistics.models import Intercept

    order, parcel = shipped_through_ecbao(shops, "kuaishou")
    after_sale = apply(shops, "kuaishou", "refund_shipped", order=order)

    (action,) = actions.intercept(after_sale)

    assert action.status == S.DONE and action.result["via"] == "logistics"
    request = Intercept.objects.get(pk=action.result["intercept_id"])
    assert (request.parcel_id, request.order_id) == (parcel.pk, order.pk)
    assert actions.intercept(after_sale)[0].pk == action.pk
    assert Intercept.objects.filter(parcel=parcel).count() == 1


def test_intercept_of_a_suppliers_parcel_asks_the_supplier(shops):
    """Kuaishou (no intercept API): a line a supplier shipped → a logistics intercept request and
    the supplier is asked (the after-sale is in the supplier's portal)."""
    from inventory.models import Sku
    from logistics import manual, writeback
    from logistics.models import Intercept
    from suppliers.models import Dispatch
    from tests.suppliers.factories import bind, make_supplier
    from tests.suppliers.portal_rig import routing

    code = shops.world.skus(shops.shop_ids["kuaishou"])[0].code
    supplier = make_supplier("AS1", name="杭州茶厂")
    bind(supplier, Sku.objects.get(merchant_code=code), stock=50)
    with routing({code: supplier.warehouse_id}):
        order = shops.order("kuaishou", 1)
    dispatch = Dispatch.objects.get(fulfilment__lines__order_line__order=order, supplier=supplier)
    manual.enter_tracking(order, "zto", "731000000000001", warehouse=supplier.warehouse)
    writeback.send_due()
    after_sale = apply(shops, "kuaishou", "refund_shipped", order=order)
    assert after_sale.supplier_id == supplier.pk and after_sale.dispatch_id == dispatch.pk

    (action,) = actions.intercept(after_sale)

    assert action.status == S.DONE and action.result["via"] == "logistics"
    assert action.result["supplier_asked"] == supplier.pk
    assert Intercept.objects.filter(pk=action.result["intercept_id"], order=order).exists()
    event = AfterSaleEvent.objects.get(after_sale=after_sale, kind="action_intercept")
    assert "731000000000001" in event.message and event.data["supplier_asked"] == supplier.pk

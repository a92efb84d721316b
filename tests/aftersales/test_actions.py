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
from tests.aftersales.actions_rig import (
    apply,
    install_interim_douyin_answers,
    operate_calls,
    world_status,
)
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
    install_interim_douyin_answers(monkeypatch)
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

    action = actions.reject(after_sale, reason_code="1", reason="已与买家协商")
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

    assert action.status == S.FAILED and "状态" in action.error  # the platform's own words
    after_sale.refresh_from_db()
    assert action.error in after_sale.last_error
    assert AfterSaleEvent.objects.filter(after_sale=after_sale, kind="action_failed").count() == 1
    assert operate_calls(shops, "douyin", ok=False, after_id=before) == 1

    # read back at once: ecbao now shows the platform's truth, and nothing more is allowed
    after_sale.refresh_from_db()
    assert AfterSaleSnapshot.objects.filter(
        store=after_sale.store, platform_after_sale_id=after_sale.platform_after_sale_id, status="closed"
    ).exists()
    # (ingestion of that version runs after the commit; here the row still says 待处理) a retry
    # goes out again and is refused again, still visible
    again = actions.retry(action)
    assert again.pk == action.pk and again.status == S.FAILED
    assert operate_calls(shops, "douyin", ok=False, after_id=before) == 2
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
    from tests.aftersales.actions_rig import pull

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
    assert actions.reject(refused, reason_code="1", reason="已发货").status == S.DONE
    before = shops.world.last_call_id()

    result = actions.bulk_approve([first.pk, refused.pk, second.pk, first.pk, 987654321], actor=None)

    done = AfterSaleAction.objects.filter(pk__in=result["approved"])
    assert sorted(a.after_sale_id for a in done) == sorted([first.pk, second.pk])
    assert all(a.status == S.DONE for a in done)
    assert [i for i, _why in result["refused"]] == [refused.pk, 987654321]
    assert "Cannot approve" in result["refused"][0][1] or "不能" in result["refused"][0][1]
    assert operate_calls(shops, "douyin", after_id=before) == 2

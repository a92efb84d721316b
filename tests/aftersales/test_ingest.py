"""After-sales ingestion (h-core): the channel layer's newest version → AfterSale, idempotent and
order-preserving, with the sweep for versions whose event was lost, the order linked when it
arrives, and the work queue of each (type, status). Versions go through the real channel path
(``store_after_sale_version``) on real PostgreSQL (tests/aftersales/ingest_rig.py)."""

from __future__ import annotations

import pytest

from aftersales import services
from aftersales.models import AfterSale, AfterSaleEvent
from channels.events import AfterSaleChanged
from channels.types import AfterSaleItem
from ecbao import events
from orders import services as orders
from orders.models import OrderEvent
from tests.aftersales.ingest_rig import CS, CT, deliver, fingerprint, later, store_version, version
from tests.orders.conftest import channel_order, line

pytestmark = pytest.mark.django_db
Q = AfterSale.Queue


@pytest.fixture
def order(store, skus):
    return orders.ingest_channel_order(
        store=store, co=channel_order("6930000000000000001", lines=(line(1), line(2, "CAP-RED", qty=2)))
    )


def test_a_version_becomes_an_after_sale_with_its_lines_queue_and_timeline(store, order):
    first = order.lines.get(platform_line_id="L1")
    after_sale = deliver(store, version(order, lines=[first], reason_code="R7"))
    assert after_sale.order == order and after_sale.type == AfterSale.Type.REFUND_UNSHIPPED
    assert (after_sale.queue, after_sale.channel_status) == (Q.PENDING, "waiting_merchant")
    assert not after_sale.shipped_before and after_sale.reason_code == "R7"
    assert list(after_sale.lines.values_list("platform_line_id", "order_line_id", "quantity")) == [
        ("L1", first.pk, 1)
    ]
    assert after_sale.snapshot_id is not None and after_sale.deadline is not None
    # handled by the warehouse that ships the line
    assert after_sale.warehouse_id == first.warehouse_id and after_sale.supplier_id is None
    assert list(after_sale.events.values_list("kind", flat=True)) == ["created"]
    assert OrderEvent.objects.filter(order=order, kind="after_sale_created").exists()


def test_a_duplicate_and_an_out_of_order_version_change_nothing_after_the_first(store, order):
    v1 = version(order)
    v2 = later(v1, status=CS.REFUNDING, platform_status="refunding")
    after_sale = deliver(store, v1)
    after_sale = deliver(store, v2)
    assert after_sale.queue == Q.AWAITING_REFUND
    seen = fingerprint(after_sale)
    # the same version again (a repeated push, a pull that brings it back)
    assert deliver(store, v2) == after_sale
    assert fingerprint(after_sale) == seen
    # the older version arriving late: stored, never the newest, never applied
    assert store_version(store, v1) is False
    services.ingest(store_id=store.pk, platform_after_sale_id=v1.platform_after_sale_id)
    assert fingerprint(after_sale) == seen
    assert after_sale.channel_status == "refunding"


def test_an_older_version_never_replaces_a_newer_one(store, order):
    v1 = version(order)
    v3 = later(v1, 120, status=CS.SUCCEEDED, platform_status="done")
    after_sale = deliver(store, v3)  # the newest first
    assert after_sale.queue == Q.DONE
    v2 = later(v1, 60, status=CS.REFUNDING)
    deliver(store, v2)
    deliver(store, v1)
    after_sale.refresh_from_db()
    assert (after_sale.channel_status, after_sale.queue) == ("succeeded", Q.DONE)
    assert after_sale.platform_updated_at == v3.updated_at
    assert after_sale.events.filter(kind="status").count() == 0


def test_the_sweep_applies_a_version_whose_event_was_lost(store, order):
    v1 = version(order)
    after_sale = deliver(store, v1)
    deliver(store, later(v1, status=CS.REJECTED, platform_status="refused"), lost=True)
    other = version(order, after_sale_id="AS-LOST")
    assert deliver(store, other, lost=True) is None
    after_sale.refresh_from_db()
    assert after_sale.queue == Q.PENDING
    assert services.sweep() == 2
    after_sale.refresh_from_db()
    assert (after_sale.channel_status, after_sale.queue) == ("rejected", Q.CLOSED)
    assert AfterSale.objects.get(platform_after_sale_id="AS-LOST").order == order
    assert after_sale.events.filter(kind="status").count() == 1
    assert services.sweep() == 0  # nothing left to apply


def test_an_after_sale_before_its_order_is_linked_when_the_order_arrives(store, skus):
    v = version(
        store=store,
        platform_order_id="6930000000000000777",
        items=(AfterSaleItem(platform_line_id="L1", quantity=1, refund_fen=9900),),
    )
    after_sale = deliver(store, v)
    assert after_sale.order is None and after_sale.queue == Q.PENDING
    assert after_sale.lines.get().order_line is None
    order = orders.ingest_channel_order(store=store, co=channel_order("6930000000000000777"))
    assert services.sweep() == 1
    after_sale.refresh_from_db()
    assert after_sale.order == order
    assert after_sale.lines.get().order_line == order.lines.get(platform_line_id="L1")
    assert after_sale.events.filter(kind="linked").count() == 1
    assert OrderEvent.objects.filter(order=order, kind="after_sale_linked").exists()
    assert services.sweep() == 0


def test_kuaishou_after_sales_find_the_one_order_per_sub_order(in_alpha, skus):
    from dataclasses import replace

    from channels.models import Store
    from channels.types import Platform

    ks = Store.objects.create(platform="kuaishou", platform_shop_id="ks-1", name="快手小店", app_key="k")
    co = channel_order("2410000000001", lines=(line(1),))
    co = replace(
        co,
        platform=Platform.KUAISHOU,
        platform_shop_id="ks-1",
        lines=(replace(co.lines[0], platform_line_id="2410000000001"),),
    )
    order = orders.ingest_channel_order(store=ks, co=co)
    # the refund names the sub-order (ecbao's order) as order and line
    v = version(
        store=ks,
        platform_order_id="2410000000001",
        items=(AfterSaleItem(platform_line_id="2410000000001", quantity=1),),
    )
    after_sale = deliver(ks, v)
    assert after_sale.order == order
    assert after_sale.lines.get().order_line == order.lines.get()


@pytest.mark.parametrize(
    ("kind", "steps", "queues"),
    [
        (
            CT.RETURN_REFUND,
            [
                CS.WAITING_MERCHANT,
                CS.WAITING_BUYER_RETURN,
                CS.WAITING_MERCHANT_RECEIPT,
                CS.REFUNDING,
                CS.SUCCEEDED,
            ],
            [Q.PENDING, Q.AWAITING_RETURN, Q.AWAITING_RECEIPT, Q.AWAITING_REFUND, Q.DONE],
        ),
        (
            CT.EXCHANGE,
            [CS.WAITING_MERCHANT, CS.WAITING_BUYER_RETURN, CS.WAITING_MERCHANT_RECEIPT, CS.WAITING_MERCHANT],
            [Q.PENDING, Q.AWAITING_RETURN, Q.AWAITING_RECEIPT, Q.AWAITING_REFUND],  # 待退款/待补发
        ),
        (CT.REFUND_ONLY, [CS.WAITING_MERCHANT, CS.CLOSED], [Q.PENDING, Q.CLOSED]),
    ],
)
def test_the_queue_follows_type_and_status(store, order, kind, steps, queues):
    v = version(order, type=kind)
    seen = []
    for n, status in enumerate(steps):
        v = later(v, status=status, platform_status=f"{status.value}-{n}")
        seen.append(deliver(store, v).queue)
    assert seen == queues
    after_sale = AfterSale.objects.get()
    assert after_sale.events.filter(kind="status").count() == len(steps) - 1


def test_the_return_waybill_goes_on_the_timeline_once(store, order):
    v = version(order, type=CT.RETURN_REFUND, status=CS.WAITING_BUYER_RETURN)
    deliver(store, v)
    v = later(v, status=CS.WAITING_MERCHANT_RECEIPT, return_tracking_no="SF1234567890", return_carrier="sf")
    after_sale = deliver(store, v)
    deliver(store, later(v, status=CS.REFUNDING))
    assert after_sale.return_tracking_no == "SF1234567890"
    assert AfterSaleEvent.objects.filter(after_sale=after_sale, kind="return_shipped").count() == 1


def test_after_sale_changed_is_subscribed_to_the_ingest_task():
    from aftersales import subscriptions

    handlers = events.handlers_for(AfterSaleChanged)
    assert subscriptions.on_after_sale_changed in handlers


def test_an_exchange_confirmed_received_by_the_merchant_waits_for_its_replacement(store, order):
    from aftersales import effects

    v = version(order, type=CT.EXCHANGE, status=CS.WAITING_MERCHANT_RECEIPT)
    after_sale = deliver(store, v)
    assert after_sale.queue == Q.AWAITING_RECEIPT
    after_sale = effects.on_return_received(after_sale)
    assert after_sale.queue == Q.AWAITING_REFUND and after_sale.effects["return_received"]
    effects.on_return_received(after_sale)  # a repeat
    assert after_sale.events.filter(kind="return_received").count() == 1
    # the platform's next version agrees (its merchant step again): still 待退款/待补发
    assert deliver(store, later(v, status=CS.WAITING_MERCHANT)).queue == Q.AWAITING_REFUND

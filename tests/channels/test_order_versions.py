"""Storing platform order versions: idempotent, order-preserving, events after commit."""

from datetime import UTC, datetime, timedelta

import pytest

from channels import events as channel_events
from channels import services
from channels.models import ChannelOrderState, OrderSnapshot, Store
from channels.types import ChannelOrder, ChannelOrderLine, CipherField, OrderStatus, Platform, Receiver
from ecbao import events

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def order(status=OrderStatus.PAID, at=T0, platform_status="2", remark=""):
    return ChannelOrder(
        platform=Platform.DOUYIN,
        platform_shop_id="1001",
        platform_order_id="6920000000000000001",
        platform_status=platform_status,
        status=status,
        created_at=T0,
        updated_at=at,
        lines=(
            ChannelOrderLine("6920000000000000002", "p1", "s1", "TSHIRT-WHT-L", "T恤", "白 L", 1, 9900, 8900),
        ),
        receiver=Receiver(
            CipherField("#c1#", "张*"),
            CipherField("$c2$", "138****8888"),
            CipherField("#c3#", "文***号"),
            "浙江省",
            "杭州市",
            "西湖区",
        ),
        buyer_remark=remark,
    )


def payload(o: ChannelOrder) -> dict:
    return {
        "order_id": o.platform_order_id,
        "order_status": o.platform_status,
        "update_time": int(o.updated_at.timestamp()),
        "buyer_words": o.buyer_remark,
    }


@pytest.fixture
def store(in_alpha):
    return Store.objects.create(platform="douyin", platform_shop_id="1001", name="抖店一号", app_key="k")


@pytest.fixture
def published():
    seen = []
    handler = seen.append
    events.subscribe(channel_events.OrderChanged, handler)
    yield seen
    events.unsubscribe(channel_events.OrderChanged, handler)


def test_same_version_twice_changes_nothing(store, published, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert services.store_order_version(
            store=store, order=order(), payload=payload(order()), source="pull"
        )
        assert not services.store_order_version(
            store=store, order=order(), payload=payload(order()), source="push"
        )
    assert OrderSnapshot.objects.count() == 1
    assert len(published) == 1 and published[0].status == "paid"


def test_older_version_is_kept_but_never_replaces_the_newer(
    store, published, django_capture_on_commit_callbacks
):
    newer = order(OrderStatus.SHIPPED, T0 + timedelta(minutes=5), "3")
    older = order(OrderStatus.PAID, T0, "2")
    with django_capture_on_commit_callbacks(execute=True):
        services.store_order_version(store=store, order=newer, payload=payload(newer), source="push")
        assert not services.store_order_version(
            store=store, order=older, payload=payload(older), source="pull"
        )
    state = ChannelOrderState.objects.get()
    assert state.status == "shipped" and state.platform_status == "3"
    assert OrderSnapshot.objects.count() == 2  # every version received is kept
    assert [e.status for e in published] == ["shipped"]


def test_equal_update_time_advances_only_along_the_status_progression(store):
    paid = order(OrderStatus.PAID, T0, "2")
    shipped = order(OrderStatus.SHIPPED, T0, "3")
    services.store_order_version(store=store, order=shipped, payload=payload(shipped), source="pull")
    assert not services.store_order_version(store=store, order=paid, payload=payload(paid), source="pull")
    assert ChannelOrderState.objects.get().status == "shipped"


def test_a_changed_payload_at_a_later_time_becomes_newest(store):
    first = order(remark="")
    second = order(remark="请发顺丰", at=T0 + timedelta(seconds=1))
    services.store_order_version(store=store, order=first, payload=payload(first), source="pull")
    assert services.store_order_version(store=store, order=second, payload=payload(second), source="push")
    state = ChannelOrderState.objects.get()
    assert state.snapshot.payload["buyer_words"] == "请发顺丰"
    assert state.snapshot.normalized["receiver"]["phone"]["mask"] == "138****8888"


# --- a page at a time (store_order_versions) ---------------------------------------------------------


def versioned(o: ChannelOrder, oid: str | None = None) -> ChannelOrder:
    from dataclasses import replace

    o = replace(o, platform_order_id=oid or o.platform_order_id)
    return replace(o, raw=payload(o))


@pytest.fixture
def published_pages():
    seen = []
    events.subscribe(channel_events.OrdersChanged, seen.append)
    yield seen
    events.unsubscribe(channel_events.OrdersChanged, seen.append)


def test_a_page_stores_every_version_once_and_announces_the_changed_orders(
    store, published_pages, django_capture_on_commit_callbacks
):
    page = [versioned(order(), f"69200000000000001{i:02d}") for i in range(5)]
    with django_capture_on_commit_callbacks(execute=True):
        assert len(services.store_order_versions(store=store, orders=page, source="pull")) == 5
    with django_capture_on_commit_callbacks(execute=True):
        assert len(services.store_order_versions(store=store, orders=page, source="pull")) == 0
    assert OrderSnapshot.objects.count() == 5 and ChannelOrderState.objects.count() == 5
    assert len(published_pages) == 1 and len(published_pages[0].snapshot_ids) == 5
    assert set(published_pages[0].snapshot_ids) == set(OrderSnapshot.objects.values_list("pk", flat=True))


def test_within_and_across_pages_the_newest_version_wins(store):
    paid, shipped = versioned(order()), versioned(order(OrderStatus.SHIPPED, T0 + timedelta(minutes=5), "3"))
    # both versions in one page, newest first: the state takes the newest, both snapshots kept
    assert len(services.store_order_versions(store=store, orders=[shipped, paid], source="pull")) == 1
    state = ChannelOrderState.objects.get()
    assert (state.status, state.platform_updated_at) == ("shipped", T0 + timedelta(minutes=5))
    assert OrderSnapshot.objects.count() == 2
    # a later page carrying only the older version changes nothing
    assert len(services.store_order_versions(store=store, orders=[paid], source="pull")) == 0
    assert ChannelOrderState.objects.get().status == "shipped"
    # equal update time: only a status further along the progression moves it
    same_time_cancel = versioned(order(OrderStatus.CANCELLED, T0 + timedelta(minutes=5), "4"))
    assert len(services.store_order_versions(store=store, orders=[same_time_cancel], source="push")) == 1
    assert ChannelOrderState.objects.get().status == "cancelled"


def test_a_page_agrees_with_one_at_a_time(store):
    """The set-based path and the one-order path store the same state for the same versions."""
    first = versioned(order(), "6920000000000000201")
    later = versioned(order(OrderStatus.SHIPPED, T0 + timedelta(minutes=1), "3"), "6920000000000000201")
    services.store_order_version(store=store, order=later, payload=later.raw, source="push")
    assert len(services.store_order_versions(store=store, orders=[first, later], source="pull")) == 0
    state = ChannelOrderState.objects.get()
    assert state.snapshot.digest == OrderSnapshot.objects.get(platform_status="3").digest
    assert OrderSnapshot.objects.count() == 2

"""Pushed versions are gathered per tenant in Redis and applied in batches by one drain task."""

from dataclasses import replace

import pytest
from django.db import connection

from channels.services import store_order_version
from ecbao import redis as ecbao_redis
from orders import tasks
from orders.models import Order, OrderEvent
from tests.orders.conftest import channel_order, receiver


@pytest.fixture
def redis_keys(in_alpha):
    schema = connection.schema_name
    client = ecbao_redis.client()
    keys = (tasks._pending_key(schema), tasks._scheduled_key(schema))
    client.delete(*keys)
    # A drain is already scheduled (so nothing is sent to the queue here): versions only gather.
    client.set(keys[1], 1, ex=60)
    yield keys
    client.delete(*keys)


def test_pushed_versions_gather_and_one_drain_applies_them(
    store, skus, redis_keys, django_capture_on_commit_callbacks
):
    pending, scheduled = redis_keys
    client = ecbao_redis.client()
    orders = [channel_order(f"69100000000000000{i:02d}", receiver=receiver(f"idx-{i}")) for i in range(5)]
    for co in orders:
        with django_capture_on_commit_callbacks(execute=True):
            store_order_version(
                store=store, order=co, payload={"order_id": co.platform_order_id}, source="push"
            )
    assert client.llen(pending) == 5 and not Order.objects.exists()
    assert tasks.drain_ingest_task() == 5
    assert client.llen(pending) == 0 and not client.exists(scheduled)  # the next push schedules again
    assert Order.objects.filter(status="approved").count() == 5
    assert OrderEvent.objects.filter(kind="created").count() == 5


def test_a_newer_version_in_the_same_drain_wins_and_a_repeat_changes_nothing(
    store, skus, redis_keys, django_capture_on_commit_callbacks
):
    co = channel_order("6910000000000000099")
    with django_capture_on_commit_callbacks(execute=True):
        store_order_version(store=store, order=co, payload={"v": 1}, source="push")
        cancelled = replace(
            co, updated_at=co.updated_at.replace(minute=30), status=co.status.CANCELLED, platform_status="4"
        )
        store_order_version(store=store, order=cancelled, payload={"v": 2}, source="push")
    assert tasks.drain_ingest_task() == 2
    order = Order.objects.get()
    assert order.status == "cancelled"
    events = OrderEvent.objects.count()
    ecbao_redis.client().rpush(redis_keys[0], order.snapshot_id)  # the same version again
    tasks.drain_ingest_task()
    assert OrderEvent.objects.count() == events

"""The stock-sync signal: debounced per process, never lost, one per tenant."""

import time

from django.db import connection

from ecbao import redis as ecbao_redis
from inventory import sync


def queued() -> list[str]:
    return [item.decode() for item in ecbao_redis.client().lrange(sync.queue_key(), 0, -1)]


def wait_for(condition, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_a_burst_of_changes_sends_one_signal_per_tenant_within_the_delay(alpha, beta):
    client = ecbao_redis.client()
    client.delete(sync.queue_key())
    for tenant in (alpha, beta):
        client.delete(sync._pending_key(tenant.schema_name))
    for _ in range(200):
        for tenant in (alpha, beta):
            connection.set_tenant(tenant)
            sync.schedule_stock_sync()
    assert wait_for(lambda: len(queued()) == 2)
    time.sleep(sync.SIGNAL_DELAY_SECONDS * 3)
    assert sorted(queued()) == sorted([alpha.schema_name, beta.schema_name])
    # The daemon takes a signal (clearing the flag); a later change signals again.
    taken = sync.take_signal(timeout=0.1)
    assert taken in (alpha.schema_name, beta.schema_name)
    connection.set_tenant(alpha if taken == alpha.schema_name else beta)
    sync.schedule_stock_sync()
    assert wait_for(lambda: queued().count(taken) == 1 and len(queued()) == 2)

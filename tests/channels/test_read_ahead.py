"""The pull's read-ahead: the platform is read in a helper thread, one batch ahead."""

import threading
import time
from contextlib import closing

import pytest

from channels.errors import TemporarilyUnavailable
from channels.sync import _read_ahead


def test_batches_arrive_in_order_and_complete():
    batches = list(_read_ahead(lambda: iter(range(10)), 4))
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_a_platform_error_arrives_after_the_batches_read_before_it():
    def produce():
        yield from range(5)
        raise TemporarilyUnavailable("HTTP 502")

    seen = []
    with pytest.raises(TemporarilyUnavailable, match="502"):
        for batch in _read_ahead(produce, 2):
            seen.append(batch)
    assert seen == [[0, 1], [2, 3]]


def test_the_helper_stays_at_most_two_batches_ahead_and_stops_when_the_consumer_does():
    produced = []
    done = threading.Event()

    def produce():
        try:
            for i in range(1000):
                produced.append(i)
                yield i
        finally:
            done.set()

    with closing(_read_ahead(produce, 10)) as batches:
        first = next(batches)
        time.sleep(0.3)  # let the helper run as far as it may
        assert first == list(range(10))
        assert len(produced) <= 10 * 4  # the batch handed over, two queued, one being filled
    assert done.wait(5)  # closing stopped the helper
    assert len(produced) < 1000

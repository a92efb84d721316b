"""Client-side pacing of bulk calls (``Connector.call_rates``)."""

import threading
import time

from channels.connectors.base import Pacer, pacer_for
from channels.connectors.wechat import WechatConnector


def test_a_pacer_spaces_calls_from_many_threads():
    pacer = Pacer(rate=200.0)
    stamps: list[float] = []
    lock = threading.Lock()

    def work():
        for _ in range(5):
            pacer.wait()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stamps.sort()
    # 20 calls at 200/s: never two closer than the interval allows (small scheduler slack)
    assert len(stamps) == 20
    assert stamps[-1] - stamps[0] >= 19 / 200 * 0.95


def test_a_pacer_asks_for_the_wait_it_needs():
    waits: list[float] = []
    pacer = Pacer(rate=10.0)
    for _ in range(3):
        pacer.wait(sleep=waits.append)
    assert len(waits) == 2 and all(0.05 < w <= 0.2 for w in waits)


def test_one_pacer_per_app_and_path_and_wechat_paces_its_detail_call():
    assert pacer_for(("wechat", "app-1", "/p"), 50.0) is pacer_for(("wechat", "app-1", "/p"), 50.0)
    assert pacer_for(("wechat", "app-1", "/p"), 50.0) is not pacer_for(("wechat", "app-2", "/p"), 50.0)
    assert WechatConnector.call_rates["/channels/ec/order/get"] < 100  # below the sandbox's per-path QPS

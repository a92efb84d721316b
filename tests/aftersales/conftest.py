"""Fixtures of the after-sales tests: the orders fixtures (a Douyin shop ``store``, SKUs with
stock ``skus``), and a sandbox over real HTTP with its three shops connected (``shops``; the
server starts once per module that asks for it). Rig helpers: ``tests.aftersales.ingest_rig``."""

from __future__ import annotations

import pytest

from tests.logistics.waybill_world import PLATFORMS, Shops, connect_shops, start_sandbox
from tests.orders.conftest import skus, store  # noqa: F401  (the orders fixtures)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    server = start_sandbox(tmp_path_factory.mktemp("aftersales") / "world.sqlite3", seed=1515)
    yield server
    server.stop()
    server.world.close()


@pytest.fixture
def shops(sandbox, in_alpha, settings) -> Shops:
    for platform in PLATFORMS:
        sandbox.faults.clear(platform)
        sandbox.faults.set(platform, "*", qps=0)
    return connect_shops(sandbox)

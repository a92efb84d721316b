"""Versions that could not be imported are counted by the sweep, shown on the workbench, and
can be retried from there."""

import pytest

from channels.services import store_order_version
from orders import services
from orders.models import Order
from tests.channels.test_shops_pages import login
from tests.conftest import OWNER_PASSWORD, make_user
from tests.orders.conftest import channel_order, line


@pytest.fixture
def broken_version(store, skus):
    """A stored platform version whose ingestion fails (a line with quantity 0)."""
    co = channel_order("6930000000000000001", lines=(line(1, "CAP-RED", qty=0),))
    store_order_version(store=store, order=co, payload={"order_id": co.platform_order_id}, source="push")
    return co


def test_the_sweep_counts_what_still_fails_and_the_workbench_shows_it(broken_version, alpha_client, in_alpha):
    services.reconcile_ingestion()
    assert services.ingestion_backlog()["failing"] == 1
    owner = login(alpha_client, "alpha-owner", OWNER_PASSWORD)
    page = owner.get("/orders/").content.decode()
    assert 'data-testid="ingestion-backlog"' in page and "1 个平台订单版本未能导入订单" in page
    assert "立即重试" in page


def test_retry_now_applies_what_can_be_applied_and_says_what_is_left(store, skus, alpha_client, in_alpha):
    good = channel_order("6930000000000000002")
    store_order_version(store=store, order=good, payload={"order_id": good.platform_order_id}, source="push")
    owner = login(alpha_client, "alpha-owner", OWNER_PASSWORD)
    page = owner.post("/orders/ingestion/retry/", follow=True).content.decode()
    assert Order.objects.filter(platform_order_id=good.platform_order_id).exists()
    assert "所有平台订单版本均已导入" in page
    assert 'data-testid="ingestion-backlog"' not in page


def test_no_banner_when_nothing_fails_and_viewers_cannot_retry(in_alpha, alpha, alpha_client):
    services.reconcile_ingestion()
    make_user(alpha, "alpha-viewer", "viewer")
    viewer = login(alpha_client, "alpha-viewer")
    assert 'data-testid="ingestion-backlog"' not in viewer.get("/orders/").content.decode()
    assert viewer.post("/orders/ingestion/retry/").status_code == 403

"""Versions that could not be imported are recorded with their attempts, next attempt and last
error, retried with growing pauses (never ahead of versions not tried yet), shown on the
workbench, and can be retried from there (a task: see tests/e2e/test_ingestion_retry.py)."""

from dataclasses import replace
from datetime import timedelta

import pytest
from django.utils import timezone

from channels.services import _store_versions, store_order_version
from orders import retry, services
from orders.models import IngestionFailure, Order
from tests.channels.test_shops_pages import login
from tests.conftest import OWNER_PASSWORD, make_user
from tests.orders.conftest import T0, channel_order, line


def lost(store, co) -> None:
    """A platform version stored by the channel layer whose ingestion task was lost."""
    _store_versions(store=store, orders=[co], source="push")


@pytest.fixture
def broken_version(store, skus):
    """A stored platform version whose ingestion fails (a line with quantity 0)."""
    co = channel_order("6930000000000000001", lines=(line(1, "CAP-RED", qty=0),))
    store_order_version(store=store, order=co, payload={"order_id": co.platform_order_id}, source="push")
    return co


def test_the_sweep_records_what_fails_and_the_workbench_shows_it(broken_version, alpha_client, in_alpha):
    services.reconcile_ingestion()
    failure = IngestionFailure.objects.get()
    assert (failure.platform_order_id, failure.attempts) == (broken_version.platform_order_id, 1)
    assert failure.last_error == "ValueError: quantity must be positive"
    assert services.ingestion_backlog()["failing"] == 1
    owner = login(alpha_client, "alpha-owner", OWNER_PASSWORD)
    page = owner.get("/orders/").content.decode()
    assert 'data-testid="ingestion-backlog"' in page and "1 个平台订单版本未能导入订单" in page
    assert 'data-testid="ingestion-failures"' in page and broken_version.platform_order_id in page
    assert failure.last_error[:40] in page and "立即重试" in page


def test_issue11_d7_a_failing_version_does_not_block_newer_lost_ones(store, skus, in_alpha):
    broken = channel_order("6930000000000000001", lines=(line(1, "CAP-RED", qty=0),))
    lost(store, broken)
    services.reconcile_ingestion(limit=1)  # the oldest: fails, and pauses
    failure = IngestionFailure.objects.get()
    assert failure.attempts == 1 and failure.next_attempt_at > timezone.now()

    newer = channel_order("6930000000000000002", at=T0 + timedelta(hours=1))
    lost(store, newer)
    services.reconcile_ingestion(limit=1)
    assert Order.objects.filter(platform_order_id=newer.platform_order_id).exists()
    assert IngestionFailure.objects.get().attempts == 1  # not tried again during its pause

    # Its pause over, the failure is tried again — after versions never tried, and pausing longer.
    IngestionFailure.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    newest = channel_order("6930000000000000003", at=T0 + timedelta(hours=2))
    lost(store, newest)
    services.reconcile_ingestion(limit=1)
    assert Order.objects.filter(platform_order_id=newest.platform_order_id).exists()
    assert IngestionFailure.objects.get().attempts == 1
    before = timezone.now()
    services.reconcile_ingestion(limit=1)
    failure = IngestionFailure.objects.get()
    assert failure.attempts == 2 and failure.next_attempt_at >= before + 2 * services.RETRY_FIRST

    # A newer version of the failing order replaces it: applied, and the failure is gone.
    fixed = replace(broken, updated_at=T0 + timedelta(hours=3), lines=(line(1, "CAP-RED"),), raw={"v": 2})
    lost(store, fixed)
    services.reconcile_ingestion(limit=1)
    assert Order.objects.filter(platform_order_id=broken.platform_order_id).exists()
    assert not IngestionFailure.objects.exists() and services.ingestion_backlog()["failing"] == 0


def test_no_banner_when_nothing_fails_and_viewers_cannot_retry(in_alpha, alpha, alpha_client):
    services.reconcile_ingestion()
    make_user(alpha, "alpha-viewer", "viewer")
    viewer = login(alpha_client, "alpha-viewer")
    assert 'data-testid="ingestion-backlog"' not in viewer.get("/orders/").content.decode()
    assert viewer.post("/orders/ingestion/retry/").status_code == 403
    assert retry.current_retry() is None  # nothing was queued
    assert viewer.get(f"/orders/ingestion/retry/{'0' * 32}/", HTTP_HX_REQUEST="true").status_code == 403

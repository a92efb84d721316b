"""Tracking pages (zh-Hans): a parcel's carrier timeline fragment, the tracking page's tabs —
intercept requests closed by after-sales, carrier exceptions, orders against ship-by with their
countdown — and who may act."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.template import Context, Template
from django.utils import timezone

from channels.types import TrackingEvent, TrackingStatus
from logistics import tracking
from logistics.models import Intercept
from tests.conftest import make_user, tenant_client
from tests.logistics.test_tracking import ingest, shipped_order


@pytest.fixture
def as_role(alpha):
    def login(role: str):
        make_user(alpha, f"trk-{role}", role, "Staff-pass-2026")
        client = tenant_client(alpha)
        response = client.post("/accounts/login/", {"username": f"trk-{role}", "password": "Staff-pass-2026"})
        assert response.status_code == 302
        return client

    return login


def at(hour: int) -> datetime:
    return datetime(2026, 12, 5, hour, tzinfo=UTC)


def test_a_parcels_timeline_fragment_newest_first(store, skus, as_role):
    order, parcel = shipped_order(store, "TL1", "ZT300")
    tracking.record(
        parcel,
        [
            TrackingEvent(at(2), TrackingStatus.COLLECTED, "【杭州市】中通快递余杭区网点 已揽收", "杭州市"),
            TrackingEvent(at(9), TrackingStatus.EXCEPTION, "【成都市】收件地址不详", "成都市"),
        ],
    )
    tracking.request_intercept(parcel, order, actor=None, reason="发货后平台已退款")
    client = as_role("operator")
    html = client.get(f"/shipping/tracking/parcels/{parcel.pk}/").content.decode()
    assert 'data-testid="tracking-timeline"' in html and "ZT300" in html
    assert html.index("收件地址不详") < html.index("已揽收")  # newest first
    assert 'data-testid="tracking-timeline" data-status="exception"' in html
    assert "拦截" in html and 'data-testid="tracking-refresh"' in html


def test_intercepts_tab_and_after_sales_closes_them(store, skus, as_role):
    order, parcel = shipped_order(store, "TL2", "ZT301")
    intercept = tracking.request_intercept(parcel, order, actor=None, reason="发货后平台已退款")
    viewer = as_role("viewer")
    html = viewer.get("/shipping/tracking/").content.decode()
    assert "物流跟踪" in html and "拦截" in html and "ZT301" in html and "发货后平台已退款" in html
    assert 'data-testid="intercepts-done"' not in html  # a viewer only looks
    assert (
        viewer.post(
            "/shipping/tracking/intercepts/close/", {"ids": [intercept.pk], "outcome": "done"}
        ).status_code
        == 403
    )
    operator = as_role("operator")
    assert 'data-testid="intercepts-done"' in operator.get("/shipping/tracking/").content.decode()
    for bad in ({"ids": [intercept.pk], "outcome": "dnoe"}, {"ids": [intercept.pk]}, {"outcome": "done"}):
        refused = operator.post("/shipping/tracking/intercepts/close/", bad, follow=True).content.decode()
        assert "请选择包裹是否已拦截成功" in refused or "请勾选要关闭的拦截请求" in refused, bad
        intercept.refresh_from_db()
        assert intercept.status == Intercept.Status.REQUESTED  # a typo never closes a request
    response = operator.post(
        "/shipping/tracking/intercepts/close/", {"ids": [intercept.pk], "outcome": "done"}
    )
    assert response.status_code == 302
    intercept.refresh_from_db()
    assert intercept.status == Intercept.Status.DONE
    assert "ZT301" not in operator.get("/shipping/tracking/?tab=intercepts&state=open").content.decode()
    assert "ZT301" in operator.get("/shipping/tracking/?tab=intercepts&state=closed").content.decode()


def test_exceptions_and_ship_by_tabs_with_countdowns(store, skus, as_role):
    _, parcel = shipped_order(store, "TL3", "ZT302")
    tracking.record(parcel, [TrackingEvent(at(9), TrackingStatus.EXCEPTION, "【成都市】快件滞留")])
    now = timezone.now()
    ingest(store, "TL4", ship_by=now - timedelta(hours=1, minutes=30))
    ingest(store, "TL5", ship_by=now + timedelta(days=3))
    client = as_role("operator")
    html = client.get("/shipping/tracking/?tab=exceptions").content.decode()
    assert "ZT302" in html and "快件滞留" in html
    html = client.get("/shipping/tracking/?tab=overdue").content.decode()
    assert "TL4" in html and "TL5" not in html
    assert 'class="countdown countdown-late"' in html and "超时 1 小时" in html


def test_countdown_filter_for_the_workbench(settings):
    settings.LANGUAGE_CODE = "zh-hans"
    soon = timezone.now() + timedelta(hours=2, minutes=30, seconds=20)
    html = Template("{% load logistics_tracking %}{{ ship_by|countdown }}|{{ none|countdown }}").render(
        Context({"ship_by": soon, "none": None})
    )
    assert html == '<span class="countdown countdown-soon" data-testid="countdown">剩 2 小时 30 分</span>|'


def test_the_workbench_shows_the_ship_by_countdown_and_the_carrier_status(store, skus, as_role):
    now = timezone.now()
    waiting = ingest(store, "WB1", ship_by=now - timedelta(hours=3, minutes=10))
    _, shipped = shipped_order(store, "WB2", "ZT303")
    tracking.record(
        shipped, [TrackingEvent(at(5), TrackingStatus.IN_TRANSIT, "【杭州市】快件已发往 杭州转运中心")]
    )
    client = as_role("warehouse")
    html = client.get("/shipping/?tab=to_print").content.decode()
    assert waiting.platform_order_id in html
    assert "最晚发货" in html and 'class="countdown countdown-late"' in html and "超时 3 小时 10 分" in html
    assert (
        "1 个订单已超过承诺发货时间" in html
        and "物流异常" not in html.split('data-testid="tracking-alerts"')[1][:300]
    )
    html = client.get("/shipping/?tab=shipped").content.decode()
    assert "ZT303" in html and 'data-testid="parcel-tracking"' in html and "运输中" in html
    assert f"/shipping/tracking/parcels/{shipped.pk}/" in html
    tracking.record(shipped, [TrackingEvent(at(9), TrackingStatus.EXCEPTION, "【成都市】快件滞留")])
    html = client.get("/shipping/?tab=shipped").content.decode()
    assert "1 个包裹物流异常" in html

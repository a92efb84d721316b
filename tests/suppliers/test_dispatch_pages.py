"""Dispatch SLA and performance (selectors), the merchant pages and the merchant API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from orders import services as orders
from suppliers import dispatches, selectors
from suppliers.models import Dispatch
from tests.conftest import api_key, make_user, tenant_client
from tests.orders.conftest import receiver
from tests.suppliers.dispatch_rig import line, make_world

D = Dispatch.Status
H = 3600


@pytest.fixture
def world(store, skus):
    yield from make_world(store, skus)


def seed(world, now):
    """Seven dispatches to 景德镇瓷器 sent a day ago: four shipped after 1, 2, 3 and 10 hours (the
    10-hour one after its ship-by), one open past its ship-by, two cancelled and confirmed (one
    intercepted); one to 杭州茶厂 still new and not due."""
    sent = now - timedelta(days=1)
    made = []
    for n in range(7):
        order = world.order(f"P{n}", line(1, "CUP-1", qty=1, price=5000), receiver=receiver(f"idx-{n}"))
        made.append(order.lines.get().dispatch_lines.get().dispatch)
    for d, hours in zip(made[:4], (1, 2, 3, 10), strict=True):
        Dispatch.objects.filter(pk=d.pk).update(
            status=D.SHIPPED,
            sent_at=sent,
            shipped_at=sent + timedelta(hours=hours),
            ship_by=sent + timedelta(hours=8),
        )
    Dispatch.objects.filter(pk=made[4].pk).update(
        status=D.ACKNOWLEDGED, sent_at=sent, ship_by=now - timedelta(hours=1)
    )
    for d, stopped in ((made[5], True), (made[6], False)):
        orders.cancel(order=d.lines.first().order_line.order, actor=None, reason="buyer")
        dispatches.confirm_cancel(dispatch=d, intercepted=stopped)
        Dispatch.objects.filter(pk=d.pk).update(sent_at=sent)
    world.order("P9", line(1, "TEA-1", qty=1, price=3000))
    Dispatch.objects.filter(supplier=world.tea).update(sent_at=sent, ship_by=now + timedelta(hours=20))
    return made


def test_performance_numbers_on_seeded_dispatches(world):
    now = timezone.now()
    seed(world, now)
    cup, tea = selectors.performance(since=now - timedelta(days=7), now=now)[::-1]  # by code: HZT, JDZ
    assert cup.supplier == world.cup and tea.supplier == world.tea
    assert (cup.sent, cup.shipped, cup.open) == (7, 4, 1)
    assert cup.p50_seconds == pytest.approx(2.5 * H)
    assert cup.p90_seconds == pytest.approx(7.9 * H)  # percentile_cont: 3 h + 0.7 × (10 h − 3 h)
    assert (cup.overdue, cup.due) == (2, 5) and cup.overdue_rate == pytest.approx(0.4)
    assert (cup.intercepted, cup.cancellations_confirmed) == (1, 2) and cup.interception_rate == 0.5
    assert (tea.sent, tea.due, tea.overdue_rate, tea.p50_seconds) == (1, 0, None, None)
    # The period counts by the time dispatches were sent.
    (only,) = selectors.performance(since=now - timedelta(hours=2), now=now, supplier=world.cup)
    assert only.sent == 0


def test_lists_tabs_and_sla(world):
    now = timezone.now()
    made = seed(world, now)
    counts = selectors.tab_counts(now=now)
    assert (counts["new"], counts["to_ship"], counts["shipped"], counts["cancelled"], counts["overdue"]) == (
        1,
        1,
        4,
        2,
        1,
    )
    assert list(selectors.dispatches(overdue=True, now=now)) == [made[4]]
    found = selectors.dispatches(search="P4").get()
    assert found == made[4] and found.order_ids == ["P4"]
    assert selectors.sla(Dispatch.objects.get(pk=made[4].pk), now=now).seconds_left < 0
    assert selectors.sla(Dispatch.objects.get(pk=made[3].pk), now=now).late
    assert selectors.dispatches(supplier=world.tea).count() == 1
    from orders.models import Fulfilment

    empty = Dispatch.objects.create(
        supplier=world.tea, fulfilment=Fulfilment.objects.create(store=world.store), store=world.store
    )
    assert selectors.dispatches().get(pk=empty.pk).order_ids == []  # no [None] for a dispatch without lines


def test_merchant_pages_and_api(world, alpha):
    now = timezone.now()
    made = seed(world, now)
    make_user(alpha, "dsp-viewer", "viewer")
    client = tenant_client(alpha)
    assert (
        client.post("/accounts/login/", {"username": "dsp-viewer", "password": "Staff-pass-2026"}).status_code
        == 302
    )
    page = client.get("/suppliers/dispatches/?overdue=1")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('data-testid="dispatch-row"') == 1 and 'data-overdue="1"' in html and "新单" in html
    detail = client.get(f"/suppliers/dispatches/{made[3].pk}/").content.decode()
    assert "¥50.00" in detail and "景德镇瓷器" in detail
    assert client.get("/suppliers/performance/?days=7").status_code == 200
    assert client.get("/suppliers/dispatches/999999/").status_code == 404

    key = api_key(alpha, "dsp-viewer")
    api = tenant_client(alpha, HTTP_AUTHORIZATION=f"Token {key}")
    listed = api.get("/api/v1/dispatches/", {"tab": "cancelled"}).json()["results"]
    assert {d["id"] for d in listed} == {made[5].pk, made[6].pk}
    assert all(d["intercepted"] is not None for d in listed)
    one = api.get(f"/api/v1/dispatches/{made[4].pk}/").json()
    assert one["overdue"] is True and one["order_ids"] == ["P4"] and one["lines"][0]["quantity"] == 1
    assert api.get("/api/v1/dispatches/", {"overdue": "maybe"}).status_code == 400
    assert api.post("/api/v1/dispatches/", {}, content_type="application/json").status_code in (403, 405)

    # A supplier user is not staff: the merchant's pages and API refuse it.
    make_user(alpha, "dsp-supplier", "supplier")
    supplier = tenant_client(alpha)
    supplier.post("/accounts/login/", {"username": "dsp-supplier", "password": "Staff-pass-2026"})
    assert supplier.get("/suppliers/dispatches/").status_code == 403
    supplier_api = tenant_client(alpha, HTTP_AUTHORIZATION=f"Token {api_key(alpha, 'dsp-supplier')}")
    assert supplier_api.get("/api/v1/dispatches/").status_code == 403

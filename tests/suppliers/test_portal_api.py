"""The supplier API (/api/v1/supplier/) with a token the supplier user makes on the portal: own
dispatches only (another's is 404), staff tokens refused here and supplier tokens on the staff
API, tracking pushed (whole or some lines) ships through logistics with one write-back per
(parcel, order), an Idempotency-Key repeat replays the first answer, a revoked token is dead."""

from __future__ import annotations

import re

import pytest

from logistics.models import Parcel, WriteBack
from orders.models import OrderStatus
from tests.conftest import api_key, tenant_client
from tests.suppliers.portal_rig import client_for, two_suppliers

P = Parcel.Status
pytestmark = pytest.mark.django_db


@pytest.fixture
def world(alpha, store, skus):
    return two_suppliers(alpha, store, skus, (1, "CAP-RED", 2), (2, "TS-BLK-M", 1))


def _token_from_portal(alpha, user) -> str:
    portal = client_for(alpha, user)
    html = portal.post("/supplier/api/", {"name": "ERP", "days": "30"}).content.decode()
    return re.search(r'data-testid="new-api-token">([^<]+)<', html).group(1)


def test_supplier_token_pulls_own_dispatches_only_and_no_staff_api(alpha, world):
    key = _token_from_portal(alpha, world["user_a"])
    api = tenant_client(alpha, HTTP_AUTHORIZATION=f"Token {key}")
    listing = api.get("/api/v1/supplier/dispatches/")
    assert listing.status_code == 200
    [item] = listing.json()["results"]
    assert item["id"] == world["dispatch_a"].pk and item["status"] == "new"
    assert item["receiver"]["phone"] == "138****8888"  # masks only
    assert {x["merchant_code"] for x in item["lines"]} == {"CAP-RED", "TS-BLK-M"}
    assert api.get("/api/v1/supplier/dispatches/?status=shipped").json()["results"] == []
    assert (
        len(api.get("/api/v1/supplier/dispatches/?updated_since=2020-01-01T00:00:00Z").json()["results"]) == 1
    )
    assert api.get("/api/v1/supplier/dispatches/?status=nope").status_code == 400
    assert api.get(f"/api/v1/supplier/dispatches/{world['dispatch_b'].pk}/").status_code == 404
    assert (
        api.post(
            f"/api/v1/supplier/dispatches/{world['dispatch_b'].pk}/tracking/",
            {"carrier": "zto", "tracking_no": "73100000000021"},
            content_type="application/json",
        ).status_code
        == 404
    )
    for path in ("/api/v1/orders/", "/api/v1/parcels/", "/api/v1/me/", "/api/v1/users/"):
        assert api.get(path).status_code == 403, path
    # a staff token on the supplier API
    staff = tenant_client(alpha, HTTP_AUTHORIZATION=f"Token {api_key(alpha, 'alpha-owner')}")
    assert staff.get("/api/v1/supplier/dispatches/").status_code == 403
    # the token is listed on the portal and revoked there: then it is dead
    portal = client_for(alpha, world["user_a"])
    digest = re.search(
        r'action="/supplier/api/([^/]+)/revoke/"', portal.get("/supplier/api/").content.decode()
    ).group(1)
    assert portal.post(f"/supplier/api/{digest}/revoke/").status_code == 302
    assert api.get("/api/v1/supplier/dispatches/").status_code == 401


def test_pushed_tracking_ships_some_lines_then_the_rest_with_one_write_back_each(alpha, world):
    key = _token_from_portal(alpha, world["user_a"])
    api = tenant_client(alpha, HTTP_AUTHORIZATION=f"Token {key}")
    dispatch, order = world["dispatch_a"], world["order_a"]
    cap = order.lines.get(merchant_code="CAP-RED")
    url = f"/api/v1/supplier/dispatches/{dispatch.pk}/tracking/"
    body = {
        "carrier": "中通快递",
        "tracking_no": "73100000000031",
        "lines": [{"order_line": cap.pk, "quantity": 2}],
    }
    first = api.post(url, body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="push-1")
    assert first.status_code == 200, first.content
    assert first.json()["shipped"] and first.json()["changed"]
    assert first.json()["dispatch"]["status"] == "partially_shipped"
    again = api.post(url, body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="push-1")
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    shipped = Parcel.objects.get(pk=first.json()["parcel"])
    assert shipped.status == P.SHIPPED and [
        (pl.order_line_id, pl.quantity) for pl in shipped.lines.all()
    ] == [(cap.pk, 2)]
    order.refresh_from_db()
    assert order.status == OrderStatus.PARTIALLY_SHIPPED
    # the rest, without lines; then a repeat without a key changes nothing either
    rest = api.post(url, {"carrier": "zto", "tracking_no": "73100000000032"}, content_type="application/json")
    assert rest.status_code == 200 and rest.json()["shipped"], rest.content
    repeat = api.post(
        url, {"carrier": "zto", "tracking_no": "73100000000032"}, content_type="application/json"
    )
    assert repeat.json()["changed"] is False
    order.refresh_from_db()
    assert order.status == OrderStatus.SHIPPED
    assert repeat.json()["dispatch"]["status"] == "shipped"
    assert [x["shipped_quantity"] for x in repeat.json()["dispatch"]["lines"]] == [2, 1]
    assert sorted(WriteBack.objects.values_list("parcel_id", "order_id")) == sorted(
        (p.pk, order.pk) for p in Parcel.objects.filter(fulfilment=dispatch.fulfilment, status=P.SHIPPED)
    )
    assert WriteBack.objects.count() == 2
    # refused input: a clear error, nothing shipped
    bad = api.post(url, {"carrier": "nope", "tracking_no": "x"}, content_type="application/json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid"

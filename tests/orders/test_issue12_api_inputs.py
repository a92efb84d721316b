"""Inputs the API fuzz found that reached the database (issue 12, defect 11)."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from inventory.models import Reservation, StockLedgerEntry
from orders import services
from orders.models import OrderStatus as S
from tenants.accounts.services import issue_api_token
from tests.orders.conftest import channel_order


def test_issue12_d11_cancel_with_the_longest_reason_allowed(in_alpha, alpha_client, store, skus):
    order = services.ingest_channel_order(store=store, co=channel_order(oid="6920000000000099001"))
    assert Reservation.objects.filter(status=Reservation.Status.ACTIVE).exists()
    token = issue_api_token(user=get_user_model().objects.get(username="alpha-owner"))[1]
    reason = "理" * 200  # the API's maximum; the ledger row adds its own prefix
    response = alpha_client.post(
        f"/api/v1/orders/{order.pk}/cancel/",
        {"reason": reason},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {token}",
    )
    assert response.status_code == 200, response.content[:300]
    assert response.json()["status"] == S.CANCELLED
    released = StockLedgerEntry.objects.filter(kind="release").latest("id")
    assert len(released.reason) == 200 and released.reason.startswith("cancelled in ecbao: 理")

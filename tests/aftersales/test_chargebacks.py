"""Issue 15 item 6, supplier charge-backs: a refund the supplier caused becomes a deduction
(integer fen, exact from the 元 typed), by default the supplier's cost of the refunded lines
and never above the refund; one live charge-back per after-sale (a second attempt is a clear
refusal, on the page and in the API); cancel while open; finance reads the open ones; the
supplier sees its own, read-only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from aftersales import chargebacks
from aftersales.models import ChargeBack
from tenants import services as tenant_services
from tenants.accounts.models import Role
from tests.aftersales.portal_rig import CS, CT, ingest
from tests.conftest import api_key, make_user
from tests.suppliers import conftest as supplier_fixtures
from tests.suppliers.portal_rig import client_for, two_suppliers

pytestmark = pytest.mark.django_db
store, skus = supplier_fixtures.store, supplier_fixtures.skus  # the orders fixtures


@pytest.fixture
def world(alpha, store, skus):
    w = two_suppliers(alpha, store, skus, (1, "TS-WHT-L", 1), (2, "CAP-RED", 2))
    w["store"] = store
    w["owner"] = make_user(alpha, "owner-cb", Role.OWNER)
    return w


def test_default_amount_is_the_supplier_cost_of_the_refunded_lines_capped_by_the_refund(world):
    # CAP-RED × 2 at the supplier's 6 元: 12.00 元 of cost
    big = ingest(
        world["store"], world["order_a"], "CB-1", type=CT.RETURN_REFUND, refund_fen=5000, shipped=True
    )
    assert chargebacks.default_amount(big) == 1200
    small = ingest(
        world["store"], world["order_a"], "CB-2", type=CT.RETURN_REFUND, refund_fen=999, shipped=True
    )
    assert chargebacks.default_amount(small) == 999
    # the own warehouse's line is nobody's charge-back
    own = ingest(world["store"], world["order_a"], "CB-3", codes=("TS-WHT-L",), refund_fen=9900)
    assert own.supplier_id is None and chargebacks.default_amount(own) == 0
    with pytest.raises(ValidationError):
        chargebacks.create(own, amount_fen=100, reason="damaged")


def test_merchant_page_converts_yuan_to_exact_fen_and_allows_one_live_charge_back(alpha, world):
    after_sale = ingest(
        world["store"], world["order_a"], "CB-4", type=CT.RETURN_REFUND, status=CS.SUCCEEDED, refund_fen=5000,
        shipped=True,
    )  # fmt: skip
    merchant = client_for(alpha, world["owner"])
    url = f"/aftersales/{after_sale.pk}/charge-back/"
    page = merchant.get(url).content.decode()
    assert 'value="12.00"' in page and "¥12.00" in page  # the default, in 元
    # more than two decimals, or above the refund: refused with the reason, nothing stored
    assert merchant.post(url, {"amount": "12.345", "reason": "damaged"}).status_code == 400
    refused = merchant.post(url, {"amount": "50.01", "reason": "damaged"})
    assert refused.status_code == 400 and "¥50.00" in refused.content.decode()
    assert ChargeBack.objects.count() == 0
    response = merchant.post(url, {"amount": "19.99", "reason": "damaged", "note": "外包装破损"})
    assert response.status_code == 302
    charge_back = ChargeBack.objects.get()
    assert (charge_back.amount_fen, charge_back.supplier_id, charge_back.dispatch_id) == (
        1999,
        world["a"].pk,
        world["dispatch_a"].pk,
    )
    assert charge_back.status == "open" and charge_back.created_by_id == world["owner"].pk
    assert after_sale.events.filter(kind="charge_back").count() == 1
    # a second one for the same after-sale: a clear refusal, not a server error
    again = merchant.post(url, {"amount": "1.00", "reason": "late"})
    assert again.status_code == 400 and 'data-testid="existing-charge-back"' in again.content.decode()
    with pytest.raises(ValidationError):
        chargebacks.create(after_sale, amount_fen=100, reason="late")
    assert ChargeBack.objects.count() == 1
    # the list by supplier and status, with totals
    listing = merchant.get(f"/aftersales/charge-backs/?supplier={world['a'].pk}&status=open").content.decode()
    assert listing.count('data-testid="charge-back-row"') == 1 and "¥19.99" in listing
    assert (
        merchant.get(f"/aftersales/charge-backs/?supplier={world['b'].pk}")
        .content.decode()
        .count('data-testid="charge-back-row"')
        == 0
    )
    # finance: the open ones of A (until a moment before: none)
    assert list(chargebacks.open_for_supplier(world["a"])) == [charge_back]
    assert list(chargebacks.open_for_supplier(world["a"], until=charge_back.created_at)) == []
    assert list(chargebacks.open_for_supplier(world["b"])) == []
    # the supplier sees its own, read-only; B sees none; neither may open the merchant's pages
    a_client, b_client = client_for(alpha, world["user_a"]), client_for(alpha, world["user_b"])
    mine = a_client.get("/supplier/aftersales/charge-backs/").content.decode()
    assert "¥19.99" in mine and "破损" in mine
    assert (
        'data-testid="charge-back-row"'
        not in b_client.get("/supplier/aftersales/charge-backs/").content.decode()
    )
    assert a_client.get("/aftersales/charge-backs/").status_code == 403
    assert a_client.post(url, {"amount": "1.00", "reason": "late"}).status_code == 403
    # cancel while open, then a new one may be made; a billed one stays
    assert merchant.post(f"/aftersales/charge-backs/{charge_back.pk}/cancel/").status_code == 302
    charge_back.refresh_from_db()
    assert charge_back.status == "cancelled" and list(chargebacks.open_for_supplier(world["a"])) == []
    second = chargebacks.create(after_sale, amount_fen=1200, reason="wrong_item")
    ChargeBack.objects.filter(pk=second.pk).update(status="billed", statement_ref="ST-1")
    merchant.post(f"/aftersales/charge-backs/{second.pk}/cancel/")
    second.refresh_from_db()
    assert second.status == "billed"


def test_charge_back_api_creates_once_and_cancels(alpha, world):
    after_sale = ingest(
        world["store"], world["order_a"], "CB-5", type=CT.RETURN_REFUND, refund_fen=800, shipped=True
    )
    host = tenant_services.domain_for(alpha.slug)
    api = Client(HTTP_HOST=host, HTTP_AUTHORIZATION=f"Token {api_key(alpha, 'owner-cb')}")
    made = api.post(
        "/api/v1/charge-backs/",
        {"after_sale": after_sale.pk, "reason": "quality"},
        content_type="application/json",
    )
    assert made.status_code == 201, made.content
    assert made.json()["amount_fen"] == 800 and made.json()["supplier"] == world["a"].pk  # cost 1200, capped
    second = api.post(
        "/api/v1/charge-backs/",
        {"after_sale": after_sale.pk, "reason": "late", "amount_fen": 100},
        content_type="application/json",
    )
    assert second.status_code == 400 and ChargeBack.objects.count() == 1
    listed = api.get(f"/api/v1/charge-backs/?supplier={world['a'].pk}&status=open").json()["results"]
    assert [row["id"] for row in listed] == [made.json()["id"]]
    cancel = api.post(
        f"/api/v1/charge-backs/{made.json()['id']}/cancel/",
        "{}",
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="cb-cancel",
    )
    assert cancel.status_code == 200 and cancel.json()["status"] == "cancelled"
    # a supplier's token is refused the merchant's API
    supplier_api = Client(HTTP_HOST=host, HTTP_AUTHORIZATION=f"Token {api_key(alpha, 'sup-a')}")
    assert supplier_api.get("/api/v1/charge-backs/").status_code == 403
    assert timezone.now() - ChargeBack.objects.get().created_at < timedelta(minutes=5)

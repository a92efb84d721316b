"""The supplier portal (/supplier/): sealed per supplier (another's dispatch is 404, staff are
refused the portal, suppliers the merchant's pages and staff API), the dispatch tabs with masked
receivers, the receiver reveal (refused without the merchant's grant, audited with it), tracking
entry shipping through logistics (one write-back per (parcel, order), the merchant's own parcel of a
split order untouched), the xlsx import with row errors, and the statement preview."""

from __future__ import annotations

import pytest

from channels import services as channel_services
from channels.models import DecryptAudit
from logistics.models import Parcel, ShipBatch, WriteBack
from orders import services as order_services
from orders.models import Order, OrderStatus
from suppliers.models import Dispatch, ReceiverReveal
from tests.logistics.test_manual import workbook
from tests.suppliers.portal_rig import client_for, order_for, supplier_user, two_suppliers

P = Parcel.Status
pytestmark = pytest.mark.django_db


@pytest.fixture
def world(alpha, store, skus):
    """Two suppliers of alpha, each with a dispatch; A's order also has a line the merchant ships."""
    return two_suppliers(alpha, store, skus, (1, "TS-WHT-L", 1), (2, "CAP-RED", 2))


def test_a_supplier_sees_only_its_own_dispatches_and_no_merchant_page(alpha, world):
    client = client_for(alpha, world["user_a"])
    da, db = world["dispatch_a"], world["dispatch_b"]
    assert client.get("/")["Location"] == "/supplier/"
    assert client.get("/accounts/supplier/")["Location"] == "/supplier/"
    page = client.get("/supplier/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f'data-dispatch-id="{da.pk}"' in html and f'data-dispatch-id="{db.pk}"' not in html
    assert "A1" in html and "B1" not in html
    assert "SA 供应商" in html and "Alpha Trading" in html  # supplier and merchant in the header
    assert client.get(f"/supplier/dispatches/{da.pk}/").status_code == 200
    # another supplier's dispatch: not found, on every page and action
    assert client.get(f"/supplier/dispatches/{db.pk}/").status_code == 404
    assert (
        client.post(
            f"/supplier/dispatches/{db.pk}/tracking/", {"carrier": "zto", "tracking_no": "73100000000009"}
        ).status_code
        == 404
    )
    assert client.post(f"/supplier/dispatches/{db.pk}/reveal/phone/").status_code == 404
    assert client.get("/supplier/?order=B1").content.decode().count('data-testid="dispatch-row"') == 0
    # ticking another's dispatch does nothing to it
    client.post("/supplier/bulk/", {"action": "ship", "ids": [db.pk]})
    assert not Parcel.objects.filter(fulfilment=db.fulfilment, status=P.SHIPPED).exists()
    # the merchant's pages and the staff API refuse supplier users
    for path in (
        "/orders/",
        "/shipping/",
        "/inventory/skus/",
        f"/orders/{world['order_a'].pk}/",
        "/accounts/tokens/",
    ):
        assert client.get(path).status_code == 403, path
    for path in ("/api/v1/orders/", "/api/v1/parcels/", "/api/v1/me/"):
        assert client.get(path).status_code == 403, path
    assert (
        client.post("/api/v1/shipments/", {"parcel_ids": [1]}, content_type="application/json").status_code
        == 403
    )


def test_staff_and_unlinked_supplier_users_are_refused_the_portal(alpha, world):
    owner = client_for_owner(alpha)
    assert owner.get("/supplier/").status_code == 403
    assert owner.get(f"/supplier/dispatches/{world['dispatch_a'].pk}/").status_code == 403
    assert owner.get("/api/v1/supplier/dispatches/").status_code == 403
    lost = client_for(alpha, supplier_user(alpha, "sup-none", None))
    assert lost.get("/supplier/").status_code == 403
    assert lost.get("/api/v1/supplier/dispatches/").status_code == 403
    anonymous = client_for_owner(alpha, login=False)
    assert anonymous.get("/supplier/")["Location"].startswith("/accounts/login/")


def client_for_owner(alpha, login=True):
    from tests.conftest import OWNER_PASSWORD, tenant_client

    client = tenant_client(alpha)
    if login:
        client.post("/accounts/login/", {"username": "alpha-owner", "password": OWNER_PASSWORD})
    return client


def test_tabs_counts_masked_receiver_and_deadline(alpha, store, world):
    client = client_for(alpha, world["user_a"])
    html = client.get("/supplier/").content.decode()
    assert 'data-testid="tab-new"' in html
    assert '新单 <span class="count">1</span>' in html
    assert "张*" in html and "138****8888" in html  # masks only
    assert 'data-testid="countdown"' in html
    detail = client.get(f"/supplier/dispatches/{world['dispatch_a'].pk}/").content.decode()
    assert "文***号" in detail and "SUP-CAP-RED" in detail
    assert 'data-testid="reveal-phone"' not in detail  # not granted: no 查看 button
    # the merchant's own line of the split order is not part of the supplier's dispatch
    assert "TS-WHT-L" not in detail
    # 售后: the tab leads to the after-sales pages (aftersales.portal) with their waiting count
    assert 'href="/supplier/aftersales/" data-testid="tab-aftersale"' in html
    # overdue filter and highlight
    Dispatch.objects.filter(pk=world["dispatch_a"].pk).update(ship_by="2026-01-01T00:00:00Z")
    html = client.get("/supplier/?overdue=1").content.decode()
    assert 'class="overdue"' in html and html.count('data-testid="dispatch-row"') == 1


class FakeConnector:
    """The platform's decrypt (the channel layer's budget and audit row stay real)."""

    calls = 0

    def decrypt(self, *, platform_order_id, cipher, account_id):
        FakeConnector.calls += 1
        return {"$tel$": "13812348888", "#name#": "张三", "#addr#": "文一西路1号"}[cipher]


def test_receiver_reveal_is_refused_without_the_grant_and_audited_with_it(alpha, world, monkeypatch):
    monkeypatch.setattr(channel_services, "connector_for", lambda store: FakeConnector())
    FakeConnector.calls = 0
    client = client_for(alpha, world["user_a"])
    url = f"/supplier/dispatches/{world['dispatch_a'].pk}/reveal/phone/"
    assert client.post(url).status_code == 403
    assert (
        FakeConnector.calls == 0 and not DecryptAudit.objects.exists() and not ReceiverReveal.objects.exists()
    )

    world["a"].may_reveal_receiver = True
    world["a"].save()
    detail = client.get(f"/supplier/dispatches/{world['dispatch_a'].pk}/").content.decode()
    assert 'data-testid="reveal-phone"' in detail and "13812348888" not in detail
    response = client.post(url, REMOTE_ADDR="10.9.8.7")
    assert response.status_code == 200 and "13812348888" in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    assert FakeConnector.calls == 1
    audit = DecryptAudit.objects.get()
    assert (audit.field, audit.username, audit.succeeded, audit.ip) == ("phone", "sup-a", True, "10.9.8.7")
    reveal = ReceiverReveal.objects.get()
    assert (reveal.supplier_id, reveal.dispatch_id, reveal.field) == (
        world["a"].pk,
        world["dispatch_a"].pk,
        "phone",
    )
    # the plain text is stored nowhere
    assert not Order.objects.filter(receiver_phone_mask__contains="13812348888").exists()
    # B (not granted) still cannot, and cannot reveal A's dispatch at all
    other = client_for(alpha, world["user_b"])
    assert other.post(url).status_code == 404
    assert other.post(f"/supplier/dispatches/{world['dispatch_b'].pk}/reveal/phone/").status_code == 403
    assert FakeConnector.calls == 1


def test_tracking_entry_ships_the_suppliers_parcel_through_logistics_once(alpha, world):
    client = client_for(alpha, world["user_a"])
    dispatch, order = world["dispatch_a"], world["order_a"]
    url = f"/supplier/dispatches/{dispatch.pk}/tracking/"
    response = client.post(url, {"carrier": "zto", "tracking_no": "7310 0000 0000 01"})
    assert response.status_code == 302
    [parcel] = Parcel.objects.filter(fulfilment=dispatch.fulfilment).exclude(status=P.CANCELLED)
    assert (parcel.status, parcel.carrier, parcel.tracking_no, parcel.manual) == (
        P.SHIPPED,
        "zto",
        "73100000000001",
        True,
    )
    # the merchant's own part of the split order is not shipped
    own = (
        Parcel.objects.filter(lines__order_line__order=order)
        .exclude(fulfilment=dispatch.fulfilment)
        .distinct()
    )
    assert own.exists() and not own.filter(status=P.SHIPPED).exists()
    order.refresh_from_db()
    assert order.status == OrderStatus.PARTIALLY_SHIPPED
    dispatch.refresh_from_db()
    assert dispatch.status == Dispatch.Status.SHIPPED  # the dispatch follows its parcels
    assert "已发货" in client.get(f"/supplier/dispatches/{dispatch.pk}/").content.decode()
    # the same number again: nothing new
    client.post(url, {"carrier": "中通", "tracking_no": "73100000000001"})
    assert list(WriteBack.objects.filter(parcel=parcel).values_list("order_id", flat=True)) == [order.pk]
    assert WriteBack.objects.count() == 1
    # a bad number: a clear message, nothing shipped
    other_order, other = order_for(world["dispatch_a"].store, world["a"], "A2", (1, "CAP-RED", 1))
    response = client.post(
        f"/supplier/dispatches/{other.pk}/tracking/", {"carrier": "zto", "tracking_no": "12"}, follow=True
    )
    assert "不是" in response.content.decode() or "运单号" in response.content.decode()
    assert not Parcel.objects.filter(fulfilment=other.fulfilment, status=P.SHIPPED).exists()


def test_xlsx_import_ships_own_dispatches_and_reports_every_bad_row(alpha, store, world):
    _o2, second = order_for(store, world["a"], "A2", (1, "CAP-RED", 1))
    client = client_for(alpha, world["user_a"])
    rows = [
        ("A1", "中通快递", "73100000000011"),  # row 2: ok
        ("B1", "中通快递", "73100000000012"),  # row 3: B's dispatch → as unknown
        ("NOPE", "中通快递", "73100000000013"),  # row 4: unknown order
        ("A2", "中通快递", "12"),  # row 5: bad number
        ("A2", "", "73100000000014"),  # row 6: no carrier
    ]
    response = client.post("/supplier/import/", {"file": workbook(rows)}, follow=True)
    html = response.content.decode()
    assert response.status_code == 200 and 'data-testid="import-report"' in html
    assert html.count('data-testid="import-error"') == 4
    assert html.count("不是你的代发单") == 2  # another supplier's order reads like an unknown one
    for row in ("3", "4", "5", "6"):
        assert f'<td data-label="行">{row}</td>' in html or f">{row}</td>" in html
    assert (
        Parcel.objects.get(fulfilment=world["dispatch_a"].fulfilment, status=P.SHIPPED).tracking_no
        == "73100000000011"
    )
    assert not Parcel.objects.filter(fulfilment=world["dispatch_b"].fulfilment, status=P.SHIPPED).exists()
    assert not Parcel.objects.filter(fulfilment=second.fulfilment, status=P.SHIPPED).exists()
    # the same file again changes nothing
    again = client.post("/supplier/import/", {"file": workbook(rows[:1])}, follow=True).content.decode()
    assert "未变 1" in again
    assert WriteBack.objects.count() == 1


def test_statement_sums_the_months_shipped_dispatches(alpha, world):
    from django.utils import timezone

    Dispatch.objects.filter(pk=world["dispatch_a"].pk).update(
        status=Dispatch.Status.SHIPPED, shipped_at=timezone.now()
    )
    Dispatch.objects.filter(pk=world["dispatch_b"].pk).update(
        status=Dispatch.Status.SHIPPED, shipped_at=timezone.now()
    )
    html = client_for(alpha, world["user_a"]).get("/supplier/statement/").content.decode()
    assert 'data-testid="statement-count">1<' in html  # B's is not A's
    assert "¥12.00" in html and "¥5.00" in html and "¥17.00" in html
    assert "对账" in html


def test_acknowledge_and_confirm_a_cancellation(alpha, store, world):
    client = client_for(alpha, world["user_a"])
    da, db = world["dispatch_a"], world["dispatch_b"]
    client.post("/supplier/bulk/", {"action": "acknowledge", "ids": [da.pk, db.pk]})
    da.refresh_from_db(), db.refresh_from_db()
    assert (da.status, db.status) == (Dispatch.Status.ACKNOWLEDGED, Dispatch.Status.NEW)  # B's untouched
    assert 'data-testid="tab-to_ship"' in client.get("/supplier/?tab=to_ship").content.decode()
    # the buyer cancels another order before it ships: the supplier must confirm the interception
    order, dispatch = order_for(store, world["a"], "A3", (1, "CAP-RED", 1))
    order_services.cancel(order=order, actor=None, reason="买家取消")
    dispatch.refresh_from_db()
    assert dispatch.status == Dispatch.Status.CANCELLING
    listing = client.get("/supplier/")
    assert 'data-testid="cancelling-notice"' in listing.content.decode()
    html = client.get("/supplier/?tab=cancelled").content.decode()
    assert 'data-testid="awaiting-table"' in html and f'data-dispatch-id="{dispatch.pk}"' in html
    assert "请确认拦截" in html
    assert client.post(f"/supplier/dispatches/{db.pk}/cancel/", {"intercepted": "1"}).status_code == 404
    client.post(f"/supplier/dispatches/{dispatch.pk}/cancel/", {"intercepted": "1"})
    dispatch.refresh_from_db()
    assert (dispatch.status, dispatch.intercepted) == (Dispatch.Status.CANCELLED, True)


def test_bulk_ship_pdf_and_print_jobs_act_on_the_suppliers_parcels_only(alpha, world):
    client = client_for(alpha, world["user_a"])
    da, db = world["dispatch_a"], world["dispatch_b"]
    for d in (da, db):  # as if numbers were taken (取号 is logistics.waybills' own test)
        Parcel.objects.filter(fulfilment=d.fulfilment).update(
            status=P.NUMBERED, carrier="zto", tracking_no=f"7310000000{d.pk:04d}"
        )
    # print jobs: another supplier's ticked dispatch yields nothing to print
    assert client.post("/supplier/print/jobs/", {"ids": [db.pk]}).status_code == 400
    # 打印PDF: a labels batch of A's parcel only, remembered as A's scope
    response = client.post("/supplier/bulk/", {"action": "pdf", "ids": [da.pk, db.pk]})
    batch_id = int(response["Location"].rsplit("batch=", 1)[1])
    batch = ShipBatch.objects.get(pk=batch_id)
    assert batch.params["parcel_ids"] == [Parcel.objects.get(fulfilment=da.fulfilment).pk]
    assert client.get(f"/supplier/batches/{batch_id}/").status_code == 200
    other = client_for(alpha, world["user_b"])
    assert other.get(f"/supplier/batches/{batch_id}/").status_code == 404
    # 发货 on both ticked: A's ships, B's is not touched
    client.post("/supplier/bulk/", {"action": "ship", "ids": [da.pk, db.pk]})
    assert Parcel.objects.get(fulfilment=da.fulfilment).status == P.SHIPPED
    assert Parcel.objects.get(fulfilment=db.fulfilment).status == P.NUMBERED
    da.refresh_from_db()
    assert da.status == Dispatch.Status.SHIPPED
    assert list(WriteBack.objects.values_list("order_id", flat=True)) == [world["order_a"].pk]


def test_a_platform_native_dispatch_shows_no_receiver_and_never_ships_here(alpha, world):
    dispatch = world["dispatch_a"]
    Dispatch.objects.filter(pk=dispatch.pk).update(native=Dispatch.Native.WECHAT)
    world["a"].may_reveal_receiver = True
    world["a"].save()
    client = client_for(alpha, world["user_a"])
    detail = client.get(f"/supplier/dispatches/{dispatch.pk}/").content.decode()
    assert 'data-testid="native-notice"' in detail and "138****8888" not in detail
    assert 'data-testid="tracking-form"' not in detail
    assert "138****8888" not in client.get("/supplier/").content.decode()
    assert client.post(f"/supplier/dispatches/{dispatch.pk}/reveal/phone/").status_code == 403
    client.post(
        f"/supplier/dispatches/{dispatch.pk}/tracking/", {"carrier": "zto", "tracking_no": "73100000000077"}
    )
    client.post("/supplier/bulk/", {"action": "ship", "ids": [dispatch.pk]})
    assert not Parcel.objects.filter(fulfilment=dispatch.fulfilment).exclude(tracking_no="").exists()

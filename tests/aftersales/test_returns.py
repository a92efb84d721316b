"""Returns in: scan-to-receive (idempotent per warehouse and waybill), matching by waybill /
phone tail / SKU, inspection booking good units into sellable stock and defective ones into the
defective location exactly once (ledger check after), the defective location never offered to
a shop nor reserved; the pages' permission and tenant sealing."""

from __future__ import annotations

import json

import pytest
from django_tenants.utils import schema_context

from aftersales import returns
from aftersales.models import AfterSale, AfterSaleAction, AfterSaleEvent, ReturnReceipt
from inventory import selectors, services, sync
from inventory.models import LedgerKind, Listing, Sku, StockLedgerEntry, StockLevel, Warehouse
from tests.aftersales import returns_rig as rig
from tests.conftest import make_user

R = ReturnReceipt.Status


def _on_hand(sku, warehouse) -> int:
    level = StockLevel.objects.filter(sku=sku, warehouse=warehouse).first()
    return level.on_hand if level else 0


@pytest.fixture
def world(in_alpha):
    store = rig.shop()
    skus = rig.skus("TS-WHT-L", "CAP-RED")
    warehouse = services.default_warehouse()
    return store, skus, warehouse


def test_receive_matches_the_normalised_waybill_and_a_rescan_finds_the_same_receipt(world):
    store, skus, warehouse = world
    sale = rig.after_sale(store, oid="6920000000000000101", return_tracking_no="sf 1234 5678 90")
    receipt = returns.receive(warehouse=warehouse, tracking_no=" Sf12345 67890 ")
    assert receipt.created and receipt.status == R.MATCHED and receipt.after_sale_id == sale.pk
    assert receipt.tracking_no == "SF1234567890"
    events = AfterSaleEvent.objects.filter(after_sale=sale, kind=returns.RECEIVED)
    assert [e.message for e in events] == [f"退货已签收：运单 SF1234567890（{warehouse.name}）"]

    again = returns.receive(warehouse=warehouse, tracking_no="SF1234567890", note="外箱破损")
    assert again.pk == receipt.pk and not again.created
    assert ReturnReceipt.objects.count() == 1
    assert ReturnReceipt.objects.get().note == "外箱破损"
    assert AfterSaleEvent.objects.filter(after_sale=sale, kind=returns.RECEIVED).count() == 1


def test_only_own_warehouses_receive_and_a_number_is_needed(world):
    _store, _skus, warehouse = world
    with pytest.raises(returns.ReturnRefused):
        returns.receive(warehouse=warehouse, tracking_no="   ")
    supplier_wh = Warehouse.objects.create(name="供应商仓", code="SUP-1", kind=Warehouse.Kind.SUPPLIER)
    with pytest.raises(returns.ReturnRefused):
        returns.receive(warehouse=supplier_wh, tracking_no="SF1")
    with pytest.raises(returns.ReturnRefused):
        returns.receive(warehouse=warehouse, tracking_no="SF2", phone_tail="88")
    assert not ReturnReceipt.objects.exists()


def test_inspection_books_good_into_sellable_and_defective_into_the_defective_location_once(world):
    store, skus, warehouse = world
    sku = skus["TS-WHT-L"]
    sale = rig.after_sale(store, oid="6920000000000000102", return_tracking_no="YT900")
    before = _on_hand(sku, warehouse)
    available_before = selectors.available(sku)
    receipt = returns.receive(warehouse=warehouse, tracking_no="yt900")
    receipt = returns.inspect(receipt, {sku.pk: (1, 1)})
    assert receipt.status == R.INSPECTED and receipt.inspected_at is not None

    defective = Warehouse.objects.get(kind=Warehouse.Kind.DEFECTIVE, parent=warehouse)
    assert _on_hand(sku, warehouse) == before + 1
    assert _on_hand(sku, defective) == 1
    assert selectors.available(sku) == available_before + 1  # the defective unit sells nowhere
    rows = StockLedgerEntry.objects.filter(source_type="return", source_id=f"return:{receipt.pk}:{sku.pk}")
    assert sorted((r.warehouse_id, r.kind, r.on_hand_delta) for r in rows) == sorted(
        [(warehouse.pk, LedgerKind.RETURN, 1), (defective.pk, LedgerKind.RETURN, 1)]
    )
    assert [(line.sku_id, line.good, line.defective) for line in receipt.lines.all()] == [(sku.pk, 1, 1)]
    assert list(
        AfterSaleEvent.objects.filter(after_sale=sale, kind=returns.INSPECTED).values_list(
            "message", flat=True
        )
    ) == ["验货：良品 1 件、次品 1 件"]

    # a retry, by the page or by the service, books nothing twice
    returns.inspect(receipt, {sku.pk: (1, 1)})
    again = services.receive_return(
        sku=sku, warehouse=warehouse, good=1, defective=1, source_key=f"return:{receipt.pk}:{sku.pk}"
    )
    assert not again.created
    assert _on_hand(sku, warehouse) == before + 1 and _on_hand(sku, defective) == 1
    assert rows.count() == 2
    assert AfterSaleEvent.objects.filter(after_sale=sale, kind=returns.INSPECTED).count() == 1
    assert selectors.ledger_mismatches() == []


def test_the_defective_location_is_never_offered_to_a_shop_nor_reserved(world):
    store, skus, warehouse = world
    sku = skus["CAP-RED"]
    services.count_stock(sku=sku, counted=0)  # nothing sellable left
    services.receive_return(sku=sku, warehouse=warehouse, good=0, defective=5, source_key="return:t:1")
    defective = services.defective_location(warehouse)
    assert defective.kind == Warehouse.Kind.DEFECTIVE and defective.parent_id == warehouse.pk
    assert services.defective_location(warehouse).pk == defective.pk  # one per warehouse
    assert _on_hand(sku, defective) == 5
    assert selectors.available(sku) == 0
    listing = Listing.objects.create(
        store=store,
        platform_product_id="P",
        platform_sku_id="S",
        merchant_code="CAP-RED",
        sku=sku,
        match=Listing.Match.MATCHED,
    )
    assert sync.listing_quantity(listing) == 0
    with pytest.raises(services.InsufficientStock):
        services.reserve_stock(source_key="line:x", sku=sku, quantity=1)
    with pytest.raises(ValueError):
        services.reserve_stock(source_key="line:y", sku=sku, quantity=1, warehouse=defective)
    with pytest.raises(ValueError):
        services.reserve_many([("line:z", sku.pk, 1)], warehouse=defective)
    assert StockLevel.objects.get(sku=sku, warehouse=defective).reserved == 0
    listed = selectors.with_stock(Sku.objects.filter(pk=sku.pk)).get()  # the SKU list: sellable only
    assert (listed.on_hand, listed.available) == (0, 0)
    there = selectors.with_stock(Sku.objects.filter(pk=sku.pk), warehouse_id=defective.pk).get()
    assert there.on_hand == 5
    # good units raise what every shop is offered
    services.receive_return(sku=sku, warehouse=warehouse, good=2, defective=0, source_key="return:t:2")
    assert sync.listing_quantity(listing) == 2
    assert selectors.ledger_mismatches() == []


def test_more_than_the_after_sale_covers_is_a_warning_the_operator_confirms(world):
    store, skus, warehouse = world
    sku, other = skus["TS-WHT-L"], skus["CAP-RED"]
    rig.after_sale(store, oid="6920000000000000103", lines=(("TS-WHT-L", 2),), return_tracking_no="JD77")
    receipt = returns.receive(warehouse=warehouse, tracking_no="JD77")
    before = _on_hand(sku, warehouse)
    with pytest.raises(returns.ReturnExcess) as excess:
        returns.inspect(receipt, {sku.pk: (2, 1)})
    assert excess.value.excess == {sku.pk: (3, 2)}
    assert "TS-WHT-L" in str(excess.value)
    with pytest.raises(returns.ReturnExcess):
        returns.inspect(receipt, {other.pk: (1, 0)})  # a SKU the after-sale does not cover
    assert (
        _on_hand(sku, warehouse) == before
        and not StockLedgerEntry.objects.filter(source_type="return").exists()
    )
    receipt.refresh_from_db()
    assert receipt.status == R.MATCHED
    returns.inspect(receipt, {sku.pk: (2, 1)}, confirm_excess=True)
    assert _on_hand(sku, warehouse) == before + 2
    assert selectors.ledger_mismatches() == []


def test_unclaimed_parcel_matched_later_by_phone_tail(world):
    store, skus, warehouse = world
    sale = rig.after_sale(store, oid="6920000000000000104", return_tracking_no="", phone="139****4321")
    rig.after_sale(store, oid="6920000000000000105", return_tracking_no="", phone="138****8888")
    done = rig.after_sale(store, oid="6920000000000000106", phone="139****4321", queue=AfterSale.Queue.DONE)
    receipt = returns.receive(warehouse=warehouse, tracking_no="ZTO555000111", phone_tail="4321")
    assert receipt.status == R.UNCLAIMED and receipt.after_sale_id is None
    found = returns.candidates(receipt)
    assert [a.pk for a in found] == [sale.pk]  # not the other tail, not a finished one
    assert done.pk not in [a.pk for a in found]
    assert found[0].reasons == ["手机尾号 4321"]
    with pytest.raises(returns.ReturnRefused):
        returns.inspect(receipt, {skus["TS-WHT-L"].pk: (1, 0)})  # match first (or 无主件入库)
    receipt = returns.match(receipt, sale)
    assert receipt.status == R.MATCHED and receipt.after_sale_id == sale.pk
    assert AfterSaleEvent.objects.filter(after_sale=sale, kind=returns.MATCHED).exists()
    assert returns.match(receipt, sale).pk == receipt.pk  # idempotent
    other = rig.after_sale(store, oid="6920000000000000107")
    with pytest.raises(returns.ReturnRefused):
        returns.match(receipt, other)
    assert returns.candidates(returns.receive(warehouse=warehouse, tracking_no="X1", phone_tail="4321")) == []


def test_unclaimed_parcel_booked_then_matched_by_sku_books_nothing_again(world):
    store, skus, warehouse = world
    sku = skus["CAP-RED"]
    sale = rig.after_sale(store, oid="6920000000000000108", lines=(("CAP-RED", 1),), phone="137****0000")
    similar = rig.after_sale(store, oid="6920000000000000109", return_tracking_no="SF0099887766")
    receipt = returns.receive(warehouse=warehouse, tracking_no="0099887766")  # the prefix dropped
    assert receipt.status == R.UNCLAIMED
    assert [a.pk for a in returns.candidates(receipt)] == [similar.pk]
    assert returns.candidates(receipt)[0].reasons == ["退货运单 SF0099887766"]
    before = _on_hand(sku, warehouse)
    receipt = returns.inspect(receipt, {sku.pk: (1, 0)}, unclaimed=True)  # 无主件入库
    assert receipt.status == R.INSPECTED and _on_hand(sku, warehouse) == before + 1
    found = {a.pk: a.reasons for a in returns.candidates(receipt)}  # its booked SKU points at the right one
    assert found == {sale.pk: ["同款商品"], similar.pk: ["退货运单 SF0099887766"]}
    fresh = returns.receive(warehouse=warehouse, tracking_no="NOTHING-LIKE-IT")
    assert [a.pk for a in returns.candidates(fresh, sku_codes=[" cap-red "])] == [sale.pk]

    receipt = returns.match(receipt, sale)
    assert receipt.status == R.INSPECTED and receipt.after_sale_id == sale.pk
    assert _on_hand(sku, warehouse) == before + 1
    assert StockLedgerEntry.objects.filter(source_type="return").count() == 1
    assert returns.inspect(receipt, {sku.pk: (1, 0)}).status == R.INSPECTED  # books nothing
    assert StockLedgerEntry.objects.filter(source_type="return").count() == 1
    message = AfterSaleEvent.objects.get(after_sale=sale, kind=returns.INSPECTED).message
    assert message.startswith("验货：良品 1 件、次品 0 件")
    assert selectors.ledger_mismatches() == []


def test_an_exchange_is_inspected_the_same_way_and_its_replacement_follows(
    world, django_capture_on_commit_callbacks
):
    from aftersales import tasks

    store, skus, warehouse = world
    sku = skus["TS-WHT-L"]
    sale = rig.after_sale(
        store, oid="6920000000000000110", return_tracking_no="EX1", type=AfterSale.Type.EXCHANGE
    )
    before = _on_hand(sku, warehouse)
    with django_capture_on_commit_callbacks() as callbacks:
        receipt = returns.inspect(returns.receive(warehouse=warehouse, tracking_no="ex1"), {sku.pk: (1, 1)})
    assert receipt.after_sale_id == sale.pk and receipt.status == R.INSPECTED
    assert _on_hand(sku, warehouse) == before + 1
    sale.refresh_from_db()
    assert sale.effects.get("return_received") and sale.effects.get("replacement") == "requested"
    assert callbacks  # the replacement is asked for after the commit (h-core → h-reship)
    made = tasks.replacement_task(sale.pk)
    sale.refresh_from_db()
    assert sale.reship_order_id == made
    assert [(ln.sku_id, ln.quantity) for ln in sale.reship_order.lines.all()] == [(sku.pk, 2)]
    with django_capture_on_commit_callbacks() as callbacks:
        returns.inspect(receipt, {sku.pk: (1, 1)})  # a retry: nothing booked, nothing asked again
    sale.refresh_from_db()
    assert sale.reship_order_id == made and _on_hand(sku, warehouse) == before + 1
    assert selectors.ledger_mismatches() == []


# --- pages -------------------------------------------------------------------------------------


def _login(tenant, client, username: str, role: str) -> None:
    make_user(tenant, username, role, "Staff-pass-2026")
    response = client.post("/accounts/login/", {"username": username, "password": "Staff-pass-2026"})
    assert response.status_code == 302


def _post_json(client, url, data):
    response = client.post(url, data)
    return response.status_code, json.loads(response.content)


def test_pages_scan_inspect_and_list(alpha, alpha_client):
    with schema_context(alpha.schema_name):
        store = rig.shop()
        sku = rig.skus("TS-WHT-L")["TS-WHT-L"]
        warehouse = services.default_warehouse()
        sale = rig.after_sale(store, oid="6920000000000000201", return_tracking_no="SF777")
    _login(alpha, alpha_client, "alpha-wh", "warehouse")
    page = alpha_client.get("/aftersales/returns/scan/")
    assert page.status_code == 200 and "扫描退货运单号" in page.content.decode()

    status, body = _post_json(
        alpha_client, "/aftersales/returns/scan/receive/", {"warehouse": warehouse.pk, "code": "sf777"}
    )
    assert status == 200 and body["ok"] and body["receipt"]["status"] == "matched"
    assert body["receipt"]["after_sale"]["platform_after_sale_id"] == sale.platform_after_sale_id
    assert body["receipt"]["lines"] == [
        {
            "sku_id": sku.pk,
            "merchant_code": "TS-WHT-L",
            "name": "T恤 TS-WHT-L",
            "spec": "白 L",
            "expected": 2,
            "good": None,
            "defective": None,
        }
    ]
    receipt_id = body["receipt"]["id"]
    status, body = _post_json(
        alpha_client,
        "/aftersales/returns/scan/inspect/",
        {"receipt": receipt_id, f"good_{sku.pk}": "3", f"defective_{sku.pk}": "0"},
    )
    assert status == 409 and body["excess"] and "确认" in body["message"]
    status, body = _post_json(
        alpha_client,
        "/aftersales/returns/scan/inspect/",
        {"receipt": receipt_id, f"good_{sku.pk}": "1", f"defective_{sku.pk}": "1"},
    )
    assert status == 200 and body["receipt"]["status"] == "inspected", body
    assert body["message"] == "已入库：良品 1 件入可售库存，次品 1 件入次品仓。"

    status, body = _post_json(
        alpha_client, "/aftersales/returns/scan/receive/", {"warehouse": warehouse.pk, "code": "NOPE-42"}
    )
    assert status == 200 and not body["ok"] and body["receipt"]["status"] == "unclaimed"
    assert "无主件" in body["message"]

    listing = alpha_client.get("/aftersales/returns/?tab=unclaimed")
    assert "NOPE-42" in listing.content.decode() and "SF777" not in listing.content.decode()
    listing = alpha_client.get("/aftersales/returns/?tab=inspected&q=sf777")
    assert "SF777" in listing.content.decode()
    detail = alpha_client.get(f"/aftersales/returns/{body['receipt']['id']}/")
    assert detail.status_code == 200 and "无主件" in detail.content.decode()
    with schema_context(alpha.schema_name):
        assert selectors.ledger_mismatches() == []


def test_a_viewer_is_refused_and_another_tenant_sees_nothing(alpha, beta, alpha_client, beta_client):
    with schema_context(alpha.schema_name):
        receipt = returns.receive(warehouse=services.default_warehouse(), tracking_no="SEALED1")
    _login(alpha, alpha_client, "alpha-viewer", "viewer")
    for url in ("/aftersales/returns/", "/aftersales/returns/scan/", f"/aftersales/returns/{receipt.pk}/"):
        assert alpha_client.get(url).status_code == 403, url
    assert alpha_client.post("/aftersales/returns/scan/receive/", {"code": "X"}).status_code == 403
    assert alpha_client.post(f"/aftersales/returns/{receipt.pk}/match/", {"after_sale": 1}).status_code == 403

    response = beta_client.post("/accounts/login/", {"username": "beta-owner", "password": "Owner-pass-2026"})
    assert response.status_code == 302
    assert beta_client.get(f"/aftersales/returns/{receipt.pk}/").status_code == 404
    assert "SEALED1" not in beta_client.get("/aftersales/returns/?tab=unclaimed").content.decode()
    assert beta_client.post("/aftersales/returns/scan/inspect/", {"receipt": receipt.pk}).status_code == 404
    assert beta_client.post(f"/aftersales/returns/{receipt.pk}/match/", {"after_sale": 1}).status_code == 404


def test_a_douyin_return_scanned_inspected_and_confirmed_at_the_platform(
    shops, alpha_client, django_capture_on_commit_callbacks
):
    """Through the sandbox over real HTTP: a shipped Douyin order, the buyer's return-and-refund
    approved (actions.approve), the goods sent back with a waybill; the warehouse scans it on
    the page, books 1 good, and the merchant's 确认收货并退款 reaches the platform once."""
    from aftersales import actions
    from logistics import writeback
    from tests.aftersales.test_reship import pull, ship_by_waybill
    from tests.logistics.waybill_world import world_order_id

    world = shops.world
    order = shops.order("douyin", 1)
    ship_by_waybill(order, capture=django_capture_on_commit_callbacks)
    writeback.send_due()  # the shipment reaches the platform
    oid = world_order_id(shops, order)
    line_id = world.get_order(oid).lines[0].line_id
    applied = world.apply_aftersale(oid, line_id, kind="return_refund", qty=1)
    sale = pull(shops, "douyin", applied.aftersale_id)
    assert actions.approve(sale).status == "done"
    world.buyer_return_goods(applied.aftersale_id, carrier="ZTO", tracking_no="73100000009901")
    sale = pull(shops, "douyin", applied.aftersale_id)
    assert sale.queue == AfterSale.Queue.AWAITING_RECEIPT and sale.return_tracking_no == "73100000009901"
    sku_id = sale.lines.get().sku_id
    warehouse = services.default_warehouse()
    before = StockLevel.objects.get(sku_id=sku_id, warehouse=warehouse).on_hand

    response = alpha_client.post(
        "/accounts/login/", {"username": "alpha-owner", "password": "Owner-pass-2026"}
    )
    assert response.status_code == 302
    status, body = _post_json(
        alpha_client,
        "/aftersales/returns/scan/receive/",
        {"warehouse": warehouse.pk, "code": "7310 0000 0099 01"},
    )
    assert status == 200 and body["receipt"]["after_sale"]["id"] == sale.pk
    receipt_id = body["receipt"]["id"]
    assert not body["receipt"]["can_confirm"]  # not before the goods are inspected
    status, body = _post_json(
        alpha_client, "/aftersales/returns/scan/inspect/", {"receipt": receipt_id, f"good_{sku_id}": "1"}
    )
    assert status == 200 and body["receipt"]["can_confirm"], body
    assert StockLevel.objects.get(sku_id=sku_id, warehouse=warehouse).on_hand == before + 1
    status, body = _post_json(alpha_client, "/aftersales/returns/scan/confirm/", {"receipt": receipt_id})
    assert status == 200 and body["ok"], body
    assert AfterSaleAction.objects.filter(after_sale=sale, kind="confirm_receipt", status="done").count() == 1
    sale = pull(shops, "douyin", applied.aftersale_id)
    assert sale.queue in (AfterSale.Queue.AWAITING_REFUND, AfterSale.Queue.DONE), sale.queue
    status, body = _post_json(alpha_client, "/aftersales/returns/scan/confirm/", {"receipt": receipt_id})
    assert status == 409  # once
    assert AfterSaleAction.objects.filter(after_sale=sale, kind="confirm_receipt").count() == 1
    assert selectors.ledger_mismatches() == []

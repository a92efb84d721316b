"""Parcels of a dropship supplier's fulfilment (``Fulfilment.warehouse`` of kind SUPPLIER) go
through the same logistics services as the merchant's: they take the supplier's sender address
and the carrier rule of its warehouse; the merchant's workbench (tabs, counts, whole-tab
actions, notices, verify bench) leaves them out; and every service called with a scope
(``warehouse=``) refuses a parcel or order outside it, in zh-Hans (``logistics.scope``).

The platform side is a recorder standing in for the e-waybill connector (the request ecbao
builds is what is checked here; taking numbers against the sandbox is tests/logistics/
test_waybills.py and tests/e2e/test_dropship_shipping.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone, translation

from channels.errors import ChannelError
from inventory import services as stock
from logistics import manual, packing, printing, scope, selectors, shipping, waybills
from logistics import services as parcels
from logistics.models import CarrierRule, Parcel, SenderAddress, ShipBatch, WaybillAccount
from orders import services as order_services
from orders.models import OrderStatus
from tests.logistics.test_manual import workbook
from tests.orders.conftest import channel_order, line
from tests.suppliers.factories import bind, make_supplier
from tests.suppliers.portal_rig import routing

pytestmark = pytest.mark.django_db
P = Parcel.Status


class Recorder:
    """The e-waybill connector as far as this test needs: records each request; no answer."""

    def __init__(self):
        self.requests = []

    def __call__(self, store):
        return self

    def take_waybill(self, request):
        self.requests.append(request)
        raise ChannelError("no answer (test)")


@pytest.fixture
def world(store, skus):
    a, b = make_supplier("A", name="杭州茶厂"), make_supplier("B", name="义乌袜厂")
    bind(a, skus["CAP-RED"], stock=50)
    bind(b, skus["TS-BLK-M"], stock=50)
    stock.receive_stock(sku=skus["TS-WHT-L"], quantity=20, reason="more")
    with routing({"CAP-RED": a.warehouse_id, "TS-BLK-M": b.warehouse_id}):
        # order 1: one own line and one of supplier A; order 2: supplier B's only
        mixed = order_services.ingest_channel_order(
            store=store,
            co=channel_order("6920000000000000001", lines=(line(1, "TS-WHT-L", 2), line(2, "CAP-RED"))),
        )
        b_only = order_services.ingest_channel_order(
            store=store, co=channel_order("6920000000000000002", lines=(line(3, "TS-BLK-M"),))
        )
    assert mixed.status == b_only.status == OrderStatus.APPROVED
    parcels.ensure_parcels()
    return {
        "a": a,
        "b": b,
        "mixed": mixed,
        "b_only": b_only,
        "own": Parcel.objects.get(fulfilment__warehouse__kind="own"),
        "pa": Parcel.objects.get(fulfilment__warehouse=a.warehouse),
        "pb": Parcel.objects.get(fulfilment__warehouse=b.warehouse),
    }


def sender(name: str, warehouse=None, **kw) -> SenderAddress:
    return SenderAddress.objects.create(
        name=name,
        mobile="13800001111",
        province="浙江省",
        city="杭州市",
        detail="1号",
        warehouse=warehouse,
        **kw,
    )


def test_a_supplier_parcel_takes_its_sender_address_and_its_warehouse_rule(world, store):
    sender("鲸选仓库", is_default=True)
    sender("茶厂发货部", warehouse=world["a"].warehouse)
    for carrier, code in (("zto", "ZTO"), ("sf", "SF")):
        WaybillAccount.objects.create(
            store=store, carrier=carrier, platform_carrier_code=code, account_id=code
        )
    CarrierRule.objects.create(name="茶厂顺丰", priority=1, warehouse=world["a"].warehouse, carrier="sf")
    CarrierRule.objects.create(
        name="自有中通", priority=2, warehouse_id=scope.default_warehouse_id(), carrier="zto"
    )
    recorder = Recorder()
    for parcel in (world["own"], world["pa"]):
        with pytest.raises(waybills.WaybillError):
            waybills.take_for_parcel(parcel, connect=recorder)
    own_request, a_request = recorder.requests
    assert own_request.sender.name == "鲸选仓库" and own_request.carrier_code == "ZTO"
    assert a_request.sender.name == "茶厂发货部" and a_request.carrier_code == "SF"
    world["pa"].refresh_from_db()
    assert "茶厂顺丰" in world["pa"].carrier_reason

    # supplier B has no address of its own: never the merchant's; a clear, retryable error
    with translation.override("zh-hans"), pytest.raises(waybills.WaybillError) as refused:
        waybills.take_for_parcel(world["pb"], connect=recorder)
    assert "供应商 义乌袜厂 没有发货地址" in refused.value.message and refused.value.retryable
    assert len(recorder.requests) == 2
    world["pb"].refresh_from_db()
    assert "没有发货地址" in world["pb"].error and world["pb"].status == P.NEW

    # a supplier's address is never the merchant's default
    from logistics import configuration

    with pytest.raises(ValidationError):
        configuration.set_default_sender(sender=SenderAddress.objects.get(name="茶厂发货部"))


def test_the_merchant_workbench_leaves_supplier_parcels_out(world, alpha_client):
    own, pa, pb = world["own"], world["pa"], world["pb"]
    assert list(selectors.tab_parcels(selectors.TO_PRINT).values_list("pk", flat=True)) == [own.pk]
    assert selectors.tab_counts() == {"to_print": 1, "to_ship": 0, "shipped": 0}
    assert list(selectors.tab_parcels(selectors.TO_PRINT, warehouse=world["a"].warehouse)) == [pa]
    batch = waybills.start_take_tab()  # the whole tab: own parcels only
    assert batch.params["parcel_ids"] == [own.pk] and "warehouse_id" not in batch.params

    # printed 30 hours ago and not shipped: only the own parcel is the merchant's notice
    long_ago = timezone.now() - timedelta(hours=30)
    for i, p in enumerate((own, pa, pb)):
        Parcel.objects.filter(pk=p.pk).update(
            status=P.PRINTED, tracking_no=f"ZT10000000000{i}", carrier="zto", printed_at=long_ago
        )
    assert list(printing.printed_not_shipped(24)) == [Parcel.objects.get(pk=own.pk)]
    assert list(
        printing.printed_not_shipped(24, warehouse=world["b"].warehouse).values_list("pk", flat=True)
    ) == [pb.pk]
    # the verify bench is the own warehouse's: a supplier's waybill is refused
    with translation.override("zh-hans"), pytest.raises(packing.VerifyRefused) as refused:
        packing.verify_lookup("ZT100000000001")
    assert "供应商 杭州茶厂" in refused.value.messages[0]
    assert packing.verify_lookup("ZT100000000000").parcel.pk == own.pk

    from tests.logistics.test_printing_pages import login

    client = login(alpha_client, "alpha-owner")
    response = client.get("/shipping/?tab=to_ship")
    assert [row["parcel"].pk for row in response.context["rows"]] == [own.pk]
    assert {v: n for v, _l, n, _q in response.context["tabs"]} == {"to_print": 0, "to_ship": 1, "shipped": 0}
    assert response.context["printed_not_shipped"] == 1
    # several own warehouses: a filter narrows to one; a supplier's warehouse is not taken from it
    from inventory.models import Warehouse

    second = Warehouse.objects.create(name="二号仓", code="W2")
    response = client.get(f"/shipping/?tab=to_ship&warehouse={second.pk}")
    assert 'data-testid="warehouse-filter"' in response.content.decode() and response.context["rows"] == []
    response = client.get(f"/shipping/?tab=to_ship&warehouse={world['a'].warehouse_id}")
    assert [row["parcel"].pk for row in response.context["rows"]] == [own.pk]
    # the whole-tab bulk action ships the own parcel only
    response = client.post(
        "/shipping/bulk/",
        {"action": "ship", "all_tab": "1", "filter_query": "tab=to_ship"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert dict(Parcel.objects.filter(pk__in=[own.pk, pa.pk, pb.pk]).values_list("pk", "status")) == {
        own.pk: P.SHIPPED,
        pa.pk: P.PRINTED,
        pb.pk: P.PRINTED,
    }


def test_scoped_services_refuse_parcels_and_orders_outside_the_scope(world):
    a_wh, own, pa, pb = world["a"].warehouse, world["own"], world["pa"], world["pb"]
    foreign = [[own.pk], [pb.pk], [pb.pk, pa.pk], [987654]]  # single-parcel calls try the first
    calls = {
        "take": lambda ids: waybills.start_take(ids, warehouse=a_wh),
        "take one": lambda ids: waybills.take_for_parcel(ids[0], warehouse=a_wh, connect=Recorder()),
        "cancel": lambda ids: waybills.cancel_parcel_waybill(ids[0], warehouse=a_wh),
        "print": lambda ids: printing.print_jobs(ids, warehouse=a_wh),
        "pdf": lambda ids: printing.start_pdf(ids, warehouse=a_wh),
        "ship": lambda ids: shipping.ship_parcels(ids, warehouse=a_wh),
        "ship batch": lambda ids: shipping.start_ship(ids, warehouse=a_wh),
        "pick": lambda ids: packing.build_pick_list(ids, warehouse=a_wh),
        "by hand": lambda ids: manual.enter_tracking(Parcel.objects.get(pk=ids[0]), "zto", "75300000000001", warehouse=a_wh),
    }  # fmt: skip
    batches = ShipBatch.objects.count()
    for name, call in calls.items():
        for ids in foreign:
            if name == "by hand" and ids == [987654]:
                continue
            with translation.override("zh-hans"), pytest.raises(ValidationError) as refused:
                call(ids)
            assert "未做任何操作" in refused.value.messages[0] or name == "by hand", (name, ids)
    assert ShipBatch.objects.count() == batches  # nothing was queued
    assert Parcel.objects.get(pk=own.pk).status == P.NEW and Parcel.objects.get(pk=pb.pk).status == P.NEW

    # the scope's own parcels pass; the batch remembers whose it is
    batch = waybills.start_take([pa.pk], warehouse=a_wh)
    assert scope.check_batch(batch, a_wh) is batch
    with pytest.raises(ValidationError):
        scope.check_batch(batch, world["b"].warehouse)
    with pytest.raises(ValidationError):
        scope.check_batch(waybills.start_take([own.pk]), a_wh)  # the merchant's batch

    # by hand: B's order is not A's; the mixed order's number goes on A's parcel, never the own one
    with translation.override("zh-hans"), pytest.raises(ValidationError) as refused:
        manual.enter_tracking(world["b_only"], "zto", "75300000000002", warehouse=a_wh)
    assert refused.value.messages == ["不是你的代发单"]
    with translation.override("zh-hans"):
        report = manual.import_xlsx(
            workbook(
                [
                    ("6920000000000000001", "zto", "75300000000003"),
                    ("6920000000000000002", "zto", "75300000000004"),
                    ("6920000000000009999", "zto", "75300000000005"),
                ]
            ),
            warehouse=a_wh,
        )
    assert (report.rows, report.entered, report.shipped, report.error_count) == (3, 1, 1, 2)
    assert [(e.row, e.message) for e in report.errors] == [(3, "不是你的代发单"), (4, "不是你的代发单")]
    assert report.batch.params["warehouse_id"] == a_wh.pk
    pa.refresh_from_db()
    assert (pa.tracking_no, pa.status) == ("75300000000003", P.SHIPPED)
    assert Parcel.objects.get(pk=own.pk).tracking_no == "" and Parcel.objects.get(pk=pb.pk).tracking_no == ""
    world["mixed"].refresh_from_db()
    assert world["mixed"].status == OrderStatus.PARTIALLY_SHIPPED
    # the merchant (no scope) may still act on a supplier's parcel by hand
    assert manual.enter_tracking(pb, "zto", "75300000000006").shipped

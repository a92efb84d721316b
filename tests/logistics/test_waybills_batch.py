"""A batch of waybills over three shops, run by a real Celery worker against the sandbox over
HTTP while the sandbox loses a third of the e-waybill replies after acting, WeChat's minute
quota answers 45011 and one shop refuses for lack of balance: afterwards — with a retry of
the failed parcels — every parcel has exactly one number (the sandbox's waybills per key),
child numbers hang under parcel 1's, a merged parcel has one number for both orders, and the
batch counted every parcel."""

from __future__ import annotations

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from logistics import services as parcel_services
from logistics import waybills
from logistics.models import CarrierRule, Parcel, ShipBatch, Waybill, WaybillAccount
from orders import services as order_services
from tests.e2e.conftest import committed_tenant, db, wait_until  # noqa: F401  (committed data for the worker)
from tests.logistics.waybill_world import (
    EWAYBILL_PATHS,
    PLATFORMS,
    connect_shops,
    fulfilment_of,
    start_sandbox,
)

P, W = Parcel.Status, Waybill.Status
PER_SHOP = 14


@pytest.fixture
def server(tmp_path):
    server = start_sandbox(tmp_path / "world.sqlite3", seed=2727)
    yield server
    server.stop()
    server.world.close()


def set_balance(world, shop_id: str, carrier: str, available: int) -> None:
    a = world.waybill_accounts(shop_id, carrier)[0]
    world.create_waybill_account(
        shop_id=a.shop_id, carrier=a.carrier, netsite_code=a.netsite_code, netsite_name=a.netsite_name,
        available=available, sender=a.sender,
    )  # fmt: skip


def wait_for(batch: ShipBatch, timeout: float = 240) -> ShipBatch:
    assert wait_until(
        lambda: ShipBatch.objects.get(pk=batch.pk).status in (ShipBatch.Status.DONE, ShipBatch.Status.FAILED),
        timeout=timeout,
        interval=0.2,
    ), waybills.batch_progress(batch.pk)
    return ShipBatch.objects.get(pk=batch.pk)


def test_a_batch_over_three_shops_gives_every_parcel_exactly_one_number(
    server,
    settings,
    committed_tenant,  # noqa: F811  (the e2e fixture, imported above)
    tenant_worker,
    monkeypatch,
):
    world = server.world
    monkeypatch.setattr(waybills, "RATE_LIMIT_STEP", 1.0)  # the worker runs in this process
    tenant = committed_tenant("wb-batch")
    with schema_context(tenant.schema_name):
        shops = connect_shops(server)
        CarrierRule.objects.create(name="默认中通", priority=50, carrier="zto")
        CarrierRule.objects.create(
            name="快手圆通", priority=10, carrier="yto", store_ids=[shops.stores["kuaishou"].pk]
        )
        for p in PLATFORMS:
            for n in range(PER_SHOP):
                shops.order(p, 1 + n % 2)
        # a multi-piece order with SF (child numbers) on each shop, a three-parcel ZTO order on Douyin
        sf_orders = {}
        for p in PLATFORMS:
            code = world.skus(shops.shop_ids[p])[3].code
            CarrierRule.objects.get_or_create(
                name="大件顺丰", priority=1, carrier="sf", merchant_codes=[code]
            )
            sf_orders[p] = shops.order(p, 3, sku=3)
        CarrierRule.objects.filter(name="大件顺丰").update(merchant_codes=[
            world.skus(shops.shop_ids[p])[3].code for p in PLATFORMS
        ])  # fmt: skip
        zto_three = shops.order("douyin", 3, sku=1)
        # a merged parcel on WeChat (same receiver)
        first, second = shops.order("wechat", 1, buyer=44), shops.order("wechat", 1, buyer=44, sku=2)
        merged = fulfilment_of(first)
        if fulfilment_of(second).pk != merged.pk:
            merged = order_services.merge(orders=[first, second], actor=None)
        parcel_services.ensure_parcels()
        for o in (*sf_orders.values(), zto_three):
            line = o.lines.get()
            parcel_services.plan_parcels(fulfilment=fulfilment_of(o), parcels=[{line.pk: 1}] * 3)
        parcel_ids = list(
            Parcel.objects.filter(status=P.NEW, store__in=shops.stores.values()).values_list("pk", flat=True)
        )
        total = len(parcel_ids)
        assert total == 3 * PER_SHOP + 3 * 3 + 3 + 1
    connection.set_schema_to_public()

    # The sandbox: a third of Douyin's and WeChat's e-waybill replies lost after acting, WeChat's
    # bucket tight, Kuaishou's YTO account empty (its refusals are the only Kuaishou failures).
    server.faults.set("douyin", EWAYBILL_PATHS["douyin"], lost_reply_5xx_rate=0.33, qps=0)
    server.faults.set("wechat", EWAYBILL_PATHS["wechat"], lost_reply_5xx_rate=0.33, qps=2.0, burst=4)
    set_balance(world, shops.shop_ids["kuaishou"], "YTO", 0)

    with schema_context(tenant.schema_name):
        batch = wait_for(waybills.start_take_tab())  # the whole 待打单 tab
        assert batch.status == ShipBatch.Status.DONE and batch.total == total
        assert batch.done + batch.failed == total
        failed = list(Parcel.objects.filter(pk__in=parcel_ids, status=P.NEW).values_list("pk", "error"))
        assert batch.failed == len(failed) and failed
        assert all(err for _pk, err in failed)
        kuaishou_failed = Parcel.objects.filter(
            pk__in=[pk for pk, _ in failed], store=shops.stores["kuaishou"]
        )
        assert kuaishou_failed.count() == PER_SHOP  # every YTO parcel was refused
        assert all("平台拒绝取号" in p.error for p in kuaishou_failed)
        assert Waybill.objects.filter(parcel__in=kuaishou_failed, status=W.FAILED).count() == PER_SHOP
        yto = shops.stores["kuaishou"]
        assert WaybillAccount.objects.get(store=yto, carrier="yto").available == 0  # read after the batch
        progress = waybills.batch_progress(batch)
        assert (progress["done"], progress["failed"]) == (batch.done, batch.failed)
    connection.set_schema_to_public()
    rate_limited = [
        c
        for c in world.calls(platform="wechat", path=EWAYBILL_PATHS["wechat"], ok=False)
        if c.code == "45011"
    ]
    assert rate_limited, "the sandbox never answered 45011"
    lost = [c for c in world.calls(path="*", ok=True) if "lost-reply" in (c.fault or "")]
    assert lost, "no reply was lost"

    # The merchant tops up; the failed parcels are retried as a new batch.
    for p in PLATFORMS:
        server.faults.set(p, EWAYBILL_PATHS[p], lost_reply_5xx_rate=0.0, qps=0)
    set_balance(world, shops.shop_ids["kuaishou"], "YTO", 100_000)
    with schema_context(tenant.schema_name):
        retry = wait_for(waybills.start_take([pk for pk, _ in failed]))
        assert (retry.done, retry.failed, retry.total) == (len(failed), 0, len(failed))
        parcels = list(Parcel.objects.filter(pk__in=parcel_ids).select_related("fulfilment"))
        assert all(p.status == P.NUMBERED and p.tracking_no and not p.error for p in parcels)
        assert len({p.tracking_no for p in parcels}) == total
        # ecbao's numbers are the sandbox's live numbers, one per key
        parents = Waybill.objects.filter(parcel__in=parcels, parent__isnull=True, status=W.ISSUED)
        children = Waybill.objects.filter(parcel__in=parcels, parent__isnull=False, status=W.ISSUED)
        assert parents.count() + children.count() == total and children.count() == 2 * 3
        for child in children.select_related("parent", "parcel"):
            assert child.parcel.seq in (2, 3) and child.parent.parcel.seq == 1
            assert world.get_waybill(child.tracking_no).parent == child.parent.tracking_no
        for p in PLATFORMS:
            per_key = world.waybills_per_parcel(shop_id=shops.shop_ids[p], include_cancelled=True)
            assert all(len(numbers) == 1 for numbers in per_key.values()), per_key  # never a second number
            live = {w.tracking_no for numbers in per_key.values() for w in numbers if w.status == "issued"}
            ours = set(parents.filter(store=shops.stores[p]).values_list("tracking_no", flat=True))
            assert live == ours
        # the Kuaishou parcels were retried with a new key (the refused one stays FAILED)
        for parcel in Parcel.objects.filter(
            pk__in=parcel_ids, store=shops.stores["kuaishou"], seq=1, count=1
        ):
            assert Waybill.objects.get(parcel=parcel, status=W.ISSUED).key.endswith("-2")
        assert WaybillAccount.objects.get(store=yto, carrier="yto").available == 100_000 - PER_SHOP
        merged_parcel = merged.parcels.get()
        assert merged_parcel.status == P.NUMBERED
        assert [
            w.order_id for w in world.issued_waybills(order_id=second.platform_order_id) if not w.parent
        ] == []
    connection.set_schema_to_public()


def test_two_takes_of_one_parcel_at_once_take_one_number(server, committed_tenant):  # noqa: F811
    """Two people (or a batch and a person) take the same parcels at the same moment while the
    platform is slow: one Waybill row per parcel, one number at the platform."""
    import threading

    from django.db import connections

    world = server.world
    tenant = committed_tenant("wb-race")
    with schema_context(tenant.schema_name):
        shops = connect_shops(server)
        CarrierRule.objects.create(name="默认中通", priority=50, carrier="zto")
        orders = {p: shops.order(p, 1) for p in PLATFORMS}
        parcel_services.ensure_parcels()
        parcel_ids = {p: fulfilment_of(o).parcels.get().pk for p, o in orders.items()}
    connection.set_schema_to_public()
    for p in PLATFORMS:
        server.faults.set(p, EWAYBILL_PATHS[p], latency_ms=400, qps=0)
    barrier = threading.Barrier(6)
    results: dict = {}

    def take(n: int, platform: str) -> None:
        try:
            with schema_context(tenant.schema_name):
                barrier.wait()
                results[(n, platform)] = waybills.take_for_parcel(parcel_ids[platform]).tracking_no
        except Exception as exc:  # noqa: BLE001 - reported below
            results[(n, platform)] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=take, args=(n, p)) for n in (1, 2) for p in PLATFORMS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for p in PLATFORMS:
        server.faults.set(p, EWAYBILL_PATHS[p], latency_ms=0, qps=0)
    for p in PLATFORMS:
        assert isinstance(results[(1, p)], str) and results[(1, p)] == results[(2, p)], results
        per_key = world.waybills_per_parcel(shop_id=shops.shop_ids[p], include_cancelled=True)
        assert [len(v) for v in per_key.values()] == [1]
    with schema_context(tenant.schema_name):
        assert Waybill.objects.count() == 3
        assert set(Parcel.objects.values_list("status", flat=True)) == {P.NUMBERED}
    connection.set_schema_to_public()

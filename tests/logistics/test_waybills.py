"""Waybill numbers for parcels against the sandbox over real HTTP: accounts, carrier rules with
their reason, one number per parcel under lost replies (the platform acted, the reply was lost:
the sandbox's waybills per key stay at one), refusals → FAILED and a retry with a new key,
child waybills, merged parcels, WeChat's 45011 minute quota, cancel and recycle."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from channels import services as channel_services
from channels.connectors.base import RetryPolicy
from channels.types import ShipmentParcel
from logistics import services as parcel_services
from logistics import waybills
from logistics.carrier_rules import choose_carrier
from logistics.models import CarrierRule, Parcel, Waybill, WaybillAccount
from orders import services as order_services
from tests.logistics.waybill_world import (
    EWAYBILL_PATHS,
    PLATFORMS,
    Shops,
    connect_shops,
    fulfilment_of,
    parcels_of,
    start_sandbox,
    world_order_id,
)

P, W = Parcel.Status, Waybill.Status
WORLD_CARRIER = {"zto": "ZTO", "sf": "SF", "yto": "YTO"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = start_sandbox(tmp_path_factory.mktemp("waybills") / "world.sqlite3")
    yield server
    server.stop()
    server.world.close()


@pytest.fixture
def shops(server, in_alpha, settings) -> Shops:
    for platform in PLATFORMS:
        server.faults.clear(platform)
        server.faults.set(platform, "*", qps=0)
    return connect_shops(server)


def rule(carrier: str, **conditions) -> CarrierRule:
    return CarrierRule.objects.create(
        name=conditions.pop("name", f"用{carrier}"), carrier=carrier, **conditions
    )


def world_account(shops: Shops, platform: str, carrier: str):
    return shops.world.waybill_accounts(shops.shop_ids[platform], WORLD_CARRIER[carrier])[0]


def set_balance(shops: Shops, platform: str, carrier: str, available: int) -> None:
    a = world_account(shops, platform, carrier)
    shops.world.create_waybill_account(
        shop_id=a.shop_id, carrier=a.carrier, netsite_code=a.netsite_code, netsite_name=a.netsite_name,
        available=available, sender=a.sender,
    )  # fmt: skip


def issued_for(shops: Shops, order) -> list:
    """The sandbox's parent numbers for the order (every key the platform saw), live ones."""
    return [
        w
        for w in shops.world.issued_waybills(order_id=world_order_id(shops, order), include_cancelled=False)
        if not w.parent
    ]


def test_sync_accounts_reads_balances_idempotently_and_retires_unlisted_ones(shops):
    store = shops.stores["wechat"]
    stale = WaybillAccount.objects.create(
        store=store, carrier="jd", platform_carrier_code="JD", branch_code="X1", available=42
    )
    assert waybills.sync_accounts(store) == 3
    assert waybills.sync_accounts(store) == 3
    rows = WaybillAccount.objects.filter(store=store, is_active=True)
    assert sorted(rows.values_list("carrier", flat=True)) == ["sf", "yto", "zto"]
    zto = rows.get(carrier="zto")
    assert zto.available == world_account(shops, "wechat", "zto").available
    assert zto.platform_carrier_code == "ZTO" and zto.branch_code and zto.synced_at
    stale.refresh_from_db()
    assert not stale.is_active and stale.available == 42  # kept, only inactive
    assert WaybillAccount.objects.filter(store=store).count() == 4


def test_carrier_rules_choose_by_priority_and_say_which(shops):
    order = shops.order("douyin", 2)  # 2 × 300 g, receiver province from the world
    [parcel] = parcels_of(order)
    store = shops.stores["douyin"]
    province = order.province
    assert province
    # no rule: the shop's first active account
    choice = choose_carrier(parcel)
    assert choice.account.store_id == store.pk and "没有匹配的规则" in choice.reason
    rule("yto", name="其他店铺", priority=1, store_ids=[store.pk + 999])
    rule("sf", name="重货顺丰", priority=5, min_weight_g=1000)
    rule("yto", name="本省圆通", priority=10, provinces=[province[:2]])
    rule("zto", name="兜底中通", priority=50)
    choice = choose_carrier(parcel)
    assert (choice.carrier, choice.reason) == ("yto", "规则「本省圆通」（优先级 10）")
    code = order.lines.first().merchant_code
    rule("sf", name="指定商品顺丰", priority=3, merchant_codes=[code, "OTHER"])
    assert choose_carrier(parcel).carrier == "sf"
    CarrierRule.objects.filter(name="指定商品顺丰").update(enabled=False)
    # a rule with a carrier this shop has no account with is passed over
    rule("jd", name="京东", priority=2)
    assert choose_carrier(parcel).carrier == "yto"
    # weight: a weighed parcel of 1.2 kg goes by the heavy-goods rule
    Parcel.objects.filter(pk=parcel.pk).update(weight_g=1200)
    parcel.refresh_from_db()
    assert choose_carrier(parcel).reason == "规则「重货顺丰」（优先级 5）"
    # taking the number records the choice on the parcel
    waybill = waybills.take_for_parcel(parcel)
    parcel.refresh_from_db()
    assert (parcel.status, parcel.carrier, parcel.carrier_reason) == (
        P.NUMBERED,
        "sf",
        "规则「重货顺丰」（优先级 5）",
    )
    assert parcel.tracking_no == waybill.tracking_no and parcel.account.carrier == "sf"
    assert shops.world.get_waybill(waybill.tracking_no).carrier == "SF"


@pytest.mark.parametrize("platform", PLATFORMS)
def test_lost_replies_give_exactly_one_number_per_parcel(shops, platform):
    world = shops.world
    rule("zto", priority=1)
    order = shops.order(platform, 1)
    [parcel] = parcels_of(order)
    before = world_account(shops, platform, "zto").available
    # The platform acts, then the reply is lost — on every attempt the connector makes.
    shops.server.faults.set(platform, EWAYBILL_PATHS[platform], lost_reply_5xx_rate=1.0, qps=0)
    with pytest.raises(waybills.WaybillError):
        waybills.take_for_parcel(parcel)
    parcel.refresh_from_db()
    [pending] = Waybill.objects.filter(parcel=parcel)
    assert pending.status == W.REQUESTED and pending.attempts == 1 and not pending.tracking_no
    assert parcel.status == P.NEW and "平台未应答" in parcel.error
    assert len(issued_for(shops, order)) == 1  # the platform did take a number
    assert world_account(shops, platform, "zto").available == before - 1
    shops.server.faults.set(platform, EWAYBILL_PATHS[platform], lost_reply_5xx_rate=0.0, qps=0)
    waybill = waybills.take_for_parcel(parcel)
    assert waybill.pk == pending.pk and waybill.key == pending.key and waybill.status == W.ISSUED
    [issued] = issued_for(shops, order)
    assert issued.tracking_no == waybill.tracking_no  # the same number came back
    per_key = [ws for (shop, _oid, _key), ws in world.waybills_per_parcel(shop_id=shops.shop_ids[platform]).items()
               if any(w.tracking_no == waybill.tracking_no for w in ws)]  # fmt: skip
    assert per_key == [[issued]] or [len(ws) for ws in per_key] == [1]
    assert world_account(shops, platform, "zto").available == before - 1
    parcel.refresh_from_db()
    assert (parcel.status, parcel.tracking_no, parcel.error) == (P.NUMBERED, waybill.tracking_no, "")
    # taking again is a no-op: no platform call at all
    calls = world.call_counts(platform=platform, path=EWAYBILL_PATHS[platform])
    assert waybills.take_for_parcel(parcel).pk == waybill.pk
    assert world.call_counts(platform=platform, path=EWAYBILL_PATHS[platform]) == calls
    assert waybill.print_data  # the platform's (encrypted) print data is kept for printing


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_refusal_fails_the_waybill_and_a_retry_takes_with_a_new_key(shops, platform):
    rule("yto", priority=1)
    order = shops.order(platform, 1)
    [parcel] = parcels_of(order)
    set_balance(shops, platform, "yto", 0)
    try:
        with pytest.raises(waybills.WaybillError):
            waybills.take_for_parcel(parcel)
    finally:
        set_balance(shops, platform, "yto", 100_000)
    [failed] = Waybill.objects.filter(parcel=parcel)
    parcel.refresh_from_db()
    assert failed.status == W.FAILED and failed.last_error and "平台拒绝取号" in parcel.error
    assert parcel.status == P.NEW and issued_for(shops, order) == []
    waybill = waybills.take_for_parcel(parcel)
    assert waybill.key != failed.key and waybill.key.endswith(f"-{parcel.pk}-2")
    parcel.refresh_from_db()
    assert parcel.status == P.NUMBERED and parcel.error == ""
    assert [w.tracking_no for w in issued_for(shops, order)] == [waybill.tracking_no]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_child_waybills_parent_on_parcel_one_children_on_the_others(shops, platform):
    rule("sf", priority=1)
    order = shops.order(platform, 3)
    f = fulfilment_of(order)
    line = order.lines.get()
    parcel_services.ensure_parcels(fulfilments=[f])
    planned = parcel_services.plan_parcels(fulfilment=f, parcels=[{line.pk: 1}] * 3)
    before = world_account(shops, platform, "sf").available
    second = waybills.take_for_parcel(planned[1])  # any parcel of the group takes the whole group
    rows = {p.seq: waybills._own_waybill(p.pk) for p in planned}
    parent = rows[1]
    assert parent.parent_id is None and second.parent_id == parent.pk and rows[3].parent_id == parent.pk
    stored = shops.world.get_waybill(parent.tracking_no)
    assert stored.children == [rows[2].tracking_no, rows[3].tracking_no]
    assert world_account(shops, platform, "sf").available == before - 3
    for p in planned:
        p.refresh_from_db()
        assert p.status == P.NUMBERED and p.tracking_no == rows[p.seq].tracking_no and p.carrier == "sf"
    assert all(rows[n].print_data for n in (1, 2, 3))
    assert waybills.take_for_parcel(planned[2]).pk == rows[3].pk  # nothing more taken
    assert shops.world.get_waybill(parent.tracking_no).children == stored.children


def test_a_multi_parcel_order_without_child_waybills_takes_one_number_per_parcel(shops):
    rule("zto", priority=1)
    order = shops.order("kuaishou", 2)
    f = fulfilment_of(order)
    line = order.lines.get()
    parcel_services.ensure_parcels(fulfilments=[f])
    planned = parcel_services.plan_parcels(fulfilment=f, parcels=[{line.pk: 1}, {line.pk: 1}])
    taken = [waybills.take_for_parcel(p) for p in planned]
    assert len({w.tracking_no for w in taken}) == 2 and all(w.parent_id is None for w in taken)
    assert len(issued_for(shops, order)) == 2


@pytest.mark.parametrize("platform", ("douyin", "wechat"))
def test_a_merged_parcel_sends_every_order_and_takes_one_number(shops, platform):
    rule("zto", priority=1)
    first = shops.order(platform, 1, buyer=55)
    second = shops.order(platform, 2, buyer=55, sku=1)
    f = fulfilment_of(first)
    if fulfilment_of(second).pk != f.pk:
        f = order_services.merge(orders=[first, second], actor=None)
    parcel_services.ensure_parcels(fulfilments=[f])
    [parcel] = f.parcels.exclude(status=P.CANCELLED)
    waybill = waybills.take_for_parcel(parcel)
    stored = shops.world.get_waybill(waybill.tracking_no)
    assert stored.order_id == world_order_id(shops, first)  # the receiver is the first order's
    assert issued_for(shops, second) == []  # one number for both
    for o in (first, second):
        assert o.events.filter(kind="waybill_taken", message__contains=waybill.tracking_no).exists()


def test_wechat_minute_quota_45011_is_waited_out_and_the_batch_resumes(shops, monkeypatch):
    """The sandbox answers 45011 past its bucket; the parcel waits and resumes, never fails."""
    world, path = shops.world, EWAYBILL_PATHS["wechat"]
    rule("zto", priority=1)
    orders = [shops.order("wechat", 1) for _ in range(4)]
    monkeypatch.setattr(waybills, "RATE_LIMIT_STEP", 0.3)
    shops.server.faults.set("wechat", path, qps=2.0, burst=1)

    def connect(store):  # the connector gives up on 45011 at once here, so ecbao's wait is seen
        return channel_services.connector_for(
            store, retry=RetryPolicy(base_delay=0.01, rate_limit_attempts=1)
        )

    try:
        taken = [waybills.take_for_parcel(parcels_of(o)[0], connect=connect) for o in orders]
    finally:
        shops.server.faults.set("wechat", path, qps=0)
    refused = [c for c in world.calls(platform="wechat", path=path, ok=False) if c.code == "45011"]
    assert refused, "the sandbox never answered 45011"
    assert len({w.tracking_no for w in taken}) == 4
    for o in orders:
        assert len(issued_for(shops, o)) == 1
        assert parcels_of(o)[0].status == P.NUMBERED


@pytest.mark.parametrize("platform", PLATFORMS)
def test_cancel_recycles_the_number_and_the_parcel_takes_a_new_one(shops, platform):
    rule("zto", priority=1)
    order = shops.order(platform, 1)
    [parcel] = parcels_of(order)
    start = world_account(shops, platform, "zto")
    first = waybills.take_for_parcel(parcel)
    waybills.cancel_parcel_waybill(parcel, reason="换快递")
    first.refresh_from_db()
    parcel.refresh_from_db()
    assert first.status == W.CANCELLED and shops.world.get_waybill(first.tracking_no).status == "cancelled"
    after = world_account(shops, platform, "zto")
    assert (after.available, after.recycled) == (start.available, start.recycled + 1)
    assert (parcel.status, parcel.tracking_no, parcel.carrier) == (P.NEW, "", "")
    assert order.events.filter(kind="waybill_cancelled", message__contains="换快递").exists()
    with pytest.raises(ValidationError, match="没有可取消的运单号"):
        waybills.cancel_parcel_waybill(parcel)
    second = waybills.take_for_parcel(parcel)
    assert second.tracking_no != first.tracking_no and second.key != first.key


def test_a_shipped_number_cannot_be_cancelled(shops):
    rule("zto", priority=1)
    order = shops.order("douyin", 1)
    [parcel] = parcels_of(order)
    waybill = waybills.take_for_parcel(parcel)
    # shipped at the platform (ecbao does not know yet): the platform refuses, nothing changes
    connector = channel_services.connector_for(shops.stores["douyin"])
    connector.ship(platform_order_id=order.platform_order_id,
                   parcels=[ShipmentParcel("zhongtong", waybill.tracking_no)], request_id="ship-1")  # fmt: skip
    with pytest.raises(ValidationError, match="平台拒绝取消"):
        waybills.cancel_parcel_waybill(parcel)
    waybill.refresh_from_db()
    parcel.refresh_from_db()
    assert waybill.status == W.ISSUED and parcel.status == P.NUMBERED
    Parcel.objects.filter(pk=parcel.pk).update(status=P.SHIPPED)
    with pytest.raises(ValidationError, match="已发货"):
        waybills.cancel_parcel_waybill(parcel)


def test_batch_lanes_keep_a_fulfilments_parcels_together_in_order():
    # {parcel: (store, fulfilment, seq)}: two shops; fulfilment 10 has three parcels
    rows = {1: (1, 10, 2), 2: (1, 10, 1), 3: (1, 11, 1), 4: (2, 20, 1), 5: (1, 10, 3), 6: (1, 12, 1)}
    lanes = waybills.lanes(rows, per_shop=2)
    assert sorted(pk for lane in lanes for pk in lane) == [1, 2, 3, 4, 5, 6]
    [group] = [lane for lane in lanes if 2 in lane]
    assert group[group.index(2) : group.index(2) + 3] == [2, 1, 5]  # seq 1, 2, 3 in one lane
    assert len(lanes) == 3 and [4] in lanes  # two lanes for shop 1, one for shop 2


@pytest.mark.parametrize("platform", ("douyin", "wechat"))
def test_cancel_after_a_lost_reply_learns_the_number_then_recycles_it(shops, platform):
    rule("zto", priority=1)
    order = shops.order(platform, 1)
    [parcel] = parcels_of(order)
    before = world_account(shops, platform, "zto")
    shops.server.faults.set(platform, EWAYBILL_PATHS[platform], lost_reply_5xx_rate=1.0, qps=0)
    with pytest.raises(waybills.WaybillError):
        waybills.take_for_parcel(parcel)
    shops.server.faults.set(platform, EWAYBILL_PATHS[platform], lost_reply_5xx_rate=0.0, qps=0)
    [pending] = Waybill.objects.filter(parcel=parcel)
    assert pending.status == W.REQUESTED  # the platform has a number ecbao never saw
    [orphan] = issued_for(shops, order)
    waybills.cancel_parcel_waybill(parcel, reason="不发了")
    pending.refresh_from_db()
    assert (pending.status, pending.tracking_no) == (W.CANCELLED, orphan.tracking_no)
    assert shops.world.get_waybill(orphan.tracking_no).status == "cancelled"
    after = world_account(shops, platform, "zto")
    assert (after.available, after.recycled) == (before.available, before.recycled + 1)
    parcel.refresh_from_db()
    assert parcel.status == P.NEW and not parcel.tracking_no


def test_the_number_of_a_parcel_the_platform_cancelled_is_recycled(shops):
    rule("zto", priority=1)
    order = shops.order("kuaishou", 1)
    [parcel] = parcels_of(order)
    waybill = waybills.take_for_parcel(parcel)
    # the order changed on the platform: logistics retires the numbered parcel, number kept
    parcel_services.fulfilments_changing({parcel.fulfilment_id}, reason="refunded", by_platform=True)
    parcel.refresh_from_db()
    assert parcel.status == P.CANCELLED and "回收" in parcel.error
    waybills.cancel_parcel_waybill(parcel)
    waybill.refresh_from_db()
    parcel.refresh_from_db()
    assert (
        waybill.status == W.CANCELLED and shops.world.get_waybill(waybill.tracking_no).status == "cancelled"
    )
    assert parcel.status == P.CANCELLED and parcel.error == "运单号已回收"


def test_wechat_timeouts_after_the_platform_acted_still_give_one_number_per_parcel(shops):
    """Replies lost as timeouts (the sandbox acts, then answers after the client gave up): first
    on every create, then on every print-data call after the create; each take fails and is
    taken again, and every parcel still ends with the one number its key took."""
    rule("zto", priority=1)
    world, prefix = shops.world, "/channels/ec/logistics/ewaybill/biz/"
    orders = [shops.order("wechat", 1) for _ in range(3)]
    parcels = [parcels_of(o)[0] for o in orders]

    def connect(store):
        return channel_services.connector_for(
            store, timeout=0.8, retry=RetryPolicy(attempts=2, base_delay=0.01)
        )

    def lose(create: float, print_data: float) -> None:
        for path, rate in (("order/create", create), ("print/get", print_data)):
            shops.server.faults.set("wechat", prefix + path, lost_reply_rate=rate, timeout_seconds=1.2, qps=0)

    try:
        for create, print_data in ((1.0, 0.0), (0.0, 1.0)):
            lose(create, print_data)
            for parcel in parcels:
                with pytest.raises(waybills.WaybillError, match="平台未应答"):
                    waybills.take_for_parcel(parcel, connect=connect)
    finally:
        lose(0.0, 0.0)
    lost = [c for c in world.calls(platform="wechat", path=prefix + "*", ok=True) if "lost-reply" in c.fault]
    assert {c.path for c in lost} == {prefix + "order/create", prefix + "print/get"}
    for o, parcel in zip(orders, parcels, strict=True):
        waybill = waybills.take_for_parcel(parcel, connect=connect)
        parcel.refresh_from_db()
        assert parcel.status == P.NUMBERED and waybill.print_data
        assert [w.tracking_no for w in issued_for(shops, o)] == [parcel.tracking_no]
        assert Waybill.objects.filter(parcel=parcel).count() == 1  # one key, however many tries

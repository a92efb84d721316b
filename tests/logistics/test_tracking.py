"""Tracking (logistics.tracking): carrier events pulled over real HTTP from the sandbox after the
parcel shipped there (through the connector's ``ship()``), idempotent re-pulls, stale events that
never move a parcel back, delivered / exception / returned, pushed events (WeChat) that a pull
then finds known, failures kept and retried, ship-by countdowns (overdue), and intercepts when the
platform refunds a shipped order."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.utils import timezone

from channels import carriers
from channels.connectors import push_codec
from channels.connectors.base import RetryPolicy
from channels.services import app_credentials, connector_for, publish_tracking
from channels.types import OrderStatus as ChannelStatus
from channels.types import ShipmentParcel, TrackingEvent, TrackingStatus
from inventory import services as stock
from inventory.models import Goods, Sku
from logistics import services, tracking
from logistics.models import Intercept, Parcel
from orders import services as orders
from orders.models import Order, OrderEvent, OrderStatus
from sandbox import traces
from sandbox.faults import Faults
from sandbox.pushes import OutboxMessage
from sandbox.seed import seed_default_world
from sandbox.server import SandboxServer, ServerOptions
from sandbox.wechat import WechatPushCodec
from sandbox.world import OrderItemSpec, World
from tests.e2e.test_channel_sync import connect, register_tool_apps
from tests.orders.conftest import channel_order, line, receiver

PLATFORMS = ("douyin", "kuaishou", "wechat")
TRIP = 80 * 3600
T = Parcel.Tracking


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    world = World(tmp_path_factory.mktemp("tracking") / "world.sqlite3", seed=77)
    seed_default_world(world, shops_per_platform=1, buyers=10, product_count=4)
    world.set_setting(traces.EXCEPTION_RATE_SETTING, 0.0)  # trouble only where a test puts it
    server = SandboxServer(
        world, ServerOptions(ports={p: 0 for p in PLATFORMS}, simulate=False, push=False, threads=4)
    )
    for platform in PLATFORMS:
        Faults(world).set(platform, "*", qps=0)
    server.start()
    yield server
    server.stop()
    world.close()


@pytest.fixture
def sandbox(server: SandboxServer, settings, in_alpha) -> SandboxServer:
    settings.CHANNEL_BASE_URLS = {p: server.urls[p] for p in PLATFORMS}
    register_tool_apps(server.world)
    return server


def fast(store):
    return connector_for(store, retry=RetryPolicy(attempts=2, base_delay=0.01))


def shipped_parcel(world: World, platform: str) -> Parcel:
    """A paid sandbox order ingested into ecbao (approved, one parcel), shipped on the sandbox
    through the connector's ``ship()`` with a ZTO number, and the parcel marked shipped."""
    shop_id = world.shops(platform)[0].shop_id
    store = connect(world, platform, shop_id)[0]
    wsku = world.skus(shop_id)[0]
    sku = Sku.objects.filter(merchant_code=wsku.code).first()
    if sku is None:
        sku = Sku.objects.create(
            goods=Goods.objects.create(name=wsku.code), merchant_code=wsku.code, name=wsku.code
        )
        stock.receive_stock(sku=sku, quantity=100, reason="opening")
    o = world.create_order(shop_id=shop_id, buyer_id=1, items=[OrderItemSpec(wsku.sku_id, 1)], pay=True)
    platform_order_id = o.lines[0].line_id if platform == "kuaishou" else o.order_id
    connector = fast(store)
    order = orders.ingest_channel_order(store=store, co=connector.get_order(platform_order_id))
    assert order.status == OrderStatus.APPROVED, order.status
    services.ensure_parcels()
    parcel = Parcel.objects.get(lines__order_line__order=order)
    tracking_no = world.new_tracking_no("ZTO")
    connector.ship(
        platform_order_id=platform_order_id,
        parcels=[ShipmentParcel(carriers.code_for(platform, "zto"), tracking_no)],
        request_id=f"ship-{tracking_no}",
    )
    assert world.tracking_numbers()[o.order_id] == [tracking_no]
    Parcel.objects.filter(pk=parcel.pk).update(
        status=Parcel.Status.SHIPPED, carrier="zto", tracking_no=tracking_no, shipped_at=timezone.now()
    )
    parcel.refresh_from_db()
    return parcel


def statuses(parcel: Parcel) -> list[str]:
    return list(parcel.events.order_by("occurred_at", "id").values_list("status", flat=True))


@pytest.mark.parametrize("platform", PLATFORMS)
def test_events_pulled_over_http_after_shipping_and_a_re_pull_adds_nothing(platform, sandbox):
    world = sandbox.world
    parcel = shipped_parcel(world, platform)
    first = tracking.pull(parcel, connect=fast)
    assert (first.new, parcel.tracking_status, parcel.events.count()) == (0, "", 0)  # no scan yet
    assert parcel.tracking_pulled_at is not None and parcel.tracking_error == ""
    journey = traces.get(world, parcel.tracking_no).journey(world)
    traces.fast_forward(world, journey[3].time - world.clock.now() + 0.5, [parcel.tracking_no])
    halfway = tracking.pull(parcel, connect=fast)
    assert (halfway.new, halfway.status, halfway.changed) == (4, T.IN_TRANSIT, True)
    assert statuses(parcel) == [T.COLLECTED, T.IN_TRANSIT, T.IN_TRANSIT, T.IN_TRANSIT]
    assert parcel.last_event_at == datetime.fromtimestamp(journey[3].time, tz=UTC)
    again = tracking.pull(parcel, connect=fast)
    assert (again.new, again.changed, parcel.events.count()) == (0, False, 4)
    traces.fast_forward(world, TRIP, [parcel.tracking_no])
    done = tracking.pull(parcel, connect=fast)
    parcel.refresh_from_db()
    assert (done.new, parcel.tracking_status) == (2, T.DELIVERED)
    assert parcel.delivered_at == parcel.last_event_at == datetime.fromtimestamp(journey[-1].time, tz=UTC)
    assert statuses(parcel)[-2:] == [T.DELIVERING, T.DELIVERED]
    stored = list(parcel.events.order_by("occurred_at"))
    assert [e.description for e in stored] == [n.text for n in journey]
    assert all(e.source == "pull" for e in stored)
    assert tracking.pull(parcel, connect=fast).new == 0
    assert parcel.events.count() == 6


def test_a_stale_event_never_moves_the_parcel_back(sandbox):
    world = sandbox.world
    parcel = shipped_parcel(world, "douyin")
    traces.fast_forward(world, TRIP, [parcel.tracking_no])
    tracking.pull(parcel, connect=fast)
    parcel.refresh_from_db()
    delivered_at, last = parcel.delivered_at, parcel.last_event_at
    assert parcel.tracking_status == T.DELIVERED
    late_news = [
        TrackingEvent(last - timedelta(hours=5), TrackingStatus.EXCEPTION, "【成都市】快件滞留"),
        TrackingEvent(last, TrackingStatus.IN_TRANSIT, "同一秒的旧消息"),
    ]
    result = tracking.record(parcel, late_news, "push")
    parcel.refresh_from_db()
    assert (result.new, result.changed) == (2, False)
    assert (parcel.tracking_status, parcel.last_event_at, parcel.delivered_at) == (
        T.DELIVERED,
        last,
        delivered_at,
    )
    assert parcel.events.count() == 8  # kept in the timeline all the same
    assert tracking.record(parcel, late_news, "push").new == 0
    with pytest.raises(ValueError):
        tracking.record(parcel, [TrackingEvent(datetime(2026, 12, 1, 8), TrackingStatus.COLLECTED)], "push")


def test_exception_then_delivered_and_a_refused_parcel_returned(sandbox):
    world = sandbox.world
    late, refused = shipped_parcel(world, "kuaishou"), shipped_parcel(world, "kuaishou")
    traces.fast_forward(world, 12 * 3600, [late.tracking_no, refused.tracking_no])
    traces.incident(world, late.tracking_no)
    traces.incident(world, refused.tracking_no, returned=True)
    assert tracking.pull(late, connect=fast).status == T.EXCEPTION
    assert list(tracking.exception_parcels()) == [late]
    assert tracking.alert_counts()["exceptions"] == 1
    assert tracking.pull(refused, connect=fast).status == T.RETURNED
    traces.fast_forward(world, TRIP, [late.tracking_no, refused.tracking_no])
    assert tracking.pull(late, connect=fast).status == T.DELIVERED
    assert tracking.pull(refused, connect=fast).new == 0
    refused.refresh_from_db()
    assert (refused.tracking_status, refused.delivered_at) == (T.RETURNED, None)
    assert T.EXCEPTION in statuses(late) and list(tracking.exception_parcels()) == []


def test_a_wechat_push_records_the_events_and_a_pull_then_finds_them_known(
    sandbox, django_capture_on_commit_callbacks
):
    world = sandbox.world
    parcel = shipped_parcel(world, "wechat")
    store = parcel.store
    traces.fast_forward(world, journey_hours(world, parcel, 2), [parcel.tracking_no])
    assert traces.advance(world) >= 1
    event = next(
        e
        for e in reversed(world.events_after(0, limit=100000))
        if e.kind == "logistics_updated" and e.data["trace"]["tracking_no"] == parcel.tracking_no
    )
    app = next(a for a in world.apps("wechat") if a.app_key == store.app_key)
    app = world.update_app(app.app_key, webhook_url="http://ecbao.invalid/hooks/wechat/")
    encoded = WechatPushCodec().encode(
        world, app, OutboxMessage(1, "wechat", app.app_key, "", "m1", 0, 0.0, 0, event)
    )
    query = dict(parse_qsl(urlsplit(encoded.url).query))
    codec = push_codec("wechat")
    [message] = codec.decode(
        headers=encoded.headers,
        query=query,
        body=encoded.body,
        credentials=app_credentials(platform="wechat", app_key=app.app_key),
    )
    assert (message.kind, message.object_id) == ("logistics", parcel.tracking_no)
    with django_capture_on_commit_callbacks(execute=True):
        assert publish_tracking(store=store, payload=message.payload) == 3
    assert statuses(parcel) == [T.COLLECTED, T.IN_TRANSIT, T.IN_TRANSIT]
    assert set(parcel.events.values_list("source", flat=True)) == {"push"}
    assert tracking.pull(parcel, connect=fast).new == 0  # the same events, known by their fingerprints
    assert parcel.events.count() == 3


def journey_hours(world: World, parcel: Parcel, index: int) -> float:
    """Seconds to fast-forward so that the journey's node ``index`` is due."""
    return traces.get(world, parcel.tracking_no).journey(world)[index].time - world.clock.now() + 0.5


def test_a_failed_pull_is_kept_on_the_parcel_and_retried_next_round(sandbox):
    world = sandbox.world
    parcel = shipped_parcel(world, "douyin")
    traces.fast_forward(world, TRIP, [parcel.tracking_no])
    faults = Faults(world)
    faults.set("douyin", "/logistics/trackNoRouteDetail", error_rate=1.0)
    try:
        result = tracking.pull_due(connect=fast)
    finally:
        faults.clear("douyin", "/logistics/trackNoRouteDetail")
    assert (result["pulled"], result["failed"]) == (0, 1)
    parcel.refresh_from_db()
    assert parcel.tracking_error and parcel.tracking_status == "" and parcel.events.count() == 0
    assert list(tracking.due_parcels()) == []  # pulled just now: not again before PULL_EVERY
    later = timezone.now() + tracking.PULL_EVERY + timedelta(minutes=1)
    assert list(tracking.due_parcels(now=later)) == [parcel]
    result = tracking.pull_due(now=later, connect=fast)
    parcel.refresh_from_db()
    assert (result["pulled"], result["events"], parcel.tracking_error) == (1, 6, "")
    assert parcel.tracking_status == T.DELIVERED
    assert list(tracking.due_parcels(now=later + timedelta(days=1))) == []  # delivered: never again


# --- without the sandbox --------------------------------------------------------------------------------------


def ingest(store, oid, **kw):
    # a buyer of its own: no auto-merge with the other orders
    return orders.ingest_channel_order(
        store=store, co=channel_order(oid=oid, receiver=receiver(f"r-{oid}"), **kw)
    )


def test_overdue_lists_unshipped_orders_against_ship_by_and_counts_down(store, skus):
    now = timezone.now()
    late = ingest(store, "O1", ship_by=now - timedelta(hours=2, minutes=5))
    soon = ingest(store, "O2", ship_by=now + timedelta(hours=3))
    ingest(store, "O3", ship_by=now + timedelta(days=2))
    ingest(store, "O4")  # no promise
    shipped = ingest(store, "O5", ship_by=now - timedelta(hours=9))
    Order.objects.filter(pk=shipped.pk).update(status=OrderStatus.SHIPPED)
    assert list(tracking.overdue(hours=0, now=now)) == [late]
    assert list(tracking.overdue(hours=6, now=now)) == [late, soon]
    assert tracking.alert_counts(now=now)["overdue"] == 1 and tracking.alert_counts(now=now)["due_soon"] == 2
    assert tracking.ship_countdown(late.ship_by, now=now) == ("超时 2 小时 5 分", "late")
    assert tracking.ship_countdown(soon.ship_by, now=now) == ("剩 3 小时 0 分", "soon")
    assert tracking.ship_countdown(now + timedelta(days=2, hours=1), now=now) == ("剩 2 天 1 小时", "ok")
    assert tracking.ship_countdown(None) == ("", "")
    services.ensure_parcels()
    parcel = Parcel.objects.get(lines__order_line__order=late)
    assert tracking.ship_by_of_parcels([parcel.pk]) == {parcel.pk: late.ship_by}


def shipped_order(store, oid: str, tracking_no: str) -> tuple[Order, Parcel]:
    order = ingest(store, oid, lines=(line(1, qty=1),))
    services.ensure_parcels()
    parcel = Parcel.objects.get(lines__order_line__order=order)
    Parcel.objects.filter(pk=parcel.pk).update(
        status=Parcel.Status.SHIPPED, carrier="zto", tracking_no=tracking_no, shipped_at=timezone.now()
    )
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.SHIPPED)
    parcel.refresh_from_db()
    order.refresh_from_db()
    return order, parcel


def test_a_refund_after_shipment_asks_to_intercept_the_parcel_once(
    store, skus, django_capture_on_commit_callbacks
):
    order, parcel = shipped_order(store, "R1", "ZT100")
    delivered_order, delivered = shipped_order(store, "R2", "ZT200")
    Parcel.objects.filter(pk=delivered.pk).update(tracking_status=T.DELIVERED)
    for o in (order, delivered_order):
        co = replace(
            channel_order(oid=o.platform_order_id, lines=(line(1, qty=1),), status=ChannelStatus.CANCELLED),
            updated_at=o.platform_updated_at + timedelta(minutes=5),
        )
        with django_capture_on_commit_callbacks(execute=True):
            orders.ingest_channel_order(store=store, co=co)
    assert OrderEvent.objects.filter(order=order, kind="refund_after_shipment").exists()
    [intercept] = Intercept.objects.all()
    assert (intercept.parcel, intercept.order, intercept.status) == (
        parcel,
        order,
        Intercept.Status.REQUESTED,
    )
    assert "退款" in intercept.reason
    # once: the sweep, a second request and the open one's constraint
    assert tracking.intercept_refunded() == 0
    assert tracking.request_intercept(parcel, order, actor=None, reason="again") == intercept
    assert Intercept.objects.count() == 1
    tracking.close_intercept(intercept, done=True)
    assert tracking.intercept_refunded() == 0  # handled: not asked again
    with pytest.raises(ValueError):
        tracking.request_intercept(parcel, delivered_order, actor=None, reason="wrong order")


def test_a_logistics_inbox_message_is_processed_into_the_parcels_timeline(
    store, skus, django_capture_on_commit_callbacks
):
    from channels import intake
    from channels.models import InboxMessage, Store

    wechat = Store.objects.create(
        platform="wechat", platform_shop_id="gh_track", name="微信小店", app_key="wx-k"
    )
    order, parcel = shipped_order(store, "P1", "ZT777")
    Parcel.objects.filter(pk=parcel.pk).update(store=wechat)
    pushed = {"ToUserName": "gh_track", "MsgType": "event", "Event": "add_express_path", "DeliveryID": "ZTO",
              "WayBillId": "ZT777", "OrderId": order.platform_order_id, "Version": 1, "Count": 2,
              "Actions": [{"ActionTime": 1765000000, "ActionType": 100001, "ActionMsg": "【杭州市】已揽收"},
                          {"ActionTime": "1765010000", "ActionType": 200001, "ActionMsg": "【杭州市】快件已发往 杭州转运中心"}]}  # fmt: skip
    message = InboxMessage.objects.create(
        platform="wechat", message_id="wx-track-1", store=wechat, topic="add_express_path",
        payload={"kind": "logistics", "object_id": "ZT777", "platform_shop_id": "gh_track", "data": pushed},
    )  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        processed = intake.process_inbox_message(message_id=message.pk)
    assert processed.status == InboxMessage.Status.PROCESSED
    parcel.refresh_from_db()
    assert statuses(parcel) == [T.COLLECTED, T.IN_TRANSIT] and parcel.tracking_status == T.IN_TRANSIT
    assert set(parcel.events.values_list("source", flat=True)) == {"push"}
    with django_capture_on_commit_callbacks(execute=True):  # processed once: a second run changes nothing
        intake.process_inbox_message(message_id=message.pk)
    assert parcel.events.count() == 2

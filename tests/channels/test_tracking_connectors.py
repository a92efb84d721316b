"""Logistics traces through the three connectors over real HTTP (waitress sandbox): a parcel shipped
with ``ship()`` is tracked with ``track()`` as the sandbox moves it along — collected → in transit
→ out for delivery → delivered, exceptions and returns — in each platform's own shape, the
untidy variations (times as strings / numbers / Beijing text, missing fields) included.
No database."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC

import httpx
import pytest

from channels import carriers
from channels.connectors import connector_class
from channels.connectors.base import AppCredentials, Connector, RetryPolicy, ShopSession
from channels.errors import ChannelError
from channels.types import ShipmentParcel, TrackingStatus
from sandbox import traces, untidy
from sandbox.faults import Faults
from sandbox.seed import seed_default_world
from sandbox.server import SandboxServer, ServerOptions
from sandbox.wechat import create_self_use_app
from sandbox.world import OrderItemSpec, World

PLATFORMS = ("douyin", "kuaishou", "wechat")
TRIP = 80 * 3600  # longer than any planned journey (a return included)
TIME_VARIATIONS = {"douyin": "douyin.trace_int_times", "kuaishou": "kuaishou.trace_text_times",
                   "wechat": "wechat.trace_string_times"}  # fmt: skip


@dataclass
class Shop:
    platform: str
    shop_id: str
    connector: Connector


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    world = World(tmp_path_factory.mktemp("tracking") / "world.sqlite3", seed=1313)
    seed_default_world(world, shops_per_platform=2, buyers=10, product_count=4)
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


def connect(server: SandboxServer, platform: str, shop_id: str) -> Connector:
    world = server.world
    http = httpx.Client(timeout=10, trust_env=False)
    if platform == "wechat":
        app = create_self_use_app(world, shop_id)
        creds = AppCredentials(
            app.app_key, app.app_secret, token=app.push_token, aes_key=app.encoding_aes_key
        )
    else:
        app = next(a for a in world.apps(platform) if a.app_type == "tool")
        creds = AppCredentials(
            app.app_key, app.app_secret, sign_secret=app.sign_secret, message_key=app.message_key
        )
    connector = connector_class(platform)(
        credentials=creds, base_url=server.urls[platform], http=http, retry=RetryPolicy(base_delay=0.01)
    )
    if platform == "wechat":
        grant = connector.self_use_token(platform_shop_id=shop_id)
    else:
        grant = connector.exchange_code(code=world.create_oauth_code(app.app_key, shop_id).code)
    connector.session = ShopSession(platform_shop_id=grant.platform_shop_id)
    connector.apply_grant(grant)
    return connector


@pytest.fixture(scope="module")
def shops(server: SandboxServer) -> dict[str, Shop]:
    out = {}
    for platform in PLATFORMS:
        shop_id = server.world.shops(platform)[0].shop_id
        out[platform] = Shop(platform, shop_id, connect(server, platform, shop_id))
    return out


def ship_one(world: World, shop: Shop, carrier: str = "zto") -> tuple[str, str, str]:
    """A paid order shipped through the connector: (platform order id, carrier code, tracking no)."""
    sku = world.skus(shop.shop_id)[0]
    o = world.create_order(shop_id=shop.shop_id, buyer_id=1, items=[OrderItemSpec(sku.sku_id, 1)], pay=True)
    platform_order_id = o.lines[0].line_id if shop.platform == "kuaishou" else o.order_id
    code = carriers.code_for(shop.platform, carrier)
    tracking_no = world.new_tracking_no(carrier.upper())
    shop.connector.ship(
        platform_order_id=platform_order_id,
        parcels=[ShipmentParcel(code, tracking_no)],
        request_id=f"ship-{tracking_no}",
    )
    return platform_order_id, code, tracking_no


def track(shop: Shop, parcel: tuple[str, str, str]):
    platform_order_id, code, tracking_no = parcel
    return shop.connector.track(
        carrier_code=code, tracking_no=tracking_no, platform_order_id=platform_order_id
    )


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_shipped_parcel_moves_along_to_delivered(
    platform: str, server: SandboxServer, shops: dict[str, Shop]
) -> None:
    world, shop = server.world, shops[platform]
    parcel = ship_one(world, shop)
    assert track(shop, parcel) == []  # no scan yet: the carrier collects an hour or more later
    journey = traces.get(world, parcel[2]).journey(world)
    traces.fast_forward(
        world, journey[3].time - world.clock.now() + 0.5, [parcel[2]]
    )  # to the destination hub
    halfway = track(shop, parcel)
    assert [e.status for e in halfway] == [TrackingStatus.COLLECTED] + [TrackingStatus.IN_TRANSIT] * 3
    traces.fast_forward(world, TRIP, [parcel[2]])
    events = track(shop, parcel)
    assert [e.status for e in events] == [
        TrackingStatus.COLLECTED,
        *[TrackingStatus.IN_TRANSIT] * 3,
        TrackingStatus.DELIVERING,
        TrackingStatus.DELIVERED,
    ]
    assert events[:4] == halfway  # the same events again, oldest first, whatever order the platform lists
    nodes = traces.get(world, parcel[2]).nodes(world)
    assert [int(e.occurred_at.timestamp()) for e in events] == [n.time for n in nodes]
    assert all(e.occurred_at.tzinfo is UTC for e in events)
    assert [e.description for e in events] == [n.text for n in nodes]
    assert "签收" in events[-1].description and events[-1].platform_status
    if platform != "wechat":  # the logistics helper's path items carry no place
        assert any(e.location for e in events)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_times_as_strings_numbers_or_text_read_the_same(
    platform: str, server: SandboxServer, shops: dict[str, Shop]
) -> None:
    world, shop = server.world, shops[platform]
    parcel = ship_one(world, shop)
    traces.fast_forward(world, TRIP, [parcel[2]])
    name = TIME_VARIATIONS[platform]
    try:
        untidy.set_rates(world, {name: 1.0})
        world._untidy_cache = None
        untidy_events = track(shop, parcel)
        untidy.set_rates(world, {name: 0.0, "douyin.trace_no_site": 0.0, "kuaishou.trace_no_city": 0.0})
        world._untidy_cache = None
        tidy_events = track(shop, parcel)
    finally:
        untidy.set_rates(world, None)
        world._untidy_cache = None
    assert len(tidy_events) == 6
    assert [(e.occurred_at, e.status, e.description) for e in untidy_events] == [
        (e.occurred_at, e.status, e.description) for e in tidy_events
    ]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_an_exception_then_delivered_and_a_refused_parcel_returned(
    platform: str, server: SandboxServer, shops: dict[str, Shop]
) -> None:
    world, shop = server.world, shops[platform]
    late, refused = ship_one(world, shop), ship_one(world, shop, "yto")
    traces.fast_forward(world, 12 * 3600, [late[2], refused[2]])
    traces.incident(world, late[2])
    traces.incident(world, refused[2], returned=True)
    assert track(shop, late)[-1].status == TrackingStatus.EXCEPTION
    statuses = [e.status for e in track(shop, refused)]
    assert statuses[-2:] == [TrackingStatus.EXCEPTION, TrackingStatus.RETURNED]
    traces.fast_forward(world, TRIP, [late[2], refused[2]])
    after = [e.status for e in track(shop, late)]
    assert TrackingStatus.EXCEPTION in after and after[-1] == TrackingStatus.DELIVERED
    assert [e.status for e in track(shop, refused)][-1] == TrackingStatus.RETURNED  # never delivered


@pytest.mark.parametrize("platform", PLATFORMS)
def test_another_shops_parcel_has_no_trace_and_a_wrong_carrier_is_refused(
    platform: str, server: SandboxServer, shops: dict[str, Shop]
) -> None:
    world, shop = server.world, shops[platform]
    parcel = ship_one(world, shop)
    traces.fast_forward(world, TRIP, [parcel[2]])
    other = connect(server, platform, world.shops(platform)[1].shop_id)
    assert other.track(carrier_code=parcel[1], tracking_no=parcel[2]) == []
    with pytest.raises(ChannelError):
        shop.connector.track(carrier_code=carriers.code_for(platform, "sf"), tracking_no=parcel[2])

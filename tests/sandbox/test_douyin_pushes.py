"""Douyin pushes (§1.8): format, event-sign, retries until acknowledged, duplicates, reordering."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.clock import FakeClock
from sandbox.douyin import DouyinPushCodec
from sandbox.model import AfterSaleType, App
from sandbox.pushes import PushDispatcher, PushSettings, outbox_rows
from sandbox.seed import seed_default_world
from sandbox.simulator import BuyerSimulator, SimConfig
from sandbox.world import OrderItemSpec, ShipmentSpec, World
from tests.sandbox.conftest import PushReceiver
from tests.sandbox.refclients.douyin import DouyinRefClient


def subscribe(world: World, app: App, shop_id: str, url: str) -> None:
    world.update_app(app.app_key, webhook_url=url)
    world.authorize(app.app_key, shop_id)


def test_pushes_verify_and_are_retried_until_acknowledged(
    world: World, dy_app: App, shop_id: str, client: DouyinRefClient, clock: FakeClock
) -> None:
    receiver = PushReceiver(fail_first=3)
    try:
        subscribe(world, dy_app, shop_id, receiver.url)
        order = world.create_order(
            shop_id=shop_id, buyer_id=1, items=[OrderItemSpec(world.skus(shop_id)[0].sku_id)], pay=True
        )
        dispatcher = PushDispatcher(world, time_compression=1.0)
        try:
            assert dispatcher.deliver_due() == 2  # created + paid, both refused (receiver fails 3 times)
            assert dispatcher.deliver_due() == 0  # nothing due before the first retry delay
            schedule = DouyinPushCodec.retry_schedule
            clock.advance(schedule[0])
            assert dispatcher.deliver_due() == 2  # third request fails, fourth succeeds
            clock.advance(schedule[1])
            assert dispatcher.deliver_due() == 1
            assert dispatcher.pending_count() == 0
        finally:
            dispatcher.stop()
        assert len(receiver.requests) == 5
        delivered = [r for r in outbox_rows(world) if r["status"] == "delivered"]
        assert sorted(r["attempts"] for r in delivered) == [2, 3]
        messages = [m for headers, body in receiver.requests for m in client.verify_push(headers, body)]
        by_tag = {m["tag"]: m for m in messages}
        assert set(by_tag) == {"100", "101"}
        assert by_tag["100"]["data"]["p_id"] == int(order.order_id) and by_tag["100"]["data"]["s_ids"] == [
            int(order.lines[0].line_id)
        ]
        assert (
            by_tag["101"]["data"]["pay_amount"] == order.pay_fen
            and by_tag["101"]["data"]["order_status"] == 2
        )
        assert len({m["msg_id"] for m in messages if m["tag"] == "100"}) == 1  # retries keep the msg_id
        headers, body = receiver.requests[-1]
        with pytest.raises(ValueError):
            client.verify_push(headers, body.replace(b"}", b" }", 1))
    finally:
        receiver.close()


def test_gives_up_after_the_schedule(world: World, dy_app: App, shop_id: str, clock: FakeClock) -> None:
    receiver = PushReceiver(fail_first=10**6)
    try:
        subscribe(world, dy_app, shop_id, receiver.url)
        world.set_seller_remark(
            world.create_order(
                shop_id=shop_id, buyer_id=1, items=[OrderItemSpec(world.skus(shop_id)[0].sku_id)]
            ).order_id,
            "加急",
        )
        dispatcher = PushDispatcher(world)
        try:
            for delay in (0, *DouyinPushCodec.retry_schedule):
                clock.advance(delay)
                dispatcher.deliver_due()
            assert {r["status"] for r in outbox_rows(world)} == {"failed"}
            assert {r["attempts"] for r in outbox_rows(world)} == {len(DouyinPushCodec.retry_schedule) + 1}
        finally:
            dispatcher.stop()
    finally:
        receiver.close()


def test_event_tags_follow_the_order_and_aftersale_life(world: World, dy_app: App, shop_id: str, client: DouyinRefClient,
                                                        push_receiver: PushReceiver) -> None:  # fmt: skip
    subscribe(world, dy_app, shop_id, push_receiver.url)
    skus = world.skus(shop_id)
    order = world.create_order(
        shop_id=shop_id,
        buyer_id=1,
        items=[OrderItemSpec(skus[0].sku_id, 2), OrderItemSpec(skus[1].sku_id)],
        pay=True,
    )
    world.change_address(order.order_id, world.get_buyer(2).receiver)
    first, second = order.lines
    world.ship_order(order.order_id, [ShipmentSpec("ZTO", "7500001", [(first.line_id, 2)])])
    world.ship_order(order.order_id, [ShipmentSpec("SF", "SF00002", [(second.line_id, 1)])])
    refund = world.apply_aftersale(order.order_id, first.line_id, kind=AfterSaleType.REFUND_SHIPPED, qty=1)
    world.agree_aftersale(refund.aftersale_id)
    world.receive_order(order.order_id)
    dispatcher = PushDispatcher(world)
    try:
        dispatcher.deliver_due()
    finally:
        dispatcher.stop()
    messages = [m for headers, body in push_receiver.requests for m in client.verify_push(headers, body)]
    assert [m["tag"] for m in messages] == ["100", "101", "105", "108", "102", "200", "201", "206", "103"]
    partial = messages[3]["data"]["logistics_msg"]
    assert (
        partial["express_company_id"] == "zhongtong" and partial["shipped_order_info"][0]["shipped_num"] == 2
    )
    address = messages[2]["data"]["receiver_msg"]
    assert address["name"].startswith("#") and world.get_buyer(2).receiver.name not in str(messages)
    assert messages[7]["data"]["aftersale_id"] == int(refund.aftersale_id) and messages[7]["data"][
        "s_id"
    ] == int(first.line_id)


def test_duplicates_and_reordering(world: World, dy_app: App, shop_id: str, client: DouyinRefClient, clock: FakeClock,
                                   push_receiver: PushReceiver) -> None:  # fmt: skip
    subscribe(world, dy_app, shop_id, push_receiver.url)
    PushSettings.save(world, "douyin", duplicate_probability=1.0, reorder_probability=0.0)
    order = world.create_order(
        shop_id=shop_id, buyer_id=1, items=[OrderItemSpec(world.skus(shop_id)[0].sku_id)], pay=True
    )
    dispatcher = PushDispatcher(world, seed=3)
    try:
        dispatcher.deliver_due()
        clock.advance(10)
        dispatcher.deliver_due()
        ids = [m["msg_id"] for h, b in push_receiver.requests for m in client.verify_push(h, b)]
        assert len(ids) == 4 and len(set(ids)) == 2  # every message delivered twice, same msg_id
        # Reordering: the first message is held back, so the paid message overtakes it.
        PushSettings.save(
            world, "douyin", duplicate_probability=0.0, reorder_probability=1.0, max_reorder_delay=30
        )
        before = len(push_receiver.requests)
        world.set_seller_remark(order.order_id, "先发这个")
        world.cancel_order(
            world.create_order(
                shop_id=shop_id, buyer_id=1, items=[OrderItemSpec(world.skus(shop_id)[1].sku_id)]
            ).order_id,
            reason="不想要了",
        )
        assert dispatcher.deliver_due() == 0  # all three first attempts were postponed
        clock.advance(31)
        dispatcher.deliver_due()
        tags = [m["tag"] for h, b in push_receiver.requests[before:] for m in client.verify_push(h, b)]
        assert sorted(tags) == ["100", "106", "113"] and tags != ["113", "100", "106"]
    finally:
        dispatcher.stop()


def test_dispatcher_thread_with_real_clock_and_time_compression(tmp_path: Path) -> None:
    """The server's mode: a background thread, a real clock, retries compressed 1000×."""
    world = World(tmp_path / "live.sqlite3", seed=1)
    seed_default_world(world, platforms=("douyin",), buyers=20)
    app, shop_id = world.apps("douyin")[0], world.shops("douyin")[0].shop_id
    receiver = PushReceiver(fail_first=4)
    dispatcher = PushDispatcher(world, time_compression=1000.0, poll_interval=0.05)
    try:
        subscribe(world, app, shop_id, receiver.url)
        dispatcher.start()
        sim = BuyerSimulator(world, seed=2, config=SimConfig(orders_per_minute=0), shops=[shop_id])
        for _ in range(3):
            sim.place_random_order(shop_id)
        assert dispatcher.wait_until(
            lambda: dispatcher.pending_count() == 0 and len(receiver.requests) >= 7, timeout=10
        )
        statuses = {r["status"] for r in outbox_rows(world)}
        assert statuses == {"delivered"}
        client = DouyinRefClient(app.app_key, app.app_secret, http=None)  # type: ignore[arg-type]
        tags = [m["tag"] for h, b in receiver.requests[4:] for m in client.verify_push(h, b)]
        assert tags.count("100") == 3
    finally:
        dispatcher.stop()
        receiver.close()
        world.close()

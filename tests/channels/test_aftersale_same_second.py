"""Two versions of one after-sale in the same second with the same neutral status (Douyin's
``update_time`` is in seconds: a reissue applied for (6) and approved (8, the merchant must now
send the parcel) both read "waiting for the merchant"): the one received later is the newest,
and a re-delivered older version never comes back."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from channels.models import ChannelAfterSaleState
from channels.services import store_after_sale_version
from channels.types import AfterSale, AfterSaleStatus, AfterSaleType, Platform
from tests.orders.conftest import store  # noqa: F401  (a Douyin shop in tenant alpha)

T = datetime(2026, 12, 1, 8, 0, 0, tzinfo=UTC)


def test_a_later_version_in_the_same_second_wins_and_an_old_one_never_returns(store):  # noqa: F811
    applied = AfterSale(
        platform=Platform.DOUYIN, platform_shop_id=store.platform_shop_id, platform_after_sale_id="7001",
        platform_order_id="6001", platform_line_id="6002", type=AfterSaleType.RESHIP,
        status=AfterSaleStatus.WAITING_MERCHANT, platform_status="6", refund_fen=0, quantity=1,
        reason="少发了", created_at=T, updated_at=T, version="1764576000",
    )  # fmt: skip
    approved = replace(applied, platform_status="8")
    assert store_after_sale_version(store=store, after_sale=applied, source="pull")
    assert store_after_sale_version(store=store, after_sale=approved, source="pull")
    state = ChannelAfterSaleState.objects.select_related("snapshot").get(platform_after_sale_id="7001")
    assert state.snapshot.platform_status == "8"
    # the first version delivered again (a late push, a list page read earlier): nothing changes
    assert not store_after_sale_version(store=store, after_sale=applied, source="push")
    state.refresh_from_db()
    assert state.snapshot.platform_status == "8"
    # a later step in the same second still wins; an earlier step never does
    done = replace(applied, status=AfterSaleStatus.SUCCEEDED, platform_status="12")
    assert store_after_sale_version(store=store, after_sale=done, source="pull")
    assert not store_after_sale_version(
        store=store, after_sale=replace(approved, reason="再来"), source="push"
    )
    state.refresh_from_db()
    assert state.status == AfterSaleStatus.SUCCEEDED

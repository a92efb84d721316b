"""Douyin OAuth codes and token life cycle (§1.1): 7-day access, 14-day refresh, refresh rules."""

from __future__ import annotations

import httpx

from sandbox.clock import FakeClock
from sandbox.model import App
from sandbox.world import World
from tests.sandbox.conftest import authorize_via_page
from tests.sandbox.refclients.douyin import DouyinRefClient

DAY = 86400
SEARCH = {"page": 0, "size": 1}


def works(client: DouyinRefClient, access_token: str) -> dict:
    return client.call("/order/searchList", SEARCH, access_token)


def test_oauth_page_code_is_single_use_and_expires(world: World, http: httpx.Client, dy_app: App, client: DouyinRefClient,
                                                   shop_id: str, clock: FakeClock) -> None:  # fmt: skip
    world.update_app(dy_app.app_key, redirect_uri="https://erp.example/cb?tenant=acme")
    code = authorize_via_page(http, dy_app, shop_id, state="abc")
    first = client.token_create_by_code(code)
    assert first["code"] == 10000
    data = first["data"]
    assert data["expires_in"] == 7 * DAY and data["shop_id"] == int(shop_id) and data["shop_name"]
    again = client.token_create_by_code(code)
    assert (again["code"], again["sub_code"]) == (50001, "dop.token-generate-failed:code-invalid")
    late = authorize_via_page(http, dy_app, shop_id)
    clock.advance(10 * 60 + 1)
    expired = client.token_create_by_code(late)
    assert (expired["code"], expired["sub_code"]) == (50001, "dop.token-generate-failed:code-expired")
    assert works(client, data["access_token"])["code"] == 10000


def test_redirect_keeps_existing_query(world: World, http: httpx.Client, dy_app: App, shop_id: str) -> None:
    world.update_app(dy_app.app_key, redirect_uri="https://erp.example/cb?tenant=acme")
    http.get("/authorize", params={"service_id": dy_app.service_id, "state": "s"})
    answer = http.post("/authorize", data={"app_key": dy_app.app_key, "state": "s", "shop_id": shop_id})
    assert answer.headers["location"].startswith("https://erp.example/cb?tenant=acme&code=")


def test_access_token_expires_after_seven_days_and_refresh_replaces_it(
    client: DouyinRefClient, token: dict, clock: FakeClock
) -> None:
    clock.advance(7 * DAY - 2 * 3600)
    assert works(client, token["access_token"])["code"] == 10000
    # More than an hour left: the same pair comes back, lifetimes unchanged.
    same = client.token_refresh(token["refresh_token"])["data"]
    assert same["access_token"] == token["access_token"] and same["refresh_token"] == token["refresh_token"]
    assert same["expires_in"] == 2 * 3600
    clock.advance(2 * 3600)
    expired = works(client, token["access_token"])
    assert (expired["code"], expired["sub_code"]) == (40003, "isv.access-token-expired")
    fresh = client.token_refresh(token["refresh_token"])["data"]
    assert fresh["access_token"] != token["access_token"] and fresh["expires_in"] == 7 * DAY
    assert works(client, fresh["access_token"])["code"] == 10000
    # After expiry the old pair dies (SDK comment, case 3).
    reused = client.token_refresh(token["refresh_token"])
    assert (reused["code"], reused["sub_code"]) == (50001, "dop.token-generate-failed:token-invalid")
    assert works(client, token["access_token"])["sub_code"] == "isv.access-token-no-existed"


def test_refresh_in_last_hour_keeps_old_pair_for_an_hour(
    client: DouyinRefClient, token: dict, clock: FakeClock
) -> None:
    clock.advance(7 * DAY - 1800)
    fresh = client.token_refresh(token["refresh_token"])["data"]
    assert fresh["access_token"] != token["access_token"]
    assert works(client, token["access_token"])["code"] == 10000  # still valid until its own expiry
    assert works(client, fresh["access_token"])["code"] == 10000
    # Within that hour the old refresh token leads to the same new pair.
    assert client.token_refresh(token["refresh_token"])["data"]["access_token"] == fresh["access_token"]
    clock.advance(1801)  # the old access token reaches its own expiry
    assert works(client, token["access_token"])["sub_code"] == "isv.access-token-expired"
    assert client.token_refresh(token["refresh_token"])["data"]["access_token"] == fresh["access_token"]
    clock.advance(1800)  # one hour after the refresh the old refresh token is gone too
    assert (
        client.token_refresh(token["refresh_token"])["sub_code"] == "dop.token-generate-failed:token-expired"
    )
    assert works(client, fresh["access_token"])["code"] == 10000


def test_refresh_token_expires_after_fourteen_days(
    client: DouyinRefClient, token: dict, clock: FakeClock
) -> None:
    clock.advance(14 * DAY)
    answer = client.token_refresh(token["refresh_token"])
    assert (answer["code"], answer["sub_code"]) == (50001, "dop.token-generate-failed:token-expired")
    bogus = client.token_refresh("not-a-token")
    assert bogus["sub_code"] == "dop.token-generate-failed:token-invalid"
    wrong_grant = client.call(
        "/token/refresh", {"grant_type": "password", "refresh_token": token["refresh_token"]}
    )
    assert wrong_grant["sub_code"] == "dop.token-generate-failed:grant-type-invalid"


def test_self_use_app_gets_token_with_authorization_self(world: World, http: httpx.Client, clock: FakeClock, shop_id: str,
                                                         client: DouyinRefClient) -> None:  # fmt: skip
    own = world.create_app(
        App(
            app_key="7111111111111111111",
            platform="douyin",
            name="自用",
            app_secret="self-secret",
            app_type="self",
        )
    )
    world.authorize(own.app_key, shop_id)
    self_client = DouyinRefClient(own.app_key, own.app_secret, http=http, clock=clock.now)
    answer = self_client.token_create_self(shop_id)
    assert answer["code"] == 10000 and answer["data"]["authority_id"] == shop_id
    assert works(self_client, answer["data"]["access_token"])["code"] == 10000
    # A tool app may not use the self grant; a self app has no access to unauthorised shops.
    assert client.token_create_self(shop_id)["sub_code"] == "dop.token-generate-failed:grant-type-invalid"
    other_shop = world.shops("douyin")[1].shop_id
    assert (
        self_client.token_create_self(other_shop)["sub_code"] == "dop.token-generate-failed:no-authorization"
    )


def test_merchant_revoking_authorization(
    world: World, client: DouyinRefClient, token: dict, dy_app: App, shop_id: str
) -> None:
    world.revoke_authorization(dy_app.app_key, shop_id)
    answer = works(client, token["access_token"])
    assert (answer["code"], answer["sub_code"]) == (30001, "dop.authorization-no-existed")
    refresh = client.token_refresh(token["refresh_token"])
    assert refresh["sub_code"] == "dop.token-generate-failed:no-authorization"

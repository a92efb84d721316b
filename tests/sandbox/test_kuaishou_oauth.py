"""Kuaishou sandbox: the OAuth page, code exchange, token expiry and rotating refresh tokens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from tests.sandbox.test_kuaishou_api import KsEnv, make_env

CALLBACK = "https://erp.example/callback/kuaishou"
SCOPES = "merchant_order,merchant_item,merchant_refund,merchant_logistics,merchant_user"
HOUR = 3600
DAY = 86400


@pytest.fixture
def env(tmp_path: Path) -> Iterator[KsEnv]:
    for value in make_env(tmp_path):
        value.world.update_app(value.app.app_key, redirect_uri=CALLBACK)
        yield value


def authorize(env: KsEnv, *, state: str = "st-1", scope: str = SCOPES, shop_id: str | None = None) -> str:
    """Open the page like a merchant, pick the shop, press 授权并登录; return the code."""
    query = {
        "app_id": env.app.app_key,
        "redirect_uri": CALLBACK,
        "scope": scope,
        "response_type": "code",
        "state": state,
    }
    page = env.http.get("/oauth/authorize", params=query)
    assert page.status_code == 200 and "授权并登录" in page.text
    shop_id = shop_id or env.shop_id
    assert shop_id in page.text
    answer = env.http.post("/oauth/authorize", data={**query, "shop_id": shop_id})
    assert answer.status_code == 302, answer.text
    location = urlparse(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    params = parse_qs(location.query)
    assert params["state"] == [state]
    return params["code"][0]


def test_code_exchange_returns_tokens_open_id_and_scopes(env: KsEnv) -> None:
    tokens = env.client.token_by_code(authorize(env))
    assert tokens["result"] == 1
    assert tokens["expires_in"] == 48 * HOUR
    assert tokens["refresh_token_expires_in"] == 180 * DAY
    assert tokens["scopes"] == SCOPES.split(",")
    seller = env.client.data("open.user.seller.get", {}, tokens["access_token"])
    assert tokens["open_id"] == seller["openId"] and seller["sellerId"] == int(env.shop_id)


def test_code_is_single_use_and_valid_two_minutes(env: KsEnv) -> None:
    code = authorize(env)
    assert env.client.token_by_code(code)["result"] == 1
    reused = env.client.token_by_code(code)
    assert reused["result"] == 100200105 and reused["error"] == "invalid_grant"
    late = authorize(env, state="st-2")
    env.clock.advance(121)
    expired = env.client.token_by_code(late)
    assert (expired["result"], expired["error"]) == (100200105, "invalid_grant")


def test_authorize_page_refuses_bad_requests(env: KsEnv) -> None:
    base = {"app_id": env.app.app_key, "redirect_uri": CALLBACK, "scope": SCOPES, "response_type": "code"}
    for change, expected in (
        ({"app_id": "ks000"}, "unauthorized_client"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "merchant_everything"}, "invalid_scope"),
        ({"redirect_uri": "https://evil.example/cb"}, "Invalid url"),
    ):
        page = env.http.get("/oauth/authorize", params={**base, **change})
        assert page.status_code == 400 and expected in page.text


def test_token_endpoint_errors(env: KsEnv) -> None:
    wrong_secret = env.http.get("/oauth2/access_token", params={"app_id": env.app.app_key, "grant_type": "code", "code": "x",
                                                                "app_secret": "nope"}).json()  # fmt: skip
    assert (wrong_secret["result"], wrong_secret["error"]) == (100200101, "unauthorized_client")
    missing = env.http.get(
        "/oauth2/access_token", params={"app_id": env.app.app_key, "app_secret": env.app.app_secret}
    ).json()
    assert (missing["result"], missing["error"]) == (100200100, "invalid_request")
    grant = env.http.get("/oauth2/access_token", params={"app_id": env.app.app_key, "grant_type": "password",
                                                         "app_secret": env.app.app_secret}).json()  # fmt: skip
    assert (grant["result"], grant["error"]) == (100200104, "unsupported_grant_type")
    assert set(wrong_secret) == {"result", "error", "error_msg"}


def test_client_credentials_token_cannot_call_shop_apis(env: KsEnv) -> None:
    app_token = env.client.token_client_credentials()
    assert (
        app_token["result"] == 1 and app_token["expires_in"] == 48 * HOUR and "refresh_token" not in app_token
    )
    envelope = env.client.call("open.user.seller.get", {}, app_token["access_token"])
    assert (envelope["result"], envelope["error_msg"]) == (26, "主账号不存在")


def test_access_token_expires_after_48_hours(env: KsEnv) -> None:
    tokens = env.client.token_by_code(authorize(env))
    env.clock.advance(48 * HOUR - 1)
    assert env.client.call("open.user.seller.get", {}, tokens["access_token"])["result"] == 1
    env.clock.advance(1)
    expired = env.client.call("open.user.seller.get", {}, tokens["access_token"])
    assert (expired["result"], expired["error_msg"]) == (24, "TOKEN过期")


def test_refresh_rotates_and_the_new_refresh_token_inherits_the_old_expiry(env: KsEnv) -> None:
    first = env.client.token_by_code(authorize(env))
    env.clock.advance(10 * DAY)
    second = env.client.refresh(first["refresh_token"])
    assert second["result"] == 1
    assert (
        second["refresh_token"] != first["refresh_token"] and second["access_token"] != first["access_token"]
    )
    assert second["expires_in"] == 48 * HOUR
    assert second["refresh_token_expires_in"] == 170 * DAY  # inherited, counting down
    assert second["scopes"] == first["scopes"]
    # the old access token keeps working until its own expiry (it expired after 48 h here)
    assert env.client.call("open.user.seller.get", {}, second["access_token"])["result"] == 1
    env.clock.advance(DAY)
    third = env.client.refresh(second["refresh_token"])
    assert third["refresh_token_expires_in"] == 169 * DAY


def test_old_refresh_token_answers_the_same_pair_for_five_minutes_then_is_discarded(env: KsEnv) -> None:
    first = env.client.token_by_code(authorize(env))
    second = env.client.refresh(first["refresh_token"])
    env.clock.advance(299)
    again = env.client.refresh(first["refresh_token"])
    assert (again["access_token"], again["refresh_token"]) == (
        second["access_token"],
        second["refresh_token"],
    )
    env.clock.advance(1)
    discarded = env.client.refresh(first["refresh_token"])
    assert discarded == {"result": 100200102, "error": "access_denied", "error_msg": "refreshToken.discarded"}
    assert env.client.refresh(second["refresh_token"])["result"] == 1


def test_old_access_token_stays_valid_after_a_refresh(env: KsEnv) -> None:
    first = env.client.token_by_code(authorize(env))
    env.client.refresh(first["refresh_token"])
    env.clock.advance(HOUR)
    assert env.client.call("open.user.seller.get", {}, first["access_token"])["result"] == 1


def test_after_180_days_the_merchant_must_authorise_again(env: KsEnv) -> None:
    tokens = env.client.token_by_code(authorize(env))
    for _ in range(4):  # keep refreshing every 45 days: the expiry never moves
        env.clock.advance(45 * DAY - 10)
        tokens = env.client.refresh(tokens["refresh_token"])
        assert tokens["result"] == 1
    env.clock.advance(60)
    dead = env.client.refresh(tokens["refresh_token"])
    assert (dead["result"], dead["error"]) == (100200102, "access_denied")


def test_refresh_after_the_merchant_revoked_is_denied(env: KsEnv) -> None:
    tokens = env.client.token_by_code(authorize(env))
    env.world.revoke_authorization(env.app.app_key, env.shop_id)
    denied = env.client.refresh(tokens["refresh_token"])
    assert denied == {
        "result": 100200102,
        "error": "access_denied",
        "error_msg": "refreshToken.revokedAuthorization",
    }

"""Kuaishou sandbox: request signing, envelopes, gateway errors and rate limits.

Also holds the small helpers (``KsEnv``/``make_env``) the other ``test_kuaishou_*`` modules
share. Everything runs in-process (httpx WSGI transport) on a FakeClock; no database.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from sandbox.clock import FakeClock
from sandbox.kuaishou import KuaishouApp, grant_token
from sandbox.model import App, Order
from sandbox.seed import seed_default_world
from sandbox.world import OrderItemSpec, World
from tests.sandbox.refclients.kuaishou import KuaishouRefClient, sign_string, signature


@dataclass
class KsEnv:
    """A seeded Kuaishou world, the sandbox app behind an in-process client, and a token."""

    world: World
    clock: FakeClock
    app: App
    sandbox: KuaishouApp
    http: httpx.Client
    client: KuaishouRefClient
    shop_id: str
    token: str

    def now_ms(self) -> int:
        return int(self.clock.now() * 1000)

    def place(
        self,
        *specs: tuple[int, int],
        gift_of: dict[int, int] | None = None,
        pay: bool = True,
        post_fen: int = 0,
    ) -> Order:
        """An order in the first shop: ``specs`` are (sku index, qty); ``gift_of`` maps item → master item."""
        skus = self.world.skus(self.shop_id)
        items = [
            OrderItemSpec(skus[index].sku_id, qty, gift_of=(gift_of or {}).get(position))
            for position, (index, qty) in enumerate(specs)
        ]
        return self.world.create_order(
            shop_id=self.shop_id, buyer_id=1, items=items, pay=pay, post_fen=post_fen
        )

    def data(self, method: str, params: dict | None = None, *, http_method: str = "GET") -> dict:
        return self.client.data(method, params, self.token, http_method=http_method)

    def call(self, method: str, params: dict | None = None, *, http_method: str = "GET") -> dict:
        return self.client.call(method, params, self.token, http_method=http_method)


def make_env(
    tmp_path: Path, *, seed: int = 11, sign_method: str = "HMAC_SHA256", buyers: int = 40
) -> Iterator[KsEnv]:
    clock = FakeClock(start=1_735_700_000.0)
    world = World(tmp_path / "ks.sqlite3", seed=seed, clock=clock)
    seed_default_world(world, platforms=("kuaishou",), buyers=buyers)
    app = world.apps("kuaishou")[0]
    shop_id = world.shops("kuaishou")[0].shop_id
    sandbox = KuaishouApp(world)
    with httpx.Client(transport=httpx.WSGITransport(app=sandbox), base_url="http://kuaishou.sandbox") as http:
        client = KuaishouRefClient(
            app.app_key, app.app_secret, app.sign_secret, http=http, clock=clock.now, sign_method=sign_method
        )
        token = grant_token(world, app, shop_id).access_token
        yield KsEnv(world, clock, app, sandbox, http, client, shop_id, token)
    world.close()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[KsEnv]:
    yield from make_env(tmp_path)


# --------------------------------------------------------------------------- the reference algorithm itself


def test_reference_sign_string_sorts_present_keys_and_appends_the_secret() -> None:
    params = {"version": "1", "method": "open.order.detail", "appkey": "ks123", "param": '{"oid":1}', "timestamp": "1700000000000",
              "access_token": "tok", "signMethod": "MD5", "sign": "ignored"}  # fmt: skip
    text = sign_string(params, "S3cret")
    assert text == (
        'access_token=tok&appkey=ks123&method=open.order.detail&param={"oid":1}&signMethod=MD5'
        "&timestamp=1700000000000&version=1&signSecret=S3cret"
    )
    assert signature(params, "S3cret", "MD5") == hashlib.md5(text.encode()).hexdigest()  # noqa: S324
    assert signature(params, "S3cret", "HMAC_SHA256").endswith("=")  # Base64, not hex


# --------------------------------------------------------------------------- accepted calls


@pytest.mark.parametrize("sign_method", ["MD5", "HMAC_SHA256"])
@pytest.mark.parametrize("http_method", ["GET", "POST"])
def test_reference_client_is_accepted(tmp_path: Path, sign_method: str, http_method: str) -> None:
    for env in make_env(tmp_path, sign_method=sign_method):
        data = env.data("open.user.seller.get", {}, http_method=http_method)
        assert data["sellerId"] == int(env.shop_id)
        assert data["name"] == env.world.get_shop(env.shop_id).name
        order = env.place((0, 1))
        detail = env.data("open.order.detail", {"oid": int(order.lines[0].line_id)}, http_method=http_method)
        assert detail["orderBaseInfo"]["oid"] == int(order.lines[0].line_id)


def test_success_envelope_has_result_one_and_the_newer_fields(env: KsEnv) -> None:
    envelope = env.call("open.user.seller.get", {})
    assert envelope["result"] == 1 and envelope["error_msg"] == ""
    assert {"code", "msg", "sub_code", "sub_msg", "requestId", "data"} <= set(envelope)
    assert len(envelope["requestId"]) == 32


def test_post_with_system_parameters_in_the_query_and_param_in_the_body(env: KsEnv) -> None:
    """The doc asks to put (at least) ``param`` in the POST body; the rest may stay in the URL."""
    call = env.client.prepare("open.user.seller.get", {}, env.token, http_method="POST")
    body = {"param": call.params.pop("param")}
    response = env.http.post(call.path, params=call.params, data=body)
    assert response.json()["result"] == 1


def test_md5_signature_is_accepted_in_upper_case(tmp_path: Path) -> None:
    for env in make_env(tmp_path, sign_method="MD5"):
        call = env.client.prepare("open.user.seller.get", {}, env.token)
        call.params["sign"] = call.params["sign"].upper()
        assert env.client.send(call).json()["result"] == 1


# --------------------------------------------------------------------------- rejected calls


def _one_char_change(value: str) -> str:
    last = value[-1]
    return value[:-1] + ("0" if last != "0" else "1")


@pytest.mark.parametrize("sign_method", ["MD5", "HMAC_SHA256"])
@pytest.mark.parametrize(
    ("field", "expected_result"),
    [("access_token", 28), ("method", 28), ("param", 28), ("timestamp", 28), ("version", 28), ("sign", 28),
     ("signMethod", 28), ("appkey", 22)],
)  # fmt: skip
def test_one_character_change_of_a_signed_parameter_is_rejected(
    tmp_path: Path, sign_method: str, field: str, expected_result: int
) -> None:
    for env in make_env(tmp_path, sign_method=sign_method):
        order = env.place((0, 1))
        call = env.client.prepare("open.order.detail", {"oid": int(order.lines[0].line_id)}, env.token)
        if field == "param":
            call.params["param"] = call.params["param"].replace("}", " }")
        else:
            call.params[field] = _one_char_change(call.params[field])
        envelope = env.client.send(call).json()
        assert envelope["result"] == expected_result, envelope
        assert "data" not in envelope
        if expected_result == 28:
            assert "签名校验失败" in envelope["error_msg"]


def test_signature_is_checked_over_the_raw_param_string(env: KsEnv) -> None:
    """Equivalent JSON with another key order is a different string, hence a different signature."""
    order = env.place((0, 1))
    call = env.client.prepare("open.order.detail", {"oid": int(order.lines[0].line_id), "x": 1}, env.token)
    call.params["param"] = json.dumps({"x": 1, "oid": int(order.lines[0].line_id)}, separators=(",", ":"))
    assert env.client.send(call).json()["result"] == 28


def test_missing_sign_and_unknown_api_and_json_bodies_are_refused(env: KsEnv) -> None:
    call = env.client.prepare("open.user.seller.get", {}, env.token)
    del call.params["sign"]
    assert env.client.send(call).json()["result"] == 27
    unknown = env.client.prepare("open.no.such.api", {}, env.token)
    envelope = env.client.send(unknown).json()
    assert envelope["result"] == 14 and "open.no.such.api" in envelope["error_msg"]
    call = env.client.prepare("open.user.seller.get", {}, env.token)
    answer = env.http.post(call.path, json=call.params).json()
    assert answer["result"] == 13 and "x-www-form-urlencoded" in answer["error_msg"]


def test_stale_timestamp_and_wrong_path_are_refused(env: KsEnv) -> None:
    call = env.client.prepare("open.user.seller.get", {}, env.token)
    env.clock.advance(11 * 60)
    assert env.client.send(call).json()["result"] == 13
    call = env.client.prepare("open.user.seller.get", {}, env.token)
    call.path = "/open/order/detail"
    assert "method与请求路径不一致" in env.client.send(call).json()["error_msg"]


def test_token_without_the_api_scope_is_refused(env: KsEnv) -> None:
    narrow = grant_token(env.world, env.app, env.shop_id, scopes=("user_base", "merchant_item")).access_token
    envelope = env.client.call("open.order.cursor.list", {"orderViewStatus": 1, "pageSize": 10, "beginTime": env.now_ms() - 1000,
                                                         "endTime": env.now_ms(), "cursor": ""}, narrow)  # fmt: skip
    assert envelope["result"] == 25 and envelope["error_msg"] == "token中无scope权限"
    assert env.client.call("open.item.list.get", {}, narrow)["result"] == 1


def test_revoked_authorisation_answers_authorization_revoked(env: KsEnv) -> None:
    env.world.revoke_authorization(env.app.app_key, env.shop_id)
    envelope = env.call("open.user.seller.get", {})
    assert envelope == {**envelope, "result": 24, "error_msg": "AUTHORIZATION_REVOKED"}


# --------------------------------------------------------------------------- rate limits and faults


def test_qps_limit_answers_the_official_message(env: KsEnv) -> None:
    env.sandbox.faults.set("kuaishou", "/open/user/seller/get", qps=2, burst=2)
    results = [env.call("open.user.seller.get", {}) for _ in range(3)]
    assert [r["result"] for r in results[:2]] == [1, 1]
    assert results[2]["result"] == 1016
    assert (
        results[2]["error_msg"]
        == f"Exceed qps limit, KEY [apiId:open.user.seller.get;appkey:{env.app.app_key}], MAX_QPS [2.0]"
    )


def test_rate_limit_storm_uses_the_same_message_with_the_default_limit(env: KsEnv) -> None:
    env.sandbox.faults.set("kuaishou", "/open/order/detail", rate_limit_rate=1.0)
    envelope = env.call("open.order.detail", {"oid": 1})
    assert envelope["result"] == 1016
    assert (
        envelope["error_msg"]
        == f"Exceed qps limit, KEY [apiId:open.order.detail;appkey:{env.app.app_key}], MAX_QPS [300.0]"
    )


def test_service_error_fault_is_a_kuaishou_envelope(env: KsEnv) -> None:
    env.sandbox.faults.set("kuaishou", "*", error_rate=1.0)
    envelope = env.call("open.user.seller.get", {})
    assert envelope["result"] == 10 and envelope["error_msg"]

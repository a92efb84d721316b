"""Douyin request signing and gateway checks, exercised with the reference client (§1.2, §1.3)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import httpx
import pytest

from sandbox.clock import FakeClock
from sandbox.douyin import DouyinApp
from sandbox.model import App, Shop
from sandbox.world import World
from tests.sandbox.refclients.douyin import DouyinRefClient, PreparedCall, signature

SEARCH = {"page": 0, "size": 10, "order_by": "update_time", "order_asc": True}


def test_reference_client_signed_call_is_accepted(client: DouyinRefClient, token: dict) -> None:
    envelope = client.call("/order/searchList", SEARCH, token["access_token"])
    assert envelope["code"] == 10000
    assert envelope["msg"] == "success" and envelope["sub_code"] == ""
    assert set(envelope["data"]) == {"page", "size", "total", "shop_order_list"}
    assert envelope["log_id"]


def test_hand_computed_signature_vector_is_accepted(tmp_path) -> None:
    """A signature computed by hand from the documented string, not by any client code."""
    clock = FakeClock(start=1_700_000_000)
    world = World(tmp_path / "v.sqlite3", clock=clock)
    world.create_app(
        App(app_key="7012345678901234567", platform="douyin", name="vector", app_secret="s3cr3t")
    )
    text = "s3cr3tapp_key7012345678901234567methodorder.logisticsCompanyListparam_json{}timestamp1700000000v2s3cr3t"
    sign = hmac.new(b"s3cr3t", text.encode(), hashlib.sha256).hexdigest()
    assert sign == signature(
        "7012345678901234567", "s3cr3t", "order.logisticsCompanyList", "{}", "1700000000"
    )
    world.create_shop(Shop(shop_id="12345678", platform="douyin", name="示例旗舰店"))
    world.authorize("7012345678901234567", "12345678")
    token = world.issue_token("7012345678901234567", "12345678", access_ttl=3600, refresh_ttl=7200)
    with httpx.Client(transport=httpx.WSGITransport(app=DouyinApp(world)), base_url="http://dy") as http:
        answer = http.post(
            "/order/logisticsCompanyList",
            params={
                "app_key": "7012345678901234567",
                "method": "order.logisticsCompanyList",
                "timestamp": "1700000000",
                "v": "2",
                "sign_method": "hmac-sha256",
                "sign": sign,
                "access_token": token.access_token,
            },  # fmt: skip
            content=b"{}",
        ).json()
    assert answer["code"] == 10000
    assert {"zhongtong", "yuantong", "shunfeng"} <= {c["code"] for c in answer["data"]}


def _flip(text: str) -> str:
    """Change exactly one character (the last), keeping digits digits and hex hex."""
    last = text[-1]
    replacement = {"9": "8"}.get(last, "9" if last.isdigit() else ("a" if last != "a" else "b"))
    return text[:-1] + replacement


@pytest.mark.parametrize(
    ("field", "code", "sub_code"),
    [
        ("app_key", 40001, "isv.app-id-missing"),  # another 19-digit key: no such app
        ("method", 40003, "isv.signature-invalid"),
        ("param_json", 40003, "isv.signature-invalid"),
        ("timestamp", 40003, "isv.signature-invalid"),
        ("v", 40003, "isv.signature-invalid"),
        ("sign", 40003, "isv.signature-invalid"),
    ],
)
def test_one_character_change_of_a_signed_parameter_is_rejected(
    client: DouyinRefClient, token: dict, field: str, code: int, sub_code: str
) -> None:
    call = client.prepare("/order/searchList", SEARCH, token["access_token"])
    assert client.send(call).json()["code"] == 10000  # untouched, it passes
    if field == "param_json":
        tampered = PreparedCall(call.path, dict(call.query), call.body.replace('"size":10', '"size":11'))
    else:
        tampered = PreparedCall(call.path, {**call.query, field: _flip(call.query[field])}, call.body)
    answer = client.send(tampered).json()
    assert (answer["code"], answer["sub_code"]) == (code, sub_code), answer
    assert "data" not in answer


def test_timestamp_outside_tolerance_and_bad_format(
    client: DouyinRefClient, token: dict, clock: FakeClock
) -> None:
    call = client.prepare("/order/searchList", SEARCH, token["access_token"])
    clock.advance(20 * 60)
    assert client.send(call).json()["sub_code"] == "isv.timestamp-invalid"
    bad = PreparedCall(call.path, {**call.query, "timestamp": "17357x0000"}, call.body)
    assert client.send(bad).json()["sub_code"] == "isv.timestamp-format-error"


def test_access_token_is_not_signed_but_checked(client: DouyinRefClient, token: dict) -> None:
    call = client.prepare("/order/searchList", SEARCH, token["access_token"])
    call.query["access_token"] = _flip(call.query["access_token"])
    answer = client.send(call).json()
    assert (answer["code"], answer["sub_code"]) == (40003, "isv.access-token-no-existed")
    call.query.pop("access_token")
    assert client.send(call).json()["sub_code"] == "isv.access-token-missing"


def test_missing_sign_and_unknown_path(client: DouyinRefClient, token: dict) -> None:
    call = client.prepare("/order/searchList", SEARCH, token["access_token"])
    call.query.pop("sign")
    assert (client.send(call).json()["code"], client.send(call).json()["sub_code"]) == (
        40001,
        "isv.signature-missing",
    )
    unknown = client.call("/order/noSuchApi", {}, token["access_token"])
    assert (unknown["code"], unknown["sub_code"]) == (70000, "isp.api-service-off")


def test_non_canonical_body_is_accepted_when_signed_raw_or_canonical(
    client: DouyinRefClient, token: dict, clock: FakeClock
) -> None:
    raw = '{ "size": 10,  "page": 0, "order_by": "update_time", "remark": "中文<&>" }'
    canonical = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    ts = str(int(clock.now()))
    for signed_text in (raw, canonical):
        query = {"app_key": client.app_key, "method": "order.searchList", "timestamp": ts, "v": "2", "sign_method": "hmac-sha256",
                 "access_token": token["access_token"], "sign": signature(client.app_key, client.app_secret, "order.searchList", signed_text, ts)}  # fmt: skip
        answer = client.send(PreparedCall("/order/searchList", query, raw)).json()
        assert answer["code"] == 10000, answer


def test_md5_and_legacy_timestamp_and_param_json_in_query(
    client: DouyinRefClient, token: dict, clock: FakeClock
) -> None:
    md5_client = DouyinRefClient(
        client.app_key, client.app_secret, http=client.http, clock=clock.now, sign_method="md5"
    )
    assert md5_client.call("/order/searchList", SEARCH, token["access_token"])["code"] == 10000
    # Older style (DD-PY): "yyyy-MM-dd HH:mm:ss" (Asia/Shanghai), param_json in the query, no sign_method.
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(clock.now() + 8 * 3600))
    body = json.dumps(SEARCH, sort_keys=True, separators=(",", ":"))
    query = {"app_key": client.app_key, "method": "order.searchList", "timestamp": stamp, "v": "2", "param_json": body,
             "access_token": token["access_token"], "sign": signature(client.app_key, client.app_secret, "order.searchList", body, stamp)}  # fmt: skip
    answer = client.http.post("/order/searchList", params=query).json()
    assert answer["code"] == 10000, answer
    assert answer["err_no"] == 0 and answer["message"] == "success"  # legacy fields without the header


def test_new_style_errors_only_with_header(client: DouyinRefClient, token: dict) -> None:
    call = client.prepare("/order/searchList", {**SEARCH, "size": 500}, token["access_token"])
    answer = client.send(call).json()
    assert (answer["code"], answer["sub_code"]) == (40004, "isv.parameter-invalid")
    assert "err_no" not in answer
    call.headers.pop("x-open-no-old-err-code")
    legacy = client.send(call).json()
    assert legacy["err_no"] == 40004 and legacy["message"] == legacy["msg"]


def test_missing_permission_and_ip_whitelist(
    world: World, client: DouyinRefClient, token: dict, dy_app: App
) -> None:
    world.update_app(dy_app.app_key, permissions=["/order/searchList"])
    assert client.call("/order/searchList", SEARCH, token["access_token"])["code"] == 10000
    denied = client.call("/order/batchDecrypt", {"cipher_infos": []}, token["access_token"])
    assert (denied["code"], denied["sub_code"]) == (30001, "isv.app-permissions-insufficient")
    world.update_app(dy_app.app_key, permissions=["*"], ip_whitelist=["10.1.2.3"])
    blocked = client.call("/order/searchList", SEARCH, token["access_token"])
    assert blocked["code"] == 30002


def test_wrong_app_for_token(
    world: World, client: DouyinRefClient, token: dict, http: httpx.Client, clock: FakeClock
) -> None:
    other = world.create_app(
        App(app_key="7999999999999999999", platform="douyin", name="other", app_secret="x" * 36)
    )
    other_client = DouyinRefClient(other.app_key, other.app_secret, http=http, clock=clock.now)
    answer = other_client.call("/order/searchList", SEARCH, token["access_token"])
    assert (answer["code"], answer["sub_code"]) == (40003, "isv.access-token-invalid")


def test_malformed_business_parameters_get_a_platform_error(client: DouyinRefClient, token: dict) -> None:
    at = token["access_token"]
    for path, params in (
        ("/order/searchList", {"combine_status": [{"order_status": "paid"}]}),
        ("/order/searchList", {"combine_status": "2"}),
        ("/afterSale/operate", {"type": 201, "items": ["x"]}),
        ("/order/logisticsAddMultiPack", {"order_id": "1", "request_id": "r", "pack_list": "oops"}),
    ):
        answer = client.call(path, params, at)
        assert answer["code"] in (40004, 50002), (path, answer)

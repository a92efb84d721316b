"""Orders API: list with filters and keyset pages, one order, its events and snapshots, the
review actions with their errors, review rules, capabilities and the OpenAPI schema."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model

from channels import services as channel_services
from channels.types import CipherField, OrderStatus, Receiver
from orders import services
from orders.models import Order, ReviewRule
from orders.models import OrderStatus as S
from tenants.accounts.models import Role
from tenants.accounts.services import issue_api_token
from tests.conftest import make_user
from tests.orders.conftest import T0, channel_order, line


@pytest.fixture
def api(in_alpha, alpha_client):
    """``api(role)`` → a function calling the API as a user of that role (token auth)."""

    def as_role(role: str = Role.OWNER):
        if role == Role.OWNER:
            user = get_user_model().objects.get(username="alpha-owner")
        else:
            user = make_user(in_alpha, f"api-{role}", role)
        auth = {"HTTP_AUTHORIZATION": f"Token {issue_api_token(user=user)[1]}"}

        def call(method: str, path: str, data=None):
            send = getattr(alpha_client, method)
            if method in ("post", "put", "patch"):
                return send(path, data or {}, content_type="application/json", **auth)
            return send(path, data or {}, **auth)

        return call

    return as_role


def receiver(oid: str, phone: str = "138****8888") -> Receiver:
    return Receiver(
        CipherField("#name#", "张*", f"n-{oid}"),
        CipherField("$tel$", phone, f"p-{oid}"),
        CipherField("#addr#", "文***号", f"a-{oid}"),
        "浙江省",
        "杭州市",
        "西湖区",
    )


def ingest(store, oid: str, *, minutes: int = 0, phone: str = "138****8888", **kw) -> Order:
    co = channel_order(oid=oid, receiver=receiver(oid, phone), **kw)
    return services.ingest_channel_order(
        store=store, co=replace(co, created_at=T0 + timedelta(minutes=minutes))
    )


def oids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["platform_order_id"] for row in response.json()["results"]]


def test_list_filters_and_masks_only(api, store, skus):
    ingest(store, "A1", minutes=1, lines=(line(1, "CAP-RED", price=1990),), phone="139****1234")
    ingest(store, "A2", minutes=2, buyer_remark="周末送")
    ingest(store, "A3", minutes=3, lines=(line(1, "TS-BLK-M", qty=4),))
    call = api(Role.VIEWER)

    body = call("get", "/api/v1/orders/").json()
    assert [r["platform_order_id"] for r in body["results"]] == ["A3", "A2", "A1"]
    row = body["results"][2]
    assert row["paid_fen"] == 1990 and row["lines"][0]["merchant_code"] == "CAP-RED"
    assert row["receiver_phone_mask"] == "139****1234" and row["status"] == "approved"
    assert not [key for key in row if "cipher" in key or key.endswith("_index")]
    assert "#name#" not in str(body)

    assert oids(call("get", "/api/v1/orders/", {"status": "held"})) == ["A3", "A2"]
    assert oids(call("get", "/api/v1/orders/", {"merchant_code": "CAP-RED"})) == ["A1"]
    assert oids(call("get", "/api/v1/orders/", {"q": "1234"})) == ["A1"]
    assert oids(call("get", "/api/v1/orders/", {"q": "A1,A3"})) == ["A3", "A1"]
    assert oids(call("get", "/api/v1/orders/", {"paid_min_fen": 9900, "paid_max_fen": 9900})) == ["A2"]
    assert oids(call("get", "/api/v1/orders/", {"has_buyer_remark": "true"})) == ["A2"]
    assert oids(call("get", "/api/v1/orders/", {"flags": "out_of_stock"})) == ["A3"]
    assert oids(call("get", "/api/v1/orders/", {"platform": "kuaishou"})) == []
    placed = (T0 + timedelta(minutes=2)).isoformat()
    assert oids(call("get", "/api/v1/orders/", {"placed_after": placed})) == ["A3", "A2"]
    assert oids(call("get", "/api/v1/orders/", {"placed_before": placed, "store": store.pk})) == ["A1"]

    bad = call("get", "/api/v1/orders/", {"status": "nonsense", "paid_min_fen": "x"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid"
    assert {"status", "paid_min_fen"} <= set(bad.json()["error"]["details"])


def path_of(link: str | None) -> str | None:
    return link[link.index("/api/") :] if link else None


def test_keyset_pages_follow_next_and_previous_links(api, store, skus):
    for n in range(7):
        ingest(store, f"P{n}", minutes=n // 2)  # pairs placed at the same minute
    expected = list(Order.objects.order_by("-placed_at", "-id").values_list("platform_order_id", flat=True))
    call = api(Role.VIEWER)
    url, seen, pages = "/api/v1/orders/?page_size=3", [], []
    while url:
        body = call("get", url).json()
        pages.append([r["platform_order_id"] for r in body["results"]])
        seen += pages[-1]
        if len(pages) == 1:
            ingest(store, "LATE", minutes=99)  # arrives while paging: never shifts later pages
        url = path_of(body["next"])
        previous = path_of(body["previous"])
    assert seen == expected and [len(p) for p in pages] == [3, 3, 1]
    back = call("get", previous).json()
    assert [r["platform_order_id"] for r in back["results"]] == pages[1]
    assert call("get", "/api/v1/orders/?cursor=n12x").status_code == 404


def test_detail_events_and_snapshots(api, store, skus):
    co = channel_order(oid="D1", status=OrderStatus.UNPAID, receiver=receiver("D1"))
    paid = replace(
        co, status=OrderStatus.PAID, platform_status="2", updated_at=co.updated_at + timedelta(minutes=1)
    )
    from channels.models import OrderSnapshot

    for version, raw in ((co, {"v": 1}), (paid, {"v": 2})):
        channel_services.store_order_version(store=store, order=version, payload=raw, source="push")
    for snapshot in OrderSnapshot.objects.filter(platform_order_id="D1").order_by("platform_updated_at"):
        services.ingest_snapshots(snapshot_ids=[snapshot.pk])
    order = Order.objects.get(platform_order_id="D1")
    call = api(Role.FINANCE)

    detail = call("get", f"/api/v1/orders/{order.pk}/").json()
    assert detail["status"] == "approved" and detail["lines"][0]["quantity"] == 1
    assert detail["fulfilments"][0]["lines"][0]["platform_order_id"] == "D1"
    events = call("get", f"/api/v1/orders/{order.pk}/events/").json()
    assert events[0]["kind"] == "created"
    assert {
        "kind": "status_changed",
        "before": {"status": "pending_payment"},
        "after": {"status": "approved"},
    }.items() <= next(e for e in events if e["kind"] == "status_changed").items()
    assert call("get", f"/api/v1/orders/{order.pk}/snapshots/").status_code == 403  # raw data: own capability
    snapshots = api(Role.OPERATOR)("get", f"/api/v1/orders/{order.pk}/snapshots/").json()
    assert [s["payload"] for s in snapshots] == [{"v": 2}, {"v": 1}]
    assert [s["applied"] for s in snapshots] == [True, False]
    assert call("get", "/api/v1/orders/999999/").status_code == 404


def test_actions_and_their_errors(api, store, skus):
    order = ingest(store, "X1")
    call = api(Role.OPERATOR)
    url = f"/api/v1/orders/{order.pk}"

    missing = call("post", f"{url}/hold/", {})
    assert missing.status_code == 400 and "reason" in missing.json()["error"]["details"]
    held = call("post", f"{url}/hold/", {"reason": "核对地址"})
    assert (
        held.status_code == 200
        and held.json()["status"] == "held"
        and held.json()["hold_reasons"] == ["manual"]
    )
    released = call("post", f"{url}/release/")
    assert released.json()["status"] == "approved"
    conflict = call("post", f"{url}/approve/")
    assert conflict.status_code == 409
    error = conflict.json()["error"]
    assert error["code"] == "invalid_transition"
    assert error["details"] == {"from_status": "approved", "to_status": "approved"}
    cancelled = call("post", f"{url}/cancel/", {"reason": "重复下单"})
    assert cancelled.json()["status"] == "cancelled"
    assert call("post", f"{url}/cancel/", {"reason": "again"}).status_code == 409
    assert (
        Order.objects.get(pk=order.pk)
        .events.filter(message="重复下单", actor__username="api-operator")
        .exists()
    )

    short = ingest(store, "X2", lines=(line(1, "TS-BLK-M", qty=5),))
    assert short.status == S.HELD
    refused = call("post", f"/api/v1/orders/{short.pk}/approve/")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid"


def test_viewer_reads_but_cannot_act(api, store, skus):
    order = ingest(store, "V1")
    call = api(Role.VIEWER)
    assert call("get", f"/api/v1/orders/{order.pk}/").status_code == 200
    for action, data in (
        ("approve", {}),
        ("hold", {"reason": "x"}),
        ("release", {}),
        ("cancel", {"reason": "x"}),
    ):
        response = call("post", f"/api/v1/orders/{order.pk}/{action}/", data)
        assert response.status_code == 403 and response.json()["error"]["code"] == "permission_denied"
    assert call("patch", "/api/v1/review-rules/buyer_remark/", {"enabled": False}).status_code == 403
    assert Order.objects.get(pk=order.pk).status == S.APPROVED


def test_review_rules_list_and_update(api, store, skus):
    call = api(Role.OPERATOR)
    rules = {r["kind"]: r for r in call("get", "/api/v1/review-rules/").json()}
    assert set(rules) == set(ReviewRule.Kind.values)
    assert rules["auto_approve"]["enabled"] and not rules["amount_over"]["enabled"]
    assert rules["buyer_remark"]["label"]

    refused = call("patch", "/api/v1/review-rules/amount_over/", {"enabled": True})
    assert refused.status_code == 400 and "threshold_fen" in refused.json()["error"]["details"]
    updated = call("patch", "/api/v1/review-rules/amount_over/", {"enabled": True, "threshold_fen": 5000})
    assert updated.status_code == 200 and updated.json()["threshold_fen"] == 5000
    assert call("put", "/api/v1/review-rules/buyer_remark/", {"enabled": False}).json()["enabled"] is False
    assert call("get", "/api/v1/review-rules/amount_over/").json()["threshold_fen"] == 5000
    assert call("patch", "/api/v1/review-rules/nope/", {"enabled": True}).status_code == 404

    order = ingest(store, "R1", buyer_remark="加急")  # ¥99.00 > ¥50.00, the remark rule is off
    assert order.status == S.HELD and order.hold_reasons == ["amount_over"]


def test_schema_documents_the_orders_api(api):
    call = api(Role.VIEWER)
    response = call("get", "/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    for path in (
        "/api/v1/orders/",
        "/api/v1/orders/{id}/",
        "/api/v1/orders/{id}/events/",
        "/api/v1/orders/{id}/snapshots/",
        "/api/v1/orders/{id}/approve/",
        "/api/v1/orders/{id}/hold/",
        "/api/v1/orders/{id}/release/",
        "/api/v1/orders/{id}/cancel/",
        "/api/v1/review-rules/",
        "/api/v1/review-rules/{kind}/",
    ):
        assert path in paths, path
    params = {p["name"] for p in paths["/api/v1/orders/"]["get"]["parameters"]}
    assert {
        "status",
        "store",
        "platform",
        "placed_after",
        "placed_before",
        "merchant_code",
        "paid_min_fen",
        "paid_max_fen",
        "has_buyer_remark",
        "has_seller_remark",
        "flags",
        "q",
        "cursor",
        "page_size",
    } <= params
    assert "409" in paths["/api/v1/orders/{id}/approve/"]["post"]["responses"]
    hold_body = paths["/api/v1/orders/{id}/hold/"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    assert hold_body["$ref"].endswith("/Reason")


def test_issue12_d4_snapshots_are_shown_without_ciphertexts_open_ids_or_nicknames(api, store, skus):
    """The snapshots action shows what the platform sent, minus what nobody reading it needs:
    ciphertexts (plaintext only through the audited decrypt), buyer open ids and nicknames."""
    cipher = "#张三#AbCdEfGhIjKlMnOpQrStUvWx0123456789#1##"
    raw = {
        "shop_order_id": "D12",
        "doudian_open_id": "1@#buyer-open-id-value",
        "user_nick": "小明的店铺粉丝",
        "post_addr": {"province": {"name": "浙江省"}, "encrypt_detail": cipher, "detail": "西湖区**"},
        "sku_order_list": [{"sku_id": "9", "skuNick": "白色 L", "encrypt_post_tel": cipher}],
    }
    co = channel_order(oid="D12", status=OrderStatus.PAID)
    channel_services.store_order_version(store=store, order=co, payload=raw, source="push")
    from channels.models import OrderSnapshot

    services.ingest_snapshots(snapshot_ids=list(OrderSnapshot.objects.values_list("pk", flat=True)))
    order = Order.objects.get(platform_order_id="D12")

    [shown] = api(Role.OPERATOR)("get", f"/api/v1/orders/{order.pk}/snapshots/").json()
    text = str(shown["payload"])
    assert cipher not in text and "buyer-open-id-value" not in text and "小明的店铺粉丝" not in text
    assert shown["payload"]["post_addr"]["encrypt_detail"] == "«密文»"
    assert shown["payload"]["doudian_open_id"] == shown["payload"]["user_nick"] == "«已隐藏»"
    # what operators do need stays: regions, masks, the product's own names
    assert shown["payload"]["post_addr"]["province"] == {"name": "浙江省"}
    assert shown["payload"]["post_addr"]["detail"] == "西湖区**"
    assert shown["payload"]["sku_order_list"][0]["skuNick"] == "白色 L"
    stored = OrderSnapshot.objects.get(platform_order_id="D12").payload
    assert stored["post_addr"]["encrypt_detail"] == cipher  # the ciphertext itself is kept

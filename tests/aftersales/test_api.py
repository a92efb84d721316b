"""The merchant's after-sales API (/api/v1/after-sales/, /api/v1/after-sale-policy/): who may
use it (aftersales.manage: owner and operator; viewer and warehouse refused), tenant sealing
(another tenant's after-sale is 404), filters and detail, answers through the sandbox's platform
over real HTTP (one platform call per answer, Idempotency-Key replays), refusals as 400."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from django_tenants.utils import schema_context

from aftersales.models import AfterSale, AfterSaleAction, AfterSaleEvent
from channels.models import Store
from tenants.accounts.models import Role
from tenants.accounts.services import issue_api_token
from tests.aftersales.actions_rig import apply, operate_calls, world_status
from tests.conftest import make_user
from tests.logistics.waybill_world import connect_shops, start_sandbox

Q_ = AfterSale.Queue
BASE = "/api/v1/after-sales/"


@pytest.fixture
def api(in_alpha, alpha_client):
    """``api(role)`` → a function calling the API as a user of that role (token auth)."""

    def as_role(role: str = Role.OWNER):
        if role == Role.OWNER:
            user = get_user_model().objects.get(username="alpha-owner")
        else:
            user = get_user_model().objects.filter(username=f"as-api-{role}").first() or make_user(
                in_alpha, f"as-api-{role}", role
            )
        auth = {"HTTP_AUTHORIZATION": f"Token {issue_api_token(user=user)[1]}"}

        def call(method: str, path: str, data=None, **headers):
            send = getattr(alpha_client, method)
            if method in ("post", "put", "patch"):
                return send(path, data or {}, content_type="application/json", **auth, **headers)
            return send(path, data or {}, **auth, **headers)

        return call

    return as_role


def make(store, n: int, **fields) -> AfterSale:
    now = timezone.now()
    values = {
        "platform": store.platform,
        "platform_after_sale_id": f"AS-{n}",
        "platform_order_id": f"ORD-{n}",
        "type": AfterSale.Type.REFUND_UNSHIPPED,
        "queue": Q_.PENDING,
        "channel_status": "waiting_merchant",
        "platform_status": "6",
        "refund_fen": 1000 + n,
        "platform_updated_at": now,
        "applied_at": now,
        **fields,
    }
    return AfterSale.objects.create(store=store, **values)


@pytest.fixture
def store(in_alpha):
    return Store.objects.create(platform="douyin", platform_shop_id="4101", name="抖店旗舰店", app_key="k")


def test_viewer_and_warehouse_are_refused_owner_and_operator_allowed(api, store):
    row = make(store, 1)
    for role in (Role.VIEWER, Role.WAREHOUSE):
        call = api(role)
        assert call("get", BASE).status_code == 403
        assert call("get", f"{BASE}{row.pk}/").status_code == 403
        assert call("post", f"{BASE}{row.pk}/approve/").status_code == 403
        assert call("get", "/api/v1/after-sale-policy/").status_code == 403
        assert call("put", "/api/v1/after-sale-policy/", {"enabled": True, "max_fen": 1}).status_code == 403
    assert not AfterSaleAction.objects.exists()
    for role in (Role.OWNER, Role.OPERATOR):
        assert api(role)("get", BASE).status_code == 200
        assert api(role)("get", f"{BASE}{row.pk}/").status_code == 200


def test_another_tenants_after_sale_is_not_found(api, store, beta):
    with schema_context(beta.schema_name):
        theirs_store = Store.objects.create(
            platform="douyin", platform_shop_id="4102", name="别家", app_key="k"
        )
        theirs = make(theirs_store, 2)
    AfterSale.objects.filter(pk=theirs.pk).delete()  # ids are per schema: ours must not share it
    make(store, 1)
    call = api()
    assert call("get", f"{BASE}{theirs.pk}/").status_code == 404
    assert call("post", f"{BASE}{theirs.pk}/approve/").status_code == 404
    assert call("post", f"{BASE}{theirs.pk}/intercept/").status_code == 404
    assert call("post", f"{BASE}{theirs.pk}/reject/", {"reason_code": "1"}).status_code == 404
    assert call("post", "/api/v1/after-sales/actions/999999/retry/").status_code == 404
    assert call("get", f"{BASE}reject-reasons/?store={theirs_store.pk + 1000}").status_code == 404
    listed = call("get", BASE).json()["results"]
    assert [r["platform_after_sale_id"] for r in listed] == ["AS-1"]
    with schema_context(beta.schema_name):
        assert AfterSale.objects.get(pk=theirs.pk).queue == Q_.PENDING  # untouched
        assert not AfterSaleAction.objects.exists()


def test_list_filters_and_deadline_ordering(api, store):
    soon = make(store, 1, deadline=timezone.now() + timedelta(hours=1))
    later = make(store, 2, deadline=timezone.now() + timedelta(hours=5))
    make(store, 3, queue=Q_.AWAITING_RETURN, return_tracking_no="YT123", type=AfterSale.Type.RETURN_REFUND)
    make(store, 4)  # no deadline
    call = api()

    def ids(query: str) -> list[str]:
        response = call("get", BASE + query)
        assert response.status_code == 200, response.content
        return [r["platform_after_sale_id"] for r in response.json()["results"]]

    assert ids("?queue=awaiting_return") == ["AS-3"]
    assert ids("?q=YT123") == ["AS-3"]
    assert ids("?q=ORD-2") == ["AS-2"]
    assert ids("?ordering=deadline") == [soon.platform_after_sale_id, later.platform_after_sale_id]
    assert ids(f"?store={store.pk}&type=refund_unshipped") == ["AS-4", "AS-2", "AS-1"]
    assert call("get", BASE + "?queue=nonsense").status_code == 400
    first = call("get", BASE + "?ordering=deadline")
    assert 0 < first.json()["results"][0]["seconds_left"] <= 3600


def test_policy_get_and_put_validated(api, store):
    call = api()
    assert call("get", "/api/v1/after-sale-policy/").json()["enabled"] is False
    saved = call(
        "put", "/api/v1/after-sale-policy/", {"enabled": True, "max_fen": 3000, "store_ids": [store.pk]}
    )
    assert saved.status_code == 200, saved.content
    assert saved.json() | {"updated_at": None} == {
        "enabled": True,
        "max_fen": 3000,
        "unshipped_only": True,
        "store_ids": [store.pk],
        "updated_by": "alpha-owner",
        "updated_at": None,
    }
    bad = call("put", "/api/v1/after-sale-policy/", {"enabled": True, "max_fen": 100, "store_ids": [987654]})
    assert bad.status_code == 400 and "store_ids" in bad.json()["error"]["details"]
    assert call("put", "/api/v1/after-sale-policy/", {"enabled": "yes", "max_fen": 1}).status_code == 400
    assert call("get", "/api/v1/after-sale-policy/").json()["max_fen"] == 3000


def test_refused_by_the_queue_is_400_in_the_error_envelope(api, store):
    closed = make(store, 1, queue=Q_.CLOSED)
    response = api()("post", f"{BASE}{closed.pk}/approve/")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert not AfterSaleAction.objects.exists()
    assert api()("post", f"{BASE}{closed.pk}/reject/", {"reason_code": ""}).status_code == 400
    assert api()("get", f"{BASE}reject-reasons/").status_code == 400  # which shop?
    assert api()("get", f"{BASE}reject-reasons/?store=987654").status_code == 404


# --- through the platform ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = start_sandbox(tmp_path_factory.mktemp("as-api") / "world.sqlite3", seed=1717)
    yield server
    server.stop()
    server.world.close()


@pytest.fixture
def shops(server, in_alpha, settings):
    server.faults.clear()
    for platform in ("douyin", "kuaishou", "wechat"):
        server.faults.set(platform, "*", qps=0)
    return connect_shops(server)


def test_approve_through_the_api_is_one_platform_call_and_replays_by_idempotency_key(api, shops):
    after_sale = apply(shops, "douyin", "refund_unshipped")
    call = api(Role.OPERATOR)
    before = shops.world.last_call_id()

    first = call("post", f"{BASE}{after_sale.pk}/approve/", {}, HTTP_IDEMPOTENCY_KEY="approve-1")
    replay = call("post", f"{BASE}{after_sale.pk}/approve/", {}, HTTP_IDEMPOTENCY_KEY="approve-1")
    again = call("post", f"{BASE}{after_sale.pk}/approve/", {})  # a double click without a key

    assert first.status_code == 200, first.content
    assert first.json()["status"] == "done" and first.json()["actor"] == "as-api-operator"
    assert replay.json() == first.json() and replay["Idempotent-Replayed"] == "true"
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert operate_calls(shops, "douyin", after_id=before) == 1
    assert world_status(shops, after_sale) == "success"

    detail = call("get", f"{BASE}{after_sale.pk}/").json()
    assert [a["kind"] for a in detail["actions"]] == ["approve"]
    assert "action_approve" in [e["kind"] for e in detail["events"]]
    assert detail["platform_view"]["platform_after_sale_id"] == after_sale.platform_after_sale_id
    assert detail["lines"] and detail["lines"][0]["quantity"] >= 1


def test_reject_with_the_platforms_reasons_and_retry_of_a_refused_answer(api, shops):
    after_sale = apply(shops, "douyin", "refund_unshipped")
    call = api()
    reasons = call("get", f"{BASE}reject-reasons/?store={after_sale.store_id}")
    assert reasons.status_code == 200
    code = next(r["code"] for r in reasons.json() if not r["needs_evidence"])
    addresses = call("get", f"{BASE}return-addresses/?store={after_sale.store_id}")
    assert addresses.status_code == 200 and any(a["is_default"] for a in addresses.json())

    assert call("post", f"{BASE}{after_sale.pk}/reject/", {"reason_code": "nope"}).status_code == 400
    shops.world.close_aftersale(after_sale.platform_after_sale_id)  # the buyer withdrew meanwhile
    refused = call("post", f"{BASE}{after_sale.pk}/reject/", {"reason_code": code, "reason": "协商一致"})
    assert refused.status_code == 200 and refused.json()["status"] == "failed" and refused.json()["error"]

    retried = call("post", f"/api/v1/after-sales/actions/{refused.json()['id']}/retry/")
    assert retried.status_code == 200 and retried.json()["id"] == refused.json()["id"]
    assert retried.json()["status"] == "failed"  # refused again, still visible
    assert AfterSaleEvent.objects.filter(after_sale=after_sale, kind="action_failed").count() == 2


def test_bulk_approve_through_the_api_lists_the_refused(api, shops):
    good = apply(shops, "douyin", "refund_unshipped")
    shut = apply(shops, "douyin", "refund_unshipped")
    AfterSale.objects.filter(pk=shut.pk).update(queue=Q_.CLOSED)
    before = shops.world.last_call_id()

    response = api()("post", f"{BASE}bulk-approve/", {"ids": [good.pk, shut.pk]})

    assert response.status_code == 200, response.content
    body = response.json()
    assert [a["after_sale"] for a in body["approved"]] == [good.pk]
    assert [r["id"] for r in body["refused"]] == [shut.pk] and body["refused"][0]["reason"]
    assert operate_calls(shops, "douyin", after_id=before) == 1
    assert api()("post", f"{BASE}bulk-approve/", {"ids": []}).status_code == 400

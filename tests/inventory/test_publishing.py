"""``inventory.publishing.publish_goods`` (商品铺货) against the sandbox's three platforms.

One seeded world serves a Douyin, a Kuaishou and a WeChat shop in-process (httpx WSGI
transport); the shops are connected to tenant alpha the way a merchant connects them (OAuth
code exchange; WeChat's self-use app), and ``connector_factory`` hands ``publish_goods`` the
stores' own connectors over that transport.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from channels import services as channel_services
from channels.connectors.base import RetryPolicy
from channels.models import Store
from inventory import publishing, services, sync
from inventory.models import Goods, Listing, Sku, StockRule
from tests.channels.test_publish_product import PLATFORMS, Sandbox, make_sandbox, shop_secrets

IMAGE = "https://img.example.invalid/tee.jpg"


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    box = make_sandbox(tmp_path)
    yield box
    box.world.close()


@pytest.fixture
def stores(sandbox: Sandbox, in_alpha) -> dict[str, Store]:
    connected = {}
    for platform in PLATFORMS:
        app = sandbox.app_for(platform)
        wechat = platform == "wechat"
        channel_services.register_app(
            platform=platform,
            app_key=app.app_key,
            secrets=shop_secrets(app),
            **({"tenant": in_alpha} if wechat else {}),
        )
        connector = channel_services.unbound_connector(
            platform=platform, app_key=app.app_key, http=sandbox.http(platform), now=sandbox.now
        )
        shop_id = sandbox.shop_id(platform)
        if wechat:
            grant = connector.self_use_token(platform_shop_id=shop_id)
        else:
            grant = connector.exchange_code(code=sandbox.world.create_oauth_code(app.app_key, shop_id).code)
        connected[platform] = channel_services.connect_store(
            platform=platform,
            app_key=app.app_key,
            grant=grant,
            auth_mode=Store.AuthMode.SELF_USE if wechat else Store.AuthMode.OAUTH,
        )
    return connected


def factory(sandbox: Sandbox):
    connector_for = channel_services.connector_for  # the real one, even when a test patches it

    def make(store: Store):
        return connector_for(
            store, http=sandbox.http(store.platform), now=sandbox.now, retry=RetryPolicy(sleep=lambda s: None)
        )

    return make


@pytest.fixture
def goods(in_alpha) -> Goods:
    goods = Goods.objects.create(name="纯棉圆领T恤", category="T恤", images=[IMAGE])
    for code, spec, cost, on_hand in (
        ("PUB-TEE-WHT-M", "颜色:白色;尺码:M", 2000, 40),
        ("PUB-TEE-WHT-L", "颜色:白色;尺码:L", 2000, 10),
        ("PUB-TEE-BLK-L", "颜色:黑色;尺码:L", 2500, 0),
    ):
        sku = Sku.objects.create(
            goods=goods, merchant_code=code, name=f"T恤 {spec}", spec=spec, cost_fen=cost
        )
        if on_hand:
            services.receive_stock(sku=sku, quantity=on_hand, reason="opening stock")
    return goods


def test_publishing_to_three_shops_creates_products_records_listings_and_pushes_the_rule(
    sandbox: Sandbox, stores: dict[str, Store], goods: Goods, monkeypatch
):
    enqueued: list[int] = []
    monkeypatch.setattr(sync, "enqueue_listing_push", enqueued.append)
    # Douyin publishes half of the available stock, Kuaishou keeps 5 back, WeChat all of it.
    StockRule.objects.create(store=stores["douyin"], percent=50)
    StockRule.objects.create(store=stores["kuaishou"], safety=5)
    skus = {s.merchant_code: s for s in goods.skus.all()}
    prices = {skus["PUB-TEE-BLK-L"].pk: 7900}

    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        results = publishing.publish_goods(
            goods=goods,
            stores=list(stores.values()),
            prices=prices,
            markup_percent=250,
            connector_factory=factory(sandbox),
        )
    assert [(r.platform, r.ok, r.error) for r in results] == [(p, True, "") for p in PLATFORMS]

    expected_price = {"PUB-TEE-WHT-M": 5000, "PUB-TEE-WHT-L": 5000, "PUB-TEE-BLK-L": 7900}
    expected_stock = {
        "douyin": {"PUB-TEE-WHT-M": 20, "PUB-TEE-WHT-L": 5, "PUB-TEE-BLK-L": 0},
        "kuaishou": {"PUB-TEE-WHT-M": 35, "PUB-TEE-WHT-L": 5, "PUB-TEE-BLK-L": 0},
        "wechat": {"PUB-TEE-WHT-M": 40, "PUB-TEE-WHT-L": 10, "PUB-TEE-BLK-L": 0},
    }
    for result in results:
        store = stores[result.platform]
        product = sandbox.world.get_product(result.platform_product_id)
        assert product.shop_id == store.platform_shop_id and product.title == "纯棉圆领T恤"
        world_skus = {s.code: s for s in product.skus}
        assert {code: s.price_fen for code, s in world_skus.items()} == expected_price
        assert {code: s.stock for code, s in world_skus.items()} == expected_stock[result.platform]
        listings = Listing.objects.filter(store=store).select_related("sku")
        assert sorted(result.listing_ids) == sorted(x.pk for x in listings)
        for listing in listings:
            assert listing.match == Listing.Match.MATCHED
            assert listing.sku.merchant_code == listing.merchant_code
            assert listing.platform_sku_id == world_skus[listing.merchant_code].sku_id
            assert listing.platform_product_id == result.platform_product_id
            assert listing.push_state == Listing.PushState.PENDING
    assert sorted(enqueued) == sorted(pk for r in results for pk in r.listing_ids)

    # The merchant's stock moved before the worker ran: the first push sets the rule's number.
    services.adjust_stock(sku=skus["PUB-TEE-WHT-M"], delta=-20, reason="damaged")
    connectors: dict = {}
    for result in results:
        make = factory(sandbox)
        for listing_id in result.listing_ids:
            outcome = sync.push_listing(
                listing_id=listing_id, connector=make(stores[result.platform]), connectors=connectors
            )
            assert outcome.error == ""
    rule_now = {"douyin": 10, "kuaishou": 15, "wechat": 20}
    for platform, qty in rule_now.items():
        listing = Listing.objects.get(store=stores[platform], merchant_code="PUB-TEE-WHT-M")
        assert (listing.push_state, listing.pushed_qty) == (Listing.PushState.IN_SYNC, qty)
        assert sandbox.world.get_sku(listing.platform_sku_id).stock == qty


def test_a_refusal_on_one_shop_leaves_the_others_published_and_is_reported(
    sandbox: Sandbox, stores: dict[str, Store], goods: Goods
):
    # Kuaishou refuses titles longer than 30 characters; the other two accept this one.
    title = "纯棉圆领T恤男女同款夏季宽松百搭基础款短袖上衣打底衫多色可选新款"
    assert len(title) > 30
    results = publishing.publish_goods(
        goods=goods,
        stores=list(stores.values()),
        markup_percent=200,
        title=title,
        connector_factory=factory(sandbox),
    )
    by = {r.platform: r for r in results}
    assert by["douyin"].ok and by["wechat"].ok
    assert not by["kuaishou"].ok and "30" in by["kuaishou"].error and not by["kuaishou"].outcome_unknown
    assert not Listing.objects.filter(store=stores["kuaishou"]).exists()
    assert Listing.objects.filter(store=stores["douyin"]).count() == 3
    assert Listing.objects.filter(store=stores["wechat"]).count() == 3


def test_a_lost_answer_is_reported_as_unknown_and_not_retried(
    sandbox: Sandbox, stores: dict[str, Store], goods: Goods
):
    sandbox.faults.set("wechat", "/channels/ec/product/add", error_rate=1.0)
    results = publishing.publish_goods(
        goods=goods,
        stores=[stores["wechat"], stores["douyin"]],
        markup_percent=200,
        connector_factory=factory(sandbox),
    )
    assert [r.ok for r in results] == [False, True]
    assert results[0].outcome_unknown and results[0].error
    assert sandbox.calls_to("wechat") == 1


def test_publishing_the_same_goods_to_a_shop_twice_is_refused(
    sandbox: Sandbox, stores: dict[str, Store], goods: Goods
):
    first = publishing.publish_goods(
        goods=goods, stores=[stores["douyin"]], markup_percent=200, connector_factory=factory(sandbox)
    )
    assert first[0].ok
    products_before = len(sandbox.world.products(stores["douyin"].platform_shop_id, limit=10**6)[1])
    again = publishing.publish_goods(
        goods=goods,
        stores=[stores["douyin"], stores["kuaishou"]],
        markup_percent=200,
        connector_factory=factory(sandbox),
    )
    assert not again[0].ok and ("already listed" in again[0].error.lower() or "已" in again[0].error)
    assert again[1].ok
    assert len(sandbox.world.products(stores["douyin"].platform_shop_id, limit=10**6)[1]) == products_before


def test_a_missing_price_or_image_refuses_the_whole_request(
    stores: dict[str, Store], goods: Goods, sandbox: Sandbox
):
    with pytest.raises(publishing.PublishError):
        publishing.publish_goods(
            goods=goods, stores=list(stores.values()), connector_factory=factory(sandbox)
        )
    goods.images = []
    goods.save()
    with pytest.raises(publishing.PublishError):
        publishing.publish_goods(
            goods=goods, stores=list(stores.values()), markup_percent=200, connector_factory=factory(sandbox)
        )
    assert not Listing.objects.exists()


PASSWORD = "Staff-pass-2026"


def login(tenant, client, role: str):
    from tests.conftest import make_user

    make_user(tenant, f"pub-{role}", role, PASSWORD)
    assert (
        client.post("/accounts/login/", {"username": f"pub-{role}", "password": PASSWORD}).status_code == 302
    )
    return client


def test_the_publish_page_prefills_prices_and_shows_per_shop_results(
    sandbox: Sandbox, stores: dict[str, Store], goods: Goods, alpha, alpha_client, monkeypatch
):
    monkeypatch.setattr(publishing.channel_services, "connector_for", factory(sandbox))
    client = login(alpha, alpha_client, "operator")
    url = f"/inventory/goods/{goods.pk}/publish/"
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'value="40.00"' in html  # cost 20.00 × 2
    assert "铺货" in html or "Publish" in html
    skus = {s.merchant_code: s for s in goods.skus.all()}
    form = {"stores": [stores["douyin"].pk, stores["wechat"].pk], "title": goods.name, "images": IMAGE}
    form.update({f"price-{s.pk}": "59.90" for s in skus.values()})
    done = client.post(url, form)
    assert done.status_code == 200
    assert Listing.objects.filter(store=stores["douyin"]).count() == 3
    assert f'data-testid="publish-result-{stores["wechat"].pk}"' in done.content.decode()
    product = sandbox.world.get_product(
        Listing.objects.filter(store=stores["wechat"]).first().platform_product_id
    )
    assert {s.price_fen for s in product.skus} == {5990}
    # the shops now carry the goods: they cannot be chosen again
    assert client.post(url, {**form, "stores": [stores["douyin"].pk]}).status_code == 200
    assert Listing.objects.filter(store=stores["douyin"]).count() == 3


def test_viewers_cannot_publish(goods: Goods, alpha, alpha_client):
    client = login(alpha, alpha_client, "viewer")
    assert client.get(f"/inventory/goods/{goods.pk}/publish/").status_code == 403


def test_the_api_publishes_and_refuses_a_missing_price(
    sandbox: Sandbox, stores: dict[str, Store], goods: Goods, alpha, alpha_client, monkeypatch
):
    monkeypatch.setattr(publishing.channel_services, "connector_for", factory(sandbox))
    client = login(alpha, alpha_client, "owner")
    body = {"goods": goods.pk, "stores": [stores["kuaishou"].pk]}
    refused = client.post("/api/v1/skus/publish/", body, content_type="application/json")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid"
    answer = client.post(
        "/api/v1/skus/publish/", {**body, "markup_percent": 300}, content_type="application/json"
    )
    assert answer.status_code == 200
    (result,) = answer.json()
    assert result["ok"] and len(result["listing_ids"]) == 3 and result["platform"] == "kuaishou"

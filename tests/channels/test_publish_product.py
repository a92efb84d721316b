"""Contract tests: ``publish_product`` (商品铺货) of the three connectors against the sandbox.

Each platform's app runs in-process (httpx WSGI transport) on one seeded world with a
FakeClock; no database. The product must appear in the world with the merchant codes as the
platform's SKU codes, the result must map every platform SKU id back to its merchant code,
and a create whose answer is lost is never re-sent.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from channels.connectors import connector_class
from channels.connectors.base import AppCredentials, RetryPolicy, ShopSession, publish_dimensions
from channels.errors import PlatformRejected, TemporarilyUnavailable
from channels.types import PublishSku
from sandbox.clock import FakeClock
from sandbox.faults import Faults
from sandbox.model import App
from sandbox.seed import seed_default_world
from sandbox.server import platform_factories
from sandbox.wechat import create_self_use_app
from sandbox.world import World

PLATFORMS = ("douyin", "kuaishou", "wechat")
BASE = "http://sandbox"
# the path of each platform's product-create call, as the sandbox's fault rules name it
CREATE_PATH = {"douyin": "/product/addV2", "kuaishou": "/open/item/new", "wechat": "/channels/ec/product/add"}

SKUS = [
    PublishSku(merchant_code="PUB-TEE-WHT-M", spec="颜色:白色;尺码:M", price_fen=5900, stock=7),
    PublishSku(merchant_code="PUB-TEE-WHT-L", spec="颜色:白色;尺码:L", price_fen=5900, stock=0),
    PublishSku(merchant_code="PUB-TEE-BLK-L", spec="颜色:黑色;尺码:L", price_fen=6900, stock=3),
]
IMAGES = ["https://img.example.invalid/tee-1.jpg", "https://img.example.invalid/tee-2.jpg"]


def shop_secrets(app: App) -> dict[str, str]:
    """The secrets ecbao stores for a sandbox app (``channels.services.register_app``)."""
    secrets = {"app_secret": app.app_secret}
    for source, target in (
        ("sign_secret", "sign_secret"),
        ("message_key", "message_key"),
        ("push_token", "token"),
        ("encoding_aes_key", "aes_key"),
    ):
        if getattr(app, source, ""):
            secrets[target] = getattr(app, source)
    return secrets


@dataclass
class Sandbox:
    world: World
    clock: FakeClock
    faults: Faults
    apps: dict

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now(), UTC)

    def http(self, platform: str) -> httpx.Client:
        return httpx.Client(transport=httpx.WSGITransport(app=self.apps[platform]), base_url=BASE)

    def shop_id(self, platform: str) -> str:
        return self.world.shops(platform)[0].shop_id

    def app_for(self, platform: str) -> App:
        """The app a merchant would connect the first shop with: the tool app (OAuth), or on
        WeChat the shop's self-use app."""
        if platform == "wechat":
            return create_self_use_app(self.world, self.shop_id(platform))
        return next(a for a in self.world.apps(platform) if a.app_type == "tool")

    def connector(self, platform: str):
        app = self.app_for(platform)
        secrets = shop_secrets(app)
        credentials = AppCredentials(
            app_key=app.app_key,
            app_secret=secrets["app_secret"],
            sign_secret=secrets.get("sign_secret", ""),
            message_key=secrets.get("message_key", ""),
            token=secrets.get("token", ""),
            aes_key=secrets.get("aes_key", ""),
        )
        connector = connector_class(platform)(
            credentials=credentials,
            base_url=BASE,
            http=self.http(platform),
            now=self.now,
            retry=RetryPolicy(sleep=lambda seconds: None),
        )
        if platform == "wechat":
            grant = connector.self_use_token(platform_shop_id=self.shop_id(platform))
        else:
            grant = connector.exchange_code(
                code=self.world.create_oauth_code(app.app_key, self.shop_id(platform)).code
            )
        connector.session = ShopSession(platform_shop_id=grant.platform_shop_id)
        connector.apply_grant(grant)
        return connector

    def calls_to(self, platform: str) -> int:
        """How many product-create calls the platform received (its call log)."""
        path = CREATE_PATH[platform]
        self.world.flush_calls()
        return sum(
            1 for c in self.world.recent_calls(limit=10_000) if c.platform == platform and c.path == path
        )


def make_sandbox(tmp_path: Path) -> Sandbox:
    clock = FakeClock(start=float(int(time.time())))
    world = World(tmp_path / "world.sqlite3", seed=5, clock=clock)
    seed_default_world(world, platforms=PLATFORMS, shops_per_platform=1, buyers=5, product_count=3)
    faults = Faults(world)
    factories = platform_factories()
    apps = {p: factories[p](world, faults=faults) for p in PLATFORMS}
    return Sandbox(world=world, clock=clock, faults=faults, apps=apps)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    box = make_sandbox(tmp_path)
    yield box
    box.world.close()


def test_spec_pairs_and_shared_dimensions():
    assert SKUS[0].spec_pairs() == [("颜色", "白色"), ("尺码", "M")]
    assert PublishSku("A", "白色；M", 1, 0).spec_pairs() == [("规格", "白色"), ("规格2", "M")]
    assert PublishSku("A", "", 1, 0).spec_pairs() == [("规格", "默认")]
    assert publish_dimensions(SKUS, max_dimensions=3) == (
        ["颜色", "尺码"],
        [["白色", "M"], ["白色", "L"], ["黑色", "L"]],
    )
    mixed = [SKUS[0], PublishSku("B", "白色", 1, 0)]
    assert publish_dimensions(mixed, max_dimensions=3) == (["规格"], [["白色/M"], ["白色"]])


@pytest.mark.parametrize("platform", PLATFORMS)
def test_publish_product_creates_the_product_with_the_merchant_codes(sandbox: Sandbox, platform: str):
    connector = sandbox.connector(platform)
    published = connector.publish_product(
        title="纯棉圆领T恤", skus=SKUS, images=IMAGES, category="", request_id="publish-test-1"
    )
    product = sandbox.world.get_product(published.platform_product_id)
    assert product is not None and product.shop_id == sandbox.shop_id(platform)
    assert product.title == "纯棉圆领T恤"
    world_skus = {s.code: s for s in product.skus}
    assert set(world_skus) == {s.merchant_code for s in SKUS}
    for sku in SKUS:
        assert (world_skus[sku.merchant_code].price_fen, world_skus[sku.merchant_code].stock) == (
            sku.price_fen,
            sku.stock,
        )
    # every platform SKU id maps back to its merchant code
    assert {(x.merchant_code, x.platform_sku_id) for x in published.skus} == {
        (code, s.sku_id) for code, s in world_skus.items()
    }
    assert all(x.platform_product_id == published.platform_product_id for x in published.skus)
    assert {x.merchant_code: x.spec for x in published.skus}["PUB-TEE-BLK-L"] in (
        "黑色;L",
        "颜色:黑色;尺码:L",
    )
    # the new product is a listing like any other
    listed = {
        x.merchant_code: x
        for x in connector.iter_listings()
        if x.platform_product_id == published.platform_product_id
    }
    assert set(listed) == {s.merchant_code for s in SKUS}


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_create_whose_answer_is_lost_is_not_sent_again(sandbox: Sandbox, platform: str):
    connector = sandbox.connector(platform)
    before = len(sandbox.world.products(sandbox.shop_id(platform), limit=10**6)[1])
    sandbox.faults.set(platform, CREATE_PATH[platform], error_rate=1.0)
    with pytest.raises(TemporarilyUnavailable):
        connector.publish_product(
            title="纯棉圆领T恤", skus=SKUS, images=IMAGES, category="", request_id="r-2"
        )
    assert sandbox.calls_to(platform) == 1
    assert len(sandbox.world.products(sandbox.shop_id(platform), limit=10**6)[1]) == before


def test_kuaishou_refuses_a_long_title_with_a_business_error(sandbox: Sandbox):
    connector = sandbox.connector("kuaishou")
    with pytest.raises(PlatformRejected):
        connector.publish_product(title="长" * 31, skus=SKUS, images=IMAGES, category="", request_id="r-3")


@pytest.mark.parametrize("platform", PLATFORMS)
def test_publish_product_passes_a_numeric_category(sandbox: Sandbox, platform: str):
    connector = sandbox.connector(platform)
    published = connector.publish_product(
        title="保温杯", skus=SKUS[:1], images=IMAGES[:1], category="20000", request_id="r-4"
    )
    assert sandbox.world.get_product(published.platform_product_id).category == "20000"  # the id as sent

"""The Shops and Inbox pages, the "connect a shop" flow through the platforms' authorisation
pages and the public OAuth callback — with the Django test client against the sandbox (in
process), and once in a real headless Chromium against the sandbox over HTTP."""

from __future__ import annotations

import html
import re
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.core import signing
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from channels import oauth, services
from channels.models import InboxMessage, Store, SyncCursor
from channels.routing.models import PlatformApp, ShopRoute
from channels.types import TokenGrant
from sandbox import douyin as sandbox_douyin
from sandbox import kuaishou as sandbox_kuaishou
from sandbox.clock import FakeClock
from sandbox.seed import seed_default_world
from sandbox.server import SandboxServer, ServerOptions
from sandbox.world import World
from tenants.accounts.models import Role
from tests.conftest import OWNER_PASSWORD, make_user, tenant_client

BASES = {
    "douyin": "http://douyin.sandbox",
    "kuaishou": "http://kuaishou.sandbox",
    "wechat": "http://wechat.sandbox",
}
AUTHORIZE = {"douyin": "/authorize", "kuaishou": "/oauth/authorize"}


class Sandbox:
    def __init__(self, path) -> None:
        self.clock = FakeClock(start=float(int(time.time())))
        self.world = World(path, seed=29, clock=self.clock)
        seed_default_world(self.world, platforms=("douyin", "kuaishou"), buyers=5, product_count=2)
        self.gateways = {
            "douyin": sandbox_douyin.create_app(self.world),
            "kuaishou": sandbox_kuaishou.create_app(self.world),
        }

    def app(self, platform: str):
        return self.world.apps(platform)[0]

    def shop(self, platform: str, index: int = 0) -> str:
        return self.world.shops(platform)[index].shop_id

    def http(self, platform: str) -> httpx.Client:
        return httpx.Client(
            transport=httpx.WSGITransport(app=self.gateways[platform]), base_url=BASES[platform]
        )

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now(), UTC)


def secrets_of(app) -> dict:
    secrets = {"app_secret": app.app_secret}
    if app.sign_secret:
        secrets["sign_secret"] = app.sign_secret
    if app.message_key:
        secrets["message_key"] = app.message_key
    return secrets


@pytest.fixture
def sandbox(db, tmp_path, settings, monkeypatch):
    box = Sandbox(tmp_path / "world.sqlite3")
    settings.CHANNEL_BASE_URLS = dict(BASES)
    settings.CHANNEL_AUTHORIZE_URLS = {p: BASES[p] + path for p, path in AUTHORIZE.items()}
    unbound, bound = services.unbound_connector, services.connector_for
    monkeypatch.setattr(  # the connectors reach the sandbox in process
        services,
        "unbound_connector",
        lambda *, platform, app_key, **kw: unbound(
            platform=platform, app_key=app_key, http=box.http(platform), now=box.now, **kw
        ),
    )
    monkeypatch.setattr(
        services,
        "connector_for",
        lambda store, **kw: bound(store, http=box.http(store.platform), now=box.now, **kw),
    )
    for platform in ("douyin", "kuaishou"):
        app = box.app(platform)
        services.register_app(platform=platform, app_key=app.app_key, secrets=secrets_of(app))
    yield box
    box.world.close()


def login(client, username: str, password: str = "Staff-pass-2026"):
    response = client.post("/accounts/login/", {"username": username, "password": password})
    assert response.status_code == 302, response.content.decode()[:300]
    return client


@pytest.fixture
def owner(alpha_client):
    return login(alpha_client, "alpha-owner", OWNER_PASSWORD)


def fake_store(tenant, platform: str, shop_id: str, **fields) -> Store:
    with schema_context(tenant.schema_name):
        grant = TokenGrant(
            access_token="acc-" + shop_id,
            access_expires_at=timezone.now() + timedelta(days=1),
            refresh_token="ref-" + shop_id,
            platform_shop_id=shop_id,
            shop_name=f"店铺{shop_id}",
        )
        store = services.connect_store(platform=platform, app_key="k-" + platform, grant=grant)
        if fields:
            Store.objects.filter(pk=store.pk).update(**fields)
            store.refresh_from_db()
    connection.set_schema_to_public()
    return store


def connect_redirect(client, platform: str) -> str:
    response = client.get(f"/shops/connect/{platform}/")
    assert response.status_code == 302
    return response["Location"]


def alpha_owner_id() -> int:
    from tenants.accounts.models import User

    return User.objects.get(username="alpha-owner").pk


def state_of(location: str) -> str:
    return parse_qs(urlsplit(location).query)["state"][0]


def come_back(public_client, browser, platform: str, query: dict):
    """The platform's redirect to the public callback, which sends the browser on to its
    tenant's domain, where ``browser`` (a logged-in client) finishes the flow."""
    response = public_client.get(f"/oauth/callback/{platform}/", query)
    assert response.status_code == 302, response.content[:300]
    onward = urlsplit(response["Location"])
    assert (onward.netloc, onward.path) == ("alpha.localhost", f"/shops/connect/{platform}/done/")
    return browser.get(f"{onward.path}?{onward.query}")


# --- the Shops page -------------------------------------------------------------------------------


def test_the_shops_page_lists_stores_with_status_last_sync_and_problems(owner, alpha):
    healthy = fake_store(alpha, "douyin", "1001")
    lost = fake_store(
        alpha,
        "kuaishou",
        "2002",
        status=Store.Status.AUTH_EXPIRED,
        last_error="shop authorisation lost (24): 授权已失效",
        last_error_at=timezone.now(),
    )
    finished = timezone.now() - timedelta(minutes=3)
    watermark = finished - timedelta(seconds=2)
    with schema_context(alpha.schema_name):
        SyncCursor.objects.create(
            store=healthy, kind=SyncCursor.Kind.ORDERS, watermark=watermark, finished_at=finished
        )
        InboxMessage.objects.create(
            platform="kuaishou",
            message_id="m-1",
            store=lost,
            topic="kwaishop_order_paySuccess",
            payload={},
            status=InboxMessage.Status.FAILED,
            last_error="no connected store",
        )
    page = owner.get("/shops/").content.decode()
    rows = {m.group(1): m.group(0) for m in re.finditer(r'<tr id="store-(\d+)".*?</tr>', page, re.S)}
    assert set(rows) == {str(healthy.pk), str(lost.pk)}
    first, second = rows[str(healthy.pk)], rows[str(lost.pk)]
    assert "店铺1001" in first and "1001" in first and "badge-active" in first
    assert timezone.localtime(finished).strftime("%m-%d %H:%M:%S") in first  # last sync
    assert timezone.localtime(watermark).strftime("%m-%d %H:%M:%S") in first  # synced up to
    assert 'data-testid="sync-now"' in first
    assert "badge-auth_expired" in second and "授权已失效" in second
    assert "/shops/inbox/?status=failed" in second  # one failed push message, linked
    assert 'href="/shops/connect/kuaishou/"' in second  # reconnect
    assert 'data-testid="connect-douyin"' not in page  # no deployment app registered in this test


# --- connecting a shop ----------------------------------------------------------------------------


@pytest.mark.parametrize("platform", ["douyin", "kuaishou"])
def test_connect_sends_the_merchant_to_the_platforms_authorize_page_with_a_signed_state(
    platform, sandbox, owner, alpha
):
    page = owner.get("/shops/").content.decode()
    assert f'data-testid="connect-{platform}"' in page
    location = connect_redirect(owner, platform)
    assert location.startswith(f"{BASES[platform]}{AUTHORIZE[platform]}?")
    query = parse_qs(urlsplit(location).query)
    assert query["redirect_uri"] == [f"http://localhost/oauth/callback/{platform}/"]
    state = oauth.read_state(query["state"][0])
    with schema_context(alpha.schema_name):
        owner_id = alpha_owner_id()
    assert (state.schema, state.platform, state.user_id, state.app_key) == (
        "alpha",
        platform,
        owner_id,
        sandbox.app(platform).app_key,
    )
    # The sandbox shows its consent page for exactly that URL, and consenting sends the
    # merchant back to the callback with a code and the same state.
    http = sandbox.http(platform)
    consent = http.get(location)
    assert consent.status_code == 200 and sandbox.shop(platform) in consent.text
    form = {
        name: html.unescape(value)
        for name, value in re.findall(r"<input type='hidden' name='([^']+)' value='([^']*)'>", consent.text)
    }
    (action,) = re.findall(r'<form method="post" action="([^"]+)">', consent.text)
    agreed = http.post(action, data={**form, "shop_id": sandbox.shop(platform)})
    assert agreed.status_code == 302, agreed.text[:300]
    back = urlsplit(agreed.headers["location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == f"http://localhost/oauth/callback/{platform}/"
    assert parse_qs(back.query)["state"] == query["state"] and parse_qs(back.query)["code"]


@pytest.mark.parametrize("platform", ["douyin", "kuaishou"])
def test_the_public_callback_connects_the_shop_in_the_tenant_that_started(
    platform, sandbox, owner, alpha, beta, public_client
):
    state = state_of(connect_redirect(owner, platform))
    code = sandbox.world.create_oauth_code(sandbox.app(platform).app_key, sandbox.shop(platform)).code
    response = come_back(public_client, owner, platform, {"code": code, "state": state})
    assert response.status_code == 302
    with schema_context(alpha.schema_name):
        store = Store.objects.get(platform=platform, platform_shop_id=sandbox.shop(platform))
        assert store.status == Store.Status.ACTIVE and store.access_token
        assert store.name == sandbox.world.shops(platform)[0].name
    with schema_context(beta.schema_name):
        assert not Store.objects.exists()
    connection.set_schema_to_public()
    assert response["Location"] == f"/shops/?connected={store.pk}"
    assert (
        ShopRoute.objects.get(platform=platform, platform_shop_id=store.platform_shop_id).tenant_id
        == alpha.pk
    )
    page = owner.get(urlsplit(response["Location"]).path + "?" + urlsplit(response["Location"]).query)
    assert f'id="store-{store.pk}"' in page.content.decode()


def test_a_forged_expired_or_foreign_state_is_refused(sandbox, owner, public_client, monkeypatch):
    state = state_of(connect_redirect(owner, "douyin"))
    code = sandbox.world.create_oauth_code(sandbox.app("douyin").app_key, sandbox.shop("douyin")).code
    forged = state[:-3] + ("AAA" if not state.endswith("AAA") else "BBB")
    assert public_client.get("/oauth/callback/douyin/", {"code": code, "state": forged}).status_code == 403
    assert public_client.get("/oauth/callback/kuaishou/", {"code": code, "state": state}).status_code == 403
    assert public_client.get("/oauth/callback/douyin/", {"state": state}).status_code == 400
    # A state issued 16 minutes ago has expired (they live 15).
    issued = int(time.time()) - 16 * 60
    with monkeypatch.context() as patch:
        patch.setattr(signing.TimestampSigner, "timestamp", lambda self: signing.b62_encode(issued))
        old = state_of(connect_redirect(owner, "douyin"))
    with pytest.raises(signing.SignatureExpired):
        oauth.read_state(old)
    assert public_client.get("/oauth/callback/douyin/", {"code": code, "state": old}).status_code == 403
    assert not ShopRoute.objects.exists()


def test_issue12_d7_a_shop_another_tenant_connected_is_refused_without_saying_so(
    sandbox, owner, alpha, beta, public_client
):
    fake_store(beta, "douyin", sandbox.shop("douyin"))
    state = state_of(connect_redirect(owner, "douyin"))
    code = sandbox.world.create_oauth_code(sandbox.app("douyin").app_key, sandbox.shop("douyin")).code
    response = come_back(public_client, owner, "douyin", {"code": code, "state": state})
    assert response.status_code == 302 and response["Location"] == "/shops/"
    page = owner.get("/shops/").content.decode()
    assert "无法将此店铺接入本账号" in page  # the refusal, in zh-Hans
    assert "another" not in page and "其他账号" not in page and "已被其他" not in page
    with schema_context(alpha.schema_name):
        assert not Store.objects.exists()
    connection.set_schema_to_public()
    assert ShopRoute.objects.get(platform_shop_id=sandbox.shop("douyin")).tenant_id == beta.pk


def test_issue12_d7_a_state_is_used_once(sandbox, owner, alpha, public_client):
    state = state_of(connect_redirect(owner, "douyin"))
    app_key = sandbox.app("douyin").app_key
    first = sandbox.world.create_oauth_code(app_key, sandbox.shop("douyin", 0)).code
    assert come_back(public_client, owner, "douyin", {"code": first, "state": state}).status_code == 302
    # The same state again — with a code for another shop — is refused.
    second = sandbox.world.create_oauth_code(app_key, sandbox.shop("douyin", 1)).code
    assert come_back(public_client, owner, "douyin", {"code": second, "state": state}).status_code == 403
    with schema_context(alpha.schema_name):
        assert list(Store.objects.values_list("platform_shop_id", flat=True)) == [sandbox.shop("douyin", 0)]
    connection.set_schema_to_public()


def test_issue12_d7_a_state_works_only_in_the_browser_session_that_started_it(
    sandbox, owner, alpha, public_client
):
    """Someone handed a state (a link) cannot finish it — not even the same user in another
    browser, nor another manager of the same tenant."""
    state = state_of(connect_redirect(owner, "douyin"))
    code = sandbox.world.create_oauth_code(sandbox.app("douyin").app_key, sandbox.shop("douyin")).code
    make_user(alpha, "alpha-operator", Role.OPERATOR)
    for other in (
        login(tenant_client(alpha), "alpha-owner", OWNER_PASSWORD),
        login(tenant_client(alpha), "alpha-operator"),
    ):
        assert come_back(public_client, other, "douyin", {"code": code, "state": state}).status_code == 403
    with schema_context(alpha.schema_name):
        assert not Store.objects.exists()
    connection.set_schema_to_public()
    # The browser that started it still can.
    assert come_back(public_client, owner, "douyin", {"code": code, "state": state}).status_code == 302


def test_a_platform_refusal_on_the_callback_is_shown_as_the_platform_said_it(sandbox, owner, public_client):
    state = state_of(connect_redirect(owner, "douyin"))
    code = sandbox.world.create_oauth_code(sandbox.app("douyin").app_key, sandbox.shop("douyin")).code
    sandbox.world.consume_oauth_code(code, sandbox.app("douyin").app_key)  # already used
    response = come_back(public_client, owner, "douyin", {"code": code, "state": state})
    assert response["Location"] == "/shops/"
    page = owner.get("/shops/").content.decode()
    assert "code参数不正确" in page  # the platform's own words, readable
    assert not ShopRoute.objects.exists()


def test_connect_without_a_configured_app_explains_why(owner):
    response = owner.get("/shops/connect/douyin/", follow=True)
    assert response.redirect_chain[-1][0] == "/shops/"
    assert "no douyin app is configured" in response.content.decode()
    assert owner.get("/shops/connect/taobao/").status_code == 404


# --- sync now, disconnect -------------------------------------------------------------------------


def test_sync_now_answers_the_row_with_a_progress_marker(owner, alpha, django_capture_on_commit_callbacks):
    store = fake_store(alpha, "douyin", "1001")
    with django_capture_on_commit_callbacks() as queued:
        response = owner.post(f"/shops/{store.pk}/sync/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    row = response.content.decode()
    assert row.lstrip().startswith(f'<tr id="store-{store.pk}"') and 'data-testid="sync-progress"' in row
    assert 'hx-trigger="every 1s"' in row  # the row polls itself while the pull runs
    assert len(queued) == 1  # the pull is enqueued after commit
    with schema_context(alpha.schema_name):
        assert SyncCursor.objects.get(store=store).state == SyncCursor.State.RUNNING
        SyncCursor.objects.filter(store=store).update(
            state=SyncCursor.State.IDLE, finished_at=timezone.now(), windows_done=3, windows_total=3
        )
    connection.set_schema_to_public()
    settled = owner.get(f"/shops/{store.pk}/row/").content.decode()
    assert 'data-testid="sync-progress"' not in settled and "every 1s" not in settled


def test_disconnect_forgets_the_tokens_and_the_push_route(owner, alpha):
    store = fake_store(alpha, "douyin", "1001")
    assert ShopRoute.objects.filter(platform_shop_id="1001").exists()
    response = owner.post(f"/shops/{store.pk}/disconnect/")
    assert response.status_code == 302 and response["Location"] == "/shops/"
    with schema_context(alpha.schema_name):
        store.refresh_from_db()
        assert (store.status, store.access_token, store.refresh_token) == (Store.Status.DISABLED, "", "")
        assert store.access_expires_at is None
    connection.set_schema_to_public()
    assert not ShopRoute.objects.filter(platform_shop_id="1001").exists()
    row = owner.get(f"/shops/{store.pk}/row/").content.decode()
    assert "badge-disabled" in row and 'data-testid="sync-now"' not in row


# --- the Inbox page -------------------------------------------------------------------------------


def test_the_inbox_filters_by_status_and_retry_requeues_a_failed_message(
    owner, alpha, django_capture_on_commit_callbacks
):
    store = fake_store(alpha, "douyin", "1001")
    with schema_context(alpha.schema_name):
        made = {
            status: InboxMessage.objects.create(
                platform="douyin",
                message_id=f"msg-{status}",
                store=store,
                topic="101",
                payload={"kind": "order", "object_id": "1"},
                status=status,
                attempts=1,
                last_error="HTTP 503" if status == "failed" else "",
            )
            for status in ("pending", "processed", "failed")
        }
    connection.set_schema_to_public()
    everything = owner.get("/shops/inbox/").content.decode()
    assert all(f'id="msg-{m.pk}"' in everything for m in made.values())
    failed_only = owner.get("/shops/inbox/", {"status": "failed"}).content.decode()
    assert f'id="msg-{made["failed"].pk}"' in failed_only and "HTTP 503" in failed_only
    assert (
        f'id="msg-{made["processed"].pk}"' not in failed_only
        and f'id="msg-{made["pending"].pk}"' not in failed_only
    )
    assert (
        owner.get("/shops/inbox/", {"status": "processed", "platform": "kuaishou"})
        .content.decode()
        .count('<tr id="msg-')
        == 0
    )

    with django_capture_on_commit_callbacks() as queued:
        response = owner.post(f"/shops/inbox/{made['failed'].pk}/retry/")
    assert response.status_code == 200 and "badge-pending" in response.content.decode()
    assert len(queued) == 1
    with schema_context(alpha.schema_name):
        assert InboxMessage.objects.get(pk=made["failed"].pk).status == InboxMessage.Status.PENDING
    connection.set_schema_to_public()


# --- roles ----------------------------------------------------------------------------------------


def test_viewers_see_the_pages_but_cannot_connect_sync_disconnect_or_retry(sandbox, alpha, alpha_client):
    store = fake_store(alpha, "douyin", "1001")
    with schema_context(alpha.schema_name):
        message = InboxMessage.objects.create(
            platform="douyin", message_id="m", store=store, topic="101", payload={}, status="failed"
        )
    connection.set_schema_to_public()
    make_user(alpha, "looker", Role.VIEWER)
    viewer = login(alpha_client, "looker")
    page = viewer.get("/shops/")
    assert page.status_code == 200 and f'id="store-{store.pk}"' in page.content.decode()
    assert 'data-testid="connect-douyin"' not in page.content.decode()
    assert 'data-testid="sync-now"' not in page.content.decode()
    assert viewer.get("/shops/inbox/").status_code == 200
    assert viewer.get("/shops/connect/douyin/").status_code == 403
    assert viewer.post(f"/shops/{store.pk}/sync/").status_code == 403
    assert viewer.post(f"/shops/{store.pk}/disconnect/").status_code == 403
    assert viewer.post(f"/shops/inbox/{message.pk}/retry/").status_code == 403
    assert viewer.post("/shops/connect/self-use/", {"platform": "douyin"}).status_code == 403
    with schema_context(alpha.schema_name):
        assert not SyncCursor.objects.exists()
        assert Store.objects.get(pk=store.pk).status == Store.Status.ACTIVE
        assert InboxMessage.objects.get(pk=message.pk).status == InboxMessage.Status.FAILED
    connection.set_schema_to_public()


# --- in a real browser ----------------------------------------------------------------------------


@pytest.mark.browser
class TestInChromium:
    """The live server and the sandbox server run in other threads, so this test commits
    (and removes what it made afterwards)."""

    @pytest.fixture
    def db(self, django_db_setup, django_db_blocker):
        """The test database without the per-test transaction (the name also makes
        pytest-django create the test database when only this test runs)."""
        with django_db_blocker.unblock():
            assert connection.settings_dict["NAME"].startswith("test_")
            yield

    def test_connect_a_douyin_shop_by_consenting_on_its_authorize_page(
        self, db, browser, live_url, settings, tmp_path
    ):
        world = World(tmp_path / "browser.sqlite3", seed=31)
        seed_default_world(world, platforms=("douyin",), buyers=2, product_count=1)
        server = SandboxServer(
            world, ServerOptions(ports={"status": 0, "douyin": 0}, simulate=False, push=False)
        )
        server.start()
        app = world.apps("douyin")[0]
        shop = world.shops("douyin")[1]
        port = urlsplit(live_url.format(host="localhost")).port
        settings.CHANNEL_BASE_URLS = {**settings.CHANNEL_BASE_URLS, "douyin": server.urls["douyin"]}
        settings.CHANNEL_AUTHORIZE_URLS = {
            **settings.CHANNEL_AUTHORIZE_URLS,
            "douyin": server.urls["douyin"] + "/authorize",
        }
        settings.ECBAO_PUBLIC_PORT = str(port)  # the callback and the way back carry the live port
        page = browser.new_page()
        try:
            connection.set_schema_to_public()
            services.register_app(
                platform="douyin", app_key=app.app_key, secrets={"app_secret": app.app_secret}
            )
            base = live_url.format(host="alpha.localhost")
            page.goto(base + "/accounts/login/")
            page.fill("#id_username", "alpha-owner")
            page.fill("#id_password", OWNER_PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_selector("[data-testid=tenant-name]")
            page.goto(base + "/shops/")
            page.click("[data-testid=connect-douyin]")
            page.wait_for_selector("text=同意授权")
            assert page.url.startswith(server.urls["douyin"] + "/authorize?")
            page.check(f"input[name=shop_id][value='{shop.shop_id}']")
            page.click("text=同意授权")
            page.wait_for_url(re.compile(r"^http://alpha\.localhost:\d+/shops/\?connected=\d+$"))
            row = page.locator("[data-testid=store-row]", has_text=shop.shop_id)
            assert shop.name in row.inner_text()
            with schema_context("alpha"):
                store = Store.objects.get(platform="douyin", platform_shop_id=shop.shop_id)
                assert store.status == Store.Status.ACTIVE and store.access_token
            assert (
                ShopRoute.objects.get(platform="douyin", platform_shop_id=shop.shop_id).tenant.slug == "alpha"
            )
        finally:
            page.close()
            server.stop()
            with schema_context("alpha"):
                Store.objects.filter(platform="douyin", platform_shop_id=shop.shop_id).delete()
            ShopRoute.objects.filter(platform="douyin", platform_shop_id=shop.shop_id).delete()
            PlatformApp.objects.filter(app_key=app.app_key).delete()
            world.close()
            connection.set_schema_to_public()


def test_a_self_use_app_key_someone_else_registered_is_refused_and_left_untouched(sandbox, owner, beta):
    """Typing this deployment's app key (or another merchant's) into the self-use form must not
    take it over: the secrets and owner stay as they were."""
    from channels.routing.models import PlatformApp

    deployment = PlatformApp.objects.get(platform="douyin", tenant__isnull=True)
    before = deployment.secrets_json
    services.register_app(
        platform="douyin", app_key="beta-self-use", secrets={"app_secret": "b"}, tenant=beta
    )
    for app_key in (deployment.app_key, "beta-self-use"):
        response = owner.post(
            "/shops/connect/self-use/",
            {"platform": "douyin", "app_key": app_key, "app_secret": "stolen", "platform_shop_id": "1"},
            follow=True,
        )
        assert "无法将此店铺接入本账号" in response.content.decode()  # and not why
    deployment.refresh_from_db()
    assert (deployment.secrets_json, deployment.tenant_id) == (before, None)
    assert PlatformApp.objects.get(app_key="beta-self-use").tenant_id == beta.pk
    assert not Store.objects.exists()

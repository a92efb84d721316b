"""python manage.py sandbox_demo [--tenant demo] — wire this deployment to the local sandbox.

Registers the sandbox's apps as this deployment's platform apps (secrets encrypted), points
their push webhooks, OAuth redirects and the WeChat third-party platform's authorisation-event
URL (component_verify_ticket pushes) at this web app, and — with ``--tenant`` — connects
the first sandbox shop of each platform to that tenant through each platform's real
authorisation call (OAuth code exchange; WeChat: the shop's self-use app), so a fresh demo
has orders flowing in. Idempotent. (The demo merchant's catalogue: ``manage.py demo_catalog``.)
"""

from __future__ import annotations

import httpx
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django_tenants.utils import schema_context

from channels import component, oauth, services
from channels.models import Store
from sandbox.server import DEFAULT_DATA_PATH, open_world, platform_factories
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Register the sandbox's apps and connect one sandbox shop per platform to a tenant."

    def add_arguments(self, parser):
        parser.add_argument("--data", default=DEFAULT_DATA_PATH, help="sandbox world file")
        parser.add_argument("--tenant", help="tenant slug whose shops to connect")
        parser.add_argument("--shops", type=int, default=1, help="shops per platform to connect")

    def handle(self, *args, data, tenant, shops, **options):
        world = open_world(data)
        factories = platform_factories()
        public = oauth.public_base_url()
        tool_apps = {}
        for app in world.apps():
            if app.app_type != "tool" or app.platform in tool_apps:
                continue
            tool_apps[app.platform] = app
            services.register_app(platform=app.platform, app_key=app.app_key, secrets=_secrets(app))
            world.update_app(
                app.app_key,
                webhook_url=f"{public}/hooks/{app.platform}/",
                redirect_uri=oauth.callback_url(app.platform),
            )
            if app.platform == "wechat":  # the third-party platform's component_verify_ticket pushes
                world.update_app(app.app_key, auth_event_url=public + component.endpoint_path(app.app_key))
            self.stdout.write(f"{app.platform}: app {app.app_key} → pushes to {public}/hooks/{app.platform}/")
        if not tenant:
            return
        target = Tenant.objects.filter(slug=tenant).first()
        if target is None:
            raise CommandError(f"no tenant {tenant!r}")
        for platform, factory in factories.items():
            sandbox_app = factory(world)
            http = httpx.Client(
                transport=httpx.WSGITransport(app=sandbox_app), base_url="http://sandbox.local"
            )
            for shop in world.shops(platform)[:shops]:
                with schema_context(target.schema_name):
                    if Store.objects.filter(platform=platform, platform_shop_id=shop.shop_id).exists():
                        continue
                    store = self._connect(world, platform, shop, tool_apps.get(platform), http, target)
                    self.stdout.write(
                        f"{platform}: connected {store.name} ({store.platform_shop_id}) to {tenant}"
                    )
        world.close()

    def _connect(self, world, platform, shop, tool_app, http, tenant) -> Store:
        with transaction.atomic():
            if platform == "wechat" or tool_app is None:
                from sandbox.wechat import create_self_use_app

                app = create_self_use_app(world, shop.shop_id)
                world.update_app(
                    app.app_key, webhook_url=f"{oauth.public_base_url()}/hooks/{platform}/{app.app_key}/"
                )
                services.register_app(
                    platform=platform, app_key=app.app_key, secrets=_secrets(app), tenant=tenant
                )
                connector = services.unbound_connector(platform=platform, app_key=app.app_key, http=http)
                grant = connector.self_use_token(platform_shop_id=shop.shop_id)
                return services.connect_store(
                    platform=platform,
                    app_key=app.app_key,
                    grant=grant,
                    auth_mode=Store.AuthMode.SELF_USE,
                    name=shop.name,
                )
            code = world.create_oauth_code(tool_app.app_key, shop.shop_id)
            connector = services.unbound_connector(platform=platform, app_key=tool_app.app_key, http=http)
            grant = connector.exchange_code(code=code.code, redirect_uri=oauth.callback_url(platform))
            return services.connect_store(
                platform=platform, app_key=tool_app.app_key, grant=grant, name=shop.name
            )


def _secrets(app) -> dict:
    secrets = {"app_secret": app.app_secret}
    if app.sign_secret:
        secrets["sign_secret"] = app.sign_secret
    if app.message_key:
        secrets["message_key"] = app.message_key
    if app.push_token:
        secrets["token"] = app.push_token
    if app.encoding_aes_key:
        secrets["aes_key"] = app.encoding_aes_key
    return secrets

"""python manage.py platform_apps list | set PLATFORM APP_KEY [secrets…] | delete PLATFORM APP_KEY

This deployment's own platform apps (the ISV apps every merchant authorises): what the
operator registers once per platform, and the URLs to enter in each platform's console.
Secrets are stored encrypted (``FIELD_ENCRYPTION_KEY``) and never printed; pass them as
options or, to keep them out of the shell history, name an environment variable with
``--from-env`` (e.g. ``--app-secret-env DOUYIN_APP_SECRET``).
"""

from __future__ import annotations

import json
import os

from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import schema_context

from channels import services
from channels.component import endpoint_path, ticket_is_fresh
from channels.oauth import callback_url, public_base_url
from channels.routing.models import PlatformApp
from channels.types import Platform

SECRETS = ("app_secret", "sign_secret", "message_key", "token", "aes_key")
# What each platform's console asks for, and which secrets its connector and push intake need.
REQUIRED = {
    "douyin": ("app_secret",),
    "kuaishou": ("app_secret", "sign_secret", "message_key"),
    "wechat": ("app_secret", "token", "aes_key"),
}


class Command(BaseCommand):
    help = "List, register or remove this deployment's platform apps (secrets stored encrypted)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list", help="the registered apps and the URLs to enter in each platform's console")
        put = sub.add_parser("set", help="register or update an app")
        put.add_argument("platform", choices=[p.value for p in Platform])
        put.add_argument("app_key")
        for name in SECRETS:
            flag = name.replace("_", "-")
            put.add_argument(f"--{flag}", dest=name, default=None)
            put.add_argument(f"--{flag}-env", dest=f"{name}_env", default=None, metavar="VARIABLE")
        delete = sub.add_parser("delete", help="remove an app (its shops can no longer refresh tokens)")
        delete.add_argument("platform", choices=[p.value for p in Platform])
        delete.add_argument("app_key")

    def handle(self, *args, action, **options):
        with schema_context("public"):
            getattr(self, f"handle_{action}")(**options)

    def handle_list(self, **_):
        apps = PlatformApp.objects.filter(tenant__isnull=True).order_by("platform", "id")
        if not apps:
            self.stdout.write(
                "no platform apps registered: python manage.py platform_apps set PLATFORM APP_KEY …"
            )
        for app in apps:
            present = sorted(k for k, v in json.loads(app.secrets_json).items() if v)
            missing = [k for k in REQUIRED[app.platform] if k not in present]
            self.stdout.write(f"{app.platform} {app.app_key}: secrets {', '.join(present) or 'none'}")
            if missing:
                self.stdout.write(f"  MISSING: {', '.join(missing)}")
            self.stdout.write(f"  authorisation callback: {callback_url(app.platform)}")
            self.stdout.write(f"  push URL: {public_base_url()}/hooks/{app.platform}/")
            if app.platform == Platform.WECHAT:
                self.stdout.write(
                    f"  authorisation-event URL (授权事件接收URL): {public_base_url()}{endpoint_path(app.app_key)}"
                )
                state = "fresh" if ticket_is_fresh(app) else "none younger than 12 h — connecting is off"
                self.stdout.write(f"  component_verify_ticket: {state}")

    def handle_set(self, *, platform, app_key, **options):
        secrets = {}
        for name in SECRETS:
            value, variable = options.get(name), options.get(f"{name}_env")
            if variable:
                if variable not in os.environ:
                    raise CommandError(
                        f"--{name.replace('_', '-')}-env: environment variable {variable} is not set"
                    )
                value = os.environ[variable]
            if value:
                secrets[name] = value
        existing = PlatformApp.objects.filter(platform=platform, app_key=app_key).first()
        if existing is not None and existing.tenant_id is not None:
            raise CommandError(f"{platform} {app_key} is a merchant's self-use app, not this deployment's")
        if existing is not None:  # keep secrets not given this time
            secrets = {**json.loads(existing.secrets_json), **secrets}
        missing = [k for k in REQUIRED[platform] if not secrets.get(k)]
        if missing:
            raise CommandError(f"{platform} needs {', '.join('--' + k.replace('_', '-') for k in missing)}")
        services.register_app(platform=platform, app_key=app_key, secrets=secrets)
        self.stdout.write(f"{'updated' if existing else 'registered'} {platform} {app_key}")

    def handle_delete(self, *, platform, app_key, **_):
        deleted, _ = PlatformApp.objects.filter(
            platform=platform, app_key=app_key, tenant__isnull=True
        ).delete()
        if not deleted:
            raise CommandError(f"no deployment app {platform} {app_key}")
        self.stdout.write(f"deleted {platform} {app_key}")

"""Operators register this deployment's platform apps with ``manage.py platform_apps``."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from channels import services
from channels.routing.models import PlatformApp

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = io.StringIO()
    call_command("platform_apps", *args, stdout=out)
    return out.getvalue()


def test_set_stores_the_secrets_encrypted_and_list_shows_the_console_urls_but_no_secret(monkeypatch):
    monkeypatch.setenv("KS_SIGN", "sign-from-env")
    assert "registered douyin dy-app" in run("set", "douyin", "dy-app", "--app-secret", "dy-secret-1")
    run(
        "set", "kuaishou", "ks-app", "--app-secret", "ks-secret", "--sign-secret-env", "KS_SIGN",
        "--message-key", "bWVzc2FnZS1rZXktMTYh",
    )  # fmt: skip
    run(
        "set",
        "wechat",
        "wx-component",
        "--app-secret",
        "wx-s",
        "--token",
        "wx-push-token-9",
        "--aes-key",
        "k" * 43,
    )
    app = PlatformApp.objects.get(app_key="ks-app")
    assert json.loads(app.secrets_json)["sign_secret"] == "sign-from-env"
    listing = run("list")
    for secret in ("dy-secret-1", "ks-secret", "sign-from-env", "wx-push-token-9", "k" * 43):
        assert secret not in listing
    assert "douyin dy-app: secrets app_secret" in listing
    assert "/oauth/callback/douyin/" in listing and "/hooks/kuaishou/" in listing
    assert "/hooks/wechat/component/wx-component/" in listing
    assert "component_verify_ticket: none younger than 12 h" in listing


def test_the_stored_column_is_ciphertext():
    from django.db import connection

    run("set", "douyin", "dy-app", "--app-secret", "plain-secret-xyz")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT secrets_json FROM {PlatformApp._meta.db_table} WHERE app_key = %s", ["dy-app"]
        )
        stored = cursor.fetchone()[0]
    assert "plain-secret-xyz" not in stored


def test_an_update_keeps_secrets_not_given_and_missing_ones_are_refused():
    with pytest.raises(CommandError, match="kuaishou needs --sign-secret, --message-key"):
        run("set", "kuaishou", "ks-app", "--app-secret", "s")
    with pytest.raises(CommandError, match="KS_NOPE is not set"):
        run("set", "douyin", "dy-app", "--app-secret-env", "KS_NOPE")
    run("set", "wechat", "wx", "--app-secret", "one", "--token", "t", "--aes-key", "a" * 43)
    assert "updated wechat wx" in run("set", "wechat", "wx", "--app-secret", "two")
    secrets = json.loads(PlatformApp.objects.get(app_key="wx").secrets_json)
    assert secrets == {"app_secret": "two", "token": "t", "aes_key": "a" * 43}


def test_a_merchants_self_use_app_is_not_touched(alpha):
    services.register_app(platform="douyin", app_key="self-app", secrets={"app_secret": "m"}, tenant=alpha)
    with pytest.raises(CommandError, match="self-use app"):
        run("set", "douyin", "self-app", "--app-secret", "x")
    with pytest.raises(CommandError, match="no deployment app"):
        run("delete", "douyin", "self-app")
    assert json.loads(PlatformApp.objects.get(app_key="self-app").secrets_json) == {"app_secret": "m"}


def test_delete_removes_a_deployment_app():
    run("set", "douyin", "dy-app", "--app-secret", "s")
    assert "deleted douyin dy-app" in run("delete", "douyin", "dy-app")
    assert not PlatformApp.objects.exists()

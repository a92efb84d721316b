"""The demo seeding commands (what ``make run`` runs) leave a tenant that can ship at once:
shops connected, catalogue matched, a default sender address and each shop's e-waybill accounts
read from the sandbox."""

from __future__ import annotations

from django.core.management import call_command
from django.db import connection
from django_tenants.utils import schema_context

from channels.models import Store
from channels.routing.models import PlatformApp
from inventory.models import Sku
from logistics.models import SenderAddress, WaybillAccount
from sandbox.server import open_world


def test_demo_commands_leave_a_tenant_ready_to_take_waybills(tmp_path, committed_tenant):
    tenant = committed_tenant("seed-demo")
    data = str(tmp_path / "world.sqlite3")
    world = open_world(data)
    app_keys = [a.app_key for a in world.apps()]
    world.close()
    try:
        for _ in range(2):  # idempotent
            call_command("sandbox_demo", "--tenant", tenant.slug, "--data", data)
            call_command("demo_catalog", "--tenant", tenant.slug, "--data", data)
        with schema_context(tenant.schema_name):
            stores = list(Store.objects.all())
            assert {s.platform for s in stores} == {"douyin", "kuaishou", "wechat"}
            assert Sku.objects.exists()
            (sender,) = SenderAddress.objects.all()
            assert sender.is_default and sender.province == "浙江省"
            for store in stores:
                accounts = WaybillAccount.objects.filter(store=store, is_active=True)
                assert accounts.count() >= 3, store.platform
                assert all(a.available for a in accounts)
    finally:
        connection.set_schema_to_public()
        world = open_world(data)
        app_keys += [a.app_key for a in world.apps()]
        world.close()
        PlatformApp.objects.filter(app_key__in=app_keys).delete()

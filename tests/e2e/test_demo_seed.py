"""The demo seeding commands (what ``make run`` runs) leave a tenant that can ship at once:
shops connected, catalogue matched, a default sender address and each shop's e-waybill accounts
read from the sandbox."""

from __future__ import annotations

from django.core.management import call_command
from django.db import connection
from django_tenants.utils import schema_context

from channels.models import Store
from channels.routing.models import PlatformApp
from inventory.models import Sku, StockLevel
from logistics.models import SenderAddress, WaybillAccount
from sandbox.server import open_world
from suppliers.models import RuleSet, Supplier
from tenants.accounts.models import Role, User


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
            call_command("demo_suppliers", "--tenant", tenant.slug)
        with schema_context(tenant.schema_name):
            stores = list(Store.objects.all())
            assert {s.platform for s in stores} == {"douyin", "kuaishou", "wechat"}
            assert Sku.objects.exists()
            sender = SenderAddress.objects.get(warehouse__isnull=True)
            assert sender.is_default and sender.province == "浙江省"
            # Dropship: two suppliers with SKUs, stock in their warehouses, an address each,
            # one active rule set and a portal user each.
            suppliers = list(Supplier.objects.order_by("code"))
            assert [s.name for s in suppliers] == ["杭州茶厂", "义乌百货"]
            for supplier in suppliers:
                assert supplier.skus.count() >= 2
                assert StockLevel.objects.filter(warehouse=supplier.warehouse, on_hand=300).exists()
                assert SenderAddress.objects.filter(warehouse=supplier.warehouse).count() == 1
                assert User.objects.get(role=Role.SUPPLIER, supplier_id=supplier.pk).check_password(
                    "ecbao-demo-2026"
                )
            assert RuleSet.objects.get(status=RuleSet.Status.ACTIVE).rules.count() == 2
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

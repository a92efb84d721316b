"""python manage.py demo_suppliers --tenant demo — dropship suppliers for the demo merchant.

Two suppliers (杭州茶厂 and 义乌百货) each supply some of the demo catalogue's SKUs at a cost,
report stock and ship from their own address; an active routing rule set sends Kuaishou orders
of 义乌百货's SKUs to it, other supplied SKUs to the cheapest supplier with stock, and the rest
to the own warehouse; each supplier has a portal user (``supplier-hz`` / ``supplier-yw``, the
demo password). Idempotent. Runs after ``demo_catalog``.
"""

from __future__ import annotations

import os

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django_tenants.utils import schema_context

from inventory.models import Sku
from logistics.models import SenderAddress
from suppliers import services
from suppliers.models import RouteRule, RuleSet, Supplier
from tenants.accounts.models import Role, User
from tenants.models import Tenant

SUPPLIERS = [
    {
        "code": "HZTEA",
        "name": "杭州茶厂",
        "user": "supplier-hz",
        "sender": {"name": "杭州茶厂发货部", "mobile": "0571-86660001", "province": "浙江省",
                   "city": "杭州市", "district": "西湖区", "street": "龙井路", "detail": "茶园路 8 号"},
        "ship_from_province": "浙江省",
        "ship_from_city": "杭州市",
    },
    {
        "code": "YWBH",
        "name": "义乌百货",
        "user": "supplier-yw",
        "sender": {"name": "义乌百货仓", "mobile": "0579-85550002", "province": "浙江省",
                   "city": "金华市", "district": "义乌市", "street": "福田街道", "detail": "国际商贸城五区 12 号"},
        "ship_from_province": "浙江省",
        "ship_from_city": "金华市",
    },
]  # fmt: skip


class Command(BaseCommand):
    help = "Seed two dropship suppliers, their SKUs and stock, routing rules and portal users."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True)
        parser.add_argument("--stock", type=int, default=300, help="stock each supplier reports per SKU")

    def handle(self, *args, tenant, stock, **options):
        target = Tenant.objects.filter(slug=tenant).first()
        if target is None:
            raise CommandError(f"no tenant {tenant!r}")
        password = os.environ.get("ECBAO_DEMO_PASSWORD", "ecbao-demo-2026")
        with schema_context(target.schema_name), transaction.atomic():
            skus = list(Sku.objects.filter(is_combo=False, is_active=True).order_by("merchant_code"))
            if len(skus) < 4:
                self.stdout.write("demo_suppliers: the catalogue has fewer than 4 SKUs; nothing to do")
                return
            made: list[Supplier] = []
            for n, spec in enumerate(SUPPLIERS):
                supplier = Supplier.objects.filter(code=spec["code"]).first() or services.create_supplier(
                    name=spec["name"],
                    code=spec["code"],
                    contact_name=spec["sender"]["name"],
                    contact_phone=spec["sender"]["mobile"],
                    ship_from_province=spec["ship_from_province"],
                    ship_from_city=spec["ship_from_city"],
                    daily_capacity=500,
                )
                made.append(supplier)
                if not SenderAddress.objects.filter(warehouse=supplier.warehouse).exists():
                    SenderAddress.objects.create(**spec["sender"], warehouse=supplier.warehouse)
                # Every third SKU, offset per supplier: some SKUs have one supplier, some two.
                for i, sku in enumerate(skus):
                    if i % 3 == n or (n == 1 and i % 6 == 0):
                        services.set_supplier_sku(
                            supplier=supplier,
                            sku=sku,
                            cost_fen=max(100, sku.cost_fen * (90 - 5 * n) // 100),
                            supplier_code=f"{spec['code']}-{i:03d}",
                        )
                        services.report_stock(supplier=supplier, sku=sku, on_hand=stock)
                if not User.objects.filter(username=spec["user"]).exists():
                    user = User(username=spec["user"], role=Role.SUPPLIER, supplier_id=supplier.pk)
                    user.set_password(password)
                    user.save()
            if not RuleSet.objects.exists():
                rule_set = RuleSet.objects.create(version=1, status=RuleSet.Status.ACTIVE, note="演示规则")
                yiwu = made[1]
                yiwu_skus = list(yiwu.skus.values_list("sku_id", flat=True)[:4])
                RouteRule.objects.create(
                    rule_set=rule_set, priority=10, name="快手百货给义乌", action=RouteRule.Action.SUPPLIER,
                    supplier=yiwu, conditions={"platforms": ["kuaishou"], "skus": yiwu_skus},
                )  # fmt: skip
                RouteRule.objects.create(
                    rule_set=rule_set, priority=20, name="代发商品找最便宜的有货供应商",
                    action=RouteRule.Action.CHEAPEST, conditions={},
                )  # fmt: skip
        self.stdout.write(
            "demo suppliers: " + ", ".join(f"{s['name']} (login {s['user']} / {password})" for s in SUPPLIERS)
        )

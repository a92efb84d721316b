"""python manage.py demo_catalog --tenant demo — the demo merchant's own catalogue.

For every connected sandbox shop of the tenant: one merchant SKU per merchant code the shop
sells (with opening stock and a shelf location), then the shop's listings are pulled and
matched, so orders reserve and every shop's stock follows ecbao's; and the shipping set-up —
the warehouse's sender address and each shop's e-waybill accounts read from the platform — so
the demo can take waybills, print and ship at once. Idempotent. Runs after ``sandbox_demo``.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import schema_context

from channels import services as channel_services
from channels.models import Store
from inventory.models import Goods, Sku
from inventory.services import receive_stock, set_location
from inventory.sync import refresh_listings
from logistics.models import SenderAddress
from logistics.waybills import sync_accounts
from sandbox.seed import WAREHOUSE_SENDER
from sandbox.server import DEFAULT_DATA_PATH, open_world, platform_factories
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Seed a tenant's catalogue from its connected sandbox shops and match their listings."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True)
        parser.add_argument("--data", default=DEFAULT_DATA_PATH, help="sandbox world file")
        parser.add_argument("--stock", type=int, default=200, help="opening stock per SKU")

    def handle(self, *args, tenant, data, stock, **options):
        import httpx

        target = Tenant.objects.filter(slug=tenant).first()
        if target is None:
            raise CommandError(f"no tenant {tenant!r}")
        world = open_world(data)
        apps = {platform: factory(world) for platform, factory in platform_factories().items()}
        with schema_context(target.schema_name):
            stores = [
                s
                for s in Store.objects.filter(status=Store.Status.ACTIVE)
                if world.get_shop(s.platform_shop_id)
            ]
            goods: dict[str, Goods] = {}
            for store in stores:
                for sku in world.skus(store.platform_shop_id):
                    if not sku.code or Sku.objects.filter(merchant_code=sku.code).exists():
                        continue
                    product = world.get_product(sku.product_id)
                    title = (product.title if product else sku.code)[:200]
                    if title not in goods:
                        goods[title] = Goods.objects.create(name=title)
                    created = Sku.objects.create(
                        goods=goods[title],
                        merchant_code=sku.code,
                        name=title,
                        spec=sku.spec_text[:200],
                        cost_fen=sku.price_fen // 2,
                    )
                    receive_stock(sku=created, quantity=stock, reason="demo opening stock")
                    # a shelf place (库位) so pick lists walk the aisles: A-01-1, A-01-2, …
                    n = Sku.objects.count() - 1
                    set_location(
                        sku=created, location=f"{chr(65 + n // 40 % 26)}-{n // 4 % 10 + 1:02d}-{n % 4 + 1}"
                    )
            for store in stores:
                http = httpx.Client(
                    transport=httpx.WSGITransport(app=apps[store.platform]), base_url="http://sandbox.local"
                )
                result = refresh_listings(
                    store=store, connector=channel_services.connector_for(store, http=http)
                )
                self.stdout.write(f"{store.platform}: {result.seen} listings, {result.matched} matched")
                accounts = sync_accounts(store, connector=channel_services.connector_for(store, http=http))
                self.stdout.write(f"{store.platform}: {accounts} e-waybill accounts")
            if not SenderAddress.objects.exists():
                SenderAddress.objects.create(**WAREHOUSE_SENDER, is_default=True)
        world.close()

"""A committed tenant with one user per role, an API token each, and one object of every kind
the API and the pages address by id: what the API fuzz and the isolation matrix attack.

Committed (not in a test transaction) because a live server thread must see it; the tenant is
created under its own slug and deleted afterwards, so other tests never see it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import connection
from django_tenants.utils import schema_context

from tenants import services as tenant_services
from tenants.accounts.models import Role
from tenants.models import Tenant

PASSWORD = "World-pass-2026"
ROLES = [Role.OWNER, Role.OPERATOR, Role.WAREHOUSE, Role.FINANCE, Role.VIEWER, Role.SUPPLIER]


@dataclass
class World:
    slug: str
    host: str
    tokens: dict[str, str] = field(default_factory=dict)  # role -> API token key
    users: dict[str, int] = field(default_factory=dict)  # role -> user id
    ids: dict[str, object] = field(default_factory=dict)  # object kind -> id (or key)


def create_world(slug: str, shop_id: str, id_base: int = 0) -> World:
    """Create tenant ``slug`` with its users, tokens and objects (committed); with ``id_base``
    every id of the tenant starts there, so that its ids name nothing in a tenant made without."""
    from django.contrib.auth import get_user_model

    from channels.models import InboxMessage, Store
    from channels.types import ChannelOrder, ChannelOrderLine, CipherField, OrderStatus, Platform, Receiver
    from inventory import services as stock
    from inventory.models import Goods, Listing, Sku
    from orders import services as order_services
    from tenants.accounts import services as account_services

    connection.set_schema_to_public()
    tenant = tenant_services.create_tenant(
        slug=slug,
        name=f"{slug} 商贸",
        owner_username=f"{slug}-owner",
        owner_password=PASSWORD,
        owner_email=f"owner@{slug}.example",
    ).tenant
    world = World(slug=slug, host=tenant_services.domain_for(slug))
    with schema_context(tenant.schema_name):
        if id_base:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT setval(pg_get_serial_sequence(format('%%I.%%I', table_schema, table_name), "
                    "column_name), %s) FROM information_schema.columns WHERE table_schema = %s "
                    "AND (is_identity = 'YES' OR column_default LIKE 'nextval%%')",
                    [id_base, tenant.schema_name],
                )
        User = get_user_model()
        for role in ROLES:
            if role == Role.OWNER:
                user = User.objects.get(username=f"{slug}-owner")
            else:
                user = account_services.create_user(username=f"{slug}-{role}", password=PASSWORD, role=role)
            world.users[role] = user.pk
            world.tokens[role] = account_services.issue_api_token(user=user, name="world")[1]
        store = Store.objects.create(
            platform="douyin", platform_shop_id=shop_id, name=f"{slug} 抖店", app_key="k"
        )
        goods = Goods.objects.create(name="纯棉T恤")
        sku = Sku.objects.create(goods=goods, merchant_code="TS-WHT-L", name="T恤 白 L", cost_fen=1000)
        stock.receive_stock(sku=sku, quantity=10, reason="opening")
        listing = Listing.objects.create(
            store=store, platform_product_id="P1", platform_sku_id="S1", merchant_code="NOPE", title="T恤"
        )
        at = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
        co = ChannelOrder(
            platform=Platform.DOUYIN,
            platform_shop_id=shop_id,
            platform_order_id=f"69{shop_id}0001",
            platform_status="2",
            status=OrderStatus.PAID,
            created_at=at - timedelta(minutes=5),
            updated_at=at,
            lines=(ChannelOrderLine("L1", "P1", "S1", "TS-WHT-L", "T恤", "白 L", 1, 9900, 9900),),
            receiver=Receiver(
                CipherField("#name#", "张*", "idx-zhang"),
                CipherField("$tel$", "138****8888", "idx-138"),
                CipherField("#addr#", "文***号", "idx-addr"),
                "浙江省",
                "杭州市",
                "西湖区",
            ),
            paid_at=at,
            goods_fen=9900,
            paid_fen=9900,
        )
        order = order_services.ingest_channel_order(store=store, co=co)
        message = InboxMessage.objects.create(
            platform="douyin",
            message_id=f"{slug}-m1",
            store=store,
            topic="order",
            payload={"shop_id": shop_id},
            status=InboxMessage.Status.FAILED,
        )
        invitation, _raw = account_services.invite_staff(
            invited_by=User.objects.get(pk=world.users[Role.OWNER]),
            email=f"new@{slug}.example",
            role=Role.VIEWER,
        )
        from inventory.models import StockLedgerEntry, StockLevel
        from logistics import configuration as shipping_configuration
        from logistics.models import ShipBatch
        from orders.models import Fulfilment

        carrier_rule = shipping_configuration.save_carrier_rule(name="中通", carrier="zto")
        sender = shipping_configuration.save_sender(
            name="王仓管", mobile="13800000000", province="浙江省", city="杭州市", detail="1 号仓"
        )

        from logistics import services as parcel_services
        from logistics.models import Parcel

        parcel_services.ensure_parcels()
        world.ids.update(parcel=Parcel.objects.order_by("id").values_list("pk", flat=True).first() or 0)
        world.ids.update(
            stock_level=StockLevel.objects.get(sku=sku).pk,
            ledger=StockLedgerEntry.objects.filter(sku=sku).first().pk,
            fulfilment=Fulfilment.objects.order_by("id").values_list("pk", flat=True).first() or 0,
            store=store.pk,
            goods=goods.pk,
            sku=sku.pk,
            listing=listing.pk,
            order=order.pk,
            inbox=message.pk,
            invitation=invitation.pk,
            user=world.users[Role.VIEWER],
            carrier_rule=carrier_rule.pk,
            sender=sender.pk,
            ship_batch=ShipBatch.objects.create(kind=ShipBatch.Kind.IMPORT_TRACKING, status="done").pk,
            **_shipping_objects(store, co),
        )
        world.ids.update(dispatch=_supplier_dispatch(store, world.users[Role.SUPPLIER]))
        world.ids.update(_supplier_objects(sku, world.users[Role.OWNER]))
        world.ids.update(_after_sale_objects(store, order))
        from aftersales.models import ReturnReceipt

        world.ids.update(
            return_receipt=ReturnReceipt.objects.create(
                warehouse=stock.default_warehouse(), tracking_no="ISO-1"
            ).pk
        )
        world.ids.update(_supplier_after_sale_objects(world.ids["after_sale"], world.ids["dispatch"]))
    connection.set_schema_to_public()
    return world


def delete_world(slug: str) -> None:
    connection.set_schema_to_public()
    if Tenant.objects.filter(slug=slug).exists():
        tenant_services.delete_tenant(slug=slug)


def _supplier_dispatch(store, supplier_user_id: int) -> int:
    """A supplier (the SUPPLIER user works for it) with a dispatch: what the portal addresses."""
    from django.contrib.auth import get_user_model

    from orders.models import Fulfilment
    from suppliers.models import Dispatch
    from suppliers.services import create_supplier

    supplier = create_supplier(name="世界供应商", code="W1")
    get_user_model().objects.filter(pk=supplier_user_id).update(supplier_id=supplier.pk)
    fulfilment = Fulfilment.objects.create(store=store, warehouse=supplier.warehouse)
    return Dispatch.objects.create(supplier=supplier, fulfilment=fulfilment, store=store).pk


def _supplier_objects(sku, owner_id: int) -> dict:
    """The world supplier's SKU binding and an open invitation (the merchant's supplier pages)."""
    from django.contrib.auth import get_user_model

    from suppliers import invites, services
    from suppliers.models import Supplier

    supplier = Supplier.objects.get(code="W1")
    binding = services.set_supplier_sku(supplier=supplier, sku=sku, cost_fen=800)
    invitation, _token = invites.invite(
        supplier=supplier, invited_by=get_user_model().objects.get(pk=owner_id)
    )
    return {"supplier": supplier.pk, "supplier_sku": binding.pk, "supplier_invitation": invitation.pk}


def _supplier_after_sale_objects(after_sale_id: int, dispatch_id: int) -> dict:
    """The world's after-sale is on the world supplier's dispatch (the supplier's 售后 pages
    address it), with a charge-back of it (the merchant's charge-back pages)."""
    from aftersales.models import AfterSale, ChargeBack
    from suppliers.models import Dispatch

    dispatch = Dispatch.objects.get(pk=dispatch_id)
    AfterSale.objects.filter(pk=after_sale_id).update(supplier=dispatch.supplier, dispatch=dispatch)
    charge_back = ChargeBack.objects.create(
        supplier=dispatch.supplier,
        after_sale_id=after_sale_id,
        dispatch=dispatch,
        amount_fen=600,
        reason="damaged",
    )
    return {"charge_back": charge_back.pk}


def _shipping_objects(store, co) -> dict:
    """A second order (its SKU matched, approved) with its parcel, a (failed) waybill and a
    (given-up) write-back."""
    from dataclasses import replace

    from channels.types import ChannelOrderLine
    from logistics import services as parcel_services
    from logistics.models import Parcel, Waybill, WriteBack
    from orders import services as order_services
    from orders.models import OrderStatus

    line = ChannelOrderLine("L1", "P1", "S2", "TS-WHT-L", "T恤", "白 L", 1, 9900, 9900)
    order = order_services.ingest_channel_order(
        store=store, co=replace(co, platform_order_id=co.platform_order_id[:-1] + "2", lines=(line,))
    )
    if order.status in (OrderStatus.TO_REVIEW, OrderStatus.HELD):
        order = order_services.approve(order=order, actor=None)
    parcel_services.ensure_parcels()
    parcel = Parcel.objects.filter(lines__order_line__order=order).distinct().get()
    waybill = Waybill.objects.create(
        parcel=parcel, store=store, key=f"world-{store.pk}", carrier="zto", status=Waybill.Status.FAILED
    )
    write_back = WriteBack.objects.create(
        parcel=parcel,
        order=order,
        key=f"world-wb-{store.pk}",
        carrier_code="zhongtong",
        tracking_no="73100000000000",
        status=WriteBack.Status.GIVEN_UP,
    )
    return {"parcel": parcel.pk, "waybill": waybill.pk, "write_back": write_back.pk}


def _after_sale_objects(store, order) -> dict:
    """An after-sale waiting for the merchant, with one refused answer (retryable)."""
    from aftersales.models import AfterSale, AfterSaleAction

    at = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
    after_sale = AfterSale.objects.create(
        store=store,
        platform="douyin",
        platform_after_sale_id=f"AS{order.platform_order_id}",
        platform_order_id=order.platform_order_id,
        order=order,
        type=AfterSale.Type.REFUND_UNSHIPPED,
        channel_status="waiting_merchant",
        platform_status="6",
        refund_fen=9900,
        platform_updated_at=at,
        applied_at=at,
    )
    action = AfterSaleAction.objects.create(
        after_sale=after_sale,
        kind=AfterSaleAction.Kind.APPROVE,
        key=f"{after_sale.pk}:approve:world",
        status=AfterSaleAction.Status.FAILED,
        error="平台拒绝",
    )
    return {"after_sale": after_sale.pk, "after_sale_action": action.pk}

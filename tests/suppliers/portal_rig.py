"""Dispatches for the portal tests: orders ingested with a stand-in router that sends some
merchant codes to a supplier's warehouse (so an order splits between the merchant's own
warehouse and the supplier), the supplier's Dispatch (made by suppliers.dispatches' fulfilment
hook) and its parcels; supplier users and clients."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone
from django_tenants.utils import schema_context

from logistics import services as parcel_services
from orders import hooks
from orders import services as order_services
from orders.models import Order
from suppliers.models import Dispatch, Supplier, SupplierSku
from tenants.accounts.models import Role
from tests.conftest import make_user, tenant_client
from tests.orders.conftest import channel_order, line, receiver
from tests.suppliers.dispatch_rig import _router as stand_in_router
from tests.suppliers.factories import bind, make_supplier

PASSWORD = "Staff-pass-2026"


@contextmanager
def routing(table: dict[str, int]):
    """Lines of these merchant codes go to these warehouses ({code: warehouse id}) while inside
    (the dispatch tests' stand-in router, registered last so that it decides)."""
    from inventory.models import Sku

    by_sku = {
        pk: table[code]
        for pk, code in Sku.objects.filter(merchant_code__in=table).values_list("pk", "merchant_code")
    }
    hook = stand_in_router(by_sku)
    hooks.register_router(hook)
    try:
        yield hook
    finally:
        hooks._routers.remove(hook)


def supplier(code: str, skus, **fields) -> Supplier:
    """A supplier of these SKUs (cost 6 元 each, its own code SUP-<merchant code>, 5 元 freight per
    dispatch), each with 50 in stock."""
    made = make_supplier(code, name=f"{code} 供应商", **fields)
    for sku in skus:
        bind(made, sku, cost_fen=600, stock=50, supplier_code=f"SUP-{sku.merchant_code}",
             freight=SupplierSku.Freight.PER_DISPATCH, freight_fen=500)  # fmt: skip
    return made


def order_for(
    store, sup: Supplier, oid: str, *lines, ship_by_hours: int | None = 24
) -> tuple[Order, Dispatch]:
    """An order (lines ``(n, code, qty)``) whose CAP-RED / TS-BLK-M lines go to ``sup``; its dispatch."""
    codes = {"CAP-RED": sup.warehouse_id, "TS-BLK-M": sup.warehouse_id}
    with routing(codes):
        order = order_services.ingest_channel_order(
            store=store,
            co=channel_order(
                oid=oid,
                receiver=receiver(f"r-{oid}"),
                lines=tuple(line(n, code, qty) for n, code, qty in lines),
                ship_by=timezone.now() + timedelta(hours=ship_by_hours)
                if ship_by_hours is not None
                else None,
            ),
        )
    return order, dispatch_of(order, sup)


def dispatch_of(order: Order, sup: Supplier) -> Dispatch:
    """The supplier's dispatch of ``order`` (made by the suppliers' fulfilment hook) with its parcels."""
    dispatch = (
        Dispatch.objects.filter(fulfilment__lines__order_line__order=order, supplier=sup).distinct().get()
    )
    parcel_services.ensure_parcels(fulfilments=[dispatch.fulfilment_id])
    return dispatch


def supplier_user(tenant, username: str, sup: Supplier | None, role: str = Role.SUPPLIER):
    user = make_user(tenant, username, role)
    with schema_context(tenant.schema_name):
        get_user_model().objects.filter(pk=user.pk).update(supplier_id=sup.pk if sup else None)
        user.refresh_from_db()
    return user


def client_for(tenant, user):
    client = tenant_client(tenant)
    response = client.post("/accounts/login/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302, response.content.decode()[:300]
    return client


def two_suppliers(tenant, store, skus, *lines_a) -> dict:
    """Suppliers A (CAP-RED, TS-BLK-M) and B (CAP-RED) of ``tenant``, each with a dispatch (A's of an
    order with ``lines_a``, B's of order B1) and a user each."""
    a = supplier("SA", [skus["CAP-RED"], skus["TS-BLK-M"]])
    b = supplier("SB", [skus["CAP-RED"]])
    order_a, dispatch_a = order_for(store, a, "A1", *lines_a)
    order_b, dispatch_b = order_for(store, b, "B1", (1, "CAP-RED", 1))
    return {
        "a": a, "b": b, "order_a": order_a, "order_b": order_b, "dispatch_a": dispatch_a,
        "dispatch_b": dispatch_b, "user_a": supplier_user(tenant, "sup-a", a),
        "user_b": supplier_user(tenant, "sup-b", b),
    }  # fmt: skip

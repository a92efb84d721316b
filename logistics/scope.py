"""Who ships a parcel, and whose parcels a caller may act on.

A parcel ships from its fulfilment's warehouse (``orders.Fulfilment.warehouse``; null = the
default own warehouse): one of the merchant's own warehouses (``Warehouse.kind`` OWN) or a
dropship supplier's (SUPPLIER, ``suppliers.Supplier.warehouse``). That warehouse decides the
sender address, the carrier rules' warehouse condition and the shelf locations of the pick list.

Scope, for the services the supplier portal calls (take, print, PDF, ship, manual entry, import):

- ``warehouse=None`` — the merchant. The workbench, its counts, its notices and every "whole tab"
  action see the merchant's **own** warehouses only (``own_q``): a supplier's parcels are the
  supplier's work, in the portal. Parcels named by id are not refused: the merchant may act on a
  supplier's parcel by hand in an emergency (the supplier is unreachable, the cut-off is near);
- ``warehouse=<a Warehouse or its id>`` — one shipper (the portal passes the supplier's own
  warehouse). Every parcel named must ship from there, else the whole call is refused with a
  ValidationError (zh-Hans) before anything happens: a bug in the portal's own check cannot make
  a supplier act on another supplier's or the merchant's parcels. Scoped batches remember their
  warehouse (``ShipBatch.params["warehouse_id"]``, see ``check_batch``).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.utils.translation import gettext

from inventory.models import Warehouse
from logistics.models import Parcel, SenderAddress, ShipBatch

OWN, SUPPLIER = Warehouse.Kind.OWN, Warehouse.Kind.SUPPLIER


def default_warehouse_id() -> int | None:
    """The default own warehouse (read only: ``inventory.services.default_warehouse`` may create one)."""
    return (
        Warehouse.objects.filter(kind=OWN, is_active=True)
        .order_by("-is_default", "id")
        .values_list("pk", flat=True)
        .first()
    )


def warehouse_id_of(warehouse: Warehouse | int | None) -> int | None:
    if warehouse is None:
        return None
    return warehouse if isinstance(warehouse, int) else warehouse.pk


def own_q(prefix: str = "fulfilment__") -> Q:
    """Rows (parcels by default; ``prefix=""`` for fulfilments) shipped from an own warehouse."""
    return Q(**{f"{prefix}warehouse__isnull": True}) | Q(**{f"{prefix}warehouse__kind": OWN})


def warehouse_q(warehouse: Warehouse | int, prefix: str = "fulfilment__") -> Q:
    """Rows shipped from ``warehouse`` (the default own warehouse also takes fulfilments without one)."""
    wid = warehouse_id_of(warehouse)
    q = Q(**{f"{prefix}warehouse_id": wid})
    if wid is not None and wid == default_warehouse_id():
        q |= Q(**{f"{prefix}warehouse__isnull": True})
    return q


def scoped(qs: QuerySet[Parcel], warehouse: Warehouse | int | None) -> QuerySet[Parcel]:
    """``qs`` limited to one shipper, or to the own warehouses when ``warehouse`` is None."""
    return qs.filter(own_q() if warehouse is None else warehouse_q(warehouse))


def parcel_warehouse_id(parcel: Parcel) -> int | None:
    """The warehouse a parcel ships from (its fulfilment's, else the default own one)."""
    wid = parcel.fulfilment.warehouse_id if parcel.fulfilment_id else None
    return wid or default_warehouse_id()


def _refuse(warehouse: Warehouse | int, count: int) -> ValidationError:
    wid = warehouse_id_of(warehouse)
    name = Warehouse.objects.filter(pk=wid).values_list("name", flat=True).first() or str(wid)
    return ValidationError(
        gettext("%(n)d of the chosen parcels are not shipped by %(who)s: nothing was done.")
        % {"n": count, "who": name},
        code="out_of_scope",
    )


def check_parcels(parcel_ids: Iterable[int], warehouse: Warehouse | int | None) -> list[int]:
    """The ids (deduplicated, in order) when every one ships from ``warehouse``; ValidationError
    otherwise (an unknown id counts as outside). ``warehouse=None``: the merchant, no check."""
    ids = list(dict.fromkeys(int(i) for i in parcel_ids))
    if warehouse is None or not ids:
        return ids
    inside = set(scoped(Parcel.objects.filter(pk__in=ids), warehouse).values_list("pk", flat=True))
    outside = [i for i in ids if i not in inside]
    if outside:
        raise _refuse(warehouse, len(outside))
    return ids


def batch_params(warehouse: Warehouse | int | None) -> dict:
    wid = warehouse_id_of(warehouse)
    return {} if wid is None else {"warehouse_id": wid}


def check_batch(batch: ShipBatch, warehouse: Warehouse | int | None) -> ShipBatch:
    """A scoped caller may only see its own batches (progress, files): ValidationError otherwise."""
    if warehouse is not None and batch.params.get("warehouse_id") != warehouse_id_of(warehouse):
        raise ValidationError(gettext("This batch is not yours."), code="out_of_scope")
    return batch


# --- sender addresses ---------------------------------------------------------------------------------


class SenderMissing(Exception):
    """A supplier's warehouse has no sender address of its own (retryable once one is added)."""


def sender_for(warehouse_id: int | None) -> SenderAddress | None:
    """The ship-from address of a warehouse: its own address (the default one first); for an own
    warehouse without one, the merchant's default (else oldest) address that belongs to no
    supplier; for a supplier's warehouse, never the merchant's — ``SenderMissing`` instead.
    None when the merchant has no address at all."""
    warehouse = Warehouse.objects.filter(pk=warehouse_id).first() if warehouse_id else None
    if warehouse is not None:
        own = SenderAddress.objects.filter(warehouse=warehouse).order_by("-is_default", "id").first()
        if own is not None:
            return own
        if warehouse.kind == SUPPLIER:
            raise SenderMissing(
                gettext("supplier %(name)s has no sender address: add one for the supplier, then retry")
                % {"name": warehouse.name}
            )
    merchant = SenderAddress.objects.exclude(warehouse__kind=SUPPLIER)
    return merchant.filter(is_default=True).first() or merchant.order_by("id").first()

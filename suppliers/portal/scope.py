"""The one scoping base of the supplier portal and the supplier API.

Every portal page and API endpoint resolves ``request.user.supplier_id`` to the Supplier here
(an active user of the tenant with role SUPPLIER — capability ``supplier.portal`` — linked to an
existing supplier) and reads only through :class:`Scope`: that supplier's dispatches
(``Dispatch.objects.filter(supplier=…)``) and the parcels of those dispatches' fulfilments.
Anything else is "not found" (404): a supplier never learns whether another supplier's
dispatch exists. Staff users are refused the portal (403) by the capability itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import wraps

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404
from rest_framework.permissions import BasePermission

from logistics.models import Parcel
from suppliers.models import Dispatch, Supplier
from tenants.accounts.permissions import capability_required, has_capability

CAPABILITY = "supplier.portal"


def supplier_of(user) -> Supplier | None:
    """The supplier ``user`` works for, or None (not a supplier user, or not linked)."""
    if not has_capability(user, CAPABILITY) or not getattr(user, "supplier_id", None):
        return None
    return Supplier.objects.filter(pk=user.supplier_id).first()


@dataclass(frozen=True)
class Scope:
    """What one supplier may see; every portal/API query starts here."""

    supplier: Supplier

    @classmethod
    def of(cls, user) -> Scope:
        supplier = supplier_of(user)
        if supplier is None:
            raise PermissionDenied(CAPABILITY)
        return cls(supplier)

    @property
    def warehouse_id(self) -> int:
        """The supplier's warehouse: the ``warehouse=`` scope every logistics call gets."""
        return self.supplier.warehouse_id

    def dispatches(self) -> QuerySet[Dispatch]:
        return Dispatch.objects.filter(supplier=self.supplier)

    def dispatch(self, pk) -> Dispatch:
        """One of the supplier's dispatches, or 404."""
        try:
            pk = int(pk)
        except (TypeError, ValueError):
            raise Http404 from None
        found = self.dispatches().select_related("store", "fulfilment").filter(pk=pk).first()
        if found is None:
            raise Http404
        return found

    def dispatch_ids(self, ids: Iterable) -> list[int]:
        """Those of ``ids`` that are the supplier's dispatches (others are dropped), in order."""
        wanted = list(dict.fromkeys(int(i) for i in ids if str(i).isdigit() and len(str(i)) < 19))
        mine = set(self.dispatches().filter(pk__in=wanted).values_list("pk", flat=True))
        return [pk for pk in wanted if pk in mine]

    def parcels(self) -> QuerySet[Parcel]:
        """Parcels of the supplier's dispatches (their fulfilments ship from its warehouse)."""
        return Parcel.objects.filter(
            fulfilment__dispatch__supplier=self.supplier,
            fulfilment__warehouse_id=self.supplier.warehouse_id,
        )

    def parcel(self, pk) -> Parcel:
        try:
            pk = int(pk)
        except (TypeError, ValueError):
            raise Http404 from None
        found = self.parcels().select_related("store").filter(pk=pk).first()
        if found is None:
            raise Http404
        return found

    def parcels_of(self, dispatch_ids: Iterable[int]) -> QuerySet[Parcel]:
        return self.parcels().filter(fulfilment__dispatch__in=self.dispatch_ids(dispatch_ids))


def supplier_view(view):
    """Page decorator: anonymous → login, staff → 403 (capability ``supplier.portal``), a
    supplier user not linked to a supplier → 403; the view gets ``request.scope``."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        request.scope = Scope.of(request.user)
        return view(request, *args, **kwargs)

    return capability_required(CAPABILITY)(wrapped)


class SupplierScopePermission(BasePermission):
    """API counterpart (beside ``TenantStaffAPIPermission`` with read/write capability
    ``supplier.portal``): the token's user must be linked to a supplier; puts ``request.scope``."""

    message = "You do not have permission to perform this action."

    def has_permission(self, request, view) -> bool:
        supplier = supplier_of(request.user)
        if supplier is None:
            return False
        request.scope = Scope(supplier)
        return True

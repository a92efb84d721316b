"""Who may do what: the one place where roles map to capabilities.

Views use :func:`capability_required` / :class:`CapabilityRequiredMixin`, the API uses
:class:`TenantStaffAPIPermission`; both ask :func:`has_capability`.
"""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db import connection
from django_tenants.utils import get_public_schema_name
from rest_framework.permissions import SAFE_METHODS, BasePermission

from tenants.accounts.models import Role

STAFF_ROLES = {Role.OWNER, Role.OPERATOR, Role.WAREHOUSE, Role.FINANCE, Role.VIEWER}

# capability -> roles that hold it
CAPABILITIES: dict[str, frozenset[str]] = {
    "dashboard.view": frozenset(STAFF_ROLES),
    "staff.manage": frozenset({Role.OWNER}),
    "shops.manage": frozenset({Role.OWNER, Role.OPERATOR}),
    "orders.manage": frozenset({Role.OWNER, Role.OPERATOR}),
    # Bulk outflow and raw platform data are capabilities of their own, not "can read".
    "orders.export": frozenset({Role.OWNER, Role.OPERATOR}),
    "orders.snapshots": frozenset({Role.OWNER, Role.OPERATOR}),
    "inventory.export": frozenset({Role.OWNER, Role.OPERATOR}),
    "inventory.manage": frozenset({Role.OWNER, Role.OPERATOR, Role.WAREHOUSE}),
    "shipping.manage": frozenset({Role.OWNER, Role.OPERATOR, Role.WAREHOUSE}),
    "aftersales.manage": frozenset({Role.OWNER, Role.OPERATOR}),
    # Receiving and inspecting return parcels is warehouse work.
    "returns.receive": frozenset({Role.OWNER, Role.OPERATOR, Role.WAREHOUSE}),
    "finance.manage": frozenset({Role.OWNER, Role.FINANCE}),
    "buyer_data.decrypt": frozenset({Role.OWNER, Role.OPERATOR}),
    "supplier.portal": frozenset({Role.SUPPLIER}),
}


def in_tenant_schema() -> bool:
    return getattr(connection, "schema_name", None) not in (None, get_public_schema_name())


def has_capability(user, capability: str) -> bool:
    """True when ``user`` is an active user of the current tenant whose role grants ``capability``."""
    if capability not in CAPABILITIES:
        raise ValueError(f"unknown capability {capability!r}")
    if not (user and user.is_authenticated and user.is_active and in_tenant_schema()):
        return False
    return user.role in CAPABILITIES[capability]


def capability_required(capability: str):
    """View decorator: anonymous users go to the login page, users without the capability get 403."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not has_capability(request.user, capability):
                raise PermissionDenied(capability)
            return view(request, *args, **kwargs)

        wrapped.required_capability = capability  # read by the generated isolation matrix
        return wrapped

    return decorator


class CapabilityRequiredMixin:
    """Class-based-view counterpart of :func:`capability_required`."""

    required_capability = "dashboard.view"

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not has_capability(request.user, self.required_capability):
            raise PermissionDenied(self.required_capability)
        return super().dispatch(request, *args, **kwargs)


class TenantStaffAPIPermission(BasePermission):
    """Default API permission: a tenant staff user; reads need ``read_capability`` (default
    dashboard.view), writes need the view's ``write_capability`` (default: none allowed)."""

    message = "You do not have permission to perform this action."

    def has_permission(self, request, view) -> bool:
        if request.method in SAFE_METHODS:
            capability = getattr(view, "read_capability", "dashboard.view")
        else:
            capability = getattr(view, "write_capability", None)
            if capability is None:
                return False
        return has_capability(request.user, capability)

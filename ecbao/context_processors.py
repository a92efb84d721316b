from django.db import connection
from django_tenants.utils import get_public_schema_name

from tenants.accounts.permissions import CAPABILITIES, has_capability


def shell(request):
    """What the dashboard shell needs: the tenant, and the current user's capabilities so the
    navigation only shows areas the user may open."""
    is_public = getattr(connection, "schema_name", None) == get_public_schema_name()
    user = getattr(request, "user", None)
    caps = set()
    if not is_public and user is not None:
        caps = {cap for cap in CAPABILITIES if has_capability(user, cap)}
    return {
        "current_tenant": None if is_public else getattr(request, "tenant", None),
        "is_public_site": is_public,
        "caps": caps,
    }

from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.utils import timezone

from tenants.accounts.models import ApiToken, Invitation


def staff_list() -> QuerySet:
    return get_user_model().objects.order_by("role", "username")


def open_invitations() -> QuerySet:
    return Invitation.objects.filter(accepted_at__isnull=True, expires_at__gt=timezone.now())


def api_tokens() -> QuerySet:
    """Tokens that still work (expired ones are refused by the authentication and not listed)."""
    return (
        ApiToken.objects.select_related("user")
        .filter(expiry__gt=timezone.now())
        .order_by("user__username", "-created")
    )

from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.utils import timezone

from tenants.accounts.models import Invitation


def staff_list() -> QuerySet:
    return get_user_model().objects.order_by("role", "username")


def open_invitations() -> QuerySet:
    return Invitation.objects.filter(accepted_at__isnull=True, expires_at__gt=timezone.now())

from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.signals import user_logged_in
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import api_view, permission_classes
from rest_framework.exceptions import ParseError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from ecbao.api import error_response
from tenants.accounts import selectors, services, throttle
from tenants.accounts.models import Invitation, Role
from tenants.accounts.permissions import STAFF_ROLES, has_capability, in_tenant_schema


class UserSerializer(serializers.ModelSerializer):
    email = serializers.CharField(read_only=True, help_text="May be empty.")

    class Meta:
        model = get_user_model()
        fields = ["id", "username", "email", "first_name", "last_name", "role", "is_active", "date_joined"]
        read_only_fields = fields


class InvitationSerializer(serializers.ModelSerializer):
    role = serializers.ChoiceField(choices=[c for c in Role.choices if c[0] != Role.OWNER])
    invite_token = serializers.SerializerMethodField(help_text="Shown once, at creation; null otherwise.")

    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "created_at", "expires_at", "accepted_at", "invite_token"]
        read_only_fields = ["id", "created_at", "expires_at", "accepted_at", "invite_token"]

    @extend_schema_field({"type": "string", "nullable": True})
    def get_invite_token(self, invitation) -> str | None:
        return getattr(invitation, "invite_token", None)


class UserUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=[c for c in Role.choices if c[0] in STAFF_ROLES], required=False)
    is_active = serializers.BooleanField(required=False)


class UserViewSet(mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet):
    """The tenant's users with their e-mail addresses: only for owners, who may also change a
    staff member's role or deactivate them (PATCH; the last active owner stays an active owner)."""

    serializer_class = UserSerializer
    filterset_fields = ["role", "is_active"]
    read_capability = "staff.manage"
    write_capability = "staff.manage"
    http_method_names = ["get", "patch", "head", "options"]

    def get_queryset(self):
        return selectors.staff_list().order_by("-id")

    @extend_schema(request=UserUpdateSerializer, responses=UserSerializer)
    def partial_update(self, request, *args, **kwargs):
        user = self.get_object()
        changes = UserUpdateSerializer(data=request.data)
        changes.is_valid(raise_exception=True)
        try:
            if "role" in changes.validated_data:
                user = services.change_role(
                    actor=request.user, user_id=user.pk, role=changes.validated_data["role"]
                )
            if "is_active" in changes.validated_data:
                user = services.set_active(
                    actor=request.user, user_id=user.pk, active=changes.validated_data["is_active"]
                )
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"detail": exc.messages}) from None
        return Response(UserSerializer(user).data)


class InvitationViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Open staff invitations; only owners may list or create them."""

    serializer_class = InvitationSerializer
    read_capability = "staff.manage"
    write_capability = "staff.manage"

    def get_queryset(self):
        return selectors.open_invitations().order_by("-id")

    def perform_create(self, serializer):
        invitation, raw_token = services.invite_staff(
            invited_by=self.request.user,
            email=serializer.validated_data["email"],
            role=serializer.validated_data["role"],
        )
        invitation.invite_token = raw_token
        serializer.instance = invitation


@extend_schema(responses=UserSerializer)
@api_view(["GET"])
def me(request):
    """The authenticated user."""
    return Response(UserSerializer(request.user).data)


@extend_schema(
    request=inline_serializer(
        "TokenRequest",
        {
            "username": serializers.CharField(),
            "password": serializers.CharField(),
            "name": serializers.CharField(required=False, help_text="A label shown in the token list."),
        },
    ),
    responses=inline_serializer(
        "TokenResponse", {"token": serializers.CharField(), "expiry": serializers.DateTimeField()}
    ),
    auth=[],
)
@api_view(["POST"])
@permission_classes([AllowAny])
def obtain_token(request):
    """Exchange a username and password of this tenant for a new API token (throttled like the
    login page: per username and address, and per address). The key is shown only here."""
    if not in_tenant_schema():
        return error_response(
            code="not_found", message=_("Not found."), http_status=status.HTTP_404_NOT_FOUND
        )
    if not isinstance(request.data, dict):
        raise ParseError(_("Expected a JSON object."))
    username = str(request.data.get("username", ""))
    password = str(request.data.get("password", ""))
    user = authenticate(request, username=username, password=password)
    if user is None and throttle.was_locked(request):
        return error_response(
            code="locked",
            message=_("Too many failed attempts; try again later."),
            http_status=status.HTTP_429_TOO_MANY_REQUESTS,
        )
    if user is None or not has_capability(user, "dashboard.view"):
        return error_response(
            code="authentication_failed",
            message=_("Invalid username or password."),
            http_status=status.HTTP_400_BAD_REQUEST,
        )
    # A sign-in: resets this (username, address) pair's failures and records last_login.
    user_logged_in.send(sender=user.__class__, request=request, user=user)
    token, raw_key = services.issue_api_token(user=user, name=str(request.data.get("name") or "API"))
    return Response({"token": raw_key, "expiry": token.expiry})

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from tenants.accounts import selectors, services
from tenants.accounts.forms import (
    AcceptInvitationForm,
    ApiTokenForm,
    InviteForm,
    ThrottledAuthenticationForm,
)
from tenants.accounts.models import Role
from tenants.accounts.permissions import STAFF_ROLES, capability_required, has_capability

STAFF_ROLE_CHOICES_ALL = [(value, label) for value, label in Role.choices if value in STAFF_ROLES]


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = ThrottledAuthenticationForm
    redirect_authenticated_user = True

    def get_default_redirect_url(self):
        if has_capability(self.request.user, "supplier.portal"):
            return reverse("accounts:supplier_home")
        return super().get_default_redirect_url()


class LogoutView(auth_views.LogoutView):
    pass


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:password_change_done")


class PasswordChangeDoneView(auth_views.PasswordChangeDoneView):
    template_name = "accounts/password_change_done.html"


@capability_required("staff.manage")
def staff(request):
    form = InviteForm(request.POST or None)
    invite_link = None
    if request.method == "POST" and form.is_valid():
        try:
            _invitation, raw_token = services.invite_staff(
                invited_by=request.user, email=form.cleaned_data["email"], role=form.cleaned_data["role"]
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            invite_link = request.build_absolute_uri(reverse("accounts:accept_invitation", args=[raw_token]))
            messages.success(
                request,
                _("Invitation created. Send the link below to %(email)s.")
                % {"email": form.cleaned_data["email"]},
            )
            form = InviteForm()
    return render(
        request,
        "accounts/staff.html",
        {
            "form": form,
            "invite_link": invite_link,
            "users": selectors.staff_list(),
            "staff_roles": STAFF_ROLE_CHOICES_ALL,
            "invitations": selectors.open_invitations(),
        },
    )


@require_POST
@capability_required("staff.manage")
def staff_member(request, user_id):
    """Change a staff member's role, or deactivate / reactivate them (owners only)."""
    action = request.POST.get("action")
    try:
        if action == "role":
            user = services.change_role(
                actor=request.user, user_id=user_id, role=request.POST.get("role", "")
            )
            messages.success(
                request,
                _("%(user)s is now %(role)s.") % {"user": user.username, "role": user.get_role_display()},
            )
        elif action in ("deactivate", "activate"):
            user = services.set_active(actor=request.user, user_id=user_id, active=action == "activate")
            text = _("%(user)s can sign in again.") if user.is_active else _("%(user)s was deactivated.")
            messages.success(request, text % {"user": user.username})
        else:
            raise Http404
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
    return redirect("accounts:staff")


def accept_invitation(request, token):
    invitation = services.get_open_invitation(raw_token=token)
    if invitation is None:
        raise Http404(_("This invitation is invalid, used or expired."))
    form = AcceptInvitationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.accept_invitation(
                raw_token=token,
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password1"],
            )
        except ValidationError as exc:
            for field, errors in getattr(exc, "error_dict", {None: exc.error_list}).items():
                for error in errors:
                    form.add_error(field if field in form.fields else None, error)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("accounts:supplier_home" if user.is_supplier else "dashboard:home")
    return render(request, "accounts/accept_invitation.html", {"form": form, "invitation": invitation})


@capability_required("dashboard.view")
def api_tokens(request):
    """The user's API tokens (name, start of the key, expiry, last use) with create and revoke;
    people who manage staff also see and revoke everyone else's. A new key is shown once."""
    form = ApiTokenForm(request.POST or None)
    new_key = None
    if request.method == "POST" and form.is_valid():
        _token, new_key = services.issue_api_token(
            user=request.user, name=form.cleaned_data["name"], days=int(form.cleaned_data["days"])
        )
        messages.success(request, _("A new API token was created. Copy it now: it is not shown again."))
        form = ApiTokenForm()
    others = None
    if has_capability(request.user, "staff.manage"):
        others = selectors.api_tokens().exclude(user=request.user)
    return render(
        request,
        "accounts/api_tokens.html",
        {
            "form": form,
            "new_key": new_key,
            "tokens": selectors.api_tokens().filter(user=request.user),
            "others": others,
        },
    )


@require_POST
@capability_required("dashboard.view")
def api_token_revoke(request, digest):
    try:
        token = services.revoke_api_token(actor=request.user, digest=digest)
    except PermissionDenied as exc:
        raise Http404(str(exc)) from None
    messages.success(request, _("Token %(name)s was revoked.") % {"name": token.name or token.token_key})
    return redirect("accounts:api_tokens")


@capability_required("supplier.portal")
def supplier_home(request):
    """Kept for old links and the login redirect: the supplier portal lives at /supplier/."""
    return redirect("supplier_portal:list")

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from tenants.accounts import throttle
from tenants.accounts.models import Role


class ThrottledAuthenticationForm(AuthenticationForm):
    """Login form that says so when the attempt was refused by a lock (tenants/accounts/throttle.py)
    rather than by the password."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "locked": _("Too many failed sign-in attempts. Try again in 15 minutes."),
    }

    def clean(self):
        try:
            return super().clean()
        except ValidationError:
            if throttle.was_locked(self.request):
                raise ValidationError(self.error_messages["locked"], code="locked") from None
            raise


STAFF_ROLE_CHOICES = [(value, label) for value, label in Role.choices if value != Role.OWNER]


class InviteForm(forms.Form):
    email = forms.EmailField(label=_("Email"))
    role = forms.ChoiceField(label=_("Role"), choices=STAFF_ROLE_CHOICES)


class ApiTokenForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100, help_text=_("What uses it, e.g. the ERP bridge."))
    days = forms.TypedChoiceField(
        label=_("Valid for"),
        coerce=int,
        initial=90,
        choices=[(30, _("30 days")), (90, _("90 days")), (365, _("1 year"))],
    )


class AcceptInvitationForm(forms.Form):
    username = forms.RegexField(
        label=_("Username"),
        max_length=150,
        regex=r"^[\w.@+-]+$",
        error_messages={"invalid": _("Letters, digits and @/./+/-/_ only.")},
    )
    password1 = forms.CharField(label=_("Password"), widget=forms.PasswordInput)
    password2 = forms.CharField(label=_("Password again"), widget=forms.PasswordInput)

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("password1") != cleaned.get("password2"):
            raise ValidationError(_("The two passwords differ."))
        return cleaned

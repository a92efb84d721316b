from django import forms
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from tenants.services import validate_slug


class SignupForm(forms.Form):
    name = forms.CharField(label=_("Company or shop name"), max_length=100)
    slug = forms.CharField(
        label=_("Your address"),
        max_length=30,
        help_text=_("3–30 lowercase letters, digits or hyphens; your dashboard will be at <address>.%(base)s")
        % {"base": settings.ECBAO_BASE_DOMAIN},
    )
    username = forms.RegexField(label=_("Owner username"), max_length=150, regex=r"^[\w.@+-]+$")
    email = forms.EmailField(label=_("Email"), required=False)
    password = forms.CharField(label=_("Password"), widget=forms.PasswordInput)

    def clean_slug(self):
        return validate_slug(self.cleaned_data["slug"])

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("password"):
            try:
                validate_password(cleaned["password"])
            except ValidationError as exc:
                self.add_error("password", exc)
        return cleaned

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
    email = forms.EmailField(label=_("Email"))
    password = forms.CharField(label=_("Password"), widget=forms.PasswordInput)

    def __init__(self, *args, challenge=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.challenge = challenge
        if challenge is not None:
            self.fields["answer"] = forms.IntegerField(
                label=self.challenge_label(), help_text=_("A small check that a person is signing up.")
            )

    def challenge_label(self) -> str:
        a, b = self.challenge.question()
        return _("How much is %(a)d + %(b)d?") % {"a": a, "b": b}

    def clean_answer(self):
        answer = self.cleaned_data.get("answer")
        if not self.challenge.check(answer):
            raise ValidationError(_("That is not the right sum; try the new one."), code="challenge")
        return answer

    def next_challenge(self) -> None:
        """After a submission, show the next question (each is answered once)."""
        if self.challenge is not None:
            self.fields["answer"].label = self.challenge_label()

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

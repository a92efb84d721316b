from django import forms
from django.utils.translation import gettext_lazy as _

from channels.models import PLATFORM_CHOICES

SELF_USE_PLATFORMS = [(value, label) for value, label in PLATFORM_CHOICES if value in ("douyin", "wechat")]


class SelfUseAppForm(forms.Form):
    platform = forms.ChoiceField(label=_("Platform"), choices=SELF_USE_PLATFORMS)
    app_key = forms.CharField(label=_("App key / AppID"), max_length=128)
    app_secret = forms.CharField(label=_("App secret"), max_length=256, widget=forms.PasswordInput)
    platform_shop_id = forms.CharField(
        label=_("Shop ID"),
        max_length=64,
        required=False,
        help_text=_("Douyin: the shop id. WeChat: leave empty (the AppID is the shop)."),
    )
    token = forms.CharField(label=_("Message token (WeChat)"), max_length=128, required=False)
    aes_key = forms.CharField(label=_("EncodingAESKey (WeChat)"), max_length=64, required=False)

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("platform") == "douyin" and not cleaned.get("platform_shop_id"):
            self.add_error("platform_shop_id", _("Douyin self-use apps need the shop id."))
        return cleaned

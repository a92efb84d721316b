"""Forms of the shipping settings pages: input shapes only; the rules are in
``logistics.configuration`` (its ValidationErrors are put back on these fields by name)."""

from __future__ import annotations

import re

from django import forms
from django.utils.translation import gettext_lazy as _

from channels import carriers
from channels.models import Store
from inventory.models import Warehouse
from logistics import configuration
from logistics.models import PrintRecord, SenderAddress, WaybillAccount

_SEPARATORS = re.compile(r"[\s,，、;；]+")


class ListField(forms.CharField):
    """Words separated by spaces, commas or 、 → a list."""

    def to_python(self, value):
        text = super().to_python(value) or ""
        return [part for part in _SEPARATORS.split(text) if part]

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return " ".join(value)
        return value


class AccountChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, account):
        return (
            f"{account.store.name} · {carriers.name_of(account.carrier)} · "
            f"{account.branch_name or account.branch_code or '—'}"
            + (f" ({account.available})" if account.available is not None else "")
        )


class CarrierRuleForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    priority = forms.IntegerField(
        label=_("Priority"),
        min_value=0,
        max_value=configuration.MAX_PRIORITY,
        initial=100,
        help_text=_("Smaller first: the first enabled rule that matches a parcel chooses its carrier."),
    )
    enabled = forms.BooleanField(label=_("Enabled"), required=False, initial=True)
    carrier = forms.ChoiceField(label=_("Carrier"))
    account = AccountChoiceField(
        label=_("Waybill account"),
        queryset=WaybillAccount.objects.none(),
        required=False,
        empty_label=_("The shop's account for this carrier"),
    )
    store_ids = forms.TypedMultipleChoiceField(
        label=_("Shops"),
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("None ticked: every shop."),
    )
    warehouse = forms.ModelChoiceField(
        label=_("Warehouse"),
        queryset=Warehouse.objects.none(),
        required=False,
        empty_label=_("Any warehouse"),
    )
    provinces = ListField(
        label=_("Receiver provinces"),
        required=False,
        max_length=1000,
        help_text=_("Separated by spaces or commas, e.g. 浙江 江苏 上海; empty: anywhere."),
    )
    min_weight_g = forms.IntegerField(
        label=_("Weight from (g)"), min_value=0, max_value=configuration.MAX_WEIGHT_G, required=False
    )
    max_weight_g = forms.IntegerField(
        label=_("Weight up to (g)"), min_value=0, max_value=configuration.MAX_WEIGHT_G, required=False
    )
    merchant_codes = ListField(
        label=_("SKU merchant codes"),
        required=False,
        max_length=4000,
        help_text=_("The rule applies when a parcel holds any of them; empty: any SKU."),
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["carrier"].choices = carriers.choices()
        self.fields["store_ids"].choices = [
            (store.pk, f"{store.get_platform_display()} · {store.name}")
            for store in Store.objects.order_by("platform", "name")
        ]
        self.fields["account"].queryset = (
            WaybillAccount.objects.filter(is_active=True)
            .select_related("store")
            .order_by("store_id", "carrier")
        )
        self.fields["warehouse"].queryset = Warehouse.objects.filter(is_active=True)

    @staticmethod
    def initial_for(rule) -> dict:
        return {field: getattr(rule, field) for field in configuration.RULE_FIELDS}


class SenderForm(forms.ModelForm):
    make_default = forms.BooleanField(label=_("Default sender"), required=False)

    class Meta:
        model = SenderAddress
        fields = list(configuration.SENDER_FIELDS)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["warehouse"].queryset = Warehouse.objects.filter(is_active=True)
        self.fields["warehouse"].label = _("Warehouse")
        self.fields["warehouse"].required = False
        if self.instance.pk:
            self.fields["make_default"].initial = self.instance.is_default


class PrintFilterForm(forms.Form):
    """Print history filters (GET); invalid values are ignored."""

    q = forms.CharField(
        label=_("Search"),
        required=False,
        max_length=64,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": _("Tracking number")}),
    )
    status = forms.ChoiceField(
        label=_("Status"), required=False, choices=[("", _("Any status")), *PrintRecord.Status.choices]
    )
    kind = forms.ChoiceField(
        label=_("Printed by"), required=False, choices=[("", _("Any way")), *PrintRecord.Kind.choices]
    )
    reprint = forms.ChoiceField(
        label=_("Reprint"),
        required=False,
        choices=[
            ("", _("First prints and reprints")),
            ("1", _("Reprints only")),
            ("0", _("First prints only")),
        ],
    )
    since = forms.DateField(label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))


MAX_IMPORT_BYTES = 20 * 1024 * 1024


class ManualEntryForm(forms.Form):
    """One order shipped outside ecbao: its number, carrier and tracking number."""

    platform_order_id = forms.CharField(label=_("Platform order no."), max_length=64)
    store = forms.ModelChoiceField(
        label=_("Shop"),
        queryset=Store.objects.none(),
        required=False,
        empty_label=_("All shops"),
        help_text=_("Only needed when two shops have an order with this number."),
    )
    carrier = forms.ChoiceField(label=_("Carrier"))
    tracking_no = forms.CharField(label=_("Tracking number"), max_length=64)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["carrier"].choices = carriers.choices()
        self.fields["store"].queryset = Store.objects.order_by("platform", "name")

    def clean_platform_order_id(self) -> str:
        return self.cleaned_data["platform_order_id"].strip()


class TrackingImportForm(forms.Form):
    file = forms.FileField(label=_("xlsx workbook"))

    def clean_file(self):
        file = self.cleaned_data["file"]
        if file.size > MAX_IMPORT_BYTES:
            raise forms.ValidationError(_("The file is larger than 20 MB."))
        if not file.name.lower().endswith(".xlsx"):
            raise forms.ValidationError(_("Upload an .xlsx workbook."))
        return file

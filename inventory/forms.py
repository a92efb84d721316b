"""Forms of the inventory pages: input validation only; the stock rules live in services."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from inventory import selectors
from inventory.models import Sku, Warehouse

MAX_IMPORT_BYTES = 20 * 1024 * 1024
MAX_DELTA = 1_000_000


def _warehouse_field(**kwargs) -> forms.ModelChoiceField:
    return forms.ModelChoiceField(
        label=_("Warehouse"),
        queryset=Warehouse.objects.filter(is_active=True),
        required=False,
        **kwargs,
    )


class SkuFilterForm(forms.Form):
    """The SKU list's search and filters (GET). Invalid values are ignored, not fatal."""

    q = forms.CharField(
        label=_("Search"),
        required=False,
        max_length=100,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": _("Merchant code, barcode or name")}),
    )
    category = forms.ChoiceField(label=_("Category"), required=False)
    active = forms.ChoiceField(
        label=_("Status"),
        required=False,
        choices=[("", _("Active and inactive")), ("1", _("Active")), ("0", _("Inactive"))],
    )
    combo = forms.ChoiceField(
        label=_("Type"),
        required=False,
        choices=[("", _("All types")), ("0", _("Single SKUs")), ("1", _("Combination SKUs"))],
    )
    stock = forms.ChoiceField(
        label=_("Stock status"),
        required=False,
        choices=[
            ("", _("Any stock")),
            (selectors.STOCK_OUT, _("Out of stock")),
            (selectors.STOCK_LOW, _("Low stock")),
            (selectors.STOCK_OK, _("In stock")),
        ],
    )
    listing = forms.ChoiceField(
        label=_("Listings"),
        required=False,
        choices=[
            ("", _("Any listing state")),
            (selectors.LISTING_UNMATCHED, _("Has unmatched listings")),
            (selectors.LISTING_NONE, _("Not listed on any shop")),
            (selectors.LISTING_FAILED, _("Stock push failed")),
        ],
    )
    warehouse = _warehouse_field(empty_label=_("All warehouses"))

    def __init__(self, *args, categories: list[str] = (), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["category"].choices = [("", _("All categories"))] + [(c, c) for c in categories]

    def filters(self) -> selectors.SkuFilters:
        self.is_valid()
        data = self.cleaned_data
        flag = {"1": True, "0": False}
        warehouse = data.get("warehouse")
        return selectors.SkuFilters(
            q=data.get("q") or "",
            category=data.get("category") or "",
            is_active=flag.get(data.get("active") or ""),
            is_combo=flag.get(data.get("combo") or ""),
            stock_status=data.get("stock") or "",
            listing=data.get("listing") or "",
            warehouse_id=warehouse.pk if warehouse else None,
        )


class AdjustmentForm(forms.Form):
    warehouse = _warehouse_field(empty_label=_("Default warehouse"))
    delta = forms.IntegerField(
        label=_("Change in on-hand units"),
        min_value=-MAX_DELTA,
        max_value=MAX_DELTA,
        help_text=_("Positive adds units (found stock), negative removes them (damage, loss)."),
    )
    reason = forms.CharField(label=_("Reason"), max_length=200)

    def clean_delta(self) -> int:
        delta = self.cleaned_data["delta"]
        if delta == 0:
            raise forms.ValidationError(_("Enter a change other than zero."))
        return delta


class CountForm(forms.Form):
    warehouse = _warehouse_field(empty_label=_("Default warehouse"))
    counted = forms.IntegerField(label=_("Counted units"), min_value=0, max_value=100 * MAX_DELTA)
    reason = forms.CharField(label=_("Note"), max_length=200, required=False)


class LocationForm(forms.Form):
    """The location (库位) of a SKU in one warehouse; empty clears it."""

    warehouse = forms.ModelChoiceField(label=_("Warehouse"), queryset=Warehouse.objects.all())
    location = forms.CharField(label=_("Location"), max_length=32, required=False)


class ListingMatchForm(forms.Form):
    sku = forms.ModelChoiceField(
        label=_("Merchant code"),
        queryset=Sku.objects.filter(is_active=True),
        to_field_name="merchant_code",
        error_messages={"invalid_choice": _("No active SKU has this merchant code.")},
    )


class SkuImportForm(forms.Form):
    file = forms.FileField(label=_("xlsx file"))

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if not upload.name.lower().endswith(".xlsx"):
            raise forms.ValidationError(_("Upload an .xlsx workbook (Excel 2007 or later)."))
        if upload.size > MAX_IMPORT_BYTES:
            raise forms.ValidationError(_("The file is larger than 20 MB; split it into several files."))
        return upload

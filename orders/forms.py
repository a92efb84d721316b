"""Forms of the order workbench: input validation only (the rules live in services)."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from channels.models import Store
from channels.types import Platform
from ecbao import inputs, money
from orders import selectors

MAX_YUAN = Decimal("100000000")  # ¥100,000,000
_DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]


class _YuanField(forms.DecimalField):
    def __init__(self, **kwargs) -> None:
        super().__init__(
            required=False,
            min_value=Decimal(0),
            max_value=MAX_YUAN,
            decimal_places=2,
            max_digits=12,
            widget=forms.NumberInput(attrs={"step": "0.01", "min": "0", "class": "amount"}),
            **kwargs,
        )


class _DateTimeField(inputs.DateTimeField):
    def __init__(self, **kwargs) -> None:
        super().__init__(
            required=False,
            input_formats=_DATETIME_FORMATS,
            widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
            **kwargs,
        )


class OrderFilterForm(forms.Form):
    """The workbench's filters and search (GET). Invalid values are ignored, not fatal.

    Times are read in the site's time zone (Asia/Shanghai); amounts in yuan, kept in fen."""

    status = forms.ChoiceField(required=False, choices=[(v, v) for v in sorted(selectors.TAB_VALUES)])
    q = forms.CharField(
        label=_("Search"),
        required=False,
        max_length=2000,
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": _("Order no. / SKU code / last 4 of phone"), "size": 30}
        ),
    )
    store = forms.ModelChoiceField(
        label=_("Shop"), queryset=Store.objects.all(), required=False, empty_label=_("All shops")
    )
    platform = forms.ChoiceField(
        label=_("Platform"),
        required=False,
        choices=[("", _("All platforms"))] + [(p.value, p.label) for p in Platform],
    )
    placed_from = _DateTimeField(label=_("Placed from"))
    placed_to = _DateTimeField(label=_("Placed before"))
    code = forms.CharField(
        label=_("SKU code"),
        required=False,
        max_length=64,
        widget=forms.TextInput(attrs={"placeholder": _("SKU merchant code"), "size": 12}),
    )
    min_yuan = _YuanField(label=_("Paid from (yuan)"))
    max_yuan = _YuanField(label=_("Paid up to (yuan)"))
    remark = forms.ChoiceField(
        label=_("Remarks"),
        required=False,
        choices=[
            ("", _("Any remarks")),
            ("buyer", _("Has a buyer remark")),
            ("seller", _("Has a seller remark")),
            ("none", _("No remarks")),
        ],
    )
    flags = forms.MultipleChoiceField(
        label=_("Flags"),
        required=False,
        choices=[(key, label) for key, (_field, label) in selectors.FLAGS.items()],
        widget=forms.CheckboxSelectMultiple,
    )

    def filters(self) -> selectors.OrderFilters:
        self.is_valid()
        data = self.cleaned_data  # fields with invalid values are left out
        remark = data.get("remark") or ""
        store = data.get("store")
        return selectors.OrderFilters(
            status=data.get("status") or "",
            store_id=store.pk if store else None,
            platform=data.get("platform") or "",
            placed_from=data.get("placed_from"),
            placed_to=data.get("placed_to"),
            merchant_code=(data.get("code") or "").strip(),
            paid_min_fen=money.to_fen(data.get("min_yuan"), exact=True, blank=None),
            paid_max_fen=money.to_fen(data.get("max_yuan"), exact=True, blank=None),
            has_buyer_remark=True if remark == "buyer" else (False if remark == "none" else None),
            has_seller_remark=True if remark == "seller" else (False if remark == "none" else None),
            flags=tuple(data.get("flags") or ()),
            q=data.get("q") or "",
        )


class HoldForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=200, strip=True)


class CancelForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=200, strip=True)

"""Forms of the merchant's after-sales pages: input validation only (the answers are
``aftersales.actions``', the rule is ``aftersales.policy``')."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from aftersales import selectors
from channels.models import Store
from channels.types import Platform
from suppliers.models import Supplier

MAX_EVIDENCE = 9


def _id(value) -> int | None:
    text = str(value or "")
    return int(text) if text.isdigit() and len(text) < 19 else None


class QueueFilterForm(forms.Form):
    """The queue's filters (GET); invalid values count as none."""

    queue = forms.ChoiceField(required=False, choices=[(k, k) for k, _label in selectors.TABS])
    store = forms.TypedChoiceField(label=_("Shop"), required=False, coerce=int, empty_value=None)
    platform = forms.ChoiceField(label=_("Platform"), required=False)
    type = forms.ChoiceField(label=_("Type"), required=False)
    supplier = forms.TypedChoiceField(label=_("Supplier"), required=False, coerce=int, empty_value=None)
    q = forms.CharField(
        label=_("Search"),
        required=False,
        max_length=selectors.MAX_SEARCH,
        widget=forms.TextInput(
            attrs={
                "type": "search",
                "placeholder": _("After-sale no. / order no. / return waybill"),
                "size": 28,
            }
        ),
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["store"].choices = [("", _("All shops"))] + [
            (s.pk, s.name) for s in Store.objects.order_by("name")
        ]
        self.fields["platform"].choices = [("", _("All platforms"))] + [(p.value, p.label) for p in Platform]
        self.fields["type"].choices = [("", _("All types"))] + [
            (k, label) for k, label in selectors.TYPE_LABELS.items()
        ]
        self.fields["supplier"].choices = [("", _("Every shipper"))] + [
            (s.pk, f"{s.name} ({s.code})") for s in Supplier.objects.order_by("code")
        ]
        for name in ("store", "platform", "type", "supplier"):
            self.fields[name].widget.attrs.update(
                {"data-autosubmit": "", "aria-label": self.fields[name].label}
            )
        self.fields["q"].widget.attrs["aria-label"] = self.fields["q"].label

    def filters(self) -> dict:
        """Keyword arguments for ``selectors.after_sales`` / ``queue_counts`` (bad values dropped)."""
        data = self.data
        platforms = {p.value for p in Platform}
        return {
            "store_id": _id(data.get("store")),
            "platform": data.get("platform") if data.get("platform") in platforms else None,
            "type": data.get("type") if data.get("type") in selectors.TYPE_LABELS else None,
            "supplier_id": _id(data.get("supplier")),
            "q": (data.get("q") or "").strip()[: selectors.MAX_SEARCH],
        }


def _evidence(text: str) -> list[str]:
    links = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return links[:MAX_EVIDENCE]


class ApproveForm(forms.Form):
    return_address = forms.ChoiceField(label=_("Return address"), required=False)

    def __init__(self, *args, addresses=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["return_address"].choices = [("", _("The shop's default address"))] + [
            (a.id, a.text + (" ★" if a.is_default else "")) for a in addresses
        ]


class RejectForm(forms.Form):
    reason_code = forms.ChoiceField(label=_("Refusal reason"))
    reason = forms.CharField(
        label=_("Explanation"), required=False, max_length=200, widget=forms.TextInput(attrs={"size": 30})
    )
    evidence = forms.CharField(
        label=_("Evidence (image links, one a line)"),
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 40}),
    )

    def __init__(self, *args, reasons=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if reasons:
            self.fields["reason_code"].choices = [("", _("— choose —"))] + [
                (r.code, r.text + (" " + str(_("(needs evidence)")) if r.needs_evidence else ""))
                for r in reasons
            ]
        else:  # the platform gave no list: the code is typed
            self.fields["reason_code"] = forms.CharField(label=_("Refusal reason code"), max_length=32)

    def clean_evidence(self) -> list[str]:
        links = _evidence(self.cleaned_data.get("evidence", ""))
        for link in links:
            if not link.startswith(("https://", "http://")):
                raise forms.ValidationError(_("Evidence must be links (https://…)."))
        return links


class PolicyForm(forms.Form):
    enabled = forms.BooleanField(label=_("Approve small refunds automatically"), required=False)
    max_yuan = forms.DecimalField(
        label=_("Amount up to (yuan)"),
        min_value=Decimal(0),
        max_digits=10,
        decimal_places=2,
        widget=forms.NumberInput(attrs={"step": "0.01", "min": "0", "class": "amount"}),
    )
    unshipped_only = forms.BooleanField(label=_("Only before shipment"), required=False)
    stores = forms.MultipleChoiceField(
        label=_("Shops (none ticked: every shop)"), required=False, widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["stores"].choices = [(str(s.pk), s.name) for s in Store.objects.order_by("name")]

    @property
    def max_fen(self) -> int:
        return int((self.cleaned_data["max_yuan"] * 100).to_integral_value())


class PeriodForm(forms.Form):
    """The reasons report's period: the last N days, or from/until dates (Asia/Shanghai)."""

    days = forms.ChoiceField(required=False, choices=[("7", "7"), ("30", "30"), ("90", "90")])
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

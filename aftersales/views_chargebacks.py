"""Supplier charge-backs (扣款), the merchant's pages (capability ``aftersales.manage``):

- ``/aftersales/<after_sale_id>/charge-back/`` (``aftersales:chargeback_new``): charge a refund
  the supplier caused back to it — amount in 元 (default: the supplier's cost of the refunded
  lines, at most what the after-sale refunded), reason, note;
- ``/aftersales/charge-backs/`` (``aftersales:chargebacks``): by supplier and status, with totals;
- ``/aftersales/charge-backs/<charge_back_id>/cancel/``: cancel an open one;
- ``/aftersales/<after_sale_id>/supplier-evidence/<evidence_no>/``: the supplier's evidence
  files of an after-sale (the merchant of this tenant only).
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from aftersales import chargebacks
from aftersales.models import AfterSale, ChargeBack
from aftersales.portal.views import serve_evidence
from ecbao.money import MoneyError, format_yuan, to_fen
from suppliers.models import Supplier
from tenants.accounts.permissions import capability_required

CAPABILITY = "aftersales.manage"


def _after_sale(after_sale_id) -> AfterSale:
    found = AfterSale.objects.select_related("supplier", "dispatch", "store").filter(pk=after_sale_id).first()
    if found is None:
        raise Http404
    return found


class ChargeBackForm(forms.Form):
    amount = forms.CharField(label=gettext_lazy("Amount (yuan)"), max_length=20)
    reason = forms.ChoiceField(label=gettext_lazy("Reason"), choices=ChargeBack.Reason.choices)
    note = forms.CharField(label=gettext_lazy("Note"), max_length=300, required=False)

    def clean_amount(self) -> int:
        try:
            return to_fen(self.cleaned_data["amount"], exact=True)
        except MoneyError as exc:
            raise forms.ValidationError(str(exc)) from None


@capability_required(CAPABILITY)
def chargeback_new(request, after_sale_id):
    after_sale = _after_sale(after_sale_id)
    existing = chargebacks.live(after_sale)
    default_fen = chargebacks.default_amount(after_sale)
    if request.method == "POST":
        form = ChargeBackForm(request.POST)
        if form.is_valid():
            try:
                chargebacks.create(
                    after_sale,
                    amount_fen=form.cleaned_data["amount"],
                    reason=form.cleaned_data["reason"],
                    note=form.cleaned_data["note"],
                    actor=request.user,
                )
            except ValidationError as exc:
                form.add_error(None, "；".join(exc.messages))
            else:
                messages.success(request, _("Charge-back recorded."))
                return redirect("aftersales:chargebacks")
        status = 400
    else:
        form = ChargeBackForm(
            initial={"amount": format_yuan(default_fen), "reason": ChargeBack.Reason.WRONG_ITEM}
        )
        status = 200
    return render(
        request,
        "aftersales/chargeback_form.html",
        {
            "a": after_sale,
            "form": form,
            "existing": existing,
            "default_fen": default_fen,
            "has_supplier": bool(after_sale.supplier_id),
        },
        status=status,
    )


@capability_required(CAPABILITY)
def chargeback_list(request):
    params = request.GET
    supplier = params.get("supplier", "")
    supplier_id = int(supplier) if supplier.isdigit() and len(supplier) < 19 else None
    status = params.get("status", "")
    status = status if status in ChargeBack.Status.values else ""
    qs = chargebacks.listing(supplier_id=supplier_id, status=status)
    return render(
        request,
        "aftersales/chargeback_list.html",
        {
            "rows": list(qs[:500]),
            "totals": chargebacks.totals(chargebacks.listing(supplier_id=supplier_id)),
            "statuses": ChargeBack.Status.choices,
            "status": status,
            "supplier_id": supplier_id,
            "suppliers": list(Supplier.objects.order_by("name")),
        },
    )


@require_POST
@capability_required(CAPABILITY)
def chargeback_cancel(request, charge_back_id):
    found = ChargeBack.objects.filter(pk=charge_back_id).first()
    if found is None:
        raise Http404
    try:
        chargebacks.cancel(found, actor=request.user)
    except ValidationError as exc:
        messages.error(request, "；".join(exc.messages))
    else:
        messages.success(request, _("Charge-back cancelled."))
    return redirect("aftersales:chargebacks")


@capability_required(CAPABILITY)
def supplier_evidence(request, after_sale_id, evidence_no):
    return serve_evidence(_after_sale(after_sale_id), evidence_no)


urlpatterns = [
    path("charge-backs/", chargeback_list, name="chargebacks"),
    path("charge-backs/<int:charge_back_id>/cancel/", chargeback_cancel, name="chargeback_cancel"),
    path("<int:after_sale_id>/charge-back/", chargeback_new, name="chargeback_new"),
    path(
        "<int:after_sale_id>/supplier-evidence/<int:evidence_no>/",
        supplier_evidence,
        name="supplier_evidence",
    ),
]

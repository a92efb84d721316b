"""The supplier portal's 售后 pages (/supplier/aftersales/): the after-sales on the signed-in
supplier's dispatches by tab (待处理 / 已处理 / 全部), one after-sale (masked receiver, lines
with the supplier's codes, buyer evidence, return waybill, timeline, the answer form), the
supplier's evidence files, and its charge-backs (read-only).

Every query starts from ``suppliers.portal.scope.Scope`` (``request.scope``): an after-sale of
another supplier is 404 on every page.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from aftersales import chargebacks
from aftersales import supplier as service
from aftersales.models import AfterSale, ChargeBack
from ecbao.paging import query_string
from suppliers.portal.scope import supplier_view

PAGE_SIZE = 50
A = AfterSale.SupplierAnswer


def _explain(exc: ValidationError) -> str:
    return "；".join(exc.messages)


def scoped(scope):
    """The supplier's after-sales (the one place these pages read them from)."""
    return service.of_supplier(scope.supplier).select_related("store", "dispatch", "order")


def after_sale_of(scope, pk) -> AfterSale:
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        raise Http404 from None
    found = scoped(scope).filter(pk=pk).first()
    if found is None:
        raise Http404
    return found


@supplier_view
def after_sale_list(request):
    scope = request.scope
    tab = request.GET.get("tab", "")
    tab = tab if tab in service.TAB_VALUES else service.TAB_WAITING
    counts = service.tab_counts(scope.supplier)
    rows = list(service.tab(scoped(scope), tab).order_by("-id")[:PAGE_SIZE])
    return render(
        request,
        "aftersales/portal/list.html",
        {
            "tab": tab,
            "tabs": [(value, label, counts[value], query_string(tab=value)) for value, label in service.TABS],
            "rows": [(a, service.needs(a)) for a in rows],
            "charge_back_count": ChargeBack.objects.filter(supplier=scope.supplier).count(),
        },
    )


def _answer_labels() -> dict[str, str]:
    return {
        A.INTERCEPTED: _("Intercepted"),
        A.NOT_INTERCEPTED: _("Could not intercept"),
        A.RECEIVED: _("Return received"),
        A.REFUSED: _("Refuse"),
    }


@supplier_view
def after_sale_detail(request, after_sale_id):
    after_sale = after_sale_of(request.scope, after_sale_id)
    order = after_sale.order
    labels = _answer_labels()
    return render(
        request,
        "aftersales/portal/detail.html",
        {
            "a": after_sale,
            "needs": service.needs(after_sale),
            "receiver_fields": [
                (_("Receiver"), order.receiver_name_mask if order else ""),
                (_("Phone"), order.receiver_phone_mask if order else ""),
                (_("Address"), order.receiver_address_mask if order else ""),
            ],
            "region": " ".join(filter(None, [order.province, order.city, order.district])) if order else "",
            "lines": service.lines(after_sale),
            "buyer_evidence": [url for url in (after_sale.evidence or []) if _is_link(url)],
            "supplier_evidence": list(enumerate(after_sale.supplier_evidence or [])),
            "timeline": service.timeline(after_sale),
            "answers": [(value, labels[value]) for value in service.allowed_answers(after_sale)],
            "charge_backs": list(after_sale.charge_backs.exclude(status=ChargeBack.Status.CANCELLED)),
        },
    )


def _is_link(value) -> bool:
    return isinstance(value, str) and value.startswith(("https://", "http://"))


def counts_from(post, after_sale: AfterSale) -> dict[int, tuple[int, int]]:
    counts = {}
    for row in after_sale.lines.all():
        good, bad = post.get(f"good_{row.pk}", "").strip(), post.get(f"defective_{row.pk}", "").strip()
        if good or bad:
            if not (good or "0").isdigit() or not (bad or "0").isdigit() or len(good + bad) > 9:
                raise ValidationError(_("Counts must be whole numbers."))
            counts[row.pk] = (int(good or 0), int(bad or 0))
    return counts


@require_POST
@supplier_view
def after_sale_answer(request, after_sale_id):
    after_sale = after_sale_of(request.scope, after_sale_id)
    try:
        service.answer(
            after_sale,
            supplier=request.scope.supplier,
            answer=request.POST.get("answer", "")[:20],
            note=request.POST.get("note", "")[:1000],
            evidence=request.FILES.getlist("evidence")[: service.MAX_EVIDENCE + 1],
            counts=counts_from(request.POST, after_sale),
            actor=request.user,
        )
    except AfterSale.DoesNotExist:
        raise Http404 from None
    except ValidationError as exc:
        messages.error(request, _explain(exc))
    else:
        messages.success(request, _("Your answer was sent to the merchant."))
    return redirect("supplier_aftersales:detail", after_sale.pk)


@supplier_view
def evidence(request, after_sale_id, evidence_no):
    """One of the supplier's evidence files of its own after-sale (never another supplier's)."""
    after_sale = after_sale_of(request.scope, after_sale_id)
    return serve_evidence(after_sale, evidence_no)


def serve_evidence(after_sale: AfterSale, index: int):
    try:
        handle, entry = service.evidence_file(after_sale, int(index))
    except LookupError:
        raise Http404 from None
    kind = service.content_type_of(entry)
    response = FileResponse(handle, content_type=kind, as_attachment=kind == "application/pdf")
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@supplier_view
def charge_back_list(request):
    """The supplier's charge-backs, read-only (reason, amount, status)."""
    qs = ChargeBack.objects.filter(supplier=request.scope.supplier).select_related("after_sale")
    return render(
        request,
        "aftersales/portal/charge_backs.html",
        {"rows": list(qs.order_by("-id")[:200]), "totals": chargebacks.totals(qs)},
    )

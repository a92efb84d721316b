"""Returns in (退货入库) pages, thin over ``aftersales.returns`` (permission ``returns.receive``):

- ``returns_scan`` — the scan bench: the return waybill typed by a keyboard-wedge scanner
  (number + Enter); ``static/aftersales/returns_scan.js`` drives it through the JSON endpoints
  ``returns_receive`` / ``returns_inspect`` / ``returns_confirm`` (POST, CSRF-protected;
  ``{"ok": bool, "message": str, "receipt": {…}}``; a refusal answers 409, malformed input 400,
  an unknown receipt 404). Scanning a SKU code while an unclaimed parcel is open adds its line.
- ``returns_list`` — tabs 待验货 / 无主件 / 已入库 with search;
- ``returns_detail`` — one receipt; for an unclaimed one its candidates and 匹配
  (``returns_match``).
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from aftersales import returns
from aftersales.models import AfterSale, ReturnReceipt
from ecbao import paging
from inventory.models import Sku, Warehouse
from tenants.accounts.permissions import capability_required, has_capability

CAP = "returns.receive"
LIST_LIMIT = 200


def _tabs():
    return (
        (ReturnReceipt.Status.MATCHED.value, _("To inspect")),
        (ReturnReceipt.Status.UNCLAIMED.value, _("Unclaimed")),
        (ReturnReceipt.Status.INSPECTED.value, _("Booked in")),
    )


def _int(value) -> int | None:
    value = str(value or "").strip()
    return int(value) if value.isdigit() and len(value) < 19 else None


def _own_warehouses():
    return Warehouse.objects.filter(kind=Warehouse.Kind.OWN, is_active=True).order_by("-is_default", "id")


def _receipt_or_404(pk) -> ReturnReceipt:
    receipt = (
        ReturnReceipt.objects.select_related("warehouse", "after_sale__order", "after_sale__store")
        .filter(pk=_int(pk) or 0)
        .first()
    )
    if receipt is None:
        raise Http404("no such return receipt")
    return receipt


def _lines(receipt: ReturnReceipt) -> list[dict]:
    """One row per SKU: what the after-sale covers (expected) and what was booked."""
    booked = {line.sku_id: line for line in receipt.lines.all()}
    expected = returns.expected(receipt)
    ids = list(expected) + [k for k in booked if k not in expected]
    skus = Sku.objects.in_bulk(ids)
    rows = []
    for sku_id in ids:
        sku = skus[sku_id]
        line = booked.get(sku_id)
        rows.append(
            {
                "sku_id": sku_id,
                "merchant_code": sku.merchant_code,
                "name": sku.name,
                "spec": sku.spec,
                "expected": expected.get(sku_id, 0),
                "good": line.good if line else None,
                "defective": line.defective if line else None,
            }
        )
    return rows


def _after_sale(after_sale: AfterSale | None) -> dict | None:
    if after_sale is None:
        return None
    from django.urls import NoReverseMatch, reverse

    try:
        url = reverse("aftersales:detail", args=[after_sale.pk])
    except NoReverseMatch:  # the queue pages (h-pages) not there yet
        url = ""
    return {
        "id": after_sale.pk,
        "platform_after_sale_id": after_sale.platform_after_sale_id,
        "platform_order_id": after_sale.platform_order_id,
        "store": after_sale.store.name,
        "type": after_sale.type,
        "type_display": after_sale.get_type_display(),
        "queue_display": after_sale.get_queue_display(),
        "reason": after_sale.reason,
        "evidence": [
            str(link) for link in (after_sale.evidence or []) if str(link).startswith(("http://", "https://"))
        ],
        "return_tracking_no": after_sale.return_tracking_no,
        "url": url,
    }


def _as_dict(receipt: ReturnReceipt, user) -> dict:
    from django.urls import reverse

    after_sale = receipt.after_sale
    confirmable = bool(
        after_sale is not None
        and receipt.status == ReturnReceipt.Status.INSPECTED
        and after_sale.warehouse_id in (None, receipt.warehouse_id)
        and after_sale.supplier_id is None
        and after_sale.queue in (AfterSale.Queue.AWAITING_RETURN, AfterSale.Queue.AWAITING_RECEIPT)
        and after_sale.type == AfterSale.Type.RETURN_REFUND  # an exchange: the replacement follows instead
        and has_capability(user, "aftersales.manage")
    )
    return {
        "id": receipt.pk,
        "tracking_no": receipt.tracking_no,
        "warehouse": receipt.warehouse.name,
        "status": receipt.status,
        "status_display": receipt.get_status_display(),
        "phone_tail": receipt.phone_tail,
        "note": receipt.note,
        "after_sale": _after_sale(after_sale),
        "lines": _lines(receipt),
        "can_confirm": confirmable,
        "url": reverse("aftersales:returns_detail", args=[receipt.pk]),
    }


def _answer(ok: bool, message: str, receipt=None, user=None, *, status: int = 200, **extra) -> JsonResponse:
    body = {"ok": ok, "message": message, "receipt": _as_dict(receipt, user) if receipt else None, **extra}
    return JsonResponse(body, status=status, json_dumps_params={"ensure_ascii": False})


# --- the scan bench ----------------------------------------------------------------------------


@capability_required(CAP)
def returns_scan(request):
    warehouses = list(_own_warehouses())
    chosen = _int(request.GET.get("warehouse"))
    return render(
        request,
        "aftersales/returns_scan.html",
        {"warehouses": warehouses, "chosen": chosen or (warehouses[0].pk if warehouses else None)},
    )


def _sku_by_code(code: str) -> Sku | None:
    code = code.strip()
    if not code:
        return None
    return (
        Sku.objects.filter(is_active=True, is_combo=False)
        .filter(Q(merchant_code__iexact=code) | Q(barcode=code))
        .order_by("id")
        .first()
    )


@require_POST
@capability_required(CAP)
def returns_receive(request):
    warehouse = _own_warehouses().filter(pk=_int(request.POST.get("warehouse")) or 0).first()
    if warehouse is None:
        return _answer(False, _("Choose the warehouse receiving the parcel."), status=400)
    code = request.POST.get("code", "")
    current = _int(request.POST.get("receipt"))
    if current:  # an unclaimed parcel open: a SKU scanned adds its line
        receipt = ReturnReceipt.objects.filter(pk=current, status=ReturnReceipt.Status.UNCLAIMED).first()
        sku = _sku_by_code(code) if receipt else None
        if sku is not None:
            return _answer(
                True,
                _("%(code)s added: count it below.") % {"code": sku.merchant_code},
                receipt,
                request.user,
                sku={
                    "sku_id": sku.pk,
                    "merchant_code": sku.merchant_code,
                    "name": sku.name,
                    "spec": sku.spec,
                },
            )
    try:
        receipt = returns.receive(
            warehouse=warehouse,
            tracking_no=code,
            carrier=request.POST.get("carrier", ""),
            actor=request.user,
            phone_tail=request.POST.get("phone_tail", ""),
            note=request.POST.get("note", ""),
        )
    except returns.ReturnRefused as exc:
        return _answer(False, str(exc), status=409)
    receipt = _receipt_or_404(receipt.pk)
    if receipt.status == ReturnReceipt.Status.UNCLAIMED:
        return _answer(
            False,
            _("Unclaimed parcel (无主件): no after-sale has return waybill %(no)s.")
            % {"no": receipt.tracking_no},
            receipt,
            request.user,
            unclaimed=True,
        )
    if receipt.status == ReturnReceipt.Status.INSPECTED:
        message = _("Waybill %(no)s was already received and inspected.") % {"no": receipt.tracking_no}
    else:
        message = _("Return received: after-sale %(id)s. Count the goods.") % {
            "id": receipt.after_sale.platform_after_sale_id
        }
    return _answer(True, message, receipt, request.user)


def _counts(post) -> dict[int, tuple[int, int]] | None:
    counts: dict[int, tuple[int, int]] = {}
    for key in post:
        for prefix in ("good_", "defective_"):
            if key.startswith(prefix):
                sku_id = _int(key[len(prefix) :])
                raw = (post.get(key) or "0").strip() or "0"
                if sku_id is None or not raw.isdigit() or len(raw) > 6:
                    return None
                good, defective = counts.get(sku_id, (0, 0))
                counts[sku_id] = (int(raw), defective) if prefix == "good_" else (good, int(raw))
    return counts


@require_POST
@capability_required(CAP)
def returns_inspect(request):
    receipt = _receipt_or_404(request.POST.get("receipt"))
    counts = _counts(request.POST)
    if counts is None:
        return _answer(False, _("Counts are whole numbers."), receipt, request.user, status=400)
    try:
        receipt = returns.inspect(
            receipt,
            counts,
            actor=request.user,
            confirm_excess=request.POST.get("confirm") == "1",
            unclaimed=request.POST.get("unclaimed") == "1",
        )
    except returns.ReturnExcess as exc:
        return _answer(False, str(exc), receipt, request.user, status=409, excess=True)
    except returns.ReturnRefused as exc:
        return _answer(False, str(exc), receipt, request.user, status=409)
    receipt = _receipt_or_404(receipt.pk)
    good = sum(line.good for line in receipt.lines.all())
    defective = sum(line.defective for line in receipt.lines.all())
    message = _("Booked in: %(good)d good to stock, %(defective)d defective to the defective location.") % {
        "good": good,
        "defective": defective,
    }
    return _answer(True, message, receipt, request.user)


@require_POST
@capability_required(CAP)
def returns_confirm(request):
    """确认收货并退款: the merchant's click sends the platform its confirmation (h-actions)."""
    receipt = _receipt_or_404(request.POST.get("receipt"))
    if not _as_dict(receipt, request.user)["can_confirm"]:
        return _answer(False, _("Nothing to confirm for this parcel."), receipt, request.user, status=409)
    try:
        from aftersales import actions
    except ImportError:
        return _answer(
            False, _("Confirming at the platform is not available yet."), receipt, request.user, status=409
        )
    try:
        action = actions.confirm_receipt(receipt.after_sale, actor=request.user)
    except ValidationError as exc:
        return _answer(False, " ".join(exc.messages), receipt, request.user, status=409)
    if getattr(action, "status", "") == "failed":
        return _answer(False, action.error or _("The platform refused."), receipt, request.user, status=409)
    return _answer(True, _("Receipt confirmed at the platform: the refund follows."), receipt, request.user)


# --- list and detail ---------------------------------------------------------------------------


@capability_required(CAP)
def returns_list(request):
    tabs = _tabs()
    tab = request.GET.get("tab") or ReturnReceipt.Status.MATCHED.value
    if tab not in {value for value, _label in tabs}:
        tab = ReturnReceipt.Status.MATCHED.value
    q = " ".join(request.GET.get("q", "").split())[:64]
    warehouse = _int(request.GET.get("warehouse"))
    base = ReturnReceipt.objects.all()
    if warehouse:
        base = base.filter(warehouse_id=warehouse)
    if q:
        base = base.filter(
            Q(tracking_no__icontains=returns.normalise(q))
            | Q(after_sale__platform_after_sale_id=q)
            | Q(after_sale__platform_order_id=q)
            | Q(phone_tail=q)
        )
    counts = dict(base.values_list("status").annotate(n=Count("id")).order_by())
    rows = list(
        base.filter(status=tab)
        .select_related("warehouse", "after_sale__store", "received_by")
        .order_by("-id")[:LIST_LIMIT]
    )
    return render(
        request,
        "aftersales/returns_list.html",
        {
            "tabs": [(value, label, counts.get(value, 0)) for value, label in tabs],
            "tab": tab,
            "rows": rows,
            "q": q,
            "warehouse": warehouse,
            "warehouses": _own_warehouses(),
            "filter_query": paging.query_string(q=q, warehouse=warehouse),
            "limit": LIST_LIMIT,
        },
    )


@capability_required(CAP)
def returns_detail(request, receipt_id: int):
    receipt = _receipt_or_404(receipt_id)
    sku_codes = [c for c in request.GET.get("sku", "").replace(",", " ").split() if c][:20]
    found = returns.candidates(receipt, sku_codes=sku_codes) if receipt.after_sale_id is None else []
    return render(
        request,
        "aftersales/returns_detail.html",
        {
            "receipt": receipt,
            "lines": _lines(receipt),
            "candidates": found,
            "sku": " ".join(sku_codes),
            "data": _as_dict(receipt, request.user),
        },
    )


@require_POST
@capability_required(CAP)
def returns_match(request, receipt_id: int):
    receipt = _receipt_or_404(receipt_id)
    after_sale = AfterSale.objects.filter(pk=_int(request.POST.get("after_sale")) or 0).first()
    if after_sale is None:
        messages.error(request, _("Choose an after-sale to match."))
        return redirect("aftersales:returns_detail", receipt.pk)
    try:
        returns.match(receipt, after_sale, actor=request.user)
    except returns.ReturnRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            _("Parcel %(no)s matched to after-sale %(id)s.")
            % {"no": receipt.tracking_no, "id": after_sale.platform_after_sale_id},
        )
    return redirect("aftersales:returns_detail", receipt.pk)


urlpatterns = [
    path("returns/", returns_list, name="returns_list"),
    path("returns/scan/", returns_scan, name="returns_scan"),
    path("returns/scan/receive/", returns_receive, name="returns_receive"),
    path("returns/scan/inspect/", returns_inspect, name="returns_inspect"),
    path("returns/scan/confirm/", returns_confirm, name="returns_confirm"),
    path("returns/<int:receipt_id>/", returns_detail, name="returns_detail"),
    path("returns/<int:receipt_id>/match/", returns_match, name="returns_match"),
]

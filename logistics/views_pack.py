"""Pick lists and the scan-to-verify bench (thin: everything goes through ``logistics.packing``).

- ``pick`` — the printable pick list of a selection (``?ids=…``), a ShipBatch (``?batch=…``)
  or the whole 待发货 tab (``?tab=to_ship``), as a page, ``&export=xlsx`` or ``&export=csv``;
- ``verify`` — the bench page; ``static/logistics/verify.js`` drives it through the JSON
  endpoints ``verify_lookup`` / ``verify_scan`` / ``verify_by_hand`` / ``verify_done`` /
  ``verify_reset`` (POST,
  CSRF-protected; ``{"ok": bool, "message": str, "ticket": {…}}``; a refusal answers 409 with
  the reason, malformed input 400).

Reading a pick list needs dashboard.view; the bench (which changes parcels) shipping.manage.
"""

from __future__ import annotations

import csv
import io

from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from logistics import packing, selectors
from logistics.models import Parcel, ShipBatch
from tenants.accounts.permissions import capability_required

MAX_IDS = 2000
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _int(value) -> int | None:
    value = str(value or "").strip()
    return int(value) if value.isdigit() and len(value) < 19 else None


def _selection(request) -> tuple[list[int], str, ShipBatch | None]:
    """(parcel ids, what was selected, batch) from ``ids`` (repeated or comma-separated),
    ``batch`` or ``tab``."""
    params = request.GET
    batch_id = _int(params.get("batch"))
    if batch_id is not None:
        batch = ShipBatch.objects.filter(pk=batch_id).first()
        if batch is None:
            return [], _("No such batch."), None
        return packing.batch_parcel_ids(batch)[:MAX_IDS], _("Batch #%(id)d") % {"id": batch.pk}, batch
    if params.get("tab") == selectors.TO_SHIP:
        ids = list(
            selectors.tab_parcels(selectors.TO_SHIP)
            .filter(status=Parcel.Status.PRINTED)
            .order_by("id")
            .values_list("pk", flat=True)[:MAX_IDS]
        )
        return ids, _("Every printed parcel waiting to ship"), None
    raw = [part for value in params.getlist("ids") for part in value.split(",")]
    ids = sorted({i for i in (_int(v) for v in raw) if i is not None})[:MAX_IDS]
    return ids, _("%(n)d selected parcels") % {"n": len(ids)}, None


def _safe(value):
    """A cell that a spreadsheet will not run as a formula."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _export(rows: list[packing.PickRow], kind: str) -> HttpResponse:
    headers, cells = packing.pick_list_table(rows)
    stamp = f"{timezone.localtime():%Y%m%d-%H%M}"
    if kind == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(headers)
        writer.writerows([_safe(c) for c in row] for row in cells)
        response = HttpResponse("\ufeff" + buffer.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="pick-list-{stamp}.csv"'
        return response
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(_("Pick list"))
    header = []
    for label in headers:
        cell = WriteOnlyCell(sheet, value=label)
        cell.font = Font(bold=True)
        header.append(cell)
    sheet.append(header)
    for row in cells:
        out = []
        for value in row:
            cell = WriteOnlyCell(sheet, value=value)
            if isinstance(value, str):
                cell.data_type = "s"  # never a formula
            out.append(cell)
        sheet.append(out)
    buffer = io.BytesIO()
    workbook.save(buffer)
    response = HttpResponse(buffer.getvalue(), content_type=XLSX_TYPE)
    response["Content-Disposition"] = f'attachment; filename="pick-list-{stamp}.xlsx"'
    return response


@capability_required("dashboard.view")
def pick(request):
    ids, selection, batch = _selection(request)
    result = packing.build_pick_list(ids) if ids else packing.PickList(rows=[], parcels=0, skipped=[])
    export = request.GET.get("export", "")
    if export in ("csv", "xlsx") and ids:
        return _export(result.rows, export)
    query = request.GET.copy()
    query.pop("export", None)
    return render(
        request,
        "logistics/pick.html",
        {
            "result": result,
            "selection": selection if ids or batch else "",
            "batch": batch,
            "query": query.urlencode(),
            "printed_at": timezone.localtime(),
            "batches": ShipBatch.objects.order_by("-id")[:10],
            "to_ship": selectors.TO_SHIP,
        },
    )


# --- the verify bench ------------------------------------------------------------------------------------


@capability_required("shipping.manage")
def verify(request):
    return render(request, "logistics/verify.html", {"max_weight_g": packing.MAX_WEIGHT_G})


def _answer(
    ok: bool, message: str, ticket: packing.VerifyTicket | None = None, *, status: int = 200, **extra
):
    body = {"ok": ok, "message": message, "ticket": ticket.as_dict() if ticket else None, **extra}
    return JsonResponse(body, status=status, json_dumps_params={"ensure_ascii": False})


def _refused(exc: packing.VerifyRefused, *, ticket=None) -> JsonResponse:
    return _answer(False, " ".join(exc.messages), ticket, status=409)


def _parcel(request) -> Parcel | None:
    pk = _int(request.POST.get("parcel"))
    return Parcel.objects.filter(pk=pk).first() if pk is not None else None


def _missing_parcel() -> JsonResponse:
    return _answer(False, _("No such parcel: scan the waybill again."), status=404)


@require_POST
@capability_required("shipping.manage")
def verify_lookup(request):
    try:
        ticket = packing.verify_lookup(request.POST.get("code", ""))
    except packing.VerifyRefused as exc:
        return _refused(exc)
    if ticket.verified:
        message = _("Parcel %(no)s is already verified.") % {"no": packing.parcel_label(ticket.parcel)}
    else:
        message = _("Parcel %(no)s: scan its items.") % {"no": packing.parcel_label(ticket.parcel)}
    return _answer(True, message, ticket)


@require_POST
@capability_required("shipping.manage")
def verify_scan(request):
    parcel = _parcel(request)
    if parcel is None:
        return _missing_parcel()
    result = packing.verify_scan(
        parcel, request.POST.get("code", ""), actor=request.user, client_id=request.POST.get("scan_id", "")
    )
    return _answer(
        result.ok, result.message, result.ticket, status=200 if result.ok else 409, item=result.item
    )


@require_POST
@capability_required("shipping.manage")
def verify_by_hand(request):
    """One unit of a line counted without a scan (强制), with the packer's reason."""
    parcel = _parcel(request)
    if parcel is None:
        return _missing_parcel()
    result = packing.verify_by_hand(
        parcel,
        request.POST.get("item", ""),
        reason=request.POST.get("reason", ""),
        actor=request.user,
        client_id=request.POST.get("scan_id", ""),
    )
    return _answer(
        result.ok, result.message, result.ticket, status=200 if result.ok else 409, item=result.item
    )


@require_POST
@capability_required("shipping.manage")
def verify_done(request):
    parcel = _parcel(request)
    if parcel is None:
        return _missing_parcel()
    try:
        parcel = packing.verify_done(
            parcel, actor=request.user, weight_g=request.POST.get("weight_g") or None
        )
    except packing.VerifyRefused as exc:
        return _refused(exc, ticket=packing.ticket(parcel))
    message = _("Parcel %(no)s verified.") % {"no": packing.parcel_label(parcel)}
    return _answer(True, message, packing.ticket(parcel))


@require_POST
@capability_required("shipping.manage")
def verify_reset(request):
    parcel = _parcel(request)
    if parcel is None:
        return _missing_parcel()
    try:
        ticket = packing.verify_reset(parcel, actor=request.user)
    except packing.VerifyRefused as exc:
        return _refused(exc, ticket=packing.ticket(parcel))
    return _answer(True, _("Scans of this parcel cleared: scan its items again."), ticket)

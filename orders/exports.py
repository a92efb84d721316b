"""Order exports: the workbench's current filter as an xlsx workbook, written in the background.

- :func:`start_export` records the export in the cache (keys are tenant-scoped) under a random
  id and queues ``export_orders_task`` once the request's transaction commits;
- :func:`run_export` (the task) reads the orders in keyset chunks, appends them to a
  write-only openpyxl workbook in a temporary file, records the progress in the cache after
  every chunk, then stores the file in the tenant's storage (``default_storage`` is
  tenant-scoped: ``MEDIA_ROOT/<schema>/``) under ``exports/orders/<user id>/<export id>.xlsx``;
- the download reads that path in the *current* tenant's storage, for the user who asked
  only (:func:`export_for`).

Buyer data: masks and region only — never ciphertexts, search indexes or plain text.
"""

from __future__ import annotations

import logging
import re
import tempfile
import uuid
from decimal import Decimal

from django.core.cache import cache
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.http import QueryDict
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from channels.types import Platform
from ecbao import money
from orders import selectors
from orders.models import Order

logger = logging.getLogger(__name__)

MAX_ROWS = 200_000
CHUNK = 500
TTL_SECONDS = 24 * 3600
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"

COLUMNS = (
    (gettext_lazy("Platform"), 9),
    (gettext_lazy("Shop"), 18),
    (gettext_lazy("Order no."), 22),
    (gettext_lazy("Status"), 10),
    (gettext_lazy("Hold reasons"), 20),
    (gettext_lazy("Flags"), 16),
    (gettext_lazy("Placed at"), 19),
    (gettext_lazy("Paid at"), 19),
    (gettext_lazy("Items"), 36),
    (gettext_lazy("Quantity"), 8),
    (gettext_lazy("Goods (yuan)"), 12),
    (gettext_lazy("Freight (yuan)"), 12),
    (gettext_lazy("Discount (yuan)"), 12),
    (gettext_lazy("Paid (yuan)"), 12),
    (gettext_lazy("Receiver (masked)"), 12),
    (gettext_lazy("Phone (masked)"), 14),
    (gettext_lazy("Province"), 10),
    (gettext_lazy("City"), 10),
    (gettext_lazy("District"), 10),
    (gettext_lazy("Address (masked)"), 30),
    (gettext_lazy("Buyer remark"), 24),
    (gettext_lazy("Seller remark"), 24),
)


def _key(export_id: str) -> str:
    return f"orders-export:{export_id}"


def is_export_id(value: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-f]{32}", value or ""))


def storage_path(*, user_id: int, export_id: str) -> str:
    return f"exports/orders/{int(user_id)}/{export_id}.xlsx"


def start_export(*, user, query: str, language: str) -> str:
    """Queue an export of the orders matching ``query`` (the workbench's GET parameters)."""
    from orders.export_tasks import export_orders_task

    export_id = uuid.uuid4().hex
    cache.set(
        _key(export_id),
        {
            "user_id": user.pk,
            "schema": connection.schema_name,
            "query": query,
            "language": language,
            "state": QUEUED,
            "done": 0,
            "total": None,
            "filename": "",
            "error": "",
        },
        TTL_SECONDS,
    )
    transaction.on_commit(lambda: export_orders_task.delay(export_id))
    return export_id


def export_for(export_id: str, *, user) -> dict | None:
    """The export's state, when it exists in this tenant and belongs to ``user``."""
    if not is_export_id(export_id):
        return None
    meta = cache.get(_key(export_id))
    if not meta or meta.get("schema") != connection.schema_name or meta.get("user_id") != user.pk:
        return None
    return {**meta, "id": export_id, "percent": _percent(meta)}


def _percent(meta: dict) -> int:
    if meta["state"] == DONE:
        return 100
    total = meta.get("total") or 0
    return min(99, meta["done"] * 100 // total) if total else 0


def _update(export_id: str, meta: dict, **changes) -> None:
    meta.update(changes)
    cache.set(_key(export_id), meta, TTL_SECONDS)


def _local(value):
    return timezone.localtime(value).replace(tzinfo=None) if value else None


def _platform_label(value: str) -> str:
    try:
        return Platform(value).label
    except ValueError:
        return value


def _row(order: Order) -> list:
    lines = list(order.lines.all())
    return [
        _platform_label(order.platform),
        order.store.name,
        order.platform_order_id,
        selectors.status_label(order.status),
        ", ".join(selectors.hold_reason_label(code) for code in order.hold_reasons or ()),
        ", ".join(str(label) for _key, label in order.flag_labels),
        _local(order.placed_at),
        _local(order.paid_at),
        "; ".join(f"{line.merchant_code or line.title} × {line.quantity}" for line in lines),
        sum(line.quantity for line in lines),
        money.to_yuan(order.goods_fen),
        money.to_yuan(order.freight_fen),
        money.to_yuan(order.discount_fen),
        money.to_yuan(order.paid_fen),
        order.receiver_name_mask,
        order.receiver_phone_mask,
        order.province,
        order.city,
        order.district,
        order.receiver_address_mask,
        order.buyer_remark,
        order.seller_remark,
    ]


def _styled(ws, values: list) -> list:
    cells = []
    for value in values:
        cell = WriteOnlyCell(ws, value=value)
        if isinstance(value, Decimal):
            cell.number_format = "#,##0.00"
        elif hasattr(value, "hour"):
            cell.number_format = "yyyy-mm-dd hh:mm:ss"
        cells.append(cell)
    return cells


def run_export(*, export_id: str) -> dict:
    """Write the export (the Celery task's body; safe to run twice: it rewrites the file)."""
    from orders.forms import OrderFilterForm

    meta = cache.get(_key(export_id))
    if not meta or meta.get("schema") != connection.schema_name:
        return {"export": export_id, "state": "missing"}
    try:
        qs = selectors.order_list(OrderFilterForm(QueryDict(meta["query"])).filters())
        total = min(qs.count(), MAX_ROWS)
        _update(export_id, meta, state=RUNNING, done=0, total=total, error="")
        with translation.override(meta.get("language") or "zh-hans"), tempfile.TemporaryFile() as fh:
            workbook = Workbook(write_only=True)
            ws = workbook.create_sheet(_("Orders"))
            for index, (_label, width) in enumerate(COLUMNS, start=1):
                ws.column_dimensions[get_column_letter(index)].width = width
            ws.freeze_panes = "A2"
            header = []
            for label, _width in COLUMNS:
                cell = WriteOnlyCell(ws, value=str(label))
                cell.font = Font(bold=True)
                header.append(cell)
            ws.append(header)
            done, after = 0, ""
            while done < total:
                page = selectors.order_page(qs, after=after, size=min(CHUNK, total - done))
                for order in selectors.decorate(page.rows):
                    ws.append(_styled(ws, _row(order)))
                done += len(page.rows)
                _update(export_id, meta, done=done)
                if not page.next_key:
                    break
                after = page.next_key
            workbook.save(fh)
            fh.seek(0)
            path = storage_path(user_id=meta["user_id"], export_id=export_id)
            if default_storage.exists(path):
                default_storage.delete(path)
            default_storage.save(path, File(fh, name=f"{export_id}.xlsx"))
            filename = f"orders-{timezone.localtime():%Y%m%d-%H%M%S}.xlsx"
        _update(export_id, meta, state=DONE, done=done, total=done, filename=filename)
    except Exception as exc:
        logger.exception("order export %s failed", export_id)
        _update(export_id, meta, state=FAILED, error=type(exc).__name__)
        raise
    return {"export": export_id, "state": DONE, "rows": done}


def open_download(meta: dict):
    """The stored workbook of an export (from :func:`export_for`), or None when it is gone."""
    path = storage_path(user_id=meta["user_id"], export_id=meta["id"])
    if meta["state"] != DONE or not default_storage.exists(path):
        return None
    return default_storage.open(path, "rb")

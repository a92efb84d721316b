"""Supplier workbooks (openpyxl; stock also as csv): the SKUs a supplier supplies, and its stock.

SKU list (first sheet, header row first, columns recognised by header in any site language):
商家编码 (our merchant code, required), 供应商编码 (the supplier's code), 成本价(元) (required),
运费规则 (包邮 / 按单 / 按件, or free / per_dispatch / per_unit; empty = 包邮), 运费(元), 优先级
(lower first; empty = 100).

Stock (xlsx or csv): 商家编码 or 供应商编码 (either identifies the SKU among this supplier's),
库存 (a whole number, 0 or more). Each row is ``services.report_stock``: a count into the
supplier's warehouse through the ledger.

Both imports check every row; good rows are applied (each through the service, so a row is
applied whole or not at all), bad rows are reported with their row number, column and reason,
and nothing else changes. Money is read as yuan by ``ecbao.money`` (exact: two decimals at
most) and stored in fen. Importing the same file twice gives the same state: rows that match
what is stored are counted as unchanged and write nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ecbao import money, sheets
from ecbao.sheets import Column, FileError
from ecbao.sheets import cell_text as _text
from ecbao.sheets import normalise_header as _normalise
from inventory.models import Sku
from suppliers import services
from suppliers.models import Supplier, SupplierSku

MAX_ROWS = 20_000
MAX_STOCK = 10**9


SKU_COLUMNS = (
    Column("merchant_code", gettext_lazy("Merchant code"), 18),
    Column("supplier_code", gettext_lazy("Supplier code"), 18),
    Column("cost", gettext_lazy("Cost (yuan)"), 12),
    Column("freight", gettext_lazy("Freight rule"), 12),
    Column("freight_fen", gettext_lazy("Freight (yuan)"), 12),
    Column("priority", gettext_lazy("Priority"), 8),
)
STOCK_COLUMNS = (
    Column("merchant_code", gettext_lazy("Merchant code"), 18),
    Column("supplier_code", gettext_lazy("Supplier code"), 18),
    Column("on_hand", gettext_lazy("Stock"), 10),
)
_ALIASES = {
    "商家编码": "merchant_code",
    "商品编码": "merchant_code",
    "sku编码": "merchant_code",
    "供应商编码": "supplier_code",
    "供应商商品编码": "supplier_code",
    "成本价(元)": "cost",
    "成本价": "cost",
    "成本": "cost",
    "运费规则": "freight",
    "运费(元)": "freight_fen",
    "运费": "freight_fen",
    "优先级": "priority",
    "库存": "on_hand",
    "库存数量": "on_hand",
    "数量": "on_hand",
}
FREIGHT_WORDS = {
    "包邮": SupplierSku.Freight.FREE,
    "含运费": SupplierSku.Freight.FREE,
    "按单": SupplierSku.Freight.PER_DISPATCH,
    "每单": SupplierSku.Freight.PER_DISPATCH,
    "按件": SupplierSku.Freight.PER_UNIT,
    "每件": SupplierSku.Freight.PER_UNIT,
}


@dataclass(frozen=True)
class RowError:
    row: int  # spreadsheet row (header = 1); 0: the file as a whole
    column: str
    message: str


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    changed: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict:
        return {
            "rows": self.rows,
            "created": self.created,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "errors": [vars(e) for e in self.errors],
        }


class CellError(ValueError):
    def __init__(self, message: str, column: str = "") -> None:
        super().__init__(message)
        self.column = column  # the key of the column at fault, when not the one being read


def read_rows(file, columns: tuple[Column, ...], *, required_any: tuple[str, ...], required: tuple[str, ...]):
    """[(row number, {key: cell})] of the first sheet (or the csv); FileError when the file is
    unreadable, the header lacks a required column, or it is too long."""
    return sheets.read_table(
        file, columns, required=required, required_any=required_any, aliases=_ALIASES, max_rows=MAX_ROWS
    )


def _whole(value, *, default: int | None = None, maximum: int = MAX_STOCK) -> int:
    if money.is_blank(value):
        if default is None:
            raise CellError(_("Enter a whole number, 0 or more."))
        return default
    if isinstance(value, bool):
        raise CellError(_("Enter a whole number, 0 or more."))
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = _text(value).replace(",", "")
    if not text.isdigit():
        raise CellError(_("Enter a whole number, 0 or more."))
    if int(text) > maximum:
        raise CellError(_("The number is too large."))
    return int(text)


def _fen(value, *, blank=None) -> int:
    try:
        if blank is None:
            return money.to_fen(value, exact=True)
        return money.to_fen(value, exact=True, blank=blank)
    except money.MoneyError as exc:
        raise CellError(exc.message) from exc


def freight_of(value) -> str:
    text = _normalise(value)
    if not text:
        return SupplierSku.Freight.FREE
    if text in FREIGHT_WORDS:
        return FREIGHT_WORDS[text]
    for choice, label in SupplierSku.Freight.choices:
        if text in (choice, _normalise(label)):
            return choice
    raise CellError(_("Unknown freight rule “%(value)s”: use 包邮, 按单 or 按件.") % {"value": _text(value)})


def _messages(exc: ValidationError) -> str:
    return "；".join(exc.messages)


# --- the SKUs a supplier supplies ----------------------------------------------------------------


def import_skus(file, *, supplier: Supplier) -> ImportReport:
    """Bind the rows' SKUs to ``supplier`` (create or update ``SupplierSku``); see the module doc."""
    report = ImportReport()
    try:
        rows = read_rows(file, SKU_COLUMNS, required_any=(), required=("merchant_code", "cost"))
    except FileError as exc:
        report.errors.append(RowError(0, "", str(exc)))
        return report
    labels = {c.key: str(c.label) for c in SKU_COLUMNS}
    codes = {_text(cells.get("merchant_code")) for _n, cells in rows}
    skus = {s.merchant_code: s for s in Sku.objects.filter(merchant_code__in=codes)}
    current = {
        item.sku_id: item
        for item in SupplierSku.objects.filter(supplier=supplier, sku__merchant_code__in=codes)
    }
    seen: dict[str, int] = {}
    for number, cells in rows:
        report.rows += 1
        key = "merchant_code"
        try:
            code = _text(cells.get("merchant_code"))
            if not code:
                raise CellError(_("Enter the merchant code."))
            if code in seen:
                raise CellError(_("%(code)s is also in row %(row)d.") % {"code": code, "row": seen[code]})
            sku = skus.get(code)
            if sku is None:
                raise CellError(_("No SKU has the merchant code %(code)s.") % {"code": code})
            key = "cost"
            cost_fen = _fen(cells.get("cost"))
            key = "freight"
            freight = freight_of(cells.get("freight"))
            key = "freight_fen"
            freight_fen = _fen(cells.get("freight_fen"), blank=0)
            if freight == SupplierSku.Freight.FREE:
                freight_fen = 0
            elif not freight_fen:
                raise CellError(_("Enter the freight for this freight rule."))
            key = "priority"
            priority = _whole(cells.get("priority"), default=100, maximum=1_000_000)
            key = "supplier_code"
            supplier_code = _text(cells.get("supplier_code"))
            seen[code] = number
        except CellError as exc:
            report.errors.append(RowError(number, labels[key], str(exc)))
            continue
        wanted = {
            "supplier_code": supplier_code,
            "cost_fen": cost_fen,
            "freight": freight,
            "freight_fen": freight_fen,
            "priority": priority,
            "is_active": True,
        }
        before = current.get(sku.pk)
        if before is not None and all(getattr(before, k) == v for k, v in wanted.items()):
            report.unchanged += 1
            continue
        try:
            services.set_supplier_sku(supplier=supplier, sku=sku, **wanted)
        except ValidationError as exc:
            column = next(iter(getattr(exc, "error_dict", {}) or {}), "merchant_code")
            report.errors.append(
                RowError(number, labels.get(column, labels["merchant_code"]), _messages(exc))
            )
            continue
        if before is None:
            report.created += 1
        else:
            report.changed += 1
    return report


def sku_template() -> bytes:
    """The SKU list layout: the header row and one example row."""
    return _workbook(
        _("Supplier SKUs"),
        SKU_COLUMNS,
        [["TS-WHT-L", "HZ-0001", "12.50", "包邮", "", 100]],
    )


def sku_workbook(supplier: Supplier) -> bytes:
    """The supplier's SKU list in the import layout (edit it and import it back)."""
    freight_words = {v: k for k, v in reversed(list(FREIGHT_WORDS.items()))}
    rows = [
        [
            item.sku.merchant_code,
            item.supplier_code,
            money.format_yuan(item.cost_fen),
            freight_words[item.freight],
            money.format_yuan(item.freight_fen) if item.freight_fen else "",
            item.priority,
        ]
        for item in SupplierSku.objects.filter(supplier=supplier)
        .select_related("sku")
        .order_by("sku__merchant_code")
    ]
    return _workbook(_("Supplier SKUs"), SKU_COLUMNS, rows)


# --- stock ---------------------------------------------------------------------------------------


def import_stock(file, *, supplier: Supplier, user=None) -> ImportReport:
    """Each row reports the supplier's on-hand of one of its SKUs (``services.report_stock``)."""
    report = ImportReport()
    try:
        rows = read_rows(
            file, STOCK_COLUMNS, required_any=("merchant_code", "supplier_code"), required=("on_hand",)
        )
    except FileError as exc:
        report.errors.append(RowError(0, "", str(exc)))
        return report
    labels = {c.key: str(c.label) for c in STOCK_COLUMNS}
    items = list(SupplierSku.objects.filter(supplier=supplier).select_related("sku"))
    by_merchant = {item.sku.merchant_code: item for item in items}
    by_supplier = {item.supplier_code: item for item in items if item.supplier_code}
    seen: dict[int, int] = {}
    for number, cells in rows:
        report.rows += 1
        key = "merchant_code"
        try:
            item, key = _stock_item(cells, by_merchant, by_supplier)
            if item.sku_id in seen:
                raise CellError(
                    _("%(code)s is also in row %(row)d.")
                    % {"code": item.sku.merchant_code, "row": seen[item.sku_id]},
                    key,
                )
            key = "on_hand"
            on_hand = _whole(cells.get("on_hand"))
            seen[item.sku_id] = number
        except CellError as exc:
            report.errors.append(RowError(number, labels[exc.column or key], str(exc)))
            continue
        try:
            changed = services.report_stock(supplier=supplier, sku=item.sku, on_hand=on_hand, user=user)
        except ValidationError as exc:
            report.errors.append(RowError(number, labels["on_hand"], _messages(exc)))
            continue
        if changed:
            report.changed += 1
        else:
            report.unchanged += 1
    return report


def _stock_item(cells, by_merchant, by_supplier) -> tuple[SupplierSku, str]:
    code = _text(cells.get("merchant_code"))
    if code:
        item = by_merchant.get(code)
        if item is None:
            raise CellError(_("This supplier does not supply %(code)s.") % {"code": code})
        return item, "merchant_code"
    theirs = _text(cells.get("supplier_code"))
    if theirs:
        item = by_supplier.get(theirs)
        if item is None:
            raise CellError(
                _("No SKU of this supplier has the supplier code %(code)s.") % {"code": theirs},
                "supplier_code",
            )
        return item, "supplier_code"
    raise CellError(_("Enter the merchant code or the supplier code."))


def stock_template() -> bytes:
    return _workbook(_("Supplier stock"), STOCK_COLUMNS, [["TS-WHT-L", "HZ-0001", 480]])


def _workbook(title: str, columns: tuple[Column, ...], rows: list[list]) -> bytes:
    header = [str(c.label) for c in columns]
    return sheets.workbook_bytes(title, header, rows, widths=[c.width for c in columns], text_columns=2)

"""SKU catalogue workbooks (xlsx, openpyxl): export, and import of the same layout.

Layout (first sheet, header in row 1): goods name, merchant code, barcode, SKU name, spec,
cost (yuan, two decimals), weight (g), combination components (``CODE*2;CODE2*1``), then one
read-only on-hand column per warehouse. Columns are recognised by their header, in any of the
site's languages; other columns (the on-hand ones included) are ignored on import, and a
missing optional column leaves that field as it is.

Import rules:

- rows are keyed by merchant code: a new code creates a SKU; a known code whose row differs
  from the catalogue updates that SKU only once the import is confirmed: without a
  confirmation the import writes nothing and returns a preview (the new SKUs and each changed
  field, old → new) with a fingerprint; confirming with that fingerprint applies the file only
  if it still makes exactly those changes (``confirm=True``, the API's flag form, applies
  whatever it changes);
- goods are found by name (the oldest goods of that name) and created when missing;
- every row is validated before anything is written; one bad row and nothing is imported,
  and every problem is reported with its row number and column (also the cross-row ones,
  such as an unknown combination component, beside problems on other rows);
- money is read as a decimal number of yuan (``ecbao.money``, exact: more than two decimals is
  an error) and stored as integer fen, never through floats;
- only changed fields are written, so importing a file just exported changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from io import BytesIO

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from openpyxl import Workbook, load_workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font, PatternFill
from openpyxl.utils.exceptions import InvalidFileException

from ecbao import money
from inventory import sync
from inventory.models import ComboComponent, Goods, Sku, StockChange, StockLevel, Warehouse

MAX_ROWS = 200_000
MAX_COST_FEN = 10**12  # ¥10,000,000,000.00
MAX_WEIGHT_G = 2_147_483_647
_BATCH = 2000


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int
    max_length: int = 0


COLUMNS = (
    Column("goods_name", gettext_lazy("Goods name"), 24, 200),
    Column("merchant_code", gettext_lazy("Merchant code"), 18, 64),
    Column("barcode", gettext_lazy("Barcode"), 16, 64),
    Column("name", gettext_lazy("SKU name"), 28, 200),
    Column("spec", gettext_lazy("Spec"), 16, 200),
    Column("cost", gettext_lazy("Cost (yuan)"), 12),
    Column("weight_g", gettext_lazy("Weight (g)"), 10),
    Column("components", gettext_lazy("Combination components"), 24),
)
REQUIRED = ("goods_name", "merchant_code", "name")
_LABELS = {column.key: column.label for column in COLUMNS}


@dataclass(frozen=True)
class RowError:
    row: int  # spreadsheet row number (the header is row 1); 0 for the file as a whole
    column: str
    message: str


@dataclass(frozen=True)
class FieldChange:
    field: str  # goods_name, name, barcode, spec, cost, weight_g, components
    label: str
    old: str
    new: str


@dataclass(frozen=True)
class SkuChange:
    merchant_code: str
    fields: list[FieldChange]


@dataclass(frozen=True)
class NewSku:
    merchant_code: str
    goods_name: str
    name: str


@dataclass
class Preview:
    """What a file would change: the SKUs it creates and, per known SKU, each changed field."""

    new: list[NewSku] = field(default_factory=list)
    changes: list[SkuChange] = field(default_factory=list)
    fingerprint: str = ""  # of exactly these changes; pass as ``confirm`` to apply them

    def to_json(self) -> dict:
        return {
            "fingerprint": self.fingerprint,
            "new": [vars(n) for n in self.new],
            "changes": [
                {
                    "merchant_code": c.merchant_code,
                    "fields": [{"field": f.field, "old": f.old, "new": f.new} for f in c.fields],
                }
                for c in self.changes
            ],
        }


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    preview: Preview | None = None
    applied: bool = False  # something was written
    needs_confirmation: bool = False  # known SKUs would change: nothing written, see ``preview``

    @property
    def ok(self) -> bool:
        return not self.errors


# --- export ------------------------------------------------------------------------------------


def components_text(parts: Iterable[tuple[str, int]]) -> str:
    return ";".join(f"{code}*{quantity}" for code, quantity in parts)


def _batches(skus: QuerySet[Sku]) -> Iterator[list[Sku]]:
    batch: list[Sku] = []
    for sku in skus.iterator(chunk_size=_BATCH):
        batch.append(sku)
        if len(batch) == _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def export_skus(skus: QuerySet[Sku]) -> bytes:
    """The workbook of ``skus`` (ordered by merchant code), with on hand per warehouse."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=_("SKUs"))
    warehouses = list(Warehouse.objects.order_by("-is_default", "code"))
    bold, muted = Font(bold=True), Font(bold=True, color="808080")
    read_only_fill = PatternFill("solid", fgColor="EEEEEE")
    header = []
    for index, column in enumerate(COLUMNS):
        cell = WriteOnlyCell(sheet, value=str(column.label))
        cell.font = bold
        header.append(cell)
        sheet.column_dimensions[chr(ord("A") + index)].width = column.width
    for warehouse in warehouses:
        cell = WriteOnlyCell(
            sheet, value=_("On hand: %(warehouse)s (read-only)") % {"warehouse": warehouse.name}
        )
        cell.font, cell.fill = muted, read_only_fill
        header.append(cell)
    sheet.freeze_panes = "C2"
    sheet.append(header)

    for batch in _batches(skus.select_related("goods").order_by("merchant_code")):
        ids = [sku.pk for sku in batch]
        parts: dict[int, list[tuple[str, int]]] = defaultdict(list)
        for combo_id, code, quantity in (
            ComboComponent.objects.filter(combo_id__in=ids)
            .order_by("combo_id", "component__merchant_code")
            .values_list("combo_id", "component__merchant_code", "quantity")
        ):
            parts[combo_id].append((code, quantity))
        on_hand = {
            (sku_id, warehouse_id): quantity
            for sku_id, warehouse_id, quantity in StockLevel.objects.filter(sku_id__in=ids).values_list(
                "sku_id", "warehouse_id", "on_hand"
            )
        }
        for sku in batch:
            cost = WriteOnlyCell(sheet, value=money.to_yuan(sku.cost_fen))
            cost.number_format = "0.00"
            sheet.append(
                [
                    sku.goods.name,
                    sku.merchant_code,
                    sku.barcode,
                    sku.name,
                    sku.spec,
                    cost,
                    sku.weight_g,
                    components_text(parts.get(sku.pk, [])),
                    *[on_hand.get((sku.pk, warehouse.pk), 0) for warehouse in warehouses],
                ]
            )
    buffer = BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


# --- cell parsing ------------------------------------------------------------------------------


class CellError(ValueError):
    pass


def text_of(value) -> str:
    """A cell as text: numbers typed into a text column (codes, barcodes) lose no digits."""
    if value is None:
        return ""
    if isinstance(value, bool):
        raise CellError(_("Expected text, not TRUE/FALSE."))
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value).strip()


def fen_of(value) -> int:
    """Yuan (number or text, at most two decimals, ¥ and thousands separators allowed) → fen."""
    try:
        return money.to_fen(value, exact=True, blank=0, max_fen=MAX_COST_FEN)
    except money.MoneyError as exc:
        raise CellError(exc.message) from exc


def grams_of(value) -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        return 0
    if isinstance(value, bool):
        raise CellError(_("Expected a whole number of grams."))
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if not text.isdigit():
        raise CellError(_("Expected a whole number of grams (0 or more)."))
    grams = int(text)
    if grams > MAX_WEIGHT_G:
        raise CellError(_("The weight is too large."))
    return grams


_PART_SEPARATORS = re.compile(r"[;；\n]+")


def components_of(value) -> list[tuple[str, int]]:
    """``CODE*2;CODE2*1`` → [("CODE", 2), ("CODE2", 1)]; a part without ``*`` means one unit."""
    parts: list[tuple[str, int]] = []
    for raw in _PART_SEPARATORS.split(text_of(value).replace("×", "*")):
        part = raw.strip()
        if not part:
            continue
        code, star, quantity = part.rpartition("*")
        if not star:
            code, quantity = part, "1"
        code, quantity = code.strip(), quantity.strip()
        if not code:
            raise CellError(_("“%(part)s” has no merchant code.") % {"part": part})
        if not quantity.isdigit() or int(quantity) < 1:
            raise CellError(
                _("“%(part)s”: the quantity must be a whole number of at least 1.") % {"part": part}
            )
        if any(existing == code for existing, _q in parts):
            raise CellError(_("%(code)s is listed twice.") % {"code": code})
        parts.append((code, int(quantity)))
    return parts


# --- import --------------------------------------------------------------------------------------


@dataclass
class _Row:
    number: int
    merchant_code: str
    goods_name: str
    name: str
    barcode: str | None = None  # None: the column is absent, keep the current value
    spec: str | None = None
    cost_fen: int | None = None
    weight_g: int | None = None
    components: list[tuple[str, int]] | None = None


def _normalise(header) -> str:
    return re.sub(r"\s+", "", text_of(header)).lower()


def _header_keys() -> dict[str, str]:
    keys = {column.key: column.key for column in COLUMNS}
    for code, _name in settings.LANGUAGES:
        with translation.override(code):
            for column in COLUMNS:
                keys[_normalise(str(column.label))] = column.key
    return keys


def _read(file) -> Iterator[tuple[int, tuple]]:
    try:
        workbook = load_workbook(file, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise CellError(_("The file is not a readable xlsx workbook.")) from exc
    try:
        sheet = workbook.worksheets[0]
        sheet.reset_dimensions()  # some writers record wrong sheet sizes
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            if any(value not in (None, "") for value in values):
                yield number, values
    finally:
        workbook.close()


def _parse_row(number: int, values: tuple, columns: dict[str, int], errors: list[RowError]) -> _Row | None:
    def cell(key):
        index = columns.get(key)
        return values[index] if index is not None and index < len(values) else None

    parsed: dict = {}
    row_errors = len(errors)
    for column in COLUMNS:
        if column.key not in columns:
            continue
        label = str(column.label)
        try:
            if column.key == "cost":
                parsed["cost_fen"] = fen_of(cell("cost"))
            elif column.key == "weight_g":
                parsed["weight_g"] = grams_of(cell("weight_g"))
            elif column.key == "components":
                parsed["components"] = components_of(cell("components"))
            else:
                text = text_of(cell(column.key))
                if column.key in REQUIRED and not text:
                    raise CellError(_("This column is required."))
                if len(text) > column.max_length:
                    raise CellError(
                        _("At most %(n)d characters (this has %(len)d).")
                        % {"n": column.max_length, "len": len(text)}
                    )
                parsed[column.key] = text
        except CellError as exc:
            errors.append(RowError(number, label, str(exc)))
    if len(errors) > row_errors:
        return None
    return _Row(number=number, **parsed)


def _existing(codes: list[str]) -> dict[str, Sku]:
    found: dict[str, Sku] = {}
    for start in range(0, len(codes), _BATCH):
        for sku in Sku.objects.select_related("goods").filter(
            merchant_code__in=codes[start : start + _BATCH]
        ):
            found[sku.merchant_code] = sku
    return found


def _current_components(skus: Iterable[Sku]) -> dict[int, dict[str, int]]:
    ids = [sku.pk for sku in skus if sku.is_combo]
    current: dict[int, dict[str, int]] = defaultdict(dict)
    for start in range(0, len(ids), _BATCH):
        for combo_id, code, quantity in ComboComponent.objects.filter(
            combo_id__in=ids[start : start + _BATCH]
        ).values_list("combo_id", "component__merchant_code", "quantity"):
            current[combo_id][code] = quantity
    return current


@dataclass
class _Plan:
    create: list[_Row] = field(default_factory=list)
    update: list[tuple[Sku, _Row, list[str]]] = field(default_factory=list)
    unchanged: int = 0
    new_goods: set[str] = field(default_factory=set)
    goods_by_name: dict[str, Goods] = field(default_factory=dict)
    recombined: set[str] = field(default_factory=set)  # codes whose components are rewritten
    preview: Preview = field(default_factory=Preview)


def _check(
    rows: dict[str, _Row], existing: dict[str, Sku], errors: list[RowError], *, bad_codes: set[str]
) -> None:
    """Cross-row rules: components exist and are not combinations themselves; a SKU holding
    stock, or used in another combination, cannot become a combination. ``bad_codes``: merchant
    codes of rows that failed their own checks (a component on such a row is not unknown)."""
    label = str(_LABELS["components"])
    referenced = {code for row in rows.values() for code, _q in row.components or []}
    outside = {code for code in referenced if code not in rows and code not in existing}
    known_outside = {sku.merchant_code: sku for sku in Sku.objects.filter(merchant_code__in=outside)}

    def becomes_combo(code: str) -> bool | None:
        row = rows.get(code)
        if row is not None and row.components is not None:
            return bool(row.components)
        sku = existing.get(code) or known_outside.get(code)
        if sku is None:
            return False if code in bad_codes else None  # its own row's problem is reported
        return sku.is_combo

    new_combos = []
    for row in rows.values():
        for code, _quantity in row.components or []:
            if code == row.merchant_code:
                errors.append(RowError(row.number, label, _("A combination cannot contain itself.")))
                continue
            final = becomes_combo(code)
            if final is None:
                errors.append(
                    RowError(
                        row.number,
                        label,
                        _(
                            "No SKU has the merchant code %(code)s (neither in this file nor in the catalogue)."
                        )
                        % {"code": code},
                    )
                )
            elif final:
                errors.append(
                    RowError(
                        row.number,
                        label,
                        _("%(code)s is itself a combination; a combination is made of single SKUs.")
                        % {"code": code},
                    )
                )
        sku = existing.get(row.merchant_code)
        if row.components and sku is not None and not sku.is_combo:
            new_combos.append(sku)
    if not new_combos:
        return
    holding = set(
        StockLevel.objects.filter(sku__in=new_combos)
        .filter(Q(on_hand__gt=0) | Q(reserved__gt=0))
        .values_list("sku__merchant_code", flat=True)
    )
    for code in sorted(holding):
        errors.append(
            RowError(
                rows[code].number,
                label,
                _("This SKU holds stock; a combination has no stock of its own. Move its stock out first."),
            )
        )
    for component_code, combo_code in ComboComponent.objects.filter(component__in=new_combos).values_list(
        "component__merchant_code", "combo__merchant_code"
    ):
        combo_row = rows.get(combo_code)
        if combo_row is None or combo_row.components is None:
            errors.append(
                RowError(
                    rows[component_code].number,
                    label,
                    _("This SKU is a component of the combination %(combo)s, so it cannot become one.")
                    % {"combo": combo_code},
                )
            )


_PREVIEW_LABELS = {
    "goods_name": _LABELS["goods_name"],
    "name": _LABELS["name"],
    "barcode": _LABELS["barcode"],
    "spec": _LABELS["spec"],
    "cost": _LABELS["cost"],
    "weight_g": _LABELS["weight_g"],
    "components": _LABELS["components"],
}


def _fingerprint(preview: Preview) -> str:
    data = json.dumps(
        {k: v for k, v in preview.to_json().items() if k != "fingerprint"}, sort_keys=True, ensure_ascii=False
    )
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def _plan(rows: dict[str, _Row], existing: dict[str, Sku]) -> _Plan:
    plan = _Plan()
    names = {row.goods_name for row in rows.values()}
    for goods in Goods.objects.filter(name__in=names).order_by("-id"):
        plan.goods_by_name[goods.name] = goods  # the oldest wins
    plan.new_goods = names - set(plan.goods_by_name)
    current = _current_components(existing.values())
    for code, row in rows.items():
        sku = existing.get(code)
        if sku is None:
            plan.create.append(row)
            plan.preview.new.append(NewSku(code, row.goods_name, row.name))
            if row.components:
                plan.recombined.add(code)
            continue
        changed = []
        shown: list[tuple[str, str, str]] = []  # (field, old, new) for the preview
        if sku.goods.name != row.goods_name:
            changed.append("goods")
            shown.append(("goods_name", sku.goods.name, row.goods_name))
        if sku.name != row.name:
            changed.append("name")
            shown.append(("name", sku.name, row.name))
        for attr in ("barcode", "spec", "cost_fen", "weight_g"):
            value = getattr(row, attr)
            if value is not None and getattr(sku, attr) != value:
                changed.append(attr)
                if attr == "cost_fen":
                    shown.append(("cost", money.format_yuan(sku.cost_fen), money.format_yuan(value)))
                else:
                    shown.append((attr, str(getattr(sku, attr)), str(value)))
        if row.components is not None:
            before = current.get(sku.pk, {})
            if dict(row.components) != before:
                plan.recombined.add(code)
                shown.append(
                    ("components", components_text(sorted(before.items())), components_text(row.components))
                )
            if sku.is_combo != bool(row.components):
                changed.append("is_combo")
        if changed or code in plan.recombined:
            plan.update.append((sku, row, changed))
            plan.preview.changes.append(
                SkuChange(code, [FieldChange(f, str(_PREVIEW_LABELS[f]), old, new) for f, old, new in shown])
            )
        else:
            plan.unchanged += 1
    plan.preview.new.sort(key=lambda n: n.merchant_code)
    plan.preview.changes.sort(key=lambda c: c.merchant_code)
    plan.preview.fingerprint = _fingerprint(plan.preview)
    return plan


def _apply(plan: _Plan, rows: dict[str, _Row], existing: dict[str, Sku]) -> tuple[int, int]:
    new_goods = [Goods(name=name) for name in sorted(plan.new_goods)]
    Goods.objects.bulk_create(new_goods, batch_size=_BATCH)
    plan.goods_by_name.update({goods.name: goods for goods in new_goods})

    created = [
        Sku(
            goods=plan.goods_by_name[row.goods_name],
            merchant_code=row.merchant_code,
            name=row.name,
            barcode=row.barcode or "",
            spec=row.spec or "",
            cost_fen=row.cost_fen or 0,
            weight_g=row.weight_g or 0,
            is_combo=bool(row.components),
        )
        for row in plan.create
    ]
    Sku.objects.bulk_create(created, batch_size=_BATCH)

    fields: set[str] = set()
    updated = []
    for sku, row, changed in plan.update:
        if not changed:
            continue  # only its components change
        if "goods" in changed:
            sku.goods = plan.goods_by_name[row.goods_name]
        sku.name = row.name
        for attr in ("barcode", "spec", "cost_fen", "weight_g"):
            if getattr(row, attr) is not None:
                setattr(sku, attr, getattr(row, attr))
        if row.components is not None:
            sku.is_combo = bool(row.components)
        fields.update(changed)
        updated.append(sku)
    if updated:
        Sku.objects.bulk_update(updated, fields=sorted(fields), batch_size=_BATCH)

    if plan.recombined:
        ids = {sku.merchant_code: sku.pk for sku in created}
        ids.update({code: sku.pk for code, sku in existing.items()})
        missing = {c for code in plan.recombined for c, _q in rows[code].components or []} - set(ids)
        ids.update(dict(Sku.objects.filter(merchant_code__in=missing).values_list("merchant_code", "pk")))
        combo_ids = [ids[code] for code in plan.recombined]
        ComboComponent.objects.filter(combo_id__in=combo_ids).delete()
        ComboComponent.objects.bulk_create(
            [
                ComboComponent(combo_id=ids[code], component_id=ids[part], quantity=quantity)
                for code in sorted(plan.recombined)
                for part, quantity in rows[code].components or []
            ],
            batch_size=_BATCH,
        )
        # a combination's available stock changed: its listings publish a new number
        StockChange.objects.bulk_create([StockChange(sku_id=pk) for pk in combo_ids], batch_size=_BATCH)
        transaction.on_commit(sync.schedule_stock_sync)
    return len(created), len(plan.update)


def import_skus(file, *, confirm: str | bool = False) -> ImportResult:
    """Create or update goods and SKUs from a workbook in the export layout (see module
    docstring). Nothing is written unless every row is valid, nor while known SKUs would
    change without ``confirm`` (the preview's fingerprint, or True)."""
    result = ImportResult()
    errors = result.errors
    lines = _read(file)
    rows: dict[str, _Row] = {}
    bad_codes: set[str] = set()
    try:
        header = next(lines, None)
        if header is None:
            errors.append(RowError(0, "", _("The workbook is empty.")))
            return result
        header_number, header_values = header
        keys = _header_keys()
        columns: dict[str, int] = {}
        for index, value in enumerate(header_values):
            key = keys.get(_normalise(value))
            if key is None:
                continue  # on-hand and other columns are read-only / ignored
            if key in columns:
                errors.append(RowError(header_number, text_of(value), _("This column appears twice.")))
            columns[key] = index
        for key in REQUIRED:
            if key not in columns:
                errors.append(RowError(header_number, str(_LABELS[key]), _("This column is missing.")))
        if errors:
            return result

        code_index = columns["merchant_code"]
        for count, (number, values) in enumerate(lines):
            if count >= MAX_ROWS:
                errors.append(
                    RowError(number, "", _("At most %(n)d rows can be imported at once.") % {"n": MAX_ROWS})
                )
                break
            row = _parse_row(number, values, columns, errors)
            if row is None:
                try:
                    bad_codes.add(text_of(values[code_index] if code_index < len(values) else None))
                except CellError:
                    pass
                continue
            first = rows.get(row.merchant_code)
            if first is not None:
                errors.append(
                    RowError(
                        number,
                        str(_LABELS["merchant_code"]),
                        _("This merchant code is already on row %(row)d.") % {"row": first.number},
                    )
                )
                continue
            rows[row.merchant_code] = row
    except CellError as exc:
        errors.append(RowError(0, "", str(exc)))
        return result
    finally:
        lines.close()

    existing = _existing(list(rows))
    _check(rows, existing, errors, bad_codes=bad_codes)
    if errors:
        errors.sort(key=lambda error: error.row)
        return result
    plan = _plan(rows, existing)
    result.unchanged = plan.unchanged
    result.preview = plan.preview
    if not (plan.create or plan.update or plan.recombined):
        return result
    if plan.update and confirm is not True and confirm != plan.preview.fingerprint:
        result.needs_confirmation = True
        return result
    try:
        with transaction.atomic():
            result.created, result.updated = _apply(plan, rows, existing)
            result.applied = True
    except IntegrityError:
        result.created = result.updated = 0
        errors.append(
            RowError(0, "", _("The catalogue changed while importing (a merchant code is taken); try again."))
        )
    return result


# --- a previewed file, kept until it is confirmed -------------------------------------------------

_UPLOAD_TOKEN = re.compile(r"[0-9a-f]{32}")
_UPLOAD_MAX_AGE = timedelta(days=1)


def _upload_path(user_id: int, token: str) -> str | None:
    if not _UPLOAD_TOKEN.fullmatch(token or ""):
        return None
    return f"imports/skus/{int(user_id)}/{token}.xlsx"


def keep_upload(*, user_id: int, file) -> str:
    """Store a previewed workbook in the tenant's storage for its confirmation; returns the
    token that names it. The user's uploads older than a day (previews never confirmed) go."""
    folder = f"imports/skus/{int(user_id)}"
    if default_storage.exists(folder):
        for name in default_storage.listdir(folder)[1]:
            old = f"{folder}/{name}"
            if timezone.now() - default_storage.get_modified_time(old) > _UPLOAD_MAX_AGE:
                default_storage.delete(old)
    token = uuid.uuid4().hex
    file.seek(0)
    default_storage.save(_upload_path(user_id, token), File(file, name=f"{token}.xlsx"))
    return token


def import_kept_upload(*, user_id: int, token: str, confirm: str) -> ImportResult | None:
    """Import a kept workbook with the preview's fingerprint; None when there is no such file.
    The file is dropped once it was imported or turned out invalid; a new preview (the
    catalogue changed since) keeps it for the next confirmation."""
    path = _upload_path(user_id, token)
    if path is None or not default_storage.exists(path):
        return None
    with default_storage.open(path, "rb") as fh:
        result = import_skus(BytesIO(fh.read()), confirm=confirm or False)
    if not result.needs_confirmation:
        default_storage.delete(path)
    return result

"""Spreadsheets people upload and download (xlsx, and csv where an import allows it).

One reader for every import by header: the first non-empty row is the header, matched to the
import's columns by their labels in every language, their keys or common aliases (spaces and
full-width brackets ignored); the rows after it come back as {column key: raw cell value} with
their spreadsheet row number, so a row-level error can say "row 7, 成本价(元)". One writer for
templates and exports: a bold header row, column widths, code columns stored as text (long ids
keep every digit).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _
from openpyxl import Workbook, load_workbook
from openpyxl.styles import Font
from openpyxl.utils.exceptions import InvalidFileException


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int


class FileError(ValueError):
    """The file as a whole cannot be imported (unreadable, no header, a column missing, too long)."""


def cell_text(value) -> str:
    """A cell as text: None → "", 12.0 → "12" (spreadsheets store whole numbers as floats)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value).strip()


def normalise_header(header) -> str:
    text = cell_text(header).replace("（", "(").replace("）", ")")
    return re.sub(r"\s+", "", text).lower()


def header_keys(columns: tuple[Column, ...], aliases: Mapping[str, str] = {}) -> dict[str, str]:  # noqa: B006
    """{normalised header text: column key}: keys, aliases and every language's label."""
    wanted = {c.key for c in columns}
    keys = {c.key: c.key for c in columns} | {k: v for k, v in aliases.items() if v in wanted}
    for code, _name in settings.LANGUAGES:
        with translation.override(code):
            for c in columns:
                keys[normalise_header(str(c.label))] = c.key
    return keys


def _xlsx_lines(file) -> Iterator[tuple[int, tuple]]:
    try:
        workbook = load_workbook(file, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise FileError(_("The file is not a readable xlsx workbook.")) from exc
    try:
        sheet = workbook.worksheets[0]
        sheet.reset_dimensions()
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            if any(v not in (None, "") for v in values):
                yield number, values
    finally:
        workbook.close()


def _csv_lines(file) -> Iterator[tuple[int, tuple]]:
    raw = file.read()
    if isinstance(raw, str):
        text = raw
    else:
        for encoding in ("utf-8-sig", "gb18030"):
            try:
                text = raw.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
        else:
            raise FileError(_("The csv file is neither UTF-8 nor GB18030 text."))
    for number, values in enumerate(csv.reader(io.StringIO(text)), start=1):
        if any(v.strip() for v in values):
            yield number, tuple(values)


def _is_csv(file) -> bool:
    name = (getattr(file, "name", "") or "").lower()
    if name.endswith(".csv"):
        return True
    if name.endswith(".xlsx"):
        return False
    head = file.read(4)
    file.seek(0)
    if isinstance(head, str):
        return True
    return not head.startswith(b"PK") and not head.startswith(codecs.BOM_UTF8 + b"PK")


def read_table(
    file,
    columns: tuple[Column, ...],
    *,
    required: tuple[str, ...] = (),
    required_any: tuple[str, ...] = (),
    aliases: Mapping[str, str] = {},  # noqa: B006
    max_rows: int,
    allow_csv: bool = True,
) -> list[tuple[int, dict]]:
    """[(row number, {key: raw cell value})] of the first sheet (or the csv, when allowed);
    FileError when the file is unreadable or empty, the header lacks a ``required`` column (or
    every one of ``required_any``), or it has more than ``max_rows`` rows."""
    lines = _csv_lines(file) if allow_csv and _is_csv(file) else _xlsx_lines(file)
    header = next(lines, None)
    if header is None:
        raise FileError(_("The workbook is empty."))
    keys, found = header_keys(columns, aliases), {}
    for index, value in enumerate(header[1]):
        key = keys.get(normalise_header(value))
        if key and key not in found:
            found[key] = index
    labels = {c.key: str(c.label) for c in columns}
    missing = [labels[k] for k in required if k not in found]
    if required_any and not any(k in found for k in required_any):
        missing.append(_(" or ").join(labels[k] for k in required_any))
    if missing:
        raise FileError(
            _("Columns missing in row %(row)d: %(columns)s.")
            % {"row": header[0], "columns": "、".join(missing)}
        )
    rows = []
    for number, values in lines:
        if len(rows) >= max_rows:
            raise FileError(_("At most %(n)d rows can be imported at once.") % {"n": max_rows})
        rows.append((number, {k: values[i] if i < len(values) else None for k, i in found.items()}))
    return rows


def workbook_bytes(
    title: str, header: list[str], rows: list[list], *, widths=(), text_columns: int = 0
) -> bytes:
    """An xlsx of one sheet: a bold header, column widths, the first ``text_columns`` columns of
    every row stored as text."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = title[:31]
    sheet.append(header)
    for index, width in enumerate(widths):
        sheet.cell(row=1, column=index + 1).font = Font(bold=True)
        sheet.column_dimensions[chr(ord("A") + index)].width = width
    for row in rows:
        sheet.append(row)
    if text_columns:
        for cells in sheet.iter_rows(min_row=2, max_col=text_columns):
            for cell in cells:
                cell.number_format = "@"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()

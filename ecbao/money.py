"""Money: integer fen everywhere inside ecbao; yuan only at the edges (what people type, xlsx
cells, platform fields written in yuan). This module is the one place yuan become fen and fen
become yuan text.

- Accepted input: ``int`` and ``Decimal`` (yuan), ``float`` (read through its shortest repr,
  which is what a spreadsheet cell held — never through binary arithmetic), and text: surrounding
  spaces, a leading ``¥``/``￥`` and thousands separators in groups of three (``1,234.50``) are
  allowed; exponents, ``NaN`` and ``Infinity`` are not.
- One rounding rule: amounts with more than two decimals are rounded to the fen **half up**
  (``decimal.ROUND_HALF_UP``: ``1.005`` → 101 fen, ``-1.005`` → −101 fen, away from zero on the
  half), the usual rule for CNY. Where a person types an amount (forms, the SKU workbook),
  callers pass ``exact=True`` instead: more than two decimals is then an error, never a silent
  change of what was typed.
- Every refusal is a :class:`MoneyError` (a ``ValueError``) with a ``code`` (``blank``,
  ``invalid``, ``precision``, ``negative``, ``too_large``) and a translated message.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.utils.translation import gettext_lazy as _

MAX_FEN = 10**12  # ¥10,000,000,000.00: beyond any single amount ecbao stores
_FEN = Decimal(1)
_REQUIRED = object()
_TEXT = re.compile(r"(?:[¥￥]\s*)?([+-])?\s*(?:[¥￥]\s*)?(\d{1,3}(?:,\d{3})+|\d+)?(?:\.(\d*))?")

_MESSAGES = {
    "blank": _("Enter an amount in yuan, such as 12.50."),
    "invalid": _("Expected an amount in yuan, such as 12.50."),
    "precision": _("An amount can have at most two decimals."),
    "negative": _("The amount cannot be negative."),
    "too_large": _("The amount is too large."),
}


class MoneyError(ValueError):
    """An amount that cannot be read as yuan; ``code`` says why, ``str()`` is translated."""

    def __init__(self, code: str) -> None:
        self.code = code
        super().__init__(code)

    @property
    def message(self) -> str:
        return str(_MESSAGES[self.code])

    def __str__(self) -> str:
        return self.message


def _decimal(value) -> Decimal:
    if isinstance(value, bool):
        raise MoneyError("invalid")
    if isinstance(value, int | Decimal):
        amount = Decimal(value)
    elif isinstance(value, float):
        amount = Decimal(repr(value))
    else:
        match = _TEXT.fullmatch(str(value).strip())
        if match is None or not (match[2] or match[3]):
            raise MoneyError("invalid")
        sign, whole, fraction = match[1] or "", (match[2] or "0").replace(",", ""), match[3] or "0"
        try:
            amount = Decimal(f"{sign}{whole}.{fraction}")
        except InvalidOperation as exc:  # pragma: no cover - the pattern admits only digits
            raise MoneyError("invalid") from exc
    if not amount.is_finite():
        raise MoneyError("invalid")
    return amount


def is_blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def to_fen(
    value, *, exact: bool = False, negative: bool = False, max_fen: int = MAX_FEN, blank=_REQUIRED
) -> int:
    """Yuan (see the module docstring for what is accepted) → integer fen.

    ``exact``: refuse more than two decimals instead of rounding half up; ``negative``: allow
    amounts below zero; ``max_fen``: the largest magnitude accepted; ``blank``: what an empty
    value (None, "", spaces) gives — without it, an empty value is a ``MoneyError("blank")``."""
    if is_blank(value):
        if blank is _REQUIRED:
            raise MoneyError("blank")
        return blank
    amount = _decimal(value) * 100
    if abs(amount) > max_fen:  # before rounding: a huge exponent must not reach quantize
        raise MoneyError("too_large")
    fen = amount.quantize(_FEN, rounding=ROUND_HALF_UP)
    if exact and fen != amount:
        raise MoneyError("precision")
    if fen < 0 and not negative:
        raise MoneyError("negative")
    return int(fen)


def to_yuan(fen: int) -> Decimal:
    """Integer fen → yuan as a ``Decimal`` with two places (for xlsx cells and JSON)."""
    return (Decimal(int(fen)) / 100).quantize(Decimal("0.01"))


def format_yuan(fen: int, *, symbol: bool = False, grouping: bool = False) -> str:
    """Integer fen → ``"1234.50"`` (what a form field shows); ``symbol`` and ``grouping`` give
    the display form ``"¥1,234.50"``."""
    amount = int(fen)
    whole, cents = divmod(abs(amount), 100)
    number = f"{whole:,}" if grouping else str(whole)
    return f"{'-' if amount < 0 else ''}{'¥' if symbol else ''}{number}.{cents:02d}"

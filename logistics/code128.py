"""Code 128 encoding for waybill barcodes (ISO/IEC 15417): text → bar and space widths.

Pure: no drawing here (``logistics/labels.py`` draws the bars). Code set C (two digits per
symbol) for runs of digits long enough to pay for the switch, code set B for everything else,
so a typical tracking number (``SF1234567890123``, ``773012345678901``) stays short enough for
a 76 mm label at a module width a 203-dpi thermal printer reproduces.
"""

from __future__ import annotations

# Bar/space widths (in modules) of the symbols with values 0 … 106; 106 is the stop symbol.
PATTERNS = (
    "212222 222122 222221 121223 121322 131222 122213 122312 132212 221213 "
    "221312 231212 112232 122132 122231 113222 123122 123221 223211 221132 "
    "221231 213212 223112 312131 311222 321122 321221 312212 322112 322211 "
    "212123 212321 232121 111323 131123 131321 112313 132113 132311 211313 "
    "231113 231311 112133 112331 132131 113123 113321 133121 313121 211331 "
    "231131 213113 213311 213131 311123 311321 331121 312113 312311 332111 "
    "314111 221411 431111 111224 111422 121124 121421 141122 141221 112214 "
    "112412 122114 122411 142112 142211 241211 221114 413111 241112 134111 "
    "111242 121142 121241 114212 124112 124211 411212 421112 421211 212141 "
    "214121 412121 111143 111341 131141 114113 114311 411113 411311 113141 "
    "114131 311141 411131 211412 211214 211232 2331112"
).split()

START_B, START_C, CODE_B, CODE_C, STOP = 104, 105, 100, 99, 106
QUIET_MODULES = 10  # the quiet zone the standard asks for on each side


class BarcodeError(ValueError):
    """The text cannot be encoded in Code 128 code sets B/C (empty or not printable ASCII)."""


def _digit_run(text: str, start: int) -> int:
    end = start
    while end < len(text) and "0" <= text[end] <= "9":
        end += 1
    return end - start


def encode(text: str) -> list[int]:
    """Symbol values for ``text``: start, data, checksum, stop."""
    if not text:
        raise BarcodeError("empty barcode text")
    bad = [ch for ch in text if not 32 <= ord(ch) <= 126]
    if bad:
        raise BarcodeError(f"barcode text {text!r} has characters Code 128 B/C cannot carry: {bad[:3]!r}")
    leading = _digit_run(text, 0)
    in_c = leading >= 4 or leading == len(text) == 2
    values = [START_C if in_c else START_B]
    i = 0
    while i < len(text):
        if in_c:
            if _digit_run(text, i) >= 2:
                values.append(int(text[i : i + 2]))
                i += 2
                continue
            values.append(CODE_B)
            in_c = False
        run = _digit_run(text, i)
        # Switching costs one symbol: worth it for 4+ digits at the end, 6+ in the middle.
        if run >= 6 or (run >= 4 and i + run == len(text)):
            if run % 2:
                values.append(ord(text[i]) - 32)
                i += 1
            values.append(CODE_C)
            in_c = True
            continue
        values.append(ord(text[i]) - 32)
        i += 1
    checksum = (values[0] + sum(weight * value for weight, value in enumerate(values[1:], 1))) % 103
    return [*values, checksum, STOP]


def widths(text: str) -> list[int]:
    """Alternating bar/space widths in modules (bar first), without the quiet zones."""
    return [int(w) for value in encode(text) for w in PATTERNS[value]]


def module_count(text: str) -> int:
    """Modules the barcode needs including both quiet zones."""
    return sum(widths(text)) + 2 * QUIET_MODULES

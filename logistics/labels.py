"""Shipping labels rendered by ecbao itself, as PDF: previews, and carriers outside the
platforms' print components.

Pure rendering: a neutral :class:`LabelData` in, PDF bytes out; no database, no platform
specifics. Buyer data arrives as the platform's masks only (``receiver_*_mask``) — ecbao never
holds the plaintext, so a label cannot print it.

Zones follow GB/T 41833-2022 and the platforms' 一联单 (WeChat standard 76×130 mm), top to
bottom: carrier / parcel n/m, 三段码 (sort code, big), 大头笔 and 集包地, 码号区 (Code 128 of the
tracking number with the number in text), receiver (masked), sender, 内件 (items), remarks, and
a small ecbao custom area (platform order ids, printing time). Every text is fitted to its
zone: long addresses wrap and end in "…", a long item list ends in "…等N件" (N = pieces in the
parcel), so nothing ever leaves the page.

Font: Noto Sans CJK SC from the ``noto-cjk-sans-otc`` package (a dependency, never fetched at
run time), embedded as a subset (only the glyphs a PDF uses). fpdf2 parses that 19 MB font
collection in about 0.2 s, so the parsed font is kept per process (:func:`_font_template`) and
each PDF gets its own copy with a fresh subset.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from fontTools import ttLib
from fpdf import FPDF
from fpdf.fonts import SubsetMap

from logistics import code128

# fontTools logs every subset at INFO, glyph by glyph: noise in a worker's log, per PDF.
logging.getLogger("fontTools.subset").setLevel(logging.WARNING)

SHANGHAI = ZoneInfo("Asia/Shanghai")
FONT_FAMILY = "notosanssc"
FONT_COLLECTION_INDEX = 2  # NotoSansCJK-Regular.ttc: 0 JP, 1 KR, 2 SC, 3 TC, 4 HK
ELLIPSIS = "…"
PT_TO_MM = 25.4 / 72
# A plain phone number (7+ digits in a row) where a mask belongs: refused, never printed.
_PLAIN_DIGITS = re.compile(r"\d{7,}")


def mask_numbers(text: str) -> str:
    """A free text (a buyer's remark) with every run of 7+ digits masked the platforms' way
    (13812345678 → 138****5678): buyers write phone numbers into remarks, and a label or a print
    task leaves the building."""

    def mask(match: re.Match) -> str:
        digits = match[0]
        head = max(0, min(3, len(digits) - 8))  # 11 digits: 138****5678; 7: ***4567
        return digits[:head] + "*" * (len(digits) - head - 4) + digits[-4:]

    return _PLAIN_DIGITS.sub(mask, text or "")


class LabelError(ValueError):
    """A label cannot be rendered as given (which label and why is in the message)."""


@dataclass(frozen=True, slots=True)
class LabelItem:
    """One line of the parcel's contents: title/spec (or merchant code) and quantity."""

    title: str
    qty: int


@dataclass(frozen=True, slots=True)
class LabelData:
    """Everything one label shows. Receiver fields are the platform's masks only."""

    tracking_no: str
    carrier_name: str
    receiver_name_mask: str
    receiver_phone_mask: str
    receiver_address_mask: str
    sender_name: str = ""
    sender_phone: str = ""
    sender_address: str = ""
    sort_code: str = ""  # 三段码
    short_address: str = ""  # 大头笔
    package_center: str = ""  # 集包地
    items: tuple[LabelItem, ...] = ()
    buyer_remark: str = ""
    seller_remark: str = ""
    parcel_no: int = 1
    parcel_count: int = 1
    platform_order_ids: tuple[str, ...] = ()
    printed_at: datetime | None = None
    custom_text: str = ""  # ecbao's custom area, e.g. the shop's name or a pick-batch number

    def __post_init__(self) -> None:
        try:
            code128.encode(self.tracking_no)
        except code128.BarcodeError as exc:
            raise LabelError(f"tracking number {self.tracking_no!r}: {exc}") from exc
        if _PLAIN_DIGITS.search(self.receiver_phone_mask):
            raise LabelError(
                f"label {self.tracking_no}: the receiver phone is not masked; labels print masks only"
            )
        if not 1 <= self.parcel_no <= self.parcel_count:
            raise LabelError(f"label {self.tracking_no}: parcel {self.parcel_no} of {self.parcel_count}")
        if any(item.qty < 1 for item in self.items):
            raise LabelError(f"label {self.tracking_no}: an item quantity below 1")
        if self.printed_at is not None and self.printed_at.tzinfo is None:
            raise LabelError(f"label {self.tracking_no}: printed_at must be an aware datetime")


@dataclass(frozen=True)
class LabelSize:
    """A paper size and its zone heights (mm) and font sizes (pt)."""

    name: str
    width: float
    height: float
    margin: float
    header: float
    sort: float
    marks: float
    barcode: float
    bars: float  # bar height inside the barcode zone
    receiver: float
    sender: float
    remarks: float
    footer: float
    font_header: float
    font_sort: float
    font_marks: float
    font_code: float
    font_receiver: float
    font_address: float
    font_small: float
    font_items: float
    tag_width: float = field(default=6.0)  # the "收" / "寄" column


SIZES = {
    "76x130": LabelSize(
        name="76x130", width=76, height=130, margin=2,
        header=7, sort=13, marks=7, barcode=19, bars=13.5, receiver=20, sender=12, remarks=8, footer=6,
        font_header=11, font_sort=26, font_marks=13, font_code=10, font_receiver=10, font_address=9,
        font_small=6.5, font_items=7.5,
    ),
    "100x180": LabelSize(
        name="100x180", width=100, height=180, margin=3,
        header=9, sort=18, marks=10, barcode=26, bars=18, receiver=27, sender=16, remarks=11, footer=8,
        font_header=14, font_sort=36, font_marks=18, font_code=13, font_receiver=13, font_address=11.5,
        font_small=8, font_items=10, tag_width=8,
    ),
}  # fmt: skip

# Module widths a 203-dpi (8 dots/mm) thermal printer reproduces exactly, widest first.
_DOT = 0.125
# Bars drawn half a dot narrower: thermal heads (and rasterizers) spread each black bar into the
# space beside it; at a 2-dot module that gain alone made one number in six unreadable at 203 dpi.
_BAR_REDUCTION = _DOT / 2
_MODULE_WIDTHS = (0.5, 0.375, 0.25)
_MIN_MODULE = 0.19  # below this a scanner struggles: refuse rather than print an unreadable label


# --- the font: parsed once per process, a fresh subset per PDF --------------------------------------


def font_path() -> str:
    import noto_cjk_sans_otc

    return str(noto_cjk_sans_otc.FONT_PATH)


_template_lock = threading.Lock()
_UNUSED_TABLES = ("BASE", "GDEF", "GPOS", "GSUB", "VORG", "vhea", "vmtx")


@functools.cache
def _font_template():
    """fpdf2's parsed font (widths, cmap, glyph ids): the slow part of add_font, done once."""
    with _template_lock:
        pdf = FPDF()
        pdf.add_font(FONT_FAMILY, fname=font_path(), collection_font_number=FONT_COLLECTION_INDEX)
        return pdf.fonts[FONT_FAMILY]


def _add_font(pdf: FPDF) -> None:
    """Give ``pdf`` its own copy of the cached font: shared read-only metrics, its own
    fontTools object (fpdf2 subsets that in place when it writes the PDF) and glyph subset.
    This sets what fpdf2's ``add_font`` sets on a ``TTFFont`` (fpdf2 is pinned below 2.9 for
    it; tests/logistics/test_labels.py catches a PDF whose glyphs went wrong)."""
    template = _font_template()
    font = copy.copy(template)
    font.i = len(pdf.fonts) + 1
    font.ttfont = ttLib.TTFont(
        template.ttffile,
        recalcTimestamp=False,
        recalcBBoxes=False,  # the subset keeps the collection's bounding boxes: 0.3 s less per PDF
        fontNumber=FONT_COLLECTION_INDEX,
        lazy=True,
    )
    # Only the CFF outlines and metrics go into the PDF; layout and vertical tables would only
    # be read and subset for nothing (about a third of the time a PDF takes to write).
    for tag in _UNUSED_TABLES:
        if tag in font.ttfont:
            del font.ttfont[tag]
    font.subset = SubsetMap(font)
    font.missing_glyphs = []
    font.biggest_size_pt = 0
    font._hbfont = None
    pdf.fonts[FONT_FAMILY] = font
    if font.is_cff and font.is_cid_keyed:
        pdf._set_min_pdf_version("1.6")


# --- text fitting -----------------------------------------------------------------------------------


class _Printable(dict):
    """A ``str.translate`` table for the characters the font lacks (filled in as they come):
    emoji and other symbols are dropped, control and format characters become a space or
    nothing, and anything else — a rare 汉字 in a name or an address — becomes "□", so a packer
    sees that a character is missing instead of a silently shorter address."""

    def __init__(self, cmap: dict[int, object]):
        super().__init__()
        self._cmap = cmap

    def __missing__(self, code: int) -> int | str | None:
        ch = chr(code)
        category = unicodedata.category(ch)
        if ch.isspace() or category == "Cc":
            value: int | str | None = " "
        elif code in self._cmap:
            value = code
        elif category[0] in "SC" or category == "Mn":
            value = None
        else:
            value = "□"
        self[code] = value
        return value

    def clean(self, text: str) -> str:
        return " ".join(text.translate(self).split())


def _printable_label(label: LabelData, table: _Printable) -> LabelData:
    """``label`` with every text reduced to what the font can draw."""
    clean = table.clean
    changes = {
        f.name: clean(value)
        for f in dataclasses.fields(LabelData)
        if isinstance(value := getattr(label, f.name), str) and f.name != "tracking_no"
    }
    changes["items"] = tuple(LabelItem(clean(item.title), item.qty) for item in label.items)
    return dataclasses.replace(label, **changes)


class _Fitter:
    """Measures text in the label font (mm at a size in pt) and cuts it to fit."""

    def __init__(self, widths: dict[int, float]):
        self._cw = widths  # 1/1000 em per code point

    def width(self, text: str, size: float) -> float:
        cw = self._cw
        return sum(cw[ord(ch)] for ch in text) * size / 1000 * PT_TO_MM

    def line(self, text: str, width: float, size: float) -> str:
        """``text`` on one line of ``width`` mm, cut with "…" when too long."""
        if self.width(text, size) <= width:
            return text
        return self.lines(text, width, size, 1)[0]

    def lines(self, text: str, width: float, size: float, max_lines: int) -> list[str]:
        """``text`` wrapped (at any character: Chinese has no spaces) to at most ``max_lines``
        lines of ``width`` mm; the last one cut with "…" when the text goes on."""
        limit = width * 1000 / size / PT_TO_MM
        cw = self._cw
        text = " ".join(text.split())
        out: list[str] = []
        start, used = 0, 0.0
        for i, ch in enumerate(text):
            w = cw[ord(ch)]
            if used + w > limit and i > start:
                out.append(text[start:i])
                if len(out) == max_lines:
                    break
                start, used = i, 0.0
            used += w
        else:
            out.append(text[start:])
            return out
        last = out[-1].rstrip()
        room = limit - cw[ord(ELLIPSIS)]
        while last and sum(cw[ord(ch)] for ch in last) > room:
            last = last[:-1]
        out[-1] = last.rstrip() + ELLIPSIS
        return out


# --- drawing ----------------------------------------------------------------------------------------


class _LabelPage:
    """Draws one label on the current page of ``pdf``."""

    def __init__(self, pdf: FPDF, size: LabelSize, fitter: _Fitter):
        self.pdf = pdf
        self.size = size
        self.fit = fitter
        self.left = size.margin
        self.right = size.width - size.margin
        self.inner = self.right - self.left

    def text(self, x: float, top: float, size: float, text: str, *, heavy: bool = False) -> None:
        """Text whose line box (``size`` pt tall) starts at ``top`` mm. ``heavy`` draws it twice,
        a hair apart: a bolder stroke for what is read at arm's length (the collection has no
        bold face, and fpdf2's fill-and-stroke text mode leaks into the text after it)."""
        if text:
            pdf = self.pdf
            pdf.set_font_size(size)
            baseline = top + size * PT_TO_MM * 0.88
            pdf.text(x, baseline, text)
            if heavy:
                pdf.text(x + size * 0.007, baseline, text)

    def rule(self, y: float) -> None:
        self.pdf.line(self.left, y, self.right, y)

    def draw(self, label: LabelData) -> None:
        s, pdf = self.size, self.pdf
        pdf.set_line_width(0.3)
        pdf.rect(self.left, s.margin, self.inner, s.height - 2 * s.margin)
        y = s.margin
        y = self.header(label, y)
        y = self.sort_marks(label, y)
        y = self.barcode(label, y)
        y = self.receiver(label, y)
        y = self.sender(label, y)
        items_bottom = s.height - s.margin - s.footer - s.remarks
        self.items(label, y, items_bottom)
        y = self.remarks(label, items_bottom)
        self.footer(label, y)

    def header(self, label: LabelData, y: float) -> float:
        s, fit = self.size, self.fit
        parcel = f"{label.parcel_no}/{label.parcel_count}"
        parcel_w = fit.width(parcel, s.font_header)
        self.text(self.right - 1 - parcel_w, y + 1, s.font_header, parcel)
        carrier = fit.line(label.carrier_name, self.inner - parcel_w - 4, s.font_header)
        self.text(self.left + 1, y + 1, s.font_header, carrier)
        y += s.header
        self.rule(y)
        return y

    def sort_marks(self, label: LabelData, y: float) -> float:
        s, fit = self.size, self.fit
        if label.sort_code:
            code = fit.line(label.sort_code, self.inner - 2, s.font_sort)
            x = self.left + (self.inner - fit.width(code, s.font_sort)) / 2
            self.text(x, y + (s.sort - s.font_sort * PT_TO_MM) / 2, s.font_sort, code, heavy=True)
        y += s.sort
        self.rule(y)
        half = self.inner / 2
        if label.short_address:
            short = fit.line(label.short_address, half - 2, s.font_marks)
            self.text(self.left + 1, y + 1, s.font_marks, short, heavy=True)
        if label.package_center:
            center = fit.line(f"集包地 {label.package_center}", half - 2, s.font_small * 1.4)
            self.text(self.left + half + 1, y + 1.5, s.font_small * 1.4, center)
        y += s.marks
        self.rule(y)
        return y

    def barcode(self, label: LabelData, y: float) -> float:
        s, pdf = self.size, self.pdf
        bars = code128.widths(label.tracking_no)
        modules = sum(bars) + 2 * code128.QUIET_MODULES
        room = self.inner - 2
        module = next((w for w in _MODULE_WIDTHS if w * modules <= room), room / modules)
        if module < _MIN_MODULE:
            raise LabelError(
                f"tracking number {label.tracking_no!r} is too long for a readable barcode on {s.name}"
            )
        x = self.left + (self.inner - module * (modules - 2 * code128.QUIET_MODULES)) / 2
        x = round(x / _DOT) * _DOT  # bars start on the printer's dot grid, so every bar keeps its width
        top = y + 1.2
        for i, w in enumerate(bars):
            if i % 2 == 0:
                pdf.rect(x, top, w * module - _BAR_REDUCTION, s.bars, style="F")
            x += w * module
        number = label.tracking_no
        if number.isalnum():  # read out in groups of four, like a phone number
            number = " ".join(number[i : i + 4] for i in range(0, len(number), 4))
        number_w = self.fit.width(number, s.font_code)
        self.text(self.left + (self.inner - number_w) / 2, top + s.bars + 0.4, s.font_code, number)
        y += s.barcode
        self.rule(y)
        return y

    def tagged_zone(self, tag: str, y: float, height: float) -> float:
        """The "收" / "寄" column; returns the x where the zone's text starts."""
        s = self.size
        x = self.left + s.tag_width
        self.pdf.line(x, y, x, y + height)
        size = s.font_receiver
        self.text(
            self.left + (s.tag_width - size * PT_TO_MM) / 2, y + (height - size * PT_TO_MM) / 2, size, tag
        )
        return x + 1

    def receiver(self, label: LabelData, y: float) -> float:
        s, fit = self.size, self.fit
        x = self.tagged_zone("收", y, s.receiver)
        width = self.right - x - 1
        who = fit.line(f"{label.receiver_name_mask}  {label.receiver_phone_mask}", width, s.font_receiver)
        self.text(x, y + 1, s.font_receiver, who)
        line_h = s.font_address * PT_TO_MM * 1.2
        top = y + 1.5 + s.font_receiver * PT_TO_MM * 1.2
        max_lines = max(1, int((y + s.receiver - top) // line_h))
        for i, line in enumerate(fit.lines(label.receiver_address_mask, width, s.font_address, max_lines)):
            self.text(x, top + i * line_h, s.font_address, line)
        y += s.receiver
        self.rule(y)
        return y

    def sender(self, label: LabelData, y: float) -> float:
        s, fit = self.size, self.fit
        x = self.tagged_zone("寄", y, s.sender)
        width = self.right - x - 1
        size = s.font_items
        line_h = size * PT_TO_MM * 1.2
        self.text(x, y + 1, size, fit.line(f"{label.sender_name}  {label.sender_phone}", width, size))
        max_lines = max(1, int((s.sender - 1.5 - line_h) // line_h))
        for i, line in enumerate(fit.lines(label.sender_address, width, size, max_lines)):
            self.text(x, y + 1.3 + (i + 1) * line_h, size, line)
        y += s.sender
        self.rule(y)
        return y

    def items(self, label: LabelData, y: float, bottom: float) -> None:
        s, fit = self.size, self.fit
        size = s.font_items
        line_h = size * PT_TO_MM * 1.25
        pieces = sum(item.qty for item in label.items)
        x = self.left + 1
        width = self.inner - 2
        self.text(x, y + 0.8, size, f"内件 共{pieces}件")
        top = y + 0.8 + line_h
        max_lines = max(1, int((bottom - 0.5 - top) // line_h))
        rows = list(label.items)
        shown = rows if len(rows) <= max_lines else rows[: max_lines - 1]
        for i, item in enumerate(shown):
            qty = f"×{item.qty}"
            qty_w = fit.width(qty, size)
            self.text(self.right - 1 - qty_w, top + i * line_h, size, qty)
            self.text(x, top + i * line_h, size, fit.line(item.title, width - qty_w - 2, size))
        if len(shown) < len(rows):
            rest = f"{ELLIPSIS}等{pieces}件"
            self.text(x, top + len(shown) * line_h, size, rest)
        self.rule(bottom)

    def remarks(self, label: LabelData, y: float) -> float:
        s, fit = self.size, self.fit
        size = s.font_small
        line_h = size * PT_TO_MM * 1.25
        lines = []
        if label.buyer_remark:
            lines.append(f"买家留言: {label.buyer_remark}")
        if label.seller_remark:
            lines.append(f"卖家备注: {label.seller_remark}")
        max_lines = max(1, int((s.remarks - 0.8) // line_h))
        text_lines: list[str] = []
        for i, remark in enumerate(lines):
            budget = max_lines - len(text_lines) - (len(lines) - i - 1)
            if budget > 0:
                text_lines += fit.lines(remark, self.inner - 2, size, budget)
        for i, line in enumerate(text_lines):
            self.text(self.left + 1, y + 0.5 + i * line_h, size, line)
        y += s.remarks
        self.rule(y)
        return y

    def footer(self, label: LabelData, y: float) -> None:
        s, fit = self.size, self.fit
        size = s.font_small
        line_h = size * PT_TO_MM * 1.2
        when = label.printed_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M") if label.printed_at else ""
        right = f"{when}  ecbao".strip()
        right_w = fit.width(right, size)
        self.text(self.right - 1 - right_w, y + 0.4, size, right)
        orders = ", ".join(label.platform_order_ids)
        if orders:
            orders = fit.line(f"订单 {orders}", self.inner - right_w - 3, size)
        self.text(self.left + 1, y + 0.4, size, orders)
        if label.custom_text:
            self.text(
                self.left + 1, y + 0.4 + line_h, size, fit.line(label.custom_text, self.inner - 2, size)
            )


# --- public API -------------------------------------------------------------------------------------


def render_labels(
    labels: Sequence[LabelData] | Iterable[LabelData],
    *,
    size: str = "76x130",
    progress: Callable[[int, int], None] | None = None,
    progress_every: int = 50,
) -> bytes:
    """One PDF, one page per label, in the order given. ``progress(done, total)`` is called
    every ``progress_every`` labels and once at the end."""
    try:
        layout = SIZES[size]
    except KeyError:
        raise LabelError(f"unknown label size {size!r}; one of {', '.join(SIZES)}") from None
    labels = list(labels)
    if not labels:
        raise LabelError("no labels to render")
    pdf = FPDF(unit="mm", format=(layout.width, layout.height))
    pdf.set_auto_page_break(False)
    pdf.set_margin(0)
    pdf.set_creator("ecbao")
    pdf.set_title("ecbao labels")
    pdf.set_creation_date(labels[0].printed_at or datetime.now(SHANGHAI))
    _add_font(pdf)
    pdf.set_font(FONT_FAMILY, size=layout.font_items)
    font = pdf.fonts[FONT_FAMILY]
    page = _LabelPage(pdf, layout, _Fitter(font.cw))
    printable = _Printable(font.cmap)
    total = len(labels)
    for done, label in enumerate(labels, 1):
        pdf.add_page()
        page.draw(_printable_label(label, printable))
        if progress and (done % progress_every == 0 or done == total):
            progress(done, total)
    try:
        return bytes(pdf.output())
    finally:
        font.ttfont.close()  # the lazily read font file


def render_label(label: LabelData, *, size: str = "76x130") -> bytes:
    """A one-page PDF of one label (preview, reprint)."""
    return render_labels([label], size=size)

"""Shipping labels as PDF (logistics/labels.py): every page rendered to an image the way a
printer would see it, every barcode decoded with zxing-cpp, page sizes and zones measured
with PDFium. No database: labels are pure rendering."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime

import pypdfium2 as pdfium
import pytest
import zxingcpp

from logistics import code128
from logistics.labels import SIZES, LabelData, LabelError, LabelItem, render_label, render_labels

MM = 72 / 25.4  # PDF points per mm
PRINTER_SCALE = 8 / MM  # 203 dpi: 8 dots per mm, like a thermal label printer

TRACKING_NUMBERS = [
    "SF1400000000000",  # SF: letters + 13 digits
    "773012345678901",  # 15 digits (code set C throughout)
    "YT7512345678901",
    "JT5123456789012",
    "75312345678",  # odd number of digits
    "DPK364012345678",
    "1234567890123456789",  # long, digits
    "ZTO-2026-12-07-A1",  # punctuation, short digit runs (code set B)
]
CITIES = ["杭州市西湖区", "广州市白云区", "乌鲁木齐市天山区", "成都市锦江区", "哈尔滨市道里区"]


def make_label(i: int, **changes) -> LabelData:
    fields = dict(
        tracking_no=TRACKING_NUMBERS[i % len(TRACKING_NUMBERS)]
        + (f"{i:02d}" if i >= len(TRACKING_NUMBERS) else ""),
        carrier_name=["顺丰速运", "圆通速递", "中通快递", "极兔速递"][i % 4],
        receiver_name_mask=["张**", "欧阳**", "李*", "司马**"][i % 4],
        receiver_phone_mask=f"1{i % 10}3****{i:04d}",
        receiver_address_mask=f"{CITIES[i % len(CITIES)]}文三路****号{i}栋****室",
        sender_name="杭州小宝服饰旗舰店",
        sender_phone="0571-88886666",
        sender_address="浙江省杭州市余杭区仓前街道文一西路1818号 3号仓库",
        sort_code=f"{500 + i}-H{i % 10}0 0{i % 9}",
        short_address=["杭州西湖", "广州白云", "新疆乌市", "成都锦江"][i % 4],
        package_center=["杭州转运中心", "广州集散中心", "乌鲁木齐分拨", "成都转运中心"][i % 4],
        items=(
            LabelItem(f"纯棉短袖T恤 白色 {['S', 'M', 'L', 'XL'][i % 4]}", 1 + i % 3),
            LabelItem("牛仔裤 蓝色 32", 1),
        ),
        buyer_remark="请尽快发货，谢谢" if i % 2 else "",
        seller_remark="送小礼品" if i % 3 else "",
        parcel_no=1,
        parcel_count=1,
        platform_order_ids=(f"37294610293847{i:05d}",),
        printed_at=datetime(2026, 12, 7, 7, 30, tzinfo=UTC),
    )
    fields.update(changes)
    return LabelData(**fields)


def decode_pages(pdf_bytes: bytes) -> list[list[str]]:
    """Every page as a 203-dpi image, and the Code 128 barcodes zxing-cpp reads on it."""
    doc = pdfium.PdfDocument(pdf_bytes)
    found = []
    for page in doc:
        image = page.render(scale=PRINTER_SCALE, grayscale=True).to_pil()
        found.append([r.text for r in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.Code128)])
    return found


def page_text(page) -> str:
    return page.get_textpage().get_text_range()


def text_box(page, needle: str) -> tuple[float, float, float, float]:
    """(left, bottom, right, top) in points of the first occurrence of ``needle`` on ``page``."""
    textpage = page.get_textpage()
    hit = textpage.search(needle).get_next()
    assert hit, f"{needle!r} not on the page: {page_text(page)!r}"
    start, count = hit
    boxes = [textpage.get_charbox(i) for i in range(start, start + count)]
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


@pytest.mark.parametrize("size", ["76x130", "100x180"])
def test_batch_pdf_has_one_page_per_label_and_every_barcode_decodes_to_its_tracking_number(size):
    labels = [make_label(i) for i in range(30)]
    calls = []
    pdf_bytes = render_labels(
        labels, size=size, progress=lambda done, total: calls.append((done, total)), progress_every=10
    )

    assert calls == [(10, 30), (20, 30), (30, 30)]
    decoded = decode_pages(pdf_bytes)
    assert decoded == [[label.tracking_no] for label in labels]
    doc = pdfium.PdfDocument(pdf_bytes)
    layout = SIZES[size]
    for page, label in zip(doc, labels, strict=True):
        width, height = page.get_size()
        assert (round(width / MM, 1), round(height / MM, 1)) == (layout.width, layout.height)
        text = page_text(page)
        # The zones carry the label's own data, in Chinese, as searchable text.
        for part in (
            label.carrier_name,
            label.receiver_name_mask,
            label.receiver_phone_mask,
            label.sort_code,
        ):
            assert part in text
        assert label.package_center in text and label.short_address in text
        assert "内件 共" in text and label.platform_order_ids[0] in text
    # The font is embedded as a subset: a full Noto Sans CJK SC face is about 16 MB.
    assert len(pdf_bytes) < 400_000


@pytest.mark.parametrize("size", ["76x130", "100x180"])
def test_long_items_long_address_and_no_sort_marks_stay_inside_the_label(size):
    items = tuple(LabelItem(f"商品{j} 超长的规格名称 颜色 尺码 材质 款式 {j}" * 2, j + 1) for j in range(40))
    label = make_label(
        3,
        sort_code="",
        short_address="",
        package_center="",
        items=items,
        receiver_address_mask="新疆维吾尔自治区伊犁哈萨克自治州霍尔果斯市亚欧南路****号" * 5,
        sender_address="浙江省杭州市余杭区仓前街道文一西路1818号未来科技城海创园" * 4,
        buyer_remark="很长的买家留言" * 40,
        seller_remark="很长的卖家备注" * 40,
        platform_order_ids=tuple(f"{10**18 + j}" for j in range(12)),
        custom_text="拣货批次 B20261207-01 " * 10,
    )
    pdf_bytes = render_label(label, size=size)
    assert decode_pages(pdf_bytes) == [[label.tracking_no]]
    page = pdfium.PdfDocument(pdf_bytes)[0]
    layout = SIZES[size]
    width, height = page.get_size()
    frame = (layout.margin * MM, layout.margin * MM, width - layout.margin * MM, height - layout.margin * MM)
    for obj in page.get_objects():
        left, bottom, right, top = obj.get_bounds()
        # (1 pt of slack: the frame's own stroke is centred on it)
        assert left >= frame[0] - 1 and right <= frame[2] + 1, (obj.type, obj.get_bounds(), frame)
        assert bottom >= frame[1] - 1 and top <= frame[3] + 1, (obj.type, obj.get_bounds(), frame)
    text = page_text(page)
    pieces = sum(item.qty for item in items)
    assert f"内件 共{pieces}件" in text
    assert f"…等{pieces}件" in text
    assert "商品0" in text and "商品39" not in text
    # Items end above the remarks, the remarks above the custom area: no zone runs into the next.
    assert text_box(page, f"…等{pieces}件")[1] > text_box(page, "买家留言")[3]
    assert text_box(page, "卖家备注")[1] > text_box(page, "订单")[3]
    # The long address wraps and ends in an ellipsis; the order ids are cut, not spilled.
    assert "霍尔果斯" in text and "…" in text
    assert str(10**18 + 11) not in text


def test_single_label_helper_and_multi_parcel_marks():
    label = make_label(5, parcel_no=2, parcel_count=3)
    pdf_bytes = render_label(label)
    assert decode_pages(pdf_bytes) == [[label.tracking_no]]
    text = page_text(pdfium.PdfDocument(pdf_bytes)[0])
    assert "2/3" in text
    assert "2026-12-07 15:30" in text  # printed-at in Asia/Shanghai


def test_each_pdf_gets_its_own_font_subset_from_the_cached_font():
    """The parsed font is cached per process; fpdf2 subsets the font in place when it writes a
    PDF, so a second PDF with other characters must still carry its own glyphs."""
    first = render_label(make_label(0, receiver_address_mask="北京市朝阳区****"))
    second = render_label(
        make_label(1, receiver_address_mask="黑龙江省漠河市北极村****", carrier_name="邮政EMS")
    )
    assert "北京市朝阳区" in page_text(pdfium.PdfDocument(first)[0])
    second_text = page_text(pdfium.PdfDocument(second)[0])
    assert "黑龙江省漠河市北极村" in second_text and "邮政EMS" in second_text
    assert decode_pages(second) == [[make_label(1).tracking_no]]


def test_characters_the_font_lacks_are_dropped_or_marked_never_lost_silently(caplog):
    label = make_label(
        1,
        buyer_remark="谢谢😊👍 快点\u200b发货\t\n第二行\x07",
        receiver_address_mask="广东省深圳市南山区𪚥路****号",  # a character outside the font
        items=(LabelItem("🎁礼盒装 ｢全角｣", 1),),
    )
    with caplog.at_level("WARNING"):
        pdf_bytes = render_label(label)
    assert not [r for r in caplog.records if "missing" in r.getMessage()]
    text = page_text(pdfium.PdfDocument(pdf_bytes)[0])
    assert "南山区□路****号" in text  # visible as missing, not silently shorter
    assert "买家留言: 谢谢 快点发货 第二行" in text  # emoji, format and control characters dropped
    assert "礼盒装 ｢全角｣" in text
    assert decode_pages(pdf_bytes) == [[label.tracking_no]]


def test_label_data_holds_receiver_masks_only():
    names = [f.name for f in dataclasses.fields(LabelData)]
    personal = [n for n in names if re.search(r"phone|mobile|tel|address|name|receiver|consignee", n)]
    assert {"receiver_name_mask", "receiver_phone_mask", "receiver_address_mask"} <= set(personal)
    # Receiver data only as masks; names, phones and addresses otherwise only the merchant's
    # (sender_*), the carrier's name and its routing mark 大头笔 (short_address).
    allowed = {"short_address", "carrier_name"}
    assert [n for n in personal if not (n.endswith("_mask") or n.startswith("sender_") or n in allowed)] == []
    with pytest.raises(LabelError, match="not masked"):
        make_label(0, receiver_phone_mask="18312340293")


def test_bad_input_is_refused_with_a_clear_error():
    with pytest.raises(LabelError, match="tracking number"):
        make_label(0, tracking_no="顺丰123")
    with pytest.raises(LabelError, match="tracking number"):
        make_label(0, tracking_no="")
    with pytest.raises(LabelError, match="parcel 3 of 2"):
        make_label(0, parcel_no=3, parcel_count=2)
    with pytest.raises(LabelError, match="aware"):
        make_label(0, printed_at=datetime(2026, 12, 7, 7, 30))
    with pytest.raises(LabelError, match="unknown label size"):
        render_labels([make_label(0)], size="100x150")
    with pytest.raises(LabelError, match="no labels"):
        render_labels([])
    with pytest.raises(LabelError, match="too long for a readable barcode"):
        render_label(make_label(0, tracking_no="SF-" + "AB12" * 15))


def test_code128_uses_code_set_c_for_digit_runs():
    assert code128.encode("773012345678901")[0] == code128.START_C
    assert code128.encode("SF1400000000000")[0] == code128.START_B
    # "SF" in B, then the 13 digits: one in B, twelve as six pairs in C.
    assert len(code128.encode("SF1400000000000")) == 1 + 2 + 1 + 1 + 6 + 2
    assert code128.module_count("773012345678901") == 11 * (1 + 7 + 2 + 1) + 13 + 2 * 10

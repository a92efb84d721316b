"""Shipping labels per second per core: ecbao's PDF path (``logistics.labels.render_labels``)
against the bare PDF library drawing the same pages, in the same run, for 300 labels of each
size.

"The same pages": the ecbao run is first recorded (untimed) as the PDF library calls it makes —
font size, text at a position, filled rectangles (the bars), lines — and the bare run replays
exactly those calls on a plain ``fpdf2.FPDF`` loaded with the same font file the way fpdf2's
documentation does it (``add_font`` per document, default subsetting). So the bare figure is
the library's floor for these pages; the difference is ecbao's work (layout, text fitting,
Code 128) and its font handling (the parsed font cached per process, unused font tables
dropped before subsetting).

Per core = labels per CPU second of this single-threaded process (``time.process_time``): on
a shared machine that is what one core delivers; wall time is reported beside it.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from datetime import UTC, datetime

LABELS = int(os.environ.get("BENCH_LABELS", "300"))
ROUNDS = int(os.environ.get("BENCH_LABEL_ROUNDS", "5"))
GOAL_PER_CORE = 200

PROVINCES = [
    ("浙江省", "杭州市", ["西湖区", "余杭区", "滨江区"]),
    ("广东省", "广州市", ["白云区", "天河区", "番禺区"]),
    ("新疆维吾尔自治区", "乌鲁木齐市", ["天山区", "沙依巴克区"]),
    ("四川省", "成都市", ["锦江区", "武侯区", "郫都区"]),
    ("黑龙江省", "哈尔滨市", ["道里区", "南岗区"]),
    ("江苏省", "苏州市", ["工业园区", "吴中区", "昆山市"]),
    ("云南省", "西双版纳傣族自治州", ["景洪市", "勐海县"]),
    ("内蒙古自治区", "呼和浩特市", ["赛罕区", "新城区"]),
]
STREETS = ["文三路", "中山大道", "解放北路", "人民南路", "学府路", "星湖街", "亚欧南路", "红旗街"]
PRODUCTS = [
    "纯棉短袖T恤",
    "高腰牛仔裤",
    "羊毛针织开衫",
    "防晒冰丝袖套",
    "真丝睡衣套装",
    "加绒卫衣",
    "儿童雨靴",
]
COLOURS = ["白色", "黑色", "雾霾蓝", "燕麦色", "酒红"]
CARRIERS = [("顺丰速运", "SF"), ("圆通速递", "YT"), ("中通快递", "7"), ("极兔速递", "JT"), ("韵达快递", "43")]


def make_labels(count: int):
    from logistics.labels import LabelData, LabelItem

    rnd = random.Random(13)
    labels = []
    for i in range(count):
        province, city, districts = rnd.choice(PROVINCES)
        carrier, prefix = CARRIERS[i % len(CARRIERS)]
        items = tuple(
            LabelItem(f"{rnd.choice(PRODUCTS)} {rnd.choice(COLOURS)} {rnd.choice('SMLX')}", rnd.randint(1, 3))
            for _ in range(rnd.choice([1, 1, 2, 3, 12]))
        )
        labels.append(
            LabelData(
                tracking_no=f"{prefix}{rnd.randrange(10**12, 10**13)}",
                carrier_name=carrier,
                receiver_name_mask=rnd.choice(["张**", "欧阳**", "李*", "王**"]),
                receiver_phone_mask=f"1{rnd.randint(30, 99)}****{rnd.randint(0, 9999):04d}",
                receiver_address_mask=f"{province}{city}{rnd.choice(districts)}{rnd.choice(STREETS)}****号****室",
                sender_name="杭州小宝服饰旗舰店",
                sender_phone="0571-88886666",
                sender_address="浙江省杭州市余杭区仓前街道文一西路1818号 3号仓库",
                sort_code=f"{rnd.randint(100, 999)}-{rnd.choice('ABCDH')}{rnd.randint(1, 20):02d} {rnd.randint(0, 99):02d}",
                short_address=f"{city[:2]}{rnd.choice(districts)[:2]}",
                package_center=f"{city[:2]}转运中心",
                items=items,
                buyer_remark=rnd.choice(["", "", "请尽快发货，谢谢", "放快递柜"]),
                seller_remark=rnd.choice(["", "送小礼品"]),
                parcel_no=1,
                parcel_count=1,
                platform_order_ids=(f"3729{rnd.randrange(10**14, 10**15)}",),
                printed_at=datetime(2026, 12, 7, 8, 0, tzinfo=UTC),
            )
        )
    return labels


def record_pages(labels, size: str) -> list[list[tuple]]:
    """The PDF library calls ecbao makes for these labels, page by page (untimed)."""
    from fpdf import FPDF

    import logistics.labels as module

    pages: list[list[tuple]] = []

    class Recorder(FPDF):
        def add_page(self, *args, **kwargs):
            pages.append([])
            return super().add_page(*args, **kwargs)

        def set_font_size(self, size):
            pages[-1].append(("size", size))
            return super().set_font_size(size)

        def text(self, x, y, text=""):
            pages[-1].append(("text", x, y, text))
            return super().text(x, y, text)

        def rect(self, x, y, w, h, style=None, *args, **kwargs):
            pages[-1].append(("rect", x, y, w, h, style))
            return super().rect(x, y, w, h, style, *args, **kwargs)

        def line(self, x1, y1, x2, y2):
            pages[-1].append(("line", x1, y1, x2, y2))
            return super().line(x1, y1, x2, y2)

        def set_line_width(self, width):
            if pages:
                pages[-1].append(("width", width))
            return super().set_line_width(width)

    original = module.FPDF
    module.FPDF = Recorder
    try:
        module.render_labels(labels, size=size)
    finally:
        module.FPDF = original
    return pages


def bare_fpdf2(pages: list[list[tuple]], width: float, height: float, font_file: str) -> tuple[bytes, dict]:
    """The same pages with plain fpdf2: no ecbao code."""
    from fpdf import FPDF

    started = time.process_time()
    pdf = FPDF(unit="mm", format=(width, height))
    pdf.set_auto_page_break(False)
    pdf.add_font("noto", fname=font_file, collection_font_number=2)
    pdf.set_font("noto", size=8)
    loaded = time.process_time()
    for ops in pages:
        pdf.add_page()
        for op in ops:
            kind = op[0]
            if kind == "text":
                pdf.text(op[1], op[2], op[3])
            elif kind == "rect":
                pdf.rect(op[1], op[2], op[3], op[4], style=op[5])
            elif kind == "size":
                pdf.set_font_size(op[1])
            elif kind == "line":
                pdf.line(op[1], op[2], op[3], op[4])
            else:
                pdf.set_line_width(op[1])
    drawn = time.process_time()
    data = bytes(pdf.output())
    done = time.process_time()
    return data, {"font_s": loaded - started, "draw_s": drawn - loaded, "output_s": done - drawn}


def timed(fn) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def bench_size(labels, size: str) -> dict:
    from logistics.labels import SIZES, font_path, render_labels

    layout = SIZES[size]
    pages = record_pages(labels, size)
    assert len(pages) == len(labels)
    ops = sum(len(p) for p in pages)
    ours_wall, ours_cpu, bare_wall, bare_cpu, phases = [], [], [], [], []
    ours_phases = []
    sizes = {}
    for _ in range(ROUNDS):  # alternate, so both see the same machine load
        marks = [time.process_time()]
        # the last progress call comes when every page is drawn, before the PDF is written
        w, c, data = timed(
            lambda marks=marks: render_labels(
                labels, size=size, progress=lambda d, t: d == t and marks.append(time.process_time())
            )
        )
        ours_phases.append({"draw_s": marks[1] - marks[0], "output_s": marks[0] + c - marks[1]})
        ours_wall.append(w)
        ours_cpu.append(c)
        sizes["ecbao_pdf_bytes"] = len(data)
        w, c, (data, phase) = timed(lambda: bare_fpdf2(pages, layout.width, layout.height, font_path()))
        bare_wall.append(w)
        bare_cpu.append(c)
        phases.append(phase)
        sizes["bare_pdf_bytes"] = len(data)
    n = len(labels)
    ours_cpu_s, bare_cpu_s = statistics.median(ours_cpu), statistics.median(bare_cpu)
    result = {
        "size": size,
        "labels": n,
        "rounds": ROUNDS,
        "library_calls_per_label": round(ops / n, 1),
        "ecbao_batch_wall_s": round(statistics.median(ours_wall), 3),
        "ecbao_batch_cpu_s": round(ours_cpu_s, 3),
        "ecbao_labels_per_s_per_core": round(n / ours_cpu_s, 1),
        "ecbao_labels_per_s_wall": round(n / statistics.median(ours_wall), 1),
        "bare_batch_wall_s": round(statistics.median(bare_wall), 3),
        "bare_batch_cpu_s": round(bare_cpu_s, 3),
        "bare_labels_per_s_per_core": round(n / bare_cpu_s, 1),
        "bare_phases_cpu_s": {k: round(statistics.median(p[k] for p in phases), 3) for k in phases[0]},
        "ecbao_phases_cpu_s": {
            k: round(statistics.median(p[k] for p in ours_phases), 3) for k in ours_phases[0]
        },
        "ratio_ecbao_to_bare": round(bare_cpu_s / ours_cpu_s, 2),
        "goal_per_core": GOAL_PER_CORE,
        **sizes,
    }
    print(
        f"{size}: ecbao {result['ecbao_labels_per_s_per_core']}/s/core "
        f"({n} labels in {result['ecbao_batch_wall_s']} s wall, {result['ecbao_batch_cpu_s']} s CPU); "
        f"bare fpdf2 {result['bare_labels_per_s_per_core']}/s/core; ratio {result['ratio_ecbao_to_bare']}"
    )
    return result


def main() -> dict:
    import logistics.labels as module

    labels = make_labels(LABELS)
    started, cpu = time.perf_counter(), time.process_time()
    module._font_template.cache_clear()
    module._font_template()
    cold = {"font_parse_wall_s": round(time.perf_counter() - started, 3)}
    cold["font_parse_cpu_s"] = round(time.process_time() - cpu, 3)
    _, one_cpu, _ = timed(lambda: module.render_label(labels[0]))
    cold["one_label_pdf_cpu_s"] = round(one_cpu, 3)
    print(
        f"font parsed once per process in {cold['font_parse_wall_s']} s; one label → PDF {cold['one_label_pdf_cpu_s']} s CPU"
    )
    return {"cold": cold, "sizes": [bench_size(labels, size) for size in ("76x130", "100x180")]}


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()

"""Tracking numbers imported from xlsx (ship by hand): rows per second for a workbook of N
orders shipped outside ecbao — each row checked, put on the order's parcel and shipped through
``shipping.ship_parcels`` (stock out, order shipped, write-back queued) — and for the same
workbook imported again (every row already there: nothing changes), in a tenant of its own.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from io import BytesIO

from common import clean_tenant
from django_tenants.utils import schema_context

ROWS = int(os.environ.get("BENCH_MANUAL_ROWS", "1000"))


def _orders(count: int) -> list[str]:
    from channels.models import Store
    from channels.types import ChannelOrder, ChannelOrderLine, CipherField, OrderStatus, Platform, Receiver
    from inventory.models import Goods, Sku
    from inventory.services import receive_stock
    from orders import services as orders

    store = Store.objects.create(platform="douyin", platform_shop_id="bench-1", name="抖店", app_key="k")
    sku = Sku.objects.create(goods=Goods.objects.create(name="T恤"), merchant_code="TS-1", name="T恤")
    receive_stock(sku=sku, quantity=count * 2, reason="opening")
    at = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    ids = []
    for i in range(count):
        oid = f"69{i:012d}"
        co = ChannelOrder(
            platform=Platform.DOUYIN,
            platform_shop_id="bench-1",
            platform_order_id=oid,
            platform_status="2",
            status=OrderStatus.PAID,
            created_at=at - timedelta(minutes=5),
            updated_at=at,
            lines=(ChannelOrderLine("L1", "P1", "S1", "TS-1", "T恤", "白 L", 1, 9900, 9900),),
            receiver=Receiver(
                CipherField("#n#", "张*", f"n{i}"),
                CipherField("$t$", "138****8888", f"t{i}"),
                CipherField("#a#", "文***号", f"a{i}"),
                "浙江省",
                "杭州市",
                "西湖区",
            ),
            paid_at=at,
            goods_fen=9900,
            paid_fen=9900,
        )
        orders.ingest_channel_order(store=store, co=co)
        ids.append(oid)
    return ids


def _workbook(ids: list[str]) -> bytes:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(["平台订单号", "快递公司", "运单号"])
    for i, oid in enumerate(ids):
        sheet.append([oid, "中通快递", f"7310{i:010d}"])
    buffer = BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def main() -> dict:
    from logistics import manual
    from logistics import services as parcels
    from logistics.models import Parcel, WriteBack

    with clean_tenant("manual-import") as schema, schema_context(schema):
        started = time.perf_counter()
        ids = _orders(ROWS)
        parcels.ensure_parcels()
        setup_s = time.perf_counter() - started
        data = _workbook(ids)

        started = time.perf_counter()
        first = manual.import_xlsx(BytesIO(data))
        first_s = time.perf_counter() - started
        started = time.perf_counter()
        again = manual.import_xlsx(BytesIO(data))
        again_s = time.perf_counter() - started

        shipped = Parcel.objects.filter(status=Parcel.Status.SHIPPED, manual=True).count()
        write_backs = WriteBack.objects.count()
        assert (first.entered, first.shipped, first.error_count) == (ROWS, ROWS, 0), first.to_json()
        assert (again.entered, again.unchanged, again.error_count) == (0, ROWS, 0)
        assert shipped == write_backs == ROWS
    result = {
        "rows": ROWS,
        "setup_seconds": round(setup_s, 1),
        "import_seconds": round(first_s, 2),
        "import_rows_per_second": round(ROWS / first_s, 1),
        "reimport_seconds": round(again_s, 2),
        "reimport_rows_per_second": round(ROWS / again_s, 1),
    }
    print(
        f"import of {ROWS} rows (entered + shipped): {first_s:.1f} s = {ROWS / first_s:.0f} rows/s; "
        f"again (all already there): {again_s:.1f} s = {ROWS / again_s:.0f} rows/s"
    )
    return result


if __name__ == "__main__":
    main()

"""After-sales on suppliers' dispatches for the supplier-portal and charge-back tests: orders
routed to suppliers A and B (``tests.suppliers.portal_rig``), after-sale versions stored by the
channel layer (``channels.services.store_after_sale_version``) and ingested
(``aftersales.services.ingest``) — the real path, which sets the supplier and the dispatch."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from aftersales import services
from aftersales.models import AfterSale
from channels import services as channel_services
from channels.types import AfterSale as ChannelAfterSale
from channels.types import AfterSaleItem, AfterSaleStatus, AfterSaleType, Platform

CS, CT = AfterSaleStatus, AfterSaleType
_clock = {"t": None}


def ingest(
    store,
    order,
    asid: str,
    *,
    type: CT = CT.REFUND_ONLY,  # noqa: A002
    status: CS = CS.WAITING_MERCHANT,
    codes: tuple[str, ...] = ("CAP-RED",),
    refund_fen: int = 1000,
    shipped: bool | None = False,
    tracking: str = "",
    evidence: tuple[str, ...] = (),
    reason: str = "不想要了",
) -> AfterSale:
    """A new version of after-sale ``asid`` on ``order``'s lines of ``codes`` (whole lines),
    stored and ingested; each call is a later version."""
    now = timezone.now()
    _clock["t"] = max(now, (_clock["t"] or now) + timedelta(seconds=1))
    lines = [x for x in order.lines.order_by("id") if x.merchant_code in codes]
    share = refund_fen // max(1, len(lines))
    items = tuple(
        AfterSaleItem(x.platform_line_id, x.quantity, share, x.merchant_code, x.platform_sku_id)
        for x in lines
    )
    channel_services.store_after_sale_version(
        store=store,
        after_sale=ChannelAfterSale(
            platform=Platform(store.platform),
            platform_shop_id=store.platform_shop_id,
            platform_after_sale_id=asid,
            platform_order_id=order.platform_order_id,
            platform_line_id=lines[0].platform_line_id,
            type=type,
            status=status,
            platform_status=status.value,
            refund_fen=refund_fen,
            quantity=sum(x.quantity for x in lines),
            reason=reason,
            created_at=now - timedelta(minutes=5),
            updated_at=_clock["t"],
            return_tracking_no=tracking,
            return_carrier="中通快递" if tracking else "",
            shipped=shipped,
            evidence=evidence,
            items=items,
        ),
        source="pull",
    )
    after_sale = services.ingest(store_id=store.pk, platform_after_sale_id=asid)
    assert after_sale is not None
    return after_sale

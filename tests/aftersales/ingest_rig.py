"""A rig for after-sales tests (h-core; reusable by every helper): neutral after-sale versions
(``channels.types.AfterSale``) kept through the channel layer's real path
(``channels.services.store_after_sale_version``) and applied the way the ``AfterSaleChanged``
task applies them (``aftersales.services.ingest``), on real PostgreSQL.

    v1 = version(order, status=CS.WAITING_MERCHANT)           # one line per order line
    after_sale = deliver(store, v1)                           # stored + ingested
    v2 = later(v1, status=CS.SUCCEEDED, platform_status="12")  # a newer version
    deliver(store, v2)

``deliver(..., lost=True)`` stores a version without ingesting it (its event lost: the sweep's
work). ``assert_stock_exact()`` is the ledger check (``inventory.selectors.ledger_mismatches``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import count

from aftersales import services
from aftersales.models import AfterSale
from channels.models import Store
from channels.services import store_after_sale_version
from channels.types import AfterSale as Neutral
from channels.types import AfterSaleItem, AfterSaleStatus, AfterSaleType, Platform
from inventory import selectors as stock_selectors
from inventory.models import Reservation
from orders.models import Order

CS = AfterSaleStatus
CT = AfterSaleType
T0 = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
_ids = count(1)


def version(
    order: Order | None = None,
    *,
    store: Store | None = None,
    platform_order_id: str = "",
    after_sale_id: str = "",
    type: CT = CT.REFUND_ONLY,
    status: CS = CS.WAITING_MERCHANT,
    lines=None,
    at: datetime = T0,
    shipped: bool | None = None,
    refund_fen: int | None = None,
    **kw,
) -> Neutral:
    """A neutral after-sale version of ``order`` covering ``lines`` (order lines; default all)
    — or of an order not in ecbao (``store`` + ``platform_order_id`` + ``items=``)."""
    store = store or order.store
    items = kw.pop("items", None)
    if items is None:
        chosen = list(lines) if lines is not None else list(order.lines.order_by("pk"))
        items = tuple(
            AfterSaleItem(
                platform_line_id=ln.platform_line_id,
                quantity=ln.quantity,
                refund_fen=ln.paid_fen,
                merchant_code=ln.merchant_code,
            )
            for ln in chosen
        )
    return Neutral(
        platform=Platform(store.platform),
        platform_shop_id=store.platform_shop_id,
        platform_after_sale_id=after_sale_id or f"AS{next(_ids):08d}",
        platform_order_id=platform_order_id or order.platform_order_id,
        platform_line_id=items[0].platform_line_id if items else "",
        type=type,
        status=status,
        platform_status=kw.pop("platform_status", status.value),
        refund_fen=refund_fen if refund_fen is not None else sum(i.refund_fen for i in items),
        quantity=sum(i.quantity for i in items),
        reason=kw.pop("reason", "不想要了"),
        created_at=at - timedelta(minutes=1),
        updated_at=at,
        shipped=shipped,
        items=tuple(items),
        deadline=kw.pop("deadline", at + timedelta(hours=48)),
        **kw,
    )


def later(v: Neutral, seconds: int = 60, **changes) -> Neutral:
    """The next version: ``seconds`` later, with ``changes``."""
    return replace(v, updated_at=v.updated_at + timedelta(seconds=seconds), **changes)


def store_version(store: Store, v: Neutral, *, source: str = "push") -> bool:
    """The channel layer keeps the version (True: it became the newest)."""
    return store_after_sale_version(store=store, after_sale=v, source=source)


def deliver(store: Store, v: Neutral, *, lost: bool = False) -> AfterSale | None:
    """Store ``v`` and apply the newest version as the AfterSaleChanged task does (not when
    ``lost``: the event never arrived)."""
    store_version(store, v)
    if lost:
        return AfterSale.objects.filter(store=store, platform_after_sale_id=v.platform_after_sale_id).first()
    return services.ingest(store_id=store.pk, platform_after_sale_id=v.platform_after_sale_id)


def fingerprint(after_sale: AfterSale) -> tuple:
    """What a repeat must not change: the row, its lines and its timeline."""
    after_sale.refresh_from_db()
    return (
        after_sale.snapshot_id,
        after_sale.channel_status,
        after_sale.queue,
        after_sale.updated_at,
        tuple(after_sale.lines.values_list("pk", "order_line_id", "quantity", "refund_fen")),
        after_sale.events.count(),
        after_sale.order.events.count() if after_sale.order_id else 0,
        dict(after_sale.effects),
    )


def assert_stock_exact(*released_lines) -> None:
    """The ledger check passes, and the reservations of ``released_lines`` hold nothing."""
    assert stock_selectors.ledger_mismatches() == []
    for line in released_lines:
        assert not Reservation.objects.filter(
            source_key=line.reservation_key, status=Reservation.Status.ACTIVE
        ).exists(), line

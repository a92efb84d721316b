"""Reads of stock shared by the pages, the API, channel sync and the consistency check:
available stock per SKU (a combination: the complete sets its components allow), SKU lists with
stock annotations (fast on large catalogues: correlated subqueries evaluated only for the rows
a keyset page scans), per-SKU detail, ledgers and their consistency with the balances, the
unmatched-listing queue and sync-state counts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    IntegerField,
    Min,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
    prefetch_related_objects,
)
from django.db.models.functions import Coalesce, Upper

from channels.models import Store
from ecbao import paging
from inventory.models import ComboComponent, Listing, Sku, StockLedgerEntry, StockLevel, Warehouse

#: at or below this many available units a SKU counts as "low" (above zero)
LOW_STOCK_THRESHOLD = 10

STOCK_OUT, STOCK_LOW, STOCK_OK = "out", "low", "ok"
LISTING_UNMATCHED, LISTING_NONE, LISTING_FAILED = "unmatched", "unlisted", "failed"


@dataclass(frozen=True)
class SkuFilters:
    q: str = ""
    category: str = ""
    is_active: bool | None = None
    is_combo: bool | None = None
    stock_status: str = ""  # STOCK_OUT / STOCK_LOW / STOCK_OK
    listing: str = ""  # LISTING_UNMATCHED / LISTING_NONE / LISTING_FAILED
    warehouse_id: int | None = None


def _summed(levels: QuerySet, expression) -> Coalesce:
    return Coalesce(
        Subquery(levels.values("sku_id").annotate(total=Sum(expression)).values("total")[:1]),
        Value(0),
        output_field=IntegerField(),
    )


def _levels(levels: QuerySet, warehouse_id: int | None) -> QuerySet:
    if warehouse_id:
        return levels.filter(warehouse_id=warehouse_id)
    return levels.exclude(warehouse__kind=Warehouse.Kind.DEFECTIVE)


def _combo_sets(warehouse_id: int | None) -> Coalesce:
    """Complete sets of a combination: min over components of ⌊component available / per set⌋."""
    levels = _levels(StockLevel.objects.filter(sku_id=OuterRef("component_id")), warehouse_id)
    sets = (
        ComboComponent.objects.filter(combo_id=OuterRef("pk"))
        .order_by()
        .annotate(sets=_summed(levels, F("on_hand") - F("reserved")) / F("quantity"))
        .values("combo_id")
        .annotate(fewest=Min("sets"))
        .values("fewest")[:1]
    )
    return Coalesce(Subquery(sets), Value(0), output_field=IntegerField())


def with_stock(qs: QuerySet[Sku], *, warehouse_id: int | None = None) -> QuerySet[Sku]:
    """Annotate ``on_hand``, ``reserved`` and ``available`` (in one warehouse, or all but the
    defective locations: their stock shows when one is chosen)."""
    levels = _levels(StockLevel.objects.filter(sku_id=OuterRef("pk")), warehouse_id)
    return qs.annotate(
        on_hand=_summed(levels, F("on_hand")),
        reserved=_summed(levels, F("reserved")),
        # its own subquery (not on_hand − reserved): a stock-status filter then costs one
        # index probe per scanned row instead of two
        available=Case(
            When(is_combo=True, then=_combo_sets(warehouse_id)),
            default=_summed(levels, F("on_hand") - F("reserved")),
            output_field=IntegerField(),
        ),
    )


def search_skus(qs: QuerySet[Sku], q: str) -> QuerySet[Sku]:
    """Merchant code (prefix, case-insensitive), barcode (exact) or name (contains)."""
    q = q.strip()
    if not q:
        return qs
    return qs.filter(Q(merchant_code__istartswith=q) | Q(barcode=q) | Q(name__icontains=q))


def sku_queryset(filters: SkuFilters | None = None) -> QuerySet[Sku]:
    """The SKU list for the page, the export and the API: filtered and stock-annotated."""
    filters = filters or SkuFilters()
    qs = with_stock(Sku.objects.select_related("goods"), warehouse_id=filters.warehouse_id)
    qs = search_skus(qs, filters.q)
    if filters.category:
        qs = qs.filter(goods__category=filters.category)
    if filters.is_active is not None:
        qs = qs.filter(is_active=filters.is_active)
    if filters.is_combo is not None:
        qs = qs.filter(is_combo=filters.is_combo)
    if filters.stock_status == STOCK_OUT:
        qs = qs.filter(available__lte=0)
    elif filters.stock_status == STOCK_LOW:
        qs = qs.filter(available__gt=0, available__lte=LOW_STOCK_THRESHOLD)
    elif filters.stock_status == STOCK_OK:
        qs = qs.filter(available__gt=LOW_STOCK_THRESHOLD)
    if filters.listing == LISTING_UNMATCHED:
        # a shop lists this merchant code but the listing is not matched (e.g. the SKU was
        # created after the last listing refresh)
        qs = qs.filter(
            Exists(
                Listing.objects.filter(match=Listing.Match.UNMATCHED, merchant_code=OuterRef("merchant_code"))
            )
        )
    elif filters.listing == LISTING_NONE:
        qs = qs.filter(~Exists(Listing.objects.filter(sku_id=OuterRef("pk"), match=Listing.Match.MATCHED)))
    elif filters.listing == LISTING_FAILED:
        qs = qs.filter(
            Exists(Listing.objects.filter(sku_id=OuterRef("pk"), push_state=Listing.PushState.FAILED))
        )
    return qs


def stock_status(available: int) -> str:
    if available <= 0:
        return STOCK_OUT
    if available <= LOW_STOCK_THRESHOLD:
        return STOCK_LOW
    return STOCK_OK


# --- keyset pages (ecbao.paging) -----------------------------------------------------------------

Page = paging.Page
_NEWEST_FIRST = paging.Keyset("-pk")


def keyset_page(qs: QuerySet, *, key: str, after: str = "", before: str = "", size: int = 50) -> Page:
    """One page of ``qs`` ordered by the unique column ``key``; costs the same however deep."""
    return paging.Keyset(key).page(qs, after=after, before=before, size=size)


def newest_first_page(qs: QuerySet, *, before: int | None = None, size: int = 50) -> Page:
    """Newest rows first by id; ``next_key`` is the id to pass as ``before`` for older rows."""
    return _NEWEST_FIRST.page(qs, after=str(before) if before else "", size=size)


# --- SKU list page -----------------------------------------------------------------------------


SYNC_SEVERITY = [
    Listing.PushState.FAILED,
    Listing.PushState.PENDING,
    Listing.PushState.IN_SYNC,
    Listing.PushState.LOCKED,
]


def stores_with_listings() -> list[Store]:
    return list(Store.objects.filter(Exists(Listing.objects.filter(store_id=OuterRef("pk")))))


@dataclass
class SkuListPage:
    page: Page
    stores: list[Store] = field(default_factory=list)


def sku_list_page(filters: SkuFilters, *, after: str = "", before: str = "", size: int = 50) -> SkuListPage:
    """A page of the SKU list with per-warehouse levels, per-shop listings and the SKU's
    overall sync state attached (two extra queries per page, never one per row)."""
    page = keyset_page(sku_queryset(filters), key="merchant_code", after=after, before=before, size=size)
    stores = stores_with_listings()
    prefetch_related_objects(
        page.rows,
        Prefetch(
            "stock_levels",
            queryset=StockLevel.objects.select_related("warehouse").order_by("warehouse__code"),
            to_attr="levels",
        ),
        Prefetch(
            "listings",
            queryset=Listing.objects.filter(match=Listing.Match.MATCHED).order_by("store_id", "id"),
            to_attr="matched_listings",
        ),
    )
    for sku in page.rows:
        sku.stock_status = stock_status(sku.available)
        by_store = defaultdict(list)
        for listing in sku.matched_listings:
            by_store[listing.store_id].append(listing)
        sku.shop_cells = [by_store.get(store.pk, []) for store in stores]
        sku.sync_state = sync_state(sku.matched_listings)
    return SkuListPage(page=page, stores=stores)


def sync_state(listings: Iterable[Listing]) -> str:
    """The most urgent push state among a SKU's listings ("" when it is listed nowhere)."""
    states = {listing.push_state for listing in listings}
    for state in SYNC_SEVERITY:
        if state in states:
            return state
    return ""


def categories() -> list[str]:
    from inventory.models import Goods

    return list(
        Goods.objects.exclude(category="").order_by("category").values_list("category", flat=True).distinct()
    )


def active_warehouses() -> QuerySet[Warehouse]:
    return Warehouse.objects.filter(is_active=True)


def sku_choices(q: str, *, limit: int = 20) -> list[Sku]:
    """Active SKUs for a picker, best matches (exact code) first."""
    q = q.strip()
    if not q:
        return []
    exact = list(Sku.objects.filter(is_active=True, merchant_code=q))
    rest = search_skus(Sku.objects.filter(is_active=True).exclude(merchant_code=q), q).order_by(
        "merchant_code"
    )[: limit - len(exact)]
    return exact + list(rest)


# --- SKU detail --------------------------------------------------------------------------------


def warehouse_stock(sku: Sku) -> list[Warehouse]:
    """Active warehouses, and inactive ones still holding this SKU, with its balances."""
    levels = StockLevel.objects.filter(sku_id=sku.pk, warehouse_id=OuterRef("pk"))
    return list(
        Warehouse.objects.filter(Q(is_active=True) | Exists(levels))
        .annotate(
            on_hand=Coalesce(Subquery(levels.values("on_hand")[:1]), Value(0)),
            reserved=Coalesce(Subquery(levels.values("reserved")[:1]), Value(0)),
            location=Coalesce(Subquery(levels.values("location")[:1]), Value("")),
        )
        .annotate(available=F("on_hand") - F("reserved"))
    )


def combo_parts(sku: Sku) -> list[ComboComponent]:
    """Components of a combination with each component's available stock and set count."""
    parts = list(sku.components.select_related("component").order_by("component__merchant_code"))
    available = available_by_sku([part.component_id for part in parts])
    for part in parts:
        part.available = available.get(part.component_id, 0)
        part.sets = part.available // part.quantity
    return parts


def available_by_sku(sku_ids: list[int], *, warehouse_ids: list[int] | None = None) -> dict[int, int]:
    """Available units of plain SKUs, in one query. A warehouse switched off (an own one closed,
    a paused supplier's) sells nothing: its stock stays, but no shop is offered it; nor does a
    defective location (次品仓)."""
    qs = StockLevel.objects.filter(sku_id__in=sku_ids, warehouse__is_active=True).exclude(
        warehouse__kind=Warehouse.Kind.DEFECTIVE  # a defective location never sells
    )
    if warehouse_ids is not None:
        qs = qs.filter(warehouse_id__in=warehouse_ids)
    rows = qs.values("sku_id").annotate(on_hand=Sum("on_hand"), reserved=Sum("reserved"))
    return {row["sku_id"]: row["on_hand"] - row["reserved"] for row in rows}


def sku_listings(sku: Sku) -> list[Listing]:
    return list(
        Listing.objects.filter(sku_id=sku.pk).select_related("store", "sku").order_by("store__name", "id")
    )


def listing_with_store(listing_id: int) -> Listing:
    return Listing.objects.select_related("store", "sku").get(pk=listing_id)


def ledger(*, sku_id: int | None = None) -> QuerySet[StockLedgerEntry]:
    qs = StockLedgerEntry.objects.select_related("sku", "warehouse", "user")
    if sku_id is not None:
        qs = qs.filter(sku_id=sku_id)
    return qs.order_by("-id")


def reserved_in(*, sku_id: int, warehouse_id: int) -> int:
    level = StockLevel.objects.filter(sku_id=sku_id, warehouse_id=warehouse_id).first()
    return level.reserved if level else 0


# --- listings: unmatched queue and sync status ------------------------------------------------


def unmatched_listings(*, store_id: int | None = None, q: str = "") -> QuerySet[Listing]:
    qs = Listing.objects.filter(match=Listing.Match.UNMATCHED).select_related("store")
    if store_id:
        qs = qs.filter(store_id=store_id)
    q = q.strip()
    if q:
        qs = qs.filter(Q(merchant_code__istartswith=q) | Q(title__icontains=q) | Q(platform_sku_id=q))
    return qs


def attach_suggestions(listings: list[Listing]) -> None:
    """``listing.suggested``: a SKU whose merchant code equals the listing's once case and
    surrounding spaces are ignored (what auto-matching misses), one query for the page."""
    codes = {listing.merchant_code.strip().upper() for listing in listings if listing.merchant_code.strip()}
    found: dict[str, Sku] = {}
    if codes:
        for sku in (
            Sku.objects.annotate(code_upper=Upper("merchant_code"))
            .filter(code_upper__in=codes)
            .order_by("-is_active", "id")
        ):
            found.setdefault(sku.code_upper, sku)
    for listing in listings:
        listing.suggested = found.get(listing.merchant_code.strip().upper())


def unmatched_by_store() -> list[tuple[Store, int]]:
    """Shops with unmatched listings, and how many each has."""
    return [
        (store, store.unmatched)
        for store in Store.objects.annotate(
            unmatched=Count("listings", filter=Q(listings__match=Listing.Match.UNMATCHED))
        )
        .filter(unmatched__gt=0)
        .order_by("platform", "name")
    ]


@dataclass
class StoreSyncCounts:
    store: Store
    in_sync: int = 0
    pending: int = 0
    failed: int = 0
    locked: int = 0
    unmatched: int = 0
    ignored: int = 0

    @property
    def matched(self) -> int:
        return self.in_sync + self.pending + self.failed + self.locked


def sync_counts() -> list[StoreSyncCounts]:
    """Per shop: matched listings per push state, and unmatched / ignored listings."""
    stores = {store.pk: StoreSyncCounts(store=store) for store in Store.objects.order_by("platform", "name")}
    rows = Listing.objects.values("store_id", "match", "push_state").annotate(n=Count("id")).order_by()
    for row in rows:
        counts = stores.get(row["store_id"])
        if counts is None:
            continue
        if row["match"] == Listing.Match.MATCHED:
            setattr(counts, row["push_state"], getattr(counts, row["push_state"]) + row["n"])
        else:
            setattr(counts, row["match"], getattr(counts, row["match"]) + row["n"])
    return [counts for counts in stores.values() if counts.matched or counts.unmatched or counts.ignored]


def failed_listings(*, store_id: int | None = None) -> QuerySet[Listing]:
    qs = Listing.objects.filter(match=Listing.Match.MATCHED, push_state=Listing.PushState.FAILED)
    if store_id:
        qs = qs.filter(store_id=store_id)
    return qs.select_related("store", "sku")


# --- available stock and the ledger's consistency ---------------------------------------------


def available(sku: Sku, *, warehouse_ids: list[int] | None = None) -> int:
    """Available units of a SKU (a combination: how many complete sets its components allow)."""
    if sku.is_combo:
        parts = list(ComboComponent.objects.filter(combo=sku).values_list("component_id", "quantity"))
        if not parts:
            return 0
        sets = []
        for component_id, per in parts:
            sets.append(
                available_by_sku([component_id], warehouse_ids=warehouse_ids).get(component_id, 0) // per
            )
        return min(sets)
    return available_by_sku([sku.pk], warehouse_ids=warehouse_ids).get(sku.pk, 0)


def ledger_mismatches() -> list[tuple[int, int, int, int, int, int]]:
    """Stock levels whose balances differ from their ledger sums:
    (sku_id, warehouse_id, on_hand, ledger on_hand, reserved, ledger reserved)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT s.sku_id, s.warehouse_id, s.on_hand, COALESCE(l.on_hand, 0), s.reserved, COALESCE(l.reserved, 0)
            FROM inventory_stocklevel s
            LEFT JOIN (
                SELECT sku_id, warehouse_id, SUM(on_hand_delta) AS on_hand, SUM(reserved_delta) AS reserved
                FROM inventory_stockledgerentry GROUP BY sku_id, warehouse_id
            ) l ON l.sku_id = s.sku_id AND l.warehouse_id = s.warehouse_id
            WHERE s.on_hand <> COALESCE(l.on_hand, 0) OR s.reserved <> COALESCE(l.reserved, 0)
            """
        )
        mismatched = cursor.fetchall()
        cursor.execute(
            """
            SELECT s.sku_id, s.warehouse_id, s.reserved, COALESCE(SUM(r.quantity), 0)
            FROM inventory_stocklevel s
            LEFT JOIN inventory_reservation r
              ON r.sku_id = s.sku_id AND r.warehouse_id = s.warehouse_id AND r.status = 'active'
            GROUP BY s.sku_id, s.warehouse_id, s.reserved
            HAVING s.reserved <> COALESCE(SUM(r.quantity), 0)
            """
        )
        mismatched += [
            (sku, wh, reserved, reserved, reserved, active) for sku, wh, reserved, active in cursor.fetchall()
        ]
    return mismatched

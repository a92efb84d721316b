"""Reads behind the shipping settings pages and the API: carrier rules, waybill accounts, the
write-back queue and the print journal (newest first, keyset-paged through ``ecbao.paging``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from channels import carriers
from channels.models import Store
from ecbao import paging
from logistics.models import CarrierRule, PrintRecord, WaybillAccount, WriteBack

KEYSET = paging.Keyset("-id")
W = WriteBack.Status

#: write-back queue tabs: (value, states); "attention" first — what needs a person
WRITE_BACK_TABS = (
    ("attention", (W.GIVEN_UP, W.FAILED)),
    ("waiting", (W.PENDING, W.SENDING)),
    ("accepted", (W.ACCEPTED,)),
    ("all", tuple(W.values)),
)
WRITE_BACK_TAB_STATES = dict(WRITE_BACK_TABS)


def carrier_rules() -> list[CarrierRule]:
    """Every rule in the order they are tried, each with ``stores`` (the shops it names)."""
    rules = list(CarrierRule.objects.select_related("account__store", "warehouse").order_by("priority", "id"))
    names = dict(Store.objects.values_list("pk", "name"))
    for rule in rules:
        rule.stores = [names.get(pk, f"#{pk}") for pk in rule.store_ids]
        rule.carrier_name = carriers.name_of(rule.carrier)
    return rules


def waybill_accounts(*, store_id: int | None = None) -> QuerySet[WaybillAccount]:
    qs = WaybillAccount.objects.select_related("store").order_by(
        "store_id", "-is_active", "carrier", "branch_code"
    )
    if store_id:
        qs = qs.filter(store_id=store_id)
    return qs


def stores_with_accounts() -> list[Store]:
    """Every shop with its accounts (``accounts``) and when they were last read (``synced_at``)."""
    stores = list(Store.objects.order_by("platform", "name"))
    by_store: dict[int, list[WaybillAccount]] = {}
    for account in waybill_accounts():
        account.carrier_name = carriers.name_of(account.carrier)
        by_store.setdefault(account.store_id, []).append(account)
    for store in stores:
        store.accounts = by_store.get(store.pk, [])
        stamps = [a.synced_at for a in store.accounts if a.synced_at]
        store.accounts_synced_at = max(stamps) if stamps else None
    return stores


def write_backs(tab: str = "attention", *, q: str = "", store_id: int | None = None) -> QuerySet[WriteBack]:
    states = WRITE_BACK_TAB_STATES.get(tab, WRITE_BACK_TAB_STATES["attention"])
    qs = WriteBack.objects.filter(status__in=states).select_related("order__store", "parcel")
    if q := q.strip():
        qs = qs.filter(Q(tracking_no=q) | Q(order__platform_order_id=q))
    if store_id:
        qs = qs.filter(order__store_id=store_id)
    return qs


def write_back_counts() -> dict[str, int]:
    by_status = dict(WriteBack.objects.values_list("status").annotate(n=Count("id")).order_by())
    return {tab: sum(by_status.get(s, 0) for s in states) for tab, states in WRITE_BACK_TABS}


@dataclass(frozen=True)
class PrintFilters:
    q: str = ""
    status: str = ""
    kind: str = ""
    reprint: bool | None = None
    since: date | None = None
    until: date | None = None
    parcel_id: int | None = None


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def print_records(filters: PrintFilters = PrintFilters()) -> QuerySet[PrintRecord]:
    qs = PrintRecord.objects.select_related("parcel__store", "actor", "waybill")
    if filters.q.strip():
        q = filters.q.strip()
        qs = qs.filter(Q(parcel__tracking_no=q) | Q(waybill__tracking_no=q) | Q(task_id=q))
    if filters.status:
        qs = qs.filter(status=filters.status)
    if filters.kind:
        qs = qs.filter(kind=filters.kind)
    if filters.reprint is not None:
        qs = qs.filter(is_reprint=filters.reprint)
    if filters.since:
        qs = qs.filter(created_at__gte=_day_start(filters.since))
    if filters.until:
        qs = qs.filter(created_at__lt=_day_start(filters.until) + timedelta(days=1))
    if filters.parcel_id:
        qs = qs.filter(parcel_id=filters.parcel_id)
    return qs

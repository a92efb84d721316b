"""Which carrier and e-waybill account a parcel ships with (快递策略).

``choose_carrier(parcel)`` walks the enabled ``CarrierRule`` rows by priority; the first rule
whose every set condition matches the parcel, and whose carrier the parcel's shop has an active
account with, chooses. Conditions (an empty one matches anything):

- shop (``store_ids``), warehouse (the parcel's fulfilment's: ``orders.Fulfilment.warehouse``, an
  own warehouse or a supplier's; for a fulfilment without one, where its lines are reserved,
  else the default own warehouse), receiver province (the first order's), weight range (the parcel's weight when
  weighed, else its SKUs' weights × quantities), merchant codes (any line's 商家编码);

otherwise the shop's first active account. ``Choice.reason`` says which, in the active language
(zh-Hans first); the parcel records it (``Parcel.carrier_reason``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.utils.translation import gettext

from inventory.models import Reservation
from logistics import scope
from logistics.models import CarrierRule, Parcel, ParcelLine, WaybillAccount
from orders.models import Fulfilment


@dataclass(frozen=True)
class Choice:
    carrier: str
    account: WaybillAccount
    reason: str


@dataclass(frozen=True)
class ParcelFacts:
    """What rules look at, read once per parcel."""

    store_id: int
    warehouse_id: int | None
    province: str
    weight_g: int
    merchant_codes: frozenset[str]


def parcel_facts(parcel: Parcel) -> ParcelFacts:
    lines = list(
        ParcelLine.objects.filter(parcel=parcel)
        .select_related("order_line__order", "order_line__sku")
        .order_by("order_line__order_id", "order_line_id")
    )
    warehouse_id = (
        Fulfilment.objects.filter(pk=parcel.fulfilment_id).values_list("warehouse_id", flat=True).first()
    )
    if warehouse_id is None:
        keys = [pl.order_line.reservation_key for pl in lines]
        held = Counter(
            Reservation.objects.filter(source_key__in=keys)
            .exclude(status=Reservation.Status.RELEASED)
            .values_list("warehouse_id", flat=True)
        )
        warehouse_id = held.most_common(1)[0][0] if held else scope.default_warehouse_id()
    province = next((pl.order_line.order.province for pl in lines if pl.order_line.order.province), "")
    weight = parcel.weight_g or sum(
        (pl.order_line.sku.weight_g if pl.order_line.sku else 0) * pl.quantity for pl in lines
    )
    codes = frozenset(pl.order_line.merchant_code for pl in lines if pl.order_line.merchant_code)
    return ParcelFacts(parcel.store_id, warehouse_id, province, weight, codes)


def _province_matches(wanted: list[str], province: str) -> bool:
    """Names match by prefix: 浙江 matches 浙江省 and the other way round."""
    if not province:
        return False
    for name in wanted:
        name = name.strip()
        if name and (province.startswith(name) or name.startswith(province)):
            return True
    return False


def rule_matches(rule: CarrierRule, facts: ParcelFacts) -> bool:
    if rule.store_ids and facts.store_id not in rule.store_ids:
        return False
    if rule.warehouse_id and rule.warehouse_id != facts.warehouse_id:
        return False
    if rule.provinces and not _province_matches(rule.provinces, facts.province):
        return False
    if rule.min_weight_g is not None and facts.weight_g < rule.min_weight_g:
        return False
    if rule.max_weight_g is not None and facts.weight_g > rule.max_weight_g:
        return False
    return not (rule.merchant_codes and not facts.merchant_codes & set(rule.merchant_codes))


def active_accounts(store_id: int) -> list[WaybillAccount]:
    return list(
        WaybillAccount.objects.filter(store_id=store_id, is_active=True).order_by(
            "carrier", "branch_code", "id"
        )
    )


def _account_for(rule: CarrierRule, accounts: list[WaybillAccount]) -> WaybillAccount | None:
    """The rule's own account when it belongs to this shop and is active, else the shop's first
    active account with the rule's carrier (one with balance first)."""
    if rule.account_id:
        own = next((a for a in accounts if a.pk == rule.account_id), None)
        if own is not None:
            return own
    same = [a for a in accounts if a.carrier == rule.carrier]
    with_balance = [a for a in same if a.available is None or a.available > 0]
    return (with_balance or same or [None])[0]


def choose_carrier(parcel: Parcel, *, facts: ParcelFacts | None = None) -> Choice:
    """The carrier and account for ``parcel`` (see the module docstring). Raises
    ValidationError when the shop has no active e-waybill account at all."""
    facts = facts or parcel_facts(parcel)
    accounts = active_accounts(parcel.store_id)
    if not accounts:
        raise ValidationError(
            gettext("this shop has no e-waybill account: open one on the platform, then sync the accounts")
        )
    for rule in CarrierRule.objects.filter(enabled=True).order_by("priority", "id"):
        if not rule_matches(rule, facts):
            continue
        account = _account_for(rule, accounts)
        if account is None:
            continue  # this shop cannot ship with the rule's carrier: the next rule decides
        reason = gettext("rule “%(name)s” (priority %(priority)s)") % {
            "name": rule.name,
            "priority": rule.priority,
        }
        return Choice(account.carrier, account, reason[:200])
    with_balance = [a for a in accounts if a.available is None or a.available > 0]
    account = (with_balance or accounts)[0]
    if len(accounts) == 1:
        reason = gettext("no rule matched: the shop's only e-waybill account")
    else:
        reason = gettext("no rule matched: the shop's first active e-waybill account")
    return Choice(account.carrier, account, reason[:200])

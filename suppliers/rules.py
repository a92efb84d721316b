"""Routing rule sets: drafts, their rules (validated), activation and the dry run.

A rule set is edited only as a DRAFT (``create_draft`` copies the active one). ``activate``
makes a draft the ACTIVE set and retires the one before; a version never changes after
activation. Activation reroutes nothing by itself: a line already in a fulfilment (dispatched
to a supplier, or at the own warehouse) keeps its shipper. Lines routed under another version
are routed again only while their order is still reviewed — at approval
(``orders.services._reroute_stale``) or when a held order is released.

``dry_run`` shows what activating a draft would do to the last N days' lines that can still
move, using the router's own code (``suppliers.router.build_world`` and the engine), lines in
payment order, each line's own reservation counted as available to it — what approval then
does, order by order. Where approval keeps a reserved line's old route (the new route holds it;
shown so here too) or cannot reserve it in a new own warehouse short of stock (approval keeps
the old route; the dry run shows the move), and where orders are approved in another order
than their payments, the two can differ in what stock is left for later lines.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max, Prefetch
from django.utils import timezone
from django.utils.translation import gettext

from channels.models import Store
from channels.types import Platform
from inventory.models import Goods, Sku, Warehouse
from orders.hooks import ROUTING_HOLD
from orders.models import LineStatus, Order, OrderLine, OrderStatus
from suppliers import router, routing
from suppliers.models import RouteRule, RuleSet, Supplier

MAX_LIST = 500  # items in one list condition
MAX_TEXT = 100
MAX_RULES = 1000
MAX_DRY_RUN_DAYS = 90
MAX_DRY_RUN_LINES = 20000


# --- validation -------------------------------------------------------------------------------------------


def _ids(key: str, values, model) -> list[int]:
    if not isinstance(values, list) or not values:
        raise ValidationError({key: gettext("%(key)s must be a non-empty list") % {"key": key}})
    if len(values) > MAX_LIST:
        raise ValidationError({key: gettext("at most %(n)d items") % {"n": MAX_LIST}})
    ids = sorted(
        {
            int(v)
            for v in values
            if (isinstance(v, int) and not isinstance(v, bool))
            or (isinstance(v, str) and v.isdigit() and len(v) < 19)
        }
    )
    if len(ids) != len({str(v) for v in values}) or any(not 0 < i < 2**63 for i in ids):
        raise ValidationError({key: gettext("%(key)s must list ids") % {"key": key}})
    found = set(model.objects.filter(pk__in=ids).values_list("pk", flat=True))
    missing = [i for i in ids if i not in found]
    if missing:
        raise ValidationError(
            {key: gettext("unknown ids in %(key)s: %(ids)s") % {"key": key, "ids": missing[:10]}}
        )
    return ids


def _texts(key: str, values) -> list[str]:
    if not isinstance(values, list) or not values:
        raise ValidationError({key: gettext("%(key)s must be a non-empty list") % {"key": key}})
    if len(values) > MAX_LIST:
        raise ValidationError({key: gettext("at most %(n)d items") % {"n": MAX_LIST}})
    out = []
    for v in values:
        if not isinstance(v, str) or not v.strip() or len(v.strip()) > MAX_TEXT:
            raise ValidationError(
                {
                    key: gettext("%(key)s must list words of 1 to %(n)d characters")
                    % {"key": key, "n": MAX_TEXT}
                }
            )
        if v.strip() not in out:
            out.append(v.strip())
    return out


def _int(key: str, value, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValidationError(
            {
                key: gettext("%(key)s must be a whole number from %(lo)d to %(hi)d")
                % {"key": key, "lo": lo, "hi": hi}
            }
        )
    return value


def clean_conditions(conditions) -> dict:
    """Validated, normalised conditions (see ``RouteRule``); ValidationError in zh-Hans otherwise."""
    if conditions in (None, ""):
        return {}
    if not isinstance(conditions, dict):
        raise ValidationError({"conditions": gettext("conditions must be an object")})
    unknown = sorted(set(conditions) - set(routing.CONDITION_KEYS))
    if unknown:
        raise ValidationError(
            {"conditions": gettext("unknown conditions: %(keys)s") % {"keys": ", ".join(unknown)}}
        )
    c = {k: v for k, v in conditions.items() if v not in (None, [], "")}
    out: dict = {}
    if "stores" in c:
        out["stores"] = _ids("stores", c["stores"], Store)
    if "skus" in c:
        out["skus"] = _ids("skus", c["skus"], Sku)
    if "goods" in c:
        out["goods"] = _ids("goods", c["goods"], Goods)
    if "platforms" in c:
        platforms = _texts("platforms", c["platforms"])
        bad = [p for p in platforms if p not in {x.value for x in Platform}]
        if bad:
            raise ValidationError(
                {"platforms": gettext("unknown platforms: %(names)s") % {"names": ", ".join(bad)}}
            )
        out["platforms"] = platforms
    for key in ("brands", "categories", "provinces", "cities", "tags"):
        if key in c:
            out[key] = _texts(key, c[key])
    for key in ("amount_min_fen", "amount_max_fen"):
        if key in c:
            out[key] = _int(key, c[key], 0, 10**12)
    if "amount_min_fen" in out and "amount_max_fen" in out and out["amount_min_fen"] > out["amount_max_fen"]:
        raise ValidationError({"amount_max_fen": gettext("the maximum amount is below the minimum")})
    if "hours" in c:
        hours = c["hours"]
        if not isinstance(hours, list) or len(hours) != 2:
            raise ValidationError({"hours": gettext("hours must be [from, to), hours 0 to 24")})
        start, end = _int("hours", hours[0], 0, 23), _int("hours", hours[1], 0, 24)
        if start == end or (end == 24 and start == 0):
            raise ValidationError({"hours": gettext("hours [from, to) must not be empty or the whole day")})
        out["hours"] = [start, end]
    if "weekdays" in c:
        days = c["weekdays"]
        if not isinstance(days, list) or not days:
            raise ValidationError({"weekdays": gettext("weekdays must be a non-empty list")})
        out["weekdays"] = sorted({_int("weekdays", d, 1, 7) for d in days})
    return out


def _clean_rule(
    rule_set: RuleSet, *, name, action, conditions, supplier, warehouse, priority, exclude: int | None = None
) -> dict:
    errors: dict[str, str] = {}
    name = (name or "").strip() if isinstance(name, str) else ""
    if not name or len(name) > 60:
        errors["name"] = gettext("a rule needs a name of at most 60 characters")
    if action not in routing.ACTIONS:
        errors["action"] = gettext("unknown action")
    if isinstance(supplier, int) and not isinstance(supplier, bool):
        supplier = Supplier.objects.filter(pk=supplier).first() or errors.setdefault(
            "supplier", gettext("unknown supplier")
        )
    if isinstance(warehouse, int) and not isinstance(warehouse, bool):
        warehouse = Warehouse.objects.filter(pk=warehouse).first() or errors.setdefault(
            "warehouse", gettext("unknown warehouse")
        )
    if action == routing.SUPPLIER and supplier is None:
        errors["supplier"] = gettext("the action 'send to supplier' needs a supplier")
    if action == routing.WAREHOUSE:
        if warehouse is None:
            errors["warehouse"] = gettext("the action 'send to own warehouse' needs a warehouse")
        elif isinstance(warehouse, Warehouse) and warehouse.kind != Warehouse.Kind.OWN:
            errors["warehouse"] = gettext(
                "the warehouse must be one of your own warehouses, not a supplier's"
            )
    if action != routing.SUPPLIER and supplier is not None and "supplier" not in errors:
        errors["supplier"] = gettext("only the action 'send to supplier' takes a supplier")
    if action != routing.WAREHOUSE and warehouse is not None and "warehouse" not in errors:
        errors["warehouse"] = gettext("only the action 'send to own warehouse' takes a warehouse")
    if priority is not None:
        if isinstance(priority, bool) or not isinstance(priority, int) or not 1 <= priority <= 1_000_000:
            errors["priority"] = gettext("the priority must be a whole number from 1 to 1000000")
        elif rule_set.rules.filter(priority=priority).exclude(pk=exclude).exists():
            errors["priority"] = gettext("another rule of this set has priority %(p)d") % {"p": priority}
    try:
        conditions = clean_conditions(conditions)
    except ValidationError as exc:
        errors.update({k: v[0] for k, v in exc.message_dict.items()})
    if errors:
        raise ValidationError(errors)
    return {
        "name": name,
        "action": action,
        "conditions": conditions,
        "supplier": supplier,
        "warehouse": warehouse,
        "priority": priority,
    }


class NotDraft(ValidationError):
    """The rule set is active or retired: only a draft changes (the API answers 409)."""


def _draft(rule_set: RuleSet) -> RuleSet:
    rule_set = RuleSet.objects.select_for_update().get(pk=rule_set.pk)
    if rule_set.status != RuleSet.Status.DRAFT:
        raise NotDraft(
            gettext("only a draft rule set can be changed (v%(v)d is %(s)s)")
            % {"v": rule_set.version, "s": rule_set.get_status_display()}
        )
    return rule_set


# --- rule sets and rules ----------------------------------------------------------------------------------


@transaction.atomic
def create_draft(*, user=None, note: str = "", copy_from: RuleSet | None = None) -> RuleSet:
    """A new draft with the next version, holding a copy of the rules of ``copy_from`` (the
    active set by default; none when nothing is active)."""
    RuleSet.objects.select_for_update().filter(status=RuleSet.Status.ACTIVE).first()  # serialises versions
    source = copy_from or RuleSet.objects.filter(status=RuleSet.Status.ACTIVE).first()
    version = (RuleSet.objects.aggregate(v=Max("version"))["v"] or 0) + 1
    draft = RuleSet.objects.create(
        version=version, status=RuleSet.Status.DRAFT, note=(note or "")[:200], created_by=user
    )
    if source is not None:
        RouteRule.objects.bulk_create(
            RouteRule(
                rule_set=draft,
                priority=r.priority,
                name=r.name,
                enabled=r.enabled,
                conditions=r.conditions,
                action=r.action,
                supplier_id=r.supplier_id,
                warehouse_id=r.warehouse_id,
            )
            for r in source.rules.all()
        )
    return draft


@transaction.atomic
def delete_draft(*, rule_set: RuleSet) -> None:
    rule_set = _draft(rule_set)
    rule_set.delete()


@transaction.atomic
def add_rule(
    *,
    rule_set: RuleSet,
    name: str,
    action: str,
    conditions: dict | None = None,
    supplier: Supplier | int | None = None,
    warehouse: Warehouse | int | None = None,
    priority: int | None = None,
    enabled: bool = True,
) -> RouteRule:
    """A rule in a draft; without ``priority`` it comes last (last priority + 10)."""
    rule_set = _draft(rule_set)
    if rule_set.rules.count() >= MAX_RULES:
        raise ValidationError(gettext("a rule set has at most %(n)d rules") % {"n": MAX_RULES})
    data = _clean_rule(
        rule_set,
        name=name,
        action=action,
        conditions=conditions,
        supplier=supplier,
        warehouse=warehouse,
        priority=priority,
    )
    if data["priority"] is None:
        data["priority"] = (rule_set.rules.aggregate(p=Max("priority"))["p"] or 0) + 10
    return RouteRule.objects.create(rule_set=rule_set, enabled=bool(enabled), **data)


_UNSET = object()


@transaction.atomic
def update_rule(
    *,
    rule: RouteRule,
    name=_UNSET,
    action=_UNSET,
    conditions=_UNSET,
    supplier=_UNSET,
    warehouse=_UNSET,
    priority=_UNSET,
    enabled=_UNSET,
) -> RouteRule:
    """Change a rule of a draft; what is not given stays."""
    rule_set = _draft(rule.rule_set)
    rule = RouteRule.objects.get(pk=rule.pk)
    given = {
        "name": rule.name if name is _UNSET else name,
        "action": rule.action if action is _UNSET else action,
        "conditions": rule.conditions if conditions is _UNSET else conditions,
        "supplier": rule.supplier if supplier is _UNSET else supplier,
        "warehouse": rule.warehouse if warehouse is _UNSET else warehouse,
        "priority": rule.priority if priority is _UNSET else priority,
    }
    data = _clean_rule(rule_set, exclude=rule.pk, **given)
    for key, value in data.items():
        setattr(rule, key, value)
    if enabled is not _UNSET:
        rule.enabled = bool(enabled)
    rule.save()
    return rule


@transaction.atomic
def delete_rule(*, rule: RouteRule) -> None:
    _draft(rule.rule_set)
    RouteRule.objects.filter(pk=rule.pk).delete()


@transaction.atomic
def reorder(*, rule_set: RuleSet, rule_ids: list[int]) -> list[RouteRule]:
    """Priorities 10, 20, 30 … in the order of ``rule_ids`` (every rule of the draft, once)."""
    rule_set = _draft(rule_set)
    rules = {r.pk: r for r in rule_set.rules.all()}
    try:
        wanted = [int(i) for i in rule_ids]
    except (TypeError, ValueError):
        raise ValidationError({"rule_ids": gettext("list every rule of the draft once")}) from None
    if sorted(wanted) != sorted(rules) or len(set(wanted)) != len(wanted):
        raise ValidationError({"rule_ids": gettext("list every rule of the draft once")})
    top = max([r.priority for r in rules.values()] + [0])
    for n, pk in enumerate(wanted, 1):  # out of the way first: priorities are unique per set
        RouteRule.objects.filter(pk=pk).update(priority=top + n)
    for n, pk in enumerate(wanted, 1):
        RouteRule.objects.filter(pk=pk).update(priority=n * 10)
    return list(rule_set.rules.all())


@transaction.atomic
def activate(*, rule_set: RuleSet, user=None) -> RuleSet:
    """The draft becomes the active rule set; the active one is retired. Idempotent: activating
    the active set again changes nothing. Nothing is rerouted here (see the module docstring)."""
    current = RuleSet.objects.select_for_update().filter(status=RuleSet.Status.ACTIVE).first()
    rule_set = RuleSet.objects.select_for_update().get(pk=rule_set.pk)
    if rule_set.status == RuleSet.Status.ACTIVE:
        return rule_set
    if rule_set.status != RuleSet.Status.DRAFT:
        raise ValidationError(
            gettext("a retired rule set cannot be activated again: copy it into a new draft")
        )
    for rule in rule_set.rules.all():  # what was valid when saved may be gone now
        _clean_rule(
            rule_set,
            name=rule.name,
            action=rule.action,
            conditions=rule.conditions,
            supplier=rule.supplier,
            warehouse=rule.warehouse,
            priority=None,
        )
    if current is not None:
        current.status = RuleSet.Status.RETIRED
        current.save(update_fields=["status"])
    rule_set.status = RuleSet.Status.ACTIVE
    rule_set.activated_at = timezone.now()
    rule_set.save(update_fields=["status", "activated_at"])
    return rule_set


# --- dry run ----------------------------------------------------------------------------------------------

#: line states a new rule set can still move (at approval or release)
MOVABLE_LINE_STATES = (LineStatus.PENDING, LineStatus.OUT_OF_STOCK, LineStatus.UNROUTED, LineStatus.RESERVED)
MOVABLE_ORDER_STATES = (OrderStatus.TO_REVIEW, OrderStatus.HELD)


@dataclass
class DryRunLine:
    line_id: int
    order_id: int
    platform_order_id: str
    merchant_code: str
    quantity: int
    current_warehouse_id: int | None
    current_note: str
    warehouse_id: int | None  # None: held
    note: str
    rule_id: int | None

    @property
    def moves(self) -> bool:
        return self.warehouse_id != self.current_warehouse_id


@dataclass
class DryRun:
    rule_set: RuleSet
    days: int
    lines: list[DryRunLine] = field(default_factory=list)
    fixed: int = 0  # lines of those days already in a fulfilment: they keep their shipper
    moves: Counter = field(default_factory=Counter)  # (from warehouse id, to warehouse id | None) → lines
    warehouse_names: dict[int, str] = field(default_factory=dict)
    truncated: bool = False

    @property
    def moving(self) -> int:
        return sum(self.moves.values())

    def name(self, warehouse_id: int | None) -> str:
        if warehouse_id is None:
            return gettext("held (no shipper)")
        return self.warehouse_names.get(warehouse_id, f"#{warehouse_id}")

    def summary(self) -> list[dict]:
        return [
            {"from": a, "from_name": self.name(a), "to": b, "to_name": self.name(b), "lines": n}
            for (a, b), n in sorted(self.moves.items(), key=lambda x: (-x[1], str(x[0])))
        ]


def dry_run(*, rule_set: RuleSet, days: int = 7) -> DryRun:
    """What ``rule_set`` (usually a draft) would do to the paid lines with a SKU of orders paid
    in the last ``days`` days that can still move (order to review or held; line not in any
    fulfilment). Reads only."""
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DRY_RUN_DAYS:
        raise ValidationError({"days": gettext("days must be from 1 to %(n)d") % {"n": MAX_DRY_RUN_DAYS}})
    since = timezone.now() - timedelta(days=days)
    recent = OrderLine.objects.filter(order__paid_at__gte=since, sku__isnull=False)
    movable = recent.filter(
        order__status__in=MOVABLE_ORDER_STATES, status__in=MOVABLE_LINE_STATES, shipped_quantity=0
    )
    result = DryRun(rule_set=rule_set, days=days)
    result.fixed = (
        recent.exclude(status__in=[LineStatus.CANCELLED, LineStatus.REFUNDED]).count() - movable.count()
    )
    lines = list(
        movable.select_related("order").order_by("order__paid_at", "order_id", "id")[: MAX_DRY_RUN_LINES + 1]
    )
    if len(lines) > MAX_DRY_RUN_LINES:
        lines, result.truncated = lines[:MAX_DRY_RUN_LINES], True
    pairs: dict[int, tuple] = {}
    for ln in lines:
        pairs.setdefault(ln.order_id, (ln.order, []))[1].append(ln)
    routes = router.route_with(router.load_book(rule_set), list(pairs.values()))
    for ln in lines:
        r = routes.get(ln.id)
        to = r.warehouse_id if r else ln.warehouse_id
        if to is None and ln.status == LineStatus.RESERVED:  # approval keeps a reserved line's route
            to = ln.warehouse_id  # rather than holding it (orders.services._reroute_stale)
        item = DryRunLine(
            line_id=ln.id,
            order_id=ln.order_id,
            platform_order_id=ln.order.platform_order_id,
            merchant_code=ln.merchant_code,
            quantity=ln.quantity,
            current_warehouse_id=ln.warehouse_id,
            current_note=ln.route_note,
            warehouse_id=to,
            note=(r.hold or r.note) if r else ln.route_note,
            rule_id=r.rule_id if r else None,
        )
        result.lines.append(item)
        if item.moves:
            result.moves[(item.current_warehouse_id, item.warehouse_id)] += 1
    ids = (
        {x for pair in result.moves for x in pair if x is not None}
        | {x.current_warehouse_id for x in result.lines if x.current_warehouse_id}
        | {x.warehouse_id for x in result.lines if x.warehouse_id}
    )
    result.warehouse_names = dict(Warehouse.objects.filter(pk__in=ids).values_list("pk", "name"))
    return result


# --- the exception queue ----------------------------------------------------------------------------------


def routing_exception_count() -> int:
    return Order.objects.filter(status=OrderStatus.HELD, hold_reasons__contains=[ROUTING_HOLD]).count()


def routing_exceptions(*, limit: int = 500) -> list:
    """Orders held because a line has no shipper (hold reason ``routing``), oldest payment first,
    each with ``unrouted``: its lines waiting for a shipper, with why (``route_note``)."""
    return list(
        Order.objects.filter(status=OrderStatus.HELD, hold_reasons__contains=[ROUTING_HOLD])
        .select_related("store")
        .prefetch_related(
            Prefetch(
                "lines",
                queryset=OrderLine.objects.filter(status=LineStatus.UNROUTED)
                .select_related("sku")
                .order_by("id"),
                to_attr="unrouted",
            )
        )
        .order_by("paid_at", "id")[:limit]
    )

"""In-transaction hooks for the layers above orders that hang rows of their own on fulfilments
(logistics: parcels, with waybill numbers).

``ecbao.events`` tells higher layers after the commit; a change of fulfilments (merge, unmerge,
split, hold, cancel, shipped on the platform) must be refusable and followed *inside* the
order action's transaction instead: a parcel that already carries a waybill number blocks a
change made by hand, and the parcels of a changed fulfilment must follow it before the
fulfilment lines move or the fulfilment is deleted. The higher layer registers one
``FulfilmentHook`` in its ``AppConfig.ready``; orders never imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.utils.translation import gettext


@dataclass(frozen=True)
class FulfilmentHook:
    #: fulfilment ids → {id: why it may not change by hand} (e.g. a parcel has a waybill number)
    frozen: Callable[[set[int]], dict[int, str]]
    #: before fulfilments change: ``changing(ids, reason=…, by_platform=…)``; detach what hangs on them
    changing: Callable[..., None]
    #: after fulfilments changed (or were created / joined): ``changed(ids)``; follow them
    changed: Callable[[set[int]], None]


_hooks: list[FulfilmentHook] = []


def register(hook: FulfilmentHook) -> None:
    if hook not in _hooks:
        _hooks.append(hook)


def frozen(fulfilment_ids: Iterable[int]) -> dict[int, str]:
    ids = {pk for pk in fulfilment_ids if pk}
    found: dict[int, str] = {}
    if ids:
        for hook in _hooks:
            found.update(hook.frozen(ids))
    return found


def before(fulfilment_ids: Iterable[int], *, reason: str, by_platform: bool) -> None:
    """Fulfilments are about to change. A change made by hand (``by_platform`` false) is refused
    with a ValidationError when anything frozen hangs on them; a change the platform decided
    (cancelled, shipped elsewhere, address changed) cannot be refused: the hooks detach."""
    ids = {pk for pk in fulfilment_ids if pk}
    if not ids:
        return
    if not by_platform:
        blocked = frozen(ids)
        if blocked:
            raise ValidationError(
                gettext("fulfilment %(id)s cannot change: %(why)s")
                % {"id": min(blocked), "why": blocked[min(blocked)]}
            )
    for hook in _hooks:
        hook.changing(ids, reason=reason, by_platform=by_platform)


def after(fulfilment_ids: Iterable[int]) -> None:
    ids = {pk for pk in fulfilment_ids if pk}
    if ids:
        for hook in _hooks:
            hook.changed(ids)


# --- routing (分流) -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineRoute:
    """Where one order line ships from, and why (shown on the order line)."""

    warehouse_id: int | None  # an own or a supplier's warehouse (inventory.Warehouse); None: hold
    note: str = ""  # e.g. "规则 3「茶叶」：SKU 在清单 → 供应商 杭州茶厂，成本 ¥12.00，库存 480"
    version: int | None = None  # the rule set version that decided
    rule_id: int | None = None
    hold: str = ""  # why nobody ships it (no supplier can take it / a rule holds it): the order waits


@dataclass(frozen=True)
class RouteHook:
    #: ``route([(order, [line, …]), …])`` → {line id: LineRoute}. ``order`` is an Order or a row
    #: of one not yet written (``pk`` may be None: use ``store_id``, ``platform``, ``province``,
    #: ``city``, ``paid_fen``, ``paid_at``, ``placed_at``); lines carry ``id``, ``sku_id``,
    #: ``quantity``, ``paid_fen``. Reads only: orders reserves in the warehouse chosen. A line
    #: left out of the answer goes to the default warehouse.
    route: Callable[[list[tuple[object, list[object]]]], dict[int, LineRoute]]
    #: the active rule set's version (lines routed under another are routed again at approval
    #: while they are not dispatched yet), or None when no rule set is active
    version: Callable[[], int | None]


_routers: list[RouteHook] = []


def register_router(hook: RouteHook) -> None:
    if hook not in _routers:
        _routers.append(hook)


def route(pairs: list[tuple[object, list[object]]]) -> dict[int, LineRoute]:
    """The registered router's routes (empty without a router: every line to the default warehouse)."""
    if not pairs or not _routers:
        return {}
    return _routers[-1].route(pairs)


def route_version() -> int | None:
    return _routers[-1].version() if _routers else None


#: hold reason of an order with a line no one can ship (the routing exception queue)
ROUTING_HOLD = "routing"


# --- open refunds (after-sales) -----------------------------------------------------------------------

_refund_checks: list[Callable[[int], bool]] = []


def register_refund_check(check: Callable[[int], bool]) -> None:
    """A higher layer (aftersales) says whether an order has a refund open on its side: then
    ``Order.is_refunding`` stays set whatever the order's own platform version says."""
    if check not in _refund_checks:
        _refund_checks.append(check)


def refund_open(order_id: int) -> bool:
    return any(check(order_id) for check in _refund_checks)

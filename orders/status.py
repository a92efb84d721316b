"""The order status machine: the one table of allowed transitions and the one function that
applies a transition and writes the event row."""

from __future__ import annotations

from orders.models import Order, OrderEvent, OrderStatus

S = OrderStatus
TRANSITIONS: dict[str, frozenset[str]] = {
    S.PENDING_PAYMENT: frozenset(
        {S.TO_REVIEW, S.HELD, S.APPROVED, S.CANCELLED, S.PARTIALLY_SHIPPED, S.SHIPPED}
    ),
    S.TO_REVIEW: frozenset({S.APPROVED, S.HELD, S.CANCELLED, S.PARTIALLY_SHIPPED, S.SHIPPED}),
    # back to pending payment: a hold placed before payment is released before payment
    S.HELD: frozenset(
        {S.PENDING_PAYMENT, S.TO_REVIEW, S.APPROVED, S.CANCELLED, S.PARTIALLY_SHIPPED, S.SHIPPED}
    ),
    S.APPROVED: frozenset({S.HELD, S.TO_REVIEW, S.PARTIALLY_SHIPPED, S.SHIPPED, S.CANCELLED}),
    S.PARTIALLY_SHIPPED: frozenset({S.SHIPPED, S.COMPLETED}),
    S.SHIPPED: frozenset({S.COMPLETED}),
    S.COMPLETED: frozenset(),
    S.CANCELLED: frozenset(),
}
SHIPPED_STATES = frozenset({S.PARTIALLY_SHIPPED, S.SHIPPED, S.COMPLETED})
OPEN_STATES = frozenset({S.PENDING_PAYMENT, S.TO_REVIEW, S.HELD, S.APPROVED})


class InvalidTransition(Exception):
    def __init__(self, order: Order, to: str) -> None:
        super().__init__(f"order {order.platform_order_id} cannot go from {order.status} to {to}")
        self.from_status = order.status
        self.to_status = to


def can_transition(order: Order, to: str) -> bool:
    return to in TRANSITIONS[order.status]


def transition(
    order: Order,
    to: str,
    *,
    source: str = "system",
    actor=None,
    message: str = "",
    kind: str = "status_changed",
    details: dict | None = None,
) -> OrderEvent | None:
    """Move ``order`` to ``to`` (saved) and record it (``details`` join the event's ``after``);
    a no-op when it is already there."""
    if order.status == to:
        return None
    if not can_transition(order, to):
        raise InvalidTransition(order, to)
    before = order.status
    order.status = to
    order.save(update_fields=["status", "hold_reasons", "updated_at"])
    return OrderEvent.objects.create(
        order=order,
        kind=kind,
        source=source,
        actor=actor,
        message=message,
        before={"status": before},
        after={**(details or {}), "status": to},
    )

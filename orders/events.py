"""Events the orders layer publishes upward (see ecbao.events)."""

from dataclasses import dataclass

from ecbao.events import Event


@dataclass(frozen=True)
class ShippedOrderRefunded(Event):
    """The platform refunded (cancelled) an order after it shipped (order event
    ``refund_after_shipment``): its parcels on their way may need stopping."""

    order_id: int

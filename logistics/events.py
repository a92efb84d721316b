"""Events logistics publishes upward (see ecbao.events)."""

from dataclasses import dataclass

from ecbao.events import Event


@dataclass(frozen=True)
class ParcelsShipped(Event):
    """Parcels were shipped (``logistics.shipping.ship_parcels``, a tracking number entered by
    hand, or the platform said so): higher layers follow — a supplier's dispatch, an after-sale's
    replacement order whose tracking goes to the platform through the after-sale."""

    parcel_ids: tuple[int, ...]
    order_ids: tuple[int, ...]

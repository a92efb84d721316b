"""Events the inventory layer publishes upward (see ecbao.events)."""

from dataclasses import dataclass

from ecbao.events import Event


@dataclass(frozen=True)
class ListingMatched(Event):
    """A listing now maps to a merchant SKU: order lines waiting on it can proceed."""

    listing_id: int
    sku_id: int

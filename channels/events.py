"""Events the channel layer publishes upward (see ecbao.events)."""

from dataclasses import dataclass

from ecbao.events import Event


@dataclass(frozen=True)
class OrderChanged(Event):
    """A platform order has a new newest version (stored as ``snapshot_id``)."""

    store_id: int
    platform_order_id: str
    snapshot_id: int
    status: str


@dataclass(frozen=True)
class OrdersChanged(Event):
    """Many platform orders of one store have new newest versions (a pulled page)."""

    store_id: int
    snapshot_ids: tuple[int, ...]


@dataclass(frozen=True)
class AfterSaleChanged(Event):
    """A platform after-sale has a new newest version (``ChannelAfterSaleState``); nothing
    subscribes yet — the versions are kept for the after-sales work."""

    store_id: int
    platform_after_sale_id: str
    platform_order_id: str


@dataclass(frozen=True)
class TrackingPushed(Event):
    """A platform pushed carrier events of a parcel: ``events`` are (ISO time, neutral status,
    description, location, platform status) tuples."""

    store_id: int
    carrier_code: str
    tracking_no: str
    events: tuple[tuple[str, str, str, str, str], ...]


@dataclass(frozen=True)
class DropshipChanged(Event):
    """The platform says an order's native dropship assignments changed (WeChat
    ``channels_ec_order_ext_info_update`` type 14 assigned / 15 cancelled); subscribers read the
    assignments again through the connector (the push names only the order)."""

    store_id: int
    platform_order_id: str
    change: str  # "assigned" | "cancelled" | "" (unknown)

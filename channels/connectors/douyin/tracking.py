"""Douyin shop (抖店) connector — logistics traces (物流轨迹)."""

from __future__ import annotations

from channels.connectors.base import as_dict, as_list, epoch_any, ordered_events
from channels.types import TrackingEvent, TrackingStatus

# ``state`` of a route node. The SDK points to an enum page we have not seen; [GUESS] kuaidi100-style
# numbers (Douyin's company codes are kuaidi100 slugs): 0 在途, 1 揽收, 2 疑难, 3 签收, 4 退签,
# 5 派件, 6 退回, 7 转投, 14 拒签. Unknown states fall back to the description, then to in transit.
STATES = {
    "0": TrackingStatus.IN_TRANSIT,
    "1": TrackingStatus.COLLECTED,
    "2": TrackingStatus.EXCEPTION,
    "3": TrackingStatus.DELIVERED,
    "4": TrackingStatus.RETURNED,
    "5": TrackingStatus.DELIVERING,
    "6": TrackingStatus.RETURNED,
    "7": TrackingStatus.IN_TRANSIT,
    "14": TrackingStatus.EXCEPTION,
}
WORDS = (
    ("退回", TrackingStatus.RETURNED),
    ("签收", TrackingStatus.DELIVERED),
    ("派件", TrackingStatus.DELIVERING),
    ("揽收", TrackingStatus.COLLECTED),
    ("疑难", TrackingStatus.EXCEPTION),
)


def _status(state: str, description: str) -> TrackingStatus:
    if state in STATES:
        return STATES[state]
    for word, status in WORDS:
        if word in description:
            return status
    return TrackingStatus.IN_TRANSIT


class TrackingMixin:
    """DouyinConnector: logistics traces."""

    def track(
        self, *, carrier_code: str, tracking_no: str, platform_order_id: str = ""
    ) -> list[TrackingEvent]:
        """``/logistics/trackNoRouteDetail`` {logistics_code, track_no} → ``route__node_list`` (the
        SDK's spelling; ``route_node_list`` read too), ``timestamp`` seconds as a string or a
        number; nodes without a readable time are skipped."""
        data = as_dict(
            self._api(  # type: ignore[attr-defined]
                "/logistics/trackNoRouteDetail",
                {"logistics_code": carrier_code, "track_no": tracking_no},
                idempotent=True,
            )
        )
        nodes = data.get("route__node_list")
        if nodes is None:
            nodes = data.get("route_node_list")
        events = []
        for node in as_list(nodes):
            node = as_dict(node)
            at = epoch_any(node.get("timestamp"))
            if at is None:
                continue
            state = str(node.get("state") if node.get("state") is not None else "")
            text = str(node.get("content") or node.get("state_description") or "")
            events.append(
                TrackingEvent(
                    occurred_at=at,
                    status=_status(state, str(node.get("state_description") or "")),
                    description=text,
                    location=str(node.get("site_name") or ""),
                    platform_status=state,
                )
            )
        return ordered_events(events)

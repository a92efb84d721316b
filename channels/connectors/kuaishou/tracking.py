"""Kuaishou shop (快手小店) connector — logistics traces (物流轨迹)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from channels.connectors.base import as_dict, as_int, as_list, epoch_any, ordered_events
from channels.types import TrackingEvent, TrackingStatus

SHANGHAI = timezone(timedelta(hours=8))

# ``logisticsStatus`` [GUESS: Cainiao-family action codes, the family of Kuaishou's e-waybills].
ACTIONS = {
    "ACCEPT": TrackingStatus.COLLECTED,
    "GOT": TrackingStatus.COLLECTED,
    "TRANSPORT": TrackingStatus.IN_TRANSIT,
    "ARRIVE": TrackingStatus.IN_TRANSIT,
    "DEPARTURE": TrackingStatus.IN_TRANSIT,
    "DELIVERING": TrackingStatus.DELIVERING,
    "SIGN": TrackingStatus.DELIVERED,
    "STA_SIGN": TrackingStatus.DELIVERED,
    "FAILED": TrackingStatus.EXCEPTION,
    "REJECT": TrackingStatus.EXCEPTION,
    "TMS_RETURN": TrackingStatus.RETURNED,
    "RETURN": TrackingStatus.RETURNED,
}


def _when(value: Any) -> datetime | None:
    """``operateTime``: epoch milliseconds (number or digits), or Beijing-time text."""
    if value in (None, ""):
        return None
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.strip().isdigit()):
        return epoch_any(value)
    try:
        return (
            datetime.strptime(str(value).strip(), "%Y-%m-%d %H:%M:%S")
            .replace(tzinfo=SHANGHAI)
            .astimezone(UTC)
        )
    except ValueError:
        return None


class TrackingMixin:
    """KuaishouConnector: logistics traces."""

    def track(
        self, *, carrier_code: str, tracking_no: str, platform_order_id: str = ""
    ) -> list[TrackingEvent]:
        """[GUESS] ``open.logistics.trace.query`` {expressCode, expressNo} → ``data.traces[]``
        (``operateTime``, ``desc``, ``logisticsStatus``, ``city``, ``netSiteName``); see the
        sandbox's note on the choice. Nodes without a readable time are skipped."""
        envelope = self._api(  # type: ignore[attr-defined]
            "open.logistics.trace.query", {"expressCode": as_int(carrier_code), "expressNo": tracking_no}
        )
        data = as_dict(envelope.get("data"))
        events = []
        for node in as_list(data.get("traces")):
            node = as_dict(node)
            at = _when(node.get("operateTime"))
            if at is None:
                continue
            code = str(node.get("logisticsStatus") or "").upper()
            place = " ".join(str(node.get(k) or "") for k in ("city", "netSiteName")).strip()
            events.append(
                TrackingEvent(
                    occurred_at=at,
                    status=ACTIONS.get(code, TrackingStatus.IN_TRANSIT),
                    description=str(node.get("desc") or node.get("logisticsStatusDesc") or ""),
                    location=place,
                    platform_status=code,
                )
            )
        return ordered_events(events)

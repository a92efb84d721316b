"""WeChat Channels shop (微信小店) connector — logistics traces (物流轨迹) and their pushes."""

from __future__ import annotations

from typing import Any

from channels.connectors.base import as_dict, as_int, as_list, epoch_any, ordered_events
from channels.types import TrackingEvent, TrackingStatus

# ``action_type`` of WeChat's logistics helper (物流助手, documented): 100001 揽件成功, 100002 揽件失败,
# 100003 分配业务员, 200001 运输中, 300002 开始派送, 300003 签收成功, 300004 签收失败,
# 400001 订单取消, 400002 订单滞留. A refused parcel going back shows as 300004 "…退回…".
ACTIONS = {
    100001: TrackingStatus.COLLECTED,
    100002: TrackingStatus.EXCEPTION,
    100003: TrackingStatus.COLLECTED,
    200001: TrackingStatus.IN_TRANSIT,
    300002: TrackingStatus.DELIVERING,
    300003: TrackingStatus.DELIVERED,
    300004: TrackingStatus.EXCEPTION,
    400001: TrackingStatus.EXCEPTION,
    400002: TrackingStatus.EXCEPTION,
}


def path_events(items: Any, *, time_key: str, type_key: str, msg_key: str) -> list[TrackingEvent]:
    """Path items (``path_item_list`` of a pull, ``Actions`` of a push) as neutral events."""
    events = []
    for item in as_list(items):
        item = as_dict(item)
        at = epoch_any(item.get(time_key))
        if at is None:
            continue
        action = as_int(item.get(type_key))
        text = str(item.get(msg_key) or "")
        status = ACTIONS.get(action, TrackingStatus.IN_TRANSIT)
        if action == 300004 and "退回" in text and "将退回" not in text:
            status = TrackingStatus.RETURNED  # the helper has no "returned" type: its words say so
        events.append(
            TrackingEvent(occurred_at=at, status=status, description=text, platform_status=str(action))
        )
    return ordered_events(events)


def push_tracking(payload: dict[str, Any]) -> tuple[str, str, list[TrackingEvent]]:
    """(delivery_id, waybill_id, events) of a decoded ``add_express_path`` push."""
    events = path_events(
        payload.get("Actions"), time_key="ActionTime", type_key="ActionType", msg_key="ActionMsg"
    )
    return str(payload.get("DeliveryID") or ""), str(payload.get("WayBillId") or ""), events


class TrackingMixin:
    """WechatConnector: logistics traces."""

    def track(
        self, *, carrier_code: str, tracking_no: str, platform_order_id: str = ""
    ) -> list[TrackingEvent]:
        """[GUESS] ``/channels/ec/logistics/path/get`` {order_id, delivery_id, waybill_id} →
        ``path_item_list[]{action_time, action_type, action_msg}`` (the logistics helper's shape;
        ``action_time`` seconds, a number or a string)."""
        body: dict[str, Any] = {"delivery_id": carrier_code, "waybill_id": tracking_no}
        if platform_order_id:
            body["order_id"] = platform_order_id
        reply = self.api("/channels/ec/logistics/path/get", body)  # type: ignore[attr-defined]
        return path_events(
            reply.get("path_item_list"), time_key="action_time", type_key="action_type", msg_key="action_msg"
        )

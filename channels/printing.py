"""What each platform's local print component (the program on the warehouse PC that prints the
platform's privacy waybills) expects for one label.

Douyin (13888) and Kuaishou (16888, ``/ks/printer``) speak the Cainiao-family protocol: a
document is ``{documentID, contents: [<the platform's encrypted print data + signature>,
<the seller's custom area>]}``. WeChat (12705) takes a print v2.0 ``taskList`` item ``{taskID,
printInfo, printNum, customInfo}``. Facts: shared/reference/operations.md §2, platform-apis.md
§1.10, §2.10, §3.10. The rest of ecbao hands neutral data in and ships the dict as it is.
"""

from __future__ import annotations

from typing import Any

from channels.types import Platform, WaybillPrint

#: which protocol each platform's print component speaks
DIALECTS: dict[str, str] = {
    Platform.DOUYIN: "cainiao",
    Platform.KUAISHOU: "cainiao",
    Platform.WECHAT: "wechat",
}


def dialect(platform: str) -> str:
    return DIALECTS.get(platform, "cainiao")


def print_document(
    *, platform: str, task_id: str, print_info: WaybillPrint, custom: dict[str, Any], piece: tuple[int, int]
) -> dict[str, Any]:
    """One label in the component's own format. ``custom`` = ``{"templateURL", "data"}`` (ecbao's
    custom area); ``piece`` = (n, m) of a multi-piece shipment."""
    if dialect(platform) == "wechat":
        return {
            "taskID": task_id,
            "printInfo": print_info.print_data,
            "printNum": {"curNum": piece[0], "sumNum": piece[1]},
            "customInfo": {"templateUrl": custom["templateURL"], "data": custom["data"]},
        }
    platform_part = {
        "encryptedData": print_info.print_data,
        "signature": print_info.sign,
        "templateURL": print_info.template_url or "standard",
        "ver": "1.0",
    }
    if print_info.key:
        platform_part["key"] = print_info.key
    return {"documentID": task_id, "contents": [platform_part, custom]}

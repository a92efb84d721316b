"""Kuaishou shop (快手电商) connector — buyer data: decrypting receiver fields."""

from __future__ import annotations

from channels.connectors.base import (
    as_dict,
    as_int,
    as_list,
)
from channels.connectors.kuaishou.api import SUCCESS
from channels.connectors.scrub import ReceiverRules
from channels.errors import PlatformRejected

# Receiver fields in Kuaishou payloads (§2.4 ``orderAddress``): ciphertext + desensitised forms;
# the plain consignee / mobile / address fields arrive empty (else they are masked or dropped).
RECEIVER_RULES = ReceiverRules(
    containers=frozenset({"orderAddress", "subOrderAddress", "receiverInfo"}),
    allowed=frozenset(
        {
            "encryptedConsignee",
            "desensitiseConsignee",
            "encryptedMobile",
            "desensitiseMobile",
            "encryptedAddress",
            "desensitiseAddress",
            "provinceCode",
            "province",
            "cityCode",
            "city",
            "districtCode",
            "district",
            "townCode",
            "town",
        }
    ),  # fmt: skip
    plain=frozenset({"consignee", "mobile", "receiverName", "receiverMobile", "receiverAddress"}),
    masks={
        "consignee": "desensitiseConsignee",
        "mobile": "desensitiseMobile",
        "address": "desensitiseAddress",
    },
)


class BuyerDataMixin:
    """KuaishouConnector: buyer data."""

    def decrypt(self, *, platform_order_id: str, cipher: str, account_id: str) -> str:
        """One field through ``open.order.decrypt.batch`` with ``bizId`` = the order id. Kuaishou
        takes no operator id (``account_id`` is for ecbao's own audit row)."""
        envelope = self._api(
            "open.order.decrypt.batch",
            {"batchDecryptList": [{"bizId": platform_order_id, "encryptedData": cipher}]},
            write=True,
            idempotent=True,  # a read: repeating it only reads again
        )
        results = as_list(envelope.get("batchDecryptResultList")) or as_list(
            as_dict(envelope.get("data")).get("batchDecryptResultList")
        )
        if not results:
            raise PlatformRejected("no decrypt result", code="decrypt")
        first = as_dict(results[0])
        if as_int(first.get("errorCode")) != SUCCESS:
            raise PlatformRejected(
                str(first.get("errorMsg") or "decrypt refused"), code=str(first.get("errorCode"))
            )
        return str(first.get("decryptedData") or "")

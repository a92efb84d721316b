"""Douyin shop (抖店) connector — buyer data: decrypting receiver fields."""

from __future__ import annotations

from typing import Any

from channels.connectors.base import (
    as_dict,
    as_int,
)
from channels.connectors.scrub import ReceiverRules
from channels.errors import PlatformRejected

# Receiver fields in Douyin payloads (§1.4): on the shop order, on each sku order (line-level
# copies) and in pushes. Older orders carry plaintext post_receiver / post_tel / post_addr.detail.
RECEIVER_RULES = ReceiverRules(
    containers=frozenset({"post_addr", "mask_post_addr", "receiver_msg", "receiver_info", "address"}),
    allowed=frozenset(
        {
            "province",
            "city",
            "town",
            "street",
            "encrypt_detail",
            "open_address_id",
            "encrypt_name",
            "encrypt_tel",
            "encrypt_post_receiver",
            "encrypt_post_tel",
            "encrypt_post_tel_sec",
            "province_id",
            "city_id",
            "town_id",
            "street_id",
        }
    ),  # fmt: skip
    plain=frozenset(
        {"post_receiver", "post_tel", "post_tel_sec", "receiver_name", "receiver_tel", "receiver_phone"}
    ),
    masks={
        "post_receiver": "mask_post_receiver",
        "post_tel": "mask_post_tel",
        "post_tel_sec": "mask_post_tel",
    },
)


class BuyerDataMixin:
    """DouyinConnector: buyer data."""

    # ------------------------------------------------------------------ buyer data

    def decrypt(self, *, platform_order_id: str, cipher: str, account_id: str) -> str:
        """``/order/batchDecrypt`` for one ciphertext, ``auth_id`` = the shop order id and
        ``account_id`` = the person asking (the official SDK's field for the ISV's user).
        Not retried on transport errors: every attempt may count against the shop's quota."""
        params: dict[str, Any] = {"cipher_infos": [{"auth_id": platform_order_id, "cipher_text": cipher}]}
        if account_id:
            params["account_id"] = account_id
        data = as_dict(self._api("/order/batchDecrypt", params, idempotent=False))
        infos = [i for i in data.get("decrypt_infos") or [] if isinstance(i, dict)]
        info = next((i for i in infos if i.get("cipher_text") == cipher), infos[0] if infos else None)
        custom = as_dict(data.get("custom_err"))
        if info is None:
            raise PlatformRejected(
                str(custom.get("err_msg") or "nothing decrypted"), code=str(custom.get("err_code") or "")
            )
        if as_int(info.get("err_no")) != 0:
            raise PlatformRejected(str(info.get("err_msg") or ""), code=str(info.get("err_no")))
        if not info.get("decrypt_text"):
            raise PlatformRejected(
                str(custom.get("err_msg") or "empty decrypt result"), code=str(custom.get("err_code") or "")
            )
        return str(info["decrypt_text"])

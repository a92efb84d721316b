"""WeChat Channels shop (微信小店) connector — buyer data: decrypting receiver fields."""

from __future__ import annotations

from channels.connectors.scrub import ReceiverRules
from channels.connectors.wechat.api import _str_id

# WeChat's ``address_info`` (§3.4) holds masks in the plaintext fields' own names (user_name,
# tel_number, detail_info …); the doc samples hold plaintext there, which is dropped.
RECEIVER_RULES = ReceiverRules(
    containers=frozenset({"address_info", "receiver_info"}),
    allowed=frozenset(
        {
            "province_name",
            "city_name",
            "county_name",
            "postal_code",
            "national_code",
            "hash_code",
            "use_tel_number",
            "virtual_tel_expire_time",
        }
    ),  # fmt: skip
    plain=frozenset({"user_name", "tel_number", "detail_info", "house_number", "virtual_order_tel_number"}),
    derive={"user_name": "name", "tel_number": "phone", "detail_info": "address"},
)

# Fields of the decoded ``address_info`` by neutral name (``decrypt``'s ``cipher`` argument).
DECODE_FIELDS = {"name": "user_name", "phone": "tel_number", "address": "detail_info"}


class BuyerDataMixin:
    """WechatConnector: buyer data."""

    # --- buyer data ------------------------------------------------------------------------------------
    def decrypt(self, *, platform_order_id: str, cipher: str, account_id: str) -> str:
        """Plain text of one receiver field. WeChat has no per-field ciphertext: the whole
        ``address_info`` comes from ``/order/sensitiveinfo/decode`` by order id, so ``cipher`` names
        the field ("name", "phone", "address" or a WeChat field such as ``tel_number``); only that
        field is returned. WeChat does not tag decodes with a user (``account_id`` is unused);
        each call counts against the shop's daily quota, so it is never retried."""
        field_name = DECODE_FIELDS.get(cipher, cipher)
        if field_name not in (
            *DECODE_FIELDS.values(),
            "postal_code",
            "house_number",
            "virtual_order_tel_number",
        ):
            raise ValueError(
                "WeChat decodes by order id: pass the field to read ('name', 'phone' or 'address')"
            )
        reply = self.api(
            "/channels/ec/order/sensitiveinfo/decode",
            {"order_id": _str_id(platform_order_id)},
            idempotent=False,
        )
        return str((reply.get("address_info") or {}).get(field_name) or "")

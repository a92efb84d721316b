"""Masking, ciphertext and search-index helpers for receiver PII.

The world keeps receivers in plaintext. Every API response carries only:

* a **masked** form (``mask_name``, ``mask_phone``, ``mask_detail``),
* a **ciphertext** that only the platform's decrypt endpoint turns back into
  plaintext (``PiiVault.encrypt`` / ``PiiVault.decrypt``), and
* where the platform has one, a **search index** (``PiiVault.search_index``):
  a keyed hash of the normalised plaintext, stable across orders, so an ERP can
  merge orders to the same receiver without decrypting.

Ciphertexts are AES-GCM over ``[shop_id, kind, plaintext]`` with a nonce derived
from the content (so the same value in the same shop always encrypts to the
same string, like the platforms' stable ciphertexts), then wrapped by a
platform-specific ``CipherFormat``. Binding the shop id into the ciphertext lets
the decrypt endpoint refuse ciphertexts from another shop.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KIND_ADDRESS = "address"
KIND_NAME = "name"
KIND_PHONE = "phone"
KINDS = (KIND_ADDRESS, KIND_NAME, KIND_PHONE)


def mask_name(name: str) -> str:
    """Surname plus one ``*`` per remaining character: 张三丰 → 张**."""
    if not name:
        return ""
    return name[0] + "*" * max(1, len(name) - 1)


def mask_phone(phone: str, keep_head: int = 3, keep_tail: int = 4) -> str:
    """138****5678 by default; platforms differ, so head/tail are parameters."""
    if len(phone) <= keep_head + keep_tail:
        return "*" * len(phone)
    return phone[:keep_head] + "*" * (len(phone) - keep_head - keep_tail) + phone[len(phone) - keep_tail :]


def mask_detail(detail: str, keep_head: int = 2) -> str:
    """Keep the first characters of the street detail, hide the rest (house numbers)."""
    if not detail:
        return ""
    return detail[:keep_head] + "*" * max(3, len(detail) - keep_head)


@dataclass(frozen=True)
class CipherFormat:
    """How a platform wraps ciphertext.

    Indexed layout: ``{s}{index}{s}{payload}{s}{version}{s * tail}``; Douyin-like name/address
    ``#idx#payload#1##``, phone ``$idx$payload$1$$``; Kuaishou-like per-field markers
    ``$idx$payload$1$`` (``tails`` gives the trailing count per kind, default 2).
    Starred layout (``starred=True``, Douyin 2024): ``{s}{s}{head}*{payload}{s}{version}{s * tail}``
    — the first segment is empty and ``head`` is no search index (it changes with every
    encryption). Either way the index/head segment is authenticated: change one character and
    the ciphertext no longer decrypts.
    """

    separators: dict[str, str]
    version: str = "1"
    tails: dict[str, int] = field(default_factory=dict)
    starred: bool = False

    def wrap(self, kind: str, index: str, payload: str) -> str:
        s = self.separators[kind]
        tail = s * self.tails.get(kind, 2)
        if self.starred:
            return f"{s}{s}{index}*{payload}{s}{self.version}{tail}"
        return f"{s}{index}{s}{payload}{s}{self.version}{tail}"

    def unwrap(self, text: str) -> tuple[str, str, bool] | None:
        """``(index or head, payload, starred)``, or None when the string is in no known layout.

        Accepts both layouts and any trailing count, with this format's separators.
        """
        if len(text) < 6:
            return None
        s = text[0]
        if s not in self.separators.values() or not text.endswith(s):
            return None
        parts = text.rstrip(s)[1:].split(s)
        if len(parts) != 3 or parts[2] != self.version:
            return None
        if parts[0] == "" and "*" in parts[1]:
            head, payload = parts[1].split("*", 1)
            return head, payload, True
        return parts[0], parts[1], False


class DecryptError(Exception):
    """Raised for a ciphertext that is malformed, tampered with or from another shop."""


class PiiVault:
    """Encrypts/decrypts PII for one world. ``secret`` is the world's private key material."""

    def __init__(self, secret: bytes) -> None:
        self._enc_key = hashlib.sha256(b"enc:" + secret).digest()
        self._nonce_key = hashlib.sha256(b"nonce:" + secret).digest()
        self._index_key = hashlib.sha256(b"index:" + secret).digest()
        self._aead = AESGCM(self._enc_key)
        # Ciphertexts are deterministic, so a bounded memo keeps list rendering cheap.
        self._memo: dict[tuple[str, str, str, int, str], str] = {}

    def search_index(self, kind: str, plaintext: str) -> str:
        """Keyed, stable index of a normalised plaintext (same across shops, like a platform index)."""
        normalised = "".join(plaintext.split())
        digest = hmac.new(self._index_key, f"{kind}:{normalised}".encode(), hashlib.sha256).digest()
        return base64.b64encode(digest[:12]).decode()

    def encrypt(self, *, shop_id: str, kind: str, plaintext: str, fmt: CipherFormat, salt: str = "") -> str:
        """Deterministic ciphertext of ``plaintext`` bound to ``shop_id``.

        ``salt`` (e.g. order id and address version) makes the same value encrypt differently
        in another order or after a re-encryption, while its search index stays the same.
        """
        key = (shop_id, kind, plaintext, id(fmt), salt)  # formats are module constants
        cached = self._memo.get(key)
        if cached is not None:
            return cached
        if len(self._memo) > 200_000:
            self._memo.clear()
        self._memo[key] = text = self._encrypt(
            shop_id=shop_id, kind=kind, plaintext=plaintext, fmt=fmt, salt=salt
        )
        return text

    def _encrypt(self, *, shop_id: str, kind: str, plaintext: str, fmt: CipherFormat, salt: str) -> str:
        message = json.dumps([shop_id, kind, plaintext], ensure_ascii=False, separators=(",", ":")).encode()
        nonce = hmac.new(self._nonce_key, message + salt.encode(), hashlib.sha256).digest()[:12]
        if fmt.starred:
            mac = hmac.new(
                self._index_key, f"head:{salt}:{shop_id}:{kind}:{plaintext}".encode(), hashlib.sha256
            )
            index = base64.b64encode(mac.digest() + nonce).decode()
        else:
            index = self.search_index(kind, plaintext)
        aad = f"{int(fmt.starred)}:{index}".encode()
        payload = base64.b64encode(nonce + self._aead.encrypt(nonce, message, aad)).decode()
        return fmt.wrap(kind, index, payload)

    def decrypt(self, text: str, fmt: CipherFormat) -> tuple[str, str, str]:
        """Return ``(shop_id, kind, plaintext)``; raise ``DecryptError`` for anything else
        (malformed, another layout's or a changed index/head segment, tampered payload)."""
        parts = fmt.unwrap(text)
        if parts is None:
            raise DecryptError("not a ciphertext")
        index, payload, starred = parts
        try:
            raw = base64.b64decode(payload, validate=True)
            message = self._aead.decrypt(raw[:12], raw[12:], f"{int(starred)}:{index}".encode())
            shop_id, kind, plaintext = json.loads(message)
        except (ValueError, InvalidTag) as exc:
            raise DecryptError("ciphertext does not decrypt") from exc
        return shop_id, kind, plaintext

    def seal(self, *, shop_id: str, text: str) -> str:
        """An opaque, authenticated blob (e.g. e-waybill print data) only the sandbox can open."""
        message = json.dumps([shop_id, "sealed", text], ensure_ascii=False, separators=(",", ":")).encode()
        nonce = hmac.new(self._nonce_key, message, hashlib.sha256).digest()[:12]
        return base64.b64encode(nonce + self._aead.encrypt(nonce, message, None)).decode()

    def unseal(self, blob: str) -> tuple[str, str]:
        """Return ``(shop_id, text)`` of a ``seal`` blob; raise ``DecryptError`` otherwise."""
        try:
            raw = base64.b64decode(blob, validate=True)
            shop_id, _, text = json.loads(self._aead.decrypt(raw[:12], raw[12:], None))
        except (ValueError, InvalidTag) as exc:
            raise DecryptError("blob does not open") from exc
        return shop_id, text

    def mac(self, text: str) -> str:
        """A hex MAC of ``text`` under the world key (e.g. a print-data signature)."""
        return hmac.new(self._index_key, text.encode(), hashlib.sha256).hexdigest()

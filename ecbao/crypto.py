"""Encryption of secrets at rest (platform app secrets, access and refresh tokens).

Keys come from FIELD_ENCRYPTION_KEY (comma-separated Fernet keys, newest first): values are
encrypted with the newest and decrypted with any, so keys can be rotated.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import InvalidToken, MultiFernet
from django.conf import settings
from django.db import models


@lru_cache(maxsize=4)
def _fernet(keys: tuple[bytes, ...]) -> MultiFernet:
    from cryptography.fernet import Fernet

    return MultiFernet([Fernet(key) for key in keys])


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt_text(value: str) -> str:
    return fernet().encrypt(value.encode()).decode()


def decrypt_text(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("cannot decrypt field: wrong FIELD_ENCRYPTION_KEY or corrupted value") from exc


class EncryptedTextField(models.TextField):
    """A text column stored as Fernet ciphertext; Python sees plain text.

    Not searchable or orderable by design. Empty strings are stored as empty strings.
    """

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return decrypt_text(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt_text(value)

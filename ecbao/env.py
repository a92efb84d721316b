"""Reading settings from the environment, with one-line errors that name the variable.

Every value ecbao reads from the environment goes through these helpers, so a bad value
fails at start with ``ImproperlyConfigured: <NAME>: <what is wrong>`` instead of a stack
trace from deep inside a driver.
"""

from __future__ import annotations

import base64
import os
import re
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class EnvError(ImproperlyConfigured):
    """A value in the environment cannot be used; the message names the variable."""

    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        super().__init__(f"{name}: {problem}")


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name)
    if value is None or value == "":
        if default is None:
            raise EnvError(name, "is required but not set")
        return default
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise EnvError(name, f"expected true/false, got {raw!r}")


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise EnvError(name, f"expected a whole number, got {raw!r}") from None
    if value < minimum:
        raise EnvError(name, f"must be at least {minimum}, got {value}")
    return value


def proxy_networks(name: str) -> list[str]:
    """Comma-separated IP addresses or networks (CIDR) of trusted reverse proxies."""
    import ipaddress

    items = env_list(name, [])
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise EnvError(name, f"not an IP address or network: {item!r}") from None
    return items


def database_config(name: str = "DATABASE_URL") -> dict:
    """Parse a PostgreSQL URL into a Django DATABASES entry for django-tenants."""
    import dj_database_url

    url = os.environ.get(name, "").strip()
    if not url:
        raise EnvError(
            name, "is not set (make run / make test start an embedded PostgreSQL when it is unset)"
        )
    scheme = urlsplit(url).scheme
    if scheme not in {"postgres", "postgresql", "pgsql"}:
        raise EnvError(name, f"must be a postgresql:// URL, got scheme {scheme!r}")
    try:
        config = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    except Exception as exc:  # dj-database-url raises several types for malformed URLs
        raise EnvError(name, f"is malformed ({exc})") from exc
    if not config.get("NAME"):
        raise EnvError(name, "names no database (expected postgresql://user@host:port/dbname)")
    config["ENGINE"] = "django_tenants.postgresql_backend"
    return config


def redis_url(name: str = "REDIS_URL") -> str:
    url = os.environ.get(name, "").strip()
    if not url:
        raise EnvError(name, "is not set (make run / make test start an embedded Redis when it is unset)")
    parts = urlsplit(url)
    if parts.scheme not in {"redis", "rediss", "unix"}:
        raise EnvError(name, f"must be a redis://, rediss:// or unix:// URL, got scheme {parts.scheme!r}")
    if parts.scheme != "unix" and not parts.hostname:
        raise EnvError(name, "has no host (expected redis://host:port/db)")
    try:
        parts.port  # noqa: B018 - raises ValueError on a non-numeric port
    except ValueError as exc:
        raise EnvError(name, f"has a bad port ({exc})") from exc
    return url


_DOMAIN = re.compile(r"^(?=.{1,200}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


def base_domain(name: str = "ECBAO_BASE_DOMAIN", default: str = "localhost") -> str:
    value = env_str(name, default).strip().lower()
    if not _DOMAIN.match(value):
        raise EnvError(name, f"is not a host name: {value!r}")
    return value


def field_encryption_keys(name: str, default: str | None) -> list[bytes]:
    """Fernet keys (comma-separated, newest first) for encrypting credentials at rest."""
    raw = env_str(name, default) if default is not None else env_str(name)
    keys = []
    for item in raw.split(","):
        item = item.strip()
        try:
            if len(base64.urlsafe_b64decode(item.encode())) != 32:
                raise ValueError("not 32 bytes")
        except Exception as exc:
            raise EnvError(
                name,
                "must be urlsafe-base64 32-byte Fernet keys, comma-separated "
                '(make one with: python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())")',
            ) from exc
        keys.append(item.encode())
    return keys

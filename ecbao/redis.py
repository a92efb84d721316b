"""A process-wide Redis client for small signals (queues, flags) outside the Django cache."""

from __future__ import annotations

from functools import lru_cache

import redis
from django.conf import settings


@lru_cache(maxsize=1)
def _client(url: str) -> redis.Redis:
    # Blocking reads (BLPOP) wait up to a few seconds: the socket timeout must be longer.
    return redis.Redis.from_url(url, health_check_interval=30, socket_timeout=30, socket_connect_timeout=5)


def client() -> redis.Redis:
    return _client(settings.REDIS_URL)


def key(*parts: str) -> str:
    """A key in this deployment's namespace (the cache prefix keeps test runs apart)."""
    return ":".join([settings.CACHES["default"]["KEY_PREFIX"], *parts])

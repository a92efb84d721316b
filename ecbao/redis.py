"""A process-wide Redis client for small signals (queues, flags) outside the Django cache."""

from __future__ import annotations

from functools import lru_cache

import redis
from django.conf import settings


@lru_cache(maxsize=1)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, health_check_interval=30)


def client() -> redis.Redis:
    return _client(settings.REDIS_URL)


def key(*parts: str) -> str:
    """A key in this deployment's namespace (the cache prefix keeps test runs apart)."""
    return ":".join([settings.CACHES["default"]["KEY_PREFIX"], *parts])

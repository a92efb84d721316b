"""Fixed-window counters in the (tenant-keyed) cache: how often something happened lately."""

from __future__ import annotations

from django.core.cache import cache


def hit(key: str, window_seconds: int) -> int:
    """Count one event under ``key`` in a window that starts at its first event; returns the
    count including this one (atomic in Redis: concurrent hits each get their own number)."""
    cache.add(key, 0, timeout=window_seconds)
    try:
        return cache.incr(key)
    except ValueError:  # the window ended between add and incr
        cache.set(key, 1, timeout=window_seconds)
        return 1


def count(key: str) -> int:
    return cache.get(key) or 0

"""Faults on demand and rate limits, per platform and per API path.

Rules live in the world's settings table (``fault:<platform>:<path>``), so a rule
written by the CLI (``python -m sandbox fault douyin /order/searchList
--error-rate 0.3``) or the status-port admin endpoint reaches a running server
within a second. ``path="*"`` sets a platform-wide rule; a path rule overrides
it field by field.

What a rule can do to a call (checked in this order by ``gateway.PlatformGateway``):

* ``latency_ms``     – sleep before answering;
* ``timeout_rate``   – sleep ``timeout_seconds`` (past the client's timeout), then answer;
* ``http_5xx_rate``  – answer 502/503/504 with a gateway HTML body, as a load balancer would;
* ``error_rate``     – answer the platform's "service unavailable" business error (HTTP 200);
* ``rate_limit_rate``– answer the platform's rate-limit error (a storm, regardless of QPS);
* ``malformed_rate`` – answer a truncated, unparsable body with HTTP 200;
* ``qps``/``burst``  – the token bucket per (app, path); ``0`` means unlimited.

Lost replies — the platform **acts** (the handler runs and commits) and the caller never
learns it:

* ``lost_reply_rate``     – after handling, sleep ``timeout_seconds`` (past the client's
  timeout), then answer (the client has given up by then);
* ``lost_reply_5xx_rate`` – after handling, answer 502/504 with the gateway HTML page instead
  of the platform's answer (a load balancer that lost the upstream reply).

Default rules (``DEFAULT_RULES``) give the platforms' documented limits where they differ from
``DEFAULT_QPS``: WeChat's e-waybill APIs take ≈500 calls per minute (a bucket of 500 refilled at
500/60 per second, per app and API, answered with 45011). A stored rule overrides them.

Token revocation is a world action: ``Faults.revoke_tokens`` (tokens stop working)
or ``World.revoke_authorization`` (the merchant withdrew the app).
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .world import World

# Default per-(app, path) QPS when no rule says otherwise. Douyin publishes no numbers
# (platform-apis.md §1.11); Kuaishou documents 300 for the order list (§4 of performance.md).
DEFAULT_QPS: dict[str, float] = {"douyin": 100.0, "kuaishou": 300.0, "wechat": 100.0}

# Documented limits of groups of paths: ``{(platform, path prefix): rule fields}``; stored rules
# (``*`` or the path's own) override them field by field. WeChat: "电子面单接口 ≈500 次/分钟"
# (operations.md §2) → a bucket of 500 refilled at 500 per minute, per app and API path.
# Douyin's and Kuaishou's e-waybill APIs publish no figure: ``DEFAULT_QPS`` applies to them.
DEFAULT_RULES: dict[tuple[str, str], dict[str, Any]] = {
    ("wechat", "/channels/ec/logistics/ewaybill/"): {"qps": 500 / 60, "burst": 500},
}

SETTING_PREFIX = "fault:"

# Set by the server on shutdown so that injected sleeps end early.
STOP = threading.Event()


@dataclass
class FaultRule:
    error_rate: float = 0.0
    http_5xx_rate: float = 0.0
    malformed_rate: float = 0.0
    timeout_rate: float = 0.0
    timeout_seconds: float = 15.0
    latency_ms: float = 0.0
    rate_limit_rate: float = 0.0
    qps: float | None = None
    burst: float | None = None
    lost_reply_rate: float = 0.0
    lost_reply_5xx_rate: float = 0.0

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]


@dataclass
class FaultDecision:
    """What to do to one call."""

    latency: float = 0.0
    timeout: float = 0.0
    http_5xx: int = 0
    error: bool = False
    rate_limited: bool = False
    malformed: bool = False
    # After the handler ran: "timeout" (answer after ``lost_reply_delay``) or an HTTP status
    # (502/504 gateway page instead of the answer); "" = the reply arrives.
    lost_reply: str = ""
    lost_reply_delay: float = 0.0

    @property
    def label(self) -> str:
        parts = []
        if self.latency:
            parts.append(f"latency:{int(self.latency * 1000)}ms")
        if self.timeout:
            parts.append("timeout")
        if self.http_5xx:
            parts.append(f"http{self.http_5xx}")
        if self.error:
            parts.append("error")
        if self.rate_limited:
            parts.append("rate-limit-storm")
        if self.malformed:
            parts.append("malformed")
        if self.lost_reply:
            parts.append(f"lost-reply:{self.lost_reply}")
        return ",".join(parts)


class Faults:
    """Fault rules of one world, cached and re-read when settings change."""

    def __init__(self, world: World, *, seed: int = 0) -> None:
        self.world = world
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._cache: dict[tuple[str, str], dict[str, Any]] = {}
        self._cache_version: tuple[int, str] | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()

    # -------------------------------------------------------------- rule storage

    def set(self, platform: str, path: str = "*", **fields: Any) -> FaultRule:
        """Set (merge) rule fields for ``platform``/``path``; returns the effective rule."""
        unknown = set(fields) - set(FaultRule.field_names())
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        key = f"{SETTING_PREFIX}{platform}:{path}"
        stored = dict(self.world.get_setting(key, {}) or {})
        stored.update(fields)
        self.world.set_setting(key, stored)
        return self.rule(platform, path)

    def clear(self, platform: str | None = None, path: str | None = None) -> None:
        """Remove rules: all, one platform's, or one path's."""
        if platform is None:
            self.world.delete_settings(SETTING_PREFIX)
        elif path is None:
            self.world.delete_settings(f"{SETTING_PREFIX}{platform}:")
        else:
            self.world.delete_settings(f"{SETTING_PREFIX}{platform}:{path}")

    def rules(self) -> dict[tuple[str, str], dict[str, Any]]:
        """All stored rules as ``{(platform, path): {field: value}}`` (only fields that were set)."""
        self._refresh()
        return dict(self._cache)

    def _refresh(self) -> None:
        with self._lock:
            now = time.monotonic()
            local_version = self.world.settings_version()[0]
            if (
                self._cache_version is not None
                and self._cache_version[0] == local_version
                and now - self._checked_at < 1.0
            ):
                return
            version = self.world.settings_version()
            self._checked_at = now
            if version == self._cache_version:
                return
            cache = {}
            for key, value in self.world.settings(SETTING_PREFIX).items():
                platform, _, path = key[len(SETTING_PREFIX) :].partition(":")
                cache[(platform, path)] = value
            self._cache, self._cache_version = cache, version

    def rule(self, platform: str, path: str) -> FaultRule:
        """The effective rule: the platform's ``*`` rule overridden by the path's fields."""
        self._refresh()
        merged: dict[str, Any] = {}
        for (default_platform, prefix), fields in DEFAULT_RULES.items():
            if default_platform == platform and path.startswith(prefix):
                merged.update(fields)
        merged.update(self._cache.get((platform, "*"), {}))
        merged.update(self._cache.get((platform, path), {}))
        return FaultRule(**merged)

    # -------------------------------------------------------------- decisions

    def decide(self, platform: str, path: str) -> tuple[FaultDecision, FaultRule]:
        """Roll the dice for one call."""
        rule = self.rule(platform, path)
        decision = FaultDecision()
        with self._rng_lock:
            roll = self._rng.random
            decision.latency = rule.latency_ms / 1000.0
            if rule.timeout_rate and roll() < rule.timeout_rate:
                decision.timeout = rule.timeout_seconds
            if rule.http_5xx_rate and roll() < rule.http_5xx_rate:
                decision.http_5xx = self._rng.choice((502, 503, 504))
            elif rule.error_rate and roll() < rule.error_rate:
                decision.error = True
            elif rule.rate_limit_rate and roll() < rule.rate_limit_rate:
                decision.rate_limited = True
            elif rule.malformed_rate and roll() < rule.malformed_rate:
                decision.malformed = True
            if rule.lost_reply_rate and roll() < rule.lost_reply_rate:
                decision.lost_reply, decision.lost_reply_delay = "timeout", rule.timeout_seconds
            elif rule.lost_reply_5xx_rate and roll() < rule.lost_reply_5xx_rate:
                decision.lost_reply = str(self._rng.choice((502, 504)))
        return decision, rule

    # -------------------------------------------------------------- token revocation

    def revoke_tokens(self, platform: str, *, shop_id: str | None = None, app_key: str | None = None) -> int:
        """Invalidate the platform's tokens (all, one shop's or one app's); returns how many."""
        return self.world.revoke_tokens(platform=platform, shop_id=shop_id, app_key=app_key)


def interruptible_sleep(seconds: float) -> None:
    """Sleep, but wake early when the server shuts down."""
    if seconds > 0:
        STOP.wait(seconds)


class RateLimiter:
    """Token buckets keyed by anything hashable (the gateway uses (platform, app, path)).

    Uses a monotonic real-time source (injectable): limits are about real request rates,
    not simulated time.
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._time = monotonic
        self._buckets: dict[Any, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: Any, qps: float, burst: float | None = None) -> bool:
        """Take one token; False when the bucket is empty. ``qps <= 0`` means unlimited."""
        if qps <= 0:
            return True
        capacity = burst if burst and burst > 0 else qps
        now = self._time()
        with self._lock:
            tokens, last = self._buckets.get(key, (capacity, now))
            tokens = min(capacity, tokens + (now - last) * qps)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return False
            self._buckets[key] = (tokens - 1.0, now)
            return True

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()

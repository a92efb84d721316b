"""Injectable clocks for the sandbox world.

Everything in the sandbox that depends on time (token expiry, order timeouts,
push retries, the buyer simulator) reads ``clock.now()`` instead of
``time.time()``, so tests can move time forward without sleeping.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """Anything with ``now()`` returning Unix seconds as a float."""

    def now(self) -> float: ...


class SystemClock:
    """The real wall clock (used by the server)."""

    def now(self) -> float:
        return time.time()

    @property
    def advanceable(self) -> bool:
        return False


class FakeClock:
    """A clock that only moves when told to (used by tests and ``sim.run_for``).

    Thread-safe: the HTTP apps and the simulator may read it from other threads.
    """

    def __init__(self, start: float = 1_735_700_000.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds`` and return the new time."""
        if seconds < 0:
            raise ValueError("a FakeClock never goes backwards")
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, when: float) -> None:
        """Jump to ``when`` (never backwards)."""
        with self._lock:
            if when < self._now:
                raise ValueError("a FakeClock never goes backwards")
            self._now = float(when)

    @property
    def advanceable(self) -> bool:
        return True


def is_advanceable(clock: Clock) -> bool:
    """True when the clock can be moved by ``set()``/``advance()`` (a FakeClock)."""
    return bool(getattr(clock, "advanceable", False))

"""Push (webhook) delivery: the outbox dispatcher, platform-agnostic.

The world writes one ``push_outbox`` row per (event, subscribed app) in the same
transaction as the change. ``PushDispatcher`` delivers them **at least once**:

* each platform registers a ``PushCodec`` (``register_codec``) that turns an
  outbox message into an HTTP POST (URL, body, headers) and recognises the
  receiver's acknowledgement;
* a failed attempt (error, timeout, wrong reply) is retried on the codec's
  ``retry_schedule`` (nominal seconds, divided by ``time_compression``) and
  marked ``failed`` after the last one;
* ``PushSettings`` (per platform, stored in the world so the CLI can change them)
  add deliberate **duplicates** (the same ``msg_id`` delivered again after a
  success) and **out-of-order** delivery (a first attempt postponed so later
  messages overtake it);
* app-level events (``model.APP_EVENT_KINDS``) go to the app's ``auth_event_url``,
  every other event to its ``webhook_url``;
* a codec may also have a ``schedule(world, state)`` hook, run before each delivery
  round, that queues periodic pushes (WeChat: the ``component_verify_ticket`` every
  10 minutes). ``state`` is a dict kept by the dispatcher, so a new dispatcher (a
  server start) pushes again promptly.

Run it synchronously from tests (``deliver_due()``) or as a thread (``start()``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from . import traces
from .model import APP_EVENT_KINDS, App, WorldEvent
from .world import World

log = logging.getLogger("sandbox.pushes")


@dataclass
class EncodedPush:
    """One HTTP POST to a receiver."""

    url: str
    body: bytes
    headers: dict[str, str]


@dataclass
class OutboxMessage:
    """An outbox row joined with its event."""

    id: int
    platform: str
    app_key: str
    shop_id: str
    msg_id: str
    attempts: int
    created_at: float
    duplicate_of: int
    event: WorldEvent
    reordered: bool = False


class PushCodec(Protocol):
    """What a platform module provides to the dispatcher."""

    platform: str
    retry_schedule: tuple[float, ...]  # delay after the 1st, 2nd, … failed attempt (nominal seconds)
    ack_timeout: float  # seconds the receiver has to answer

    def encode(
        self, world: World, app: App, message: OutboxMessage
    ) -> EncodedPush | list[EncodedPush] | None:
        """Build the POST (or several), or None when the platform has no push for this event kind."""
        ...

    def is_ack(self, status: int, body: bytes) -> bool:
        """True when the receiver's reply acknowledges the delivery."""
        ...

    # Optional: ``schedule(world, state: dict) -> None`` queues periodic pushes (see module docstring).


_CODECS: dict[str, PushCodec] = {}


def register_codec(codec: PushCodec) -> None:
    """Called by each platform module at import time."""
    _CODECS[codec.platform] = codec


def codec_for(platform: str) -> PushCodec | None:
    return _CODECS.get(platform)


@dataclass
class PushSettings:
    duplicate_probability: float = 0.0
    reorder_probability: float = 0.0
    max_reorder_delay: float = 30.0  # nominal seconds a reordered message is held back

    @classmethod
    def load(cls, world: World, platform: str) -> PushSettings:
        stored = world.get_setting(f"push:{platform}", {}) or {}
        return cls(**{k: v for k, v in stored.items() if k in {f.name for f in dataclasses.fields(cls)}})

    @classmethod
    def save(cls, world: World, platform: str, **changes: Any) -> PushSettings:
        current = dataclasses.asdict(cls.load(world, platform))
        unknown = set(changes) - set(current)
        if unknown:
            raise ValueError(f"unknown push settings: {sorted(unknown)}")
        current.update(changes)
        world.set_setting(f"push:{platform}", current)
        return cls(**current)


class PushDispatcher:
    """Delivers due outbox messages; see the module docstring."""

    def __init__(
        self,
        world: World,
        *,
        time_compression: float = 1.0,
        seed: int = 0,
        client: httpx.Client | None = None,
        poll_interval: float = 0.25,
    ) -> None:
        self.world = world
        self.time_compression = float(time_compression)
        self.poll_interval = poll_interval
        self._rng = random.Random(seed)
        self._client = client or httpx.Client(trust_env=False)
        self._own_client = client is None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._deliver_lock = threading.Lock()
        self._schedule_state: dict[str, dict[str, Any]] = {}
        world.add_outbox_listener(self._wake.set)

    # -------------------------------------------------------------- synchronous API

    def due_messages(self, limit: int = 100) -> list[OutboxMessage]:
        rows = self.world.read(
            "SELECT id, platform, app_key, shop_id, msg_id, attempts, created_at, duplicate_of, event_id, reordered "
            "FROM push_outbox WHERE status='pending' AND next_attempt_at<=? ORDER BY next_attempt_at, id LIMIT ?",
            (self.world.clock.now(), limit),
        )
        messages = []
        for r in rows:
            event = self.world.get_event(r[8])
            if event is None:
                continue
            messages.append(OutboxMessage(*r[:8], event=event, reordered=bool(r[9])))
        return messages

    def run_schedules(self) -> None:
        """Let each codec queue its periodic pushes (``schedule`` hooks) and parcels' new trace
        nodes become events (``traces.advance``); ``deliver_due`` calls it."""
        traces.advance(self.world)
        for platform, codec in list(_CODECS.items()):
            schedule = getattr(codec, "schedule", None)
            if schedule is not None:
                schedule(self.world, self._schedule_state.setdefault(platform, {}))

    def deliver_due(self, limit: int = 100) -> int:
        """Attempt every due message once (in due order); return the number of HTTP attempts."""
        with self._deliver_lock:
            self.run_schedules()
            attempts = 0
            for message in self.due_messages(limit):
                if self._stop.is_set():
                    break
                attempts += self._deliver(message)
            return attempts

    def next_due_in(self) -> float | None:
        """Seconds (world clock) until the next pending message is due, or None if none."""
        row = self.world.read("SELECT MIN(next_attempt_at) FROM push_outbox WHERE status='pending'")
        if not row or row[0][0] is None:
            return None
        return max(0.0, row[0][0] - self.world.clock.now())

    def pending_count(self) -> int:
        return self.world.read("SELECT COUNT(*) FROM push_outbox WHERE status='pending'")[0][0]

    # -------------------------------------------------------------- one delivery

    def _update(self, message_id: int, **fields: Any) -> None:
        sets = ", ".join(f"{k}=?" for k in fields)
        with self.world.write() as c:
            c.execute(f"UPDATE push_outbox SET {sets} WHERE id=?", (*fields.values(), message_id))

    def _deliver(self, message: OutboxMessage) -> int:
        now = self.world.clock.now()
        codec = codec_for(message.platform)
        app = self.world.get_app(message.app_key)
        app_event = message.event.kind in APP_EVENT_KINDS
        url = "" if app is None else app.auth_event_url if app_event else app.webhook_url
        if codec is None or app is None or not url:
            reason = (
                "no push codec for platform"
                if codec is None
                else f"app has no {'authorisation-event' if app_event else 'webhook'} URL"
            )
            self._update(message.id, status="skipped", last_error=reason)
            return 0
        settings = PushSettings.load(self.world, message.platform)
        if (
            message.attempts == 0
            and not message.duplicate_of
            and not message.reordered
            and settings.reorder_probability
            and self._rng.random() < settings.reorder_probability
        ):
            delay = self._rng.uniform(1.0, max(1.0, settings.max_reorder_delay)) / self.time_compression
            self._update(message.id, next_attempt_at=now + delay, reordered=1)
            return 0
        encoded = codec.encode(self.world, app, message)
        if not encoded:
            self._update(message.id, status="skipped", last_error="no push for this event on this platform")
            return 0
        error = ""
        # A codec may answer a list: one event that the platform pushes as several messages
        # (Kuaishou: one message per order id). The row is delivered when every POST is acked.
        posts = encoded if isinstance(encoded, list) else [encoded]
        try:
            ok = True
            for post in posts:
                response = self._client.post(
                    post.url, content=post.body, headers=post.headers, timeout=codec.ack_timeout
                )
                if not codec.is_ack(response.status_code, response.content):
                    ok = False
                    error = f"HTTP {response.status_code}: {response.content[:200]!r}"
                    break
        except httpx.HTTPError as exc:
            ok = False
            error = f"{type(exc).__name__}: {exc}"[:300]
        attempts = message.attempts + 1
        now = self.world.clock.now()
        if ok:
            self._update(message.id, status="delivered", attempts=attempts, delivered_at=now, last_error="")
            if (
                not message.duplicate_of
                and settings.duplicate_probability
                and self._rng.random() < settings.duplicate_probability
            ):
                self._enqueue_duplicate(message, now)
        elif attempts > len(codec.retry_schedule):
            self._update(message.id, status="failed", attempts=attempts, last_error=error)
        else:
            delay = codec.retry_schedule[attempts - 1] / self.time_compression
            self._update(message.id, attempts=attempts, next_attempt_at=now + delay, last_error=error)
        return 1

    def _enqueue_duplicate(self, message: OutboxMessage, now: float) -> None:
        delay = self._rng.uniform(0.0, 5.0) / self.time_compression
        with self.world.write() as c:
            c.execute(
                "INSERT INTO push_outbox (event_id, platform, app_key, shop_id, msg_id, created_at, next_attempt_at, "
                "status, duplicate_of) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                (message.event.event_id, message.platform, message.app_key, message.shop_id, message.msg_id, now,
                 now + delay, message.id),
            )  # fmt: skip

    # -------------------------------------------------------------- thread

    def start(self) -> None:
        """Deliver in a daemon thread until ``stop()``."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sandbox-push-dispatcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.world.remove_outbox_listener(self._wake.set)
        if self._own_client:
            self._client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delivered = self.deliver_due()
            except Exception:  # keep the thread alive; the message stays pending
                log.exception("push dispatcher iteration failed")
                delivered = 0
            if delivered:
                continue
            wait = self.poll_interval
            nxt = self.next_due_in()
            if nxt is not None:
                wait = min(wait, nxt)
            self._wake.wait(max(0.005, wait))
            self._wake.clear()

    def wait_until(self, predicate: Any, timeout: float = 10.0, interval: float = 0.01) -> bool:
        """Poll ``predicate()`` until true or ``timeout`` (for tests and scripts)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(interval)
        return bool(predicate())


def outbox_rows(world: World, *, platform: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Recent outbox rows as dicts, newest first (for the status page and tests)."""
    rows = world.read(
        "SELECT o.id, o.platform, o.app_key, o.shop_id, o.msg_id, o.status, o.attempts, o.last_error, o.created_at, "
        "o.delivered_at, o.duplicate_of, e.kind, e.order_id, e.aftersale_id FROM push_outbox o "
        "JOIN events e ON e.event_id=o.event_id WHERE ?='' OR o.platform=? ORDER BY o.id DESC LIMIT ?",
        (platform or "", platform or "", limit),
    )
    keys = "id platform app_key shop_id msg_id status attempts last_error created_at delivered_at duplicate_of kind order_id aftersale_id"
    return [dict(zip(keys.split(), r, strict=True)) for r in rows]


def dumps_compact(obj: Any) -> str:
    """JSON text as pushed inside envelopes (no spaces, no ASCII escaping)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))

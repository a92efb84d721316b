"""The platform-neutral sandbox world, stored in one SQLite file.

``World`` holds apps, shops, authorisations, OAuth codes and tokens, products and
SKUs (with per-SKU platform stock), buyers, orders with lines and packages,
after-sales, settlement lines, e-waybill accounts and waybills, a change-event
log with a push outbox, an API call log and settings (faults, limits).

Properties:

* **Thread-safe.** One SQLite connection per thread, WAL mode, and a process-wide
  lock around writes (``with world.write() as conn:``). Other processes (the CLI)
  may write too; SQLite's busy timeout serialises them.
* **Deterministic.** Ids come from counters whose shapes derive from the seed;
  nothing here uses randomness, so the same calls give the same world.
* **Injectable clock.** ``world.clock.now()``; tests pass a ``FakeClock``.
* **Persistent and resettable.** ``World(path)`` reopens an existing file;
  ``world.reset()`` empties it.

Every state change bumps the order's ``update_time`` and emits a neutral
``WorldEvent`` in the same transaction; for each app authorised on the shop with
a webhook URL, the event also lands in the push outbox (see ``pushes.py``).

Platform modules never write SQL for business state: they call the methods
below and translate ``WorldError`` subclasses into their own error envelopes.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import traces
from .clock import Clock, SystemClock
from .model import (
    AfterSale,
    AfterSaleStatus,
    AfterSaleType,
    App,
    Authorization,
    Buyer,
    CallRecord,
    EventKind,
    OAuthCode,
    Order,
    OrderLine,
    OrderStatus,
    Package,
    PackageItem,
    Product,
    Receiver,
    RefundStatus,
    SettlementLine,
    Shop,
    Sku,
    Token,
    Waybill,
    WaybillAccount,
    WorldEvent,
    from_dict,
    to_dict,
)
from .pii import PiiVault

SHANGHAI_OFFSET = 8 * 3600
#: [choice] what a parcel intercept costs, by carrier (fen); "" = any other carrier
INTERCEPT_COST_FEN = {"SF": 1500, "JD": 1200, "": 800}

# (platform, kind) -> (prefix, total length). Unknown pairs fall back to ("1", 19).
ID_SHAPES: dict[tuple[str, str], tuple[str, int]] = {
    ("douyin", "shop"): ("1", 8),
    ("douyin", "order"): ("69", 19),
    ("douyin", "product"): ("36", 19),
    ("douyin", "sku"): ("17", 19),
    ("douyin", "aftersale"): ("71", 19),
    ("douyin", "package"): ("", 19),
    ("douyin", "msg"): ("70", 19),
    ("kuaishou", "shop"): ("", 10),
    ("kuaishou", "order"): ("24", 16),
    ("kuaishou", "product"): ("", 14),
    ("kuaishou", "sku"): ("", 14),
    ("kuaishou", "aftersale"): ("", 16),
    ("wechat", "shop"): ("", 10),
    ("wechat", "order"): ("37", 19),
    ("wechat", "product"): ("10", 14),
    ("wechat", "sku"): ("", 10),
    ("wechat", "aftersale"): ("", 19),
}

# Neutral carrier keys with display names and tracking-number shapes (prefix, digits).
CARRIERS: dict[str, tuple[str, str, int]] = {
    "ZTO": ("中通快递", "7", 14),
    "YTO": ("圆通速递", "YT", 13),
    "STO": ("申通快递", "77", 13),
    "YD": ("韵达快递", "43", 13),
    "SF": ("顺丰速运", "SF", 13),
    "JT": ("极兔速递", "JT", 13),
    "EMS": ("EMS", "98", 11),
    "JD": ("京东物流", "JDX", 12),
    "POST": ("邮政快递包裹", "97", 11),
    "DBL": ("德邦快递", "DPK", 12),
}

# Nominal platform timers in seconds (divided by ``time_compression``).
DEFAULT_TIMERS = {
    "pay_timeout": 30 * 60,  # unpaid orders close after 30 minutes
    "promise_ship": 48 * 3600,  # promised shipping time after payment
    "aftersale_seller_agree": 48 * 3600,  # merchant must answer an application
    "aftersale_buyer_return": 7 * 24 * 3600,  # buyer must send the goods back
    "aftersale_seller_confirm": 7 * 24 * 3600,  # merchant must confirm the returned goods
    "aftersale_buyer_receive": 10 * 24 * 3600,  # buyer confirms the exchange parcel
    "aftersale_seller_ship": 48 * 3600,  # [choice] merchant sends an approved reissue (补寄)
    "auto_receive": 10 * 24 * 3600,  # platform confirms receipt after shipping
    "settle_after_receive": 7 * 24 * 3600,  # after-sale window before the order completes and settles
    "oauth_code": 10 * 60,  # Douyin: "code 的有效期为10分钟"
    "dropship_ship": 6 * 3600,  # a dropship supplier/factory ships this long after assignment [choice]
}

SERVICE_FEE_PERMILLE = 50  # 5 % platform fee on settled goods (sandbox choice)


# --------------------------------------------------------------------------- errors


class WorldError(Exception):
    """Base of the world's business errors; platform modules map them to their codes."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details


class NotFound(WorldError):
    pass


class Conflict(WorldError):
    """The action is not allowed in the record's current state."""


class OutOfStock(WorldError):
    pass


class InvalidArgument(WorldError):
    pass


class NoWaybillAccount(WorldError):
    pass


@dataclass
class OrderItemSpec:
    """An item a buyer puts in an order. ``gift_of`` is the index of the item that earns the gift."""

    sku_id: str
    qty: int = 1
    discount_fen: int = 0
    gift_of: int | None = None


@dataclass
class ShipmentSpec:
    """One parcel to ship: ``items`` is ``[(line_id, qty)]`` or None for "everything left"."""

    carrier: str
    tracking_no: str
    items: list[tuple[str, int]] | None = None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS apps (app_key TEXT PRIMARY KEY, platform TEXT NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS shops (shop_id TEXT PRIMARY KEY, platform TEXT NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS authorizations (
    app_key TEXT NOT NULL, shop_id TEXT NOT NULL, status TEXT NOT NULL,
    created_at INTEGER NOT NULL, revoked_at INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (app_key, shop_id));
CREATE TABLE IF NOT EXISTS oauth_codes (code TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    access_token TEXT PRIMARY KEY, refresh_token TEXT NOT NULL UNIQUE,
    app_key TEXT NOT NULL, shop_id TEXT NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tokens_pair ON tokens (app_key, shop_id);
CREATE TABLE IF NOT EXISTS products (
    product_id TEXT PRIMARY KEY, shop_id TEXT NOT NULL, platform TEXT NOT NULL,
    update_time INTEGER NOT NULL, create_time INTEGER NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS products_shop ON products (shop_id, update_time);
CREATE TABLE IF NOT EXISTS skus (
    sku_id TEXT PRIMARY KEY, product_id TEXT NOT NULL, shop_id TEXT NOT NULL, code TEXT NOT NULL,
    stock INTEGER NOT NULL, price_fen INTEGER NOT NULL, spec TEXT NOT NULL, out_sku_id TEXT NOT NULL,
    create_time INTEGER NOT NULL, update_time INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS skus_product ON skus (product_id);
CREATE INDEX IF NOT EXISTS skus_code ON skus (shop_id, code);
CREATE TABLE IF NOT EXISTS buyers (buyer_id INTEGER PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY, platform TEXT NOT NULL, shop_id TEXT NOT NULL, status TEXT NOT NULL,
    create_time INTEGER NOT NULL, update_time INTEGER NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS orders_update ON orders (shop_id, update_time, order_id);
CREATE INDEX IF NOT EXISTS orders_create ON orders (shop_id, create_time, order_id);
CREATE TABLE IF NOT EXISTS order_lines (line_id TEXT PRIMARY KEY, order_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS aftersales (
    aftersale_id TEXT PRIMARY KEY, shop_id TEXT NOT NULL, order_id TEXT NOT NULL, status TEXT NOT NULL,
    apply_time INTEGER NOT NULL, update_time INTEGER NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS aftersales_update ON aftersales (shop_id, update_time, aftersale_id);
CREATE INDEX IF NOT EXISTS aftersales_order ON aftersales (order_id);
CREATE TABLE IF NOT EXISTS settlements (
    id INTEGER PRIMARY KEY AUTOINCREMENT, shop_id TEXT NOT NULL, settle_time INTEGER NOT NULL,
    order_time INTEGER NOT NULL, line_id TEXT NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS settlements_time ON settlements (shop_id, settle_time, id);
CREATE TABLE IF NOT EXISTS waybill_accounts (account_id TEXT PRIMARY KEY, shop_id TEXT NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS waybills (tracking_no TEXT PRIMARY KEY, shop_id TEXT NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS decrypt_usage (
    shop_id TEXT NOT NULL, day TEXT NOT NULL, used INTEGER NOT NULL, PRIMARY KEY (shop_id, day));
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, created_at INTEGER NOT NULL,
    PRIMARY KEY (scope, key));
CREATE TABLE IF NOT EXISTS events (
    event_id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, platform TEXT NOT NULL,
    shop_id TEXT NOT NULL, kind TEXT NOT NULL, order_id TEXT NOT NULL, aftersale_id TEXT NOT NULL,
    data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_order ON events (order_id, event_id);
CREATE INDEX IF NOT EXISTS events_aftersale ON events (aftersale_id, event_id);
CREATE TABLE IF NOT EXISTS push_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, event_id INTEGER NOT NULL, platform TEXT NOT NULL,
    app_key TEXT NOT NULL, shop_id TEXT NOT NULL, msg_id TEXT NOT NULL, created_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL,
    last_error TEXT NOT NULL DEFAULT '', delivered_at REAL NOT NULL DEFAULT 0,
    duplicate_of INTEGER NOT NULL DEFAULT 0, reordered INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS push_outbox_due ON push_outbox (status, next_attempt_at);
CREATE TABLE IF NOT EXISTS call_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, platform TEXT NOT NULL, path TEXT NOT NULL,
    http_status INTEGER NOT NULL, code TEXT NOT NULL, app_key TEXT NOT NULL, shop_id TEXT NOT NULL,
    duration_ms REAL NOT NULL, fault TEXT NOT NULL, ok INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS print_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, component TEXT NOT NULL,
    task_id TEXT NOT NULL, document_id TEXT NOT NULL, printer TEXT NOT NULL, preview INTEGER NOT NULL,
    tracking_no TEXT NOT NULL, shop_id TEXT NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL,
    custom TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS print_log_task ON print_log (component, task_id);
CREATE TABLE IF NOT EXISTS sim_agenda (
    id INTEGER PRIMARY KEY AUTOINCREMENT, due REAL NOT NULL, action TEXT NOT NULL, ref TEXT NOT NULL,
    args TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS sim_agenda_due ON sim_agenda (due, id);
CREATE TABLE IF NOT EXISTS traces (
    tracking_no TEXT PRIMARY KEY, platform TEXT NOT NULL, shop_id TEXT NOT NULL, order_id TEXT NOT NULL,
    carrier TEXT NOT NULL, start REAL NOT NULL, dest_province TEXT NOT NULL, dest_city TEXT NOT NULL,
    extra TEXT NOT NULL, cut REAL NOT NULL, emitted INTEGER NOT NULL, ahead REAL NOT NULL DEFAULT 0,
    done INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS traces_due ON traces (done, platform, start);
CREATE TABLE IF NOT EXISTS dropships (
    ds_id TEXT PRIMARY KEY, platform TEXT NOT NULL, shop_id TEXT NOT NULL, order_id TEXT NOT NULL,
    supplier TEXT NOT NULL, status TEXT NOT NULL, create_time INTEGER NOT NULL, update_time INTEGER NOT NULL,
    doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS dropships_order ON dropships (order_id);
CREATE INDEX IF NOT EXISTS dropships_update ON dropships (shop_id, update_time, ds_id);
"""

_TABLES = (
    "meta counters settings apps shops authorizations oauth_codes tokens products skus buyers orders "
    "order_lines aftersales settlements waybill_accounts waybills decrypt_usage idempotency events "
    "push_outbox call_log print_log sim_agenda traces dropships"
).split()


_OPEN_IDS: dict[tuple[int, str, int], str] = {}


_CALL_COLUMNS = "time, platform, path, http_status, code, app_key, shop_id, duration_ms, fault, ok"


def _call_record(row: tuple[Any, ...]) -> CallRecord:
    return CallRecord(*row[:9], ok=bool(row[9]))


def _call_filter(
    platform: str | None, path: str | None, shop_id: str | None, ok: bool | None, after_id: int
) -> tuple[str, list[Any]]:
    where, params = ["id > ?"], [after_id]
    if platform:
        where, params = [*where, "platform = ?"], [*params, platform]
    if path and path.endswith("*"):
        where, params = [*where, "substr(path, 1, ?) = ?"], [*params, len(path) - 1, path[:-1]]
    elif path:
        where, params = [*where, "path = ?"], [*params, path]
    if shop_id is not None:
        where, params = [*where, "shop_id = ?"], [*params, shop_id]
    if ok is not None:
        where, params = [*where, "ok = ?"], [*params, int(ok)]
    return " AND ".join(where), params


def _j(obj: Any) -> str:
    return json.dumps(to_dict(obj), ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class ShipAction:
    """One shipping change the platform accepted (from the event log): ``kind`` is
    ``order_shipped`` / ``order_part_shipped`` (a new parcel) or ``order_shipping_changed``
    (a corrected tracking number or an appended parcel)."""

    event_id: int
    time: int
    platform: str
    shop_id: str
    order_id: str
    kind: str
    package: Package


@dataclass(frozen=True)
class PrintRecord:
    """One document a print component was asked to print (``status`` printed | failed)."""

    id: int
    time: float
    component: str  # douyin | kuaishou | wechat | cainiao (the flavour of the component)
    task_id: str
    document_id: str
    printer: str
    preview: bool
    tracking_no: str  # "" when the print data did not open
    shop_id: str
    status: str
    reason: str
    custom: dict[str, Any]  # the custom area (``{templateURL, data}``) sent with the document


class World:
    """The sandbox world. See the module docstring for the guarantees.

    ``path``: SQLite file (created if missing). ``seed``: used only when the file is
    new or on ``reset()``. ``time_compression``: divides every nominal platform timer
    (payment timeout, after-sale deadlines, auto-receipt…); token lifetimes are never
    compressed. ``call_log_cap``: how many API calls the call log keeps (the newest;
    ``None`` or 0 keeps every call — what a test that counts calls wants).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        seed: int = 0,
        clock: Clock | None = None,
        time_compression: float = 1.0,
        call_log_cap: int | None = 20000,
    ) -> None:
        self.path = str(path)
        self.call_log_cap = call_log_cap
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.clock: Clock = clock or SystemClock()
        self.time_compression = float(time_compression)
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self._outbox_listeners: list[Callable[[], None]] = []
        self._settings_version = 0
        self._calls: deque[CallRecord] = deque(maxlen=500)
        self._call_buffer: list[CallRecord] = []
        self._call_lock = threading.Lock()
        self._last_call_flush = time.monotonic()
        conn = self._conn()
        conn.executescript(_SCHEMA)
        if "ok" not in {row[1] for row in conn.execute("PRAGMA table_info(call_log)")}:
            conn.execute("ALTER TABLE call_log ADD COLUMN ok INTEGER NOT NULL DEFAULT 0")  # older files
        with self.write() as c:
            row = c.execute("SELECT value FROM meta WHERE key='seed'").fetchone()
            if row is None:
                c.execute("INSERT INTO meta VALUES ('seed', ?)", (str(seed),))
                c.execute("INSERT INTO meta VALUES ('created_at', ?)", (str(self.now()),))
        self.seed = int(self._meta("seed"))
        self.vault = PiiVault(hashlib.sha256(f"ecbao-sandbox-world:{self.seed}".encode()).digest())

    # ------------------------------------------------------------------ plumbing

    def now(self) -> int:
        """Current world time in integer Unix seconds."""
        return int(self.clock.now())

    def timer(self, name: str) -> int:
        """A nominal platform timer (``DEFAULT_TIMERS``) divided by ``time_compression``."""
        return max(1, int(DEFAULT_TIMERS[name] / self.time_compression))

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
            self._local.depth = 0
            self._local.notify = False
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (re-entrant). Outbox listeners run after the outermost commit."""
        with self._write_lock:
            conn = self._conn()
            if self._local.depth:
                self._local.depth += 1
                try:
                    yield conn
                finally:
                    self._local.depth -= 1
                return
            conn.execute("BEGIN IMMEDIATE")
            self._local.depth = 1
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                self._local.notify = False
                raise
            finally:
                self._local.depth = 0
        if self._local.notify:
            self._local.notify = False
            for listener in list(self._outbox_listeners):
                listener()

    def read(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read-only query and return rows (tuples)."""
        return self._conn().execute(sql, params).fetchall()

    def close(self) -> None:
        """Flush buffered call records and close this thread's connection."""
        self.flush_calls()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def add_outbox_listener(self, fn: Callable[[], None]) -> None:
        """``fn()`` is called (in the writer's thread) after a commit that enqueued pushes."""
        self._outbox_listeners.append(fn)

    def remove_outbox_listener(self, fn: Callable[[], None]) -> None:
        if fn in self._outbox_listeners:
            self._outbox_listeners.remove(fn)

    def _meta(self, key: str, default: str = "") -> str:
        row = self.read("SELECT value FROM meta WHERE key=?", (key,))
        return row[0][0] if row else default

    def reset(self, seed: int | None = None) -> None:
        """Empty every table (the seed is kept unless a new one is given)."""
        seed = self.seed if seed is None else seed
        with self._call_lock:
            self._call_buffer.clear()
            self._calls.clear()
        with self.write() as c:
            for table in _TABLES:
                c.execute(f"DELETE FROM {table}")
            c.execute("DELETE FROM sqlite_sequence")
            c.execute("INSERT INTO meta VALUES ('seed', ?)", (str(seed),))
            c.execute("INSERT INTO meta VALUES ('created_at', ?)", (str(self.now()),))
        self.seed = seed
        self.vault = PiiVault(hashlib.sha256(f"ecbao-sandbox-world:{self.seed}".encode()).digest())
        self._settings_version += 1

    def is_empty(self) -> bool:
        return not self.read("SELECT 1 FROM apps LIMIT 1")

    # ------------------------------------------------------------------ ids

    def new_id(self, platform: str, kind: str, count: int = 1) -> list[str]:
        """Allocate ``count`` consecutive-ish ids shaped like ``platform``'s ``kind`` ids."""
        prefix, length = ID_SHAPES.get((platform, kind), ("1", 19))
        digits = length - len(prefix)
        shape = random.Random(f"{self.seed}:{platform}:{kind}")
        low = 10 ** (digits - 1)
        base = shape.randrange(low, low * 5)
        stride = shape.randrange(3, 37)
        with self.write() as c:
            name = f"{platform}:{kind}"
            row = c.execute("SELECT value FROM counters WHERE name=?", (name,)).fetchone()
            start = row[0] if row else 0
            c.execute("INSERT OR REPLACE INTO counters VALUES (?, ?)", (name, start + count))
        return [f"{prefix}{base + (start + i) * stride:0{digits}d}" for i in range(count)]

    def _counter(self, name: str) -> int:
        with self.write() as c:
            row = c.execute("SELECT value FROM counters WHERE name=?", (name,)).fetchone()
            value = (row[0] if row else 0) + 1
            c.execute("INSERT OR REPLACE INTO counters VALUES (?, ?)", (name, value))
        return value

    def new_tracking_no(self, carrier: str) -> str:
        """A tracking number in the carrier's usual shape (deterministic)."""
        _, prefix, digits = CARRIERS.get(carrier, ("", "9", 12))
        n = self._counter(f"tracking:{carrier}")
        h = int(hashlib.sha256(f"{self.seed}:{carrier}:{n}".encode()).hexdigest(), 16)
        return f"{prefix}{h % 10**digits:0{digits}d}"

    def new_secret(self, label: str, length: int = 32) -> str:
        """A deterministic hex/uuid-ish secret for seeded credentials."""
        n = self._counter(f"secret:{label}")
        return hashlib.sha256(f"{self.seed}:{label}:{n}".encode()).hexdigest()[:length]

    # ------------------------------------------------------------------ settings

    def set_setting(self, key: str, value: Any) -> None:
        with self.write() as c:
            c.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (key, json.dumps(value)))
            self._bump_settings(c)

    def delete_settings(self, prefix: str) -> None:
        with self.write() as c:
            c.execute("DELETE FROM settings WHERE key LIKE ?", (prefix + "%",))
            self._bump_settings(c)

    def get_setting(self, key: str, default: Any = None) -> Any:
        row = self.read("SELECT value FROM settings WHERE key=?", (key,))
        return json.loads(row[0][0]) if row else default

    def settings(self, prefix: str = "") -> dict[str, Any]:
        rows = self.read("SELECT key, value FROM settings WHERE key LIKE ? ORDER BY key", (prefix + "%",))
        return {k: json.loads(v) for k, v in rows}

    def _bump_settings(self, c: sqlite3.Connection) -> None:
        self._settings_version += 1
        row = c.execute("SELECT value FROM meta WHERE key='settings_version'").fetchone()
        c.execute(
            "INSERT OR REPLACE INTO meta VALUES ('settings_version', ?)",
            (str(int(row[0]) + 1 if row else 1),),
        )

    def settings_version(self) -> tuple[int, str]:
        """Changes whenever settings change, in this process or another one."""
        return self._settings_version, self._meta("settings_version", "0")

    # ------------------------------------------------------------------ apps, shops, auth

    def create_app(self, app: App) -> App:
        app.created_at = app.created_at or self.now()
        with self.write() as c:
            c.execute("INSERT INTO apps VALUES (?, ?, ?)", (app.app_key, app.platform, _j(app)))
        return app

    def get_app(self, app_key: str) -> App | None:
        row = self.read("SELECT doc FROM apps WHERE app_key=?", (app_key,))
        return from_dict(App, json.loads(row[0][0])) if row else None

    def apps(self, platform: str | None = None) -> list[App]:
        rows = self.read(
            "SELECT doc FROM apps WHERE ?='' OR platform=? ORDER BY rowid", (platform or "", platform or "")
        )
        return [from_dict(App, json.loads(r[0])) for r in rows]

    def update_app(self, app_key: str, **changes: Any) -> App:
        """Change app settings, e.g. ``webhook_url``, ``redirect_uri``, ``permissions``."""
        with self.write() as c:
            app = self.get_app(app_key)
            if app is None:
                raise NotFound("app not found", app_key=app_key)
            for key, value in changes.items():
                if not hasattr(app, key):
                    raise InvalidArgument(f"unknown app field {key}")
                setattr(app, key, value)
            c.execute("UPDATE apps SET doc=? WHERE app_key=?", (_j(app), app_key))
        return app

    def create_shop(self, shop: Shop) -> Shop:
        shop.created_at = shop.created_at or self.now()
        with self.write() as c:
            c.execute("INSERT INTO shops VALUES (?, ?, ?)", (shop.shop_id, shop.platform, _j(shop)))
        return shop

    def get_shop(self, shop_id: str) -> Shop | None:
        row = self.read("SELECT doc FROM shops WHERE shop_id=?", (shop_id,))
        return from_dict(Shop, json.loads(row[0][0])) if row else None

    def shops(self, platform: str | None = None) -> list[Shop]:
        rows = self.read(
            "SELECT doc FROM shops WHERE ?='' OR platform=? ORDER BY rowid", (platform or "", platform or "")
        )
        return [from_dict(Shop, json.loads(r[0])) for r in rows]

    def update_shop(self, shop_id: str, **changes: Any) -> Shop:
        """Change shop settings, e.g. ``decrypt_quota_per_day``."""
        with self.write() as c:
            shop = self._shop(shop_id)
            for key, value in changes.items():
                if not hasattr(shop, key):
                    raise InvalidArgument(f"unknown shop field {key}")
                setattr(shop, key, value)
            c.execute("UPDATE shops SET doc=? WHERE shop_id=?", (_j(shop), shop_id))
        return shop

    def authorize(self, app_key: str, shop_id: str) -> Authorization:
        """The merchant of ``shop_id`` (re)grants ``app_key`` access."""
        now = self.now()
        with self.write() as c:
            c.execute(
                "INSERT INTO authorizations VALUES (?, ?, 'active', ?, 0) "
                "ON CONFLICT(app_key, shop_id) DO UPDATE SET status='active', revoked_at=0",
                (app_key, shop_id, now),
            )
        return Authorization(app_key, shop_id, "active", now)

    def revoke_authorization(self, app_key: str, shop_id: str) -> None:
        """The merchant withdraws the app's access; its tokens stop working. The first
        revocation of an active authorisation emits ``APP_UNAUTHORIZED`` for the app."""
        with self.write() as c:
            cur = c.execute(
                "UPDATE authorizations SET status='revoked', revoked_at=? "
                "WHERE app_key=? AND shop_id=? AND status='active'",
                (self.now(), app_key, shop_id),
            )
            if cur.rowcount:
                self.emit_app_event(EventKind.APP_UNAUTHORIZED, app_key, shop_id=shop_id)

    def authorization(self, app_key: str, shop_id: str) -> Authorization | None:
        row = self.read(
            "SELECT app_key, shop_id, status, created_at, revoked_at FROM authorizations "
            "WHERE app_key=? AND shop_id=?",
            (app_key, shop_id),
        )
        return Authorization(*row[0]) if row else None

    def authorized_apps(self, shop_id: str) -> list[App]:
        rows = self.read(
            "SELECT a.doc FROM apps a JOIN authorizations z ON z.app_key=a.app_key "
            "WHERE z.shop_id=? AND z.status='active' ORDER BY a.rowid",
            (shop_id,),
        )
        return [from_dict(App, json.loads(r[0])) for r in rows]

    # ------------------------------------------------------------------ OAuth codes and tokens

    def create_oauth_code(
        self, app_key: str, shop_id: str, state: str = "", ttl: int | None = None
    ) -> OAuthCode:
        """Authorise the shop for the app and mint a one-time code (default 10 min)."""
        now = self.now()
        code = OAuthCode(
            code=self.new_secret(f"code:{app_key}", 32),
            app_key=app_key,
            shop_id=shop_id,
            state=state,
            created_at=now,
            expires_at=now + (ttl if ttl is not None else DEFAULT_TIMERS["oauth_code"]),
        )
        with self.write() as c:
            self.authorize(app_key, shop_id)
            c.execute("INSERT INTO oauth_codes VALUES (?, ?)", (code.code, _j(code)))
        return code

    def consume_oauth_code(self, code: str, app_key: str) -> OAuthCode:
        """Mark a code used. Raises NotFound (unknown / other app / used) or Conflict (expired)."""
        with self.write() as c:
            row = c.execute("SELECT doc FROM oauth_codes WHERE code=?", (code,)).fetchone()
            if row is None:
                raise NotFound("code not found")
            oc = from_dict(OAuthCode, json.loads(row[0]))
            if oc.app_key != app_key or oc.used_at:
                raise NotFound("code not valid for this app")
            if self.now() >= oc.expires_at:
                raise Conflict("code expired")
            oc.used_at = self.now()
            c.execute("UPDATE oauth_codes SET doc=? WHERE code=?", (_j(oc), code))
        return oc

    def issue_token(self, app_key: str, shop_id: str, *, access_ttl: int, refresh_ttl: int) -> Token:
        now = self.now()
        token = Token(
            access_token=self.new_secret(f"access:{app_key}", 32),
            refresh_token=self.new_secret(f"refresh:{app_key}", 32),
            app_key=app_key,
            shop_id=shop_id,
            created_at=now,
            access_expires_at=now + access_ttl,
            refresh_expires_at=now + refresh_ttl,
        )
        self.save_token(token)
        return token

    def save_token(self, token: Token) -> None:
        with self.write() as c:
            c.execute(
                "INSERT OR REPLACE INTO tokens VALUES (?, ?, ?, ?, ?)",
                (token.access_token, token.refresh_token, token.app_key, token.shop_id, _j(token)),
            )

    def get_token(self, access_token: str) -> Token | None:
        row = self.read("SELECT doc FROM tokens WHERE access_token=?", (access_token,))
        return from_dict(Token, json.loads(row[0][0])) if row else None

    def get_token_by_refresh(self, refresh_token: str) -> Token | None:
        row = self.read("SELECT doc FROM tokens WHERE refresh_token=?", (refresh_token,))
        return from_dict(Token, json.loads(row[0][0])) if row else None

    def tokens(self, *, app_key: str | None = None, shop_id: str | None = None) -> list[Token]:
        rows = self.read(
            "SELECT doc FROM tokens WHERE (?='' OR app_key=?) AND (?='' OR shop_id=?) ORDER BY rowid",
            (app_key or "", app_key or "", shop_id or "", shop_id or ""),
        )
        return [from_dict(Token, json.loads(r[0])) for r in rows]

    def revoke_tokens(
        self, *, platform: str | None = None, app_key: str | None = None, shop_id: str | None = None
    ) -> int:
        """Invalidate matching tokens now (a fault: "the platform revoked the token")."""
        now = self.now()
        count = 0
        with self.write() as c:
            for token in self.tokens(app_key=app_key, shop_id=shop_id):
                if token.revoked_at:
                    continue
                if platform:
                    app = self.get_app(token.app_key)
                    if app is None or app.platform != platform:
                        continue
                token.revoked_at = now
                c.execute("UPDATE tokens SET doc=? WHERE access_token=?", (_j(token), token.access_token))
                count += 1
        return count

    # ------------------------------------------------------------------ products and SKUs

    def create_product(
        self,
        *,
        shop_id: str,
        title: str,
        skus: list[dict[str, Any]],
        category: str = "",
        pic: str = "",
        status: str = "online",
        out_product_id: str = "",
    ) -> Product:
        """Create a listing with SKUs. Each sku dict: ``code, spec, price_fen, stock[, out_sku_id]``."""
        shop = self._shop(shop_id)
        if not skus:
            raise InvalidArgument("a product needs at least one SKU")
        now = self.now()
        with self.write() as c:
            (product_id,) = self.new_id(shop.platform, "product")
            sku_ids = self.new_id(shop.platform, "sku", len(skus))
            product = Product(
                product_id=product_id,
                shop_id=shop_id,
                platform=shop.platform,
                title=title,
                category=category,
                pic=pic or f"https://sandbox.invalid/img/{product_id}.jpg",
                status=status,
                out_product_id=out_product_id,
                create_time=now,
                update_time=now,
            )
            for sku_id, spec in zip(sku_ids, skus, strict=True):
                if int(spec.get("stock", 0)) < 0 or int(spec.get("price_fen", 0)) < 0:
                    raise InvalidArgument("stock and price must not be negative")
                sku = Sku(
                    sku_id=sku_id,
                    product_id=product_id,
                    shop_id=shop_id,
                    code=str(spec.get("code", "")),
                    spec=[list(x) for x in spec.get("spec", [])],
                    price_fen=int(spec["price_fen"]),
                    stock=int(spec.get("stock", 0)),
                    out_sku_id=str(spec.get("out_sku_id", "")),
                    create_time=now,
                    update_time=now,
                )
                product.skus.append(sku)
                c.execute(
                    "INSERT INTO skus VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        sku.sku_id,
                        product_id,
                        shop_id,
                        sku.code,
                        sku.stock,
                        sku.price_fen,
                        json.dumps(sku.spec, ensure_ascii=False),
                        sku.out_sku_id,
                        now,
                        now,
                    ),
                )
            self._save_product_row(c, product)
            self._emit(c, EventKind.PRODUCT_CHANGED, shop, data={"product_id": product_id})
        return product

    def _save_product_row(self, c: sqlite3.Connection, product: Product) -> None:
        head = to_dict(product)
        head["skus"] = []
        c.execute(
            "INSERT OR REPLACE INTO products VALUES (?, ?, ?, ?, ?, ?)",
            (
                product.product_id,
                product.shop_id,
                product.platform,
                product.update_time,
                product.create_time,
                json.dumps(head, ensure_ascii=False),
            ),
        )

    @staticmethod
    def _sku_from_row(row: tuple[Any, ...]) -> Sku:
        sku_id, product_id, shop_id, code, stock, price_fen, spec, out_sku_id, create_time, update_time = row
        return Sku(
            sku_id,
            product_id,
            shop_id,
            code,
            json.loads(spec),
            price_fen,
            stock,
            out_sku_id,
            create_time,
            update_time,
        )

    def get_product(self, product_id: str) -> Product | None:
        row = self.read("SELECT doc FROM products WHERE product_id=?", (product_id,))
        if not row:
            return None
        product = from_dict(Product, json.loads(row[0][0]))
        product.skus = [
            self._sku_from_row(r)
            for r in self.read("SELECT * FROM skus WHERE product_id=? ORDER BY rowid", (product_id,))
        ]
        return product

    def products(
        self,
        shop_id: str,
        *,
        status: str | None = None,
        update_start: int | None = None,
        update_end: int | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> tuple[int, list[Product]]:
        """Listings of a shop, newest update first, with the total count."""
        where = ["shop_id=?"]
        params: list[Any] = [shop_id]
        if update_start is not None:
            where.append("update_time>=?")
            params.append(update_start)
        if update_end is not None:
            where.append("update_time<=?")
            params.append(update_end)
        clause = " AND ".join(where)
        rows = self.read(
            f"SELECT product_id FROM products WHERE {clause} ORDER BY update_time DESC, product_id", params
        )
        products = [
            p for p in (self.get_product(r[0]) for r in rows) if p and (status is None or p.status == status)
        ]
        return len(products), products[offset : offset + limit]

    def get_sku(self, sku_id: str) -> Sku | None:
        row = self.read("SELECT * FROM skus WHERE sku_id=?", (sku_id,))
        return self._sku_from_row(row[0]) if row else None

    def skus_by_code(self, shop_id: str, code: str) -> list[Sku]:
        rows = self.read("SELECT * FROM skus WHERE shop_id=? AND code=? ORDER BY rowid", (shop_id, code))
        return [self._sku_from_row(r) for r in rows]

    def skus(self, shop_id: str | None = None) -> list[Sku]:
        rows = self.read(
            "SELECT * FROM skus WHERE ?='' OR shop_id=? ORDER BY rowid", (shop_id or "", shop_id or "")
        )
        return [self._sku_from_row(r) for r in rows]

    def set_stock(self, sku_id: str, stock: int) -> Sku:
        """Absolute stock write (as a merchant/ERP sync does)."""
        if stock < 0:
            raise InvalidArgument("stock must not be negative")
        with self.write() as c:
            if (
                c.execute(
                    "UPDATE skus SET stock=?, update_time=? WHERE sku_id=?", (stock, self.now(), sku_id)
                ).rowcount
                == 0
            ):
                raise NotFound("sku not found", sku_id=sku_id)
        return self.get_sku(sku_id)  # type: ignore[return-value]

    def adjust_stock(self, sku_id: str, delta: int) -> Sku:
        """Relative stock change; refuses to go below zero."""
        with self.write() as c:
            row = c.execute("SELECT stock FROM skus WHERE sku_id=?", (sku_id,)).fetchone()
            if row is None:
                raise NotFound("sku not found", sku_id=sku_id)
            if row[0] + delta < 0:
                raise OutOfStock("stock would become negative", sku_id=sku_id, stock=row[0])
            c.execute(
                "UPDATE skus SET stock=stock+?, update_time=? WHERE sku_id=?", (delta, self.now(), sku_id)
            )
        return self.get_sku(sku_id)  # type: ignore[return-value]

    def set_sku_code(self, sku_id: str, code: str) -> None:
        with self.write() as c:
            c.execute("UPDATE skus SET code=?, update_time=? WHERE sku_id=?", (code, self.now(), sku_id))

    # ------------------------------------------------------------------ buyers

    def create_buyer(self, nickname: str, receiver: Receiver) -> Buyer:
        with self.write() as c:
            buyer_id = c.execute("SELECT COALESCE(MAX(buyer_id), 0) + 1 FROM buyers").fetchone()[0]
            buyer = Buyer(buyer_id, nickname, receiver)
            c.execute("INSERT INTO buyers VALUES (?, ?)", (buyer_id, _j(buyer)))
        return buyer

    def get_buyer(self, buyer_id: int) -> Buyer | None:
        row = self.read("SELECT doc FROM buyers WHERE buyer_id=?", (buyer_id,))
        return from_dict(Buyer, json.loads(row[0][0])) if row else None

    def buyer_count(self) -> int:
        return self.read("SELECT COUNT(*) FROM buyers")[0][0]

    def buyer_open_id(self, platform: str, buyer_id: int) -> str:
        """A stable per-platform buyer id derived from the world seed."""
        key = (self.seed, platform, buyer_id)
        found = _OPEN_IDS.get(key)
        if found is None:
            found = _OPEN_IDS[key] = hashlib.sha256(
                f"{self.seed}:{platform}:buyer:{buyer_id}".encode()
            ).hexdigest()[:24]
        return found

    # ------------------------------------------------------------------ orders

    def _shop(self, shop_id: str) -> Shop:
        shop = self.get_shop(shop_id)
        if shop is None:
            raise NotFound("shop not found", shop_id=shop_id)
        return shop

    def get_order(self, order_id: str) -> Order | None:
        row = self.read("SELECT doc FROM orders WHERE order_id=?", (order_id,))
        return from_dict(Order, json.loads(row[0][0])) if row else None

    def order_id_of_line(self, line_id: str) -> str | None:
        row = self.read("SELECT order_id FROM order_lines WHERE line_id=?", (line_id,))
        return row[0][0] if row else None

    def _load_order(self, c: sqlite3.Connection, order_id: str) -> Order:
        row = c.execute("SELECT doc FROM orders WHERE order_id=?", (order_id,)).fetchone()
        if row is None:
            raise NotFound("order not found", order_id=order_id)
        return from_dict(Order, json.loads(row[0]))

    def _save_order(self, c: sqlite3.Connection, order: Order, *, touch: bool = True) -> None:
        if touch:
            order.update_time = max(self.now(), order.update_time)
        c.execute(
            "INSERT OR REPLACE INTO orders VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                order.order_id,
                order.platform,
                order.shop_id,
                order.status,
                order.create_time,
                order.update_time,
                _j(order),
            ),
        )

    def query_orders(
        self,
        shop_id: str,
        *,
        update_start: int | None = None,
        update_end: int | None = None,
        create_start: int | None = None,
        create_end: int | None = None,
        statuses: list[str] | None = None,
        order_by: str = "update_time",
        ascending: bool = True,
        offset: int = 0,
        limit: int = 100,
    ) -> tuple[int, list[Order]]:
        """Orders of a shop within inclusive time ranges, with the total count.

        Sorted by ``order_by`` (update_time or create_time) then ``order_id`` – the
        tie-break keeps offset paging stable. Count and page come from one snapshot.
        """
        if order_by not in ("update_time", "create_time"):
            raise InvalidArgument("order_by must be update_time or create_time")
        where = ["shop_id=?"]
        params: list[Any] = [shop_id]
        for column, op, value in (
            ("update_time", ">=", update_start),
            ("update_time", "<=", update_end),
            ("create_time", ">=", create_start),
            ("create_time", "<=", create_end),
        ):
            if value is not None:
                where.append(f"{column}{op}?")
                params.append(value)
        if statuses:
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            params.extend(statuses)
        clause = " AND ".join(where)
        direction = "ASC" if ascending else "DESC"
        conn = self._conn()
        own_tx = not self._local.depth
        if own_tx:
            conn.execute("BEGIN")
        try:
            total = conn.execute(f"SELECT COUNT(*) FROM orders WHERE {clause}", params).fetchone()[0]
            rows = conn.execute(
                f"SELECT doc FROM orders WHERE {clause} ORDER BY {order_by} {direction}, order_id {direction} "
                "LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
        finally:
            if own_tx:
                conn.execute("COMMIT")
        return total, [from_dict(Order, json.loads(r[0])) for r in rows]

    def orders(self, shop_id: str | None = None) -> list[Order]:
        rows = self.read(
            "SELECT doc FROM orders WHERE ?='' OR shop_id=? ORDER BY create_time, order_id",
            (shop_id or "", shop_id or ""),
        )
        return [from_dict(Order, json.loads(r[0])) for r in rows]

    def create_order(
        self,
        *,
        shop_id: str,
        buyer_id: int,
        items: list[OrderItemSpec],
        receiver: Receiver | None = None,
        buyer_words: str = "",
        post_fen: int = 0,
        pay: bool = False,
        stock_reduce: str = "order",
    ) -> Order:
        """A buyer places an order (and optionally pays at once).

        Stock is reduced at creation when ``stock_reduce == "order"`` (else at payment);
        raises ``OutOfStock`` when a SKU cannot cover the quantity.
        """
        shop = self._shop(shop_id)
        buyer = self.get_buyer(buyer_id)
        if buyer is None:
            raise NotFound("buyer not found", buyer_id=buyer_id)
        if not items:
            raise InvalidArgument("an order needs items")
        now = self.now()
        with self.write() as c:
            ids = self.new_id(shop.platform, "order", len(items) + 1)
            lines: list[OrderLine] = []
            for line_id, item in zip(ids[1:], items, strict=True):
                row = c.execute(
                    "SELECT * FROM skus WHERE sku_id=? AND shop_id=?", (item.sku_id, shop_id)
                ).fetchone()
                if row is None:
                    raise NotFound("sku not in this shop", sku_id=item.sku_id)
                sku = self._sku_from_row(row)
                product = self.get_product(sku.product_id)
                assert product is not None
                if item.qty <= 0:
                    raise InvalidArgument("qty must be positive")
                is_gift = item.gift_of is not None
                discount = (
                    sku.price_fen * item.qty if is_gift else min(item.discount_fen, sku.price_fen * item.qty)
                )
                lines.append(
                    OrderLine(
                        line_id=line_id,
                        product_id=sku.product_id,
                        sku_id=sku.sku_id,
                        code=sku.code,
                        title=product.title,
                        spec=sku.spec,
                        pic=product.pic,
                        qty=item.qty,
                        unit_price_fen=sku.price_fen,
                        discount_fen=discount,
                        is_gift=is_gift,
                        master_line_id=ids[1 + item.gift_of] if is_gift else "",
                    )
                )
            if lines:
                lines[0].post_fen = post_fen
            order = Order(
                order_id=ids[0],
                platform=shop.platform,
                shop_id=shop_id,
                buyer_id=buyer_id,
                status=OrderStatus.UNPAID,
                create_time=now,
                update_time=now,
                receiver=receiver or buyer.receiver,
                lines=lines,
                expire_time=now + self.timer("pay_timeout"),
                buyer_words=buyer_words,
                post_fen=post_fen,
                stock_reduce=stock_reduce,
            )
            if stock_reduce == "order":
                self._reduce_stock(c, order)
            for line in lines:
                c.execute("INSERT INTO order_lines VALUES (?, ?)", (line.line_id, order.order_id))
            self._save_order(c, order)
            self._emit(c, EventKind.ORDER_CREATED, shop, order=order)
            if pay:
                order = self.pay_order(order.order_id)
        return order

    def _reduce_stock(self, c: sqlite3.Connection, order: Order) -> None:
        for line in order.lines:
            cur = c.execute("SELECT stock FROM skus WHERE sku_id=?", (line.sku_id,)).fetchone()
            if cur is None or cur[0] < line.qty:
                raise OutOfStock("not enough stock", sku_id=line.sku_id, stock=cur[0] if cur else 0)
            c.execute("UPDATE skus SET stock=stock-? WHERE sku_id=?", (line.qty, line.sku_id))
        order.stock_reduced = True

    def _restore_stock(
        self, c: sqlite3.Connection, order: Order, line: OrderLine | None = None, qty: int | None = None
    ) -> None:
        if not order.stock_reduced:
            return
        for ln in [line] if line else order.lines:
            c.execute(
                "UPDATE skus SET stock=stock+? WHERE sku_id=?",
                (qty if qty is not None else ln.qty, ln.sku_id),
            )

    def pay_order(self, order_id: str) -> Order:
        """The buyer pays. Unpaid orders past ``expire_time`` can no longer be paid."""
        with self.write() as c:
            order = self._load_order(c, order_id)
            if order.status != OrderStatus.UNPAID:
                raise Conflict("order is not unpaid", status=order.status)
            now = self.now()
            if order.stock_reduce == "pay":
                self._reduce_stock(c, order)
            order.status = OrderStatus.PAID
            order.pay_time = now
            order.payment_no = f"42000{self._counter('payment_no'):023d}"
            order.promise_ship_time = now + self.timer("promise_ship")
            self._save_order(c, order)
            self._emit(c, EventKind.ORDER_PAID, self._shop(order.shop_id), order=order)
        return order

    def cancel_order(self, order_id: str, *, reason: str, kind: str = "buyer") -> Order:
        """Close an order before shipment (unpaid timeout, buyer or platform cancel). Restores stock."""
        with self.write() as c:
            order = self._load_order(c, order_id)
            if order.status not in (OrderStatus.UNPAID, OrderStatus.PAID) or any(
                ln.shipped_qty for ln in order.lines
            ):
                raise Conflict("order can no longer be cancelled", status=order.status)
            self._restore_stock(c, order)
            order.stock_reduced = False
            order.status = OrderStatus.CANCELLED
            order.cancel_time = self.now()
            order.cancel_reason = reason
            order.cancel_kind = kind
            self._save_order(c, order)
            self._emit(c, EventKind.ORDER_CANCELLED, self._shop(order.shop_id), order=order)
        return order

    def change_address(self, order_id: str, receiver: Receiver) -> Order:
        """The buyer changes the delivery address (only before shipment)."""
        with self.write() as c:
            order = self._load_order(c, order_id)
            if order.status not in (OrderStatus.UNPAID, OrderStatus.PAID) or any(
                ln.shipped_qty for ln in order.lines
            ):
                raise Conflict("address can only change before shipment", status=order.status)
            order.receiver = receiver
            order.address_changes += 1
            self._save_order(c, order)
            self._emit(c, EventKind.ORDER_ADDRESS_CHANGED, self._shop(order.shop_id), order=order)
        return order

    def set_seller_remark(self, order_id: str, words: str, flag: int = 0) -> Order:
        with self.write() as c:
            order = self._load_order(c, order_id)
            order.seller_words = words
            order.seller_flag = flag
            self._save_order(c, order)
            self._emit(c, EventKind.ORDER_REMARK, self._shop(order.shop_id), order=order)
        return order

    def ship_order(
        self, order_id: str, parcels: list[ShipmentSpec], *, reject_refund: bool = False
    ) -> list[Package]:
        """The merchant ships one or more parcels (whole order, partial, or multi-package).

        A line with an open refund-before-shipment application blocks shipping unless
        ``reject_refund`` (the application is then rejected). Raises ``Conflict`` /
        ``InvalidArgument`` for anything the platform would refuse.
        """
        if not parcels:
            raise InvalidArgument("nothing to ship")
        with self.write() as c:
            order = self._load_order(c, order_id)
            if order.status not in (OrderStatus.PAID, OrderStatus.PART_SHIPPED):
                raise Conflict("order is not waiting for shipment", status=order.status)
            shop = self._shop(order.shop_id)
            now = self.now()
            planned: dict[str, int] = {}
            resolved: list[tuple[ShipmentSpec, list[PackageItem]]] = []
            for parcel in parcels:
                if parcel.carrier not in CARRIERS:
                    raise InvalidArgument("unknown carrier", carrier=parcel.carrier)
                if not parcel.tracking_no:
                    raise InvalidArgument("tracking number required")
                if parcel.items is None:
                    items = [
                        PackageItem(
                            ln.line_id, ln.qty - ln.refunded_qty - ln.shipped_qty - planned.get(ln.line_id, 0)
                        )
                        for ln in order.lines
                    ]
                    items = [it for it in items if it.qty > 0]
                else:
                    items = [PackageItem(line_id, qty) for line_id, qty in parcel.items]
                if not items:
                    raise InvalidArgument("nothing left to ship")
                for it in items:
                    try:
                        line = order.line(it.line_id)
                    except KeyError:
                        raise InvalidArgument("line not in order", line_id=it.line_id) from None
                    if it.qty <= 0:
                        raise InvalidArgument("qty must be positive", line_id=it.line_id)
                    left = line.qty - line.refunded_qty - line.shipped_qty - planned.get(it.line_id, 0)
                    if it.qty > left:
                        raise InvalidArgument("more than left to ship", line_id=it.line_id, left=left)
                    planned[it.line_id] = planned.get(it.line_id, 0) + it.qty
                resolved.append((parcel, items))
            # Open refund-before-shipment applications block shipping of their lines.
            for line_id in planned:
                line = order.line(line_id)
                if (
                    line.aftersale_id
                    and line.aftersale_type == AfterSaleType.REFUND_UNSHIPPED
                    and AfterSaleStatus(line.aftersale_status).is_open
                ):
                    if not reject_refund:
                        raise Conflict(
                            "line has a pending refund", line_id=line_id, aftersale_id=line.aftersale_id
                        )
                    self._reject_aftersale_in(c, order, line.aftersale_id, "商家拒绝退款并发货")
            packages = []
            for (parcel, items), package_id in zip(
                resolved, self.new_id(shop.platform, "package", len(resolved)), strict=True
            ):
                packages.append(Package(package_id, parcel.carrier, parcel.tracking_no, now, items))
            for line_id, qty in planned.items():
                order.line(line_id).shipped_qty += qty
            order.packages.extend(packages)
            self._mark_waybills_shipped(c, [p.tracking_no for p in packages])
            self._start_traces(c, order, packages)
            order.ship_time = order.ship_time or now
            self._recompute_shipping_status(order)
            self._save_order(c, order)
            kind = (
                EventKind.ORDER_SHIPPED
                if order.status == OrderStatus.SHIPPED
                else EventKind.ORDER_PART_SHIPPED
            )
            for package in packages:
                self._emit(c, kind, shop, order=order, data={"package": to_dict(package)})
        return packages

    def _recompute_shipping_status(self, order: Order) -> None:
        if order.status not in (OrderStatus.PAID, OrderStatus.PART_SHIPPED):
            return
        remaining = [ln for ln in order.lines if ln.qty - ln.refunded_qty > 0]
        if not remaining:
            return
        if all(ln.shipped_qty >= ln.qty - ln.refunded_qty for ln in remaining):
            order.status = OrderStatus.SHIPPED
        elif any(ln.shipped_qty for ln in order.lines):
            order.status = OrderStatus.PART_SHIPPED

    def edit_shipping(self, order_id: str, *, carrier: str, tracking_no: str, package_id: str = "") -> Order:
        """Correct carrier/tracking number of a package (the first one when no id is given)."""
        if carrier not in CARRIERS:
            raise InvalidArgument("unknown carrier", carrier=carrier)
        with self.write() as c:
            order = self._load_order(c, order_id)
            if not order.packages:
                raise Conflict("order has not shipped")
            package = (
                next((p for p in order.packages if p.package_id == package_id), None)
                if package_id
                else order.packages[0]
            )
            if package is None:
                raise NotFound("package not found", package_id=package_id)
            package.carrier, package.tracking_no = carrier, tracking_no
            self._mark_waybills_shipped(c, [tracking_no])
            self._start_traces(c, order, [package])
            self._save_order(c, order)
            self._emit(
                c,
                EventKind.ORDER_SHIPPING_CHANGED,
                self._shop(order.shop_id),
                order=order,
                data={"package": to_dict(package)},
            )
        return order

    def append_package(self, order_id: str, line_id: str, *, carrier: str, tracking_no: str) -> Package:
        """An extra parcel without goods for a line that has shipped (Kuaishou "追加包裹").

        The package records the line with quantity 0, so shipped quantities do not change.
        """
        if carrier not in CARRIERS:
            raise InvalidArgument("unknown carrier", carrier=carrier)
        if not tracking_no:
            raise InvalidArgument("tracking number required")
        with self.write() as c:
            order = self._load_order(c, order_id)
            try:
                line = order.line(line_id)
            except KeyError:
                raise InvalidArgument("line not in order", line_id=line_id) from None
            if not line.shipped_qty:
                raise Conflict("line has not shipped", line_id=line_id)
            shop = self._shop(order.shop_id)
            (package_id,) = self.new_id(shop.platform, "package")
            package = Package(package_id, carrier, tracking_no, self.now(), [PackageItem(line_id, 0)])
            order.packages.append(package)
            self._mark_waybills_shipped(c, [tracking_no])
            self._start_traces(c, order, [package])
            self._save_order(c, order)
            self._emit(
                c, EventKind.ORDER_SHIPPING_CHANGED, shop, order=order, data={"package": to_dict(package)}
            )
        return package

    def receive_order(self, order_id: str) -> Order:
        """The buyer (or the platform's auto-confirm) confirms receipt."""
        with self.write() as c:
            order = self._load_order(c, order_id)
            if order.status != OrderStatus.SHIPPED:
                raise Conflict("order is not shipped", status=order.status)
            order.status = OrderStatus.RECEIVED
            order.receive_time = self.now()
            self._save_order(c, order)
            self._emit(c, EventKind.ORDER_RECEIVED, self._shop(order.shop_id), order=order)
        return order

    def complete_order(self, order_id: str) -> Order:
        """After the after-sale window: the order completes and its lines are settled."""
        with self.write() as c:
            order = self._load_order(c, order_id)
            if order.status != OrderStatus.RECEIVED:
                raise Conflict("order is not received", status=order.status)
            if any(
                ln.aftersale_status and AfterSaleStatus(ln.aftersale_status).is_open for ln in order.lines
            ):
                raise Conflict("order has an open after-sale")
            order.status = OrderStatus.COMPLETED
            order.complete_time = self.now()
            self._save_order(c, order)
            for line in order.lines:
                self._settle_line(c, order, line)
            self._emit(c, EventKind.ORDER_COMPLETED, self._shop(order.shop_id), order=order)
        return order

    def _settle_line(
        self, c: sqlite3.Connection, order: Order, line: OrderLine, *, refund_fen: int = 0
    ) -> None:
        now = self.now()
        if refund_fen:
            fee = -(refund_fen * SERVICE_FEE_PERMILLE // 1000)
            settle = SettlementLine(
                settle_id="", platform=order.platform, shop_id=order.shop_id, order_id=order.order_id,
                line_id=line.line_id, product_id=line.product_id, settle_time=now, order_time=order.create_time,
                goods_count=0, total_fen=-refund_fen, goods_fen=0, post_fen=0, shop_coupon_fen=0,
                platform_coupon_fen=0, refund_before_settle_fen=0, real_pay_fen=-refund_fen, commission_fen=0,
                service_fee_fen=fee, settle_fen=-refund_fen - fee, trade_type="refund_after_settle",
                remark="结算后退款",
            )  # fmt: skip
        else:
            paid = line.pay_fen
            refunded = line.refunded_fen
            fee = max(0, (paid - refunded) * SERVICE_FEE_PERMILLE // 1000)
            settle = SettlementLine(
                settle_id="", platform=order.platform, shop_id=order.shop_id, order_id=order.order_id,
                line_id=line.line_id, product_id=line.product_id, settle_time=now, order_time=order.create_time,
                goods_count=line.qty, total_fen=paid, goods_fen=line.sum_fen, post_fen=line.post_fen,
                shop_coupon_fen=line.discount_fen, platform_coupon_fen=0, refund_before_settle_fen=refunded,
                real_pay_fen=paid, commission_fen=0, service_fee_fen=fee, settle_fen=paid - refunded - fee,
            )  # fmt: skip
        settle.settle_id = f"{self._counter('settle'):019d}"
        c.execute(
            "INSERT INTO settlements (shop_id, settle_time, order_time, line_id, doc) VALUES (?, ?, ?, ?, ?)",
            (order.shop_id, now, order.create_time, line.line_id, _j(settle)),
        )

    def settlements(
        self,
        shop_id: str,
        *,
        start: int,
        end: int,
        time_field: str = "settle_time",
        after_id: int = 0,
        limit: int = 100,
        line_ids: list[str] | None = None,
    ) -> list[tuple[int, SettlementLine]]:
        """Settlement lines in ``[start, end]`` ordered by (time, id); ``after_id`` continues a cursor."""
        if time_field not in ("settle_time", "order_time"):
            raise InvalidArgument("bad time field")
        sql = f"SELECT id, doc FROM settlements WHERE shop_id=? AND {time_field}>=? AND {time_field}<=? AND id>? "
        params: list[Any] = [shop_id, start, end, after_id]
        if line_ids:
            sql += f"AND line_id IN ({','.join('?' * len(line_ids))}) "
            params.extend(line_ids)
        sql += "ORDER BY id LIMIT ?"
        params.append(limit)
        return [(r[0], from_dict(SettlementLine, json.loads(r[1]))) for r in self.read(sql, params)]

    # ------------------------------------------------------------------ after-sales
    #
    # Driving every after-sale type from a test (each call emits the platform's push:
    # Douyin after-sale tags 200-211, Kuaishou kwaishop_aftersales_addRefund/updateRefund,
    # WeChat channels_ec_aftersale_update). ``kind`` is ``sandbox.model.AfterSaleType``;
    # ``line_id`` is the world's line id (Douyin sku order id, Kuaishou oid; a WeChat line is
    # the world line whose product_id:sku_id the connector names). Merchant steps are normally
    # taken through the platform API (the connector's answer methods); the World calls beside
    # them do the same thing directly.
    #
    #   a = world.apply_aftersale(order_id, line_id, kind="refund_unshipped", reason="拍错了",
    #                             evidence=["https://img.sandbox/ev1.jpg"])     # paid, not shipped
    #   a = world.apply_aftersale(order_id, line_id, kind="refund_shipped", qty=1)  # shipped, no goods back
    #   a = world.apply_aftersale(order_id, line_id, kind="return_refund", qty=1)
    #   a = world.apply_aftersale(order_id, line_id, kind="exchange", qty=1, exchange_sku_id=other_sku_id)
    #   a = world.apply_aftersale(order_id, line_id, kind="reship", qty=1)  # 补寄: Douyin, Kuaishou only
    #                                                      # (WeChat: InvalidArgument, it has no reissue)
    #   world.agree_aftersale(a.aftersale_id, return_address_id=...)   # merchant / timeout approves:
    #       refund-only → refunded; return/exchange → waits for the buyer's parcel; return after
    #       the goods came back → refunded; reship → waits for the merchant's parcel
    #   world.buyer_return_goods(a.aftersale_id, carrier="ZTO", tracking_no="ZT123")  # return/exchange
    #   world.reship_exchange(a.aftersale_id, carrier="SF", tracking_no="SF1")  # exchange (goods back)
    #       or reissue (approved): the replacement leaves
    #   world.buyer_receive_exchange(a.aftersale_id)      # exchange / reissue parcel received: done
    #   world.reject_aftersale(a.aftersale_id, "理由", reason_code="1001")  # first or second refusal
    #   world.close_aftersale(a.aftersale_id)             # buyer withdraws / buyer deadline passes
    #   world.intercept_parcel(a.aftersale_id, tracking_no=...)   # Douyin intercept (cost, or refused
    #       once the order was received)
    #   world.return_addresses(shop_id)                   # the ids an approval may name
    #
    # Per platform: Douyin types 0/1/2/3/7 (statuses 6/7/8/11/12/13/14/27/28/29, answers through
    # /afterSale/operate with the update_time guard); Kuaishou handlingWay 1/10/3/4; WeChat
    # REFUND/RETURN/EXCHANGE (acceptapply refunds at most once per order per minute).

    def get_aftersale(self, aftersale_id: str) -> AfterSale | None:
        row = self.read("SELECT doc FROM aftersales WHERE aftersale_id=?", (aftersale_id,))
        return from_dict(AfterSale, json.loads(row[0][0])) if row else None

    def _load_aftersale(self, c: sqlite3.Connection, aftersale_id: str) -> AfterSale:
        row = c.execute("SELECT doc FROM aftersales WHERE aftersale_id=?", (aftersale_id,)).fetchone()
        if row is None:
            raise NotFound("after-sale not found", aftersale_id=aftersale_id)
        return from_dict(AfterSale, json.loads(row[0]))

    def _save_aftersale(self, c: sqlite3.Connection, a: AfterSale, order: Order) -> None:
        a.update_time = max(self.now(), a.update_time)
        c.execute(
            "INSERT OR REPLACE INTO aftersales VALUES (?, ?, ?, ?, ?, ?, ?)",
            (a.aftersale_id, a.shop_id, a.order_id, a.status, a.apply_time, a.update_time, _j(a)),
        )
        line = order.line(a.line_id)
        line.aftersale_id, line.aftersale_type, line.aftersale_status = a.aftersale_id, a.type, a.status
        line.refund_status = a.refund_status
        self._save_order(c, order)

    def query_aftersales(
        self,
        shop_id: str,
        *,
        update_start: int | None = None,
        update_end: int | None = None,
        apply_start: int | None = None,
        apply_end: int | None = None,
        order_id: str | None = None,
        aftersale_id: str | None = None,
        ascending: bool = True,
        offset: int = 0,
        limit: int = 100,
    ) -> tuple[int, list[AfterSale]]:
        """After-sales of a shop filtered by update/apply time (inclusive), by update_time then id."""
        where = ["shop_id=?"]
        params: list[Any] = [shop_id]
        for column, op, value in (
            ("update_time", ">=", update_start),
            ("update_time", "<=", update_end),
            ("apply_time", ">=", apply_start),
            ("apply_time", "<=", apply_end),
            ("order_id", "=", order_id),
            ("aftersale_id", "=", aftersale_id),
        ):
            if value is not None:
                where.append(f"{column}{op}?")
                params.append(value)
        clause = " AND ".join(where)
        direction = "ASC" if ascending else "DESC"
        total = self.read(f"SELECT COUNT(*) FROM aftersales WHERE {clause}", params)[0][0]
        rows = self.read(
            f"SELECT doc FROM aftersales WHERE {clause} ORDER BY update_time {direction}, aftersale_id {direction} "
            "LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return total, [from_dict(AfterSale, json.loads(r[0])) for r in rows]

    def aftersales_of_order(self, order_id: str) -> list[AfterSale]:
        rows = self.read(
            "SELECT doc FROM aftersales WHERE order_id=? ORDER BY apply_time, aftersale_id", (order_id,)
        )
        return [from_dict(AfterSale, json.loads(r[0])) for r in rows]

    def apply_aftersale(
        self,
        order_id: str,
        line_id: str,
        *,
        kind: str,
        qty: int | None = None,
        refund_fen: int | None = None,
        reason: str = "",
        reason_code: int = 0,
        exchange_sku_id: str = "",
        evidence: list[str] | tuple[str, ...] = (),
    ) -> AfterSale:
        """The buyer applies for a refund, return, exchange or reissue on one line (see the
        after-sale section's notes above ``get_aftersale``)."""
        kind = AfterSaleType(kind)
        with self.write() as c:
            order = self._load_order(c, order_id)
            if kind == AfterSaleType.RESHIP and order.platform == "wechat":
                raise InvalidArgument("WeChat has no reissue (补寄) after-sale type")
            if exchange_sku_id and kind == AfterSaleType.EXCHANGE:
                sku_row = c.execute("SELECT 1 FROM skus WHERE sku_id=?", (exchange_sku_id,)).fetchone()
                if sku_row is None:
                    raise NotFound("exchange SKU not found", sku_id=exchange_sku_id)
            try:
                line = order.line(line_id)
            except KeyError:
                raise NotFound("line not found", line_id=line_id) from None
            if line.aftersale_status and AfterSaleStatus(line.aftersale_status).is_open:
                raise Conflict("line already has an open after-sale", aftersale_id=line.aftersale_id)
            qty = qty or (line.qty - line.refunded_qty)
            if qty <= 0 or qty > line.qty - line.refunded_qty:
                raise InvalidArgument("bad after-sale quantity", qty=qty)
            if kind == AfterSaleType.REFUND_UNSHIPPED:
                if order.status not in (OrderStatus.PAID, OrderStatus.PART_SHIPPED) or line.shipped_qty:
                    raise Conflict("refund-before-shipment needs a paid, unshipped line")
            elif not line.shipped_qty or order.status not in (
                OrderStatus.SHIPPED, OrderStatus.PART_SHIPPED, OrderStatus.RECEIVED, OrderStatus.COMPLETED
            ):  # fmt: skip
                raise Conflict("this after-sale type needs a shipped line")
            if refund_fen is None:
                refund_fen = (
                    0
                    if kind in (AfterSaleType.EXCHANGE, AfterSaleType.RESHIP)
                    else (line.pay_fen - line.post_fen) * qty // line.qty
                )
            now = self.now()
            (aftersale_id,) = self.new_id(order.platform, "aftersale")
            a = AfterSale(
                aftersale_id=aftersale_id,
                platform=order.platform,
                shop_id=order.shop_id,
                order_id=order_id,
                line_id=line_id,
                type=kind,
                status=AfterSaleStatus.WAIT_SELLER_AGREE,
                apply_time=now,
                update_time=now,
                qty=qty,
                refund_fen=refund_fen,
                refund_status=RefundStatus.NONE
                if kind in (AfterSaleType.EXCHANGE, AfterSaleType.RESHIP)
                else RefundStatus.PENDING,
                reason=reason,
                reason_code=reason_code,
                deadline=now + self.timer("aftersale_seller_agree"),
                got_pkg=kind != AfterSaleType.REFUND_UNSHIPPED
                and order.status in (OrderStatus.RECEIVED, OrderStatus.COMPLETED),
                exchange_sku_id=exchange_sku_id or (line.sku_id if kind == AfterSaleType.EXCHANGE else ""),
                evidence=list(evidence),
            )
            self._save_aftersale(c, a, order)
            self._emit(c, EventKind.AFTERSALE_CREATED, self._shop(order.shop_id), order=order, aftersale=a)
        return a

    def agree_aftersale(self, aftersale_id: str, *, return_address_id: str = "") -> AfterSale:
        """The merchant (or the platform's timeout) agrees.

        Refund-only: the refund is paid at once. Return/exchange, first approval: the
        buyer must send the goods back (to ``return_address_id``, one of
        ``return_addresses(shop)``, when given). Return, second approval: the refund is paid.
        Reissue: waits for the merchant's parcel (``reship_exchange``).
        """
        with self.write() as c:
            a = self._load_aftersale(c, aftersale_id)
            order = self._load_order(c, a.order_id)
            shop = self._shop(a.shop_id)
            status, kind = AfterSaleStatus(a.status), AfterSaleType(a.type)
            if return_address_id and return_address_id not in {
                x["address_id"] for x in self.return_addresses(a.shop_id)
            }:
                raise InvalidArgument("unknown return address", address_id=return_address_id)
            if status == AfterSaleStatus.WAIT_SELLER_AGREE and kind == AfterSaleType.RESHIP:
                a.status = AfterSaleStatus.WAIT_SELLER_SHIP
                a.deadline = self.now() + self.timer("aftersale_seller_ship")
                self._save_aftersale(c, a, order)
                self._emit(c, EventKind.AFTERSALE_AGREED, shop, order=order, aftersale=a)
            elif status == AfterSaleStatus.WAIT_SELLER_AGREE and kind in (
                AfterSaleType.RETURN_REFUND,
                AfterSaleType.EXCHANGE,
            ):
                a.status = AfterSaleStatus.WAIT_BUYER_RETURN
                a.return_address_id = return_address_id
                a.deadline = self.now() + self.timer("aftersale_buyer_return")
                self._save_aftersale(c, a, order)
                self._emit(c, EventKind.AFTERSALE_RETURN_AGREED, shop, order=order, aftersale=a)
            elif (
                status == AfterSaleStatus.WAIT_SELLER_AGREE
                and kind in (AfterSaleType.REFUND_UNSHIPPED, AfterSaleType.REFUND_SHIPPED)
            ) or (status == AfterSaleStatus.WAIT_SELLER_CONFIRM and kind == AfterSaleType.RETURN_REFUND):
                a.refund_status = RefundStatus.REFUNDING
                self._save_aftersale(c, a, order)
                self._emit(c, EventKind.AFTERSALE_AGREED, shop, order=order, aftersale=a)
                self._refund(c, a, order)
            else:
                raise Conflict("cannot agree in this state", status=a.status, type=a.type)
        return a

    def _refund(self, c: sqlite3.Connection, a: AfterSale, order: Order) -> None:
        now = self.now()
        a.status = AfterSaleStatus.SUCCESS
        a.refund_status = RefundStatus.SUCCESS
        a.refund_time = now
        a.deadline = 0
        line = order.line(a.line_id)
        line.refunded_qty += a.qty
        line.refunded_fen += a.refund_fen
        if a.type == AfterSaleType.REFUND_UNSHIPPED:
            self._restore_stock(c, order, line, a.qty)
        if order.status == OrderStatus.COMPLETED:
            self._settle_line(c, order, line, refund_fen=a.refund_fen)
        if all(ln.refunded_qty >= ln.qty for ln in order.lines) and not any(
            ln.shipped_qty for ln in order.lines
        ):
            order.status = OrderStatus.CANCELLED
            order.cancel_time = now
            order.cancel_kind = "refund"
            order.cancel_reason = a.reason or "买家申请退款"
            order.stock_reduced = False
        else:
            self._recompute_shipping_status(order)
        self._save_aftersale(c, a, order)
        shop = self._shop(order.shop_id)
        self._emit(c, EventKind.AFTERSALE_REFUNDED, shop, order=order, aftersale=a)
        if order.status == OrderStatus.CANCELLED:
            self._emit(c, EventKind.ORDER_CANCELLED, shop, order=order)

    def reject_aftersale(self, aftersale_id: str, reason: str = "", *, reason_code: str = "") -> AfterSale:
        """The merchant rejects (first approval, or second approval after the goods came back)."""
        with self.write() as c:
            a = self._load_aftersale(c, aftersale_id)
            order = self._load_order(c, a.order_id)
            a = self._reject_aftersale_in(c, order, aftersale_id, reason, reason_code=reason_code)
        return a

    def _reject_aftersale_in(
        self, c: sqlite3.Connection, order: Order, aftersale_id: str, reason: str, *, reason_code: str = ""
    ) -> AfterSale:
        a = self._load_aftersale(c, aftersale_id)
        a.reject_reason_code = str(reason_code or "")
        if a.status == AfterSaleStatus.WAIT_SELLER_AGREE:
            a.status = AfterSaleStatus.SELLER_REJECTED
        elif a.status == AfterSaleStatus.WAIT_SELLER_CONFIRM:
            a.status = AfterSaleStatus.SELLER_REJECTED_SECOND
        else:
            raise Conflict("cannot reject in this state", status=a.status)
        a.reject_reason = reason
        a.deadline = 0
        if a.refund_status == RefundStatus.PENDING:
            a.refund_status = RefundStatus.FAILED
        self._save_aftersale(c, a, order)
        self._emit(c, EventKind.AFTERSALE_REJECTED, self._shop(order.shop_id), order=order, aftersale=a)
        return a

    def buyer_return_goods(self, aftersale_id: str, *, carrier: str, tracking_no: str) -> AfterSale:
        """The buyer sends the goods back (return or exchange)."""
        with self.write() as c:
            a = self._load_aftersale(c, aftersale_id)
            if a.status != AfterSaleStatus.WAIT_BUYER_RETURN:
                raise Conflict("not waiting for the buyer's return", status=a.status)
            order = self._load_order(c, a.order_id)
            a.status = AfterSaleStatus.WAIT_SELLER_CONFIRM
            a.return_carrier, a.return_tracking_no, a.return_time = carrier, tracking_no, self.now()
            a.deadline = self.now() + self.timer("aftersale_seller_confirm")
            self._save_aftersale(c, a, order)
            self._emit(c, EventKind.AFTERSALE_BUYER_RETURNED, self._shop(a.shop_id), order=order, aftersale=a)
        return a

    def reship_exchange(self, aftersale_id: str, *, carrier: str, tracking_no: str) -> AfterSale:
        """The merchant confirms the returned goods and ships the replacement (exchange), or
        ships an approved reissue (补寄)."""
        if carrier not in CARRIERS:
            raise InvalidArgument("unknown carrier", carrier=carrier)
        if not tracking_no:
            raise InvalidArgument("tracking number required")
        with self.write() as c:
            a = self._load_aftersale(c, aftersale_id)
            if not (
                (a.type == AfterSaleType.EXCHANGE and a.status == AfterSaleStatus.WAIT_SELLER_CONFIRM)
                or (a.type == AfterSaleType.RESHIP and a.status == AfterSaleStatus.WAIT_SELLER_SHIP)
            ):
                raise Conflict("not an exchange or reissue waiting for its parcel", status=a.status)
            order = self._load_order(c, a.order_id)
            a.status = AfterSaleStatus.WAIT_BUYER_RECEIVE
            a.exchange_carrier, a.exchange_tracking_no, a.exchange_time = carrier, tracking_no, self.now()
            a.deadline = self.now() + self.timer("aftersale_buyer_receive")
            self._save_aftersale(c, a, order)
            self._emit(
                c, EventKind.AFTERSALE_EXCHANGE_SHIPPED, self._shop(a.shop_id), order=order, aftersale=a
            )
        return a

    def buyer_receive_exchange(self, aftersale_id: str) -> AfterSale:
        with self.write() as c:
            a = self._load_aftersale(c, aftersale_id)
            if a.status != AfterSaleStatus.WAIT_BUYER_RECEIVE:
                raise Conflict("no exchange parcel on its way", status=a.status)
            order = self._load_order(c, a.order_id)
            a.status = AfterSaleStatus.EXCHANGE_SUCCESS
            a.deadline = 0
            self._save_aftersale(c, a, order)
            self._emit(c, EventKind.AFTERSALE_EXCHANGE_DONE, self._shop(a.shop_id), order=order, aftersale=a)
        return a

    def close_aftersale(self, aftersale_id: str, reason: str = "买家撤销") -> AfterSale:
        """The buyer withdraws, or a buyer-side deadline passes."""
        with self.write() as c:
            a = self._load_aftersale(c, aftersale_id)
            if not AfterSaleStatus(a.status).is_open:
                raise Conflict("after-sale already finished", status=a.status)
            order = self._load_order(c, a.order_id)
            a.status = AfterSaleStatus.CLOSED
            a.close_time = self.now()
            a.reject_reason = reason
            a.deadline = 0
            if a.refund_status == RefundStatus.PENDING:
                a.refund_status = RefundStatus.NONE
            self._save_aftersale(c, a, order)
            self._emit(c, EventKind.AFTERSALE_CLOSED, self._shop(a.shop_id), order=order, aftersale=a)
        return a

    def intercept_parcel(self, aftersale_id: str, *, tracking_no: str) -> dict[str, Any]:
        """The merchant asks the platform to stop a parcel of the after-sale's order (Douyin
        ``/afterSale/applyLogisticsIntercept``). Accepted, with a cost in fen, while the parcel is
        on its way (the order is shipped, not yet received); refused with a reason once it was
        delivered. Asking again for the same parcel answers the same (no second charge). The
        after-sale's ``update_time`` is not moved (the version guard stays valid)."""
        with self.write() as c:
            a = self._load_aftersale(c, aftersale_id)
            for done in a.intercepts:
                if done["tracking_no"] == tracking_no:
                    return dict(done)
            order = self._load_order(c, a.order_id)
            package = next((p for p in order.packages if p.tracking_no == tracking_no), None)
            if package is None:
                raise NotFound("parcel not found on this order", tracking_no=tracking_no)
            if order.status in (OrderStatus.RECEIVED, OrderStatus.COMPLETED):
                result = {"tracking_no": tracking_no, "carrier": package.carrier, "accepted": False,
                          "cost_fen": 0, "reason_code": 3, "reason": "包裹已签收，无法拦截"}  # fmt: skip
            elif not AfterSaleStatus(a.status).is_open:
                result = {"tracking_no": tracking_no, "carrier": package.carrier, "accepted": False,
                          "cost_fen": 0, "reason_code": 2, "reason": "售后单已完结，无法拦截"}  # fmt: skip
            else:
                cost = INTERCEPT_COST_FEN.get(package.carrier, INTERCEPT_COST_FEN[""])
                result = {"tracking_no": tracking_no, "carrier": package.carrier, "accepted": True,
                          "cost_fen": cost, "reason_code": 0, "reason": ""}  # fmt: skip
                a.intercepts.append(result)
                c.execute("UPDATE aftersales SET doc=? WHERE aftersale_id=?", (_j(a), a.aftersale_id))
        return dict(result)

    def return_addresses(self, shop_id: str) -> list[dict[str, Any]]:
        """The shop's return addresses (the merchant's own warehouses, not buyer data): two,
        the first the default; ids are digits derived from the shop id."""
        base = int(hashlib.sha256(shop_id.encode()).hexdigest()[:8], 16) % 10**8 * 100
        return [
            {"address_id": str(base + 1), "name": "售后组", "phone": "0571-88880001", "province": "浙江省",
             "city": "杭州市", "district": "余杭区", "street": "仓前街道", "detail": "文一西路1号 退货仓",
             "is_default": True},
            {"address_id": str(base + 2), "name": "售后组", "phone": "021-66660002", "province": "上海市",
             "city": "上海市", "district": "嘉定区", "street": "江桥镇", "detail": "金沙江西路2号 退货仓",
             "is_default": False},
        ]  # fmt: skip

    # ------------------------------------------------------------------ e-waybills

    def create_waybill_account(
        self,
        *,
        shop_id: str,
        carrier: str,
        netsite_code: str,
        netsite_name: str,
        available: int,
        sender: dict[str, str],
    ) -> WaybillAccount:
        if carrier not in CARRIERS:
            raise InvalidArgument("unknown carrier", carrier=carrier)
        account = WaybillAccount(
            f"{shop_id}:{carrier}:{netsite_code}",
            shop_id,
            carrier,
            netsite_code,
            netsite_name,
            available,
            sender=sender,
        )
        with self.write() as c:
            c.execute(
                "INSERT OR REPLACE INTO waybill_accounts VALUES (?, ?, ?)",
                (account.account_id, shop_id, _j(account)),
            )
        return account

    def waybill_accounts(self, shop_id: str, carrier: str | None = None) -> list[WaybillAccount]:
        rows = self.read("SELECT doc FROM waybill_accounts WHERE shop_id=? ORDER BY rowid", (shop_id,))
        accounts = [from_dict(WaybillAccount, json.loads(r[0])) for r in rows]
        return [a for a in accounts if carrier is None or a.carrier == carrier]

    def issue_waybill(
        self,
        *,
        shop_id: str,
        carrier: str,
        order_id: str,
        package_id: str = "",
        items: list[dict[str, Any]] | None = None,
        children: int = 0,
        account_id: str = "",
    ) -> Waybill:
        """Take one waybill number (and ``children`` child numbers under it) from the shop's
        account with that carrier — ``account_id`` when given, else the first with balance.
        Every number consumes one from the balance; all or none are taken."""
        with self.write() as c:
            accounts = [
                a
                for a in self.waybill_accounts(shop_id, carrier)
                if a.available > children and (not account_id or a.account_id == account_id)
            ]
            if not accounts:
                raise NoWaybillAccount("no e-waybill account with balance", carrier=carrier)
            account = accounts[0]
            account.available -= 1 + children
            account.allocated += 1 + children
            c.execute(
                "UPDATE waybill_accounts SET doc=? WHERE account_id=?", (_j(account), account.account_id)
            )
            waybill = self._new_waybill(c, account, order_id, package_id, items or [])
            for _ in range(children):
                child = self._new_waybill(
                    c, account, order_id, package_id, items or [], parent=waybill.tracking_no
                )
                waybill.children.append(child.tracking_no)
            self._save_waybill(c, waybill)
        return waybill

    def _new_waybill(
        self,
        c: Any,
        account: WaybillAccount,
        order_id: str,
        package_id: str,
        items: list[dict[str, Any]],
        *,
        parent: str = "",
    ) -> Waybill:
        tracking_no = self.new_tracking_no(account.carrier)
        h = int(hashlib.sha256((parent or tracking_no).encode()).hexdigest(), 16)
        waybill = Waybill(
            tracking_no=tracking_no,
            shop_id=account.shop_id,
            carrier=account.carrier,
            account_id=account.account_id,
            order_id=order_id,
            package_id=package_id,
            create_time=self.now(),
            sort_code=f"{300 + h % 600}-{chr(65 + h % 26)}{h % 90 + 10} {h % 90 + 10:02d}",
            package_center_code=f"{h % 900000 + 100000}",
            package_center_name=f"{CARRIERS[account.carrier][0][:2]}集包{h % 20 + 1}号",
            short_address_code=f"{h % 900 + 100}",
            items=items,
            parent=parent,
        )
        c.execute("INSERT INTO waybills VALUES (?, ?, ?)", (tracking_no, account.shop_id, _j(waybill)))
        return waybill

    def _save_waybill(self, c: Any, waybill: Waybill) -> None:
        c.execute("UPDATE waybills SET doc=? WHERE tracking_no=?", (_j(waybill), waybill.tracking_no))

    def append_child_waybills(self, tracking_no: str, count: int) -> list[str]:
        """``count`` more child numbers under an issued parent waybill (consumes balance)."""
        if count < 1:
            raise InvalidArgument("count must be at least 1")
        with self.write() as c:
            parent = self.get_waybill(tracking_no)
            if parent is None or parent.parent:
                raise NotFound("waybill not found", tracking_no=tracking_no)
            if parent.status != "issued":
                raise Conflict("waybill cancelled")
            row = c.execute(
                "SELECT doc FROM waybill_accounts WHERE account_id=?", (parent.account_id,)
            ).fetchone()
            account = from_dict(WaybillAccount, json.loads(row[0]))
            if account.available < count:
                raise NoWaybillAccount("no e-waybill account with balance", carrier=parent.carrier)
            account.available -= count
            account.allocated += count
            c.execute(
                "UPDATE waybill_accounts SET doc=? WHERE account_id=?", (_j(account), account.account_id)
            )
            added = [
                self._new_waybill(
                    c, account, parent.order_id, parent.package_id, parent.items, parent=tracking_no
                )
                for _ in range(count)
            ]
            parent.children.extend(w.tracking_no for w in added)
            self._save_waybill(c, parent)
        return [w.tracking_no for w in added]

    def get_waybill(self, tracking_no: str) -> Waybill | None:
        row = self.read("SELECT doc FROM waybills WHERE tracking_no=?", (tracking_no,))
        return from_dict(Waybill, json.loads(row[0][0])) if row else None

    def cancel_waybill(self, tracking_no: str) -> Waybill:
        """Cancel an unused number and its children: each is counted cancelled and recycled
        back to the account's balance. A number an order shipped with cannot be cancelled."""
        with self.write() as c:
            waybill = self.get_waybill(tracking_no)
            if waybill is None:
                raise NotFound("waybill not found", tracking_no=tracking_no)
            if waybill.status == "cancelled":
                raise Conflict("waybill already cancelled")
            numbers = [waybill, *(w for w in map(self.get_waybill, waybill.children) if w is not None)]
            if any(w.shipped for w in numbers):
                raise Conflict("waybill already used for shipping")
            freed = 0
            for w in numbers:
                if w.status != "cancelled":
                    w.status = "cancelled"
                    freed += 1
                    self._save_waybill(c, w)
            row = c.execute(
                "SELECT doc FROM waybill_accounts WHERE account_id=?", (waybill.account_id,)
            ).fetchone()
            if row:
                account = from_dict(WaybillAccount, json.loads(row[0]))
                account.cancelled += freed
                account.recycled += freed
                account.available += freed
                c.execute(
                    "UPDATE waybill_accounts SET doc=? WHERE account_id=?", (_j(account), account.account_id)
                )
        return waybill

    def _start_traces(self, c: Any, order: Order, packages: list[Package]) -> None:
        """The parcels are on their way: each tracking number gets its carrier trace (traces.py)."""
        for package in packages:
            traces.start_trace(
                c,
                tracking_no=package.tracking_no,
                platform=order.platform,
                shop_id=order.shop_id,
                order_id=order.order_id,
                carrier=package.carrier,
                start=float(package.ship_time),
                dest_province=order.receiver.province,
                dest_city=order.receiver.city,
            )

    def emit_trace_update(self, trace: traces.Trace, due: list[traces.TraceNode], emitted: int) -> None:
        """A parcel's trace has new nodes (``due[emitted:]``): one ``logistics_updated`` event (pushed
        where the platform pushes logistics changes); remembers how many nodes were emitted."""
        done = int(bool(due) and due[-1].status in traces.FINAL)
        with self.write() as c:
            row = c.execute("SELECT emitted FROM traces WHERE tracking_no=?", (trace.tracking_no,)).fetchone()
            if row is None or row[0] >= len(due):
                return  # another dispatcher emitted them meanwhile
            c.execute(
                "UPDATE traces SET emitted=?, done=? WHERE tracking_no=?", (len(due), done, trace.tracking_no)
            )
            order = self._load_order(c, trace.order_id)
            data = {
                "trace": {
                    "tracking_no": trace.tracking_no,
                    "carrier": trace.carrier,
                    "nodes": [to_dict(n) for n in due],
                    "new": len(due) - emitted,
                }
            }
            self._emit(c, EventKind.LOGISTICS_UPDATED, self._shop(trace.shop_id), order=order, data=data)

    def _mark_waybills_shipped(self, c: Any, tracking_nos: list[str]) -> None:
        for tracking_no in tracking_nos:
            waybill = self.get_waybill(tracking_no)
            if waybill is not None and not waybill.shipped:
                waybill.shipped = True
                self._save_waybill(c, waybill)

    # ------------------------------------------------------------------ decrypt quota and idempotency

    def shanghai_day(self) -> str:
        return time.strftime("%Y-%m-%d", time.gmtime(self.now() + SHANGHAI_OFFSET))

    def consume_decrypt_quota(self, shop_id: str, wanted: int) -> int:
        """Take up to ``wanted`` decrypts from today's per-shop quota; return how many were granted."""
        shop = self._shop(shop_id)
        day = self.shanghai_day()
        with self.write() as c:
            row = c.execute(
                "SELECT used FROM decrypt_usage WHERE shop_id=? AND day=?", (shop_id, day)
            ).fetchone()
            used = row[0] if row else 0
            granted = max(0, min(wanted, shop.decrypt_quota_per_day - used))
            c.execute("INSERT OR REPLACE INTO decrypt_usage VALUES (?, ?, ?)", (shop_id, day, used + granted))
        return granted

    def decrypt_used_today(self, shop_id: str) -> int:
        row = self.read(
            "SELECT used FROM decrypt_usage WHERE shop_id=? AND day=?", (shop_id, self.shanghai_day())
        )
        return row[0][0] if row else 0

    def idempotent_get(self, scope: str, key: str) -> Any:
        row = self.read("SELECT value FROM idempotency WHERE scope=? AND key=?", (scope, key))
        return json.loads(row[0][0]) if row else None

    def idempotent_put(self, scope: str, key: str, value: Any) -> bool:
        """Store the first result for ``(scope, key)``; False if one was already stored."""
        with self.write() as c:
            cur = c.execute(
                "INSERT OR IGNORE INTO idempotency VALUES (?, ?, ?, ?)",
                (scope, key, json.dumps(value, ensure_ascii=False), self.now()),
            )
        return cur.rowcount == 1

    def idempotent_set(self, scope: str, key: str, value: Any) -> None:
        """Store ``value`` for ``(scope, key)``, replacing an earlier one."""
        with self.write() as c:
            c.execute(
                "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?)",
                (scope, key, json.dumps(value, ensure_ascii=False), self.now()),
            )

    # ------------------------------------------------------------------ events and push outbox

    def _emit(
        self,
        c: sqlite3.Connection,
        kind: EventKind,
        shop: Shop,
        *,
        order: Order | None = None,
        aftersale: AfterSale | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        snapshot: dict[str, Any] = dict(data or {})
        if order is not None:
            snapshot["order"] = to_dict(order)
        if aftersale is not None:
            snapshot["aftersale"] = to_dict(aftersale)
        now = self.now()
        cur = c.execute(
            "INSERT INTO events (time, platform, shop_id, kind, order_id, aftersale_id, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                now,
                shop.platform,
                shop.shop_id,
                str(kind),
                order.order_id if order else "",
                aftersale.aftersale_id if aftersale else "",
                json.dumps(snapshot, ensure_ascii=False, separators=(",", ":")),
            ),
        )
        event_id = cur.lastrowid
        for app in self.authorized_apps(shop.shop_id):
            if not app.webhook_url:
                continue
            (msg_id,) = self.new_id(app.platform, "msg")
            c.execute(
                "INSERT INTO push_outbox (event_id, platform, app_key, shop_id, msg_id, created_at, next_attempt_at, status) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'pending')",
                (
                    event_id,
                    app.platform,
                    app.app_key,
                    shop.shop_id,
                    msg_id,
                    self.clock.now(),
                    self.clock.now(),
                ),
            )
            self._local.notify = True

    def emit_app_event(
        self, kind: EventKind, app_key: str, *, shop_id: str = "", data: dict[str, Any] | None = None
    ) -> int:
        """An app-level event (``APP_EVENT_KINDS``: no order, one app). It is queued for push
        only when the app has an ``auth_event_url``. Returns the event id."""
        with self.write() as c:
            app = self.get_app(app_key)
            if app is None:
                raise NotFound("app not found", app_key=app_key)
            now = self.now()
            cur = c.execute(
                "INSERT INTO events (time, platform, shop_id, kind, order_id, aftersale_id, data) "
                "VALUES (?, ?, ?, ?, '', '', ?)",
                (now, app.platform, shop_id, str(kind),
                 json.dumps({"app_key": app_key, **(data or {})}, ensure_ascii=False, separators=(",", ":"))),
            )  # fmt: skip
            event_id = int(cur.lastrowid or 0)
            if app.auth_event_url:
                (msg_id,) = self.new_id(app.platform, "msg")
                c.execute(
                    "INSERT INTO push_outbox (event_id, platform, app_key, shop_id, msg_id, created_at, next_attempt_at, status) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, 'pending')",
                    (event_id, app.platform, app_key, shop_id, msg_id, self.clock.now(), self.clock.now()),
                )
                self._local.notify = True
        return event_id

    def events_after(self, event_id: int, limit: int = 1000) -> list[WorldEvent]:
        """Events with id > ``event_id`` in order (the simulator and tests follow this stream)."""
        rows = self.read(
            "SELECT event_id, time, platform, shop_id, kind, order_id, aftersale_id, data FROM events "
            "WHERE event_id>? ORDER BY event_id LIMIT ?",
            (event_id, limit),
        )
        return [WorldEvent(*r[:7], data=json.loads(r[7])) for r in rows]

    def get_event(self, event_id: int) -> WorldEvent | None:
        found = self.events_after(event_id - 1, 1)
        return found[0] if found and found[0].event_id == event_id else None

    def last_event_id(self) -> int:
        return self.read("SELECT COALESCE(MAX(event_id), 0) FROM events")[0][0]

    # ------------------------------------------------------------------ simulator agenda and meta

    def agenda_add(self, due: float, action: str, ref: str, args: dict[str, Any] | None = None) -> int:
        """Schedule a simulator action (persistent, so a restarted server carries on)."""
        with self.write() as c:
            cur = c.execute(
                "INSERT INTO sim_agenda (due, action, ref, args) VALUES (?, ?, ?, ?)",
                (due, action, ref, json.dumps(args or {}, ensure_ascii=False)),
            )
        return int(cur.lastrowid or 0)

    def agenda_next_due(self) -> float | None:
        row = self.read("SELECT MIN(due) FROM sim_agenda")
        return row[0][0] if row and row[0][0] is not None else None

    def agenda_take(self, until: float, limit: int = 1) -> list[tuple[float, str, str, dict[str, Any]]]:
        """Remove and return up to ``limit`` items due at or before ``until``, earliest first."""
        with self.write() as c:
            rows = c.execute(
                "SELECT id, due, action, ref, args FROM sim_agenda WHERE due<=? ORDER BY due, id LIMIT ?",
                (until, limit),
            ).fetchall()
            c.executemany("DELETE FROM sim_agenda WHERE id=?", [(r[0],) for r in rows])
        return [(r[1], r[2], r[3], json.loads(r[4])) for r in rows]

    def agenda_size(self) -> int:
        return self.read("SELECT COUNT(*) FROM sim_agenda")[0][0]

    def meta_get(self, key: str, default: str = "") -> str:
        return self._meta(key, default)

    def meta_set(self, key: str, value: str) -> None:
        with self.write() as c:
            c.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # ------------------------------------------------------------------ call log

    def log_call(self, record: CallRecord) -> None:
        """Record an API call (buffered; flushed every second or 200 calls)."""
        with self._call_lock:
            self._calls.append(record)
            self._call_buffer.append(record)
            due = len(self._call_buffer) >= 200 or time.monotonic() - self._last_call_flush > 1.0
        if due:
            self.flush_calls()

    def flush_calls(self) -> None:
        with self._call_lock:
            batch, self._call_buffer = self._call_buffer, []
            self._last_call_flush = time.monotonic()
        if not batch:
            return
        with self.write() as c:
            c.executemany(
                f"INSERT INTO call_log ({_CALL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.time,
                        r.platform,
                        r.path,
                        r.http_status,
                        r.code,
                        r.app_key,
                        r.shop_id,
                        r.duration_ms,
                        r.fault,
                        int(r.ok),
                    )
                    for r in batch
                ],
            )
            if self.call_log_cap:
                c.execute(
                    "DELETE FROM call_log WHERE id <= (SELECT MAX(id) - ? FROM call_log)",
                    (self.call_log_cap,),
                )

    def recent_calls(self, limit: int = 50) -> list[CallRecord]:
        """Most recent calls first (from the database, so other processes' calls show too)."""
        self.flush_calls()
        rows = self.read(f"SELECT {_CALL_COLUMNS} FROM call_log ORDER BY id DESC LIMIT ?", (limit,))
        return [_call_record(r) for r in rows]

    def last_call_id(self) -> int:
        """The id of the newest logged call (0 if none): pass it as ``after_id`` later to count
        only the calls made since."""
        self.flush_calls()
        return self.read("SELECT COALESCE(MAX(id), 0) FROM call_log")[0][0]

    def calls(
        self,
        *,
        platform: str | None = None,
        path: str | None = None,
        shop_id: str | None = None,
        ok: bool | None = None,
        after_id: int = 0,
    ) -> list[CallRecord]:
        """Logged calls, oldest first, filtered (``ok``: True = the platform succeeded, also when
        the reply was then lost; False = it refused or failed; None = all). ``path`` is exact, or a
        prefix when it ends with ``*`` (``"/logistics/*"``). Calls of a server in this process are
        flushed first; a server in another process flushes within a second."""
        self.flush_calls()
        where, params = _call_filter(platform, path, shop_id, ok, after_id)
        rows = self.read(f"SELECT {_CALL_COLUMNS} FROM call_log WHERE {where} ORDER BY id", params)
        return [_call_record(r) for r in rows]

    def call_counts(
        self,
        *,
        platform: str | None = None,
        path: str | None = None,
        shop_id: str | None = None,
        ok: bool | None = True,
        after_id: int = 0,
    ) -> dict[tuple[str, str, str], int]:
        """``{(platform, path, shop_id): calls}`` — by default the successful ones. Filters as in
        ``calls``. Raise the cap first (``call_log_cap=None``) when a run makes > 20000 calls."""
        self.flush_calls()
        where, params = _call_filter(platform, path, shop_id, ok, after_id)
        rows = self.read(
            f"SELECT platform, path, shop_id, COUNT(*) FROM call_log WHERE {where} "
            "GROUP BY platform, path, shop_id ORDER BY platform, path, shop_id",
            params,
        )
        return {(r[0], r[1], r[2]): r[3] for r in rows}

    # ------------------------------------------------------------------ effects (what the calls did)

    def _shop_platforms(self) -> dict[str, str]:
        return {r[0]: r[1] for r in self.read("SELECT shop_id, platform FROM shops")}

    def _resolve_order_id(self, order_id: str) -> str:
        """A world order id, or the order of a line id (Kuaishou oid, Douyin/WeChat line ids)."""
        if self.read("SELECT 1 FROM orders WHERE order_id=?", (order_id,)):
            return order_id
        return self.order_id_of_line(order_id) or order_id

    def shipped_packages(
        self, *, platform: str | None = None, shop_id: str | None = None, order_id: str | None = None
    ) -> dict[str, list[Package]]:
        """``{order_id: [Package, ...]}`` for every order with at least one parcel — the shipment
        state the platform shows (corrections applied). ``order_id`` may be a line id (a Kuaishou
        oid): its order is returned; a package's ``items`` name the lines (``line_id``) it carries.
        """
        sql, params = "SELECT order_id, doc FROM orders WHERE 1=1", []
        if platform:
            sql, params = sql + " AND platform=?", [*params, platform]
        if shop_id:
            sql, params = sql + " AND shop_id=?", [*params, shop_id]
        if order_id:
            sql, params = sql + " AND order_id=?", [*params, self._resolve_order_id(order_id)]
        out: dict[str, list[Package]] = {}
        for oid, doc in self.read(sql + " ORDER BY order_id", params):
            order = from_dict(Order, json.loads(doc))
            if order.packages:
                out[oid] = order.packages
        return out

    def tracking_numbers(
        self, *, platform: str | None = None, shop_id: str | None = None, order_id: str | None = None
    ) -> dict[str, list[str]]:
        """``{order_id: [tracking_no, ...]}`` of the shipped parcels (``shipped_packages``)."""
        return {
            oid: [p.tracking_no for p in packages]
            for oid, packages in self.shipped_packages(
                platform=platform, shop_id=shop_id, order_id=order_id
            ).items()
        }

    def ship_actions(
        self, *, platform: str | None = None, shop_id: str | None = None, order_id: str | None = None
    ) -> list[ShipAction]:
        """Every shipping change the platform accepted, oldest first (from the event log, which
        ``prune`` thins after two days): a write-back that landed twice shows twice here even
        when the platform folded it into one parcel."""
        kinds = (EventKind.ORDER_SHIPPED, EventKind.ORDER_PART_SHIPPED, EventKind.ORDER_SHIPPING_CHANGED)
        sql = f"SELECT event_id, time, platform, shop_id, order_id, kind, data FROM events WHERE kind IN ({','.join('?' * len(kinds))})"
        params: list[Any] = [str(k) for k in kinds]
        if platform:
            sql, params = sql + " AND platform=?", [*params, platform]
        if shop_id:
            sql, params = sql + " AND shop_id=?", [*params, shop_id]
        if order_id:
            sql, params = sql + " AND order_id=?", [*params, self._resolve_order_id(order_id)]
        out = []
        for event_id, at, plat, shop, oid, kind, data in self.read(sql + " ORDER BY event_id", params):
            package = json.loads(data).get("package")
            if package is not None:
                out.append(ShipAction(event_id, at, plat, shop, oid, kind, from_dict(Package, package)))
        return out

    def issued_waybills(
        self,
        *,
        platform: str | None = None,
        shop_id: str | None = None,
        order_id: str | None = None,
        include_cancelled: bool = True,
    ) -> list[Waybill]:
        """Every waybill number the e-waybill APIs issued, in issue order (cancelled ones too
        unless ``include_cancelled=False``; ``status`` says which). ``order_id`` as the caller
        passed it to the e-waybill API (Kuaishou: the oid resolves to its world order)."""
        shops = self._shop_platforms()
        wanted = {self._resolve_order_id(order_id), order_id} if order_id else None
        out = []
        for shop, doc in self.read("SELECT shop_id, doc FROM waybills ORDER BY rowid"):
            if shop_id and shop != shop_id or platform and shops.get(shop) != platform:
                continue
            waybill = from_dict(Waybill, json.loads(doc))
            if wanted is not None and waybill.order_id not in wanted:
                continue
            if include_cancelled or waybill.status != "cancelled":
                out.append(waybill)
        return out

    def waybills_per_parcel(
        self, *, platform: str | None = None, shop_id: str | None = None, include_cancelled: bool = True
    ) -> dict[tuple[str, str, str], list[Waybill]]:
        """``{(shop_id, order_id, parcel key): [Waybill, ...]}`` — the parcel key is what the caller
        sent: Douyin ``pack_id``, Kuaishou ``packageCode``, WeChat ``ewaybill_order_id``. "One
        number per parcel" means every list has one live (``status == "issued"``) waybill. Child
        numbers (子母件) are not listed: they hang under their parent (``Waybill.children``)."""
        out: dict[tuple[str, str, str], list[Waybill]] = {}
        for waybill in self.issued_waybills(
            platform=platform, shop_id=shop_id, include_cancelled=include_cancelled
        ):
            if waybill.parent:
                continue
            out.setdefault((waybill.shop_id, waybill.order_id, waybill.package_id), []).append(waybill)
        return out

    def waybills_per_order(
        self, *, platform: str | None = None, shop_id: str | None = None, include_cancelled: bool = True
    ) -> dict[str, list[Waybill]]:
        """``{order_id: [Waybill, ...]}`` in issue order (see ``issued_waybills``)."""
        out: dict[str, list[Waybill]] = {}
        for waybill in self.issued_waybills(
            platform=platform, shop_id=shop_id, include_cancelled=include_cancelled
        ):
            out.setdefault(waybill.order_id, []).append(waybill)
        return out

    # ------------------------------------------------------------------ print journal (sandbox/printer.py)

    def log_print(self, records: list[PrintRecord]) -> None:
        """Record documents a print component handled (ids of ``records`` are ignored)."""
        with self.write() as c:
            c.executemany(
                "INSERT INTO print_log (time, component, task_id, document_id, printer, preview, tracking_no, "
                "shop_id, status, reason, custom) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (r.time, r.component, r.task_id, r.document_id, r.printer, int(r.preview), r.tracking_no,
                     r.shop_id, r.status, r.reason, json.dumps(r.custom, ensure_ascii=False))
                    for r in records
                ],
            )  # fmt: skip

    def print_records(
        self,
        *,
        component: str | None = None,
        tracking_no: str | None = None,
        task_id: str | None = None,
        status: str | None = None,
        include_previews: bool = False,
        limit: int | None = None,
    ) -> list[PrintRecord]:
        """Documents the print components handled, oldest first (previews only on request;
        ``limit``: only the newest ones)."""
        sql, params = "SELECT * FROM print_log WHERE 1=1", []
        for column, value in (("component", component), ("tracking_no", tracking_no), ("task_id", task_id),
                              ("status", status)):  # fmt: skip
            if value is not None:
                sql, params = sql + f" AND {column}=?", [*params, value]
        if not include_previews:
            sql += " AND preview=0"
        if limit:
            rows = self.read(f"SELECT * FROM ({sql} ORDER BY id DESC LIMIT ?) ORDER BY id", [*params, limit])
        else:
            rows = self.read(sql + " ORDER BY id", params)
        return [
            PrintRecord(
                r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), r[7], r[8], r[9], r[10], json.loads(r[11])
            )
            for r in rows
        ]

    def print_counts(self, *, component: str | None = None, status: str = "printed") -> dict[str, int]:
        """``{tracking_no: documents printed}`` (previews excluded)."""
        out: dict[str, int] = {}
        for record in self.print_records(component=component, status=status):
            out[record.tracking_no] = out.get(record.tracking_no, 0) + 1
        return out

    def prune(self, older_than: float) -> int:
        """Forget history older than ``older_than`` seconds: finished pushes, and events that
        neither the simulator nor a pending push still needs. Keeps a long demo's file bounded."""
        cutoff = self.clock.now() - older_than
        cursor = int(self._meta("sim_cursor", "0") or 0)
        with self.write() as c:
            c.execute("DELETE FROM push_outbox WHERE status!='pending' AND created_at<?", (cutoff,))
            cur = c.execute(
                "DELETE FROM events WHERE time<? AND event_id<=? AND event_id NOT IN "
                "(SELECT event_id FROM push_outbox WHERE status='pending')",
                (cutoff, cursor),
            )
            c.execute("DELETE FROM idempotency WHERE created_at<?", (cutoff - 2 * 86400,))
        return cur.rowcount

    # ------------------------------------------------------------------ summary

    def counts(self) -> dict[str, int]:
        """Row counts of the main tables (for the status page)."""
        out = {}
        for table in (
            "apps",
            "shops",
            "products",
            "skus",
            "buyers",
            "orders",
            "aftersales",
            "settlements",
            "waybills",
            "events",
        ):
            out[table] = self.read(f"SELECT COUNT(*) FROM {table}")[0][0]
        for status in ("pending", "delivered", "failed", "skipped"):
            out[f"pushes_{status}"] = self.read("SELECT COUNT(*) FROM push_outbox WHERE status=?", (status,))[
                0
            ][0]
        return out

"""Run the sandbox over real HTTP: one waitress server per platform plus a status page.

Ports (defaults): status 8600, Douyin 8601, Kuaishou 8602, WeChat 8603. A platform
is served when its module (``sandbox.<platform>``) exists and exposes
``create_app(world, faults=..., limiter=...)``. The local print components
(``printer.py``, WebSocket) listen on the real components' ports: Douyin 13888,
Kuaishou 16888 (``/ks/printer``), WeChat 12705.

The status port serves an HTML overview (apps with their credentials, shops,
recent API calls and pushes, fault rules), ``GET /api/status`` (JSON) and small
admin endpoints (``POST /admin/fault``, ``/admin/push-settings``,
``/admin/revoke-tokens``, ``/admin/app``, ``/admin/traces``) that take JSON bodies.
"""

from __future__ import annotations

import html
import importlib
import importlib.util
import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from waitress.server import create_server

from . import traces
from .faults import STOP, FaultRule, Faults, RateLimiter
from .http import Request, Response, WsgiApp, html_response, json_response
from .model import PLATFORMS
from .printer import FLAVOURS, PrintComponent, PrinterSettings
from .pushes import PushDispatcher, PushSettings, outbox_rows
from .seed import seed_default_world
from .simulator import BuyerSimulator, SimConfig
from .world import NotFound, World

log = logging.getLogger("sandbox.server")

DEFAULT_PORTS: dict[str, int] = {
    "status": 8600,
    "douyin": 8601,
    "kuaishou": 8602,
    "wechat": 8603,
    **{f"print-{name}": flavour.default_port for name, flavour in FLAVOURS.items()},
}
DEFAULT_DATA_PATH = ".data/sandbox.sqlite3"


def platform_factories() -> dict[str, Any]:
    """``{platform: create_app}`` for every platform module that exists."""
    found = {}
    for platform in PLATFORMS:
        name = f"sandbox.{platform}"
        if importlib.util.find_spec(name) is None:
            continue
        module = importlib.import_module(name)
        factory = getattr(module, "create_app", None)
        if factory is not None:
            found[platform] = factory
    return found


@dataclass
class ServerOptions:
    host: str = "127.0.0.1"
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    orders_per_minute: float = 0.5
    time_compression: float = 60.0
    merchant_bot: bool = False
    threads: int = 8
    simulate: bool = True
    push: bool = True
    printers: bool = True  # the local print components (WebSocket)
    seed: int = 0


class SandboxServer:
    """All platform apps, the status page, the push dispatcher and the buyer simulator."""

    def __init__(self, world: World, options: ServerOptions | None = None) -> None:
        self.world = world
        self.options = options or ServerOptions()
        self.faults = Faults(world, seed=world.seed)
        self.limiter = RateLimiter()
        self.apps: dict[str, WsgiApp] = {
            platform: factory(world, faults=self.faults, limiter=self.limiter)
            for platform, factory in platform_factories().items()
        }
        self.apps["status"] = StatusApp(self)
        self.dispatcher = PushDispatcher(
            world, time_compression=self.options.time_compression, seed=world.seed
        )
        self.simulator = BuyerSimulator(
            world,
            seed=world.seed,
            config=SimConfig(
                orders_per_minute=self.options.orders_per_minute, merchant_bot=self.options.merchant_bot
            ),
        )
        self._servers: dict[str, Any] = {}
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        # Ports absent from ``options.ports`` are free ones (0), as for the platform apps.
        self.printers: dict[str, PrintComponent] = (
            {
                name: PrintComponent(
                    world,
                    name,
                    host=self.options.host,
                    port=self.options.ports.get(f"print-{name}", 0),
                    seed=world.seed,
                )
                for name in FLAVOURS
            }  # fmt: skip
            if self.options.printers
            else {}
        )

    @property
    def urls(self) -> dict[str, str]:
        """``{name: url}``: the HTTP apps, and ``print-<platform>`` WebSocket URLs of the print components."""
        urls = {
            name: f"http://{self.options.host}:{server.effective_port}"
            for name, server in self._servers.items()
        }
        urls.update({f"print-{name}": url for name, url in self.print_urls.items()})
        return urls

    @property
    def print_urls(self) -> dict[str, str]:
        """``{"douyin": "ws://127.0.0.1:13888", "kuaishou": "ws://…:16888/ks/printer", "wechat": …}``
        — the shape of ecbao's ``PRINT_COMPONENT_URLS`` setting (override it with this in tests)."""
        return {name: component.url for name, component in self.printers.items()}

    def start(self) -> None:
        """Bind every port and start serving, simulating and pushing in daemon threads."""
        STOP.clear()
        for name, app in self.apps.items():
            port = self.options.ports.get(name, 0)
            server = create_server(
                app, host=self.options.host, port=port, threads=self.options.threads,
                ident=f"ecbao-sandbox-{name}",
            )  # fmt: skip
            self._servers[name] = server
            thread = threading.Thread(
                target=self._serve_until_stopped, args=(server,), name=f"sandbox-http-{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        for component in self.printers.values():
            component.start()
        if self.options.push:
            self.dispatcher.start()
        if self.options.simulate:
            self.simulator.start()
        housekeeping = threading.Thread(target=self._housekeeping, name="sandbox-housekeeping", daemon=True)
        housekeeping.start()
        self._threads.append(housekeeping)

    def _serve_until_stopped(self, server: Any) -> None:
        """waitress's loop, one iteration at a time, so that shutdown happens in this thread
        (closing sockets from another thread races with ``select``)."""
        while not self._stop.is_set():
            server.asyncore.loop(timeout=0.2, map=server._map, use_poll=server.adj.asyncore_use_poll, count=1)
        server.close()
        for channel in list(server._map.values()):
            channel.close()
        server.task_dispatcher.shutdown(timeout=2)

    def _housekeeping(self) -> None:
        """Flush the call log every second (so other processes count calls promptly), prune
        old history every minute."""
        last_prune = time.monotonic()
        while not self._stop.wait(1):
            try:
                self.world.flush_calls()
                if time.monotonic() - last_prune >= 60:
                    last_prune = time.monotonic()
                    self.world.prune(older_than=2 * 86400)
            except Exception:  # keep serving
                log.exception("sandbox housekeeping failed")

    def stop(self) -> None:
        STOP.set()
        self._stop.set()
        self.simulator.stop()
        self.dispatcher.stop()
        for component in self.printers.values():
            component.stop()
        for thread in self._threads:
            thread.join(timeout=5)
        self.world.flush_calls()

    def status(self) -> dict[str, Any]:
        """Everything the status page shows, as JSON-able data."""
        return status_snapshot(self.world, self.faults, urls=self.urls)


def status_snapshot(world: World, faults: Faults, *, urls: dict[str, str] | None = None) -> dict[str, Any]:
    apps = [asdict(a) for a in world.apps()]
    shops = []
    for shop in world.shops():
        shops.append(
            {
                **asdict(shop),
                "authorized_apps": [a.app_key for a in world.authorized_apps(shop.shop_id)],
                "decrypts_today": world.decrypt_used_today(shop.shop_id),
            }
        )
    return {
        "urls": urls or {},
        "time": world.clock.now(),
        "counts": world.counts(),
        "apps": apps,
        "shops": shops,
        "faults": [
            {"platform": p, "path": path, **rule} for (p, path), rule in sorted(faults.rules().items())
        ],
        "push_settings": {p: asdict(PushSettings.load(world, p)) for p in PLATFORMS},
        "print_settings": {name: asdict(PrinterSettings.load(world, name)) for name in FLAVOURS},
        "recent_prints": [
            {k: v for k, v in asdict(r).items() if k != "custom"}
            for r in world.print_records(include_previews=True, limit=30)
        ],
        "recent_calls": [asdict(c) for c in world.recent_calls(50)],
        "recent_pushes": outbox_rows(world, limit=30),
    }


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


class StatusApp(WsgiApp):
    """The status page and admin endpoints on the status port."""

    def __init__(self, server: SandboxServer) -> None:
        self.server = server

    def handle(self, request: Request) -> Response:
        world, faults = self.server.world, self.server.faults
        if request.method == "GET" and request.path == "/":
            return html_response(self.page())
        if request.method == "GET" and request.path == "/api/status":
            return json_response(self.server.status())
        if request.method != "POST" or not request.path.startswith("/admin/"):
            return json_response({"error": "not found"}, 404)
        try:
            body = request.json() or {}
            action = request.path.removeprefix("/admin/")
            if action == "fault":
                platform, path = body.pop("platform"), body.pop("path", "*")
                if body.pop("clear", False):
                    faults.clear(platform, None if path == "*" and body.pop("all_paths", False) else path)
                    return json_response({"ok": True})
                return json_response({"ok": True, "rule": asdict(faults.set(platform, path, **body))})
            if action == "push-settings":
                platform = body.pop("platform")
                return json_response(
                    {"ok": True, "settings": asdict(PushSettings.save(world, platform, **body))}
                )
            if action == "printer":
                component = body.pop("component")
                return json_response(
                    {"ok": True, "settings": asdict(PrinterSettings.save(world, component, **body))}
                )
            if action == "revoke-tokens":
                count = faults.revoke_tokens(
                    body["platform"], shop_id=body.get("shop_id"), app_key=body.get("app_key")
                )
                return json_response({"ok": True, "revoked": count})
            if action == "app":
                app_key = body.pop("app_key")
                allowed = {
                    k: body[k]
                    for k in ("webhook_url", "redirect_uri", "auth_event_url", "permissions", "ip_whitelist")
                    if k in body
                }
                return json_response({"ok": True, "app": asdict(world.update_app(app_key, **allowed))})
            if action == "traces":
                # {"fast_forward": seconds, "tracking_nos": [...]?} / {"incident": no, "returned": bool, "text": ""}
                # / {"exception_rate": 0.07}: move parcels along without waiting (traces.py).
                out: dict[str, object] = {"ok": True}
                if "exception_rate" in body:
                    world.set_setting(traces.EXCEPTION_RATE_SETTING, float(body["exception_rate"]))
                if "fast_forward" in body:
                    out["moved"] = traces.fast_forward(
                        world, float(body["fast_forward"]), body.get("tracking_nos")
                    )
                if "incident" in body:
                    try:
                        traces.incident(
                            world,
                            str(body["incident"]),
                            returned=bool(body.get("returned")),
                            text=body.get("text", ""),
                        )
                    except NotFound as exc:
                        return json_response({"ok": False, "error": str(exc)}, 404)
                return json_response(out)
        except (KeyError, TypeError, ValueError) as exc:
            return json_response({"ok": False, "error": f"{type(exc).__name__}: {exc}"}, 400)
        return json_response({"error": "unknown admin action"}, 404)

    def page(self) -> str:
        s = self.server.status()
        calls = [
            {**c, "time": time.strftime("%H:%M:%S", time.localtime(c["time"]))} for c in s["recent_calls"]
        ]
        pushes = [
            {**p, "created_at": time.strftime("%H:%M:%S", time.localtime(p["created_at"]))}
            for p in s["recent_pushes"]
        ]
        apps = [{**a, "permissions": ",".join(a["permissions"])} for a in s["apps"]]
        shops = [{**sh, "authorized_apps": ",".join(sh["authorized_apps"])} for sh in s["shops"]]
        urls = "".join(
            f"<li>{html.escape(k)}: <a href='{html.escape(v)}'>{html.escape(v)}</a></li>"
            for k, v in s["urls"].items()
        )
        counts = ", ".join(f"{k} {v}" for k, v in s["counts"].items())
        return f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>ecbao 平台沙箱</title>
<meta http-equiv="refresh" content="10"><style>body{{font-family:sans-serif;margin:20px}}table{{border-collapse:collapse;font-size:12px;margin-bottom:18px}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:left}}th{{background:#f4f4f4}}</style></head><body>
<h1>ecbao 平台沙箱 (platform sandbox)</h1><ul>{urls}</ul><p>{html.escape(counts)}</p>
<h2>Apps（演示用：含密钥）</h2>{_table(apps, ["platform", "name", "app_key", "app_secret", "sign_secret", "message_key", "push_token", "encoding_aes_key", "service_id", "redirect_uri", "webhook_url", "auth_event_url", "app_type"])}
<h2>Shops</h2>{_table(shops, ["platform", "shop_id", "name", "authorized_apps", "decrypts_today", "decrypt_quota_per_day"])}
<h2>Faults</h2>{_table(s["faults"], ["platform", "path", *FaultRule.field_names()])}
<h2>Recent API calls</h2>{_table(calls, ["time", "platform", "path", "http_status", "code", "ok", "app_key", "shop_id", "duration_ms", "fault"])}
<h2>Recent pushes</h2>{_table(pushes, ["created_at", "platform", "kind", "order_id", "aftersale_id", "msg_id", "status", "attempts", "duplicate_of", "last_error"])}
<h2>Recent prints (print components)</h2>{_table(s["recent_prints"], ["component", "task_id", "document_id", "printer", "preview", "tracking_no", "status", "reason"])}
</body></html>"""


def open_world(path: str, *, seed: int = 0, time_compression: float = 1.0) -> World:
    """Open (and seed on first use) the world file."""
    world = World(path, seed=seed, time_compression=time_compression)
    if world.is_empty():
        seed_default_world(world)
    return world


def serve(
    data: str = DEFAULT_DATA_PATH,
    *,
    seed: int = 0,
    options: ServerOptions | None = None,
    block: bool = True,
) -> SandboxServer:
    """Start the sandbox; with ``block`` serve until Ctrl-C."""
    options = options or ServerOptions(seed=seed)
    world = open_world(data, seed=seed, time_compression=options.time_compression)
    server = SandboxServer(world, options)
    server.start()
    if block:
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
    return server


def pretty(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=2)

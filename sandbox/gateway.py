"""The request pipeline every platform app shares.

``PlatformGateway`` is a WSGI app that, for each call:

1. routes the exact path (unknown path → the platform's "API does not exist" error);
2. applies injected faults (latency, timeout, 5xx, service error, rate-limit storm);
3. authenticates (``authenticate``: signature, token, permission – platform-specific);
4. enforces the per-(app, path) token bucket;
5. runs the handler, which returns a ``Response`` or raises ``ApiError``;
6. corrupts the body if a malformed-body fault was rolled, or loses the reply (the handler
   has acted: the answer comes after the client's timeout, or a 502/504 page replaces it);
7. logs the call to the world's call log: what the client saw (``http_status``, ``code``)
   and whether the platform succeeded (``ok``, true even when the reply was lost).

A platform module subclasses it and provides: ``platform``, the routes, and the
hooks ``authenticate``, ``error_response``, ``service_error``, ``rate_limit_error``,
``unknown_path_error`` and ``result_code``. ``douyin.DouyinApp`` is the worked example.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .faults import DEFAULT_QPS, Faults, RateLimiter, interruptible_sleep
from .http import Request, Response, WsgiApp, html_response, reason_phrase
from .model import App, CallRecord, Shop, Token
from .world import World, WorldError

log = logging.getLogger("sandbox")

# The ``result_code`` of a successful call, per platform (the call log's ``ok``).
SUCCESS_CODES: dict[str, frozenset[str]] = {
    "douyin": frozenset({"10000"}),
    "kuaishou": frozenset({"1"}),
    "wechat": frozenset({"0"}),
}


class ApiError(Exception):
    """A platform error to be rendered by ``PlatformGateway.error_response``.

    ``fields`` are the platform's own envelope fields (e.g. Douyin ``code``, ``sub_code``…).
    """

    def __init__(self, http_status: int = 200, **fields: Any) -> None:
        super().__init__(fields.get("msg") or fields.get("error_msg") or str(fields))
        self.http_status = http_status
        self.fields = fields


@dataclass
class CallContext:
    """Who is calling: filled by ``authenticate`` and passed to the handler."""

    app: App | None = None
    shop: Shop | None = None
    token: Token | None = None
    params: dict[str, Any] = field(default_factory=dict)  # decoded business parameters
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def shop_id(self) -> str:
        if self.shop is None:
            raise ApiError(msg="no shop in context")
        return self.shop.shop_id


@dataclass
class Route:
    handler: Callable[[Request, CallContext], Response]
    methods: tuple[str, ...]
    auth: str  # platform-defined level, e.g. "token", "sign", "none"
    faults: bool = True  # injected faults apply (off for HTML pages)


class PlatformGateway(WsgiApp):
    """Base class of the per-platform WSGI apps (see module docstring)."""

    platform: ClassVar[str] = ""

    def __init__(
        self, world: World, *, faults: Faults | None = None, limiter: RateLimiter | None = None
    ) -> None:
        self.world = world
        self.faults = faults or Faults(world, seed=world.seed)
        self.limiter = limiter or RateLimiter()
        self.routes: dict[str, Route] = {}

    # ------------------------------------------------------------- routing

    def route(
        self, path: str, handler: Callable[[Request, CallContext], Response], *, methods: tuple[str, ...] = ("POST",),
        auth: str = "token", faults: bool = True,
    ) -> None:  # fmt: skip
        self.routes[path] = Route(handler, tuple(m.upper() for m in methods), auth, faults)

    # ------------------------------------------------------------- hooks for subclasses

    def authenticate(self, request: Request, route: Route) -> CallContext:
        """Check signature/token/permission; return the context or raise ``ApiError``."""
        raise NotImplementedError

    def error_response(self, error: ApiError, request: Request) -> Response:
        raise NotImplementedError

    def service_error(self) -> ApiError:
        raise NotImplementedError

    def rate_limit_error(self) -> ApiError:
        raise NotImplementedError

    def unknown_path_error(self, path: str) -> ApiError:
        raise NotImplementedError

    def world_error(self, error: WorldError) -> ApiError:
        """A business rule the handler did not translate itself (e.g. an invalid state)."""
        return self.service_error()

    def malformed_params_error(self, detail: str) -> ApiError:
        """Business parameters of the wrong shape (a handler tripped over them)."""
        return self.service_error()

    def result_code(self, response: Response) -> str:
        """A short result code for the call log (e.g. Douyin's ``code``/``sub_code``)."""
        return str(response.status)

    # ------------------------------------------------------------- pipeline

    def handle(self, request: Request) -> Response:
        """Run the pipeline for one request and record it in the world's call log."""
        started = time.perf_counter()
        box: dict[str, Any] = {}
        try:
            response = self._pipeline(request, box)
        except Exception:  # last-resort guard: one handler bug must not kill a worker
            log.error(
                "sandbox handler failed for %s %s\n%s", request.method, request.path, traceback.format_exc()
            )
            response = Response(500, b"internal sandbox error", [("Content-Type", "text/plain")])
        ctx: CallContext = box.get("ctx") or CallContext()
        if "code" in box:  # the handler ran: log the platform's answer even if the reply is lost
            code = "malformed" if box.get("malformed") else box["code"]
        else:
            code = self.result_code(response)
        self.world.log_call(
            CallRecord(
                time=self.world.clock.now(),
                platform=self.platform,
                path=request.path[:200],
                http_status=response.status,
                code=code,
                app_key=ctx.app.app_key if ctx.app else request.query.get("app_key", "")[:40],
                shop_id=ctx.shop.shop_id if ctx.shop else "",
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                fault=box.get("label", ""),
                ok=bool(box.get("ok")),
            )
        )
        interruptible_sleep(box.get("delay", 0.0))  # a reply lost past the client's timeout
        return response

    def is_success(self, response: Response) -> bool:
        """The platform did what was asked (HTTP 200 and its success code)."""
        return response.status == 200 and self.result_code(response) in SUCCESS_CODES.get(
            self.platform, frozenset()
        )

    def _pipeline(self, request: Request, box: dict[str, Any]) -> Response:
        route = self.routes.get(request.path)
        try:
            if route is None:
                raise self.unknown_path_error(request.path)
            if request.method not in route.methods:
                return Response(405, b"method not allowed", [("Allow", ", ".join(route.methods))])
            decision = rule = None
            if route.faults:
                decision, rule = self.faults.decide(self.platform, request.path)
                box["label"] = decision.label
                interruptible_sleep(decision.latency + decision.timeout)
                if decision.http_5xx:
                    return gateway_error_page(decision.http_5xx)
                if decision.error:
                    raise self.service_error()
                if decision.rate_limited:
                    raise self.rate_limit_error()
            ctx = self.authenticate(request, route)
            box["ctx"] = ctx
            if ctx.app is not None and route.auth != "none":
                qps = (
                    rule.qps
                    if rule is not None and rule.qps is not None
                    else DEFAULT_QPS.get(self.platform, 100.0)
                )
                burst = rule.burst if rule is not None else None
                if not self.limiter.allow((self.platform, ctx.app.app_key, request.path), qps, burst):
                    box["label"] = (box.get("label", "") + ",qps").lstrip(",")
                    raise self.rate_limit_error()
            try:
                response = self._run_handler(route, request, ctx)
            except ApiError as error:
                response = self.error_response(error, request)
            box["code"], box["ok"] = self.result_code(response), self.is_success(response)
            if decision is not None and decision.malformed:
                box["malformed"] = True
                response = Response(200, corrupt(response.body), response.headers)
            if decision is not None and decision.lost_reply:
                # The platform has acted (and committed); the caller never gets the answer.
                if decision.lost_reply == "timeout":
                    box["delay"] = decision.lost_reply_delay  # slept in ``handle``, once logged
                    return response
                return gateway_error_page(int(decision.lost_reply))
            return response
        except ApiError as error:
            return self.error_response(error, request)

    def _run_handler(self, route: Route, request: Request, ctx: CallContext) -> Response:
        try:
            return route.handler(request, ctx)
        except WorldError as exc:
            raise self.world_error(exc) from exc
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            # Parameters of an unexpected shape: answer like the platform, keep a trace.
            log.warning("bad parameters for %s: %r", request.path, exc)
            raise self.malformed_params_error(f"{type(exc).__name__}: {exc}") from exc


def gateway_error_page(status: int) -> Response:
    """What a load balancer in front of the platform answers: an HTML error page."""
    phrase = reason_phrase(status)
    body = f"<html><head><title>{status} {phrase}</title></head><body><center><h1>{status} {phrase}</h1></center><hr><center>tengine</center></body></html>"
    return html_response(body, status)


def corrupt(body: bytes) -> bytes:
    """A body cut short mid-JSON (what a broken proxy or a truncated write delivers)."""
    if len(body) < 4:
        return b'{"code":'
    return body[: max(2, len(body) // 2)]

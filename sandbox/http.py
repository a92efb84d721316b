"""A tiny WSGI toolkit: request/response objects, a path router, JSON helpers.

Each platform module builds one ``PlatformApp`` subclass (a plain WSGI callable)
on top of these, so the same object serves tests in-process through
``httpx.WSGITransport`` and real HTTP through waitress.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlencode

log = logging.getLogger("sandbox")

WSGIEnviron = dict[str, Any]
StartResponse = Callable[..., Any]


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON as the platforms send it (no ASCII escaping)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass
class Request:
    """An incoming HTTP request, decoded once."""

    method: str
    path: str
    query: dict[str, str]  # first value of each query parameter
    headers: dict[str, str]  # lower-case names
    body: bytes
    remote_addr: str = ""
    query_string: str = ""
    environ: WSGIEnviron = field(default_factory=dict, repr=False)

    @classmethod
    def from_environ(cls, environ: WSGIEnviron) -> Request:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        headers = {}
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                headers[key[5:].replace("_", "-").lower()] = value
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        qs = environ.get("QUERY_STRING", "")
        # WSGI gives PATH_INFO as latin-1 decoded bytes; re-decode as UTF-8.
        path = environ.get("PATH_INFO", "/").encode("latin-1").decode("utf-8", "replace") or "/"
        return cls(
            method=environ.get("REQUEST_METHOD", "GET").upper(),
            path=path,
            query={k: v[0] for k, v in parse_qs(qs, keep_blank_values=True).items()},
            headers=headers,
            body=body,
            remote_addr=environ.get("REMOTE_ADDR", ""),
            query_string=qs,
            environ=environ,
        )

    def form(self) -> dict[str, str]:
        """``application/x-www-form-urlencoded`` body as a dict of first values."""
        return {
            k: v[0] for k, v in parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True).items()
        }

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


def json_response(obj: Any, status: int = 200, headers: Iterable[tuple[str, str]] = ()) -> Response:
    return Response(status, dumps(obj), [("Content-Type", "application/json; charset=utf-8"), *headers])


def html_response(html: str, status: int = 200) -> Response:
    return Response(status, html.encode(), [("Content-Type", "text/html; charset=utf-8")])


def text_response(text: str, status: int = 200) -> Response:
    return Response(status, text.encode(), [("Content-Type", "text/plain; charset=utf-8")])


def redirect(location: str, params: dict[str, str] | None = None) -> Response:
    """302 to ``location``, appending ``params`` to any query string it already has."""
    if params:
        location += ("&" if "?" in location else "?") + urlencode(params)
    return Response(302, b"", [("Location", location)])


def reason_phrase(status: int) -> str:
    """``OK`` for 200 etc.; empty for codes the standard library does not know."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


Handler = Callable[[Request], Response]


class Router:
    """Exact-path routing: ``router.add("/order/searchList", handler, methods=("POST",))``."""

    def __init__(self) -> None:
        self._routes: dict[str, tuple[tuple[str, ...], Handler]] = {}

    def add(self, path: str, handler: Handler, methods: tuple[str, ...] = ("POST",)) -> None:
        self._routes[path] = (tuple(m.upper() for m in methods), handler)

    def route(self, path: str, methods: tuple[str, ...] = ("POST",)) -> Callable[[Handler], Handler]:
        """Decorator form of ``add``."""

        def decorator(fn: Handler) -> Handler:
            self.add(path, fn, methods)
            return fn

        return decorator

    def match(self, path: str) -> tuple[tuple[str, ...], Handler] | None:
        return self._routes.get(path)

    @property
    def paths(self) -> list[str]:
        return sorted(self._routes)


class WsgiApp:
    """Base WSGI application: subclasses implement ``handle(request) -> Response``.

    Unexpected exceptions become a 500 with a short text body (and a log line), so
    one bug in a handler never kills a waitress worker.
    """

    def handle(self, request: Request) -> Response:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, environ: WSGIEnviron, start_response: StartResponse) -> Iterable[bytes]:
        request = Request.from_environ(environ)
        try:
            response = self.handle(request)
        except Exception:  # last-resort guard: one handler bug must not kill a worker
            log.error(
                "sandbox handler failed for %s %s\n%s", request.method, request.path, traceback.format_exc()
            )
            response = text_response("internal sandbox error", 500)
        headers = list(response.headers)
        if not any(k.lower() == "content-length" for k, _ in headers):
            headers.append(("Content-Length", str(len(response.body))))
        start_response(f"{response.status} {reason_phrase(response.status)}", headers)
        return [response.body]

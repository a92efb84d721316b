"""Buyer-data scan: does any plaintext receiver name, phone or address of the sandbox world's
buyers appear where ecbao keeps things? (PRODUCT.md "Buyer data": ciphertexts, masks and
search indexes only.)

Usage (any test with a sandbox ``World``)::

    plain = world_plaintexts(world)
    found = scan(plain, {
        **database_texts("tenant_schema"),  # every text / varchar / json column of every table
        **database_texts("public"),          # push receipts, routes …
        **redis_texts(),                     # every key and value (Celery messages decoded)
        "logs": captured_log_text,           # see ``LogCapture``
        "xlsx": xlsx_text(workbook_bytes),
    })
    assert not found, found[:5]

``scan`` returns (source, kind, context) for each hit; digits are matched whole (a phone
number inside an 18-digit order id is not a hit).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

MIN_NAME_CHARS = 2  # a one-character name would match anywhere


@dataclass(frozen=True)
class Plaintext:
    kind: str  # "name" | "phone" | "address"
    text: str

    def pattern(self) -> re.Pattern[str]:
        escaped = re.escape(self.text)
        return re.compile(rf"(?<!\d){escaped}(?!\d)" if self.text.isdigit() else escaped)


def world_plaintexts(world) -> list[Plaintext]:
    """Every receiver of the sandbox world's orders (and buyers): name, phone, detail line."""
    seen: dict[tuple[str, str], Plaintext] = {}
    receivers = [order.receiver.__dict__ for order in world.orders()]
    receivers += [json.loads(doc)["receiver"] for (doc,) in world.read("SELECT doc FROM buyers")]
    for r in receivers:
        for kind, key in (("name", "name"), ("phone", "phone"), ("address", "detail")):
            text = str(r.get(key) or "").strip()
            if len(text) >= (7 if kind == "phone" else MIN_NAME_CHARS):
                seen.setdefault((kind, text), Plaintext(kind, text))
    return list(seen.values())


def scan(plaintexts: Iterable[Plaintext], sources: dict[str, str]) -> list[tuple[str, str, str]]:
    """(source, kind, ±30 characters around the hit) for every plaintext found in a source."""
    hits = []
    for plain in plaintexts:
        pattern = plain.pattern()
        for source, text in sources.items():
            match = pattern.search(text)
            if match:
                start = max(0, match.start() - 30)
                hits.append((source, plain.kind, text[start : match.end() + 30]))
    return hits


def database_texts(schema: str) -> dict[str, str]:
    """``{"<schema>.<table>": all its text, varchar and json values}`` (a SELECT of every such
    column: what a schema dump would show of them)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT table_name, array_agg(column_name::text ORDER BY ordinal_position)
            FROM information_schema.columns
            WHERE table_schema = %s
              AND data_type IN ('text', 'character varying', 'json', 'jsonb', 'character')
              AND table_name IN (SELECT table_name FROM information_schema.tables
                                 WHERE table_schema = %s AND table_type = 'BASE TABLE')
            GROUP BY table_name
            """,
            [schema, schema],
        )
        tables = cursor.fetchall()
        out = {}
        for table, columns in tables:
            values = ", ".join(f"coalesce(\"{c}\"::text, '')" for c in columns)
            cursor.execute(f'SELECT concat_ws(\' | \', {values}) FROM "{schema}"."{table}"')  # noqa: S608
            out[f"{schema}.{table}"] = "\n".join(row[0] for row in cursor.fetchall())
    return out


def redis_texts(url: str | None = None) -> dict[str, str]:
    """``{"redis": every key and value}``; Celery's base64 message bodies are decoded."""
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(url or settings.REDIS_URL)
    parts = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        if kind == "string":
            values = [client.get(key)]
        elif kind == "list":
            values = client.lrange(key, 0, -1)
        elif kind == "set":
            values = list(client.smembers(key))
        elif kind == "zset":
            values = client.zrange(key, 0, -1)
        elif kind == "hash":
            values = [v for pair in client.hgetall(key).items() for v in pair]
        else:
            values = []
        parts.append(key.decode(errors="replace"))
        parts.extend(_decoded(v) for v in values if v is not None)
    return {"redis": "\n".join(parts)}


def _decoded(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace")
    try:
        message = json.loads(text)
    except ValueError:
        return text
    if isinstance(message, dict) and message.get("properties", {}).get("body_encoding") == "base64":
        try:
            body = base64.b64decode(message.get("body", "")).decode("utf-8", errors="replace")
        except ValueError:
            body = ""
        return text + "\n" + body
    return json.dumps(message, ensure_ascii=False)  # \u escapes → characters


def xlsx_text(data: bytes) -> str:
    """Every cell of every sheet of a workbook, as text."""
    from openpyxl import load_workbook

    workbook = load_workbook(io.BytesIO(data), read_only=True)
    return "\n".join(
        " | ".join("" if v is None else str(v) for v in row)
        for sheet in workbook.worksheets
        for row in sheet.iter_rows(values_only=True)
    )


class LogCapture(logging.Handler):
    """Every log record of the process at ``level`` and above (worker threads included; INFO,
    what a deployment writes, unless told), formatted with its args and exception text.
    ``with LogCapture() as logs: …; logs.text()``."""

    def __init__(self, level: int = logging.INFO) -> None:
        super().__init__(level=level)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self._levels: dict[logging.Logger, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # noqa: BLE001 - a capture must never break the code it watches
            self.lines.append(str(record.msg))

    def __enter__(self) -> LogCapture:
        root = logging.getLogger()
        self._levels[root] = root.level
        root.setLevel(min(root.level or logging.WARNING, self.level))
        root.addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        root = logging.getLogger()
        root.removeHandler(self)
        root.setLevel(self._levels.pop(root, logging.WARNING))

    def text(self) -> str:
        return "\n".join(self.lines)

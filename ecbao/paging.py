"""Keyset (cursor) pagination: the one pager behind every list — the order workbench, the SKU
list, the ledger and failed-push pages, the order export and the API's lists.

A page is addressed by the position of a row, never by an offset, so page 1,000 costs what page
1 costs and rows arriving meanwhile never shift later pages. A :class:`Keyset` names the
ordering (``Keyset("-placed_at", "-id")``: newest first, the last field unique); a row's
position is its key text (``"<µs since the epoch>.<id>"`` for that keyset; a string field is
kept as it is and may only come last). ``page(qs, after=key)`` gives the rows after a position
in that order, ``page(qs, before=key)`` the rows before it; the page's ``next_key`` /
``prev_key`` are what to pass next.

The position condition for ``(a, b)`` descending is ``a <= t AND (a < t OR b < i)``: the first
part is an index bound (the scan starts at the position), the second drops the rows of the same
``a`` already shown. PostgreSQL walks a matching index in order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import models
from django.db.models import Q, QuerySet
from django.http import QueryDict

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_INT = re.compile(r"-?\d{1,18}")


@dataclass
class Page:
    rows: list
    next_key: str | None = None  # pass as ``after`` for the rows after this page
    prev_key: str | None = None  # pass as ``before`` for the rows before this page


@dataclass(frozen=True)
class _Field:
    name: str
    descending: bool
    kind: str = field(default="int")  # "int", "datetime" or "str"


class Keyset:
    """An ordering by one or more fields (``"-name"``: descending), the last one unique."""

    def __init__(self, *fields: str) -> None:
        if not fields:
            raise ValueError("a keyset needs at least one field")
        self.spec = tuple(fields)
        self._fields: dict[type, tuple[_Field, ...]] = {}  # per model: one keyset may serve several

    def _resolve(self, model) -> tuple[_Field, ...]:
        if model not in self._fields:
            resolved = []
            for spec in self.spec:
                name = spec.lstrip("-")
                db_field = model._meta.pk if name == "pk" else model._meta.get_field(name)
                if isinstance(db_field, models.DateTimeField):
                    kind = "datetime"
                elif isinstance(db_field, models.IntegerField | models.AutoField | models.ForeignKey):
                    kind = "int"
                else:
                    kind = "str"
                resolved.append(_Field(name, spec.startswith("-"), kind))
            if any(f.kind == "str" for f in resolved[:-1]):
                raise ValueError("only the last field of a keyset may be text")
            self._fields[model] = tuple(resolved)
        return self._fields[model]

    # --- keys ---------------------------------------------------------------------------------

    def key(self, row) -> str:
        """The position of ``row`` (a model instance) as text."""
        parts = []
        for f in self._resolve(type(row)):
            value = getattr(row, f.name)
            if f.kind == "datetime":
                parts.append(str((value - _EPOCH) // _MICRO))
            else:
                parts.append(str(value))
        return ".".join(parts)

    def parse(self, model, key: str) -> tuple | None:
        """The field values of a position; None when ``key`` is not one of this keyset."""
        fields = self._resolve(model)
        if not key:
            return None
        texts = key.split(".", len(fields) - 1)
        if len(texts) != len(fields):
            return None
        values = []
        for f, text in zip(fields, texts, strict=True):
            if f.kind == "str":
                values.append(text)
                continue
            if not _INT.fullmatch(text):
                return None
            if f.kind == "int":
                values.append(int(text))
            else:
                try:
                    values.append(_EPOCH + int(text) * _MICRO)
                except OverflowError:
                    return None
        return tuple(values)

    # --- queries ------------------------------------------------------------------------------

    def _beyond(self, fields: tuple[_Field, ...], values: tuple, *, forward: bool) -> Q:
        """Rows strictly beyond ``values`` walking forward (the keyset's order) or backward."""
        first, value = fields[0], values[0]
        up = first.descending != forward  # walking towards larger values of this field
        strict = Q(**{f"{first.name}__{'gt' if up else 'lt'}": value})
        if len(fields) == 1:
            return strict
        bound = Q(**{f"{first.name}__{'gte' if up else 'lte'}": value})
        return bound & (strict | self._beyond(fields[1:], values[1:], forward=forward))

    def _order(self, fields: tuple[_Field, ...], *, forward: bool) -> list[str]:
        return [f"{'-' if f.descending == forward else ''}{f.name}" for f in fields]

    def beyond(self, qs: QuerySet, values: tuple) -> QuerySet:
        """``qs`` narrowed to the rows after the position with these field values."""
        return qs.filter(self._beyond(self._resolve(qs.model), tuple(values), forward=True))

    def page(self, qs: QuerySet, *, after: str = "", before: str = "", size: int = 50) -> Page:
        """One page of ``qs`` in this keyset's order: after the position ``after``, or before
        the position ``before``, or from the start. An invalid key counts as none."""
        fields = self._resolve(qs.model)
        position = self.parse(qs.model, before) if before else None
        if position is not None:
            rows = list(
                qs.filter(self._beyond(fields, position, forward=False)).order_by(
                    *self._order(fields, forward=False)
                )[: size + 1]
            )
            more = len(rows) > size
            rows = rows[:size][::-1]
            return Page(
                rows=rows,
                next_key=self.key(rows[-1]) if rows else None,
                prev_key=self.key(rows[0]) if more and rows else None,
            )
        position = self.parse(qs.model, after) if after else None
        if position is not None:
            qs = qs.filter(self._beyond(fields, position, forward=True))
        rows = list(qs.order_by(*self._order(fields, forward=True))[: size + 1])
        more = len(rows) > size
        rows = rows[:size]
        return Page(
            rows=rows,
            next_key=self.key(rows[-1]) if more else None,
            prev_key=self.key(rows[0]) if position is not None and rows else None,
        )


def query_string(**params) -> str:
    """A URL query of the parameters that have a value (a link to the same list with other filters)."""
    q = QueryDict(mutable=True)
    for key, value in params.items():
        if value not in (None, ""):
            q[key] = value
    return q.urlencode()

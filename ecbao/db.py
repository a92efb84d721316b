"""Set-based writes the ORM does not offer: COPY-backed inserts for the ingestion hot path.

``bulk_create`` spends most of its time in Python (field preparation, one placeholder per
value, client-side query building); COPY sends the rows as one stream that psycopg's C
extension formats. Values come straight from the model instances (defaults already applied by
``Model.__init__``), JSON fields are serialised with ``json.dumps``, ``auto_now`` and
``auto_now_add`` get the same ``now``. Model ``save()`` hooks and signals do not run — these
helpers are for plain rows only.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from operator import attrgetter

from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone


class JSONText(str):
    """A value already serialised as JSON: written to a JSON column as is."""


def _json(value) -> str:
    return value if isinstance(value, JSONText) else json.dumps(value, ensure_ascii=False)


def row_class(model: type[models.Model]) -> type:
    """A slotted dataclass with one attribute per column of ``model`` (``order_id``, not
    ``order``), defaults as ``Model.__init__`` applies them, and ``pk`` — a row for
    ``copy_models`` / ``insert_new`` at a fraction of a model instance's cost. Built from the
    model, so a new column is never forgotten."""
    meta = model._meta
    spec = [
        (f.attname, object, dataclasses.field(default_factory=f.get_default)) for f in meta.concrete_fields
    ]
    pk_name = meta.pk.attname

    def get_pk(self):
        return getattr(self, pk_name)

    def set_pk(self, value):
        setattr(self, pk_name, value)

    return dataclasses.make_dataclass(
        f"{model.__name__}Row", spec, slots=True, namespace={"pk": property(get_pk, set_pk)}
    )


def _columns(model: type[models.Model], objs: Sequence[object], with_pk: bool):
    """(column names, row function): plain columns first, read in one ``attrgetter`` call,
    then JSON columns (serialised) and ``auto_now`` columns (one shared ``now``)."""
    meta = model._meta
    now = timezone.now()
    fields = [f for f in meta.concrete_fields if with_pk or not f.primary_key]
    stamped = [f for f in fields if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)]
    as_json = [f for f in fields if isinstance(f, models.JSONField)]
    plain = [f for f in fields if f not in stamped and f not in as_json]
    read_plain = attrgetter(*[f.attname for f in plain])
    read_json = [attrgetter(f.attname) for f in as_json]
    tail = (now,) * len(stamped)
    if len(plain) == 1:

        def row(obj) -> tuple:
            return (read_plain(obj), *[_json(get(obj)) for get in read_json], *tail)
    else:

        def row(obj) -> tuple:
            return (*read_plain(obj), *[_json(get(obj)) for get in read_json], *tail)

    names = [connection.ops.quote_name(f.column) for f in (*plain, *as_json, *stamped)]
    return names, row


def _copy(cursor, table: str, names: list[str], row: Callable[[object], tuple], objs) -> None:
    # The raw psycopg cursor (Django has no COPY); its errors are turned into Django's.
    with connection.wrap_database_errors:
        with cursor.cursor.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy:
            for obj in objs:
                copy.write_row(row(obj))


def copy_models(model: type[models.Model], objs: Sequence[object], *, with_pk: bool = False) -> None:
    """Insert ``objs`` with one COPY (``with_pk``: their primary keys are set, e.g. from ``next_ids``).

    ``objs`` are model instances or any objects carrying every column's attribute (``order_id``,
    not ``order``) — e.g. slotted dataclasses, which cost a fraction of a model instance."""
    if not objs:
        return
    names, row = _columns(model, objs, with_pk)
    with connection.cursor() as cursor:
        _copy(cursor, connection.ops.quote_name(model._meta.db_table), names, row, objs)


def insert_returning(
    model: type[models.Model],
    objs: Sequence[object],
    *,
    conflict: Sequence[str],
    returning: Sequence[str] = ("id",),
) -> list[tuple]:
    """``INSERT … ON CONFLICT (conflict) DO NOTHING RETURNING returning`` for unsaved ``objs``.

    Django's ``bulk_create(ignore_conflicts=True)`` cannot tell which rows went in; this
    returns exactly the inserted rows (a row another transaction inserted first is skipped and
    absent from the result). The rows travel by COPY into a temporary table first."""
    if not objs:
        return []
    meta = model._meta
    table = connection.ops.quote_name(meta.db_table)
    names, row = _columns(model, objs, with_pk=False)
    cols = ", ".join(names)
    target = ", ".join(connection.ops.quote_name(meta.get_field(n).column) for n in conflict)
    back = ", ".join(connection.ops.quote_name(meta.get_field(n).column) for n in returning)
    staging = connection.ops.quote_name(f"ecbao_staging_{meta.db_table}")
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE {staging} ON COMMIT DROP AS SELECT {cols} FROM {table} WITH NO DATA"
        )
        _copy(cursor, staging, names, row, objs)
        cursor.execute(
            f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {staging} "
            f"ON CONFLICT ({target}) DO NOTHING RETURNING {back}"
        )
        rows = cursor.fetchall()
        cursor.execute(f"DROP TABLE {staging}")  # (on failure the rollback removes it)
    return rows


def insert_new(
    model: type[models.Model],
    objs: Sequence[object],
    *,
    conflict: Sequence[str],
    returning: Sequence[str] = ("id",),
) -> list[tuple]:
    """Insert rows that are expected to be new (the caller checked): one COPY straight into
    the table with primary keys drawn from the sequence. If a concurrent writer stored one of
    them meanwhile, the COPY fails as a whole (in a savepoint) and ``insert_returning`` skips
    the existing rows instead. Returns the ``returning`` values of the inserted rows."""
    if not objs:
        return []
    pk = model._meta.pk.attname
    for obj, value in zip(objs, next_ids(model, len(objs)), strict=True):
        setattr(obj, pk, value)
    names = [model._meta.get_field(n).attname for n in returning]
    try:
        with transaction.atomic():
            copy_models(model, objs, with_pk=True)
    except IntegrityError:
        for obj in objs:
            setattr(obj, pk, None)
        return insert_returning(model, objs, conflict=conflict, returning=returning)
    return [tuple(getattr(obj, name) for name in names) for obj in objs]


def next_ids(model: type[models.Model], count: int) -> list[int]:
    """``count`` fresh primary keys from the model's sequence (one round trip), so related rows
    can be built before their parent rows are written."""
    if count <= 0:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [model._meta.db_table, model._meta.pk.column, count],
        )
        return [row[0] for row in cursor.fetchall()]

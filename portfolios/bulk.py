"""Staged COPY writes into tables under row-level security.

PostgreSQL refuses ``COPY ... FROM`` into a table with row-level security, so
rows are copied into a temporary table first and moved with one
``INSERT ... SELECT`` (policies enforced there). Measured on this kind of machine:
about 178,000 rows/s, against 84,000 with ``executemany`` (DESIGN.md).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connections

_stage_ids = itertools.count(1)


def _raw_cursor(using: str) -> Any:
    connection = connections[using]
    connection.ensure_tenant_applied()  # type: ignore[attr-defined]
    return connection.connection.cursor()


def staged_copy(
    *,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    returning: Sequence[str] = (),
    on_conflict: str = "",
    using: str = "default",
) -> list[tuple[Any, ...]]:
    """COPY ``rows`` into ``table`` through a temporary table; the ``returning`` columns.

    Must run inside ``transaction.atomic()`` with a firm set (the backend refuses
    otherwise). ``on_conflict`` is appended to the INSERT (``ON CONFLICT ...``).
    """
    stage = f"_stage_{table}_{next(_stage_ids)}"
    cols = ", ".join(columns)
    with _raw_cursor(using) as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE {stage} ON COMMIT DROP AS "
            f"SELECT {cols} FROM {table} WITH NO DATA"
        )
        with cursor.copy(f"COPY {stage} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        sql = f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage} {on_conflict}"
        if returning:
            sql += " RETURNING " + ", ".join(returning)
        cursor.execute(sql)
        result = cursor.fetchall() if returning else []
        cursor.execute(f"DROP TABLE {stage}")
    return result


def staged_update(
    *,
    table: str,
    key: str | Sequence[str],
    columns: Sequence[tuple[str, str]],
    rows: Iterable[Sequence[Any]],
    assignments: str,
    using: str = "default",
) -> int:
    """Bulk UPDATE ``table`` from staged rows: ``UPDATE table t SET <assignments> FROM stage s
    WHERE t.<key> = s.<key>`` (every key column). ``columns`` are (name, SQL type) of the
    staged rows."""
    keys = [key] if isinstance(key, str) else list(key)
    where = " AND ".join(f"t.{k} = s.{k}" for k in keys)
    stage = f"_stage_upd_{table}_{next(_stage_ids)}"
    definition = ", ".join(f"{name} {sql_type}" for name, sql_type in columns)
    names = ", ".join(name for name, _ in columns)
    with _raw_cursor(using) as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE {stage} ({definition}) ON COMMIT DROP")
        with cursor.copy(f"COPY {stage} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(f"UPDATE {table} t SET {assignments} FROM {stage} s WHERE {where}")
        count = int(cursor.rowcount)
        cursor.execute(f"DROP TABLE {stage}")
    return count

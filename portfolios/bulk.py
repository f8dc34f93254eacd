"""Staged COPY writes into tables under row-level security.

PostgreSQL refuses ``COPY ... FROM`` into a table with row-level security, so
rows are copied into a temporary table first and moved with one
``INSERT ... SELECT`` (policies enforced there). Measured on this kind of machine:
about 178,000 rows/s, against 84,000 with ``executemany`` (DESIGN.md).
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import os
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connections

_stage_ids = itertools.count(1)
_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


@contextlib.contextmanager
def _raw_cursor(using: str) -> Iterator[Any]:
    """The driver's cursor on the tenant-scoped connection; driver errors surface as
    Django's (``IntegrityError`` and the rest), as they do through the ORM."""
    connection = connections[using]
    connection.ensure_tenant_applied()  # type: ignore[attr-defined]
    with connection.wrap_database_errors, connection.connection.cursor() as cursor:
        yield cursor


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

    def fill(copy: Any) -> None:
        for row in rows:
            copy.write_row(row)

    return _staged_insert(
        table=table,
        columns=columns,
        fill=fill,
        returning=returning,
        on_conflict=on_conflict,
        using=using,
    )


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})

#: COPY's text format for NULL.
COPY_NULL = "\\N"
#: How a bytea field in hex starts in COPY's text format (the backslash escaped).
COPY_BYTEA_PREFIX = "\\\\x"


def copy_escape(text: str) -> str:
    """``text`` as one field of COPY's text format (backslash, tab and newlines escaped)."""
    # Most fields (JSON among them) have nothing to escape; four scans cost less than
    # translating a copy of each (a run state is 1.7 kB of JSON).
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return text.translate(_COPY_ESCAPES)
    return text


def staged_copy_text(
    *,
    table: str,
    columns: Sequence[str],
    lines: Iterable[str],
    returning: Sequence[str] = (),
    using: str = "default",
) -> list[tuple[Any, ...]]:
    """Like :func:`staged_copy`, for rows already rendered as lines of COPY's text
    format (tab-separated, escaped with :func:`copy_escape`, each ending in a newline);
    rendering a chunk's columns at once is several times faster than ``write_row``."""
    return _staged_insert(
        table=table,
        columns=columns,
        fill=lambda copy: copy.write("".join(lines)),
        returning=returning,
        on_conflict="",
        using=using,
    )


def _staged_insert(
    *,
    table: str,
    columns: Sequence[str],
    fill: Callable[[Any], None],
    returning: Sequence[str],
    on_conflict: str,
    using: str,
) -> list[tuple[Any, ...]]:
    with _raw_cursor(using) as cursor:
        return _stage_and_insert(
            cursor,
            table=table,
            columns=columns,
            fill=fill,
            returning=returning,
            on_conflict=on_conflict,
        )


def _stage_and_insert(
    cursor: Any,
    *,
    table: str,
    columns: Sequence[str],
    fill: Callable[[Any], None],
    returning: Sequence[str] = (),
    on_conflict: str = "",
) -> list[tuple[Any, ...]]:
    """A temporary table shaped like ``table``'s ``columns``, filled by ``fill(copy)``,
    moved with one ``INSERT ... SELECT`` (row-level security enforced there)."""
    stage = f"_stage_{table}_{next(_stage_ids)}"
    cols = ", ".join(columns)
    cursor.execute(
        f"CREATE TEMPORARY TABLE {stage} ON COMMIT DROP AS SELECT {cols} FROM {table} WITH NO DATA"
    )
    with cursor.copy(f"COPY {stage} ({cols}) FROM STDIN") as copy:
        fill(copy)
    sql = f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage} {on_conflict}"
    if returning:
        sql += " RETURNING " + ", ".join(returning)
    cursor.execute(sql)
    result = cursor.fetchall() if returning else []
    cursor.execute(f"DROP TABLE {stage}")
    return result


#: Seconds a thread may hold the GIL while the write-behind thread waits for it.
WRITER_SWITCH_INTERVAL = 0.0005


class WriteBehind:
    """Staged inserts (as :func:`staged_copy_text`) run by a background thread, in the
    order submitted, on the caller's connection and in its transaction, while the
    caller goes on computing.

    A batch worker is one Python process and one PostgreSQL backend that otherwise
    take turns: the backend idles while Python renders rows, Python idles while the
    backend inserts them. Writing behind keeps both cores busy. psycopg connections
    are thread-safe (each statement holds the connection's lock), so a query the
    caller makes meanwhile waits its turn. Use it through :func:`write_behind`, which
    joins the thread and re-raises the first error before the transaction ends.
    """

    def __init__(self, using: str, *, background: bool = True) -> None:
        self._using = using
        self._connection = connections[using]
        self._connection.ensure_tenant_applied()  # type: ignore[attr-defined]
        self._raw = self._connection.connection
        self._jobs: queue.SimpleQueue[tuple[str, tuple[str, ...], str] | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._running = background  # else each insert runs in the caller's thread
        if not background:
            return
        # The writer needs the GIL for a moment between blocks of COPY data; at the
        # default 5 ms switch interval it queued behind the caller's rendering and a
        # chunk's inserts took 40% longer. Restored when the writer stops.
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, WRITER_SWITCH_INTERVAL))
        self._thread = threading.Thread(target=self._work, name="write-behind", daemon=True)
        self._thread.start()

    def insert(self, *, table: str, columns: Sequence[str], lines: Iterable[str]) -> None:
        """Queue ``lines`` (COPY text, as for :func:`staged_copy_text`) for ``table``."""
        text = "".join(lines)
        if not text:
            return
        if not self._running:
            staged_copy_text(table=table, columns=columns, lines=(text,), using=self._using)
            return
        self._jobs.put((table, tuple(columns), text))

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            if self._error is not None:
                continue  # the transaction is lost; skip the rest
            table, columns, text = job
            try:
                with self._raw.cursor() as cursor:
                    _stage_and_insert(cursor, table=table, columns=columns, fill=_writer_of(text))
            except BaseException as exc:  # re-raised in the caller's thread by drain()
                self._error = exc

    def _stop(self) -> None:
        if self._running:
            self._running = False
            self._jobs.put(None)
            self._thread.join()
            sys.setswitchinterval(self._switch_interval)

    def drain(self) -> None:
        """Wait for every queued insert; raise the first error, as Django raises it."""
        self._stop()
        if self._error is not None:
            error, self._error = self._error, None
            with self._connection.wrap_database_errors:
                raise error

    def abandon(self) -> None:
        """Skip what is still queued and wait for the statement in flight; the caller's
        transaction is about to roll back."""
        if self._error is None:
            self._error = _Abandoned()
        self._stop()


def _writer_of(text: str) -> Callable[[Any], None]:
    return lambda copy: copy.write(text)


class _Abandoned(Exception):
    pass


#: Processes computing chunks on this host: 1 when runs are computed in-process (the
#: commands, eager Celery), the worker's concurrency in a Celery worker
#: (``advisor.celery``), the benchmark's worker count in its forked workers.
_host_workers = 1


def host_workers_set(count: int) -> None:
    global _host_workers
    _host_workers = max(1, count)


def spare_cores() -> bool:
    """Whether this host has cores beyond its chunk workers' own, for writing behind.

    Writing behind costs CPU (a thread, and the GIL handed over more often): a worker
    that has a core to itself besides its database backend's finishes a chunk sooner;
    workers that already fill the machine finish sooner writing inline (measured with
    ``bench_rebalance``: 2 workers on 2 cores took 15% longer writing behind).
    ``settings.REBALANCE_WRITE_BEHIND`` (True or False) overrides the choice."""
    forced = getattr(settings, "REBALANCE_WRITE_BEHIND", None)
    if forced is not None:
        return bool(forced)
    return _host_workers < (os.cpu_count() or 1)


@contextlib.contextmanager
def write_behind(*, using: str = "default", background: bool = True) -> Iterator[WriteBehind]:
    """A :class:`WriteBehind` whose inserts have all run (or raised) on leaving the
    block; must be used inside ``transaction.atomic()`` with a firm set. Without
    ``background`` each insert runs when it is queued, in the caller's thread."""
    writer = WriteBehind(using, background=background)
    try:
        yield writer
    except BaseException:
        writer.abandon()
        raise
    writer.drain()


def map_on_connections(
    work: Callable[[_Item], _Result],
    items: Sequence[_Item],
    *,
    threads: int,
    using: str = "default",
) -> list[_Result]:
    """``work(item)`` for every item, in ``threads`` threads that each open their own
    database connection (closed when the thread ends) and carry the caller's context
    (firm, user); the results in the items' order. The first error is raised once every
    thread has stopped.

    For reads that keep PostgreSQL busy (the drift scan): the database works on two
    items at once while Python works on a third. Inside a transaction the other
    connections would not see its uncommitted rows, so there the items are worked on
    one by one in the caller's thread, as with ``threads`` 1."""
    if threads <= 1 or len(items) <= 1 or connections[using].in_atomic_block:
        return [work(item) for item in items]
    results: list[_Result | None] = [None] * len(items)
    errors: list[BaseException] = []
    lock = threading.Lock()
    pending = iter(range(len(items)))

    def drain_items() -> None:
        try:
            while not errors:
                with lock:
                    index = next(pending, None)
                if index is None:
                    return
                results[index] = work(items[index])
        except BaseException as exc:  # re-raised in the caller's thread below
            errors.append(exc)
        finally:
            connections.close_all()  # this thread's own

    workers = [
        threading.Thread(target=contextvars.copy_context().run, args=(drain_items,))
        for _ in range(min(threads, len(items)))
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    return results  # type: ignore[return-value]


def ids_allocate(*, table: str, count: int, using: str = "default") -> np.ndarray[Any, Any]:
    """``count`` fresh ids from the sequence of ``table``'s ``id`` column, ascending,
    for rows written by COPY that other rows of the same batch refer to."""
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    with _raw_cursor(using) as cursor:
        # The sequence is looked up once: pg_get_serial_sequence() inside the select
        # list would be evaluated again for every id (a catalog lookup each, 7x slower).
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
        (sequence,) = cursor.fetchone()
        # Packed into one binary value, as arrays_fetch reads: a row per id cost 2 us
        # each in the driver, five times drawing the id.
        cursor.execute(
            "SELECT string_agg(int8send(id), ''::bytea ORDER BY id) "
            "FROM (SELECT nextval(%s::regclass) AS id FROM generate_series(1, %s)) AS drawn",
            [sequence, count],
        )
        (packed,) = cursor.fetchone()
    return np.frombuffer(bytes(packed), dtype=">i8").astype(np.int64)


def rows_fetch(queryset: Any, *, using: str = "default") -> list[tuple[Any, ...]]:
    """All rows of a ``values_list`` queryset as plain tuples, straight from the driver.

    For the large reads of a batch (a chunk's holdings and lots): Django's per-row
    iteration costs more than the query. The SQL is the queryset's own, run on the
    same tenant-scoped connection, so row-level security applies as usual. No field
    converters run, so select text (``Cast(..., TextField())``) where exact decimals
    matter.
    """
    try:
        sql, params = queryset.query.sql_with_params()
    except EmptyResultSet:  # an empty IN list: nothing to ask
        return []
    with _raw_cursor(using) as cursor:
        cursor.execute(sql, params)
        rows: list[tuple[Any, ...]] = cursor.fetchall()
    return rows


def arrays_fetch(
    queryset: Any, *, kinds: str, using: str = "default"
) -> tuple[np.ndarray[Any, Any], ...]:
    """The columns of a ``values_list`` queryset as numpy arrays.

    ``kinds`` names each column's type: ``i`` for bigint, ``f`` for double precision
    (each column is cast to it). PostgreSQL packs the rows
    into one binary value (``int8send``/``float8send``, aggregated), which numpy reads
    as one buffer, without a Python object per value: for the drift scan, which
    reads every holding of the book. Row-level security applies as for any query of
    the tenant-scoped connection. A NULL is refused.
    """
    if not kinds or set(kinds) - {"i", "f"}:
        raise ValueError(f"kinds: {kinds!r}, expected a string of 'i' and 'f'")
    dtype = np.dtype([(f"c{j}", ">i8" if k == "i" else ">f8") for j, k in enumerate(kinds)])
    names = [f"c{j}" for j in range(len(kinds))]
    packed = " || ".join(
        f"int8send({name}::bigint)" if k == "i" else f"float8send({name}::float8)"
        for name, k in zip(names, kinds, strict=True)
    )
    data = b""
    try:
        sql, params = queryset.query.sql_with_params()
    except EmptyResultSet:
        pass
    else:
        with _raw_cursor(using) as cursor:
            not_null = " AND ".join(f"{name} IS NOT NULL" for name in names)
            cursor.execute(
                f"SELECT count(*), count(*) FILTER (WHERE {not_null}), "
                f"string_agg({packed}, ''::bytea) "
                f"FROM ({sql}) AS q({', '.join(names)})",
                params,
            )
            rows, complete, value = cursor.fetchone()
            if rows != complete:
                raise ValueError("arrays_fetch: a selected column is NULL")
            data = bytes(value or b"")
    rows_of = np.frombuffer(data, dtype=dtype)
    return tuple(
        rows_of[name].astype(np.int64 if k == "i" else np.float64)
        for name, k in zip(names, kinds, strict=True)
    )


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

"""Queries of a chunk's rows by id, and a chunk's work without the cyclic collector."""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from django.db.models import F, Lookup, Q


class AnyOf(Lookup):
    """``field = ANY(%s)`` with the ids as one array parameter.

    The same plan as ``field IN (...)`` (PostgreSQL rewrites IN lists to ``= ANY``),
    without a placeholder per id: a chunk's IN list of thousands of ids cost more
    time building and splitting the query in Python than PostgreSQL took to run it.
    """

    lookup_name = "any_of"
    prepare_rhs = False

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, tuple[Any, ...]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        # The array as its text literal: the driver's list adapter is a Python loop.
        array = "{" + ",".join(map(str, map(int, self.rhs))) + "}"
        return f"{lhs} = ANY(%s::bigint[])", (*lhs_params, array)


def in_ids(field: str, ids: Iterable[int]) -> Q:
    """``field IN ids``, with the ids' range beside it.

    Fresh rows have no column statistics yet (a batch just loaded, a benchmark in one
    transaction); the planner then takes a long IN list as matching most of the table
    and scans all of it, for every chunk. The range is selective even then, so the
    index on ``field`` is used; with statistics it changes nothing.
    """
    values = sorted(set(ids))
    if not values:
        return Q(**{f"{field}__in": []})
    return Q(AnyOf(F(field), values), **{f"{field}__gte": values[0], f"{field}__lte": values[-1]})


def chunked(ids: Sequence[int], size: int) -> list[list[int]]:
    """``ids`` in consecutive chunks of at most ``size``."""
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


_pause_lock = threading.Lock()
_pauses = 0
_enabled_before = False


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a chunk is worked on.

    A chunk allocates millions of small objects (rows, strings, Decimals) that live
    until it ends; each collection walks all of them, again and again as they age:
    measured, about a tenth of a drift scan's and a chunk's time. Nearly all of it is
    freed by reference counting anyway, and a chunk is bounded, so the cycles it
    leaves wait for the collector until the chunk ends. Threads share the collector:
    it is turned back on when the last of them leaves.
    """
    global _pauses, _enabled_before
    with _pause_lock:
        if _pauses == 0:
            _enabled_before = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pauses -= 1
            if _pauses == 0 and _enabled_before:
                gc.enable()

"""Queries of a chunk's rows by id."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db.models import Q


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
    return Q(**{f"{field}__in": values, f"{field}__gte": values[0], f"{field}__lte": values[-1]})


def chunked(ids: Sequence[int], size: int) -> list[list[int]]:
    """``ids`` in consecutive chunks of at most ``size``."""
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]

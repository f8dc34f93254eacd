"""Streaming CSV answers for the console and the API.

The rows are produced while the response is sent, after the view (and the request's
transaction) has returned, so the generator opens its own transaction in the firm:
row-level security sees the firm, and the server-side cursor behind ``.iterator()``
lives as long as the download. Rows are written in batches, one chunk of the answer
each, so memory stays flat whatever the number of rows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from django.db import transaction
from django.http import StreamingHttpResponse

from accounts.models import Firm
from accounts.tenancy.context import firm_context

BATCH_ROWS = 500


def _safe(value: Any) -> Any:
    """Neutralise spreadsheet formulas (CSV injection): a cell starting with = + - @."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def csv_chunks(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for count, row in enumerate(rows, start=1):
        writer.writerow([_safe(v) for v in row])
        if count % BATCH_ROWS == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def csv_stream_response(
    *,
    firm: Firm,
    filename: str,
    header: Sequence[str],
    rows: Callable[[], Iterable[Sequence[Any]]],
) -> StreamingHttpResponse:
    """A ``text/csv`` download whose ``rows()`` are read, inside ``firm``, as it is sent."""

    def body() -> Iterator[str]:
        with firm_context(firm), transaction.atomic():
            yield from csv_chunks(header, rows())

    response = StreamingHttpResponse(body(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response

"""Reading price files, and flagging suspicious moves. No Django here.

Formats, detected from the header line (see ``../shared/data/README.md``):

``crypto_daily``
    ``Date,Close,High,Low,Open,Volume`` — one asset per file, the symbol is the file
    name (``BTC.csv``); dates ``YYYY-MM-DD``.
``stocks_daily``
    ``Date,Open,High,Low,Close,Volume,Dividends,Stock Splits`` — one asset per file;
    dates carry a time and a UTC offset (``2025-02-11 00:00:00-05:00``). The price date
    is the calendar date *in the exchange's own offset* (the date part): converting to
    UTC first would move nothing here (midnight New York is 04:00/05:00 UTC the same
    day), and it is the trading day the close belongs to.
``etf_monthly``
    ``Date,Open,High,Low,Close,Adj Close,Volume`` — one asset per file, one row per
    month dated the first of the month. The stored close is ``Adj Close`` (like the
    other formats' closes it is adjusted for splits and distributions, so returns are
    total returns), and a monthly price is dated the **last calendar day of its month**:
    the close of a monthly bar is the month-end close.

    *The partial last month.* These downloads end with a row dated mid-month (the day
    of the download, e.g. ``2021-06-11``) after the row of that same, unfinished month
    (``2021-06-01``). Its close is not a month-end close, and mixing it with month-end
    closes would make the last monthly return a part-month return. Both rows of the
    unfinished month are therefore **left out** and reported as skipped
    (:attr:`ParsedFile.skipped`); the next download, once the month is over, brings it.
    A mid-month date anywhere but the last row is malformed.
``wide_daily``
    ``Date,AAPL,AMD,...`` — one column of closes per ticker (``sp500_daily.csv``). An
    empty cell means no price that day (the asset was not listed yet).

Anything malformed is refused with :class:`PriceFileError`, which names the file and
the line (1 = the header): an unknown header, a missing or extra column, a bad date, a
non-numeric, zero or negative close, a negative volume, a duplicate date. Nothing of a
refused file is returned.
"""

from __future__ import annotations

import calendar
import csv
import datetime as dt
import hashlib
import io
import itertools
import math
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import PurePath

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

DAILY = "daily"
MONTHLY = "monthly"

#: Stored closes keep this many decimal places (the model's ``decimal_places``).
CLOSE_PLACES = 10
_QUANTUM = Decimal(1).scaleb(-CLOSE_PLACES)
#: Digits before the decimal point a close may have (the model: 28 digits, 10 places).
MAX_CLOSE_DIGITS = 18
MAX_VOLUME = 2**63  # a PostgreSQL bigint

CRYPTO_HEADER = ("Date", "Close", "High", "Low", "Open", "Volume")
STOCKS_HEADER = ("Date", "Open", "High", "Low", "Close", "Volume", "Dividends", "Stock Splits")
ETF_HEADER = ("Date", "Open", "High", "Low", "Close", "Adj Close", "Volume")

_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9.\-]{0,19}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME_TZ = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T]\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)$")


@dataclass(frozen=True)
class FileFormat:
    name: str
    frequency: str
    header: tuple[str, ...] | None  # None: the wide format (Date + tickers)
    close_column: str
    volume_column: str | None
    dates: str  # "date" or "datetime_tz"


FORMATS: tuple[FileFormat, ...] = (
    FileFormat("crypto_daily", DAILY, CRYPTO_HEADER, "Close", "Volume", "date"),
    FileFormat("stocks_daily", DAILY, STOCKS_HEADER, "Close", "Volume", "datetime_tz"),
    FileFormat("etf_monthly", MONTHLY, ETF_HEADER, "Adj Close", "Volume", "date"),
)
WIDE = FileFormat("wide_daily", DAILY, None, "", None, "date")


class PriceFileError(ValueError):
    """A malformed price file: ``<file>, line <n>: <what is wrong>``."""

    def __init__(self, file: str, line: int, message: str) -> None:
        self.file = file
        self.line = line
        self.reason = message
        super().__init__(f"{file}, line {line}: {message}")


@dataclass(frozen=True)
class PriceRow:
    date: dt.date
    close: Decimal
    volume: int | None
    line: int  # line of the file it came from (for messages about it later)


@dataclass(frozen=True)
class ParsedSeries:
    symbol: str
    frequency: str
    rows: tuple[PriceRow, ...]  # sorted by date


@dataclass(frozen=True)
class SkippedRow:
    line: int
    reason: str


@dataclass(frozen=True)
class ParsedFile:
    name: str
    format: str
    content_hash: str  # sha256 of the bytes read
    series: tuple[ParsedSeries, ...]
    skipped: tuple[SkippedRow, ...] = ()

    @property
    def row_count(self) -> int:
        return sum(len(s.rows) for s in self.series)


def content_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def symbol_from_name(name: str) -> str:
    """``.../BRK-B.csv`` -> ``BRK-B``."""
    return PurePath(name).stem.upper()


def detect_format(header: Sequence[str]) -> FileFormat | None:
    cells = tuple(cell.strip() for cell in header)
    for candidate in FORMATS:
        if cells == candidate.header:
            return candidate
    if (
        len(cells) >= 2
        and cells[0] == "Date"
        and all(_SYMBOL.match(cell) for cell in cells[1:])
        and not set(cells[1:]) & {"OPEN", "HIGH", "LOW", "CLOSE", "VOLUME"}
    ):
        return WIDE
    return None


def _describe_known_headers() -> str:
    known = "; ".join(",".join(f.header) for f in FORMATS if f.header)
    return f"{known}; or Date followed by one column per ticker"


def _parse_date(text: str, kind: str, file: str, line: int) -> dt.date:
    value = text.strip()
    try:
        if kind == "date":
            if not _DATE.match(value):
                raise ValueError
            return dt.date.fromisoformat(value)
        match = _DATETIME_TZ.match(value)
        if not match:
            raise ValueError
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))  # the whole must be valid
        return dt.date.fromisoformat(match.group(1))
    except ValueError:
        expected = "YYYY-MM-DD" if kind == "date" else "YYYY-MM-DD HH:MM:SS+HH:MM"
        raise PriceFileError(file, line, f"bad date {value!r} (expected {expected})") from None


def _parse_close(text: str, column: str, file: str, line: int) -> Decimal:
    value = text.strip()
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise PriceFileError(file, line, f"{column} {value!r} is not a number") from None
    if not number.is_finite():
        raise PriceFileError(file, line, f"{column} {value!r} is not a number")
    if number <= 0:
        raise PriceFileError(file, line, f"{column} {value} is not a positive price")
    if number.adjusted() >= MAX_CLOSE_DIGITS:
        raise PriceFileError(file, line, f"{column} {value} is too large for a price")
    rounded = number.quantize(_QUANTUM)
    if rounded <= 0:
        raise PriceFileError(file, line, f"{column} {value} rounds to zero")
    return rounded


def _parse_volume(text: str, column: str, file: str, line: int) -> int | None:
    value = text.strip()
    if not value:
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise PriceFileError(file, line, f"{column} {value!r} is not a number") from None
    if not number.is_finite() or number < 0:
        raise PriceFileError(file, line, f"{column} {value!r} is not a volume (>= 0)")
    if number >= MAX_VOLUME:
        raise PriceFileError(file, line, f"{column} {value} is too large for a volume")
    return int(number)


def _month_end(day: dt.date) -> dt.date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def _read_lines(file: str, data: bytes | str) -> list[list[str]]:
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise PriceFileError(file, line, "not UTF-8 text") from None
    else:
        text = data.removeprefix("\ufeff")
    try:
        return list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise PriceFileError(file, 0, f"not CSV ({exc})") from None


def parse_price_file(name: str, data: bytes | str, *, symbol: str | None = None) -> ParsedFile:
    """Parse one price file; ``name`` is used in messages and for the symbol.

    ``symbol`` overrides the symbol read from the file name (single-asset formats).
    Raises :class:`PriceFileError` naming ``name`` and the line.
    """
    raw = data if isinstance(data, bytes) else data.encode()
    rows = _read_lines(name, data)
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise PriceFileError(name, 1, "empty file: no header line")
    header = [cell.strip() for cell in rows[0]]
    fmt = detect_format(header)
    if fmt is None:
        missing = _closest_missing(header)
        hint = f"missing column {missing!r}; " if missing else ""
        raise PriceFileError(
            name,
            1,
            f"unknown header {','.join(header)!r}: {hint}expected {_describe_known_headers()}",
        )
    if fmt is WIDE:
        if len(set(header)) != len(header):
            duplicate = next(c for c in header if header.count(c) > 1)
            raise PriceFileError(name, 1, f"column {duplicate!r} appears twice")
        return _parse_wide(name, raw, header, rows)
    return _parse_single(name, raw, fmt, rows, symbol or symbol_from_name(name))


def _closest_missing(header: Sequence[str]) -> str | None:
    """The column a near-miss header lacks (the known header sharing most columns)."""
    best: tuple[int, str | None] = (0, None)
    present = set(header)
    for fmt in FORMATS:
        assert fmt.header is not None
        shared = len(present & set(fmt.header))
        missing = [c for c in fmt.header if c not in present]
        if shared > best[0] and missing:
            best = (shared, missing[0])
    return best[1]


def _parse_single(
    name: str, raw: bytes, fmt: FileFormat, rows: list[list[str]], symbol: str
) -> ParsedFile:
    assert fmt.header is not None
    if not _SYMBOL.match(symbol):
        raise PriceFileError(name, 1, f"symbol {symbol!r} (from the file name) is not a ticker")
    width = len(fmt.header)
    date_at = 0
    close_at = fmt.header.index(fmt.close_column)
    volume_at = fmt.header.index(fmt.volume_column) if fmt.volume_column else None
    seen: dict[dt.date, int] = {}
    parsed: list[PriceRow] = []
    source_dates: list[dt.date] = []
    for index, cells in enumerate(rows[1:], start=2):
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue  # a blank line (a trailing newline)
        if len(cells) != width:
            raise PriceFileError(name, index, f"{len(cells)} columns where the header has {width}")
        day = _parse_date(cells[date_at], fmt.dates, name, index)
        if day in seen:
            raise PriceFileError(
                name, index, f"duplicate date {day.isoformat()} (first on line {seen[day]})"
            )
        seen[day] = index
        close = _parse_close(cells[close_at], fmt.close_column, name, index)
        volume = (
            _parse_volume(cells[volume_at], fmt.header[volume_at], name, index)
            if volume_at is not None
            else None
        )
        parsed.append(PriceRow(day, close, volume, index))
        source_dates.append(day)
    skipped: list[SkippedRow] = []
    if fmt.frequency == MONTHLY:
        parsed, skipped = _monthly(name, parsed)
    parsed.sort(key=lambda r: r.date)
    series = (ParsedSeries(symbol, fmt.frequency, tuple(parsed)),)
    return ParsedFile(name, fmt.name, content_sha256(raw), series, tuple(skipped))


def _monthly(name: str, parsed: list[PriceRow]) -> tuple[list[PriceRow], list[SkippedRow]]:
    """Month-start rows -> month-end dated rows; the partial last month is left out."""
    skipped: list[SkippedRow] = []
    if parsed and parsed[-1].date.day != 1:
        last = parsed[-1]
        partial = (last.date.year, last.date.month)
        keep = []
        for row in parsed:
            if (row.date.year, row.date.month) == partial:
                skipped.append(
                    SkippedRow(
                        row.line,
                        f"partial month {last.date:%Y-%m} (data as of {last.date.isoformat()}) "
                        "left out: its close is not a month-end close",
                    )
                )
            else:
                keep.append(row)
        parsed = keep
    out = []
    for row in parsed:
        if row.date.day != 1:
            raise PriceFileError(
                name,
                row.line,
                f"monthly row dated {row.date.isoformat()}: a monthly file has one row per "
                "month dated the first (only its last row may be a mid-month date)",
            )
        out.append(PriceRow(_month_end(row.date), row.close, row.volume, row.line))
    return out, skipped


def _parse_wide(name: str, raw: bytes, header: list[str], rows: list[list[str]]) -> ParsedFile:
    symbols = header[1:]
    columns: list[list[PriceRow]] = [[] for _ in symbols]
    seen: dict[dt.date, int] = {}
    width = len(header)
    for index, cells in enumerate(rows[1:], start=2):
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue
        if len(cells) != width:
            raise PriceFileError(name, index, f"{len(cells)} columns where the header has {width}")
        day = _parse_date(cells[0], "date", name, index)
        if day in seen:
            raise PriceFileError(
                name, index, f"duplicate date {day.isoformat()} (first on line {seen[day]})"
            )
        seen[day] = index
        for position, cell in enumerate(cells[1:]):
            if not cell.strip():
                continue  # no price that day
            close = _parse_close(cell, symbols[position], name, index)
            columns[position].append(PriceRow(day, close, None, index))
    series = tuple(
        ParsedSeries(symbol, DAILY, tuple(sorted(column, key=lambda r: r.date)))
        for symbol, column in zip(symbols, columns, strict=True)
    )
    return ParsedFile(name, WIDE.name, content_sha256(raw), series)


# --- outliers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutlierRule:
    """A move is held for review when ``|log return| > sigmas * std`` of the asset's
    recent accepted log returns (the last ``window`` of them, at least ``min_periods``)
    and also larger than ``min_move`` (a floor, so that a stablecoin's 0.3% wiggle is
    not "20 standard deviations")."""

    sigmas: float = 8.0
    window: int = 60
    min_periods: int = 20
    min_move: float = 0.02


@dataclass(frozen=True)
class Outlier:
    index: int  # position in the ``new`` closes
    log_return: float
    sigma: float
    reason: str


@dataclass
class _Window:
    """The last ``size`` accepted log returns; the deviation is computed exactly (two
    passes, ``math.fsum``) when asked, so that it does not depend on how the window
    was filled."""

    size: int
    values: deque[float] = field(default_factory=deque)

    def push(self, value: float) -> None:
        self.values.append(value)
        if len(self.values) > self.size:
            self.values.popleft()

    def std(self) -> float:
        n = len(self.values)
        if n < 2:
            return math.nan
        mean = math.fsum(self.values) / n
        return math.sqrt(math.fsum((v - mean) ** 2 for v in self.values) / (n - 1))


def find_outliers(
    history: Sequence[float], new: Sequence[float], rule: OutlierRule | None = None
) -> list[Outlier]:
    """Moves among ``new`` closes (in date order) beyond ``rule``.

    ``history`` are the asset's accepted closes just before ``new`` (oldest first), so
    that the first new prices are judged against the stored ones. A held price does not
    enter the window. The move after a held price is accepted when it is ordinary
    either against the held price (the jump was a lasting level change: only the jump
    day is held) or against the last accepted price (the jump reverted: only the spike
    is held).
    """
    rule = rule or OutlierRule()
    keep = rule.window + 1
    accepted = list(history)[-keep:]  # the last accepted closes, oldest first
    found: list[Outlier] = []
    position, count = 0, len(new)
    while position < count:
        # Vectorised scan for the next move that might break the rule ...
        skip = _first_candidate(accepted, new[position:], rule)
        if skip is None:
            break
        accepted = [*accepted, *new[position : position + skip]][-keep:]
        position += skip
        # ... then judged one by one until a close is accepted again.
        previous: float | None = None  # the raw previous close when it was held
        while position < count:
            close = new[position]
            outlier = _judge(accepted, previous, close, position, rule)
            position += 1
            if outlier is None:
                accepted = [*accepted, close][-keep:]
                break
            found.append(outlier)
            previous = close
    return found


def _judge(
    accepted: list[float],
    held_previous: float | None,
    close: float,
    position: int,
    rule: OutlierRule,
) -> Outlier | None:
    """The outlier ``close`` is, or None when it is accepted (see :func:`find_outliers`)."""
    if not accepted:
        return None
    last = accepted[-1]
    move = math.log(close / (held_previous if held_previous is not None else last))
    against_accepted = math.log(close / last)
    if abs(move) <= rule.min_move or (
        held_previous is not None and abs(against_accepted) <= rule.min_move
    ):
        return None
    returns = [math.log(b / a) for a, b in itertools.pairwise(accepted)]
    if len(returns) < max(rule.min_periods, 2):
        return None
    mean = math.fsum(returns) / len(returns)
    sigma = math.sqrt(math.fsum((r - mean) ** 2 for r in returns) / (len(returns) - 1))
    limit = max(rule.sigmas * sigma, rule.min_move)
    if abs(move) <= limit or (held_previous is not None and abs(against_accepted) <= limit):
        return None
    times = f"{abs(move) / sigma:.1f}" if sigma > 0 else "infinitely many"
    return Outlier(
        position,
        move,
        sigma,
        f"move of {math.expm1(move):+.1%} is {times} standard deviations of the last "
        f"{len(returns)} returns (limit {rule.sigmas:g})",
    )


def _first_candidate(
    history: Sequence[float], new: Sequence[float], rule: OutlierRule
) -> int | None:
    """Position in ``new`` of the first move that might break the rule (vectorised).

    Judged against the plain rolling window of every earlier move, with a margin, so
    that no move the exact sequential rule would hold comes before it.
    """
    closes = np.asarray([*history, *new], dtype=float)
    if len(closes) < 2:
        return None
    moves = np.diff(np.log(closes))  # moves[j]: into closes[j + 1]
    std = (
        pd.Series(moves)
        .rolling(rule.window, min_periods=max(rule.min_periods, 2))
        .std()
        .shift(1)
        .to_numpy()
    )
    with np.errstate(invalid="ignore"):
        limit = np.maximum(rule.sigmas * std, rule.min_move) * 0.999
        candidate = np.abs(moves) > limit
    candidate[: max(len(history) - 1, 0)] = False  # moves into stored closes: not ours
    found = np.flatnonzero(candidate)
    return None if len(found) == 0 else int(found[0]) + 1 - len(history)


def _sequential(history: Sequence[float], new: Sequence[float], rule: OutlierRule) -> list[Outlier]:
    window = _Window(rule.window)
    last_accepted: float | None = None
    previous: float | None = None  # the raw previous close, held or not
    for close in history:
        if last_accepted is not None:
            window.push(math.log(close / last_accepted))
        last_accepted = previous = close
    found: list[Outlier] = []
    previous_held = False
    for position, close in enumerate(new):
        if last_accepted is None or previous is None:
            last_accepted = previous = close
            continue
        move = math.log(close / previous)
        big = abs(move) > rule.min_move or (
            previous_held and abs(math.log(close / last_accepted)) > rule.min_move
        )
        # Below the floor nothing is held: the deviation is only needed for big moves.
        sigma = window.std() if big else math.nan
        judged = big and len(window.values) >= rule.min_periods and not math.isnan(sigma)

        def beyond(value: float, sigma: float = sigma, judged: bool = judged) -> bool:
            return judged and abs(value) > max(rule.sigmas * sigma, rule.min_move)

        held = beyond(move)
        if held and previous_held:
            held = beyond(math.log(close / last_accepted))
        if held:
            times = f"{abs(move) / sigma:.1f}" if sigma > 0 else "infinitely many"
            found.append(
                Outlier(
                    position,
                    move,
                    sigma,
                    f"move of {math.expm1(move):+.1%} is {times} standard "
                    f"deviations of the last {len(window.values)} returns "
                    f"(limit {rule.sigmas:g})",
                )
            )
        else:
            window.push(math.log(close / last_accepted))
            last_accepted = close
        previous = close
        previous_held = held
    return found

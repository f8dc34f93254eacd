"""The pure price-file reader and the outlier rule (no database)."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portfolios.engine.prices_io import (
    OutlierRule,
    PriceFileError,
    _sequential,
    detect_format,
    find_outliers,
    parse_price_file,
)


def _format(header: list[str]) -> str | None:
    found = detect_format(header)
    return None if found is None else found.name


def test_formats_are_detected_from_the_header() -> None:
    assert _format(["Date", "Close", "High", "Low", "Open", "Volume"]) == "crypto_daily"
    stocks = ["Date", "Open", "High", "Low", "Close", "Volume", "Dividends", "Stock Splits"]
    assert _format(stocks) == "stocks_daily"
    etf = ["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"]
    assert _format(etf) == "etf_monthly"
    assert _format(["Date", "AAPL", "BRK-B"]) == "wide_daily"
    assert _format(["Date", "Open", "Close"]) is None
    assert _format(["Day", "AAPL"]) is None


def test_stock_dates_keep_the_exchange_calendar_date() -> None:
    text = (
        "Date,Open,High,Low,Close,Volume,Dividends,Stock Splits\n"
        "2024-03-08 00:00:00-05:00,1,1,1,10.5,7,0,0\n"
        "2024-03-11 00:00:00-04:00,1,1,1,11,8,0.25,0\n"
    )
    parsed = parse_price_file("brk-b.csv", text)
    (series,) = parsed.series
    assert series.symbol == "BRK-B"
    assert [r.date for r in series.rows] == [dt.date(2024, 3, 8), dt.date(2024, 3, 11)]
    assert series.rows[0].close == Decimal("10.5")


def test_partial_last_month_is_left_out_and_reported() -> None:
    text = (
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2021-04-01,1,1,1,9,8.5,1\n"
        "2021-05-01,1,1,1,10,9.5,1\n"
        "2021-05-14,1,1,1,10,10,1"
    )
    parsed = parse_price_file("BND.csv", text)
    (series,) = parsed.series
    assert [(r.date, r.close) for r in series.rows] == [(dt.date(2021, 4, 30), Decimal("8.5"))]
    assert [s.line for s in parsed.skipped] == [3, 4]
    assert "partial month 2021-05" in parsed.skipped[0].reason


def test_wide_files_allow_empty_cells_and_refuse_bad_ones() -> None:
    parsed = parse_price_file("wide.csv", "Date,A,B\r\n2020-01-02,,2\r\n2020-01-03,1,2\r\n")
    assert {s.symbol: len(s.rows) for s in parsed.series} == {"A": 1, "B": 2}
    with pytest.raises(PriceFileError, match=r"wide\.csv, line 3: B 0 is not a positive price"):
        parse_price_file("wide.csv", "Date,A,B\n2020-01-02,1,2\n2020-01-03,1,0\n")
    with pytest.raises(PriceFileError, match="column 'A' appears twice"):
        parse_price_file("wide.csv", "Date,A,A\n2020-01-02,1,2\n")


@pytest.mark.parametrize(
    ("data", "line", "message"),
    [
        (b"", 1, "empty file"),
        (b"Date,Close,High,Low,Open,Volume\n2024-01-01,\xff,1,1,1,1\n", 2, "not UTF-8"),
        (b"Date,Close,High,Low,Open,Volume\n2024-01-01,nan,1,1,1,1\n", 2, "not a number"),
        (b"Date,Close,High,Low,Open,Volume\n2024-01-01,1e-12,1,1,1,1\n", 2, "rounds to zero"),
        (b"Date,Close,High,Low,Open,Volume\n24-01-01,1,1,1,1,1\n", 2, "bad date '24-01-01'"),
        (b"Date,Close,High,Low,Open,Volume\n2024-01-01,1e18,1,1,1,1\n", 2, "too large for a price"),
        (
            b"Date,Close,High,Low,Open,Volume\n2024-01-01,1,1,1,1,1e19\n",
            2,
            "too large for a volume",
        ),
    ],
)
def test_refusals_name_file_and_line(data: bytes, line: int, message: str) -> None:
    with pytest.raises(PriceFileError, match=message) as refused:
        parse_price_file("X.csv", data)
    assert (refused.value.file, refused.value.line) == ("X.csv", line)


def _wiggle(n: int, seed: int = 3) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(100 * np.exp(np.cumsum(rng.normal(0, 0.01, n))))


def test_a_spike_holds_only_the_spike_and_a_level_change_only_the_jump() -> None:
    base = _wiggle(80)
    spike = [*base, base[-1] * 3, base[-1] * 1.001, base[-1] * 1.002]
    assert [o.index for o in find_outliers([], spike)] == [80]
    level = [*base, base[-1] * 3, base[-1] * 3.01, base[-1] * 2.99]
    assert [o.index for o in find_outliers([], level)] == [80]
    # Judged against stored history when given.
    assert [o.index for o in find_outliers(base, [base[-1] * 3])] == [0]
    assert find_outliers(base, [base[-1] * 1.01]) == []


def test_too_little_history_and_small_moves_are_never_held() -> None:
    assert find_outliers([], [100, 100.1, 300]) == []  # fewer returns than min_periods
    flat = [100.0] * 40 + [101.0]  # zero deviation, but a 1 % move is under the floor
    assert find_outliers([], flat) == []
    held = find_outliers([], [100.0] * 40 + [110.0])
    assert "infinitely many standard deviations" in held[0].reason


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    jumps=st.lists(st.tuples(st.integers(0, 299), st.floats(0.2, 8)), max_size=6),
    history=st.integers(0, 80),
)
def test_the_fast_scan_agrees_with_the_plain_sequential_rule(seed, jumps, history) -> None:
    closes = _wiggle(300, seed)
    for at, factor in jumps:
        if factor > 2 or factor < 0.5:  # a lasting level change from ``at`` on
            closes[at:] = [c * factor for c in closes[at:]]
        else:  # a one-day spike
            closes[at] *= factor * 3
    rule = OutlierRule(sigmas=6, window=30, min_periods=10, min_move=0.02)
    old, new = closes[:history], closes[history:]
    fast = find_outliers(old, new, rule)
    slow = _sequential(old, new, rule)
    assert [(o.index, o.reason) for o in fast] == [(o.index, o.reason) for o in slow]
    assert all(math.isfinite(o.log_return) for o in fast)

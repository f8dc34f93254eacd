"""Real market data for the pure-engine tests, read with pandas (no database).

The full files of ``../shared/data`` beside the checkout are used when they are
there; otherwise (a clean clone in CI) the trimmed copies the project carries in
``portfolios/fixtures/market`` (same formats, two years of daily data, whole ETF
files). ``ENGINE_TEST_DATA=/some/folder`` forces a folder. Tests that need more
history than the trimmed copies hold ask for the ``full_history`` fixture and are
skipped, with the reason, on the trimmed data.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import pandas as pd  # type: ignore[import-untyped]
import pytest

ROOT = Path(__file__).resolve().parents[3]
SHARED = ROOT / ".." / "shared" / "data"
TRIMMED = ROOT / "portfolios" / "fixtures" / "market"
DATA = Path(os.environ.get("ENGINE_TEST_DATA") or (SHARED if SHARED.is_dir() else TRIMMED))
FULL = DATA.resolve() == SHARED.resolve()

ETFS = ("VTI", "VXUS", "BND", "BNDX", "VTIP")
STOCKS = ("AAPL", "AMZN", "BRK-B", "GOOGL", "JNJ", "JPM", "META", "MSFT", "TSLA", "V")
CRYPTO = (
    "BTC", "ETH", "XRP", "SOL", "BNB", "DOGE", "ADA", "DOT", "LTC", "AVAX", "LINK", "MATIC",
    "USDT", "USDC",
)  # fmt: skip


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"market data not found at {path}")
    return path


@cache
def etf_monthly() -> pd.DataFrame:
    """Adjusted monthly closes of the five ETFs, common dates, partial last month dropped."""
    cols = {}
    for t in ETFS:
        df = pd.read_csv(_need(DATA / "etf_monthly" / f"{t}.csv"), parse_dates=["Date"])
        last = df["Date"].iloc[-1]
        if last.day != 1:  # a partial last month: drop both rows of that month
            df = df[df["Date"].dt.to_period("M") != last.to_period("M")]
        cols[t] = df.set_index("Date")["Adj Close"]
    return pd.DataFrame(cols).dropna()


@cache
def stocks_daily(column: str = "Close") -> pd.DataFrame:
    """Daily closes of the ten large caps (dates without time zone), outer-joined."""
    cols = {}
    for t in STOCKS:
        df = pd.read_csv(_need(DATA / "stocks_daily" / f"{t}.csv"))
        idx = pd.to_datetime(df["Date"].str.slice(0, 10))
        cols[t] = pd.Series(df[column].to_numpy(), index=idx)
    return pd.DataFrame(cols).sort_index()


@cache
def sp500_daily() -> pd.DataFrame:
    df = pd.read_csv(_need(DATA / "sp500_daily.csv"), parse_dates=["Date"])
    return df.set_index("Date").sort_index()


@cache
def crypto_daily(column: str = "Close") -> pd.DataFrame:
    cols = {}
    for t in CRYPTO:
        df = pd.read_csv(_need(DATA / "crypto_daily" / f"{t}.csv"), parse_dates=["Date"])
        cols[t] = df.set_index("Date")[column]
    return pd.DataFrame(cols).sort_index()


@pytest.fixture(scope="session")
def full_history() -> None:
    if not FULL:
        pytest.skip(f"needs the full files of ../shared/data; using the trimmed {DATA}")


@pytest.fixture(scope="session")
def etf_prices() -> pd.DataFrame:
    return etf_monthly()


@pytest.fixture(scope="session")
def stock_prices() -> pd.DataFrame:
    """The ten large caps over 2023-2024 (every one trades then)."""
    return stocks_daily().loc["2023-01-01":"2024-12-31"].dropna()


@pytest.fixture(scope="session")
def sp500_prices() -> pd.DataFrame:
    return sp500_daily().loc["2019-01-01":]


@pytest.fixture(scope="session")
def crypto_prices() -> pd.DataFrame:
    return crypto_daily()


@pytest.fixture(scope="session")
def crypto_volumes() -> pd.DataFrame:
    return crypto_daily("Volume")

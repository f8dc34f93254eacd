"""Price windows and the expected-return and covariance estimators (PyPortfolioOpt)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
from pypfopt import expected_returns, risk_models

from portfolios.engine.optimise.rounding import FloatArray
from portfolios.engine.types import (
    CovarianceEstimator,
    InsufficientHistory,
    InvalidParameter,
    ReturnEstimator,
    UnknownAsset,
)


def price_window(prices: pd.DataFrame, symbols: Sequence[str], lookback: int) -> pd.DataFrame:
    """The last ``lookback + 1`` price rows of ``symbols`` (``lookback`` returns).

    Rows where none of ``symbols`` has a price (another market's trading day) are
    dropped first. Every symbol needs a positive price on every row of the
    window, else InsufficientHistory (or InvalidParameter) names it.
    """
    if not isinstance(prices, pd.DataFrame):
        raise InvalidParameter("prices must be a DataFrame of dates x symbols")
    if lookback < 2:
        raise InvalidParameter(f"lookback {lookback} must be at least 2 returns")
    for sym in symbols:
        if sym not in prices.columns:
            raise UnknownAsset(f"unknown asset {sym!r}: no prices for it")
    frame = prices.loc[:, list(symbols)].sort_index()
    try:
        frame = frame.astype(np.float64)
    except (TypeError, ValueError):
        frame = frame.apply(pd.to_numeric, errors="coerce").astype(np.float64)
    frame = frame.dropna(how="all")
    need = lookback + 1
    if len(frame) < need:
        raise InsufficientHistory(
            f"lookback of {lookback} returns needs {need} prices; only {len(frame)} dates given"
        )
    window = frame.iloc[-need:]
    counts = window.notna().sum()
    for sym in symbols:
        have = int(counts[sym])
        if have < need:
            raise InsufficientHistory(
                f"asset {sym!r} has {have} of the {need} prices the lookback of {lookback} "
                f"returns needs (window ending {_iso(window.index[-1])})"
            )
    if (window <= 0).to_numpy().any():
        bad = [s for s in symbols if (window[s] <= 0).any()]
        raise InvalidParameter(f"asset {bad[0]!r} has a non-positive price in the lookback window")
    return window


def _iso(value: object) -> str:
    if isinstance(value, pd.Timestamp):
        return str(value.date().isoformat())
    return str(value)


def as_of(window: pd.DataFrame) -> str:
    return _iso(window.index[-1])


def digest(window: pd.DataFrame) -> str:
    """sha256 of the window's dates, symbols and float64 prices (little endian)."""
    h = hashlib.sha256()
    h.update("|".join(_iso(d) for d in window.index).encode())
    h.update(b"\x00")
    h.update("|".join(str(c) for c in window.columns).encode())
    h.update(b"\x00")
    h.update(np.ascontiguousarray(window.to_numpy(dtype="<f8")).tobytes())
    return h.hexdigest()


def returns_of(window: pd.DataFrame) -> pd.DataFrame:
    return window.pct_change().iloc[1:]


def expected_return(
    window: pd.DataFrame,
    estimator: ReturnEstimator,
    *,
    frequency: int,
    risk_free_rate: float = 0.0,
    ema_span: int = 60,
) -> FloatArray:
    """Annualised expected returns, one per column of ``window``."""
    if estimator is ReturnEstimator.MEAN_HISTORICAL:
        mu = expected_returns.mean_historical_return(window, frequency=frequency)
    elif estimator is ReturnEstimator.EMA:
        if ema_span < 2:
            raise InvalidParameter(f"EMA span {ema_span} must be at least 2")
        mu = expected_returns.ema_historical_return(window, span=ema_span, frequency=frequency)
    else:
        mu = expected_returns.capm_return(
            window, risk_free_rate=risk_free_rate, frequency=frequency
        )
    out = np.asarray(mu, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(out)):
        raise InvalidParameter("expected returns are not finite: check the prices")
    return out


def covariance(
    window: pd.DataFrame, estimator: CovarianceEstimator, *, frequency: int
) -> FloatArray:
    """Annualised covariance matrix of the window's returns."""
    if estimator is CovarianceEstimator.SAMPLE:
        cov = risk_models.sample_cov(window, frequency=frequency)
    else:
        cov = risk_models.CovarianceShrinkage(window, frequency=frequency).ledoit_wolf()
    out = np.asarray(cov, dtype=np.float64)
    out = (out + out.T) / 2
    if not np.all(np.isfinite(out)):
        raise InvalidParameter("covariance is not finite: check the prices")
    return out

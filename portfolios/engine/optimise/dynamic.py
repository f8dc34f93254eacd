"""Dynamic allocation: a risky sleeve against a defensive sleeve, held at a target volatility.

At each decision date the risky share ``s`` is the largest share in [0, 1]
whose realised volatility (the last ``vol_lookback`` returns up to and
including that date, no later data) of the mix ``s * risky + (1 - s) *
defensive`` is at most the target, using the sleeves' realised variances and
covariance. When even the least volatile mix is above the target, ``s`` is that
least volatile mix's share. Sleeves are rebalanced to their weights every
period.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from portfolios.engine.types import InvalidParameter, UnknownAsset


def sleeve_returns(prices: pd.DataFrame, sleeve: Mapping[str, float], name: str) -> pd.Series:
    """Period returns of a sleeve held at constant weights (rebalanced every period)."""
    if not sleeve:
        raise InvalidParameter(f"the {name} sleeve is empty")
    total = sum(float(v) for v in sleeve.values())
    if any(float(v) < 0 for v in sleeve.values()) or total <= 0:
        raise InvalidParameter(f"the {name} sleeve weights must be >= 0 with a positive sum")
    for sym in sleeve:
        if sym not in prices.columns:
            raise UnknownAsset(f"unknown asset {sym!r} in the {name} sleeve: no prices for it")
    cols = list(sleeve)
    rets = prices[cols].sort_index().pct_change().iloc[1:]
    w = np.array([float(sleeve[s]) / total for s in cols])
    return pd.Series(rets.to_numpy() @ w, index=rets.index, name=name)


def risky_share(
    risky: np.ndarray, defensive: np.ndarray, target_volatility: float, frequency: int
) -> float:
    """Risky share in [0, 1] holding ``target_volatility`` on these return samples."""
    if not target_volatility > 0:
        raise InvalidParameter(f"target volatility {target_volatility} must be positive")
    r = np.asarray(risky, dtype=np.float64)
    d = np.asarray(defensive, dtype=np.float64)
    mask = np.isfinite(r) & np.isfinite(d)
    r, d = r[mask], d[mask]
    if r.size < 2:
        raise InvalidParameter("too few returns to measure the sleeves' volatility")
    cov = np.cov(np.vstack([r, d]), ddof=1) * frequency
    a, b, c = float(cov[0, 0]), float(cov[0, 1]), float(cov[1, 1])
    t2 = target_volatility**2

    def var(s: float) -> float:
        return a * s * s + 2 * b * s * (1 - s) + c * (1 - s) * (1 - s)

    if var(1.0) <= t2:
        return 1.0
    quad = a - 2 * b + c  # var(s) = quad s^2 + lin s + c
    lin = 2 * b - 2 * c
    s_min = float(np.clip(-lin / (2 * quad), 0.0, 1.0)) if quad > 1e-18 else 0.0
    if var(s_min) > t2:
        return s_min
    if quad <= 1e-18:  # linear in s
        return float(np.clip((t2 - c) / lin, 0.0, 1.0)) if lin != 0 else 1.0
    disc = max(lin * lin - 4 * quad * (c - t2), 0.0)
    root = (-lin + np.sqrt(disc)) / (2 * quad)
    return float(np.clip(root, 0.0, 1.0))


def risky_shares(
    prices: pd.DataFrame,
    risky: Mapping[str, float],
    defensive: Mapping[str, float],
    *,
    target_volatility: float,
    vol_lookback: int,
    frequency: int,
    dates: Iterable[pd.Timestamp] | None = None,
) -> pd.Series:
    """Risky share decided at each of ``dates`` (default: every date with enough history).

    The share at date t uses returns up to and including t only.
    """
    if vol_lookback < 2:
        raise InvalidParameter(f"volatility lookback {vol_lookback} must be at least 2 returns")
    rr = sleeve_returns(prices, risky, "risky")
    dr = sleeve_returns(prices, defensive, "defensive")
    both = pd.concat([rr, dr], axis=1).dropna()
    index = both.index
    wanted = index[vol_lookback - 1 :] if dates is None else pd.DatetimeIndex(list(dates))
    out: dict[pd.Timestamp, float] = {}
    arr = both.to_numpy()
    for when in wanted:
        end = int(index.searchsorted(when, side="right"))
        if end < vol_lookback:
            continue
        chunk = arr[end - vol_lookback : end]
        out[when] = risky_share(chunk[:, 0], chunk[:, 1], target_volatility, frequency)
    return pd.Series(out, dtype=np.float64, name="risky_share")

"""Index strategies: top N by market capitalisation, capped, on a reconstitution schedule."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from portfolios.engine.optimise.rounding import cap_and_redistribute, round_weights
from portfolios.engine.types import InvalidParameter, Schedule, UnknownAsset

MIN_MEMBERS = 2
MAX_MEMBERS = 100


def select_top_n(
    market_caps: Mapping[str, float],
    n: int,
    *,
    universe: Iterable[str] | None = None,
    exclusions: Iterable[str] = (),
) -> tuple[str, ...]:
    """The ``n`` largest assets by market cap (ties broken by symbol), largest first.

    ``universe`` (default: every key of ``market_caps``) minus ``exclusions`` is
    the candidate set; a candidate without a market cap is an UnknownAsset.
    Fewer than ``n`` candidates: all of them.
    """
    if not MIN_MEMBERS <= n <= MAX_MEMBERS:
        raise InvalidParameter(f"index size top_n={n} must be between 2 and 100")
    excluded = set(exclusions)
    candidates = [
        s for s in (universe if universe is not None else market_caps) if s not in excluded
    ]
    for sym in candidates:
        if sym not in market_caps:
            raise UnknownAsset(f"unknown asset {sym!r}: no market capitalisation for it")
        cap = float(market_caps[sym])
        if not np.isfinite(cap) or cap < 0:
            raise InvalidParameter(f"market capitalisation of {sym!r} must be a number >= 0")
    ranked = sorted(dict.fromkeys(candidates), key=lambda s: (-float(market_caps[s]), s))
    return tuple(ranked[:n])


def index_weights(
    market_caps: Mapping[str, float],
    n: int,
    *,
    max_weight: float | None = None,
    universe: Iterable[str] | None = None,
    exclusions: Iterable[str] = (),
) -> dict[str, float]:
    """Market-cap weights of the top ``n``, capped at ``max_weight`` and redistributed.

    Rounded once (multiples of 1e-8 summing to 1, none above the cap).
    """
    members = select_top_n(market_caps, n, universe=universe, exclusions=exclusions)
    cap = 1.0 if max_weight is None else float(max_weight)
    raw = cap_and_redistribute([float(market_caps[s]) for s in members], cap)
    rounded = round_weights(raw, upper=np.full(len(members), cap))
    return dict(zip(members, (float(x) for x in rounded), strict=True))


_PERIOD = {Schedule.MONTHLY: "M", Schedule.QUARTERLY: "Q", Schedule.YEARLY: "Y"}


def reconstitution_dates(
    dates: Iterable[pd.Timestamp | str] | pd.DatetimeIndex, schedule: Schedule | str
) -> pd.DatetimeIndex:
    """The dates (of ``dates``) on which the index is reconstituted.

    The first available date of every calendar month, quarter or year, the very
    first date included (the index is formed then). Time zones are dropped;
    order and duplicates of the input do not matter.
    """
    period = _PERIOD[Schedule(schedule)]
    idx = pd.DatetimeIndex(pd.to_datetime(list(dates)))
    if idx.tz is not None:
        idx = idx.tz_localize(None)
    idx = idx.sort_values().unique()
    if len(idx) == 0:
        return idx
    periods = idx.to_period(period)
    first = np.ones(len(idx), dtype=bool)
    first[1:] = periods[1:] != periods[:-1]
    return idx[first]


def caps_as_of(history: pd.DataFrame, when: pd.Timestamp | str) -> dict[str, float]:
    """Each symbol's last market-cap observation on or before ``when`` (dates x symbols).

    Symbols with no observation yet are left out.
    """
    past = history.sort_index().loc[: pd.Timestamp(when)]
    last = past.ffill().iloc[-1] if len(past) else pd.Series(dtype=np.float64)
    return {str(k): float(v) for k, v in last.items() if pd.notna(v)}


def index_weights_function(
    cap_history: pd.DataFrame,
    n: int,
    *,
    max_weight: float | None = None,
    exclusions: Iterable[str] = (),
    eligible: Callable[[pd.DataFrame], Iterable[str]] | None = None,
) -> Callable[[pd.DataFrame], dict[str, float]]:
    """An index strategy as a weights function for the walk-forward backtester.

    Called with the prices up to a reconstitution date ``d`` (nothing later), it
    ranks the assets that have a price on ``d`` (and, when given, pass
    ``eligible(prices)``, e.g. a screening) by their market cap as of ``d`` and
    returns the capped top-``n`` weights. Assets not in ``cap_history`` are never
    members.
    """
    excluded = frozenset(exclusions)

    def compute(prices: pd.DataFrame) -> dict[str, float]:
        day = prices.index[-1]
        caps = caps_as_of(cap_history, day)
        priced = {str(s) for s, v in prices.iloc[-1].items() if pd.notna(v)}
        allowed = priced if eligible is None else priced & {str(s) for s in eligible(prices)}
        universe = [s for s in caps if s in allowed and s not in excluded]
        members = index_weights(
            caps, min(n, max(len(universe), MIN_MEMBERS)), max_weight=max_weight, universe=universe
        )
        return members

    return compute

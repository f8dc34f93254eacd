"""Strategies as weights functions for walk-forward backtests (``engine.backtest``)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping

import pandas as pd  # type: ignore[import-untyped]

from portfolios.engine.optimise.core import optimise
from portfolios.engine.screening import ScreeningResult, ScreeningRules, screen
from portfolios.engine.types import OptimiseRequest, OptimiseResult


def caps_as_of(shares: Mapping[str, float], prices: pd.DataFrame) -> dict[str, float]:
    """Point-in-time market caps: each asset's units outstanding times its last price in
    ``prices`` (the history up to the decision date). Assets without a price yet are
    left out, so an index cannot pick what did not trade."""
    last = prices.ffill().iloc[-1] if len(prices) else pd.Series(dtype=float)
    caps = {}
    for symbol, units in shares.items():
        price = last.get(symbol)
        if price is not None and math.isfinite(float(price)) and float(price) > 0:
            caps[symbol] = float(units) * float(price)
    return caps


def _at(
    request: OptimiseRequest, prices: pd.DataFrame, shares: Mapping[str, float] | None
) -> OptimiseRequest:
    if shares is None:
        return dataclasses.replace(request, prices=prices)
    return dataclasses.replace(request, prices=prices, market_caps=caps_as_of(shares, prices))


def weights_function(
    request: OptimiseRequest,
    *,
    on_result: Callable[[pd.Timestamp, OptimiseResult], None] | None = None,
    shares: Mapping[str, float] | None = None,
) -> Callable[[pd.DataFrame], dict[str, float]]:
    """A function of the prices seen so far returning the strategy's weights.

    Each call re-runs ``optimise`` on ``request`` with its prices replaced by the
    prices given (the backtester passes ``prices.loc[:d]``: nothing after the
    decision date), so the strategy is re-estimated walk-forward with no
    look-ahead. ``on_result`` receives every model version computed (date,
    result), e.g. to record weights over time. With ``shares`` (units outstanding
    per asset) the market caps are recomputed at every decision from the prices
    seen so far (:func:`caps_as_of`) instead of the request's fixed ones.
    """

    def compute(prices: pd.DataFrame) -> dict[str, float]:
        result = optimise(_at(request, prices, shares))
        if on_result is not None:
            on_result(prices.index[-1], result)
        return dict(result.weights)

    return compute


def screened_weights_function(
    request: OptimiseRequest,
    rules: ScreeningRules,
    *,
    volumes: pd.DataFrame | None = None,
    on_screen: Callable[[pd.Timestamp, ScreeningResult], None] | None = None,
    shares: Mapping[str, float] | None = None,
) -> Callable[[pd.DataFrame], dict[str, float]]:
    """Like :func:`weights_function`, screening the universe at every reconstitution.

    At each call the universe is screened on the prices handed over (nothing after
    the decision date) and on the volumes up to that date only; the assets screened
    out join the request's exclusions for that computation. An asset with too short a
    history is thus excluded early and admitted once it has enough.
    """

    def compute(prices: pd.DataFrame) -> dict[str, float]:
        as_of = prices.index[-1]
        seen = None if volumes is None else volumes.sort_index().loc[:as_of]
        screened = screen(
            request.universe,
            prices,
            rules,
            volumes=seen,
            asset_classes=request.asset_classes,
            as_of=as_of,
        )
        if on_screen is not None:
            on_screen(as_of, screened)
        excluded = frozenset(request.exclusions) | frozenset(screened.excluded_symbols)
        at = _at(request, prices, shares)
        result = optimise(dataclasses.replace(at, exclusions=excluded))
        return dict(result.weights)

    return compute

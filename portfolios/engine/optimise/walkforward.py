"""Strategies as weights functions for walk-forward backtests (``engine.backtest``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pandas as pd  # type: ignore[import-untyped]

from portfolios.engine.optimise.core import optimise
from portfolios.engine.screening import ScreeningResult, ScreeningRules, screen
from portfolios.engine.types import OptimiseRequest, OptimiseResult


def weights_function(
    request: OptimiseRequest,
    *,
    on_result: Callable[[pd.Timestamp, OptimiseResult], None] | None = None,
) -> Callable[[pd.DataFrame], dict[str, float]]:
    """A function of the prices seen so far returning the strategy's weights.

    Each call re-runs ``optimise`` on ``request`` with its prices replaced by the
    prices given (the backtester passes ``prices.loc[:d]``: nothing after the
    decision date), so the strategy is re-estimated walk-forward with no
    look-ahead. ``on_result`` receives every model version computed (date,
    result), e.g. to record weights over time.
    """

    def compute(prices: pd.DataFrame) -> dict[str, float]:
        result = optimise(dataclasses.replace(request, prices=prices))
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
        result = optimise(dataclasses.replace(request, prices=prices, exclusions=excluded))
        return dict(result.weights)

    return compute

"""Strategies as weights functions for walk-forward backtests (``engine.backtest``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pandas as pd  # type: ignore[import-untyped]

from portfolios.engine.optimise.core import optimise
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

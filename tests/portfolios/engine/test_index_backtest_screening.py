"""Index backtests screen the universe at every reconstitution, on past data only."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from portfolios.engine.backtest import (
    BacktestConfig,
    RebalancePolicy,
    TransactionCosts,
    backtest_run,
)
from portfolios.engine.optimise.walkforward import screened_weights_function
from portfolios.engine.screening import ScreeningResult, ScreeningRules
from portfolios.engine.types import Method, OptimiseRequest

SYMBOLS = ("AAA", "BBB", "CCC", "WILD")
CAPS = {"AAA": 400.0, "BBB": 300.0, "CCC": 200.0, "WILD": 100.0}
CALM_FROM = 300  # WILD swings wildly until this day, then calms down


def _prices(days: int = 620) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    returns = rng.normal(0.0003, 0.01, size=(days, len(SYMBOLS)))
    wild = rng.normal(0.0, 0.09, size=days)
    wild[CALM_FROM:] = rng.normal(0.0003, 0.005, size=days - CALM_FROM)
    returns[:, 3] = wild
    index = pd.date_range("2021-01-01", periods=days, freq="D")
    return pd.DataFrame(100 * np.exp(np.cumsum(returns, axis=0)), index=index, columns=SYMBOLS)


def _function(on_screen: Any = None) -> Any:
    request = OptimiseRequest(
        method=Method.INDEX,
        universe=SYMBOLS,
        prices=pd.DataFrame(),
        lookback=60,
        frequency=365,
        market_caps=CAPS,
        top_n=4,
        max_weight=0.6,
    )
    rules = ScreeningRules(max_volatility=1.0, risk_window=60, frequency=365)
    return screened_weights_function(request, rules, on_screen=on_screen)


def test_a_volatile_asset_is_screened_out_early_and_admitted_once_calm() -> None:
    prices = _prices()
    compute = _function()
    early = compute(prices.iloc[:200])
    late = compute(prices.iloc[: CALM_FROM + 200])
    assert early.get("WILD", 0) == 0
    assert late.get("WILD", 0) > 0
    assert abs(sum(early.values()) - 1) < 1e-9
    assert abs(sum(late.values()) - 1) < 1e-9


def test_backtest_screens_on_past_data_only_poisoned_future_changes_nothing() -> None:
    prices = _prices()
    cut = prices.index[CALM_FROM - 40]
    poisoned = prices.copy()
    future = poisoned.index > cut
    # A different future: WILD flat from the cut on (calm at once), the others trending
    # up or down. A screen or a selection that looked ahead would differ before the cut.
    poisoned.loc[future, "WILD"] = poisoned.loc[future, "WILD"].iloc[0]
    ramp = np.linspace(np.ones(3), np.array([3.0, 0.5, 2.0]), int(future.sum()))
    poisoned.loc[future, ["AAA", "BBB", "CCC"]] *= ramp
    kwargs: dict[str, Any] = {
        "policy": RebalancePolicy(calendar="monthly"),
        "costs": TransactionCosts(bps=5),
        "config": BacktestConfig(start="2021-04-01", reoptimise="monthly"),
    }
    seen: dict[str, list[tuple[pd.Timestamp, tuple[str, ...]]]] = {"clean": [], "dirty": []}

    def spy(name: str) -> Any:
        def record(as_of: pd.Timestamp, result: ScreeningResult) -> None:
            seen[name].append((as_of, result.excluded_symbols))

        return record

    clean = backtest_run(prices, _function(spy("clean")), **kwargs)
    dirty = backtest_run(poisoned, _function(spy("dirty")), **kwargs)
    before = [s for s in seen["clean"] if s[0] <= cut]
    assert len(before) >= 3
    assert before == [s for s in seen["dirty"] if s[0] <= cut]
    assert all(excluded == ("WILD",) for _, excluded in before), "screened out early"
    assert any(excluded == () for as_of, excluded in seen["clean"] if as_of > prices.index[500])
    held = {d.date: d for d in clean.decisions}
    assert held, "the backtest made decisions"
    pd.testing.assert_series_equal(clean.values.loc[:cut], dirty.values.loc[:cut])

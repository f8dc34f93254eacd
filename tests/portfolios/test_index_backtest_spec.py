"""A stored index strategy's backtest spec carries its screening rules; ad-hoc specs none."""

from __future__ import annotations

from portfolios.models_strategy import Strategy
from portfolios.services_backtest import StrategySpec, spec_from_strategy


def test_spec_from_an_index_strategy_carries_its_screening() -> None:
    strategy = Strategy(
        name="Top 3",
        method="index",
        universe=["BTC", "ETH", "SOL", "USDT"],
        parameters={"top_n": 3, "lookback": 90},
        screening={"max_volatility": 0.9},
    )
    spec, _ = spec_from_strategy(strategy)
    assert spec.screening == {"max_volatility": 0.9}
    unscreened = Strategy(name="x", method="index", universe=["BTC"], parameters={})
    assert spec_from_strategy(unscreened)[0].screening == {}, "the engine's defaults apply"
    assert StrategySpec("index", ("BTC",)).screening is None, "an ad-hoc spec is not screened"

"""Helpers: active demo-like strategies with a computed version, for the mapping tests."""

from __future__ import annotations

from portfolios.models_market import PriceFrequency
from portfolios.models_strategy import Strategy, StrategyStatus
from portfolios.services_market import MARKET_FIXTURES, assets_seed, prices_import
from portfolios.services_strategy import strategy_create, strategy_update, strategy_version_compute

ETFS = ["VTI", "VXUS", "BND", "BNDX", "VTIP"]


def etf_prices_load() -> None:
    assets_seed()
    prices_import(paths=sorted((MARKET_FIXTURES / "etf_monthly").glob("*.csv")), actor=None)


def active_strategy(name: str, low: int, high: int, volatility: float = 0.09) -> Strategy:
    """An active strategy with its first version (inside the current firm)."""
    strategy = strategy_create(
        actor=None,
        actor_label="test",
        name=name,
        method="efficient_risk",
        universe=ETFS,
        parameters={"target_volatility": volatility, "lookback": 60},
        price_frequency=PriceFrequency.MONTHLY,
        risk_level_min=low,
        risk_level_max=high,
    )
    strategy_version_compute(strategy=strategy, actor_label="test")
    return strategy_update(
        strategy=strategy, actor=None, actor_label="test", status=StrategyStatus.ACTIVE
    )

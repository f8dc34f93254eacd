"""Backtests on stored prices: the database side of :mod:`portfolios.engine.backtest`.

Reads usable (``ok``) prices through the market selectors, builds a walk-forward
weights function from a strategy method of :mod:`portfolios.engine.optimise`, and
runs the pure engine. Writes nothing.

A strategy is a :class:`StrategySpec` (method, universe, parameters): given directly,
or read from a firm's stored strategy (:func:`spec_from_strategy`). Market caps (for
market-cap, index and Black-Litterman methods) are each asset's latest observation up
to the backtest's end: the platform keeps approximate, dated inputs, not a history.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd  # type: ignore[import-untyped]

from portfolios.engine.backtest import (
    BacktestConfig,
    BacktestResult,
    RebalancePolicy,
    TransactionCosts,
    WeightsFunction,
    backtest_run,
)
from portfolios.engine.optimise import weights_function
from portfolios.engine.optimise.walkforward import screened_weights_function
from portfolios.engine.screening import ScreeningRules
from portfolios.engine.types import Method, OptimiseRequest, StrategyError
from portfolios.models_market import Asset, AssetClass, PriceFrequency
from portfolios.selectors_market import market_cap_latest, market_cap_units, price_matrix


class BacktestInputError(ValueError):
    """Bad backtest input (unknown asset, too little history, ...), named in the message."""


@dataclass(frozen=True)
class StrategySpec:
    method: str
    symbols: tuple[str, ...]
    lookback: int | None = None  # returns; None: 252 daily, 36 monthly
    parameters: Mapping[str, Any] = field(default_factory=dict)  # OptimiseRequest fields
    # Index strategies: ScreeningRules fields, applied at every reconstitution ({}: the
    # engine's defaults, as for a version). None: no screening (an ad-hoc spec).
    screening: Mapping[str, Any] | None = None


def periods_per_year(*, symbols: list[str], frequency: str) -> int:
    if frequency == PriceFrequency.MONTHLY:
        return 12
    classes = set(Asset.objects.filter(symbol__in=symbols).values_list("asset_class", flat=True))
    crypto = {AssetClass.CRYPTO, AssetClass.STABLECOIN}
    return 365 if classes and classes <= crypto else 252


def spec_from_strategy(strategy: Any) -> tuple[StrategySpec, str]:
    """The spec and price frequency of a stored ``portfolios.Strategy``."""
    from portfolios.services_strategy import request_kwargs  # it imports this module

    kwargs = request_kwargs(strategy.parameters)
    lookback = kwargs.pop("lookback", None)
    spec = StrategySpec(
        strategy.method,
        tuple(strategy.universe),
        lookback,
        kwargs,
        screening=dict(strategy.screening or {}),
    )
    return spec, str(strategy.price_frequency)


CAP_METHODS = frozenset({Method.INDEX, Method.MARKET_CAP, Method.BLACK_LITTERMAN})


def strategy_weights_function(
    spec: StrategySpec,
    *,
    frequency: int,
    market_caps: Mapping[str, float],
    volumes: pd.DataFrame | None = None,
    units: Mapping[str, float] | None = None,
) -> WeightsFunction:
    """Weights from ``optimise`` on the history the backtest hands over (nothing later).

    An index strategy is screened at every reconstitution (``spec.screening``, the
    engine's defaults otherwise, as when a version is computed), on that history only.
    """
    lookback = spec.lookback or (36 if frequency == 12 else 252)
    asset_classes = dict(
        Asset.objects.filter(symbol__in=spec.symbols).values_list("symbol", "asset_class")
    )
    parameters = dict(spec.parameters)
    parameters.setdefault("asset_classes", asset_classes)
    template = OptimiseRequest(
        method=Method(spec.method),
        universe=spec.symbols,
        prices=pd.DataFrame(),
        lookback=lookback,
        frequency=frequency,
        market_caps=dict(market_caps),
        **parameters,
    )
    if Method(spec.method) is Method.INDEX and spec.screening is not None:
        try:
            rules = ScreeningRules(**{"frequency": frequency, **dict(spec.screening)})
        except (StrategyError, TypeError) as exc:
            raise BacktestInputError(f"screening: {exc}") from None
        return screened_weights_function(template, rules, volumes=volumes, shares=units)
    return weights_function(template, shares=units)


def backtest_strategy(
    *,
    spec: StrategySpec,
    start: dt.date,
    end: dt.date,
    policy: RebalancePolicy,
    costs: TransactionCosts,
    initial_value: float = 10_000.0,
    frequency: str = PriceFrequency.DAILY,
    reoptimise: str = "monthly",
    benchmark: str | None = None,
) -> BacktestResult:
    """Backtest ``spec`` from ``start`` to ``end`` on stored, usable prices."""
    symbols = [s.upper() for s in spec.symbols]
    wanted = list(dict.fromkeys(symbols + ([benchmark.upper()] if benchmark else [])))
    try:
        matrix = price_matrix(symbols=wanted, end=end, frequency=frequency)
    except KeyError as exc:
        raise BacktestInputError(str(exc.args[0])) from None
    matrix = matrix.ffill()  # a held or missing day carries the last usable close
    for symbol in wanted:
        column = matrix[symbol].loc[: pd.Timestamp(start)]
        if column.dropna().empty:
            raise BacktestInputError(f"{symbol} has no usable price on or before {start}")
    ppy = periods_per_year(symbols=symbols, frequency=frequency)
    caps = market_cap_latest(symbols=symbols, as_of=end)
    # Cap-weighted methods pick and weigh by market caps as of each decision date.
    units = None
    if Method(spec.method) in CAP_METHODS:
        units = market_cap_units(symbols=symbols)
        if set(units) != set(symbols):
            units = None  # an asset without an observation: the fixed caps, as before
    lookback = spec.lookback or (36 if ppy == 12 else 252)
    history_before = matrix.loc[: pd.Timestamp(start)].dropna()
    if len(history_before) < lookback + 1:
        raise BacktestInputError(
            f"too little price history before {start}: {len(history_before)} dates with a price "
            f"for every asset, the lookback needs {lookback + 1}"
        )
    prices = matrix[symbols].dropna()
    volumes = None
    if spec.screening and spec.screening.get("min_avg_traded_value") is not None:
        from portfolios.selectors_strategy import volume_matrix

        volumes = volume_matrix(symbols=symbols, frequency=frequency, end=end)
    return backtest_run(
        prices,
        strategy_weights_function(
            dataclasses.replace(spec, symbols=tuple(symbols)),
            frequency=ppy,
            market_caps=caps,
            volumes=volumes,
            units=units,
        ),
        policy=policy,
        costs=costs,
        config=BacktestConfig(
            initial_value=initial_value,
            start=pd.Timestamp(start),
            end=pd.Timestamp(end),
            reoptimise=reoptimise,
            periods_per_year=None,
        ),
        benchmark=matrix[benchmark.upper()] if benchmark else None,
    )

"""Benchmarks of the strategy engine, for ``bench_strategies --json`` (pure, no Django).

Each figure comes with a floor measured in the same run, so a ratio survives a
noisy machine (DESIGN.md, "Measuring"):

* per method and universe size: the seconds of ``optimise`` beside the seconds
  of the estimators alone (price window, expected returns, covariance), which
  every method pays;
* customisation reuse: N portfolios over D distinct (strategy version,
  customisation) pairs, customised weights computed for every portfolio
  (without reuse) and once per signature (``compute_shared``), beside the floor
  of signing the N pairs.

Synthetic universes: a one-factor model of daily returns (seeded, so every run
measures the same data).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from portfolios.engine import customise
from portfolios.engine.optimise import estimators
from portfolios.engine.optimise.core import optimise
from portfolios.engine.types import (
    CovarianceEstimator,
    Method,
    OptimiseRequest,
    ReturnEstimator,
    View,
)


def synthetic_prices(n_assets: int, n_days: int = 400, seed: int = 0) -> pd.DataFrame:
    """Daily prices of ``n_assets`` from a one-factor model (betas 0.5-1.5), upward drift."""
    rng = np.random.default_rng(seed)
    # noise demeaned so that every universe drifts upwards (max Sharpe needs a return
    # above the risk-free rate): 0.05% a day for the market, 0.02% for each asset
    noise = rng.normal(0.0, 0.01, (n_days, 1))
    market = 0.0005 + noise - noise.mean()
    beta = rng.uniform(0.5, 1.5, (1, n_assets))
    own = rng.normal(0.0, 0.012, (n_days, n_assets)) * rng.uniform(0.5, 1.5, (1, n_assets))
    idio = 0.0002 + own - own.mean(axis=0, keepdims=True)
    returns = market * beta + idio
    index = pd.bdate_range("2020-01-01", periods=n_days)
    columns = [f"S{i:04d}" for i in range(n_assets)]
    return pd.DataFrame(100 * np.cumprod(1 + returns, axis=0), index=index, columns=columns)


def synthetic_request(method: Method, prices: pd.DataFrame, lookback: int) -> OptimiseRequest:
    symbols = tuple(str(c) for c in prices.columns)
    n = len(symbols)
    rng = np.random.default_rng(n)
    caps = {s: float(c) for s, c in zip(symbols, rng.lognormal(3, 1, n), strict=True)}
    cap = max(0.1, 2.0 / n)
    kw: dict[str, Any] = {
        "method": method,
        "universe": symbols,
        "prices": prices,
        "lookback": lookback,
        "weight_bounds": (0.0, cap),
        "market_caps": caps,
    }
    if method is Method.FIXED:
        kw["fixed_weights"] = dict.fromkeys(symbols, 1.0 / n)
    elif method in (Method.INDEX, Method.MARKET_CAP):
        kw["max_weight"] = cap
        if method is Method.INDEX:
            kw["top_n"] = min(n, 100)
    elif method is Method.EFFICIENT_RISK:
        kw["target_volatility"] = 0.15 if n >= 20 else 0.30  # above the minimum
    elif method is Method.EFFICIENT_RETURN:
        kw["target_return"] = 0.08
    elif method is Method.BLACK_LITTERMAN:
        kw["views"] = (View(symbols[0], 0.10, 0.6), View(symbols[1], 0.02, 0.4, symbols[2]))
    elif method is Method.DYNAMIC:
        half = n // 2
        kw.update(
            target_volatility=0.10,
            risky_sleeve=dict.fromkeys(symbols[:half], 1.0),
            defensive_sleeve=dict.fromkeys(symbols[half:], 1.0),
        )
    return OptimiseRequest(**kw)


def _seconds(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bench_methods(
    sizes: Iterable[int] = (20, 100, 500),
    methods: Iterable[Method] = tuple(Method),
    *,
    lookback: int = 252,
    repeat: int = 1,
) -> list[dict[str, Any]]:
    """Seconds per method and size (best of ``repeat``), with the estimators' floor."""
    rows: list[dict[str, Any]] = []
    method_list = list(methods)
    warm = synthetic_prices(20, lookback + 20, seed=1)
    for method in method_list:  # imports and solver set-up, untimed
        optimise(synthetic_request(method, warm, lookback))
    for n in sizes:
        prices = synthetic_prices(n, lookback + 20, seed=n)
        symbols = [str(c) for c in prices.columns]

        def floor(prices: pd.DataFrame = prices, symbols: list[str] = symbols) -> None:
            window = estimators.price_window(prices, symbols, lookback)
            estimators.expected_return(window, ReturnEstimator.MEAN_HISTORICAL, frequency=252)
            estimators.covariance(window, CovarianceEstimator.LEDOIT_WOLF, frequency=252)

        floor_s = _seconds(floor, repeat)
        for method in method_list:
            request = synthetic_request(method, prices, lookback)

            def run(request: OptimiseRequest = request) -> None:
                optimise(request)

            secs = _seconds(run, repeat)
            rows.append(
                {
                    "assets": n,
                    "method": method.value,
                    "seconds": round(secs, 6),
                    "estimators_floor_seconds": round(floor_s, 6),
                    "ratio_to_floor": round(secs / floor_s, 2) if floor_s > 0 else None,
                }
            )
    return rows


def bench_customisation_reuse(
    portfolios: int = 10_000, distinct: int = 200, *, seed: int = 0
) -> dict[str, Any]:
    """Customised weights for ``portfolios`` portfolios over ``distinct`` signatures."""
    rng = np.random.default_rng(seed)
    n_assets = 20
    symbols = [f"S{i:04d}" for i in range(n_assets)]
    classes = {s: ("equity" if i < 12 else "bonds") for i, s in enumerate(symbols)}
    raw = rng.uniform(0.5, 1.5, n_assets)
    strategies = {
        f"version-{v}": dict(
            zip(symbols, (raw * rng.uniform(0.8, 1.2, n_assets)).tolist(), strict=True)
        )
        for v in range(2)
    }
    versions = sorted(strategies)
    per_version = max(1, distinct // len(versions))
    menu: list[customise.Customisation] = []
    for k in range(per_version):
        menu.append(
            customise.Customisation(
                excluded_assets=frozenset({symbols[k % n_assets]}),
                asset_bounds={symbols[(k + 1) % n_assets]: (0.0, 0.02 + (k % 7) / 100)},
                class_tilts={"equity": round(((k % 11) - 5) / 100, 2)},
            )
        )
    pairs = [
        (versions[int(rng.integers(len(versions)))], menu[int(rng.integers(len(menu)))])
        for _ in range(portfolios)
    ]
    pairs[: len(versions) * len(menu)] = [(v, c) for v in versions for c in menu]

    def compute(version: object, cust: customise.Customisation) -> dict[str, float]:
        return customise.customise_weights(strategies[str(version)], cust, asset_classes=classes)

    start = time.perf_counter()
    for version, cust in pairs:
        compute(version, cust)
    without = time.perf_counter() - start
    start = time.perf_counter()
    shared = customise.compute_shared(pairs, compute)
    with_reuse = time.perf_counter() - start
    start = time.perf_counter()
    for version, cust in pairs:
        customise.signature(version, cust)
    floor = time.perf_counter() - start
    return {
        "portfolios": portfolios,
        "distinct_signatures": shared.computed,
        "seconds_without_reuse": round(without, 6),
        "seconds_with_reuse": round(with_reuse, 6),
        "signing_floor_seconds": round(floor, 6),
        "speedup": round(without / with_reuse, 2) if with_reuse > 0 else None,
    }


def bench_strategies(
    sizes: Iterable[int] = (20, 100, 500),
    *,
    portfolios: int = 10_000,
    distinct: int = 200,
    repeat: int = 1,
) -> dict[str, Any]:
    """Everything ``bench_strategies --json`` prints."""
    return {
        "methods": bench_methods(sizes, repeat=repeat),
        "customisation_reuse": bench_customisation_reuse(portfolios, distinct),
    }

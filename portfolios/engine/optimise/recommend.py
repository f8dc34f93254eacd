"""From a client's risk level (1..10) to a strategy and its parameters.

Target volatility by risk level (annualised):

=====  ==========  ============================================================
level  target vol  roughly
=====  ==========  ============================================================
1      3.0%        short-term and inflation-protected bonds (VTIP ~ 2-3%)
2      4.5%        a bond portfolio (BND ~ 4%)
3      6.0%        20/80 stocks/bonds
4      7.5%        30/70
5      9.0%        40/60
6      10.5%       50/50
7      12.0%       60/40
8      14.0%       75/25
9      16.0%       90/10
10     18.0%       all equity (VTI's long-run volatility ~ 15-18%)
=====  ==========  ============================================================

The recommendation is an efficient-risk strategy (the highest expected return
whose in-sample volatility is at most the target) with CAPM expected returns
(steadier than historical means) and a Ledoit-Wolf covariance over five years,
each asset capped at 60%. When the target is below the least volatile mix the
universe allows, the recommendation falls back to minimum variance and says so.
Alternatives, to show beside it with their backtests: minimum variance,
hierarchical risk parity, equal risk contribution, equal weight and a dynamic
allocation holding the same target.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd  # type: ignore[import-untyped]

from portfolios.engine.optimise.core import optimise
from portfolios.engine.types import (
    CovarianceEstimator,
    InfeasibleStrategy,
    InvalidParameter,
    Method,
    OptimiseRequest,
    OptimiseResult,
    ReturnEstimator,
)

TARGET_VOLATILITY: Mapping[int, float] = {
    1: 0.030,
    2: 0.045,
    3: 0.060,
    4: 0.075,
    5: 0.090,
    6: 0.105,
    7: 0.120,
    8: 0.140,
    9: 0.160,
    10: 0.180,
}
LOOKBACK_YEARS = 5
MAX_WEIGHT = 0.6
# The platform's asset-class codes (portfolios.models_market.AssetClass) that make up
# a dynamic allocation's defensive sleeve.
DEFENSIVE_CLASSES = frozenset(
    {"us_bonds", "intl_bonds", "inflation_protected", "cash", "stablecoin"}
)
ALTERNATIVES = (
    Method.MIN_VARIANCE,
    Method.HRP,
    Method.RISK_PARITY,
    Method.EQUAL_WEIGHT,
    Method.DYNAMIC,
)


def target_volatility(risk_level: int) -> float:
    if isinstance(risk_level, bool) or risk_level not in TARGET_VOLATILITY:
        raise InvalidParameter(f"risk level {risk_level!r} must be an integer from 1 to 10")
    return TARGET_VOLATILITY[risk_level]


@dataclass(frozen=True)
class Recommendation:
    risk_level: int
    method: Method
    target_volatility: float
    parameters: Mapping[str, Any]
    alternatives: tuple[Method, ...]
    explanation: str

    def request(self, **inputs: Any) -> OptimiseRequest:
        """An OptimiseRequest of this recommendation; ``inputs`` give universe, prices, ..."""
        return OptimiseRequest(**{**self.parameters, **inputs})


def recommend(risk_level: int, *, frequency: int = 252) -> Recommendation:
    """The recommended method and parameters for ``risk_level`` (prices at ``frequency``)."""
    vol = target_volatility(risk_level)
    params: dict[str, Any] = {
        "method": Method.EFFICIENT_RISK,
        "target_volatility": vol,
        "return_estimator": ReturnEstimator.CAPM,
        "covariance_estimator": CovarianceEstimator.LEDOIT_WOLF,
        "lookback": LOOKBACK_YEARS * frequency,
        "frequency": frequency,
        "weight_bounds": (0.0, MAX_WEIGHT),
        # the dynamic alternative's realised-volatility window: a quarter of daily
        # data, a year of monthly data
        "vol_lookback": max(12, frequency // 4),
    }
    return Recommendation(
        risk_level=risk_level,
        method=Method.EFFICIENT_RISK,
        target_volatility=vol,
        parameters=params,
        alternatives=ALTERNATIVES,
        explanation=(
            f"Risk level {risk_level} aims for ups and downs of about {vol:.1%} a year: "
            "the portfolio with the best expected return at that level of risk, "
            f"no single fund above {MAX_WEIGHT:.0%}."
        ),
    )


def recommend_and_optimise(risk_level: int, **inputs: Any) -> tuple[Recommendation, OptimiseResult]:
    """Recommend and compute; below the least volatile mix, fall back to minimum variance."""
    frequency = int(inputs.get("frequency", 252))
    rec = recommend(risk_level, frequency=frequency)
    req = rec.request(**inputs)
    try:
        return rec, optimise(req)
    except InfeasibleStrategy as exc:
        if "below the minimum achievable volatility" not in str(exc):
            raise
        reason = str(exc)
    fallback = dataclasses.replace(
        rec,
        method=Method.MIN_VARIANCE,
        parameters={**rec.parameters, "method": Method.MIN_VARIANCE},
        explanation=rec.explanation
        + f" The funds available cannot be that calm; this is the least volatile mix ({reason}).",
    )
    return fallback, optimise(dataclasses.replace(req, method=Method.MIN_VARIANCE))


def backtest_alternatives(
    risk_level: int,
    *,
    start: str | pd.Timestamp,
    end: str | pd.Timestamp | None = None,
    reoptimise: str = "quarterly",
    calendar: str = "quarterly",
    bps: float = 0.0,
    **inputs: Any,
) -> list[dict[str, Any]]:
    """The recommendation and its alternatives, each backtested walk-forward.

    ``inputs`` are the request's (universe, prices, frequency, bounds, ...). Every
    strategy is re-optimised on ``reoptimise`` dates with prices up to that date
    only and rebalanced on ``calendar`` dates, from ``start``. The dynamic
    alternative holds the recommendation's target volatility with the assets of
    the universe split by the request's ``asset_classes``: classes named in
    ``defensive_classes`` (default: bonds, inflation-protected, cash and
    stablecoins) form the defensive sleeve.
    Returns, per method: the method, whether it is the recommendation, the
    backtest's metrics, turnover and costs; or the error that prevented it.
    """
    from portfolios.engine.backtest import (
        BacktestConfig,
        RebalancePolicy,
        TransactionCosts,
        backtest_run,
    )
    from portfolios.engine.optimise.walkforward import weights_function

    defensive_classes = set(inputs.pop("defensive_classes", DEFENSIVE_CLASSES))
    rec = recommend(risk_level, frequency=int(inputs.get("frequency", 252)))
    base = rec.request(**inputs)
    prices = base.prices
    window = prices.loc[:end] if end is not None else prices
    rows: list[dict[str, Any]] = []
    for method in (rec.method, *rec.alternatives):
        request = dataclasses.replace(base, method=method)
        if method is Method.DYNAMIC:
            classes = dict(base.asset_classes)
            defensive = {s: 1.0 for s in base.universe if classes.get(s) in defensive_classes}
            risky = {s: 1.0 for s in base.universe if s not in defensive}
            request = dataclasses.replace(request, risky_sleeve=risky, defensive_sleeve=defensive)
        row: dict[str, Any] = {"method": method.value, "recommended": method is rec.method}
        try:
            result = backtest_run(
                window[list(base.universe)],
                weights_function(request),
                policy=RebalancePolicy(calendar=calendar),
                costs=TransactionCosts(bps=bps),
                config=BacktestConfig(start=start, end=end, reoptimise=reoptimise),
            )
        except ValueError as exc:  # StrategyError and BacktestError are ValueErrors
            row["error"] = str(exc)
        else:
            row.update(
                metrics=result.metrics.as_dict(),
                turnover=result.turnover,
                costs_paid=result.costs_paid,
            )
        rows.append(row)
    return rows

"""The efficient frontier of a request's universe, for the strategy page's chart."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from portfolios.engine.optimise import constraints as cons
from portfolios.engine.optimise import estimators
from portfolios.engine.types import InfeasibleStrategy, InvalidParameter, OptimiseRequest

STAT_DECIMALS = 10


@dataclass(frozen=True)
class FrontierPoint:
    volatility: float
    expected_return: float
    sharpe_ratio: float


def efficient_frontier(request: OptimiseRequest, points: int = 20) -> tuple[FrontierPoint, ...]:
    """``points`` portfolios from the least volatile to the highest expected return.

    Same universe, exclusions, price window, estimators, bounds and class limits
    as ``optimise(request)``; each point minimises variance for an expected
    return spaced evenly between the minimum-variance portfolio's and the
    highest feasible one. Annualised, in-sample, rounded to 10 decimals.
    """
    if not 2 <= points <= 200:
        raise InvalidParameter(f"frontier points {points} must be between 2 and 200")
    symbols = [s for s in request.universe if s not in request.exclusions]
    c = cons.build_constraints(
        symbols,
        weight_bounds=request.weight_bounds,
        asset_bounds=request.asset_bounds,
        asset_classes=request.asset_classes,
        class_min=request.class_min,
        class_max=request.class_max,
        ignore=frozenset(request.exclusions),
    )
    cons.check_feasible(c)
    window = estimators.price_window(request.prices, symbols, request.lookback)
    mu = estimators.expected_return(
        window,
        request.return_estimator,
        frequency=request.frequency,
        risk_free_rate=request.risk_free_rate,
        ema_span=request.ema_span,
    )
    cov = estimators.covariance(window, request.covariance_estimator, frequency=request.frequency)
    _, w_min = cons.min_volatility(cov, c)
    low = float(w_min @ mu)
    high = cons.max_return(mu, c)
    sym = (cov + cov.T) / 2
    w = cons.cp.Variable(len(symbols))
    target = cons.cp.Parameter()
    problem = cons.cp.Problem(
        cons.cp.Minimize(cons.cp.quad_form(w, cons.cp.psd_wrap(sym))),
        [*cons.cvxpy_constraints(w, c), mu @ w >= target],
    )
    out: list[FrontierPoint] = []
    for goal in np.linspace(low, high, points):
        target.value = float(goal) - 1e-9 * max(1.0, abs(float(goal)))
        try:
            problem.solve(solver=cons.SOLVER)
        except cons.cp.error.SolverError as exc:  # pragma: no cover - solver-specific
            raise InfeasibleStrategy(f"efficient frontier: the solver failed ({exc})") from exc
        if problem.status not in (cons.cp.OPTIMAL, cons.cp.OPTIMAL_INACCURATE):
            continue  # pragma: no cover - a numerical miss at the very end
        weights = np.clip(np.asarray(w.value, dtype=np.float64), 0.0, None)
        weights = weights / weights.sum()
        ret = float(weights @ mu)
        vol = math.sqrt(max(float(weights @ sym @ weights), 0.0))
        sharpe = (ret - request.risk_free_rate) / vol if vol > 1e-12 else 0.0
        out.append(
            FrontierPoint(
                volatility=round(vol, STAT_DECIMALS),
                expected_return=round(ret, STAT_DECIMALS),
                sharpe_ratio=round(sharpe, STAT_DECIMALS),
            )
        )
    return tuple(out)

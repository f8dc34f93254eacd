"""Strategy optimisation: pure numpy/pandas/PyPortfolioOpt, no Django.

Entry point: ``optimise(OptimiseRequest(...)) -> OptimiseResult`` (types in
``portfolios.engine.types``). Methods and the parameters each one needs:

==================  ==========================================================
method              parameters (besides universe, prices, lookback, frequency)
==================  ==========================================================
fixed               fixed_weights (sum to 1; excluded assets dropped, rest scaled)
equal_weight        -
market_cap          market_caps, max_weight (cap and redistribute iteratively)
max_sharpe          return/covariance estimators, risk_free_rate
min_variance        covariance estimator
efficient_risk      target_volatility (>= the least volatile feasible mix)
efficient_return    target_return (<= the highest feasible expected return)
hrp                 hrp_linkage (PyPortfolioOpt HRPOpt)
black_litterman     market_caps (prior), views, risk_aversion (2.5), tau (0.05)
inverse_volatility  covariance estimator
risk_parity         covariance estimator (equal risk contribution)
index               market_caps, top_n (2..100), max_weight
dynamic             risky_sleeve, defensive_sleeve, target_volatility, vol_lookback
==================  ==========================================================

Every method honours weight_bounds, asset_bounds, asset_classes with
class_min/class_max, and exclusions. Helpers: ``index_weights`` /
``select_top_n`` / ``reconstitution_dates`` (index), ``risky_shares`` (dynamic
allocation over time), ``recommend`` (risk level to target volatility and
method), ``weights_function`` (a strategy for the walk-forward backtester),
``efficient_frontier`` (points for the chart), ``explain`` (plain language).
Screening lives in ``portfolios.engine.screening``, per-client customisation in
``portfolios.engine.customise``.
"""

from portfolios.engine.optimise.core import equal_risk_contribution, fingerprint, optimise
from portfolios.engine.optimise.dynamic import risky_share, risky_shares, sleeve_returns
from portfolios.engine.optimise.explain import explain
from portfolios.engine.optimise.frontier import FrontierPoint, efficient_frontier
from portfolios.engine.optimise.index import (
    caps_as_of,
    index_weights,
    index_weights_function,
    reconstitution_dates,
    select_top_n,
)
from portfolios.engine.optimise.recommend import (
    Recommendation,
    backtest_alternatives,
    recommend,
    recommend_and_optimise,
    target_volatility,
)
from portfolios.engine.optimise.rounding import cap_and_redistribute, round_weights
from portfolios.engine.optimise.walkforward import weights_function

__all__ = [
    "FrontierPoint",
    "Recommendation",
    "backtest_alternatives",
    "cap_and_redistribute",
    "caps_as_of",
    "efficient_frontier",
    "equal_risk_contribution",
    "explain",
    "fingerprint",
    "index_weights",
    "index_weights_function",
    "optimise",
    "recommend",
    "recommend_and_optimise",
    "reconstitution_dates",
    "risky_share",
    "risky_shares",
    "round_weights",
    "select_top_n",
    "sleeve_returns",
    "target_volatility",
    "weights_function",
]

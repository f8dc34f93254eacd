"""Strategy optimisation (pure numpy/pandas/PyPortfolioOpt; no Django)."""

from portfolios.engine.optimise.core import equal_risk_contribution, fingerprint, optimise
from portfolios.engine.optimise.dynamic import risky_share, risky_shares, sleeve_returns
from portfolios.engine.optimise.index import index_weights, reconstitution_dates, select_top_n
from portfolios.engine.optimise.recommend import (
    Recommendation,
    recommend,
    recommend_and_optimise,
    target_volatility,
)
from portfolios.engine.optimise.rounding import cap_and_redistribute, round_weights
from portfolios.engine.optimise.walkforward import weights_function

__all__ = [
    "Recommendation",
    "cap_and_redistribute",
    "equal_risk_contribution",
    "fingerprint",
    "index_weights",
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

"""Risk level -> target volatility -> recommended strategy, on the classic ETF family."""

from __future__ import annotations

import itertools

import pytest

from portfolios.engine.optimise import (
    recommend,
    recommend_and_optimise,
    target_volatility,
)
from portfolios.engine.types import InvalidParameter, Method, ReturnEstimator

from .conftest import ETFS


def test_table_is_increasing_and_documented():
    vols = [target_volatility(level) for level in range(1, 11)]
    assert vols == sorted(vols)
    assert vols[0] == 0.03
    assert vols[-1] == 0.18
    for bad in (0, 11, True, 5.5):
        with pytest.raises(InvalidParameter, match="risk level"):
            target_volatility(bad)  # type: ignore[arg-type]


def test_recommended_parameters():
    rec = recommend(7, frequency=12)
    assert rec.method is Method.EFFICIENT_RISK
    assert rec.target_volatility == 0.12
    assert rec.parameters["lookback"] == 60
    assert rec.parameters["return_estimator"] is ReturnEstimator.CAPM
    assert Method.MIN_VARIANCE in rec.alternatives
    assert "12.0%" in rec.explanation


def test_every_level_on_the_etf_family(etf_prices):
    results = []
    for level in range(1, 11):
        rec, res = recommend_and_optimise(level, universe=ETFS, prices=etf_prices, frequency=12)
        if rec.method is Method.EFFICIENT_RISK:
            assert res.volatility <= rec.target_volatility + 1e-6
        else:  # the ETFs cannot be calmer than their minimum-variance mix
            assert rec.method is Method.MIN_VARIANCE
            assert level == 1
            assert "least volatile" in rec.explanation
        assert max(res.weights.values()) <= 0.6 + 1e-12
        results.append(res)
    vols = [r.volatility for r in results]
    rets = [r.expected_return for r in results]
    assert vols == sorted(vols)
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(rets))
    assert results[-1].weights["VTI"] > results[0].weights["VTI"]


def test_efficient_frontier_brackets_the_strategies(etf_prices):
    from portfolios.engine.optimise import efficient_frontier, optimise

    from .test_optimise import etf_request

    req = etf_request(etf_prices, Method.MAX_SHARPE, weight_bounds=(0.0, 0.6))
    points = efficient_frontier(req, points=12)
    assert len(points) == 12
    vols = [p.volatility for p in points]
    rets = [p.expected_return for p in points]
    assert vols == sorted(vols)
    assert rets == sorted(rets)
    ms = optimise(req)
    mv = optimise(etf_request(etf_prices, Method.MIN_VARIANCE, weight_bounds=(0.0, 0.6)))
    assert vols[0] == pytest.approx(mv.volatility, abs=1e-6)
    assert max(p.sharpe_ratio for p in points) <= ms.sharpe_ratio + 1e-6
    with pytest.raises(InvalidParameter, match="frontier points"):
        efficient_frontier(req, points=1)


def test_every_method_is_explained():
    from portfolios.engine.optimise import explain

    for method in Method:
        text = explain(method)
        assert len(text) > 30
        assert "sharpe" not in text.lower()  # plain language


def test_alternatives_backtested_beside_the_recommendation(etf_prices):
    from portfolios.engine.optimise import backtest_alternatives

    from .test_optimise import ETF_CLASSES

    rows = backtest_alternatives(
        5,
        universe=ETFS,
        prices=etf_prices,
        frequency=12,
        lookback=36,
        asset_classes=ETF_CLASSES,
        start="2018-01-01",
    )
    by_method = {row["method"]: row for row in rows}
    assert by_method["efficient_risk"]["recommended"] is True
    assert set(by_method) == {"efficient_risk", "min_variance", "hrp", "risk_parity",
                              "equal_weight", "dynamic"}  # fmt: skip
    for row in rows:
        assert "error" not in row, row
        assert row["metrics"]["volatility"] > 0
    # the least volatile in sample is also among the calmest out of sample here
    assert (
        by_method["min_variance"]["metrics"]["volatility"]
        < by_method["equal_weight"]["metrics"]["volatility"]
    )

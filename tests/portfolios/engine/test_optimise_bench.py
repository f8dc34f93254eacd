"""The benchmark functions run and report figures beside their floors (tiny sizes here)."""

from __future__ import annotations

import json

from portfolios.engine.optimise.bench import bench_strategies, synthetic_prices
from portfolios.engine.types import Method


def test_bench_reports_every_method_and_the_reuse():
    out = bench_strategies(sizes=(8,), portfolios=300, distinct=12)
    json.dumps(out)
    methods = {row["method"] for row in out["methods"]}
    assert methods == {m.value for m in Method}
    for row in out["methods"]:
        assert row["assets"] == 8
        assert row["seconds"] > 0
        assert row["estimators_floor_seconds"] > 0
    reuse = out["customisation_reuse"]
    assert reuse["portfolios"] == 300
    assert reuse["distinct_signatures"] == 12
    assert reuse["seconds_with_reuse"] > 0


def test_synthetic_prices_are_deterministic_and_drift_up():
    a = synthetic_prices(5, 100, seed=3)
    b = synthetic_prices(5, 100, seed=3)
    assert a.equals(b)
    assert (a.iloc[-1] > 0).all()
    assert a.pct_change().mean().mean() > 0

"""Strategy optimisation on real data (../shared/data): every method, constraints, bad input."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import pytest

from portfolios.engine.optimise import equal_risk_contribution, optimise
from portfolios.engine.types import (
    CovarianceEstimator,
    InfeasibleStrategy,
    InsufficientHistory,
    InvalidParameter,
    Method,
    OptimiseRequest,
    OptimiseResult,
    ReturnEstimator,
    UnknownAsset,
    View,
)

from .conftest import ETFS, STOCKS

ETF_CLASSES = {
    "VTI": "us_equity",
    "VXUS": "intl_equity",
    "BND": "us_bonds",
    "BNDX": "intl_bonds",
    "VTIP": "inflation_protected",
}
ETF_CAPS = {"VTI": 1300.0, "VXUS": 400.0, "BND": 300.0, "BNDX": 180.0, "VTIP": 40.0}
STOCK_CAPS = {
    "AAPL": 3400.0,
    "AMZN": 2300.0,
    "BRK-B": 1000.0,
    "GOOGL": 2300.0,
    "JNJ": 350.0,
    "JPM": 680.0,
    "META": 1500.0,
    "MSFT": 3100.0,
    "TSLA": 1300.0,
    "V": 600.0,
}


def method_kwargs(method: Method, symbols: tuple[str, ...]) -> dict[str, object]:
    """The extra parameters each method needs, on a universe ``symbols``."""
    caps = {**ETF_CAPS, **STOCK_CAPS}
    kw: dict[str, object] = {"market_caps": {s: caps[s] for s in symbols}}
    if method is Method.FIXED:
        kw["fixed_weights"] = {s: 1 / len(symbols) for s in symbols}
    elif method is Method.INDEX:
        kw.update(top_n=min(4, len(symbols)), max_weight=0.4)
    elif method is Method.MARKET_CAP:
        kw["max_weight"] = 0.4
    elif method is Method.EFFICIENT_RISK:
        kw["target_volatility"] = 0.30 if "AAPL" in symbols else 0.08
    elif method is Method.EFFICIENT_RETURN:
        kw["target_return"] = 0.15 if "AAPL" in symbols else 0.05
    elif method is Method.BLACK_LITTERMAN:
        kw["views"] = (
            View(symbols[0], 0.08, 0.6),
            View(symbols[1], 0.02, 0.4, relative_to=symbols[2]),
        )
    elif method is Method.DYNAMIC:
        half = len(symbols) // 2
        kw.update(
            target_volatility=0.08 if "VTI" in symbols else 0.2,
            risky_sleeve=dict.fromkeys(symbols[:half], 1.0),
            defensive_sleeve=dict.fromkeys(symbols[half:], 1.0),
            vol_lookback=24 if "VTI" in symbols else 63,
        )
    return kw


def etf_request(etf_prices: pd.DataFrame, method: Method, **over: object) -> OptimiseRequest:
    kw: dict[str, object] = {
        "method": method,
        "universe": ETFS,
        "prices": etf_prices,
        "lookback": 60,
        "frequency": 12,
        "asset_classes": ETF_CLASSES,
        **method_kwargs(method, ETFS),
    }
    kw.update(over)
    return OptimiseRequest(**kw)  # type: ignore[arg-type]


def stock_request(stock_prices: pd.DataFrame, method: Method, **over: object) -> OptimiseRequest:
    kw: dict[str, object] = {
        "method": method,
        "universe": STOCKS,
        "prices": stock_prices,
        "lookback": 250,
        "frequency": 252,
        **method_kwargs(method, STOCKS),
    }
    kw.update(over)
    return OptimiseRequest(**kw)  # type: ignore[arg-type]


def assert_well_formed(res: OptimiseResult) -> np.ndarray:
    w = np.array(list(res.weights.values()))
    assert math.isclose(math.fsum(w), 1.0, abs_tol=1e-12)
    units = w * 1e8
    assert np.allclose(units, np.round(units), atol=1e-6), "weights are multiples of 1e-8"
    assert (w >= 0).all()
    assert len(res.fingerprint) == 64
    assert math.isfinite(res.sharpe_ratio)
    return w


# Bounds and class limits every method must respect on the ETF family.
ETF_LIMITS = {
    "weight_bounds": (0.02, 0.45),
    "asset_bounds": {"VTIP": (0.0, 0.10)},
    "class_min": {"us_bonds": 0.15},
    "class_max": {"us_equity": 0.40, "intl_equity": 0.20},
}


@pytest.mark.parametrize("method", list(Method))
def test_etf_methods_respect_bounds_classes_and_exclusions(etf_prices, method):
    req = etf_request(etf_prices, method, **ETF_LIMITS)
    if method is Method.INDEX:  # three members; the two smallest are out of the index
        req = dataclasses.replace(req, top_n=3, weight_bounds=(0.0, 0.45))
    res = optimise(req)
    assert_well_formed(res)
    w = res.weights
    held = [s for s in ETFS if w[s] > 0]
    lo, hi = req.weight_bounds
    for s in held:
        cap = 0.10 if s == "VTIP" else hi
        assert w[s] <= cap + 1e-12, s
        if method is not Method.INDEX and s != "VTIP":  # VTIP's own bounds: (0, 0.1)
            assert w[s] >= lo - 1e-12, s
    assert w["BND"] >= 0.15 - 1e-12
    assert w["VTI"] <= 0.40 + 1e-12
    assert w["VXUS"] <= 0.20 + 1e-12
    assert res.method is method

    # exclusions: the excluded asset is gone, the rest still sums to one
    excl = dataclasses.replace(req, exclusions=frozenset({"BNDX"}))
    if method is Method.DYNAMIC:
        excl = dataclasses.replace(excl, defensive_sleeve={"BND": 1.0, "VTIP": 1.0})
    if method is Method.BLACK_LITTERMAN:
        excl = dataclasses.replace(excl, views=(View("VTI", 0.08, 0.6),))
    res2 = optimise(excl)
    assert "BNDX" not in res2.weights
    assert_well_formed(res2)


@pytest.mark.parametrize("method", list(Method))
def test_stock_methods_sum_to_one_within_bounds(stock_prices, method):
    req = stock_request(stock_prices, method, weight_bounds=(0.0, 0.3))
    res = optimise(req)
    w = assert_well_formed(res)
    assert w.max() <= 0.3 + 1e-12
    assert res.prices_as_of == "2024-12-31"


def test_sp500_stocks(sp500_prices):
    universe = tuple(sp500_prices.columns)  # 20 stocks (16 in the trimmed fixtures)
    for method in (Method.MAX_SHARPE, Method.HRP, Method.RISK_PARITY, Method.MIN_VARIANCE):
        res = optimise(
            OptimiseRequest(
                method=method,
                universe=universe,
                prices=sp500_prices,
                lookback=250,
                weight_bounds=(0.0, 0.2),
            )
        )
        w = assert_well_formed(res)
        assert len(w) == len(universe) >= 16
        assert w.max() <= 0.2 + 1e-12


@pytest.mark.parametrize(
    ("make", "fixture"), [(etf_request, "etf_prices"), (stock_request, "stock_prices")]
)
def test_max_sharpe_beats_equal_weight_in_sample(request, make, fixture):
    prices = request.getfixturevalue(fixture)
    sharpe = optimise(make(prices, Method.MAX_SHARPE)).sharpe_ratio
    equal = optimise(make(prices, Method.EQUAL_WEIGHT)).sharpe_ratio
    assert sharpe > equal


@pytest.mark.parametrize(
    ("make", "fixture"), [(etf_request, "etf_prices"), (stock_request, "stock_prices")]
)
def test_min_variance_has_the_lowest_in_sample_volatility(request, make, fixture):
    prices = request.getfixturevalue(fixture)
    vols = {m: optimise(make(prices, m)).volatility for m in Method}
    lowest = vols[Method.MIN_VARIANCE]
    for m, v in vols.items():
        assert lowest <= v + 1e-7, (m, v, lowest)


def test_efficient_risk_and_return_hit_their_targets(etf_prices):
    res = optimise(etf_request(etf_prices, Method.EFFICIENT_RISK, target_volatility=0.06))
    assert res.volatility <= 0.06 + 1e-6
    assert res.volatility >= 0.06 - 1e-3  # on the frontier, the constraint binds
    res = optimise(etf_request(etf_prices, Method.EFFICIENT_RETURN, target_return=0.05))
    assert res.expected_return >= 0.05 - 1e-6
    ms = optimise(etf_request(etf_prices, Method.MIN_VARIANCE))
    assert res.volatility >= ms.volatility


def test_estimators_change_the_inputs(stock_prices):
    base = stock_request(stock_prices, Method.MAX_SHARPE)
    results = {
        (r, c): optimise(dataclasses.replace(base, return_estimator=r, covariance_estimator=c))
        for r in ReturnEstimator
        for c in CovarianceEstimator
    }
    for res in results.values():
        assert_well_formed(res)
    assert len({res.fingerprint for res in results.values()}) == len(results)
    assert len({res.expected_return for res in results.values()}) > 1


def test_risk_parity_equalises_risk_contributions(stock_prices):
    res = optimise(stock_request(stock_prices, Method.RISK_PARITY, lookback=120))
    w = np.array(list(res.weights.values()))
    rets = stock_prices.iloc[-121:].pct_change().iloc[1:]
    from pypfopt import risk_models

    cov = risk_models.CovarianceShrinkage(stock_prices.iloc[-121:], frequency=252).ledoit_wolf()
    rc = w * (cov.to_numpy() @ w)
    assert rc.max() / rc.min() < 1 + 1e-5
    assert len(rets) == 120


def test_equal_risk_contribution_on_a_known_matrix():
    cov = np.diag([0.04, 0.01])  # uncorrelated: weights inverse to volatility
    w = equal_risk_contribution(cov)
    assert w == pytest.approx([1 / 3, 2 / 3], abs=1e-10)


def test_black_litterman_view_tilts_towards_the_asset(etf_prices):
    base = etf_request(etf_prices, Method.BLACK_LITTERMAN, views=())
    neutral = optimise(base).weights
    bullish = optimise(dataclasses.replace(base, views=(View("VXUS", 0.15, 0.9),))).weights
    assert bullish["VXUS"] > neutral["VXUS"] + 0.01
    bearish = optimise(
        dataclasses.replace(base, views=(View("VTI", -0.05, 0.9, relative_to="BND"),))
    ).weights
    assert bearish["VTI"] < neutral["VTI"]


def test_market_cap_weights_are_capped_and_redistributed(stock_prices):
    res = optimise(stock_request(stock_prices, Method.MARKET_CAP, max_weight=0.15))
    w = res.weights
    assert max(w.values()) <= 0.15
    total = sum(STOCK_CAPS.values())
    # uncapped assets keep their relative proportions
    assert w["JNJ"] / w["V"] == pytest.approx(STOCK_CAPS["JNJ"] / STOCK_CAPS["V"], rel=1e-6)
    assert w["JNJ"] > STOCK_CAPS["JNJ"] / total  # they received the excess


def test_fixed_weights_are_kept_when_feasible(etf_prices):
    fixed = {"VTI": 0.35, "VXUS": 0.2, "BND": 0.3, "BNDX": 0.1, "VTIP": 0.05}
    res = optimise(etf_request(etf_prices, Method.FIXED, fixed_weights=fixed))
    assert dict(res.weights) == fixed


def test_fixed_weights_renormalise_after_an_exclusion(etf_prices):
    fixed = {"VTI": 0.4, "VXUS": 0.2, "BND": 0.2, "BNDX": 0.1, "VTIP": 0.1}
    res = optimise(etf_request(etf_prices, Method.FIXED, fixed_weights=fixed, exclusions={"VTIP"}))
    assert res.weights["VTI"] == pytest.approx(0.4 / 0.9, abs=1e-8)


def test_fingerprint_is_canonical_and_sensitive(etf_prices):
    req = etf_request(etf_prices, Method.MAX_SHARPE, asset_bounds={"VTI": (0, 0.5), "BND": (0, 1)})
    same = etf_request(etf_prices, Method.MAX_SHARPE, asset_bounds={"BND": (0, 1), "VTI": (0, 0.5)})
    a, b = optimise(req), optimise(same)
    assert a.fingerprint == b.fingerprint
    assert dict(a.weights) == dict(b.weights)  # bit-identical
    other = optimise(dataclasses.replace(req, risk_free_rate=0.01))
    assert other.fingerprint != a.fingerprint
    older = optimise(dataclasses.replace(req, prices=etf_prices.iloc[:-1]))
    assert older.fingerprint != a.fingerprint
    assert older.prices_as_of < a.prices_as_of


# -- bad input ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("over", "error", "words"),
    [
        ({"weight_bounds": (0.0, 0.15)}, InfeasibleStrategy, "maximum weights"),
        ({"weight_bounds": (0.25, 1.0)}, InfeasibleStrategy, "minimum weights sum to 1.25"),
        ({"asset_bounds": {"VTI": (0.5, 0.4)}}, InfeasibleStrategy, "'VTI'"),
        (
            {"class_min": {"us_equity": 0.6, "us_bonds": 0.5}},
            InfeasibleStrategy,
            "asset-class minimums sum to 1.1",
        ),
        (
            {
                "class_max": {
                    "us_equity": 0.2,
                    "intl_equity": 0.2,
                    "us_bonds": 0.2,
                    "intl_bonds": 0.2,
                    "inflation_protected": 0.1,
                }
            },
            InfeasibleStrategy,
            "asset-class maximums",
        ),
        (
            {"class_min": {"inflation_protected": 0.3}, "asset_bounds": {"VTIP": (0, 0.2)}},
            InfeasibleStrategy,
            "asset class 'inflation_protected'",
        ),
        ({"class_min": {"crypto": 0.1}}, InfeasibleStrategy, "'crypto'"),
        ({"universe": (*ETFS, "NOPE")}, UnknownAsset, "'NOPE'"),
        ({"asset_bounds": {"NOPE": (0, 0.1)}}, UnknownAsset, "'NOPE'"),
        ({"exclusions": frozenset(ETFS)}, InfeasibleStrategy, "excluded"),
        ({"lookback": 500}, InsufficientHistory, "lookback of 500"),
        ({"lookback": 1}, InvalidParameter, "lookback"),
    ],
)
def test_bad_input_names_the_constraint_or_asset(etf_prices, over, error, words):
    with pytest.raises(error) as exc:
        optimise(etf_request(etf_prices, Method.MIN_VARIANCE, **over))
    assert words in str(exc.value)


def test_target_volatility_below_the_minimum(etf_prices):
    with pytest.raises(InfeasibleStrategy, match=r"target volatility 0\.01 is below the minimum"):
        optimise(etf_request(etf_prices, Method.EFFICIENT_RISK, target_volatility=0.01))


def test_target_volatility_below_the_constrained_minimum(etf_prices):
    # feasible without limits, not with 40% in US equity forced
    req = etf_request(etf_prices, Method.EFFICIENT_RISK, target_volatility=0.04)
    optimise(req)
    with pytest.raises(InfeasibleStrategy, match="below the minimum achievable volatility"):
        optimise(dataclasses.replace(req, class_min={"us_equity": 0.4}))


def test_target_return_above_the_maximum(etf_prices):
    with pytest.raises(InfeasibleStrategy, match=r"target return 0\.9 is above the maximum"):
        optimise(etf_request(etf_prices, Method.EFFICIENT_RETURN, target_return=0.9))


def test_max_sharpe_with_a_risk_free_rate_above_every_return(etf_prices):
    with pytest.raises(InfeasibleStrategy, match="risk-free rate"):
        optimise(etf_request(etf_prices, Method.MAX_SHARPE, risk_free_rate=0.9))


def test_too_little_history_names_the_asset(full_history, crypto_prices):
    prices = crypto_prices.loc["2020-01-01":"2020-12-31"]
    with pytest.raises(InsufficientHistory, match="asset 'DOT' has"):
        optimise(
            OptimiseRequest(
                method=Method.EQUAL_WEIGHT,
                universe=("BTC", "ETH", "DOT"),
                prices=prices,
                lookback=300,
                frequency=365,
            )
        )


@pytest.mark.parametrize(
    ("method", "over", "error", "words"),
    [
        (Method.MARKET_CAP, {"market_caps": {"VTI": 1.0}}, UnknownAsset, "market capitalisation"),
        (Method.INDEX, {"top_n": 1}, InvalidParameter, "top_n=1"),
        (Method.INDEX, {"top_n": 3, "max_weight": 0.3}, InfeasibleStrategy, "per-asset cap 0.3"),
        (Method.FIXED, {"fixed_weights": {"VTI": 0.5}}, InvalidParameter, "sum to 0.5"),
        (Method.FIXED, {"fixed_weights": {"XYZ": 1.0}}, UnknownAsset, "'XYZ'"),
        (
            Method.BLACK_LITTERMAN,
            {"views": (View("XYZ", 0.1, 0.5),)},
            UnknownAsset,
            "'XYZ'",
        ),
        (
            Method.BLACK_LITTERMAN,
            {"views": (View("VTI", 0.1, 1.5),)},
            InvalidParameter,
            "confidence",
        ),
        (Method.EFFICIENT_RISK, {"target_volatility": None}, InvalidParameter, "target_volatility"),
        (Method.DYNAMIC, {"risky_sleeve": {"XYZ": 1.0}}, UnknownAsset, "'XYZ'"),
        (Method.DYNAMIC, {"defensive_sleeve": {}}, InvalidParameter, "defensive sleeve"),
        (
            Method.BLACK_LITTERMAN,
            {"market_caps": dict.fromkeys(ETFS, 0.0)},
            InvalidParameter,
            "market capitalisations",
        ),
        (Method.HRP, {"hrp_linkage": "nope"}, InvalidParameter, "linkage"),
        (Method.MAX_SHARPE, {"ema_span": 1, "return_estimator": "ema"}, InvalidParameter, "EMA"),
        (Method.EQUAL_WEIGHT, {"universe": ()}, InvalidParameter, "universe is empty"),
    ],
)
def test_bad_method_parameters(etf_prices, method, over, error, words):
    with pytest.raises(error) as exc:
        optimise(etf_request(etf_prices, method, **over))
    assert words in str(exc.value)


def test_result_record_is_json_ready(crypto_prices):
    import json

    from .test_optimise_index import CRYPTO_CAPS

    res = optimise(
        OptimiseRequest(
            method=Method.INDEX,
            universe=("BTC", "ETH", "XRP", "SOL"),
            prices=crypto_prices,
            lookback=90,
            frequency=365,
            market_caps=CRYPTO_CAPS,
            top_n=3,
            max_weight=0.5,
        )
    )
    record = json.loads(json.dumps(res.to_record()))
    assert record["method"] == "index"
    assert record["details"]["members"] == ["BTC", "ETH", "XRP"]
    assert record["weights"] == dict(res.weights)
    assert record["prices_as_of"] == "2025-02-11"


def test_market_cap_cap_too_small(stock_prices):
    with pytest.raises(InfeasibleStrategy, match=r"per-asset cap 0\.05 x 10 assets"):
        optimise(stock_request(stock_prices, Method.MARKET_CAP, max_weight=0.05))


def test_walk_forward_backtest_of_a_strategy(etf_prices):
    from portfolios.engine.backtest import BacktestConfig, RebalancePolicy, backtest_run
    from portfolios.engine.optimise import weights_function

    seen = []
    req = etf_request(etf_prices, Method.MIN_VARIANCE, lookback=36, weight_bounds=(0.0, 0.5))
    fn = weights_function(req, on_result=lambda day, res: seen.append((day, res)))
    result = backtest_run(
        etf_prices,
        fn,
        policy=RebalancePolicy(calendar="quarterly"),
        config=BacktestConfig(start="2019-01-01", reoptimise="quarterly"),
    )
    assert len(seen) >= 9  # 2019-01 .. 2021-04, once a quarter
    for day, res in seen:
        assert res.prices_as_of == day.date().isoformat()  # nothing after the decision date
        assert max(res.weights.values()) <= 0.5 + 1e-12
    assert len({res.fingerprint for _, res in seen}) == len(seen)
    assert result is not None


def test_unknown_method_or_estimator_is_named(etf_prices):
    with pytest.raises(InvalidParameter, match="unknown method 'nope'"):
        etf_request(etf_prices, "nope")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter, match="unknown covariance_estimator 'x'"):
        etf_request(etf_prices, Method.MIN_VARIANCE, covariance_estimator="x")


def test_a_gap_in_the_window_is_too_little_history(etf_prices):
    gappy = etf_prices.copy()
    gappy.loc[gappy.index[-5], "BND"] = float("nan")
    with pytest.raises(InsufficientHistory, match="asset 'BND' has 60 of the 61 prices"):
        optimise(etf_request(gappy, Method.MIN_VARIANCE))

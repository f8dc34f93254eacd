"""Index strategies: top-N selection, caps and redistribution, reconstitution schedule."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portfolios.engine.optimise import (
    cap_and_redistribute,
    index_weights,
    optimise,
    reconstitution_dates,
    round_weights,
    select_top_n,
)
from portfolios.engine.types import (
    InfeasibleStrategy,
    InvalidParameter,
    Method,
    OptimiseRequest,
    Schedule,
    UnknownAsset,
)

# Approximate market capitalisations (USD bn) of the crypto assets early 2025.
CRYPTO_CAPS = {
    "BTC": 1900.0,
    "ETH": 320.0,
    "XRP": 140.0,
    "USDT": 140.0,
    "SOL": 95.0,
    "BNB": 90.0,
    "USDC": 56.0,
    "DOGE": 38.0,
    "ADA": 25.0,
    "LINK": 12.0,
    "AVAX": 10.0,
    "LTC": 9.0,
    "DOT": 7.0,
    "MATIC": 4.0,
}


def test_top_n_by_market_cap_with_ties_and_exclusions():
    caps = {"A": 5.0, "B": 9.0, "C": 5.0, "D": 1.0}
    assert select_top_n(caps, 3) == ("B", "A", "C")  # tie broken by symbol
    assert select_top_n(caps, 2, exclusions={"B"}) == ("A", "C")
    assert select_top_n(caps, 10) == ("B", "A", "C", "D")
    with pytest.raises(InvalidParameter, match="between 2 and 100"):
        select_top_n(caps, 101)
    with pytest.raises(UnknownAsset, match="'Z'"):
        select_top_n(caps, 2, universe=["A", "Z"])


def test_cap_and_redistribute_by_hand():
    w = cap_and_redistribute([70, 20, 10], 0.5)
    # 0.7 -> 0.5, excess 0.2 shared 2:1 -> 0.2 + 0.1333, 0.1 + 0.0667
    assert w == pytest.approx([0.5, 0.2 + 0.2 * 2 / 3, 0.1 + 0.2 / 3])
    # a second round: 0.4 cap makes the second asset exceed it too
    w = cap_and_redistribute([60, 30, 5, 5], 0.4)
    assert w == pytest.approx([0.4, 0.4, 0.1, 0.1])
    with pytest.raises(InfeasibleStrategy, match="cannot sum to one"):
        cap_and_redistribute([1, 1, 1], 0.3)


@settings(max_examples=200, deadline=None)
@given(
    caps=st.lists(
        st.floats(min_value=0.0, max_value=1e12, allow_nan=False), min_size=2, max_size=100
    ),
    cap_frac=st.floats(min_value=0.0, max_value=1.0),
)
def test_capped_redistribution_never_exceeds_the_cap_and_sums_to_one(caps, cap_frac):
    n = len(caps)
    cap = 1 / n + cap_frac * (1 - 1 / n)  # any feasible cap
    w = cap_and_redistribute(caps, cap)
    assert w.max() <= cap + 1e-12
    assert math.isclose(w.sum(), 1.0, abs_tol=1e-9)
    rounded = round_weights(w, upper=np.full(n, cap))
    assert rounded.max() <= cap + 1e-8  # one unit at most, when the cap is not a multiple
    assert math.isclose(math.fsum(rounded), 1.0, abs_tol=1e-12)
    units = np.round(rounded * 1e8).astype(np.int64)
    assert int(units.sum()) == 100_000_000
    # order is kept: a larger market cap never gets a smaller weight
    order = np.argsort(caps, kind="stable")
    assert (np.diff(w[order]) >= -1e-12).all()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=1e-6, max_value=1.0), min_size=1, max_size=60))
def test_rounding_gives_units_of_1e8_summing_to_one(raw):
    w = np.array(raw) / sum(raw)
    r = round_weights(w)
    units = r * 1e8
    assert np.allclose(units, np.round(units), atol=1e-6)
    assert int(np.round(units).sum()) == 100_000_000
    assert np.abs(r - w).max() <= 1e-8 * len(raw)


def test_crypto_index_top_10_with_cap(crypto_prices):
    universe = tuple(CRYPTO_CAPS)
    req = OptimiseRequest(
        method=Method.INDEX,
        universe=universe,
        prices=crypto_prices,
        lookback=180,
        frequency=365,
        market_caps=CRYPTO_CAPS,
        top_n=10,
        max_weight=0.25,
        exclusions=frozenset({"USDT", "USDC"}),  # no stablecoins in this index
    )
    res = optimise(req)
    members = res.details["members"]
    assert members == ("BTC", "ETH", "XRP", "SOL", "BNB", "DOGE", "ADA", "LINK", "AVAX", "LTC")
    w = res.weights
    assert w["BTC"] == 0.25
    assert w["ETH"] == 0.25  # 320/2650 of the rest after BTC's cap exceeds 0.25 too
    assert all(w[s] == 0 for s in ("DOT", "MATIC"))
    assert "USDT" not in w
    assert math.isclose(math.fsum(w.values()), 1.0, abs_tol=1e-12)
    # uncapped members keep their market-cap proportions
    assert w["XRP"] / w["ADA"] == pytest.approx(140 / 25, rel=1e-6)
    assert index_weights(CRYPTO_CAPS, 10, max_weight=0.25, exclusions={"USDT", "USDC"}) == {
        s: w[s] for s in members
    }


def test_index_of_two_and_of_a_hundred():
    caps = {f"C{i:03d}": float(1000 - i) for i in range(150)}
    two = index_weights(caps, 2)
    assert list(two) == ["C000", "C001"]
    hundred = index_weights(caps, 100, max_weight=0.012)
    assert len(hundred) == 100
    assert max(hundred.values()) <= 0.012
    assert math.isclose(math.fsum(hundred.values()), 1.0, abs_tol=1e-12)


def test_reconstitution_schedule(crypto_prices):
    dates = crypto_prices.loc["2023-11-15":"2025-02-11"].index
    monthly = reconstitution_dates(dates, Schedule.MONTHLY)
    assert monthly[0] == pd.Timestamp("2023-11-15")  # formed on the first date
    assert list(monthly[1:4].strftime("%Y-%m-%d")) == ["2023-12-01", "2024-01-01", "2024-02-01"]
    assert len(monthly) == 16
    quarterly = reconstitution_dates(dates, "quarterly")
    assert list(quarterly.strftime("%Y-%m-%d")) == [
        "2023-11-15",
        "2024-01-01",
        "2024-04-01",
        "2024-07-01",
        "2024-10-01",
        "2025-01-01",
    ]
    yearly = reconstitution_dates(dates, Schedule.YEARLY)
    assert list(yearly.strftime("%Y-%m-%d")) == ["2023-11-15", "2024-01-01", "2025-01-01"]


def test_reconstitution_on_trading_days_only(stock_prices):
    # 2024-06-01 is a Saturday: June reconstitutes on Monday 3 June; tz-aware input works.
    dates = stock_prices.loc["2024-05-01":"2024-07-31"].index.tz_localize("America/New_York")
    got = reconstitution_dates(dates, Schedule.MONTHLY)
    assert list(got.strftime("%Y-%m-%d")) == ["2024-05-01", "2024-06-03", "2024-07-01"]
    assert len(reconstitution_dates([], Schedule.MONTHLY)) == 0


# Approximate circulating supplies (early 2025): price x supply ~ market cap over time.
SUPPLY = {
    "BTC": 19.8e6,
    "ETH": 120e6,
    "XRP": 57e9,
    "SOL": 480e6,
    "BNB": 145e6,
    "DOGE": 147e9,
    "ADA": 35e9,
    "DOT": 1.5e9,
    "LTC": 75e6,
    "AVAX": 410e6,
    "LINK": 640e6,
    "MATIC": 9e9,
}


def test_index_over_time_uses_caps_as_of_each_date(crypto_prices):
    from portfolios.engine.optimise import caps_as_of, index_weights_function

    prices = crypto_prices.drop(columns=["USDT", "USDC"])
    cap_history = prices * pd.Series(SUPPLY)
    fn = index_weights_function(cap_history, 5, max_weight=0.4)
    dates = reconstitution_dates(prices.loc["2023-03-01":].index, Schedule.QUARTERLY)
    memberships = []
    for day in dates:
        seen = prices.loc[:day]
        w = fn(seen)
        caps = caps_as_of(cap_history, day)
        ranked = sorted(caps, key=lambda s: -caps[s])[:5]
        assert set(w) == set(ranked)
        assert max(w.values()) <= 0.4
        assert math.isclose(math.fsum(w.values()), 1.0, abs_tol=1e-12)
        memberships.append(frozenset(w))
    assert len(set(memberships)) > 1  # reconstitution changes the members over time
    # no look-ahead: poisoning later caps changes nothing decided before
    day = dates[2]
    poisoned = cap_history.copy()
    poisoned.loc[poisoned.index > day, "MATIC"] = 1e15
    assert index_weights_function(poisoned, 5, max_weight=0.4)(prices.loc[:day]) == fn(
        prices.loc[:day]
    )


def test_index_only_holds_listed_assets(full_history, crypto_prices):
    from portfolios.engine.optimise import index_weights_function

    prices = crypto_prices.drop(columns=["USDT", "USDC"])
    fn = index_weights_function(prices * pd.Series(SUPPLY), 10)
    w = fn(prices.loc[:"2020-01-31"])  # SOL, DOT, AVAX not listed yet
    assert not {"SOL", "DOT", "AVAX"} & set(w)
    assert len(w) == 9  # nine coins had prices then


def test_index_backtest_with_quarterly_reconstitution(crypto_prices):
    from portfolios.engine.backtest import BacktestConfig, RebalancePolicy, backtest_run
    from portfolios.engine.optimise import index_weights_function

    prices = crypto_prices.drop(columns=["USDT", "USDC"]).loc["2023-03-01":"2024-12-31"]
    fn = index_weights_function(prices * pd.Series(SUPPLY), 5, max_weight=0.35)
    result = backtest_run(
        prices,
        fn,
        policy=RebalancePolicy(calendar="quarterly"),
        config=BacktestConfig(reoptimise="quarterly"),
    )
    assert result is not None

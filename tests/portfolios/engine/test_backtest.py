"""The backtest engine: a hand-checked example, no look-ahead, costs, triggers, metrics."""

from __future__ import annotations

import itertools
import math
import statistics
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portfolios.engine.backtest import (
    BacktestConfig,
    BacktestError,
    RebalancePolicy,
    TransactionCosts,
    backtest_run,
    equal_weights,
    fixed_weights,
    metrics_of,
)

MONTH_ENDS = pd.DatetimeIndex(["2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30"])
TINY = pd.DataFrame(
    {"A": [100.0, 110.0, 99.0, 108.9], "B": [50.0, 50.0, 52.5, 52.5]}, index=MONTH_ENDS
)


def test_hand_checked_two_assets_three_months() -> None:
    """60/40, monthly rebalancing, 10 bps + 1.00 per trade, 10,000 invested.

    By hand (each rebalance trades to 60/40 of the value V, pays 0.001 * |traded| + 2):
    Jan 31: buy 6000 A + 4000 B, cost 10 + 2 = 12, value 9988.
    Feb 29: A +10 %: V = 9988 * (0.6 * 1.1 + 0.4) = 10587.28; sell 239.712 A, buy B:
            cost 0.479424 + 2 = 2.479424, value 10584.800576.
    Mar 31: A -10 %, B +5 %: V = 10584.800576 * 0.96 = 10161.40855296; trades
            +-381.052820736, cost 2.762105641472, value 10158.646447318528.
    Apr 30: A +10 %: V = 10158.646447318528 * 1.06 = 10768.16523415764; trades
            +-243.807514735644, cost 2.487615029471288, value 10765.677619128169.
    """
    result = backtest_run(
        TINY,
        fixed_weights({"A": 0.6, "B": 0.4}),
        policy=RebalancePolicy(calendar="monthly"),
        costs=TransactionCosts(bps=10, fixed=1),
        config=BacktestConfig(initial_value=10_000),
    )
    expected = [9988.0, 10584.800576, 10158.646447318528, 10765.677619128169]
    assert result.values.tolist() == pytest.approx(expected, rel=1e-13)
    costs = [12.0, 2.479424, 2.762105641472, 2.487615029471288]
    assert [r.cost for r in result.rebalances] == pytest.approx(costs, rel=1e-12)
    assert result.costs_paid == pytest.approx(19.729144670943288, rel=1e-12)
    assert [r.traded["A"] for r in result.rebalances] == pytest.approx(
        [6000.0, -239.712, 381.052820736, -243.807514735644], rel=1e-11
    )
    # Every day ends on the target weights (costs are taken pro rata).
    assert result.weights["A"].tolist() == pytest.approx([0.6] * 4)
    turnovers = [
        479.424 / (2 * 10587.28),
        762.105641472 / (2 * 10161.40855296),
        487.615029471288 / (2 * 10768.16523415764),
    ]
    assert result.turnover == pytest.approx(sum(turnovers), rel=1e-12)

    m = result.metrics
    years = 90 / 365.25  # Jan 31 -> Apr 30
    assert m.years == pytest.approx(years)
    assert m.total_return == pytest.approx(0.0765677619128169, rel=1e-12)
    assert m.cagr == pytest.approx(1.0765677619128169 ** (1 / years) - 1, rel=1e-12)
    returns = [expected[k] / expected[k - 1] - 1 for k in (1, 2, 3)]
    ppy = 3 / years
    assert m.periods_per_year == pytest.approx(ppy)
    assert m.volatility == pytest.approx(statistics.stdev(returns) * math.sqrt(ppy), rel=1e-12)
    assert m.sharpe == pytest.approx(
        statistics.mean(returns) / statistics.stdev(returns) * math.sqrt(ppy), rel=1e-12
    )
    downside = math.sqrt(sum(min(r, 0) ** 2 for r in returns) / 3)
    assert m.sortino == pytest.approx(statistics.mean(returns) / downside * math.sqrt(ppy))
    drawdown = 1 - 10158.646447318528 / 10584.800576
    assert m.max_drawdown == pytest.approx(drawdown, rel=1e-12)
    assert m.calmar == pytest.approx(m.cagr / drawdown, rel=1e-12)


def test_benchmark_metrics_are_computed_the_same_way() -> None:
    benchmark = pd.Series([200.0, 210.0, 189.0, 207.9], index=MONTH_ENDS)
    result = backtest_run(
        TINY,
        equal_weights,
        policy=RebalancePolicy(calendar="monthly"),
        benchmark=benchmark,
    )
    assert result.benchmark_values is not None
    assert result.benchmark_values.tolist() == pytest.approx([10_000, 10_500, 9_450, 10_395])
    assert result.benchmark_metrics is not None
    assert result.benchmark_metrics == metrics_of(result.benchmark_values)
    assert result.benchmark_metrics.total_return == pytest.approx(0.0395)


def _random_prices(days: int = 400, assets: int = 4, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2022-01-03", periods=days)
    returns = rng.normal(0.0004, 0.012, size=(days, assets))
    return pd.DataFrame(
        100 * np.exp(np.cumsum(returns, axis=0)),
        index=dates,
        columns=[f"X{i}" for i in range(assets)],
    )


def inverse_volatility(history: pd.DataFrame) -> np.ndarray:
    """A real look-back strategy: weights from the last 60 returns."""
    vol = history.pct_change().iloc[-60:].std().to_numpy()
    vol = np.where(np.isfinite(vol) & (vol > 0), vol, 1.0)
    inverse: np.ndarray = 1 / vol
    weights: np.ndarray = inverse / float(inverse.sum())
    return weights


def test_no_look_ahead_poisoned_future_changes_no_past_decision() -> None:
    prices = _random_prices()
    cut = prices.index[250]
    poisoned = prices.copy()
    poisoned.loc[poisoned.index > cut] *= np.random.default_rng(1).uniform(
        0.1, 10, size=poisoned.loc[poisoned.index > cut].shape
    )
    seen_until: list[pd.Timestamp] = []

    def spy(history: pd.DataFrame) -> np.ndarray:
        seen_until.append(history.index[-1])
        return inverse_volatility(history)

    kwargs: dict[str, Any] = {
        "policy": RebalancePolicy(calendar="monthly", absolute_band=0.03),
        "costs": TransactionCosts(bps=5, fixed=0.5),
        "config": BacktestConfig(start="2022-03-01", reoptimise="monthly"),
    }
    clean = backtest_run(prices, spy, **kwargs)
    # The function never saw a date after the one it decided on.
    assert [d.data_until for d in clean.decisions] == [d.date for d in clean.decisions]
    assert seen_until == [d.date for d in clean.decisions]
    dirty = backtest_run(poisoned, inverse_volatility, **kwargs)
    before = [d for d in clean.decisions if d.date <= cut]
    assert before == [d for d in dirty.decisions if d.date <= cut]
    assert len(before) > 5
    pd.testing.assert_series_equal(clean.values.loc[:cut], dirty.values.loc[:cut])
    assert [r for r in clean.rebalances if r.date <= cut] == [
        r for r in dirty.rebalances if r.date <= cut
    ]
    assert not clean.values.loc[cut:].iloc[1:].equals(dirty.values.loc[cut:].iloc[1:])


def test_history_before_start_is_available_to_the_weights_function() -> None:
    prices = _random_prices()
    lengths: list[int] = []

    def spy(history: pd.DataFrame) -> np.ndarray:
        lengths.append(len(history))
        return equal_weights(history)

    backtest_run(
        prices,
        spy,
        policy=RebalancePolicy(calendar="yearly"),
        config=BacktestConfig(start=prices.index[100], reoptimise="once"),
    )
    assert lengths == [101]


def test_costs_reduce_the_value_by_exactly_what_was_charged() -> None:
    flat = pd.DataFrame(
        {"A": [10.0] * 6, "B": [20.0] * 6}, index=pd.bdate_range("2024-01-29", periods=6)
    )
    # Flat prices: every rebalance after the first trades nothing; the initial purchase
    # is the only cost, and the value falls by exactly that much.
    result = backtest_run(
        flat,
        fixed_weights({"A": 0.5, "B": 0.5}),
        policy=RebalancePolicy(calendar="monthly"),
        costs=TransactionCosts(bps=25, fixed=3),
    )
    assert result.costs_paid == pytest.approx(10_000 * 0.0025 + 2 * 3)
    assert result.values.iloc[-1] == pytest.approx(10_000 - result.costs_paid, rel=1e-14)

    prices = _random_prices(days=300)
    policy = RebalancePolicy(calendar="monthly")
    free = backtest_run(prices, equal_weights, policy=policy)
    paid = backtest_run(prices, equal_weights, policy=policy, costs=TransactionCosts(bps=20))
    assert free.costs_paid == 0
    assert paid.costs_paid > 0
    # Each rebalance's value after trading is its value before minus its cost, exactly,
    # and with the same trades' proportional cost the paths differ by the product of them.
    for rebalance in paid.rebalances:
        assert paid.values.loc[rebalance.date] == pytest.approx(
            rebalance.value_before - rebalance.cost, rel=1e-14
        )
    shrink = np.prod([1 - r.cost / r.value_before for r in paid.rebalances])
    assert paid.values.iloc[-1] == pytest.approx(free.values.iloc[-1] * shrink, rel=1e-12)
    assert paid.metrics.cagr < free.metrics.cagr


def _drifting() -> pd.DataFrame:
    """A rises 1 % a business day, B stays flat: A's weight drifts upwards."""
    dates = pd.bdate_range("2024-01-01", "2024-12-31")
    return pd.DataFrame(
        {"A": 100 * 1.01 ** np.arange(len(dates)), "B": np.full(len(dates), 100.0)},
        index=dates,
    )


def _rebalance_dates(result) -> list[str]:
    return [r.date.date().isoformat() for r in result.rebalances[1:]]


@pytest.mark.parametrize(
    ("calendar", "expected"),
    [
        ("monthly", [f"2024-{m:02d}-01" for m in range(2, 13)]),
        ("quarterly", ["2024-04-01", "2024-07-01", "2024-10-01"]),
        ("yearly", []),
    ],
)
def test_calendar_rebalances_on_the_first_date_of_each_period(calendar, expected) -> None:
    prices = _drifting()
    # Business days: the first dates of months that start on a weekend move to Monday.
    first_days = {
        str(day.date()) for day in prices.index if day == prices.loc[day.strftime("%Y-%m")].index[0]
    }
    expected = sorted(min(d for d in first_days if d[:7] == want[:7]) for want in expected)
    result = backtest_run(
        prices,
        fixed_weights({"A": 0.5, "B": 0.5}),
        policy=RebalancePolicy(calendar=calendar),
        config=BacktestConfig(reoptimise="once"),
    )
    assert _rebalance_dates(result) == expected
    assert all(r.reason.startswith("calendar") for r in result.rebalances[1:])


def test_absolute_band_fires_when_a_weight_leaves_it() -> None:
    prices = _drifting()
    result = backtest_run(
        prices,
        fixed_weights({"A": 0.5, "B": 0.5}),
        policy=RebalancePolicy(absolute_band=0.05),
        config=BacktestConfig(reoptimise="once"),
    )
    # After a rebalance, A's weight is 1.01**k / (1.01**k + 1) -> above 0.55 when k >= 21.
    k = next(k for k in range(1, 100) if 1.01**k / (1.01**k + 1) > 0.55)
    assert k == 21
    dates = [r.date for r in result.rebalances]
    gaps = [prices.index.get_loc(b) - prices.index.get_loc(a) for a, b in itertools.pairwise(dates)]
    assert gaps
    assert set(gaps) == {k}
    assert "absolute band: A" in result.rebalances[1].reason


def test_relative_band_is_a_share_of_the_target() -> None:
    prices = _drifting()
    result = backtest_run(
        prices,
        fixed_weights({"A": 0.2, "B": 0.8}),
        policy=RebalancePolicy(relative_band=0.25),  # A may move 0.05 off 0.2
        config=BacktestConfig(reoptimise="once"),
    )
    k = next(k for k in range(1, 200) if 0.2 * 1.01**k / (0.2 * 1.01**k + 0.8) > 0.25)
    dates = [r.date for r in result.rebalances]
    gaps = {prices.index.get_loc(b) - prices.index.get_loc(a) for a, b in itertools.pairwise(dates)}
    assert gaps == {k}
    assert "relative band" in result.rebalances[1].reason


def test_calendar_and_bands_combined() -> None:
    prices = _drifting()
    weights = fixed_weights({"A": 0.5, "B": 0.5})
    either = backtest_run(
        prices,
        weights,
        policy=RebalancePolicy(calendar="quarterly", absolute_band=0.05),
        config=BacktestConfig(reoptimise="once"),
    )
    quarterly_only = backtest_run(
        prices,
        weights,
        policy=RebalancePolicy(calendar="quarterly"),
        config=BacktestConfig(reoptimise="once"),
    )
    band_only = backtest_run(
        prices,
        weights,
        policy=RebalancePolicy(absolute_band=0.05),
        config=BacktestConfig(reoptimise="once"),
    )
    assert len(either.rebalances) > len(quarterly_only.rebalances)
    assert set(_rebalance_dates(quarterly_only)) <= set(_rebalance_dates(either))
    # Bands checked on calendar dates only: a quiet asset is never rebalanced ...
    gated = backtest_run(
        prices,
        weights,
        policy=RebalancePolicy(calendar="monthly", absolute_band=0.05, combine="bands_on_calendar"),
        config=BacktestConfig(reoptimise="once"),
    )
    assert set(_rebalance_dates(gated)) <= {
        str(prices.loc[f"2024-{m:02d}"].index[0].date()) for m in range(1, 13)
    }
    assert len(gated.rebalances) < len(band_only.rebalances)
    # ... and with a band too wide to cross, nothing fires on calendar dates either.
    flat = prices.copy()
    flat["A"] = 100.0
    none = backtest_run(
        flat,
        weights,
        policy=RebalancePolicy(calendar="monthly", absolute_band=0.05, combine="bands_on_calendar"),
        config=BacktestConfig(reoptimise="once"),
    )
    assert len(none.rebalances) == 1


def test_reoptimisation_changes_the_target_and_rebalances() -> None:
    prices = _drifting()
    calls = iter([{"A": 1.0}, {"B": 1.0}, {"A": 0.5, "B": 0.5}, {"A": 0.5, "B": 0.5}] * 3)

    result = backtest_run(
        prices,
        lambda history: next(calls),
        policy=RebalancePolicy(calendar="yearly"),
        config=BacktestConfig(reoptimise="quarterly"),
    )
    assert [d.date.month for d in result.decisions] == [1, 4, 7, 10]
    # the July decision changed the target, the October one did not
    assert [r.reason.split(":")[0] for r in result.rebalances] == [
        "initial investment",
        "re-optimised",
        "re-optimised",
    ]
    assert result.weights.loc["2024-04-01"].tolist() == pytest.approx([0.0, 1.0])


def test_policy_parse() -> None:
    assert RebalancePolicy.parse("quarterly") == RebalancePolicy(calendar="quarterly")
    assert RebalancePolicy.parse("monthly+abs:0.05+rel:0.2+on-calendar") == RebalancePolicy(
        "monthly", 0.05, 0.2, "bands_on_calendar"
    )
    assert RebalancePolicy.parse("abs:0.05") == RebalancePolicy(absolute_band=0.05)
    with pytest.raises(BacktestError, match="unknown rebalancing policy part 'weekly'"):
        RebalancePolicy.parse("weekly")
    with pytest.raises(BacktestError, match="'abs:x'"):
        RebalancePolicy.parse("abs:x")


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"A": 0.7, "B": 0.7}, "sum to 1.400000, not 1"),
        ({"A": 1.5, "B": -0.5}, "negative"),
        ({"C": 1.0}, "unknown asset"),
        ([0.5], "1 values for 2 assets"),
        ([math.nan, 1.0], "finite"),
    ],
)
def test_bad_weights_name_the_date(weights, message) -> None:
    with pytest.raises(BacktestError, match=message) as refused:
        backtest_run(TINY, lambda h: weights, policy=RebalancePolicy(calendar="monthly"))
    assert "2024-01-31" in str(refused.value)


def test_bad_inputs() -> None:
    with pytest.raises(BacktestError, match="needs a calendar, a band, or both"):
        RebalancePolicy()
    with pytest.raises(BacktestError, match="absolute_band must be between 0 and 1"):
        RebalancePolicy(absolute_band=5)
    gap = TINY.copy()
    gap.iloc[2, 1] = math.nan
    with pytest.raises(BacktestError, match="no price for B on 2024-03-31"):
        backtest_run(gap, equal_weights, policy=RebalancePolicy(calendar="monthly"))
    with pytest.raises(BacktestError, match="fewer than two price dates"):
        backtest_run(
            TINY,
            equal_weights,
            policy=RebalancePolicy(calendar="monthly"),
            config=BacktestConfig(start="2024-04-30"),
        )
    with pytest.raises(BacktestError, match="exceed the value"):
        backtest_run(
            TINY,
            equal_weights,
            policy=RebalancePolicy(calendar="monthly"),
            costs=TransactionCosts(fixed=6000),
        )
    with pytest.raises(BacktestError, match="benchmark has no price on 2024-02-29"):
        backtest_run(
            TINY,
            equal_weights,
            policy=RebalancePolicy(calendar="monthly"),
            benchmark=pd.Series([1.0, 2.0], index=MONTH_ENDS[[0, 2]]),
        )


def test_an_asset_listed_later_may_be_missing_until_it_is_weighted() -> None:
    prices = _random_prices(days=120, assets=3)
    prices.iloc[:60, 2] = math.nan  # X2 lists on day 60

    def listed_equal(history: pd.DataFrame) -> dict[str, float]:
        listed = [c for c in history.columns if pd.notna(history[c].iloc[-1])]
        return {c: 1 / len(listed) for c in listed}

    result = backtest_run(prices, listed_equal, policy=RebalancePolicy(calendar="monthly"))
    assert result.weights["X2"].iloc[:60].eq(0).all()
    assert result.weights["X2"].iloc[-1] > 0
    assert np.isfinite(result.values).all()

    with pytest.raises(BacktestError, match=r"no price for X2 on 2022-01-03, but the weights"):
        backtest_run(prices, equal_weights, policy=RebalancePolicy(calendar="monthly"))
    gap = prices.copy()
    gap.iloc[100, 0] = math.nan
    with pytest.raises(BacktestError, match=r"no price for X0 on .*, but it is held"):
        backtest_run(gap, listed_equal, policy=RebalancePolicy(calendar="monthly"))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    raw=st.lists(st.floats(0.05, 1), min_size=2, max_size=5),
    bps=st.floats(0, 50),
)
def test_buy_and_hold_and_daily_rebalancing_match_their_formulas(seed, raw, bps) -> None:
    weights = np.array(raw) / sum(raw)
    prices = _random_prices(days=60, assets=len(raw), seed=seed)
    prices.index = pd.bdate_range("2024-02-01", periods=60)  # all in one year
    target = dict(zip(prices.columns, weights, strict=True))
    hold = backtest_run(
        prices,
        fixed_weights(target),
        policy=RebalancePolicy(calendar="yearly"),
        costs=TransactionCosts(bps=bps),
        config=BacktestConfig(reoptimise="once"),
    )
    invested = 10_000 * (1 - bps / 10_000)
    growth = (prices / prices.iloc[0]).to_numpy() @ weights
    np.testing.assert_allclose(hold.values.to_numpy(), invested * growth, rtol=1e-10)
    assert len(hold.rebalances) == 1
    # Bands of zero width in effect: rebalanced every day back to the target, free.
    daily = backtest_run(
        prices,
        fixed_weights(target),
        policy=RebalancePolicy(absolute_band=1e-9),
        config=BacktestConfig(reoptimise="once"),
    )
    returns = prices.pct_change().iloc[1:].to_numpy() @ weights
    expected = 10_000 * np.concatenate([[1.0], np.cumprod(1 + returns)])
    np.testing.assert_allclose(daily.values.to_numpy(), expected, rtol=1e-10)

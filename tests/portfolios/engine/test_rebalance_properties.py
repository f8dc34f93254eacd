"""Properties of the rebalancing engine on random books (hypothesis)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portfolios.engine.rebalance import (
    BookState,
    OrderStatus,
    Policy,
    RebalanceInputError,
    drift_triggers,
    rebalance,
)
from portfolios.engine.rebalance_bench import bench, random_book

policies = st.builds(
    Policy,
    abs_band=st.one_of(st.none(), st.floats(0.0, 0.2)),
    rel_band=st.one_of(st.none(), st.floats(0.0, 1.0)),
    to_band_edge=st.booleans(),
    cash_target=st.floats(0.0, 0.1),
    cash_floor=st.floats(0.0, 0.05),
    min_trade_value=st.sampled_from([0.0, 50.0, 500.0]),
    cost_bps=st.sampled_from([0.0, 5.0, 100.0]),
    cost_fixed=st.sampled_from([0.0, 1.0, 20.0]),
    max_cost_ratio=st.sampled_from([0.0, 0.02, 1.0]),
    buy_only_on_deposit=st.booleans(),
    sell_only_on_withdrawal=st.booleans(),
    highest_cost_first=st.booleans(),
    avoid_short_term_gains=st.booleans(),
)


def small_book(seed: int, n_p: int, n_a: int, whole: bool) -> BookState:
    s = random_book(n_p, n_a, seed)
    rng = np.random.default_rng(seed + 1)
    step = np.where(rng.random(n_a) < 0.5, 1.0, 1e-8) if whole else s.quantity_step
    holdings = np.floor(s.holdings / step) * step
    # lots again, one or two per taxable position, in whole steps
    p_idx, a_idx = np.nonzero(s.taxable[:, None] & (holdings > 0))
    q = holdings[p_idx, a_idx]
    first = np.floor(q * rng.uniform(0, 1, q.size) / step[a_idx]) * step[a_idx]
    nav = (holdings * s.prices).sum(axis=1) + s.cash
    flow = np.where(rng.random(n_p) < 0.4, rng.uniform(-0.9, 0.5, n_p) * nav, 0.0)
    n_l = 2 * q.size
    return dataclasses.replace(
        s,
        quantity_step=step,
        holdings=holdings,
        cash_flow=flow,
        household=rng.integers(0, max(1, n_p // 2), n_p).astype(np.int64),
        lot_portfolio=np.concatenate([p_idx, p_idx]).astype(np.int64),
        lot_asset=np.concatenate([a_idx, a_idx]).astype(np.int64),
        lot_quantity=np.concatenate([first, q - first]),
        lot_unit_cost=s.prices[np.concatenate([a_idx, a_idx])] * rng.uniform(0.5, 1.5, n_l),
        lot_acquired=(s.as_of - rng.integers(1, 800, n_l)).astype(np.int64),
        recent_loss_sale=rng.random((n_p, n_a)) < 0.2,
        recent_purchase=rng.random((n_p, n_a)) < 0.2,
    )


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_p=st.integers(1, 12),
    n_a=st.integers(1, 6),
    whole=st.booleans(),
    policy=policies,
)
def test_invariants(seed, n_p, n_a, whole, policy):
    s = small_book(seed, n_p, n_a, whole)
    p = rebalance(s, policy)
    proposed = p.order_status == OrderStatus.PROPOSED
    # quantities are positive whole steps
    steps = p.order_quantity / s.quantity_step[p.order_asset]
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-6)
    assert (p.order_quantity > 0).all()
    # never negative holdings: proposed sells within the holding
    signed = np.zeros_like(s.holdings)
    np.add.at(
        signed,
        (p.order_portfolio[proposed], p.order_asset[proposed]),
        p.order_side[proposed] * p.order_quantity[proposed],
    )
    after = s.holdings + signed
    assert (after >= -1e-9 * np.maximum(s.holdings, 1)).all()
    # never negative cash; the recorded figure adds up
    assert (p.cash_after >= -1e-6 * np.maximum(p.nav, 1)).all()
    flows = np.bincount(
        p.order_portfolio[proposed],
        weights=(-p.order_side * p.order_value - p.order_cost)[proposed],
        minlength=n_p,
    )
    np.testing.assert_allclose(p.cash_after, s.cash + s.cash_flow + flows, rtol=1e-9, atol=1e-6)
    # one proposed row per (portfolio, asset) at most, sorted
    key = p.order_portfolio * n_a + p.order_asset
    assert (np.diff(key) >= 0).all()
    assert np.unique(key[proposed]).size == key[proposed].size
    # the lots of a sell sum to it, belong to its (portfolio, asset) and stay within the lot
    sells = proposed & (p.order_side == -1) & s.taxable[p.order_portfolio]
    sold = np.bincount(p.lot_order, weights=p.lot_sold_quantity, minlength=p.n_orders)
    np.testing.assert_allclose(sold[sells], p.order_quantity[sells], rtol=1e-12, atol=1e-9)
    assert not sold[~sells].any()
    assert (s.lot_portfolio[p.lot_index] == p.order_portfolio[p.lot_order]).all()
    assert (s.lot_asset[p.lot_index] == p.order_asset[p.lot_order]).all()
    assert (p.lot_sold_quantity <= s.lot_quantity[p.lot_index] + 1e-9).all()
    # no proposed buy where a wash sale forbids it
    buys = proposed & (p.order_side == 1)
    assert not s.recent_loss_sale[p.order_portfolio[buys], p.order_asset[buys]].any()
    # untriggered portfolios do not trade
    assert not (~p.triggered[p.order_portfolio] & proposed).any()
    # determinism
    q = rebalance(s, policy)
    for f in dataclasses.fields(p):
        np.testing.assert_array_equal(getattr(p, f.name), getattr(q, f.name))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n_p=st.integers(1, 8), n_a=st.integers(2, 5))
def test_forced_to_target_lands_near_target(seed, n_p, n_a):
    s = dataclasses.replace(small_book(seed, n_p, n_a, False), force=np.ones(n_p, dtype=bool))
    s = dataclasses.replace(
        s,
        taxable=np.zeros(n_p, dtype=bool),
        recent_loss_sale=np.zeros((n_p, n_a), dtype=bool),
        quantity_step=np.full(n_a, 1e-8),
    )
    p = rebalance(s, Policy(cash_target=0.02))
    proposed = p.order_status == OrderStatus.PROPOSED
    signed = np.zeros_like(s.holdings)
    np.add.at(
        signed,
        (p.order_portfolio[proposed], p.order_asset[proposed]),
        p.order_side[proposed] * p.order_quantity[proposed],
    )
    value = (s.holdings + signed) * s.prices
    weights = value / p.nav_after_flow[:, None]
    np.testing.assert_allclose(weights, p.target_weight, atol=1e-6)
    np.testing.assert_allclose(p.cash_after / p.nav_after_flow, 0.02, atol=1e-6)


def test_bench_reports_engine_and_floor():
    out = bench(200, 5, seed=3, repeat=1)
    assert out["portfolios"] == 200
    assert out["orders"] >= out["proposed"] > 0
    assert out["engine_seconds"] > 0
    assert out["floor_seconds"] > 0
    print(out)  # noqa: T201


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_p=st.integers(1, 12),
    n_a=st.integers(2, 8),
    policy=policies,
)
def test_drift_triggers_is_the_first_step_of_rebalance(
    seed: int, n_p: int, n_a: int, policy: Policy
) -> None:
    # The drift scan decides who is outside the bands with drift_triggers alone; a run
    # of the same book must agree with it, portfolio by portfolio.
    book = dataclasses.replace(small_book(seed, n_p, n_a, whole=False), force=np.zeros(n_p, bool))
    full = rebalance(book, policy)
    scan = drift_triggers(
        prices=book.prices,
        holdings=book.holdings,
        cash=book.cash,
        cash_flow=book.cash_flow,
        target_index=book.target_index,
        targets=book.targets,
        policy=policy,
    )
    np.testing.assert_array_equal(scan.trigger, full.trigger)
    np.testing.assert_array_equal(scan.trigger_mask, full.trigger_mask)
    np.testing.assert_array_equal(scan.out_of_band, full.out_of_band)
    np.testing.assert_array_equal(scan.drift, full.drift)
    np.testing.assert_array_equal(scan.nav, full.nav)


def test_drift_triggers_names_mismatched_shapes() -> None:
    with pytest.raises(RebalanceInputError, match="holdings"):
        drift_triggers(
            prices=np.ones(3),
            holdings=np.ones((2, 2)),
            cash=np.zeros(2),
            cash_flow=np.zeros(2),
            target_index=np.zeros(2, np.int64),
            targets=np.full((1, 3), 1 / 3),
            policy=Policy(),
        )

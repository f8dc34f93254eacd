"""Properties of a rebalance once its orders are filled (the simulated broker at the
as-of price): the portfolio that traded ends inside its bands unless an order was
skipped with a recorded reason; deposits are invested with buys only and
withdrawals raised with sells only when the policy asks and that keeps the bands;
no buy inside a wash-sale window; sells consume the highest-cost allowed lots first."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from portfolios.engine.rebalance import Policy, rebalance

from .test_rebalance_properties import small_book

TOLERANCE = 1e-6


def _filled(state, proposal):
    """Holdings and cash after every proposed order fills at its price and cost."""
    holdings = state.holdings.copy()
    cash = state.cash + state.cash_flow
    live = proposal.order_status == 0
    p, a = proposal.order_portfolio[live], proposal.order_asset[live]
    signed = proposal.order_side[live] * proposal.order_quantity[live]
    np.add.at(holdings, (p, a), signed)
    np.add.at(cash, p, -signed * state.prices[a] - proposal.order_cost[live])
    return holdings, cash


@settings(max_examples=120, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_p=st.integers(1, 10),
    n_a=st.integers(2, 6),
    abs_band=st.sampled_from([0.02, 0.05, 0.1]),
    hifo=st.booleans(),
)
def test_after_fills(seed, n_p, n_a, abs_band, hifo):
    state = small_book(seed, n_p, n_a, whole=False)
    policy = Policy(
        abs_band=abs_band,
        rel_band=None,
        cash_target=0.01,
        cash_floor=0.0,
        min_trade_value=0.0,
        highest_cost_first=hifo,
    )
    proposal = rebalance(state, policy)
    holdings, cash = _filled(state, proposal)
    assert (holdings >= -TOLERANCE).all()
    assert (cash >= -TOLERANCE).all()
    nav = (holdings * state.prices).sum(axis=1) + cash
    weight = holdings * state.prices / np.where(nav > 0, nav, 1.0)[:, None]
    target = state.targets[state.target_index] * (1 - policy.cash_target)
    live = proposal.order_status == 0
    skipped = np.zeros(n_p, dtype=bool)
    skipped[proposal.order_portfolio[~live]] = True
    traded = np.zeros(n_p, dtype=bool)
    traded[proposal.order_portfolio[live]] = True
    # Inside the bands after trading, unless a skipped row records why not.
    clean = traded & ~skipped & (nav > 0)
    slack = abs_band + 1e-6 + (state.quantity_step * state.prices).max() / np.maximum(nav, 1.0)
    assert (np.abs(weight - target)[clean] <= slack[clean, None]).all()
    # No proposed buy of an asset sold at a loss in the household's wash-sale window.
    buys = live & (proposal.order_side > 0)
    assert not state.recent_loss_sale[
        proposal.order_portfolio[buys], proposal.order_asset[buys]
    ].any()
    # Buy-only and sell-only: a portfolio the engine marks as flow-only trades one way.
    for k in np.flatnonzero(proposal.flow_only):
        sides = set(proposal.order_side[live & (proposal.order_portfolio == k)].tolist())
        assert sides <= ({1} if state.cash_flow[k] > 0 else {-1})
    # Lots: where no wash-sale window blocks a lot, a sell takes them in cost (or age) order.
    for o in np.unique(proposal.lot_order):
        if state.recent_purchase[proposal.order_portfolio[o], proposal.order_asset[o]]:
            continue
        picks = proposal.lot_index[proposal.lot_order == o]
        key = -state.lot_unit_cost[picks] if hifo else state.lot_acquired[picks]
        assert (np.diff(key) >= -1e-9).all()

"""The rebalancing engine on small hand-checked books (no database)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from portfolios.engine.rebalance import (
    BUY,
    SELL,
    OrderStatus,
    Policy,
    Reason,
    RebalanceInputError,
    Trigger,
    rebalance,
)

from .rebalance_helpers import book, orders

P0 = OrderStatus.PROPOSED
SK = OrderStatus.SKIPPED
NO_CASH = Policy(cash_target=0.0, rel_band=None)


def test_inside_bands_nothing_happens():
    s = book([100, 50], [[62, 76]], [0], [[0.6, 0.4]], step=1)
    p = rebalance(s, NO_CASH)
    assert not p.triggered[0]
    assert p.trigger[0] == Trigger.NONE
    assert p.n_orders == 0
    assert p.cash_after[0] == 0
    np.testing.assert_allclose(p.drift[0], [0.02, -0.02])
    assert p.max_drift[0] == pytest.approx(0.02)


def test_band_breach_to_target():
    s = book([100, 50], [[70, 60]], [0], [[0.6, 0.4]], step=1)
    p = rebalance(s, NO_CASH)
    assert p.triggered[0]
    assert p.trigger[0] == Trigger.BAND
    assert p.trigger_mask[0] == 1 << Trigger.BAND
    assert orders(p) == [(0, 0, SELL, 10.0, Reason.BAND_REBALANCE), (0, 1, BUY, 20.0, 1)]
    assert p.cash_after[0] == 0
    assert p.turnover[0] == pytest.approx(0.2)
    np.testing.assert_allclose(p.order_drift, [0.1, -0.1])
    np.testing.assert_allclose(p.order_band, [0.05, 0.05])
    np.testing.assert_allclose(p.order_value, [1000, 1000])


def test_band_edge_moves_only_to_the_edge():
    s = book([100, 50], [[70, 60]], [0], [[0.6, 0.4]], step=1)
    p = rebalance(s, dataclasses.replace(NO_CASH, to_band_edge=True))
    assert orders(p) == [(0, 0, SELL, 5.0, Reason.BAND_REBALANCE), (0, 1, BUY, 10.0, 1)]


def test_in_band_asset_goes_to_target_when_the_portfolio_is_triggered():
    s = book([1, 1, 1], [[5800, 2100, 2100]], [0], [[0.5, 0.3, 0.2]], step=1)
    p = rebalance(s, NO_CASH)
    assert orders(p) == [
        (0, 0, SELL, 800.0, Reason.BAND_REBALANCE),
        (0, 1, BUY, 900.0, Reason.BAND_REBALANCE),
        (0, 2, SELL, 100.0, Reason.REBALANCE_TO_TARGET),
    ]
    # band edge: only the out-of-band assets trade; the cash B's buy needs comes from A
    p = rebalance(s, dataclasses.replace(NO_CASH, to_band_edge=True))
    assert orders(p) == [
        (0, 0, SELL, 400.0, Reason.BAND_REBALANCE),
        (0, 1, BUY, 400.0, Reason.BAND_REBALANCE),
    ]
    assert p.cash_after[0] == 0


def test_relative_band_is_the_tighter_limit_for_small_targets():
    # target 10%: the 25% relative band is 2.5 points, tighter than the 5-point band
    s = book([1, 1], [[870, 130]], [0], [[0.9, 0.1]], step=1)
    p = rebalance(s, Policy(cash_target=0.0))
    assert p.out_of_band[0].tolist() == [False, True]
    assert p.band[0].tolist() == pytest.approx([0.05, 0.025])
    assert p.trigger[0] == Trigger.BAND
    p = rebalance(s, Policy(cash_target=0.0, rel_band=None))
    assert not p.triggered[0]
    p = rebalance(s, Policy(cash_target=0.0, rel_band=None, abs_band=None))
    assert not p.triggered[0]
    assert p.band[0].tolist() == [2.0, 2.0]


def test_cash_target_applies_on_top_of_the_targets():
    s = book([1, 1], [[600, 400]], [0], [[0.6, 0.4]], step=1, force=[True])
    p = rebalance(s, Policy(cash_target=0.05))
    np.testing.assert_allclose(p.target_weight[0], [0.57, 0.38])
    assert p.trigger[0] == Trigger.CALENDAR
    assert orders(p) == [(0, 0, SELL, 30.0, Reason.CALENDAR), (0, 1, SELL, 20.0, 6)]
    assert p.cash_after[0] == pytest.approx(50)


def test_forced_goes_to_target_even_with_band_edge():
    s = book([1, 1], [[620, 380]], [0], [[0.6, 0.4]], step=1, force=[True])
    p = rebalance(s, dataclasses.replace(NO_CASH, to_band_edge=True))
    assert orders(p) == [(0, 0, SELL, 20.0, Reason.CALENDAR), (0, 1, BUY, 20.0, Reason.CALENDAR)]


def test_cash_floor_trigger_raises_cash():
    s = book([1, 1], [[600, 400]], [0], [[0.6, 0.4]], step=1)
    p = rebalance(s, Policy(cash_target=0.01, cash_floor=0.005))
    assert p.trigger[0] == Trigger.CASH_FLOOR
    assert orders(p) == [
        (0, 0, SELL, 6.0, Reason.CASH_FLOOR_RESTORED),
        (0, 1, SELL, 4.0, Reason.CASH_FLOOR_RESTORED),
    ]
    assert p.cash_after[0] == pytest.approx(10)


def test_deposit_invested_with_buys_only():
    s = book([100, 50], [[62, 76]], [0], [[0.6, 0.4]], step=1, cash_flow=[1000])
    p = rebalance(s, NO_CASH)
    assert p.trigger[0] == Trigger.CASH_FLOW
    assert p.trigger[0].item() == 3
    assert p.flow_only[0]
    # shortfalls 400 and 600 against 6600 / 4400: bought in that proportion
    assert orders(p) == [(0, 0, BUY, 4.0, Reason.DEPOSIT_INVESTED), (0, 1, BUY, 12.0, 3)]
    assert p.cash_after[0] == pytest.approx(0)


def test_deposit_buy_only_keeps_drift_when_inside_bands():
    # 64/36 with a deposit of 50: targets 630/420, only B is short; A stays at 60.95%
    s = book([1, 1], [[640, 360]], [0], [[0.6, 0.4]], step=1, cash_flow=[50])
    p = rebalance(s, NO_CASH)
    assert p.flow_only[0]
    assert orders(p) == [(0, 1, BUY, 50.0, Reason.DEPOSIT_INVESTED)]


def test_deposit_falls_back_to_a_full_rebalance():
    # 72/28 is out of band; buying 100 of B only would leave A at 65.5%, still out
    s = book([1, 1], [[720, 280]], [0], [[0.6, 0.4]], step=1, cash_flow=[100])
    p = rebalance(s, NO_CASH)
    assert not p.flow_only[0]
    assert p.trigger[0] == Trigger.BAND
    assert p.trigger_mask[0] == (1 << Trigger.BAND) | (1 << Trigger.CASH_FLOW)
    assert orders(p) == [(0, 0, SELL, 60.0, Reason.BAND_REBALANCE), (0, 1, BUY, 160.0, 1)]
    # 68/32 is out of band too, but buying 100 of B brings A to 61.8%: buys only
    s = book([1, 1], [[680, 320]], [0], [[0.6, 0.4]], step=1, cash_flow=[100])
    p = rebalance(s, NO_CASH)
    assert p.flow_only[0]
    assert orders(p) == [(0, 1, BUY, 100.0, Reason.DEPOSIT_INVESTED)]
    # with buy-only switched off, an in-band deposit also rebalances fully
    s = book([1, 1], [[640, 360]], [0], [[0.6, 0.4]], step=1, cash_flow=[20])
    p = rebalance(s, dataclasses.replace(NO_CASH, buy_only_on_deposit=False))
    assert not p.flow_only[0]
    assert orders(p) == [  # to 612 / 408
        (0, 0, SELL, 28.0, Reason.REBALANCE_TO_TARGET),
        (0, 1, BUY, 48.0, Reason.DEPOSIT_INVESTED),
    ]


def test_withdrawal_raised_with_sells_only():
    s = book([1, 1], [[6200, 3800]], [0], [[0.6, 0.4]], step=1, cash_flow=[-1000])
    p = rebalance(s, NO_CASH)
    assert p.flow_only[0]
    assert orders(p) == [
        (0, 0, SELL, 800.0, Reason.WITHDRAWAL_RAISED),
        (0, 1, SELL, 200.0, Reason.WITHDRAWAL_RAISED),
    ]
    assert p.cash_after[0] == pytest.approx(0)
    assert p.nav_after_flow[0] == 9000


def test_withdrawal_in_whole_shares_is_fully_raised():
    # 1000 needs 3.33 shares at 300: rounding down would leave cash at -100
    s = book([300], [[10]], [0], [[1.0]], step=1, cash_flow=[-1000])
    p = rebalance(s, NO_CASH)
    assert orders(p) == [(0, 0, SELL, 4.0, Reason.WITHDRAWAL_RAISED)]
    assert p.cash_after[0] == pytest.approx(200)
    assert p.cash_shortfall[0] == 0


@pytest.mark.parametrize(
    ("price", "step"),
    [(123.45, 1.0), (123.45, 1e-6), (61234.56, 1e-8), (0.0712, 1.0)],
)
def test_quantities_are_whole_steps_rounded_down(price, step):
    s = book([price], [[0]], [0], [[1.0]], step=step, cash_flow=[1000])
    p = rebalance(s, NO_CASH)
    (q,) = p.order_quantity
    n = q / step
    assert n == pytest.approx(round(n), abs=1e-6)
    assert q * price <= 1000 + 1e-9
    assert 1000 - q * price < step * price  # nothing more could be bought
    assert p.cash_after[0] >= 0


def test_whole_share_sells_never_exceed_the_holding():
    s = book([10, 10], [[3.7, 0]], [0], [[0.0, 1.0]], step=1)  # a legacy fractional holding
    p = rebalance(s, NO_CASH)
    sell = [r for r in orders(p) if r[2] == SELL]
    assert sell == [(0, 0, SELL, 3.0, Reason.BAND_REBALANCE)]


def test_minimum_trade_and_cost_skips():
    s = book([1, 1, 1], [[5000, 3000, 2000]], [1000], [[0.45, 0.3, 0.25]], step=1, force=[True])
    # NAV 11000: A 5000->4950, B 3000->3300, C 2000->2750 (C is out of its band)
    pol = dataclasses.replace(NO_CASH, min_trade_value=100, cost_fixed=10, max_cost_ratio=0.02)
    p = rebalance(s, pol)
    got = {(r["order_asset"], r["order_status"], r["order_reason"]) for r in p.orders_as_dicts()}
    assert got == {
        (0, SK, Reason.SKIPPED_BELOW_MINIMUM),  # 50 < 100
        (1, SK, Reason.SKIPPED_NOT_WORTH_COST),  # 10 > 2% of 300
        (2, P0, Reason.BAND_REBALANCE),  # 10 <= 2% of 750
    }
    assert p.order_quantity.tolist() == [50, 300, 750]
    assert p.order_cost.tolist() == [10, 10, 10]
    assert p.cash_after[0] == pytest.approx(1000 - 750 - 10)


def test_buys_scaled_down_to_the_cash_after_costs():
    s = book([10, 10], [[60, 40]], [0], [[0.6, 0.4]], step=1, cash_flow=[1000])
    p = rebalance(s, dataclasses.replace(NO_CASH, cost_bps=100))  # 1% a trade
    assert p.cash_after[0] >= 0
    assert (p.order_status == P0).all()
    spent = (p.order_value + p.order_cost).sum()
    assert spent <= 1000
    assert p.order_quantity.tolist() == [59.0, 39.0]  # 60/40 wanted, 1% cost
    assert p.order_wanted_quantity.tolist() == [60.0, 40.0]


def lot_book(*, highest_cost_first=True, avoid=False, taxable=True, **kw):
    # A at 100: 30 units in three lots; B at 100 held 0; target 50/50 -> sell 15 A, buy 15 B
    lots = [(0, 0, 10, 50.0, 800), (0, 0, 10, 120.0, 500), (0, 0, 10, 90.0, 400)]
    s = book([100, 100], [[30, 0]], [0], [[0.5, 0.5]], step=1, taxable=[taxable], lots=lots, **kw)
    pol = Policy(cash_target=0.0, highest_cost_first=highest_cost_first)
    return s, dataclasses.replace(pol, avoid_short_term_gains=avoid)


def test_highest_cost_first_lot_selection():
    s, pol = lot_book()
    p = rebalance(s, pol)
    assert orders(p, status=P0) == [(0, 0, SELL, 15.0, 1), (0, 1, BUY, 15.0, 1)]
    assert p.lot_index.tolist() == [1, 2]
    assert p.lot_sold_quantity.tolist() == [10, 5]
    assert p.lot_realised_gain.tolist() == [-200, 50]
    assert p.lot_order.tolist() == [0, 0]
    assert p.lot_short_term.tolist() == [False, False]


def test_first_in_first_out_lot_selection():
    s, pol = lot_book(highest_cost_first=False)
    p = rebalance(s, pol)
    assert p.lot_index.tolist() == [0, 1]
    assert p.lot_sold_quantity.tolist() == [10, 5]
    assert p.lot_realised_gain.tolist() == [500, -100]


def test_non_taxable_portfolio_has_no_lot_picks():
    s, pol = lot_book(taxable=False)
    p = rebalance(s, pol)
    assert orders(p, status=P0) == [(0, 0, SELL, 15.0, 1), (0, 1, BUY, 15.0, 1)]
    assert p.lot_index.size == 0


def test_short_term_gains_avoided_and_the_reduction_reported():
    lots = [(0, 0, 20, 50.0, 100), (0, 0, 10, 80.0, 400)]  # 20 short-term at a gain
    s = book([100, 100], [[30, 0]], [0], [[0.5, 0.5]], step=1, taxable=[True], lots=lots)
    p = rebalance(s, Policy(cash_target=0.0, avoid_short_term_gains=True))
    assert orders(p) == [
        (0, 0, SELL, 10.0, Reason.BAND_REBALANCE),
        (0, 0, SELL, 5.0, Reason.REDUCED_SHORT_TERM_GAIN),
        (0, 1, BUY, 10.0, Reason.BAND_REBALANCE),
    ]
    assert p.order_status.tolist() == [P0, SK, P0]
    assert p.order_wanted_quantity.tolist() == [15, 15, 15]
    assert p.lot_index.tolist() == [1]
    assert p.lot_realised_gain.tolist() == [200]
    assert p.cash_after[0] == 0
    # without the preference the short-term lot is sold (highest cost first: 80, then 50)
    p = rebalance(s, Policy(cash_target=0.0))
    assert p.lot_index.tolist() == [1, 0]
    assert p.lot_short_term.tolist() == [False, True]


def test_withdrawal_overrides_the_short_term_preference():
    lots = [(0, 0, 20, 50.0, 100)]
    s = book([100], [[20]], [0], [[1.0]], step=1, taxable=[True], lots=lots, cash_flow=[-500])
    p = rebalance(s, Policy(cash_target=0.0, avoid_short_term_gains=True))
    assert orders(p, status=P0) == [(0, 0, SELL, 5.0, Reason.WITHDRAWAL_RAISED)]
    assert p.cash_after[0] == 0
    assert p.lot_short_term.tolist() == [True]


def test_wash_sale_history_blocks_the_buy():
    s, pol = lot_book(recent_loss_sale=[(0, 1)])
    p = rebalance(s, pol)
    assert orders(p) == [
        (0, 0, SELL, 15.0, Reason.BAND_REBALANCE),
        (0, 1, BUY, 15.0, Reason.BLOCKED_WASH_SALE),
    ]
    assert p.order_status.tolist() == [P0, SK]
    assert p.cash_after[0] == pytest.approx(1500)  # not spent, stays in cash


def test_wash_sale_recent_purchase_blocks_loss_lots():
    s, pol = lot_book(recent_purchase=[(0, 0)])
    p = rebalance(s, pol)
    # the 120 lot is at a loss: HIFO takes 90 then 50
    assert p.lot_index.tolist() == [2, 0]
    assert p.lot_sold_quantity.tolist() == [10, 5]
    assert (p.lot_realised_gain > 0).all()
    # only loss lots: the sell is reduced to nothing, the reduction reported
    lots = [(0, 0, 30, 150.0, 500)]
    s = book([100, 100], [[30, 0]], [0], [[0.5, 0.5]], step=1, taxable=[True], lots=lots,
             recent_purchase=[(0, 0)])  # fmt: skip
    p = rebalance(s, Policy(cash_target=0.0))
    assert orders(p) == [
        (0, 0, SELL, 15.0, Reason.BLOCKED_WASH_SALE),
        (0, 1, BUY, 15.0, Reason.SKIPPED_INSUFFICIENT_CASH),
    ]
    assert (p.order_status == SK).all()
    assert p.lot_index.size == 0


def test_in_run_wash_sale_across_a_household():
    # P0 (taxable) sells A at a loss; P1 (same household) and P2 (another) want to buy A
    lots = [(0, 0, 30, 150.0, 500)]
    s = book(
        [100, 100],
        [[30, 0], [0, 30], [0, 30]],
        [0, 0, 0],
        [[0.5, 0.5]],
        step=1,
        taxable=[True, False, False],
        household=[7, 7, 8],
        lots=lots,
    )
    p = rebalance(s, Policy(cash_target=0.0))
    rows = orders(p)
    assert (0, 0, SELL, 15.0, Reason.BAND_REBALANCE) in rows
    assert (1, 0, BUY, 15.0, Reason.BLOCKED_WASH_SALE) in rows
    assert (2, 0, BUY, 15.0, Reason.BAND_REBALANCE) in rows
    assert p.lot_realised_gain.tolist() == [-750]
    assert p.cash_after.tolist() == [0, 1500, 0]
    # at a gain, nothing is blocked
    s2 = dataclasses.replace(s, lot_unit_cost=np.array([50.0]))
    assert (rebalance(s2, Policy(cash_target=0.0)).order_status == P0).all()


def test_orders_sorted_and_deterministic():
    s = book(
        [10, 20, 30],
        [[100, 0, 10], [0, 50, 0], [10, 10, 10]],
        [0, 1000, 0],
        [[0.2, 0.3, 0.5], [0.5, 0.5, 0.0]],
        target_index=[0, 1, 0],
    )
    a, b = rebalance(s, Policy()), rebalance(s, Policy())
    for f in dataclasses.fields(a):
        np.testing.assert_array_equal(getattr(a, f.name), getattr(b, f.name))
    key = a.order_portfolio * 3 + a.order_asset
    assert (np.diff(key) >= 0).all()


def test_enums_describe_themselves():
    for member in Reason:
        assert member.describe().endswith(".")
        assert member.skipped == (member >= 10)
    for trigger in Trigger:
        assert trigger.describe()
    assert Trigger["FORCED"] is Trigger["CALENDAR"]
    assert OrderStatus.SKIPPED.describe().startswith("skipped")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"prices": np.array([0.0, 1.0])}, "prices"),
        ({"quantity_step": np.array([1.0, -1.0])}, "quantity_step"),
        ({"holdings": np.array([[1.0, 2.0, 3.0]])}, "holdings"),
        ({"holdings": np.array([[-1.0, 2.0]])}, "holdings"),
        ({"cash": np.array([np.nan])}, "cash"),
        ({"target_index": np.array([3])}, "target_index"),
        ({"targets": np.array([[0.5, 0.4]])}, "targets"),
        ({"cash_flow": np.array([-1e9])}, "cash_flow"),
        ({"lot_quantity": np.array([5.0])}, "lot_quantity"),
        ({"lot_asset": np.array([9])}, "lot_asset"),
        ({"recent_purchase": np.zeros((2, 2), dtype=bool)}, "recent_purchase"),
    ],
)
def test_bad_input_names_the_field(change, field):
    s = book([1, 1], [[10, 0]], [0], [[0.5, 0.5]], taxable=[True], lots=[(0, 0, 10, 1.0, 1)])
    with pytest.raises(RebalanceInputError, match=field):
        rebalance(dataclasses.replace(s, **change), Policy())


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"abs_band": -0.1}, "abs_band"),
        ({"cash_target": 1.0}, "cash_target"),
        ({"cost_bps": float("nan")}, "cost_bps"),
        ({"wash_sale_days": -1}, "wash_sale_days"),
    ],
)
def test_bad_policy_names_the_field(kw, field):
    with pytest.raises(RebalanceInputError, match=field):
        Policy(**kw)

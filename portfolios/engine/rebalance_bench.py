"""Micro-benchmark of the rebalancing engine (pure, no Django).

``bench(P, A, seed)`` builds a random book of P portfolios x A assets (a third
of them taxable, two lots per taxable position, some deposits, withdrawals and
forced rebalances), times :func:`rebalance` on it, and beside it a numpy floor
measured in the same run over the same P x A arrays: one ``np.sort`` and a few
elementwise operations, the least any engine touching every cell must pay.
Both are measured in the same call, so the ratio survives a noisy machine. (The
``bench_rebalance`` command times the engine inside the real batch path instead:
the ``engine`` phase of its worst run.)
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from portfolios.engine.rebalance import BookState, Policy, rebalance


def random_book(n_portfolios: int, n_assets: int, seed: int = 0) -> BookState:
    rng = np.random.default_rng(seed)
    n_p, n_a = n_portfolios, n_assets
    prices = rng.uniform(5.0, 500.0, n_a)
    step = np.where(np.arange(n_a) % 3 == 0, 1.0, 1e-6)
    n_t = max(1, min(50, n_p // 100))
    targets = rng.dirichlet(np.ones(n_a), n_t)
    tidx = rng.integers(0, n_t, n_p)
    nav = rng.lognormal(11.0, 1.0, n_p)
    weights = np.abs(targets[tidx] + rng.normal(0.0, 0.03, (n_p, n_a)))
    weights /= weights.sum(axis=1, keepdims=True)
    holdings = np.floor(weights * nav[:, None] * 0.98 / prices / step) * step
    cash = nav * 0.02
    flow = np.where(rng.random(n_p) < 0.1, rng.normal(0.0, 0.05, n_p) * nav, 0.0)
    taxable = rng.random(n_p) < 0.33
    # two lots per held taxable position: a share of the holding and the rest
    p_idx, a_idx = np.nonzero(taxable[:, None] & (holdings > 0))
    q = holdings[p_idx, a_idx]
    first = np.floor(q * rng.uniform(0.2, 0.8, q.size) / step[a_idx]) * step[a_idx]
    lot_p = np.concatenate([p_idx, p_idx])
    lot_a = np.concatenate([a_idx, a_idx])
    lot_q = np.concatenate([first, q - first])
    lot_cost = prices[lot_a] * rng.uniform(0.6, 1.4, lot_a.size)
    as_of = 739000
    return BookState(
        prices=prices,
        quantity_step=step,
        holdings=holdings,
        cash=cash,
        cash_flow=flow,
        target_index=tidx.astype(np.int64),
        targets=targets,
        force=rng.random(n_p) < 0.05,
        taxable=taxable,
        household=(np.arange(n_p) // 2).astype(np.int64),
        lot_portfolio=lot_p.astype(np.int64),
        lot_asset=lot_a.astype(np.int64),
        lot_quantity=lot_q,
        lot_unit_cost=lot_cost,
        lot_acquired=(as_of - rng.integers(1, 2000, lot_a.size)).astype(np.int64),
        as_of=as_of,
        recent_loss_sale=rng.random((n_p, n_a)) < 0.01,
        recent_purchase=rng.random((n_p, n_a)) < 0.01,
    )


def _best_of(repeat: int, fn: Any) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench(P: int, A: int, seed: int = 0, repeat: int = 3) -> dict[str, Any]:  # noqa: N803
    """Seconds of ``rebalance`` on a random P x A book, beside a numpy floor."""
    state = random_book(P, A, seed)
    policy = Policy(cost_bps=5.0, min_trade_value=10.0, avoid_short_term_gains=True)

    def floor() -> float:
        value = state.holdings * state.prices
        nav = value.sum(axis=1) + state.cash
        drift = value / nav[:, None] - state.targets[state.target_index]
        order = np.sort(drift, axis=None)
        return float(order[0] + np.abs(drift).max())

    floor_s, _ = _best_of(repeat, floor)
    engine_s, prop = _best_of(repeat, lambda: rebalance(state, policy))
    return {
        "portfolios": P,
        "assets": A,
        "lots": int(state.lot_portfolio.size),
        "orders": prop.n_orders,
        "proposed": int((prop.order_status == 0).sum()),
        "lot_picks": int(prop.lot_index.size),
        "triggered": int(prop.triggered.sum()),
        "engine_seconds": engine_s,
        "floor_seconds": floor_s,
        "ratio": engine_s / floor_s if floor_s > 0 else float("inf"),
    }

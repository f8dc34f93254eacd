"""Micro-benchmark of the rule engine (pure, no Django), for the rebalance benchmark.

``bench(n_portfolios, n_assets, seed)`` times ``evaluate`` with one rule of every
kind (``FULL_RULE_SET``) over a synthetic chunk, beside a numpy floor measured in
the same run over the same arrays: a sort of the orders by (portfolio, asset),
the post-trade quantities and cash (two ``bincount``), the NAV (a matrix-vector
product) and a few elementwise comparisons over the orders. The ratio of the two
survives a noisy machine (DESIGN.md, "Measuring").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from compliance.rules import params as k
from compliance.rules.engine import evaluate
from compliance.rules.types import Book, Orders, Outcome, Rule, Severity

CLASS_NAMES = ("equity", "bond", "crypto", "cash_equivalent")
SECTOR_NAMES = ("technology", "financials", "health_care", "energy", "utilities")

FULL_RULE_SET: tuple[Rule, ...] = (
    Rule(1, k.RESTRICTED_LIST, Severity.HARD, {"symbols": ["S0001", "S0003"]}),
    Rule(2, k.CONCENTRATION_ASSET, Severity.HARD, {"max_share": 0.25}),
    Rule(3, k.CONCENTRATION_ASSET, Severity.SOFT, {"max_share": 0.30, "level": "household"}),
    Rule(4, k.CONCENTRATION_CLASS, Severity.HARD, {"max_share": 0.9}),
    Rule(5, k.CONCENTRATION_SECTOR, Severity.SOFT, {"max_share": 0.5}),
    Rule(6, k.CASH_FLOOR, Severity.HARD, {"min_share": 0.01}),
    Rule(7, k.NO_SHORT_NO_NEGATIVE_CASH, Severity.HARD, {}),
    Rule(8, k.RISK_FIT, Severity.SOFT, {"tolerance": 1}),
    Rule(9, k.RISK_PROFILE_CURRENT, Severity.SOFT, {"warn_days": 30}),
    Rule(10, k.QUESTIONNAIRE_FLAGS, Severity.SOFT, {"max_open": 0}),
    Rule(11, k.KYC_COMPLETE, Severity.HARD, {}),
    Rule(12, k.WASH_SALE, Severity.HARD, {"days": 30}),
    Rule(13, k.MAX_TURNOVER, Severity.SOFT, {"max_share": 0.5}),
    Rule(14, k.MIN_TRADE_VALUE, Severity.SOFT, {"min_value": 25}),
    Rule(15, k.MAX_CRYPTO_SHARE, Severity.HARD, {"by_risk_level": {"3": 0.02, "7": 0.1}}),
)


def synthetic_chunk(
    n_portfolios: int, n_assets: int, seed: int = 0, trades_per_portfolio: int | None = None
) -> tuple[Book, Orders]:
    """A seeded chunk: P portfolios of ~20 positions over A assets, each trading a few.

    Mostly compliant, with a few percent of every kind of failure.
    """
    rng = np.random.default_rng(seed)
    p, a = n_portfolios, n_assets
    prices = rng.lognormal(4.0, 1.0, a)
    held = rng.random((p, a)) < min(1.0, 20 / a)
    holdings = np.where(held, rng.lognormal(3.0, 0.5, (p, a)) / prices * 100, 0.0)
    invested = holdings @ prices
    cash = rng.uniform(0.025, 0.10, p) * invested + 100.0
    nav = invested + cash
    t = trades_per_portfolio or max(1, min(a, 6))
    assets = np.argsort(rng.random((p, a)), axis=1)[:, :t].reshape(-1)
    portfolio = np.repeat(np.arange(p, dtype=np.int64), t)
    pre_qty = holdings[portfolio, assets]
    side = np.where((pre_qty > 0) & (rng.random(p * t) < 0.5), -1, 1).astype(np.int8)
    buy_value = nav[portfolio] * rng.uniform(0.0005, 0.005, p * t)  # 0.05%-0.5% of NAV each
    quantity = np.where(
        side < 0, pre_qty * rng.uniform(0.05, 0.5, p * t), buy_value / prices[assets]
    )
    value = quantity * prices[assets]
    households = rng.integers(0, max(1, p // 2), p)
    clients = np.arange(p, dtype=np.int64) + 1000
    band_low = rng.integers(1, 8, p)
    band_high = band_low + rng.integers(0, 3, p)
    level = np.where(rng.random(p) < 0.95, band_low + rng.integers(0, 3, p), -1)
    book = Book(
        asset_class=rng.choice(len(CLASS_NAMES), a, p=[0.6, 0.3, 0.05, 0.05]),
        class_names=CLASS_NAMES,
        sector=rng.integers(-1, len(SECTOR_NAMES), a),
        sector_names=SECTOR_NAMES,
        symbols=tuple(f"S{i:04d}" for i in range(a)),
        prices=prices,
        holdings=holdings,
        cash=cash,
        cash_flow=np.where(rng.random(p) < 0.1, rng.uniform(-500, 500, p), 0.0),
        portfolio_client=clients,
        portfolio_household=households,
        portfolio_strategy=rng.integers(-1, 20, p),
        strategy_risk_level=np.minimum(level, 10),
        profile_band_low=band_low,
        profile_band_high=band_high,
        profile_risk_level=np.where(level > 0, np.minimum(level, 10), -1),
        profile_expires=np.where(rng.random(p) < 0.97, rng.integers(400, 800, p), 350),
        open_flags=rng.poisson(0.05, p),
        kyc_complete=rng.random(p) < 0.97,
        client_restricted=rng.random((p, a)) < 0.01,
        recent_loss_sale=rng.random((p, a)) < 0.01,
        recent_purchase=rng.random((p, a)) < 0.02,
        household_holdings_value=np.where(rng.random((p, a)) < 0.05, 1000.0, 0.0),
        as_of=400,
    )
    orders = Orders(
        portfolio=portfolio,
        asset=assets.astype(np.int64),
        side=side,
        quantity=quantity,
        value=value,
        cost=value * 0.0005,
        realised_loss=(side < 0) & (rng.random(p * t) < 0.3),
    )
    return book, orders


def _floor(book: Book, orders: Orders) -> None:
    """A sort and a few elementwise passes over the same arrays (what any check must pay)."""
    p, a = book.holdings.shape
    flat = orders.portfolio * a + orders.asset
    np.argsort(flat, kind="stable")
    signed = np.where(orders.side > 0, orders.quantity, -orders.quantity)
    post = book.holdings.reshape(-1) + np.bincount(flat, weights=signed, minlength=p * a)
    money = np.where(orders.side > 0, -orders.value, orders.value) - orders.cost
    cash = book.cash + np.bincount(orders.portfolio, weights=money, minlength=p)
    nav = post.reshape(p, a) @ book.prices + cash
    share = post[flat] * book.prices[orders.asset] / nav[orders.portfolio]
    _ = (share > 0.25) & (orders.side > 0) & (orders.value > 25.0)


def _best(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench(n_portfolios: int, n_assets: int, seed: int = 0, repeat: int = 3) -> dict[str, Any]:
    """Seconds of ``evaluate`` (full rule set) beside the numpy floor, best of ``repeat`` runs."""
    book, orders = synthetic_chunk(n_portfolios, n_assets, seed)
    result = evaluate(book, orders, FULL_RULE_SET)
    seconds = _best(lambda: evaluate(book, orders, FULL_RULE_SET), repeat)
    floor = _best(lambda: _floor(book, orders), repeat)
    n = int(orders.portfolio.shape[0])
    return {
        "portfolios": n_portfolios,
        "assets": n_assets,
        "orders": n,
        "rules": len(FULL_RULE_SET),
        "seconds": seconds,
        "floor_seconds": floor,
        "ratio_to_floor": seconds / floor if floor > 0 else None,
        "orders_per_second": n / seconds if seconds > 0 else None,
        "order_outcomes": {o.name: int((result.order_outcome == o).sum()) for o in Outcome},
        "portfolio_outcomes": {o.name: int((result.portfolio_outcome == o).sum()) for o in Outcome},
    }

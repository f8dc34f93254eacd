"""Small books and orders for the rule engine's tests (pure, no database)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from compliance.rules import Book, Evaluation, Orders, Rule, Severity, evaluate

SYMBOLS = ("AAA", "BBB", "CCC", "DDD")
CLASS_NAMES = ("equity", "crypto")
ASSET_CLASS = (0, 0, 1, 0)  # CCC is crypto
SECTOR_NAMES = ("technology", "energy")
SECTOR = (0, 1, -1, 0)  # CCC has no sector
PRICES = (100.0, 100.0, 100.0, 50.0)
A = len(SYMBOLS)
AS_OF = 1000
STRATEGY = 7

_PER_PORTFOLIO: dict[str, tuple[Any, Any]] = {
    # name: (dtype, default); a callable default gets the portfolio count
    "cash": (np.float64, 10_000.0),
    "cash_flow": (np.float64, 0.0),
    "portfolio_client": (np.int64, lambda p: np.arange(p) + 100),
    "portfolio_household": (np.int64, lambda p: np.arange(p) + 500),
    "portfolio_strategy": (np.int64, STRATEGY),
    "strategy_risk_level": (np.int64, 5),
    "profile_band_low": (np.int64, 1),
    "profile_band_high": (np.int64, 10),
    "profile_risk_level": (np.int64, 5),
    "profile_expires": (np.int64, AS_OF + 365),
    "open_flags": (np.int64, 0),
    "kyc_complete": (np.bool_, True),
}
_PER_CELL = ("client_restricted", "recent_loss_sale", "recent_purchase")


def asset(symbol: str) -> int:
    return SYMBOLS.index(symbol)


def cells(p: int, marks: Mapping[tuple[int, str], Any], dtype: Any = np.bool_) -> np.ndarray:
    """A (P, A) array, zero/False except ``{(portfolio, symbol): value}``."""
    out = np.zeros((p, A), dtype=dtype)
    for (i, sym), v in marks.items():
        out[i, asset(sym)] = v
    return out


def make_book(
    p: int = 1, holdings: Mapping[tuple[int, str], float] | None = None, **kw: Any
) -> Book:
    """P portfolios over the four assets; every per-portfolio field may be a scalar or an array."""
    fields: dict[str, Any] = {}
    for name, (dtype, default) in _PER_PORTFOLIO.items():
        value = kw.pop(name, default)
        value = value(p) if callable(value) else value
        fields[name] = np.broadcast_to(np.asarray(value, dtype=dtype), (p,)).copy()
    for name in _PER_CELL:
        value = kw.pop(name, {})
        fields[name] = cells(p, value) if isinstance(value, Mapping) else np.asarray(value)
    hh = kw.pop("household_holdings_value", None)
    if isinstance(hh, Mapping):
        hh = cells(p, hh, np.float64)
    book = Book(
        asset_class=np.array(ASSET_CLASS, dtype=np.int64),
        class_names=CLASS_NAMES,
        sector=np.array(SECTOR, dtype=np.int64),
        sector_names=SECTOR_NAMES,
        symbols=SYMBOLS,
        prices=np.array(PRICES),
        holdings=cells(p, holdings or {}, np.float64),
        household_holdings_value=hh,
        as_of=kw.pop("as_of", AS_OF),
        **fields,
    )
    assert not kw, f"unknown book fields {sorted(kw)}"
    return book


def make_orders(*rows: tuple[Any, ...]) -> Orders:
    """Rows of (portfolio, symbol, side, quantity[, cost[, realised_loss]]); value = qty x price."""
    full = [(*r, *(0.0, False)[len(r) - 4 :]) for r in rows]
    portfolio = np.array([r[0] for r in full], dtype=np.int64)
    assets = np.array([asset(r[1]) for r in full], dtype=np.int64)
    side = np.array([r[2] for r in full], dtype=np.int8)
    quantity = np.array([r[3] for r in full], dtype=np.float64)
    return Orders(
        portfolio=portfolio,
        asset=assets,
        side=side,
        quantity=quantity,
        value=quantity * np.array(PRICES)[assets],
        cost=np.array([r[4] for r in full], dtype=np.float64),
        realised_loss=np.array([r[5] for r in full], dtype=bool),
    )


BUY, SELL = 1, -1


def run(
    kind: str,
    params: Mapping[str, Any],
    book: Book,
    orders: Orders,
    severity: Severity = Severity.HARD,
    **scope: Any,
) -> Evaluation:
    rule = Rule(42, kind, severity, params, **scope)
    return evaluate(book, orders, [rule])

"""Property tests over random books and orders (hypothesis).

1. Executing only the portfolios that are not HARD-blocked leaves a state the hard
   rules accept: re-evaluating the executed orders gives no HARD_FAIL, and the
   post-trade state computed here, independently and order by order, has no short
   position, no negative cash, cash above its floor, and no executed buy ending
   above a concentration limit.
2. The vectorised outcomes equal a plain per-order reference implementation.
3. Shuffling the orders shuffles the outcomes and changes nothing else.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from compliance.rules import Book, Orders, Outcome, Rule, Severity, evaluate

H = Severity.HARD
MAX_ASSET, MAX_CLASS, MAX_SECTOR, MIN_CASH = 0.4, 0.7, 0.6, 0.05
HARD_RULES = (
    Rule(1, "no_short_no_negative_cash", H, {}),
    Rule(2, "cash_floor", H, {"min_share": MIN_CASH}),
    Rule(3, "concentration_asset", H, {"max_share": MAX_ASSET}),
    Rule(4, "concentration_class", H, {"max_share": MAX_CLASS}),
    Rule(5, "concentration_sector", H, {"max_share": MAX_SECTOR}),
)
AMBIGUOUS = 1e-7  # cells this close to their limit may round either way: not compared


def _take(orders: Orders, keep: np.ndarray) -> Orders:
    return Orders(*(np.asarray(getattr(orders, f))[keep] for f in Orders.__dataclass_fields__))


@st.composite
def chunks(draw) -> tuple[Book, Orders]:
    p = draw(st.integers(1, 5))
    a = draw(st.integers(1, 5))
    n = draw(st.integers(0, 14))
    money = st.integers(0, 400).map(lambda c: c * 25.0)
    prices = np.array(
        draw(st.lists(st.integers(1, 40).map(lambda c: c * 5.0), min_size=a, max_size=a))
    )
    holdings = np.array(
        draw(st.lists(st.integers(0, 30).map(float), min_size=p * a, max_size=p * a))
    ).reshape(p, a)
    cash = np.array(draw(st.lists(money, min_size=p, max_size=p)))
    cash_flow = np.array(
        draw(st.lists(st.sampled_from([0.0, 0.0, -500.0, 300.0]), min_size=p, max_size=p))
    )
    n_classes, n_sectors = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    rows = draw(
        st.lists(
            st.tuples(
                st.integers(0, p - 1),
                st.integers(0, a - 1),
                st.sampled_from([1, -1]),
                st.integers(1, 40).map(lambda q: q / 2),
                st.integers(0, 4).map(float),
            ),
            min_size=n,
            max_size=n,
        )
    )
    ints = lambda v: np.full(p, v, dtype=np.int64)  # noqa: E731
    book = Book(
        asset_class=np.array(draw(st.lists(st.integers(0, n_classes - 1), min_size=a, max_size=a))),
        class_names=tuple(f"class{i}" for i in range(n_classes)),
        sector=np.array(draw(st.lists(st.integers(-1, n_sectors - 1), min_size=a, max_size=a))),
        sector_names=tuple(f"sector{i}" for i in range(n_sectors)),
        symbols=tuple(f"A{i}" for i in range(a)),
        prices=prices,
        holdings=holdings,
        cash=cash,
        cash_flow=cash_flow,
        portfolio_client=np.arange(p),
        portfolio_household=np.arange(p) // 2,
        portfolio_strategy=ints(1),
        strategy_risk_level=ints(5),
        profile_band_low=ints(1),
        profile_band_high=ints(10),
        profile_risk_level=ints(5),
        profile_expires=ints(10_000),
        open_flags=ints(0),
        kyc_complete=np.ones(p, bool),
        client_restricted=np.zeros((p, a), bool),
        recent_loss_sale=np.zeros((p, a), bool),
        recent_purchase=np.zeros((p, a), bool),
    )
    port = np.array([r[0] for r in rows], dtype=np.int64)
    asset = np.array([r[1] for r in rows], dtype=np.int64)
    qty = np.array([r[3] for r in rows], dtype=np.float64)
    orders = Orders(
        portfolio=port,
        asset=asset,
        side=np.array([r[2] for r in rows], dtype=np.int8),
        quantity=qty,
        value=qty * prices[asset],
        cost=np.array([r[4] for r in rows], dtype=np.float64),
        realised_loss=np.zeros(len(rows), bool),
    )
    return book, orders


Qty = dict[tuple[int, int], float]


def _post_state(book: Book, orders: Orders) -> tuple[Qty, dict[int, float], dict[int, float]]:
    """Post-trade quantities, cash and NAV, order by order in plain Python."""
    qty = {
        (p, a): float(book.holdings[p, a])
        for p in range(book.holdings.shape[0])
        for a in range(len(book.symbols))
    }
    cash = {p: float(book.cash[p] + book.cash_flow[p]) for p in range(book.holdings.shape[0])}
    for p, a, side, q, v, c in zip(
        orders.portfolio.tolist(), orders.asset.tolist(), orders.side.tolist(),
        orders.quantity.tolist(), orders.value.tolist(), orders.cost.tolist(), strict=True,
    ):  # fmt: skip
        qty[p, a] += side * q
        cash[p] += -side * v - c
    nav: dict[int, float] = defaultdict(float)
    for (p, a), q in qty.items():
        nav[p] += q * float(book.prices[a])
    for p in cash:
        nav[p] += cash[p]
    return qty, cash, nav


def _share(x: float, nav: float) -> float:
    if nav > 0:
        return x / nav
    return np.inf if x > 0 else (-np.inf if x < 0 else 0.0)


def _group_value(book: Book, qty: Qty, p: int, codes: np.ndarray, code: int) -> float:
    return float(
        sum(qty[p, a] * float(book.prices[a]) for a in range(len(book.symbols)) if codes[a] == code)
    )


def _reference(book: Book, orders: Orders) -> list[list[tuple[int, float, float]]]:
    """Per order, per rule of HARD_RULES: (outcome, measured, limit)."""
    qty, cash, nav = _post_state(book, orders)
    out = []
    for p, a, side in zip(
        orders.portfolio.tolist(), orders.asset.tolist(), orders.side.tolist(), strict=True
    ):
        buy = side > 0
        row = []
        short = qty[p, a] < -1e-9
        row.append((2 if short or cash[p] < -1e-6 else 0, np.nan, 0.0))
        cash_share = _share(cash[p], nav[p])
        row.append((2 if cash_share < MIN_CASH else 0, cash_share, MIN_CASH))
        share = _share(qty[p, a] * float(book.prices[a]), nav[p])
        row.append((2 if buy and share > MAX_ASSET else 0, share, MAX_ASSET))
        c = int(book.asset_class[a])
        share = _share(_group_value(book, qty, p, book.asset_class, c), nav[p])
        row.append((2 if buy and share > MAX_CLASS else 0, share, MAX_CLASS))
        s = int(book.sector[a])
        if s < 0:
            row.append((3, np.nan, np.nan))
        else:
            share = _share(_group_value(book, qty, p, book.sector, s), nav[p])
            row.append((2 if buy and share > MAX_SECTOR else 0, share, MAX_SECTOR))
        out.append(row)
    return out


@settings(max_examples=300, deadline=None)
@given(chunks())
def test_executed_portfolios_satisfy_the_hard_rules(chunk):
    book, orders = chunk
    ev = evaluate(book, orders, HARD_RULES)
    keep = ev.portfolio_outcome[orders.portfolio] != Outcome.HARD_FAIL
    executed = _take(orders, keep)
    again = evaluate(book, executed, HARD_RULES)
    assert not (again.outcomes == Outcome.HARD_FAIL).any()
    assert not (again.portfolio_outcome == Outcome.HARD_FAIL).any()

    qty, cash, nav = _post_state(book, executed)
    traded = set(executed.portfolio.tolist())
    for p in traded:
        assert all(qty[p, a] >= -1e-9 for a in range(len(book.symbols)))
        assert cash[p] >= -1e-6
        assert _share(cash[p], nav[p]) >= MIN_CASH - 1e-6
    for p, a, side in zip(
        executed.portfolio.tolist(), executed.asset.tolist(), executed.side.tolist(), strict=True
    ):
        if side > 0:
            assert _share(qty[p, a] * float(book.prices[a]), nav[p]) <= MAX_ASSET + 1e-6
            c = int(book.asset_class[a])
            assert (
                _share(_group_value(book, qty, p, book.asset_class, c), nav[p]) <= MAX_CLASS + 1e-6
            )


@settings(max_examples=300, deadline=None)
@given(chunks())
def test_vectorised_outcomes_equal_the_per_order_reference(chunk):
    book, orders = chunk
    ev = evaluate(book, orders, HARD_RULES)
    ref = _reference(book, orders)
    for i, row in enumerate(ref):
        for j, (outcome, measured, limit) in enumerate(row):
            if np.isfinite(measured) and np.isfinite(limit) and abs(measured - limit) < AMBIGUOUS:
                continue
            assert ev.outcomes[i, j] == outcome, (
                i,
                HARD_RULES[j].kind,
                ev.measured[i, j],
                measured,
            )
            if j and np.isfinite(measured):
                assert np.isclose(ev.measured[i, j], measured, rtol=1e-9, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(chunks(), st.randoms(use_true_random=False))
def test_shuffling_the_orders_shuffles_the_outcomes(chunk, rnd):
    book, orders = chunk
    perm = np.arange(orders.portfolio.shape[0])
    rnd.shuffle(perm)
    a = evaluate(book, orders, HARD_RULES)
    b = evaluate(book, _take(orders, perm), HARD_RULES)
    assert np.array_equal(b.outcomes, a.outcomes[perm])
    assert np.allclose(b.measured, a.measured[perm], equal_nan=True, rtol=1e-12)
    assert np.array_equal(b.portfolio_outcome, a.portfolio_outcome)

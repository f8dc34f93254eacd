"""The evaluation as a whole: columns, aggregation per order and per portfolio, messages,
storage, input errors, determinism and vectorisation."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from compliance.rules import (
    Evaluation,
    Outcome,
    Rule,
    RuleInputError,
    Severity,
    evaluate,
    outcomes_unpack,
)
from compliance.rules.bench import FULL_RULE_SET, bench, synthetic_chunk
from tests.compliance.rules.builders import BUY, SELL, make_book, make_orders

H, S = Severity.HARD, Severity.SOFT
ROOT = Path(__file__).resolve().parents[3]
RULES = [
    Rule(10, "concentration_asset", H, {"max_share": 0.25}),
    Rule(11, "min_trade_value", S, {"min_value": 100}),
    Rule(12, "max_crypto_share", H, {"by_risk_level": {"1": 0.5}}),
]


def _three_portfolios() -> tuple[Evaluation, np.ndarray]:
    book = make_book(3, holdings={(2, "AAA"): 10})
    orders = make_orders(
        (0, "AAA", BUY, 30),  # 30% of portfolio 0: hard fail
        (0, "BBB", BUY, 1),  # value 100: passes everything
        (1, "DDD", BUY, 1),  # value 50: soft fail (min trade value)
        (1, "BBB", BUY, 2),
        (2, "AAA", SELL, 5),  # passes
    )
    return evaluate(book, orders, RULES), np.asarray(orders.portfolio)


def test_columns_and_aggregation():
    ev, _ = _three_portfolios()
    assert ev.rule_ids == (10, 11, 12)
    assert ev.outcomes.shape == ev.measured.shape == ev.limit.shape == (5, 3)
    assert ev.outcomes.dtype == np.int8
    assert ev.order_outcome.dtype == np.int8
    assert ev.outcomes[:, 2].tolist() == [3] * 5  # no crypto order: not applicable
    assert ev.order_outcome.tolist() == [2, 0, 1, 0, 0]
    assert ev.portfolio_outcome.tolist() == [2, 1, 0]
    assert ev.limit[0, 0] == 0.25
    assert ev.measured[0, 0] == pytest.approx(0.30)
    assert np.isnan(ev.measured[:, 2]).all()
    assert ev.summary()[11] == {"PASS": 4, "SOFT_FAIL": 1, "HARD_FAIL": 0, "NOT_APPLICABLE": 0}


def test_a_portfolio_without_orders_passes_and_no_rules_pass_everything():
    book = make_book(2)
    orders = make_orders((1, "AAA", BUY, 99))
    ev = evaluate(book, orders, [])
    assert ev.outcomes.shape == (1, 0)
    assert ev.order_outcome.tolist() == [0]
    assert ev.portfolio_outcome.tolist() == [0, 0]
    ev = evaluate(book, make_orders(), RULES)
    assert ev.outcomes.shape == (0, 3)
    assert ev.portfolio_outcome.tolist() == [0, 0]


def test_failures_are_plain_english():
    ev, _ = _three_portfolios()
    (failure,) = ev.failures(0)
    assert failure.rule_id == 10
    assert failure.outcome is Outcome.HARD_FAIL
    assert failure.message == "AAA would be 30.0% of the portfolio; the limit is 25.0%"
    (soft,) = ev.failures(2)
    assert soft.outcome is Outcome.SOFT_FAIL
    assert soft.message == "The order's value 50.00 is below the minimum trade value 100.00"
    assert ev.failures(1) == []


def test_messages_tell_close_shares_apart():
    book = make_book()
    ev = evaluate(book, make_orders((0, "AAA", BUY, 25.04)), RULES[:1])
    assert ev.failures(0)[0].message == "AAA would be 25.04% of the portfolio; the limit is 25.00%"


def test_outcomes_packed_round_trip():
    ev, _ = _three_portfolios()
    for i in range(ev.outcomes.shape[0]):
        packed = ev.outcomes_packed(i)
        assert isinstance(packed, bytes)
        assert len(packed) == len(ev.rule_ids)
        assert outcomes_unpack(packed).tolist() == ev.outcomes[i].tolist()


def test_measured_and_limits_are_per_order():
    """Crypto limits depend on each client's risk level; one column holds all of them."""
    book = make_book(3, profile_risk_level=[1, 5, -1])
    orders = make_orders(*[(p, "CCC", BUY, 10) for p in range(3)])
    rule = Rule(1, "max_crypto_share", H, {"by_risk_level": {"1": 0.05, "5": 0.2}})
    ev = evaluate(book, orders, [rule])
    assert ev.limit[:, 0].tolist() == [0.05, 0.2, 0.0]
    assert ev.outcomes[:, 0].tolist() == [2, 0, 2]


def test_household_without_other_holdings_is_the_portfolio():
    book = make_book()
    orders = make_orders((0, "AAA", BUY, 26))
    rule = Rule(1, "concentration_asset", H, {"max_share": 0.25, "level": "household"})
    assert evaluate(book, orders, [rule]).outcomes[0, 0] == Outcome.HARD_FAIL


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b, o: (replace(b, prices=b.prices[:2]), o), "book.prices"),
        (lambda b, o: (replace(b, holdings=b.holdings[:, :2]), o), "book.holdings"),
        (lambda b, o: (replace(b, cash=np.array([1.0, 2.0])), o), "book.cash"),
        (lambda b, o: (replace(b, cash=np.array([np.nan])), o), "book.cash"),
        (lambda b, o: (replace(b, prices=-b.prices), o), "book.prices"),
        (lambda b, o: (replace(b, asset_class=np.array([0, 0, 5, 0])), o), "book.asset_class"),
        (lambda b, o: (replace(b, sector=np.array([0, 0, -2, 0])), o), "book.sector"),
        (lambda b, o: (replace(b, kyc_complete=np.array([True, True])), o), "book.kyc_complete"),
        (
            lambda b, o: (replace(b, client_restricted=np.zeros((1, 3), bool)), o),
            "book.client_restricted",
        ),
        (
            lambda b, o: (replace(b, household_holdings_value=np.zeros((2, 4))), o),
            "book.household_holdings_value",
        ),
        (lambda b, o: (b, replace(o, portfolio=np.array([1]))), "orders.portfolio"),
        (lambda b, o: (b, replace(o, asset=np.array([4]))), "orders.asset"),
        (lambda b, o: (b, replace(o, side=np.array([0]))), "orders.side"),
        (lambda b, o: (b, replace(o, quantity=np.array([0.0]))), "orders.quantity"),
        (lambda b, o: (b, replace(o, value=np.array([1.0, 2.0]))), "orders.value"),
        (lambda b, o: (b, replace(o, cost=np.array([np.inf]))), "orders.cost"),
        (lambda b, o: (b, replace(o, realised_loss=np.array([], bool))), "orders.realised_loss"),
    ],
)
def test_bad_input_names_the_field(change, field):
    book, orders = change(make_book(), make_orders((0, "AAA", BUY, 1)))
    with pytest.raises(RuleInputError) as info:
        evaluate(book, orders, RULES)
    assert info.value.field == field
    assert str(info.value).startswith(field)


def test_deterministic_and_independent_of_the_rules_order():
    book, orders = synthetic_chunk(300, 40, seed=5)
    a = evaluate(book, orders, FULL_RULE_SET)
    b = evaluate(book, orders, FULL_RULE_SET)
    for name in ("outcomes", "measured", "limit", "reasons", "order_outcome", "portfolio_outcome"):
        assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True), name
    reversed_rules = FULL_RULE_SET[::-1]
    c = evaluate(book, orders, reversed_rules)
    assert np.array_equal(c.outcomes, a.outcomes[:, ::-1])
    assert np.array_equal(c.order_outcome, a.order_outcome)
    # every column equals the rule evaluated alone
    for j, rule in enumerate(FULL_RULE_SET):
        alone = evaluate(book, orders, [rule])
        assert np.array_equal(alone.outcomes[:, 0], a.outcomes[:, j]), rule.kind


def test_order_outcome_is_the_worst_applicable_and_portfolio_the_worst_order():
    book, orders = synthetic_chunk(400, 30, seed=9)
    ev = evaluate(book, orders, FULL_RULE_SET)
    worst = np.where(ev.outcomes == 3, 0, ev.outcomes).max(axis=1)
    assert np.array_equal(ev.order_outcome, worst)
    expected = np.zeros(400, dtype=np.int8)
    for i, p in enumerate(orders.portfolio.tolist()):  # reference loop, tests only
        expected[p] = max(expected[p], ev.order_outcome[i])
    assert np.array_equal(ev.portfolio_outcome, expected)
    assert {0, 1, 2} <= set(ev.portfolio_outcome.tolist())  # the chunk exercises all three


def _python_calls(fn) -> int:
    """How many Python-level function calls ``fn`` makes (numpy's C code is not counted)."""
    count = 0

    def profile(frame, event, arg):
        nonlocal count
        if event == "call":
            count += 1

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return count


def test_vectorised_50000_orders_without_per_order_python():
    small_book, small_orders = synthetic_chunk(200, 60, seed=1)
    big_book, big_orders = synthetic_chunk(10_000, 60, seed=1, trades_per_portfolio=5)
    assert big_orders.portfolio.shape[0] == 50_000
    big = evaluate(big_book, big_orders, FULL_RULE_SET)
    assert big.outcomes.shape == (50_000, len(FULL_RULE_SET))
    small_calls = _python_calls(lambda: evaluate(small_book, small_orders, FULL_RULE_SET))
    big_calls = _python_calls(lambda: evaluate(big_book, big_orders, FULL_RULE_SET))
    # 50 times the portfolios and 42 times the orders, but not more Python calls (only the
    # symbols, i.e. the assets, may be looped over, and both chunks have 60 assets)
    assert big_calls <= small_calls * 1.2 + 50, (small_calls, big_calls)


def test_bench_reports_figures_beside_the_floor():
    out = bench(50, 12, seed=2, repeat=1)
    assert out["orders"] == 50 * 6
    assert out["rules"] == len(FULL_RULE_SET)
    assert out["seconds"] > 0
    assert out["floor_seconds"] > 0
    assert sum(out["order_outcomes"].values()) == out["orders"]
    assert sum(out["portfolio_outcomes"].values()) == 50


def test_a_chunk_without_sectors_or_the_named_class_is_not_applicable():
    book = replace(make_book(), sector=np.full(4, -1), sector_names=())
    orders = make_orders((0, "AAA", BUY, 90))
    rules = [
        Rule(1, "concentration_sector", H, {"max_share": 0.1}),
        Rule(2, "concentration_class", H, {"max_share": 0.1, "asset_class": "real_estate"}),
    ]
    ev = evaluate(book, orders, rules)
    assert ev.outcomes.tolist() == [[Outcome.NOT_APPLICABLE, Outcome.NOT_APPLICABLE]]


def test_the_package_imports_no_django():
    code = (
        "import sys, compliance.rules, compliance.rules.bench; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'rest_framework')); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)

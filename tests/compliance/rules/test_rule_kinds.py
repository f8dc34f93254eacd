"""Every rule kind just inside and just outside its limit, and out of scope.

The books are tiny and written out, so the expected share of each case can be
checked by hand: prices are 100 (AAA, BBB, CCC) and 50 (DDD), cash 10,000 unless
the case says otherwise, no costs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from compliance.rules import RULE_KINDS, Outcome, Severity
from tests.compliance.rules.builders import BUY, SELL, STRATEGY, make_book, make_orders, run

PASS, FAIL, NA = Outcome.PASS, Outcome.HARD_FAIL, Outcome.NOT_APPLICABLE


@dataclass(frozen=True)
class Case:
    name: str
    kind: str
    params: dict[str, Any]
    rows: tuple[tuple[Any, ...], ...]
    expected: Outcome | tuple[Outcome, ...]  # for order 0, or for every order
    book: dict[str, Any] = field(default_factory=dict)
    p: int = 1
    measured: float | None = None  # of order 0, when given

    def __str__(self) -> str:
        return self.name


def _hold(**kw: float) -> dict[tuple[int, str], float]:
    return {(0, sym): q for sym, q in kw.items()}


HALF = {"holdings": _hold(AAA=50), "cash": 5_000.0}  # NAV 10,000, AAA 50%

CASES = [
    # restricted_list ------------------------------------------------------------------
    Case(
        "restricted buy listed",
        "restricted_list",
        {"symbols": ["aaa"]},
        ((0, "AAA", BUY, 1),),
        FAIL,
    ),
    Case(
        "restricted buy unlisted",
        "restricted_list",
        {"symbols": ["AAA"]},
        ((0, "BBB", BUY, 1),),
        PASS,
    ),
    Case(
        "restricted sell listed",
        "restricted_list",
        {"symbols": ["AAA"]},
        ((0, "AAA", SELL, 1),),
        PASS,
        HALF,
    ),
    Case(
        "restricted for the client",
        "restricted_list",
        {},
        ((0, "BBB", BUY, 1),),
        FAIL,
        {"client_restricted": {(0, "BBB"): True}},
    ),
    Case(
        "client restriction ignored",
        "restricted_list",
        {"symbols": ["DDD"], "use_client_restrictions": False},
        ((0, "BBB", BUY, 1),),
        PASS,
        {"client_restricted": {(0, "BBB"): True}},
    ),
    # concentration_asset: buy q of AAA from cash, NAV 10,000 -> share q / 100 -------------
    Case(
        "asset inside",
        "concentration_asset",
        {"max_share": 0.25},
        ((0, "AAA", BUY, 24.9),),
        PASS,
        measured=0.249,
    ),
    Case(
        "asset at limit",
        "concentration_asset",
        {"max_share": 0.25},
        ((0, "AAA", BUY, 25),),
        PASS,
        measured=0.25,
    ),
    Case(
        "asset outside",
        "concentration_asset",
        {"max_share": 0.25},
        ((0, "AAA", BUY, 25.1),),
        FAIL,
        measured=0.251,
    ),
    Case(
        "asset sell reducing a breach",
        "concentration_asset",
        {"max_share": 0.25},
        ((0, "AAA", SELL, 10),),
        PASS,
        HALF,
        measured=0.4,
    ),
    # household: other portfolios hold 2,000 of AAA and 3,000 of BBB -> (100q + 2000) / 15000
    Case(
        "household inside",
        "concentration_asset",
        {"max_share": 0.25, "level": "household"},
        ((0, "AAA", BUY, 17.4),),
        PASS,
        {"household_holdings_value": {(0, "AAA"): 2000.0, (0, "BBB"): 3000.0}},
    ),
    Case(
        "household outside",
        "concentration_asset",
        {"max_share": 0.25, "level": "household"},
        ((0, "AAA", BUY, 17.6),),
        FAIL,
        {"household_holdings_value": {(0, "AAA"): 2000.0, (0, "BBB"): 3000.0}},
    ),
    Case(
        "portfolio level ignores the household",
        "concentration_asset",
        {"max_share": 0.25},
        ((0, "AAA", BUY, 17.6),),
        PASS,
        {"household_holdings_value": {(0, "AAA"): 2000.0, (0, "BBB"): 3000.0}},
    ),
    # concentration_class: BBB held 4,000 (equity), buy AAA (equity) -> (4000 + 100q) / 10000
    Case(
        "class inside",
        "concentration_class",
        {"max_share": 0.5},
        ((0, "AAA", BUY, 9.9),),
        PASS,
        {"holdings": _hold(BBB=40), "cash": 6000.0},
        measured=0.499,
    ),
    Case(
        "class outside",
        "concentration_class",
        {"max_share": 0.5},
        ((0, "AAA", BUY, 10.1),),
        FAIL,
        {"holdings": _hold(BBB=40), "cash": 6000.0},
        measured=0.501,
    ),
    Case(
        "class filter: other class",
        "concentration_class",
        {"max_share": 0.5, "asset_class": "crypto"},
        ((0, "AAA", BUY, 10.1),),
        NA,
        {"holdings": _hold(BBB=40), "cash": 6000.0},
    ),
    Case(
        "class filter: that class",
        "concentration_class",
        {"max_share": 0.05, "asset_class": "Crypto"},
        ((0, "CCC", BUY, 5.1),),
        FAIL,
    ),
    # concentration_sector: DDD (technology, 50) held 3,000, buy AAA (technology)
    Case(
        "sector inside",
        "concentration_sector",
        {"max_share": 0.4},
        ((0, "AAA", BUY, 9.9),),
        PASS,
        {"holdings": _hold(DDD=60), "cash": 7000.0},
        measured=0.399,
    ),
    Case(
        "sector outside",
        "concentration_sector",
        {"max_share": 0.4},
        ((0, "AAA", BUY, 10.1),),
        FAIL,
        {"holdings": _hold(DDD=60), "cash": 7000.0},
        measured=0.401,
    ),
    Case(
        "sector: asset without sector",
        "concentration_sector",
        {"max_share": 0.0},
        ((0, "CCC", BUY, 1),),
        NA,
    ),
    # cash_floor: buy q of AAA -> cash share 1 - q / 100 ---------------------------------
    Case("cash inside", "cash_floor", {"min_share": 0.05}, ((0, "AAA", BUY, 94.9),), PASS),
    Case(
        "cash outside",
        "cash_floor",
        {"min_share": 0.05},
        ((0, "AAA", BUY, 95.1),),
        FAIL,
        measured=0.049,
    ),
    # a withdrawal of 1,000 leaves after trading: (9000 - 100q) / 9000
    Case(
        "cash with withdrawal inside",
        "cash_floor",
        {"min_share": 0.05},
        ((0, "AAA", BUY, 85.4),),
        PASS,
        {"cash_flow": -1000.0},
    ),
    Case(
        "cash with withdrawal outside",
        "cash_floor",
        {"min_share": 0.05},
        ((0, "AAA", BUY, 85.6),),
        FAIL,
        {"cash_flow": -1000.0},
    ),
    Case(
        "cash floor fails every order",
        "cash_floor",
        {"min_share": 0.05},
        ((0, "BBB", SELL, 1), (0, "AAA", BUY, 96)),
        (FAIL, FAIL),
        {"holdings": _hold(BBB=1)},
    ),
    # no_short_no_negative_cash -----------------------------------------------------------
    Case("sell all", "no_short_no_negative_cash", {}, ((0, "AAA", SELL, 50),), PASS, HALF),
    Case(
        "sell within tolerance",
        "no_short_no_negative_cash",
        {},
        ((0, "AAA", SELL, 50 + 5e-10),),
        PASS,
        HALF,
    ),
    Case("sell short", "no_short_no_negative_cash", {}, ((0, "AAA", SELL, 50.001),), FAIL, HALF),
    Case("spend all cash", "no_short_no_negative_cash", {}, ((0, "AAA", BUY, 100),), PASS),
    Case(
        "negative cash fails every order",
        "no_short_no_negative_cash",
        {},
        ((0, "BBB", SELL, 1), (0, "AAA", BUY, 100.1)),
        (FAIL, FAIL),
        {"holdings": _hold(BBB=1), "cash": 10_000.0 - 100},
    ),
    Case(
        "costs count",
        "no_short_no_negative_cash",
        {},
        ((0, "AAA", BUY, 100, 0.01),),
        FAIL,
    ),
    Case(
        "a withdrawal counts",
        "no_short_no_negative_cash",
        {},
        ((0, "AAA", BUY, 90),),
        FAIL,
        {"cash_flow": -1000.01},
    ),
    # risk_fit: band 3-5, tolerance 1 -----------------------------------------------------
    *[
        Case(
            f"risk level {level}",
            "risk_fit",
            {"tolerance": 1},
            ((0, "AAA", BUY, 1),),
            expected,
            {"profile_band_low": 3, "profile_band_high": 5, "strategy_risk_level": level},
        )
        for level, expected in ((1, FAIL), (2, PASS), (6, PASS), (7, FAIL), (-1, FAIL))
    ],
    Case(
        "risk fit without profile",
        "risk_fit",
        {},
        ((0, "AAA", BUY, 1),),
        FAIL,
        {"profile_band_low": -1, "profile_band_high": -1},
    ),
    Case(
        "risk fit: sells pass",
        "risk_fit",
        {},
        ((0, "AAA", SELL, 1),),
        PASS,
        {**HALF, "strategy_risk_level": 9, "profile_band_low": 3, "profile_band_high": 5},
    ),
    # risk_profile_current: as_of 1000 --------------------------------------------------------
    *[
        Case(
            f"profile expires {expires} warn {warn}",
            "risk_profile_current",
            {"warn_days": warn},
            ((0, "AAA", BUY, 1),),
            expected,
            {"profile_expires": expires},
        )
        for expires, warn, expected in (
            (1000, 0, PASS),
            (999, 0, FAIL),
            (1010, 10, PASS),
            (1009, 10, FAIL),
            (-1, 0, FAIL),
        )
    ],
    Case(
        "profile: sells pass",
        "risk_profile_current",
        {},
        ((0, "AAA", SELL, 1),),
        PASS,
        {**HALF, "profile_expires": -1},
    ),
    # questionnaire_flags -------------------------------------------------------------------
    Case(
        "flags at max",
        "questionnaire_flags",
        {"max_open": 1},
        ((0, "AAA", BUY, 1),),
        PASS,
        {"open_flags": 1},
    ),
    Case(
        "flags above max",
        "questionnaire_flags",
        {"max_open": 1},
        ((0, "AAA", BUY, 1),),
        FAIL,
        {"open_flags": 2},
    ),
    Case(
        "flags: sells pass",
        "questionnaire_flags",
        {},
        ((0, "AAA", SELL, 1),),
        PASS,
        {**HALF, "open_flags": 3},
    ),
    # kyc_complete ------------------------------------------------------------------------------
    Case("kyc complete", "kyc_complete", {}, ((0, "AAA", BUY, 1),), PASS),
    Case(
        "kyc incomplete fails sells too",
        "kyc_complete",
        {},
        ((0, "AAA", SELL, 1), (0, "BBB", BUY, 1)),
        (FAIL, FAIL),
        {**HALF, "kyc_complete": False},
    ),
    # wash_sale ------------------------------------------------------------------------------------
    Case(
        "buy after a loss sale",
        "wash_sale",
        {},
        ((0, "AAA", BUY, 1),),
        FAIL,
        {"recent_loss_sale": {(0, "AAA"): True}},
    ),
    Case(
        "buy of another asset",
        "wash_sale",
        {},
        ((0, "BBB", BUY, 1),),
        PASS,
        {"recent_loss_sale": {(0, "AAA"): True}},
    ),
    Case(
        "loss sale after a purchase",
        "wash_sale",
        {},
        ((0, "AAA", SELL, 1, 0.0, True),),
        FAIL,
        {**HALF, "recent_purchase": {(0, "AAA"): True}},
    ),
    Case(
        "gain sale after a purchase",
        "wash_sale",
        {},
        ((0, "AAA", SELL, 1, 0.0, False),),
        PASS,
        {**HALF, "recent_purchase": {(0, "AAA"): True}},
    ),
    Case(
        "in-run, same household",
        "wash_sale",
        {},
        ((1, "AAA", BUY, 1), (0, "AAA", SELL, 1, 0.0, True)),
        (FAIL, PASS),
        {"holdings": _hold(AAA=50), "portfolio_household": 9},
        p=2,
    ),
    Case(
        "in-run, other household",
        "wash_sale",
        {},
        ((1, "AAA", BUY, 1), (0, "AAA", SELL, 1, 0.0, True)),
        (PASS, PASS),
        {"holdings": _hold(AAA=50)},
        p=2,
    ),
    Case(
        "in-run, sold at a gain",
        "wash_sale",
        {},
        ((1, "AAA", BUY, 1), (0, "AAA", SELL, 1, 0.0, False)),
        (PASS, PASS),
        {"holdings": _hold(AAA=50), "portfolio_household": 9},
        p=2,
    ),
    # max_turnover: NAV 10,000, sell q of AAA -> q / 100 ------------------------------------------
    Case(
        "turnover inside",
        "max_turnover",
        {"max_share": 0.3},
        ((0, "AAA", SELL, 29.9),),
        PASS,
        HALF,
        measured=0.299,
    ),
    Case(
        "turnover outside",
        "max_turnover",
        {"max_share": 0.3},
        ((0, "AAA", SELL, 30.1),),
        FAIL,
        HALF,
        measured=0.301,
    ),
    Case(
        "turnover sums both sides, fails every order",
        "max_turnover",
        {"max_share": 0.3},
        ((0, "AAA", SELL, 15), (0, "BBB", BUY, 15.1)),
        (FAIL, FAIL),
        HALF,
    ),
    # min_trade_value ------------------------------------------------------------------------------
    Case(
        "trade at minimum",
        "min_trade_value",
        {"min_value": 50},
        ((0, "DDD", BUY, 1),),
        PASS,
        measured=50.0,
    ),
    Case(
        "trade below minimum",
        "min_trade_value",
        {"min_value": 50},
        ((0, "DDD", BUY, 0.9998),),
        FAIL,
    ),
    Case(
        "trade below minimum, sell",
        "min_trade_value",
        {"min_value": "50.00"},
        ((0, "DDD", SELL, 0.5),),
        FAIL,
        {"holdings": _hold(DDD=1)},
    ),
    # max_crypto_share: limit 0 below level 3, 5% for 3..6, 20% from 7; buy q of CCC -> q / 100
    *[
        Case(
            f"crypto level {level} q {q}",
            "max_crypto_share",
            {"by_risk_level": {"3": 0.05, 7: 0.2}},
            ((0, "CCC", BUY, q),),
            expected,
            {"profile_risk_level": level},
        )
        for level, q, expected in (
            (5, 4.9, PASS),
            (5, 5.1, FAIL),
            (3, 5.0, PASS),
            (8, 19.9, PASS),
            (8, 20.1, FAIL),
            (2, 0.1, FAIL),
            (-1, 0.1, FAIL),
            (10, 20.0, PASS),
        )
    ],
    Case(
        "crypto rule: equity order",
        "max_crypto_share",
        {"by_risk_level": {"3": 0.05}},
        ((0, "AAA", BUY, 1),),
        NA,
    ),
    Case(
        "crypto rule: sell passes",
        "max_crypto_share",
        {"by_risk_level": {"3": 0.05}},
        ((0, "CCC", SELL, 1),),
        PASS,
        {"holdings": _hold(CCC=50), "profile_risk_level": 5},
    ),
]


def _build(case: Case):
    return make_book(case.p, **case.book), make_orders(*case.rows)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_rule_boundary(case: Case):
    book, orders = _build(case)
    ev = run(case.kind, case.params, book, orders)
    expected = case.expected if isinstance(case.expected, tuple) else (case.expected,)
    assert tuple(Outcome(int(o)) for o in ev.outcomes[: len(expected), 0]) == expected
    if case.measured is not None:
        assert ev.measured[0, 0] == pytest.approx(case.measured)
    na = ev.outcomes[:, 0] == NA
    assert np.isnan(ev.measured[na, 0]).all()
    assert not np.isnan(ev.measured[~na, 0]).any() or case.kind in (
        "risk_fit",
        "risk_profile_current",
    )


def test_every_kind_has_a_passing_and_a_failing_case():
    def outcomes(kind):
        out = set()
        for c in CASES:
            if c.kind == kind:
                out |= set(c.expected) if isinstance(c.expected, tuple) else {c.expected}
        return out

    for kind in RULE_KINDS:
        assert {PASS, FAIL} <= outcomes(kind), kind


FAILING = {}
for _c in CASES:
    first = _c.expected[0] if isinstance(_c.expected, tuple) else _c.expected
    if first == FAIL and _c.kind not in FAILING:
        FAILING[_c.kind] = _c


@pytest.mark.parametrize("kind", RULE_KINDS)
@pytest.mark.parametrize(
    ("scope", "in_scope"),
    [
        ({"strategy_ids": frozenset({STRATEGY + 1})}, False),
        ({"strategy_ids": frozenset({STRATEGY, 99})}, True),
        ({"client_ids": frozenset({1})}, False),
        ({"client_ids": frozenset({100})}, True),
        ({"client_ids": frozenset({100}), "strategy_ids": frozenset({STRATEGY + 1})}, False),
    ],
    ids=["other-strategy", "its-strategy", "other-client", "its-client", "client-but-not-strategy"],
)
def test_scope(kind, scope, in_scope):
    case = FAILING[kind]
    book, orders = _build(case)
    ev = run(case.kind, case.params, book, orders, **scope)
    if in_scope:
        assert ev.outcomes[0, 0] == FAIL
        assert ev.order_outcome[0] == FAIL
    else:
        assert ev.outcomes[0, 0] == NA
        assert np.isnan(ev.measured[0, 0])
        assert np.isnan(ev.limit[0, 0])
        assert ev.order_outcome[0] == PASS  # not applicable counts as a pass
        assert ev.failures(0) == []


def test_scope_is_per_portfolio():
    """Two portfolios on different strategies: the rule applies to one only."""
    book = make_book(2, portfolio_strategy=[STRATEGY, STRATEGY + 1], kyc_complete=False)
    orders = make_orders((0, "AAA", BUY, 1), (1, "AAA", BUY, 1))
    ev = run("kyc_complete", {}, book, orders, strategy_ids=frozenset({STRATEGY + 1}))
    assert ev.outcomes[:, 0].tolist() == [NA, FAIL]
    assert ev.portfolio_outcome.tolist() == [PASS, FAIL]


@pytest.mark.parametrize("kind", RULE_KINDS)
def test_soft_severity_gives_soft_fail(kind):
    case = FAILING[kind]
    book, orders = _build(case)
    ev = run(case.kind, case.params, book, orders, severity=Severity.SOFT)
    assert ev.outcomes[0, 0] == Outcome.SOFT_FAIL
    assert ev.portfolio_outcome[orders.portfolio[0]] == Outcome.SOFT_FAIL
    (failure,) = ev.failures(0)
    assert failure.outcome == Outcome.SOFT_FAIL
    assert failure.rule_id == 42
    assert failure.kind == kind
    assert failure.message
    assert "failed" not in failure.message

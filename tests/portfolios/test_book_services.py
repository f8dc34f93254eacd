"""Portfolio state services, selectors and API: policies, strategy, cash flows, drift."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.models import Role, User
from accounts.tenancy import firm_context
from compliance.models import AuditEvent
from portfolios import signals_book
from portfolios.models import Portfolio
from portfolios.models_holdings import CashFlow, Holding
from portfolios.models_market import Asset, Price
from portfolios.models_rebalance import RebalancePolicy
from portfolios.models_strategy import Strategy, StrategyVersion
from portfolios.selectors_book import book_drift_matrix, portfolio_holdings
from portfolios.selectors_rebalance import book_drift_by_class
from portfolios.services_book import (
    cash_flow_cancel,
    cash_flow_request,
    portfolio_policy_set,
    portfolio_strategy_set,
    rebalance_policy_create,
    rebalance_policy_default_get,
    rebalance_policy_effective,
    rebalance_policy_effective_many,
    rebalance_policy_update,
    strategy_policy_set,
)
from tests.accounts.book import Book, make_book
from tests.conftest import FirmWorld

pytestmark = pytest.mark.django_db


@pytest.fixture
def book(firm_a: FirmWorld) -> Book:
    return make_book(firm_a)


def _api(user: User) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def _asset(symbol: str, cls: str, prices: dict[dt.date, str]) -> Asset:
    asset = Asset.objects.create(symbol=symbol, asset_class=cls, fractional=True,
                                 quantity_step=Decimal("0.0001"))  # fmt: skip
    for day, close in prices.items():
        Price.objects.create(asset=asset, date=day, close=Decimal(close))
    return asset


def _strategy(name: str, weights: list[dict[str, str]], status: str = "active") -> Strategy:
    universe = sorted({s for w in weights for s in w})
    strategy = Strategy.objects.create(
        name=name, method="fixed", universe=universe, parameters={}, status=status
    )
    for number, w in enumerate(weights, start=1):
        StrategyVersion.objects.create(
            strategy=strategy, number=number, method="fixed",
            inputs={"universe": universe}, weights=w, fingerprint=f"{name}{number}".ljust(64, "0"),
            prices_as_of=dt.date(2024, 1, 1), prices_digest="e" * 64,
            expected_return=Decimal("0.05"), volatility=Decimal("0.1"),
            sharpe_ratio=Decimal("0.5"), risk_free_rate=Decimal(0), trigger="system",
            trigger_label="test",
        )  # fmt: skip
    return strategy


@pytest.fixture
def tiny(book: Book) -> dict[str, Any]:
    """A portfolio worth 1000: 10 A at 50 (bought at 40), 4 B at 100, 100 cash."""
    a = _asset("TSTA", "us_equity", {dt.date(2024, 1, 2): "40", dt.date(2024, 3, 1): "50"})
    b = _asset("TSTB", "us_bonds", {dt.date(2024, 2, 1): "100"})
    with firm_context(book.world.firm), transaction.atomic():
        strategy = _strategy(
            "Tiny", [{"TSTA": "1.0000000000"}, {"TSTA": "0.6000000000", "TSTB": "0.4000000000"}]
        )
        Portfolio.objects.filter(pk=book.portfolio.pk).update(
            strategy=strategy, cash=Decimal("100.00")
        )
        Holding.objects.create(portfolio=book.portfolio, asset=a, quantity=Decimal(10))
        Holding.objects.create(portfolio=book.portfolio, asset=b, quantity=Decimal(4))
        book.portfolio.refresh_from_db()
    return {"strategy": strategy, "a": a, "b": b}


# --- policies ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"abs_band": "1.0"}, "abs_band"),
        ({"rel_band": "-0.1"}, "rel_band"),
        ({"cash_target": "0.01", "cash_floor": "0.02"}, "cash_floor"),
        ({"cash_target": "1"}, "cash_target"),
        ({"trigger_mode": "threshold", "abs_band": None, "rel_band": None}, "abs_band"),
        ({"cost_bps": "-1"}, "cost_bps"),
        ({"cost_fixed": "-0.01"}, "cost_fixed"),
        ({"min_trade_value": "1.001"}, "min_trade_value"),
        ({"calendar": "weekly"}, "calendar"),
        ({"wash_sale_days": -1}, "wash_sale_days"),
        ({"fractional": "yes"}, "fractional"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_policy_validation_names_the_field(book: Book, fields: dict[str, Any], bad: str) -> None:
    firm = book.world.firm
    with pytest.raises(ValidationError) as caught:
        rebalance_policy_create(firm=firm, actor=None, name="Bad", **fields)
    assert bad in caught.value.message_dict
    with firm_context(firm), transaction.atomic():
        assert not RebalancePolicy.objects.filter(name="Bad").exists()


def test_calendar_policy_needs_no_band_and_changes_are_audited(book: Book) -> None:
    firm, admin = book.world.firm, book.world.user(Role.FIRM_ADMIN)
    policy = rebalance_policy_create(
        firm=firm, actor=admin, name="Quarterly", trigger_mode="calendar",
        abs_band=None, rel_band=None,
    )  # fmt: skip
    rebalance_policy_update(firm=firm, actor=admin, policy=policy, cost_bps=Decimal("5"))
    with pytest.raises(ValidationError) as caught:
        rebalance_policy_update(firm=firm, actor=admin, policy=policy, trigger_mode="both")
    assert "abs_band" in caught.value.message_dict
    with firm_context(firm), transaction.atomic():
        events = list(
            AuditEvent.objects.filter(object_type="rebalance_policy", object_id=str(policy.pk))
            .order_by("seq")
            .values_list("action", "payload")
        )
    assert [e[0] for e in events] == ["rebalance_policy.created", "rebalance_policy.changed"]
    assert events[1][1]["changes"]["cost_bps"][1] == "5"


def test_one_firm_default_created_once_and_moved(book: Book) -> None:
    firm = book.world.firm
    first = rebalance_policy_default_get(firm=firm)
    assert first.is_firm_default
    assert rebalance_policy_default_get(firm=firm).pk == first.pk
    other = rebalance_policy_create(firm=firm, actor=None, name="Tight", abs_band="0.02")
    rebalance_policy_update(firm=firm, actor=None, policy=other, is_firm_default=True)
    with firm_context(firm), transaction.atomic():
        assert list(
            RebalancePolicy.objects.filter(is_firm_default=True).values_list("pk", flat=True)
        ) == [other.pk]
        assert AuditEvent.objects.filter(action="rebalance_policy.default_created").count() == 1
    with pytest.raises(ValidationError) as caught:
        rebalance_policy_update(firm=firm, actor=None, policy=other, is_firm_default=False)
    assert "is_firm_default" in caught.value.message_dict


def test_effective_policy_portfolio_over_strategy_over_firm(book: Book, tiny: dict[str, Any]):
    firm = book.world.firm
    default = rebalance_policy_default_get(firm=firm)
    strat = rebalance_policy_create(firm=firm, actor=None, name="Strategy's")
    own = rebalance_policy_create(firm=firm, actor=None, name="Own")
    other = book.other_portfolio
    assert rebalance_policy_effective(portfolio=book.portfolio).pk == default.pk
    strategy_policy_set(firm=firm, actor=None, strategy=tiny["strategy"], policy=strat)
    assert rebalance_policy_effective(portfolio=book.portfolio).pk == strat.pk
    portfolio_policy_set(firm=firm, actor=None, portfolio=book.portfolio, policy=own)
    assert rebalance_policy_effective(portfolio=book.portfolio).pk == own.pk
    many = rebalance_policy_effective_many(firm=firm, portfolio_ids=[book.portfolio.pk, other.pk])
    assert {k: v.pk for k, v in many.items()} == {book.portfolio.pk: own.pk, other.pk: default.pk}
    with firm_context(firm), transaction.atomic():
        actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"strategy.policy_set", "portfolio.policy_set"} <= actions


def test_another_firms_policy_is_refused(book: Book, firm_b: FirmWorld) -> None:
    theirs = rebalance_policy_create(firm=firm_b.firm, actor=None, name="Theirs")
    with pytest.raises(ValidationError) as caught:
        portfolio_policy_set(firm=book.world.firm, actor=None, portfolio=book.portfolio,
                             policy=theirs)  # fmt: skip
    assert "policy" in caught.value.message_dict


# --- strategy ------------------------------------------------------------------------------


def test_strategy_set_only_active_of_the_firm_and_audited(book: Book, tiny: dict[str, Any]):
    firm, advisor = book.world.firm, book.world.user(Role.ADVISOR)
    with firm_context(firm), transaction.atomic():
        draft = _strategy("Draft", [{"TSTA": "1.0000000000"}], status="draft")
    with pytest.raises(ValidationError) as caught:
        portfolio_strategy_set(firm=firm, actor=advisor, portfolio=book.portfolio, strategy=draft)
    assert "strategy" in caught.value.message_dict
    portfolio_strategy_set(firm=firm, actor=advisor, portfolio=book.other_portfolio,
                           strategy=tiny["strategy"])  # fmt: skip
    with firm_context(firm), transaction.atomic():
        assert Portfolio.objects.get(pk=book.other_portfolio.pk).strategy_id == tiny["strategy"].pk
        event = AuditEvent.objects.get(action="portfolio.strategy_set")
    assert event.payload["strategy_id"] == [None, tiny["strategy"].pk]


# --- cash flows ----------------------------------------------------------------------------


@pytest.fixture
def hook_calls() -> Iterator[list[tuple[int, int]]]:
    calls: list[tuple[int, int]] = []

    def hook(firm_id: int, portfolio_id: int) -> None:
        calls.append((firm_id, portfolio_id))

    signals_book.ON_CASH_FLOW.append(hook)
    yield calls
    signals_book.ON_CASH_FLOW.remove(hook)


def _request_then_roll_back(book: Book) -> None:
    try:
        with transaction.atomic():
            cash_flow_request(firm=book.world.firm, actor=None, portfolio=book.portfolio,
                              kind="deposit", amount="5")  # fmt: skip
            raise RuntimeError("abort")
    except RuntimeError:
        pass


@pytest.mark.parametrize(
    ("kind", "amount", "bad"),
    [
        ("deposit", "0", "amount"),
        ("deposit", "-5", "amount"),
        ("deposit", "10.001", "amount"),
        ("deposit", "ten", "amount"),
        ("gift", "10", "kind"),
        ("withdrawal", "1000.01", "amount"),  # the portfolio is worth 1000.00
    ],
)
def test_cash_flow_validation_names_the_field(
    book: Book, tiny: dict[str, Any], kind: str, amount: str, bad: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        cash_flow_request(firm=book.world.firm, actor=None, portfolio=book.portfolio,
                          kind=kind, amount=amount)  # fmt: skip
    assert bad in caught.value.message_dict


def test_cash_flow_hook_runs_once_after_commit_only(
    book: Book, tiny: dict[str, Any], hook_calls: list[tuple[int, int]],
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    firm = book.world.firm
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        flow = cash_flow_request(firm=firm, actor=None, portfolio=book.portfolio,
                                 kind="withdrawal", amount=Decimal("600.00"))  # fmt: skip
        assert hook_calls == []  # not before the commit
    # The hook, then what it set off (the cash-flow rebalance's chunk fan-out).
    assert callbacks[0].func.__name__ == "cash_flow_requested"
    assert hook_calls == [(firm.pk, book.portfolio.pk)]
    # The pending withdrawal counts: 600 + 400.01 exceeds the 1000.00.
    with pytest.raises(ValidationError):
        cash_flow_request(firm=firm, actor=None, portfolio=book.portfolio,
                          kind="withdrawal", amount="400.01")  # fmt: skip
    # Rolled back: no hook.
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        _request_then_roll_back(book)
    assert callbacks == []
    assert hook_calls == [(firm.pk, book.portfolio.pk)]
    cancelled = cash_flow_cancel(firm=firm, actor=None, cash_flow=flow)
    assert cancelled.status == "cancelled"
    with pytest.raises(ValidationError) as caught:
        cash_flow_cancel(firm=firm, actor=None, cash_flow=flow)
    assert "cash_flow" in caught.value.message_dict
    with firm_context(firm), transaction.atomic():
        actions = list(AuditEvent.objects.filter(object_type="cash_flow").values_list(
            "action", flat=True).order_by("seq"))  # fmt: skip
        assert CashFlow.objects.count() == 1
    assert actions == ["cash_flow.withdrawal_requested", "cash_flow.cancelled"]


# --- selectors -----------------------------------------------------------------------------


def test_holdings_and_drift_hand_checked(book: Book, tiny: dict[str, Any]) -> None:
    firm = book.world.firm
    with firm_context(firm), transaction.atomic():
        state = portfolio_holdings(portfolio=book.portfolio)
    assert state.nav == Decimal("1000.00")
    assert state.strategy_version == 2
    rows = {r.symbol: r for r in state.rows}
    assert rows["TSTA"].price == Decimal(50)  # the latest price, not the older 40
    assert rows["TSTA"].weight == Decimal("0.5")
    assert rows["TSTA"].target_weight == Decimal("0.594")  # 0.6 x (1 - 0.01 cash target)
    assert rows["TSTA"].drift == Decimal("-0.094")
    assert rows["TSTB"].drift == Decimal("0.004")
    assert rows["CASH"].drift == Decimal("0.09")
    membership = _membership(book.world.user(Role.FIRM_ADMIN), book)
    with firm_context(firm), transaction.atomic():
        matrix = book_drift_matrix(membership=membership)
    assert matrix.asset_classes == ["us_bonds", "us_equity", "cash"]
    (row,) = matrix.rows  # the other portfolio follows no strategy
    assert row.drift == {
        "us_equity": Decimal("-0.094"), "us_bonds": Decimal("0.004"), "cash": Decimal("0.09")
    }  # fmt: skip
    assert row.max_abs_drift == Decimal("0.094")

    # The rebalancing page shows the same numbers, against the same targets (the cash
    # target included), as the API, with the classes' labels.
    with firm_context(firm), transaction.atomic():
        page = book_drift_by_class(membership=membership)
    assert page.classes == [("us_bonds", "US bonds"), ("us_equity", "US equity"), ("cash", "Cash")]
    (page_row,) = page.rows
    assert page_row.portfolio_id == book.portfolio.pk
    assert page_row.drifts == [Decimal("0.004"), Decimal("-0.094"), Decimal("0.09")]
    assert page_row.max_drift == Decimal("0.094")
    assert page_row.nav == Decimal("1000.00")
    assert page.total == 1


def _membership(user: User, book: Book) -> Any:
    from accounts.models import Membership

    with firm_context(book.world.firm), transaction.atomic():
        return Membership.objects.select_related("user", "firm").get(user=user)


def test_drift_matrix_runs_a_fixed_number_of_queries(
    book: Book, tiny: dict[str, Any], django_assert_max_num_queries: Any
) -> None:
    firm = book.world.firm
    admin = book.world.user(Role.FIRM_ADMIN)
    with firm_context(firm), transaction.atomic():
        for n in range(30):
            p = Portfolio.objects.create(
                client=book.client, number=f"X-{n}", account_type="taxable",
                strategy=tiny["strategy"],
            )  # fmt: skip
            Holding.objects.create(portfolio=p, asset=tiny["a"], quantity=Decimal(n + 1))
    membership = _membership(admin, book)
    with firm_context(firm), transaction.atomic(), django_assert_max_num_queries(12):
        matrix = book_drift_matrix(membership=membership)
    assert len(matrix.rows) == 31


def test_the_page_leaves_out_closed_and_frozen_portfolios_the_api_keeps(
    book: Book, tiny: dict[str, Any]
) -> None:
    firm = book.world.firm
    with firm_context(firm), transaction.atomic():
        shut = {
            status: Portfolio.objects.create(
                client=book.client, number=f"S-{status}", account_type="taxable",
                strategy=tiny["strategy"], status=status,
            ).pk
            for status in ("closed", "frozen")
        }  # fmt: skip
        opened = Portfolio.objects.create(
            client=book.client, number="S-open", account_type="taxable", strategy=tiny["strategy"]
        ).pk
    membership = _membership(book.world.user(Role.FIRM_ADMIN), book)
    with firm_context(firm), transaction.atomic():
        everything = {r.portfolio_id for r in book_drift_matrix(membership=membership).rows}
        open_only = {
            r.portfolio_id for r in book_drift_matrix(membership=membership, open_only=True).rows
        }
        page = {r.portfolio_id for r in book_drift_by_class(membership=membership).rows}
    assert set(shut.values()) <= everything
    assert opened in open_only
    assert not set(shut.values()) & open_only
    assert page == open_only


# --- API and access ------------------------------------------------------------------------


def test_api_access_rules(book: Book, tiny: dict[str, Any], firm_b: FirmWorld) -> None:
    advisor = _api(book.world.user(Role.ADVISOR))
    investor = _api(book.world.user(Role.INVESTOR))
    mine, theirs = book.portfolio.pk, book.other_portfolio.pk
    holdings = advisor.get(f"/api/v1/portfolios/{mine}/holdings/")
    assert holdings.status_code == 200
    assert holdings.json()["nav"] == "1000.00"
    assert advisor.get(f"/api/v1/portfolios/{theirs}/holdings/").status_code == 404
    assert advisor.get(f"/api/v1/portfolios/{theirs}/ledger/").status_code == 404
    assert investor.get(f"/api/v1/portfolios/{mine}/holdings/").status_code == 200
    assert investor.get(f"/api/v1/portfolios/{theirs}/holdings/").status_code == 404
    stranger = _api(firm_b.user(Role.FIRM_ADMIN))
    assert stranger.get(f"/api/v1/portfolios/{mine}/holdings/").status_code == 404
    answer = advisor.post(f"/api/v1/portfolios/{theirs}/cash-flows/",
                          {"kind": "deposit", "amount": "10.00"}, format="json")  # fmt: skip
    assert answer.status_code == 404
    bad = advisor.post(f"/api/v1/portfolios/{mine}/cash-flows/",
                       {"kind": "withdrawal", "amount": "5000.00"}, format="json")  # fmt: skip
    assert bad.status_code == 400
    assert "amount" in bad.json()["error"]["fields"]
    ok = advisor.post(f"/api/v1/portfolios/{mine}/cash-flows/",
                      {"kind": "deposit", "amount": "10.00"}, format="json")  # fmt: skip
    assert ok.status_code == 201
    drift = advisor.get("/api/v1/book/drift/").json()
    assert [r["portfolio_id"] for r in drift["rows"]] == [mine]
    assert investor.get("/api/v1/book/drift/").status_code == 403
    policy = _api(book.world.user(Role.FIRM_ADMIN)).post(
        "/api/v1/policies/", {"name": "Wide", "abs_band": "1.5"}, format="json"
    )
    assert policy.status_code == 400
    assert "abs_band" in policy.json()["error"]["fields"]
    assert advisor.post("/api/v1/policies/", {"name": "X"}, format="json").status_code == 403
    put = advisor.put(f"/api/v1/portfolios/{mine}/strategy/", {"strategy_id": 9 * 10**9},
                      format="json")  # fmt: skip
    assert put.status_code == 400
    assert "strategy_id" in put.json()["error"]["fields"]


def test_portfolios_follow_the_clients_assignment(book: Book, tiny: dict[str, Any]) -> None:
    from accounts.profiling.default_questionnaire import DEFAULT_QUESTIONS
    from accounts.risk_services import (
        questionnaire_install_default,
        response_start,
        response_submit,
    )
    from accounts.strategy_services import strategy_override

    firm, advisor = book.world.firm, book.world.user(Role.ADVISOR)
    with firm_context(firm), transaction.atomic():
        other = _strategy("Other", [{"TSTB": "1.0000000000"}])
        Strategy.objects.filter(pk__in=[other.pk, tiny["strategy"].pk]).update(
            risk_level_min=1, risk_level_max=10
        )
        explicit = Portfolio.objects.create(
            client=book.client, number="EXPLICIT", account_type="taxable", strategy=other
        )
        unset = Portfolio.objects.create(
            client=book.client, number="UNSET", account_type="roth_ira"
        )
        questionnaire = questionnaire_install_default()
        response = response_start(client=book.client, questionnaire=questionnaire, actor=None)
        answers = {q.code: q.options[1].code for q in DEFAULT_QUESTIONS}
        profile = response_submit(response=response, actor=None, answers=answers)
        tiny["strategy"].refresh_from_db()
        strategy_override(profile=profile, actor=advisor, rationale="Fits.",
                          strategy=tiny["strategy"])  # fmt: skip
        strategies = dict(
            Portfolio.objects.filter(client=book.client).values_list("number", "strategy_id")
        )
        event = AuditEvent.objects.get(action="portfolio.strategy_followed")
    assert strategies["UNSET"] == tiny["strategy"].pk  # followed
    assert strategies["EXPLICIT"] == other.pk  # set by hand: kept
    assert strategies[book.portfolio.number] == tiny["strategy"].pk
    assert unset.pk in event.payload["portfolios"]
    assert explicit.pk not in event.payload["portfolios"]

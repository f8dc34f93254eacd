"""The firm's rules in real runs: client facts bite, overrides, replay, and a property
test that no executed order violates a hard rule."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from io import StringIO
from typing import Any

import numpy as np
import pytest
from django.core.management import call_command
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import Client, KycStatus, ProfileStatus, RiskProfile
from accounts.profiling.default_questionnaire import DEFAULT_QUESTIONS
from accounts.risk_services import questionnaire_install_default, response_start, response_submit
from accounts.tenancy.context import firm_context
from compliance import rules as compliance_rules
from compliance.models import AuditEvent, ComplianceOverride
from compliance.replay import order_replay
from compliance.rule_wiring import rules_of_rule_set
from compliance.selectors import order_explain, review_queue
from compliance.services.overrides import (
    OverrideError,
    held_portfolio_reject,
    held_portfolio_release,
)
from compliance.services.rule_management import RulePermissionError, compliance_rule_create
from portfolios import services_execution, services_rebalance
from portfolios.models import (
    Holding,
    Order,
    OrderStatus,
    Portfolio,
    RebalanceRun,
    RunPortfolio,
    RunPortfolioStatus,
    Strategy,
)
from tests.portfolios.rebalance_factories import (
    AS_OF,
    asset_make,
    household_make,
    portfolio_make,
    strategy_make,
)

pytestmark = pytest.mark.django_db

_capture: Any = None


@pytest.fixture(autouse=True)
def _committed(django_capture_on_commit_callbacks: Any) -> Iterator[None]:
    global _capture
    _capture = django_capture_on_commit_callbacks
    yield
    _capture = None


def start(world, **kwargs: Any) -> RebalanceRun:
    kwargs.setdefault("trigger", "manual")
    kwargs.setdefault("actor", world.user("advisor"))
    kwargs.setdefault("as_of", AS_OF)
    with firm_context(world.firm), _capture(execute=True):
        run = services_rebalance.rebalance_run_start(**kwargs)
    with firm_context(world.firm), transaction.atomic():
        run.refresh_from_db()
    return run


def approve(world, run: RebalanceRun) -> None:
    with firm_context(world.firm), _capture(execute=True):
        services_execution.rebalance_run_approve(run=run, actor=world.user("advisor"))


def rule(world, kind: str, severity: str, params: dict[str, Any], **kw: Any) -> None:
    compliance_rule_create(
        firm=world.firm,
        actor=world.user("compliance"),
        name=f"{kind}-{severity}-{len(str(params))}-{len(kw)}",
        kind=kind,
        severity=severity,
        params=params,
        **kw,
    )


@pytest.fixture
def book(firm_a):
    asset_make("AAA", "100")
    asset_make("BBB", "50")
    strategy = strategy_make(firm_a.firm, "Sixty forty", {"AAA": "0.6", "BBB": "0.4"})
    with firm_context(firm_a.firm), transaction.atomic():
        Strategy.objects.filter(pk=strategy.pk).update(risk_level_min=4, risk_level_max=6)
    return firm_a, strategy


def drifted(world, strategy, **kw: Any) -> Portfolio:
    return portfolio_make(world.firm, strategy=strategy, holdings={"AAA": "10", "BBB": "40"}, **kw)


def profile_for(client: Client, *, risky: bool, flagged: bool = False) -> RiskProfile:
    questionnaire = questionnaire_install_default()
    pick = -1 if risky else 0
    answers = {q.code: q.options[pick].code for q in DEFAULT_QUESTIONS}
    if flagged:
        answers["tol_fall_20"] = "sell_all"
    response = response_start(client=client, questionnaire=questionnaire, actor=None)
    return response_submit(response=response, actor=None, answers=answers, answered_on=AS_OF)


def statuses(world, run) -> dict[int, str]:
    with firm_context(world.firm), transaction.atomic():
        return dict(RunPortfolio.objects.filter(run=run).values_list("portfolio_id", "status"))


def failures_of(world, run, portfolio) -> set[str]:
    with firm_context(world.firm), transaction.atomic():
        return {
            f["kind"]
            for fs in Order.objects.filter(run=run, portfolio=portfolio).values_list(
                "failures", flat=True
            )
            for f in fs
        }


# --- the enricher fills real client facts ------------------------------------------


def test_kyc_profile_flags_and_risk_fit_bite_end_to_end(book):
    world, strategy = book
    rule(world, "kyc_complete", "hard", {})
    rule(world, "risk_profile_current", "soft", {})
    rule(world, "questionnaire_flags", "soft", {})
    rule(world, "risk_fit", "soft", {})
    with firm_context(world.firm), transaction.atomic():
        no_kyc = drifted(world, strategy)
        no_profile = drifted(world, strategy)
        fine = drifted(world, strategy)
        flagged = drifted(world, strategy)
        cautious = drifted(world, strategy)
        stale = drifted(world, strategy)
        Client.objects.exclude(pk=no_kyc.client_id).update(kyc_status=KycStatus.VERIFIED)
        p_fine = profile_for(fine.client, risky=True)
        profile_for(flagged.client, risky=True, flagged=True)
        p_cautious = profile_for(cautious.client, risky=False)
        p_stale = profile_for(stale.client, risky=True)
        RiskProfile.objects.filter(pk=p_stale.pk).update(status=ProfileStatus.STALE)
        profile_for(no_kyc.client, risky=True)
        # the strategy's band 4..6 must contain the fine client's level for it to pass
        level = p_fine.risk_level
        Strategy.objects.filter(pk=strategy.pk).update(
            risk_level_min=max(1, min(level, 6) - 2), risk_level_max=max(level, 3)
        )
        assert p_cautious.risk_level < max(1, min(level, 6) - 2)
    run = start(world)
    got = statuses(world, run)
    assert got[no_kyc.pk] == RunPortfolioStatus.BLOCKED
    assert "kyc_complete" in failures_of(world, run, no_kyc)
    assert got[fine.pk] == RunPortfolioStatus.PROPOSED, failures_of(world, run, fine)
    assert got[no_profile.pk] == RunPortfolioStatus.HELD
    assert {"risk_profile_current", "risk_fit"} <= failures_of(world, run, no_profile)
    assert got[flagged.pk] == RunPortfolioStatus.HELD
    assert "questionnaire_flags" in failures_of(world, run, flagged)
    assert got[cautious.pk] == RunPortfolioStatus.HELD
    assert failures_of(world, run, cautious) == {"risk_fit"}
    assert got[stale.pk] == RunPortfolioStatus.HELD
    assert failures_of(world, run, stale) == {"risk_profile_current"}
    with firm_context(world.firm), transaction.atomic():
        recorded = RunPortfolio.objects.get(run=run, portfolio=cautious).state["facts"]
        assert recorded["profile_risk_level"] == p_cautious.risk_level
        assert recorded["kyc_complete"] is True
    # the review queue lists the held ones with their failures
    queue = review_queue(firm=world.firm)
    assert {row["portfolio_id"] for row in queue} == {
        no_profile.pk,
        flagged.pk,
        cautious.pk,
        stale.pk,
    }
    assert all(row["orders"] and row["orders"][0]["failures"] for row in queue)


def test_household_concentration_counts_the_other_portfolios(book):
    world, strategy = book
    rule(world, "concentration_asset", "hard", {"max_share": 0.7, "level": "household"})
    with firm_context(world.firm), transaction.atomic():
        household = household_make(world.firm)
        p = drifted(world, strategy, household=household)
        # another portfolio of the household, outside the run, holds a lot of AAA
        other = portfolio_make(
            world.firm, strategy=strategy, holdings={"AAA": "100"}, household=household
        )
        alone = drifted(world, strategy)
    run = start(world, portfolio_ids=[p.pk, alone.pk])
    got = statuses(world, run)
    assert got[alone.pk] == RunPortfolioStatus.PROPOSED
    assert got[p.pk] == RunPortfolioStatus.BLOCKED
    assert failures_of(world, run, p) == {"concentration_asset"}
    assert other.pk not in got


# --- overrides ------------------------------------------------------------------------


def held_run(world, strategy, *, discretionary: bool = True):
    rule(world, "max_turnover", "soft", {"max_share": 0.01})
    with firm_context(world.firm), transaction.atomic():
        p = drifted(world, strategy, discretionary=discretionary)
    run = start(world)
    assert statuses(world, run)[p.pk] == RunPortfolioStatus.HELD
    with firm_context(world.firm), transaction.atomic():
        rp = RunPortfolio.objects.get(run=run, portfolio=p)
    return p, run, rp


def test_soft_failure_not_released_by_proposer_or_investor_then_released_and_executed(book):
    world, strategy = book
    p, run, rp = held_run(world, strategy)
    for who in ("advisor", "investor"):  # the advisor is the run's proposer
        with pytest.raises(RulePermissionError):
            held_portfolio_release(
                firm=world.firm, actor=world.user(who), run_portfolio=rp, reason="ok"
            )
    with firm_context(world.firm), transaction.atomic():
        RebalanceRun.objects.filter(pk=run.pk).update(created_by=world.user("compliance"))
    with pytest.raises(RulePermissionError):  # compliance, but now the proposer
        held_portfolio_release(
            firm=world.firm, actor=world.user("compliance"), run_portfolio=rp, reason="ok"
        )
    with firm_context(world.firm), transaction.atomic():
        RebalanceRun.objects.filter(pk=run.pk).update(created_by=world.user("advisor"))
    with pytest.raises(OverrideError) as err:
        held_portfolio_release(
            firm=world.firm, actor=world.user("compliance"), run_portfolio=rp, reason="  "
        )
    assert err.value.field == "reason"
    with firm_context(world.firm), transaction.atomic():
        assert Order.objects.filter(run=run, portfolio=p, status=OrderStatus.HELD).exists()
    before = {h.asset_id: h.quantity for h in _holdings(world, p)}
    # the run was approved meanwhile: the release executes at once
    approve(world, run)
    with firm_context(world.firm), _capture(execute=True):
        released = held_portfolio_release(
            firm=world.firm,
            actor=world.user("compliance"),
            run_portfolio=rp,
            reason="Client asked for a full rebalance; turnover discussed.",
        )
    assert released.status == RunPortfolioStatus.APPROVED  # executes after commit
    assert statuses(world, run)[p.pk] == RunPortfolioStatus.EXECUTED
    after = {h.asset_id: h.quantity for h in _holdings(world, p)}
    assert after != before
    with firm_context(world.firm), transaction.atomic():
        assert set(Order.objects.filter(run=run, portfolio=p).values_list("status", flat=True)) == {
            OrderStatus.FILLED
        }
        override = ComplianceOverride.objects.get(run_portfolio=rp)
        assert override.actor_id == world.user("compliance").pk
        assert override.failures and override.failures[0]["failures"][0]["kind"] == "max_turnover"
        assert AuditEvent.objects.filter(action="compliance.override_released").count() == 1


def test_release_before_run_approval_waits_for_it_and_reject(book):
    world, strategy = book
    p, run, rp = held_run(world, strategy)
    released = held_portfolio_release(
        firm=world.firm, actor=world.user("firm_admin"), run_portfolio=rp, reason="Fine."
    )
    assert released.status == RunPortfolioStatus.PROPOSED
    approve(world, run)
    assert statuses(world, run)[p.pk] == RunPortfolioStatus.EXECUTED
    # a second held portfolio (non-discretionary) rejected
    with firm_context(world.firm), transaction.atomic():
        q = drifted(world, strategy, discretionary=False)
    run2 = start(world, portfolio_ids=[q.pk])
    with firm_context(world.firm), transaction.atomic():
        rp2 = RunPortfolio.objects.get(run=run2, portfolio=q)
    rejected = held_portfolio_reject(
        firm=world.firm, actor=world.user("compliance"), run_portfolio=rp2, reason="Too much."
    )
    assert rejected.status == RunPortfolioStatus.REJECTED


def test_hard_failure_cannot_be_released_by_anyone(book):
    world, strategy = book
    rule(world, "max_turnover", "hard", {"max_share": 0.01})
    with firm_context(world.firm), transaction.atomic():
        p = drifted(world, strategy)
    run = start(world)
    with firm_context(world.firm), transaction.atomic():
        rp = RunPortfolio.objects.get(run=run, portfolio=p)
    assert rp.status == RunPortfolioStatus.BLOCKED
    for who in ("compliance", "firm_admin"):
        with pytest.raises(OverrideError) as err:
            held_portfolio_release(
                firm=world.firm, actor=world.user(who), run_portfolio=rp, reason="Please."
            )
        assert err.value.field == "status" and "rule" in err.value.message


def _holdings(world, p) -> list[Holding]:
    with firm_context(world.firm), transaction.atomic():
        return list(Holding.objects.filter(portfolio=p))


# --- replay and explanation --------------------------------------------------------


def test_replay_matches_a_real_run_and_reports_tampering(book):
    world, strategy = book
    asset_make("CCC", "20")
    rule(world, "concentration_asset", "soft", {"max_share": 0.55})
    rule(world, "min_trade_value", "soft", {"min_value": 300})
    other = strategy_make(world.firm, "Three way", {"AAA": "0.3", "BBB": "0.3", "CCC": "0.4"})
    rng = np.random.default_rng(11)
    with firm_context(world.firm), transaction.atomic():
        households = [household_make(world.firm, f"H{i}") for i in range(8)]
        for i in range(20):
            holdings = {
                s: str(int(q))
                for s, q in zip(["AAA", "BBB", "CCC"], rng.integers(0, 60, 3), strict=True)
                if q
            }
            lots = None
            if i % 2:
                lots = {
                    s: [
                        (
                            AS_OF - dt.timedelta(days=int(rng.integers(5, 900))),
                            q,
                            str(rng.integers(10, 150)),
                        )
                    ]
                    for s, q in holdings.items()
                }
            portfolio_make(
                world.firm,
                strategy=strategy if i % 3 else other,
                holdings=holdings,
                cash=str(int(rng.integers(0, 3000))),
                household=households[i % 8],
                account_type="taxable" if i % 2 else "traditional_ira",
                lots=lots,
            )
    run = start(world)
    with firm_context(world.firm), transaction.atomic():
        ids = list(Order.objects.filter(run=run).order_by("pk").values_list("pk", flat=True))
        assert len(ids) > 20
        for oid in ids:
            result = order_replay(order_id=oid)
            assert result.matches, (oid, result.differences)
        sample = Order.objects.filter(run=run, status__in=["proposed", "held"]).first()
        assert sample is not None
        explained = order_explain(order_id=sample.pk)
        assert explained["replay"]["matches"] is True
        assert len(explained["rules"]) == len(run.policy_snapshot["compliance"]["rules"])
        assert all(r["outcome"] for r in explained["rules"])
        assert explained["target"]["weights"]
        assert explained["audit_events"]
    out = StringIO()
    call_command("replay_order", str(sample.pk), stdout=out)
    assert "MATCH" in out.getvalue()
    # tamper with the recorded state: a holding changed
    with firm_context(world.firm), transaction.atomic():
        rp = RunPortfolio.objects.get(run=run, portfolio_id=sample.portfolio_id)
        state = dict(rp.state)
        holdings = dict(state["holdings"])
        first = sorted(holdings)[0]
        holdings[first] = str(Decimal(holdings[first]) + 25)
        state["holdings"] = holdings
        RunPortfolio.objects.filter(pk=rp.pk).update(state=state)
    out = StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("replay_order", str(sample.pk), "--json", stdout=out)
    assert exit_.value.code == 1
    assert '"matches": false' in out.getvalue()
    # tamper with a price in the run's snapshot (the state restored first)
    with firm_context(world.firm), transaction.atomic():
        RunPortfolio.objects.filter(pk=rp.pk).update(state=rp.state)
        assert order_replay(order_id=sample.pk).matches
        snapshot = dict(run.policy_snapshot)
        prices = dict(snapshot["prices"])
        key = str(sample.asset_id)
        prices[key] = [str(Decimal(prices[key][0]) * Decimal("1.3")), prices[key][1]]
        snapshot["prices"] = prices
        RebalanceRun.objects.filter(pk=run.pk).update(policy_snapshot=snapshot)
        tampered = order_replay(order_id=sample.pk)
        assert not tampered.matches and tampered.differences


# --- property: no executed order violates a hard rule ------------------------------

RULE_CHOICES = [
    ("concentration_asset", {"max_share": 0.5}),
    ("concentration_class", {"max_share": 0.9}),
    ("cash_floor", {"min_share": 0.02}),
    ("max_turnover", {"max_share": 0.4}),
    ("min_trade_value", {"min_value": 200}),
    ("kyc_complete", {}),
]


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    books=st.lists(
        st.tuples(st.integers(0, 40), st.integers(0, 80), st.integers(0, 4000), st.booleans()),
        min_size=2,
        max_size=6,
    ),
    chosen=st.lists(
        st.tuples(st.integers(0, len(RULE_CHOICES) - 1), st.booleans()), min_size=1, max_size=4
    ),
)
def test_no_executed_order_violates_a_hard_rule(book, books, chosen):
    world, strategy = book
    try:  # each example in a savepoint, rolled back
        with transaction.atomic():
            _property_case(world, strategy, books, chosen)
            raise _Undo
    except _Undo:
        pass


class _Undo(Exception):
    pass


def _property_case(world, strategy, books, chosen) -> None:
    seen = set()
    for index, hard in chosen:
        if index in seen:
            continue
        seen.add(index)
        kind, params = RULE_CHOICES[index]
        rule(world, kind, "hard" if hard else "soft", params)
    with firm_context(world.firm), transaction.atomic():
        made = []
        for a, b, cash, kyc in books:
            holdings = {k: str(v) for k, v in (("AAA", a), ("BBB", b)) if v}
            made.append(
                portfolio_make(world.firm, strategy=strategy, holdings=holdings, cash=str(cash))
            )
            if kyc:
                Client.objects.filter(pk=made[-1].client_id).update(kyc_status=KycStatus.VERIFIED)
    run = start(world, portfolio_ids=[p.pk for p in made])
    if run.status != "awaiting_approval":
        return
    approve(world, run)
    with firm_context(world.firm), transaction.atomic():
        run.refresh_from_db()
        rules = services_rebalance.rules_from_snapshot(run.policy_snapshot["compliance"])
        hard = [j for j, r in enumerate(rules) if r.severity == compliance_rules.Severity.HARD]
        executed = Order.objects.filter(run=run, status=OrderStatus.FILLED)
        for order in executed:
            again = order_replay(order_id=order.pk)
            assert again.matches, again.differences
            outcomes = again.replayed["rule_outcomes"]
            assert all(outcomes[j] != compliance_rules.Outcome.HARD_FAIL for j in hard)
        # and nothing blocked was filled
        assert not Order.objects.filter(
            run=run, status=OrderStatus.FILLED, compliance_outcome=2
        ).exists()
    assert rules_of_rule_set(None)  # built-ins exist for firms without rules

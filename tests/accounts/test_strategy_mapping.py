"""Profile to strategy: mapping, flags block it, overrides with rationale, approval."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import AssignmentStatus, ModelPortfolio, ProfileFlag, StrategyAssignment
from accounts.profiling.default_questionnaire import DEFAULT_QUESTIONS
from accounts.risk_services import (
    profile_flag_resolve,
    questionnaire_install_default,
    response_start,
    response_submit,
)
from accounts.strategy_services import (
    model_portfolio_create,
    model_portfolios_install_default,
    strategy_assign_from_profile,
    strategy_override,
    strategy_override_decide,
)
from accounts.tenancy import firm_context
from compliance.models import AuditEvent
from tests.accounts.book import Book, make_book

pytestmark = pytest.mark.django_db

MODERATE = {q.code: q.options[1].code for q in DEFAULT_QUESTIONS}
CONTRADICTORY = {
    **{q.code: q.options[-1].code for q in DEFAULT_QUESTIONS},
    "tol_fall_20": "sell_all",
}


@pytest.fixture
def book(firm_a) -> Book:
    return make_book(firm_a)


@pytest.fixture
def in_firm(book):
    with firm_context(book.world.firm), transaction.atomic():
        model_portfolios_install_default()
        yield book


def _profile(book: Book, answers):
    questionnaire = questionnaire_install_default()
    response = response_start(client=book.client, questionnaire=questionnaire, actor=None)
    return response_submit(response=response, actor=None, answers=answers)


def test_the_default_mapping_covers_every_level(in_firm):
    portfolios = ModelPortfolio.objects.all()
    assert portfolios.count() == 6
    for portfolio in portfolios:
        assert sum(Decimal(w) for w in portfolio.weights.values()) == 1
    assert model_portfolios_install_default() == list(
        ModelPortfolio.objects.order_by("min_risk_level")
    )


def test_a_clean_profile_is_mapped_with_its_inputs(in_firm):
    profile = _profile(in_firm, MODERATE)
    assignment = strategy_assign_from_profile(profile=profile, actor=None)
    assert assignment.status == AssignmentStatus.ACTIVE
    assert assignment.model_portfolio_id is not None  # no strategies: the placeholder
    portfolio = ModelPortfolio.objects.get(pk=assignment.model_portfolio_id)
    assert portfolio.suits(profile.risk_level)
    event = AuditEvent.objects.get(action="strategy.assigned")
    assert event.payload["risk_level"] == profile.risk_level
    assert event.payload["model_portfolio"] == portfolio.name


def test_a_flagged_profile_waits_for_the_advisor(in_firm):
    profile = _profile(in_firm, CONTRADICTORY)
    with pytest.raises(ValidationError, match="open consistency flags"):
        strategy_assign_from_profile(profile=profile, actor=None)
    for flag in ProfileFlag.objects.filter(profile=profile):
        profile_flag_resolve(flag=flag, actor=None, note="Discussed with the client.")
    assert strategy_assign_from_profile(profile=profile, actor=None).status == "active"


def test_an_override_needs_a_rationale(in_firm):
    profile = _profile(in_firm, MODERATE)
    portfolio = ModelPortfolio.objects.filter(min_risk_level__lte=profile.risk_level).last()
    assert portfolio is not None
    with pytest.raises(ValidationError, match="needs a rationale"):
        strategy_override(profile=profile, model_portfolio=portfolio, actor=None, rationale=" ")
    with pytest.raises(IntegrityError), transaction.atomic():  # the database insists too
        StrategyAssignment.objects.create(
            client=in_firm.client,
            profile=profile,
            model_portfolio=portfolio,
            source="override",
            status="pending_approval",
        )


def test_an_override_within_the_band_is_active_at_once(in_firm):
    profile = _profile(in_firm, MODERATE)
    first = strategy_assign_from_profile(profile=profile, actor=None)
    assert first.model_portfolio_id is not None
    within = ModelPortfolio.objects.get(pk=first.model_portfolio_id)
    override = strategy_override(
        profile=profile, model_portfolio=within, actor=None, rationale="Same band, client asked"
    )
    assert override.status == AssignmentStatus.ACTIVE
    assert not override.outside_band
    assert StrategyAssignment.objects.get(pk=first.pk).status == AssignmentStatus.SUPERSEDED


def test_an_override_outside_the_band_needs_compliance(in_firm):
    profile = _profile(in_firm, MODERATE)
    mapped = strategy_assign_from_profile(profile=profile, actor=None)
    aggressive = ModelPortfolio.objects.get(name="All equity")
    assert not aggressive.suits(profile.risk_level)
    override = strategy_override(
        profile=profile, model_portfolio=aggressive, actor=None, rationale="Inheritance, long view"
    )
    assert override.status == AssignmentStatus.PENDING_APPROVAL
    assert override.outside_band
    assert StrategyAssignment.objects.get(pk=mapped.pk).status == AssignmentStatus.ACTIVE
    with pytest.raises(ValidationError, match="needs a note"):
        strategy_override_decide(assignment=override, actor=None, approve=False)
    approved = strategy_override_decide(assignment=override, actor=None, approve=True, note="OK")
    assert approved.status == AssignmentStatus.ACTIVE
    assert StrategyAssignment.objects.get(pk=mapped.pk).status == AssignmentStatus.SUPERSEDED
    with pytest.raises(ValidationError, match="not waiting"):
        strategy_override_decide(assignment=approved, actor=None, approve=True)
    actions = list(AuditEvent.objects.values_list("action", flat=True))
    assert "strategy.override_requested" in actions
    assert "strategy.override_approved" in actions


def test_a_rejected_override_leaves_the_mapping(in_firm):
    profile = _profile(in_firm, MODERATE)
    mapped = strategy_assign_from_profile(profile=profile, actor=None)
    override = strategy_override(
        profile=profile,
        model_portfolio=ModelPortfolio.objects.get(name="All equity"),
        actor=None,
        rationale="Client insists",
    )
    rejected = strategy_override_decide(
        assignment=override, actor=None, approve=False, note="Capacity too low."
    )
    assert rejected.status == AssignmentStatus.REJECTED
    assert StrategyAssignment.objects.get(pk=mapped.pk).status == AssignmentStatus.ACTIVE


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"cash": "0.5"}, "add up to 1"),
        ({"gold": "1"}, "unknown asset class"),
        ({"cash": "1.5", "us_bonds": "-0.5"}, "between 0 and 1"),
    ],
)
def test_model_portfolio_weights_are_checked(in_firm, weights, message):
    with pytest.raises(ValidationError, match=message):
        model_portfolio_create(
            actor=None,
            name="Bad",
            weights=weights,
            min_risk_level=1,
            max_risk_level=2,
            bad_year_return=Decimal("-0.1"),
        )

"""The profile mapping points at real strategies (or, still, placeholder model portfolios)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import (
    AssignmentStatus,
    ModelPortfolio,
    RiskLevelMapping,
    StrategyAssignment,
)
from accounts.profiling.default_questionnaire import DEFAULT_QUESTIONS
from accounts.risk_services import questionnaire_install_default, response_start, response_submit
from accounts.strategy_services import (
    model_portfolios_install_default,
    risk_mapping_install_strategies,
    risk_mapping_set,
    strategy_assign_from_profile,
    strategy_override,
    strategy_override_decide,
)
from accounts.tenancy import firm_context
from compliance.models import AuditEvent
from portfolios.models_strategy import Strategy
from portfolios.selectors_strategy import strategy_version_current
from tests.accounts.book import Book, make_book
from tests.accounts.strategy_targets import active_strategy, etf_prices_load

pytestmark = pytest.mark.django_db

MODERATE = {q.code: q.options[1].code for q in DEFAULT_QUESTIONS}


@pytest.fixture
def book(firm_a) -> Book:
    return make_book(firm_a)


@pytest.fixture
def in_firm(book):
    etf_prices_load()
    with firm_context(book.world.firm), transaction.atomic():
        model_portfolios_install_default()
        yield book


def _profile(book: Book):
    questionnaire = questionnaire_install_default()
    response = response_start(client=book.client, questionnaire=questionnaire, actor=None)
    return response_submit(response=response, actor=None, answers=MODERATE)


def test_existing_placeholder_mapping_is_kept_until_strategies_exist(in_firm):
    assert risk_mapping_install_strategies() == list(RiskLevelMapping.objects.all())
    assert all(m.model_portfolio_id and not m.strategy_id for m in RiskLevelMapping.objects.all())


def test_levels_map_to_the_best_fitting_strategy_and_the_audit_names_its_version(in_firm):
    wide = active_strategy("Wide", 1, 10)
    profile = _profile(in_firm)
    narrow = active_strategy("Narrow", profile.risk_level, profile.risk_level, 0.07)
    rows = risk_mapping_install_strategies()
    assert len(rows) == 10
    by_level = {m.risk_level: m for m in rows}
    assert by_level[profile.risk_level].strategy_id == narrow.pk
    assert by_level[profile.risk_level].model_portfolio_id is None
    assert all(m.strategy_id in {wide.pk, narrow.pk} for m in rows)

    assignment = strategy_assign_from_profile(profile=profile, actor=None)
    assert assignment.strategy_id == narrow.pk
    assert assignment.model_portfolio_id is None
    version = strategy_version_current(strategy=narrow)
    assert version is not None
    event = AuditEvent.objects.get(action="strategy.assigned")
    assert event.payload["target_type"] == "strategy"
    assert event.payload["target_id"] == narrow.pk
    assert event.payload["version"] == version.number
    assert event.payload["fingerprint"] == version.fingerprint
    changed = AuditEvent.objects.filter(action="risk_mapping.changed").last()
    assert changed is not None
    assert changed.payload["changes"][str(profile.risk_level)][1] == {
        "type": "strategy",
        "id": narrow.pk,
    }
    # Idempotent: nothing changes, nothing is audited.
    before = AuditEvent.objects.count()
    risk_mapping_install_strategies()
    assert AuditEvent.objects.count() == before


def test_override_to_a_strategy_outside_its_band_needs_compliance(in_firm):
    profile = _profile(in_firm)
    level = profile.risk_level
    far = active_strategy("Far", 10, 10) if level < 10 else active_strategy("Far", 1, 1)
    mapped = strategy_assign_from_profile(profile=profile, actor=None)
    override = strategy_override(
        profile=profile, strategy=far, actor=None, rationale="Client insists on it"
    )
    assert override.status == AssignmentStatus.PENDING_APPROVAL
    assert override.outside_band
    assert override.strategy_id == far.pk
    event = AuditEvent.objects.get(action="strategy.override_requested")
    assert event.payload["target_type"] == "strategy"
    assert event.payload["band"] == [
        far.risk_level_min,
        far.risk_level_max,
    ]
    assert StrategyAssignment.objects.get(pk=mapped.pk).status == AssignmentStatus.ACTIVE
    approved = strategy_override_decide(assignment=override, actor=None, approve=True)
    assert approved.status == AssignmentStatus.ACTIVE
    assert StrategyAssignment.objects.get(pk=mapped.pk).status == AssignmentStatus.SUPERSEDED

    within = active_strategy("Within", level, level, 0.07)
    inside = strategy_override(profile=profile, strategy=within, actor=None, rationale="Fits")
    assert inside.status == AssignmentStatus.ACTIVE
    assert not inside.outside_band


def test_exactly_one_target(in_firm):
    profile = _profile(in_firm)
    strategy = active_strategy("One", 1, 10)
    portfolio = ModelPortfolio.objects.first()
    with pytest.raises(ValidationError):
        strategy_override(
            profile=profile,
            strategy=strategy,
            model_portfolio=portfolio,
            actor=None,
            rationale="both",
        )
    with pytest.raises(ValidationError):
        strategy_override(profile=profile, actor=None, rationale="neither")
    # The database insists too: both, or neither.
    for fields in ({"strategy": strategy, "model_portfolio": portfolio}, {}):
        with pytest.raises(IntegrityError), transaction.atomic():
            StrategyAssignment.objects.create(
                client=in_firm.client, profile=profile, source="mapping", status="superseded",
                **fields,
            )  # fmt: skip
        with pytest.raises(IntegrityError), transaction.atomic():
            RiskLevelMapping.objects.filter(risk_level=1).update(
                strategy=fields.get("strategy"), model_portfolio=fields.get("model_portfolio")
            )


def test_a_foreign_firms_strategy_is_refused_like_a_missing_one(in_firm, firm_b):
    with firm_context(firm_b.firm):
        foreign = active_strategy("Foreign", 1, 10)
    profile = _profile(in_firm)
    with pytest.raises(ValidationError, match="no such strategy"):
        strategy_override(profile=profile, strategy=foreign, actor=None, rationale="Try")
    with pytest.raises(ValidationError, match="no such strategy"):
        risk_mapping_set(actor=None, mapping={3: foreign})
    assert not RiskLevelMapping.objects.filter(strategy__isnull=False).exists()
    assert not Strategy.objects.filter(pk=foreign.pk).exists()

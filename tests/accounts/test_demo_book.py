"""The demo's client book: built through the services, across the levels, idempotent."""

from __future__ import annotations

import pytest
from django.db import transaction

from accounts.demo import DEMO_FIRMS, demo_seed
from accounts.models import (
    Client,
    Firm,
    Household,
    ProfileFlag,
    Questionnaire,
    QuestionnaireResponse,
    RiskProfile,
    StrategyAssignment,
    User,
)
from accounts.risk_selectors import questionnaire_statistics
from accounts.tenancy import firm_context
from compliance.models import AuditEvent
from compliance.selectors import audit_chain_verify
from portfolios.models import Portfolio

pytestmark = pytest.mark.django_db


def _counts(firm: Firm) -> dict[str, int]:
    with firm_context(firm), transaction.atomic():
        return {
            "households": Household.objects.count(),
            "clients": Client.objects.count(),
            "portfolios": Portfolio.objects.count(),
            "profiles": RiskProfile.objects.count(),
            "events": AuditEvent.objects.count(),
        }


def test_each_demo_firm_gets_a_book_with_profiles_across_the_levels():
    result = demo_seed()
    for spec in DEMO_FIRMS:
        firm = Firm.objects.get(slug=spec.slug)
        assert result.firms[spec.slug].counts["clients"] == 14
        with firm_context(firm), transaction.atomic():
            profiles = RiskProfile.objects.all()
            levels = set(profiles.values_list("risk_level", flat=True))
            assert len(levels) >= 4, levels
            assert profiles.filter(status="stale").count() == 2
            flagged = ProfileFlag.objects.filter(resolved_at__isnull=True)
            assert flagged.values("profile_id").distinct().count() == 2
            assert QuestionnaireResponse.objects.filter(status="in_progress").count() == 1
            assert StrategyAssignment.objects.filter(status="active").count() == 8
            investor = User.objects.get(username=f"investor.{spec.slug}")
            own = Client.objects.get(user=investor)
            assert RiskProfile.objects.filter(client=own, status="current").exists()
            # Through the services: every profile has its audit event.
            assert AuditEvent.objects.filter(action="risk_profile.created").count() == 12
            assert AuditEvent.objects.filter(action="risk_profile.expired").count() == 2
            statistics = questionnaire_statistics(questionnaire=Questionnaire.objects.get())
            assert statistics.enough_responses
            assert statistics.tolerance is not None
            assert statistics.tolerance.alpha is not None
        assert audit_chain_verify(firm=firm).ok


def test_the_book_is_seeded_once():
    demo_seed()
    before = {spec.slug: _counts(Firm.objects.get(slug=spec.slug)) for spec in DEMO_FIRMS}
    again = demo_seed()
    assert not again.created_anything
    after = {spec.slug: _counts(Firm.objects.get(slug=spec.slug)) for spec in DEMO_FIRMS}
    assert after == before

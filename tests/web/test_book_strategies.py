"""The mapping, client and result pages with real strategies beside model portfolios."""

from __future__ import annotations

import re

import pytest
from django.db import transaction
from django.test import Client as WebClient

from accounts.models import RiskLevelMapping, RiskProfile, Role, StrategyAssignment, User
from accounts.profiling.default_questionnaire import DEFAULT_QUESTIONS
from accounts.risk_services import questionnaire_install_default, response_start, response_submit
from accounts.strategy_services import model_portfolios_install_default
from accounts.tenancy import firm_context
from portfolios.models_strategy import Strategy
from tests.accounts.book import Book, make_book
from tests.accounts.strategy_targets import active_strategy, etf_prices_load

from .helpers import html

pytestmark = pytest.mark.django_db

MODERATE = {q.code: q.options[1].code for q in DEFAULT_QUESTIONS}


@pytest.fixture
def book(firm_a) -> Book:
    etf_prices_load()
    book = make_book(firm_a)
    with firm_context(firm_a.firm), transaction.atomic():
        questionnaire_install_default()
        model_portfolios_install_default()
    return book


def web(user: User) -> WebClient:
    client = WebClient()
    client.force_login(user)
    return client


def _profile(book: Book) -> RiskProfile:
    with firm_context(book.world.firm), transaction.atomic():
        questionnaire = questionnaire_install_default()
        response = response_start(client=book.client, questionnaire=questionnaire, actor=None)
        return response_submit(response=response, actor=None, answers=MODERATE)


def _strategy(book: Book, name: str, low: int, high: int) -> Strategy:
    with firm_context(book.world.firm), transaction.atomic():
        return active_strategy(name, low, high)


def test_firm_admin_maps_a_level_to_a_strategy(book: Book):
    strategy = _strategy(book, "ETF Middle", 3, 7)
    admin = web(book.world.user(Role.FIRM_ADMIN))
    before = html(admin.get("/firm/strategy-mapping/"))
    assert "Strategy: ETF Middle (levels 3\u20137)" in before
    assert "Model portfolio: Balanced (levels 4\u20135)" in before
    value = f"strategy:{strategy.pk}"
    assert admin.post("/firm/strategy-mapping/", {"level_5": value}).status_code == 302
    page = html(admin.get("/firm/strategy-mapping/"))
    assert re.search(rf'name="level_5".*?<option value="{value}" selected', page, re.S)
    with firm_context(book.world.firm), transaction.atomic():
        row = RiskLevelMapping.objects.get(risk_level=5)
        assert row.strategy_id == strategy.pk
        assert row.model_portfolio_id is None


def test_advisor_overrides_with_a_strategy_and_the_investor_sees_its_name(book: Book):
    profile = _profile(book)
    strategy = _strategy(book, "ETF Fitting", profile.risk_level, profile.risk_level)
    with firm_context(book.world.firm), transaction.atomic():
        strategy.explanation = "A mix of index funds for steady growth."
        strategy.save(update_fields=["explanation"])
    advisor = web(book.world.user(Role.ADVISOR))
    url = f"/clients/{book.client.pk}/"
    detail = html(advisor.get(url))
    assert f'<option value="strategy:{strategy.pk}">Strategy: ETF Fitting' in detail
    done = advisor.post(
        f"{url}strategy/",
        {"action": "override", "target": f"strategy:{strategy.pk}", "rationale": "Fits well"},
        follow=True,
    )
    assert "Strategy overridden" in html(done)
    with firm_context(book.world.firm), transaction.atomic():
        active = StrategyAssignment.objects.get(status="active")
        assert active.strategy_id == strategy.pk
    assert "ETF Fitting" in html(advisor.get(url))

    assert book.client.user is not None
    result = html(web(book.client.user).get("/risk-profile/"))
    assert "Your strategy: ETF Fitting" in result
    assert "A mix of index funds for steady growth." in result
    assert "/strategies/" not in result  # nothing internal the investor cannot open

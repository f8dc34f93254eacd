"""The advisor's client page: restrictions edited and previewed, and the recommendation
with its backtested alternatives, in a real browser (and through the test client)."""

from __future__ import annotations

import re

import pytest
from django.db import transaction
from django.test import Client as WebClient
from playwright.sync_api import Page, expect

from accounts.models import Role
from accounts.profiling.default_questionnaire import DEFAULT_QUESTIONS
from accounts.risk_services import questionnaire_install_default, response_start, response_submit
from accounts.tenancy import firm_context
from portfolios.models_market import PriceFrequency
from portfolios.models_strategy import ClientRestriction, Strategy, StrategyStatus
from portfolios.services_strategy import strategy_create, strategy_update, strategy_version_compute
from tests.accounts.book import Book, make_book
from tests.accounts.strategy_targets import ETFS, etf_prices_load
from tests.conftest import PASSWORD, make_firm_world

MODERATE = {q.code: q.options[1].code for q in DEFAULT_QUESTIONS}


def _world() -> tuple[Book, Strategy]:
    with transaction.atomic():
        world = make_firm_world("alpha")
    etf_prices_load()
    book = make_book(world)
    with firm_context(world.firm), transaction.atomic():
        questionnaire = questionnaire_install_default()
        response = response_start(client=book.client, questionnaire=questionnaire, actor=None)
        response_submit(response=response, actor=None, answers=MODERATE)
        strategy = strategy_create(
            actor=None,
            name="Five ETFs equally",
            method="equal_weight",
            universe=ETFS,
            parameters={"lookback": 24},
            price_frequency=PriceFrequency.MONTHLY,
        )
        strategy_version_compute(strategy=strategy)
        strategy = strategy_update(strategy=strategy, actor=None, status=StrategyStatus.ACTIVE)
    return book, strategy


@pytest.mark.browser
@pytest.mark.django_db(transaction=True, databases=["default", "owner"])
def test_advisor_excludes_an_asset_and_sees_it_at_zero(page: Page, page_problems, screenshot):
    book, _ = _world()
    page.goto("/login/")
    page.get_by_label("Username").fill(book.world.user(Role.ADVISOR).username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation", name="Main navigation")).to_be_visible()
    page.goto(f"/clients/{book.client.pk}/")

    preview = page.get_by_test_id("restrictions-preview")
    expect(preview).to_contain_text("Five ETFs equally v1")
    expect(preview).to_contain_text("recommended for risk level")
    expect(page.get_by_test_id("customised-VTI")).to_have_text("20.00%")

    # The recommendation, and beside it the alternatives' backtested trade-off.
    alternatives = page.get_by_test_id("alternatives")
    expect(alternatives).to_contain_text("Max drawdown", timeout=60_000)
    expect(alternatives.locator("tr.is-recommended")).to_have_count(1)
    expect(alternatives.locator("tbody tr")).not_to_have_count(1)
    expect(alternatives.locator("tbody tr").first).to_contain_text(re.compile(r"-?\d+\.\d%"))
    expect(page.get_by_test_id("recommended")).to_contain_text("Volatility")

    form = page.get_by_test_id("restrictions-form")
    form.get_by_label("Excluded assets").fill("vti")
    form.get_by_label("Note").fill("No US stock fund, at the client's request.")
    form.get_by_role("button", name="Save restrictions").click()
    expect(page.locator(".messages")).to_contain_text("Restrictions saved")
    expect(page.get_by_test_id("customised-VTI")).to_have_text("0.00%")
    expect(page.get_by_test_id("customised-BND")).to_have_text("25.00%")
    expect(page.get_by_test_id("restrictions-form").get_by_label("Excluded assets")).to_have_value(
        "VTI"
    )
    screenshot(page, "client-restrictions")
    with firm_context(book.world.firm), transaction.atomic():
        row = ClientRestriction.objects.get(client=book.client)
        assert row.excluded_assets == ["VTI"]
    assert page_problems == []


@pytest.mark.django_db
def test_form_errors_name_the_field_and_roles_are_enforced() -> None:
    book, _ = _world()
    advisor = WebClient()
    advisor.force_login(book.world.user(Role.ADVISOR))
    url = f"/clients/{book.client.pk}/restrictions/save/"
    response = advisor.post(url, {"asset_bounds": "VTI 0.6 0.2"}, follow=True)
    assert "asset_bounds: VTI: minimum 0.6 is above maximum 0.2" in response.content.decode()
    response = advisor.post(url, {"class_tilts": "gold 0.1"}, follow=True)
    assert "unknown asset class" in response.content.decode()
    with firm_context(book.world.firm), transaction.atomic():
        assert not ClientRestriction.objects.exists()

    compliance = WebClient()
    compliance.force_login(book.world.user(Role.COMPLIANCE))
    assert compliance.post(url, {"excluded_assets": "VTI"}).status_code == 404
    panel = compliance.get(f"/clients/{book.client.pk}/restrictions/")
    assert panel.status_code == 200
    assert "restrictions-form" not in panel.content.decode(), "compliance reads only"
    other = WebClient()
    other.force_login(book.other_advisor)
    assert other.get(f"/clients/{book.client.pk}/restrictions/").status_code == 404
    assert other.get(f"/clients/{book.client.pk}/recommendation/").status_code == 404

"""The investor questionnaire and the advisor's client page in a real browser.

live_server tests are transactional: each test builds its world and commits it.
"""

from __future__ import annotations

import re

import pytest
from django.db import transaction
from playwright.sync_api import Page, expect

from accounts.models import Role, StrategyAssignment
from accounts.profiling.default_questionnaire import DEFAULT_QUESTIONS
from accounts.risk_services import questionnaire_install_default, response_start, response_submit
from accounts.strategy_services import model_portfolios_install_default
from accounts.tenancy import firm_context
from tests.accounts.book import Book, make_book
from tests.conftest import PASSWORD, make_firm_world

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, databases=["default", "owner"]),
]

MODERATE = {q.code: q.options[1].code for q in DEFAULT_QUESTIONS}
CONTRADICTORY = {
    **{q.code: q.options[-1].code for q in DEFAULT_QUESTIONS},
    "tol_fall_20": "sell_all",
}


def _book() -> Book:
    with transaction.atomic():
        world = make_firm_world("alpha")
    book = make_book(world)
    with firm_context(world.firm), transaction.atomic():
        questionnaire_install_default()
        model_portfolios_install_default()
    return book


def _sign_in(page: Page, username: str) -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation", name="Main navigation")).to_be_visible()


def _sign_out(page: Page) -> None:
    page.get_by_test_id("user-menu").locator("summary").click()
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login/$"))


def _answer_page(page: Page) -> None:
    for code in page.locator("[data-question]").evaluate_all(
        "nodes => nodes.map(n => n.dataset.question)"
    ):
        page.locator(f'[data-question="{code}"] input[value="{MODERATE[code]}"]').check()


def test_investor_completes_leaves_resumes_and_reads_the_result(
    page: Page, page_problems, screenshot
):
    book = _book()
    _sign_in(page, book.world.user(Role.INVESTOR).username)
    page.get_by_role("navigation", name="Main navigation").get_by_role(
        "link", name="Risk profile"
    ).click()
    page.get_by_role("link", name="Start the questionnaire").click()
    expect(page.get_by_test_id("progress")).to_contain_text("Step 1 of 5")
    expect(page.get_by_test_id("progress")).to_contain_text("0 of 19 questions answered")
    _answer_page(page)
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_test_id("progress")).to_contain_text("Step 2 of 5")
    expect(page.get_by_test_id("progress")).to_contain_text("5 of 19 questions answered")
    # Half-way through step 2: answer two questions, save, leave.
    codes = page.locator("[data-question]").evaluate_all(
        "nodes => nodes.map(n => n.dataset.question)"
    )
    for code in codes[:2]:
        page.locator(f'[data-question="{code}"] input[value="{MODERATE[code]}"]').check()
    screenshot(page, "questionnaire-step-2")
    page.get_by_role("button", name="Save and finish later").click()
    expect(page.get_by_test_id("resume")).to_contain_text("7 questions answered")
    _sign_out(page)

    _sign_in(page, book.world.user(Role.INVESTOR).username)
    page.goto("/risk-profile/")
    page.get_by_role("link", name="Continue the questionnaire").click()
    expect(page.get_by_test_id("progress")).to_contain_text("Step 2 of 5")
    expect(page.get_by_test_id("progress")).to_contain_text("7 of 19 questions answered")
    for code in codes[:2]:
        expect(
            page.locator(f'[data-question="{code}"] input[value="{MODERATE[code]}"]')
        ).to_be_checked()
    for step in range(2, 6):
        _answer_page(page)
        if step < 5:
            page.get_by_role("button", name="Next").click()
            expect(page.get_by_test_id("progress")).to_contain_text(f"Step {step + 1} of 5")
    page.get_by_role("button", name="See my result").click()

    result = page.get_by_test_id("result")
    expect(result).to_be_visible()
    expect(result).to_contain_text("of 10")
    expect(page.get_by_test_id("binding")).to_contain_text("What set your level")
    expect(page.get_by_test_id("strategy")).to_contain_text("Your strategy")
    expect(page.get_by_test_id("bad-year")).to_contain_text("In a bad year")
    screenshot(page, "risk-profile-result")
    assert page_problems == []


def test_advisor_resolves_a_flag_and_overrides_the_strategy(page: Page, page_problems, screenshot):
    book = _book()
    with firm_context(book.world.firm), transaction.atomic():
        questionnaire = questionnaire_install_default()
        response = response_start(client=book.client, questionnaire=questionnaire, actor=None)
        profile = response_submit(response=response, actor=None, answers=CONTRADICTORY)
    _sign_in(page, book.world.user(Role.ADVISOR).username)
    page.get_by_role("navigation", name="Main navigation").get_by_role(
        "link", name="Clients"
    ).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Client book")
    expect(page.get_by_test_id("book")).not_to_contain_text("Otto")
    # Live search through htmx.
    page.locator("#client-search").fill("nobody-matches")
    expect(page.get_by_test_id("book")).to_contain_text("No clients match")
    page.locator("#client-search").fill("ines")
    page.get_by_test_id("book").get_by_role("link", name=re.compile("Ines")).click()

    flag = page.locator('[data-flag="sell_after_fall_vs_max_growth"]')
    expect(flag).to_contain_text("Would sell everything after a 20% fall")
    flag.get_by_placeholder("How was this resolved?").fill("Client explained: long horizon.")
    flag.get_by_role("button", name="Resolve").click()
    expect(page.locator(".messages")).to_contain_text("Flag resolved")
    for other in page.locator(".flag.is-open").all():
        other.get_by_placeholder("How was this resolved?").fill("Discussed.")
        other.get_by_role("button", name="Resolve").click()
    expect(page.locator(".flag.is-open")).to_have_count(0)

    form = page.get_by_test_id("override-form")
    form.get_by_label("Override with").select_option(
        label="Model portfolio: Balanced (levels 4\u20135)"
    )
    form.get_by_label("Rationale").fill("Prefers a steadier ride while buying a home.")
    form.get_by_role("button", name="Override").click()
    expect(page.locator(".messages")).to_contain_text(
        re.compile("Strategy overridden|waiting for compliance approval")
    )
    expect(page.get_by_test_id("strategy")).to_contain_text(
        "Prefers a steadier ride while buying a home."
    )
    screenshot(page, "client-page-override")
    with firm_context(book.world.firm), transaction.atomic():
        assignment = StrategyAssignment.objects.get(profile=profile)
        assert assignment.source == "override"
        assert assignment.rationale == "Prefers a steadier ride while buying a home."
    assert page_problems == []


def test_compliance_approves_an_override_outside_the_band(page: Page, page_problems):
    from accounts.models import ModelPortfolio
    from accounts.strategy_services import strategy_override

    book = _book()
    with firm_context(book.world.firm), transaction.atomic():
        questionnaire = questionnaire_install_default()
        response = response_start(client=book.client, questionnaire=questionnaire, actor=None)
        profile = response_submit(response=response, actor=None, answers=MODERATE)
        override = strategy_override(
            profile=profile,
            model_portfolio=ModelPortfolio.objects.get(name="All equity"),
            actor=book.world.user(Role.ADVISOR),
            rationale="Large inheritance, decades ahead.",
        )
    _sign_in(page, book.world.user(Role.COMPLIANCE).username)
    page.get_by_role("navigation", name="Main navigation").get_by_role(
        "link", name="Strategy approvals"
    ).click()
    approvals = page.get_by_test_id("approvals")
    expect(approvals).to_contain_text("Large inheritance, decades ahead.")
    approvals.get_by_role("link", name=re.compile("Ines")).click()
    row = page.locator('[data-assignment="pending_approval"]')
    row.get_by_label("Decision note").fill("Documented capacity review.")
    row.get_by_role("button", name="Approve").click()
    expect(page.locator(".messages")).to_contain_text("Override approved")
    expect(page.locator('[data-assignment="active"]')).to_contain_text("All equity")
    with firm_context(book.world.firm), transaction.atomic():
        assert StrategyAssignment.objects.get(pk=override.pk).status == "active"
    assert page_problems == []

"""Rebalancing in a real browser: an advisor previews the book, reads a proposal's
reasons, runs and approves; the investor sees allocation against target and the trades.

live_server tests are transactional: the book is built and committed first; a run's
chunks (eager Celery) compute after the request that starts it commits.
"""

from __future__ import annotations

import re

import pytest
from django.db import transaction
from playwright.sync_api import Page, expect

from accounts.models import Role
from tests.accounts.book import Book, make_book
from tests.conftest import PASSWORD, make_firm_world
from tests.portfolios.test_rebalance_api import _drifted

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, databases=["default", "owner"]),
]


def _book() -> Book:
    with transaction.atomic():
        world = make_firm_world("alpha")
    book = make_book(world)
    with transaction.atomic():
        return _drifted(book)


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


def test_advisor_previews_runs_and_approves_then_the_investor_sees_it(
    page: Page, page_problems, screenshot
):
    book = _book()
    number = book.portfolio.number
    _sign_in(page, book.world.user(Role.ADVISOR).username)
    page.get_by_role("navigation", name="Main navigation").get_by_role(
        "link", name="Rebalancing"
    ).click()
    drift = page.get_by_test_id("drift-table")
    expect(drift.locator(f'tr[data-portfolio="{number}"]')).to_be_visible()
    expect(drift).not_to_contain_text(book.other_portfolio.number)
    screenshot(page, "rebalancing-book")

    page.get_by_role("button", name="Preview the book").click()
    expect(page.get_by_test_id("run-status")).to_have_text("Preview")
    expect(page.get_by_role("progressbar", name="Run progress")).to_have_attribute(
        "aria-valuenow", "100"
    )
    expect(page.get_by_test_id("run-progress")).to_contain_text("1 of 1 portfolios computed")
    expect(page.get_by_test_id("run-decision")).not_to_contain_text("Approve the run")
    screenshot(page, "rebalancing-preview")

    page.get_by_test_id("run-portfolios").get_by_role("link", name=number).click()
    expect(page.get_by_test_id("trigger")).to_contain_text("drifted outside its tolerance band")
    buy = page.get_by_test_id("orders").locator('tr[data-symbol="AAA"]')
    expect(buy).to_contain_text("Buy")
    expect(buy.get_by_test_id("reason")).to_contain_text("drifted outside its tolerance band")
    screenshot(page, "rebalancing-proposal")

    page.get_by_role("link", name="Rebalancing").first.click()
    page.get_by_role("button", name="Run the book").click()
    expect(page.get_by_test_id("run-status")).to_have_text("Awaiting approval")
    page.get_by_role("button", name="Approve the run").click()
    expect(page.locator(".messages")).to_contain_text("Approved: 1 portfolio")
    expect(page.get_by_test_id("run-status")).to_have_text("Done")
    expect(
        page.get_by_test_id("run-portfolios").locator(f'tr[data-portfolio="{number}"]')
    ).to_contain_text("Executed")
    assert page_problems == []
    _sign_out(page)

    _sign_in(page, book.world.user(Role.INVESTOR).username)
    page.get_by_role("navigation", name="Main navigation").get_by_role(
        "link", name="My portfolio"
    ).click()
    card = page.locator(f'[data-portfolio="{number}"]')
    expect(card.get_by_test_id("allocation-chart").locator("svg")).to_be_visible()
    expect(card.get_by_test_id("allocation").locator('tr[data-symbol="AAA"]')).to_contain_text(
        "60%"
    )
    expect(card.get_by_test_id("trades")).to_contain_text("drifted outside its tolerance band")
    screenshot(page, "investor-portfolio")
    assert page_problems == []

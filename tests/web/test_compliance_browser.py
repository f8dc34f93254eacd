"""A compliance officer in a real browser: finds a blocked order through the audit
search, reads why it was blocked, releases a soft failure as the second approver with
a reason, and exports the search as CSV."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from django.db import transaction
from playwright.sync_api import Page, expect

from accounts.models import Role
from accounts.tenancy import firm_context
from compliance.models import AuditEvent
from portfolios.models import RunPortfolio, RunPortfolioStatus
from tests.compliance.console_world import console_book
from tests.conftest import PASSWORD, make_firm_world


@pytest.mark.browser
@pytest.mark.django_db(transaction=True, databases=["default", "owner"])
def test_officer_finds_a_blocked_order_reads_why_releases_and_exports(
    page: Page, page_problems, tmp_path: Path
):
    with transaction.atomic():
        world = make_firm_world("alpha")
    book = console_book(world)
    officer = world.user(Role.COMPLIANCE)

    page.goto("/login/")
    page.get_by_label("Username").fill(officer.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("blocked-recent")).to_contain_text("Turnover")
    expect(page.locator('[data-figure="review_queue"]')).to_have_attribute("data-value", "1")

    # 1. find the blocked portfolio's decision through the audit search
    page.get_by_role("link", name="Audit trail").first.click()
    page.get_by_label("Portfolio id").fill(str(book.blocked.pk))
    page.get_by_label("Action starts with").fill("rebalance.portfolio_")
    page.get_by_role("button", name="Search").click()
    results = page.get_by_test_id("audit-results")
    expect(results).to_contain_text("1 event")
    expect(page).to_have_url(re.compile(rf"portfolio={book.blocked.pk}"))
    results.get_by_role("link", name="rebalance.portfolio_proposed").click()

    # 2. the event lists the portfolio's orders; the blocked one says why
    orders = page.get_by_test_id("event-orders")
    blocked_row = orders.locator(f'tr[data-order="{book.blocked_order.pk}"]')
    expect(blocked_row).to_have_attribute("data-status", "blocked")
    blocked_row.get_by_role("link", name="Why this trade").click()
    verdict = page.get_by_test_id("explain-verdict")
    expect(verdict.locator('[data-outcome="HARD_FAIL"]')).to_contain_text("max_turnover")
    expect(page.get_by_test_id("explain-replay")).to_have_attribute("data-matches", "yes")
    expect(page.get_by_test_id("explain-rules")).to_contain_text("max_turnover")

    # 3. release the soft failure (the advisor proposed the run: the officer is second)
    page.get_by_role("link", name="Review queue").first.click()
    held = page.locator(f'[data-run-portfolio="{book.held_rp.pk}"]')
    expect(held).to_contain_text("Turnover would be")
    held.get_by_label("Reason").fill("Turnover agreed with the client in writing")
    held.get_by_role("button", name="Release").click()
    expect(page.get_by_test_id("flash")).to_contain_text("released")
    expect(page.get_by_test_id("queue-empty")).to_be_visible()
    with firm_context(world.firm), transaction.atomic():
        assert RunPortfolio.objects.get(pk=book.held_rp.pk).status != RunPortfolioStatus.HELD
        released = AuditEvent.objects.get(action="compliance.override_released")
    assert released.actor_id == officer.pk

    # 4. search the release and export the search
    page.get_by_role("link", name="Audit trail").first.click()
    page.get_by_label("Action starts with").fill("compliance.override")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_test_id("audit-results")).to_contain_text("1 event")
    with page.expect_download() as info:
        page.get_by_test_id("audit-export").click()
    download = info.value
    target = tmp_path / download.suggested_filename
    download.save_as(target)
    assert target.suffix == ".csv"
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [(r["seq"], r["action"], r["hash"]) for r in rows] == [
        (str(released.seq), "compliance.override_released", released.hash)
    ]
    assert "Turnover agreed with the client in writing" in rows[0]["reasons"]
    assert page_problems == []

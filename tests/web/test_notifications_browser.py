"""An investor sees the unread badge after a rebalance executes, opens the message and
reads why the trades happened (real browser); the inbox pages (test client)."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.test import Client as WebClient
from guardian.shortcuts import assign_perm
from playwright.sync_api import Page, expect

from accounts.models import Client, Household, Role
from accounts.tenancy import firm_context
from portfolios import services_execution, services_rebalance
from tests.conftest import PASSWORD, FirmWorld, make_firm_world
from tests.portfolios.rebalance_factories import AS_OF, asset_make, portfolio_make, strategy_make


def _rebalanced() -> FirmWorld:
    with transaction.atomic():
        world = make_firm_world("alpha")
    with transaction.atomic():
        asset_make("AAA", "100")
        asset_make("BBB", "50")
        strategy = strategy_make(world.firm, "Sixty forty", {"AAA": "0.6", "BBB": "0.4"})
    investor, advisor = world.user(Role.INVESTOR), world.user(Role.ADVISOR)
    with firm_context(world.firm), transaction.atomic():
        p = portfolio_make(world.firm, strategy=strategy, holdings={"AAA": "10", "BBB": "40"})
        Client.objects.filter(pk=p.client_id).update(user=investor)
        assign_perm("view_household", advisor, Household.objects.get(pk=p.client.household_id))
    # Transactional test: the run's chunks compute, and its approved orders execute,
    # after each commit (eager Celery), as they would in production.
    with firm_context(world.firm):
        with transaction.atomic():
            run = services_rebalance.rebalance_run_start(
                trigger="manual", actor=advisor, as_of=AS_OF
            )
        with transaction.atomic():
            run.refresh_from_db()
            services_execution.rebalance_run_approve(run=run, actor=advisor)
    return world


@pytest.mark.django_db(transaction=True, databases=["default", "owner"])
def test_investor_sees_the_badge_and_reads_why(page: Page, page_problems: list[str]) -> None:
    world = _rebalanced()
    page.goto("/login/")
    page.get_by_label("Username").fill(world.user(Role.INVESTOR).username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("unread-badge")).to_have_text("1")
    page.get_by_test_id("inbox-link").click()
    page.get_by_role("link", name="Your portfolio").click()
    body = page.get_by_test_id("message-body")
    expect(body).to_contain_text("Sold:")
    expect(body).to_contain_text("Why:")
    expect(body).to_contain_text("had drifted")
    page.goto("/")
    expect(page.get_by_test_id("unread-badge")).to_have_count(0)
    # Preferences: the trade confirmation is locked; strategy news by email is switched off.
    page.get_by_test_id("inbox-link").click()
    page.get_by_test_id("preferences-link").click()
    expect(page.get_by_label("Rebalance executed: Email")).to_be_disabled()
    expect(page.get_by_test_id("pref-rebalance_executed")).to_contain_text("Regulatory notice")
    page.get_by_label("Strategy assigned or changed: Email").uncheck()
    page.get_by_label("Risk profile expiring soon: when").select_option("digest")
    page.get_by_role("button", name="Save preferences").click()
    expect(page.get_by_text("Your notification preferences are saved.")).to_be_visible()
    expect(page.get_by_label("Strategy assigned or changed: Email")).not_to_be_checked()
    expect(page.get_by_label("Strategy assigned or changed: In the app")).to_be_checked()
    expect(page.get_by_label("Risk profile expiring soon: when")).to_have_value("digest")
    assert page_problems == []


@pytest.mark.django_db(transaction=True, databases=["default", "owner"])
def test_inbox_pages_are_the_users_own() -> None:
    world = _rebalanced()
    investor = WebClient()
    investor.force_login(world.user(Role.INVESTOR))
    advisor = WebClient()
    advisor.force_login(world.user(Role.ADVISOR))
    assert "Your portfolio" in investor.get("/notifications/").content.decode()
    inbox = advisor.get("/notifications/").content.decode()
    assert "Your portfolio" not in inbox
    assert "approvals waiting" in inbox
    assert advisor.get("/firm/notifications/failed/").status_code == 404
    admin = WebClient()
    admin.force_login(world.user(Role.FIRM_ADMIN))
    assert admin.get("/firm/notifications/failed/").status_code == 200

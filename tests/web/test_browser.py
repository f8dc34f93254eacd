"""The web shell in a real browser: sign in through the form as each role, look, sign out.

live_server tests are transactional: each test builds its own firms (the database is
emptied after it), and commits them so that the server thread sees them.
"""

from __future__ import annotations

import re

import pytest
from django.db import transaction
from playwright.sync_api import Page, expect

from accounts.models import Role, User
from accounts.services import membership_create
from tests.conftest import PASSWORD, FirmWorld, make_firm_world

from .helpers import ROLE_HEADING, ROLE_NAV, event_count

# The database is emptied after each test through the owner role (advisor's flush command).
pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, databases=["default", "owner"]),
]


def _world() -> FirmWorld:
    with transaction.atomic():
        world = make_firm_world("alpha")
        extra = User.objects.create_user(username="second.client", password=PASSWORD)
        membership_create(firm=world.firm, user=extra, role=Role.INVESTOR)
    return world


def _sign_in(page: Page, username: str, password: str = PASSWORD) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def _figure(page: Page, key: str):
    return page.locator(f'[data-figure="{key}"] .figure-value')


def _sign_out(page: Page) -> None:
    page.get_by_test_id("user-menu").locator("summary").click()
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login/$"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))


def _check_navigation(page: Page, role: str) -> None:
    nav = page.get_by_role("navigation", name="Main navigation")
    expect(nav.get_by_role("link", name="Home")).to_be_visible()
    for key, label in ROLE_NAV[role].items():
        item = nav.locator(f'[data-nav="{key}"]')
        expect(item).to_be_visible()
        expect(item).to_contain_text(label)
    for other, items in ROLE_NAV.items():
        if other != role:
            for label in set(items.values()) - set(ROLE_NAV[role].values()):
                expect(nav.get_by_text(label)).to_have_count(0)
    expect(nav.get_by_text("Django admin")).to_have_count(0)


@pytest.mark.parametrize("role", Role.values)
def test_each_role_signs_in_sees_its_home_and_signs_out(
    page: Page, page_problems, screenshot, role
):
    world = _world()
    user = world.user(role)
    _sign_in(page, user.username)

    expect(page.get_by_role("heading", level=1)).to_have_text(ROLE_HEADING[role])
    expect(page.get_by_test_id("firm-name")).to_have_text("Firm alpha")
    _check_navigation(page, role)

    if role == Role.FIRM_ADMIN:
        expect(_figure(page, "members")).to_have_text("5")
        expect(_figure(page, "members_investor")).to_have_text("2")
        expect(_figure(page, "audit_events")).to_have_text(str(event_count(world.firm)))
        expect(page.get_by_test_id("members-by-role")).to_contain_text("Compliance officer")
        expect(page.get_by_test_id("recent-events")).to_contain_text("Signed in")
    elif role == Role.ADVISOR:
        expect(_figure(page, "clients")).to_have_text("2")
        expect(_figure(page, "my_actions")).to_have_text("1")
        expect(page.get_by_test_id("my-events")).to_contain_text("Signed in")
    elif role == Role.COMPLIANCE:
        total = str(event_count(world.firm))
        expect(_figure(page, "events_total")).to_have_text(total)
        expect(_figure(page, "events_today")).to_have_text(total)
        # Loaded by htmx after the page: proves the vendored script runs.
        expect(page.locator('[data-chain="ok"]')).to_contain_text("Chain intact")
        expect(page.locator('[data-chain="ok"]')).to_contain_text(f"{total} events verified")
        expect(page.get_by_test_id("latest-events")).to_contain_text("Member added")
    else:
        profile = page.get_by_test_id("profile")
        expect(profile).to_contain_text(user.username)
        expect(profile).to_contain_text(user.email)
        expect(_figure(page, "sign_ins")).to_have_text("1")
        expect(_figure(page, "failed_sign_ins")).to_have_text("0")
        expect(page.get_by_text("Portfolios")).to_have_count(0)

    screenshot(page, f"home-{role}")
    _sign_out(page)
    assert page_problems == []


def test_wrong_password_shows_a_generic_error(page: Page, screenshot):
    world = _world()
    _sign_in(page, world.user("advisor").username, "not-the-password")
    error = page.get_by_test_id("login-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("Please enter a correct username and password")
    expect(page.get_by_role("navigation", name="Main navigation")).to_have_count(0)
    screenshot(page, "login-error")
    # The same words for a user that does not exist: nothing tells the two apart.
    _sign_in(page, "nobody.at.all", "not-the-password")
    expect(page.get_by_test_id("login-error")).to_have_text(error.inner_text())
    assert event_count(world.firm, action="auth.login_failed") == 1


def test_user_of_two_firms_chooses_then_switches_in_the_header(
    page: Page, page_problems, screenshot
):
    with transaction.atomic():
        alpha, beta = make_firm_world("alpha"), make_firm_world("beta")
        dual = User.objects.create_user(username="dual", password=PASSWORD)
        membership_create(firm=alpha.firm, user=dual, role=Role.ADVISOR)
        membership_create(firm=beta.firm, user=dual, role=Role.COMPLIANCE)
    _sign_in(page, "dual")
    expect(page).to_have_url(re.compile(r"/firm/choose/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Choose your firm")
    screenshot(page, "firm-choose")
    page.locator('[data-firm="beta"]').click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Compliance overview")
    expect(page.locator("#firm-switch-select")).to_have_value("beta")

    # The header's <select> posts through htmx (CSRF header from hx-headers).
    page.locator("#firm-switch-select").select_option("alpha")
    expect(page.get_by_role("heading", level=1)).to_have_text("Advisor dashboard")
    expect(_figure(page, "clients")).to_have_text("1")
    screenshot(page, "firm-switched")
    assert event_count(alpha.firm, action="auth.firm_switched") == 1
    assert event_count(beta.firm, action="auth.firm_switched") == 1
    assert page_problems == []


def test_missing_page_keeps_the_layout(page: Page, screenshot):
    world = _world()
    _sign_in(page, world.user("investor").username)
    expect(page.get_by_role("heading", level=1)).to_have_text("My account")
    response = page.goto("/no/such/page/")
    assert response is not None
    assert response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
    expect(page.locator('[data-nav="my_portfolio"]')).to_be_visible()
    screenshot(page, "not-found")
    page.get_by_role("link", name="Back to home").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("My account")

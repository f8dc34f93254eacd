"""The firm switcher: only the user's own firms, audited, and no figure crosses firms."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.urls import reverse

from accounts.models import Role, User
from accounts.services import membership_create
from accounts.tenancy import firm_context
from advisor.middleware import SESSION_FIRM_KEY
from compliance.services import AuditEntry, audit_record_many
from tests.conftest import PASSWORD, make_firm_world

from .helpers import event_count, figures, heading, html

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_firm_user(firm_a, firm_b) -> User:
    """An advisor in alpha who is also a compliance officer in beta."""
    user = User.objects.create_user(username="dual", password=PASSWORD, email="dual@x.test")
    membership_create(firm=firm_a.firm, user=user, role=Role.ADVISOR)
    membership_create(firm=firm_b.firm, user=user, role=Role.COMPLIANCE)
    return user


def test_several_firms_and_none_chosen_goes_to_choose_page(client, two_firm_user):
    client.force_login(two_firm_user)
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"] == reverse("firm_choose")
    page = html(client.get(reverse("firm_choose")))
    assert "Choose your firm" in page
    assert 'data-firm="alpha"' in page
    assert 'data-firm="beta"' in page
    assert "Compliance officer" in page


def test_switching_stores_the_firm_audits_it_and_changes_the_home_page(
    client, two_firm_user, firm_a, firm_b
):
    client.force_login(two_firm_user)
    response = client.post(reverse("firm_switch"), {"slug": "beta"})
    assert response.status_code == 302
    assert response["Location"] == reverse("home")
    assert client.session[SESSION_FIRM_KEY] == "beta"
    assert event_count(firm_b.firm, action="auth.firm_switched", actor=two_firm_user) == 1
    assert event_count(firm_a.firm, action="auth.firm_switched") == 0

    home = client.get(reverse("home"))
    assert heading(home) == "Compliance overview"
    assert figures(home)["events_total"] == event_count(firm_b.firm)
    assert 'id="firm-switch-select"' in html(home)  # the header's switcher lists both firms

    client.post(reverse("firm_switch"), {"slug": "alpha"})
    assert client.session[SESSION_FIRM_KEY] == "alpha"
    home = client.get(reverse("home"))
    assert heading(home) == "Advisor dashboard"
    assert figures(home)["clients"] == 1
    assert event_count(firm_a.firm, action="auth.firm_switched", actor=two_firm_user) == 1


def test_htmx_switch_answers_with_a_client_redirect(client, two_firm_user):
    client.force_login(two_firm_user)
    response = client.post(reverse("firm_switch"), {"slug": "beta"}, headers={"HX-Request": "true"})
    assert response["HX-Redirect"] == reverse("home")
    assert client.session[SESSION_FIRM_KEY] == "beta"


@pytest.mark.parametrize("slug", ["gamma", "no-such-firm", ""])
def test_foreign_or_unknown_slug_is_404_and_changes_nothing(client, two_firm_user, firm_a, slug):
    make_firm_world("gamma")  # exists, but the user is no member of it
    client.force_login(two_firm_user)
    client.post(reverse("firm_switch"), {"slug": "alpha"})
    events_before = event_count(firm_a.firm)
    response = client.post(reverse("firm_switch"), {"slug": slug})
    assert response.status_code == 404
    assert "Page not found" in html(response)
    assert client.session[SESSION_FIRM_KEY] == "alpha"
    assert event_count(firm_a.firm) == events_before
    assert heading(client.get(reverse("home"))) == "Advisor dashboard"


def test_single_firm_user_cannot_switch_into_another_firm(client, firm_a, firm_b):
    client.force_login(firm_a.user("firm_admin"))
    assert client.get(reverse("home")).status_code == 200
    response = client.post(reverse("firm_switch"), {"slug": "beta"})
    assert response.status_code == 404
    assert client.session[SESSION_FIRM_KEY] == "alpha"


def test_switch_is_post_only(client, two_firm_user):
    client.force_login(two_firm_user)
    assert client.get(reverse("firm_switch"), {"slug": "beta"}).status_code == 405
    assert SESSION_FIRM_KEY not in client.session


def test_a_forged_session_firm_is_ignored(client, firm_a, firm_b):
    client.force_login(firm_a.user("compliance"))
    session = client.session
    session[SESSION_FIRM_KEY] = "beta"
    session.save()
    response = client.get(reverse("home"))
    assert "Firm alpha" in html(response)
    assert "Firm beta" not in html(response)
    assert figures(response)["events_total"] == event_count(firm_a.firm)


def test_firm_a_users_never_see_firm_b_figures(client, firm_a, firm_b):
    # Make firm B busier than firm A in every respect.
    for i in range(3):
        user = User.objects.create_user(username=f"b.investor{i}", password=PASSWORD)
        membership_create(firm=firm_b.firm, user=user, role=Role.INVESTOR)
    with firm_context(firm_b.firm), transaction.atomic():
        audit_record_many(entries=[AuditEntry(action="beta.only")] * 20)
    client.force_login(firm_b.user("compliance"))
    b_total = figures(client.get(reverse("home")))["events_total"]
    client.logout()

    client.force_login(firm_a.user("firm_admin"))
    admin = figures(client.get(reverse("home")))
    assert admin["members"] == 4
    assert admin["members_investor"] == 1
    assert admin["audit_events"] == event_count(firm_a.firm)
    client.logout()

    client.force_login(firm_a.user("advisor"))
    assert figures(client.get(reverse("home")))["clients"] == 1
    client.logout()

    client.force_login(firm_a.user("compliance"))
    response = client.get(reverse("home"))
    a_total = figures(response)["events_total"]
    assert a_total == event_count(firm_a.firm)
    assert a_total < b_total
    page = html(response)
    assert "beta" not in page
    assert "b.investor" not in page
    assert "beta.only" not in page

"""Each role's home page: its navigation, and figures read from the database."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.urls import reverse

from accounts.models import Role, User
from accounts.services import membership_create
from accounts.tenancy import TenancyError, firm_context
from advisor import dashboards
from advisor.context_processors import ROLE_NAVIGATION, _url
from compliance.services import audit_record
from tests.conftest import PASSWORD

from .helpers import ROLE_HEADING, ROLE_NAV, event_count, figures, heading, html, nav_keys

pytestmark = pytest.mark.django_db

ALL_ROLE_NAV = {key for items in ROLE_NAV.values() for key in items}


def _new_investor(world, name: str) -> User:
    user = User.objects.create_user(username=name, password=PASSWORD, email=f"{name}@x.test")
    membership_create(firm=world.firm, user=user, role=Role.INVESTOR, actor=None)
    return user


def _home(client, user):
    client.force_login(user)
    response = client.get(reverse("home"))
    assert response.status_code == 200
    return response


def test_anonymous_home_goes_to_sign_in(client):
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("role", Role.values)
def test_each_role_sees_its_heading_and_only_its_navigation(client, firm_a, role):
    response = _home(client, firm_a.user(role))
    assert heading(response) == ROLE_HEADING[role]
    keys = nav_keys(response)
    assert "home" in keys
    assert set(ROLE_NAV[role]) <= keys
    assert not (ALL_ROLE_NAV - set(ROLE_NAV[role])) & keys
    assert "django_admin" not in keys  # not a platform superuser
    page = html(response)
    assert "Firm alpha" in page
    assert 'action="/logout/"' in page
    unrouted = [name for _, _, name in ROLE_NAVIGATION[role] if _url(name) is None]
    # pages not routed yet are shown disabled (every compliance page exists now)
    assert ("Coming soon" in page) == bool(unrouted)


def test_platform_superuser_gets_the_django_admin_link(client, firm_a):
    admin = firm_a.user("firm_admin")
    admin.is_superuser = admin.is_staff = True
    admin.save()
    response = _home(client, admin)
    assert "django_admin" in nav_keys(response)
    assert f'href="{reverse("admin:index")}"' in html(response)


def test_firm_admin_figures_follow_members_and_audit_events(client, firm_a):
    admin = firm_a.user("firm_admin")
    before = figures(_home(client, admin))
    assert before["members"] == 4
    assert before["members_investor"] == 1
    assert before["members_advisor"] == 1
    assert before["audit_events"] == event_count(firm_a.firm)

    _new_investor(firm_a, "new.investor")  # one membership.created event
    after = figures(client.get(reverse("home")))
    assert after["members"] == 5
    assert after["members_investor"] == 2
    assert after["audit_events"] == before["audit_events"] + 1
    assert after["audit_events"] == event_count(firm_a.firm)
    assert "Member added" in html(client.get(reverse("home")))


def test_advisor_client_count_follows_investor_memberships(client, firm_a):
    advisor = firm_a.user("advisor")
    assert figures(_home(client, advisor))["clients"] == 1
    _new_investor(firm_a, "client.two")
    _new_investor(firm_a, "client.three")
    assert figures(client.get(reverse("home")))["clients"] == 3


def test_advisor_sees_the_events_they_caused(client, firm_a):
    advisor = firm_a.user("advisor")
    response = _home(client, advisor)  # force_login records auth.login
    mine = event_count(firm_a.firm, actor=advisor)
    assert figures(response)["my_actions"] == mine >= 1
    with firm_context(firm_a.firm), transaction.atomic():
        audit_record(
            action="household.created", actor=advisor, object_type="household", object_id=7
        )
        audit_record(action="someone.elses", actor=firm_a.user("firm_admin"))
    response = client.get(reverse("home"))
    assert figures(response)["my_actions"] == mine + 1
    page = html(response)
    assert "household.created" in page
    assert "someone.elses" not in page


def test_compliance_counts_follow_the_audit_trail(client, firm_a):
    officer = firm_a.user("compliance")
    before = figures(_home(client, officer))
    assert before["events_total"] == event_count(firm_a.firm)
    assert before["events_today"] == before["events_total"]  # everything happened today
    with firm_context(firm_a.firm), transaction.atomic():
        audit_record(action="rule.evaluated", actor_label="pretrade", object_type="order")
    response = client.get(reverse("home"))
    after = figures(response)
    assert after["events_total"] == before["events_total"] + 1
    assert after["events_today"] == before["events_today"] + 1
    assert 'data-event="rule.evaluated"' in html(response)
    assert f'hx-get="{reverse("home_chain_status")}"' in html(response)


def test_compliance_chain_status_is_verified(client, firm_a):
    officer = firm_a.user("compliance")
    client.force_login(officer)
    with firm_context(firm_a.firm), transaction.atomic():
        audit_record(action="test.one")
        audit_record(action="test.two")
    response = client.get(reverse("home_chain_status"))
    assert response.status_code == 200
    page = html(response)
    assert 'data-chain="ok"' in page
    total = event_count(firm_a.firm)
    assert f"{total} events verified" in page


def test_chain_status_is_refused_to_investors(client, firm_a):
    client.force_login(firm_a.user("investor"))
    response = client.get(reverse("home_chain_status"))
    assert response.status_code == 403
    assert "Access denied" in html(response)  # our 403 page, inside the layout
    assert "data-nav=" in html(response)


def test_investor_sees_profile_and_own_activity(client, firm_a):
    investor = firm_a.user("investor")
    investor.first_name, investor.last_name = "Ada", "Lovelace"
    investor.save()
    response = _home(client, investor)
    page = html(response)
    assert "Ada Lovelace" in page
    assert "investor@alpha.test" in page
    assert figures(response)["sign_ins"] == 1
    assert figures(response)["failed_sign_ins"] == 0
    assert "Portfolios" not in page  # nothing to count yet: not shown rather than faked

    client.logout()
    bad = client.post(reverse("login"), {"username": investor.username, "password": "nope"})
    assert bad.status_code == 200
    response = _home(client, investor)
    assert figures(response)["sign_ins"] == 2
    assert figures(response)["failed_sign_ins"] == 1
    assert "Failed sign-in attempt" in html(response)
    assert "Signed out" in html(response)


def test_dashboard_selectors_read_the_current_firm_only(firm_a, firm_b):
    membership = _membership(firm_a, "advisor")
    with pytest.raises(TenancyError):
        dashboards.home_figures_for_role(firm=firm_a.firm, membership=membership)
    with firm_context(firm_b.firm), pytest.raises(TenancyError):
        dashboards.home_figures_for_role(firm=firm_a.firm, membership=membership)
    with firm_context(firm_a.firm):
        result = dashboards.home_figures_for_role(firm=firm_a.firm, membership=membership)
    assert result.figure("clients").value == 1


def _membership(world, role: str):
    from accounts.models import Membership

    with firm_context(world.firm), transaction.atomic():
        return Membership.objects.select_related("firm").get(user=world.user(role))


def test_sign_in_page_and_generic_error(client, firm_a):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert "Sign in" in html(response)
    assert "data-nav=" not in html(response)
    wrong_user = client.post(reverse("login"), {"username": "nobody", "password": "x"})
    wrong_pass = client.post(reverse("login"), {"username": "advisor.alpha", "password": "x"})
    for response in (wrong_user, wrong_pass):
        assert response.status_code == 200
        assert 'data-testid="login-error"' in html(response)
        assert "Please enter a correct username and password" in html(response)
    good = client.post(reverse("login"), {"username": "advisor.alpha", "password": PASSWORD})
    assert good.status_code == 302
    assert good["Location"] == reverse("home")


def test_logout_is_post_only_and_returns_to_sign_in(client, firm_a):
    client.force_login(firm_a.user("advisor"))
    assert client.get(reverse("logout")).status_code == 405
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert response["Location"] == reverse("login")
    assert client.get(reverse("home")).status_code == 302


def test_404_page_uses_the_layout(client, firm_a):
    client.force_login(firm_a.user("advisor"))
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    page = html(response)
    assert "Page not found" in page
    assert 'data-nav="clients"' in page
    assert "css/app.css" in page


def test_user_without_membership_sees_an_explanation(client, db):
    loner = User.objects.create_user(username="loner", password=PASSWORD)
    client.force_login(loner)
    response = client.get(reverse("home"))
    assert response.status_code == 200
    assert "No firm to show" in html(response)


def test_500_page_renders_without_a_request_context(rf):
    from django.views.defaults import server_error

    response = server_error(rf.get("/"))
    assert response.status_code == 500
    page = html(response)
    assert "Something went wrong" in page
    assert "css/app.css" in page
    assert "data-nav=" not in page


def test_form_without_csrf_token_gets_our_403_page(firm_a):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    response = client.post(reverse("login"), {"username": "advisor.alpha", "password": PASSWORD})
    assert response.status_code == 403
    assert "Your session has expired" in html(response)


def test_single_firm_user_is_sent_home_from_the_choose_page(client, firm_a):
    client.force_login(firm_a.user("investor"))
    response = client.get(reverse("firm_choose"))
    assert response.status_code == 302
    assert response["Location"] == reverse("home")

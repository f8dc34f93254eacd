"""Logins, logouts, failed logins and membership changes reach the audit trail."""

from __future__ import annotations

import pytest
from django.contrib.auth import authenticate
from django.test import RequestFactory
from django.urls import reverse

from accounts.models import Membership, Role, User
from accounts.services import membership_create, membership_update
from accounts.tenancy import firm_context
from compliance.models import AuditEvent
from compliance.selectors import audit_chain_verify
from tests.conftest import PASSWORD, make_firm_world


def events(firm, **filters) -> list[AuditEvent]:
    with firm_context(firm):
        return list(AuditEvent.objects.filter(**filters).order_by("seq"))


@pytest.mark.django_db
def test_login_and_logout_through_the_sign_in_page_are_audited(client, firm_a, firm_b):
    advisor = firm_a.user(Role.ADVISOR)
    response = client.post(
        reverse("login"),
        {"username": advisor.username, "password": PASSWORD},
        REMOTE_ADDR="203.0.113.7",
        HTTP_USER_AGENT="pytest-browser",
    )
    assert response.status_code == 302
    (login,) = events(firm_a.firm, action="auth.login")
    assert login.actor_id == advisor.pk
    assert login.actor_label == advisor.username
    assert login.object_type == "user"
    assert login.object_id == str(advisor.pk)
    assert login.payload == {"ip": "203.0.113.7", "user_agent": "pytest-browser"}
    assert login.request_id  # the request's id travels with the event

    client.post(reverse("logout"))
    (logout,) = events(firm_a.firm, action="auth.logout")
    assert logout.actor_id == advisor.pk
    # Nothing of firm A's user lands in firm B's trail.
    assert events(firm_b.firm, object_id=str(advisor.pk)) == []


@pytest.mark.django_db
def test_failed_login_is_audited_without_an_actor(client, firm_a):
    advisor = firm_a.user(Role.ADVISOR)
    response = client.post(
        reverse("login"), {"username": advisor.username.upper(), "password": "wrong"}
    )
    assert response.status_code == 200  # the form again
    assert "_auth_user_id" not in client.session
    (failed,) = events(firm_a.firm, action="auth.login_failed")
    assert failed.actor_id is None
    assert failed.actor_label == advisor.username
    assert failed.payload["username"] == advisor.username.upper()
    assert "password" not in failed.payload
    assert "wrong" not in str(failed.payload)


@pytest.mark.django_db
def test_failed_login_for_a_user_of_two_firms_is_audited_in_both(firm_a, firm_b):
    advisor = firm_a.user(Role.ADVISOR)
    membership_create(firm=firm_b.firm, user=advisor, role=Role.INVESTOR)
    request = RequestFactory().post("/login/", REMOTE_ADDR="198.51.100.1")
    assert authenticate(request, username=advisor.username, password="nope") is None
    for world in (firm_a, firm_b):
        (failed,) = events(world.firm, action="auth.login_failed")
        assert failed.payload["ip"] == "198.51.100.1"


@pytest.mark.django_db
def test_failed_login_for_an_unknown_user_writes_no_event(client, firm_a, caplog):
    client.post(reverse("login"), {"username": "nobody.at.all", "password": "x"})
    assert events(firm_a.firm) == []
    assert "nobody.at.all" in caplog.text  # the security log has it


@pytest.mark.django_db
def test_login_through_the_test_client_api_is_audited(client, firm_a):
    # django.contrib.auth.login, called by Client.login, fires the same signal.
    admin = firm_a.user(Role.FIRM_ADMIN)
    assert client.login(username=admin.username, password=PASSWORD)
    assert len(events(firm_a.firm, action="auth.login", actor=admin)) == 1
    client.logout()
    assert len(events(firm_a.firm, action="auth.logout", actor=admin)) == 1


@pytest.mark.django_db
def test_membership_create_is_audited(firm_a):
    admin = firm_a.user(Role.FIRM_ADMIN)
    newcomer = User.objects.create_user(username="newcomer")
    membership = membership_create(firm=firm_a.firm, user=newcomer, role=Role.ADVISOR, actor=admin)
    (event,) = events(firm_a.firm, action="membership.created")
    assert event.actor_id == admin.pk
    assert event.object_type == "membership"
    assert event.object_id == str(membership.pk)
    assert event.payload == {"user": "newcomer", "user_id": newcomer.pk, "role": "advisor"}


@pytest.mark.django_db
def test_membership_update_is_audited_with_before_and_after(firm_a):
    admin = firm_a.user(Role.FIRM_ADMIN)
    with firm_context(firm_a.firm):
        membership = Membership.objects.get(user=firm_a.user(Role.INVESTOR))
        membership_update(membership=membership, actor=admin, role=Role.ADVISOR)
        membership_update(membership=membership, actor=admin, is_active=False)
        # No change, no event.
        membership_update(membership=membership, actor=admin, role=Role.ADVISOR)
    changes = [e.payload["changes"] for e in events(firm_a.firm, action="membership.changed")]
    assert changes == [{"role": ["investor", "advisor"]}, {"is_active": [True, False]}]


@pytest.mark.django_db
def test_membership_changes_refuse_bad_input_and_write_nothing(firm_a, firm_b):
    with pytest.raises(ValueError, match="role"):
        membership_create(
            firm=firm_a.firm, user=User.objects.create_user(username="x"), role="king"
        )
    with firm_context(firm_b.firm):
        foreign = Membership.objects.get(user=firm_b.user(Role.ADVISOR))
    with firm_context(firm_a.firm), pytest.raises(Exception, match="another firm"):
        membership_update(membership=foreign, actor=None, role=Role.INVESTOR)
    assert events(firm_a.firm) == []
    assert events(firm_b.firm) == []


@pytest.mark.django_db
def test_audited_sign_in_events_keep_the_chain_intact(client):
    world = make_firm_world("gamma")
    advisor = world.user(Role.ADVISOR)
    client.post(reverse("login"), {"username": advisor.username, "password": "bad"})
    client.post(reverse("login"), {"username": advisor.username, "password": PASSWORD})
    client.post(reverse("logout"))
    membership_create(firm=world.firm, user=User.objects.create_user(username="n"), role="advisor")
    check = audit_chain_verify(firm=world.firm)
    assert check.ok
    assert check.events_checked == 4
    actions = [e.action for e in events(world.firm)]
    assert actions == ["auth.login_failed", "auth.login", "auth.logout", "membership.created"]

"""The firm, its members, the caller and their memberships."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import Firm, Membership, Role, User
from accounts.services import firm_update
from accounts.tenancy import firm_context
from compliance.models import AuditEvent
from tests.api.conftest import auth_headers
from tests.conftest import FirmWorld

pytestmark = pytest.mark.django_db

FIRM_URL = reverse("api:firm")
MEMBERS_URL = reverse("api:firm-member-list")


def get(user: User, url: str, **params: Any) -> Any:
    return APIClient().get(url, params, headers=auth_headers(user))


def firm_events(world: FirmWorld, action: str = "firm.updated") -> list[AuditEvent]:
    with firm_context(world.firm):
        return list(AuditEvent.objects.filter(action=action).order_by("seq"))


@pytest.mark.parametrize("role", Role.values)
def test_every_member_reads_their_firm(firm_a: FirmWorld, role: str) -> None:
    response = get(firm_a.user(role), FIRM_URL)
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["slug"], body["name"]) == (firm_a.firm.pk, "alpha", "Firm alpha")
    assert body["settings"] == {"risk_profile_valid_months": 12}


def test_firm_admin_updates_the_firm_and_it_is_audited(firm_a: FirmWorld) -> None:
    admin = firm_a.user(Role.FIRM_ADMIN)
    response = APIClient().patch(
        FIRM_URL,
        {"name": "Alpha Wealth", "settings": {"risk_profile_valid_months": 6}},
        format="json",
        headers=auth_headers(admin),
    )
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "Alpha Wealth"
    firm = Firm.objects.get(pk=firm_a.firm.pk)
    assert (firm.name, firm.settings) == ("Alpha Wealth", {"risk_profile_valid_months": 6})

    [event] = firm_events(firm_a)
    assert event.actor_id == admin.pk
    assert (event.object_type, event.object_id) == ("firm", str(firm.pk))
    assert event.payload == {
        "before": {"name": "Firm alpha", "settings": {"risk_profile_valid_months": 12}},
        "after": {"name": "Alpha Wealth", "settings": {"risk_profile_valid_months": 6}},
    }
    assert event.request_id, "the request id reaches the audit trail"


def test_settings_are_merged_and_a_no_op_is_not_audited(firm_a: FirmWorld) -> None:
    Firm.objects.filter(pk=firm_a.firm.pk).update(
        settings={"risk_profile_valid_months": 12, "other": "kept"}
    )
    headers = auth_headers(firm_a.user(Role.FIRM_ADMIN))
    client = APIClient()
    client.patch(
        FIRM_URL, {"settings": {"risk_profile_valid_months": 24}}, format="json", headers=headers
    )
    assert Firm.objects.get(pk=firm_a.firm.pk).settings == {
        "risk_profile_valid_months": 24,
        "other": "kept",
    }
    assert len(firm_events(firm_a)) == 1
    same = client.patch(FIRM_URL, {"name": "Firm alpha"}, format="json", headers=headers)
    assert same.status_code == 200
    assert len(firm_events(firm_a)) == 1


@pytest.mark.parametrize("role", [Role.ADVISOR, Role.COMPLIANCE, Role.INVESTOR])
def test_other_roles_may_not_update_the_firm(firm_a: FirmWorld, role: str) -> None:
    before = Firm.objects.filter(pk=firm_a.firm.pk).values().get()
    response = APIClient().patch(
        FIRM_URL, {"name": "Taken over"}, format="json", headers=auth_headers(firm_a.user(role))
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert Firm.objects.filter(pk=firm_a.firm.pk).values().get() == before
    assert firm_events(firm_a) == []


def test_firm_update_service_refuses_a_blank_name(firm_a: FirmWorld) -> None:
    with pytest.raises(ValueError, match="name"):
        firm_update(firm=firm_a.firm, actor=None, name="   ")


def test_members_list_for_firm_admins(firm_a: FirmWorld, firm_b: FirmWorld) -> None:
    admin = firm_a.user(Role.FIRM_ADMIN)
    body = get(admin, MEMBERS_URL).json()
    assert body["count"] == 4
    usernames = [m["user"]["username"] for m in body["results"]]
    assert usernames == sorted(u.username for u in firm_a.users.values())
    first = body["results"][0]
    assert set(first) == {"id", "user", "role", "is_active", "created_at"}
    assert set(first["user"]) == {"id", "username", "email", "first_name", "last_name"}

    advisors = get(admin, MEMBERS_URL, role="advisor").json()
    assert [m["user"]["username"] for m in advisors["results"]] == ["advisor.alpha"]

    page = get(admin, MEMBERS_URL, page_size=3).json()
    assert (page["count"], len(page["results"])) == (4, 3)
    assert page["next"] is not None
    rest = APIClient().get(page["next"], headers=auth_headers(admin)).json()
    assert len(rest["results"]) == 1

    by_role = get(admin, MEMBERS_URL, ordering="-role").json()["results"]
    assert [m["role"] for m in by_role] == sorted(Role.values, reverse=True)


def test_members_list_filters_inactive_members(firm_a: FirmWorld) -> None:
    with firm_context(firm_a.firm):
        Membership.objects.filter(user=firm_a.user(Role.INVESTOR)).update(is_active=False)
    admin = firm_a.user(Role.FIRM_ADMIN)
    inactive = get(admin, MEMBERS_URL, is_active="false").json()["results"]
    assert [m["user"]["username"] for m in inactive] == ["investor.alpha"]


def test_members_list_refuses_a_bad_filter(firm_a: FirmWorld) -> None:
    response = get(firm_a.user(Role.FIRM_ADMIN), MEMBERS_URL, role="owner")
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"role"}


@pytest.mark.parametrize("role", [Role.ADVISOR, Role.COMPLIANCE, Role.INVESTOR])
def test_members_are_for_firm_admins_only(firm_a: FirmWorld, role: str) -> None:
    user = firm_a.user(role)
    with firm_context(firm_a.firm):
        membership = Membership.objects.get(user=user)
    assert get(user, MEMBERS_URL).status_code == 403
    detail = reverse("api:firm-member-detail", kwargs={"pk": membership.pk})
    assert get(user, detail).status_code == 403


def test_member_detail(firm_a: FirmWorld) -> None:
    investor = firm_a.user(Role.INVESTOR)
    with firm_context(firm_a.firm):
        membership = Membership.objects.get(user=investor)
    url = reverse("api:firm-member-detail", kwargs={"pk": membership.pk})
    body = get(firm_a.user(Role.FIRM_ADMIN), url).json()
    assert (body["id"], body["role"], body["user"]["username"]) == (
        membership.pk,
        "investor",
        "investor.alpha",
    )


def test_me_and_memberships(firm_a: FirmWorld, firm_b: FirmWorld) -> None:
    user = firm_a.user(Role.COMPLIANCE)
    User.objects.filter(pk=user.pk).update(first_name="Clara", last_name="Check")
    me = get(user, reverse("api:me")).json()
    assert me == {
        "user": {
            "id": user.pk,
            "username": "compliance.alpha",
            "email": "compliance@alpha.test",
            "first_name": "Clara",
            "last_name": "Check",
        },
        "firm": {"id": firm_a.firm.pk, "slug": "alpha", "name": "Firm alpha"},
        "role": "compliance",
    }
    with firm_context(firm_b.firm):
        Membership.objects.create(user=user, role=Role.INVESTOR)
    memberships = get(user, reverse("api:memberships")).json()
    assert memberships["count"] == 2
    assert [(m["firm"]["slug"], m["role"]) for m in memberships["results"]] == [
        ("alpha", "compliance"),
        ("beta", "investor"),
    ]

"""Django admin for platform superusers: firms with their memberships, and users."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import Firm, Membership, Role, User
from accounts.tenancy import current_firm, firm_context
from compliance.models import AuditEvent


@pytest.fixture
def superuser(db) -> User:
    return User.objects.create_superuser(username="platform", password="pw-12345-long", email="")


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


def firm_events(firm, action) -> list[AuditEvent]:
    with firm_context(firm):
        return list(AuditEvent.objects.filter(action=action).order_by("seq"))


def membership_post_data(firm: Firm, memberships: list[Membership], **extra) -> dict[str, str]:
    data = {
        "name": firm.name,
        "slug": firm.slug,
        "is_active": "on" if firm.is_active else "",
        "settings": '{"risk_profile_valid_months": 12}',
        "memberships-TOTAL_FORMS": str(len(memberships)),
        "memberships-INITIAL_FORMS": str(len(memberships)),
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
    }
    for i, m in enumerate(memberships):
        data |= {
            f"memberships-{i}-id": str(m.pk),
            f"memberships-{i}-firm": str(firm.pk),
            f"memberships-{i}-user": str(m.user_id),
            f"memberships-{i}-role": m.role,
            f"memberships-{i}-is_active": "on" if m.is_active else "",
        }
    data |= extra
    return {k: v for k, v in data.items() if v != ""}


@pytest.mark.django_db
def test_firm_list_and_search(admin_client, firm_a, firm_b):
    response = admin_client.get(reverse("admin:accounts_firm_changelist"))
    assert response.status_code == 200
    assert firm_a.firm.name in response.text
    assert firm_b.firm.name in response.text
    response = admin_client.get(reverse("admin:accounts_firm_changelist"), {"q": "alpha"})
    assert firm_a.firm.name in response.text
    assert firm_b.firm.name not in response.text


@pytest.mark.django_db
def test_firm_create_is_audited_in_the_new_firm(admin_client, superuser):
    response = admin_client.post(
        reverse("admin:accounts_firm_add"),
        {"name": "Delta Advisors", "slug": "delta", "is_active": "on", "settings": "{}"},
    )
    assert response.status_code == 302, response.content
    firm = Firm.objects.get(slug="delta")
    (event,) = firm_events(firm, "firm.created")
    assert event.actor_id == superuser.pk
    assert event.payload["via"] == "admin"


@pytest.mark.django_db
def test_firm_change_page_shows_its_memberships_only(admin_client, firm_a, firm_b):
    response = admin_client.get(reverse("admin:accounts_firm_change", args=[firm_a.firm.pk]))
    assert response.status_code == 200
    for role in Role.values:
        assert f"{role}.alpha" in response.text
        assert f"{role}.beta" not in response.text
    assert current_firm() is None  # nothing leaks out of the view


@pytest.mark.django_db
def test_firm_settings_change_is_audited(admin_client, firm_a, superuser):
    with firm_context(firm_a.firm):
        memberships = list(Membership.objects.order_by("pk"))
    data = membership_post_data(firm_a.firm, memberships)
    data["settings"] = '{"risk_profile_valid_months": 6}'
    response = admin_client.post(reverse("admin:accounts_firm_change", args=[firm_a.firm.pk]), data)
    assert response.status_code == 302, response.content
    firm_a.firm.refresh_from_db()
    assert firm_a.firm.settings == {"risk_profile_valid_months": 6}
    (event,) = firm_events(firm_a.firm, "firm.changed")
    assert event.payload["changes"] == {
        "settings": [{"risk_profile_valid_months": 12}, {"risk_profile_valid_months": 6}]
    }
    # The memberships were posted unchanged: no membership event.
    assert firm_events(firm_a.firm, "membership.changed") == []


@pytest.mark.django_db
def test_membership_changes_in_the_admin_go_through_the_audited_services(
    admin_client, firm_a, superuser
):
    newcomer = User.objects.create_user(username="newcomer")
    with firm_context(firm_a.firm):
        memberships = list(Membership.objects.order_by("pk"))
    investor = next(m for m in memberships if m.role == Role.INVESTOR)
    investor.role = Role.ADVISOR
    data = membership_post_data(firm_a.firm, memberships)
    n = len(memberships)
    data |= {
        "memberships-TOTAL_FORMS": str(n + 1),
        f"memberships-{n}-firm": str(firm_a.firm.pk),
        f"memberships-{n}-user": str(newcomer.pk),
        f"memberships-{n}-role": Role.COMPLIANCE,
        f"memberships-{n}-is_active": "on",
    }
    response = admin_client.post(reverse("admin:accounts_firm_change", args=[firm_a.firm.pk]), data)
    assert response.status_code == 302, response.content
    (created,) = firm_events(firm_a.firm, "membership.created")
    assert created.actor_id == superuser.pk
    assert created.payload["user"] == "newcomer"
    (changed,) = firm_events(firm_a.firm, "membership.changed")
    assert changed.payload["changes"] == {"role": ["investor", "advisor"]}
    with firm_context(firm_a.firm):
        assert Membership.objects.get(user=newcomer).role == Role.COMPLIANCE


@pytest.mark.django_db
def test_nothing_is_deleted_through_the_admin(admin_client, firm_a):
    user = firm_a.user(Role.ADVISOR)
    assert (
        admin_client.get(reverse("admin:accounts_firm_delete", args=[firm_a.firm.pk])).status_code
        == 403
    )
    assert (
        admin_client.get(reverse("admin:accounts_user_delete", args=[user.pk])).status_code == 403
    )


@pytest.mark.django_db
def test_user_admin_lists_adds_and_edits_users(admin_client, firm_a):
    response = admin_client.get(reverse("admin:accounts_user_changelist"), {"q": "advisor"})
    assert response.status_code == 200
    assert "advisor.alpha" in response.text

    response = admin_client.post(
        reverse("admin:accounts_user_add"),
        {
            "username": "new.person",
            "password1": "a-Long-pass-phrase-77",
            "password2": "a-Long-pass-phrase-77",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302, response.content
    assert User.objects.get(username="new.person").check_password("a-Long-pass-phrase-77")

    # Usernames are unique whatever their case.
    response = admin_client.post(
        reverse("admin:accounts_user_add"),
        {
            "username": "NEW.PERSON",
            "password1": "a-Long-pass-phrase-77",
            "password2": "a-Long-pass-phrase-77",
            "usable_password": "true",
        },
    )
    assert response.status_code == 200
    assert User.objects.filter(username__iexact="new.person").count() == 1

    user = firm_a.user(Role.ADVISOR)
    response = admin_client.get(reverse("admin:accounts_user_change", args=[user.pk]))
    assert response.status_code == 200


@pytest.mark.django_db
def test_firm_members_cannot_use_the_admin(client, firm_a):
    client.force_login(firm_a.user(Role.FIRM_ADMIN))
    response = client.get(reverse("admin:accounts_firm_changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]

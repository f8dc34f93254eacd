"""The demo seed: three firms, a login per role, audited memberships; idempotent."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts import demo
from accounts.demo import DEMO_FIRMS, DEMO_PASSWORD, Created, demo_seed, demo_summary
from accounts.models import Firm, Membership, Role, User
from accounts.tenancy import current_firm, firm_context
from compliance.models import AuditEvent
from compliance.selectors import audit_chain_verify


@pytest.fixture(autouse=True)
def _accounts_part_only(monkeypatch):
    """These tests count what the accounts part of the seed creates in each firm; the
    firm seeders of later issues (strategies, ...) are tested by their own apps."""
    monkeypatch.setattr(demo, "FIRM_SEEDERS", [])


def audit_counts() -> dict[str, int]:
    counts = {}
    for firm in Firm.objects.all():
        with firm_context(firm):
            counts[firm.slug] = AuditEvent.objects.count()
    return counts


@pytest.mark.django_db
def test_seed_creates_the_demo_world():
    result = demo_seed()
    assert result.created_anything
    assert sorted(Firm.objects.values_list("slug", flat=True)) == ["alpine", "bayside", "cedar"]
    assert Firm.objects.get(slug="alpine").name == "Alpine Wealth Partners"
    for slug in ("alpine", "bayside", "cedar"):
        firm = Firm.objects.get(slug=slug)
        with firm_context(firm):
            roles = dict(Membership.objects.values_list("user__username", "role"))
            actions = sorted(AuditEvent.objects.values_list("action", flat=True))
        assert roles == {
            f"admin.{slug}": Role.FIRM_ADMIN,
            f"advisor.{slug}": Role.ADVISOR,
            f"compliance.{slug}": Role.COMPLIANCE,
            f"investor.{slug}": Role.INVESTOR,
        }
        # Memberships went through the audited service.
        assert actions == ["firm.created"] + ["membership.created"] * 4
        assert audit_chain_verify(firm=firm).ok
        for username in roles:
            user = authenticate(username=username, password=DEMO_PASSWORD)
            assert user is not None, username
            assert not user.is_staff
            assert not user.is_superuser


@pytest.mark.django_db
def test_platform_superuser_has_no_membership():
    demo_seed()
    platform = User.objects.get(username="platform")
    assert platform.is_superuser
    assert platform.is_staff
    assert platform.check_password(DEMO_PASSWORD)
    for firm in Firm.objects.all():
        with firm_context(firm):
            assert not Membership.objects.filter(user=platform).exists()


@pytest.mark.django_db
def test_seed_twice_creates_nothing_and_audits_nothing():
    demo_seed()
    users, events = User.objects.count(), audit_counts()
    again = demo_seed()
    assert not again.created_anything
    assert User.objects.count() == users == 13
    assert audit_counts() == events


@pytest.mark.django_db
def test_seed_repairs_what_was_changed_and_audits_the_repair():
    demo_seed()
    alpine, cedar = Firm.objects.get(slug="alpine"), Firm.objects.get(slug="cedar")
    with firm_context(alpine):
        membership = Membership.objects.get(user__username="advisor.alpine")
        membership.role = Role.INVESTOR
        membership.save()
    with firm_context(cedar):
        membership = Membership.objects.get(user__username="compliance.cedar")
        membership.is_active = False
        membership.save()
    result = demo_seed()
    assert result.firms["alpine"].counts == {"memberships corrected": 1}
    assert result.firms["cedar"].counts == {"memberships corrected": 1}
    assert result.firms["bayside"].counts == {}
    with firm_context(alpine):
        assert Membership.objects.get(user__username="advisor.alpine").role == Role.ADVISOR
        assert AuditEvent.objects.filter(action="membership.changed").count() == 1
    with firm_context(cedar):
        assert Membership.objects.get(user__username="compliance.cedar").is_active


@pytest.mark.django_db
def test_seed_completes_a_partial_world():
    Firm.objects.create(slug="bayside", name="Bayside (renamed by its admin)")
    result = demo_seed()
    assert result.firms["bayside"].counts == {"users": 4, "memberships": 4}
    bayside = Firm.objects.get(slug="bayside")
    assert bayside.name == "Bayside (renamed by its admin)"  # not overwritten
    with firm_context(bayside):
        assert not AuditEvent.objects.filter(action="firm.created").exists()


@pytest.mark.django_db
def test_existing_user_of_another_case_is_reused():
    User.objects.create_user(username="Advisor.Alpine", password="own-password-123")
    demo_seed()
    assert User.objects.filter(username__iexact="advisor.alpine").count() == 1


@pytest.mark.django_db
def test_firm_seeders_extend_the_seed(monkeypatch):
    seen = []

    def seed_clients(firm, spec):
        seen.append((firm.slug, current_firm(), spec.name))
        return Created({"clients": 2})

    monkeypatch.setattr(demo, "FIRM_SEEDERS", [seed_clients])
    monkeypatch.setattr(demo, "GLOBAL_SEEDERS", [lambda: Created({"prices": 10})])
    lines: list[str] = []
    demo_seed(progress=lines.append)
    assert [(slug, firm.slug if firm else None) for slug, firm, _ in seen] == [
        ("alpine", "alpine"),
        ("bayside", "bayside"),
        ("cedar", "cedar"),
    ]
    assert lines[0] == "shared data: created 10 prices"
    assert "2 clients" in lines[1]


@pytest.mark.django_db
def test_command_prints_a_line_per_firm():
    out = StringIO()
    call_command("seed_demo", stdout=out)
    lines = out.getvalue().splitlines()
    for spec in DEMO_FIRMS:
        (line,) = [x for x in lines if x.startswith(spec.slug)]
        assert spec.name in line
        assert "1 firm, 4 users, 4 memberships" in line
    assert "demo seeded" in lines[-1]

    out = StringIO()
    call_command("seed_demo", stdout=out)
    assert out.getvalue().count("already seeded, nothing to do") == 3
    assert "nothing created" in out.getvalue()


@pytest.mark.django_db
def test_command_refuses_production_settings(settings):
    settings.SETTINGS_MODULE = "advisor.settings.prod"
    with pytest.raises(CommandError, match="production"):
        call_command("seed_demo", stdout=StringIO())
    assert not Firm.objects.exists()


@pytest.mark.django_db
def test_summary_lists_every_login_and_the_counts():
    demo_seed()
    summary = demo_summary()
    assert summary.missing == ()
    assert [f.slug for f in summary.firms] == ["alpine", "bayside", "cedar"]
    assert all(f.members == 4 and f.audit_events == 5 and f.chain_ok for f in summary.firms)
    assert len(summary.logins) == 13
    assert summary.users == 13

    out = StringIO()
    call_command("demo_summary", "--url", "http://127.0.0.1:8765", stdout=out)
    text = out.getvalue()
    assert "http://127.0.0.1:8765/" in text
    assert DEMO_PASSWORD in text
    for spec in DEMO_FIRMS:
        assert spec.name in text
        for role in Role:
            assert spec.username(role) in text
    assert "platform" in text
    assert "Platform superuser" in text
    for label in ("Firm admin", "Advisor", "Compliance officer", "Investor"):
        assert label in text
    assert "Totals: 3 firms, 13 users, 15 audit events" in text


@pytest.mark.django_db
def test_summary_before_seeding_says_what_to_run():
    out = StringIO()
    call_command("demo_summary", stdout=out)
    assert "Not seeded yet" in out.getvalue()
    assert "seed_demo" in out.getvalue()

"""The notification preferences page: per event type, channels and immediately or in a
daily digest; regulatory events shown locked and never taken from the form."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction
from django.test import Client as WebClient

from accounts.models import Role
from accounts.models_notifications import NotificationPreference
from accounts.notifications.events import EVENT_TYPES
from accounts.tenancy import firm_context
from compliance.models import AuditEvent
from tests.conftest import FirmWorld

pytestmark = pytest.mark.django_db

URL = "/notifications/preferences/"


def _client(world: FirmWorld, role: str) -> WebClient:
    web = WebClient()
    web.force_login(world.user(role))
    return web


def _form(page: str) -> dict[str, str]:
    """What the browser would submit: every enabled box that is checked, every select."""
    import re

    data: dict[str, str] = {}
    for tag in re.findall(r"<input [^>]*>", page):
        if 'type="checkbox"' in tag and " checked" in tag and " disabled" not in tag:
            data[re.search(r'name="([^"]+)"', tag)[1]] = "on"  # type: ignore[index]
    for name, body in re.findall(r'<select name="([^"]+)"[^>]*>(.*?)</select>', page, re.S):
        if "disabled" in re.search(rf'<select name="{name}"[^>]*>', page)[0]:  # type: ignore[index]
            continue
        data[name] = re.search(r'<option value="([^"]+)" selected', body)[1]  # type: ignore[index]
    return data


def _prefs(world: FirmWorld, role: str) -> dict[str, tuple[list[str], str]]:
    with firm_context(world.firm), transaction.atomic():
        return {
            p.event_type: (p.channels, p.mode)
            for p in NotificationPreference.objects.filter(user=world.user(role))
        }


def test_an_investor_sees_their_event_types_with_regulatory_ones_locked(firm_a: Any) -> None:
    page = _client(firm_a, Role.INVESTOR).get(URL)
    assert page.status_code == 200
    html = page.content.decode()
    for spec in EVENT_TYPES.values():
        shown = f'data-testid="pref-{spec.code}"' in html
        assert shown == (spec.audience == "investor"), spec.code
    locked = html.split('data-testid="pref-rebalance_executed"')[1].split("</tr>")[0]
    assert "Regulatory notice" in locked
    assert locked.count("disabled") == 3  # both channels and the mode
    free = html.split('data-testid="pref-strategy_assigned"')[1].split("</tr>")[0]
    assert "disabled" not in free


def test_staff_see_staff_events_and_the_audit_chain_one_locked(firm_a: Any) -> None:
    html = _client(firm_a, Role.COMPLIANCE).get(URL).content.decode()
    assert 'data-testid="pref-orders_blocked"' in html
    assert 'data-testid="pref-rebalance_executed"' not in html
    row = html.split('data-testid="pref-audit_chain_broken"')[1].split("</tr>")[0]
    assert 'data-locked="1"' in html.split('data-testid="pref-audit_chain_broken"')[1][:20]
    assert "Regulatory notice" in row


def test_saving_changes_only_what_changed_and_never_a_locked_event(firm_a: Any) -> None:
    web = _client(firm_a, Role.INVESTOR)
    data = _form(web.get(URL).content.decode())
    assert data["strategy_assigned-email"] == "on"
    assert "rebalance_executed-email" not in data  # disabled: the browser sends nothing
    del data["strategy_assigned-email"]
    data["risk_profile_expiring-mode"] = "digest"
    # A crafted post cannot switch a regulatory event off or delay it.
    data["rebalance_executed-mode"] = "digest"
    response = web.post(URL, data)
    assert response.status_code == 302
    assert _prefs(firm_a, Role.INVESTOR) == {
        "strategy_assigned": (["in_app"], "immediate"),
        "risk_profile_expiring": (["in_app", "email"], "digest"),
    }
    with firm_context(firm_a.firm), transaction.atomic():
        assert AuditEvent.objects.filter(action="notification.preference_set").count() == 2
    html = web.get(URL).content.decode()
    again = _form(html)
    assert again["strategy_assigned-in_app"] == "on"
    assert "strategy_assigned-email" not in again
    assert again["risk_profile_expiring-mode"] == "digest"
    assert "Your notification preferences are saved." in html


def test_a_bad_choice_is_refused_naming_the_event(firm_a: Any) -> None:
    web = _client(firm_a, Role.INVESTOR)
    data = _form(web.get(URL).content.decode())
    data["strategy_assigned-mode"] = "hourly"
    response = web.post(URL, data)
    assert response.status_code == 400
    row = response.content.decode().split('data-testid="pref-strategy_assigned"')[1]
    assert "Mode must be" in row.split("</tr>")[0]
    assert _prefs(firm_a, Role.INVESTOR) == {}


def test_preferences_are_the_users_own(firm_a: Any, firm_b: Any) -> None:
    _client(firm_a, Role.INVESTOR).post(URL, {"strategy_assigned-in_app": "on"})
    assert set(_prefs(firm_a, Role.INVESTOR)) >= {"strategy_assigned"}
    assert _prefs(firm_a, Role.ADVISOR) == {}
    assert _prefs(firm_b, Role.INVESTOR) == {}
    assert WebClient().get(URL).status_code == 302  # to the login page

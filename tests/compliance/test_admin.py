"""The audit trail in the Django admin: read-only, one firm at a time."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.urls import reverse

from accounts.models import User
from accounts.tenancy import current_firm, firm_context
from compliance.models import AuditEvent
from compliance.services import audit_record


@pytest.fixture
def admin_client(client, db):
    client.force_login(User.objects.create_superuser(username="platform", password="pw-12345-x"))
    return client


@pytest.fixture
def events(firm_a, firm_b):
    with firm_context(firm_a.firm):
        a = [audit_record(action="test.alpha", payload={"n": n}) for n in range(3)]
    with firm_context(firm_b.firm):
        b = [audit_record(action="test.beta", payload={"secret": "beta-only"})]
    return a, b


CHANGELIST = "admin:compliance_auditevent_changelist"


@pytest.mark.django_db
def test_list_without_a_firm_is_empty_and_says_why(admin_client, events):
    response = admin_client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    assert "Choose a firm" in response.text
    assert "test.alpha" not in response.text
    assert "test.beta" not in response.text
    assert current_firm() is None


@pytest.mark.django_db
def test_list_of_one_firm_shows_its_events_only(admin_client, events, firm_a):
    response = admin_client.get(reverse(CHANGELIST), {"firm__id__exact": firm_a.firm.pk})
    assert response.status_code == 200
    assert response.text.count("test.alpha") >= 3
    assert "test.beta" not in response.text


@pytest.mark.django_db
def test_event_page_is_read_only(admin_client, events, firm_a):
    event = events[0][1]
    url = reverse("admin:compliance_auditevent_change", args=[event.pk])
    query = "?" + urlencode({"_changelist_filters": f"firm__id__exact={firm_a.firm.pk}"})
    response = admin_client.get(url + query)
    assert response.status_code == 200
    assert event.hash in response.text
    assert "&quot;n&quot;: 1" in response.text
    assert 'name="_save"' not in response.text

    # Change, add and delete are refused.
    assert admin_client.post(url + query, {"action": "changed"}).status_code == 403
    assert admin_client.get(reverse("admin:compliance_auditevent_add")).status_code == 403
    delete = reverse("admin:compliance_auditevent_delete", args=[event.pk])
    assert admin_client.post(delete + query, {"post": "yes"}).status_code == 403
    with firm_context(firm_a.firm):
        assert AuditEvent.objects.get(pk=event.pk).action == "test.alpha"


@pytest.mark.django_db
def test_event_of_another_firm_is_not_found(admin_client, events, firm_a):
    foreign = events[1][0]
    url = reverse("admin:compliance_auditevent_change", args=[foreign.pk])
    query = "?" + urlencode({"_changelist_filters": f"firm__id__exact={firm_a.firm.pk}"})
    response = admin_client.get(url + query)
    assert response.status_code == 302  # the admin's "does not exist" redirect
    response = admin_client.get(url)  # no firm at all
    assert response.status_code == 302

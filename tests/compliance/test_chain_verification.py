"""The recorded chain checks and the nightly verification: a break found in an event
edited as the database owner is recorded, emailed to the firm's compliance officers
and handed to every ON_CHAIN_BROKEN hook."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.core import mail
from django.db import DatabaseError, connections, transaction

from accounts.models import Membership, Role, User
from accounts.tenancy.context import firm_context
from advisor.celery import app
from compliance import tasks
from compliance.models import AuditEvent, ChainVerification
from compliance.services import audit_record
from compliance.services import verification as verification_service
from tests.compliance.test_audit_trail import owner_execute

TABLE = "compliance_auditevent"


def record(firm: Any, count: int) -> list[AuditEvent]:
    with firm_context(firm), transaction.atomic():
        return [audit_record(action=f"n.{i}", payload={"i": i}) for i in range(count)]


def owner_tamper(firm: Any, event_id: int) -> None:
    """Alter an event as the owner: triggers disabled (DDL), the firm set (RLS is forced)."""
    with transaction.atomic(using="owner"), connections["owner"].cursor() as cursor:
        cursor.execute("SELECT set_config('app.firm_id', %s, true)", [str(firm.pk)])
        cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER USER")
        cursor.execute(
            f"UPDATE {TABLE} SET payload = '{{\"i\": 999}}'::jsonb WHERE id = %s", [event_id]
        )
        assert cursor.rowcount == 1
        cursor.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER USER")


def checks(firm: Any) -> list[ChainVerification]:
    with firm_context(firm), transaction.atomic():
        return list(ChainVerification.objects.order_by("checked_at", "pk"))


@pytest.fixture
def hook_calls() -> Any:
    calls: list[tuple[int, Any]] = []

    def hook(firm_id: int, verification: Any) -> None:
        calls.append((firm_id, verification))

    def broken_hook(firm_id: int, verification: Any) -> None:
        raise RuntimeError("a failing hook must not stop the others")

    verification_service.ON_CHAIN_BROKEN.extend([broken_hook, hook])
    yield calls
    verification_service.ON_CHAIN_BROKEN.remove(broken_hook)
    verification_service.ON_CHAIN_BROKEN.remove(hook)


@pytest.mark.django_db(transaction=True, databases=["default", "owner"])
def test_nightly_task_records_the_break_emails_officers_and_calls_hooks(firm_a, firm_b, hook_calls):
    events = record(firm_a.firm, 5)
    record(firm_b.firm, 3)
    # a second compliance officer of firm A, and one without an address
    with firm_context(firm_a.firm), transaction.atomic():
        second = User.objects.create_user(username="second.co", email="second@alpha.test")
        Membership.objects.create(user=second, role=Role.COMPLIANCE)
        silent = User.objects.create_user(username="silent.co", email="")
        Membership.objects.create(user=silent, role=Role.COMPLIANCE)

    assert tasks.audit_chain_verify_all_firms() == 2  # eager: one task per firm
    assert [c.ok for c in checks(firm_a.firm)] == [True]
    assert [c.ok for c in checks(firm_b.firm)] == [True]
    assert mail.outbox == []
    assert hook_calls == []

    owner_tamper(firm_a.firm, events[2].pk)
    assert tasks.audit_chain_verify_all_firms() == 2

    latest = checks(firm_a.firm)[-1]
    assert not latest.ok
    assert latest.first_broken_seq == events[2].seq
    assert latest.first_broken_event_id == events[2].pk
    assert latest.events_checked == events[2].seq - 1
    assert "altered" in latest.message
    assert latest.triggered_by == verification_service.NIGHTLY_LABEL
    assert checks(firm_b.firm)[-1].ok  # the other firm's chain is untouched

    # The notifications layer (registered on the hook) emails each officer with an
    # address, once; the one without an address has it in the app only.
    messages = [m for m in mail.outbox if "Audit trail integrity" in m.subject]
    assert sorted(to for m in messages for to in m.to) == sorted(
        [firm_a.user("compliance").email, "second@alpha.test"]
    )
    message = messages[0]
    assert f"#{events[2].seq}" in message.subject
    assert firm_a.firm.name in message.subject
    assert latest.message in message.body
    assert f"verify_audit --firm {firm_a.firm.slug}" in message.body
    assert getattr(message, "alternatives", None)  # an HTML part too

    assert [(firm_id, v.pk) for firm_id, v in hook_calls] == [(firm_a.firm.pk, latest.pk)]

    # the checks themselves are audited, the break under its own action
    with firm_context(firm_a.firm), transaction.atomic():
        audited = list(
            AuditEvent.objects.filter(object_type="chain_verification")
            .order_by("seq")
            .values_list("action", "object_id")
        )
    assert audited[-1] == ("audit_chain.broken", str(latest.pk))


@pytest.mark.django_db(transaction=True, databases=["default", "owner"])
def test_a_manual_check_records_without_alerting(firm_a, hook_calls):
    events = record(firm_a.firm, 3)
    owner_tamper(firm_a.firm, events[0].pk)
    verification = verification_service.audit_chain_verification_run(
        firm=firm_a.firm, actor=firm_a.user("compliance")
    )
    assert not verification.ok
    assert verification.first_broken_seq == events[0].seq
    assert verification.triggered_by == firm_a.user("compliance").username
    assert mail.outbox == []
    assert hook_calls == []


def test_the_nightly_check_is_in_the_beat_schedule():
    entry = settings.CELERY_BEAT_SCHEDULE["audit-chain-nightly"]
    assert entry["task"] == "compliance.audit_chain_verify_all_firms"
    assert entry["task"] in app.tasks
    assert "compliance.audit_chain_verify" in app.tasks


def test_alert_refuses_an_intact_check():
    with pytest.raises(ValueError, match="intact"):
        verification_service.audit_chain_break_alert(
            firm=None,  # type: ignore[arg-type]
            verification=ChainVerification(ok=True, events_checked=1),
        )


# --- recorded checks are append-only ------------------------------------------------


@pytest.mark.django_db(transaction=True, databases=["default", "owner"])
def test_a_recorded_check_cannot_be_changed_or_deleted_by_anyone(firm_a):
    record(firm_a.firm, 3)
    owner_tamper(firm_a.firm, record(firm_a.firm, 1)[0].pk)
    broken = verification_service.audit_chain_nightly_check(firm=firm_a.firm)
    assert not broken.ok
    table = "compliance_chainverification"

    with firm_context(firm_a.firm):  # the application role, through the ORM
        with pytest.raises(DatabaseError), transaction.atomic():
            ChainVerification.objects.filter(pk=broken.pk).update(ok=True, message="")
        with pytest.raises(DatabaseError), transaction.atomic():
            ChainVerification.objects.filter(pk=broken.pk).delete()

    for sql in (f"UPDATE {table} SET ok = true", f"DELETE FROM {table}", f"TRUNCATE {table}"):
        with pytest.raises(DatabaseError, match="append-only"):
            owner_execute(firm_a.firm, sql)

    (kept,) = checks(firm_a.firm)
    assert (kept.pk, kept.ok, kept.message) == (broken.pk, False, broken.message)

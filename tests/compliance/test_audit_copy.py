"""Batches of audit events written through a staged COPY (``_copy_events``).

From ``COPY_THRESHOLD`` (50) events on, ``audit_record_many`` renders the events as
COPY text instead of calling ``bulk_create``. What it writes must be what it hashed:
the same payloads, reasons and text columns (tabs, newlines, backslashes, unicode and
nested values included), the primary keys handed back in ``seq`` order, and a chain
that verifies and still breaks where a row was altered.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import User
from accounts.tenancy import firm_context
from compliance.audit_chain import GENESIS_HASH, event_hash, to_canonical
from compliance.audit_context import request_id_context
from compliance.models import AuditEvent
from compliance.selectors import audit_chain_verify
from compliance.services import AuditEntry, audit_record, audit_record_many
from compliance.services import audit as audit_service
from tests.compliance.test_audit_trail import (
    BOTH,
    TABLE,
    _payloads,
    _text,
    fields_of,
    owner_tamper,
)

# Text that COPY's text format must escape, or could misread if left alone.
AWKWARD = [
    "tab\there",
    "new\nline",
    "carriage\rreturn",
    "back\\slash",
    "\\N",  # COPY's NULL marker, as text
    "\\.",  # COPY's end-of-data marker
    "\\t not a tab",
    "ünïcödé ✓ 漢字 עברית 🙂",
    "quote \" and ' apostrophe",
    "",
]


def awkward(i: int) -> str:
    return AWKWARD[i % len(AWKWARD)]


def payload_of(i: int) -> dict[str, Any]:
    return {
        "i": i,
        "text": awkward(i),
        "nested": {
            "list": [awkward(i + 1), i, None, True, [awkward(i + 2), {"deep": awkward(i + 3)}]],
            awkward(i + 4) or "empty key": {"k\tey": awkward(i + 5)},
        },
        "amount": Decimal("1234.5600"),
        "ratio": 0.1,
        "big": 10**25,
    }


def entries_of(n: int, actor: User | None) -> list[AuditEntry]:
    return [
        AuditEntry(
            action=f"test.copy.{i % 3}",
            object_type=f"type\t{i % 2}",
            object_id=f"{i}\\{awkward(i)[:20]}" if i % 4 else i,
            payload=payload_of(i),
            reasons=[awkward(i), {"rule": awkward(i + 6), "limit": Decimal("0.25")}, [i, "x"]],
            actor=actor if i % 2 else None,
            actor_label="" if i % 2 else f"job\n{awkward(i)[:10]}",
            run_id=f"run\t{i % 5}",
        )
        for i in range(n)
    ]


@pytest.fixture
def copies(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each batch ``_copy_events`` wrote."""
    sizes: list[int] = []
    real = audit_service._copy_events

    def spy(batch: Any, chained: Any, using: str, *, returning: bool) -> Any:
        sizes.append(len(batch.pending))
        return real(batch, chained, using, returning=returning)

    monkeypatch.setattr(audit_service, "_copy_events", spy)
    return sizes


def stored_in_seq_order() -> list[AuditEvent]:
    return list(AuditEvent.objects.order_by("seq"))


@pytest.mark.django_db
@pytest.mark.parametrize("n", [49, 50, 120])
def test_a_batch_is_stored_as_given_and_verifies(firm_a, copies, n):
    assert audit_service.COPY_THRESHOLD == 50
    actor = firm_a.user("advisor")
    entries = entries_of(n, actor)
    with firm_context(firm_a.firm), transaction.atomic():
        head = [audit_record(action="test.before", payload={"n": k}) for k in range(3)]
        with request_id_context("req\t1\\\n"):
            events = audit_record_many(entries=entries)
        stored = stored_in_seq_order()
    assert copies == ([n] if n >= 50 else [])

    assert [e.seq for e in events] == list(range(4, n + 4))
    assert all(e.pk is not None for e in events)
    assert all(not e._state.adding for e in events)
    assert len({e.pk for e in events}) == n
    # The primary keys handed back are the stored rows', in seq order.
    assert [e.pk for e in stored] == [e.pk for e in head] + [e.pk for e in events]
    for entry, event, row in zip(entries, events, stored[3:], strict=True):
        assert row.payload == to_canonical(dict(entry.payload))
        assert row.reasons == to_canonical(list(entry.reasons))
        assert fields_of(row) == fields_of(event)
        assert (row.prev_hash, row.hash) == (event.prev_hash, event.hash)
        assert event_hash(fields_of(row), row.prev_hash) == row.hash
        assert row.object_id == str(entry.object_id)
        assert row.object_type == entry.object_type
        assert row.run_id == entry.run_id
        assert row.request_id == "req\t1\\\n"
        assert row.actor_id == (entry.actor.pk if entry.actor else None)
        assert row.actor_label == (entry.actor_label or actor.get_username())
    assert events[0].prev_hash == head[-1].hash
    for before, after in itertools.pairwise(events):
        assert after.prev_hash == before.hash
    check = audit_chain_verify(firm=firm_a.firm)
    assert check.ok, check
    assert check.events_checked == n + 3


@pytest.mark.django_db
def test_copy_and_bulk_create_store_the_same_content(firm_a, firm_b, copies):
    # Entries without an actor, so that both firms can write the very same ones.
    entries = entries_of(50, None)
    with firm_context(firm_a.firm), transaction.atomic():
        audit_record_many(entries=entries[:49])
        by_bulk_create = stored_in_seq_order()
    with firm_context(firm_b.firm), transaction.atomic():
        audit_record_many(entries=entries)
        by_copy = stored_in_seq_order()
    assert copies == [50]

    def content(e: AuditEvent) -> tuple[Any, ...]:
        return (e.seq, e.action, e.object_type, e.object_id, e.payload, e.reasons, e.run_id)

    assert [content(e) for e in by_copy[:49]] == [content(e) for e in by_bulk_create]


@pytest.mark.django_db
def test_a_batch_starts_a_chain(firm_a, copies):
    with firm_context(firm_a.firm), transaction.atomic():
        events = audit_record_many(entries=entries_of(60, None))
    assert copies == [60]
    assert (events[0].seq, events[0].prev_hash) == (1, GENESIS_HASH)
    assert audit_chain_verify(firm=firm_a.firm).events_checked == 60


@pytest.mark.django_db
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(payload=_payloads, reasons=st.lists(_payloads | _text, max_size=3))
def test_any_payload_survives_the_copy(firm_a, payload, reasons):
    entries = [
        AuditEntry(action="test.copy", object_id=i, payload={**payload, "#": i}, reasons=reasons)
        for i in range(50)
    ]
    with firm_context(firm_a.firm), transaction.atomic():
        events = audit_record_many(entries=entries)
        rows = {e.pk: e for e in AuditEvent.objects.filter(pk__in=[e.pk for e in events])}
    assert len(rows) == 50
    for entry, event in zip(entries, events, strict=True):
        row = rows[event.pk]
        assert row.seq == event.seq
        assert row.payload == to_canonical(dict(entry.payload))
        assert row.reasons == to_canonical(list(entry.reasons))
        assert row.hash == event.hash
    assert audit_chain_verify(firm=firm_a.firm).ok


@pytest.mark.django_db(transaction=True, databases=BOTH)
@pytest.mark.parametrize("n", [50, 120])
def test_a_tampered_row_of_a_copied_batch_breaks_verification(firm_a, n):
    with firm_context(firm_a.firm), transaction.atomic():
        events = audit_record_many(entries=entries_of(n, firm_a.user("advisor")))
    assert audit_chain_verify(firm=firm_a.firm).ok
    target = events[n // 2]
    owner_tamper(
        firm_a.firm,
        (
            f"UPDATE {TABLE} SET payload = jsonb_set(payload, '{{text}}', %s::jsonb) WHERE id = %s",
            ['"edited"', target.pk],
        ),
    )
    check = audit_chain_verify(firm=firm_a.firm)
    assert (check.ok, check.broken_event_id, check.broken_seq) == (False, target.pk, target.seq)
    assert check.events_checked == n // 2
    assert "content does not match its hash" in check.problem

"""The audit trail: append-only in the database, hash-chained, verified by ``verify_audit``."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from decimal import Decimal
from io import StringIO
from typing import Any

import psycopg.errors
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, connections, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import Firm
from accounts.tenancy import firm_context
from accounts.tenancy.checks import application_role
from compliance.audit_chain import GENESIS_HASH, HASHED_FIELDS, event_hash, to_canonical
from compliance.management.commands.verify_audit import Command as VerifyAudit
from compliance.models import AuditEvent
from compliance.selectors import audit_chain_verify
from compliance.services import AuditEntry, audit_record, audit_record_many

BOTH = ["default", "owner"]
TABLE = "compliance_auditevent"


def record(firm, count: int, prefix: str = "test.event") -> list[AuditEvent]:
    with firm_context(firm), transaction.atomic():
        return [
            audit_record(action=f"{prefix}.{i}", payload={"i": i, "amount": Decimal("1.10")})
            for i in range(1, count + 1)
        ]


def verify(*args: str) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("verify_audit", *args, stdout=out)
    except CommandError as exc:
        return exc.returncode, out.getvalue() + str(exc)
    return 0, out.getvalue()


def owner_execute(firm, sql: str) -> None:
    """One statement as the owner, in the firm (row-level security is forced), in its
    own transaction."""
    with transaction.atomic(using="owner"), connections["owner"].cursor() as cursor:
        cursor.execute("SELECT set_config('app.firm_id', %s, true)", [str(firm.pk)])
        cursor.execute(sql)


def owner_tamper(firm, *statements: tuple[str, list[Any]]) -> None:
    """Alter the trail as the owner: the triggers must be disabled first (DDL), and
    row-level security is forced, so the owner too needs the firm set."""
    owner = connections["owner"]
    with transaction.atomic(using="owner"), owner.cursor() as cursor:
        cursor.execute("SELECT set_config('app.firm_id', %s, true)", [str(firm.pk)])
        cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER USER")
        for sql, params in statements:
            cursor.execute(sql, params)
            assert cursor.rowcount == 1
        cursor.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER USER")


def fields_of(event: AuditEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in HASHED_FIELDS}


# --- the database refuses changes --------------------------------------------------

# Every refused statement runs in a transaction of its own (transactional tests), so
# that the error ends that transaction and nothing else.
APP_REFUSED = [
    ("UPDATE", f"UPDATE {TABLE} SET action = 'changed' WHERE id = %s"),
    ("DELETE", f"DELETE FROM {TABLE} WHERE id = %s"),
    ("TRUNCATE", f"TRUNCATE {TABLE}"),
]


@pytest.mark.django_db(transaction=True, databases=BOTH)
def test_application_role_cannot_change_its_own_firms_events(firm_a):
    (event,) = record(firm_a.firm, 1)

    def attempt(sql: str) -> None:
        with firm_context(firm_a.firm), transaction.atomic(), connection.cursor() as cursor:
            # The firm is set: the row is visible to this role, and still may not change.
            cursor.execute(f"SELECT count(*) FROM {TABLE} WHERE id = %s", [event.pk])
            assert cursor.fetchone() == (1,)
            cursor.execute(sql, [event.pk] if "%s" in sql else [])

    for verb, sql in APP_REFUSED:
        with pytest.raises(DatabaseError, match="permission denied") as refused:
            attempt(sql)
        assert isinstance(refused.value.__cause__, psycopg.errors.InsufficientPrivilege), verb
    assert audit_chain_verify(firm=firm_a.firm).events_checked == 1


@pytest.mark.django_db(transaction=True, databases=BOTH)
def test_application_role_cannot_change_events_through_the_orm(firm_a):
    (event,) = record(firm_a.firm, 1)
    with firm_context(firm_a.firm):
        with pytest.raises(DatabaseError), transaction.atomic():
            AuditEvent.objects.filter(pk=event.pk).update(action="changed")
        event.action = "changed"
        with pytest.raises(DatabaseError), transaction.atomic():
            event.save()
        with pytest.raises(DatabaseError), transaction.atomic():
            AuditEvent.objects.filter(pk=event.pk).delete()
        with transaction.atomic():
            assert AuditEvent.objects.get(pk=event.pk).action == "test.event.1"


@pytest.mark.django_db(databases=BOTH)
@pytest.mark.parametrize("table", [TABLE, "compliance_chainverification"])
def test_application_role_holds_insert_and_select_only(table):
    with connections["owner"].cursor() as cursor:
        privileges = {}
        for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES"):
            cursor.execute(
                "SELECT has_table_privilege(%s, %s, %s)", [application_role(), table, privilege]
            )
            privileges[privilege] = cursor.fetchone()[0]
    assert privileges == {
        "SELECT": True,
        "INSERT": True,
        "UPDATE": False,
        "DELETE": False,
        "TRUNCATE": False,
        "REFERENCES": False,
    }


@pytest.mark.django_db(transaction=True, databases=BOTH)
def test_triggers_refuse_even_the_owner(firm_a):
    record(firm_a.firm, 2)
    for sql in (f"UPDATE {TABLE} SET action = 'x'", f"DELETE FROM {TABLE}", f"TRUNCATE {TABLE}"):
        with pytest.raises(DatabaseError, match="append-only"):
            owner_execute(firm_a.firm, sql)
    assert audit_chain_verify(firm=firm_a.firm).events_checked == 2


# --- verify_audit finds what was done anyway ---------------------------------------


@pytest.mark.django_db(transaction=True, databases=BOTH)
def test_fresh_chain_verifies(firm_a, firm_b):
    record(firm_a.firm, 5)
    record(firm_b.firm, 2)
    code, output = verify("--firm", firm_a.firm.slug)
    assert code == 0, output
    assert f"{firm_a.firm.slug}: intact, 5 events checked" in output
    code, output = verify("--all")
    assert code == 0, output
    assert f"{firm_b.firm.slug}: intact, 2 events checked" in output


@pytest.mark.django_db(transaction=True, databases=BOTH)
def test_event_edited_as_the_owner_is_found_at_that_event(firm_a, firm_b):
    events = record(firm_a.firm, 5)
    record(firm_b.firm, 3)
    target = events[2]
    owner_tamper(
        firm_a.firm,
        (
            f"UPDATE {TABLE} SET payload = %s::jsonb WHERE id = %s",
            ['{"i": 3, "amount": "9.99"}', target.pk],
        ),
    )
    code, output = verify("--firm", firm_a.firm.slug)
    assert code == 1
    assert f"BROKEN at event id={target.pk} seq=3" in output
    assert "content does not match its hash" in output
    assert "2 events before it are intact" in output
    # The other firm's chain is untouched, and --all names only the broken firm.
    assert verify("--firm", firm_b.firm.slug)[0] == 0
    code, output = verify("--all")
    assert code == 1
    assert f"{firm_b.firm.slug}: intact, 3 events checked" in output
    assert f"{firm_a.firm.slug}: BROKEN at event id={target.pk} seq=3" in output


TAMPERED_COLUMNS = {
    "action": "'test.innocent'",
    "actor_label": "'someone.else'",
    "actor_id": "NULL",
    "created_at": "created_at - interval '1 microsecond'",
    "object_type": "'other'",
    "object_id": "'42'",
    "reasons": "'[\"made up\"]'::jsonb",
    "request_id": "'req-x'",
    "run_id": "'run-x'",
}


@pytest.mark.django_db(transaction=True, databases=BOTH)
def test_an_edit_of_any_column_is_found(firm_a):
    # One firm per column, so that each edit is the first break of its own chain.
    with transaction.atomic():
        firms = {
            c: Firm.objects.create(name=c, slug=f"tamper-{c}".replace("_", "-"))
            for c in TAMPERED_COLUMNS
        }
    targets = {}
    for column, value in TAMPERED_COLUMNS.items():
        with firm_context(firms[column]), transaction.atomic():
            events = [
                audit_record(action="a", actor=firm_a.user("advisor"), object_type="t")
                for _ in range(3)
            ]
        targets[column] = events[1]
        owner_tamper(
            firms[column], (f"UPDATE {TABLE} SET {column} = {value} WHERE id = %s", [events[1].pk])
        )
    for column, target in targets.items():
        check = audit_chain_verify(firm=firms[column])
        assert (check.ok, check.broken_event_id, check.broken_seq) == (False, target.pk, 2), column


@pytest.mark.django_db(transaction=True, databases=BOTH)
def test_rehashed_edit_is_found_at_the_next_event(firm_a):
    # Recomputing the edited event's hash does not help: the next event's link breaks.
    events = record(firm_a.firm, 4)
    target = events[1]
    fields = fields_of(target) | {"action": "test.innocent"}
    forged = event_hash(fields, target.prev_hash)
    owner_tamper(
        firm_a.firm,
        (
            f"UPDATE {TABLE} SET action = 'test.innocent', hash = %s WHERE id = %s",
            [forged, target.pk],
        ),
    )
    code, output = verify("--firm", firm_a.firm.slug)
    assert code == 1
    assert f"BROKEN at event id={events[2].pk} seq=3" in output
    assert "previous-hash link does not match" in output


@pytest.mark.django_db(transaction=True, databases=BOTH)
def test_deleted_middle_event_is_a_sequence_gap(firm_a):
    events = record(firm_a.firm, 5)
    owner_tamper(firm_a.firm, (f"DELETE FROM {TABLE} WHERE id = %s", [events[2].pk]))
    code, output = verify("--firm", firm_a.firm.slug)
    assert code == 1
    assert f"BROKEN at event id={events[3].pk} seq=4" in output
    assert "sequence gap: expected #3, found #4" in output


@pytest.mark.django_db(transaction=True, databases=BOTH)
def test_exit_status_of_the_command_line(firm_a):
    events = record(firm_a.firm, 2)
    argv = ["manage.py", "verify_audit", "--firm", firm_a.firm.slug]
    VerifyAudit(stdout=StringIO()).run_from_argv(argv)  # returns: exit status 0

    owner_tamper(firm_a.firm, (f"UPDATE {TABLE} SET action = 'x' WHERE id = %s", [events[0].pk]))
    out, err = StringIO(), StringIO()
    with pytest.raises(SystemExit) as exited:
        VerifyAudit(stdout=out, stderr=err).run_from_argv(argv)
    assert exited.value.code == 1
    assert f"id={events[0].pk} seq=1" in out.getvalue()
    assert f"id={events[0].pk} seq=1" in err.getvalue()

    with pytest.raises(SystemExit) as exited:
        VerifyAudit(stdout=out, stderr=err).run_from_argv(
            ["manage.py", "verify_audit", "--firm", "no-such-firm"]
        )
    assert exited.value.code == 2
    assert "unknown firm 'no-such-firm'" in err.getvalue()


@pytest.mark.django_db
def test_unknown_firm_exits_2():
    code, output = verify("--firm", "no-such-firm")
    assert code == 2
    assert "unknown firm 'no-such-firm'" in output


@pytest.mark.django_db
def test_firm_or_all_is_required():
    with pytest.raises(CommandError, match="one of the arguments --firm --all is required"):
        call_command("verify_audit")


@pytest.mark.django_db
def test_empty_chain_verifies(firm_a):
    code, output = verify("--firm", firm_a.firm.slug)
    assert code == 0
    assert "intact, 0 events checked" in output


# --- appending -----------------------------------------------------------------------


@pytest.mark.django_db
def test_sequential_batches_link_into_one_chain(firm_a):
    with firm_context(firm_a.firm):
        first = audit_record_many(
            entries=[AuditEntry(action="batch.one", payload={"n": n}) for n in range(3)]
        )
        second = audit_record_many(
            entries=[AuditEntry(action="batch.two", payload={"n": n}) for n in range(2)]
        )
        assert audit_record_many(entries=[]) == []
    chain = first + second
    assert [e.seq for e in chain] == [1, 2, 3, 4, 5]
    assert chain[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(chain):
        assert after.prev_hash == before.hash
    assert audit_chain_verify(firm=firm_a.firm).events_checked == 5


@pytest.mark.django_db
def test_each_firm_has_its_own_chain(firm_a, firm_b):
    record(firm_a.firm, 2)
    (b1,) = record(firm_b.firm, 1)
    assert (b1.seq, b1.prev_hash) == (1, GENESIS_HASH)


@pytest.mark.django_db(transaction=True, databases=BOTH)
def test_concurrent_appends_keep_the_chain_linear(firm_a):
    writers, per_writer = 4, 15
    start = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(writer: int) -> None:
        try:
            start.wait()
            with firm_context(firm_a.firm):
                for n in range(per_writer):
                    # Each append in its own transaction, all racing for the chain head.
                    audit_record(action="test.concurrent", payload={"writer": writer, "n": n})
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with firm_context(firm_a.firm), transaction.atomic():
        seqs = list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, writers * per_writer + 1))
    check = audit_chain_verify(firm=firm_a.firm)
    assert check.ok
    assert check.events_checked == writers * per_writer


def test_hashed_fields_cover_every_column():
    columns = {f.attname for f in AuditEvent._meta.concrete_fields}
    assert columns - {"id", "prev_hash", "hash"} == set(HASHED_FIELDS)


def test_hash_changes_with_every_field_and_the_previous_hash():
    fields: dict[str, Any] = {
        "firm_id": 1,
        "seq": 1,
        "created_at": dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC),
        "actor_id": 7,
        "actor_label": "advisor",
        "action": "a",
        "object_type": "t",
        "object_id": "1",
        "payload": {"x": "1.0"},
        "reasons": ["r"],
        "request_id": "req",
        "run_id": "run",
    }
    base = event_hash(fields, GENESIS_HASH)
    assert event_hash(fields, "1" * 64) != base
    for name in HASHED_FIELDS:
        value = fields[name]
        changed = (
            value + dt.timedelta(microseconds=1)
            if isinstance(value, dt.datetime)
            else value + 1
            if isinstance(value, int)
            else [*value, "x"]
            if isinstance(value, list)
            else {**value, "y": 1}
            if isinstance(value, dict)
            else value + "x"
        )
        assert event_hash({**fields, name: changed}, GENESIS_HASH) != base, name


# Text without NUL: PostgreSQL's jsonb cannot hold \u0000 (see the NUL test below).
_text = st.text(st.characters(exclude_characters="\x00", codec="utf-8"), max_size=20)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.decimals(allow_nan=True, allow_infinity=True, places=None)
    | st.floats(allow_nan=True, allow_infinity=True)
    | _text
    | st.dates()
    | st.datetimes(timezones=st.just(dt.UTC))
)
_payloads = st.dictionaries(
    _text,
    st.recursive(
        _scalars,
        lambda children: (
            st.lists(children, max_size=4)
            | st.tuples(children, children)
            | st.dictionaries(_text, children, max_size=4)
        ),
        max_leaves=12,
    ),
    max_size=6,
)


@pytest.mark.django_db
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(payload=_payloads, reasons=st.lists(_text | st.decimals(allow_nan=False), max_size=3))
def test_hash_recomputed_from_the_database_matches(firm_a, payload, reasons):
    with firm_context(firm_a.firm), transaction.atomic():
        written = audit_record(
            action="test.property", object_id=7, payload=payload, reasons=reasons, actor_label="ü✓"
        )
        stored = AuditEvent.objects.get(pk=written.pk)
    assert stored.payload == to_canonical(payload)
    assert stored.hash == written.hash
    assert event_hash(fields_of(stored), stored.prev_hash) == stored.hash
    check = audit_chain_verify(firm=firm_a.firm)
    assert check.ok, check


def test_payload_values_that_cannot_be_hashed_faithfully_are_refused():
    with pytest.raises(TypeError, match="not serialisable"):
        to_canonical({"x": object()})


# Regression (fixed in compliance/audit_chain.py): text with NUL used to pass
# to_canonical, and PostgreSQL then refused the jsonb with a DataError that aborted the
# caller's whole transaction. It is refused up front, before any SQL is sent.
def test_text_with_nul_is_refused_before_reaching_the_database():
    with pytest.raises(ValueError, match="NUL"):
        to_canonical({"note": "a\x00b"})

"""Tenancy at the database layer: row-level security as the application role.

Every query here runs through ``default``, the application role, exactly as the
running code does; raw SQL shows that the database refuses on its own, whatever the
ORM does.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import DatabaseError, connection, connections, transaction

from accounts.models import Membership, Role, User
from accounts.tenancy import NoFirmSelected, TenancyError, firm_context
from accounts.tenancy.checks import application_role
from compliance.models import AuditEvent
from compliance.services import audit_record


def raw(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return list(cursor.fetchall()) if cursor.description else []


def count(table: str) -> int:
    (row,) = raw(f"SELECT count(*) FROM {table}")
    return int(row[0])


def firm_ids(table: str) -> set[int]:
    return {int(r[0]) for r in raw(f"SELECT DISTINCT firm_id FROM {table}")}


@pytest.fixture
def audited(firm_a, firm_b):
    """Two audit events in firm A, one in firm B."""
    with firm_context(firm_a.firm):
        audit_record(action="test.a1")
        audit_record(action="test.a2")
    with firm_context(firm_b.firm):
        audit_record(action="test.b1")
    return firm_a, firm_b


@pytest.mark.django_db
def test_default_connection_is_the_application_role():
    assert raw("SELECT current_user") == [(application_role(),)]
    (flags,) = raw("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
    assert flags == (False, False)


@pytest.mark.django_db
@pytest.mark.parametrize("model", [Membership, AuditEvent])
def test_orm_query_without_firm_raises(audited, model):
    with pytest.raises(NoFirmSelected):
        list(model.objects.all())
    with pytest.raises(NoFirmSelected):
        model.objects.count()
    with pytest.raises(NoFirmSelected):
        model.objects.create()


@pytest.mark.django_db
def test_raw_sql_without_firm_sees_zero_rows(audited):
    with transaction.atomic():
        assert count("accounts_membership") == 0
        assert count("compliance_auditevent") == 0
    # The test itself runs in a transaction; outside one it is the same.
    assert count("compliance_auditevent") == 0


@pytest.mark.django_db
def test_firm_sees_only_its_rows_through_raw_sql(audited):
    firm_a, firm_b = audited
    with firm_context(firm_a.firm), transaction.atomic():
        assert count("compliance_auditevent") == 2
        assert firm_ids("compliance_auditevent") == {firm_a.firm.pk}
        assert firm_ids("accounts_membership") == {firm_a.firm.pk}
        # Asking for the other firm by id finds nothing, as if it did not exist.
        rows = raw("SELECT id FROM compliance_auditevent WHERE firm_id = %s", [firm_b.firm.pk])
        assert rows == []
    with firm_context(firm_b.firm), transaction.atomic():
        assert count("compliance_auditevent") == 1
        assert firm_ids("accounts_membership") == {firm_b.firm.pk}


INSERT_MEMBERSHIP = (
    "INSERT INTO accounts_membership (firm_id, user_id, role, is_active, created_at)"
    " VALUES (%s, %s, %s, true, now())"
)


# The statements the database refuses run in a transaction of their own (a
# transactional test), so that nothing but the database itself is under test here.
@pytest.mark.django_db(transaction=True, databases=["default", "owner"])
def test_insert_for_another_firm_is_rejected_by_the_database(firm_a, firm_b):
    stranger = User.objects.create_user(username="stranger")
    with (
        pytest.raises(DatabaseError, match="row-level security"),
        firm_context(firm_a.firm),
        transaction.atomic(),
    ):
        raw(INSERT_MEMBERSHIP, [firm_b.firm.pk, stranger.pk, Role.ADVISOR])
    with firm_context(firm_a.firm), transaction.atomic():
        # Its own firm is fine.
        raw(INSERT_MEMBERSHIP, [firm_a.firm.pk, stranger.pk, Role.ADVISOR])
    with firm_context(firm_b.firm), transaction.atomic():
        assert not Membership.objects.filter(user=stranger).exists()


@pytest.mark.django_db(transaction=True, databases=["default", "owner"])
def test_insert_without_firm_is_rejected_by_the_database(firm_a):
    stranger = User.objects.create_user(username="stranger")
    with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
        raw(INSERT_MEMBERSHIP, [firm_a.firm.pk, stranger.pk, Role.ADVISOR])


@pytest.mark.django_db(transaction=True, databases=["default", "owner"])
def test_moving_a_row_to_another_firm_is_rejected_by_the_database(firm_a, firm_b):
    with (
        pytest.raises(DatabaseError, match="row-level security"),
        firm_context(firm_a.firm),
        transaction.atomic(),
    ):
        raw("UPDATE accounts_membership SET firm_id = %s", [firm_b.firm.pk])


@pytest.mark.django_db
def test_update_and_delete_of_another_firms_rows_touch_nothing(firm_a, firm_b):
    with firm_context(firm_a.firm), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE accounts_membership SET role = 'investor' WHERE firm_id = %s",
            [firm_b.firm.pk],
        )
        assert cursor.rowcount == 0
        cursor.execute("DELETE FROM accounts_membership WHERE firm_id = %s", [firm_b.firm.pk])
        assert cursor.rowcount == 0
    with firm_context(firm_b.firm):
        assert Membership.objects.filter(role=Role.FIRM_ADMIN).count() == 1


@pytest.mark.django_db
def test_orm_refuses_to_write_for_another_firm(firm_a, firm_b):
    with firm_context(firm_a.firm):
        with pytest.raises(TenancyError):
            Membership.objects.create(firm=firm_b.firm, user=firm_a.user(Role.ADVISOR))
        membership = Membership.objects.get(user=firm_a.user(Role.ADVISOR))
    # Not found in firm B: a foreign row is indistinguishable from a missing one.
    with firm_context(firm_b.firm), pytest.raises(Membership.DoesNotExist):
        Membership.objects.get(pk=membership.pk)


@pytest.mark.django_db
def test_firm_change_inside_one_transaction_does_not_leak(audited):
    firm_a, firm_b = audited
    with transaction.atomic():
        with firm_context(firm_a.firm):
            assert count("compliance_auditevent") == 2
            with firm_context(firm_b.firm):
                assert count("compliance_auditevent") == 1
                assert firm_ids("compliance_auditevent") == {firm_b.firm.pk}
            assert count("compliance_auditevent") == 2
            assert firm_ids("compliance_auditevent") == {firm_a.firm.pk}
        # The firm context ended: the transaction no longer sees any firm.
        assert count("compliance_auditevent") == 0
        assert count("accounts_membership") == 0


class _Rollback(Exception):
    pass


def _rolled_back(check) -> None:
    """Run ``check`` in a savepoint that is then rolled back (no database error)."""
    try:
        with transaction.atomic():
            assert check()
            raise _Rollback
    except _Rollback:
        pass


@pytest.mark.django_db
def test_savepoint_rollback_does_not_leak(audited):
    firm_a, firm_b = audited
    with firm_context(firm_a.firm), transaction.atomic():
        assert count("compliance_auditevent") == 2
        # Firm B set inside a savepoint that is rolled back: set_config reverts to A's
        # value in PostgreSQL, while the context still says B. The next query must
        # see B, not A.
        with firm_context(firm_b.firm):
            _rolled_back(lambda: count("compliance_auditevent") == 1)
            assert firm_ids("compliance_auditevent") == {firm_b.firm.pk}
        assert firm_ids("compliance_auditevent") == {firm_a.firm.pk}

    # First query of the transaction inside the savepoint: after the rollback the
    # setting is gone in PostgreSQL; with no firm any more, nothing is visible.
    with transaction.atomic():
        with firm_context(firm_a.firm):
            _rolled_back(lambda: count("compliance_auditevent") == 2)
            assert count("compliance_auditevent") == 2
        assert count("compliance_auditevent") == 0


@pytest.mark.django_db
def test_released_savepoint_keeps_the_right_firm(audited):
    firm_a, firm_b = audited
    with firm_context(firm_a.firm), transaction.atomic():
        with firm_context(firm_b.firm), transaction.atomic():
            assert count("compliance_auditevent") == 1
        # Savepoint released with B applied; back in A the next query re-applies A.
        assert firm_ids("compliance_auditevent") == {firm_a.firm.pk}


@pytest.mark.django_db(transaction=True, databases=["default", "owner"])
def test_nothing_carries_over_to_the_next_transaction(firm_a):
    with firm_context(firm_a.firm):
        with transaction.atomic():
            audit_record(action="test.committed")
        # Outside a transaction, set_config(..., true) would not reach the query:
        # the backend refuses rather than silently reading nothing.
        with pytest.raises(TenancyError, match="outside a transaction"):
            AuditEvent.objects.count()
    # Same pooled connection, new transaction, no firm: nothing visible.
    with transaction.atomic():
        assert count("compliance_auditevent") == 0
    (setting,) = raw("SELECT current_setting('app.firm_id', true)")
    assert setting[0] in (None, "")


@pytest.mark.django_db(transaction=True, databases=["default", "owner"])
def test_owner_is_subject_to_forced_row_level_security(firm_a):
    with firm_context(firm_a.firm), transaction.atomic():
        audit_record(action="test.owner")
    owner = connections["owner"]
    with owner.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM compliance_auditevent")
        assert cursor.fetchone() == (0,)
    with transaction.atomic(using="owner"), owner.cursor() as cursor:
        cursor.execute("SELECT set_config('app.firm_id', %s, true)", [str(firm_a.firm.pk)])
        cursor.execute("SELECT count(*) FROM compliance_auditevent")
        assert cursor.fetchone() == (1,)


# Regression (fixed in advisor/db_backend/base.py): the tenant wrapper used to run
# before Django's own ROLLBACK TO SAVEPOINT. After a database error it sent set_config
# into the aborted transaction, which failed, so the rollback never happened and the
# whole outer transaction was lost: the everyday
# ``try: with atomic(): ... except IntegrityError:`` pattern broke inside any request.
@pytest.mark.django_db
def test_savepoint_rollback_after_a_database_error_keeps_the_transaction(firm_a, firm_b):
    stranger = User.objects.create_user(username="stranger")
    with firm_context(firm_a.firm), transaction.atomic():
        assert count("accounts_membership") == 4
        with pytest.raises(DatabaseError), transaction.atomic():
            raw(INSERT_MEMBERSHIP, [firm_b.firm.pk, stranger.pk, Role.ADVISOR])
        # The outer transaction goes on.
        assert count("accounts_membership") == 4


# Same regression, second face: the tenant set just before ROLLBACK TO SAVEPOINT was
# undone by that rollback while the backend believed it applied, so the next query ran
# with the firm of the savepoint's start: another firm's rows.
@pytest.mark.django_db
def test_savepoint_rollback_under_another_firm_does_not_leak(audited):
    firm_a, firm_b = audited
    with firm_context(firm_a.firm), transaction.atomic():
        assert count("compliance_auditevent") == 2
        savepoint = transaction.savepoint()
        with firm_context(firm_b.firm):
            assert count("compliance_auditevent") == 1
            transaction.savepoint_rollback(savepoint)
            assert firm_ids("compliance_auditevent") == {firm_b.firm.pk}

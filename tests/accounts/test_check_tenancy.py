"""``check_tenancy``: fails on every kind of gap, passes on the real schema."""

from __future__ import annotations

import dataclasses
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from accounts.tenancy.checks import (
    CatalogSnapshot,
    PolicyInfo,
    RoleInfo,
    TableInfo,
    application_role,
    catalog_snapshot,
    tenancy_check,
    tenancy_gaps,
)
from accounts.tenancy.migrations import POLICY_NAME, firm_predicate

PROBE = "tenancy_probe"
BOTH = ["default", "owner"]


def run_check() -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("check_tenancy", stdout=out)
    except CommandError as exc:
        return exc.returncode, out.getvalue() + str(exc)
    return 0, out.getvalue()


def owner_sql(*statements: str) -> None:
    with connections["owner"].cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


@pytest.mark.django_db(databases=BOTH)
def test_passes_on_the_real_schema():
    code, output = run_check()
    assert code == 0, output
    assert "tenancy check passed" in output
    for table in ("accounts_membership", "compliance_auditevent"):
        assert table in output
    assert POLICY_NAME in output
    assert application_role() in output
    assert "NOSUPERUSER NOBYPASSRLS" in output


# The probe table is created by the owner inside the test's transaction: the check
# reads the catalogs through that same owner connection, and the rollback at the end
# of the test drops the table whatever happens.
@pytest.mark.django_db(databases=BOTH)
def test_fails_on_an_unprotected_table_until_it_is_protected():
    owner_sql(f"CREATE TABLE {PROBE} (id bigserial PRIMARY KEY, firm_id bigint NOT NULL)")

    code, output = run_check()
    assert code == 1
    assert f"GAP {PROBE}: row-level security is not enabled" in output
    assert f"GAP {PROBE}: row-level security is not forced" in output
    assert f"GAP {PROBE}: no policy restricts its rows by app.firm_id" in output

    owner_sql(f"ALTER TABLE {PROBE} ENABLE ROW LEVEL SECURITY")
    code, output = run_check()
    assert code == 1
    assert "not enabled" not in output
    assert f"GAP {PROBE}: row-level security is not forced" in output

    owner_sql(f"ALTER TABLE {PROBE} FORCE ROW LEVEL SECURITY")
    code, output = run_check()
    assert code == 1
    assert f"GAP {PROBE}: no policy restricts its rows by app.firm_id" in output

    # A policy that does not mention the firm is no protection.
    owner_sql(f"CREATE POLICY everything ON {PROBE} USING (true)")
    code, output = run_check()
    assert code == 1
    assert f"GAP {PROBE}: no policy restricts its rows by app.firm_id" in output

    # With the firm policy added, the open one still ORs the table wide open.
    pred = firm_predicate()
    owner_sql(f"CREATE POLICY {POLICY_NAME} ON {PROBE} USING ({pred}) WITH CHECK ({pred})")
    code, output = run_check()
    assert code == 1
    assert "permissive policy 'everything' does not restrict by app.firm_id" in output

    owner_sql(f"DROP POLICY everything ON {PROBE}")
    code, output = run_check()
    assert code == 0, output
    assert PROBE in output


@pytest.mark.django_db(databases=BOTH)
def test_fails_when_writes_may_widen_beyond_the_firm():
    pred = firm_predicate()
    owner_sql(
        f"CREATE TABLE {PROBE} (id bigserial PRIMARY KEY, firm_id bigint NOT NULL)",
        f"ALTER TABLE {PROBE} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {PROBE} FORCE ROW LEVEL SECURITY",
        # No WITH CHECK: new rows are checked with USING, which is widened.
        f"CREATE POLICY {POLICY_NAME} ON {PROBE} USING (({pred}) OR id < 10)",
    )
    code, output = run_check()
    assert code == 1
    assert f"GAP {PROBE}: no policy restricts its rows by app.firm_id" in output


@pytest.mark.django_db(databases=BOTH)
def test_fails_when_the_app_role_may_truncate_a_firm_table():
    owner_sql(f'GRANT TRUNCATE ON accounts_membership TO "{application_role()}"')
    code, output = run_check()
    assert code == 1
    assert "GAP accounts_membership: application role may TRUNCATE" in output


@pytest.mark.django_db(databases=BOTH)
@pytest.mark.parametrize("privilege", ["UPDATE", "DELETE"])
def test_fails_when_the_audit_table_grants_the_app_role_more_than_insert_select(privilege):
    owner_sql(f'GRANT {privilege} ON compliance_auditevent TO "{application_role()}"')
    code, output = run_check()
    assert code == 1
    assert (
        f"GAP compliance_auditevent: append-only table grants the application role {privilege}"
        in output
    )


@pytest.mark.django_db(databases=BOTH)
def test_fails_on_a_view_that_exposes_firm_rows_with_its_owners_rights():
    owner_sql(
        "CREATE VIEW tenancy_probe_view AS SELECT id, firm_id FROM compliance_auditevent",
        f'GRANT SELECT ON tenancy_probe_view TO "{application_role()}"',
    )
    code, output = run_check()
    assert code == 1
    assert "GAP tenancy_probe_view: view with firm_id runs with its owner's rights" in output

    owner_sql("ALTER VIEW tenancy_probe_view SET (security_invoker = true)")
    code, output = run_check()
    assert code == 0, output


# Role attributes are cluster-wide and shared by every test run on this server (and
# only a superuser may grant BYPASSRLS), so they are checked on a snapshot of the
# real catalogs with one attribute changed.
@pytest.fixture
def snapshot(db) -> CatalogSnapshot:
    return catalog_snapshot(app_role=application_role(), using="owner")


def gaps_with_role(snapshot: CatalogSnapshot, **changes) -> list[str]:
    role = dataclasses.replace(snapshot.app_role, **changes)
    return tenancy_gaps(dataclasses.replace(snapshot, app_role=role))


@pytest.mark.django_db(databases=BOTH)
def test_real_snapshot_has_no_gaps(snapshot):
    assert tenancy_gaps(snapshot) == []
    names = {t.name for t in snapshot.tables}
    assert {"accounts_membership", "compliance_auditevent"} <= names


@pytest.mark.django_db(databases=BOTH)
@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"superuser": True}, "is SUPERUSER"),
        ({"bypass_rls": True}, "has BYPASSRLS"),
        ({"owned_relations": ("accounts_membership",)}, "owns accounts_membership"),
        ({"owns_database": True}, "owns database"),
        ({"owned_schemas": ("public",)}, "owns schema 'public'"),
        ({"exists": False}, "does not exist"),
    ],
)
def test_role_attribute_gaps(snapshot, changes, expected):
    gaps = gaps_with_role(snapshot, **changes)
    assert len(gaps) == 1
    assert expected in gaps[0]


@pytest.mark.django_db(databases=BOTH)
def test_app_role_able_to_become_a_table_owner_is_a_gap(snapshot):
    tables = tuple(
        dataclasses.replace(t, app_can_become_owner=True) if t.name == "accounts_membership" else t
        for t in snapshot.tables
    )
    gaps = tenancy_gaps(dataclasses.replace(snapshot, tables=tables))
    assert gaps == ["accounts_membership: the application role owns it or can become its owner"]


def _table(**changes) -> TableInfo:
    pred = "(firm_id = (NULLIF(current_setting('app.firm_id'::text, true), ''::text))::bigint)"
    base = TableInfo(
        schema="public",
        name="t",
        kind="table",
        owner="owner",
        rls_enabled=True,
        rls_forced=True,
        policies=(PolicyInfo(POLICY_NAME, "ALL", True, ("public",), pred, pred),),
        app_privileges=("SELECT", "INSERT", "UPDATE", "DELETE"),
    )
    return dataclasses.replace(base, **changes)


def _gaps(*tables: TableInfo, **kwargs) -> list[str]:
    role = RoleInfo(name="app", exists=True, can_login=True)
    return tenancy_gaps(CatalogSnapshot("db", app_role=role, tables=tables), **kwargs)


def test_fabricated_protected_table_passes():
    assert _gaps(_table()) == []


def test_policy_for_another_role_does_not_protect_the_app_role():
    table = _table()
    policy = dataclasses.replace(table.policies[0], roles=("someone_else",))
    assert "t: no policy restricts its rows by app.firm_id" in _gaps(
        dataclasses.replace(table, policies=(policy,))
    )


def test_restrictive_policy_alone_is_no_protection():
    # Without a permissive policy nothing is visible, but the intent is clearly wrong.
    table = _table()
    policy = dataclasses.replace(table.policies[0], permissive=False)
    assert _gaps(dataclasses.replace(table, policies=(policy,))) == [
        "t: no policy restricts its rows by app.firm_id"
    ]


def test_per_command_policies_cover_every_command():
    pred = _table().policies[0].using
    per_command = tuple(
        PolicyInfo(
            f"p_{cmd.lower()}",
            cmd,
            True,
            ("public",),
            None if cmd == "INSERT" else pred,
            pred if cmd in ("INSERT", "UPDATE") else None,
        )
        for cmd in ("SELECT", "INSERT", "UPDATE", "DELETE")
    )
    assert _gaps(_table(policies=per_command)) == []
    assert _gaps(_table(policies=per_command[:3])) == [
        "t: no policy restricts its rows by app.firm_id"
    ]


def test_materialized_view_readable_by_the_app_role_is_a_gap():
    view = _table(kind="materialized view", policies=(), rls_enabled=False, rls_forced=False)
    assert _gaps(view) == ["t: materialized view with firm_id readable by the application role"]
    assert _gaps(dataclasses.replace(view, app_privileges=())) == []


def test_model_without_a_protected_table_is_a_gap():
    assert _gaps(_table(), model_tables=["t", "portfolios_missing"]) == [
        "portfolios_missing: a model has a firm foreign key but the table is missing "
        "or has no firm_id column"
    ]


def test_missing_append_only_table_is_a_gap():
    assert _gaps(_table(), append_only_tables=["audit"]) == ["audit: append-only table is missing"]


@pytest.mark.django_db(databases=BOTH)
def test_every_firm_owned_model_is_checked():
    from accounts.tenancy.registry import firm_owned_models

    report = tenancy_check()
    assert report.ok, report.gaps
    assert set(report.model_tables) == {m._meta.db_table for m in firm_owned_models()}
    checked = {t.name for t in report.snapshot.tables}
    assert set(report.model_tables) <= checked

"""Is every firm-owned table protected in the database? The logic of ``check_tenancy``.

Two halves, so that each can be tested on its own:

* :func:`catalog_snapshot` reads PostgreSQL's catalogs (through the owner role's
  connection): every table and view with a ``firm_id`` column, its row-level security
  flags and policies, the application role's privileges on it, and the application
  role's attributes and what it owns or can become.
* :func:`tenancy_gaps` is pure: it turns a snapshot into the list of gaps. A gap is
  anything that would let the running code read or write another firm's rows:

  - a table with ``firm_id`` whose row-level security is not ENABLEd and FORCEd, or
    that has no policy restricting rows by ``app.firm_id``, or a permissive policy
    that does not (policies are OR-ed, so one open policy opens the table);
  - the application role missing, superuser, with BYPASSRLS, owning (or able to
    become the owner of) a table, the database or its schema; any of those ignores
    row-level security;
  - TRUNCATE granted to the application role on a firm-owned table (TRUNCATE is not
    subject to row-level security), or UPDATE/DELETE/TRUNCATE on an append-only table;
  - a view exposing ``firm_id`` to the application role that runs with its owner's
    rights (no ``security_invoker``), or a materialised view, which cannot have
    row-level security at all;
  - a Django model with a firm foreign key whose table is missing or unprotected.

:func:`tenancy_check` runs both and returns a :class:`TenancyReport`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import connections

FIRM_SETTING_NAME = "app.firm_id"
PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
APPEND_ONLY_REFUSED = ("UPDATE", "DELETE", "TRUNCATE")


@dataclass(frozen=True)
class PolicyInfo:
    name: str
    command: str  # ALL, SELECT, INSERT, UPDATE, DELETE
    permissive: bool
    roles: tuple[str, ...]  # ("public",) when it applies to everyone
    using: str | None
    with_check: str | None

    def applies_to(self, role: str) -> bool:
        return "public" in self.roles or role in self.roles

    @property
    def restricts_by_firm(self) -> bool:
        """Rows are limited by ``firm_id = current_setting('app.firm_id')``.

        Reading may be widened with OR (a user's own memberships); writing may not:
        the expression that checks new rows must be the firm predicate alone.
        """
        if self.command in ("SELECT", "DELETE"):
            return _compares_firm(self.using)
        # For ALL and UPDATE without WITH CHECK, PostgreSQL checks new rows with USING.
        check = self.with_check if self.with_check is not None else self.using
        writes = _compares_firm(check) and " OR " not in (check or "").upper()
        if self.command == "INSERT":
            return writes
        return _compares_firm(self.using) and writes


_FIRM_COMPARISON = re.compile(r"\bfirm_id\b\)?\s*=\s*.*current_setting\('app\.firm_id'")


def _compares_firm(expression: str | None) -> bool:
    return expression is not None and _FIRM_COMPARISON.search(expression) is not None


@dataclass(frozen=True)
class TableInfo:
    schema: str
    name: str
    kind: str  # "table", "partitioned table", "view", "materialized view"
    owner: str
    rls_enabled: bool
    rls_forced: bool
    policies: tuple[PolicyInfo, ...]
    app_privileges: tuple[str, ...]
    security_invoker: bool = False  # views only
    app_can_become_owner: bool = False

    @property
    def qualified_name(self) -> str:
        return self.name if self.schema == "public" else f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class RoleInfo:
    name: str
    exists: bool
    superuser: bool = False
    bypass_rls: bool = False
    create_role: bool = False
    create_db: bool = False
    can_login: bool = False
    member_of: tuple[str, ...] = ()
    owned_relations: tuple[str, ...] = ()
    owns_database: bool = False
    owned_schemas: tuple[str, ...] = ()

    @property
    def attributes(self) -> str:
        flags = [
            "SUPERUSER" if self.superuser else "NOSUPERUSER",
            "BYPASSRLS" if self.bypass_rls else "NOBYPASSRLS",
            "CREATEROLE" if self.create_role else "NOCREATEROLE",
            "CREATEDB" if self.create_db else "NOCREATEDB",
            "LOGIN" if self.can_login else "NOLOGIN",
        ]
        return " ".join(flags)


@dataclass(frozen=True)
class CatalogSnapshot:
    database: str
    app_role: RoleInfo
    tables: tuple[TableInfo, ...]


@dataclass(frozen=True)
class TenancyReport:
    snapshot: CatalogSnapshot
    gaps: tuple[str, ...]
    model_tables: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.gaps


def tenancy_gaps(
    snapshot: CatalogSnapshot,
    *,
    model_tables: Iterable[str] = (),
    append_only_tables: Iterable[str] = (),
) -> list[str]:
    """Every gap in ``snapshot``, as one sentence each; empty when all is protected."""
    gaps: list[str] = []
    role = snapshot.app_role
    if not role.exists:
        gaps.append(f"application role {role.name!r} does not exist")
    else:
        if role.superuser:
            gaps.append(
                f"application role {role.name!r} is SUPERUSER (bypasses row-level security)"
            )
        if role.bypass_rls:
            gaps.append(f"application role {role.name!r} has BYPASSRLS")
        if role.owned_relations:
            owned = ", ".join(role.owned_relations[:10])
            more = (
                f" and {len(role.owned_relations) - 10} more"
                if len(role.owned_relations) > 10
                else ""
            )
            gaps.append(f"application role {role.name!r} owns {owned}{more}")
        if role.owns_database:
            gaps.append(f"application role {role.name!r} owns database {snapshot.database!r}")
        for schema in role.owned_schemas:
            gaps.append(f"application role {role.name!r} owns schema {schema!r}")

    append_only = set(append_only_tables)
    by_name = {t.name: t for t in snapshot.tables if t.kind in ("table", "partitioned table")}
    for table in snapshot.tables:
        gaps.extend(_table_gaps(table, role.name, append_only))
    for name in sorted(set(model_tables)):
        if name not in by_name:
            gaps.append(
                f"{name}: a model has a firm foreign key but the table is missing "
                "or has no firm_id column"
            )
    for name in sorted(append_only - set(by_name)):
        gaps.append(f"{name}: append-only table is missing")
    return gaps


def _table_gaps(table: TableInfo, app_role: str, append_only: set[str]) -> list[str]:
    name = table.qualified_name
    gaps: list[str] = []
    readable = "SELECT" in table.app_privileges
    if table.kind == "materialized view":
        if readable:
            gaps.append(f"{name}: materialized view with firm_id readable by the application role")
        return gaps
    if table.kind == "view":
        if readable and not table.security_invoker:
            gaps.append(
                f"{name}: view with firm_id runs with its owner's rights "
                "(set security_invoker=true or revoke SELECT)"
            )
        return gaps
    if not table.rls_enabled:
        gaps.append(f"{name}: row-level security is not enabled")
    if not table.rls_forced:
        gaps.append(f"{name}: row-level security is not forced (its owner bypasses it)")
    applicable = [p for p in table.policies if p.applies_to(app_role)]
    firm_policies = [p for p in applicable if p.permissive and p.restricts_by_firm]
    if not any(p.command == "ALL" for p in firm_policies) and not {
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
    } <= {p.command for p in firm_policies}:
        gaps.append(f"{name}: no policy restricts its rows by {FIRM_SETTING_NAME}")
    for policy in applicable:
        if policy.permissive and not policy.restricts_by_firm:
            gaps.append(
                f"{name}: permissive policy {policy.name!r} does not restrict by "
                f"{FIRM_SETTING_NAME} (policies are OR-ed, so it opens the table)"
            )
    if table.owner == app_role or table.app_can_become_owner:
        gaps.append(f"{name}: the application role owns it or can become its owner")
    if "TRUNCATE" in table.app_privileges:
        gaps.append(f"{name}: application role may TRUNCATE (not subject to row-level security)")
    if table.name in append_only:
        refused = [p for p in APPEND_ONLY_REFUSED if p in table.app_privileges]
        if refused:
            gaps.append(
                f"{name}: append-only table grants the application role {', '.join(refused)}"
            )
    return gaps


_TABLES_SQL = """
SELECT c.oid, n.nspname, c.relname, c.relkind, pg_get_userbyid(c.relowner),
       c.relrowsecurity, c.relforcerowsecurity,
       coalesce('security_invoker=true' = ANY(c.reloptions)
                OR 'security_invoker=on' = ANY(c.reloptions), false),
       {becomes_owner}
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'firm_id'
                   AND NOT a.attisdropped AND a.attnum > 0
WHERE c.relkind IN ('r', 'p', 'v', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_%%'
ORDER BY n.nspname, c.relname
"""

_POLICIES_SQL = """
SELECT schemaname, tablename, policyname, cmd, permissive = 'PERMISSIVE', roles, qual, with_check
FROM pg_policies
ORDER BY schemaname, tablename, policyname
"""

_ROLE_SQL = """
SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolcanlogin,
       ARRAY(SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid
             WHERE m.member = r.oid ORDER BY 1)
FROM pg_roles r WHERE rolname = %(role)s
"""

_OWNED_SQL = """
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE pg_has_role(%(role)s, c.relowner, 'MEMBER')
  AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_%%'
ORDER BY 1, 2
"""

_DB_SCHEMA_SQL = """
SELECT
  (SELECT pg_has_role(%(role)s, datdba, 'MEMBER') FROM pg_database
   WHERE datname = current_database()),
  ARRAY(SELECT nspname FROM pg_namespace
        WHERE pg_has_role(%(role)s, nspowner, 'MEMBER')
          AND nspname NOT IN ('pg_catalog', 'information_schema')
          AND nspname NOT LIKE 'pg\\_%%'
        ORDER BY 1)
"""

_KIND = {"r": "table", "p": "partitioned table", "v": "view", "m": "materialized view"}


def catalog_snapshot(*, app_role: str, using: str = "owner") -> CatalogSnapshot:
    """Read the catalogs through connection ``using`` (any role may read them)."""
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database()")
        (database,) = cursor.fetchone()
        cursor.execute(_ROLE_SQL, {"role": app_role})
        row = cursor.fetchone()
        exists = row is not None
        if row is None:
            role = RoleInfo(name=app_role, exists=False)
        else:
            cursor.execute(_OWNED_SQL, {"role": app_role})
            owned = tuple(_qualified(s, n) for s, n in cursor.fetchall())
            cursor.execute(_DB_SCHEMA_SQL, {"role": app_role})
            owns_db, owned_schemas = cursor.fetchone()
            role = RoleInfo(
                name=app_role,
                exists=True,
                superuser=row[0],
                bypass_rls=row[1],
                create_role=row[2],
                create_db=row[3],
                can_login=row[4],
                member_of=tuple(row[5]),
                owned_relations=owned,
                owns_database=bool(owns_db),
                owned_schemas=tuple(owned_schemas),
            )

        cursor.execute(_POLICIES_SQL)
        policies: dict[tuple[str, str], list[PolicyInfo]] = {}
        for schema, table, name, cmd, permissive, roles, qual, with_check in cursor.fetchall():
            policies.setdefault((schema, table), []).append(
                PolicyInfo(
                    name=name,
                    command=cmd,
                    permissive=permissive,
                    roles=tuple(roles),
                    using=qual,
                    with_check=with_check,
                )
            )

        # pg_has_role() raises for an unknown role: without one, nobody can become the owner.
        becomes_owner = "pg_has_role(%(role)s, c.relowner, 'MEMBER')" if exists else "false"
        cursor.execute(_TABLES_SQL.replace("{becomes_owner}", becomes_owner), {"role": app_role})
        tables = []
        for oid, schema, name, kind, owner, enabled, forced, invoker, becomes in cursor.fetchall():
            privileges: tuple[str, ...] = ()
            if exists:
                privileges = _privileges(cursor, app_role, oid)
            tables.append(
                TableInfo(
                    schema=schema,
                    name=name,
                    kind=_KIND[kind],
                    owner=owner,
                    rls_enabled=enabled,
                    rls_forced=forced,
                    policies=tuple(policies.get((schema, name), ())),
                    app_privileges=privileges,
                    security_invoker=invoker,
                    app_can_become_owner=bool(becomes),
                )
            )
    return CatalogSnapshot(database=database, app_role=role, tables=tuple(tables))


def _qualified(schema: str, name: str) -> str:
    return name if schema == "public" else f"{schema}.{name}"


def _privileges(cursor: Any, role: str, table_oid: int) -> tuple[str, ...]:
    checks = ", ".join(f"has_table_privilege(%(role)s, %(oid)s, '{p}')" for p in PRIVILEGES)
    cursor.execute(f"SELECT {checks}", {"role": role, "oid": table_oid})
    granted = cursor.fetchone()
    return tuple(p for p, ok in zip(PRIVILEGES, granted, strict=True) if ok)


def application_role() -> str:
    """The role the running code connects as: ``default``'s user."""
    return str(connections["default"].settings_dict["USER"])


def tenancy_check(*, using: str = "owner", app_role: str | None = None) -> TenancyReport:
    """Snapshot the catalogs and list every gap, models included."""
    from accounts.tenancy.registry import firm_owned_models
    from advisor.grants import APPEND_ONLY_TABLES

    role = app_role or application_role()
    snapshot = catalog_snapshot(app_role=role, using=using)
    model_tables = tuple(sorted(m._meta.db_table for m in firm_owned_models()))
    gaps = tenancy_gaps(snapshot, model_tables=model_tables, append_only_tables=APPEND_ONLY_TABLES)
    return TenancyReport(snapshot=snapshot, gaps=tuple(gaps), model_tables=model_tables)

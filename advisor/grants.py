"""Privileges of the application role, re-applied after every migrate.

The application role may read and write every table, TRUNCATE none, and on the
audit table, the chain verifications and the strategy version tables only INSERT and
SELECT. It owns nothing, so row-level security applies.
"""

from __future__ import annotations

from typing import Any

from django.db import connections

APPEND_ONLY_TABLES = ("compliance_auditevent", "compliance_chainverification")
# Immutable strategy model versions: a trigger refuses UPDATE and DELETE to everyone;
# the REVOKE is a second layer for the application role.
VERSION_TABLES = ("portfolios_strategyversion", "portfolios_customisedversion")
INSERT_SELECT_ONLY_TABLES = APPEND_ONLY_TABLES + VERSION_TABLES


def application_role() -> str:
    return str(connections["default"].settings_dict["USER"])


def grant_statements(app_role: str, existing_tables: set[str]) -> list[str]:
    role = f'"{app_role}"'
    statements = [
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
        f"REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA public FROM {role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
    ]
    for table in INSERT_SELECT_ONLY_TABLES:
        if table in existing_tables:
            statements.append(f'REVOKE UPDATE, DELETE, TRUNCATE ON "{table}" FROM {role}')
            statements.append(f'REVOKE UPDATE, DELETE, TRUNCATE ON "{table}" FROM PUBLIC')
    return statements


def grant_application_role(sender: Any, using: str = "owner", **kwargs: Any) -> None:
    connection = connections[using]
    app_role = application_role()
    if connection.settings_dict["USER"] == app_role:
        return  # only the owner can grant; migrate always runs as the owner
    with connection.cursor() as cursor:
        existing = set(connection.introspection.table_names(cursor))
        for statement in grant_statements(app_role, existing):
            cursor.execute(statement)

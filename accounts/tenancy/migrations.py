"""The one migration helper that protects a firm-owned table with row-level security.

Every app's migration that creates a firm-owned model adds
``EnableFirmRLS("modelname")`` after it; ``check_tenancy`` verifies it was done.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

POLICY_NAME = "firm_isolation"
# A sub-select, which PostgreSQL runs once per query as an InitPlan: the planner then
# estimates ``firm_id = (SELECT ...)`` as an average firm's share of the table. Written
# as the bare setting, it would read the setting's value while planning and estimate
# the current firm from the column's statistics; a firm that is new to a table (its
# first rebalance run) is absent from them, estimated at one row, and a lookup by
# primary key was planned as a scan of the firm's rows instead, once per row looked
# up (migration accounts 0006).
FIRM_SETTING = "(SELECT NULLIF(current_setting('app.firm_id', true), '')::bigint)"
USER_SETTING = "(SELECT NULLIF(current_setting('app.user_id', true), '')::bigint)"


def firm_predicate(column: str = "firm_id") -> str:
    # NULL (no firm set) compares as unknown, so the policy is false: fail closed.
    return f"{column} = {FIRM_SETTING}"


class EnableFirmRLS(migrations.operations.base.Operation):
    """ENABLE and FORCE row-level security with the firm isolation policy.

    ``also_visible`` widens what may be *read* (never written), for example a
    user's own memberships across firms: ``"user_id = " + USER_SETTING``.
    """

    reversible = True
    reduces_to_sql = True

    def __init__(self, model_name: str, also_visible: str | None = None) -> None:
        self.model_name = model_name
        self.also_visible = also_visible

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        kwargs = {"also_visible": self.also_visible} if self.also_visible else {}
        return (self.__class__.__name__, [self.model_name], kwargs)

    def state_forwards(self, app_label: str, state: Any) -> None:
        pass

    def _table(self, app_label: str, state: Any) -> str:
        return str(state.apps.get_model(app_label, self.model_name)._meta.db_table)

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        table = schema_editor.quote_name(self._table(app_label, to_state))
        using = firm_predicate()
        if self.also_visible:
            using = f"({using}) OR ({self.also_visible})"
        schema_editor.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        schema_editor.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        schema_editor.execute(
            f"CREATE POLICY {POLICY_NAME} ON {table} USING ({using}) "
            f"WITH CHECK ({firm_predicate()})"
        )

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        table = schema_editor.quote_name(self._table(app_label, from_state))
        schema_editor.execute(f"DROP POLICY IF EXISTS {POLICY_NAME} ON {table}")
        schema_editor.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        schema_editor.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")

    def describe(self) -> str:
        return f"Enable and force firm row-level security on {self.model_name}"

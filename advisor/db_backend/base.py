"""PostgreSQL backend that hands the current firm to row-level security.

Before the first query of a transaction (and whenever the current firm changes
inside one) it issues ``set_config('app.firm_id', ..., true)``: transaction-local,
so a pooled connection carries nothing over to the next request or task.

Outside a transaction a transaction-local setting would vanish before the query
ran, so a query that touches a firm-owned table while a firm is selected is refused
there with a clear error instead of silently reading nothing.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from django.db.backends.postgresql import base as postgresql

from accounts.tenancy.context import TenancyError, current_firm_id, current_user_id

# After a savepoint rollback the setting is whatever the enclosing transaction had:
# unknown here, so the next query sets it again whatever it wants.
_UNKNOWN: tuple[int | None, int | None] = (-1, -1)

_TRANSACTION_CONTROL = ("SAVEPOINT ", "RELEASE SAVEPOINT ", "ROLLBACK TO SAVEPOINT ")

SET_TENANT_SQL = "SELECT set_config('app.firm_id', %s, true), set_config('app.user_id', %s, true)"


@functools.cache
def _protected_pattern(tables: frozenset[str]) -> re.Pattern[str] | None:
    if not tables:
        return None
    names = "|".join(re.escape(t) for t in sorted(tables))
    return re.compile(rf'(?<![\w$])"?({names})"?(?![\w$])', re.IGNORECASE)


def _protected_table_in(sql: str) -> str | None:
    from accounts.tenancy.registry import protected_table_names

    pattern = _protected_pattern(protected_table_names())
    match = pattern.search(sql) if pattern else None
    return match.group(1) if match else None


class DatabaseWrapper(postgresql.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # (firm_id, user_id) applied in the open transaction; None when nothing is.
        self.tenant_applied: tuple[int | None, int | None] | None = None
        self.execute_wrappers.append(self._tenant_wrapper)

    def _tenant_wrapper(
        self,
        execute: Callable[..., Any],
        sql: str,
        params: Any,
        many: bool,
        context: dict[str, Any],
    ) -> Any:
        wanted = (current_firm_id(), current_user_id())
        if isinstance(sql, str) and sql.startswith(_TRANSACTION_CONTROL):
            # SAVEPOINT / RELEASE / ROLLBACK TO: never set the tenant in front of them, the
            # transaction may be aborted, and a setting made just before a rollback is undone.
            return execute(sql, params, many, context)
        if self.in_atomic_block:
            if self.tenant_applied != wanted and (
                self.tenant_applied is not None or wanted != (None, None)
            ):
                self.tenant_apply(wanted)
        elif wanted[0] is not None and isinstance(sql, str):
            touched = _protected_table_in(sql)
            if touched:
                raise TenancyError(
                    f"query of firm-owned table {touched!r} outside a transaction: "
                    "wrap it in transaction.atomic() so that the firm reaches the database"
                )
        return execute(sql, params, many, context)

    def tenant_apply(self, wanted: tuple[int | None, int | None]) -> None:
        # A cursor of its own: the query's cursor may be a server-side (named) one,
        # whose DECLARE would not evaluate set_config until fetched.
        firm_id, user_id = wanted
        with self.connection.cursor() as raw:
            raw.execute(
                SET_TENANT_SQL,
                ["" if firm_id is None else str(firm_id), "" if user_id is None else str(user_id)],
            )
        self.tenant_applied = wanted

    def ensure_tenant_applied(self) -> None:
        """For raw psycopg work (COPY) that bypasses Django's cursor wrappers."""
        if not self.in_atomic_block:
            raise TenancyError("tenant-scoped raw SQL must run inside transaction.atomic()")
        wanted = (current_firm_id(), current_user_id())
        if self.tenant_applied != wanted:
            self.ensure_connection()
            self.tenant_apply(wanted)

    # Any end of the transaction, or of a savepoint, reverts set_config(..., true).
    def _commit(self) -> None:
        try:
            super()._commit()  # type: ignore[misc]
        finally:
            self.tenant_applied = None

    def _rollback(self) -> None:
        try:
            super()._rollback()  # type: ignore[misc]
        finally:
            self.tenant_applied = None

    def _savepoint_rollback(self, sid: str) -> None:
        try:
            super()._savepoint_rollback(sid)  # type: ignore[misc]
        finally:
            self.tenant_applied = _UNKNOWN

    def _close(self) -> None:
        try:
            super()._close()  # type: ignore[misc]
        finally:
            self.tenant_applied = None

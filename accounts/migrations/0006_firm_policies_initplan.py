"""Every firm isolation policy compares with a sub-select of the setting (an InitPlan).

Policies created before compared ``firm_id`` with the setting itself. PostgreSQL
reads a stable function's value while planning, so it estimated the current firm's
rows from the column's statistics, and a firm absent from them (new to the table,
such as a firm's first rebalance run) at one row: the statement-level reference checks
then probed orders through the (firm, run, portfolio, asset) index, scanning every
order of the firm once per order looked up, instead of by primary key. Quadratic in a
chunk: a first run of 20,000 portfolios did not finish in ten minutes. With the
sub-select the planner estimates an average firm and keeps the primary key; indexes
still use ``firm_id = $0``. ``accounts.tenancy.migrations.FIRM_SETTING`` makes new
policies the same way.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

# As PostgreSQL prints the expressions back (pg_get_expr): the bare setting, and the
# same inside a sub-select.
_BARE = "(NULLIF(current_setting('app.{name}'::text, true), ''::text))::bigint"
_SUBSELECT = "( SELECT (NULLIF(current_setting('app.{name}'::text, true), ''::text))::bigint AS \"nullif\")"
_SETTINGS = ("firm_id", "user_id")


def _rewritten(expression: str | None, *, old: str, new: str) -> str | None:
    """``expression`` with each ``old`` form of the settings made ``new``; the forms
    already new are left as they are (``new`` may contain ``old``)."""
    if expression is None:
        return None
    for setting in _SETTINGS:
        before, after = old.format(name=setting), new.format(name=setting)
        if before in after:  # forwards: what is already rewritten is kept whole
            parts = expression.split(after)
            expression = after.join(part.replace(before, after) for part in parts)
        else:
            expression = expression.replace(before, after)
    return expression


def _rewrite(schema_editor: Any, *, old: str, new: str) -> None:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, p.polname, pg_get_expr(p.polqual, p.polrelid), "
            "pg_get_expr(p.polwithcheck, p.polrelid) "
            "FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE p.polname = 'firm_isolation' AND n.nspname = current_schema()"
        )
        for table, name, using, check in cursor.fetchall():
            clauses = []
            if (using_new := _rewritten(using, old=old, new=new)) != using:
                clauses.append(f"USING ({using_new})")
            if (check_new := _rewritten(check, old=old, new=new)) != check:
                clauses.append(f"WITH CHECK ({check_new})")
            if clauses:
                cursor.execute(f'ALTER POLICY {name} ON "{table}" ' + " ".join(clauses))


def forwards(apps: Any, schema_editor: Any) -> None:
    _rewrite(schema_editor, old=_BARE, new=_SUBSELECT)


def backwards(apps: Any, schema_editor: Any) -> None:
    _rewrite(schema_editor, old=_SUBSELECT, new=_BARE)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0005_notifications"),
        ("compliance", "0003_chain_verification"),
        ("portfolios", "0012_run_portfolio_refs_per_statement"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]

"""How PostgreSQL plans under the firm isolation policies (migration accounts 0006).

A firm that is new to a table is absent from its statistics. Had the policy compared
``firm_id`` with the setting itself, the planner would read the setting's value while
planning, estimate that firm at one row, and look rows up by primary key through a
(firm, ...) index instead, scanning all of the firm's rows once per lookup: the first
rebalance run of a firm in a shared database never finished. The policy's sub-select
(an InitPlan) makes the planner estimate an average firm.
"""

from __future__ import annotations

import json

import pytest
from django.db import connection, connections, transaction

from accounts.tenancy import firm_context
from accounts.tenancy.migrations import FIRM_SETTING, firm_predicate
from tests.portfolios.rebalance_factories import bench_book_seed

BOTH = ["default", "owner"]
# As the statement-level reference checks plan their probes (migration portfolios 0009).
CHECK_SETTINGS = ("enable_hashjoin", "enable_mergejoin", "enable_material", "enable_seqscan")
PROBE = (
    "SELECT n.id FROM probe n WHERE NOT EXISTS "
    "(SELECT 1 FROM portfolios_holding h WHERE h.id = n.id) LIMIT 1"
)


def policies() -> list[tuple[str, str, str]]:
    with connections["owner"].cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(p.polqual, p.polrelid), "
            "pg_get_expr(p.polwithcheck, p.polrelid) FROM pg_policy p "
            "JOIN pg_class c ON c.oid = p.polrelid WHERE p.polname = 'firm_isolation'"
        )
        return list(cursor.fetchall())


@pytest.mark.django_db(databases=BOTH)
def test_every_firm_policy_compares_with_a_sub_select_of_the_setting():
    found = policies()
    assert len(found) > 30
    bare = "= (NULLIF(current_setting("
    for table, using, check in found:
        assert "( SELECT (NULLIF(current_setting('app.firm_id'" in using, table
        assert "( SELECT (NULLIF(current_setting('app.firm_id'" in check, table
        assert bare not in using, table
        assert bare not in check, table
        assert "SELECT ( SELECT" not in using + check, table  # one sub-select, not two
    assert firm_predicate() == f"firm_id = {FIRM_SETTING}"
    assert FIRM_SETTING.startswith("(SELECT ")


def plan_as(firm, sql: str) -> str:
    with firm_context(firm), transaction.atomic(), connection.cursor() as cursor:
        for setting in CHECK_SETTINGS:
            cursor.execute(f"SET LOCAL {setting} = off")
        cursor.execute(
            "CREATE TEMPORARY TABLE probe ON COMMIT DROP AS "
            "SELECT g::bigint AS id FROM generate_series(1, 2000) g"
        )
        cursor.execute("ANALYZE probe")
        cursor.execute("EXPLAIN " + sql)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.django_db(transaction=True, databases=BOTH)
def test_a_firm_absent_from_the_statistics_is_looked_up_by_primary_key(firm_a, firm_b):
    # Firm A holds 4,000 positions and the statistics know it; firm B holds none yet.
    bench_book_seed(firm_a.firm, n=400, k=10, seed=5, noise=0.05)
    with connections["owner"].cursor() as cursor:
        cursor.execute("ANALYZE portfolios_holding")

    # Firm B is estimated as an average firm (here the only one: 4,000 rows), not as
    # one row, so its lookups by primary key stay lookups by primary key.
    assert estimated_rows(firm_b.firm, "SELECT * FROM portfolios_holding") > 1000
    plan = plan_as(firm_b.firm, PROBE)
    assert "Index Cond: (id = n.id)" in plan, plan
    assert "portfolios_holding_pkey" in plan, plan
    # Its own rows are still read through an index, with the InitPlan's value.
    plan = plan_as(firm_b.firm, "SELECT * FROM portfolios_holding WHERE portfolio_id = 7")
    assert "firm_id = $0" in plan, plan

    # Under the policy as it was before, firm B was estimated at one row.
    bare = "firm_id = NULLIF(current_setting('app.firm_id', true), '')::bigint"
    with connections["owner"].cursor() as cursor:
        cursor.execute(f"ALTER POLICY firm_isolation ON portfolios_holding USING ({bare})")
    try:
        assert estimated_rows(firm_b.firm, "SELECT * FROM portfolios_holding") == 1
    finally:
        with connections["owner"].cursor() as cursor:
            cursor.execute(
                f"ALTER POLICY firm_isolation ON portfolios_holding USING ({firm_predicate()})"
            )


def estimated_rows(firm, sql: str) -> int:
    with firm_context(firm), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql)
        (document,) = cursor.fetchone()
    plan = document[0]["Plan"] if isinstance(document, list) else json.loads(document)[0]["Plan"]
    return int(plan["Plan Rows"])

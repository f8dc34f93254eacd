"""Run rows' references checked once per INSERT statement, as orders' are (0009, 0010).

The per-row foreign keys were deferred: at commit each run row's check locked its
portfolio row (FOR KEY SHARE, a tuple lock and its WAL record per portfolio), its run,
firm and strategy version, 25 us a row, more than writing the row and its indexes.
The statement check probes each distinct run, portfolio and strategy version of the
statement once, under row-level security, so another firm's parent is refused like a
missing one. The single-column indexes of firm, run and portfolio go: the composite
(firm, run, portfolio), (firm, run, status) and (firm, portfolio) indexes cover them.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0005_notifications"),
        ("portfolios", "0011_run_state_as_json_text"),
    ]

    operations = [
        migrations.AlterField(
            model_name="runportfolio",
            name="firm",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="accounts.firm",
            ),
        ),
        migrations.AlterField(
            model_name="runportfolio",
            name="portfolio",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="portfolios.portfolio",
            ),
        ),
        migrations.AlterField(
            model_name="runportfolio",
            name="run",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="portfolios",
                to="portfolios.rebalancerun",
            ),
        ),
        migrations.AlterField(
            model_name="runportfolio",
            name="strategy_version",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="portfolios.strategyversion",
            ),
        ),
    ]


REFS_SQL = """
CREATE FUNCTION portfolios_runportfolio_refs_check() RETURNS trigger
LANGUAGE plpgsql
-- Index probes per distinct value: a hash join would scan the whole parent table.
SET enable_hashjoin = off SET enable_mergejoin = off SET enable_material = off
SET enable_seqscan = off SET enable_bitmapscan = off
AS $$
DECLARE bad record;
BEGIN
    SELECT 'run' AS what, n.run_id AS id, n.firm_id INTO bad
    FROM (SELECT DISTINCT run_id, firm_id FROM runportfolio_new) n
    WHERE NOT EXISTS (SELECT 1 FROM portfolios_rebalancerun r
                      WHERE r.id = n.run_id) LIMIT 1;
    IF NOT FOUND THEN
        SELECT 'portfolio' AS what, n.portfolio_id AS id, n.firm_id INTO bad
        FROM (SELECT DISTINCT portfolio_id, firm_id FROM runportfolio_new) n
        WHERE NOT EXISTS (SELECT 1 FROM portfolios_portfolio p
                          WHERE p.id = n.portfolio_id) LIMIT 1;
    END IF;
    IF NOT FOUND THEN
        SELECT 'strategy version' AS what, n.strategy_version_id AS id, n.firm_id INTO bad
        FROM (SELECT DISTINCT strategy_version_id, firm_id FROM runportfolio_new
              WHERE strategy_version_id IS NOT NULL) n
        WHERE NOT EXISTS (SELECT 1 FROM portfolios_strategyversion v
                          WHERE v.id = n.strategy_version_id) LIMIT 1;
    END IF;
    IF FOUND THEN
        RAISE EXCEPTION 'portfolios_runportfolio: % % does not exist in firm %',
            bad.what, bad.id, bad.firm_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER portfolios_runportfolio_refs_insert AFTER INSERT ON portfolios_runportfolio
REFERENCING NEW TABLE AS runportfolio_new
FOR EACH STATEMENT EXECUTE FUNCTION portfolios_runportfolio_refs_check();

CREATE TRIGGER portfolios_runportfolio_refs_update
BEFORE UPDATE OF firm_id, run_id, portfolio_id, strategy_version_id
ON portfolios_runportfolio
FOR EACH ROW EXECUTE FUNCTION portfolios_refs_immutable(
    'firm_id', 'run_id', 'portfolio_id', 'strategy_version_id');
"""
# Parents of run rows: (table, how a run row x refers to a deleted parent row o). The
# conditions match the run rows' indexes.
PARENTS = (
    ("portfolios_rebalancerun", "x.firm_id = o.firm_id AND x.run_id = o.id"),
    ("portfolios_portfolio", "x.firm_id = o.firm_id AND x.portfolio_id = o.id"),
    ("portfolios_strategyversion", "x.strategy_version_id = o.id"),
)
PARENTS_SQL = "".join(
    f"""
CREATE FUNCTION {parent}_runportfolio_refs_delete_check() RETURNS trigger
LANGUAGE plpgsql
SET enable_hashjoin = off SET enable_mergejoin = off SET enable_material = off
SET enable_seqscan = off SET enable_bitmapscan = off
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM parent_old o JOIN portfolios_runportfolio x ON {refers}) THEN
        RAISE EXCEPTION '{parent}: run portfolios still reference it'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER {parent}_runportfolio_refs_delete AFTER DELETE ON {parent}
REFERENCING OLD TABLE AS parent_old
FOR EACH STATEMENT EXECUTE FUNCTION {parent}_runportfolio_refs_delete_check();
"""
    for parent, refers in PARENTS
)
REVERSE_SQL = "".join(
    f"DROP TRIGGER {t}_runportfolio_refs_delete ON {t};\n"
    f"DROP FUNCTION {t}_runportfolio_refs_delete_check();\n"
    for t, _ in PARENTS
) + (
    "DROP TRIGGER portfolios_runportfolio_refs_insert ON portfolios_runportfolio;\n"
    "DROP TRIGGER portfolios_runportfolio_refs_update ON portfolios_runportfolio;\n"
    "DROP FUNCTION portfolios_runportfolio_refs_check();\n"
)
Migration.operations.append(migrations.RunSQL(REFS_SQL + PARENTS_SQL, REVERSE_SQL))

"""The orders' per-statement reference check probes each distinct run, portfolio and
asset of the statement once, not once per order row (a chunk of 40,000 orders names
one run, 2,000 portfolios and a few dozen assets). Same refusals, same messages."""

import importlib

from django.db import migrations

CHECK_SQL = """
CREATE OR REPLACE FUNCTION portfolios_order_refs_check() RETURNS trigger
LANGUAGE plpgsql
-- Index probes per distinct value: a hash join would scan the whole parent table.
SET enable_hashjoin = off SET enable_mergejoin = off SET enable_material = off
SET enable_seqscan = off SET enable_bitmapscan = off
AS $$
DECLARE bad record;
BEGIN
    SELECT 'run' AS what, n.run_id AS id, n.firm_id INTO bad
    FROM (SELECT DISTINCT run_id, firm_id FROM order_new) n
    WHERE NOT EXISTS (SELECT 1 FROM portfolios_rebalancerun r
                      WHERE r.id = n.run_id) LIMIT 1;
    IF NOT FOUND THEN
        SELECT 'portfolio' AS what, n.portfolio_id AS id, n.firm_id INTO bad
        FROM (SELECT DISTINCT portfolio_id, firm_id FROM order_new) n
        WHERE NOT EXISTS (SELECT 1 FROM portfolios_portfolio p
                          WHERE p.id = n.portfolio_id) LIMIT 1;
    END IF;
    IF NOT FOUND THEN
        SELECT 'asset' AS what, n.asset_id AS id, n.firm_id INTO bad
        FROM (SELECT DISTINCT asset_id, firm_id FROM order_new) n
        WHERE NOT EXISTS (SELECT 1 FROM portfolios_asset a WHERE a.id = n.asset_id) LIMIT 1;
    END IF;
    IF FOUND THEN
        RAISE EXCEPTION 'portfolios_order: % % does not exist in firm %',
            bad.what, bad.id, bad.firm_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;
"""

# Back to 0009's per-row probes: its definition of the function, as it created it.
_PREVIOUS = importlib.import_module("portfolios.migrations.0009_order_refs_per_statement")
PER_ROW_SQL = _PREVIOUS.REFS_SQL[
    : _PREVIOUS.REFS_SQL.index("CREATE TRIGGER portfolios_order_refs_insert")
].replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


class Migration(migrations.Migration):
    dependencies = [("portfolios", "0009_order_refs_per_statement")]

    operations = [migrations.RunSQL(CHECK_SQL, PER_ROW_SQL)]

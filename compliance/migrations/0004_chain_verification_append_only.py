"""Chain verifications are append-only, as the audit events they vouch for are.

A recorded check (its time, whether the chain was intact, where it broke) is evidence
for a compliance officer; the application role could update or delete it, so a broken
chain's record could be made to read "intact". Now refused for everyone, the owner
included, by triggers (``flush`` disables them, as for the audit table), and the
application role has only INSERT and SELECT on it (``advisor.grants``).
"""

from django.db import migrations

APPEND_ONLY_SQL = """
CREATE FUNCTION compliance_verification_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'chain verifications are append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER chainverification_no_update_delete
    BEFORE UPDATE OR DELETE ON compliance_chainverification
    FOR EACH ROW EXECUTE FUNCTION compliance_verification_refuse_change();
CREATE TRIGGER chainverification_no_truncate
    BEFORE TRUNCATE ON compliance_chainverification
    FOR EACH STATEMENT EXECUTE FUNCTION compliance_verification_refuse_change();
"""
APPEND_ONLY_REVERSE_SQL = """
DROP TRIGGER IF EXISTS chainverification_no_truncate ON compliance_chainverification;
DROP TRIGGER IF EXISTS chainverification_no_update_delete ON compliance_chainverification;
DROP FUNCTION IF EXISTS compliance_verification_refuse_change();
"""


class Migration(migrations.Migration):
    dependencies = [("compliance", "0003_chain_verification")]

    operations = [migrations.RunSQL(sql=APPEND_ONLY_SQL, reverse_sql=APPEND_ONLY_REVERSE_SQL)]

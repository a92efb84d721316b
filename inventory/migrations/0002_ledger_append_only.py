from django.db import migrations

SQL = """
CREATE OR REPLACE FUNCTION inventory_ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'inventory_stockledgerentry is append-only (% refused)', TG_OP;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER inventory_ledger_append_only
    BEFORE UPDATE OR DELETE ON inventory_stockledgerentry
    FOR EACH ROW EXECUTE FUNCTION inventory_ledger_append_only();
"""

REVERSE = """
DROP TRIGGER IF EXISTS inventory_ledger_append_only ON inventory_stockledgerentry;
DROP FUNCTION IF EXISTS inventory_ledger_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("inventory", "0001_initial")]
    operations = [migrations.RunSQL(SQL, REVERSE)]

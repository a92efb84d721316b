"""Indexes for the order workbench (orders.selectors): only indexes, no model change.

They are plain SQL (partial indexes, and kept out of the model state on purpose so that the
models file stays as it is); each one lets a workbench query walk an index in
(placed_at desc, id desc) order instead of scanning the table:

- order_store_status_placed: a shop's orders in one status tab, and that tab's capped count;
- order_refunding_placed: the 售后中 tab (is_refunding) and its count;
- order_flagged_placed: the out-of-stock / unmatched / address-changed flag filters, which
  match few orders (PostgreSQL proves ``WHERE has_unmatched`` implies the OR predicate).
"""

from django.db import migrations

INDEXES = {
    "order_store_status_placed": "(store_id, status, placed_at DESC, id DESC)",
    "order_refunding_placed": "(placed_at DESC, id DESC) WHERE is_refunding",
    "order_flagged_placed": (
        "(placed_at DESC, id DESC) WHERE has_unmatched OR is_out_of_stock OR address_changed"
    ),
}


class Migration(migrations.Migration):
    dependencies = [("orders", "0001_initial")]

    operations = [
        migrations.RunSQL(
            sql=f"CREATE INDEX IF NOT EXISTS {name} ON orders_order {definition}",
            reverse_sql=f"DROP INDEX IF EXISTS {name}",
        )
        for name, definition in INDEXES.items()
    ]

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("channels", "0001_initial"),
        ("orders", "0004_auto_merge_rule"),
    ]

    operations = [
        migrations.CreateModel(
            name="IngestionFailure",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("platform_order_id", models.CharField(max_length=64)),
                ("snapshot_id", models.BigIntegerField()),
                ("attempts", models.PositiveIntegerField(default=1)),
                ("last_error", models.CharField(blank=True, max_length=300)),
                ("first_failed_at", models.DateTimeField()),
                ("last_failed_at", models.DateTimeField()),
                ("next_attempt_at", models.DateTimeField()),
                (
                    "store",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="channels.store"
                    ),
                ),
            ],
            options={
                "ordering": ["-last_failed_at"],
                "constraints": [
                    models.UniqueConstraint(fields=("store", "platform_order_id"), name="uniq_ingestion_failure")
                ],
            },
        ),
    ]

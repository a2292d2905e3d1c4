import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_pjpixel", "0003_prisjakt_event"),
    ]

    operations = [
        migrations.AddField(
            model_name="conversionevent",
            name="restated_amount",
            field=models.DecimalField(
                blank=True,
                decimal_places=2,
                max_digits=14,
                null=True,
                verbose_name="restated amount",
            ),
        ),
        migrations.AddField(
            model_name="conversionevent",
            name="restated_api_amount",
            field=models.BigIntegerField(
                blank=True, null=True, verbose_name="restated amount sent"
            ),
        ),
        migrations.AddField(
            model_name="conversionevent",
            name="restated_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="restated at"),
        ),
        migrations.AddField(
            model_name="conversionevent",
            name="restated_currency",
            field=models.CharField(blank=True, max_length=3, verbose_name="restated currency"),
        ),
        migrations.AddField(
            model_name="conversionevent",
            name="restated_number_of_items",
            field=models.PositiveIntegerField(
                blank=True, null=True, verbose_name="restated number of items"
            ),
        ),
        migrations.CreateModel(
            name="Restatement",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("pixel_id", models.CharField(max_length=64, verbose_name="pixel id")),
                ("order_id", models.CharField(max_length=100, verbose_name="order id")),
                ("reason", models.CharField(blank=True, max_length=200, verbose_name="reason")),
                (
                    "old_amount",
                    models.DecimalField(
                        blank=True,
                        decimal_places=2,
                        max_digits=14,
                        null=True,
                        verbose_name="old amount",
                    ),
                ),
                (
                    "old_api_amount",
                    models.BigIntegerField(blank=True, null=True, verbose_name="old amount sent"),
                ),
                (
                    "old_number_of_items",
                    models.PositiveIntegerField(
                        blank=True, null=True, verbose_name="old number of items"
                    ),
                ),
                (
                    "old_currency",
                    models.CharField(blank=True, max_length=3, verbose_name="old currency"),
                ),
                (
                    "amount",
                    models.DecimalField(decimal_places=2, max_digits=14, verbose_name="new amount"),
                ),
                (
                    "api_amount",
                    models.BigIntegerField(blank=True, null=True, verbose_name="new amount sent"),
                ),
                (
                    "number_of_items",
                    models.PositiveIntegerField(verbose_name="new number of items"),
                ),
                ("currency", models.CharField(max_length=3, verbose_name="new currency")),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("pending", "Pending"),
                            ("sending", "Sending"),
                            ("sent", "Sent"),
                            ("failed", "Failed"),
                            ("dead", "Gave up"),
                            ("applied", "Taken before sending"),
                            ("superseded", "Superseded"),
                            ("unsendable", "Not sendable"),
                        ],
                        default="pending",
                        max_length=16,
                        verbose_name="status",
                    ),
                ),
                (
                    "skip_reason",
                    models.CharField(blank=True, max_length=200, verbose_name="why not sent"),
                ),
                ("attempts", models.PositiveIntegerField(default=0, verbose_name="attempts")),
                (
                    "next_attempt_at",
                    models.DateTimeField(blank=True, null=True, verbose_name="next attempt at"),
                ),
                (
                    "leased_until",
                    models.DateTimeField(blank=True, null=True, verbose_name="leased until"),
                ),
                (
                    "lease_token",
                    models.UUIDField(blank=True, null=True, verbose_name="lease token"),
                ),
                (
                    "last_status_code",
                    models.PositiveSmallIntegerField(
                        blank=True, null=True, verbose_name="last HTTP status"
                    ),
                ),
                (
                    "problem_type",
                    models.CharField(blank=True, max_length=200, verbose_name="problem type"),
                ),
                (
                    "problem_title",
                    models.CharField(blank=True, max_length=300, verbose_name="problem title"),
                ),
                ("problem_detail", models.TextField(blank=True, verbose_name="problem detail")),
                (
                    "field_errors",
                    models.JSONField(blank=True, default=dict, verbose_name="field errors"),
                ),
                (
                    "request_id",
                    models.CharField(blank=True, max_length=100, verbose_name="request id"),
                ),
                (
                    "remote_event_id",
                    models.CharField(blank=True, max_length=64, verbose_name="Prisjakt event id"),
                ),
                (
                    "created_at",
                    models.DateTimeField(
                        default=django.utils.timezone.now, verbose_name="restated at"
                    ),
                ),
                ("updated_at", models.DateTimeField(auto_now=True, verbose_name="updated at")),
                ("sent_at", models.DateTimeField(blank=True, null=True, verbose_name="sent at")),
                (
                    "event",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="restatements",
                        to="django_pjpixel.conversionevent",
                        verbose_name="conversion event",
                    ),
                ),
            ],
            options={
                "verbose_name": "restatement",
                "verbose_name_plural": "restatements",
                "ordering": ("-created_at", "-pk"),
                "indexes": [
                    models.Index(
                        fields=["status", "next_attempt_at"], name="pjpixel_restatement_due"
                    ),
                    models.Index(
                        fields=["status", "leased_until"], name="pjpixel_restatement_leases"
                    ),
                ],
            },
        ),
    ]

"""Migration 0007 adds the history indexes to tables that already hold rows, without locking.

On PostgreSQL each index is built ``CONCURRENTLY`` (which refuses to run in a
transaction, so the migration is not atomic); on MariaDB online; on SQLite
plainly. Here: on the test database, rows written at 0006 stay and every
index is there after 0007, and back again.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from django_pjpixel.models import ConversionEvent, OrderClick, PrisjaktEvent, Restatement

pytestmark = pytest.mark.django_db(transaction=True)

APP = "django_pjpixel"
BEFORE = [(APP, "0006_conversionevent_conflict")]
AFTER = [(APP, "0007_history_indexes")]
MODELS = (ConversionEvent, Restatement, PrisjaktEvent, OrderClick)


def index_names() -> set[str]:
    with connection.cursor() as cursor:
        return {
            name
            for model in MODELS
            for name, info in connection.introspection.get_constraints(
                cursor, model._meta.db_table
            ).items()
            if info["index"]
        }


def new_indexes() -> set[str]:
    return {index.name for model in MODELS for index in model._meta.indexes} - {
        "pjpixel_due",
        "pjpixel_leases",
        "pjpixel_request_id",
        "pjpixel_restatement_due",
        "pjpixel_restatement_leases",
        "pjpixel_mirror_time",
        "pjpixel_mirror_external",
    }


def migrate(targets: list[tuple[str, str]]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def test_the_indexes_are_built_on_a_table_with_rows_and_removed_again() -> None:
    migrate(BEFORE)
    try:
        assert not new_indexes() & index_names()
        when = datetime(2026, 12, 1, tzinfo=timezone.utc)
        with connection.cursor() as cursor:
            for number in range(50):
                cursor.execute(
                    f"INSERT INTO {ConversionEvent._meta.db_table} (pixel_id, attempts,"
                    " problem_type, problem_title, problem_detail, field_errors, request_id,"
                    " remote_event_id, updated_at, order_id, event_name, event_time, amount,"
                    " currency, number_of_items, click_id, status, skip_reason, created_at,"
                    " restated_currency) VALUES (%s, 0, '', '', '', '{}', '', '', %s, %s,"
                    " 'purchase', %s, 100, 'SEK', 1, %s, 'sent', '', %s, '')",
                    ["pixel", when, f"order-{number}", when, f"click-{number}", when],
                )
        migrate(AFTER)
        assert new_indexes() <= index_names()
        assert ConversionEvent.objects.count() == 50
        migrate(BEFORE)
        assert not new_indexes() & index_names()
    finally:
        migrate(AFTER)
        ConversionEvent.objects.all().delete()

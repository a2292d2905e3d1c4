# History at scale (docs/explanation/scale.md): the indexes that keep the admin's
# pages, the health summary, erasure and retention as cheap at ten million orders
# as at a hundred thousand.
#
# The outbox of a live shop is big and written all the time, so no index here may
# lock it while it is built: PostgreSQL builds each CONCURRENTLY (so the migration
# is not atomic), MariaDB/MySQL online (ALGORITHM=INPLACE, LOCK=NONE: the server
# refuses rather than locks), SQLite, a single-writer database, plainly.

from __future__ import annotations

from typing import Any

from django.db import migrations, models
from django.db.migrations.operations import AddIndex


class AddIndexOnline(AddIndex):
    """``AddIndex`` built without blocking writes: concurrently on PostgreSQL, online on MySQL."""

    atomic = False

    def describe(self) -> str:
        return f"Create index {self.index.name} on {self.model_name} without blocking writes"

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        vendor = schema_editor.connection.vendor
        if vendor == "postgresql":
            schema_editor.add_index(model, self.index, concurrently=True)
        elif vendor == "mysql":
            sql = self.index.create_sql(model, schema_editor)
            schema_editor.execute(f"{sql} ALGORITHM=INPLACE LOCK=NONE")
        else:
            schema_editor.add_index(model, self.index)

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        model = from_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.remove_index(model, self.index, concurrently=True)
        else:
            schema_editor.remove_index(model, self.index)


def _index(model_name: str, name: str, *fields: str) -> AddIndexOnline:
    return AddIndexOnline(model_name, models.Index(fields=list(fields), name=name))


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("django_pjpixel", "0006_conversionevent_conflict"),
    ]

    operations = [
        _index("conversionevent", "pjpixel_created", "created_at", "id"),
        _index("conversionevent", "pjpixel_status_created", "status", "created_at", "id"),
        _index("conversionevent", "pjpixel_pixel_created", "pixel_id", "created_at", "id"),
        _index("conversionevent", "pjpixel_order_id", "order_id"),
        _index("conversionevent", "pjpixel_click_id", "click_id"),
        _index("conversionevent", "pjpixel_status_updated", "status", "updated_at"),
        _index("conversionevent", "pjpixel_status_sent", "status", "sent_at"),
        _index("conversionevent", "pjpixel_event_time", "pixel_id", "event_time"),
        _index("conversionevent", "pjpixel_conflict_at", "conflict_at"),
        _index("restatement", "pjpixel_restatement_created", "created_at", "id"),
        _index("restatement", "pjpixel_restatement_status", "status", "created_at", "id"),
        _index("restatement", "pjpixel_restatement_pixel", "pixel_id", "created_at", "id"),
        _index("restatement", "pjpixel_restatement_order", "order_id"),
        _index("restatement", "pjpixel_restatement_request", "request_id"),
        _index("prisjaktevent", "pjpixel_mirror_recent", "-event_time", "id"),
        _index("prisjaktevent", "pjpixel_mirror_order", "external_event_id"),
        _index("orderclick", "pjpixel_order_click_id", "click_id"),
    ]

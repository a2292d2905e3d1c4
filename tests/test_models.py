"""The models: their tables are what the migrations make."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_the_migrations_make_the_tables_the_models_describe() -> None:
    out = StringIO()
    # Exits 1, naming the changes, where a model differs from its migrations.
    call_command("makemigrations", "django_pjpixel", check=True, dry_run=True, stdout=out)
    assert "No changes detected" in out.getvalue()

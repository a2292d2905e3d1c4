"""``manage.py demo_setup``: what ``make demo`` does before it starts anything."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection


class Command(BaseCommand):
    help = "Check the settings (warnings fail), migrate, and create the demo's admin user."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password", default="admin")

    def handle(self, *args: Any, username: str, password: str, **options: Any) -> None:
        call_command("check", fail_level="WARNING")
        if connection.vendor == "sqlite":
            with connection.cursor() as cursor:  # readers and a writer at once; persists
                cursor.execute("PRAGMA journal_mode=WAL")
        call_command("migrate", interactive=False, verbosity=0)
        user_model = get_user_model()
        user, created = user_model._default_manager.get_or_create(
            **{user_model.USERNAME_FIELD: username},
            defaults={"is_staff": True, "is_superuser": True},
        )
        if created or not user.check_password(password):
            user.is_staff = user.is_superuser = True
            user.set_password(password)
            user.save()
        self.stdout.write(f"Database migrated; admin user {username!r} ready.")

"""``manage.py pjpixel_deliver``: send every conversion event (and restatement) due (for cron)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_pjpixel.models import ConversionEvent
from django_pjpixel.sending.backlog import deliver_due

Status = ConversionEvent.Status
PERMANENT = (str(Status.FAILED), str(Status.DEAD))


class Command(BaseCommand):
    help = (
        "Send the Prisjakt conversion events that are due (new ones whose queueing "
        "failed, retries whose time has come, expired leases) and print how many "
        "ended in each state, then the restatements (refunds, cancellations) that are "
        "due. Exits with status 1 when an event or a restatement failed permanently "
        "(failed or dead) in this run, so cron or monitoring notices; rows left "
        "pending for a later retry do not count as a failure."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--limit",
            type=int,
            default=None,
            help='At most this many events (default: PJPIXEL["DELIVER_DUE_LIMIT"]).',
        )

    def handle(self, *args: Any, **options: Any) -> None:
        limit: int | None = options["limit"]
        if limit is not None and limit < 1:
            raise CommandError("--limit must be at least 1")
        counts = deliver_due(limit)
        if not counts:
            self.stdout.write("Nothing is due.")
            return
        order = [str(s) for s in Status.values] + sorted(set(counts) - set(Status.values))
        for name in order:
            if counts.get(name):
                self.stdout.write(f"{name}: {counts[name]}")
        failures = [
            f"{count} {what}(s) failed permanently; see the {what}s in the admin"
            for what, prefix in (("event", ""), ("restatement", "restatement "))
            if (count := sum(counts.get(prefix + status, 0) for status in PERMANENT))
        ]
        if failures:
            raise CommandError("; ".join(failures), returncode=1)

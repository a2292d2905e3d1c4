"""``manage.py pjpixel_reconcile [--from D --to D] [--format table|csv|json] [--pixel KEY]``.

Compares the orders the shop sent with Prisjakt's events in the mirror
(``reconciliation.reconcile``) for whole days in the current time zone,
by default the last ``SYNC_DAYS`` days up to today, the range the periodic
sync keeps. For cron and monitoring, the exit status says what it found:

- 0: nothing differs (orders may still be pending);
- 1: at least one order is ``amount_differs``, ``missing_at_prisjakt`` or
  ``unknown_to_shop``;
- 2: it could not run (no complete sync of the range, wrong dates, a
  database error; with several markets, no ``--pixel KEY`` naming the one).

``table`` prints the counts and the differences; ``csv`` the differences
only, one per line (cells neutralised for spreadsheets); ``json`` the whole
report, ``{"from", "to", "synced_at", "counts", "differences"}``, streamed.
"""

from __future__ import annotations

import json
from argparse import ArgumentParser
from datetime import timedelta
from itertools import chain
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from django_pjpixel.conf import pjpixel_settings
from django_pjpixel.management.commands.pjpixel_check import market_option
from django_pjpixel.management.commands.pjpixel_events import day
from django_pjpixel.markets import is_configured, keys_text
from django_pjpixel.record.exports import csv_lines
from django_pjpixel.record.ranges import day_range
from django_pjpixel.record.reconciliation import (
    CATEGORIES,
    CSV_HEADER,
    NotSynced,
    Report,
    describe,
    reconcile,
)

DIFFERS, CANNOT_RUN = 1, 2


class Command(BaseCommand):
    help = (
        "Compare the orders sent to Prisjakt with Prisjakt's synced events, per order. "
        "Exit status 0: nothing differs; 1: something differs; 2: it could not run."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--from", dest="first", type=day, help="YYYY-MM-DD, with --to")
        parser.add_argument("--to", dest="last", type=day, help="YYYY-MM-DD, with --from")
        parser.add_argument("--format", choices=("table", "csv", "json"), default="table")
        parser.add_argument(
            "--pixel", help='the market, a key of PJPIXEL["PIXELS"] (needed with several)'
        )

    def handle(self, *args: Any, **options: Any) -> None:
        first, last = options["first"], options["last"]
        if (first is None) != (last is None):
            raise CommandError(_("Give --from and --to together."), returncode=CANNOT_RUN)
        if first is None:
            last = timezone.localdate()
            first = last - timedelta(days=pjpixel_settings.SYNC_DAYS - 1)
        if last < first:
            raise CommandError(
                _("The end date must not be before the start date."), returncode=CANNOT_RUN
            )
        chosen = market_option(options["pixel"], CANNOT_RUN)
        if chosen is None and is_configured():
            # One report a run: a shop with several markets names the one to compare.
            raise CommandError(
                _("Name the market to compare: --pixel KEY (%(markets)s).")
                % {"markets": keys_text()},
                returncode=CANNOT_RUN,
            )
        pixel_id = chosen.pixel_id if chosen else None
        try:
            report = reconcile(*day_range(first, last), pixel_id=pixel_id)
            write = getattr(self, f"write_{options['format']}")
            write(report)
        except NotSynced as err:
            raise CommandError(str(err), returncode=CANNOT_RUN) from err
        except DatabaseError as err:
            raise CommandError(
                _("The comparison failed in the database: %s") % err, returncode=CANNOT_RUN
            ) from err
        if report.differs:
            found = sum(report.counts[category] for category in CATEGORIES[1:4])
            raise CommandError(
                ngettext(
                    "%(count)d order differs between the shop and Prisjakt.",
                    "%(count)d orders differ between the shop and Prisjakt.",
                    found,
                )
                % {"count": found},
                returncode=DIFFERS,
            )

    def write_table(self, report: Report) -> None:
        synced = report.synced_at
        self.stdout.write(
            _("Orders from %(start)s to %(end)s; Prisjakt's events synced %(synced)s.")
            % {
                "start": f"{timezone.localtime(report.start):%Y-%m-%d}",
                "end": f"{timezone.localtime(report.end):%Y-%m-%d}",
                "synced": f"{timezone.localtime(synced):%Y-%m-%d %H:%M}" if synced else "-",
            }
        )
        self.stdout.write("")
        for category in CATEGORIES:
            self.stdout.write(f"{category:<22}{report.counts[category]:>8}")
        differences = report.differences()
        first = next(differences, None)
        if first is None:
            return
        self.stdout.write("")
        self.stdout.write(f"{'category':<22}{'order':<24}{'ours':<28}Prisjakt")
        for difference in (first, *differences):
            self.stdout.write(
                f"{difference.category:<22}{difference.order_id or '-':<24}"
                f"{describe(difference.ours):<28}{describe(difference.prisjakt)}"
            )

    def write_csv(self, report: Report) -> None:
        rows = (difference.as_row() for difference in report.differences())
        for line in csv_lines(chain([CSV_HEADER], rows)):
            self.stdout.write(line, ending="")
        self.stdout.flush()

    def write_json(self, report: Report) -> None:
        head = report.as_json([])
        del head["differences"]
        separator = json.dumps(head)[:-1] + ', "differences": ['
        for difference in report.differences():
            self.stdout.write(separator + json.dumps(difference.as_json()), ending="")
            separator = ", "
        self.stdout.write("]}" if separator == ", " else separator + "]}")

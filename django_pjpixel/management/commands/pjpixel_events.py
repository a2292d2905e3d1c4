"""``manage.py pjpixel_events [--from YYYY-MM-DD --to YYYY-MM-DD] [--format csv|json]``.

Every page of the pixel's events (``--pixel``: a market's) in the range (whole
days in the current time zone; without ``--from``/``--to``, the last 7 days:
today and the 6 before), each event once, streamed to stdout as it arrives:
CSV rows, or one JSON array written element by element.
"""

from __future__ import annotations

import json
from argparse import ArgumentParser, ArgumentTypeError
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from itertools import chain
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from django_pjpixel import times
from django_pjpixel.api.client import get_client
from django_pjpixel.exceptions import InvalidInput, PjpixelConfigurationError, PrisjaktAPIError
from django_pjpixel.management.commands.pjpixel_check import describe, market_option
from django_pjpixel.record.exports import csv_lines
from django_pjpixel.record.ranges import DATE_FORMAT, check_days

DEFAULT_DAYS = 7
CSV_COLUMNS = (
    "id",
    "click_id",
    "external_event_id",
    "event_name",
    "event_time",
    "amount",
    "currency",
    "number_of_items",
)


def day(value: str) -> date:
    try:
        return datetime.strptime(value, DATE_FORMAT).date()
    except ValueError as err:
        raise ArgumentTypeError(f"{value!r} is not a date as YYYY-MM-DD") from err


class Command(BaseCommand):
    help = (
        "Write the pixel's events at Prisjakt between two dates (at most 60 days; default the "
        "last 7) to stdout."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--from", dest="first", type=day, help="YYYY-MM-DD, with --to (default: 6 days ago)"
        )
        parser.add_argument(
            "--to", dest="last", type=day, help="YYYY-MM-DD, with --from (default: today)"
        )
        parser.add_argument("--format", choices=("csv", "json"), default="csv")
        parser.add_argument(
            "--pixel", metavar="MARKET", help='a market of PJPIXEL["PIXELS"] (default: the first)'
        )

    def handle(self, *args: Any, **options: Any) -> None:
        first, last = options["first"], options["last"]
        if (first is None) != (last is None):
            raise CommandError(_("Give --from and --to together."))
        if first is None:
            last = times.localdate()
            first = last - timedelta(days=DEFAULT_DAYS - 1)
        try:
            start, end = check_days(first, last)
        except InvalidInput as err:
            raise CommandError(err.message) from err
        market = market_option(options["pixel"])
        pixel_id = market.pixel_id if market else None
        try:
            events = get_client(pixel_id).iter_events(start=start, end=end)
            if options["format"] == "json":
                self.write_json(events)
            else:
                self.write_csv(events)
        except PrisjaktAPIError as err:
            raise CommandError(describe(err, _("the pixel"))) from err
        except PjpixelConfigurationError as err:
            raise CommandError(_("The settings are incomplete: %s") % err) from err

    def write_csv(self, events: Iterable[dict[str, Any]]) -> None:
        for line in csv_lines(chain([CSV_COLUMNS], _rows(events))):
            self.stdout.write(line, ending="")
            self.stdout.flush()

    def write_json(self, events: Any) -> None:
        separator = "[\n"
        for event in events:
            self.stdout.write(separator + json.dumps(event, ensure_ascii=False), ending="")
            self.stdout.flush()
            separator = ",\n"
        self.stdout.write("[]\n" if separator == "[\n" else "\n]\n", ending="")


def _rows(events: Iterable[dict[str, Any]]) -> Iterator[list[Any]]:
    for event in events:
        data = event.get("data")
        if not isinstance(data, dict):
            data = {}
        yield [event.get(name) for name in CSV_COLUMNS[:5]] + [
            data.get(name) for name in CSV_COLUMNS[5:]
        ]

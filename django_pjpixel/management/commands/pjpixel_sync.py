"""``manage.py pjpixel_sync [--days N | --from YYYY-MM-DD --to YYYY-MM-DD] [--pixel KEY]``.

Lists the pixel's events at Prisjakt into the mirror (``sync.sync_events``):
the last ``--days`` days (default ``PJPIXEL["SYNC_DAYS"]``) up to now, or
whole days in the current time zone, of any length (listed 60 days at a
time). On a terminal a progress bar counts the pages; elsewhere (cron, a
pipe) only the summary is printed. With several markets each market's pixel
is synced in turn with its own credentials (a section each), or the one
``--pixel KEY`` names. Exit status 0 when the whole range was read, 1 when a
run stopped early or the API refused it (the other markets are synced all
the same).
"""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.translation import gettext as _
from tqdm import tqdm

from django_pjpixel.api.client import get_client
from django_pjpixel.exceptions import InvalidInput, PjpixelConfigurationError, PrisjaktAPIError
from django_pjpixel.management.commands.pjpixel_check import describe, market_option
from django_pjpixel.management.commands.pjpixel_events import day
from django_pjpixel.markets import all_markets, is_configured
from django_pjpixel.models import PrisjaktSync
from django_pjpixel.record.ranges import day_range
from django_pjpixel.record.sync import Progress, sync_events, sync_recent


class Command(BaseCommand):
    help = "Copy the pixel's events at Prisjakt into the shop's mirror (the last days, or a range)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--days", type=int, help='the last N days (default PJPIXEL["SYNC_DAYS"])'
        )
        parser.add_argument("--from", dest="first", type=day, help="YYYY-MM-DD, with --to")
        parser.add_argument("--to", dest="last", type=day, help="YYYY-MM-DD, with --from")
        parser.add_argument(
            "--pixel", help='one market, a key of PJPIXEL["PIXELS"] (default: every market)'
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days, first, last = options["days"], options["first"], options["last"]
        if (first is None) != (last is None):
            raise CommandError(_("Give --from and --to together."))
        if days is not None and first is not None:
            raise CommandError(_("Give --days or --from/--to, not both."))
        if days is not None and days < 1:
            raise CommandError(_("--days must be at least 1."))
        chosen = market_option(options["pixel"])
        found = [chosen] if chosen is not None else [m for m in all_markets() if m.pixel_id]
        if not is_configured():
            self.sync(None, days, first, last)
            return
        failed = []
        for market in found:  # every market's mirror, as the periodic sync_events does
            self.stdout.write(self.style.MIGRATE_HEADING(_("Market %(key)s") % {"key": market.key}))
            try:
                self.sync(market.pixel_id, days, first, last)
            except CommandError as err:
                self.stderr.write(str(err))
                failed.append(market.key)
        if failed:
            raise CommandError(
                _("The sync failed for markets: %(keys)s.") % {"keys": ", ".join(failed)}
            )

    def sync(self, pixel_id: str | None, days: int | None, first: Any, last: Any) -> None:
        """One pixel's sync, with a progress bar on a terminal, and its summary."""
        stream = getattr(self.stderr, "_out", self.stderr)
        # disable=None: tqdm shows the bar only when the stream is a terminal.
        with tqdm(unit=_("page"), file=stream, disable=None, leave=False) as bar:

            def on_page(progress: Progress) -> None:
                if progress.last is not None:
                    bar.total = progress.pages - progress.page + progress.last
                bar.set_postfix_str(_("%(events)d events") % {"events": progress.events})
                if progress.spans > 1:
                    bar.set_description(f"{progress.span}/{progress.spans}")
                bar.update(1)

            try:
                if first is not None:
                    start, end = day_range(first, last)
                    client = get_client(pixel_id)
                    run = sync_events(start, end, on_page=on_page, client=client)
                else:
                    run = sync_recent(days, on_page=on_page, pixel_id=pixel_id)
            except InvalidInput as err:
                raise CommandError(err.message) from err
            except PrisjaktAPIError as err:
                raise CommandError(describe(err, _("the pixel"))) from err
            except PjpixelConfigurationError as err:
                raise CommandError(_("The settings are incomplete: %s") % err) from err
        self.report(run)

    def report(self, run: PrisjaktSync) -> None:
        summary = _(
            "%(events)d events at Prisjakt from %(start)s to %(end)s, in %(pages)d pages."
        ) % {
            "events": run.events,
            "start": f"{timezone.localtime(run.start):%Y-%m-%d %H:%M}",
            "end": f"{timezone.localtime(run.end):%Y-%m-%d %H:%M}",
            "pages": run.pages,
        }
        self.stdout.write(summary)
        if not run.complete:
            raise CommandError(_("The sync stopped early: %s") % run.error)
        self.stdout.write(self.style.SUCCESS(_("The mirror is up to date.")))

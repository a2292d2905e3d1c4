"""``manage.py pjpixel_erase --order ID | --click ID``: a data subject's request for erasure.

Erases the click id of one order, or one click id wherever it is, from every
table that holds one (``retention.CLICK_COLUMNS``), whatever its age, and
every copy of it in a text or JSON column (a problem's detail, the field errors
that echo the value sent, the mirror's event as listed); an event not sent yet
is skipped rather than sent. Prints how many rows of each table held the click
id. The exit status says what it found:

- 0: it erased something;
- 1: nothing held that order's or that click's id (nothing to erase);
- 2: it could not run (wrong arguments, a database error).

The visitor's own copy (their session or cookie, the browser's) is not in
these tables: ``attribution.forget_click`` drops it on the visitor's request,
and it expires with the attribution window.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from django.utils.translation import gettext as _

from django_pjpixel.ledger.retention import COPIES, erase

NOTHING_FOUND, CANNOT_RUN = 1, 2


class Command(BaseCommand):
    help = (
        "Erase one order's or one click id's Prisjakt click from every table that holds it, "
        "and print how many rows of each. Exit status 0: erased; 1: nothing held it; "
        "2: it could not run."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--order", metavar="ID", help="the shop's order id")
        which.add_argument("--click", metavar="ID", help="a Prisjakt click id (pjclid)")
        parser.add_argument(
            "--everywhere",
            action="store_true",
            help="with --click: also read every row of every table for copies an older "
            "version's erasure left (a full scan, slow on a long history)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        order_id, click_id = options["order"], options["click"]
        if not (order_id or click_id):
            raise CommandError(_("Give --order ID or --click ID."), returncode=CANNOT_RUN)
        try:
            counts = (
                erase(order_id=order_id)
                if order_id
                else erase(click_id=click_id, everywhere=options["everywhere"])
            )
        except DatabaseError as err:
            raise CommandError(
                _("The erasure failed in the database: %s") % err, returncode=CANNOT_RUN
            ) from err
        for label, count in counts.items():
            if label == COPIES:
                self.stdout.write(_("other rows holding a copy: %(count)d") % {"count": count})
                continue
            table = apps.get_model(label)._meta.verbose_name_plural
            self.stdout.write(f"{table}: {count}")
        if not any(counts.values()):
            raise CommandError(_("Nothing held that id: nothing erased."), returncode=NOTHING_FOUND)
        self.stdout.write(self.style.SUCCESS(_("Erased.")))

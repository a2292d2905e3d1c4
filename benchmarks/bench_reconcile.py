"""Reconciliation of many orders against as many mirrored events: its queries and its time.

``sizes.reconcile_orders`` orders over 30 days in the ledger and as many
events in the mirror, as a shop's month looks after a sync: most match, 1 %
each differ in amount, are missing at Prisjakt, are still pending, and 1 %
of Prisjakt's events are unknown to the shop. Targets: the same number of
queries for the whole range as for one day of it (no query per order); the
time of a report (counts and every difference read) is printed beside the
same range's plain ``count(*)`` join of the two tables, both the median of
``ROUNDS`` runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from benchmarks.harness import Report, Row, Sizes, median, ms
from django_pjpixel.models import ConversionEvent, PrisjaktEvent, PrisjaktSync
from django_pjpixel.record.reconciliation import reconcile

DAYS = 30
ROUNDS = 3
BATCH = 5000
PREFIX = "rc-"


def seed(count: int, now: datetime) -> None:
    """The ledger's orders and the mirror's events, every 100th of each kind differing."""
    pixel = settings.PJPIXEL["PIXEL_ID"]
    step = timedelta(days=DAYS) / count
    ours, theirs = [], []
    for index in range(count):
        when = now - timedelta(hours=2) - index * step
        amount = Decimal(100 + index % 900) + (Decimal("0.50") if index % 7 == 0 else 0)
        kind = index % 100
        ours.append(
            ConversionEvent(
                pixel_id=pixel,
                order_id=f"{PREFIX}{index}",
                event_time=when,
                amount=amount,
                currency="SEK",
                number_of_items=1 + index % 3,
                status=ConversionEvent.Status.PENDING if kind == 3 else ConversionEvent.Status.SENT,
                sent_at=None if kind == 3 else when,
                created_at=when,
            )
        )
        if kind != 2:  # kind 2: missing at Prisjakt
            theirs.append(
                PrisjaktEvent(
                    id=f"{index:08x}-0000-4000-8000-000000000000",
                    pixel_id=pixel,
                    external_event_id=f"{PREFIX}{index}" if kind != 4 else f"browser-{index}",
                    event_name="purchase",
                    event_time=when,
                    amount=round(amount + Decimal("0.001")) + (10 if kind == 1 else 0),
                    currency="SEK",
                    number_of_items=1 + index % 3,
                    data={},
                    first_seen=now,
                    last_seen=now,
                )
            )
        if len(ours) >= BATCH:
            ConversionEvent.objects.bulk_create(ours)
            PrisjaktEvent.objects.bulk_create(theirs)
            ours, theirs = [], []
    ConversionEvent.objects.bulk_create(ours)
    PrisjaktEvent.objects.bulk_create(theirs)
    PrisjaktSync.objects.create(
        pixel_id=pixel,
        start=now - timedelta(days=DAYS + 1),
        end=now,
        started_at=now,
        finished_at=now,
        complete=True,
    )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for model in (ConversionEvent, PrisjaktEvent):
                cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


def report_of(start: datetime, end: datetime) -> int:
    """A whole report: the counts and every difference read; the differences."""
    return sum(1 for _ in reconcile(start, end).differences())


def count_join(start: datetime, end: datetime) -> int:
    """The plain join of the two tables over the range: the floor of any comparison."""
    q = connection.ops.quote_name
    ledger, mirror = q(ConversionEvent._meta.db_table), q(PrisjaktEvent._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*) FROM {ledger} c JOIN {mirror} m "
            "ON m.external_event_id = c.order_id AND m.pixel_id = c.pixel_id "
            "WHERE c.pixel_id = %s AND c.event_time >= %s AND c.event_time <= %s",
            [
                settings.PJPIXEL["PIXEL_ID"],
                connection.ops.adapt_datetimefield_value(start),
                connection.ops.adapt_datetimefield_value(end),
            ],
        )
        return int(cursor.fetchone()[0])


def timed(call: Callable[[], int]) -> tuple[float, int]:
    seconds = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - started)
    return median(seconds), result


def run(report: Report, sizes: Sizes) -> None:
    count = sizes.reconcile_orders
    print(
        f"reconciliation: {count:,} orders against the mirror over {DAYS} days"
        f" on {connection.vendor}",
        flush=True,
    )
    if connection.vendor != "postgresql":
        report.note("reconciliation: measured on SQLite, not PostgreSQL (PostgreSQL unavailable)")
    now = timezone.now()
    started = time.perf_counter()
    seed(count, now)
    print(f"  seeded in {time.perf_counter() - started:.1f} s", flush=True)
    start, end = now - timedelta(days=DAYS + 1), now
    with CaptureQueriesContext(connection) as whole:
        differences = report_of(start, end)
    with CaptureQueriesContext(connection) as one_day:
        report_of(now - timedelta(days=1), end)
    seconds, _ = timed(lambda: report_of(start, end))
    join_seconds, joined = timed(lambda: count_join(start, end))
    print(
        f"  {differences:,} differences; report {ms(seconds)}, count(*) join of"
        f" {joined:,} rows {ms(join_seconds)}; queries {len(whole)} (one day: {len(one_day)})",
        flush=True,
    )
    ConversionEvent.objects.filter(order_id__startswith=PREFIX).delete()
    PrisjaktEvent.objects.all().delete()
    PrisjaktSync.objects.all().delete()
    report.add(
        Row(
            f"reconciliation: queries for {count:,} orders",
            f"{len(whole)} queries",
            f"{len(one_day)} for one day of them",
            "—",
            "constant",
            len(whole) == len(one_day),
        )
    )
    report.add(
        Row(
            f"reconciliation: time for {count:,} orders ({differences:,} differences)",
            ms(seconds),
            f"{ms(join_seconds)} plain count(*) join",
            f"{seconds / join_seconds:.1f}",
        )
    )

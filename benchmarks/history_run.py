"""``python -m benchmarks.history_run SMALL LARGE``: every page and job at two history sizes.

Run by ``bench_history`` once per database (``PJPIXEL_BENCH_DB``: PostgreSQL,
or ``mariadb``), in a database of its own that it creates and drops. Seeds
``SMALL`` orders, lets the server settle, times each measured call (two
passes, each the best of ``ROUNDS`` after a warm-up, the better pass kept)
and counts its queries; seeds the older orders up to ``LARGE`` behind them
and does it again. Prints progress, then
one JSON line: ``{"database": ..., "results": [[name, small_s, large_s,
small_queries, large_queries], ...]}``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

ROUNDS = 5
SETTLE_S = 120
# From this larger size on, a run settles the server and measures twice.
THOROUGH = 100_000
# The floor of reconcile()'s counts: the range's orders joined to the mirror, counted.
JOIN = "plain join of 30 days' orders with the mirror"
ERASED = iter(range(301, 1_000_000, 10))  # click ids erased, one a call, each mirrored too


def measures(now: Any, pixel: str, small: int) -> dict[str, Callable[[], object]]:
    """What is timed: the admin's pages through a logged-in client, the rest as called.

    (``JOIN`` is the baseline of ``reconcile()``, not a page.)"""
    from django.contrib.auth import get_user_model
    from django.core.management import CommandError, call_command
    from django.test import Client
    from django.test.utils import override_settings

    from benchmarks.bench_reconcile import count_join
    from benchmarks.history_seed import PENDING, RATE, RETENTION_DAYS, TOP_ID, ident
    from django_pjpixel import health, healthcheck
    from django_pjpixel.admin.charts import range_context
    from django_pjpixel.ledger import retention
    from django_pjpixel.management.commands.pjpixel_check import Command as Check
    from django_pjpixel.models import ConversionEvent
    from django_pjpixel.record.reconciliation import reconcile
    from django_pjpixel.sending.outbox import claim_due

    user, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    admin = "/admin/django_pjpixel"
    outbox = f"{admin}/conversionevent/"
    from django.utils import timezone
    from django.utils.http import urlencode

    midnight = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    week_ago, today = (midnight - timedelta(days=7)).date(), midnight.date()
    last_week = urlencode(
        {"created_at__gte": str(midnight - timedelta(days=7)), "created_at__lt": str(midnight)}
    )
    month = urlencode({"from": str(today - timedelta(days=29)), "to": str(today)})
    deep = min(50, small // 50)  # page 50, or the last page of a smoke run's few rows
    probe = min(PENDING + 4321, small // 2)  # an order found by exact search, at both sizes
    retention_settings = override_settings(
        PJPIXEL={**_pjpixel(), "RETENTION": timedelta(days=RETENTION_DAYS)}
    )

    def page(path: str) -> Callable[[], object]:
        def get() -> object:
            response = client.get(path)
            assert response.status_code == 200, (path, response.status_code)
            return response

        return get

    def claim() -> object:
        rows = claim_due(100, now=now)
        ConversionEvent.objects.filter(pk__in=[row.pk for row in rows]).update(
            status="pending", leased_until=None, lease_token=None
        )
        return rows

    def purge() -> object:
        # 500 orders just past retention get a click id back first, for the run to erase:
        # that UPDATE by key range costs the same at both sizes.
        aged = TOP_ID - RETENTION_DAYS * RATE - PENDING
        ConversionEvent.objects.filter(pk__range=(aged - 499, aged)).update(click_id="again")
        with retention_settings:
            return retention.purge(now=now)

    def erase_click() -> object:
        try:
            return call_command(
                "pjpixel_erase", click=ident("click-", next(ERASED)), stdout=_Null()
            )
        except CommandError as err:  # erased before (a smoke run's few clicks): the same work
            return err

    return {
        "outbox list": page(outbox),
        "outbox filtered by status (failed)": page(f"{outbox}?status__exact=failed"),
        "outbox filtered by currency (NOK)": page(f"{outbox}?currency=NOK"),
        "outbox filtered by pixel": page(f"{outbox}?pixel_id={pixel}"),
        "outbox filtered by date (7 days)": page(f"{outbox}?{last_week}"),
        "outbox filtered by restated": page(f"{outbox}?restated=yes"),
        "outbox search by order id": page(f"{outbox}?q={ident('order-', probe)}"),
        "outbox search by request id": page(f"{outbox}?q={ident('req-', probe)}"),
        "outbox page 50": page(f"{outbox}?p={deep}"),
        "outbox row page": page(f"{outbox}{TOP_ID - probe}/change/"),
        "app index": page(f"{admin}/"),
        "restatements list": page(f"{admin}/restatement/"),
        "mirror list": page(f"{admin}/prisjaktevent/"),
        "mirror search by order id": page(f"{admin}/prisjaktevent/?q={ident('order-', probe)}"),
        "reconciliation page, 30 days": page(f"{admin}/prisjaktevent/reconciliation/?{month}"),
        "events page's range totals (7 days)": lambda: range_context(week_ago, today, pixel),
        "health summary": lambda: health.delivery_health(now),
        "health-check backend": lambda: _unhealthy(healthcheck.DeliveryHealthCheck().check_status),
        "pjpixel_check --health": lambda: _check_health(call_command),
        "pjpixel_check's failed count": Check(stdout=_Null(), stderr=_Null()).report_failed,
        "deliver_due's claim (100 rows)": claim,
        "retention purge, a run": purge,
        "pjpixel_erase --click": erase_click,
        "reconcile(), 30 days": lambda: reconcile(now - timedelta(days=30), now).counts,
        JOIN: lambda: count_join(now - timedelta(days=30), now),
    }


def _unhealthy(check: Callable[[], object]) -> object:
    try:
        return check()
    except Exception as err:  # the seeded shop has failures: the check says so
        return err


def _check_health(call_command: Callable[..., object]) -> object:
    from django.core.management import CommandError

    try:
        return call_command("pjpixel_check", "--health", stdout=_Null(), stderr=_Null())
    except CommandError as err:  # the seeded shop has failures: the command says so
        return err


def _pjpixel() -> dict[str, Any]:
    from django.conf import settings

    return dict(settings.PJPIXEL)


class _Null:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def settle() -> None:
    """Wait for the server to write out what the seeding left (at most ``SETTLE_S``)."""
    from django.db import connection

    started = time.monotonic()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("CHECKPOINT")
            return
        while time.monotonic() - started < SETTLE_S:
            cursor.execute("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'")
            if int(cursor.fetchone()[1]) < 1000:
                return
            time.sleep(2)


def measure(calls: dict[str, Callable[[], object]]) -> dict[str, tuple[float, int]]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    results = {}
    for name, call in calls.items():
        call()  # warm: templates, the planner's statistics, the buffer cache
        best = float("inf")
        for _ in range(ROUNDS):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                call()
                best = min(best, time.perf_counter() - started)
        results[name] = (best, len(queries))
        print(f"    {name}: {best * 1000:.1f} ms, {len(queries)} queries", flush=True)
    return results


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    small, large = int(sys.argv[1]), int(sys.argv[2])
    import django
    from django.conf import settings

    from benchmarks import services

    db = dict(settings.DATABASES["default"])
    services.create_database(db)
    try:
        django.setup()
        from django.core.management import call_command
        from django.db import connection
        from django.utils import timezone

        from benchmarks.history_seed import seed

        call_command("migrate", run_syncdb=True, verbosity=0)
        database = services.describe_database(db)
        print(f"  history on {database}", flush=True)
        now, pixel = timezone.now(), settings.PJPIXEL["PIXEL_ID"]
        found: dict[int, dict[str, tuple[float, int]]] = {}
        for first, last in ((1, small), (small + 1, large)):
            started = time.perf_counter()
            seed(first, last, now, pixel)
            print(f"  {last:,} orders seeded ({time.perf_counter() - started:.0f} s)", flush=True)
            calls = measures(now, pixel, small)
            if large < THOROUGH:  # a smoke run: only to see that everything runs
                found[last] = measure(calls)
                continue
            settle()
            # Twice, a while apart, the best of both: a neighbour's burst hits one pass only.
            first_pass, second_pass = measure(calls), measure(calls)
            found[last] = {name: min(first_pass[name], second_pass[name]) for name in first_pass}
        connection.close()
    finally:
        services.drop_database(db)
    rows = [
        [name, seconds, found[large][name][0], count, found[large][name][1]]
        for name, (seconds, count) in found[small].items()
    ]
    sys.stdout.write(json.dumps({"database": database, "results": rows}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

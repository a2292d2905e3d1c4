"""History at scale: each admin page and periodic job at two history sizes, 20x apart.

A shop keeps every outbox row for years, so every admin page (lists, filters,
exact search, deep pages, a row's page, the app index, the mirror, the
restatements, the reconciliation), the health summary and its check,
``pjpixel_check``, ``deliver_due``'s claim, a retention run and
``pjpixel_erase --click`` must cost the same at ``sizes.history_large``
orders as at ``sizes.history_small``. Each database runs in a process of its
own (``python -m benchmarks.history_run``) with a database of its own:
PostgreSQL, then MariaDB where it answers. Target per row: the large size's
time at most ``TARGET`` x the small size's, and the same number of queries
(or one more: the planner's estimate, once a count passes ``EXACT_UP_TO``);
``reconcile()``'s category counts at most ``JOIN_TARGET`` x the plain join
of the range's orders with the mirror.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from benchmarks.harness import Report, Row, Sizes
from benchmarks.history_run import JOIN
from benchmarks.services import is_postgres
from tests.settings import MARIADB_UNAVAILABLE, POSTGRES_UNAVAILABLE

TARGET = 1.5
# reconcile()'s counts at most this many times the plain join of the range's orders.
JOIN_TARGET = 3.0
TIMEOUT = 3600
# Below this a time is noise on a shared 2-core machine: the ratio is of times at least this.
FLOOR_S = 0.002


def databases() -> list[tuple[str, str]]:
    """(label, ``PJPIXEL_BENCH_DB``) of each database that answers."""
    from django.conf import settings

    found = []
    if is_postgres(settings.DATABASES["default"]) and not POSTGRES_UNAVAILABLE:
        found.append(("PostgreSQL", "postgresql"))
    if not MARIADB_UNAVAILABLE:
        found.append(("MariaDB", "mariadb"))
    return found


def run_history(vendor: str, small: int, large: int) -> dict[str, object]:
    env = {
        **os.environ,
        "PJPIXEL_BENCH_DB": vendor,
        "PJPIXEL_BENCH_DB_NAME": f"pjpixel_history_{os.getpid()}",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.history_run", str(small), str(large)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    last = ""
    for line in proc.stdout:
        if line.startswith("{"):
            last = line
        else:
            print(line, end="", flush=True)
    if proc.wait(timeout=TIMEOUT) != 0 or not last:
        raise RuntimeError(f"benchmarks.history_run on {vendor} exited with {proc.returncode}")
    result: dict[str, object] = json.loads(last)
    return result


def run(report: Report, sizes: Sizes) -> None:
    small, large = sizes.history_small, sizes.history_large
    found = databases()
    print(f"history: {small:,} and {large:,} orders on {', '.join(label for label, _ in found)}")
    if not found:
        report.note("history: neither PostgreSQL nor MariaDB answers; not measured")
    for label, vendor in found:
        result = run_history(vendor, small, large)
        report.note(f"history on {label}: {result['database']}")
        results = result["results"]
        for name, small_s, large_s, small_q, large_q in results:  # type: ignore[attr-defined]
            ratio = max(large_s, FLOOR_S) / max(small_s, FLOOR_S)
            if name == JOIN:  # the baseline of reconcile(), no page: no target of its own
                continue
            # A count past EXACT_UP_TO rows adds the planner's estimate: one query more.
            report.add(
                Row(
                    f"history ({label}): {name}",
                    f"{large_s * 1000:.1f} ms, {large_q} queries at {large:,}",
                    f"{small_s * 1000:.1f} ms, {small_q} queries at {small:,}",
                    f"{ratio:.2f}",
                    f"≤ {TARGET}, queries ≤ +1",
                    ratio <= TARGET and large_q <= small_q + 1,
                )
            )
        _against_join(report, label, large, {row[0]: row[2] for row in results})  # type: ignore[attr-defined]


def _against_join(report: Report, label: str, large: int, seconds: dict[str, float]) -> None:
    """reconcile()'s counts beside the plain join of the same range, at the large size."""
    counts, join = seconds["reconcile(), 30 days"], seconds[JOIN]
    report.add(
        Row(
            f"history ({label}): reconcile() of 30 days against the plain join, at {large:,}",
            f"{counts * 1000:.1f} ms",
            f"{join * 1000:.1f} ms plain count(*) join",
            f"{counts / join:.2f}",
            f"≤ {JOIN_TARGET}",
            counts / join <= JOIN_TARGET,
        )
    )

"""A backlog of due events (an outage's worth) drained by one worker process.

The worker is a subprocess (``python -m benchmarks.drain``, run by
``children.run_child``) calling ``deliver_due()`` until nothing is due; its
peak RSS is its own, from the kernel. The
emulator answers at 0 ms with the real API's rate limit (10,000 requests an
hour per client).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import Count

from benchmarks.bench_delivery import make_events
from benchmarks.children import run_child
from benchmarks.emulator import EmulatorProcess
from benchmarks.harness import Report, Row, Sizes
from django_pjpixel.models import FINAL_STATUSES, ConversionEvent

RATE_LIMIT = 10_000
TARGET_REQUEST_SHARE = 0.01
TARGET_RSS_MB = 150.0
TIMEOUT = 420.0
PREFIX = "backlog"


def _drain(api_url: str) -> tuple[dict[str, Any], int, str]:
    """The drain subprocess's JSON result, its peak RSS in KiB, and its output."""
    return run_child("benchmarks.drain", {"PJPIXEL_BENCH_API_URL": api_url}, timeout=TIMEOUT)


def run(report: Report, sizes: Sizes) -> None:
    events = sizes.backlog_events
    print(
        f"backlog drain: {events:,} due events, one worker process calling deliver_due(),"
        f" the emulator at 0 ms with {RATE_LIMIT:,} requests/hour",
        flush=True,
    )
    ConversionEvent.objects.exclude(status__in=FINAL_STATUSES).delete()
    make_events(events, PREFIX)
    conf = settings.PJPIXEL
    with EmulatorProcess(
        pixel_id=conf["PIXEL_ID"],
        client_id=conf["CLIENT_ID"],
        secret=conf["CLIENT_SECRET"],
        rate_limit=RATE_LIMIT,
    ) as api:
        result, maxrss_kib, _ = _drain(api.url)
        stats = api.stats()
    rows = ConversionEvent.objects.filter(order_id__startswith=f"{PREFIX}-")
    statuses = dict(rows.values_list("status").annotate(n=Count("pk")).order_by())
    requests = int(stats["requests"])
    share = requests / events
    seconds = float(result["seconds"])
    peak_mb = maxrss_kib / 1024
    idle_mb = int(result["idle_rss_kib"]) / 1024
    print(
        f"  {requests} API requests {stats['by_method']} (answers {stats['by_status']}),"
        f" {stats['events']} events stored at the emulator",
        flush=True,
    )
    print(
        f"  {seconds:.1f} s in {result['calls']} deliver_due call(s), outcomes"
        f" {result['counts']}; rows now {statuses}"
    )
    print(
        f"  peak RSS {peak_mb:.1f} MB (VmHWM, the whole run);"
        f" resident once set up and connected: {idle_mb:.1f} MB"
    )
    if stats["by_method"].get("PATCH", 0) == 0:
        report.note(
            "backlog drain: deliver_due made no batched PATCH request (single POSTs only);"
            " the ≤ 1 % target needs the batched delivery path"
        )
    sent = statuses.get(ConversionEvent.Status.SENT, 0)
    if sent != events:
        report.note(f"backlog drain: {sent:,} of {events:,} events sent; rows {statuses}")
    report.add(
        Row(
            f"backlog drain: API requests for {events:,} events",
            f"{requests:,} requests",
            f"{events:,} events",
            f"{share:.2%}",
            f"≤ {TARGET_REQUEST_SHARE:.0%}",
            share <= TARGET_REQUEST_SHARE,
        )
    )
    report.add(
        Row(
            "backlog drain: wall time",
            f"{seconds:.1f} s ({events / seconds:,.0f} events/s)",
            f"{events:,} events",
            "—",
        )
    )
    report.add(
        Row(
            "backlog drain: peak RSS of the worker",
            f"{peak_mb:.1f} MB",
            f"{idle_mb:.1f} MB resident once set up",
            f"{peak_mb / idle_mb:.2f}",
            f"< {TARGET_RSS_MB:.0f} MB",
            peak_mb < TARGET_RSS_MB,
        )
    )

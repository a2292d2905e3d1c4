"""The sync of Prisjakt's events: one request per page, and memory flat whatever the count.

The emulator, in its own process, lists ``sizes.sync_small`` and then
``sizes.sync_events`` purchases spread over 30 days, ``PAGE_SIZE`` a page,
each page repeating the last event of the one before ("the data is not
stable"). Each sync runs in a process of its own (``python -m
benchmarks.sync_run``), so its peak RSS is its own; the mirror is emptied
before each. Targets: API requests = pages, no page fetched twice; peak RSS
at the large count less than 20 % above the small count's.
"""

from __future__ import annotations

import math

from django.conf import settings

from benchmarks.children import run_child
from benchmarks.emulator import EmulatorProcess
from benchmarks.harness import Report, Row, Sizes
from django_pjpixel.models import PrisjaktEvent, PrisjaktSync

PAGE_SIZE = 100
DAYS = 30
TARGET_RSS_GROWTH = 0.20


def _sync(api: EmulatorProcess, count: int) -> dict[str, float]:
    """Seed ``count`` events, sync them in a child process; what it took."""
    PrisjaktEvent.objects.all().delete()
    PrisjaktSync.objects.all().delete()
    api.reset()
    api.seed(count, DAYS)
    env = {"PJPIXEL_BENCH_API_URL": api.url, "PJPIXEL_BENCH_SYNC_DAYS": str(DAYS + 1)}
    result, maxrss_kib, output = run_child("benchmarks.sync_run", env)
    stats = api.stats()
    mirrored = PrisjaktEvent.objects.count()
    if not result["complete"] or mirrored != count:
        raise RuntimeError(f"the sync of {count} events mirrored {mirrored}:\n{output[-2000:]}")
    figures = {
        "requests": float(stats["requests"]),
        "pages": float(result["pages"]),
        "expected_pages": float(math.ceil(count / PAGE_SIZE)),
        "most_fetches": float(stats["most_fetches_of_one_page"]),
        "seconds": float(result["seconds"]),
        "peak_mb": maxrss_kib / 1024,
        "idle_mb": int(result["idle_rss_kib"]) / 1024,
    }
    print(
        f"  {count:,} events: {stats['requests']} requests, {result['pages']} pages,"
        f" {mirrored:,} mirrored in {figures['seconds']:.1f} s;"
        f" peak RSS {figures['peak_mb']:.1f} MB (resident once set up {figures['idle_mb']:.1f} MB)",
        flush=True,
    )
    return figures


def run(report: Report, sizes: Sizes) -> None:
    small, large = sizes.sync_small, sizes.sync_events
    print(
        f"sync: {small:,} then {large:,} listed events, {PAGE_SIZE} a page (repeating one),"
        " each synced by a process of its own",
        flush=True,
    )
    conf = settings.PJPIXEL
    with EmulatorProcess(
        pixel_id=conf["PIXEL_ID"],
        client_id=conf["CLIENT_ID"],
        secret=conf["CLIENT_SECRET"],
        rate_limit=10**9,
    ) as api:
        api.configure(page_size=PAGE_SIZE, unstable_pages=True)
        before = _sync(api, small)
        after = _sync(api, large)
    PrisjaktEvent.objects.all().delete()
    PrisjaktSync.objects.all().delete()
    once = after["requests"] == after["pages"] == after["expected_pages"]
    once = once and after["most_fetches"] == 1
    report.add(
        Row(
            f"sync: API requests for {large:,} listed events",
            f"{after['requests']:,.0f} requests, no page twice"
            if after["most_fetches"] == 1
            else f"{after['requests']:,.0f} requests, a page fetched {after['most_fetches']:.0f}x",
            f"{after['expected_pages']:,.0f} pages of {PAGE_SIZE}",
            f"{after['requests'] / after['expected_pages']:.2f}",
            "= pages",
            once,
        )
    )
    growth = after["peak_mb"] / before["peak_mb"] - 1
    report.add(
        Row(
            f"sync: peak RSS, {large:,} events",
            f"{after['peak_mb']:.1f} MB",
            f"{before['peak_mb']:.1f} MB for {small:,} events",
            f"{growth:+.1%}",
            f"< +{TARGET_RSS_GROWTH:.0%}",
            growth < TARGET_RSS_GROWTH,
        )
    )
    report.add(
        Row(
            "sync: wall time",
            f"{after['seconds']:.1f} s ({large / after['seconds']:,.0f} events/s)",
            f"{before['seconds']:.1f} s for {small:,} events",
            f"{after['seconds'] / before['seconds']:.1f}",
        )
    )

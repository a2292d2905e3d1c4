"""``python -m benchmarks.sync_run``: one process mirroring every event the emulator lists.

Run by ``bench_sync`` with the benchmark's environment (the emulator's URL in
``PJPIXEL_BENCH_API_URL``, the days to list in ``PJPIXEL_BENCH_SYNC_DAYS``);
prints one JSON line: the run's pages and events, whether it was complete,
the seconds it took, and this process's RSS once set up and connected, in KiB.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

from benchmarks.children import current_rss_kib, peak_rss_kib


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.test.utils import override_settings

    from django_pjpixel.api.client import get_client
    from django_pjpixel.models import PrisjaktEvent
    from django_pjpixel.record import sync

    PrisjaktEvent.objects.exists()  # connected, as a running worker is
    days = int(os.environ.get("PJPIXEL_BENCH_SYNC_DAYS", "30"))
    # As many pages as the benchmark lists: the default cap (200) is for a normal shop.
    with override_settings(PJPIXEL={**settings.PJPIXEL, "MAX_PAGES": 1_000_000}):
        get_client()  # its session, as a worker that has run before has one
        idle_kib = current_rss_kib() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        run = sync.sync_recent(days)
        seconds = time.perf_counter() - started
    result = {
        "pages": run.pages,
        "events": run.events,
        "complete": run.complete,
        "error": run.error,
        "seconds": seconds,
        "idle_rss_kib": idle_kib,
        "peak_rss_kib": peak_rss_kib(),
    }
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

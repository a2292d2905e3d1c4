"""``python -m benchmarks.drain``: one worker process sending the whole due backlog.

Run by ``bench_backlog`` with the benchmark's environment; prints one JSON
line: the outcomes, the seconds ``deliver_due`` took, and this process's
RSS once set up and connected, and its peak RSS (``VmHWM``; ``ru_maxrss`` too), in KiB.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections import Counter

from benchmarks.children import current_rss_kib, peak_rss_kib

MAX_CALLS = 20


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    import django

    django.setup()
    from django_pjpixel.models import ConversionEvent
    from django_pjpixel.sending import backlog

    ConversionEvent.objects.exists()  # connected, as a running worker is
    idle_kib = current_rss_kib() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    counts: Counter[str] = Counter()
    calls = 0
    started = time.perf_counter()
    while calls < MAX_CALLS:
        calls += 1
        done = backlog.deliver_due()
        counts.update(done)
        if not done:
            break
    seconds = time.perf_counter() - started
    result = {
        "counts": dict(counts),
        "seconds": seconds,
        "calls": calls,
        "idle_rss_kib": idle_kib,
        "peak_rss_kib": peak_rss_kib(),
        "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

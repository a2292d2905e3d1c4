"""A benchmark's worker as a process of its own, so its peak memory is its own.

``run_child(module, env)`` runs ``python -m <module>`` with the benchmark's
environment, reads the JSON line it prints last, and takes its peak RSS from
the kernel (``os.wait4``: the child's own ``ru_maxrss``, the same figure
``RUSAGE_CHILDREN`` reports), so nothing of the parent counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 420.0


def run_child(
    module: str, env: Mapping[str, str], *, timeout: float = TIMEOUT
) -> tuple[dict[str, Any], int, str]:
    """The child's JSON result, its peak RSS in KiB, and its output."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module],
        cwd=ROOT,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        assert proc.stdout is not None
        output = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    lines = output.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{module} exited with {proc.returncode}:\n{output[-4000:]}")
    return json.loads(lines[-1]), int(usage.ru_maxrss), output


def current_rss_kib() -> int | None:
    """This process's resident set now (Linux), not its high-water mark."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024

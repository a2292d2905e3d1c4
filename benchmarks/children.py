"""A benchmark's worker as a process of its own, so its peak memory is its own.

``run_child(module, env)`` runs ``python -m <module>`` with the benchmark's
environment and reads the JSON line it prints last. Its peak RSS is the one
the child reports as ``peak_rss_kib``, its ``VmHWM``: the high-water mark of
its own memory since ``exec``. Not ``ru_maxrss`` (``os.wait4``): Linux carries
that across ``fork`` and ``exec``, so a child of a parent holding 100 MB
reports at least 100 MB however little it uses itself.
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
    result = json.loads(lines[-1])
    return result, int(result.get("peak_rss_kib") or usage.ru_maxrss), output


def peak_rss_kib() -> int | None:
    """This process's peak resident set since it was exec'd (Linux ``VmHWM``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def current_rss_kib() -> int | None:
    """This process's resident set now (Linux), not its high-water mark."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024

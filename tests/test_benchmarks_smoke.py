"""The benchmarks (``make bench``) run at a tiny size, so their code cannot rot.

Only that they run and print every row is checked: timings are the
benchmarks' business, never the test suite's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ROWS = (
    "middleware: request without pjclid",
    "middleware: DB queries",
    "checkout: added by django-pjpixel",
    "checkout: naive added / django-pjpixel added",
    "checkout: extra INSERTs",
    "delivery: events/s",
    "delivery: reused session",
    "backlog drain: API requests",
    "backlog drain: peak RSS",
    "sync: API requests",
    "sync: peak RSS",
    "sync: wall time",
    "reconciliation: queries",
    "reconciliation: time",
)


@pytest.mark.slow
def test_every_benchmark_runs_at_a_tiny_size(tmp_path: Path) -> None:
    out = tmp_path / "bench.md"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PJPIXEL_BENCH_")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = out.read_text(encoding="utf-8")
    assert table.startswith("| benchmark | figure | baseline | ratio | target | met? |")
    for row in ROWS:
        assert f"| {row}" in table, f"{row!r} missing from:\n{table}"
    assert "Machine (smoke run" in table
    assert "Django" in table

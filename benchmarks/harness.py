"""Timing, sizes, the result table and the machine description shared by the benchmarks."""

from __future__ import annotations

import gc
import io
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import django


@dataclass(frozen=True)
class Sizes:
    """How much each benchmark does; ``full`` is ``make bench``."""

    name: str
    warmup: int
    middleware_cycles: int
    checkout_cycles: int
    naive_every: int
    throughput_events: int
    throughput_rounds: int
    concurrency: int
    session_cycles: int
    backlog_events: int
    sync_small: int
    sync_events: int
    reconcile_orders: int
    history_small: int
    history_large: int


FULL = Sizes(
    name="full",
    warmup=200,
    middleware_cycles=20_000,
    checkout_cycles=600,
    naive_every=6,
    throughput_events=960,
    throughput_rounds=3,
    concurrency=8,
    session_cycles=800,
    backlog_events=10_000,
    sync_small=10_000,
    sync_events=100_000,
    reconcile_orders=100_000,
    history_small=100_000,
    history_large=2_000_000,
)
QUICK = Sizes(
    name="quick",
    warmup=50,
    middleware_cycles=6_000,
    checkout_cycles=200,
    naive_every=4,
    throughput_events=480,
    throughput_rounds=1,
    concurrency=8,
    session_cycles=300,
    backlog_events=2_000,
    sync_small=2_000,
    sync_events=20_000,
    reconcile_orders=20_000,
    history_small=20_000,
    history_large=400_000,
)
SMOKE = Sizes(
    name="smoke",
    warmup=2,
    middleware_cycles=20,
    checkout_cycles=4,
    naive_every=2,
    throughput_events=16,
    throughput_rounds=1,
    concurrency=4,
    session_cycles=4,
    backlog_events=50,
    sync_small=50,
    sync_events=500,
    reconcile_orders=300,
    history_small=500,
    history_large=10_000,
)
SIZES = {sizes.name: sizes for sizes in (FULL, QUICK, SMOKE)}


@dataclass
class Row:
    """One line of the result table; ``met`` is None where there is no target."""

    benchmark: str
    figure: str
    baseline: str
    ratio: str
    target: str = "—"
    met: bool | None = None

    @property
    def verdict(self) -> str:
        return "—" if self.met is None else ("yes" if self.met else "**no**")


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(
            f"  => {row.benchmark}: {row.figure} | baseline {row.baseline} | ratio {row.ratio}"
            f" | target {row.target} | met: {row.verdict}",
            flush=True,
        )

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)


def alternating(
    variants: Mapping[str, Callable[[], object]],
    *,
    cycles: int,
    warmup: int = 0,
    every: Mapping[str, int] | None = None,
    block: int = 200,
    settle: Callable[[], object] | None = None,
) -> dict[str, list[float]]:
    """Seconds of every call of each variant, the variants called in turn.

    Each cycle calls every variant once (a variant with ``every[name] = k``
    only in every k-th cycle), in an order rotated and reversed from one
    cycle to the next, so drift (frequency scaling, a neighbour's load, a
    growing table) touches all of them alike; the median of the single calls
    then ignores the calls a preemption hit. The garbage collector runs
    between blocks of cycles, never inside a timed call, and ``settle``
    (work a call left running in the background) before each timed call.
    """
    names = list(variants)
    every = every or {}
    for index in range(warmup):
        for name in names:
            if index % every.get(name, 1) == 0:
                variants[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    clock = time.perf_counter
    for index in range(cycles):
        if index % block == 0:
            gc.enable()
            gc.collect()
            gc.disable()
        shift = index % len(names)
        order = names[shift:] + names[:shift]
        if (index // len(names)) % 2:
            order.reverse()
        for name in order:
            if index % every.get(name, 1):
                continue
            call = variants[name]
            if settle is not None:
                settle()
            started = clock()
            call()
            samples[name].append(clock() - started)
    gc.enable()
    return samples


def block_ratios(numerators: list[float], denominators: list[float], blocks: int) -> list[float]:
    """The ratio of medians within each of ``blocks`` consecutive slices (for the spread)."""
    size = max(1, min(len(numerators), len(denominators)) // blocks)
    return [
        median(numerators[i : i + size]) / median(denominators[i : i + size])
        for i in range(0, size * blocks, size)
        if numerators[i : i + size] and denominators[i : i + size]
    ]


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> tuple[float, float]:
    """The 25th and 75th percentiles (the values themselves when there are few)."""
    if len(values) < 4:
        return min(values), max(values)
    quartiles = statistics.quantiles(values, n=4)
    return quartiles[0], quartiles[2]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs"


def wsgi_environ(
    path: str,
    *,
    method: str = "GET",
    query: str = "",
    body: bytes = b"",
    content_type: str = "",
    cookie: str = "",
) -> dict[str, Any]:
    """A WSGI environ as a server would pass it to ``WSGIHandler``."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "shop.example",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "shop.example",
        "HTTP_USER_AGENT": "Mozilla/5.0 (benchmark)",
        "HTTP_ACCEPT": "text/html",
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": content_type,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if cookie:
        environ["HTTP_COOKIE"] = cookie
    return environ


def machine() -> dict[str, str]:
    """What the figures ran on (the database and broker are added by the caller)."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "CPUs": str(os.cpu_count()),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "Django": django.get_version(),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def render(report: Report, about: Mapping[str, str], *, sizes: Sizes, seconds: float) -> str:
    lines = [
        "| benchmark | figure | baseline | ratio | target | met? |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.benchmark} | {r.figure} | {r.baseline} | {r.ratio} | {r.target} | {r.verdict} |"
        for r in report.rows
    ]
    lines.append("")
    lines.append(
        f"Machine ({sizes.name} run, {seconds:.0f} s): "
        + "; ".join(f"{key} {value}" for key, value in about.items())
        + "."
    )
    if report.notes:
        lines.append("")
        lines += [f"- {note}" for note in report.notes]
    return "\n".join(lines) + "\n"

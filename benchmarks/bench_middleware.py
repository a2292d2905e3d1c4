"""Requests without ``pjclid`` through the middleware stack, with and without ours."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings

from benchmarks.harness import (
    Report,
    Row,
    Sizes,
    alternating,
    block_ratios,
    median,
    spread,
    us,
    wsgi_environ,
)

PJCLID_MIDDLEWARE = "django_pjpixel.middleware.PjclidMiddleware"
# A listing page reached from a newsletter: a query string, but no pjclid in it.
QUERY = "utm_source=newsletter&utm_medium=email&page=2&sort=price"
TARGET_RATIO = 1.02


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
    if not status.startswith("200"):
        raise RuntimeError(f"the page answered {status}")


def _requester(handler: WSGIHandler) -> Callable[[], None]:
    def request() -> None:
        response = handler(wsgi_environ("/", query=QUERY), _start_response)
        for _ in response:
            pass
        response.close()  # request_finished, as a WSGI server sends it

    return request


def build_handlers() -> tuple[WSGIHandler, WSGIHandler]:
    """The project's handler with its whole ``MIDDLEWARE``, and the same without ours."""
    stack = list(settings.MIDDLEWARE)
    if PJCLID_MIDDLEWARE not in stack:
        raise RuntimeError(f"{PJCLID_MIDDLEWARE} is not in MIDDLEWARE")
    with override_settings(MIDDLEWARE=stack):
        with_pjclid = WSGIHandler()
    with override_settings(MIDDLEWARE=[m for m in stack if m != PJCLID_MIDDLEWARE]):
        without = WSGIHandler()
    return with_pjclid, without


def run(report: Report, sizes: Sizes) -> None:
    print(
        f"middleware: {len(settings.MIDDLEWARE)} middleware, a trivial view, ?{QUERY}", flush=True
    )
    with_pjclid, without = build_handlers()
    variants = {"with": _requester(with_pjclid), "without": _requester(without)}
    samples = alternating(variants, cycles=sizes.middleware_cycles, warmup=sizes.warmup)
    with_time, without_time = median(samples["with"]), median(samples["without"])
    ratio = with_time / without_time
    low, high = spread(block_ratios(samples["with"], samples["without"], 20))
    print(
        f"  with PjclidMiddleware {us(with_time)}/request, without {us(without_time)}/request"
        f" (medians of {len(samples['with'])} requests each, alternated); ratio {ratio:.4f}"
        f" (quartiles of 20 slices: {low:.4f} to {high:.4f})",
        flush=True,
    )
    report.add(
        Row(
            "middleware: request without pjclid",
            f"{us(with_time)} with PjclidMiddleware",
            f"{us(without_time)} without",
            f"{ratio:.3f}",
            f"≤ {TARGET_RATIO}",
            ratio <= TARGET_RATIO,
        )
    )

    count = min(max(sizes.middleware_cycles // 10, 10), 500)
    queries = {}
    for name, request in variants.items():
        with CaptureQueriesContext(connection) as captured:
            for _ in range(count):
                request()
        queries[name] = len(captured.captured_queries)
    extra = (queries["with"] - queries["without"]) / count
    print(
        f"  queries over {count} requests: {queries['with']} with, {queries['without']} without",
        flush=True,
    )
    report.add(
        Row(
            "middleware: DB queries",
            f"{extra:g} extra per request ({queries['with']} in {count} requests)",
            f"{queries['without']} in {count} requests without",
            "—",
            "0 extra",
            extra == 0,
        )
    )

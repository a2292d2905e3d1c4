"""Delivery by one worker: events/s against the lower of ``concurrency / latency`` and the
worker's own ceiling (its rate at 0 ms, measured in the same run), and connection reuse.

The worker is a real Celery worker (``--pool threads --concurrency N``, a
subprocess) on the benchmarks' Redis queue and database; this process
publishes ``deliver_event`` for each due row, as commits do, and reads the
rows' ``sent_at`` back. The connection-reuse comparison runs
``delivery.deliver_event`` in this process, one event at a time.
"""

from __future__ import annotations

import importlib.util
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest import mock

import django
import requests
from django.conf import settings
from django.db import connection
from django.db.models import Max
from django.test.utils import override_settings
from django.utils import timezone

from benchmarks.emulator import EmulatorProcess
from benchmarks.harness import Report, Row, Sizes, alternating, median, ms
from django_pjpixel.api.client import PrisjaktClient, get_client
from django_pjpixel.models import ConversionEvent
from django_pjpixel.sending import delivery
from django_pjpixel.tasks import deliver_event
from tests.integration.harness import CeleryWorker

API_LATENCY = 0.050
TARGET_SHARE = 0.80
# Django's own connection pool: Django 5.1+ with psycopg's pool package.
POOL_AVAILABLE = django.VERSION >= (5, 1) and importlib.util.find_spec("psycopg_pool") is not None


def signed_click_id() -> str:
    return f"{uuid.uuid4()}_{secrets.token_hex(8)}"


def make_events(count: int, prefix: str) -> list[int]:
    """``count`` purchases due now, as ``track_purchase`` leaves them (the click known)."""
    now = timezone.now()
    rows = [
        ConversionEvent(
            pixel_id=settings.PJPIXEL["PIXEL_ID"],
            order_id=f"{prefix}-{index}",
            event_time=now,
            amount=Decimal("499.00"),
            currency="SEK",
            number_of_items=1,
            click_id=signed_click_id(),
            click_captured_at=now,
            status=ConversionEvent.Status.PENDING,
            created_at=now,
        )
        for index in range(count)
    ]
    ConversionEvent.objects.bulk_create(rows, batch_size=1000)
    pks = ConversionEvent.objects.filter(order_id__startswith=f"{prefix}-").values_list(
        "pk", flat=True
    )
    return sorted(pks)


def deliver_with_worker(pks: list[int], *, timeout: float = 300.0) -> tuple[float, Counter[str]]:
    """Publish ``deliver_event`` for ``pks`` and wait until the worker is done with each.

    Returns the events/s from the first publish to the last ``sent_at`` the
    worker wrote (the worker's startup is not in it: it is ready before), and
    the rows' final statuses.
    """
    # One cheap query per poll: the rows of one make_events call are a range of keys.
    rows = ConversionEvent.objects.filter(pk__range=(min(pks), max(pks)))
    if rows.count() != len(pks):
        raise RuntimeError("the events to deliver are not one range of keys")
    busy = (ConversionEvent.Status.PENDING, ConversionEvent.Status.SENDING)
    started = timezone.now()
    for pk in pks:
        deliver_event.apply_async(args=(pk,))
    deadline = time.monotonic() + timeout
    while rows.filter(status__in=busy).exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not deliver {len(pks)} events in {timeout:.0f} s")
        time.sleep(0.1)  # the end is read from sent_at: polling only needs to notice it
    last = rows.aggregate(last=Max("sent_at"))["last"] or timezone.now()
    counts = Counter(rows.values_list("status", flat=True))
    return len(pks) / (last - started).total_seconds(), counts


class Worker:
    """``celery worker --pool threads --concurrency N`` on the benchmarks' broker and database.

    ``pooled``: the worker's database connections come from Django's
    connection pool (Django 5.1+), as the docs advise (Deployment); without it Celery
    closes the connection after every task and the next task opens a new one.
    """

    def __init__(self, *, api_url: str, concurrency: int, pooled: bool, log_path: Path) -> None:
        env = {
            "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
            "PJPIXEL_BENCH_API_URL": api_url,
            "PJPIXEL_BENCH_DB_POOL": "1" if pooled else "",
        }
        self.worker = CeleryWorker(
            broker_url=settings.CELERY_BROKER_URL,
            queue=settings.CELERY_TASK_DEFAULT_QUEUE,
            log_path=log_path,
            env=env,
            concurrency=concurrency,
        )

    def __enter__(self) -> Worker:
        self.worker.start(ready_timeout=60)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.worker.stop()


class OneShotSession(requests.Session):
    """A session that closes its connection after each request: a new connection per event."""

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        try:
            return super().request(*args, **kwargs)
        finally:
            self.close()


def run(report: Report, sizes: Sizes) -> None:
    conf = settings.PJPIXEL

    def emulator(latency: float = 0.0) -> EmulatorProcess:
        return EmulatorProcess(
            pixel_id=conf["PIXEL_ID"],
            client_id=conf["CLIENT_ID"],
            secret=conf["CLIENT_SECRET"],
            latency=latency,
            rate_limit=10**9,
        )

    if not settings.CELERY_BROKER_URL.startswith("redis"):
        report.add(Row("delivery: events/s", "did not run: needs Redis as the broker", "—", "—"))
    else:
        with emulator(API_LATENCY) as api:
            _throughput(report, sizes, api)
    with emulator() as api:
        _sessions(report, sizes, api)


def _throughput(report: Report, sizes: Sizes, api: EmulatorProcess) -> None:
    threads = sizes.concurrency
    limit = threads / API_LATENCY
    pooled = POOL_AVAILABLE and connection.vendor == "postgresql"
    print(
        f"delivery throughput: one Celery worker (--pool threads --concurrency {threads}),"
        f" the emulator at {API_LATENCY * 1000:.0f} ms (limit {limit:.0f} events/s),"
        f" database connections {'pooled' if pooled else 'not pooled'}",
        flush=True,
    )
    if not pooled:
        report.note(
            "the worker runs without Django's connection pool"
            " (it needs Django 5.1+ and PostgreSQL): Celery reconnects for every task"
        )
    log = settings.ROOT_DIR / "artifacts" / "bench-worker.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    rates: dict[float, list[float]] = {API_LATENCY: [], 0.0: []}
    with Worker(api_url=api.url, concurrency=threads, pooled=pooled, log_path=log):
        api.set_latency(API_LATENCY)
        deliver_with_worker(make_events(threads * 4, "tp-warm"))  # connections, imports
        for round_ in range(sizes.throughput_rounds):
            for latency in rates:
                rate = _round(api, latency, f"tp{round_}", sizes, limit, report)
                rates[latency].append(rate)
    rate, ceiling = median(rates[API_LATENCY]), median(rates[0.0])
    # On a shared 2-core machine the worker's own ceiling (0 ms) can fall below
    # concurrency / latency: the target is a share of the lower of the two.
    bound = min(limit, ceiling)
    which = (
        f"limit {limit:.0f} events/s ({threads} / {API_LATENCY:g} s)"
        if bound == limit
        else f"the 0 ms ceiling {ceiling:.0f} events/s (below {threads} / {API_LATENCY:g} s)"
    )
    report.add(
        Row(
            f"delivery: events/s, one worker, {threads} threads, {API_LATENCY * 1000:.0f} ms API",
            f"{rate:.1f} events/s{_spread(rates[API_LATENCY])}",
            which,
            f"{rate / bound:.1%}",
            f"≥ {TARGET_SHARE:.0%}",
            rate / bound >= TARGET_SHARE,
        )
    )
    report.add(
        Row(
            f"delivery: events/s, one worker, {threads} threads, 0 ms API (its own ceiling)",
            f"{ceiling:.1f} events/s{_spread(rates[0.0])}",
            f"limit at {API_LATENCY * 1000:.0f} ms: {limit:.0f} events/s",
            f"{ceiling / limit:.2f}",
        )
    )
    if pooled:
        print("  the same worker without a connection pool (a new connection per task):")
        with Worker(api_url=api.url, concurrency=threads, pooled=False, log_path=log):
            api.set_latency(API_LATENCY)
            deliver_with_worker(make_events(threads * 4, "np-warm"))
            unpooled = _round(api, API_LATENCY, "np", sizes, limit, report)
        report.add(
            Row(
                f"delivery: events/s, one worker, {threads} threads, {API_LATENCY * 1000:.0f} ms"
                " API, no connection pool",
                f"{unpooled:.1f} events/s",
                f"{rate:.1f} events/s pooled",
                f"{unpooled / rate:.2f}",
            )
        )


def _spread(rates: list[float]) -> str:
    """The rounds' range beside their median, where there were several."""
    return f" (rounds {min(rates):.0f} to {max(rates):.0f})" if len(rates) > 1 else ""


def _round(
    api: EmulatorProcess, latency: float, prefix: str, sizes: Sizes, limit: float, report: Report
) -> float:
    api.set_latency(latency)
    api.reset()
    pks = make_events(sizes.throughput_events, f"{prefix}-{latency * 1000:.0f}")
    rate, counts = deliver_with_worker(pks)
    stats = api.stats()
    print(
        f"  {latency * 1000:.0f} ms: {len(pks)} events, {rate:.1f} events/s"
        f" ({rate / limit:.1%} of the {limit:.0f}/s limit); outcomes {dict(counts)};"
        f" API requests {stats['requests']}",
        flush=True,
    )
    if counts.get(ConversionEvent.Status.SENT, 0) != len(pks):
        report.note(f"throughput {prefix}, {latency * 1000:.0f} ms: not all sent: {dict(counts)}")
    return rate


def _sessions(report: Report, sizes: Sizes, api: EmulatorProcess) -> None:
    print(
        "delivery: the client's reused session vs a new connection per event, one thread, 0 ms API",
        flush=True,
    )
    fresh = threading.local()
    opened: list[int] = []

    def client_for_mode(pixel_id: str | None = None) -> PrisjaktClient:
        if getattr(fresh, "on", False):
            opened.append(1)
            return PrisjaktClient(session=OneShotSession())
        return get_client(pixel_id)

    def variant(pks: Iterator[int], new_connection: bool) -> Callable[[], None]:
        def deliver() -> None:
            fresh.on = new_connection
            delivery.deliver_event(next(pks))

        return deliver

    pks = iter(make_events(2 * (sizes.session_cycles + sizes.warmup), "s"))
    with (
        override_settings(PJPIXEL={**settings.PJPIXEL, "API_URL": api.url}),
        mock.patch.object(delivery, "get_client", client_for_mode),
    ):
        variants = {"reused": variant(pks, False), "new": variant(pks, True)}
        samples = alternating(variants, cycles=sizes.session_cycles, warmup=min(sizes.warmup, 20))
    if not opened:
        report.note("the new-connection variant did not take effect (get_client moved?)")
    reused_time, new_time = median(samples["reused"]), median(samples["new"])
    ratio = reused_time / new_time
    print(
        f"  reused session {ms(reused_time)}/event, new connection {ms(new_time)}/event"
        f" ({len(samples['reused'])} events each, alternated); ratio {ratio:.3f}",
        flush=True,
    )
    report.add(
        Row(
            "delivery: reused session, 0 ms API (one thread)",
            f"{ms(reused_time)}/event reused",
            f"{ms(new_time)}/event new connection",
            f"{ratio:.2f}",
        )
    )

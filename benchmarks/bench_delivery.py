"""Delivery by one worker: events/s against ``concurrency / latency``, and connection reuse.

The worker is what a Celery worker with ``--pool threads --concurrency N``
does with the ``deliver_event`` tasks of paid orders: N threads, each calling
``delivery.deliver_event(pk)`` (claim, POST, record) with its own database
connection and its own client.
"""

from __future__ import annotations

import queue
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any
from unittest import mock

import requests
from django.conf import settings
from django.db import connection
from django.test.utils import override_settings
from django.utils import timezone

from benchmarks.emulator import EmulatorProcess
from benchmarks.harness import Report, Row, Sizes, alternating, median, ms
from django_pjpixel import delivery
from django_pjpixel.client import PrisjaktClient, get_client
from django_pjpixel.models import ConversionEvent

API_LATENCY = 0.050
TARGET_SHARE = 0.80


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


def deliver_with_threads(pks: list[int], concurrency: int) -> tuple[float, Counter[str]]:
    """Seconds for ``concurrency`` threads to deliver ``pks``; the outcomes.

    Each thread opens its database connection and its client before the
    clock starts, as a running worker has them already.
    """
    work: queue.SimpleQueue[int] = queue.SimpleQueue()
    for pk in pks:
        work.put(pk)
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    ready = threading.Barrier(concurrency + 1)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            connection.ensure_connection()
            get_client()
            ready.wait()
            while True:
                try:
                    pk = work.get_nowait()
                except queue.Empty:
                    return
                status = delivery.deliver_event(pk).status
                with lock:
                    counts[status] += 1
        except BaseException as err:
            errors.append(err)
            ready.abort()
        finally:
            connection.close()

    threads = [
        threading.Thread(target=worker, name=f"bench-worker-{n}") for n in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    ready.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed, counts


class OneShotSession(requests.Session):
    """A session that closes its connection after each request: a new connection per event."""

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        try:
            return super().request(*args, **kwargs)
        finally:
            self.close()


def run(report: Report, sizes: Sizes) -> None:
    conf = settings.PJPIXEL

    def emulator(latency: float = 0.0, keep_alive: bool = False) -> EmulatorProcess:
        return EmulatorProcess(
            pixel_id=conf["PIXEL_ID"],
            client_id=conf["CLIENT_ID"],
            secret=conf["CLIENT_SECRET"],
            latency=latency,
            rate_limit=10**9,
            keep_alive=keep_alive,
        )

    with (
        emulator(API_LATENCY) as api,
        override_settings(PJPIXEL={**conf, "API_URL": api.url}),
    ):
        _throughput(report, sizes, api)
    with emulator(keep_alive=True) as keep_alive, emulator() as stock:
        _sessions(report, sizes, keep_alive, stock)


def _throughput(report: Report, sizes: Sizes, api: EmulatorProcess) -> None:
    threads = sizes.concurrency
    if connection.vendor == "sqlite":
        threads = 1
        report.note(
            "SQLite: one delivery thread (concurrent claims fail with 'database is locked')"
        )
    limit = threads / API_LATENCY
    print(
        f"delivery throughput: one worker, {threads} threads calling deliver_event,"
        f" the emulator at {API_LATENCY * 1000:.0f} ms (limit {limit:.0f} events/s)",
        flush=True,
    )
    rates: dict[float, list[float]] = {API_LATENCY: [], 0.0: []}
    for round_ in range(sizes.throughput_rounds):
        for latency in rates:
            api.set_latency(latency)
            api.reset()
            pks = make_events(sizes.throughput_events, f"tp{round_}-{latency * 1000:.0f}")
            elapsed, counts = deliver_with_threads(pks, threads)
            rate = len(pks) / elapsed
            rates[latency].append(rate)
            stats = api.stats()
            print(
                f"  round {round_ + 1}, {latency * 1000:.0f} ms: {len(pks)} events in"
                f" {elapsed:.2f} s = {rate:.1f} events/s ({rate / limit:.1%} of the limit);"
                f" outcomes {dict(counts)}; API requests {stats['requests']}",
                flush=True,
            )
            if counts.get(ConversionEvent.Status.SENT, 0) != len(pks):
                report.note(f"throughput round {round_ + 1}: not all sent: {dict(counts)}")
    rate, ceiling = median(rates[API_LATENCY]), median(rates[0.0])
    report.add(
        Row(
            f"delivery: events/s, {threads} thread(s), {API_LATENCY * 1000:.0f} ms API",
            f"{rate:.1f} events/s",
            f"limit {limit:.0f} events/s ({threads} / {API_LATENCY:g} s)",
            f"{rate / limit:.1%}",
            f"≥ {TARGET_SHARE:.0%}",
            rate / limit >= TARGET_SHARE,
        )
    )
    report.add(
        Row(
            f"delivery: events/s, {threads} thread(s), 0 ms API (the worker's own ceiling)",
            f"{ceiling:.1f} events/s",
            f"limit at {API_LATENCY * 1000:.0f} ms: {limit:.0f} events/s",
            f"{ceiling / limit:.2f}",
        )
    )


def _sessions(
    report: Report, sizes: Sizes, keep_alive: EmulatorProcess, stock: EmulatorProcess
) -> None:
    print(
        "delivery: the client's reused session vs a new connection per event, one thread, 0 ms API",
        flush=True,
    )
    fresh = threading.local()
    opened: list[int] = []

    def client_for_mode() -> PrisjaktClient:
        if getattr(fresh, "on", False):
            opened.append(1)
            return PrisjaktClient(session=OneShotSession())
        return get_client()

    def variant(pks: Iterator[int], new_connection: bool) -> Callable[[], None]:
        def deliver() -> None:
            fresh.on = new_connection
            delivery.deliver_event(next(pks))

        return deliver

    conf = settings.PJPIXEL
    servers = ((keep_alive, "HTTP/1.1 keep-alive"), (stock, "EmulatorServer, HTTP/1.0"))
    for index, (api, label) in enumerate(servers):
        pks = iter(make_events(2 * (sizes.session_cycles + sizes.warmup), f"s{index}"))
        with (
            override_settings(PJPIXEL={**conf, "API_URL": api.url}),
            mock.patch.object(delivery, "get_client", client_for_mode),
        ):
            variants = {"reused": variant(pks, False), "new": variant(pks, True)}
            samples = alternating(
                variants, cycles=sizes.session_cycles, warmup=min(sizes.warmup, 20)
            )
        if not opened:
            report.note("the new-connection variant did not take effect (get_client moved?)")
        reused_time, new_time = median(samples["reused"]), median(samples["new"])
        ratio = reused_time / new_time
        print(
            f"  {label}: reused session {ms(reused_time)}/event, new connection"
            f" {ms(new_time)}/event ({len(samples['reused'])} events each, alternated);"
            f" ratio {ratio:.3f}",
            flush=True,
        )
        report.add(
            Row(
                f"delivery: reused session, 0 ms API ({label})",
                f"{ms(reused_time)}/event reused",
                f"{ms(new_time)}/event new connection",
                f"{ratio:.2f}",
            )
        )

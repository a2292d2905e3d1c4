"""A paid-order request: the order alone, with ``track_purchase``, and with an inline POST.

All three go through the project's whole middleware stack (``WSGIHandler``)
with a visitor session that holds a Prisjakt click. django-pjpixel's cost in
the checkout is the outbox row in the order's transaction plus, on commit,
handing the row's key to the publisher thread; the thread publishes
``deliver_event`` to the broker (Redis, as a shop runs it) after the
response, and is given time to finish before the next request is timed, so
its work is not counted against whichever request comes next (it is timed on
its own). The naive view POSTs the event to the API (the emulator over
loopback HTTP, 100 ms latency) before answering.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

from benchmarks import services
from benchmarks.emulator import EmulatorProcess
from benchmarks.harness import (
    Report,
    Row,
    Sizes,
    alternating,
    median,
    ms,
    spread,
    wsgi_environ,
)
from django_pjpixel.attribution import SESSION_KEY
from django_pjpixel.ledger import publisher
from django_pjpixel.models import ConversionEvent

API_LATENCY = 0.100
TARGET_FACTOR = 50.0
MAX_EXTRA_INSERTS = 1
CLICK_ID = "0b6e8f64-3c1a-4d2e-9f4b-5a7c8d9e0f12_9a8b7c6d5e4f3a2b"


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
    if not status.startswith("200"):
        raise RuntimeError(f"the checkout answered {status}")


def visitor_cookie() -> str:
    """A visitor who came from Prisjakt a day ago and has a cart."""
    session = SessionStore()
    session[SESSION_KEY] = {
        "id": CLICK_ID,
        "at": (timezone.now() - timedelta(days=1)).isoformat(),
    }
    session["cart"] = {"sku-1": 1, "sku-2": 1}
    session.save()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


def _poster(handler: WSGIHandler, path: str, cookie: str) -> Callable[[], None]:
    def post() -> None:
        environ = wsgi_environ(
            path,
            method="POST",
            content_type="application/x-www-form-urlencoded",
            cookie=cookie,
        )
        response = handler(environ, _start_response)
        for _ in response:
            pass
        response.close()

    return post


def _inserts(queries: list[dict[str, Any]]) -> int:
    return sum(1 for q in queries if q["sql"].lstrip().upper().startswith("INSERT"))


def _settle() -> None:
    """Let the publisher thread finish the last checkout's message before the next is timed."""
    publisher.flush_publishes(5.0)


def _publish_times(count: int) -> tuple[float, float]:
    """Medians of ``publisher.enqueue`` (the checkout's share) and of it with the publish after."""
    event = ConversionEvent.objects.filter(status=ConversionEvent.Status.PENDING).first()
    if event is None:
        return float("nan"), float("nan")
    queued, published = [], []
    for _ in range(count):
        _settle()
        started = time.perf_counter()
        publisher.enqueue(event)
        queued.append(time.perf_counter() - started)
        publisher.flush_publishes(5.0)
        published.append(time.perf_counter() - started)
    return median(queued), median(published)


def run(report: Report, sizes: Sizes) -> None:
    broker = settings.CELERY_BROKER_URL
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    print(
        f"checkout: the order alone vs + track_purchase (publishing to {broker}, queue {queue})"
        f" vs + an inline requests.post to the emulator at {API_LATENCY * 1000:.0f} ms",
        flush=True,
    )
    conf = settings.PJPIXEL
    services.purge_queue(broker, queue)
    with (
        EmulatorProcess(
            pixel_id=conf["PIXEL_ID"],
            client_id=conf["CLIENT_ID"],
            secret=conf["CLIENT_SECRET"],
            latency=API_LATENCY,
            rate_limit=10**9,
        ) as api,
        override_settings(PJPIXEL={**conf, "API_URL": api.url}),
    ):
        _measure(report, sizes, api)
    published = services.purge_queue(broker, queue)
    recorded = ConversionEvent.objects.filter(order_id__startswith="bench-")
    pending = recorded.filter(status=ConversionEvent.Status.PENDING).count()
    where = "on the Redis queue" if broker.startswith("redis") else "(in-memory broker)"
    print(f"  {published} deliver_event messages {where}, {pending} outbox rows pending")
    recorded.delete()  # no worker will send them: the later benchmarks start without them


def _measure(report: Report, sizes: Sizes, api: EmulatorProcess) -> None:
    handler = WSGIHandler()
    cookie = visitor_cookie()
    variants = {
        name: _poster(handler, f"/checkout/{name}/", cookie)
        for name in ("baseline", "pjpixel", "naive")
    }
    every = {"naive": sizes.naive_every}
    samples = alternating(
        variants,
        cycles=sizes.checkout_cycles,
        warmup=min(sizes.warmup, 30),
        every=every,
        settle=_settle,
    )
    base = median(samples["baseline"])
    pj_added = median(samples["pjpixel"]) - base
    naive_added = median(samples["naive"]) - base
    for name, values in samples.items():
        low, high = spread(values)
        print(
            f"  {name}: {ms(median(values))}/checkout (quartiles {ms(low)} to {ms(high)},"
            f" {len(values)} requests)"
        )
    factor = naive_added / pj_added if pj_added > 0 else float("inf")
    print(
        f"  added time: django-pjpixel {ms(pj_added)}, naive POST {ms(naive_added)};"
        f" the naive one adds {factor:.0f}x more",
        flush=True,
    )
    stats = api.stats()
    print(f"  the emulator got {stats['requests']} POSTs, stored {stats['events']} events")

    inserts: dict[str, int] = {}
    queries: dict[str, int] = {}
    for name in ("baseline", "pjpixel"):
        with CaptureQueriesContext(connection) as captured:
            variants[name]()
        inserts[name] = _inserts(captured.captured_queries)
        queries[name] = len(captured.captured_queries)
    extra_inserts = inserts["pjpixel"] - inserts["baseline"]
    print(
        f"  queries per checkout: {queries['baseline']} order only ({inserts['baseline']}"
        f" INSERT), {queries['pjpixel']} with django-pjpixel ({inserts['pjpixel']} INSERT)"
    )

    queued, published = _publish_times(max(sizes.checkout_cycles // 4, 3))
    print(
        f"  of which queueing deliver_event on commit (publisher.enqueue): {ms(queued)} median;"
        f" publishing it to the broker, in the background thread after the response:"
        f" {ms(published)} median",
        flush=True,
    )

    report.add(
        Row(
            "checkout: added by django-pjpixel",
            f"+{ms(pj_added)} per checkout",
            f"order only {ms(base)}",
            f"{(base + pj_added) / base:.2f}",
        )
    )
    report.add(
        Row(
            "checkout: publishing deliver_event, after the response",
            f"{ms(published)} per event in the publisher thread",
            f"{ms(queued)} queueing it in the checkout",
            "—",
        )
    )
    report.add(
        Row(
            f"checkout: added by an inline POST ({API_LATENCY * 1000:.0f} ms API)",
            f"+{ms(naive_added)} per checkout",
            f"order only {ms(base)}",
            f"{(base + naive_added) / base:.1f}",
        )
    )
    report.add(
        Row(
            "checkout: naive added / django-pjpixel added",
            f"{factor:.0f}x less time added",
            f"+{ms(naive_added)} naive",
            f"{factor:.0f}",
            f"≥ {TARGET_FACTOR:.0f}x",
            factor >= TARGET_FACTOR,
        )
    )
    report.add(
        Row(
            "checkout: extra INSERTs",
            f"{extra_inserts} ({inserts['pjpixel']} with django-pjpixel)",
            f"{inserts['baseline']} order only",
            "—",
            f"≤ {MAX_EXTRA_INSERTS}",
            extra_inserts <= MAX_EXTRA_INSERTS,
        )
    )

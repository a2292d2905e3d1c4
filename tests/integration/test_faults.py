"""The fault suite: what breaks in production, on the real services, with figures.

Each scenario ends the same way (``ledger_figures``): every paid event is
``sent``, ``duplicate`` or ``failed`` (none lost) and the emulated Prisjakt
holds each order once (none counted twice); the figures are printed (``-s``).

(a) the Redis broker stopped mid-run and restarted; (b) the PostgreSQL
connection of a sender dropped while its batch is in flight; (c) the API
failing 30 % of the requests (503 or a timeout) for 2,000 events; (d) a
``Retry-After`` of one day, a past date and garbage; (e) a worker SIGKILLed
mid-batch.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

import pytest
from django.conf import settings as django_settings
from django.db import connection, connections
from django.utils import timezone

from django_pjpixel.models import FINAL_STATUSES, ConversionEvent
from django_pjpixel.sending import delivery
from django_pjpixel.sending.backlog import deliver_due
from django_pjpixel.tasks import deliver_due as deliver_due_task
from tests import services
from tests.celery_app import app as celery_app
from tests.integration.conftest import Workers
from tests.integration.faults_harness import (
    FaultEmulator,
    all_final,
    drive,
    due_rows,
    ledger_figures,
    pay,
    statuses,
)
from tests.integration.harness import (
    RedisServer,
    event_counts,
    publishing_to,
    times_sent,
    wait_until,
)

if TYPE_CHECKING:
    from pytest_django.fixtures import Settings

pytestmark = [pytest.mark.services, pytest.mark.postgres, pytest.mark.slow]

HUNG_AFTER = 20.0  # seconds without a row becoming final while Redis is back

Status = ConversionEvent.Status


@pytest.fixture
def emulator() -> FaultEmulator:
    """The conftest's emulator, with ``Retry-After`` control and reseedable faults."""
    conf = django_settings.PJPIXEL
    return FaultEmulator(
        pixels=[conf["PIXEL_ID"]],
        clients={
            conf["CLIENT_ID"]: {
                "secret": conf["CLIENT_SECRET"],
                "roles": ["event_publisher", "shop_user"],
            }
        },
        scripted_retry_after=1,
    )


@pytest.fixture
def pjpixel(settings: Settings, pjpixel_settings: dict[str, Any]) -> dict[str, Any]:
    """This process's PJPIXEL (the emulator's URL, fast schedules), to change per test."""
    services.require_postgres()
    value = dict(pjpixel_settings)
    settings.PJPIXEL = value
    return value


def final_count(prefix: str) -> int:
    return sum(n for status, n in statuses(prefix).items() if status in FINAL_STATUSES)


def _publish(send: Any) -> bool:
    try:
        send()
    except Exception:  # the broker may still be coming back
        return False
    return True


# -- (a) ---------------------------------------------------------------------------


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_redis_stopped_mid_run_and_restarted(
    workers: Workers, emulator: FaultEmulator, tmp_path: Path
) -> None:
    """Orders paid before, during and after a broker outage; queued messages die with Redis.

    The worker is expected to reconnect by itself. Celery 5.7's Redis consumer
    can instead hang for good when the broker drops while it acknowledges
    (``'NoneType' object has no attribute 'hostname'`` in kombu, then no more
    tasks; celery/celery#10205): if the worker makes no progress for
    ``HUNG_AFTER`` seconds once Redis is back, it is killed and started again,
    as a supervisor's liveness check would, and the figures say so. The
    ledger must come out whole either way.
    """
    emulator.latency = 0.05  # the worker is still busy with queued orders when Redis stops
    broker = RedisServer(tmp_path / "redis.log").start()
    worker = workers.start(broker_url=broker.url, concurrency=2, LEASE_SECONDS=3.0)
    orders = [f"redis-{i:03d}" for i in range(90)]
    durations: dict[str, list[float]] = {"up": [], "down": [], "back": []}
    restarted: list[int] = []
    try:
        with publishing_to(celery_app, broker.url, workers.queue):
            for order_id in orders[:30]:
                durations["up"].append(pay(order_id))
            delivered_before = statuses("redis-").get(Status.SENT, 0)
            broker.stop()
            for order_id in orders[30:60]:
                durations["down"].append(pay(order_id))
            broker = RedisServer(tmp_path / "redis.log", port=broker.port).start()
            for order_id in orders[60:]:
                durations["back"].append(pay(order_id))
            back = time.monotonic()
            progress = {"final": final_count("redis-"), "at": back}

            def beat() -> None:  # Celery beat's deliver_due, every second
                nonlocal worker
                _publish(deliver_due_task.delay)
                time.sleep(1.0)
                final = final_count("redis-")
                if final > progress["final"]:
                    progress.update(final=final, at=time.monotonic())
                elif time.monotonic() - progress["at"] > HUNG_AFTER and not restarted:
                    print(f"\n[harness] worker pid {worker.pid} hung after the broker came back")
                    restarted.append(worker.pid)
                    worker.kill()
                    worker = workers.start(broker_url=broker.url, concurrency=2, LEASE_SECONDS=3.0)

            beats = drive(beat, lambda: all_final("redis-", len(orders)), timeout=90)
            recovered = time.monotonic() - back
        assert worker.alive()
    finally:
        worker.stop()
        broker.stop()
    ledger_figures(
        "a: Redis stopped and restarted",
        emulator,
        "redis-",
        len(orders),
        sent_before_the_stop=delivered_before,
        checkout_ms_median={k: round(statistics.median(v) * 1000, 1) for k, v in durations.items()},
        checkout_ms_max=round(max(max(v) for v in durations.values()) * 1000, 1),
        all_final_after_s=round(recovered, 2),
        beats=beats,
        worker_restarted_after_hanging=bool(restarted),
    )
    assert max(max(v) for v in durations.values()) < 5.0
    assert statuses("redis-") == {Status.SENT: len(orders)}


# -- (b) ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_postgres_connection_dropped_during_a_batch(
    pjpixel: dict[str, Any], emulator: FaultEmulator
) -> None:
    pjpixel.update(LEASE_SECONDS=2.0, BATCH_SIZE=50)
    rows = 120
    due_rows(rows, "pgdrop")
    emulator.latency = 1.5  # the PATCH is in flight while the connection is killed
    backend: list[int] = []
    ready = threading.Event()
    failure: list[BaseException] = []

    def sender() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                backend.append(int(cursor.fetchone()[0]))
            ready.set()
            deliver_due()
        except BaseException as err:
            failure.append(err)
        finally:
            connection.close()

    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    assert ready.wait(10)
    wait_until(lambda: emulator.calls, timeout=10, what="the first PATCH")
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [backend[0]])
        killed = cursor.fetchone()[0]
    thread.join(20)
    emulator.latency = 0.0
    assert killed is True
    assert not thread.is_alive()
    assert len(failure) == 1, failure
    stuck = statuses("pgdrop")
    first_call = emulator.calls[0]
    assert stuck == {Status.SENDING: 50, Status.PENDING: 70}
    assert len(event_counts(emulator)) == 50  # Prisjakt has the batch; the ledger does not know

    def run() -> None:
        deliver_due()
        time.sleep(0.2)

    started = time.monotonic()
    runs = drive(run, lambda: all_final("pgdrop", rows), timeout=30)
    ledger_figures(
        "b: PostgreSQL connection dropped during a batch",
        emulator,
        "pgdrop",
        rows,
        error=f"{type(failure[0]).__name__}",
        ledger_after_the_drop=stuck,
        first_patch=f"{first_call.method} {first_call.status} {len(first_call.ids)} events",
        recovered_in_s=round(time.monotonic() - started, 2),
        runs_after=runs,
    )
    assert sum(1 for n in times_sent(emulator).values() if n == 2) == 50


# -- (c) ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_2000_events_through_an_api_failing_30_percent(
    pjpixel: dict[str, Any], emulator: FaultEmulator
) -> None:
    pjpixel.update(BATCH_SIZE=50, RETRY_BASE_DELAY=0.01, RETRY_MAX_DELAY=0.05, READ_TIMEOUT=1.0)
    rows = 2_000
    due_rows(rows, "flaky")
    emulator.fail_ratio = 0.3
    emulator.fail_kinds = (503, "timeout")
    emulator.scripted_retry_after = 0
    emulator.reseed(20_250_313)
    outcomes: Counter[str] = Counter()

    def run() -> None:
        done = deliver_due()
        outcomes.update(done)
        if not done:
            time.sleep(0.02)

    started = time.monotonic()
    runs = drive(run, lambda: all_final("flaky", rows), timeout=90)
    elapsed = time.monotonic() - started
    attempts = Counter(
        ConversionEvent.objects.filter(order_id__startswith="flaky").values_list(
            "attempts", flat=True
        )
    )
    faults = Counter(r.fault or r.status for r in emulator.requests)
    ledger_figures(
        "c: 30 % 503s and timeouts, 2,000 events",
        emulator,
        "flaky",
        rows,
        seconds=round(elapsed, 2),
        deliver_due_runs=runs,
        outcomes_recorded=dict(outcomes),
        answers=dict(faults),
        attempts_per_event=dict(sorted(attempts.items())),
    )
    assert faults["timeout"] > 0
    assert faults[503] > 0
    assert statuses("flaky") == {Status.SENT: rows}


# -- (d) ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_retry_after_of_a_day_a_past_date_and_garbage(
    pjpixel: dict[str, Any], emulator: FaultEmulator
) -> None:
    pjpixel.update(BATCH_SIZE=10, RETRY_BASE_DELAY=0.5, RETRY_MAX_DELAY=2.0)
    figures: dict[str, Any] = {}

    def refused_once(prefix: str, retry_after: str) -> timedelta:
        """Five events whose batch gets a 503 with ``retry_after``; how long they wait."""
        due_rows(5, prefix)
        emulator.script([503], method="PATCH")
        emulator.retry_after(retry_after)
        before = timezone.now()
        outcome = deliver_due()
        # An earlier case's rows whose short backoff has run out may share the batch.
        assert set(outcome) == {"pending"}, outcome
        assert outcome["pending"] >= 5, outcome
        assert statuses(prefix) == {Status.PENDING: 5}
        rows = ConversionEvent.objects.filter(order_id__startswith=prefix)
        (next_at,) = set(rows.values_list("next_attempt_at", flat=True))
        assert next_at is not None
        figures[f"{prefix} Retry-After {retry_after!r}"] = str(next_at - before)
        return next_at - before  # type: ignore[no-any-return]

    # A day's Retry-After counts for the API's one-hour rate-limit window at most.
    day = refused_once("day", "86400")
    assert timedelta(hours=1) <= day <= timedelta(hours=1, seconds=10)
    pjpixel["MAX_AGE"] = timedelta(minutes=30)
    capped = refused_once("capped", "86400")
    assert timedelta(minutes=30) <= capped <= timedelta(minutes=30, seconds=10)
    pjpixel["MAX_AGE"] = timedelta(days=3)
    past = refused_once("past", "Wed, 21 Oct 2015 07:28:00 GMT")
    assert timedelta(0) <= past <= timedelta(seconds=2.5)  # the backoff alone: retried soon
    garbage = refused_once("garbage", "soon, maybe; <script>")
    assert timedelta(0) <= garbage <= timedelta(seconds=2.5)  # the backoff applies

    def run() -> None:
        deliver_due()
        time.sleep(0.1)

    drive(run, lambda: all_final("past", 5) and all_final("garbage", 5), timeout=15)
    assert statuses("day") == {Status.PENDING: 5}
    assert deliver_due() == {}  # nothing sooner than it was asked
    later = timezone.now() + timedelta(days=1, minutes=1)
    with mock.patch.object(delivery.timezone, "now", return_value=later):
        assert deliver_due() == {"sent": 10}  # the day's and the capped events
    total = 20
    ledger_figures(
        "d: Retry-After of a day, a past date, garbage",
        emulator,
        "",
        total,
        waits=figures,
    )


# -- (e) ---------------------------------------------------------------------------


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_batch(workers: Workers, emulator: FaultEmulator) -> None:
    lease = 3.0
    rows = 150
    due_rows(rows, "kill")
    first = workers.start(concurrency=1, LEASE_SECONDS=lease, BATCH_SIZE=50)
    emulator.latency = 10.0  # the answer is still on its way when the worker dies
    deliver_due_task.delay()
    wait_until(lambda: event_counts(emulator), timeout=20, what="the first batch to be stored")
    first.kill()
    emulator.latency = 0.0
    killed = statuses("kill")
    stored = len(event_counts(emulator))
    assert killed == {Status.SENDING: 50, Status.PENDING: 100}
    leased = ConversionEvent.objects.filter(status=Status.SENDING).values_list(
        "leased_until", flat=True
    )
    expiry = max(t for t in leased if t is not None)

    second = workers.start(concurrency=1, LEASE_SECONDS=lease, BATCH_SIZE=50)
    wait_until(lambda: timezone.now() > expiry, timeout=lease + 5, what="the lease to expire")
    started = time.monotonic()

    def beat() -> None:
        deliver_due_task.delay()
        time.sleep(0.5)

    beats = drive(beat, lambda: all_final("kill", rows), timeout=30)
    assert second.alive()
    ledger_figures(
        "e: worker SIGKILLed mid-batch",
        emulator,
        "kill",
        rows,
        ledger_after_the_kill=killed,
        stored_before_the_kill=stored,
        completed_in_s=round(time.monotonic() - started, 2),
        beats=beats,
    )
    assert sum(1 for n in times_sent(emulator).values() if n == 2) == 50
    assert statuses("kill") == {Status.SENT: rows}

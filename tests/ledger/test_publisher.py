"""Publishing ``deliver_event`` after a commit: the publisher thread, its bounds, fork and exit."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.utils import timezone
from kombu.exceptions import OperationalError

from django_pjpixel import tasks
from django_pjpixel.ledger import publisher
from django_pjpixel.ledger.publisher import enqueue, flush_publishes
from django_pjpixel.models import ConversionEvent
from django_pjpixel.sending.backlog import deliver_due
from django_pjpixel.sending.outbox import due_filter
from django_pjpixel.testing.emulator import PrisjaktEmulator
from tests.celery_app import app as celery_app
from tests.helpers import make_event

# The publisher thread has its own database connection: it sees committed rows only.
pytestmark = pytest.mark.django_db(transaction=True)

Status = ConversionEvent.Status
SECRET = "s3cr3t-never-shown"
ROOT = Path(__file__).resolve().parents[2]


def reload(event: ConversionEvent) -> ConversionEvent:
    return ConversionEvent.objects.get(pk=event.pk)


def is_due(event: ConversionEvent) -> bool:
    return ConversionEvent.objects.filter(due_filter(timezone.now()), pk=event.pk).exists()


@pytest.fixture(autouse=True)
def fresh_publisher() -> Iterator[None]:
    """Each test starts its own publisher thread; one a test left blocked is dropped."""
    publisher._publisher.forget()
    yield
    publisher._publisher.forget()


@pytest.fixture
def blocked_broker() -> Iterator[tuple[mock.MagicMock, threading.Event]]:
    """``apply_async`` blocks until the event is set (a broker that never answers)."""
    release = threading.Event()
    with mock.patch.object(
        tasks.deliver_event, "apply_async", side_effect=lambda *a, **k: release.wait(10)
    ) as apply_async:
        yield apply_async, release
        release.set()
        assert flush_publishes(5)


def test_enqueue_publishes_the_key_only() -> None:
    event = make_event()
    with mock.patch.object(tasks.deliver_event, "apply_async") as apply_async:
        assert enqueue(event) is True
        assert flush_publishes(5)
    apply_async.assert_called_once()
    call = apply_async.call_args
    assert call.kwargs["args"] == (event.pk,)
    assert "kwargs" not in call.kwargs
    assert call.kwargs["retry"] is True
    assert call.kwargs["retry_policy"] == {
        "max_retries": 2,
        "interval_start": 0,
        "interval_step": 0.2,
        "interval_max": 0.5,
    }
    assert SECRET not in repr(call)


def test_the_checkout_does_not_wait_for_the_broker() -> None:
    events = [make_event(f"slow-{i}") for i in range(3)]
    published: list[tuple[int, str]] = []

    def slow_publish(*args: Any, **kwargs: Any) -> None:
        time.sleep(0.2)
        published.append((kwargs["args"][0], threading.current_thread().name))

    with mock.patch.object(tasks.deliver_event, "apply_async", side_effect=slow_publish):
        started = time.monotonic()
        assert all(enqueue(event) for event in events)
        queued = time.monotonic() - started
        assert published == []  # nothing went out in the caller's time
        assert flush_publishes(5)
    assert queued < 0.1
    assert published == [(event.pk, "pjpixel-publisher") for event in events]


def test_eager_celery_runs_the_task_in_the_callers_thread() -> None:
    event = make_event()
    callers: list[str] = []
    celery_app.conf.task_always_eager = True
    try:
        with mock.patch.object(
            tasks.deliver_event,
            "apply_async",
            side_effect=lambda *a, **k: callers.append(threading.current_thread().name),
        ):
            assert enqueue(event) is True
    finally:
        celery_app.conf.task_always_eager = False
    assert callers == [threading.current_thread().name]


def test_a_failed_publish_leaves_the_row_due_without_writing_to_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    event = make_event()
    before = reload(event).updated_at
    with (
        mock.patch.object(
            tasks.deliver_event, "apply_async", side_effect=OperationalError("broker down")
        ),
        mock.patch.object(ConversionEvent.objects, "filter", side_effect=AssertionError("a query")),
    ):
        assert enqueue(event) is True  # queued; the publisher thread finds the broker down
        assert flush_publishes(5)
    row = reload(event)
    assert row.status == Status.PENDING
    assert row.next_attempt_at is None  # due as it is: nothing for the thread to write
    assert row.updated_at == before
    assert is_due(event)
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "could not queue order order-1" in record.getMessage()
    assert "deliver_due will send it" in record.getMessage()
    assert "broker down" in record.getMessage()
    assert publisher._publisher._started().maxsize > 0  # the thread lives on


def test_a_broker_that_never_answers_sends_new_rows_to_deliver_due_at_once(
    pjpixel: dict[str, Any],
    blocked_broker: tuple[mock.MagicMock, threading.Event],
    caplog: pytest.LogCaptureFixture,
) -> None:
    pjpixel["PUBLISH_TIMEOUT"] = 0.3
    apply_async, _release = blocked_broker
    first, *later = [make_event(f"hole-{i}") for i in range(4)]
    assert enqueue(first) is True
    time.sleep(0.5)  # the publish of the first is blocked for longer than PUBLISH_TIMEOUT
    durations = []
    for event in later:
        started = time.monotonic()
        assert enqueue(event) is False
        durations.append(time.monotonic() - started)
    assert max(durations) < 0.25
    assert "has not taken a message for over 0.3 s" in caplog.text
    assert all(is_due(event) for event in [first, *later])
    assert all(reload(event).next_attempt_at is None for event in later)
    assert apply_async.call_count == 1
    started = time.monotonic()
    assert not flush_publishes()  # the first is still held: given up after PUBLISH_TIMEOUT
    assert 0.3 <= time.monotonic() - started < 2.0


def test_a_full_queue_sends_new_rows_to_deliver_due(
    pjpixel: dict[str, Any],
    blocked_broker: tuple[mock.MagicMock, threading.Event],
    caplog: pytest.LogCaptureFixture,
) -> None:
    pjpixel["PUBLISH_QUEUE_SIZE"] = 2
    apply_async, release = blocked_broker
    events = [make_event(f"full-{i}") for i in range(4)]
    assert enqueue(events[0]) is True
    deadline = time.monotonic() + 5
    while not apply_async.called and time.monotonic() < deadline:
        time.sleep(0.01)  # the thread took the first and is blocked on it
    assert [enqueue(event) for event in events[1:]] == [True, True, False]
    assert "2 events are already waiting to be published" in caplog.text
    assert is_due(events[3])
    release.set()
    assert flush_publishes(5)
    assert [c.kwargs["args"][0] for c in apply_async.call_args_list] == [e.pk for e in events[:3]]


def test_a_publisher_left_behind_by_a_fork_does_not_touch_the_new_ones_state() -> None:
    gates = [threading.Event() for _ in range(3)]
    calls: list[int] = []

    def publish(*args: Any, **kwargs: Any) -> None:
        gate = gates[len(calls)]
        calls.append(kwargs["args"][0])
        gate.wait(10)

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + 5
        while len(calls) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(calls) == count

    old, older, new = make_event("old"), make_event("older"), make_event("new")
    with mock.patch.object(tasks.deliver_event, "apply_async", side_effect=publish):
        assert enqueue(old) is True
        assert enqueue(older) is True
        wait_for(1)
        publisher._publisher.forget()  # as after a fork: a new thread and queue
        assert enqueue(new) is True
        wait_for(2)
        busy = publisher._publisher._busy_since
        assert busy is not None
        gates[0].set()  # the old thread finishes, then publishes what it still holds
        wait_for(3)
        assert publisher._publisher._busy_since == busy
        gates[2].set()
        time.sleep(0.1)
        assert publisher._publisher._busy_since == busy
        gates[1].set()
        assert flush_publishes(5)
    assert publisher._publisher._busy_since is None
    assert calls == [old.pk, new.pk, older.pk]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_forked_child_publishes_through_its_own_thread() -> None:
    event = make_event()
    read_end, write_end = os.pipe()
    with mock.patch.object(
        tasks.deliver_event,
        "apply_async",
        side_effect=lambda *a, **k: os.write(write_end, f"{k['args'][0]}\n".encode()),
    ):
        assert enqueue(event) is True  # the parent's thread starts, then the fork
        assert flush_publishes(5)
        pid = os.fork()
        if pid == 0:  # the child: no pytest teardown, no database, just the publish
            code = 1
            try:
                code = 0 if enqueue(event) and flush_publishes(5) else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
    os.close(write_end)
    with os.fdopen(read_end) as lines:
        published = lines.read().split()
    assert os.waitstatus_to_exitcode(status) == 0
    assert published == [str(event.pk), str(event.pk)]


def test_what_is_queued_at_exit_is_published_before_the_process_ends(tmp_path: Path) -> None:
    out = tmp_path / "published.txt"
    script = f"""
import time, django
django.setup()
from unittest import mock
from django_pjpixel import tasks
from django_pjpixel.ledger import publisher
from django_pjpixel.models import ConversionEvent

def publish(*args, **kwargs):
    time.sleep(0.3)
    with open({str(out)!r}, "a") as f:
        f.write(f"{{kwargs['args'][0]}}\\n")

mock.patch.object(tasks.deliver_event, "apply_async", side_effect=publish).start()
for pk in (1, 2):
    assert publisher.enqueue(ConversionEvent(pk=pk, order_id=f"exit-{{pk}}"))
"""  # the script ends at once: atexit waits for the publisher
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60, cwd=ROOT)
    assert out.read_text().split() == ["1", "2"]


def test_deliver_due_sends_what_could_not_be_published(pjpixel_api: PrisjaktEmulator) -> None:
    event = make_event()
    with mock.patch.object(tasks.deliver_event, "apply_async", side_effect=OperationalError):
        enqueue(event)
        assert flush_publishes(5)
    assert deliver_due() == {"sent": 1}
    assert [e["external_event_id"] for e in pjpixel_api.events] == ["order-1"]

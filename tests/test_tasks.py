"""The Celery tasks: thin wrappers, Celery's retry at the ledger's time, the message body."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from celery import Celery
from celery.exceptions import Retry
from django.utils import timezone
from kombu import Producer

from django_pjpixel import tasks
from django_pjpixel.conf import DEFAULTS
from django_pjpixel.ledger.publisher import enqueue, flush_publishes
from django_pjpixel.models import ConversionEvent
from django_pjpixel.testing.emulator import PrisjaktEmulator
from tests.celery_app import app as celery_app
from tests.celery_app import reset_publisher
from tests.helpers import CLICK, make_event

pytestmark = pytest.mark.django_db

Status = ConversionEvent.Status
SECRET = "s3cr3t-never-shown"
RABBITMQ_CONSUMER_TIMEOUT = 1800.0  # seconds: RabbitMQ's default consumer_timeout
REDIS_VISIBILITY_TIMEOUT = 3600.0  # seconds: Celery's default for Redis


@pytest.fixture
def retry() -> Iterator[mock.Mock]:
    """``deliver_event.retry`` recorded instead of publishing (a worker would)."""
    task = tasks.deliver_event._get_current_object()
    with mock.patch.object(task, "retry", side_effect=Retry("scheduled")) as patched:
        yield patched


def test_the_tasks_are_registered_with_late_acks() -> None:
    task = celery_app.tasks["django_pjpixel.tasks.deliver_event"]
    assert task.acks_late is True
    assert task.max_retries == 15
    assert "django_pjpixel.tasks.deliver_due" in celery_app.tasks


def test_deliver_event_sends(pjpixel_api: PrisjaktEmulator) -> None:
    event = make_event()
    assert tasks.deliver_event.apply(args=(event.pk,)).get() == Status.SENT
    assert len(pjpixel_api.events) == 1


def test_a_transient_failure_is_retried_by_celery_at_the_ledgers_time(
    pjpixel_api: PrisjaktEmulator, pjpixel: dict[str, Any], retry: mock.Mock
) -> None:
    pjpixel["RETRY_BASE_DELAY"] = 100.0
    pjpixel["MAX_ATTEMPTS"] = 7
    pjpixel_api.scripted_retry_after = 20
    pjpixel_api.script([503])
    event = make_event()
    with pytest.raises(Retry):
        tasks.deliver_event(event.pk)  # as a worker runs it: not eagerly
    row = ConversionEvent.objects.get(pk=event.pk)
    assert row.status == Status.PENDING
    assert row.next_attempt_at is not None
    countdown = retry.call_args.kwargs["countdown"]
    expected = (row.next_attempt_at - timezone.now()).total_seconds()
    assert countdown >= 19
    assert abs(countdown - expected) < 1
    assert retry.call_args.kwargs["max_retries"] == 7
    assert set(retry.call_args.kwargs) == {"countdown", "max_retries"}


def test_a_retry_beyond_max_countdown_is_left_to_deliver_due(
    pjpixel_api: PrisjaktEmulator, pjpixel: dict[str, Any], retry: mock.Mock
) -> None:
    pjpixel["MAX_COUNTDOWN"] = 10
    pjpixel_api.scripted_retry_after = 60
    pjpixel_api.script([429])
    event = make_event()
    assert tasks.deliver_event(event.pk) == Status.PENDING
    retry.assert_not_called()


def test_by_default_a_retry_after_past_the_brokers_patience_is_left_to_deliver_due(
    pjpixel_api: PrisjaktEmulator, pjpixel: dict[str, Any], retry: mock.Mock
) -> None:
    # 40 minutes: a worker holding the retry would outlast RabbitMQ's consumer_timeout.
    pjpixel.pop("MAX_COUNTDOWN", None)
    pjpixel_api.scripted_retry_after = 2400
    pjpixel_api.script([503])
    event = make_event()
    assert tasks.deliver_event(event.pk) == Status.PENDING
    retry.assert_not_called()
    row = ConversionEvent.objects.get(pk=event.pk)
    assert row.next_attempt_at is not None
    assert row.next_attempt_at >= timezone.now() + timedelta(seconds=2390)


def test_the_default_countdown_and_a_request_stay_within_both_brokers_limits() -> None:
    held = DEFAULTS["MAX_COUNTDOWN"] + DEFAULTS["REQUEST_DEADLINE"]
    assert held <= RABBITMQ_CONSUMER_TIMEOUT / 2
    assert held <= REDIS_VISIBILITY_TIMEOUT / 2


def test_a_task_that_arrives_early_waits_for_the_rows_time(retry: mock.Mock) -> None:
    event = make_event(next_attempt_at=timezone.now() + timedelta(seconds=30))
    with pytest.raises(Retry):
        tasks.deliver_event(event.pk)
    assert 29 <= retry.call_args.kwargs["countdown"] <= 30


def test_no_retry_for_a_final_or_missing_row(retry: mock.Mock) -> None:
    event = make_event(status=Status.SENT)
    assert tasks.deliver_event(event.pk) == "not_due"
    assert tasks.deliver_event(123456789) == "not_due"
    retry.assert_not_called()


def test_when_celery_retries_run_out_deliver_due_takes_over(
    pjpixel: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    pjpixel["MAX_ATTEMPTS"] = 3
    event = make_event(next_attempt_at=timezone.now() + timedelta(seconds=30))
    task = tasks.deliver_event._get_current_object()
    task.push_request(id="already-retried", called_directly=False, retries=3)
    try:
        assert task(event.pk) == "not_due"
    finally:
        task.pop_request()
    assert "no more Celery retries" in caplog.text


def test_run_eagerly_a_transient_failure_is_not_retried_at_once(
    pjpixel_api: PrisjaktEmulator,
) -> None:
    pjpixel_api.script([503])
    event = make_event()
    result = tasks.deliver_event.apply(args=(event.pk,))
    assert result.get() == Status.PENDING
    assert len(pjpixel_api.requests) == 1


def test_deliver_due_task(pjpixel_api: PrisjaktEmulator) -> None:
    make_event("a")
    make_event("b")
    assert tasks.deliver_due.apply().get() == {"sent": 2}
    assert tasks.deliver_due.apply(kwargs={"limit": 5}).get() == {}


@pytest.fixture
def memory_broker() -> Iterator[Celery]:
    """The test Celery app publishing to kombu's in-memory transport."""
    saved = (celery_app.conf.broker_url, celery_app.conf.broker_write_url)
    celery_app.conf.broker_url = "memory://localhost/"
    celery_app.conf.broker_write_url = None
    reset_publisher(celery_app)
    try:
        yield celery_app
    finally:
        celery_app.conf.broker_url, celery_app.conf.broker_write_url = saved
        reset_publisher(celery_app)


def test_the_message_carries_the_key_only(memory_broker: Celery) -> None:
    event = make_event()
    with mock.patch.object(Producer, "publish") as publish:
        assert enqueue(event) is True
        assert flush_publishes(5)
    publish.assert_called_once()
    body = publish.call_args.args[0]
    headers = publish.call_args.kwargs["headers"]
    args, kwargs, _embed = body
    assert (list(args), kwargs) == ([event.pk], {})
    assert headers["task"] == "django_pjpixel.tasks.deliver_event"
    assert headers["argsrepr"] == repr((event.pk,))
    assert headers["kwargsrepr"] == "{}"
    everything = repr(publish.call_args)
    assert SECRET not in everything
    assert "order-1" not in everything
    assert CLICK not in everything


def test_every_task_keeps_its_documented_name() -> None:
    assert {
        tasks.deliver_event.name,
        tasks.deliver_due.name,
        tasks.sync_events.name,
        tasks.purge.name,
    } == {
        "django_pjpixel.tasks.deliver_event",
        "django_pjpixel.tasks.deliver_due",
        "django_pjpixel.tasks.sync_events",
        "django_pjpixel.tasks.purge",
    }
    assert set(tasks.TASK_NAMES) <= set(celery_app.tasks)


def test_the_check_passes_while_every_task_is_registered() -> None:
    assert tasks.check_tasks() == []


def test_a_task_missing_from_the_celery_app_is_a_check_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    registered = dict(celery_app.tasks)
    del registered["django_pjpixel.tasks.deliver_event"]
    monkeypatch.setattr(tasks, "current_app", mock.Mock(tasks=registered, main="shop"))

    errors = tasks.check_tasks()

    assert [error.id for error in errors] == ["django_pjpixel.E016"]
    assert "'django_pjpixel.tasks.deliver_event'" in errors[0].msg
    with pytest.raises(SystemCheckError, match=r"django_pjpixel\.E016"):
        call_command("check")

"""``health``: the delivery summary, its thresholds, ``pjpixel_check --health``, the streak log."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_pjpixel import health
from django_pjpixel.health import FailureStreak, delivery_health
from django_pjpixel.models import ConversionEvent, PrisjaktSync
from django_pjpixel.sending.delivery import deliver_event
from django_pjpixel.signals import post_send
from django_pjpixel.testing.emulator import PrisjaktEmulator
from tests.helpers import PIXEL_ID, complete_sync, make_event
from tests.test_commands_admin import fails, run

pytestmark = pytest.mark.django_db

Status = ConversionEvent.Status


def test_healthy(pjpixel: dict[str, Any]) -> None:
    sync = complete_sync()
    sent = make_event("sent", status=Status.SENT, sent_at=timezone.now() - timedelta(minutes=5))
    make_event(
        "waiting", status=Status.PENDING, next_attempt_at=timezone.now() + timedelta(hours=1)
    )
    report = delivery_health()
    assert report.healthy
    assert report.problems == []
    assert (report.due, report.due_since, report.due_age) == (0, None, None)
    assert report.last_sent_at == sent.sent_at
    assert report.last_sync == sync
    lines = report.lines()
    assert lines[0] == "Due events: 0"
    assert lines[1] == "Oldest due for: -"
    assert lines[4].startswith("Last successful send: 20")


def test_an_event_due_too_long(pjpixel: dict[str, Any]) -> None:
    complete_sync()
    now = timezone.now()
    make_event("new", created_at=now - timedelta(minutes=2))
    make_event(
        "retry", next_attempt_at=now - timedelta(minutes=40), created_at=now - timedelta(hours=2)
    )
    make_event(
        "lost-lease",
        status=Status.SENDING,
        leased_until=now - timedelta(minutes=20),
        created_at=now - timedelta(hours=3),
    )
    report = delivery_health(now)
    assert report.due == 3
    assert report.due_age == timedelta(minutes=40)  # since its retry was due, not since created
    [problem] = report.problems
    assert problem.startswith(
        "An event has waited 40\xa0minutes for delivery (the limit is 15\xa0minutes)"
    )
    pjpixel["HEALTH_MAX_DUE_AGE"] = timedelta(hours=1)
    assert delivery_health(now).healthy


def test_failures_and_dead_events_of_the_last_day(pjpixel: dict[str, Any]) -> None:
    complete_sync()
    for index in range(11):
        make_event(f"failed-{index}", status=Status.FAILED)
    make_event("dead", status=Status.DEAD)
    old = make_event("old-dead", status=Status.DEAD)
    ConversionEvent.objects.filter(pk=old.pk).update(updated_at=timezone.now() - timedelta(days=2))
    report = delivery_health()
    assert (report.failed, report.dead) == (11, 1)
    assert report.problems == [
        "11 events failed in the last 24 hours (the limit is 10).",
        "1 event was given up in the last 24 hours (the limit is 0).",
    ]
    pjpixel.update(HEALTH_MAX_FAILED=11, HEALTH_MAX_DEAD=1)
    assert delivery_health().healthy


@pytest.mark.usefixtures("installed_long_ago")
def test_the_sync_of_prisjakts_events(pjpixel: dict[str, Any]) -> None:
    [problem] = delivery_health().problems
    assert "never been synced completely" in problem
    PrisjaktSync.objects.create(
        pixel_id=PIXEL_ID,
        start=timezone.now(),
        end=timezone.now(),
        started_at=timezone.now(),
        complete=False,
    )
    assert "never been synced" in delivery_health().problems[0]
    complete_sync(timedelta(hours=4))
    [problem] = delivery_health().problems
    assert problem.startswith("The last complete sync of Prisjakt's events was 4\xa0hours ago")
    assert "never" in delivery_health().lines()[4]


def test_a_new_install_is_not_synced_yet_until_a_sync_is_due(pjpixel: dict[str, Any]) -> None:
    """The test database's migrations ran moments ago: a new install, never synced, is
    healthy until HEALTH_MAX_SYNC_AGE (3 hours) after its first migration."""
    installed = health.installed_at()
    assert installed is not None
    assert timezone.now() - installed < timedelta(hours=1)
    report = delivery_health()
    assert report.healthy
    assert not report.sync_due
    assert report.lines()[5] == "Last complete sync of Prisjakt's events: not synced yet"
    due = delivery_health(installed + timedelta(hours=3, minutes=1))
    assert due.sync_due
    [problem] = due.problems
    assert "never been synced completely" in problem
    assert due.lines()[5] == "Last complete sync of Prisjakt's events: never"
    pjpixel["HEALTH_MAX_SYNC_AGE"] = timedelta(days=1)
    assert delivery_health(installed + timedelta(hours=3, minutes=1)).healthy


def test_an_install_without_a_migration_record_is_due(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables made from the models (``--no-migrations``): the install's age is unknown."""
    from django.db.migrations.recorder import MigrationRecorder

    monkeypatch.setattr(MigrationRecorder, "has_table", lambda self: False)
    assert health.installed_at() is None
    assert delivery_health().sync_due


def test_pjpixel_check_health_of_a_new_install(pjpixel_api: PrisjaktEmulator) -> None:
    out, err = run("pjpixel_check", "--health")
    assert "Last complete sync of Prisjakt's events: not synced yet" in out
    assert "Delivery to Prisjakt is healthy." in out
    assert err == ""


@pytest.mark.usefixtures("installed_long_ago")
def test_pjpixel_check_health_exit_status(pjpixel_api: PrisjaktEmulator) -> None:
    out, err, message = fails("pjpixel_check", "--health")
    assert "Due events: 0" in out
    assert "never been synced" in err
    assert message == "Delivery to Prisjakt is unhealthy."
    assert pjpixel_api.requests == []  # no API call
    complete_sync()
    out, err = run("pjpixel_check", "--health")
    assert "Delivery to Prisjakt is healthy." in out
    assert err == ""


# -- the streak of failures ------------------------------------------------------------


def attempt(streak: FailureStreak, status: str, error: Exception | None = None) -> None:
    event = ConversionEvent(pk=None, order_id="o", status=status)
    streak(ConversionEvent, event=event, status=status, error=error)


def test_one_error_per_streak(caplog: pytest.LogCaptureFixture, pjpixel: dict[str, Any]) -> None:
    pjpixel["FAILURE_STREAK"] = 3
    streak = FailureStreak()
    boom = RuntimeError("503 from Prisjakt")
    with caplog.at_level(logging.ERROR, logger="django_pjpixel.health"):
        for _ in range(2):
            attempt(streak, Status.PENDING, boom)
        attempt(streak, Status.SKIPPED)  # neither a failure nor a success
        assert caplog.records == []
        attempt(streak, Status.PENDING, boom)
        for _ in range(5):
            attempt(streak, Status.FAILED)
        assert len(caplog.records) == 1
        attempt(streak, Status.SENT)
        for _ in range(3):
            attempt(streak, Status.DEAD)
        attempt(streak, Status.PENDING)  # pending without an error: not an attempt that failed
    assert len(caplog.records) == 2
    first = caplog.records[0]
    assert first.getMessage() == (
        "pjpixel: 3 deliveries to Prisjakt failed in a row; the last, order o (pending): "
        "503 from Prisjakt"
    )
    assert streak.count == 3


def test_the_streak_follows_real_deliveries(
    pjpixel_api: PrisjaktEmulator, caplog: pytest.LogCaptureFixture, pjpixel: dict[str, Any]
) -> None:
    pjpixel["FAILURE_STREAK"] = 2
    health.failure_streak.count = 0
    pjpixel_api.script([400, 400, 201])
    events = [make_event(f"order-{index}") for index in range(3)]
    ConversionEvent.objects.update(updated_at=timezone.now() - timedelta(days=2))
    with caplog.at_level(logging.ERROR, logger="django_pjpixel.health"):
        for event in events:
            deliver_event(event.pk)
    assert [r.getMessage()[:46] for r in caplog.records if r.name == "django_pjpixel.health"] == [
        "pjpixel: 2 deliveries to Prisjakt failed in a "
    ]
    assert health.failure_streak.count == 0  # the third was sent
    assert delivery_health().failed == 2  # the failed rows were stamped with the time
    assert post_send.has_listeners(ConversionEvent)

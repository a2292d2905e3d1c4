"""Delivery: claiming, sending, recording each answer, leases, publishing (``delivery.py``)."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from django_pjpixel import delivery
from django_pjpixel.delivery import (
    NOT_DUE,
    STALE,
    Outcome,
    backoff_delay,
    chunk_size,
    claim_due,
    claim_one,
    deliver_due,
    deliver_event,
    record_outcome,
    send_one,
)
from django_pjpixel.exceptions import (
    PjpixelConfigurationError,
    PrisjaktAPIError,
    PrisjaktServerError,
    RateLimit,
)
from django_pjpixel.models import ConversionEvent
from django_pjpixel.signals import Cancel, post_send, pre_send
from django_pjpixel.testing.emulator import PrisjaktEmulator
from tests.helpers import CLICK, connect, make_event

pytestmark = pytest.mark.django_db

Status = ConversionEvent.Status
SECRET = "s3cr3t-never-shown"


def reload(event: ConversionEvent) -> ConversionEvent:
    return ConversionEvent.objects.get(pk=event.pk)


# -- answers -------------------------------------------------------------------


def test_201_marks_the_row_sent_with_prisjakts_event_id(pjpixel_api: PrisjaktEmulator) -> None:
    event = make_event()
    outcome = deliver_event(event.pk)
    row = reload(event)
    assert outcome == Outcome(Status.SENT)
    assert row.status == Status.SENT
    assert row.attempts == 1
    assert row.sent_at is not None
    assert row.last_status_code == 201
    assert row.lease_token is None
    assert row.leased_until is None
    (sent,) = pjpixel_api.events
    assert row.remote_event_id == sent["id"]
    assert row.request_id == pjpixel_api.requests[-1].request_id
    assert sent["external_event_id"] == "order-1"
    assert sent["data"] == {"amount": 1234, "currency": "SEK", "number_of_items": 2}
    request = pjpixel_api.requests[-1]
    assert request.json["signed_click_id"] == CLICK


def test_409_means_prisjakt_already_has_it(pjpixel_api: PrisjaktEmulator) -> None:
    pjpixel_api.add_event(external_event_id="order-1")
    event = make_event()
    assert deliver_event(event.pk).status == Status.DUPLICATE
    row = reload(event)
    assert row.status == Status.DUPLICATE
    assert row.last_status_code == 409
    assert row.problem_title == "Event already exists"
    assert row.sent_at is not None
    assert len(pjpixel_api.events) == 1


def test_400_keeps_the_field_errors(
    pjpixel_api: PrisjaktEmulator, receivers: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    def spoil(sender: Any, payload: dict[str, Any], **kwargs: Any) -> None:
        payload["data"]["currency"] = "USD"  # pre_send may modify the payload

    connect(receivers, pre_send, spoil)
    event = make_event()
    assert deliver_event(event.pk).status == Status.FAILED
    row = reload(event)
    assert row.status == Status.FAILED
    assert row.last_status_code == 400
    assert row.problem_title == "Request validation failed"
    assert "data.currency" in row.field_errors
    assert row.request_id == pjpixel_api.requests[-1].request_id
    assert row.next_attempt_at is None
    assert pjpixel_api.events == []
    assert any(r.levelno == logging.ERROR and "order-1 failed" in r.message for r in caplog.records)


@pytest.mark.parametrize(
    ("roles", "secret"),
    [(["event_publisher"], "wrong-secret-value"), (["shop_user"], None)],
    ids=["401", "403"],
)
def test_401_and_403_fail_and_name_the_client_never_the_secret(
    pjpixel_api: PrisjaktEmulator,
    pjpixel: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    roles: list[str],
    secret: str | None,
) -> None:
    caplog.set_level(logging.DEBUG)
    pjpixel_api.add_client("test-client", SECRET, roles)
    if secret is not None:
        pjpixel["CLIENT_SECRET"] = secret
    event = make_event()
    assert deliver_event(event.pk).status == Status.FAILED
    row = reload(event)
    assert row.last_status_code == (401 if secret else 403)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert any(
        "'test-client'" in r.getMessage() and "CLIENT_SECRET" in r.getMessage() for r in errors
    )
    assert_no_secret(caplog, pjpixel["CLIENT_SECRET"])


def test_404_unknown_pixel_fails(pjpixel_api: PrisjaktEmulator, pjpixel: dict[str, Any]) -> None:
    pjpixel["PIXEL_ID"] = "00000000-0000-0000-0000-000000000000"
    event = make_event()
    assert deliver_event(event.pk).status == Status.FAILED
    row = reload(event)
    assert (row.last_status_code, row.problem_title) == (404, "Pixel not found")


def test_429_waits_at_least_retry_after(
    pjpixel_api: PrisjaktEmulator, pjpixel: dict[str, Any]
) -> None:
    pjpixel["RETRY_BASE_DELAY"] = 0.001
    pjpixel_api.scripted_retry_after = 120
    pjpixel_api.script([429])
    event = make_event()
    before = timezone.now()
    outcome = deliver_event(event.pk)
    row = reload(event)
    assert row.status == Status.PENDING
    assert row.last_status_code == 429
    assert row.next_attempt_at is not None
    assert row.next_attempt_at >= before + timedelta(seconds=120)
    assert outcome.retry_at == row.next_attempt_at
    assert isinstance(outcome.error, PrisjaktAPIError)


def test_rate_limit_reset_is_a_floor_too(pjpixel: dict[str, Any]) -> None:
    pjpixel["RETRY_BASE_DELAY"] = 0.001
    (event,) = claim_due_one()
    error = PrisjaktServerError(
        status=503, rate_limit=RateLimit(limit=10, remaining=0, reset_ms=90_000)
    )
    now = timezone.now()
    outcome = record_outcome(event, error, now=now)
    assert outcome.retry_at is not None
    assert outcome.retry_at >= now + timedelta(seconds=90)


def claim_due_one(**fields: Any) -> list[ConversionEvent]:
    make_event(**fields)
    claimed = claim_due(1)
    assert len(claimed) == 1
    return claimed


@pytest.mark.parametrize(
    ("step", "status"),
    [(500, 500), (503, 503), ("timeout", None), ("reset", None)],
)
def test_transient_answers_go_back_to_pending_with_backoff(
    pjpixel_api: PrisjaktEmulator, pjpixel: dict[str, Any], step: Any, status: int | None
) -> None:
    pjpixel["RETRY_BASE_DELAY"] = 10.0
    pjpixel["RETRY_MAX_DELAY"] = 10.0
    pjpixel_api.scripted_retry_after = 0
    pjpixel_api.script([step])
    event = make_event()
    before = timezone.now()
    deliver_event(event.pk)
    row = reload(event)
    assert row.status == Status.PENDING
    assert row.last_status_code == status
    assert row.problem_title
    assert row.next_attempt_at is not None
    assert before <= row.next_attempt_at <= timezone.now() + timedelta(seconds=10)
    # Not due before its time, then sent.
    assert deliver_event(event.pk).status == NOT_DUE
    assert deliver_event(event.pk, now=row.next_attempt_at).status == Status.SENT
    row = reload(event)
    assert row.attempts == 2
    assert (row.problem_title, row.last_status_code) == ("", 201)


def test_connection_refused_is_transient(
    pjpixel_api: PrisjaktEmulator, pjpixel: dict[str, Any]
) -> None:
    pjpixel["API_URL"] = "https://nowhere.invalid/click-conversion"
    event = make_event()
    outcome = deliver_event(event.pk)
    assert outcome.status == Status.PENDING
    assert reload(event).problem_title.startswith("Prisjakt API could not be reached")


def test_a_configuration_error_is_retried_and_logged(
    pjpixel_api: PrisjaktEmulator, pjpixel: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    pjpixel["PIXEL_ID"] = ""
    event = make_event()
    outcome = deliver_event(event.pk)
    assert outcome.status == Status.PENDING
    assert isinstance(outcome.error, PjpixelConfigurationError)
    assert "PIXEL_ID" in reload(event).problem_title
    assert any(r.levelno == logging.ERROR and "PIXEL_ID" in r.getMessage() for r in caplog.records)


def test_an_unexpected_error_is_retried_and_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    event = make_event()
    with mock.patch.object(delivery, "get_client", side_effect=RuntimeError("bug")):
        outcome = deliver_event(event.pk)
    assert outcome.status == Status.PENDING
    assert reload(event).problem_title == "RuntimeError: bug"
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.exc_info is not None


def test_an_unreadable_2xx_answer_still_counts_as_sent() -> None:
    (event,) = claim_due_one()
    error = PrisjaktAPIError("not JSON", status=201, retryable=False)
    assert record_outcome(event, error).status == Status.SENT
    assert reload(event).remote_event_id == ""


def test_an_invalid_stored_row_fails_without_a_request(pjpixel_api: PrisjaktEmulator) -> None:
    event = make_event(currency="USD")
    assert deliver_event(event.pk).status == Status.FAILED
    row = reload(event)
    assert row.problem_title == "Invalid purchase"
    assert row.field_errors == {"currency": {"message": mock.ANY}}
    assert pjpixel_api.requests == []


# -- giving up -----------------------------------------------------------------


def test_max_attempts_then_dead(pjpixel_api: PrisjaktEmulator, pjpixel: dict[str, Any]) -> None:
    pjpixel["MAX_ATTEMPTS"] = 2
    pjpixel_api.script([500, 500, 500])
    event = make_event()
    assert deliver_event(event.pk).status == Status.PENDING
    later = reload(event).next_attempt_at
    assert later is not None
    outcome = deliver_event(event.pk, now=later)
    assert outcome == Outcome(Status.DEAD, error=outcome.error)
    row = reload(event)
    assert (row.status, row.attempts, row.next_attempt_at) == (Status.DEAD, 2, None)
    assert deliver_event(event.pk, now=later + timedelta(days=1)).status == NOT_DUE


def test_older_than_max_age_then_dead(pjpixel_api: PrisjaktEmulator) -> None:
    pjpixel_api.script([503])
    event = make_event(created_at=timezone.now() - timedelta(days=4))
    assert deliver_event(event.pk).status == Status.DEAD


def test_backoff_is_full_jitter_capped(pjpixel: dict[str, Any]) -> None:
    pjpixel["RETRY_BASE_DELAY"] = 2.0
    pjpixel["RETRY_MAX_DELAY"] = 100.0
    with mock.patch("random.uniform", side_effect=lambda low, high: high) as uniform:
        assert [backoff_delay(n) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]
        assert backoff_delay(10_000) == 100.0
    assert uniform.call_args.args[0] == 0.0
    assert 0.0 <= backoff_delay(3) <= 8.0


def test_an_absurd_retry_after_is_capped_at_max_age(pjpixel: dict[str, Any]) -> None:
    (event,) = claim_due_one()
    now = timezone.now()
    error = PrisjaktServerError(status=503, retry_after=1e15)
    outcome = record_outcome(event, error, now=now)
    assert outcome.retry_at == now + timedelta(days=3)


# -- leases --------------------------------------------------------------------


def test_claiming_leases_the_row_and_counts_the_attempt(pjpixel: dict[str, Any]) -> None:
    pjpixel["LEASE_SECONDS"] = 60
    now = timezone.now()
    event = make_event()
    (claimed,) = claim_due(5, now=now)
    assert claimed.pk == event.pk
    assert claimed.status == Status.SENDING
    assert claimed.attempts == 1
    assert claimed.lease_token is not None
    assert claimed.leased_until == now + timedelta(seconds=60)
    assert claim_due(5, now=now + timedelta(seconds=59)) == []


def test_an_expired_lease_is_reclaimed_and_the_stale_outcome_is_dropped(
    pjpixel: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    pjpixel["LEASE_SECONDS"] = 60
    now = timezone.now()
    make_event()
    (first,) = claim_due(1, now=now)
    (second,) = claim_due(1, now=now + timedelta(seconds=61))
    assert second.pk == first.pk
    assert second.lease_token != first.lease_token
    assert second.attempts == 2
    # The first sender wakes up late: its outcome must not be written.
    assert record_outcome(first, PrisjaktServerError(status=503)).status == STALE
    assert reload(second).status == Status.SENDING
    assert record_outcome(second, Cancel("test")).status == Status.SKIPPED
    # Nor after the newer outcome is written.
    assert record_outcome(first, PrisjaktServerError(status=503)).status == STALE
    row = reload(second)
    assert (row.status, row.skip_reason) == (Status.SKIPPED, "test")
    assert any("taken over" in r.getMessage() for r in caplog.records)


def test_only_due_rows_are_claimed() -> None:
    now = timezone.now()
    due = [
        make_event("a"),
        make_event("b", next_attempt_at=now - timedelta(seconds=1)),
        make_event("c", status=Status.SENDING, leased_until=now - timedelta(seconds=1)),
        make_event("d", status=Status.SENDING),  # a lease without an end: a crash mid-claim
    ]
    for order_id, fields in [
        ("e", {"next_attempt_at": now + timedelta(seconds=30)}),
        ("f", {"status": Status.SENDING, "leased_until": now + timedelta(seconds=30)}),
        *[(str(s), {"status": s}) for s in ("sent", "duplicate", "failed", "skipped", "dead")],
    ]:
        make_event(order_id, **fields)
    claimed = claim_due(100, now=now)
    assert [e.pk for e in claimed] == [e.pk for e in due]


@pytest.fixture(params=["returning", "update-then-select"])
def claim_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """``claim_one`` as on PostgreSQL (``UPDATE ... RETURNING``) and as on other databases."""
    if request.param == "returning" and connection.vendor != "postgresql":
        pytest.skip("UPDATE ... RETURNING is used on PostgreSQL only")
    if request.param == "update-then-select":
        monkeypatch.setattr(connection, "vendor", "other")
    return str(request.param)


def test_claim_one_leases_a_due_row_and_returns_it_as_stored(
    pjpixel: dict[str, Any], claim_path: str
) -> None:
    pjpixel["LEASE_SECONDS"] = 60
    now = timezone.now()
    event = make_event(
        next_attempt_at=now - timedelta(seconds=1),
        attempts=2,
        field_errors={"amount": {"message": "was refused once"}},
        click_captured_at=now - timedelta(days=1),
    )
    claimed = claim_one(event.pk, now=now)
    assert claimed is not None
    stored = reload(event)
    assert {
        f.attname: getattr(claimed, f.attname) for f in ConversionEvent._meta.concrete_fields
    } == {f.attname: getattr(stored, f.attname) for f in ConversionEvent._meta.concrete_fields}
    assert (claimed.status, claimed.attempts) == (Status.SENDING, 3)
    assert claimed.leased_until == now + timedelta(seconds=60)
    assert isinstance(claimed.amount, Decimal)
    assert claimed.field_errors == {"amount": {"message": "was refused once"}}
    assert claimed._state.db == "default"
    assert not claimed._state.adding
    # Leased: nobody else gets it until the lease ends.
    assert claim_one(event.pk, now=now + timedelta(seconds=59)) is None
    assert claim_one(event.pk, now=now + timedelta(seconds=61)) is not None


def test_claim_one_leaves_rows_that_are_not_due(claim_path: str) -> None:
    now = timezone.now()
    later = make_event("later", next_attempt_at=now + timedelta(seconds=30))
    sent = make_event("sent", status=Status.SENT)
    assert claim_one(later.pk, now=now) is None
    assert claim_one(sent.pk, now=now) is None
    assert claim_one(987654, now=now) is None
    assert reload(later).attempts == 0
    assert reload(sent).status == Status.SENT


def test_deliver_event_of_a_missing_row(caplog: pytest.LogCaptureFixture) -> None:
    assert deliver_event(987654) == Outcome(NOT_DUE)
    assert "no conversion event 987654" in caplog.text


def test_deliver_event_of_a_row_leased_elsewhere_is_not_due() -> None:
    event = make_event(status=Status.SENDING, leased_until=timezone.now() + timedelta(minutes=1))
    assert deliver_event(event.pk) == Outcome(NOT_DUE)


# -- signals -------------------------------------------------------------------


def test_pre_send_cancel_skips_without_a_request(
    pjpixel_api: PrisjaktEmulator, receivers: list[Any]
) -> None:
    connect(receivers, pre_send, lambda sender, event, payload, **kw: Cancel("test order"))
    event = make_event()
    assert deliver_event(event.pk).status == Status.SKIPPED
    row = reload(event)
    assert (row.status, row.skip_reason) == (Status.SKIPPED, "test order")
    assert pjpixel_api.requests == []


def test_a_broken_pre_send_receiver_does_not_stop_delivery(
    pjpixel_api: PrisjaktEmulator, receivers: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    connect(receivers, pre_send, broken)
    connect(receivers, pre_send, lambda **kwargs: "not a Cancel")
    event = make_event()
    assert deliver_event(event.pk).status == Status.SENT
    assert len(pjpixel_api.events) == 1
    assert any("pre_send receiver" in r.getMessage() for r in caplog.records)


def test_post_send_receives_each_outcome(
    pjpixel_api: PrisjaktEmulator, receivers: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[tuple[str, str, Any]] = []

    def record(sender: Any, event: ConversionEvent, status: str, error: Any, **kw: Any) -> None:
        assert sender is ConversionEvent
        seen.append((event.order_id, status, error))

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    connect(receivers, post_send, record)
    connect(receivers, post_send, broken)
    pjpixel_api.script([503])
    event = make_event()
    deliver_event(event.pk)
    deliver_event(event.pk, now=reload(event).next_attempt_at)
    assert [(o, s) for o, s, _ in seen] == [("order-1", "pending"), ("order-1", "sent")]
    assert isinstance(seen[0][2], PrisjaktServerError)
    assert seen[1][2] is None
    assert any("post_send receiver" in r.getMessage() for r in caplog.records)


def test_send_one_returns_errors_instead_of_raising(pjpixel_api: PrisjaktEmulator) -> None:
    pjpixel_api.script([502])
    (event,) = claim_due_one()
    result = send_one(event)
    assert isinstance(result, PrisjaktServerError)
    assert result.status == 502


# -- deliver_due ---------------------------------------------------------------


def test_deliver_due_sends_everything_due_and_counts(
    pjpixel_api: PrisjaktEmulator, pjpixel: dict[str, Any]
) -> None:
    pjpixel["BATCH_SIZE"] = 1  # one POST per event, in several chunks (batches: test_batching)
    for i in range(5):
        make_event(f"due-{i}")
    make_event("later", next_attempt_at=timezone.now() + timedelta(hours=1))
    pjpixel_api.add_event(external_event_id="due-4")
    pjpixel_api.script([503], method="POST")
    counts = deliver_due()
    assert counts == {"pending": 1, "sent": 3, "duplicate": 1}
    assert deliver_due() == {}  # the retry is not due yet, and not looped on
    assert ConversionEvent.objects.get(order_id="later").status == Status.PENDING


def test_deliver_due_respects_the_limit(pjpixel_api: PrisjaktEmulator) -> None:
    for i in range(3):
        make_event(f"lim-{i}")
    assert deliver_due(limit=2) == {"sent": 2}
    assert deliver_due(limit=2) == {"sent": 1}


def test_chunks_fit_in_one_lease(pjpixel: dict[str, Any]) -> None:
    pjpixel.update(LEASE_SECONDS=120, CONNECT_TIMEOUT=2, READ_TIMEOUT=10, BATCH_SIZE=100)
    assert chunk_size() == 10
    pjpixel.update(LEASE_SECONDS=1)
    assert chunk_size() == 1
    pjpixel.update(LEASE_SECONDS=1000, BATCH_SIZE=50)
    assert chunk_size() == 50


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_without_skip_locked_a_claim_keeps_only_the_rows_it_won(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As on SQLite: another sender takes a row between this claim's read and its UPDATE."""
    first, second = make_event("race-1"), make_event("race-2")
    monkeypatch.setattr(connection.features, "has_select_for_update_skip_locked", False)
    update = QuerySet.update
    rival: list[list[ConversionEvent]] = []
    raced = threading.Event()

    def racing_update(self: QuerySet[Any], **fields: Any) -> int:
        if fields.get("status") == ConversionEvent.Status.SENDING and not raced.is_set():
            raced.set()

            def claim_first() -> None:
                try:  # its own connection, which has SKIP LOCKED
                    rival.append(claim_due(1, only=Q(pk=first.pk)))
                finally:
                    connection.close()

            thread = threading.Thread(target=claim_first)
            thread.start()
            thread.join(10)
        return update(self, **fields)

    monkeypatch.setattr(QuerySet, "update", racing_update)
    mine = claim_due(10)
    assert [event.pk for event in rival[0]] == [first.pk]
    assert [event.pk for event in mine] == [second.pk]
    assert reload(first).lease_token == rival[0][0].lease_token != mine[0].lease_token


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_never_send_a_row_twice(
    pjpixel_api: PrisjaktEmulator, pjpixel: dict[str, Any]
) -> None:
    pjpixel["BATCH_SIZE"] = 1  # one POST per event (batches: test_batching)
    assert connection.features.has_select_for_update_skip_locked
    for i in range(30):
        make_event(f"par-{i}")
    pjpixel_api.latency = 0.005
    results: list[dict[str, int]] = []

    def run() -> None:
        try:
            results.append(deliver_due())
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sum(r.get("sent", 0) for r in results) == 30
    external = [e["external_event_id"] for e in pjpixel_api.events]
    assert sorted(external) == sorted(f"par-{i}" for i in range(30))
    assert len([r for r in pjpixel_api.requests if r.method == "POST"]) == 30


# -- logs ------------------------------------------------------------------------


def assert_no_secret(caplog: pytest.LogCaptureFixture, secret: str) -> None:
    formatter = logging.Formatter("%(message)s %(exc_info)s")
    for record in caplog.records:
        text = formatter.format(record) + repr(vars(record))
        assert secret not in text, record


def test_structured_logs_per_outcome_without_the_secret(
    pjpixel_api: PrisjaktEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pjpixel_api.script([503, 201])
    event = make_event()
    deliver_event(event.pk)
    deliver_event(event.pk, now=reload(event).next_attempt_at)
    records = [r for r in caplog.records if r.name == "django_pjpixel.delivery"]
    warning, info = records
    assert warning.levelno == logging.WARNING
    assert vars(warning)["pjpixel_event"] == event.pk
    assert vars(warning)["http_status"] == 503
    assert vars(info)["status"] == Status.SENT
    assert vars(info)["order_id"] == "order-1"
    assert vars(info)["request_id"] == reload(event).request_id
    assert_no_secret(caplog, SECRET)


def test_dead_is_logged_at_error(
    pjpixel_api: PrisjaktEmulator, pjpixel: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    pjpixel["MAX_ATTEMPTS"] = 1
    pjpixel_api.script([500])
    event = make_event()
    assert deliver_event(event.pk).status == Status.DEAD
    assert [r.levelno for r in caplog.records] == [logging.ERROR]

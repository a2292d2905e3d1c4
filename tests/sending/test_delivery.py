"""Delivery of one row: each answer recorded, the signals, the logs (``delivery.py``)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from django.utils import timezone

from django_pjpixel.exceptions import (
    PjpixelConfigurationError,
    PrisjaktAPIError,
    PrisjaktServerError,
    RateLimit,
)
from django_pjpixel.models import ConversionEvent
from django_pjpixel.sending import delivery
from django_pjpixel.sending.delivery import deliver_event, record_outcome, send_one
from django_pjpixel.sending.outbox import NOT_DUE, Outcome
from django_pjpixel.signals import Cancel, post_send, pre_send
from django_pjpixel.testing.emulator import PrisjaktEmulator
from tests.helpers import CLICK, claim_due_one, connect, make_event

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
    [(["event_publisher"], "wrong-secret-value"), ([], None)],
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
    hint = "CLIENT_SECRET" if secret else "needs one of the roles shop_user, event_publisher"
    assert any("'test-client'" in r.getMessage() and hint in r.getMessage() for r in errors)
    assert_no_secret(caplog, pjpixel["CLIENT_SECRET"])


def test_a_shop_user_client_sends_an_event(pjpixel_api: PrisjaktEmulator) -> None:
    # The portal names shop_user for the PATCH and the listing, no role for one event.
    pjpixel_api.add_client("test-client", SECRET, ["shop_user"])
    event = make_event()
    assert deliver_event(event.pk).status == Status.SENT
    assert [e["external_event_id"] for e in pjpixel_api.events] == ["order-1"]


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


def test_with_use_tz_false_the_local_event_time_is_sent_in_utc(settings: Any) -> None:
    settings.USE_TZ = False
    settings.TIME_ZONE = "Europe/Stockholm"
    naive = datetime(2025, 3, 13, 11, 45, 46, 987000)  # what the database gives back
    event = ConversionEvent(order_id="naive-1", event_time=naive, amount=1, currency="SEK")
    event.number_of_items, event.click_id = 1, CLICK
    assert delivery.build_payload(event)["event_time"] == "2025-03-13T10:45:46.987Z"

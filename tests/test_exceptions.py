from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import responses
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from django_pjpixel.exceptions import (
    InvalidInput,
    PjpixelConfigurationError,
    PjpixelError,
    PrisjaktAPIError,
    PrisjaktAuthError,
    PrisjaktConflict,
    PrisjaktConnectionError,
    PrisjaktNotFound,
    PrisjaktRateLimited,
    PrisjaktRedirectRefused,
    PrisjaktServerError,
    PrisjaktTimeout,
    PrisjaktValidationError,
    Problem,
    RateLimit,
    body_excerpt,
    error_class_for,
)
from tests.seed import NOT_FOUND as SEED_NOT_FOUND
from tests.seed import VALIDATION as SEED_VALIDATION


def test_seed_not_found_body_parses() -> None:
    problem = Problem.parse(SEED_NOT_FOUND)

    assert problem == Problem(
        title="Shop not found",
        status=404,
        detail="A shop with ID 121213 could not be found",
        request_id="96206250-bb0f-487b-a334-18192bec8592",
    )
    assert problem.field_errors == {}


def test_seed_validation_body_parses() -> None:
    problem = Problem.parse(SEED_VALIDATION.encode())

    assert problem is not None
    assert problem.title == "Request validation failed"
    assert problem.status == 400
    assert problem.detail == (
        "Request contains invalid fields: shopId. See field_errors for more details."
    )
    assert problem.field_errors == {"shopId": {"message": "invalid integer", "value": "alfa"}}
    assert problem.request_id == "d61579e9-eb4a-4fef-87e9-75438bbcfcf4"


@pytest.mark.parametrize(
    "body",
    [None, b"", "", b"<html>Bad gateway</html>", b"[1, 2]", b'"text"', b"null", b"\xff\xfe\x00"],
)
def test_parse_returns_none_without_a_json_object(body: bytes | str | None) -> None:
    assert Problem.parse(body) is None


def test_parse_survives_deep_nesting() -> None:
    assert Problem.parse("[" * 100_000 + "]" * 100_000) is None
    problem = Problem.parse('{"title": "t", "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert problem is None or problem.title == "t"


def test_mistyped_members_are_ignored() -> None:
    problem = Problem.from_dict(
        {
            "type": 7,
            "title": ["not", "a", "string"],
            "status": "400",
            "detail": {"a": 1},
            "instance": None,
            "field_errors": [{"shopId": "bad"}],
            "context": "request-id: abc",
        }
    )

    assert problem == Problem()


def test_boolean_status_is_not_a_status() -> None:
    assert Problem.from_dict({"status": True}).status is None


def test_field_errors_keep_good_entries_and_drop_bad_ones() -> None:
    problem = Problem.from_dict(
        {
            "field_errors": {
                "amount": "must be positive",
                "currency": {"message": "unknown", "value": "XXX"},
                "items": 4,
                "nested": {"message": "m"},
            },
            "context": {"request-id": 12},
        }
    )

    assert problem.field_errors == {
        "amount": {"message": "must be positive"},
        "currency": {"message": "unknown", "value": "XXX"},
        "nested": {"message": "m"},
    }
    assert problem.request_id is None


def test_type_and_instance_are_kept() -> None:
    problem = Problem.from_dict({"type": "about:blank", "instance": "/pixels/x/events"})
    assert problem.type == "about:blank"
    assert problem.instance == "/pixels/x/events"


# -- the error hierarchy --------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, PrisjaktValidationError),
        (422, PrisjaktValidationError),
        (401, PrisjaktAuthError),
        (403, PrisjaktAuthError),
        (404, PrisjaktNotFound),
        (409, PrisjaktConflict),
        (429, PrisjaktRateLimited),
        (301, PrisjaktRedirectRefused),
        (302, PrisjaktRedirectRefused),
        (307, PrisjaktRedirectRefused),
        (500, PrisjaktServerError),
        (502, PrisjaktServerError),
        (503, PrisjaktServerError),
        (418, PrisjaktAPIError),
        (408, PrisjaktAPIError),
    ],
)
def test_error_class_for(status: int, cls: type[PrisjaktAPIError]) -> None:
    assert error_class_for(status) is cls


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retryable(status: int) -> None:
    assert error_class_for(status)(status=status).retryable is True


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 302, 501])
def test_other_statuses_are_not_retryable(status: int) -> None:
    assert error_class_for(status)(status=status).retryable is False


def test_validation_error_is_also_a_value_error() -> None:
    err = PrisjaktValidationError(status=400)
    assert isinstance(err, ValueError)
    assert isinstance(err, PrisjaktAPIError)
    assert isinstance(err, PjpixelError)


def test_network_errors_are_retryable_without_status() -> None:
    for err in (PrisjaktConnectionError(), PrisjaktTimeout()):
        assert err.retryable is True
        assert err.status is None
    assert isinstance(PrisjaktTimeout(), PrisjaktConnectionError)
    assert PrisjaktConnectionError(retryable=False).retryable is False
    assert str(PrisjaktTimeout()) == "Prisjakt API timed out"


def test_configuration_error_is_improperly_configured_not_api_error() -> None:
    err = PjpixelConfigurationError("set PJPIXEL")
    assert isinstance(err, ImproperlyConfigured)
    assert not isinstance(err, PrisjaktAPIError)


def test_invalid_input_names_its_field() -> None:
    err = InvalidInput("amount", "must be a number")
    assert isinstance(err, ValueError)
    assert err.field == "amount"
    assert err.message == "must be a number"
    assert str(err) == "amount: must be a number"


def test_error_carries_the_problem_and_shows_it() -> None:
    problem = Problem.parse(SEED_VALIDATION)
    err = PrisjaktValidationError("refused (POST /pixels/p/events)", status=400, problem=problem)

    assert err.title == "Request validation failed"
    assert err.detail is not None
    assert err.detail.startswith("Request contains invalid fields")
    assert err.field_errors == {"shopId": {"message": "invalid integer", "value": "alfa"}}
    assert err.request_id == "d61579e9-eb4a-4fef-87e9-75438bbcfcf4"
    assert err.type is None
    text = str(err)
    for part in (
        "refused (POST /pixels/p/events)",
        "HTTP 400",
        "Request validation failed",
        "shopId: invalid integer",
        "request-id d61579e9-eb4a-4fef-87e9-75438bbcfcf4",
    ):
        assert part in text
    assert err.as_record() == {
        "status": 400,
        "type": None,
        "title": "Request validation failed",
        "detail": "Request contains invalid fields: shopId. See field_errors for more details.",
        "field_errors": {"shopId": {"message": "invalid integer", "value": "alfa"}},
        "request_id": "d61579e9-eb4a-4fef-87e9-75438bbcfcf4",
    }


def test_explicit_request_id_wins_over_the_problem() -> None:
    err = PrisjaktNotFound(problem=Problem.parse(SEED_NOT_FOUND), request_id="from-header")
    assert err.request_id == "from-header"


def test_field_error_without_message_reads_invalid() -> None:
    err = PrisjaktValidationError(problem=Problem(field_errors={"amount": {"value": -1}}))
    assert "amount: invalid" in str(err)


def test_body_excerpt_shown_only_without_title_or_detail() -> None:
    err = PrisjaktServerError(status=502, body_excerpt="<html>Bad gateway</html>")
    assert str(err) == ("Prisjakt API failed — HTTP 502 — body: <html>Bad gateway</html>")
    assert err.as_record()["detail"] == "<html>Bad gateway</html>"
    assert err.as_record()["title"] == "Prisjakt API failed"

    titled = PrisjaktServerError(
        status=502, problem=Problem(title="Down"), body_excerpt="<html>x</html>"
    )
    assert "body:" not in str(titled)


def test_plain_error_record_has_empty_detail() -> None:
    assert PrisjaktAPIError().as_record() == {
        "status": None,
        "type": None,
        "title": "Prisjakt API error",
        "detail": "",
        "field_errors": {},
        "request_id": None,
    }


# -- rate limit -----------------------------------------------------------------


def test_rate_limit_from_headers() -> None:
    rate = RateLimit.from_headers(
        {"X-RateLimit-Limit": "10000", "X-RateLimit-Remaining": " 0 ", "X-RateLimit-Reset": "1500"}
    )
    assert rate == RateLimit(limit=10000, remaining=0, reset_ms=1500)
    assert rate is not None
    assert rate.reset_seconds == 1.5


def test_rate_limit_absent_or_garbage_is_none() -> None:
    assert RateLimit.from_headers({}) is None
    assert RateLimit.from_headers({"X-RateLimit-Limit": "many", "X-RateLimit-Reset": "-5"}) is None
    assert RateLimit().reset_seconds is None
    partial = RateLimit.from_headers({"X-RateLimit-Remaining": "3"})
    assert partial == RateLimit(remaining=3)


@pytest.mark.parametrize("value", ["1" + "0" * 400, "1_000", "+5", "١٢", "1.5", "", "0x10"])
def test_rate_limit_ignores_what_is_not_a_plain_count(value: str) -> None:
    assert RateLimit.from_headers({"X-RateLimit-Reset": value}) is None


# -- body excerpt ---------------------------------------------------------------


def test_body_excerpt_is_short_single_line_and_printable() -> None:
    page = b"<html>\n  <head><title>502 Bad Gateway</title></head>\r\n\x00\x07<body>" + b"x" * 500
    excerpt = body_excerpt(page)

    assert excerpt is not None
    assert excerpt.startswith("<html> <head><title>502 Bad Gateway</title></head> <body>")
    assert len(excerpt) == 200
    assert excerpt.endswith("…")
    assert "\n" not in excerpt
    assert all(ch.isprintable() for ch in excerpt)


@pytest.mark.parametrize("body", [None, b"", "", " \n\t ", "\x00\x01"])
def test_body_excerpt_of_nothing_is_none(body: bytes | str | None) -> None:
    assert body_excerpt(body) is None


def test_body_excerpt_of_undecodable_bytes() -> None:
    assert body_excerpt(b"\xff\xfeoops") == "\ufffd\ufffdoops"
    assert body_excerpt("plain") == "plain"


def test_problem_parse_accepts_what_json_dumps_makes() -> None:
    data = {"title": "T", "status": 409, "context": {"request-id": "r"}}
    assert Problem.parse(json.dumps(data)) == Problem(title="T", status=409, request_id="r")


def test_field_errors_with_non_string_names_are_dropped() -> None:
    problem = Problem.from_dict({"field_errors": {1: "x", "amount": {2: "y", "message": "m"}}})
    assert problem.field_errors == {"amount": {"message": "m"}}


@pytest.mark.parametrize(
    ("reset", "seconds"),
    [("999999999999999999", 3600.0), ("3600001", 3600.0), ("3600000", 3600.0), ("1500", 1.5)],
)
def test_a_rate_limit_reset_is_bounded_by_the_one_hour_window(reset: str, seconds: float) -> None:
    # Issue 11: X-RateLimit-Reset: 999999999999999999 deferred every due row 72 hours.
    rate = RateLimit.from_headers({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset})
    assert rate is not None
    assert rate.reset_seconds == seconds


@pytest.mark.django_db
def test_a_huge_reset_on_a_success_defers_due_rows_an_hour_at_most(
    api: responses.RequestsMock, pjpixel: dict[str, Any]
) -> None:
    from django_pjpixel.models import ConversionEvent
    from django_pjpixel.sending import backlog
    from django_pjpixel.sending.backlog import deliver_due
    from tests.helpers import PIXEL_ID, make_event

    pjpixel.update(BATCH_SIZE=1, RATE_LIMIT_MAX_WAIT=0)
    api.post(
        f"https://api.pj.nu/click-conversion/pixels/{PIXEL_ID}/events",
        status=201,
        json={"id": "e-1"},
        headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "999999999999999999"},
    )
    for index in range(3):
        make_event(f"order-{index}")
    before = timezone.now()
    try:
        assert deliver_due() == {"sent": 1}
    finally:
        backlog._pauses.clear()  # the run paused this process's deliver_due until the reset
    waiting = ConversionEvent.objects.filter(status="pending")
    assert waiting.count() == 2
    for row in waiting:
        assert row.next_attempt_at is not None
        assert row.next_attempt_at <= before + timedelta(hours=1, minutes=1)

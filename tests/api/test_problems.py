"""Errors from answers (``django_pjpixel.api.problems``): problem details, hints, no secret."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
import responses

from django_pjpixel.api.client import PrisjaktClient
from django_pjpixel.exceptions import (
    PrisjaktAPIError,
    PrisjaktAuthError,
    PrisjaktConflict,
    PrisjaktNotFound,
    PrisjaktRateLimited,
    PrisjaktServerError,
    PrisjaktValidationError,
    RateLimit,
)
from tests.helpers import seed_payload
from tests.seed import NOT_FOUND as SEED_NOT_FOUND
from tests.seed import VALIDATION as SEED_VALIDATION

API = "https://api.pj.nu/click-conversion"
PIXEL = "5c034de4-8e86-4d16-9fd1-20cfec6c97e4"
SECRET = "s3cr3t-never-shown"
EVENTS_URL = f"{API}/pixels/{PIXEL}/events"
UTC = timezone.utc


@pytest.fixture
def client() -> PrisjaktClient:
    return PrisjaktClient()


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [(404, SEED_NOT_FOUND, PrisjaktNotFound), (400, SEED_VALIDATION, PrisjaktValidationError)],
)
def test_seed_error_bodies_through_the_client(
    api: responses.RequestsMock,
    client: PrisjaktClient,
    status: int,
    body: str,
    cls: type[PrisjaktAPIError],
) -> None:
    api.post(EVENTS_URL, status=status, body=body, content_type="application/problem+json")

    with pytest.raises(cls) as info:
        client.create_event(seed_payload())

    err = info.value
    assert err.status == status
    assert err.retryable is False
    if status == 404:
        assert err.title == "Shop not found"
        assert err.detail == "A shop with ID 121213 could not be found"
        assert err.field_errors == {}
        assert err.request_id == "96206250-bb0f-487b-a334-18192bec8592"
    else:
        assert isinstance(err, ValueError)
        assert err.title == "Request validation failed"
        assert err.detail == (
            "Request contains invalid fields: shopId. See field_errors for more details."
        )
        assert err.field_errors == {"shopId": {"message": "invalid integer", "value": "alfa"}}
        assert err.request_id == "d61579e9-eb4a-4fef-87e9-75438bbcfcf4"
    assert f"HTTP {status}" in str(err)
    assert f"POST /click-conversion/pixels/{PIXEL}/events" in str(err)
    assert err.request_id is not None
    assert err.request_id in str(err)


def test_success_with_a_non_json_body_is_an_error(
    api: responses.RequestsMock, client: PrisjaktClient
) -> None:
    api.get(f"{API}/events/e1", body="<html>ok</html>", headers={"request-id": "r9"})
    with pytest.raises(PrisjaktAPIError) as info:
        client.get_event("e1")
    err = info.value
    assert err.status == 200
    assert err.retryable is False
    assert err.request_id == "r9"
    assert err.body_excerpt == "<html>ok</html>"
    assert isinstance(err.__cause__, ValueError)


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (400, PrisjaktValidationError, False),
        (422, PrisjaktValidationError, False),
        (401, PrisjaktAuthError, False),
        (403, PrisjaktAuthError, False),
        (404, PrisjaktNotFound, False),
        (409, PrisjaktConflict, False),
        (408, PrisjaktAPIError, True),
        (425, PrisjaktAPIError, True),
        (429, PrisjaktRateLimited, True),
        (500, PrisjaktServerError, True),
        (502, PrisjaktServerError, True),
        (503, PrisjaktServerError, True),
        (504, PrisjaktServerError, True),
        (501, PrisjaktServerError, False),
        (418, PrisjaktAPIError, False),
    ],
)
def test_error_mapping(
    api: responses.RequestsMock,
    client: PrisjaktClient,
    status: int,
    cls: type[PrisjaktAPIError],
    retryable: bool,
) -> None:
    api.post(EVENTS_URL, status=status, json={"title": f"status {status}", "status": status})

    with pytest.raises(cls) as info:
        client.create_event(seed_payload())

    assert type(info.value) is cls
    assert info.value.status == status
    assert info.value.retryable is retryable
    assert info.value.title == f"status {status}"
    assert isinstance(info.value, ValueError) is (cls is PrisjaktValidationError)


def test_retry_after_seconds(api: responses.RequestsMock, client: PrisjaktClient) -> None:
    api.post(EVENTS_URL, status=429, headers={"Retry-After": "120", "X-RateLimit-Reset": "5000"})
    with pytest.raises(PrisjaktRateLimited) as info:
        client.create_event(seed_payload())
    assert info.value.retry_after == 120.0
    assert info.value.retryable is True


def test_retry_after_http_date(api: responses.RequestsMock, client: PrisjaktClient) -> None:
    when = datetime.now(UTC) + timedelta(seconds=300)
    api.post(EVENTS_URL, status=503, headers={"Retry-After": format_datetime(when, usegmt=True)})
    with pytest.raises(PrisjaktServerError) as info:
        client.create_event(seed_payload())
    assert info.value.retry_after is not None
    assert 290 <= info.value.retry_after <= 300


def test_retry_after_in_the_past_is_now(
    api: responses.RequestsMock, client: PrisjaktClient
) -> None:
    api.post(EVENTS_URL, status=429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    with pytest.raises(PrisjaktRateLimited) as info:
        client.create_event(seed_payload())
    assert info.value.retry_after == 0.0


def test_garbage_retry_after_falls_back_to_rate_limit_reset(
    api: responses.RequestsMock, client: PrisjaktClient
) -> None:
    api.post(
        EVENTS_URL,
        status=429,
        headers={
            "Retry-After": "soon",
            "X-RateLimit-Limit": "10000",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": "1500",
        },
    )
    with pytest.raises(PrisjaktRateLimited) as info:
        client.create_event(seed_payload())
    err = info.value
    assert err.retry_after == 1.5
    assert err.rate_limit == RateLimit(limit=10000, remaining=0, reset_ms=1500)


def test_rate_limit_reset_is_only_a_hint_for_429(
    api: responses.RequestsMock, client: PrisjaktClient
) -> None:
    api.post(EVENTS_URL, status=503, headers={"X-RateLimit-Reset": "1500"})
    with pytest.raises(PrisjaktServerError) as info:
        client.create_event(seed_payload())
    assert info.value.retry_after is None
    assert info.value.rate_limit == RateLimit(reset_ms=1500)


def test_429_without_any_hint(api: responses.RequestsMock, client: PrisjaktClient) -> None:
    api.post(EVENTS_URL, status=429)
    with pytest.raises(PrisjaktRateLimited) as info:
        client.create_event(seed_payload())
    assert info.value.retry_after is None
    assert info.value.rate_limit is None


def test_html_502_gives_a_useful_error(api: responses.RequestsMock, client: PrisjaktClient) -> None:
    page = (
        "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
        "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    )
    api.post(EVENTS_URL, status=502, body=page, content_type="text/html")

    with pytest.raises(PrisjaktServerError) as info:
        client.create_event(seed_payload())

    err = info.value
    assert err.status == 502
    assert err.retryable is True
    assert err.title is None
    assert err.body_excerpt is not None
    assert "502 Bad Gateway" in err.body_excerpt
    assert "\n" not in err.body_excerpt
    text = str(err)
    assert "HTTP 502" in text
    assert "<title>502 Bad Gateway</title>" in text
    assert err.as_record()["detail"] == err.body_excerpt


def test_request_id_header_when_the_body_has_none(
    api: responses.RequestsMock, client: PrisjaktClient
) -> None:
    api.post(EVENTS_URL, status=500, body="", headers={"request-id": "from-header"})
    with pytest.raises(PrisjaktServerError) as info:
        client.create_event(seed_payload())
    assert info.value.request_id == "from-header"
    assert info.value.body_excerpt is None


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"title": f"bad secret {SECRET}", "detail": SECRET, "type": SECRET}),
        json.dumps({"field_errors": {SECRET: {"message": SECRET, "value": [SECRET, -1, None]}}}),
        json.dumps({"context": {"request-id": SECRET}, "instance": SECRET}),
        # JSON escapes: the bytes of the body do not hold the secret, its text does.
        '{"detail": "' + "".join(f"\\u{ord(ch):04x}" for ch in SECRET) + '"}',
        json.dumps({"detail": f"got {SECRET}"}).encode("utf-16"),
        f"<html>client-secret: {SECRET}</html>",
        f"<html>{SECRET[:5]}\x00{SECRET[5:]}</html>",
        f"<html>{'x' * 190}{SECRET}</html>",
        f"<html>{SECRET}".encode("utf-16-le"),
    ],
)
@pytest.mark.parametrize("status", [400, 401, 500, 200])
def test_the_secret_never_shows(
    api: responses.RequestsMock, client: PrisjaktClient, body: str | bytes, status: int
) -> None:
    api.get(f"{API}/events/e1", status=status, body=body)

    shown: list[str] = [repr(client), str(client)]
    try:
        client.get_event("e1")
    except PrisjaktAPIError as err:
        shown += [str(err), repr(err), repr(err.problem), str(err.as_record()), err.message]
        shown.append(err.body_excerpt or "")
    else:
        shown.append(f"success {status}")

    assert not [text for text in shown if SECRET in text or SECRET[:10] in text]
    assert status == 200 or "success" not in shown[-1]


@pytest.mark.parametrize(
    ("status", "body"), [(500, ""), (500, "{}"), (500, "<html>oops</html>"), (200, "<html>")]
)
def test_the_secret_echoed_as_request_id_never_shows(
    api: responses.RequestsMock, client: PrisjaktClient, status: int, body: str
) -> None:
    api.get(f"{API}/events/e1", status=status, body=body, headers={"request-id": f"x {SECRET}"})

    with pytest.raises(PrisjaktAPIError) as info:
        client.get_event("e1")

    assert SECRET not in str(info.value)
    assert info.value.request_id == "x ***"


def test_deeply_nested_field_errors_with_the_secret(
    api: responses.RequestsMock, client: PrisjaktClient
) -> None:
    depth = 700
    body = (
        f'{{"title": "{SECRET}", "field_errors": {{"amount": {{"message": "bad", "value": '
        + "[" * depth
        + f'"{SECRET}"'
        + "]" * depth
        + "}}}"
    )
    api.get(f"{API}/events/e1", status=400, body=body)

    with pytest.raises(PrisjaktValidationError) as info:
        client.get_event("e1")

    assert info.value.title == "***"
    assert SECRET not in str(info.value)

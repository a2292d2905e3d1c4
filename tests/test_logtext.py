"""The API's text in log lines (``logtext.py``): line breaks escaped, in every log call
that carries it, so an answer cannot forge a log record."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import responses

from django_pjpixel.exceptions import PrisjaktAPIError, Problem
from django_pjpixel.logtext import masked, masked_bytes, masked_value, one_line
from django_pjpixel.models import ConversionEvent
from django_pjpixel.sending.backlog import deliver_due
from django_pjpixel.sending.delivery import deliver_event
from tests.helpers import PIXEL_ID, make_event

EVENTS_URL = f"https://api.pj.nu/click-conversion/pixels/{PIXEL_ID}/events"
FORGED = "\nERROR pjpixel: order 666 forged"
PROBLEM = {
    "title": "Request validation failed\r\nINFO pjpixel: order 667 delivered (sent)",
    "status": 400,
    "detail": f"bad amount{FORGED}",
    "field_errors": {"data.amount": {"message": f"too big{FORGED}"}},
    "context": {"request-id": f"req-1{FORGED}"},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("a\nb", "a\\nb"),
        ("a\r\nb", "a\\r\\nb"),
        ("a\x85b\u2028c\u2029d\x0be\x0cf\x1cg", "a\\x85b\\u2028c\\u2029d\\x0be\\x0cf\\x1cg"),
        (None, "None"),
    ],
)
def test_one_line(text: object, expected: str) -> None:
    assert one_line(text) == expected
    assert len(one_line(text).splitlines()) == 1


def test_an_errors_text_is_one_line() -> None:
    err = PrisjaktAPIError("refused", status=400, problem=Problem.from_dict(PROBLEM))
    assert len(str(err).splitlines()) == 1
    assert "bad amount\\nERROR pjpixel: order 666 forged" in str(err)


def formatted_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    formatter = logging.Formatter("%(levelname)s %(name)s %(message)s %(request_id)s")
    lines = []
    for record in caplog.records:
        record.__dict__.setdefault("request_id", "")
        lines.append(formatter.format(record))
    return lines


def assert_one_line_each(caplog: pytest.LogCaptureFixture) -> None:
    lines = formatted_lines(caplog)
    assert lines
    for line in lines:
        assert "\n" not in line
        assert "\r" not in line
    assert any("forged" in line for line in lines)


@pytest.mark.django_db
def test_a_problem_with_line_breaks_is_logged_on_one_line(
    api: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    # Issue 11: a problem title or detail with \n or \r\n forged extra log lines.
    caplog.set_level(logging.DEBUG, logger="django_pjpixel")
    api.post(EVENTS_URL, status=400, json=PROBLEM)
    event = make_event()
    assert deliver_event(event.pk).status == ConversionEvent.Status.FAILED
    assert_one_line_each(caplog)


@pytest.mark.django_db
def test_a_refused_batch_with_line_breaks_is_logged_on_one_line(
    api: responses.RequestsMock, caplog: pytest.LogCaptureFixture, pjpixel: dict[str, Any]
) -> None:
    caplog.set_level(logging.DEBUG, logger="django_pjpixel")
    api.patch(EVENTS_URL, status=400, json=PROBLEM)
    api.post(EVENTS_URL, status=403, json={**PROBLEM, "status": 403})
    make_event("order-1")
    make_event("order-2")
    assert deliver_due() == {"failed": 2}
    assert_one_line_each(caplog)


def test_one_masking_rule_for_every_credential() -> None:
    assert masked("a s3cr3t b", ["s3cr3t"]) == "a *** b"
    assert masked("Authorization: bearer abc.def-ghi, then") == "Authorization: bearer ***, then"
    # The longest first: a hidden value holding another is masked whole.
    assert masked("tok-1x tok-1", ["tok-1", "tok"]) == "***x ***"
    assert masked_bytes(b'{"d": "Bearer tok-other"}') == b'{"d": "Bearer ***"}'
    assert masked_value({"s3cr3t": ["s3cr3t", 1, None]}, ["s3cr3t"]) == {"***": ["***", 1, None]}

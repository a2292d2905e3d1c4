"""The emulator's HTTP messages (``testing/wire.py``): every answer's request id,
the secret kept out of answers, and the record of each request."""

from __future__ import annotations

import json

from django_pjpixel.testing.emulator import PrisjaktEmulator
from django_pjpixel.testing.wire import REDACTED
from tests.testing.test_emulator import (
    AUTH,
    CLIENT,
    DEFAULT_BASE_URL,
    PIXEL,
    SECRET,
    call,
    post,
    purchase,
)
from tests.testing.test_emulator import clock as clock  # fixtures, shared by name
from tests.testing.test_emulator import emu as emu


def test_every_answer_carries_a_request_id(emu: PrisjaktEmulator) -> None:
    # "`context` with `request-id`" [seed]; the header carries the same id.
    answers = [
        post(emu, purchase()),
        post(emu, purchase()),
        post(emu, {}),
        call(emu, "GET", "/nothing"),
        post(emu, purchase(), headers={}),
    ]
    ids = [a.headers["request-id"] for a in answers]
    assert len(set(ids)) == len(ids)
    for answer in answers[1:]:
        assert answer.json()["context"] == {"request-id": answer.headers["request-id"]}
    assert [r.request_id for r in emu.requests] == ids


def test_the_secret_never_appears_in_an_answer(emu: PrisjaktEmulator) -> None:
    response = post(emu, purchase(external_event_id=SECRET, event_name=SECRET))
    assert SECRET.encode() not in response.body
    assert response.json()["field_errors"]["event_name"]["value"] == "***"


def test_request_log_redacts_the_secret(emu: PrisjaktEmulator) -> None:
    post(emu, purchase(), headers={**AUTH, "X-Other": "1"})
    call(emu, "GET", "/clicks/x?y=1", query=None)
    first, second = emu.requests
    assert first.method == "POST"
    assert first.path == f"/pixels/{PIXEL}/events"
    assert first.url == f"{DEFAULT_BASE_URL}/pixels/{PIXEL}/events"
    assert first.headers["client-secret"] == REDACTED
    assert first.headers["client-id"] == CLIENT
    assert first.headers["x-other"] == "1"
    assert first.json == purchase()
    assert first.status == 201
    assert first.fault is None
    assert (second.path, second.query, second.status, second.json) == (
        "/clicks/x",
        {"y": "1"},
        404,
        None,
    )
    assert SECRET not in json.dumps(emu.state())
    assert SECRET not in repr(emu.requests)


def test_request_log_of_odd_requests(emu: PrisjaktEmulator) -> None:
    call(emu, "GET", "/clicks/x", raw=b"\xff not json")
    call(emu, "GET", "", base="https://api.pj.nu/outside")
    assert emu.requests[0].json is None
    assert emu.requests[1].path == "/outside"

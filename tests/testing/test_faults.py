"""The faults the emulator injects (``testing/faults.py``): scripted steps,
random faults with a seed, and latency."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from django_pjpixel.testing.clock import ManualClock
from django_pjpixel.testing.emulator import PrisjaktEmulator
from tests.testing.test_emulator import CLIENT, SECRET, call, make_emulator, post, purchase
from tests.testing.test_emulator import clock as clock  # fixtures, shared by name
from tests.testing.test_emulator import emu as emu


def test_script_is_consumed_one_step_per_request(emu: PrisjaktEmulator) -> None:
    emu.script([503, 429, 502, "timeout", "connect_timeout", "reset", 201, "pass", 500])
    assert emu.pending_script == 9
    answers = [post(emu, purchase(external_event_id=f"o{i}")) for i in range(10)]
    assert [a.status for a in answers] == [503, 429, 502, 504, 504, 502, 201, 201, 500, 201]
    assert [a.fault for a in answers][3:6] == ["timeout", "connect_timeout", "reset"]
    assert answers[0].json()["title"] == "Service Unavailable"
    assert answers[0].headers["Retry-After"] == "1"
    assert answers[1].headers["Retry-After"] == "1"
    assert answers[1].headers["X-RateLimit-Limit"] == "10000"
    assert answers[2].headers["Content-Type"] == "text/html"
    assert answers[2].body.startswith(b"<html>")
    assert b"502 Bad Gateway" in answers[2].body
    assert "Retry-After" not in answers[8].headers
    assert [e["external_event_id"] for e in emu.events] == ["o6", "o7", "o9"]
    assert [r.status for r in emu.requests][3:6] == [None, None, None]
    assert [r.fault for r in emu.requests][3:6] == ["timeout", "connect_timeout", "reset"]
    assert emu.pending_script == 0


def test_script_filters_by_method_and_path(emu: PrisjaktEmulator) -> None:
    emu.script([500], method="get", path=r"^/clicks/")
    assert post(emu, purchase()).status == 201
    assert call(emu, "GET", "/events/x").status == 404
    assert call(emu, "GET", "/clicks/x").status == 500
    assert call(emu, "GET", "/clicks/x").status == 404


def test_script_applies_to_the_token_endpoint(emu: PrisjaktEmulator) -> None:
    emu.script([503, 200], path="/oauth2/token")
    assert emu.handle("POST", "https://auth.pj.nu/oauth2/token", {}, b"").status == 503
    form = urlencode(
        {"grant_type": "client_credentials", "client_id": CLIENT, "client_secret": SECRET}
    ).encode()
    assert emu.handle("POST", "https://auth.pj.nu/oauth2/token", {}, form).status == 200


@pytest.mark.parametrize("step", [99, 600, "boom", 3.5])
def test_script_refuses_unknown_steps(emu: PrisjaktEmulator, step: Any) -> None:
    with pytest.raises(ValueError, match="not a script step"):
        emu.script([step])
    assert emu.pending_script == 0


def test_scripted_unusual_status(emu: PrisjaktEmulator) -> None:
    emu.script([599])
    answer = post(emu, purchase())
    assert (answer.status, answer.json()["title"]) == (599, "HTTP 599")


def test_random_faults_with_a_seed(clock: ManualClock) -> None:
    def run() -> list[int | str]:
        emulator = make_emulator(clock, fail_ratio=0.3, seed=42)
        outcomes: list[int | str] = []
        for i in range(200):
            answer = post(emulator, purchase(external_event_id=f"o{i}"))
            outcomes.append(answer.fault or answer.status)
        return outcomes

    outcomes = run()
    assert outcomes == run()
    assert set(outcomes) == {201, 503, "timeout"}
    faults = sum(1 for o in outcomes if o != 201)
    assert 40 <= faults <= 80


def test_latency_is_asked_of_the_transport(emu: PrisjaktEmulator) -> None:
    emu.latency = 0.25
    answer = post(emu, purchase())
    assert (answer.status, answer.delay) == (201, 0.25)
    assert len(emu.events) == 1  # processed; the answer is what comes late
    emu.script(["timeout"])
    assert post(emu, purchase(external_event_id="o2")).delay == 0.0

"""Faults the emulator puts in front of the API: scripted answers and random ones.

``PrisjaktEmulator.script([...])`` queues steps, one consumed per matching
request; ``fail_ratio`` draws one of ``fail_kinds`` for a request at random.
A step is a status code, ``"pass"``, or one of ``TRANSPORT_FAULTS``. What a
fault answers is what a client can meet in front of the real API, chosen by
the project as the API notes describe none: a 502 is a proxy's (nginx's) HTML
page, a 429 or 503 a problem with ``Retry-After``, any other error a problem.

A ``"timeout"``, ``"connect_timeout"`` or ``"reset"`` is a request that never
reached the API: its answer asks the transport (``EmulatorResponse.fault``) to
time out or reset the connection, and carries no ``delay``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus

from django_pjpixel.testing.model import Problem
from django_pjpixel.testing.wire import EmulatorResponse, problem_response

TRANSPORT_FAULTS = frozenset({"timeout", "connect_timeout", "reset"})

ScriptStep = int | str

_HTML = {"Content-Type": "text/html"}
_PROXY_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


@dataclass
class Step:
    """One queued step, for the requests its ``method`` and ``path`` regex match."""

    action: ScriptStep
    method: str | None
    path: re.Pattern[str] | None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or self.path.search(path) is not None
        )


def compile_script(steps: Iterable[ScriptStep], method: str | None, path: str | None) -> list[Step]:
    """The steps of ``PrisjaktEmulator.script``, checked; a ``ValueError`` names a bad one."""
    compiled = re.compile(path) if path is not None else None
    new = []
    for step in steps:
        if not (
            (isinstance(step, int) and 100 <= step <= 599)
            or step == "pass"
            or step in TRANSPORT_FAULTS
        ):
            raise ValueError(f"not a script step: {step!r}")
        new.append(Step(step, method.upper() if method else None, compiled))
    return new


def next_fault(
    script: list[Step],
    method: str,
    rel: str,
    fail_ratio: float,
    fail_kinds: Sequence[ScriptStep],
    rng: random.Random,
) -> ScriptStep | None:
    """The fault this request meets, if any.

    The first step of ``script`` that matches is taken off it; else, at
    ``fail_ratio``, one of ``fail_kinds`` is drawn. ``None`` lets the request
    through: no step, or a ``"pass"`` or a 1xx/2xx one.
    """
    step = _take(script, method, rel)
    if step is None and fail_ratio and rng.random() < fail_ratio:
        step = rng.choice(fail_kinds)
    if step == "pass" or (isinstance(step, int) and step < 300):
        return None
    return step


def _take(script: list[Step], method: str, rel: str) -> ScriptStep | None:
    for index, step in enumerate(script):
        if step.matches(method, rel):
            del script[index]
            return step.action
    return None


def fault_response(
    step: ScriptStep, request_id: str, rate_headers: dict[str, str], retry_after: int
) -> EmulatorResponse:
    """What a fault answers in place of the API; ``rate_headers`` go on a 502 or a problem."""
    if step == "reset":
        return EmulatorResponse(502, dict(_HTML), _PROXY_502, fault="reset")
    if isinstance(step, str):
        problem = Problem(504, "Gateway Timeout", "The upstream did not answer in time")
        response = problem_response(problem, request_id)
        return EmulatorResponse(response.status, response.headers, response.body, step)
    if step == 502:
        return EmulatorResponse(502, {**_HTML, **rate_headers}, _PROXY_502)
    extra = {"Retry-After": str(retry_after)} if step in (429, 503) else {}
    problem = Problem(step, _phrase(step), "Injected by the emulator", None, extra)
    return problem_response(problem, request_id, rate_headers)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"

"""The emulator's HTTP messages: a request as it arrives, its answer, its record.

``EmulatorResponse`` is what ``PrisjaktEmulator.handle`` answers and what the
transports (``responses_adapter.py``, ``server.py``) carry; ``RecordedRequest``
is what the emulator remembers of a request, the client secret redacted.
Answers are JSON; errors are RFC 7807 problems whose ``context`` carries the
``request-id`` [seed].
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django_pjpixel.testing.model import Problem

REDACTED = "REDACTED"
# Secrets this long or longer are masked wherever an answer would echo them.
MIN_SCRUBBED_SECRET = 6


@dataclass(frozen=True)
class EmulatorResponse:
    """One answer. ``fault`` asks the transport to time out or reset instead."""

    status: int
    headers: dict[str, str]
    body: bytes = b""
    fault: str | None = None
    delay: float = 0.0

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class RecordedRequest:
    """A request as the emulator saw it, with the client secret redacted."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    status: int | None
    url: str
    request_id: str
    fault: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Request:
    """A request as the emulator handles it: header names lower case, the last
    value of each query parameter, a fresh ``request_id``; ``payload`` is the
    body once parsed."""

    method: str
    url: str
    origin: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    request_id: str
    payload: Any = None


def parse_request(method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> Request:
    """The ``Request`` for what a transport hands ``PrisjaktEmulator.handle``."""
    parts = urlsplit(url)
    return Request(
        method=method.upper(),
        url=url,
        origin=f"{parts.scheme}://{parts.netloc}",
        path=parts.path,
        query={k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
        headers={k.lower(): v for k, v in headers.items()},
        body=body or b"",
        request_id=str(uuid.uuid4()),
    )


def under(path: str, base: str) -> bool:
    """Whether ``path`` is ``base`` or below it."""
    return path == base or path.startswith(base + "/")


def json_response(
    status: int,
    body: Any,
    headers: Mapping[str, str] | None = None,
    content_type: str = "application/json",
) -> EmulatorResponse:
    """An answer with ``body`` as JSON (``content_type`` names the kind of JSON)."""
    return EmulatorResponse(
        status,
        {"Content-Type": content_type, **(headers or {})},
        json.dumps(body, separators=(", ", ": ")).encode(),
    )


def problem_response(
    problem: Problem, request_id: str, headers: Mapping[str, str] | None = None
) -> EmulatorResponse:
    """``problem`` as the API answers an error, RFC 7807 with ``context.request-id`` [seed]."""
    body: dict[str, Any] = {"title": problem.title, "status": problem.status}
    if problem.detail is not None:
        body["detail"] = problem.detail
    if problem.field_errors is not None:
        body["field_errors"] = problem.field_errors
    body["context"] = {"request-id": request_id}
    return json_response(
        problem.status, body, {**(headers or {}), **problem.headers}, "application/problem+json"
    )


def scrub(body: bytes, hidden: Iterable[str]) -> bytes:
    """``body`` with each of the ``hidden`` secrets (long enough to tell) masked."""
    for text in hidden:
        secret = text.encode()
        if len(secret) >= MIN_SCRUBBED_SECRET and secret in body:
            body = body.replace(secret, b"***")
    return body


def record(
    request: Request, response: EmulatorResponse, base_path: str, token_path: str | None
) -> RecordedRequest:
    """What the emulator keeps of ``request``: its path below ``base_path``, JSON body
    and headers, the client secret redacted."""
    if request.payload is None and request.body:
        try:
            request.payload = json.loads(request.body)
        except (ValueError, RecursionError):
            request.payload = None
    headers = dict(request.headers)
    if "client-secret" in headers:
        headers["client-secret"] = REDACTED
    if request.path == token_path:
        rel = request.path
    else:
        rel = request.path[len(base_path) :] if under(request.path, base_path) else request.path
    return RecordedRequest(
        method=request.method,
        path=rel or "/",
        query=dict(request.query),
        headers=headers,
        json=request.payload,
        status=None if response.fault else response.status,
        url=request.url,
        request_id=request.request_id,
        fault=response.fault,
    )

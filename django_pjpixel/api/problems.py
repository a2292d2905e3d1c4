"""From an HTTP answer to the project's error, with the client secret kept out of it.

Prisjakt answers errors as RFC 7807/9457 problem details: ``title``,
``status``, ``detail``, ``context`` with ``request-id``, and ``field_errors``
on a 400 [seed]. A proxy may answer an HTML page instead; that is still an
error with a status and a short excerpt of the body. Whatever the answer echoes
of the secret (in the body, a JSON escape, UTF-16, a header) is replaced by
``***`` before it reaches an exception, a log line or a ledger row.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import requests

from django_pjpixel.api.payloads import parse_retry_after
from django_pjpixel.exceptions import (
    PrisjaktAPIError,
    Problem,
    RateLimit,
    body_excerpt,
    error_class_for,
)


def api_error(response: requests.Response, *, secret: str) -> PrisjaktAPIError:
    """The ``PrisjaktAPIError`` subclass for a non-2xx ``response``, ready to raise.

    The class follows the status (``error_class_for``: 400/422 validation,
    401/403 auth, 404, 409, 429, 3xx refused redirect, 5xx server). It carries
    the problem members of a JSON body [seed], else a one-line excerpt of the
    body; the request id from the problem's ``context`` [seed], else the
    ``request-id`` header; the ``X-RateLimit-*`` state [docs]; and
    ``retry_after`` in seconds from ``Retry-After``, or on a 429 without one
    from the rate limit's reset. ``secret`` is masked everywhere.
    """
    status = response.status_code
    body = _redact(response.content, secret)
    problem = _redact_problem(Problem.parse(body), secret)
    rate_limit = RateLimit.from_headers(response.headers)
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if retry_after is None and status == 429 and rate_limit is not None:
        retry_after = rate_limit.reset_seconds
    cls = error_class_for(status)
    return cls(
        f"{cls.default_message} ({response.request.method} {path_of(response.url)})",
        status=status,
        problem=problem,
        request_id=(problem.request_id if problem else None)
        or _redact_text(response.headers.get("request-id"), secret),
        retry_after=retry_after,
        rate_limit=rate_limit,
        body_excerpt=None if problem else body_excerpt(body, hide=secret),
    )


def decode_json(response: requests.Response, *, secret: str) -> Any:
    """The JSON of ``response``'s body (any JSON value).

    Raises a non-retryable ``PrisjaktAPIError`` with the answer's status, its
    ``request-id`` and an excerpt of the body (``secret`` masked) when the body
    is not JSON or nests too deeply to decode.
    """
    try:
        return response.json()
    except (ValueError, RecursionError) as err:
        raise PrisjaktAPIError(
            f"Prisjakt API answered {response.status_code} with a body that is not JSON",
            status=response.status_code,
            request_id=_redact_text(response.headers.get("request-id"), secret),
            body_excerpt=body_excerpt(response.content, hide=secret),
            retryable=False,
        ) from err


def path_of(url: str | None) -> str:
    """The path of ``url``, ``/`` when it has none: how messages name a request."""
    return urlsplit(url or "").path or "/"


def _redact(body: bytes, secret: str) -> bytes:
    if secret and body:
        raw = secret.encode()
        if raw in body:
            body = body.replace(raw, b"***")
    return body


def _redact_text(text: str | None, secret: str) -> str | None:
    if text and secret:
        return text.replace(secret, "***")
    return text


def _redact_problem(problem: Problem | None, secret: str) -> Problem | None:
    """The problem without the secret, also where JSON escapes or UTF-16 hid it."""
    if problem is None or not secret:
        return problem
    try:
        field_errors = _scrub(problem.field_errors, secret)
    except RecursionError:
        field_errors = {}
    return replace(
        problem,
        type=_redact_text(problem.type, secret),
        title=_redact_text(problem.title, secret),
        detail=_redact_text(problem.detail, secret),
        instance=_redact_text(problem.instance, secret),
        request_id=_redact_text(problem.request_id, secret),
        field_errors=field_errors,
    )


def _scrub(value: Any, secret: str) -> Any:
    if isinstance(value, str):
        return value.replace(secret, "***")
    if isinstance(value, dict):
        return {_scrub(k, secret): _scrub(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, secret) for v in value]
    return value

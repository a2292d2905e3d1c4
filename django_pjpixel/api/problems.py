"""From an HTTP answer to the project's error, with the credentials kept out of it.

Prisjakt answers errors as RFC 7807/9457 problem details: ``title``,
``status``, ``detail``, ``context`` with ``request-id``, and ``field_errors``
on a 400 [seed]. A proxy may answer an HTML page instead; that is still an
error with a status and a short excerpt of the body. Whatever the answer echoes
of a credential (the client secret, a bearer token, anything after ``Bearer ``:
``logtext.masked``), in the body, a JSON escape, UTF-16 or a header, is replaced
by ``***`` before it reaches an exception, a log line or a ledger row.
"""

from __future__ import annotations

from collections.abc import Iterable
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
from django_pjpixel.logtext import masked, masked_bytes, masked_value


def api_error(response: requests.Response, *, hidden: Iterable[str]) -> PrisjaktAPIError:
    """The ``PrisjaktAPIError`` subclass for a non-2xx ``response``, ready to raise.

    The class follows the status (``error_class_for``: 400/422 validation,
    401/403 auth, 404, 409, 429, 3xx refused redirect, 5xx server). It carries
    the problem members of a JSON body [seed], else a one-line excerpt of the
    body; the request id from the problem's ``context`` [seed], else the
    ``request-id`` header; the ``X-RateLimit-*`` state [docs]; and
    ``retry_after`` in seconds from ``Retry-After``, or on a 429 without one
    from the rate limit's reset. ``hidden`` (the client secret, the bearer
    tokens) and anything after ``Bearer `` are masked everywhere.
    """
    hidden = tuple(hidden)
    status = response.status_code
    body = masked_bytes(response.content, hidden)
    problem = _redact_problem(Problem.parse(body), hidden)
    rate_limit = RateLimit.from_headers(response.headers)
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if retry_after is None and status == 429 and rate_limit is not None:
        retry_after = rate_limit.reset_seconds
    cls = error_class_for(status)
    return cls(
        f"{cls.default_message} ({response.request.method} {path_of(response.url)})",
        status=status,
        problem=problem,
        request_id=(problem.request_id if problem else None) or request_id_of(response, hidden),
        retry_after=retry_after,
        rate_limit=rate_limit,
        body_excerpt=None if problem else body_excerpt(body, hide=hidden),
    )


def decode_json(response: requests.Response, *, hidden: Iterable[str]) -> Any:
    """The JSON of ``response``'s body (any JSON value).

    Raises a non-retryable ``PrisjaktAPIError`` with the answer's status, its
    ``request-id`` and an excerpt of the body (``hidden`` masked) when the body
    is not JSON or nests too deeply to decode.
    """
    try:
        return response.json()
    except (ValueError, RecursionError) as err:
        raise PrisjaktAPIError(
            f"Prisjakt API answered {response.status_code} with a body that is not JSON",
            status=response.status_code,
            request_id=request_id_of(response, hidden),
            body_excerpt=body_excerpt(response.content, hide=hidden),
            retryable=False,
        ) from err


def path_of(url: str | None) -> str:
    """The path of ``url``, ``/`` when it has none: how messages name a request."""
    return urlsplit(url or "").path or "/"


def request_id_of(response: requests.Response, hidden: Iterable[str]) -> str | None:
    """The answer's ``request-id`` header, masked: an echo of a credential is no id."""
    value = response.headers.get("request-id")
    return masked(value, hidden) if value else None


def _redact_text(text: str | None, hidden: tuple[str, ...]) -> str | None:
    return masked(text, hidden) if text else text


def _redact_problem(problem: Problem | None, hidden: tuple[str, ...]) -> Problem | None:
    """The problem without a credential, also where JSON escapes or UTF-16 hid it."""
    if problem is None:
        return problem
    return replace(
        problem,
        type=_redact_text(problem.type, hidden),
        title=_redact_text(problem.title, hidden),
        detail=_redact_text(problem.detail, hidden),
        instance=_redact_text(problem.instance, hidden),
        request_id=_redact_text(problem.request_id, hidden),
        field_errors=masked_value(problem.field_errors, hidden),
    )

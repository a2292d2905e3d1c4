"""Errors of django-pjpixel.

``PrisjaktAPIError`` is the one base for everything the API (or the way to
it) can answer: it carries the HTTP status, the RFC 9457 problem members, the
``request-id`` to quote to Prisjakt, the rate-limit state and whether a retry
can help. Configuration errors subclass ``ImproperlyConfigured`` so a broad
``except PrisjaktAPIError`` never swallows them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from django_pjpixel.logtext import masked, masked_value, one_line

# Answers that a later attempt may turn into a success.
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})

_BODY_EXCERPT = 200
_MAX_DIGITS = 18
# The API's rate-limit window is an hour [docs]: no header makes anyone wait longer.
MAX_HEADER_WAIT = 3600.0


class PjpixelError(Exception):
    """Base of every error raised by django-pjpixel."""


class PjpixelConfigurationError(PjpixelError, ImproperlyConfigured):
    """A missing or wrong ``PJPIXEL`` setting; the message names the fix."""


class InvalidInput(PjpixelError, ValueError):
    """A value the API would refuse, caught before sending; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class RateLimit:
    """The ``X-RateLimit-*`` state of one answer (``reset_ms``: until reset).

    ``reset_ms`` is at most the documented one-hour window, whatever the header
    says: a broken or hostile value must not defer every event for days.
    """

    limit: int | None = None
    remaining: int | None = None
    reset_ms: int | None = None

    @property
    def reset_seconds(self) -> float | None:
        return None if self.reset_ms is None else self.reset_ms / 1000.0

    @classmethod
    def from_headers(cls, headers: Any) -> RateLimit | None:
        values = {
            name: _int_or_none(headers.get(f"X-RateLimit-{name}"))
            for name in ("Limit", "Remaining", "Reset")
        }
        if all(v is None for v in values.values()):
            return None
        reset = values["Reset"]
        if reset is not None:
            reset = min(reset, int(MAX_HEADER_WAIT * 1000))
        return cls(values["Limit"], values["Remaining"], reset)


@dataclass(frozen=True)
class Problem:
    """An RFC 9457 problem: every member optional, mistyped members dropped."""

    type: str | None = None
    title: str | None = None
    status: int | None = None
    detail: str | None = None
    instance: str | None = None
    field_errors: dict[str, dict[str, Any]] = field(default_factory=dict)
    request_id: str | None = None

    @classmethod
    def parse(cls, body: bytes | str | None) -> Problem | None:
        """The problem in ``body``, or None when it holds no JSON object."""
        if body is None:
            return None
        try:
            data = json.loads(body)
        except (ValueError, TypeError, RecursionError):
            return None
        if not isinstance(data, dict):
            return None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Problem:
        status = data.get("status")
        context = data.get("context")
        request_id = context.get("request-id") if isinstance(context, dict) else None
        return cls(
            type=_str_or_none(data.get("type")),
            title=_str_or_none(data.get("title")),
            status=status if isinstance(status, int) and not isinstance(status, bool) else None,
            detail=_str_or_none(data.get("detail")),
            instance=_str_or_none(data.get("instance")),
            field_errors=_field_errors(data.get("field_errors")),
            request_id=_str_or_none(request_id),
        )


class PrisjaktAPIError(PjpixelError):
    """The API answered an error, or could not be reached.

    ``status`` is None for network errors and timeouts. ``retryable`` says
    whether the same request may succeed later; ``retry_after`` (seconds) is
    the earliest sensible time for that, from ``Retry-After`` or the
    rate-limit reset.
    """

    default_message = "Prisjakt API error"

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        problem: Problem | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        rate_limit: RateLimit | None = None,
        body_excerpt: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        self.status = status
        self.problem = problem or Problem()
        self.request_id = request_id or self.problem.request_id
        self.retry_after = retry_after
        self.rate_limit = rate_limit
        self.body_excerpt = body_excerpt
        self.retryable = retryable if retryable is not None else status in RETRYABLE_STATUSES
        self.message = message or self.default_message
        super().__init__(self.message)

    @property
    def type(self) -> str | None:
        return self.problem.type

    @property
    def title(self) -> str | None:
        return self.problem.title

    @property
    def detail(self) -> str | None:
        return self.problem.detail

    @property
    def field_errors(self) -> dict[str, dict[str, Any]]:
        return self.problem.field_errors

    def __str__(self) -> str:
        parts = [self.message]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.title:
            parts.append(self.title)
        if self.detail:
            parts.append(self.detail)
        if self.field_errors:
            fields = ", ".join(
                f"{name}: {err.get('message', 'invalid')}"
                for name, err in self.field_errors.items()
            )
            parts.append(f"field errors: {fields}")
        if not self.title and not self.detail and self.body_excerpt:
            parts.append(f"body: {self.body_excerpt}")
        if self.request_id:
            parts.append(f"request-id {self.request_id}")
        # Logged as it is: the API's text must not start a line of its own, nor
        # show a bearer token an error built elsewhere may carry.
        return one_line(masked(" — ".join(parts)))

    def as_record(self) -> dict[str, Any]:
        """The fields a ledger row keeps of this error."""
        return {
            "status": self.status,
            "type": self.type,
            "title": masked(self.title or self.message),
            "detail": masked(self.detail or self.body_excerpt or ""),
            "field_errors": masked_value(self.field_errors),
            "request_id": self.request_id,
        }


class PrisjaktConnectionError(PrisjaktAPIError):
    default_message = "Prisjakt API could not be reached"

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("retryable", True)
        super().__init__(message, **kwargs)


class PrisjaktTimeout(PrisjaktConnectionError):
    default_message = "Prisjakt API timed out"


class PrisjaktValidationError(PrisjaktAPIError, ValueError):
    """400/422: the request was refused; ``field_errors`` says why."""

    default_message = "Prisjakt API refused the request"


class PrisjaktAuthError(PrisjaktAPIError):
    """401/403: the credentials are wrong, or lack the role for this call."""

    default_message = "Prisjakt API refused the credentials"


class PrisjaktNotFound(PrisjaktAPIError):
    default_message = "Prisjakt API found no such resource"


class PrisjaktConflict(PrisjaktAPIError):
    """409: an event with this ``external_event_id`` is already recorded."""

    default_message = "Prisjakt API already has this event"


class PrisjaktRateLimited(PrisjaktAPIError):
    default_message = "Prisjakt API rate limit reached"


class PrisjaktServerError(PrisjaktAPIError):
    default_message = "Prisjakt API failed"


class PrisjaktRedirectRefused(PrisjaktAPIError):
    """A 3xx answer: never followed, the secret travels in a header."""

    default_message = "Prisjakt API answered with a redirect, which is never followed"


class PrisjaktAnswerTooLarge(PrisjaktAPIError):
    """A successful answer longer than ``MAX_RESPONSE_BYTES`` (after decompression)."""

    default_message = "Prisjakt API answered more than the client reads"

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("retryable", False)
        super().__init__(message, **kwargs)


def error_class_for(status: int) -> type[PrisjaktAPIError]:
    if status in (400, 422):
        return PrisjaktValidationError
    if status in (401, 403):
        return PrisjaktAuthError
    if status == 404:
        return PrisjaktNotFound
    if status == 409:
        return PrisjaktConflict
    if status == 429:
        return PrisjaktRateLimited
    if 300 <= status < 400:
        return PrisjaktRedirectRefused
    if status >= 500:
        return PrisjaktServerError
    return PrisjaktAPIError


def body_excerpt(body: bytes | str | None, *, hide: Iterable[str] = ()) -> str | None:
    """A short, single-line, printable excerpt of a (non-JSON) body, ``hide`` and
    anything after ``Bearer `` masked (``logtext.masked``)."""
    if not body:
        return None
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = " ".join(text.split())
    text = "".join(ch for ch in text if ch.isprintable())
    text = masked(text, hide)
    if len(text) > _BODY_EXCERPT:
        text = text[: _BODY_EXCERPT - 1] + "…"
    return text or None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int_or_none(value: Any) -> int | None:
    # Plain ASCII digits only, and few enough that the number fits a float.
    text = "" if value is None else str(value).strip()
    if not (text.isascii() and text.isdigit()) or len(text) > _MAX_DIGITS:
        return None
    return int(text)


def _field_errors(value: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(value, dict):
        return {}
    errors: dict[str, dict[str, Any]] = {}
    for name, err in value.items():
        if not isinstance(name, str):
            continue
        if isinstance(err, dict):
            errors[name] = {k: v for k, v in err.items() if isinstance(k, str)}
        elif isinstance(err, str):
            errors[name] = {"message": err}
    return errors

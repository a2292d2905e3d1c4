"""``PrisjaktEmulator``: the Click & Conversion API as ``/work/shared/prisjakt-api.md`` states it.

One transport-independent implementation of the documented behaviour:
``handle(method, url, headers, body)`` answers an ``EmulatorResponse``. The
``responses`` adapter (``responses_adapter.py``) and the WSGI server
(``server.py``) are thin layers over it; they only carry bytes and act on the
two transport faults an answer can ask for (``fault="timeout"`` or
``fault="reset"``) and on its ``delay``.

Its parts stand in modules of their own, each importing only those before it
(every name this module has offered stays importable from here):

- ``clock.py``: the time the API lives in, and ISO-8601 times;
- ``model.py``: the API's resources, the rules on them and their state (event
  bodies, the duplicate window, click ids, tokens, rate-limit counters);
- ``wire.py``: its HTTP messages (a request as parsed, the answer, JSON and
  problem bodies, the record of a request);
- ``faults.py``: the faults put in front of it (``script()`` steps,
  ``fail_ratio``) and what they answer;
- ``routes.py``: its endpoints, the token endpoint and authentication;
- ``divergence.py``: changes to its record that no request makes (an event
  lost, restated or recorded from elsewhere), for reconciliation tests.

This module ties them together behind one lock: a request meets the faults,
then the rate limit, then the routes. Choices for the points the API notes
leave open (each module above states its own):

- Rate limiting (``rate_limit`` requests per ``rate_window`` seconds) is
  counted before authentication; scripted faults and the token endpoint do
  not count.
- A ``delay`` (``latency``) is applied after the request is processed: a
  client that gives up early has still had its event stored.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from django_pjpixel.testing.clock import Clock, ManualClock, format_time, parse_iso_time, utc_now
from django_pjpixel.testing.divergence import RecordDivergence
from django_pjpixel.testing.faults import (
    TRANSPORT_FAULTS,
    ScriptStep,
    Step,
    compile_script,
    fault_response,
    next_fault,
)
from django_pjpixel.testing.model import (
    CURRENCIES,
    DUPLICATE_WINDOW,
    EVENT_NAMES,
    MAX_EXTERNAL_EVENT_ID,
    MAX_VALUE,
    POST_ROLES,
    SHOP_USER_ROLES,
    TOKEN_LIFETIME,
    ApiState,
    Client,
    Problem,
)
from django_pjpixel.testing.routes import MAX_LIST_RANGE, Router
from django_pjpixel.testing.wire import (
    MIN_SCRUBBED_SECRET,
    REDACTED,
    EmulatorResponse,
    RecordedRequest,
    Request,
    parse_request,
    problem_response,
    record,
    scrub,
    under,
)

__all__ = [
    "CURRENCIES",
    "DEFAULT_BASE_URL",
    "DEFAULT_TOKEN_URL",
    "DUPLICATE_WINDOW",
    "EVENT_NAMES",
    "MAX_EXTERNAL_EVENT_ID",
    "MAX_LIST_RANGE",
    "MAX_VALUE",
    "MIN_SCRUBBED_SECRET",
    "POST_ROLES",
    "REDACTED",
    "SHOP_USER_ROLES",
    "TOKEN_LIFETIME",
    "TRANSPORT_FAULTS",
    "Clock",
    "EmulatorResponse",
    "ManualClock",
    "PrisjaktEmulator",
    "RecordedRequest",
    "ScriptStep",
    "parse_iso_time",
    "utc_now",
]

DEFAULT_BASE_URL = "https://api.pj.nu/click-conversion"
DEFAULT_TOKEN_URL = "https://auth.pj.nu/oauth2/token"


class PrisjaktEmulator(RecordDivergence):
    """The Prisjakt Click & Conversion API in memory; safe to share between threads.

    Inspect ``events``, ``requests`` and ``clicks``; seed with ``add_event``,
    ``add_click``, ``add_pixel``, ``add_client``, ``add_shop``; inject faults
    with ``latency``, ``script([...])`` and ``fail_ratio``; make Prisjakt's
    record differ from what was sent with ``drop_event``, ``change_event`` and
    ``add_foreign_event`` (``divergence.py``); list ``page_size`` events a page
    (``unstable_pages``: repeat one at the top of the next); ``reset()``
    clears the state (not the configuration).
    """

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        token_url: str | None = DEFAULT_TOKEN_URL,
        pixels: Iterable[str] = (),
        clients: Mapping[str, Mapping[str, Any]] | None = None,
        shops: Mapping[str, Iterable[str]] | None = None,
        page_size: int = 50,
        rate_limit: int = 10_000,
        rate_window: float = 3600.0,
        token_lifetime: int = TOKEN_LIFETIME,
        list_wrapper_key: str | None = None,
        unstable_pages: bool = False,
        latency: float = 0.0,
        fail_ratio: float = 0.0,
        fail_kinds: Sequence[ScriptStep] = (503, "timeout"),
        seed: int | None = None,
        scripted_retry_after: int = 1,
        clock: Clock = utc_now,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.base_path = urlsplit(self.base_url).path.rstrip("/")
        self.token_url = token_url
        self.token_path = urlsplit(token_url).path if token_url else None
        self.page_size = page_size
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.token_lifetime = token_lifetime
        self.list_wrapper_key = list_wrapper_key
        self.unstable_pages = unstable_pages
        self.latency = latency
        self.fail_ratio = fail_ratio
        self.fail_kinds = tuple(fail_kinds)
        self.scripted_retry_after = scripted_retry_after
        self.sleep = sleep
        self._random = random.Random(seed)  # noqa: S311 - fault injection, not security
        self._lock = threading.RLock()
        self._state = ApiState(clock)
        self._router = Router(self._state, self)
        self._state.pixels.update(pixels)
        for client_id, spec in (clients or {}).items():
            self.add_client(
                client_id,
                str(spec["secret"]),
                spec.get("roles", ["shop_user"]),
                pixels=spec.get("pixels"),
            )
        self._state.shops.update({k: list(v) for k, v in (shops or {}).items()})
        self._requests: list[RecordedRequest] = []
        self._script: list[Step] = []

    @property
    def clock(self) -> Clock:
        """The time the API lives in: ``utc_now``, or a ``ManualClock`` in tests."""
        return self._state.clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self._state.clock = clock

    # -- configuration and state --------------------------------------------

    def add_pixel(self, pixel_id: str) -> None:
        with self._lock:
            self._state.pixels.add(pixel_id)

    def add_client(
        self,
        client_id: str,
        secret: str,
        roles: Iterable[str] = ("shop_user",),
        *,
        pixels: Iterable[str] | None = None,
    ) -> None:
        """Add (or replace) a client; ``pixels``: the only pixels it may use (default: any)."""
        allowed = None if pixels is None else frozenset(pixels)
        with self._lock:
            self._state.clients[client_id] = Client(client_id, secret, list(roles), allowed)

    def add_shop(self, shop_id: str, pixel_ids: Iterable[str]) -> None:
        with self._lock:
            self._state.shops[shop_id] = list(pixel_ids)

    def add_click(self, click_id: str, **extra: Any) -> dict[str, Any]:
        """Register a click so ``GET /clicks/{click_id}`` finds it."""
        with self._lock:
            return self._state.add_click(click_id, **extra)

    def add_event(
        self,
        pixel_id: str | None = None,
        *,
        event_time: datetime | str | None = None,
        external_event_id: str | None = None,
        amount: int = 1234,
        currency: str = "SEK",
        number_of_items: int = 1,
        signed_click_id: str | None = None,
        event_name: str = "purchase",
    ) -> dict[str, Any]:
        """Store an event directly (no validation, no request), for listing tests."""
        with self._lock:
            pixel = pixel_id if pixel_id is not None else self._only_pixel()
            self._state.pixels.add(pixel)
            when = event_time if event_time is not None else self.clock()
            text = format_time(when) if isinstance(when, datetime) else when
            body = {
                "event_name": event_name,
                "event_time": text,
                "external_event_id": external_event_id,
                "data": {
                    "amount": amount,
                    "currency": currency,
                    "number_of_items": number_of_items,
                },
                "signed_click_id": signed_click_id,
            }
            return self._state.store(pixel, body).as_json()

    def _only_pixel(self) -> str:
        if len(self._state.pixels) != 1:
            raise ValueError("add_event: name the pixel_id (the emulator knows several or none)")
        return next(iter(self._state.pixels))

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every stored event (as the API shows it), across pixels, in storing order."""
        with self._lock:
            return [e.as_json() for e in self._state.events]

    def events_for(self, pixel_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e.as_json() for e in self._state.events if e.pixel_id == pixel_id]

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def clicks(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: dict(v) for k, v in self._state.clicks.items()}

    @property
    def pending_script(self) -> int:
        with self._lock:
            return len(self._script)

    def reset(self) -> None:
        """Forget events, clicks, requests, tokens, rate windows and the script."""
        with self._lock:
            self._state.clear()
            self._requests.clear()
            self._script.clear()

    def script(
        self,
        steps: Iterable[ScriptStep],
        *,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """Queue faults, one consumed per matching request.

        A step is a status code (a 2xx lets the request through, any other
        answers that error: a problem, with ``Retry-After`` for 429 and 503, or
        a proxy's HTML page for 502), ``"pass"``, ``"timeout"``,
        ``"connect_timeout"`` or ``"reset"``. ``method`` and ``path`` (a regex
        searched in the path below the base URL, e.g. ``"/events$"``; the
        token endpoint's path is its own, ``/oauth2/token``) limit which
        requests consume the steps; the first matching step is taken.
        """
        new = compile_script(steps, method, path)
        with self._lock:
            self._script.extend(new)

    def revoke_tokens(self, client_id: str | None = None) -> int:
        """Revoke every bearer token (or one client's); answers how many."""
        with self._lock:
            return self._state.revoke_tokens(client_id)

    def expire_tokens(self) -> None:
        """Make every issued token expired now (it stays known, but is refused)."""
        with self._lock:
            self._state.expire_tokens()

    @property
    def tokens(self) -> list[str]:
        with self._lock:
            return list(self._state.tokens)

    def state(self) -> dict[str, Any]:
        """What the emulator holds, as JSON-ready data (no secrets)."""
        with self._lock:
            return {
                "events": self.events,
                "requests": [r.as_dict() for r in self._requests],
                "clicks": list(self._state.clicks.values()),
                "pixels": sorted(self._state.pixels),
            }

    # -- the API -------------------------------------------------------------

    def handle(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
    ) -> EmulatorResponse:
        """Answer one request exactly as the API would (see the module docstring)."""
        request = parse_request(method, url, headers, body)
        with self._lock:
            response = self._respond(request)
            response = EmulatorResponse(
                response.status,
                {**response.headers, "request-id": request.request_id},
                scrub(response.body, (c.secret for c in self._state.clients.values())),
                response.fault,
                response.delay if response.fault else self.latency,
            )
            self._requests.append(record(request, response, self.base_path, self.token_path))
        return response

    def _respond(self, request: Request) -> EmulatorResponse:
        is_token = self.token_path is not None and request.path == self.token_path
        if not is_token and not under(request.path, self.base_path):
            return problem_response(Problem(404, "Not found"), request.request_id)
        rel = request.path if is_token else request.path[len(self.base_path) :] or "/"
        key = self._router.rate_key(request)
        step = next_fault(
            self._script, request.method, rel, self.fail_ratio, self.fail_kinds, self._random
        )
        if step is not None:
            return fault_response(
                step, request.request_id, self._rate_headers(key), self.scripted_retry_after
            )
        if is_token:
            return self._router.token(request)
        try:
            self._state.count(key, self.rate_limit, self.rate_window)
            response = self._router.route(request, rel)
        except Problem as problem:
            return problem_response(problem, request.request_id, self._rate_headers(key))
        return EmulatorResponse(
            response.status, {**response.headers, **self._rate_headers(key)}, response.body
        )

    # -- rate limit -----------------------------------------------------------

    def _rate_headers(self, key: str) -> dict[str, str]:
        start, used = self._state.window(key, self.rate_window)
        reset_ms = max(0, round((start + self.rate_window - self.clock().timestamp()) * 1000))
        return {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(max(0, self.rate_limit - used)),
            "X-RateLimit-Reset": str(reset_ms),
        }

"""``PrisjaktEmulator``: the Click & Conversion API as ``/work/shared/prisjakt-api.md`` states it.

One transport-independent implementation of the documented behaviour:
``handle(method, url, headers, body)`` answers an ``EmulatorResponse``. The
``responses`` adapter (``responses_adapter.py``) and the WSGI server
(``server.py``) are thin layers over it; they only carry bytes and act on the
two transport faults an answer can ask for (``fault="timeout"`` or
``fault="reset"``) and on its ``delay``.

Its parts stand in modules of their own, each importing only those before it:

- ``model.py``: the API's resources, the rules on them and their state (event
  bodies, the duplicate window, click ids, tokens, rate-limit counters);
- ``wire.py``: its HTTP messages (a request as parsed, the answer, JSON and
  problem bodies, the record of a request);
- ``faults.py``: the faults put in front of it (``script()`` steps,
  ``fail_ratio``) and what they answer.

Every name this module has offered stays importable from it.

Choices for the points the API notes leave open (``model.py`` has its own):

- ``PATCH`` takes a bare JSON array or ``{"events": [...]}``; an empty array
  is a 204; when any event is invalid nothing is stored.
- A listing filters and orders by ``event_time`` (newest first, later stored
  first on a tie); its body is a bare JSON list (``list_wrapper_key`` wraps
  it); a page past the last is an empty list with 200; ``page_size`` is 50.
  ``unstable_pages`` repeats the last event of page *n* at the top of page
  *n + 1*, as the docs warn the real API may.
- Rate limiting (``rate_limit`` requests per ``rate_window`` seconds) is
  counted before authentication; scripted faults and the token endpoint do
  not count.
- The client secret is required on every request; ``Authorization: Bearer``
  with a token from ``token_url`` replaces both headers. A client needs the
  ``event_publisher`` or ``admin`` role to ``POST``/``PATCH``; any role may read.
  ``GET /clients/{id}`` shows the caller itself (an ``admin`` any client).
- A ``delay`` (``latency``) is applied after the request is processed: a
  client that gives up early has still had its event stored.
"""

from __future__ import annotations

import json
import math
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

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
    PUBLISHER_ROLES,
    TOKEN_LIFETIME,
    ApiState,
    Client,
    Clock,
    ManualClock,
    Problem,
    format_time,
    parse_iso_time,
    utc_now,
    validate_event,
    validation_problem,
)
from django_pjpixel.testing.wire import (
    MIN_SCRUBBED_SECRET,
    REDACTED,
    EmulatorResponse,
    RecordedRequest,
    Request,
    json_response,
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
    "PUBLISHER_ROLES",
    "REDACTED",
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
MAX_LIST_RANGE = timedelta(days=60)


class PrisjaktEmulator:
    """The Prisjakt Click & Conversion API in memory; safe to share between threads.

    Inspect ``events``, ``requests`` and ``clicks``; seed with ``add_event``,
    ``add_click``, ``add_pixel``, ``add_client``, ``add_shop``; inject faults
    with ``latency``, ``script([...])`` and ``fail_ratio``; ``reset()`` clears
    the state (not the configuration).
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
        self._state.pixels.update(pixels)
        for client_id, spec in (clients or {}).items():
            self.add_client(client_id, str(spec["secret"]), spec.get("roles", ["shop_user"]))
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
        self, client_id: str, secret: str, roles: Iterable[str] = ("shop_user",)
    ) -> None:
        with self._lock:
            self._state.clients[client_id] = Client(client_id, secret, list(roles))

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
        key = self._rate_key(request)
        step = next_fault(
            self._script, request.method, rel, self.fail_ratio, self.fail_kinds, self._random
        )
        if step is not None:
            return fault_response(
                step, request.request_id, self._rate_headers(key), self.scripted_retry_after
            )
        if is_token:
            return self._token(request)
        try:
            self._state.count(key, self.rate_limit, self.rate_window)
            return self._route(request, rel, key)
        except Problem as problem:
            return problem_response(problem, request.request_id, self._rate_headers(key))

    # -- auth and rate limit -------------------------------------------------

    def _rate_key(self, request: Request) -> str:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            token = self._state.tokens.get(auth[7:].strip())
            if token is not None:
                return token[0]
        return request.headers.get("client-id", "")

    def _rate_headers(self, key: str) -> dict[str, str]:
        start, used = self._state.window(key, self.rate_window)
        reset_ms = max(0, round((start + self.rate_window - self.clock().timestamp()) * 1000))
        return {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(max(0, self.rate_limit - used)),
            "X-RateLimit-Reset": str(reset_ms),
        }

    def _authenticate(self, request: Request) -> Client:
        auth = request.headers.get("authorization")
        if auth is not None:
            scheme, _, token = auth.partition(" ")
            entry = self._state.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
            if entry is None or entry[1] <= self.clock():
                raise Problem(401, "Unauthorized", "The bearer token is invalid or expired")
            return self._state.clients[entry[0]]
        client_id = request.headers.get("client-id")
        if not client_id:
            raise Problem(401, "Unauthorized", "The client-id header is required")
        client = self._state.clients.get(client_id)
        given = request.headers.get("client-secret")
        if client is None or given is None or not secrets.compare_digest(given, client.secret):
            raise Problem(401, "Unauthorized", "Invalid client credentials")
        return client

    def _token(self, request: Request) -> EmulatorResponse:
        if request.method != "POST":
            return _oauth_error(405, "invalid_request")
        form = {k: v[-1] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        request.payload = {k: REDACTED if k == "client_secret" else v for k, v in form.items()}
        if form.get("grant_type") != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type")
        client = self._state.clients.get(form.get("client_id", ""))
        given = form.get("client_secret", "")
        if client is None or not secrets.compare_digest(given, client.secret):
            return _oauth_error(401, "invalid_client")
        token = self._state.issue_token(client.id, self.token_lifetime)
        body = {"access_token": token, "expires_in": self.token_lifetime, "token_type": "bearer"}
        return json_response(200, body, {"Cache-Control": "no-store"})

    # -- routes ----------------------------------------------------------------

    def _route(self, request: Request, rel: str, key: str) -> EmulatorResponse:
        segments = [s for s in rel.split("/") if s]
        method = request.method
        if len(segments) == 3 and segments[0] == "pixels" and segments[2] == "events":
            handlers = {"POST": self._create, "PATCH": self._create_many, "GET": self._list}
            handler = handlers.get(method)
            if handler is None:
                raise Problem(405, "Method Not Allowed", headers={"Allow": "GET, PATCH, POST"})
            client = self._authenticate(request)
            if method != "GET" and not PUBLISHER_ROLES.intersection(client.roles):
                raise Problem(
                    403, "Forbidden", "The client lacks the event_publisher role for this call"
                )
            pixel = segments[1]
            if pixel not in self._state.pixels:
                raise Problem(404, "Pixel not found", f"A pixel with ID {pixel} could not be found")
            response = handler(request, pixel)
        elif len(segments) == 2 and segments[0] in ("events", "clicks", "clients"):
            if method != "GET":
                raise Problem(405, "Method Not Allowed", headers={"Allow": "GET"})
            client = self._authenticate(request)
            response = self._get_one(segments[0], segments[1], client)
        elif len(segments) == 3 and segments[0] == "shops" and segments[2] == "pixels":
            if method != "GET":
                raise Problem(405, "Method Not Allowed", headers={"Allow": "GET"})
            self._authenticate(request)
            shop = self._state.shops.get(segments[1])
            if shop is None:
                raise Problem(
                    404, "Shop not found", f"A shop with ID {segments[1]} could not be found"
                )
            pixels = [{"id": p, "shop_id": segments[1]} for p in shop]
            response = json_response(200, pixels)
        else:
            raise Problem(404, "Not found", f"No resource at {request.path}")
        return EmulatorResponse(
            response.status, {**response.headers, **self._rate_headers(key)}, response.body
        )

    def _get_one(self, kind: str, ident: str, client: Client) -> EmulatorResponse:
        found: dict[str, Any] | None = None
        if kind == "events":
            found = next((e.as_json() for e in self._state.events if e.id == ident), None)
        elif kind == "clicks":
            found = self._state.clicks.get(ident)
        else:
            other = self._state.clients.get(ident)
            if other is not None and (other is client or "admin" in client.roles):
                found = {"id": other.id, "roles": list(other.roles)}
        if found is None:
            noun = kind[:-1]
            raise Problem(
                404,
                f"{noun.capitalize()} not found",
                f"A {noun} with ID {ident} could not be found",
            )
        return json_response(200, found)

    def _json_body(self, request: Request) -> Any:
        try:
            request.payload = json.loads(request.body)
        except (ValueError, RecursionError):
            raise validation_problem(
                {
                    "body": {
                        "message": "invalid JSON",
                        "value": request.body.decode("utf-8", "replace"),
                    }
                }
            ) from None
        return request.payload

    def _create(self, request: Request, pixel: str) -> EmulatorResponse:
        payload = self._json_body(request)
        errors = validate_event(payload, "")
        if errors:
            raise validation_problem(errors)
        external = payload.get("external_event_id")
        if external is not None and self._state.recent(pixel, external) is not None:
            raise Problem(
                409,
                "Event already exists",
                f"An event with external event ID {external} already exists",
            )
        event = self._state.store(pixel, payload)
        return json_response(201, event.as_json(), {"Location": f"/events/{event.id}"})

    def _create_many(self, request: Request, pixel: str) -> EmulatorResponse:
        payload = self._json_body(request)
        if isinstance(payload, dict) and set(payload) == {"events"}:
            payload = payload["events"]
        if not isinstance(payload, list):
            raise validation_problem(
                {"body": {"message": "must be a JSON array of events", "value": payload}}
            )
        errors: dict[str, dict[str, Any]] = {}
        for index, item in enumerate(payload):
            errors.update(validate_event(item, f"events[{index}]."))
        if errors:
            raise validation_problem(errors)
        for item in payload:
            external = item.get("external_event_id")
            existing = self._state.recent(pixel, external) if external is not None else None
            if existing is None:
                self._state.store(pixel, item)
            else:
                self._state.fill(existing, item)
        return EmulatorResponse(204, {})

    def _list(self, request: Request, pixel: str) -> EmulatorResponse:
        errors: dict[str, dict[str, Any]] = {}
        bounds: dict[str, datetime] = {}
        for name in ("from", "to"):
            raw = request.query.get(name)
            parsed = parse_iso_time(raw)
            if parsed is None:
                message = "required" if raw is None else "invalid ISO-8601 time"
                errors[name] = {"message": message, "value": raw}
            else:
                bounds[name] = parsed
        raw_page = request.query.get("page", "1")
        page = int(raw_page) if raw_page.isdigit() and raw_page.isascii() else 0
        if page < 1:
            errors["page"] = {"message": "invalid integer", "value": raw_page}
        if not errors and bounds["to"] < bounds["from"]:
            errors["to"] = {"message": "must not be before from", "value": request.query["to"]}
        if not errors and bounds["to"] - bounds["from"] > MAX_LIST_RANGE:
            errors["to"] = {
                "message": "the range from from to to may span at most 60 days",
                "value": request.query["to"],
            }
        if errors:
            raise validation_problem(errors)
        chosen = sorted(
            (
                e
                for e in self._state.events
                if e.pixel_id == pixel and bounds["from"] <= e.when <= bounds["to"]
            ),
            key=lambda e: (e.when, e.seq),
            reverse=True,
        )
        size = max(1, self.page_size)
        last = max(1, math.ceil(len(chosen) / size))
        start = (page - 1) * size
        items = chosen[start : start + size]
        if self.unstable_pages and page > 1 and items:
            items = [chosen[start - 1], *items]
        listed = [e.as_json() for e in items]
        body: Any = listed if self.list_wrapper_key is None else {self.list_wrapper_key: listed}
        headers: dict[str, str] = {}
        if last > 1:
            headers["Link"] = self._link_header(request, pixel, page, last)
        return json_response(200, body, headers)

    def _link_header(self, request: Request, pixel: str, page: int, last: int) -> str:
        base = (
            f"{request.origin}{self.base_path}/pixels/{quote(pixel, safe='')}/events"
            f"?from={quote(request.query['from'], safe='')}"
            f"&to={quote(request.query['to'], safe='')}&page="
        )
        rels = [("first", 1), ("last", last)]
        if page > 1:
            rels.append(("prev", page - 1))
        if page < last:
            rels.append(("next", page + 1))
        return ", ".join(f'<{base}{number}>; rel="{rel}"' for rel, number in rels)


def _oauth_error(status: int, error: str) -> EmulatorResponse:
    return json_response(status, {"error": error}, {"Cache-Control": "no-store"})
